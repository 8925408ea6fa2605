//! The sled store a read model owns: one tree with a short key prefix per kind of record (each
//! model's module docs hold its catalogue), values in the protocol codec's bincode, and the
//! checkpoint written in the same atomic `apply_batch` as the changes it covers. So after any
//! crash the model and its checkpoint agree, and catching up from checkpoint + 1 applies each
//! event exactly once.
//!
//! A store opened for a rebuild ([`OpenFor::Rebuilding`]) trades that atomicity, which nothing
//! needs until it is swapped in, for speed: see [`Store::open_for`].

use std::collections::BTreeMap;
use std::ops::Bound;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, PoisonError};

use domain::Timestamp;
use serde::de::DeserializeOwned;
use serde::Serialize;
use sha2::{Digest as _, Sha256};
use uuid::Uuid;

use crate::error::ProjectionError;
use crate::runtime::OpenFor;

/// sled's page cache per store. sled's default is 1 GiB per database, too much for five read
/// models in one process; the hot part of a read model (recent rooms and messages) fits in this.
pub const STORE_CACHE_BYTES: u64 = 64 * 1024 * 1024;

/// sled's page cache for a store being rebuilt: the rebuild writes all over the model, and a
/// cache smaller than the model makes sled evict and read back pages it is about to change.
/// Only for the rebuild's duration; the swapped-in model is reopened with [`STORE_CACHE_BYTES`].
pub const REBUILD_CACHE_BYTES: u64 = 1024 * 1024 * 1024;

/// How many bytes of keys and values a store being rebuilt holds in memory before it writes
/// them (in key order) to sled. Held changes coalesce: a room's record or a member's view
/// changed by ten thousand messages is written once, not ten thousand times.
pub const REBUILD_HELD_BYTES: usize = 256 * 1024 * 1024;

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

/// One read model's sled database and its cached checkpoint.
#[derive(Debug)]
pub struct Store {
    db: sled::Db,
    /// The position of the last applied event; read without touching sled. For a serving store
    /// it is also the checkpoint in sled; a rebuilding one may hold changes up to it in memory.
    checkpoint: AtomicU64,
    /// `Some` for a store being rebuilt: the changes applied but not yet written.
    held: Option<Mutex<Held>>,
}

/// A rebuilding store's changes in memory, not yet written to sled.
#[derive(Debug, Default)]
struct Held {
    /// Write once `bytes` reaches this ([`REBUILD_HELD_BYTES`]; less in tests).
    limit: usize,
    overlay: Overlay,
    /// Bytes of keys and values put into `overlay` (overwritten ones counted again: an upper
    /// bound, so the bound on memory holds).
    bytes: usize,
    /// The checkpoint in sled, which `overlay` continues.
    written_checkpoint: u64,
    /// Why a write failed part way, if one did: sled then holds some of the changes after
    /// `written_checkpoint` but not all, so the store refuses all further work (a rebuild ends
    /// on any error and its directory is deleted).
    broken: Option<String>,
}

impl Held {
    /// Fails when an earlier write failed part way.
    fn usable(&self) -> Result<(), ProjectionError> {
        match &self.broken {
            None => Ok(()),
            Some(why) => Err(ProjectionError::Store(format!(
                "an earlier write of this rebuild failed part way ({why}); it must start again"
            ))),
        }
    }
}

/// Changes by key: `Some(bytes)` to write, `None` to remove.
type Overlay = BTreeMap<Vec<u8>, Option<Vec<u8>>>;

impl Store {
    /// Opens (or creates) the store in the directory `path`, to serve.
    ///
    /// Fails with [`ProjectionError::Store`] when another process (or another handle in this
    /// one) has it open: sled locks its directory.
    pub fn open(path: &Path) -> Result<Store, ProjectionError> {
        Store::open_for(path, OpenFor::Serving)
    }

    /// Opens (or creates) the store in the directory `path` for `purpose`.
    ///
    /// A store opened for [`OpenFor::Rebuilding`] has a larger page cache and holds applied
    /// changes in memory across batches, up to [`REBUILD_HELD_BYTES`], then writes them in key
    /// order with one sled insert each rather than one atomic batch (sled's batches write in
    /// hash order). So a crash can leave it with part of a write: that is safe because a
    /// rebuild is only ever used after [`Store::flush`] and a swap (`crate::swap`), and a
    /// rebuild a crash interrupted is deleted when the model is next opened. `flush`, `dump`,
    /// every read and [`Store::changes`] write what is held first.
    pub fn open_for(path: &Path, purpose: OpenFor) -> Result<Store, ProjectionError> {
        std::fs::create_dir_all(path).map_err(|error| {
            ProjectionError::Store(format!("creating {}: {error}", path.display()))
        })?;
        let config = sled::Config::new().path(path);
        Store::from_config(config, purpose)
    }

    /// A store in a temporary directory that sled deletes when it is dropped (tests, rebuilds
    /// compared and thrown away).
    pub fn temporary() -> Result<Store, ProjectionError> {
        Store::temporary_for(OpenFor::Serving)
    }

    /// [`Store::temporary`] for `purpose` (see [`Store::open_for`]).
    pub fn temporary_for(purpose: OpenFor) -> Result<Store, ProjectionError> {
        Store::from_config(sled::Config::new().temporary(true), purpose)
    }

    fn from_config(config: sled::Config, purpose: OpenFor) -> Result<Store, ProjectionError> {
        let cache = match purpose {
            OpenFor::Serving => STORE_CACHE_BYTES,
            OpenFor::Rebuilding => REBUILD_CACHE_BYTES,
        };
        let mut store = Store::from_db(config.cache_capacity(cache).open()?)?;
        if purpose == OpenFor::Rebuilding {
            store.held = Some(Mutex::new(Held {
                limit: REBUILD_HELD_BYTES,
                written_checkpoint: store.checkpoint(),
                ..Held::default()
            }));
        }
        Ok(store)
    }

    fn from_db(db: sled::Db) -> Result<Store, ProjectionError> {
        let checkpoint = match db.get(CHECKPOINT_KEY)? {
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
            checkpoint: AtomicU64::new(checkpoint),
            held: None,
        })
    }

    /// The position of the last applied event (0 for a new store).
    pub fn checkpoint(&self) -> u64 {
        self.checkpoint.load(Ordering::SeqCst)
    }

    /// Writes what a rebuilding store holds (nothing to do for a serving store, or when nothing
    /// is held), so that sled alone answers reads.
    fn write_held(&self) -> Result<(), ProjectionError> {
        let Some(held) = &self.held else {
            return Ok(());
        };
        let mut held = held.lock().unwrap_or_else(PoisonError::into_inner);
        held.usable()?;
        if held.overlay.is_empty() {
            return Ok(());
        }
        let overlay = std::mem::take(&mut held.overlay);
        held.bytes = 0;
        self.write_in_key_order(&mut held, overlay, self.checkpoint())
    }

    /// A rebuilding store's write: each change by itself, in key order (a sorted overlay meets
    /// sled's leaves in order), then the checkpoint. Not atomic (see [`Store::open_for`]): a
    /// failure part way breaks the store for good.
    fn write_in_key_order(
        &self,
        held: &mut Held,
        overlay: Overlay,
        checkpoint: u64,
    ) -> Result<(), ProjectionError> {
        let written = overlay
            .into_iter()
            .try_for_each(|(key, value)| {
                match value {
                    Some(bytes) => self.db.insert(key, bytes)?,
                    None => self.db.remove(key)?,
                };
                Ok::<(), sled::Error>(())
            })
            .and_then(|()| {
                self.db
                    .insert(CHECKPOINT_KEY, &checkpoint.to_be_bytes()[..])
                    .map(drop)
            });
        match written {
            Ok(()) => {
                held.written_checkpoint = checkpoint;
                Ok(())
            }
            Err(error) => {
                held.broken = Some(error.to_string());
                Err(error.into())
            }
        }
    }

    /// The value under `key`, if any.
    pub fn get<T: DeserializeOwned>(&self, key: &[u8]) -> Result<Option<T>, ProjectionError> {
        self.write_held()?;
        self.get_written(key)
    }

    /// The value under `key` in sled, whatever is held: for [`Changes`], whose overlay has the
    /// held changes (and which may be applying under the lock on them).
    fn get_written<T: DeserializeOwned>(&self, key: &[u8]) -> Result<Option<T>, ProjectionError> {
        match self.db.get(key)? {
            None => Ok(None),
            Some(bytes) => decode_value(key, &bytes).map(Some),
        }
    }

    /// Whether anything is stored under `key`.
    pub fn contains(&self, key: &[u8]) -> Result<bool, ProjectionError> {
        self.write_held()?;
        Ok(self.db.contains_key(key)?)
    }

    /// The entries whose keys start with `prefix`, in `direction`, starting after the key
    /// `after` (exclusive; "after" in the direction of the walk) when one is given.
    pub fn scan<'a, T: DeserializeOwned + 'a>(
        &'a self,
        prefix: &[u8],
        after: Option<&[u8]>,
        direction: Direction,
    ) -> impl Iterator<Item = Result<(Vec<u8>, T), ProjectionError>> + 'a {
        // A failure to write what is held comes out as the scan's first (and only) item.
        let written = self.write_held();
        let (lower, upper) = scan_bounds(prefix, after, direction);
        let entries = self.db.range::<Vec<u8>, _>((lower, upper));
        let entries: Box<dyn Iterator<Item = sled::Result<(sled::IVec, sled::IVec)>>> =
            match (&written, direction) {
                (Err(_), _) => Box::new(std::iter::empty()),
                (Ok(()), Direction::Forward) => Box::new(entries),
                (Ok(()), Direction::Backward) => Box::new(entries.rev()),
            };
        let entries = entries.map(|entry| {
            let (key, value) = entry?;
            let decoded = decode_value(&key, &value)?;
            Ok((key.to_vec(), decoded))
        });
        written.err().map(Err).into_iter().chain(entries)
    }

    /// Applies the part of `batch` after the checkpoint, event by event, into one set of changes
    /// committed atomically with the new checkpoint: what most models' `apply` is.
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
        let Some(held) = &self.held else {
            let mut changes = self.changes()?;
            for envelope in fresh {
                apply_event(&mut changes, envelope)?;
            }
            return changes.commit(last.position);
        };
        // Rebuilding: the batch continues the held changes, and is written with them once they
        // are large enough.
        let mut held = held.lock().unwrap_or_else(PoisonError::into_inner);
        held.usable()?;
        let mut changes = Changes {
            store: self,
            overlay: std::mem::take(&mut held.overlay),
            bytes: held.bytes,
        };
        for envelope in fresh {
            if let Err(error) = apply_event(&mut changes, envelope) {
                // The held changes went with the failed batch: back to what sled has.
                held.bytes = 0;
                self.checkpoint
                    .store(held.written_checkpoint, Ordering::SeqCst);
                return Err(error);
            }
        }
        if changes.bytes >= held.limit {
            held.bytes = 0;
            self.write_in_key_order(&mut held, changes.overlay, last.position)?;
        } else {
            held.overlay = changes.overlay;
            held.bytes = changes.bytes;
        }
        self.checkpoint.store(last.position, Ordering::SeqCst);
        Ok(())
    }

    /// A set of changes to commit atomically with a new checkpoint (a rebuilding store writes
    /// what it holds first, so the changes build on everything applied).
    pub fn changes(&self) -> Result<Changes<'_>, ProjectionError> {
        self.write_held()?;
        Ok(Changes {
            store: self,
            overlay: BTreeMap::new(),
            bytes: 0,
        })
    }

    /// Every entry, in key order, except those under the `volatile` prefixes (state that
    /// depends on the clock rather than on the log, such as notifications already sent).
    pub fn dump(&self, volatile: &[&[u8]]) -> Result<Dump, ProjectionError> {
        self.write_held()?;
        let mut dump = Vec::new();
        for entry in self.db.iter() {
            let (key, value) = entry?;
            if volatile.iter().any(|prefix| key.starts_with(prefix)) {
                continue;
            }
            dump.push((key.to_vec(), value.to_vec()));
        }
        Ok(dump)
    }

    /// Writes everything committed so far to disk. Commits are atomic without it (sled writes
    /// a batch whole or not at all), but only durable after it or sled's periodic flush.
    pub fn flush(&self) -> Result<(), ProjectionError> {
        self.write_held()?;
        self.db.flush()?;
        Ok(())
    }
}

/// Changes buffered in memory until [`Changes::commit`] writes them in one atomic sled batch
/// with the new checkpoint. Reads see the buffered changes first, so one batch of events can
/// build on its own earlier events.
#[derive(Debug)]
pub struct Changes<'a> {
    store: &'a Store,
    overlay: Overlay,
    /// Bytes of keys and values put so far (see [`Held::bytes`]).
    bytes: usize,
}

impl Changes<'_> {
    /// The value under `key`, as the buffered changes leave it.
    pub fn get<T: DeserializeOwned>(&self, key: &[u8]) -> Result<Option<T>, ProjectionError> {
        match self.overlay.get(key) {
            Some(Some(bytes)) => decode_value(key, bytes).map(Some),
            Some(None) => Ok(None),
            None => self.store.get_written(key),
        }
    }

    /// Whether a value is under `key`, as the buffered changes leave it.
    pub fn contains(&self, key: &[u8]) -> Result<bool, ProjectionError> {
        match self.overlay.get(key) {
            Some(value) => Ok(value.is_some()),
            None => Ok(self.store.db.contains_key(key)?),
        }
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

    /// The entries under `prefix` after the key `after` (exclusive), ascending, as the buffered
    /// changes leave them. Collected, because the overlay and the tree are merged; callers scan
    /// one room's or one user's records, never the whole store.
    pub fn scan<T: DeserializeOwned>(
        &self,
        prefix: &[u8],
        after: Option<&[u8]>,
    ) -> Result<Vec<(Vec<u8>, T)>, ProjectionError> {
        let (lower, upper) = scan_bounds(prefix, after, Direction::Forward);
        let mut merged: BTreeMap<Vec<u8>, Vec<u8>> = BTreeMap::new();
        for entry in self
            .store
            .db
            .range::<Vec<u8>, _>((lower.clone(), upper.clone()))
        {
            let (key, value) = entry?;
            merged.insert(key.to_vec(), value.to_vec());
        }
        for (key, value) in self.overlay.range::<Vec<u8>, _>((lower, upper)) {
            match value {
                Some(bytes) => merged.insert(key.clone(), bytes.clone()),
                None => merged.remove(key),
            };
        }
        merged
            .into_iter()
            .map(|(key, bytes)| {
                let value = decode_value(&key, &bytes)?;
                Ok((key, value))
            })
            .collect()
    }

    /// Counts the entries under `prefix` after the key `after` (exclusive) that `admit`, as the
    /// buffered changes leave them, without collecting them: a room's whole history may be
    /// counted (a new member's unread messages).
    pub fn count<T: DeserializeOwned>(
        &self,
        prefix: &[u8],
        after: Option<&[u8]>,
        mut admit: impl FnMut(&T) -> bool,
    ) -> Result<u64, ProjectionError> {
        let (lower, upper) = scan_bounds(prefix, after, Direction::Forward);
        let mut count = 0u64;
        for entry in self
            .store
            .db
            .range::<Vec<u8>, _>((lower.clone(), upper.clone()))
        {
            let (key, value) = entry?;
            // Keys the overlay touches are counted from the overlay below.
            if self.overlay.contains_key(key.as_ref()) {
                continue;
            }
            if admit(&decode_value(&key, &value)?) {
                count += 1;
            }
        }
        for (key, value) in self.overlay.range::<Vec<u8>, _>((lower, upper)) {
            if let Some(bytes) = value {
                if admit(&decode_value(key, bytes)?) {
                    count += 1;
                }
            }
        }
        Ok(count)
    }

    /// Writes the buffered changes and `checkpoint` in one atomic sled batch (for a rebuilding
    /// store, in key order, see [`Store::open_for`]).
    pub fn commit(self, checkpoint: u64) -> Result<(), ProjectionError> {
        if let Some(held) = &self.store.held {
            // `Store::changes` wrote what was held, and nothing is held while changes are out
            // (the only other holder, `apply_fresh`, works under the same lock).
            let mut held = held.lock().unwrap_or_else(PoisonError::into_inner);
            held.usable()?;
            self.store
                .write_in_key_order(&mut held, self.overlay, checkpoint)?;
            self.store.checkpoint.store(checkpoint, Ordering::SeqCst);
            return Ok(());
        }
        let mut batch = sled::Batch::default();
        for (key, value) in self.overlay {
            match value {
                Some(bytes) => batch.insert(key, bytes),
                None => batch.remove(key),
            }
        }
        batch.insert(CHECKPOINT_KEY, &checkpoint.to_be_bytes()[..]);
        self.store.db.apply_batch(batch)?;
        self.store.checkpoint.store(checkpoint, Ordering::SeqCst);
        Ok(())
    }
}

/// The sled range of a prefix scan; `after` is exclusive in the direction of the walk.
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
        store.held.as_ref().unwrap().lock().unwrap().limit = limit;
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
        if position % 3 == 0 {
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
    fn a_rebuilding_store_drops_a_failed_batch_with_what_it_held() {
        let store = rebuilding(usize::MAX);
        let events: Vec<_> = (1..=10).map(envelope).collect();
        store.apply_fresh(&events[..5], apply_counting).unwrap();
        assert_eq!(store.checkpoint(), 5);
        let failed = store.apply_fresh(&events[5..], |changes, envelope| {
            apply_counting(changes, envelope)?;
            if envelope.position == 8 {
                return Err(ProjectionError::Store("refused".into()));
            }
            Ok(())
        });
        assert!(failed.is_err());
        // Nothing was written yet, so the store is back at its start, and applying again from
        // there gives what a store that never failed has.
        assert_eq!(store.checkpoint(), 0);
        assert_eq!(store.dump(&[]).unwrap(), Vec::new());
        apply_all(&store, &events);
        let serving = Store::temporary().unwrap();
        apply_all(&serving, &events);
        assert_eq!(store.dump(&[]).unwrap(), serving.dump(&[]).unwrap());
    }
}
