//! What every handler shares: the bus, the clock, the token verifier, the blob store, the live
//! event hub, the configured limits and the subjects of the parts behind the gateway.

use std::sync::Arc;
use std::time::Duration;

use blobs::BlobStore;
use bus::Bus;
use clock::Clock;
use metrics_exporter_prometheus::PrometheusHandle;
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;

use crate::auth::TokenVerifier;
use crate::limits::{CommandRateLimiter, DiskReserve, UploadQuota, UploadSlots};
use bus::EventHub;

/// The state of one gateway, behind an `Arc` in every handler.
#[derive(Debug)]
pub(crate) struct AppState {
    /// The bus shared with the writer and the projectors.
    pub(crate) bus: Bus,
    /// The clock (the development clock with `--dev-clock`), for presence heartbeats.
    pub(crate) clock: Clock,
    /// Subject names under the configured prefix.
    pub(crate) subjects: Subjects,
    /// Checks bearer tokens.
    pub(crate) verifier: TokenVerifier,
    /// File bytes and thumbnails.
    pub(crate) blobs: Arc<dyn BlobStore>,
    /// Live events, decoded once, for every SSE client.
    pub(crate) events: EventHub,
    /// Limits and timeouts from the configuration.
    pub(crate) limits: Limits,
    /// The open SSE streams, in all and per user (H-L4).
    pub(crate) sse_slots: crate::events::StreamSlots,
    /// One permit per thumbnail being decoded (image decoding is memory- and CPU-heavy).
    pub(crate) thumbnail_permits: Arc<Semaphore>,
    /// Cancelled when the gateway shuts down, to end the never-ending SSE streams.
    pub(crate) shutdown: CancellationToken,
    /// The Prometheus recorder's handle, when this process's recorder is ours.
    pub(crate) metrics: Option<PrometheusHandle>,
    /// Commands per user token (H-L2).
    pub(crate) command_rate: CommandRateLimiter,
    /// Uploads running per user (H-L3).
    pub(crate) upload_slots: Arc<UploadSlots>,
    /// Bytes uploaded per user today (H-L3).
    pub(crate) upload_quota: Arc<UploadQuota>,
    /// Free space kept for the event log (H-L3).
    pub(crate) disk_reserve: DiskReserve,
}

/// The shared state as handlers receive it.
pub(crate) type SharedState = Arc<AppState>;

/// Limits and timeouts (see [`crate::GatewayConfig`]).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Limits {
    /// The largest upload, in bytes.
    pub(crate) upload_bytes_max: u64,
    /// How long a query may wait for its projector.
    pub(crate) query_timeout: Duration,
    /// How long a command may wait for the writer.
    pub(crate) command_timeout: Duration,
    /// How long an SSE stream may stay unable to hand an event to a slow client.
    pub(crate) sse_send_wait_max: Duration,
    /// The most SSE streams of one user open at once (H-L4).
    pub(crate) sse_streams_per_user_max: usize,
    /// How often an idle SSE stream sends a comment line.
    pub(crate) sse_keep_alive_interval: Duration,
    /// The longest a request body may go without sending bytes (H-L5).
    pub(crate) body_progress_timeout: Duration,
}

/// The subjects of the parts behind the gateway, under one prefix (`parlor` by default).
#[derive(Debug, Clone)]
pub(crate) struct Subjects {
    prefix: String,
}

impl Subjects {
    /// The subjects under `prefix`.
    pub(crate) fn new(prefix: &str) -> Subjects {
        Subjects {
            prefix: prefix.to_owned(),
        }
    }

    /// The prefix itself.
    pub(crate) fn prefix(&self) -> &str {
        &self.prefix
    }

    /// `<prefix>.cmd.<type>`.
    pub(crate) fn command(&self, command_type: &str) -> String {
        format!("{}.cmd.{command_type}", self.prefix)
    }

    /// `<prefix>.query.<model>`.
    pub(crate) fn query(&self, model: &str) -> String {
        format!("{}.query.{model}", self.prefix)
    }

    /// `<prefix>.evt.>`: every published event.
    pub(crate) fn events(&self) -> String {
        format!("{}.evt.>", self.prefix)
    }

    /// `<prefix>.writer.ping`.
    pub(crate) fn writer_ping(&self) -> String {
        format!("{}.writer.ping", self.prefix)
    }

    /// `<prefix>.presence.heartbeat`.
    pub(crate) fn presence_heartbeat(&self) -> String {
        format!("{}.presence.heartbeat", self.prefix)
    }
}
