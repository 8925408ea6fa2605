//! Integration tests of the read side, one binary: real components only (the in-process bus
//! and a real nats-server, sled stores, the domain's own `decide`/`evolve` as the source of
//! events, served by a small stand-in for the writer's `log.read`; one test runs the real writer).

#![allow(clippy::unwrap_used, clippy::expect_used)]

/// The world, the log server and helpers.
mod support;
/// The random workload.
mod workload;

/// The runtime: catch-up, live, gaps, queries, presence, over NATS and in process.
mod runtime;

/// The files model.
mod files;
/// The moderation model.
mod moderation;
/// The notifications model, with a dev clock.
mod notifications;
/// The rooms model.
mod rooms;
/// The timeline model.
mod timeline;

/// Rebuild equality, convergence, kill and resume, for every model.
mod rebuild;

/// Live rebuilds while the model serves; recovery from a crash mid-rebuild.
mod live_rebuild;
