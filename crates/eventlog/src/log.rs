//! `EventLog`: opening and recovering the log, committing batches, reads, export and import.

use std::collections::HashMap;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, RwLock};
use std::time::{Duration, Instant};

use crate::batch::{self, Batch};
use crate::error::LogError;
use crate::keys::{self, META_KEY, VALUE_FORMAT_VERSION};
use crate::limits::{
    BATCH_BYTES_MAX, BATCH_COMMANDS_MAX, OPEN_LOCK_WAIT_MS_MAX, READ_BYTES_MAX, READ_EVENTS_MAX,
    STREAM_CACHE_ENTRIES_MAX,
};
use crate::record::{self, Hash, Head, Record, RecordView, HASH_BYTES};

/// sled 0.34.7's log file inside the log directory.
const SLED_LOG_FILE: &str = "db";

/// sled 0.34.7's directory of large items inside the log directory.
const SLED_BLOB_DIRECTORY: &str = "blobs";

/// Source of per-open identities, so a batch begun on one `EventLog` cannot be committed on
/// another that happens to be at the same head.
static NEXT_LOG_ID: AtomicU64 = AtomicU64::new(1);

/// A fault to inject into the next write, for tests of failure handling (disk full and the
/// like). See `EventLog::inject_fault`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FaultPlan {
    /// The next write fails before anything reaches sled.
    FailBeforeWrite,
    /// The next write reaches sled's memory but its flush fails, so the write must be undone.
    FailFlush,
}

/// The outcome of a successful `commit`: everything in it is durable.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Committed {
    /// The log's head after the batch.
    pub head: Head,
    /// Commands in the batch.
    pub commands: usize,
    /// Records appended (positions `head.position - records + 1 ..= head.position`).
    pub records: u64,
}

/// The append-only log. Cheap to clone (a handle to shared state), `Send + Sync`.
///
/// Reads take `&self` and may run on any thread while a commit is in progress; they never see
/// past the acknowledged head, so they never return a record that is not yet durable.
///
/// Writes (`commit`, `import_raw`) are serialized by an internal lock, but the log is designed
/// for exactly one appender: a batch is built against the head at the time it was begun, and
/// a second concurrent appender would just see its batches rejected as stale.
#[derive(Clone, Debug)]
pub struct EventLog {
    pub(crate) inner: Arc<Inner>,
}

#[derive(Debug)]
pub(crate) struct Inner {
    id: u64,
    db: sled::Db,
    /// Where sled keeps its files, for `sync_files`.
    directory: PathBuf,
    /// sled's log file, opened by us too so each commit can fsync it (see `sync_files`).
    db_file: File,
    pub(crate) tree: sled::Tree,
    /// The appender's state. Held for the whole of a write (apply and flush), and by the lookups
    /// the appender makes (`stream_version`, `reply_for`), so those never observe a write that
    /// is half applied or not yet flushed.
    writer: Mutex<WriterState>,
    /// Copy of the acknowledged head for readers, updated only after a flush returned, so reads
    /// do not wait for a flush in progress.
    acknowledged: RwLock<Acknowledged>,
}

/// The acknowledged head and how many writes have been acknowledged since open. The count
/// tells batches apart even when a write did not move the head (a batch of replies only).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Acknowledged {
    pub(crate) head: Head,
    pub(crate) writes: u64,
}

#[derive(Debug)]
pub(crate) struct WriterState {
    pub(crate) head: Head,
    /// Committed stream versions; only ever updated after a successful flush, so a failed
    /// commit cannot leave it ahead of storage.
    versions: HashMap<String, u64>,
    fault: Option<FaultPlan>,
    poisoned: bool,
    /// Largest blob file id already fsynced (see `sync_files`); -1 before the first.
    blobs_synced_through: i64,
}

/// One write: entries to insert, the head they lead to, and the stream versions they set.
struct Write {
    entries: Vec<(Vec<u8>, Vec<u8>)>,
    head: Head,
    versions: HashMap<String, u64>,
}

impl EventLog {
    /// Opens (creating if needed) the log in `dir` and recovers its head from the meta record,
    /// checking that the last record exists, matches the meta head and chains onto the record
    /// before it. Another process holding the log open makes this fail (sled's file lock).
    pub fn open(dir: &Path) -> Result<EventLog, LogError> {
        // Background flushes are off: durability comes only from the flush in each commit,
        // and nothing is acknowledged before it returns.
        let config = sled::Config::new().path(dir).flush_every_ms(None);
        let db = open_waiting_for_lock(&config)?;
        let tree = db.open_tree(keys::TREE)?;
        let head = recover_head(&tree)?;
        let log = EventLog {
            inner: Arc::new(Inner {
                id: NEXT_LOG_ID.fetch_add(1, Ordering::Relaxed),
                db_file: File::open(dir.join(SLED_LOG_FILE))?,
                directory: dir.to_path_buf(),
                db,
                tree,
                writer: Mutex::new(WriterState {
                    head,
                    versions: HashMap::new(),
                    fault: None,
                    poisoned: false,
                    blobs_synced_through: -1,
                }),
                acknowledged: RwLock::new(Acknowledged { head, writes: 0 }),
            }),
        };
        // Make a newly created log (its files, directory entries and tree) durable before the
        // first commit relies on them.
        log.inner.db.flush()?;
        {
            let mut state = log.lock_writer()?;
            log.sync_files(&mut state)?;
        }
        File::open(dir)?.sync_all()?;
        Ok(log)
    }

    /// The acknowledged head: the last durable position and its hash.
    pub fn head(&self) -> Head {
        self.acknowledged().head
    }

    pub(crate) fn acknowledged(&self) -> Acknowledged {
        // A poisoned lock still holds a whole value (it is written by one assignment).
        *self
            .inner
            .acknowledged
            .read()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// The latest committed version of `stream`; 0 when the stream has no records.
    pub fn stream_version(&self, stream: &str) -> Result<u64, LogError> {
        record::check_stream_name(stream)?;
        let mut state = self.lock_writer()?;
        self.cached_version(&mut state, stream)
    }

    /// The reply stored for idempotency key `key` by a committed command, if any.
    pub fn reply_for(&self, key: &[u8]) -> Result<Option<Vec<u8>>, LogError> {
        batch::check_key(key)?;
        // Under the writer lock: a commit in progress has applied but not yet flushed its
        // replies, and they must not be seen before they are durable.
        let _state = self.lock_writer()?;
        let Some(value) = self.inner.tree.get(keys::reply_key(key))? else {
            return Ok(None);
        };
        match value.split_first() {
            Some((&VALUE_FORMAT_VERSION, reply)) => Ok(Some(reply.to_vec())),
            _ => Err(LogError::Corrupt {
                position: 0,
                reason: format!(
                    "reply stored for key {} has an unknown format",
                    hex::encode(key)
                ),
            }),
        }
    }

    /// Begins a batch against the current head. Commit it (or drop it) before beginning
    /// another.
    pub fn batch(&self) -> Batch {
        Batch::new(self.clone(), self.acknowledged())
    }

    /// Writes the batch with one atomic sled write and one flush, then acknowledges it.
    ///
    /// On `Ok`, every record and reply of the batch is durable and visible. On `Err`, none of
    /// it is visible, the head has not moved, and the log accepts the next batch (unless the
    /// error is `Poisoned`). After a crash, an unacknowledged batch may or may not be present,
    /// but always entirely or not at all.
    pub fn commit(&self, batch: Batch) -> Result<Committed, LogError> {
        if batch.log.inner.id != self.inner.id {
            return Err(LogError::StaleBatch {
                batch_head: batch.base,
                log_head: self.head(),
            });
        }
        let mut state = self.lock_writer()?;
        if self.acknowledged() != batch.begun_at {
            return Err(LogError::StaleBatch {
                batch_head: batch.base,
                log_head: state.head,
            });
        }
        debug_assert_eq!(state.head, batch.base);
        if batch.is_empty() {
            return Ok(Committed {
                head: state.head,
                commands: 0,
                records: 0,
            });
        }
        // Check every record right before it is written, as it will be checked when read.
        let mut previous = batch.base;
        let mut entries = Vec::with_capacity(2 * batch.records.len() + batch.replies.len());
        for pending in &batch.records {
            let view = record::check(&previous.hash, &pending.bytes).map_err(|reason| {
                LogError::Corrupt {
                    position: pending.position,
                    reason: format!("record failed its check before write: {reason}"),
                }
            })?;
            debug_assert_eq!(view.position, previous.position + 1);
            debug_assert_eq!(view.position, pending.position);
            debug_assert_eq!(
                (view.stream, view.version),
                (pending.stream.as_str(), pending.version)
            );
            previous = Head {
                position: pending.position,
                hash: view.hash,
            };
            entries.push((
                keys::stream_key(&pending.stream, pending.version),
                pending.position.to_be_bytes().to_vec(),
            ));
        }
        debug_assert_eq!(previous, batch.tip);
        for pending in batch.records {
            entries.push((keys::record_key(pending.position).to_vec(), pending.bytes));
        }
        for (key, reply) in batch.replies {
            let mut value = Vec::with_capacity(1 + reply.len());
            value.push(VALUE_FORMAT_VERSION);
            value.extend_from_slice(&reply);
            entries.push((keys::reply_key(&key), value));
        }
        let records = batch.tip.position - batch.base.position;
        self.write(
            &mut state,
            Write {
                entries,
                head: batch.tip,
                versions: batch.versions,
            },
        )?;
        Ok(Committed {
            head: state.head,
            commands: batch.commands,
            records,
        })
    }

    /// Makes the next write (`commit` or one chunk of `import_raw`) fail as planned.
    ///
    /// Test support for failure handling: the failure surfaces as `LogError::Io`, and the log
    /// is left exactly as before the write.
    pub fn inject_fault(&self, plan: FaultPlan) -> Result<(), LogError> {
        self.lock_writer()?.fault = Some(plan);
        Ok(())
    }

    /// Records from position `from` (0 is read as 1) up to the head: at most `max_events`
    /// (capped at `READ_EVENTS_MAX`), stopping before the stored bytes would exceed `max_bytes`
    /// (capped at `READ_BYTES_MAX`), but always at least one record if any is available.
    ///
    /// Each record is checked (shape, position, and that it chains onto the record before it,
    /// including the record before `from`). An empty result means `from` is past the head.
    pub fn read_from(
        &self,
        from: u64,
        max_events: usize,
        max_bytes: usize,
    ) -> Result<Vec<Record>, LogError> {
        let mut records = Vec::new();
        self.scan_checked(from, max_events, max_bytes, |view, _| {
            records.push(view.to_record());
        })?;
        Ok(records)
    }

    /// Like `read_from`, but returns each record's exact stored bytes (for export).
    pub fn read_raw_from(
        &self,
        from: u64,
        max_events: usize,
        max_bytes: usize,
    ) -> Result<Vec<Vec<u8>>, LogError> {
        let mut records = Vec::new();
        self.scan_checked(from, max_events, max_bytes, |_, bytes| {
            records.push(bytes.to_vec());
        })?;
        Ok(records)
    }

    /// The exact stored bytes of the record at `position`, checked against the record before
    /// it; `None` past the head.
    pub fn raw_record(&self, position: u64) -> Result<Option<Vec<u8>>, LogError> {
        if position == 0 || position > self.head().position {
            return Ok(None);
        }
        let mut raw = self.read_raw_from(position, 1, READ_BYTES_MAX)?;
        Ok(raw.pop())
    }

    /// Records of `stream` from version `from_version` (0 is read as 1): at most `max`
    /// (capped at `READ_EVENTS_MAX`), stopping before `READ_BYTES_MAX` stored bytes (at least
    /// one record if any is available). Each record is checked, including its hash against the
    /// record before it in the global order.
    pub fn read_stream(
        &self,
        stream: &str,
        from_version: u64,
        max: usize,
    ) -> Result<Vec<Record>, LogError> {
        record::check_stream_name(stream)?;
        let max_events = max.min(READ_EVENTS_MAX);
        let from_version = from_version.max(1);
        let head = self.head();
        let tree = &self.inner.tree;
        let mut records = Vec::new();
        let mut bytes_read = 0usize;
        let range = keys::stream_key(stream, from_version)..=keys::stream_key(stream, u64::MAX);
        for entry in tree.range(range) {
            if records.len() >= max_events {
                break;
            }
            let (key, value) = entry?;
            let expected_version = from_version + records.len() as u64;
            let position = keys::parse_position_value(&value).ok_or_else(|| LogError::Corrupt {
                position: 0,
                reason: format!(
                    "stream {stream} index entry holds {} bytes, not a position",
                    value.len()
                ),
            })?;
            if keys::parse_stream_key(&key) != Some((stream, expected_version)) {
                return Err(LogError::Corrupt {
                    position,
                    reason: format!("stream {stream} index skips version {expected_version}"),
                });
            }
            if position > head.position {
                // Applied by a commit whose flush has not returned: not acknowledged yet.
                break;
            }
            let previous = stored_hash_before(&self.inner.tree, position)?;
            let Some(bytes) = tree.get(keys::record_key(position))? else {
                return Err(LogError::Corrupt {
                    position,
                    reason: format!(
                        "stream {stream} version {expected_version} points at a missing record"
                    ),
                });
            };
            if !records.is_empty() && bytes_read + bytes.len() > READ_BYTES_MAX {
                break;
            }
            let view = record::check(&previous, &bytes)
                .map_err(|reason| LogError::Corrupt { position, reason })?;
            if (view.position, view.stream, view.version) != (position, stream, expected_version) {
                return Err(LogError::Corrupt {
                    position,
                    reason: format!(
                        "index says {stream} version {expected_version} but the record is {} version {} at position {}",
                        view.stream, view.version, view.position
                    ),
                });
            }
            bytes_read += bytes.len();
            records.push(view.to_record());
        }
        Ok(records)
    }

    /// Appends records given as their exact stored bytes (an export), checking that each
    /// chains onto the head and continues its stream, and rebuilding the stream index. Writes
    /// in chunks bounded like batches, each atomic and flushed, so an import into an empty log
    /// reproduces the exporter's head hash exactly.
    ///
    /// Idempotency replies are not part of the chain and are not imported. On error, the
    /// chunks written so far stay (the head says how far it got) and the import can resume.
    pub fn import_raw(&self, records: impl IntoIterator<Item = Vec<u8>>) -> Result<Head, LogError> {
        let mut state = self.lock_writer()?;
        let mut chunk = Write {
            entries: Vec::new(),
            head: state.head,
            versions: HashMap::new(),
        };
        let mut chunk_records = 0usize;
        let mut chunk_bytes = 0usize;
        for bytes in records {
            let position = chunk.head.position + 1;
            let checked = self.check_import(&mut state, &chunk, position, &bytes);
            let (stream, version, hash) = match checked {
                Ok(checked) => checked,
                Err(error) => {
                    // Keep what chained so far, so the head says where the import stopped.
                    if !chunk.entries.is_empty() {
                        self.write(&mut state, chunk)?;
                    }
                    return Err(error);
                }
            };
            chunk.entries.push((
                keys::stream_key(&stream, version),
                position.to_be_bytes().to_vec(),
            ));
            chunk.versions.insert(stream, version);
            chunk.head = Head { position, hash };
            chunk_bytes += bytes.len();
            chunk_records += 1;
            chunk
                .entries
                .push((keys::record_key(position).to_vec(), bytes));
            if chunk_records >= BATCH_COMMANDS_MAX || chunk_bytes >= BATCH_BYTES_MAX {
                let next = Write {
                    entries: Vec::new(),
                    head: chunk.head,
                    versions: HashMap::new(),
                };
                self.write(&mut state, std::mem::replace(&mut chunk, next))?;
                chunk_records = 0;
                chunk_bytes = 0;
            }
        }
        if !chunk.entries.is_empty() {
            self.write(&mut state, chunk)?;
        }
        Ok(state.head)
    }

    /// Checks that `bytes` is the record at `position`, chaining onto the chunk's head and
    /// continuing its stream. Returns its stream, version and hash.
    fn check_import(
        &self,
        state: &mut WriterState,
        chunk: &Write,
        position: u64,
        bytes: &[u8],
    ) -> Result<(String, u64, Hash), LogError> {
        let view = record::check(&chunk.head.hash, bytes)
            .map_err(|reason| LogError::InvalidImport { position, reason })?;
        if view.position != position {
            return Err(LogError::InvalidImport {
                position,
                reason: format!("record says position {}", view.position),
            });
        }
        // Imported bytes meet the same limits as appended ones.
        record::check_stream_name(view.stream)
            .and_then(|()| record::check_payload(view.payload))
            .map_err(|error| LogError::InvalidImport {
                position,
                reason: error.to_string(),
            })?;
        let current = match chunk.versions.get(view.stream) {
            Some(&version) => version,
            None => self.cached_version(state, view.stream)?,
        };
        if view.version != current + 1 {
            return Err(LogError::InvalidImport {
                position,
                reason: format!(
                    "record is {} version {} but the stream is at version {current}",
                    view.stream, view.version
                ),
            });
        }
        Ok((view.stream.to_owned(), view.version, view.hash))
    }

    /// Bytes sled reports for the database on disk (informational).
    pub fn size_on_disk(&self) -> Result<u64, LogError> {
        Ok(self.inner.db.size_on_disk()?)
    }

    pub(crate) fn lock_writer(&self) -> Result<MutexGuard<'_, WriterState>, LogError> {
        // A panic while holding the lock could have stopped between a write and its undo, so a
        // poisoned lock is treated like a failed undo.
        let state = self.inner.writer.lock().map_err(|_| LogError::Poisoned)?;
        if state.poisoned {
            return Err(LogError::Poisoned);
        }
        Ok(state)
    }

    /// The committed version of `stream`, from the cache or the stream index.
    fn cached_version(&self, state: &mut WriterState, stream: &str) -> Result<u64, LogError> {
        if let Some(&version) = state.versions.get(stream) {
            return Ok(version);
        }
        let last = self
            .inner
            .tree
            .scan_prefix(keys::stream_prefix(stream))
            .next_back();
        let version = match last {
            None => 0,
            Some(entry) => {
                let (key, _) = entry?;
                match keys::parse_stream_key(&key) {
                    Some((found, version)) if found == stream => version,
                    _ => {
                        return Err(LogError::Corrupt {
                            position: 0,
                            reason: format!("malformed index key under stream {stream}"),
                        })
                    }
                }
            }
        };
        remember_version(&mut state.versions, stream, version);
        Ok(version)
    }

    /// Applies one write atomically and flushes it; on success advances the head and the
    /// version cache, on failure undoes it in memory so storage matches the unchanged head.
    fn write(&self, state: &mut WriterState, write: Write) -> Result<(), LogError> {
        debug_assert!(write.head.position >= state.head.position);
        let tree = &self.inner.tree;
        let old_meta = tree.get(META_KEY)?;
        let mut batch = sled::Batch::default();
        // sled copies keys and values into its own buffers either way, so inserting slices
        // costs nothing extra and keeps `write.entries` for the undo, which is built only if
        // it is needed (most writes succeed; building it every time cost an allocation and a
        // hash insert per key).
        for (key, value) in &write.entries {
            batch.insert(key.as_slice(), value.as_slice());
        }
        batch.insert(META_KEY, &encode_meta(&write.head)[..]);

        let fault = state.fault.take();
        if fault == Some(FaultPlan::FailBeforeWrite) {
            return Err(injected("write"));
        }
        let outcome = tree
            .apply_batch(batch)
            .map_err(LogError::from)
            .and_then(|()| {
                if fault == Some(FaultPlan::FailFlush) {
                    return Err(injected("flush"));
                }
                self.inner.db.flush()?;
                self.sync_files(state)?;
                Ok(())
            });
        if let Err(error) = outcome {
            // sled applies a batch key by key in memory (atomicity is for crash recovery), so
            // after a failure any part of it may be visible to lookups. Remove it all again.
            // If the flush failed, part of the batch may be on disk; the undo reaches the disk
            // with the next successful flush, and a crash before then recovers the batch whole
            // or not at all, like any unacknowledged batch.
            let mut undo = sled::Batch::default();
            for (key, _) in &write.entries {
                // Every key a write inserts is new (fresh positions, next versions, unused
                // idempotency keys), so undoing means removing it.
                undo.remove(key.as_slice());
            }
            match old_meta {
                Some(meta) => undo.insert(META_KEY, meta),
                None => undo.remove(META_KEY),
            }
            if tree.apply_batch(undo).is_err() {
                state.poisoned = true;
            }
            return Err(error);
        }

        state.head = write.head;
        for (stream, version) in write.versions {
            remember_version(&mut state.versions, &stream, version);
        }
        let mut acknowledged = self
            .inner
            .acknowledged
            .write()
            .unwrap_or_else(PoisonError::into_inner);
        *acknowledged = Acknowledged {
            head: write.head,
            writes: acknowledged.writes + 1,
        };
        Ok(())
    }

    /// Makes what `sled::Db::flush` wrote durable against power loss, not only process death.
    ///
    /// On Linux, sled 0.34.7 ends a flush with `sync_file_range`, which flushes neither the
    /// disk's volatile write cache nor the file's size, and it writes large items (over a
    /// quarter of a 512 KiB segment: big records, or tree nodes holding several medium ones)
    /// to separate files under `blobs/` without any fsync (spacejam/sled#1452). So after each
    /// flush, fdatasync the log file and every blob file created since the last call, then the
    /// blob directory. Blob ids are increasing log sequence numbers, so one counter suffices.
    fn sync_files(&self, state: &mut WriterState) -> std::io::Result<()> {
        self.inner.db_file.sync_data()?;
        let blob_directory = self.inner.directory.join(SLED_BLOB_DIRECTORY);
        let entries = match std::fs::read_dir(&blob_directory) {
            Ok(entries) => entries,
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(()),
            Err(error) => return Err(error),
        };
        let mut synced_through = state.blobs_synced_through;
        for entry in entries {
            let entry = entry?;
            let id = entry
                .file_name()
                .to_str()
                .and_then(|name| name.parse::<i64>().ok());
            let Some(id) = id else { continue };
            if id <= state.blobs_synced_through {
                continue;
            }
            match File::open(entry.path()) {
                Ok(blob) => blob.sync_data()?,
                // sled removes blobs it no longer needs; a vanished one needs no syncing.
                Err(error) if error.kind() == std::io::ErrorKind::NotFound => {}
                Err(error) => return Err(error),
            }
            synced_through = synced_through.max(id);
        }
        if synced_through != state.blobs_synced_through {
            File::open(&blob_directory)?.sync_all()?;
            state.blobs_synced_through = synced_through;
        }
        Ok(())
    }

    /// Walks records `from ..= head` in order, checking each, and hands them to `visit`.
    fn scan_checked(
        &self,
        from: u64,
        max_events: usize,
        max_bytes: usize,
        mut visit: impl FnMut(&RecordView<'_>, &[u8]),
    ) -> Result<(), LogError> {
        let from = from.max(1);
        let max_events = max_events.min(READ_EVENTS_MAX);
        let max_bytes = max_bytes.min(READ_BYTES_MAX);
        let head = self.head();
        if from > head.position || max_events == 0 {
            return Ok(());
        }
        let mut previous = stored_hash_before(&self.inner.tree, from)?;
        let mut expected = from;
        let mut events = 0usize;
        let mut bytes_read = 0usize;
        let range = keys::record_key(from)..=keys::record_key(head.position);
        for entry in self.inner.tree.range(range) {
            let (key, bytes) = entry?;
            if keys::parse_record_key(&key) != Some(expected) {
                return Err(LogError::Corrupt {
                    position: expected,
                    reason: "record is missing".to_owned(),
                });
            }
            if events > 0 && bytes_read + bytes.len() > max_bytes {
                return Ok(());
            }
            let view = check_at(expected, &previous, &bytes)?;
            visit(&view, &bytes);
            previous = view.hash;
            bytes_read += bytes.len();
            events += 1;
            if events >= max_events {
                return Ok(());
            }
            expected += 1;
        }
        if expected <= head.position {
            // The range ended before the head: the records the head promises are not there.
            return Err(LogError::Corrupt {
                position: expected,
                reason: "record is missing".to_owned(),
            });
        }
        Ok(())
    }
}

/// Checks a record read from key `position` against its predecessor's hash.
pub(crate) fn check_at<'a>(
    position: u64,
    previous: &Hash,
    bytes: &'a [u8],
) -> Result<RecordView<'a>, LogError> {
    let view =
        record::check(previous, bytes).map_err(|reason| LogError::Corrupt { position, reason })?;
    if view.position != position {
        return Err(LogError::Corrupt {
            position,
            reason: format!(
                "record stored at {position} says position {}",
                view.position
            ),
        });
    }
    Ok(view)
}

fn remember_version(cache: &mut HashMap<String, u64>, stream: &str, version: u64) {
    if cache.len() >= STREAM_CACHE_ENTRIES_MAX && !cache.contains_key(stream) {
        // Forgetting everything is crude but always correct: a miss re-reads the index.
        cache.clear();
    }
    cache.insert(stream.to_owned(), version);
}

fn injected(step: &str) -> LogError {
    LogError::Io(std::io::Error::other(format!(
        "injected fault: {step} failed"
    )))
}

pub(crate) fn encode_meta(head: &Head) -> [u8; 1 + 8 + HASH_BYTES] {
    let mut meta = [0u8; 1 + 8 + HASH_BYTES];
    meta[0] = VALUE_FORMAT_VERSION;
    meta[1..9].copy_from_slice(&head.position.to_be_bytes());
    meta[9..].copy_from_slice(&head.hash.0);
    meta
}

pub(crate) fn decode_meta(bytes: &[u8]) -> Option<Head> {
    let [VALUE_FORMAT_VERSION, rest @ ..] = bytes else {
        return None;
    };
    let (position, hash) = rest.split_at_checked(8)?;
    Some(Head {
        position: u64::from_be_bytes(position.try_into().ok()?),
        hash: Hash(hash.try_into().ok()?),
    })
}

/// Opens sled, retrying for up to `OPEN_LOCK_WAIT_MS_MAX` while its file lock is held.
fn open_waiting_for_lock(config: &sled::Config) -> Result<sled::Db, LogError> {
    let started = Instant::now();
    let wait_max = Duration::from_millis(OPEN_LOCK_WAIT_MS_MAX);
    loop {
        match config.open() {
            // sled 0.34.7 reports a held lock only as this message inside an `Other` error.
            Err(sled::Error::Io(error))
                if error.to_string().contains("could not acquire lock")
                    && started.elapsed() < wait_max =>
            {
                std::thread::sleep(Duration::from_millis(10));
            }
            result => return Ok(result?),
        }
    }
}

/// Reads the meta head and checks it against the last record and the one before it.
fn recover_head(tree: &sled::Tree) -> Result<Head, LogError> {
    let meta = match tree.get(META_KEY)? {
        None => None,
        Some(meta) => Some(decode_meta(&meta).ok_or_else(|| LogError::Corrupt {
            position: 0,
            reason: format!("meta head of {} bytes is malformed", meta.len()),
        })?),
    };
    let last = tree
        .scan_prefix([keys::RECORD_PREFIX])
        .next_back()
        .transpose()?;
    let Some((key, bytes)) = last else {
        // A batch of only replies can write a genesis meta head before any record exists.
        return match meta {
            None | Some(Head::GENESIS) => Ok(Head::GENESIS),
            Some(head) => Err(LogError::Corrupt {
                position: 1,
                reason: format!("meta head is {head} but there are no records"),
            }),
        };
    };
    let last_position = keys::parse_record_key(&key).ok_or_else(|| LogError::Corrupt {
        position: 0,
        reason: "malformed record key".to_owned(),
    })?;
    let Some(head) = meta else {
        return Err(LogError::Corrupt {
            position: last_position,
            reason: "records exist but the meta head is missing".to_owned(),
        });
    };
    if last_position != head.position {
        return Err(LogError::Corrupt {
            position: last_position.min(head.position) + 1,
            reason: format!(
                "meta head is {head} but the last record is at position {last_position}"
            ),
        });
    }
    let previous = stored_hash_before(tree, head.position)?;
    let view = check_at(head.position, &previous, &bytes)?;
    if view.hash != head.hash {
        return Err(LogError::Corrupt {
            position: head.position,
            reason: format!(
                "meta head is {head} but the last record's hash is {}",
                view.hash
            ),
        });
    }
    Ok(head)
}

/// The stored hash of the record before `position` (zero before the first record), read
/// from its last 32 bytes after checking its shape. Its own chain link is not checked here:
/// that needs its predecessor too, which is `verify`'s job.
fn stored_hash_before(tree: &sled::Tree, position: u64) -> Result<Hash, LogError> {
    if position <= 1 {
        return Ok(Hash::ZERO);
    }
    let previous = position - 1;
    let Some(bytes) = tree.get(keys::record_key(previous))? else {
        return Err(LogError::Corrupt {
            position: previous,
            reason: "record is missing".to_owned(),
        });
    };
    let view = record::decode(&bytes).map_err(|reason| LogError::Corrupt {
        position: previous,
        reason,
    })?;
    if view.position != previous {
        return Err(LogError::Corrupt {
            position: previous,
            reason: format!(
                "record stored at {previous} says position {}",
                view.position
            ),
        });
    }
    Ok(view.hash)
}
