//! JetStream for the HA writer (`parlor writer --ha`): a leader lease in a key-value bucket
//! ([`Lease`]) and the replicated write-ahead log ([`Wal`]), a stream with one producer fenced by
//! `Nats-Expected-Last-Sequence`. No async-nats type leaves this module.
//!
//! Both need a NATS bus (the in-process bus has no JetStream: [`HaError::Unsupported`]) and a
//! nats-server of at least 2.10 (async-nats' key-value refuses 2.9). What they rely on from the
//! servers — R3 file storage, `sync_interval: always` — is in docs/dependencies.md.

mod lease;
mod wal;

use std::time::Duration;

pub use lease::{Held, Lease, LeaseOptions};
pub use wal::{Wal, WalEntry, WalFollower, WalOptions};

use crate::{Bus, Inner};

/// How long one JetStream request that changes something (an append's ack, a lease write, a
/// stream lookup at start) may take before it fails. A leader that waits longer than this for an
/// append's ack steps down (the append may or may not have landed; the next leader reads the
/// stream to find out).
pub const JETSTREAM_WAIT_MAX: Duration = Duration::from_secs(5);

/// How long an idempotent read of the write-ahead log ([`Wal::last_sequence`], [`Wal::get`])
/// may take before it fails with [`HaError::TimedOut`]. While the servers that survive a dead
/// one still believe it leads the stream (nats-server's own election takes 4–9 s), they drop
/// such a read instead of refusing it: the reader learns only by timing out. A read can be
/// asked again at no cost, so a short bound lets a new leader look again every fraction of a
/// second instead of losing 5 s per look; a stream leader that is there answers it from memory
/// in milliseconds, so half a second leaves room for a loaded machine.
pub const JETSTREAM_READ_WAIT_MAX: Duration = Duration::from_millis(500);

/// Why a lease or write-ahead-log operation failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HaError {
    /// The bus is the in-process one, which has no JetStream.
    #[error("the HA writer needs a NATS bus with JetStream")]
    Unsupported,
    /// An append was refused because the stream's last sequence is not the one expected:
    /// another leader has appended since (this one is deposed).
    #[error("fenced: the write-ahead log's last sequence is not {expected_last}")]
    Fenced {
        /// The last sequence the append expected.
        expected_last: u64,
    },
    /// Nobody took the request: the stream (or the bucket) has no leader server now, as during
    /// an election. Nothing was stored; the same request may be sent again.
    #[error("jetstream: no responders (no leader server for the stream now)")]
    NoResponders,
    /// No answer in time: the servers may be electing a leader. A read may be asked again; an
    /// append may or may not have landed (read the stream's last sequence to find out).
    #[error("jetstream: no answer in time (the servers may be electing a leader)")]
    TimedOut,
    /// Any other JetStream failure (no quorum, a missing stream, a refusal), as text.
    #[error("jetstream: {0}")]
    JetStream(String),
}

impl HaError {
    fn from_display(error: impl std::fmt::Display) -> HaError {
        HaError::JetStream(error.to_string())
    }

    /// A JetStream API request's failure, keeping the two kinds a caller may wait out.
    fn from_request(error: async_nats::jetstream::context::RequestError) -> HaError {
        use async_nats::jetstream::context::RequestErrorKind;
        match error.kind() {
            RequestErrorKind::NoResponders => HaError::NoResponders,
            RequestErrorKind::TimedOut => HaError::TimedOut,
            _ => HaError::from_display(error),
        }
    }
}

/// The JetStream context of a NATS bus.
fn context(bus: &Bus) -> Result<async_nats::jetstream::Context, HaError> {
    match &bus.inner {
        Inner::Nats(nats) => {
            let mut context = async_nats::jetstream::new(nats.client().clone());
            context.set_timeout(JETSTREAM_WAIT_MAX);
            Ok(context)
        }
        Inner::InProcess(_) => Err(HaError::Unsupported),
    }
}
