//! Every bound the log enforces, named with its unit last.
//!
//! Each is checked where data enters the log (adding a command, importing) or leaves it (reads),
//! and exceeding one is an error value or, for a full batch, an outcome — never a panic.

/// Commands in one batch: the group-commit bound from the architecture.
pub const BATCH_COMMANDS_MAX: usize = 4096;

/// Bytes in one batch (records, idempotency keys and replies): the group-commit bound from the
/// architecture. A single command larger than this can never be committed and is an error.
pub const BATCH_BYTES_MAX: usize = 4 * 1024 * 1024;

/// Events in one read page (`log.read` ≤ 10,000 events).
pub const READ_EVENTS_MAX: usize = 10_000;

/// Bytes of stored records in one read page; a page stops before it would exceed this.
///
/// A page always holds at least one record so that a reader can make progress; since
/// `RECORD_PAYLOAD_BYTES_MAX` is well below this, that record still fits.
pub const READ_BYTES_MAX: usize = 1024 * 1024;

/// Bytes of a stream name (UTF-8).
pub const STREAM_NAME_BYTES_MAX: usize = 256;

/// Bytes of one record's payload.
///
/// Half of `READ_BYTES_MAX`, so that one record, even base64-encoded inside a reply envelope,
/// fits in one `log.read` page and in one NATS message (1 MiB by default).
pub const RECORD_PAYLOAD_BYTES_MAX: usize = 512 * 1024;

/// Bytes of an idempotency key (a command id is 16 bytes; this leaves room for a prefix).
pub const IDEMPOTENCY_KEY_BYTES_MAX: usize = 128;

/// Bytes of a stored reply. Reserved in the batch byte budget before `make_reply` runs, so a
/// reply can never push a batch over `BATCH_BYTES_MAX`.
pub const REPLY_BYTES_MAX: usize = 64 * 1024;

/// Bytes of one stored value of log format 2 (a chunk of records or a section of replies).
///
/// A commit splits its records into chunks of at most this size, so a read by position costs
/// one sled get of at most 64 KiB, and sled keeps such values inside its 512 KiB segments
/// instead of writing each to a file of its own (it does that above a quarter segment). A
/// value is larger only when one record or reply alone is (records may reach
/// `RECORD_PAYLOAD_BYTES_MAX`): then it holds just that one.
pub const CHUNK_BYTES_MAX: usize = 64 * 1024;

/// Milliseconds `EventLog::open` keeps retrying sled's file lock. sled 0.34 releases the lock
/// from background work shortly after the last handle is dropped (spacejam/sled#1234), so a
/// reopen in the same process can briefly find it held; a lock held by another process (a
/// second writer) is still refused once this has passed.
pub const OPEN_LOCK_WAIT_MS_MAX: u64 = 3_000;

/// Events the in-memory indexes gather before they are written as an index run in the
/// background (see `runs.rs`): a reopen re-indexes at most about this many events from the
/// log, plus what came after the last run (re-indexing from chunks costs ~9 µs per event on
/// the development machine, loading a run under 1 µs). Each run holds about 25 bytes per
/// event (1.6 MiB at this size); runs are not merged.
pub const INDEX_RUN_EVENTS_MIN: u64 = 65_536;
