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

/// How long one JetStream request (a publish's ack, a stream lookup) may take before it fails.
/// A leader that waits longer than this for an append's ack steps down (the append may or may
/// not have landed; the next leader reads the stream to find out).
pub const JETSTREAM_WAIT_MAX: Duration = Duration::from_secs(5);

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
    /// Any other JetStream failure (timeouts, no quorum, a missing stream), as text.
    #[error("jetstream: {0}")]
    JetStream(String),
}

impl HaError {
    fn from_display(error: impl std::fmt::Display) -> HaError {
        HaError::JetStream(error.to_string())
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
