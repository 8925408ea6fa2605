//! Parlor's search read model (R-Q1): a tantivy index of message bodies, and in memory the
//! rooms, their members and the users' display names, answering `search` (docs/queries.md)
//! with the caller's matching rooms and messages, newest first, with `<mark>` snippets.
//!
//! - [`SearchProjector`]: the [`projections::Projector`] named `search`, its index under
//!   `<data_dir>/projections/search/`, its checkpoint in the payload of the index's own
//!   commits (so index and checkpoint never disagree), committed every
//!   [`COMMIT_INTERVAL_LIVE`] while events come or rarely while rebuilding; what it applied but
//!   has not committed is searched in memory beside the index (`recent`), so a message is found
//!   as soon as it is applied.
//! - [`text`]: the one definition of a word, the prefix tokenizer of the index, and snippets.
//! - [`schema`]: the index's fields and documents.
//! - [`model`]: rooms, members and display names, kept in memory and persisted in the index.
//!
//! - `newest`: the newest matching messages, found newest first so a query stops early.
//! - `recent`: what was applied but not committed, searched in memory with the same words.
//!
//! Membership is never baked into message documents: messages are filtered at query time by the
//! caller's rooms now, so a new member finds the room's whole history (R-R4) and a member who
//! left finds nothing of it any more.

pub mod model;
mod newest;
pub mod projector;
mod query;
mod recent;
pub mod schema;
pub mod text;

pub use projector::{
    SearchOptions, SearchProjector, BULK_BATCH_EVENTS_MIN, COMMITTER_TICK, COMMIT_INTERVAL_BULK,
    COMMIT_INTERVAL_LIVE, COMMIT_INTERVAL_REBUILD, NAME, PENDING_MESSAGES_MAX,
    WRITER_HEAP_BYTES_LIVE, WRITER_HEAP_BYTES_REBUILD,
};
pub use query::{QUERY_BYTES_MAX, QUERY_WORDS_MAX, SEARCH_PAGE_ITEMS_DEFAULT};
