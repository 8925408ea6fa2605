//! The store a read model owns: a memtable in front of one fjall keyspace (an LSM tree; the only
//! module that touches fjall). Applying an event writes the memtable only (in memory, no disk
//! call); every [`IMAGE_INTERVAL_MILLIS`] or [`IMAGE_HELD_BYTES`] the memtable, collapsed to the
//! last value per key, is frozen and written to fjall together with its checkpoint in one atomic
//! write batch, on a thread of its own, while applying goes on into a fresh memtable. So after
//! any crash the disk holds an image of the model at its checkpoint, and catching up from
//! checkpoint + 1 applies each later event exactly once. Reads see everything applied: the
//! memtable first, then the frozen one being written, then fjall. Keys have a short prefix per
//! kind of record (each model's module docs hold its catalogue), values are in the protocol
//! codec's bincode.
//!
//! Why fjall and not sled (which the event log keeps): writing an image into sled cost one B-tree
//! descent and leaf copy per key behind sled's one process-wide lock, about half of a rebuild's
//! time and the lock the writer's commits wait on in `parlor up`; an LSM tree appends the batch
//! to its journal and memtable and sorts it into tables in the background (docs/decisions.md
//! has the A/B).
//!
//! A store opened for a rebuild ([`OpenFor::Rebuilding`]) is the same with rarer images written
//! without the atomicity nothing needs until it is swapped in: see [`Store::open_for`].

use std::collections::BTreeMap;
use std::ops::Bound;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use domain::Timestamp;
use serde::de::DeserializeOwned;
use serde::Serialize;
use sha2::{Digest as _, Sha256};
use uuid::Uuid;

use crate::error::ProjectionError;
use crate::runtime::OpenFor;
use crate::sorted_runs::{self, Run, SortedRuns};

/// fjall's block cache per store: five read models run in one process, and the hot part of a
/// read model (recent rooms and messages) fits in this.
pub const STORE_CACHE_BYTES: u64 = 64 * 1024 * 1024;

/// fjall's block cache for a store being rebuilt: the rebuild reads back records it changed
/// (a room's record, a member's view) once they are out of the memtable. Only for the rebuild's
/// duration; the swapped-in model is reopened with [`STORE_CACHE_BYTES`].
pub const REBUILD_CACHE_BYTES: u64 = 256 * 1024 * 1024;

/// fjall's background threads (flushing memtables into tables, compacting) per store: five
/// stores share two cores with the writer, and a store's writes come as one batch every few
/// seconds.
const STORE_WORKER_THREADS: usize = 1;

/// The journal size at which fjall flushes memtables so it can drop old journal files (its
/// smallest allowed value): bounds the disk and the replay time of a store's journal.
const STORE_JOURNAL_BYTES_MAX: u64 = 64 * 1024 * 1024;

/// The name of the one keyspace in each store's fjall database.
const KEYSPACE: &str = "model";

/// How many bytes of keys and values a store being rebuilt holds in memory before it writes
/// them to fjall. Held changes coalesce: a room's record or a member's view
/// changed by ten thousand messages is written once, not ten thousand times.
pub const REBUILD_HELD_BYTES: usize = 256 * 1024 * 1024;

/// How many bytes of keys and values a serving store's memtable holds before its image is
/// written (whatever the time). Bounds the memory (twice this: one memtable filling, one being
/// written) and the length of the one atomic batch.
pub const IMAGE_HELD_BYTES: usize = 16 * 1024 * 1024;

/// How long a serving store's memtable collects changes before its image is written: what a
/// crash costs in catching up, at most.
pub const IMAGE_INTERVAL_MILLIS: u64 = 2_000;

/// The largest stored value read back, in bytes: a bound on what a corrupt length can allocate.
/// Values are small records (a room, a view, a message of at most 5,000 characters with ten
/// attachments), far below this.
pub const STORED_VALUE_BYTES_MAX: u64 = 4 * 1024 * 1024;

/// The checkpoint's key. Its first byte, 0xff, sorts after every model prefix (all ASCII), so
/// no prefix scan of a model ever meets it.
const CHECKPOINT_KEY: &[u8] = b"\xffcheckpoint";

/// The directory of the read model `name` under a data directory:
/// `<data_dir>/projections/<name>/`.
pub fn store_path(data_dir: &Path, name: &str) -> PathBuf {
    data_dir.join("projections").join(name)
}

/// A whole model as ordered `(key, value)` pairs, for rebuild-equality checks.
pub type Dump = Vec<(Vec<u8>, Vec<u8>)>;

/// The sha256 of a dump, as 64 lowercase hex characters. Keys and values are length-prefixed,
/// so no two different dumps hash the same input.
pub fn dump_digest(dump: &Dump) -> String {
    let mut hasher = Sha256::new();
    for (key, value) in dump {
        hasher.update((key.len() as u64).to_be_bytes());
        hasher.update(key);
        hasher.update((value.len() as u64).to_be_bytes());
        hasher.update(value);
    }
    hex::encode(hasher.finalize())
}

/// Which way a scan walks its keys.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    /// Ascending keys.
    Forward,
    /// Descending keys.
    Backward,
}

/// One stored key and its value's bytes.
type Entry = (Vec<u8>, Vec<u8>);

/// Changes by key: `Some(bytes)` to write, `None` to remove.
type Overlay = BTreeMap<Vec<u8>, Option<Vec<u8>>>;

/// One read model's memtable, its fjall database and its checkpoint.
pub struct Store {
    db: fjall::Database,
    tree: fjall::Keyspace,
    /// The position of the last applied event; read without touching fjall. fjall's
    /// checkpoint (that of the last image written) may be behind it.
    checkpoint: AtomicU64,
    purpose: OpenFor,
    memtable: Mutex<Memtable>,
    /// The thread writing the frozen memtable, if one is.
    writing: Mutex<Option<JoinHandle<Result<(), String>>>>,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store")
            .field("path", &self.tree.path())
            .field("checkpoint", &self.checkpoint())
            .field("purpose", &self.purpose)
            .finish_non_exhaustive()
    }
}

/// What is applied but not yet in fjall.
#[derive(Debug)]
struct Memtable {
    /// Changes since the last image was frozen, as sorted runs (cheaper to fill than one tree
    /// of a rebuild's millions of keys).
    active: SortedRuns,
    /// Bytes of keys and values put into `active` (overwritten ones counted again: an upper
    /// bound, so the bound on memory holds).
    bytes: usize,
    /// An image being written to fjall: read after `active`, dropped once written.
    frozen: Option<Arc<Run>>,
    /// When `active` started collecting.
    since: Instant,
    /// The checkpoint of the last image frozen (or the one fjall had on opening).
    imaged_checkpoint: u64,
    /// Freeze `active` once `bytes` reaches this ([`IMAGE_HELD_BYTES`], [`REBUILD_HELD_BYTES`];
    /// less in tests).
    limit: usize,
    /// Freeze `active` once it is this old (serving stores only).
    interval: Option<Duration>,
    /// Why an image could not be written, if one could not: fjall then holds an older image (or
    /// part of one, for a rebuild), and the store refuses all further work until reopened.
    broken: Option<String>,
}

impl Memtable {
    /// Fails when an image could not be written.
    fn usable(&self) -> Result<(), ProjectionError> {
        match &self.broken {
            None => Ok(()),
            Some(why) => Err(ProjectionError::Store(format!(
                "an image of this model could not be written ({why}); it must be reopened"
            ))),
        }
    }

    /// The value under `key` as the memtable has it: `Some(None)` when removed, `None` when the
    /// memtable does not know (fjall does).
    fn lookup(&self, key: &[u8]) -> Option<Option<&[u8]>> {
        if let Some(value) = self.active.get(key) {
            return Some(value.as_deref());
        }
        self.frozen
            .as_ref()
            .and_then(|frozen| sorted_runs::find(frozen, key))
            .map(|value| value.as_deref())
    }

    /// The memtable's entries in a range, the newest change per key, ascending.
    fn range(&self, lower: &Bound<Vec<u8>>, upper: &Bound<Vec<u8>>) -> Overlay {
        let mut merged = Overlay::new();
        let bounds = (lower.clone(), upper.clone());
        if let Some(frozen) = &self.frozen {
            for (key, value) in sorted_runs::slice_within(frozen, &bounds) {
                merged.insert(key.clone(), value.clone());
            }
        }
        self.active.range_into(&bounds, &mut merged);
        merged
    }
}

impl Store {
    /// Opens (or creates) the store in the directory `path`, to serve.
    ///
    /// Fails with [`ProjectionError::Store`] when another process (or another handle in this
    /// one) has it open: fjall locks its directory.
    pub fn open(path: &Path) -> Result<Store, ProjectionError> {
        Store::open_for(path, OpenFor::Serving)
    }

    /// Opens (or creates) the store in the directory `path` for `purpose`.
    ///
    /// A store opened for [`OpenFor::Rebuilding`] has a larger block cache and a larger
    /// memtable ([`REBUILD_HELD_BYTES`], no time limit), and writes its images by fjall's bulk
    /// ingestion (new tables written in key order) rather than as one atomic batch. So a crash
    /// can leave it with part of an image: that is safe because a rebuild is only ever used
    /// after [`Store::flush`] and
    /// a swap (`crate::swap`), and a rebuild a crash interrupted is deleted when the model is
    /// next opened.
    ///
    /// Fails with [`ProjectionError::Store`] when `path` holds a store of the earlier engine
    /// (sled); [`open_served`] deletes such a store and rebuilds it from the log.
    pub fn open_for(path: &Path, purpose: OpenFor) -> Result<Store, ProjectionError> {
        if holds_sled_store(path) {
            return Err(ProjectionError::Store(format!(
                "{} holds a read model of an earlier storage engine (sled): delete the directory \
                 and let the model rebuild from the log (services do this on start)",
                path.display()
            )));
        }
        std::fs::create_dir_all(path).map_err(|error| {
            ProjectionError::Store(format!("creating {}: {error}", path.display()))
        })?;
        Store::from_path(path, false, purpose)
    }

    /// A store in a temporary directory that is deleted when the store is dropped (tests,
    /// rebuilds compared and thrown away).
    pub fn temporary() -> Result<Store, ProjectionError> {
        Store::temporary_for(OpenFor::Serving)
    }

    /// [`Store::temporary`] for `purpose` (see [`Store::open_for`]).
    pub fn temporary_for(purpose: OpenFor) -> Result<Store, ProjectionError> {
        let directory = tempfile::Builder::new()
            .prefix("parlor-model-")
            .tempdir()
            .map_err(|error| {
                ProjectionError::Store(format!("creating a temporary directory: {error}"))
            })?
            // fjall deletes it when the database is dropped (`temporary(true)`).
            .keep();
        Store::from_path(&directory, true, purpose)
    }

    fn from_path(path: &Path, temporary: bool, purpose: OpenFor) -> Result<Store, ProjectionError> {
        let (cache, limit, interval) = match purpose {
            OpenFor::Serving => (
                STORE_CACHE_BYTES,
                IMAGE_HELD_BYTES,
                Some(Duration::from_millis(IMAGE_INTERVAL_MILLIS)),
            ),
            OpenFor::Rebuilding => (REBUILD_CACHE_BYTES, REBUILD_HELD_BYTES, None),
        };
        let db = open_waiting_for_lock(|| {
            fjall::Database::builder(path)
                .cache_size(cache)
                .worker_threads(STORE_WORKER_THREADS)
                .max_journaling_size(STORE_JOURNAL_BYTES_MAX)
                .temporary(temporary)
                .open()
        })?;
        let tree = db.keyspace(KEYSPACE, fjall::KeyspaceCreateOptions::default)?;
        let checkpoint = match tree.get(CHECKPOINT_KEY)? {
            None => 0,
            Some(bytes) => {
                let bytes: [u8; 8] = bytes
                    .as_ref()
                    .try_into()
                    .map_err(|_| value_error(CHECKPOINT_KEY, "the checkpoint is not 8 bytes"))?;
                u64::from_be_bytes(bytes)
            }
        };
        Ok(Store {
            db,
            tree,
            checkpoint: AtomicU64::new(checkpoint),
            purpose,
            memtable: Mutex::new(Memtable {
                active: SortedRuns::default(),
                bytes: 0,
                frozen: None,
                since: Instant::now(),
                imaged_checkpoint: checkpoint,
                limit,
                interval,
                broken: None,
            }),
            writing: Mutex::new(None),
        })
    }

    /// The position of the last applied event (0 for a new store).
    pub fn checkpoint(&self) -> u64 {
        self.checkpoint.load(Ordering::SeqCst)
    }

    fn memtable(&self) -> Result<MutexGuard<'_, Memtable>, ProjectionError> {
        let memtable = self.memtable.lock().unwrap_or_else(PoisonError::into_inner);
        memtable.usable()?;
        Ok(memtable)
    }

    /// The value under `key`, if any.
    pub fn get<T: DeserializeOwned>(&self, key: &[u8]) -> Result<Option<T>, ProjectionError> {
        let memtable = self.memtable()?;
        lookup(&memtable, &self.tree, key)
    }

    /// Whether anything is stored under `key`.
    pub fn contains(&self, key: &[u8]) -> Result<bool, ProjectionError> {
        let memtable = self.memtable()?;
        match memtable.lookup(key) {
            Some(value) => Ok(value.is_some()),
            None => Ok(self.tree.contains_key(key)?),
        }
    }

    /// The entries whose keys start with `prefix`, in `direction`, starting after the key
    /// `after` (exclusive; "after" in the direction of the walk) when one is given. The
    /// memtable's part of the range is copied; fjall's is walked lazily.
    pub fn scan<'a, T: DeserializeOwned + 'a>(
        &'a self,
        prefix: &[u8],
        after: Option<&[u8]>,
        direction: Direction,
    ) -> impl Iterator<Item = Result<(Vec<u8>, T), ProjectionError>> + 'a {
        let (lower, upper) = scan_bounds(prefix, after, direction);
        let overlay = self
            .memtable()
            .map(|memtable| memtable.range(&lower, &upper));
        let (overlay, failed) = match overlay {
            Ok(overlay) => (overlay, None),
            Err(error) => (Overlay::new(), Some(error)),
        };
        let entries = stored_range(&self.tree, lower, upper);
        let merged: Box<dyn Iterator<Item = Result<Entry, ProjectionError>>> =
            match (&failed, direction) {
                (Some(_), _) => Box::new(std::iter::empty()),
                (None, Direction::Forward) => Box::new(Merged::new(
                    entries,
                    overlay.into_iter(),
                    Direction::Forward,
                )),
                (None, Direction::Backward) => Box::new(Merged::new(
                    entries.rev(),
                    overlay.into_iter().rev(),
                    Direction::Backward,
                )),
            };
        let entries = merged.map(|entry| {
            let (key, value) = entry?;
            let decoded = decode_value(&key, &value)?;
            Ok((key, decoded))
        });
        // A broken store's failure comes out as the scan's first (and only) item.
        failed.map(Err).into_iter().chain(entries)
    }

    /// Applies the part of `batch` after the checkpoint, event by event, into one set of changes
    /// committed with the new checkpoint: what most models' `apply` is.
    pub fn apply_fresh(
        &self,
        batch: &[crate::EventEnvelope],
        mut apply_event: impl FnMut(
            &mut Changes<'_>,
            &crate::EventEnvelope,
        ) -> Result<(), ProjectionError>,
    ) -> Result<(), ProjectionError> {
        let fresh = crate::unapplied(batch, self.checkpoint())?;
        let Some(last) = fresh.last() else {
            return Ok(());
        };
        let mut changes = self.changes()?;
        for envelope in fresh {
            apply_event(&mut changes, envelope)?;
        }
        changes.commit(last.position)
    }

    /// A set of changes to commit with a new checkpoint (a dropped one changes nothing).
    pub fn changes(&self) -> Result<Changes<'_>, ProjectionError> {
        drop(self.memtable()?);
        Ok(Changes {
            store: self,
            overlay: Overlay::new(),
            bytes: 0,
        })
    }

    /// Every entry, in key order, except those under the `volatile` prefixes (state that
    /// depends on the clock rather than on the log, such as notifications already sent), with
    /// the checkpoint last (once there is one).
    pub fn dump(&self, volatile: &[&[u8]]) -> Result<Dump, ProjectionError> {
        self.dump_holding(volatile, |_| Ok(()))
    }

    /// [`Store::dump`] with the records a model holds outside the store (`held` puts them, see
    /// [`Changes::commit_holding`]), as the next image will have them.
    pub fn dump_holding(
        &self,
        volatile: &[&[u8]],
        held: impl FnOnce(&mut HeldRecords) -> Result<(), ProjectionError>,
    ) -> Result<Dump, ProjectionError> {
        let mut dump = Vec::new();
        let memtable = self.memtable()?;
        let mut overlay = SortedRuns::default();
        overlay.push_batch(memtable.range(&Bound::Unbounded, &Bound::Unbounded));
        HeldRecords::take(&mut overlay, held)?;
        let merged = Merged::new(
            stored_range(&self.tree, Bound::Unbounded, Bound::Unbounded),
            overlay.into_sorted().into_iter(),
            Direction::Forward,
        );
        for entry in merged {
            let (key, value) = entry?;
            if key.as_slice() == CHECKPOINT_KEY
                || volatile.iter().any(|prefix| key.starts_with(prefix))
            {
                continue;
            }
            dump.push((key, value));
        }
        let checkpoint = self.checkpoint();
        if checkpoint > 0 {
            dump.push((CHECKPOINT_KEY.to_vec(), checkpoint.to_be_bytes().to_vec()));
        }
        Ok(dump)
    }

    /// Writes everything applied so far to fjall as one image and makes it durable (on stop,
    /// at the end of a rebuild, and after state that must not be lost, such as notifications
    /// sent).
    pub fn flush(&self) -> Result<(), ProjectionError> {
        self.flush_holding(|_| Ok(()))
    }

    /// [`Store::flush`] with the records a model holds outside the store: `held` puts them
    /// into the image (and the model forgets them; see [`Changes::commit_holding`]).
    pub fn flush_holding(
        &self,
        held: impl FnOnce(&mut HeldRecords) -> Result<(), ProjectionError>,
    ) -> Result<(), ProjectionError> {
        let mut memtable = self.memtable()?;
        self.finish_writing(&mut memtable)?;
        let mut records = HeldRecords::default();
        held(&mut records)?;
        let mut records = records.entries;
        if !memtable.active.is_empty()
            || !records.is_empty()
            || memtable.imaged_checkpoint != self.checkpoint()
        {
            // Written while this holds the memtable's lock, so no read needs the image in a
            // tree of its own: the held records (sorted) and the memtable are merged as they
            // are written, which spares building a tree of a rebuild's million records.
            records.sort_unstable_by(|a, b| a.0.cmp(&b.0));
            let active = std::mem::take(&mut memtable.active).into_sorted();
            memtable.bytes = 0;
            memtable.since = Instant::now();
            memtable.imaged_checkpoint = self.checkpoint();
            let written = write_image(
                &self.db,
                &self.tree,
                self.purpose,
                merge_newer(&active, &records),
                self.checkpoint(),
            );
            if let Err(why) = written {
                memtable.broken = Some(why.clone());
                return Err(ProjectionError::Store(why));
            }
        }
        drop(memtable);
        self.db.persist(fjall::PersistMode::SyncAll)?;
        Ok(())
    }

    /// Waits for the image being written, if one is, and drops it from the memtable.
    fn finish_writing(&self, memtable: &mut Memtable) -> Result<(), ProjectionError> {
        let handle = self
            .writing
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        let Some(handle) = handle else {
            return Ok(());
        };
        let written = handle
            .join()
            .unwrap_or_else(|_| Err("the thread writing it panicked".to_owned()));
        memtable.frozen = None;
        if let Err(why) = written {
            memtable.broken = Some(why.clone());
            return Err(ProjectionError::Store(why));
        }
        Ok(())
    }

    /// Freezes the active memtable as the image at the current checkpoint.
    fn freeze(&self, memtable: &mut Memtable) -> Arc<Run> {
        let image = Arc::new(std::mem::take(&mut memtable.active).into_sorted());
        memtable.bytes = 0;
        memtable.since = Instant::now();
        memtable.imaged_checkpoint = self.checkpoint();
        memtable.frozen = Some(Arc::clone(&image));
        image
    }

    /// Starts writing an image when the memtable is large or old enough and the last image is
    /// written. Should the last one still be in writing, applying goes on into the memtable,
    /// up to twice its limit, before it waits.
    fn maybe_write_image(
        &self,
        memtable: &mut Memtable,
        held_bytes: usize,
        held: impl FnOnce(&mut HeldRecords) -> Result<(), ProjectionError>,
    ) -> Result<(), ProjectionError> {
        let old = memtable
            .interval
            .is_some_and(|interval| memtable.since.elapsed() >= interval);
        // What the model holds counts towards the limit: it is part of the next image.
        let bytes = memtable.bytes.saturating_add(held_bytes);
        let full = bytes >= memtable.limit;
        let changed =
            !memtable.active.is_empty() || memtable.imaged_checkpoint != self.checkpoint();
        if !(full || (old && changed)) {
            return Ok(());
        }
        let still_writing = self
            .writing
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .as_ref()
            .is_some_and(|handle| !handle.is_finished());
        if still_writing && bytes < memtable.limit.saturating_mul(2) {
            return Ok(());
        }
        self.finish_writing(memtable)?;
        // The records the model held decoded since the last image join this one, so that it
        // is the whole model at its checkpoint.
        memtable.bytes += HeldRecords::take(&mut memtable.active, held)?;
        let image = self.freeze(memtable);
        let db = self.db.clone();
        let tree = self.tree.clone();
        let purpose = self.purpose;
        let checkpoint = self.checkpoint();
        let handle = std::thread::Builder::new()
            .name("projection-image".into())
            .spawn(move || {
                let entries = image
                    .iter()
                    .map(|(key, value)| (key.as_slice(), value.as_deref()));
                write_image(&db, &tree, purpose, entries, checkpoint)
            })
            .map_err(|error| {
                ProjectionError::Store(format!("starting the image writer: {error}"))
            })?;
        *self.writing.lock().unwrap_or_else(PoisonError::into_inner) = Some(handle);
        Ok(())
    }
}

impl Drop for Store {
    /// Lets the image being written finish (it holds the fjall database, whose directory lock a
    /// reopen needs); what is only in the active memtable is lost, as in a crash, and caught up
    /// from the log.
    fn drop(&mut self) {
        let handle = self
            .writing
            .get_mut()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        if let Some(handle) = handle {
            // Its error, if any, leaves fjall at the previous image, which reopening resumes.
            drop(handle.join());
        }
    }
}

#[cfg(test)]
impl Store {
    /// Images once the memtable and a model's held records reach `limit` bytes, never by time
    /// (tests of images written part way through a stream).
    pub(crate) fn set_image_limit(&self, limit: usize) {
        let mut memtable = self.memtable.lock().unwrap_or_else(PoisonError::into_inner);
        memtable.limit = limit;
        memtable.interval = None;
    }

    /// The checkpoint of the last image written to fjall.
    pub(crate) fn imaged_checkpoint(&self) -> Result<u64, ProjectionError> {
        Ok(match self.tree.get(CHECKPOINT_KEY)? {
            None => 0,
            Some(bytes) => u64::from_be_bytes(
                bytes
                    .as_ref()
                    .try_into()
                    .map_err(|_| value_error(CHECKPOINT_KEY, "not 8 bytes"))?,
            ),
        })
    }
}

/// The key under which a model records the version of its key layout.
pub const LAYOUT_KEY: &[u8] = b"v/layout";

/// `store` if it holds layout `layout` of `model`; a new store is marked with it. Anything
/// applied without the mark is of an earlier layout (checkpoint above 0): refused with
/// [`ProjectionError::Layout`], never misread.
pub fn checked_layout(
    store: Store,
    model: &'static str,
    layout: u32,
) -> Result<Store, ProjectionError> {
    match store.get::<u32>(LAYOUT_KEY)? {
        Some(found) if found == layout => Ok(store),
        None if store.checkpoint() == 0 => {
            let mut changes = store.changes()?;
            changes.put(LAYOUT_KEY.to_vec(), &layout)?;
            changes.commit(0)?;
            Ok(store)
        }
        found => Err(ProjectionError::Layout {
            model,
            found: found.unwrap_or(0),
            expected: layout,
        }),
    }
}

/// Opens model `name` under a data directory as a service does: a swap a crash interrupted
/// is finished or undone first ([`crate::swap::recover`]), and a store of an earlier key
/// layout ([`ProjectionError::Layout`]) is deleted so the model starts afresh at position 0. A
/// read model is derived from the log, so an upgrade rebuilds it as it catches up instead of
/// refusing to start (docs/decisions.md).
pub fn open_served<M>(
    data_dir: &Path,
    name: &'static str,
    open_path: impl Fn(&Path) -> Result<M, ProjectionError>,
) -> Result<M, ProjectionError> {
    let path = store_path(data_dir, name);
    crate::swap::recover(&path)?;
    if holds_sled_store(&path) {
        tracing::warn!(
            model = name,
            "the store is of the earlier engine (sled); rebuilding it from the log"
        );
        crate::swap::remove_dir(&path)?;
    }
    match open_path(&path) {
        Err(ProjectionError::Layout {
            found, expected, ..
        }) => {
            tracing::warn!(
                model = name,
                found,
                expected,
                "the store has an earlier key layout; rebuilding it from the log"
            );
            crate::swap::remove_dir(&path)?;
            open_path(&path)
        }
        opened => opened,
    }
}

/// How long opening waits for a store's directory lock, which a handle dropped a moment ago may
/// still hold for a little while (fjall's background threads release the database last): a
/// swapped-in model is reopened right after its instances are closed, and a restarted one right
/// after it stopped.
const OPEN_LOCK_WAIT_MAX: Duration = Duration::from_secs(5);

/// Opens a fjall database with `open`, retrying for up to [`OPEN_LOCK_WAIT_MAX`] while its
/// directory lock is held.
fn open_waiting_for_lock(
    open: impl Fn() -> fjall::Result<fjall::Database>,
) -> Result<fjall::Database, ProjectionError> {
    let started = Instant::now();
    loop {
        match open() {
            Err(fjall::Error::Locked) if started.elapsed() < OPEN_LOCK_WAIT_MAX => {
                std::thread::sleep(Duration::from_millis(10));
            }
            result => return Ok(result?),
        }
    }
}

/// Whether `path` holds a store of the engine read models used before fjall (sled 0.34 keeps
/// its files `conf` and `db` at the top of its directory).
pub(crate) fn holds_sled_store(path: &Path) -> bool {
    path.join("conf").is_file() && path.join("db").is_file()
}

/// Writes `image` (in key order) and `checkpoint` to fjall: in one atomic batch for a serving
/// store; for a rebuilding one by bulk ingestion, the checkpoint last ([`ingest_image`], see
/// [`Store::open_for`]).
fn write_image<'a>(
    db: &fjall::Database,
    tree: &fjall::Keyspace,
    purpose: OpenFor,
    image: impl Iterator<Item = (&'a [u8], Option<&'a [u8]>)>,
    checkpoint: u64,
) -> Result<(), String> {
    let batch_bytes_max = match purpose {
        OpenFor::Serving => usize::MAX,
        OpenFor::Rebuilding => return ingest_image(tree, image, checkpoint),
    };
    let mut batch = db.batch();
    let mut batch_bytes = 0usize;
    for (key, value) in image {
        match value {
            Some(bytes) => {
                batch_bytes += key.len() + bytes.len();
                batch.insert(tree, key, bytes);
            }
            None => {
                batch_bytes += key.len();
                batch.remove(tree, key);
            }
        }
        if batch_bytes >= batch_bytes_max {
            std::mem::replace(&mut batch, db.batch())
                .commit()
                .map_err(|error| error.to_string())?;
            batch_bytes = 0;
        }
    }
    batch.insert(tree, CHECKPOINT_KEY, &checkpoint.to_be_bytes()[..]);
    batch.commit().map_err(|error| error.to_string())
}

/// Writes a rebuild's image (in key order) straight into new tables of fjall (its bulk
/// ingestion: no journal, no memtable, nothing to flush later), the checkpoint last. An
/// ingestion is newer than everything before it, so a later image's keys win over an
/// earlier one's, as a write batch's would.
fn ingest_image<'a>(
    tree: &fjall::Keyspace,
    image: impl Iterator<Item = (&'a [u8], Option<&'a [u8]>)>,
    checkpoint: u64,
) -> Result<(), String> {
    let failed = |error: fjall::Error| error.to_string();
    let mut ingestion = tree.start_ingestion().map_err(failed)?;
    for (key, value) in image {
        // fjall panics on keys out of order: the image's are sorted, and every model key
        // sorts before the checkpoint's (0xff); one that does not is refused, never written.
        if key >= CHECKPOINT_KEY {
            return Err(format!(
                "the key {} sorts after the checkpoint's",
                hex::encode(key)
            ));
        }
        match value {
            Some(bytes) => ingestion.write(key, bytes).map_err(failed)?,
            None => ingestion.write_tombstone(key).map_err(failed)?,
        }
    }
    ingestion
        .write(CHECKPOINT_KEY, &checkpoint.to_be_bytes()[..])
        .map_err(failed)?;
    ingestion.finish().map_err(failed)
}

/// The entries of `older` and `newer` (sorted by key, each key once) in key order, `newer`'s
/// where both have a key.
fn merge_newer<'a>(
    older: &'a [(Vec<u8>, Option<Vec<u8>>)],
    newer: &'a [Entry],
) -> impl Iterator<Item = (&'a [u8], Option<&'a [u8]>)> + 'a {
    let mut older = older.iter().peekable();
    let mut newer = newer.iter().peekable();
    std::iter::from_fn(move || {
        let order = match (older.peek(), newer.peek()) {
            (None, None) => return None,
            (Some(_), None) => std::cmp::Ordering::Less,
            (None, Some(_)) => std::cmp::Ordering::Greater,
            (Some((old, _)), Some((new, _))) => old.as_slice().cmp(new.as_slice()),
        };
        if order == std::cmp::Ordering::Less {
            return older
                .next()
                .map(|(key, value)| (key.as_slice(), value.as_deref()));
        }
        if order == std::cmp::Ordering::Equal {
            older.next();
        }
        newer
            .next()
            .map(|(key, value)| (key.as_slice(), Some(value.as_slice())))
    })
}

/// A range of fjall's entries, walkable both ways.
fn stored_range(
    tree: &fjall::Keyspace,
    lower: Bound<Vec<u8>>,
    upper: Bound<Vec<u8>>,
) -> impl DoubleEndedIterator<Item = Result<StoredEntry, ProjectionError>> {
    tree.range::<Vec<u8>, _>((lower, upper))
        .map(|guard| guard.into_inner().map_err(ProjectionError::from))
}

/// One entry as fjall returns it.
type StoredEntry = (fjall::Slice, fjall::Slice);

/// The value under `key`: the memtable's, else fjall's.
fn lookup<T: DeserializeOwned>(
    memtable: &Memtable,
    tree: &fjall::Keyspace,
    key: &[u8],
) -> Result<Option<T>, ProjectionError> {
    match memtable.lookup(key) {
        Some(Some(bytes)) => decode_value(key, bytes).map(Some),
        Some(None) => Ok(None),
        None => match tree.get(key)? {
            None => Ok(None),
            Some(bytes) => decode_value(key, &bytes).map(Some),
        },
    }
}

/// fjall's entries of a range merged with the memtable's (which win on equal keys; a removal
/// hides fjall's entry), in the walk's direction.
struct Merged<S, O>
where
    S: Iterator<Item = Result<StoredEntry, ProjectionError>>,
    O: Iterator<Item = (Vec<u8>, Option<Vec<u8>>)>,
{
    stored: std::iter::Peekable<S>,
    overlay: std::iter::Peekable<O>,
    direction: Direction,
}

impl<S, O> Merged<S, O>
where
    S: Iterator<Item = Result<StoredEntry, ProjectionError>>,
    O: Iterator<Item = (Vec<u8>, Option<Vec<u8>>)>,
{
    fn new(stored: S, overlay: O, direction: Direction) -> Self {
        Merged {
            stored: stored.peekable(),
            overlay: overlay.peekable(),
            direction,
        }
    }
}

impl<S, O> Iterator for Merged<S, O>
where
    S: Iterator<Item = Result<StoredEntry, ProjectionError>>,
    O: Iterator<Item = (Vec<u8>, Option<Vec<u8>>)>,
{
    type Item = Result<(Vec<u8>, Vec<u8>), ProjectionError>;

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            let from_stored = match self.stored.peek() {
                None => None,
                Some(Err(_)) => {
                    return self
                        .stored
                        .next()
                        .map(|entry| entry.map(|(key, value)| (key.to_vec(), value.to_vec())))
                }
                Some(Ok((key, _))) => Some(key.clone()),
            };
            let from_overlay = self.overlay.peek().map(|(key, _)| key.as_slice());
            // Which comes first in the walk: fjall's entry, the overlay's, or both (same key).
            let order = match (&from_stored, from_overlay) {
                (None, None) => return None,
                (Some(_), None) => std::cmp::Ordering::Less,
                (None, Some(_)) => std::cmp::Ordering::Greater,
                (Some(stored_key), Some(overlay_key)) => {
                    let order = stored_key.as_ref().cmp(overlay_key);
                    match self.direction {
                        Direction::Forward => order,
                        Direction::Backward => order.reverse(),
                    }
                }
            };
            match order {
                std::cmp::Ordering::Less => {
                    let entry = self.stored.next()?;
                    return Some(entry.map(|(key, value)| (key.to_vec(), value.to_vec())));
                }
                std::cmp::Ordering::Equal | std::cmp::Ordering::Greater => {
                    if order == std::cmp::Ordering::Equal {
                        self.stored.next();
                    }
                    let (key, value) = self.overlay.next()?;
                    match value {
                        Some(value) => return Some(Ok((key, value))),
                        None => continue,
                    }
                }
            }
        }
    }
}

/// Changes buffered in memory until [`Changes::commit`] puts them into the memtable with the
/// new checkpoint (a dropped set changes nothing). Reads see the buffered changes first, so
/// one batch of events can build on its own earlier events.
#[derive(Debug)]
pub struct Changes<'a> {
    store: &'a Store,
    overlay: Overlay,
    /// Bytes of keys and values put so far (see [`Memtable::bytes`]).
    bytes: usize,
}

impl Changes<'_> {
    /// The value under `key`, as the buffered changes leave it.
    pub fn get<T: DeserializeOwned>(&self, key: &[u8]) -> Result<Option<T>, ProjectionError> {
        match self.overlay.get(key) {
            Some(Some(bytes)) => decode_value(key, bytes).map(Some),
            Some(None) => Ok(None),
            None => lookup(&*self.store.memtable()?, &self.store.tree, key),
        }
    }

    /// Whether a value is under `key`, as the buffered changes leave it.
    pub fn contains(&self, key: &[u8]) -> Result<bool, ProjectionError> {
        if let Some(value) = self.overlay.get(key) {
            return Ok(value.is_some());
        }
        self.store.contains(key)
    }

    /// Buffers writing `value` under `key`.
    pub fn put<T: Serialize>(&mut self, key: Vec<u8>, value: &T) -> Result<(), ProjectionError> {
        let bytes = protocol::codec::encode(value)
            .map_err(|error| value_error(&key, &error.to_string()))?;
        self.bytes += key.len() + bytes.len();
        self.overlay.insert(key, Some(bytes));
        Ok(())
    }

    /// Buffers removing `key`.
    pub fn remove(&mut self, key: Vec<u8>) {
        self.bytes += key.len();
        self.overlay.insert(key, None);
    }

    /// The memtable's and the buffered changes' entries in a range, newest per key.
    fn overlay_range(
        &self,
        lower: &Bound<Vec<u8>>,
        upper: &Bound<Vec<u8>>,
    ) -> Result<Overlay, ProjectionError> {
        let mut merged = self.store.memtable()?.range(lower, upper);
        for (key, value) in self
            .overlay
            .range::<Vec<u8>, _>((lower.clone(), upper.clone()))
        {
            merged.insert(key.clone(), value.clone());
        }
        Ok(merged)
    }

    /// The entries under `prefix` after the key `after` (exclusive), ascending, as the buffered
    /// changes leave them. Collected, because the layers are merged; callers scan one room's or
    /// one user's records, never the whole store.
    pub fn scan<T: DeserializeOwned>(
        &self,
        prefix: &[u8],
        after: Option<&[u8]>,
    ) -> Result<Vec<(Vec<u8>, T)>, ProjectionError> {
        let (lower, upper) = scan_bounds(prefix, after, Direction::Forward);
        let overlay = self.overlay_range(&lower, &upper)?;
        Merged::new(
            stored_range(&self.store.tree, lower, upper),
            overlay.into_iter(),
            Direction::Forward,
        )
        .map(|entry| {
            let (key, bytes) = entry?;
            let value = decode_value(&key, &bytes)?;
            Ok((key, value))
        })
        .collect()
    }

    /// Counts the entries under `prefix` after the key `after` (exclusive) that `admit`, as the
    /// buffered changes leave them, without collecting fjall's: a room's whole history may be
    /// counted (a new member's unread messages).
    pub fn count<T: DeserializeOwned>(
        &self,
        prefix: &[u8],
        after: Option<&[u8]>,
        mut admit: impl FnMut(&T) -> bool,
    ) -> Result<u64, ProjectionError> {
        let (lower, upper) = scan_bounds(prefix, after, Direction::Forward);
        let overlay = self.overlay_range(&lower, &upper)?;
        let mut count = 0u64;
        for entry in stored_range(&self.store.tree, lower, upper) {
            let (key, value) = entry?;
            // Keys the overlay touches are counted from the overlay below.
            if overlay.contains_key(key.as_ref()) {
                continue;
            }
            if admit(&decode_value(&key, &value)?) {
                count += 1;
            }
        }
        for (key, value) in &overlay {
            if let Some(bytes) = value {
                if admit(&decode_value(key, bytes)?) {
                    count += 1;
                }
            }
        }
        Ok(count)
    }

    /// Puts the buffered changes into the memtable with `checkpoint` (no disk call; the image
    /// is written when it is due, see [`Store`]).
    pub fn commit(self, checkpoint: u64) -> Result<(), ProjectionError> {
        self.commit_holding(checkpoint, 0, |_| Ok(()))
    }

    /// [`Changes::commit`] for a model that holds some records decoded in memory between
    /// images instead of putting them here at every change (a room's record changed by ten
    /// thousand messages is then encoded once per image, not ten thousand times). `held` is
    /// called only when this commit freezes an image: it puts every record held into it (and
    /// the model forgets them, now in the store), so each image is the whole model at its
    /// checkpoint. `held_bytes` (about what the held records encode to) counts towards the
    /// image's size limit, which so bounds what the model holds too. Reads of held records are
    /// the model's business: the store has them only as of the last image.
    pub fn commit_holding(
        self,
        checkpoint: u64,
        held_bytes: usize,
        held: impl FnOnce(&mut HeldRecords) -> Result<(), ProjectionError>,
    ) -> Result<(), ProjectionError> {
        let overlay = self.overlay;
        let mut memtable = self.store.memtable()?;
        let memtable = &mut *memtable;
        memtable.active.push_batch(overlay);
        memtable.bytes += self.bytes;
        self.store.checkpoint.store(checkpoint, Ordering::SeqCst);
        self.store.maybe_write_image(memtable, held_bytes, held)
    }
}

/// Where a model puts the records it held outside the store when an image takes them
/// ([`Changes::commit_holding`], [`Store::flush_holding`], [`Store::dump_holding`]).
#[derive(Debug, Default)]
pub struct HeldRecords {
    /// Encoded, in the order put (each key once).
    entries: Vec<Entry>,
    bytes: usize,
}

impl HeldRecords {
    /// Puts `value` under `key`, encoded as [`Changes::put`] encodes it. Each key at most once.
    pub fn put<T: Serialize>(&mut self, key: Vec<u8>, value: &T) -> Result<(), ProjectionError> {
        let bytes = protocol::codec::encode(value)
            .map_err(|error| value_error(&key, &error.to_string()))?;
        self.bytes += key.len() + bytes.len();
        self.entries.push((key, bytes));
        Ok(())
    }

    /// Has `held` put its records and adds them to `overlay` as its newest run, where they
    /// replace what it has under the same keys (they are newer); returns their bytes. Sorted
    /// once and merged in passes, a rebuild's million message index entries cost a fraction of
    /// inserting them one by one into a large tree.
    fn take(
        overlay: &mut SortedRuns,
        held: impl FnOnce(&mut HeldRecords) -> Result<(), ProjectionError>,
    ) -> Result<usize, ProjectionError> {
        let mut records = HeldRecords::default();
        held(&mut records)?;
        let HeldRecords { mut entries, bytes } = records;
        entries.sort_unstable_by(|a, b| a.0.cmp(&b.0));
        overlay.push_sorted(
            entries
                .into_iter()
                .map(|(key, value)| (key, Some(value)))
                .collect(),
        );
        Ok(bytes)
    }
}

/// The stored range of a prefix scan; `after` is exclusive in the direction of the walk.
fn scan_bounds(
    prefix: &[u8],
    after: Option<&[u8]>,
    direction: Direction,
) -> (Bound<Vec<u8>>, Bound<Vec<u8>>) {
    let start = Bound::Included(prefix.to_vec());
    let end = match prefix_end(prefix) {
        Some(end) => Bound::Excluded(end),
        None => Bound::Unbounded,
    };
    match (after, direction) {
        (None, _) => (start, end),
        (Some(after), Direction::Forward) => (Bound::Excluded(after.to_vec()), end),
        (Some(after), Direction::Backward) => (start, Bound::Excluded(after.to_vec())),
    }
}

/// The smallest key greater than every key starting with `prefix`, or `None` when there is
/// none (the prefix is empty or all 0xff bytes).
fn prefix_end(prefix: &[u8]) -> Option<Vec<u8>> {
    let mut end = prefix.to_vec();
    while let Some(last) = end.pop() {
        if last < u8::MAX {
            end.push(last + 1);
            return Some(end);
        }
    }
    None
}

fn decode_value<T: DeserializeOwned>(key: &[u8], bytes: &[u8]) -> Result<T, ProjectionError> {
    protocol::codec::decode(bytes, STORED_VALUE_BYTES_MAX)
        .map_err(|error| value_error(key, &error.to_string()))
}

fn value_error(key: &[u8], message: &str) -> ProjectionError {
    ProjectionError::Value {
        key: hex::encode(key),
        message: message.to_owned(),
    }
}

/// Builds a store key: a tag naming the kind of record, then its components. Text ids end with
/// a 0 byte (which no id contains), so one user's prefix never matches another's (`bob` and
/// `bobby`); numbers are big-endian and times order-preserving, so keys sort as their values.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Key(Vec<u8>);

impl Key {
    /// A key of the record kind `tag` (by convention a short ASCII name and `/`).
    pub fn new(tag: &[u8]) -> Key {
        Key(tag.to_vec())
    }

    /// Appends a text id and its 0 terminator.
    #[must_use]
    pub fn text(mut self, text: &str) -> Key {
        self.0.extend_from_slice(text.as_bytes());
        self.0.push(0);
        self
    }

    /// Appends a UUID's 16 bytes.
    #[must_use]
    pub fn uuid(mut self, uuid: &Uuid) -> Key {
        self.0.extend_from_slice(uuid.as_bytes());
        self
    }

    /// Appends a number, big-endian.
    #[must_use]
    pub fn number(mut self, number: u64) -> Key {
        self.0.extend_from_slice(&number.to_be_bytes());
        self
    }

    /// Appends a time so that later times sort later.
    #[must_use]
    pub fn time(self, time: Timestamp) -> Key {
        self.number(ordered_millis(time))
    }

    /// Appends raw bytes (a suffix taken from another key, say).
    #[must_use]
    pub fn bytes(mut self, bytes: &[u8]) -> Key {
        self.0.extend_from_slice(bytes);
        self
    }

    /// The key's bytes.
    pub fn build(self) -> Vec<u8> {
        self.0
    }
}

/// Milliseconds mapped to an unsigned number of the same order (the sign bit flipped), so
/// times before 1970 still sort first.
pub fn ordered_millis(time: Timestamp) -> u64 {
    u64::from_be_bytes(time.millis().to_be_bytes()) ^ (1 << 63)
}

/// The time [`ordered_millis`] was made from.
pub fn millis_from_ordered(ordered: u64) -> Timestamp {
    Timestamp::from_millis(i64::from_be_bytes((ordered ^ (1 << 63)).to_be_bytes()))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn prefix_ends_are_the_next_key_after_the_prefix() {
        assert_eq!(prefix_end(b"ab"), Some(b"ac".to_vec()));
        assert_eq!(prefix_end(b"a\xff"), Some(b"b".to_vec()));
        assert_eq!(prefix_end(b"\xff\xff"), None);
        assert_eq!(prefix_end(b""), None);
    }

    #[test]
    fn ordered_times_sort_like_times_and_round_trip() {
        let times = [i64::MIN, -1, 0, 1, 1_795_773_600_000, i64::MAX];
        for pair in times.windows(2) {
            let (a, b) = (
                Timestamp::from_millis(pair[0]),
                Timestamp::from_millis(pair[1]),
            );
            assert!(ordered_millis(a) < ordered_millis(b));
            assert_eq!(millis_from_ordered(ordered_millis(a)), a);
        }
    }

    #[test]
    fn changes_are_visible_before_commit_and_atomic_with_the_checkpoint(
    ) -> Result<(), ProjectionError> {
        let store = Store::temporary()?;
        let mut changes = store.changes()?;
        changes.put(Key::new(b"a/").text("x").build(), &1u32)?;
        changes.put(Key::new(b"a/").text("y").build(), &2u32)?;
        changes.put(Key::new(b"b/").text("z").build(), &3u32)?;
        assert_eq!(
            changes.get::<u32>(&Key::new(b"a/").text("x").build())?,
            Some(1)
        );
        assert_eq!(store.get::<u32>(&Key::new(b"a/").text("x").build())?, None);
        changes.commit(7)?;
        assert_eq!(store.checkpoint(), 7);
        let mut changes = store.changes()?;
        changes.remove(Key::new(b"a/").text("x").build());
        changes.put(Key::new(b"a/").text("w").build(), &4u32)?;
        let scanned: Vec<u32> = changes
            .scan::<u32>(b"a/", None)?
            .into_iter()
            .map(|(_, value)| value)
            .collect();
        assert_eq!(scanned, [4, 2]);
        assert_eq!(changes.count::<u32>(b"a/", None, |value| *value > 1)?, 2);
        assert_eq!(changes.count::<u32>(b"a/", None, |_| true)?, 2);
        assert_eq!(changes.count::<u32>(b"b/", None, |_| true)?, 1);
        let backward: Vec<u32> = store
            .scan::<u32>(b"a/", None, Direction::Backward)
            .map(|entry| entry.map(|(_, value)| value))
            .collect::<Result<_, _>>()?;
        assert_eq!(backward, [2, 1]);
        Ok(())
    }

    /// A rebuilding store that writes what it holds once it reaches `limit` bytes.
    fn rebuilding(limit: usize) -> Store {
        let store = Store::temporary_for(OpenFor::Rebuilding).unwrap();
        store.memtable.lock().unwrap().limit = limit;
        store
    }

    /// An event at `position` (the store tests look only at positions).
    fn envelope(position: u64) -> crate::EventEnvelope {
        crate::EventEnvelope {
            position,
            stream: "user-u".into(),
            version: position,
            event_id: Uuid::nil(),
            command_id: domain::CommandId(Uuid::nil()),
            actor: "u".into(),
            recorded_at: Timestamp::from_millis(0),
            event: domain::Event::OnlineVisibilityChanged {
                user_id: domain::UserId::parse("u").unwrap(),
                visible: true,
            },
        }
    }

    /// What an event does in these tests: a read-modify-write of a counter (so each batch
    /// builds on everything before it, held or written), a value of its own, and the removal
    /// of an earlier one.
    fn apply_counting(
        changes: &mut Changes<'_>,
        envelope: &crate::EventEnvelope,
    ) -> Result<(), ProjectionError> {
        let position = envelope.position;
        let counter = Key::new(b"c/").number(position % 7).build();
        let count = changes.get::<u64>(&counter)?.unwrap_or(0);
        changes.put(counter, &(count + position))?;
        changes.put(Key::new(b"v/").number(position).build(), &position)?;
        if position.is_multiple_of(3) {
            changes.remove(Key::new(b"v/").number(position / 2).build());
        }
        let live = changes.count::<u64>(b"v/", None, |_| true)?;
        changes.put(Key::new(b"n/").number(position).build(), &live)
    }

    fn apply_all(store: &Store, events: &[crate::EventEnvelope]) {
        for batch in events.chunks(5) {
            store.apply_fresh(batch, apply_counting).unwrap();
        }
    }

    #[test]
    fn a_rebuilding_store_ends_equal_to_a_serving_one_however_often_it_writes() {
        let events: Vec<_> = (1..=200).map(envelope).collect();
        let serving = Store::temporary().unwrap();
        apply_all(&serving, &events);
        let expected = serving.dump(&[]).unwrap();
        // Never written until the end, written after every batch, and every few batches.
        for limit in [usize::MAX, 0, 300] {
            let rebuilding = rebuilding(limit);
            apply_all(&rebuilding, &events);
            assert_eq!(rebuilding.checkpoint(), 200);
            assert_eq!(rebuilding.dump(&[]).unwrap(), expected, "limit {limit}");
            // Reads see what was held; reopening would see what `flush` wrote.
            assert_eq!(
                rebuilding
                    .get::<u64>(&Key::new(b"v/").number(199).build())
                    .unwrap(),
                Some(199)
            );
        }
    }

    #[test]
    fn a_failed_batch_changes_nothing_and_applying_again_gives_the_same_model() {
        for store in [rebuilding(usize::MAX), Store::temporary().unwrap()] {
            let events: Vec<_> = (1..=10).map(envelope).collect();
            store.apply_fresh(&events[..5], apply_counting).unwrap();
            assert_eq!(store.checkpoint(), 5);
            let before = store.dump(&[]).unwrap();
            let failed = store.apply_fresh(&events[5..], |changes, envelope| {
                apply_counting(changes, envelope)?;
                if envelope.position == 8 {
                    return Err(ProjectionError::Store("refused".into()));
                }
                Ok(())
            });
            assert!(failed.is_err());
            // The failed batch left the memtable and the checkpoint as they were, so applying
            // again from there gives what a store that never failed has.
            assert_eq!(store.checkpoint(), 5);
            assert_eq!(store.dump(&[]).unwrap(), before);
            apply_all(&store, &events);
            let serving = Store::temporary().unwrap();
            apply_all(&serving, &events);
            assert_eq!(store.dump(&[]).unwrap(), serving.dump(&[]).unwrap());
        }
    }

    /// A serving store in `path` that writes an image once its memtable holds `limit` bytes.
    fn serving_at(path: &Path, limit: usize) -> Store {
        let store = Store::open(path).unwrap();
        let mut memtable = store.memtable.lock().unwrap();
        memtable.limit = limit;
        memtable.interval = None;
        drop(memtable);
        store
    }

    #[test]
    fn reads_see_the_memtable_before_any_image_is_written() {
        let directory = tempfile_directory("memtable-reads");
        let store = serving_at(&directory, usize::MAX);
        let events: Vec<_> = (1..=20).map(envelope).collect();
        apply_all(&store, &events);
        assert_eq!(store.checkpoint(), 20);
        // Nothing is in fjall yet: not even the checkpoint.
        assert_eq!(store.tree.get(CHECKPOINT_KEY).unwrap(), None);
        assert_eq!(
            store
                .get::<u64>(&Key::new(b"v/").number(19).build())
                .unwrap(),
            Some(19)
        );
        assert!(!store.contains(&Key::new(b"v/").number(3).build()).unwrap());
        let backward: Vec<u64> = store
            .scan::<u64>(b"v/", None, Direction::Backward)
            .map(|entry| entry.map(|(_, value)| value))
            .take(3)
            .collect::<Result<_, _>>()
            .unwrap();
        assert_eq!(backward, [20, 19, 18]);
        drop(store);
        std::fs::remove_dir_all(&directory).unwrap();
    }

    #[test]
    fn a_store_dropped_between_images_resumes_from_the_last_image_and_catches_up_equal() {
        let events: Vec<_> = (1..=300).map(envelope).collect();
        let expected = {
            let live = Store::temporary().unwrap();
            apply_all(&live, &events);
            live.dump(&[]).unwrap()
        };
        // Images every few batches; the store is dropped (as a crash drops its memory) with
        // changes after the last image only in the memtable.
        let directory = tempfile_directory("crash-between-images");
        let store = serving_at(&directory, 400);
        apply_all(&store, &events[..215]);
        store.memtable.lock().unwrap().limit = usize::MAX;
        apply_all(&store, &events[215..230]);
        assert_eq!(store.checkpoint(), 230);
        drop(store);
        let reopened = serving_at(&directory, 400);
        let resumed = reopened.checkpoint();
        assert!(resumed > 0 && resumed <= 215, "resumed at {resumed}");
        // What the runtime does: read the log from the checkpoint on and apply it.
        apply_all(&reopened, &events[resumed as usize..]);
        assert_eq!(reopened.dump(&[]).unwrap(), expected);
        // And an image written in full reopens as the same model.
        reopened.flush().unwrap();
        drop(reopened);
        let reopened = serving_at(&directory, 400);
        assert_eq!(reopened.checkpoint(), 300);
        assert_eq!(reopened.dump(&[]).unwrap(), expected);
        drop(reopened);
        std::fs::remove_dir_all(&directory).unwrap();
    }

    /// A fresh directory for a test's store under the system's temporary directory.
    #[test]
    fn a_model_directory_of_the_earlier_engine_is_deleted_and_rebuilt_from_the_log() {
        let data = tempfile_directory("sled-store");
        let path = store_path(&data, "model");
        {
            let sled_store = sled::open(&path).unwrap();
            sled_store
                .insert(CHECKPOINT_KEY, &42u64.to_be_bytes()[..])
                .unwrap();
            sled_store.flush().unwrap();
        }
        assert!(holds_sled_store(&path));
        // Opened directly, it is refused with a message naming the engine, never misread.
        match Store::open(&path) {
            Err(ProjectionError::Store(message)) => assert!(message.contains("sled"), "{message}"),
            other => panic!("expected a refusal, got {other:?}"),
        }
        // Opened as a service opens it, it starts afresh at position 0 (and catches up).
        let store = open_served(&data, "model", Store::open).unwrap();
        assert_eq!(store.checkpoint(), 0);
        drop(store);
        assert!(!holds_sled_store(&path));
        drop(std::fs::remove_dir_all(&data));
    }

    fn tempfile_directory(name: &str) -> PathBuf {
        let directory =
            std::env::temp_dir().join(format!("projections-store-{name}-{}", std::process::id()));
        drop(std::fs::remove_dir_all(&directory));
        directory
    }
}
