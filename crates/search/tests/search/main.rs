//! Integration tests of the search read model, one binary: real components only (the domain's
//! own `decide`/`evolve` as the source of events, a real tantivy index on disk).

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

/// The world and helpers.
mod support;

/// The ignored benchmark: rebuild messages/s and query latency.
mod bench;
/// Edits, deletions, the checkpoint across a restart, rebuild equality, commit cadence.
mod lifecycle;
/// Matching: word prefixes, AND, case, snippets, order, pagination, parameters.
mod matching;
/// The newest-first search that stops early, against a full scan of the log.
mod newest;
/// Who finds what: members only, history before joining, leaving, room and people names.
mod permissions;
/// Under the real projection runtime: catch-up, live, read-your-writes over the bus.
mod runner;
