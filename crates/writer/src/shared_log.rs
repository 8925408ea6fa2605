//! The writer's handle on its event log, which it can reopen. After a failed write (a full
//! disk, an I/O error) sled refuses everything until the database is opened again, so the
//! writer drops every handle and reopens the log rather than stay unavailable until restarted.

use std::path::PathBuf;
use std::sync::{Arc, RwLock};

use eventlog::{EventLog, Head, LogError};

/// A cloneable handle to the current `EventLog`; every use takes a fresh clone and drops it
/// soon, so a reopen is not held up by long-lived copies.
#[derive(Clone, Debug)]
pub(crate) struct SharedLog {
    dir: PathBuf,
    current: Arc<RwLock<Option<EventLog>>>,
}

impl SharedLog {
    pub(crate) fn new(dir: PathBuf, log: EventLog) -> SharedLog {
        SharedLog {
            dir,
            current: Arc::new(RwLock::new(Some(log))),
        }
    }

    /// The log, unless it is being reopened.
    pub(crate) fn get(&self) -> Result<EventLog, LogError> {
        let guard = self.current.read().map_err(|_| LogError::Poisoned)?;
        guard.clone().ok_or(LogError::Poisoned)
    }

    /// The acknowledged head (genesis while the log is being reopened).
    pub(crate) fn head(&self) -> Head {
        self.get().map_or(Head::GENESIS, |log| log.head())
    }

    /// Drops the current handle and opens the log again (blocking; sled may need a moment to
    /// release its lock once the last copy is gone, which `EventLog::open` waits for).
    pub(crate) fn reopen(&self) -> Result<EventLog, LogError> {
        let mut guard = self.current.write().map_err(|_| LogError::Poisoned)?;
        guard.take();
        let log = EventLog::open(&self.dir)?;
        *guard = Some(log.clone());
        Ok(log)
    }
}
