//! The write-side state at start-up: the newest valid snapshot plus the events after it, or the
//! whole log when there is no usable snapshot. A snapshot only saves time; it is checked against
//! the log (position and hash) and ignored when it does not match.

use std::fs;
use std::io::{BufReader, Read, Write};
use std::path::{Path, PathBuf};

use domain::{evolve, Config, State};
use eventlog::{EventLog, Head};
use serde::{Deserialize, Serialize};
use tracing::{info, warn};

/// The snapshot file in the data directory.
pub const SNAPSHOT_FILE: &str = "writer-state.snapshot";
/// A snapshot larger than this is not read (it would not fit the memory budget anyway).
pub const SNAPSHOT_BYTES_MAX: u64 = 4 * 1024 * 1024 * 1024;
/// The first bytes of a snapshot's bincode (after the codec's format byte): the layout of the
/// state it holds. A snapshot without them (the first layout began with its position) or with
/// another layout is ignored and the whole log folded, never decoded into the wrong fields:
/// bincode is not self-describing, so a state with a field added (H-L3's file registration time,
/// the call ids) would otherwise read an old snapshot's bytes shifted.
const SNAPSHOT_LAYOUT: [u8; 8] = *b"pstate03";
/// The read buffer of a snapshot being loaded.
const SNAPSHOT_READ_BUFFER_BYTES: usize = 1 << 20;
/// Events read from the log per step while folding.
const FOLD_PAGE_EVENTS_MAX: usize = 10_000;

/// Why the state could not be built.
#[derive(Debug, thiserror::Error)]
pub enum SnapshotError {
    /// The log could not be read.
    #[error("reading the log: {0}")]
    Log(#[from] eventlog::LogError),
    /// A stored event could not be decoded.
    #[error("event at position {position} is unreadable: {reason}")]
    Event {
        /// Where.
        position: u64,
        /// Why.
        reason: String,
    },
    /// The snapshot file could not be written.
    #[error("writing the snapshot: {0}")]
    Io(#[from] std::io::Error),
}

/// The snapshot as read. Field for field the same layout as [`SnapshotToWrite`].
#[derive(Deserialize)]
struct SnapshotFile {
    layout: [u8; 8],
    position: u64,
    hash: [u8; 32],
    state: State,
}

/// The snapshot as written, borrowing the state so it is not copied.
#[derive(Serialize)]
struct SnapshotToWrite<'a> {
    layout: [u8; 8],
    position: u64,
    hash: [u8; 32],
    state: &'a State,
}

fn snapshot_path(data_dir: &Path) -> PathBuf {
    data_dir.join(SNAPSHOT_FILE)
}

/// Builds the state as of the log's head; returns it and the snapshot position it started from
/// (0 when it folded the whole log).
pub fn load_state(
    log: &EventLog,
    data_dir: &Path,
    config: Config,
) -> Result<(State, u64), SnapshotError> {
    let (mut state, from) = match read_snapshot(log, data_dir) {
        Some((state, position)) => (state, position),
        None => (State::new(config.clone()), 0),
    };
    // Settings come from the command line, not the snapshot.
    state.config = config;
    fold_tail(log, &mut state, from)?;
    Ok((state, from))
}

/// Folds the records after position `after` up to the log's head into `state` (which must be
/// the state as of `after`); returns the position folded to. The HA standby keeps its state
/// warm with it after each entry it applies.
pub(crate) fn fold_tail(
    log: &EventLog,
    state: &mut State,
    after: u64,
) -> Result<u64, SnapshotError> {
    let head = log.head().position;
    let mut next = after + 1;
    while next <= head {
        let records = log.read_from(next, FOLD_PAGE_EVENTS_MAX, usize::MAX)?;
        if records.is_empty() {
            break;
        }
        for record in records {
            let stored =
                protocol::decode_stored(&record.payload).map_err(|e| SnapshotError::Event {
                    position: record.position,
                    reason: e.to_string(),
                })?;
            evolve(state, &stored.event);
            next = record.position + 1;
        }
    }
    Ok(next - 1)
}

fn read_snapshot(log: &EventLog, data_dir: &Path) -> Option<(State, u64)> {
    let path = snapshot_path(data_dir);
    let size = fs::metadata(&path).ok()?.len();
    if size > SNAPSHOT_BYTES_MAX {
        warn!(size, "snapshot too large; folding the whole log");
        return None;
    }
    // Read through a buffer rather than whole: the file's bytes and the state decoded from
    // them would otherwise be in memory together (B6's peak).
    let mut reader =
        BufReader::with_capacity(SNAPSHOT_READ_BUFFER_BYTES, fs::File::open(&path).ok()?);
    // The codec's format byte, then the layout: checked before anything is decoded.
    let mut header = [0u8; 1 + SNAPSHOT_LAYOUT.len()];
    if reader.read_exact(&mut header).is_err() || header[1..] != SNAPSHOT_LAYOUT[..] {
        warn!("snapshot of an earlier layout; folding the whole log");
        return None;
    }
    let snapshot: SnapshotFile = match protocol::codec::decode_from_reader(
        std::io::Cursor::new(header).chain(reader),
        SNAPSHOT_BYTES_MAX,
    ) {
        Ok(snapshot) => snapshot,
        Err(codec_error) => {
            warn!(%codec_error, "snapshot unreadable; folding the whole log");
            return None;
        }
    };
    debug_assert_eq!(snapshot.layout, SNAPSHOT_LAYOUT);
    let matches = snapshot.position <= log.head().position
        && match log.read_from(snapshot.position, 1, usize::MAX) {
            Ok(records) => records
                .first()
                .is_some_and(|r| r.position == snapshot.position && r.hash.0 == snapshot.hash),
            Err(_) => false,
        };
    if !matches {
        warn!(
            position = snapshot.position,
            "snapshot does not match the log; folding the whole log"
        );
        return None;
    }
    info!(position = snapshot.position, "state loaded from snapshot");
    Some((snapshot.state, snapshot.position))
}

/// Writes the state as of `head` durably: to a temporary file, synced, then renamed over the
/// previous snapshot, so a crash leaves the old snapshot or the new one, never half of one.
pub fn save(data_dir: &Path, head: Head, state: &State) -> Result<(), SnapshotError> {
    if head.position == 0 {
        return Ok(());
    }
    let snapshot = SnapshotToWrite {
        layout: SNAPSHOT_LAYOUT,
        position: head.position,
        hash: head.hash.0,
        state,
    };
    let bytes =
        protocol::codec::encode(&snapshot).map_err(|e| std::io::Error::other(e.to_string()))?;
    let path = snapshot_path(data_dir);
    let temporary = path.with_extension("tmp");
    let mut file = fs::File::create(&temporary)?;
    file.write_all(&bytes)?;
    file.sync_all()?;
    fs::rename(&temporary, &path)?;
    if let Ok(dir) = fs::File::open(data_dir) {
        let _ = dir.sync_all();
    }
    Ok(())
}
