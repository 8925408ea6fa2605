//! Parlor's audit tools, over a stopped data directory's event log: a room's history as it stood
//! at any moment (edits and deletions with their originals), everything a user did, and the log
//! exported as JSON lines with its stored bytes and imported again bit for bit.

mod activity;
mod export;
mod history;

pub use activity::{user_activity, UserAction};
pub use export::{export, import, ExportLine};
pub use history::{
    room_history, CallEntry, MessageEntry, MessageVersion, ReportEntry, RoomHistory,
};

use eventlog::EventLog;
use protocol::StoredEvent;

/// Why an audit could not be done.
#[derive(Debug, thiserror::Error)]
pub enum AuditError {
    /// The log could not be read.
    #[error("event log: {0}")]
    Log(#[from] eventlog::LogError),
    /// A stored event could not be decoded.
    #[error("event at position {position} is unreadable: {reason}")]
    Event {
        /// Where.
        position: u64,
        /// Why.
        reason: String,
    },
    /// An export line could not be read or written.
    #[error("line {line}: {reason}")]
    Line {
        /// The 1-based line number.
        line: u64,
        /// Why.
        reason: String,
    },
    /// Writing the output failed.
    #[error("output: {0}")]
    Io(#[from] std::io::Error),
    /// The room does not exist in the log (at that time).
    #[error("no such room")]
    NoSuchRoom,
}

/// Events read per page while scanning the log.
pub const SCAN_PAGE_EVENTS_MAX: usize = 10_000;

/// Calls `visit` with every record of the log from `from`, in position order, decoded.
pub(crate) fn scan(
    log: &EventLog,
    from: u64,
    mut visit: impl FnMut(&eventlog::Record, StoredEvent) -> Result<bool, AuditError>,
) -> Result<(), AuditError> {
    let head = log.head().position;
    let mut next = from.max(1);
    while next <= head {
        let records = log.read_from(next, SCAN_PAGE_EVENTS_MAX, usize::MAX)?;
        if records.is_empty() {
            break;
        }
        for record in &records {
            let stored = decode(record)?;
            next = record.position + 1;
            if !visit(record, stored)? {
                return Ok(());
            }
        }
    }
    Ok(())
}

pub(crate) fn decode(record: &eventlog::Record) -> Result<StoredEvent, AuditError> {
    protocol::decode_stored(&record.payload).map_err(|e| AuditError::Event {
        position: record.position,
        reason: e.to_string(),
    })
}
