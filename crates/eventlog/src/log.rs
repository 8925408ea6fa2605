//! `EventLog`: opening and recovering the log, committing batches, reads, export and import.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{mpsc, Arc, Mutex, MutexGuard, PoisonError, RwLock, RwLockReadGuard};
use std::time::{Duration, Instant};

use crate::batch::{self, Batch};
use crate::chunk::{self, ValueBuilder};
use crate::error::LogError;
use crate::index::{Delta, Index};
use crate::keys::{self, LOG_FORMAT_VERSION, META_KEY};
use crate::limits::{
    BATCH_BYTES_MAX, BATCH_COMMANDS_MAX, INDEX_RUN_EVENTS_MIN, OPEN_LOCK_WAIT_MS_MAX,
    READ_BYTES_MAX, READ_EVENTS_MAX,
};
use crate::record::{self, Hash, Head, Record, RecordView, HASH_BYTES};
use crate::runs;

/// sled 0.34.7's log file inside the log directory.
const SLED_LOG_FILE: &str = "db";

/// sled 0.34.7's directory of large items inside the log directory.
const SLED_BLOB_DIRECTORY: &str = "blobs";

/// Source of per-open identities, so a batch begun on one `EventLog` cannot be committed on
/// another that happens to be at the same head.
static NEXT_LOG_ID: AtomicU64 = AtomicU64::new(1);

/// A fault to inject into the next write, for tests of failure handling (disk full and the
/// like). See `EventLog::inject_fault`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FaultPlan {
    /// The next write fails before anything reaches sled.
    FailBeforeWrite,
    /// The next write reaches sled's memory but its flush fails, so the write must be undone.
    FailFlush,
    /// Like `FailFlush`, but the write first waits this many milliseconds: a commit held in
    /// flight that then fails, for tests of an appender that decides the next batch meanwhile.
    FailFlushAfterMs(u64),
    /// The next write is applied and flushed (durable), but fails before the in-memory indexes
    /// and the head move: the state a crash right after the flush leaves. The log refuses
    /// writes until reopened, and reopening must find the write whole, indexes included.
    FailAfterFlush,
    /// The next index run (`EventLog::persist_indexes`, or the automatic one) is written to
    /// its temporary file but not renamed into place: the checkpoint does not flip. Commits
    /// are not affected; the run's entries go into the next run.
    FailIndexRun,
}

/// The outcome of a successful `commit`: everything in it is durable.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Committed {
    /// The log's head after the batch.
    pub head: Head,
    /// Commands in the batch.
    pub commands: usize,
    /// Records appended (positions `head.position - records + 1 ..= head.position`).
    pub records: u64,
}

/// The append-only log. Cheap to clone (a handle to shared state), `Send + Sync`.
///
/// Reads take `&self` and may run on any thread while a commit is in progress; they never see
/// past the acknowledged head, so they never return a record that is not yet durable.
///
/// Writes (`commit`, `import_raw`) are serialized by an internal lock, but the log is designed
/// for exactly one appender: a batch is built against the head at the time it was begun, and
/// a second concurrent appender would just see its batches rejected as stale.
#[derive(Clone, Debug)]
pub struct EventLog {
    pub(crate) inner: Arc<Inner>,
}

#[derive(Debug)]
pub(crate) struct Inner {
    id: u64,
    db: sled::Db,
    /// Where sled keeps its files, for `sync_files`.
    directory: PathBuf,
    /// sled's log file, opened by us too so each commit can fsync it (see `sync_files`).
    db_file: File,
    pub(crate) tree: sled::Tree,
    /// The appender's state. Held for the whole of a write (apply and flush).
    writer: Mutex<WriterState>,
    /// Copy of the acknowledged head for readers, updated only after a flush returned, so reads
    /// do not wait for a flush in progress.
    acknowledged: RwLock<Acknowledged>,
    /// The derived indexes (chunks, streams, replies), updated after a flush returned and
    /// before the acknowledged head moves.
    pub(crate) index: RwLock<Index>,
    /// Jobs for the background writer of index runs (`runs.rs`).
    runs: Mutex<Option<mpsc::Sender<runs::Job>>>,
    /// That writer, joined on drop so a reopen never races a run being renamed into place.
    runs_thread: Mutex<Option<std::thread::JoinHandle<()>>>,
}

impl Drop for Inner {
    fn drop(&mut self) {
        let sender = self
            .runs
            .get_mut()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        drop(sender);
        let thread = self
            .runs_thread
            .get_mut()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        if let Some(thread) = thread {
            // A panic in the run writer lost at most a run; the log holds every entry.
            let _ = thread.join();
        }
    }
}

/// The acknowledged head, how many writes have been acknowledged since open, and which batch
/// made the last one. The count tells batches apart even when a write did not move the head (a
/// batch of replies only); the batch names the one commit a continuation may follow.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Acknowledged {
    pub(crate) head: Head,
    pub(crate) writes: u64,
    /// The id of the batch whose commit was the last write (0: none, or an import).
    pub(crate) batch: u64,
}

#[derive(Debug)]
pub(crate) struct WriterState {
    pub(crate) head: Head,
    fault: Option<FaultPlan>,
    poisoned: bool,
    /// Largest blob file id already fsynced (see `sync_files`); -1 before the first.
    blobs_synced_through: i64,
}

/// One write: the values to insert, the head they lead to, and what it adds to the indexes.
#[derive(Default)]
pub(crate) struct Write {
    entries: Vec<([u8; 9], Vec<u8>)>,
    head: Head,
    /// The id of the batch being committed (0 for imports).
    batch: u64,
    /// First positions of the new chunks.
    chunk_starts: Vec<u64>,
    /// Each new record's stream and position, in position order.
    records: Vec<(String, u64)>,
    /// Each new reply's idempotency key and section number.
    replies: Vec<(Vec<u8>, u64)>,
    /// Reply sections written.
    sections: u64,
}

impl Write {
    /// Adds the chunks built by `builder`.
    fn add_chunks(&mut self, builder: ValueBuilder) {
        for (first, value) in builder.finish() {
            self.chunk_starts.push(first);
            self.entries.push((keys::chunk_key(first), value));
        }
    }

    /// Adds the reply sections built by `builder`.
    fn add_sections(&mut self, builder: ValueBuilder) {
        for (number, value) in builder.finish() {
            self.sections += 1;
            self.entries.push((keys::reply_section_key(number), value));
        }
    }
}

impl EventLog {
    /// Opens (creating if needed) the log in `dir`, recovers its head from the meta record and
    /// rebuilds the derived indexes by scanning every chunk and reply section (checking that
    /// positions are gapless, stream versions consecutive, and that the last record matches
    /// the meta head and chains onto the record before it). Another process holding the log
    /// open makes this fail (sled's file lock). A format-1 log, or one a migration left half
    /// way, is refused with `LogError::NeedsMigration`.
    pub fn open(dir: &Path) -> Result<EventLog, LogError> {
        crate::migrate::refuse_interrupted_migration(dir)?;
        let db = open_sled(dir)?;
        let tree = db.open_tree(keys::TREE)?;
        let (head, index) = recover(&tree, dir)?;
        let (runs, runs_thread) = runs::spawn_writer(dir.to_path_buf())?;
        let log = EventLog {
            inner: Arc::new(Inner {
                id: NEXT_LOG_ID.fetch_add(1, Ordering::Relaxed),
                db_file: File::open(dir.join(SLED_LOG_FILE))?,
                directory: dir.to_path_buf(),
                db,
                tree,
                writer: Mutex::new(WriterState {
                    head,
                    fault: None,
                    poisoned: false,
                    blobs_synced_through: -1,
                }),
                acknowledged: RwLock::new(Acknowledged {
                    head,
                    writes: 0,
                    batch: 0,
                }),
                index: RwLock::new(index),
                runs: Mutex::new(Some(runs)),
                runs_thread: Mutex::new(Some(runs_thread)),
            }),
        };
        // A new log gets its meta record at once, so the directory says "format 2" even
        // before the first commit.
        if log.inner.tree.get(META_KEY)?.is_none() {
            log.inner
                .tree
                .insert(META_KEY, &encode_meta(&Head::GENESIS)[..])?;
        }
        // Make a newly created log (its files, directory entries and tree) durable before the
        // first commit relies on them.
        log.inner.db.flush()?;
        {
            let mut state = log.lock_writer()?;
            log.sync_files(&mut state)?;
        }
        File::open(dir)?.sync_all()?;
        Ok(log)
    }

    /// The acknowledged head: the last durable position and its hash.
    pub fn head(&self) -> Head {
        self.acknowledged().head
    }

    pub(crate) fn acknowledged(&self) -> Acknowledged {
        // A poisoned lock still holds a whole value (it is written by one assignment).
        *self
            .inner
            .acknowledged
            .read()
            .unwrap_or_else(PoisonError::into_inner)
    }

    pub(crate) fn index(&self) -> RwLockReadGuard<'_, Index> {
        // Index updates are plain pushes and inserts that cannot leave it half changed.
        self.inner
            .index
            .read()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// The latest committed version of `stream`; 0 when the stream has no records.
    pub fn stream_version(&self, stream: &str) -> Result<u64, LogError> {
        record::check_stream_name(stream)?;
        // The index moves only after a write is durable: it never shows an unflushed version.
        Ok(self.index().stream_version(stream))
    }

    /// The reply stored for idempotency key `key` by a committed command, if any.
    pub fn reply_for(&self, key: &[u8]) -> Result<Option<Vec<u8>>, LogError> {
        batch::check_key(key)?;
        // The reply index holds only durable sections; a miss reads nothing.
        let candidates: Vec<u64> = self.index().replies.candidates(key).collect();
        for section in candidates {
            let Some(value) = self.inner.tree.get(keys::reply_section_key(section))? else {
                return Err(LogError::Corrupt {
                    position: 0,
                    reason: format!("reply section {section} is missing"),
                });
            };
            let entries = chunk::split_section(&value).map_err(|reason| LogError::Corrupt {
                position: 0,
                reason: format!("reply section {section}: {reason}"),
            })?;
            if let Some((_, reply)) = entries.iter().find(|(stored, _)| *stored == key) {
                return Ok(Some(reply.to_vec()));
            }
        }
        Ok(None)
    }

    /// Begins a batch against the current head. Commit it (or drop it) before beginning
    /// another.
    pub fn batch(&self) -> Batch {
        Batch::new(self.clone(), self.acknowledged())
    }

    /// Writes the batch with one atomic sled write and one flush, then acknowledges it.
    ///
    /// The records go into chunks of at most `CHUNK_BYTES_MAX`, the replies into reply
    /// sections; nothing is written per event besides the record itself. On `Ok`, every
    /// record and reply of the batch is durable and visible. On `Err`, none of it is visible,
    /// the head has not moved, and the log accepts the next batch (unless the error is
    /// `Poisoned`). After a crash, an unacknowledged batch may or may not be present, but
    /// always entirely or not at all.
    ///
    /// A continuation (`Batch::continuation`) commits only when its previous batch's commit
    /// was the log's last write; otherwise (that commit failed or was not made) it is
    /// `StaleBatch` and nothing is written.
    pub fn commit(&self, batch: Batch) -> Result<Committed, LogError> {
        if batch.log.inner.id != self.inner.id {
            return Err(LogError::StaleBatch {
                batch_head: batch.base,
                log_head: self.head(),
            });
        }
        let mut state = self.lock_writer()?;
        if self.acknowledged() != batch.begun_at {
            return Err(LogError::StaleBatch {
                batch_head: batch.base,
                log_head: state.head,
            });
        }
        debug_assert_eq!(state.head, batch.base);
        if batch.is_empty() {
            return Ok(Committed {
                head: state.head,
                commands: 0,
                records: 0,
            });
        }
        // Check every record right before it is written, as it will be checked when read.
        let mut previous = batch.base;
        let mut chunks = ValueBuilder::default();
        let mut write = Write {
            head: batch.tip,
            batch: batch.id,
            ..Write::default()
        };
        write.records.reserve(batch.records.len());
        for pending in batch.records {
            let view = record::check(&previous.hash, &pending.bytes).map_err(|reason| {
                LogError::Corrupt {
                    position: pending.position,
                    reason: format!("record failed its check before write: {reason}"),
                }
            })?;
            debug_assert_eq!(view.position, previous.position + 1);
            debug_assert_eq!(view.position, pending.position);
            debug_assert_eq!(
                (view.stream, view.version),
                (pending.stream.as_str(), pending.version)
            );
            previous = Head {
                position: pending.position,
                hash: view.hash,
            };
            chunks.add_record(pending.position, &pending.bytes);
            write.records.push((pending.stream, pending.position));
        }
        debug_assert_eq!(previous, batch.tip);
        write.add_chunks(chunks);
        let mut sections = ValueBuilder::sections_from(self.index().next_section);
        write.replies.reserve(batch.replies.len());
        // By reference: a continuation being built may share the map.
        for (key, reply) in batch.replies.iter() {
            let section = sections.add_reply(key, reply);
            write.replies.push((key.clone(), section));
        }
        write.add_sections(sections);
        let records = batch.tip.position - batch.base.position;
        self.write(&mut state, write)?;
        Ok(Committed {
            head: state.head,
            commands: batch.commands,
            records,
        })
    }

    /// Makes the next write (`commit` or one chunk of `import_raw`) fail as planned.
    ///
    /// Test support for failure handling: the failure surfaces as `LogError::Io`. After
    /// `FailBeforeWrite` and `FailFlush` (or `FailFlushAfterMs`) the log is left exactly as
    /// before the write; after `FailAfterFlush` the write is durable but unacknowledged and the
    /// log refuses writes until reopened.
    pub fn inject_fault(&self, plan: FaultPlan) -> Result<(), LogError> {
        self.lock_writer()?.fault = Some(plan);
        Ok(())
    }

    /// Records from position `from` (0 is read as 1) up to the head: at most `max_events`
    /// (capped at `READ_EVENTS_MAX`), stopping before the stored bytes would exceed `max_bytes`
    /// (capped at `READ_BYTES_MAX`), but always at least one record if any is available.
    ///
    /// Each record is checked (shape, position, and that it chains onto the record before it,
    /// including the record before `from`). An empty result means `from` is past the head.
    pub fn read_from(
        &self,
        from: u64,
        max_events: usize,
        max_bytes: usize,
    ) -> Result<Vec<Record>, LogError> {
        let mut records = Vec::new();
        self.scan_checked(from, max_events, max_bytes, |view, _| {
            records.push(view.to_record());
        })?;
        Ok(records)
    }

    /// Like `read_from`, but returns each record's exact stored bytes (for export).
    pub fn read_raw_from(
        &self,
        from: u64,
        max_events: usize,
        max_bytes: usize,
    ) -> Result<Vec<Vec<u8>>, LogError> {
        let mut records = Vec::new();
        self.scan_checked(from, max_events, max_bytes, |_, bytes| {
            records.push(bytes.to_vec());
        })?;
        Ok(records)
    }

    /// The exact stored bytes of the record at `position`, checked against the record before
    /// it; `None` past the head.
    pub fn raw_record(&self, position: u64) -> Result<Option<Vec<u8>>, LogError> {
        if position == 0 || position > self.head().position {
            return Ok(None);
        }
        let mut raw = self.read_raw_from(position, 1, READ_BYTES_MAX)?;
        Ok(raw.pop())
    }

    /// Records of `stream` from version `from_version` (0 is read as 1): at most `max`
    /// (capped at `READ_EVENTS_MAX`), stopping before `READ_BYTES_MAX` stored bytes (at least
    /// one record if any is available). Each record is checked, including its hash against the
    /// record before it in the global order.
    pub fn read_stream(
        &self,
        stream: &str,
        from_version: u64,
        max: usize,
    ) -> Result<Vec<Record>, LogError> {
        record::check_stream_name(stream)?;
        let max_events = max.min(READ_EVENTS_MAX);
        let from_version = from_version.max(1);
        let head = self.head();
        let positions: Vec<u64> = {
            let index = self.index();
            let all = index.streams.get(stream).map_or(&[][..], Vec::as_slice);
            let skip = usize::try_from(from_version - 1).unwrap_or(usize::MAX);
            all.iter()
                .skip(skip)
                .take(max_events)
                .copied()
                .take_while(|&position| position <= head.position)
                .collect()
        };
        let mut reader = ChunkReader::new(self);
        let mut records = Vec::new();
        let mut bytes_read = 0usize;
        for (offset, position) in positions.into_iter().enumerate() {
            let expected_version = from_version + offset as u64;
            let previous = reader.hash_before(position)?;
            let bytes = reader.record(position)?;
            if !records.is_empty() && bytes_read + bytes.len() > READ_BYTES_MAX {
                break;
            }
            let view = record::check(&previous, &bytes)
                .map_err(|reason| LogError::Corrupt { position, reason })?;
            if (view.position, view.stream, view.version) != (position, stream, expected_version) {
                return Err(LogError::Corrupt {
                    position,
                    reason: format!(
                        "index says {stream} version {expected_version} but the record is {} version {} at position {}",
                        view.stream, view.version, view.position
                    ),
                });
            }
            bytes_read += bytes.len();
            records.push(view.to_record());
        }
        Ok(records)
    }

    /// Appends records given as their exact stored bytes (an export), checking that each
    /// chains onto the head and continues its stream. Writes in parts bounded like batches,
    /// each atomic and flushed, so an import into an empty log reproduces the exporter's head
    /// hash exactly.
    ///
    /// Idempotency replies are not part of the chain and are not imported. On error, the
    /// parts written so far stay (the head says how far it got) and the import can resume.
    pub fn import_raw(&self, records: impl IntoIterator<Item = Vec<u8>>) -> Result<Head, LogError> {
        let mut state = self.lock_writer()?;
        let mut part = Part::new(state.head);
        for bytes in records {
            let position = part.write.head.position + 1;
            let checked = self.check_import(&part, position, &bytes);
            let (stream, version, hash) = match checked {
                Ok(checked) => checked,
                Err(error) => {
                    // Keep what chained so far, so the head says where the import stopped.
                    if !part.write.records.is_empty() {
                        self.write(&mut state, part.finish())?;
                    }
                    return Err(error);
                }
            };
            part.versions.insert(stream.clone(), version);
            part.write.head = Head { position, hash };
            part.bytes += bytes.len();
            part.chunks.add_record(position, &bytes);
            part.write.records.push((stream, position));
            if part.write.records.len() >= BATCH_COMMANDS_MAX || part.bytes >= BATCH_BYTES_MAX {
                let next = Part::new(part.write.head);
                self.write(&mut state, std::mem::replace(&mut part, next).finish())?;
            }
        }
        if !part.write.records.is_empty() {
            self.write(&mut state, part.finish())?;
        }
        Ok(state.head)
    }

    /// Writes a batch the HA leader committed (see `replica.rs`) as one atomic, flushed write:
    /// its records must continue the head exactly (position, chain, stream versions, limits, as
    /// `import_raw` checks them) and its reply keys must be new. Returns the new head; on error
    /// nothing is written.
    pub fn apply_replicated(&self, replicated: &crate::ReplicatedBatch) -> Result<Head, LogError> {
        let mut state = self.lock_writer()?;
        if replicated.base_position != state.head.position {
            return Err(crate::replica::invalid(
                replicated.base_position + 1,
                format!(
                    "replicated batch continues position {} but the head is {}",
                    replicated.base_position, state.head.position
                ),
            ));
        }
        if replicated.is_empty() {
            return Ok(state.head);
        }
        let mut part = Part::new(state.head);
        for bytes in &replicated.records {
            let position = part.write.head.position + 1;
            let (stream, version, hash) = self.check_import(&part, position, bytes)?;
            part.versions.insert(stream.clone(), version);
            part.write.head = Head { position, hash };
            part.chunks.add_record(position, bytes);
            part.write.records.push((stream, position));
        }
        let mut write = part.finish();
        let mut sections = ValueBuilder::sections_from(self.index().next_section);
        let mut keys = std::collections::HashSet::with_capacity(replicated.replies.len());
        for (key, reply) in &replicated.replies {
            batch::check_key(key)?;
            if !keys.insert(key) || self.reply_for(key)?.is_some() {
                return Err(crate::replica::invalid(
                    write.head.position,
                    format!("reply for key {} is already stored", hex::encode(key)),
                ));
            }
            let section = sections.add_reply(key, reply);
            write.replies.push((key.clone(), section));
        }
        write.add_sections(sections);
        self.write(&mut state, write)?;
        Ok(state.head)
    }

    /// Whether this log already holds `replicated` exactly: it ends at or before the head and
    /// each of its records is stored with the same bytes. A standby that reads a batch it
    /// already has (its local commit ran before it became a standby) skips it with this; a
    /// batch that ends at or before the head with other bytes is a fork, an `InvalidImport`
    /// naming the first differing position. A batch that goes past the head is `Ok(false)`.
    pub fn holds_replicated(&self, replicated: &crate::ReplicatedBatch) -> Result<bool, LogError> {
        let head = self.head();
        if replicated.tip_position() > head.position {
            return Ok(false);
        }
        for (offset, bytes) in replicated.records.iter().enumerate() {
            let position = replicated.base_position + 1 + offset as u64;
            if self.raw_record(position)?.as_deref() != Some(bytes.as_slice()) {
                return Err(crate::replica::invalid(
                    position,
                    "the replicated record differs from the stored one (a fork)".to_owned(),
                ));
            }
        }
        Ok(true)
    }

    /// Stores replies (idempotency key → reply) of commands committed elsewhere, for a
    /// migration: in writes bounded like batches, each atomic and flushed. A key already
    /// stored is an `InvalidImport`.
    pub(crate) fn import_replies(
        &self,
        replies: impl IntoIterator<Item = (Vec<u8>, Vec<u8>)>,
    ) -> Result<u64, LogError> {
        let mut state = self.lock_writer()?;
        let mut imported = 0u64;
        let mut pending: std::collections::HashMap<Vec<u8>, Vec<u8>> =
            std::collections::HashMap::new();
        let mut pending_bytes = 0usize;
        let mut replies = replies.into_iter().peekable();
        while let Some((key, reply)) = replies.next() {
            batch::check_key(&key)?;
            if pending.contains_key(&key) || self.reply_for(&key)?.is_some() {
                return Err(LogError::InvalidImport {
                    position: state.head.position,
                    reason: format!("reply for key {} is already stored", hex::encode(&key)),
                });
            }
            pending_bytes += key.len() + reply.len();
            pending.insert(key, reply);
            let full = pending.len() >= BATCH_COMMANDS_MAX || pending_bytes >= BATCH_BYTES_MAX;
            if full || replies.peek().is_none() {
                let mut write = Write {
                    head: state.head,
                    ..Write::default()
                };
                let mut sections = ValueBuilder::sections_from(self.index().next_section);
                for (key, reply) in pending.drain() {
                    let section = sections.add_reply(&key, &reply);
                    write.replies.push((key, section));
                    imported += 1;
                }
                write.add_sections(sections);
                self.write(&mut state, write)?;
                pending_bytes = 0;
            }
        }
        Ok(imported)
    }

    /// Checks that `bytes` is the record at `position`, chaining onto the part's head and
    /// continuing its stream. Returns its stream, version and hash.
    fn check_import(
        &self,
        part: &Part,
        position: u64,
        bytes: &[u8],
    ) -> Result<(String, u64, Hash), LogError> {
        let view = record::check(&part.write.head.hash, bytes)
            .map_err(|reason| LogError::InvalidImport { position, reason })?;
        if view.position != position {
            return Err(LogError::InvalidImport {
                position,
                reason: format!("record says position {}", view.position),
            });
        }
        // Imported bytes meet the same limits as appended ones.
        record::check_stream_name(view.stream)
            .and_then(|()| record::check_payload(view.payload))
            .map_err(|error| LogError::InvalidImport {
                position,
                reason: error.to_string(),
            })?;
        let current = match part.versions.get(view.stream) {
            Some(&version) => version,
            None => self.index().stream_version(view.stream),
        };
        if view.version != current + 1 {
            return Err(LogError::InvalidImport {
                position,
                reason: format!(
                    "record is {} version {} but the stream is at version {current}",
                    view.stream, view.version
                ),
            });
        }
        Ok((view.stream.to_owned(), view.version, view.hash))
    }

    /// Bytes sled reports for the database on disk (informational).
    pub fn size_on_disk(&self) -> Result<u64, LogError> {
        Ok(self.inner.db.size_on_disk()?)
    }

    /// Bytes of memory the idempotency index holds and the keys it indexes (informational, for
    /// measurements of its bound).
    pub fn reply_index_memory(&self) -> (usize, usize) {
        let index = self.index();
        (index.replies.memory_bytes(), index.replies.len())
    }

    /// Writes what the indexes gained since the last index run as a new run (see `runs.rs`)
    /// and waits for it: on `Ok`, a reopen re-indexes only the records after the returned
    /// head. Runs are also written in the background every `INDEX_RUN_EVENTS_MIN` events;
    /// this is for a clean shutdown and for tests. A failure loses nothing (the log holds
    /// every entry; the next run takes these entries too).
    pub fn persist_indexes(&self) -> Result<Head, LogError> {
        let (done, outcome) = mpsc::channel();
        {
            let mut state = self.lock_writer()?;
            let fail_before_rename = state
                .fault
                .take_if(|fault| *fault == FaultPlan::FailIndexRun)
                .is_some();
            let mut index = self
                .inner
                .index
                .write()
                .unwrap_or_else(PoisonError::into_inner);
            self.send_run(&mut index, state.head, fail_before_rename, Some(done));
        }
        match outcome.recv() {
            Ok(Ok(head)) => Ok(head),
            Ok(Err(message)) => Err(LogError::Io(std::io::Error::other(message))),
            Err(_) => Err(LogError::Io(std::io::Error::other(
                "the index run writer has stopped",
            ))),
        }
    }

    /// Takes the index delta (up to `head`) and hands it to the run writer.
    fn send_run(
        &self,
        index: &mut Index,
        head: Head,
        fail_before_rename: bool,
        done: Option<mpsc::Sender<Result<Head, String>>>,
    ) {
        let next = Delta::starting(head.position + 1, index.next_section);
        let delta = std::mem::replace(&mut index.delta, next);
        let job = runs::Job {
            delta,
            to: head,
            sections_to: index.next_section,
            fail_before_rename,
            done,
        };
        let runs = self
            .inner
            .runs
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if let Some(runs) = runs.as_ref() {
            // A stopped writer thread only means no more runs: opening rescans further.
            let _ = runs.send(job);
        }
    }

    pub(crate) fn lock_writer(&self) -> Result<MutexGuard<'_, WriterState>, LogError> {
        // A panic while holding the lock could have stopped between a write and its undo, so a
        // poisoned lock is treated like a failed undo.
        let state = self.inner.writer.lock().map_err(|_| LogError::Poisoned)?;
        if state.poisoned {
            return Err(LogError::Poisoned);
        }
        Ok(state)
    }

    /// Applies one write atomically and flushes it; on success extends the indexes and
    /// advances the head, on failure undoes it in memory so storage matches the unchanged head.
    fn write(&self, state: &mut WriterState, write: Write) -> Result<(), LogError> {
        debug_assert!(write.head.position >= state.head.position);
        let tree = &self.inner.tree;
        let old_meta = tree.get(META_KEY)?;
        let mut batch = sled::Batch::default();
        // sled copies keys and values into its own buffers either way, so inserting slices
        // keeps `write.entries` for the undo, which is built only if it is needed.
        for (key, value) in &write.entries {
            batch.insert(&key[..], value.as_slice());
        }
        batch.insert(META_KEY, &encode_meta(&write.head)[..]);

        let fault = state
            .fault
            .take_if(|fault| *fault != FaultPlan::FailIndexRun);
        if fault == Some(FaultPlan::FailBeforeWrite) {
            return Err(injected("write"));
        }
        let outcome = tree
            .apply_batch(batch)
            .map_err(LogError::from)
            .and_then(|()| {
                if fault == Some(FaultPlan::FailFlush) {
                    return Err(injected("flush"));
                }
                if let Some(FaultPlan::FailFlushAfterMs(millis)) = fault {
                    std::thread::sleep(Duration::from_millis(millis));
                    return Err(injected("flush"));
                }
                self.inner.db.flush()?;
                self.sync_files(state)?;
                Ok(())
            });
        if let Err(error) = outcome {
            // sled applies a batch key by key in memory (atomicity is for crash recovery), so
            // after a failure any part of it may be visible to lookups. Remove it all again.
            // If the flush failed, part of the batch may be on disk; the undo reaches the disk
            // with the next successful flush, and a crash before then recovers the batch whole
            // or not at all, like any unacknowledged batch.
            let mut undo = sled::Batch::default();
            for (key, _) in &write.entries {
                // Every key a write inserts is new (fresh positions and section numbers), so
                // undoing means removing it.
                undo.remove(&key[..]);
            }
            match old_meta {
                Some(meta) => undo.insert(META_KEY, meta),
                None => undo.remove(META_KEY),
            }
            if tree.apply_batch(undo).is_err() {
                state.poisoned = true;
            }
            return Err(error);
        }
        if fault == Some(FaultPlan::FailAfterFlush) {
            // Durable but not indexed: only a reopen (which rebuilds the indexes) may go on.
            state.poisoned = true;
            return Err(injected("indexing after the flush"));
        }

        {
            let mut index = self
                .inner
                .index
                .write()
                .unwrap_or_else(PoisonError::into_inner);
            for &start in &write.chunk_starts {
                index.add_chunk(start);
            }
            for (stream, position) in &write.records {
                index.add_record(stream, *position);
            }
            for (key, section) in &write.replies {
                index.add_reply(key, *section);
            }
            index.next_section += write.sections;
            if index.delta.records >= INDEX_RUN_EVENTS_MIN {
                let fail_before_rename = state
                    .fault
                    .take_if(|fault| *fault == FaultPlan::FailIndexRun)
                    .is_some();
                self.send_run(&mut index, write.head, fail_before_rename, None);
            }
        }
        state.head = write.head;
        let mut acknowledged = self
            .inner
            .acknowledged
            .write()
            .unwrap_or_else(PoisonError::into_inner);
        *acknowledged = Acknowledged {
            head: write.head,
            writes: acknowledged.writes + 1,
            batch: write.batch,
        };
        Ok(())
    }
    /// Makes what `sled::Db::flush` wrote durable against power loss, not only process death.
    ///
    /// On Linux, sled 0.34.7 ends a flush with `sync_file_range`, which flushes neither the
    /// disk's volatile write cache nor the file's size, and it writes large items (over a
    /// quarter of a 512 KiB segment: big records, or tree nodes holding several medium ones)
    /// to separate files under `blobs/` without any fsync (spacejam/sled#1452). So after each
    /// flush, fdatasync the log file and every blob file created since the last call, then the
    /// blob directory. Blob ids are increasing log sequence numbers, so one counter suffices.
    fn sync_files(&self, state: &mut WriterState) -> std::io::Result<()> {
        self.inner.db_file.sync_data()?;
        let blob_directory = self.inner.directory.join(SLED_BLOB_DIRECTORY);
        let entries = match std::fs::read_dir(&blob_directory) {
            Ok(entries) => entries,
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(()),
            Err(error) => return Err(error),
        };
        let mut synced_through = state.blobs_synced_through;
        for entry in entries {
            let entry = entry?;
            let id = entry
                .file_name()
                .to_str()
                .and_then(|name| name.parse::<i64>().ok());
            let Some(id) = id else { continue };
            if id <= state.blobs_synced_through {
                continue;
            }
            match File::open(entry.path()) {
                Ok(blob) => blob.sync_data()?,
                // sled removes blobs it no longer needs; a vanished one needs no syncing.
                Err(error) if error.kind() == std::io::ErrorKind::NotFound => {}
                Err(error) => return Err(error),
            }
            synced_through = synced_through.max(id);
        }
        if synced_through != state.blobs_synced_through {
            File::open(&blob_directory)?.sync_all()?;
            state.blobs_synced_through = synced_through;
        }
        Ok(())
    }

    /// Walks records `from ..= head` in order, checking each, and hands them to `visit`.
    fn scan_checked(
        &self,
        from: u64,
        max_events: usize,
        max_bytes: usize,
        mut visit: impl FnMut(&RecordView<'_>, &[u8]),
    ) -> Result<(), LogError> {
        let from = from.max(1);
        let max_events = max_events.min(READ_EVENTS_MAX);
        let max_bytes = max_bytes.min(READ_BYTES_MAX);
        let head = self.head();
        if from > head.position || max_events == 0 {
            return Ok(());
        }
        let mut reader = ChunkReader::new(self);
        let mut previous = reader.hash_before(from)?;
        let mut events = 0usize;
        let mut bytes_read = 0usize;
        let mut position = from;
        while position <= head.position {
            let (start, records) = reader.chunk_holding(position)?;
            let first = usize::try_from(position - start).unwrap_or(usize::MAX);
            for bytes in records.iter().skip(first) {
                if position > head.position {
                    break;
                }
                if events > 0 && bytes_read + bytes.len() > max_bytes {
                    return Ok(());
                }
                let view = check_at(position, &previous, bytes)?;
                visit(&view, bytes);
                previous = view.hash;
                bytes_read += bytes.len();
                events += 1;
                if events >= max_events {
                    return Ok(());
                }
                position += 1;
            }
        }
        Ok(())
    }
}

/// One part of an import: at most a batch's worth of records.
struct Part {
    write: Write,
    chunks: ValueBuilder,
    /// Stream → version after this part's records, for the streams it touches.
    versions: std::collections::HashMap<String, u64>,
    bytes: usize,
}

impl Part {
    fn new(head: Head) -> Part {
        Part {
            write: Write {
                head,
                ..Write::default()
            },
            chunks: ValueBuilder::default(),
            versions: std::collections::HashMap::new(),
            bytes: 0,
        }
    }

    fn finish(mut self) -> Write {
        self.write.add_chunks(self.chunks);
        self.write
    }
}

/// Reads records by position through the chunk index, keeping the last chunk read so that
/// neighbouring positions cost one sled get per chunk.
struct ChunkReader<'a> {
    log: &'a EventLog,
    /// The last chunk read: its first position and its records' bytes.
    cached: Option<(u64, Vec<Vec<u8>>)>,
}

impl<'a> ChunkReader<'a> {
    fn new(log: &'a EventLog) -> ChunkReader<'a> {
        ChunkReader { log, cached: None }
    }

    /// The chunk holding `position`: its first position and its records. A position that no
    /// chunk holds (a gap, or past the last chunk) is a missing record.
    fn chunk_holding(&mut self, position: u64) -> Result<(u64, &[Vec<u8>]), LogError> {
        let holds = |start: u64, count: usize| position >= start && position - start < count as u64;
        let cached_holds = self
            .cached
            .as_ref()
            .is_some_and(|(start, records)| holds(*start, records.len()));
        if !cached_holds {
            let missing = || LogError::Corrupt {
                position,
                reason: "record is missing".to_owned(),
            };
            let start = self
                .log
                .index()
                .chunk_start_for(position)
                .ok_or_else(missing)?;
            let value = self
                .log
                .inner
                .tree
                .get(keys::chunk_key(start))?
                .ok_or_else(missing)?;
            let records =
                chunk::split_chunk(&value).map_err(|(whole, reason)| LogError::Corrupt {
                    position: start + whole.len() as u64,
                    reason,
                })?;
            if !holds(start, records.len()) {
                return Err(missing());
            }
            let records = records.into_iter().map(<[u8]>::to_vec).collect();
            self.cached = Some((start, records));
        }
        match &self.cached {
            Some((start, records)) => Ok((*start, records.as_slice())),
            None => Err(LogError::Corrupt {
                position,
                reason: "record is missing".to_owned(),
            }),
        }
    }

    /// The stored bytes of the record at `position`.
    fn record(&mut self, position: u64) -> Result<Vec<u8>, LogError> {
        let (start, records) = self.chunk_holding(position)?;
        let index = usize::try_from(position - start).unwrap_or(usize::MAX);
        records.get(index).cloned().ok_or(LogError::Corrupt {
            position,
            reason: "record is missing".to_owned(),
        })
    }

    /// The stored hash of the record before `position` (zero before the first record), read
    /// from its last 32 bytes after checking its shape. Its own chain link is not checked
    /// here: that needs its predecessor too, which is `verify`'s job.
    fn hash_before(&mut self, position: u64) -> Result<Hash, LogError> {
        if position <= 1 {
            return Ok(Hash::ZERO);
        }
        let previous = position - 1;
        let bytes = self.record(previous)?;
        let view = record::decode(&bytes).map_err(|reason| LogError::Corrupt {
            position: previous,
            reason,
        })?;
        if view.position != previous {
            return Err(LogError::Corrupt {
                position: previous,
                reason: format!(
                    "record stored at {previous} says position {}",
                    view.position
                ),
            });
        }
        Ok(view.hash)
    }
}

/// Checks a record read from key `position` against its predecessor's hash.
pub(crate) fn check_at<'a>(
    position: u64,
    previous: &Hash,
    bytes: &'a [u8],
) -> Result<RecordView<'a>, LogError> {
    let view =
        record::check(previous, bytes).map_err(|reason| LogError::Corrupt { position, reason })?;
    if view.position != position {
        return Err(LogError::Corrupt {
            position,
            reason: format!(
                "record stored at {position} says position {}",
                view.position
            ),
        });
    }
    Ok(view)
}

fn injected(step: &str) -> LogError {
    LogError::Io(std::io::Error::other(format!(
        "injected fault: {step} failed"
    )))
}

/// The meta value: log format ‖ head position ‖ head hash.
pub(crate) fn encode_meta(head: &Head) -> [u8; 1 + 8 + HASH_BYTES] {
    let mut meta = [0u8; 1 + 8 + HASH_BYTES];
    meta[0] = LOG_FORMAT_VERSION;
    meta[1..9].copy_from_slice(&head.position.to_be_bytes());
    meta[9..].copy_from_slice(&head.hash.0);
    meta
}

/// The head in a meta value of format `format` (1 and 2 share the shape).
pub(crate) fn decode_meta_of(format: u8, bytes: &[u8]) -> Option<Head> {
    let (&found, rest) = bytes.split_first()?;
    if found != format {
        return None;
    }
    let (position, hash) = rest.split_at_checked(8)?;
    Some(Head {
        position: u64::from_be_bytes(position.try_into().ok()?),
        hash: Hash(hash.try_into().ok()?),
    })
}

/// The head in a format-2 meta value.
pub(crate) fn decode_meta(bytes: &[u8]) -> Option<Head> {
    decode_meta_of(LOG_FORMAT_VERSION, bytes)
}

/// sled's IO-buffer (segment) size for a new log: 8 MiB, sixteen times sled's default.
///
/// sled writes any page larger than a quarter of a segment to a file of its own under
/// `blobs/` (which each commit must then fdatasync, with the directory). A leaf holds up to 16
/// keys before it splits, so with chunks of up to 64 KiB a leaf grows to about 1 MiB and, at
/// the default 512 KiB segment, every consolidation of it became a blob: two or three more
/// device flushes per commit. At 8 MiB the threshold is 2 MiB, above any leaf of chunks.
pub(crate) const SLED_SEGMENT_BYTES: usize = 8 * 1024 * 1024;

/// The file in which sled keeps the settings a database was created with.
const SLED_CONFIG_FILE: &str = "conf";

/// Opens sled in `dir` as the log uses it.
pub(crate) fn open_sled(dir: &Path) -> Result<sled::Db, LogError> {
    // Background flushes are off: durability comes only from the flush in each commit,
    // and nothing is acknowledged before it returns. sled refuses to open a database with
    // another segment size than the one it was created with, so an existing log keeps its own.
    let segment_bytes = created_segment_bytes(dir)?.unwrap_or(SLED_SEGMENT_BYTES);
    let config = sled::Config::new()
        .path(dir)
        .flush_every_ms(None)
        .segment_size(segment_bytes);
    open_waiting_for_lock(&config)
}

/// The segment size the sled database in `dir` was created with (its `conf` file's
/// `segment_size: N` line), or `None` when there is no database yet.
fn created_segment_bytes(dir: &Path) -> Result<Option<usize>, LogError> {
    let path = dir.join(SLED_CONFIG_FILE);
    let bytes = match std::fs::read(&path) {
        Ok(bytes) => bytes,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(error) => return Err(LogError::Io(error)),
    };
    // The file ends with a binary checksum after its text lines.
    let found = String::from_utf8_lossy(&bytes)
        .lines()
        .find_map(|line| line.strip_prefix("segment_size: "))
        .and_then(|value| value.trim().parse::<usize>().ok());
    match found {
        Some(segment_bytes) => Ok(Some(segment_bytes)),
        None => Err(LogError::Io(std::io::Error::other(format!(
            "{} names no segment_size: not a sled database this log can open",
            path.display()
        )))),
    }
}

/// Opens sled, retrying for up to `OPEN_LOCK_WAIT_MS_MAX` while its file lock is held.
fn open_waiting_for_lock(config: &sled::Config) -> Result<sled::Db, LogError> {
    let started = Instant::now();
    let wait_max = Duration::from_millis(OPEN_LOCK_WAIT_MS_MAX);
    loop {
        match config.open() {
            // sled 0.34.7 reports a held lock only as this message inside an `Other` error.
            Err(sled::Error::Io(error))
                if error.to_string().contains("could not acquire lock")
                    && started.elapsed() < wait_max =>
            {
                std::thread::sleep(Duration::from_millis(10));
            }
            result => return Ok(result?),
        }
    }
}

/// Reads the meta head (refusing another format) and rebuilds the indexes: from the persisted
/// index runs where they check out against the log, then from every chunk and reply section
/// after them; checks the last record against the meta head and the record before it.
///
/// Record hashes are not recomputed here (that is `verify`'s whole-log job, and it would make
/// every start cost a sha256 per event); the shapes, positions and stream versions of the
/// records scanned are checked, since the indexes are built from them.
fn recover(tree: &sled::Tree, directory: &Path) -> Result<(Head, Index), LogError> {
    let meta = read_meta(tree)?;
    let mut index = Index::default();
    let last_run = runs::load(directory, |run| index.apply_run(run.delta, run.sections_to))?;
    if let Some((checkpoint, sections_to)) = last_run {
        if checks_out(tree, meta, &mut index, checkpoint)? {
            return finish_recovery(tree, meta, index, checkpoint.position + 1, sections_to);
        }
        // The runs do not match this log (restored from elsewhere, or damaged): rebuild
        // from the log alone, and let new runs start afresh.
        runs::remove_all(directory)?;
    }
    finish_recovery(tree, meta, Index::default(), 1, 0)
}

/// The meta head: `None` for a new log; format 1 is `NeedsMigration`.
fn read_meta(tree: &sled::Tree) -> Result<Option<Head>, LogError> {
    match tree.get(META_KEY)? {
        None => {
            if crate::migrate::holds_format1(tree)? {
                return Err(LogError::NeedsMigration {
                    reason: "the log is in format 1 (its meta record is missing)".to_owned(),
                });
            }
            Ok(None)
        }
        Some(meta) => match meta.first() {
            Some(&LOG_FORMAT_VERSION) => Ok(Some(decode_meta(&meta).ok_or_else(|| {
                LogError::Corrupt {
                    position: 0,
                    reason: format!("meta head of {} bytes is malformed", meta.len()),
                }
            })?)),
            Some(&keys::FORMAT1_VERSION) => Err(LogError::NeedsMigration {
                reason: "the log is in format 1; this version reads format 2".to_owned(),
            }),
            other => Err(LogError::Corrupt {
                position: 0,
                reason: format!("meta record has unknown log format {other:?}"),
            }),
        },
    }
}

/// Whether the indexes loaded from the runs can be used: no fingerprint is taken twice, and
/// the last run's end (`checkpoint`) is a record of this log with the hash the run names, at
/// the end of a chunk.
fn checks_out(
    tree: &sled::Tree,
    meta: Option<Head>,
    index: &mut Index,
    checkpoint: Head,
) -> Result<bool, LogError> {
    if !index.replies.finish_loading() {
        return Ok(false);
    }
    let head = meta.unwrap_or(Head::GENESIS);
    if checkpoint.position > head.position {
        return Ok(false);
    }
    if checkpoint.position > 0 {
        let Some(start) = index.chunk_start_for(checkpoint.position) else {
            return Ok(false);
        };
        let Some(value) = tree.get(keys::chunk_key(start))? else {
            return Ok(false);
        };
        let Ok(records) = chunk::split_chunk(&value) else {
            return Ok(false);
        };
        let offset = usize::try_from(checkpoint.position - start).unwrap_or(usize::MAX);
        let matches = records
            .get(offset)
            .and_then(|bytes| record::decode(bytes).ok())
            .is_some_and(|view| {
                view.position == checkpoint.position && view.hash == checkpoint.hash
            });
        // The run must end where a chunk ends: the next record starts a new chunk.
        if !matches || offset + 1 != records.len() {
            return Ok(false);
        }
    }
    Ok(true)
}

/// Indexes the chunks from position `from` and the reply sections from `sections_from` into
/// `index`, then checks the last record against the meta head.
fn finish_recovery(
    tree: &sled::Tree,
    meta: Option<Head>,
    mut index: Index,
    from: u64,
    sections_from: u64,
) -> Result<(Head, Index), LogError> {
    index.delta = Delta::starting(from, sections_from);
    index.next_section = index.next_section.max(sections_from);
    let mut expected = from;
    for entry in tree.range(keys::chunk_key(from)..=keys::chunk_key(u64::MAX)) {
        let (key, value) = entry?;
        let start = keys::parse_chunk_key(&key).ok_or_else(|| LogError::Corrupt {
            position: expected,
            reason: "malformed chunk key".to_owned(),
        })?;
        if start != expected {
            return Err(LogError::Corrupt {
                position: expected.min(start),
                reason: if start > expected {
                    "record is missing".to_owned()
                } else {
                    format!("chunk at {start} overlaps the chunk before it")
                },
            });
        }
        let records = chunk::split_chunk(&value).map_err(|(whole, reason)| LogError::Corrupt {
            position: start + whole.len() as u64,
            reason,
        })?;
        for bytes in &records {
            let view = record::decode(bytes).map_err(|reason| LogError::Corrupt {
                position: expected,
                reason,
            })?;
            if view.position != expected {
                return Err(LogError::Corrupt {
                    position: expected,
                    reason: format!(
                        "record stored at {expected} says position {}",
                        view.position
                    ),
                });
            }
            let version = index.stream_version(view.stream);
            if view.version != version + 1 {
                return Err(LogError::Corrupt {
                    position: expected,
                    reason: format!(
                        "stream {} jumps from version {version} to {}",
                        view.stream, view.version
                    ),
                });
            }
            index.add_record(view.stream, expected);
            expected += 1;
        }
        index.add_chunk(start);
    }
    let sections = keys::reply_section_key(sections_from)..=keys::reply_section_key(u64::MAX);
    for entry in tree.range(sections) {
        let (key, value) = entry?;
        let number = keys::parse_reply_section_key(&key).ok_or_else(|| LogError::Corrupt {
            position: 0,
            reason: "malformed reply section key".to_owned(),
        })?;
        let entries = chunk::split_section(&value).map_err(|reason| LogError::Corrupt {
            position: 0,
            reason: format!("reply section {number}: {reason}"),
        })?;
        for (key, _) in entries {
            index.add_reply(key, number);
        }
        index.next_section = number + 1;
    }

    let last_position = expected - 1;
    if last_position == 0 {
        // A batch of only replies can write a genesis meta head before any record exists.
        return match meta {
            None | Some(Head::GENESIS) => Ok((Head::GENESIS, index)),
            Some(head) => Err(LogError::Corrupt {
                position: 1,
                reason: format!("meta head is {head} but there are no records"),
            }),
        };
    }
    let Some(head) = meta else {
        return Err(LogError::Corrupt {
            position: last_position,
            reason: "records exist but the meta head is missing".to_owned(),
        });
    };
    if last_position != head.position {
        return Err(LogError::Corrupt {
            position: last_position.min(head.position) + 1,
            reason: format!(
                "meta head is {head} but the last record is at position {last_position}"
            ),
        });
    }
    // The last record chains onto the one before it and carries the meta head's hash.
    let record_at = |position: u64| -> Result<Vec<u8>, LogError> {
        let corrupt = |reason: String| LogError::Corrupt { position, reason };
        let start = index
            .chunk_start_for(position)
            .ok_or_else(|| corrupt("record is missing".to_owned()))?;
        let value = tree
            .get(keys::chunk_key(start))?
            .ok_or_else(|| corrupt("record is missing".to_owned()))?;
        let records = chunk::split_chunk(&value).map_err(|(_, reason)| corrupt(reason))?;
        let offset = usize::try_from(position - start).unwrap_or(usize::MAX);
        records
            .get(offset)
            .map(|bytes| bytes.to_vec())
            .ok_or_else(|| corrupt("record is missing".to_owned()))
    };
    let previous = if head.position == 1 {
        Hash::ZERO
    } else {
        let bytes = record_at(head.position - 1)?;
        record::decode(&bytes)
            .map_err(|reason| LogError::Corrupt {
                position: head.position - 1,
                reason,
            })?
            .hash
    };
    let bytes = record_at(head.position)?;
    let view = check_at(head.position, &previous, &bytes)?;
    if view.hash != head.hash {
        return Err(LogError::Corrupt {
            position: head.position,
            reason: format!(
                "meta head is {head} but the last record's hash is {}",
                view.hash
            ),
        });
    }
    Ok((head, index))
}
