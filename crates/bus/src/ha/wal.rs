//! The replicated write-ahead log: one JetStream stream (R3, file storage) with one subject and
//! one producer, the leader. Each append names the sequence it expects to be the stream's last
//! (`Nats-Expected-Last-Sequence`), so an append by a leader that another has replaced since
//! fails with [`HaError::Fenced`] instead of forking the log. Entries are opaque bytes here (the
//! writer puts an encoded `eventlog::ReplicatedBatch` in each).

use async_nats::jetstream::{self, stream};
use bytes::Bytes;
use futures::{FutureExt, StreamExt};

use super::{context, HaError, JETSTREAM_READ_WAIT_MAX};
use crate::Bus;

/// Where the log lives.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WalOptions {
    /// The stream's name (`PARLOR_WAL`).
    pub stream: String,
    /// Its one subject (`parlor.wal`).
    pub subject: String,
    /// Where the servers announce each append, headers only (`parlor.wal_appended`): what
    /// wakes a follower, without sending it every entry twice.
    pub appended_subject: String,
    /// Replicas (3 in a three-server cluster; 1 on a single server).
    pub replicas: usize,
    /// The largest entry accepted (the servers' `max_payload` must allow it too).
    pub entry_bytes_max: i32,
}

/// The default bound on one entry: a whole group-commit batch (at most 4 MiB of records, plus
/// replies and framing) fits, below the 8 MiB `max_payload` the HA servers are run with.
pub const WAL_ENTRY_BYTES_MAX: i32 = 8 * 1024 * 1024 - 64 * 1024;

impl WalOptions {
    /// The log of writers under `subject_prefix`: stream `<PREFIX>_WAL`, subject
    /// `<prefix>.wal`, three replicas.
    pub fn new(subject_prefix: &str) -> WalOptions {
        WalOptions {
            stream: format!("{}_WAL", subject_prefix.replace('.', "_").to_uppercase()),
            subject: format!("{subject_prefix}.wal"),
            appended_subject: format!("{subject_prefix}.wal_appended"),
            replicas: 3,
            entry_bytes_max: WAL_ENTRY_BYTES_MAX,
        }
    }
}

/// A handle on the stream.
#[derive(Clone, Debug)]
pub struct Wal {
    context: jetstream::Context,
    stream: stream::Stream,
    options: WalOptions,
}

/// One entry read back: its stream sequence and bytes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WalEntry {
    /// The entry's sequence in the stream (from 1, gapless: nothing is ever deleted from it).
    pub sequence: u64,
    /// What was appended.
    pub payload: Bytes,
}

impl Wal {
    /// Creates the stream if it does not exist (or uses the existing one) on a NATS bus.
    pub async fn open(bus: &Bus, options: WalOptions) -> Result<Wal, HaError> {
        let context = context(bus)?;
        let config = stream::Config {
            name: options.stream.clone(),
            description: Some("the Parlor writer's replicated write-ahead log".to_owned()),
            subjects: vec![options.subject.clone()],
            num_replicas: options.replicas,
            storage: stream::StorageType::File,
            max_message_size: options.entry_bytes_max,
            // Limits retention with no limit set: nothing is removed (standbys may read from
            // any sequence; trimming is the operator's, see docs/operations.md).
            retention: stream::RetentionPolicy::Limits,
            discard: stream::DiscardPolicy::New,
            republish: Some(stream::Republish {
                source: options.subject.clone(),
                destination: options.appended_subject.clone(),
                headers_only: true,
            }),
            ..stream::Config::default()
        };
        let stream = context
            .get_or_create_stream(config)
            .await
            .map_err(HaError::from_display)?;
        Ok(Wal {
            context,
            stream,
            options,
        })
    }

    /// The stream's last sequence now (0 when it is empty), as its leader server says; waits at
    /// most [`JETSTREAM_READ_WAIT_MAX`].
    pub async fn last_sequence(&self) -> Result<u64, HaError> {
        let info = tokio::time::timeout(JETSTREAM_READ_WAIT_MAX, self.stream.get_info())
            .await
            .map_err(|_| HaError::TimedOut)?
            .map_err(HaError::from_request)?;
        Ok(info.state.last_sequence)
    }

    /// Appends `payload` if the stream's last sequence is `expected_last`, and waits (at most
    /// [`super::JETSTREAM_WAIT_MAX`]) for the stream's ack, which JetStream gives once a
    /// majority of the replicas stored it. Returns the entry's sequence. `Fenced` when the
    /// stream has moved on; `NoResponders` when no server took it (nothing was stored); any
    /// other error leaves it unknown whether the entry landed.
    pub async fn append(&self, expected_last: u64, payload: Bytes) -> Result<u64, HaError> {
        let mut headers = async_nats::HeaderMap::new();
        headers.insert(
            async_nats::header::NATS_EXPECTED_LAST_SEQUENCE,
            expected_last.to_string().as_str(),
        );
        let publish_error = |error: jetstream::context::PublishError| match error.kind() {
            jetstream::context::PublishErrorKind::WrongLastSequence => {
                HaError::Fenced { expected_last }
            }
            // async-nats reports the "no responders" status of a publish this way: no server
            // listens on the subject, because the stream has no leader now.
            jetstream::context::PublishErrorKind::StreamNotFound => HaError::NoResponders,
            jetstream::context::PublishErrorKind::TimedOut => HaError::TimedOut,
            _ => HaError::from_display(error),
        };
        let ack = self
            .context
            .publish_with_headers(self.options.subject.clone(), headers, payload)
            .await
            .map_err(publish_error)?
            .await
            .map_err(publish_error)?;
        Ok(ack.sequence)
    }

    /// The entry at `sequence`, `None` if there is none; waits at most
    /// [`JETSTREAM_READ_WAIT_MAX`].
    pub async fn get(&self, sequence: u64) -> Result<Option<WalEntry>, HaError> {
        let got = tokio::time::timeout(
            JETSTREAM_READ_WAIT_MAX,
            self.stream.get_raw_message(sequence),
        )
        .await
        .map_err(|_| HaError::TimedOut)?;
        match got {
            Ok(message) => Ok(Some(WalEntry {
                sequence: message.sequence,
                payload: message.payload,
            })),
            Err(error) if error.kind() == stream::RawMessageErrorKind::NoMessageFound => Ok(None),
            Err(error) => Err(HaError::from_display(error)),
        }
    }

    /// Reads entries in order from `from_sequence` on, live: the follower waits for entries
    /// appended later. See [`WalFollower`].
    pub async fn follow(&self, from_sequence: u64) -> Result<WalFollower, HaError> {
        let appended = self
            .context
            .client()
            .subscribe(self.options.appended_subject.clone())
            .await
            .map_err(HaError::from_display)?;
        Ok(WalFollower {
            wal: self.clone(),
            appended,
            next_sequence: from_sequence.max(1),
        })
    }

    /// The stream's settings.
    pub fn options(&self) -> &WalOptions {
        &self.options
    }
}

/// Entries of the log in order; see [`Wal::follow`].
///
/// Each entry is fetched by its sequence from the stream's leader (`STREAM.MSG.GET`), so the
/// follower never skips or repeats one and needs no consumer on the servers: a consumer lives
/// on one server, and a follower whose consumer's server stopped waited for heartbeats to
/// notice (tested: more than 30 s). The servers' headers-only announcement of each append
/// ([`WalOptions::appended_subject`]) only wakes it; without a wake-up it looks again every
/// [`FOLLOW_POLL`].
pub struct WalFollower {
    wal: Wal,
    appended: async_nats::Subscriber,
    next_sequence: u64,
}

/// How long a follower at the end of the log waits before looking again when nothing woke it
/// (the wake-up is core NATS, at most once).
pub const FOLLOW_POLL: std::time::Duration = std::time::Duration::from_millis(250);

impl std::fmt::Debug for WalFollower {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter
            .debug_struct("WalFollower")
            .field("next_sequence", &self.next_sequence)
            .finish()
    }
}

impl WalFollower {
    /// The next entry, waiting for it; an error when the stream cannot be read now (no
    /// leader for a moment), after which the caller may call again. `None` never happens
    /// while the connection lives; it is kept for the stream-like shape of callers.
    pub async fn next(&mut self) -> Option<Result<WalEntry, HaError>> {
        loop {
            // Forget earlier wake-ups first: the look below covers every append before it,
            // and one that comes after it wakes the wait.
            while let Some(Some(_)) = self.appended.next().now_or_never() {}
            match self.wal.get(self.next_sequence).await {
                Ok(Some(entry)) => {
                    if entry.sequence != self.next_sequence {
                        return Some(Err(HaError::JetStream(format!(
                            "write-ahead log answered sequence {} for {}",
                            entry.sequence, self.next_sequence
                        ))));
                    }
                    self.next_sequence += 1;
                    return Some(Ok(entry));
                }
                Ok(None) => {
                    let _ = tokio::time::timeout(FOLLOW_POLL, self.appended.next()).await;
                }
                Err(error) => return Some(Err(error)),
            }
        }
    }

    /// The sequence the next entry will have.
    pub fn next_sequence(&self) -> u64 {
        self.next_sequence
    }
}
