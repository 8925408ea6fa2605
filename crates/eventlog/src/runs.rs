//! Persisted index runs: the derived indexes written off the commit path, so that `open`
//! re-indexes only the records after the last checkpoint instead of the whole log
//! (EventStoreDB's memtable/PTable idea, simplified: runs are never merged).
//!
//! The in-memory indexes collect what each commit adds (`index::Delta`, the memtable). Every
//! `INDEX_RUN_EVENTS_MIN` events, or when `EventLog::persist_indexes` asks, the delta is taken
//! and handed to a background thread, which writes it as one immutable run file under
//! `<log>/index-runs/`: written to a temporary name, fsynced, renamed into place, the
//! directory fsynced. The rename is the checkpoint flip: a run's file name is the last
//! position it covers, and runs chain (each starts where the one before ended). On open, the
//! runs are loaded in order while they chain and check out (a sha256 over the file; the last
//! one's end position and hash must match the log's record there), and only the chunks and
//! reply sections after the last run are scanned. A run that failed to be written is retried
//! with the next one (the thread keeps it); a crash at any point loses no index entry,
//! because the log holds them all and a missing or unusable run only means a longer scan.
//!
//! ```text
//! run = magic "PARLORIX" ‖ version (1) ‖ from (u64 BE) ‖ to (u64 BE) ‖ to hash (32 bytes)
//!       ‖ sections from (u64 BE) ‖ sections to (u64 BE)
//!       ‖ chunk count (u64 BE) ‖ chunk first positions (u64 BE each)
//!       ‖ stream count (u64 BE) ‖ { name length (u16 BE) ‖ name ‖ count (u64 BE) ‖ positions }
//!       ‖ fingerprint count (u64 BE) ‖ { fingerprint (u64 BE) ‖ section (u64 BE) }
//!       ‖ collided count (u64 BE) ‖ { key length (u16 BE) ‖ key ‖ section (u64 BE) }
//!       ‖ sha256 of everything before (32 bytes)
//! ```

use std::fs::File;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::sync::mpsc;

use sha2::{Digest, Sha256};

use crate::error::LogError;
use crate::index::Delta;
use crate::record::{Hash, Head, HASH_BYTES};

/// Directory of the runs inside the log directory.
pub(crate) const RUNS_DIRECTORY: &str = "index-runs";

/// First bytes of a run file.
const RUN_MAGIC: &[u8; 8] = b"PARLORIX";

/// Version byte of the run format.
const RUN_FORMAT_VERSION: u8 = 1;

/// Suffix of a complete run file.
const RUN_SUFFIX: &str = ".run";

/// Suffix of a run being written (ignored and removed on open).
const TEMPORARY_SUFFIX: &str = ".run.tmp";

/// A run as loaded: the entries, and where it ends.
pub(crate) struct Run {
    pub(crate) delta: Delta,
    pub(crate) to: Head,
    pub(crate) sections_to: u64,
}

/// A run to write: the delta, its end, and whether to fail it on purpose (fault injection).
pub(crate) struct Job {
    pub(crate) delta: Delta,
    pub(crate) to: Head,
    pub(crate) sections_to: u64,
    pub(crate) fail_before_rename: bool,
    /// Told the outcome when someone waits for it (`persist_indexes`).
    pub(crate) done: Option<mpsc::Sender<Result<Head, String>>>,
}

fn run_path(directory: &Path, to: u64) -> PathBuf {
    directory.join(format!("{to:020}{RUN_SUFFIX}"))
}

/// Encodes a run (see the module documentation).
fn encode(delta: &Delta, to: Head, sections_to: u64) -> Vec<u8> {
    let mut bytes = Vec::with_capacity(
        128 + delta.chunk_starts.len() * 8
            + delta.records as usize * 8
            + delta.fingerprints.len() * 16,
    );
    bytes.extend_from_slice(RUN_MAGIC);
    bytes.push(RUN_FORMAT_VERSION);
    for number in [delta.from, to.position] {
        bytes.extend_from_slice(&number.to_be_bytes());
    }
    bytes.extend_from_slice(&to.hash.0);
    for number in [
        delta.sections_from,
        sections_to,
        delta.chunk_starts.len() as u64,
    ] {
        bytes.extend_from_slice(&number.to_be_bytes());
    }
    for start in &delta.chunk_starts {
        bytes.extend_from_slice(&start.to_be_bytes());
    }
    bytes.extend_from_slice(&(delta.streams.len() as u64).to_be_bytes());
    for (stream, positions) in &delta.streams {
        let length = u16::try_from(stream.len()).unwrap_or(u16::MAX);
        bytes.extend_from_slice(&length.to_be_bytes());
        bytes.extend_from_slice(stream.as_bytes());
        bytes.extend_from_slice(&(positions.len() as u64).to_be_bytes());
        for position in positions {
            bytes.extend_from_slice(&position.to_be_bytes());
        }
    }
    bytes.extend_from_slice(&(delta.fingerprints.len() as u64).to_be_bytes());
    for (fingerprint, section) in &delta.fingerprints {
        bytes.extend_from_slice(&fingerprint.to_be_bytes());
        bytes.extend_from_slice(&section.to_be_bytes());
    }
    bytes.extend_from_slice(&(delta.collided.len() as u64).to_be_bytes());
    for (key, section) in &delta.collided {
        let length = u16::try_from(key.len()).unwrap_or(u16::MAX);
        bytes.extend_from_slice(&length.to_be_bytes());
        bytes.extend_from_slice(key);
        bytes.extend_from_slice(&section.to_be_bytes());
    }
    let checksum = Sha256::digest(&bytes);
    bytes.extend_from_slice(&checksum);
    bytes
}

/// Reads fields off a run's bytes; every shortfall is `None`.
struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn take(&mut self, count: usize) -> Option<&'a [u8]> {
        let (taken, rest) = self.0.split_at_checked(count)?;
        self.0 = rest;
        Some(taken)
    }

    fn number(&mut self) -> Option<u64> {
        Some(u64::from_be_bytes(self.take(8)?.try_into().ok()?))
    }

    fn short(&mut self) -> Option<usize> {
        Some(usize::from(u16::from_be_bytes(
            self.take(2)?.try_into().ok()?,
        )))
    }

    /// A count of items at least `item_bytes` each, refused when the bytes left cannot hold
    /// them (so a damaged count cannot make us reserve absurd memory).
    fn count(&mut self, item_bytes: usize) -> Option<usize> {
        let count = usize::try_from(self.number()?).ok()?;
        (count.checked_mul(item_bytes)? <= self.0.len()).then_some(count)
    }
}

/// Decodes a run; `None` if it is damaged in any way.
fn decode(bytes: &[u8]) -> Option<Run> {
    let (body, checksum) = bytes.split_at_checked(bytes.len().checked_sub(HASH_BYTES)?)?;
    if Sha256::digest(body).as_slice() != checksum {
        return None;
    }
    let mut reader = Reader(body);
    if reader.take(RUN_MAGIC.len())? != RUN_MAGIC || reader.take(1)? != [RUN_FORMAT_VERSION] {
        return None;
    }
    let from = reader.number()?;
    let to_position = reader.number()?;
    let to_hash = Hash(reader.take(HASH_BYTES)?.try_into().ok()?);
    let sections_from = reader.number()?;
    let sections_to = reader.number()?;
    let mut delta = Delta::starting(from, sections_from);
    for _ in 0..reader.count(8)? {
        delta.chunk_starts.push(reader.number()?);
    }
    for _ in 0..reader.count(2 + 8)? {
        let length = reader.short()?;
        let stream = std::str::from_utf8(reader.take(length)?).ok()?.to_owned();
        let count = reader.count(8)?;
        let mut positions = Vec::with_capacity(count);
        for _ in 0..count {
            positions.push(reader.number()?);
        }
        delta.records += count as u64;
        delta.streams.insert(stream, positions);
    }
    for _ in 0..reader.count(16)? {
        delta
            .fingerprints
            .push((reader.number()?, reader.number()?));
    }
    for _ in 0..reader.count(2 + 8)? {
        let length = reader.short()?;
        let key = reader.take(length)?.to_vec();
        delta.collided.push((key, reader.number()?));
    }
    if !reader.0.is_empty() {
        return None;
    }
    Some(Run {
        delta,
        to: Head {
            position: to_position,
            hash: to_hash,
        },
        sections_to,
    })
}

/// Loads the runs in `log_directory` that chain from the start (each starts where the one
/// before ended) and hands each to `apply` as soon as it is read, so only one run's entries
/// are held apart from the index at a time. Stops at the first run that is damaged or does
/// not chain (later ones are unusable without it). Removes temporary files a crash left.
/// Returns where the last run applied ends (its head and next section), `None` if none was.
pub(crate) fn load(
    log_directory: &Path,
    mut apply: impl FnMut(Run),
) -> Result<Option<(Head, u64)>, LogError> {
    let directory = log_directory.join(RUNS_DIRECTORY);
    let entries = match std::fs::read_dir(&directory) {
        Ok(entries) => entries,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(error) => return Err(error.into()),
    };
    let mut names = Vec::new();
    for entry in entries {
        let name = entry?.file_name();
        let Some(name) = name.to_str() else { continue };
        if name.ends_with(TEMPORARY_SUFFIX) {
            std::fs::remove_file(directory.join(name))?;
        } else if let Some(to) = name.strip_suffix(RUN_SUFFIX) {
            if let Ok(to) = to.parse::<u64>() {
                names.push((to, name.to_owned()));
            }
        }
    }
    names.sort();
    let mut last = None;
    let mut next_from = 1u64;
    let mut next_section = 0u64;
    for (to, name) in names {
        let bytes = std::fs::read(directory.join(&name))?;
        let Some(run) = decode(&bytes) else { break };
        let chains = run.delta.from == next_from
            && run.delta.sections_from == next_section
            && run.to.position == to
            && run.to.position + 1 >= run.delta.from;
        if !chains {
            break;
        }
        next_from = run.to.position + 1;
        next_section = run.sections_to;
        last = Some((run.to, run.sections_to));
        apply(run);
    }
    Ok(last)
}

/// Removes every run (when the log no longer matches them).
pub(crate) fn remove_all(log_directory: &Path) -> Result<(), LogError> {
    match std::fs::remove_dir_all(log_directory.join(RUNS_DIRECTORY)) {
        Err(error) if error.kind() != std::io::ErrorKind::NotFound => Err(error.into()),
        _ => Ok(()),
    }
}

/// The background writer of runs: receives jobs until every sender is gone. A job that fails
/// is kept and written together with the next one, so runs always chain.
pub(crate) fn spawn_writer(
    log_directory: PathBuf,
) -> std::io::Result<(mpsc::Sender<Job>, std::thread::JoinHandle<()>)> {
    let (sender, jobs) = mpsc::channel::<Job>();
    let handle = std::thread::Builder::new()
        .name("eventlog-index-runs".to_owned())
        .spawn(move || {
            let mut carried: Option<Delta> = None;
            for job in jobs {
                let delta = match carried.take() {
                    Some(mut earlier) => {
                        earlier.extend(job.delta);
                        earlier
                    }
                    None => job.delta,
                };
                // Nothing appended since the last run (a stop right after a start): no file.
                let nothing_new = delta.from > job.to.position && !job.fail_before_rename;
                let outcome = if nothing_new {
                    Ok(())
                } else {
                    write_run(
                        &log_directory,
                        &delta,
                        job.to,
                        job.sections_to,
                        job.fail_before_rename,
                    )
                };
                if outcome.is_err() {
                    carried = Some(delta);
                }
                if let Some(done) = job.done {
                    let _ = done.send(outcome.map(|()| job.to).map_err(|error| error.to_string()));
                }
            }
        })?;
    Ok((sender, handle))
}

/// Writes one run: temporary file, fsync, rename (the checkpoint flip), directory fsync.
fn write_run(
    log_directory: &Path,
    delta: &Delta,
    to: Head,
    sections_to: u64,
    fail_before_rename: bool,
) -> std::io::Result<()> {
    let directory = log_directory.join(RUNS_DIRECTORY);
    std::fs::create_dir_all(&directory)?;
    let temporary = directory.join(format!("{:020}{TEMPORARY_SUFFIX}", to.position));
    let mut file = File::create(&temporary)?;
    file.write_all(&encode(delta, to, sections_to))?;
    file.sync_all()?;
    drop(file);
    if fail_before_rename {
        return Err(std::io::Error::other(
            "injected fault: index run written but not renamed into place",
        ));
    }
    std::fs::rename(&temporary, run_path(&directory, to.position))?;
    File::open(&directory)?.sync_all()?;
    File::open(log_directory)?.sync_all()?;
    Ok(())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn runs_round_trip_and_damage_is_refused() {
        let mut delta = Delta::starting(1, 0);
        delta.chunk_starts = vec![1, 3];
        delta.streams.insert("a".to_owned(), vec![1, 2]);
        delta.streams.insert("b".to_owned(), vec![3]);
        delta.records = 3;
        delta.fingerprints = vec![(7, 0), (9, 1)];
        delta.collided = vec![(b"key".to_vec(), 1)];
        let to = Head {
            position: 3,
            hash: Hash([5; 32]),
        };
        let bytes = encode(&delta, to, 2);
        let run = decode(&bytes).unwrap();
        assert_eq!((run.to, run.sections_to), (to, 2));
        assert_eq!(run.delta.streams, delta.streams);
        assert_eq!(run.delta.fingerprints, delta.fingerprints);
        assert_eq!(run.delta.collided, delta.collided);
        assert_eq!(run.delta.chunk_starts, delta.chunk_starts);
        for index in [0, 10, bytes.len() / 2, bytes.len() - 1] {
            let mut damaged = bytes.clone();
            damaged[index] ^= 1;
            assert!(decode(&damaged).is_none(), "byte {index}");
        }
        assert!(decode(&bytes[..bytes.len() - 1]).is_none());
    }
}
