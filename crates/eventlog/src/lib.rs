//! Parlor's append-only event log on sled: atomic group-commit batches over many streams,
//! gapless global positions, per-stream versions, idempotency keys and a sha256 hash chain.
//!
//! The crate knows bytes, not domain types: a record is a stream name and an opaque payload.
//!
//! # Use
//! One appender (the writer) builds a [`Batch`] with [`EventLog::batch`], adds each command
//! with [`Batch::add_command`] (which checks expected versions and idempotency keys and
//! assigns positions and versions), then calls [`EventLog::commit`]. An appender that checks a
//! command's idempotency key before deciding it uses [`Batch::committed_reply_for`], which
//! spares `add_command` a second lookup of the same key. To decide the next batch while one is
//! being committed, the appender continues it with [`Batch::continuation`] before handing it
//! to `commit`: the continuation starts at its tip, sees its stream versions and keys, and
//! commits only right after it. Readers share the same
//! [`EventLog`] (it is `Clone + Send + Sync`) and page through it with
//! [`EventLog::read_from`] and [`EventLog::read_stream`] while commits go on. A directory of
//! log format 1 is refused by [`EventLog::open`] ([`LogError::NeedsMigration`]) and converted
//! in place by [`EventLog::migrate`] (`parlor migrate`).
//!
//! # Durability
//! `commit` writes the whole batch with one `sled::Tree::apply_batch` — which sled recovers
//! atomically after a crash — and then calls `sled::Db::flush`; it returns `Ok` only after the
//! flush has returned. Background flushing is switched off: the commit's flush is the only
//! one. On Linux, sled 0.34.7's flush ends in `sync_file_range`, which survives a process
//! crash but not a power loss (it flushes neither the disk's write cache nor the file size),
//! and it never fsyncs the separate files it writes for large items (spacejam/sled#1452). So
//! each commit also fdatasyncs sled's log file and any new blob files before returning.
//!
//! sled applies a batch key by key in memory, so a write in progress is partly visible to
//! plain sled reads. The log hides that: reads stop at the acknowledged head, which moves only
//! after the flush returned, and the derived indexes that lead to chunks and replies
//! (`stream_version`, `reply_for`, reads by stream) are extended only after the flush too. No
//! reader can observe an event a crash could still take back.
//!
//! If the write or the flush fails, the batch is undone in memory and the head does not move;
//! the log stays usable (`inject_fault` lets tests force this). If even the undo fails, the
//! log refuses writes with [`LogError::Poisoned`] until it is reopened. After a crash, a batch
//! that was never acknowledged may or may not be present, but always entirely or not at all.
//!
//! # Concurrency
//! [`EventLog`] is a cheap handle (`Clone + Send + Sync`). Reads take `&self` and run while a
//! commit flushes. There must be one appender: a [`Batch`] is bound to the state of the log
//! when it was begun, and committing or adding to it after any other write fails with
//! [`LogError::StaleBatch`]. A continuation is bound to the state its previous batch's commit
//! leaves: if that commit fails (or is never made), the continuation is stale and commits
//! nothing, so a batch decided against state that included a lost batch can never be written.
//! A [`Batch`] owns its data (`Send + 'static`), so the appender can move it to a blocking
//! thread for the commit.
//!
//! # Storage layout (log format 2)
//! One sled tree, [`keys::TREE`], with one-byte key prefixes (the catalogue is in [`keys`]):
//!
//! | key | value |
//! |---|---|
//! | `c` ‖ first position (u64 BE) | a chunk: consecutive records, each length-prefixed |
//! | `p` ‖ section number (u64 BE) | a reply section: idempotency keys and their replies |
//! | `m` | log format (2) ‖ head position (u64 BE) ‖ head hash |
//!
//! A commit writes its records into chunks of at most [`limits::CHUNK_BYTES_MAX`] (one record
//! alone may be larger), its replies into sections of the same bound, and the meta record —
//! a handful of keys per batch instead of three per event. Nothing is written per event
//! besides the record itself: the stream index (stream → version → position), the chunk index
//! (position → chunk) and the idempotency index (key → section, by a 64-bit fingerprint) are
//! derived, held in memory, and rebuilt by `open`: from the index runs a background thread
//! writes off the commit path every [`limits::INDEX_RUN_EVENTS_MIN`] events (or on
//! [`EventLog::persist_indexes`]; files under `index-runs/` in the log directory, see
//! `runs.rs`), then from a scan of the chunks and sections after the last run (shapes,
//! positions and versions are checked on the way; hashes are `verify`'s job). A missing,
//! failed or mismatched run only lengthens that scan: the log holds every entry.
//!
//! Positions start at 1 and come from the writer's own counter, stored in the meta record in
//! the same atomic batch as the records (sled's `generate_id` is not contiguous). Stream
//! versions start at 1 per stream.
//!
//! # Record format
//! ```text
//! format version (1 byte) ‖ position (u64 BE) ‖ stream length (u16 BE) ‖ stream (UTF-8)
//!   ‖ version (u64 BE) ‖ payload length (u32 BE) ‖ payload ‖ hash (32 bytes)
//! hash = sha256(previous record's hash ‖ every byte before the hash)
//! ```
//! The first record's previous hash is 32 zero bytes; hashes display as 64 lowercase hex
//! characters, and a head as `position:hash`. Records are checked (length, format byte,
//! position, hash against their predecessor) right before they are written and whenever they
//! are read back; bad stored bytes are a [`LogError::Corrupt`], never a panic.
//! [`EventLog::verify`] recomputes the whole chain through a [`ChainVerifier`], which also checks
//! records read from anywhere else (a running writer's `log.read`); with an anchored head it also detects a
//! truncated tail, which a chain alone cannot.
//!
//! # Limits
//! Every bound is a named constant in [`limits`] and is enforced with error values.

mod batch;
mod chunk;
mod error;
mod index;
pub mod keys;
pub mod limits;
mod log;
mod migrate;
mod record;
mod replica;
mod runs;
#[cfg(feature = "tamper")]
pub mod tamper;
mod verify;

pub use batch::{AddRejected, Appended, Batch, ExpectedVersion, NewRecord};
pub use error::{Corruption, LogError};
pub use log::{Committed, EventLog, FaultPlan};
pub use migrate::Migration;
pub use record::{
    record_hash, Hash, Head, ParseHeadError, Record, HASH_BYTES, RECORD_FORMAT_VERSION,
    RECORD_OVERHEAD_BYTES,
};
pub use replica::ReplicatedBatch;
pub use verify::{ChainVerifier, VerifyReport};

#[cfg(test)]
mod tests {
    /// The writer keeps the log in an `Arc` and serves reads from other tasks while a commit
    /// runs on a blocking thread; these bounds make that possible.
    #[test]
    fn handles_can_cross_threads() {
        fn assert_send_sync<T: Send + Sync + 'static>() {}
        assert_send_sync::<crate::EventLog>();
        assert_send_sync::<crate::Batch>();
        assert_send_sync::<crate::LogError>();
    }
}
