//! Integration tests of the `protocol` crate: one test binary, one module per part of the
//! contract (protocol.md §1, §2, §4).

/// Shared ids, payload builders and proptest strategies.
mod support;

/// §1 commands: every type from a JSON example, every kind of invalid input, round trips.
mod commands;

/// §1 replies: byte-exact JSON, bincode, HTTP statuses.
mod replies;

/// §2 and §4: stored events, `RecordedEvent`, `log.read`, audit head, dev clock, notifications,
/// event headers.
mod records;

/// The optional `raw` addition to `log.read`: requests old and new, replies with and without
/// record bytes, in JSON and bincode.
mod raw;

/// Schema v0: the checked-in fixture read as today's events.
mod upcast;

/// Random and mutated bytes into every decoder: errors, never panics.
mod fuzz;

/// The internal query contract (docs/queries.md): each request byte for byte as the gateway
/// sent it before the types existed, each read back, replies, and every refusal's message.
mod queries;

/// The checked-in JSON Schemas (docs/schemas/) against the code that renders them.
mod schemas;

/// The checked-in AsyncAPI document (docs/asyncapi.yaml) against the code that renders it.
mod asyncapi;
