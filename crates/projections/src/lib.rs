//! Parlor's read side: the projection runtime and the read models built on it.
//!
//! - [`runtime`]: the [`Projector`] trait every read model implements, the [`Runner`] that keeps
//!   one level with the log (catch-up through `log.read`, then live `evt.>`, gaps closed) and
//!   serves its queries, and [`rebuild`]/[`replay`] to build a model from the log alone.
//! - [`store`]: the fjall store a model owns, with its checkpoint in the same atomic write.
//! - [`query`]: the projectors' side of the internal query contract (docs/queries.md), whose
//!   request, operation and reply types and limits live in `protocol::query`.
//! - [`presence`]: the volatile table of heartbeats (R-A1) and the small service that fills it,
//!   wired beside the rooms model's runner ([`Runner::with_presence`]).
//! - Read models, one module each: [`rooms`], [`timeline`], [`files`], [`moderation`],
//!   [`notifications`].
//!
//! This crate reads the log and never writes it.

pub mod envelope;
pub mod error;
pub mod files;
pub mod live_rebuild;
mod membership;
pub mod moderation;
pub mod notifications;
pub mod presence;
pub mod query;
pub mod rooms;
pub mod runtime;
mod sorted_runs;
pub mod store;
pub mod swap;
pub mod text;
pub mod timeline;

pub use envelope::EventEnvelope;
pub use error::{ProjectionError, QueryError};
pub use files::Files;
pub use moderation::Moderation;
pub use notifications::Notifications;
pub use presence::Presence;
pub use query::QueryRequest;
pub use rooms::Rooms;
pub use runtime::{
    rebuild, replay, replay_read_ahead, run, unapplied, LiveRebuild, OpenFor, OpenModel, Outgoing,
    Projector, RunOptions, Runner, Shared,
};
pub use store::{store_path, Dump, Store};
pub use timeline::Timeline;
