//! Building a group-commit batch: commands are added one by one, each checked and assigned
//! positions and versions against the log plus the commands already in the batch.
//!
//! Nothing touches storage until `EventLog::commit`; a batch is plain memory, so it can be
//! dropped at any time without effect, and it is `Send` so it can be moved to the thread that
//! performs the blocking commit.
//!
//! A batch can be continued (`Batch::continuation`) before it is committed, so an appender can
//! decide the next batch while the previous one is written and flushed: the continuation starts
//! at the previous batch's tip, sees its stream versions and idempotency keys, and can only be
//! committed right after it (a failed or skipped previous commit makes it stale).

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use crate::error::LogError;
use crate::limits::{
    BATCH_BYTES_MAX, BATCH_COMMANDS_MAX, IDEMPOTENCY_KEY_BYTES_MAX, REPLY_BYTES_MAX,
};
use crate::log::{Acknowledged, EventLog};
use crate::record::{self, Head};

/// What a command expects a stream's version to be before its records are appended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ExpectedVersion {
    /// No check.
    Any,
    /// The stream has no records yet (version 0).
    NoStream,
    /// The stream's latest version is exactly this.
    Exactly(u64),
}

impl ExpectedVersion {
    fn accepts(self, actual: u64) -> bool {
        match self {
            ExpectedVersion::Any => true,
            ExpectedVersion::NoStream => actual == 0,
            ExpectedVersion::Exactly(expected) => actual == expected,
        }
    }
}

/// A record a command wants to append.
#[derive(Clone, Copy, Debug)]
pub struct NewRecord<'a> {
    /// Stream to append to (1 to `STREAM_NAME_BYTES_MAX` bytes of UTF-8).
    pub stream: &'a str,
    /// The bytes to store (up to `RECORD_PAYLOAD_BYTES_MAX`).
    pub payload: &'a [u8],
}

/// Where one of a command's records will land once the batch is committed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Appended {
    /// Global position.
    pub position: u64,
    /// Stream.
    pub stream: String,
    /// Version within the stream.
    pub version: u64,
}

/// Why a command was not added to the batch. These are expected outcomes, not failures; the
/// batch is unchanged.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AddRejected {
    /// A stream's version is not what the command expected.
    VersionConflict {
        /// The stream whose check failed (the first one, in the order given).
        stream: String,
        /// What the command expected.
        expected: ExpectedVersion,
        /// The stream's version including earlier commands of this batch (0: no stream).
        actual: u64,
    },
    /// The idempotency key was already used, in the log or earlier in this batch: this is the
    /// reply stored for it, and nothing was appended.
    AlreadyRecorded {
        /// The stored reply.
        reply: Vec<u8>,
    },
    /// The batch has reached `BATCH_COMMANDS_MAX` or this command would take it over
    /// `BATCH_BYTES_MAX`: commit this batch and add the command to the next one.
    BatchFull,
}

/// A record waiting in a batch, already encoded and chained.
#[derive(Debug)]
pub(crate) struct PendingRecord {
    pub position: u64,
    pub stream: String,
    pub version: u64,
    pub bytes: Vec<u8>,
}

/// Source of batch identities, so a continuation can name exactly the commit it must follow.
/// Starts at 1: 0 means "no batch" in `Acknowledged::batch`.
static NEXT_BATCH_ID: AtomicU64 = AtomicU64::new(1);

/// What a continuation knows of the uncommitted batch it continues. The maps are shared with
/// that batch (it takes no more commands once continued), so continuing copies nothing.
#[derive(Debug, Clone)]
pub(crate) struct Previous {
    /// The log's state before the previous batch commits; while it has not, this is what the
    /// log still shows, and the continuation is not stale.
    pub(crate) begun_at: Acknowledged,
    pub(crate) versions: Arc<HashMap<String, u64>>,
    pub(crate) replies: Arc<HashMap<Vec<u8>, Vec<u8>>>,
}

/// A group-commit batch under construction. Begin one with `EventLog::batch` (or continue an
/// uncommitted one with [`Batch::continuation`]), add commands, then hand it to
/// `EventLog::commit`.
///
/// A batch is built against the log's head when it was begun; if anything is committed in the
/// meantime (another batch, an import), adding to it or committing it fails with
/// `LogError::StaleBatch`. A continuation is built against the head its previous batch will
/// leave, and is stale unless exactly that batch's commit is the log's last write when it is
/// committed.
#[derive(Debug)]
pub struct Batch {
    pub(crate) log: EventLog,
    /// This batch's identity, recorded in the log's acknowledged state by its commit.
    pub(crate) id: u64,
    /// The log's acknowledged state this batch is built on (for a continuation, the state its
    /// previous batch's commit leaves); any other write makes it stale.
    pub(crate) begun_at: Acknowledged,
    /// The uncommitted batch this one continues, while it may not be committed yet.
    pub(crate) previous: Option<Previous>,
    /// Set once a continuation exists: the continuation assumed this batch's tip, versions and
    /// keys, so adding more would make the two disagree.
    pub(crate) continued: bool,
    pub(crate) base: Head,
    /// Head after the last pending record.
    pub(crate) tip: Head,
    pub(crate) commands: usize,
    pub(crate) byte_size: usize,
    pub(crate) records: Vec<PendingRecord>,
    /// Stream → version after this batch's pending records, for the streams it touches.
    pub(crate) versions: Arc<HashMap<String, u64>>,
    /// Idempotency key → reply for the commands in this batch that have a key.
    pub(crate) replies: Arc<HashMap<Vec<u8>, Vec<u8>>>,
    /// Idempotency keys `committed_reply_for` found unused in the log. The batch is bound to
    /// the log's state when it was begun (any later write makes it stale), so such a key stays
    /// unused for the batch's life and `add_command` need not look it up in sled a second time.
    pub(crate) unused_keys: HashSet<Vec<u8>>,
}

impl Batch {
    pub(crate) fn new(log: EventLog, begun_at: Acknowledged) -> Batch {
        Batch {
            log,
            id: NEXT_BATCH_ID.fetch_add(1, Ordering::Relaxed),
            begun_at,
            previous: None,
            continued: false,
            base: begun_at.head,
            tip: begun_at.head,
            commands: 0,
            byte_size: 0,
            records: Vec::new(),
            versions: Arc::default(),
            replies: Arc::default(),
            unused_keys: HashSet::new(),
        }
    }

    /// Begins the batch that will be committed right after this one, while this one is not
    /// committed yet (so an appender can decide it during this one's write and flush).
    ///
    /// The continuation starts at this batch's tip and sees this batch's stream versions and
    /// idempotency keys (a key pending here is `AlreadyRecorded` there, with this batch's reply).
    /// It can be committed only once this batch has been committed and nothing else has: if
    /// this batch's commit fails, or is never made, committing the continuation fails with
    /// `LogError::StaleBatch` and writes nothing. This batch takes no more commands afterwards.
    ///
    /// At most one batch may be uncommitted ahead of a batch being built: a continuation of a
    /// continuation is usable only once the first batch is committed, and is stale before.
    pub fn continuation(&mut self) -> Batch {
        self.continued = true;
        let mut next = Batch::new(self.log.clone(), self.begun_at);
        if self.is_empty() {
            // Committing an empty batch writes nothing, so the continuation stands where this
            // batch stands, on the same previous batch (if any).
            next.previous = self.previous.clone();
            return next;
        }
        next.begun_at = Acknowledged {
            head: self.tip,
            writes: self.begun_at.writes + 1,
            batch: self.id,
        };
        next.base = self.tip;
        next.tip = self.tip;
        next.previous = Some(Previous {
            begun_at: self.begun_at,
            versions: Arc::clone(&self.versions),
            replies: Arc::clone(&self.replies),
        });
        next
    }

    /// Fails with `StaleBatch` unless the log is where this batch was built to go: at its
    /// `begun_at`, or, for a continuation, still before the previous batch's commit.
    fn check_fresh(&self) -> Result<(), LogError> {
        let now = self.log.acknowledged();
        let before_previous = self
            .previous
            .as_ref()
            .is_some_and(|previous| previous.begun_at == now);
        if now != self.begun_at && !before_previous {
            return Err(LogError::StaleBatch {
                batch_head: self.base,
                log_head: now.head,
            });
        }
        Ok(())
    }

    /// The reply stored for `key` by the uncommitted batch this one continues, if any.
    fn previous_reply(&self, key: &[u8]) -> Option<&Vec<u8>> {
        self.previous
            .as_ref()
            .and_then(|previous| previous.replies.get(key))
    }

    /// The reply a committed command stored under idempotency key `key`, like
    /// [`EventLog::reply_for`] (commands pending in this batch are not looked at), and
    /// remembered: when there is none, a later `add_command` with this key skips its own
    /// lookup. An appender that checks keys before deciding a command (the writer does, so that
    /// a resend is answered from the stored reply) thus pays for one sled lookup, not two.
    ///
    /// In a continuation, a key of the batch it continues counts as committed: this batch can
    /// only be committed (and its answers can only be given) after that one is durable.
    pub fn committed_reply_for(&mut self, key: &[u8]) -> Result<Option<Vec<u8>>, LogError> {
        self.check_fresh()?;
        if let Some(reply) = self.previous_reply(key) {
            return Ok(Some(reply.clone()));
        }
        // If the previous batch commits during this lookup, the log gains only keys the
        // previous batch's map already answered, so the answer is the same either way.
        let reply = self.log.reply_for(key)?;
        if reply.is_none() {
            self.unused_keys.insert(key.to_vec());
        }
        Ok(reply)
    }

    /// Adds one command: all of its records go in, or none do.
    ///
    /// Checks, in order: the idempotency key (already stored, or pending in this batch → the
    /// stored reply as `AlreadyRecorded`, so a retried command never appends twice), the
    /// expected versions (counting earlier records of this batch), and the batch bounds. Then
    /// assigns positions and versions and, when `key` is given, calls `make_reply` with them
    /// and stores its bytes under `key` in the same atomic write as the records. `make_reply`
    /// is not called without a key.
    ///
    /// The outer `Result` is for failures (storage errors, limits a command can never meet, a
    /// stale batch); the inner one for the expected outcomes in `AddRejected`.
    pub fn add_command(
        &mut self,
        key: Option<&[u8]>,
        expected: &[(&str, ExpectedVersion)],
        records: &[NewRecord<'_>],
        make_reply: impl FnOnce(&[Appended]) -> Vec<u8>,
    ) -> Result<Result<Vec<Appended>, AddRejected>, LogError> {
        if self.continued {
            return Err(LogError::InvalidArgument(
                "a batch that has been continued takes no more commands",
            ));
        }
        self.check_fresh()?;
        if let Some(key) = key {
            check_key(key)?;
        }
        for (stream, _) in expected {
            record::check_stream_name(stream)?;
        }
        let mut command_bytes = key.map_or(0, |key| key.len() + REPLY_BYTES_MAX);
        for new in records {
            record::check_stream_name(new.stream)?;
            record::check_payload(new.payload)?;
            command_bytes += record::encoded_len(new.stream, new.payload);
        }

        if let Some(key) = key {
            if let Some(reply) = self.replies.get(key).or_else(|| self.previous_reply(key)) {
                return Ok(Err(AddRejected::AlreadyRecorded {
                    reply: reply.clone(),
                }));
            }
            // A key `committed_reply_for` already found unused is still unused: the stale
            // check above guarantees nothing was committed since but, for a continuation, the
            // previous batch, whose keys were looked at just before.
            if !self.unused_keys.contains(key) {
                if let Some(reply) = self.log.reply_for(key)? {
                    return Ok(Err(AddRejected::AlreadyRecorded { reply }));
                }
            }
        }
        for &(stream, expectation) in expected {
            let actual = self.current_version(stream)?;
            if !expectation.accepts(actual) {
                return Ok(Err(AddRejected::VersionConflict {
                    stream: stream.to_owned(),
                    expected: expectation,
                    actual,
                }));
            }
        }
        if command_bytes > BATCH_BYTES_MAX {
            // Even an empty batch could not hold it, so "commit and retry" would loop forever.
            return Err(LogError::LimitExceeded {
                what: "command bytes (records, key and reserved reply)",
                limit: BATCH_BYTES_MAX,
                actual: command_bytes,
            });
        }
        if self.commands >= BATCH_COMMANDS_MAX || self.byte_size + command_bytes > BATCH_BYTES_MAX {
            return Ok(Err(AddRejected::BatchFull));
        }

        // Assign into locals first so that a failure below leaves the batch untouched.
        let mut tip = self.tip;
        let mut touched: HashMap<&str, u64> = HashMap::new();
        let mut pending = Vec::with_capacity(records.len());
        let mut appended = Vec::with_capacity(records.len());
        for new in records {
            let current = match touched.get(new.stream) {
                Some(&version) => version,
                None => self.current_version(new.stream)?,
            };
            let version = current + 1;
            let position = tip.position + 1;
            let (bytes, hash) =
                record::encode(&tip.hash, position, new.stream, version, new.payload)?;
            touched.insert(new.stream, version);
            tip = Head { position, hash };
            appended.push(Appended {
                position,
                stream: new.stream.to_owned(),
                version,
            });
            pending.push(PendingRecord {
                position,
                stream: new.stream.to_owned(),
                version,
                bytes,
            });
        }
        let reply = match key {
            Some(key) => {
                let reply = make_reply(&appended);
                if reply.len() > REPLY_BYTES_MAX {
                    return Err(LogError::LimitExceeded {
                        what: "reply bytes",
                        limit: REPLY_BYTES_MAX,
                        actual: reply.len(),
                    });
                }
                Some((key.to_vec(), reply))
            }
            None => None,
        };

        let stored_bytes = pending
            .iter()
            .map(|record| record.bytes.len())
            .sum::<usize>()
            + reply
                .as_ref()
                .map_or(0, |(key, reply)| key.len() + reply.len());
        debug_assert!(stored_bytes <= command_bytes);
        self.byte_size += stored_bytes;
        self.commands += 1;
        self.tip = tip;
        self.records.extend(pending);
        // The maps are shared only with a continuation, which exists only once this batch
        // takes no more commands (checked above), so these never copy.
        let versions = Arc::make_mut(&mut self.versions);
        for (stream, version) in touched {
            versions.insert(stream.to_owned(), version);
        }
        if let Some((key, reply)) = reply {
            Arc::make_mut(&mut self.replies).insert(key, reply);
        }
        debug_assert!(self.commands <= BATCH_COMMANDS_MAX);
        debug_assert!(self.byte_size <= BATCH_BYTES_MAX);
        debug_assert_eq!(
            self.tip.position - self.base.position,
            self.records.len() as u64
        );
        Ok(Ok(appended))
    }

    /// The stream's version counting this batch's pending records (and those of the batch it
    /// continues).
    fn current_version(&self, stream: &str) -> Result<u64, LogError> {
        let previous = self
            .previous
            .as_ref()
            .and_then(|previous| previous.versions.get(stream));
        match self.versions.get(stream).or(previous) {
            Some(&version) => Ok(version),
            // Only the previous batch's commit can move the log meanwhile, and it touches none
            // of the streams not in its map.
            None => self.log.stream_version(stream),
        }
    }

    /// True when no command has been added.
    pub fn is_empty(&self) -> bool {
        self.commands == 0
    }

    /// Commands added so far.
    pub fn len(&self) -> usize {
        self.commands
    }

    /// Records added so far.
    pub fn record_count(&self) -> usize {
        self.records.len()
    }

    /// Bytes the batch will store: records, idempotency keys and replies (sled's own overhead
    /// and the stream index come on top).
    pub fn byte_size(&self) -> usize {
        self.byte_size
    }

    /// The head the batch was begun against.
    pub fn base(&self) -> Head {
        self.base
    }

    /// The head the log will have once this batch is committed.
    pub fn tip(&self) -> Head {
        self.tip
    }
}

/// Checks an idempotency key against the limits.
pub(crate) fn check_key(key: &[u8]) -> Result<(), LogError> {
    if key.is_empty() {
        return Err(LogError::InvalidArgument("idempotency key is empty"));
    }
    if key.len() > IDEMPOTENCY_KEY_BYTES_MAX {
        return Err(LogError::LimitExceeded {
            what: "idempotency key bytes",
            limit: IDEMPOTENCY_KEY_BYTES_MAX,
            actual: key.len(),
        });
    }
    Ok(())
}
