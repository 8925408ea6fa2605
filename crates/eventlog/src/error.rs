//! Error values: `LogError` for fail-stop failures, `Corruption` for what `verify` finds.
//!
//! Outcomes that happen in normal operation (a version conflict, a duplicate idempotency key, a
//! full batch) are not errors; they are `AddRejected` values.

/// A failure of a log operation. Nothing of a failed `commit` is visible afterwards.
#[derive(Debug, thiserror::Error)]
pub enum LogError {
    /// sled failed, including its own I/O errors (disk full, permission denied, a held lock).
    #[error("storage error: {0}")]
    Storage(#[from] sled::Error),
    /// An I/O error outside sled, including faults injected by `EventLog::inject_fault`.
    #[error("i/o error: {0}")]
    Io(#[from] std::io::Error),
    /// Stored bytes failed a check (length, format byte, position, hash chain, index).
    /// `position` is the first bad position, or 0 when the damage is not tied to one record.
    #[error("log corrupt at position {position}: {reason}")]
    Corrupt {
        /// First position found bad (0: not tied to a record).
        position: u64,
        /// What check failed.
        reason: String,
    },
    /// An input exceeded one of the named limits in `limits`.
    #[error("{what} is {actual}, above the limit of {limit}")]
    LimitExceeded {
        /// Which limit.
        what: &'static str,
        /// The limit.
        limit: usize,
        /// The offending size or count.
        actual: usize,
    },
    /// An input is malformed in a way no limit describes (an empty stream name, say).
    #[error("invalid argument: {0}")]
    InvalidArgument(&'static str),
    /// The batch was begun on another log, or something was written since it was begun: only
    /// one batch may be open at a time, and it must be committed before the next is begun.
    #[error("batch was begun at head {batch_head} but the log has been written since (now at {log_head})")]
    StaleBatch {
        /// The head the batch was begun at.
        batch_head: crate::Head,
        /// The log's current head.
        log_head: crate::Head,
    },
    /// Undoing a failed write failed too, so in-memory storage state can no longer be trusted.
    /// Reads up to the head still work; writes need the log to be dropped and reopened, which
    /// recovers the last flushed state.
    #[error("log refuses writes after an unrecoverable write failure; reopen it")]
    Poisoned,
    /// The directory holds a log of another format (format 1), or a migration to format 2
    /// that stopped half way: `parlor migrate` (`EventLog::migrate`) converts or finishes it.
    #[error("{reason}; stop the writer and run `parlor migrate --data-dir <data directory>`")]
    NeedsMigration {
        /// What was found.
        reason: String,
    },
    /// A record offered to `import_raw` does not chain onto the head.
    #[error("import rejected at position {position}: {reason}")]
    InvalidImport {
        /// The position the record would have taken.
        position: u64,
        /// What check failed.
        reason: String,
    },
}

/// Damage found by `EventLog::verify`: the first bad position and what was wrong there.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("log corrupt at position {position}: {reason}")]
pub struct Corruption {
    /// First position found bad (0: not tied to a record).
    pub position: u64,
    /// What check failed.
    pub reason: String,
}

impl From<Corruption> for LogError {
    fn from(corruption: Corruption) -> Self {
        LogError::Corrupt {
            position: corruption.position,
            reason: corruption.reason,
        }
    }
}
