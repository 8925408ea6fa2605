//! The derived indexes of log format 2, held in memory: where each chunk starts, each stream's
//! record positions by version, and which reply section holds each idempotency key.
//!
//! Nothing here is written on the commit path: the log's chunks and reply sections hold
//! everything, and `EventLog::open` rebuilds these indexes by scanning them (one sled read per
//! chunk of up to 64 KiB). Updates happen only after a commit's flush returned, so an index
//! never points at anything a crash could still take back.

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};

use sha2::{Digest, Sha256};

/// The in-memory indexes of an open log.
#[derive(Debug, Default)]
pub(crate) struct Index {
    /// First position of every chunk, ascending.
    pub(crate) chunk_starts: Vec<u64>,
    /// Each stream's record positions; version `v` is at `[v - 1]`.
    pub(crate) streams: HashMap<String, Vec<u64>>,
    /// Idempotency key → number of the reply section holding its reply.
    pub(crate) replies: ReplyIndex,
    /// The number the next reply section takes.
    pub(crate) next_section: u64,
    /// What was added since the last persisted index run (the memtable), and where it starts.
    pub(crate) delta: Delta,
}

/// Index entries added since the last persisted run: what the next run will hold.
#[derive(Debug, Default)]
pub(crate) struct Delta {
    /// The first position the delta covers (the last run's end + 1).
    pub(crate) from: u64,
    /// The first reply section the delta covers.
    pub(crate) sections_from: u64,
    pub(crate) chunk_starts: Vec<u64>,
    /// Stream → its new positions, ascending.
    pub(crate) streams: HashMap<String, Vec<u64>>,
    /// Records in `streams`.
    pub(crate) records: u64,
    /// (fingerprint, section) entries of the reply index.
    pub(crate) fingerprints: Vec<(u64, u64)>,
    /// (key, section) entries whose fingerprint was taken.
    pub(crate) collided: Vec<(Vec<u8>, u64)>,
}

impl Delta {
    /// An empty delta starting at `from` and section `sections_from`.
    pub(crate) fn starting(from: u64, sections_from: u64) -> Delta {
        Delta {
            from,
            sections_from,
            ..Delta::default()
        }
    }

    /// Appends `later` (which starts where this one ends).
    pub(crate) fn extend(&mut self, later: Delta) {
        self.chunk_starts.extend(later.chunk_starts);
        for (stream, positions) in later.streams {
            self.streams.entry(stream).or_default().extend(positions);
        }
        self.records += later.records;
        self.fingerprints.extend(later.fingerprints);
        self.collided.extend(later.collided);
    }
}

impl Index {
    /// The first position of the chunk that would hold `position`, if any chunk starts at or
    /// before it.
    pub(crate) fn chunk_start_for(&self, position: u64) -> Option<u64> {
        let after = self
            .chunk_starts
            .partition_point(|&start| start <= position);
        after.checked_sub(1).map(|index| self.chunk_starts[index])
    }

    /// The latest version of `stream` (0: no records).
    pub(crate) fn stream_version(&self, stream: &str) -> u64 {
        self.streams
            .get(stream)
            .map_or(0, |positions| positions.len() as u64)
    }

    /// Notes the record at `position` as the next version of `stream`.
    pub(crate) fn add_record(&mut self, stream: &str, position: u64) {
        push_position(&mut self.streams, stream, position);
        push_position(&mut self.delta.streams, stream, position);
        self.delta.records += 1;
    }

    /// Notes a new chunk starting at `start`.
    pub(crate) fn add_chunk(&mut self, start: u64) {
        self.chunk_starts.push(start);
        self.delta.chunk_starts.push(start);
    }

    /// Notes that `key`'s reply is in `section`.
    pub(crate) fn add_reply(&mut self, key: &[u8], section: u64) {
        match self.replies.insert(key, section) {
            Placed::ByFingerprint(fingerprint) => {
                self.delta.fingerprints.push((fingerprint, section));
            }
            Placed::Collided => self.delta.collided.push((key.to_vec(), section)),
        }
    }

    /// Applies a persisted run's entries (see `runs.rs`); `false` if they contradict the
    /// index (a fingerprint already taken), which means the runs cannot be trusted.
    pub(crate) fn apply_run(&mut self, run: Delta, sections_to: u64) -> bool {
        self.chunk_starts.extend(run.chunk_starts);
        for (stream, positions) in run.streams {
            self.streams.entry(stream).or_default().extend(positions);
        }
        for (fingerprint, section) in run.fingerprints {
            if !self.replies.insert_fingerprint(fingerprint, section) {
                return false;
            }
        }
        for (key, section) in run.collided {
            self.replies.collided.insert(key, section);
        }
        self.next_section = sections_to;
        true
    }
}

fn push_position(streams: &mut HashMap<String, Vec<u64>>, stream: &str, position: u64) {
    match streams.get_mut(stream) {
        Some(positions) => positions.push(position),
        None => {
            streams.insert(stream.to_owned(), vec![position]);
        }
    }
}

/// Where `ReplyIndex::insert` put a key.
pub(crate) enum Placed {
    /// Under this fingerprint.
    ByFingerprint(u64),
    /// In the map by full key (its fingerprint was taken).
    Collided,
}

/// A hasher for keys that are already uniform hashes (fingerprints): it passes them through.
#[derive(Debug, Default)]
pub(crate) struct PassThroughHasher(u64);

impl Hasher for PassThroughHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        // Only `write_u64` is used by the fingerprint map; fold anything else in anyway.
        for &byte in bytes {
            self.0 = self.0.rotate_left(8) ^ u64::from(byte);
        }
    }

    fn write_u64(&mut self, value: u64) {
        self.0 = value;
    }
}

/// Idempotency key → reply section, in about 20 bytes per key whatever the key's length: a
/// 64-bit fingerprint (the first bytes of the key's sha256) maps to the section number, and the
/// few keys whose fingerprint is already taken go into a small map by full key.
///
/// A fingerprint hit is only a candidate: the caller reads the section and looks for the full
/// key there, so a collision costs a read, never a wrong answer. A miss costs no read at all.
#[derive(Debug, Default)]
pub(crate) struct ReplyIndex {
    by_fingerprint: HashMap<u64, u64, BuildHasherDefault<PassThroughHasher>>,
    collided: HashMap<Vec<u8>, u64>,
}

impl ReplyIndex {
    /// Notes that the reply of `key` is in section `section`. Each key is stored once (the
    /// log refuses a key already used), so an occupied fingerprint means another key.
    pub(crate) fn insert(&mut self, key: &[u8], section: u64) -> Placed {
        let fingerprint = fingerprint(key);
        match self.by_fingerprint.entry(fingerprint) {
            std::collections::hash_map::Entry::Vacant(slot) => {
                slot.insert(section);
                Placed::ByFingerprint(fingerprint)
            }
            std::collections::hash_map::Entry::Occupied(_) => {
                self.collided.insert(key.to_vec(), section);
                Placed::Collided
            }
        }
    }

    /// Makes room for `additional` more fingerprints (before loading runs, so the table is
    /// not regrown and rehashed again and again).
    pub(crate) fn reserve(&mut self, additional: usize) {
        self.by_fingerprint.reserve(additional);
    }

    /// Inserts a fingerprint read from a persisted run; `false` if it is taken already.
    fn insert_fingerprint(&mut self, fingerprint: u64, section: u64) -> bool {
        match self.by_fingerprint.entry(fingerprint) {
            std::collections::hash_map::Entry::Vacant(slot) => {
                slot.insert(section);
                true
            }
            std::collections::hash_map::Entry::Occupied(_) => false,
        }
    }

    /// The sections that may hold `key`'s reply, most likely first (at most two).
    pub(crate) fn candidates(&self, key: &[u8]) -> impl Iterator<Item = u64> {
        // Nearly always empty: skip hashing the key for it.
        let collided = if self.collided.is_empty() {
            None
        } else {
            self.collided.get(key).copied()
        };
        let by_fingerprint = self.by_fingerprint.get(&fingerprint(key)).copied();
        collided.into_iter().chain(by_fingerprint)
    }

    /// Keys indexed.
    pub(crate) fn len(&self) -> usize {
        self.by_fingerprint.len() + self.collided.len()
    }

    /// Bytes of memory the index holds (tables at their capacity), for measurements.
    pub(crate) fn memory_bytes(&self) -> usize {
        // hashbrown: one control byte per bucket, buckets = capacity rounded up to 8/7.
        let buckets = |capacity: usize| capacity.saturating_mul(8) / 7;
        buckets(self.by_fingerprint.capacity()) * (1 + 16)
            + buckets(self.collided.capacity()) * (1 + 24 + 8)
            + self.collided.keys().map(Vec::len).sum::<usize>()
    }
}

/// The 64-bit fingerprint of an idempotency key.
fn fingerprint(key: &[u8]) -> u64 {
    let digest = Sha256::digest(key);
    let mut first = [0u8; 8];
    first.copy_from_slice(&digest[..8]);
    u64::from_be_bytes(first)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn chunk_starts_find_the_chunk_holding_a_position() {
        let index = Index {
            chunk_starts: vec![1, 5, 9],
            ..Index::default()
        };
        assert_eq!(index.chunk_start_for(0), None);
        assert_eq!(index.chunk_start_for(1), Some(1));
        assert_eq!(index.chunk_start_for(4), Some(1));
        assert_eq!(index.chunk_start_for(5), Some(5));
        assert_eq!(index.chunk_start_for(100), Some(9));
    }

    /// Inserts `ids` 16-byte command ids (UUIDv7-shaped) and returns the index's bytes per id.
    fn bytes_per_id(ids: u64) -> f64 {
        let mut replies = ReplyIndex::default();
        for id in 0..ids {
            let mut key = [0u8; 16];
            key[..8].copy_from_slice(&(id / 16).to_be_bytes());
            key[8..].copy_from_slice(&id.wrapping_mul(0x9e37_79b9_7f4a_7c15).to_be_bytes());
            let _ = replies.insert(&key, id / 100);
        }
        assert_eq!(replies.len() as u64, ids);
        replies.memory_bytes() as f64 / ids as f64
    }

    /// The idempotency index's memory is bounded per id whatever the key's length (a
    /// fingerprint and a section number, in a table at most half empty).
    #[test]
    fn the_reply_index_holds_at_most_40_bytes_per_id() {
        let per_id = bytes_per_id(200_000);
        assert!(per_id <= 40.0, "{per_id} bytes per id");
    }

    /// The figure for 10M ids (docs/speed-work.md): `cargo test --release -p eventlog --lib
    /// ten_million -- --ignored --nocapture`.
    #[test]
    #[ignore = "a measurement: 10M sha256 and a 270 MB table"]
    fn ten_million_ids_memory() {
        let per_id = bytes_per_id(10_000_000);
        println!(
            "reply index: {per_id:.1} bytes per id, {:.0} MB for 10M ids",
            per_id * 1e7 / 1e6
        );
        assert!(per_id <= 40.0);
    }

    #[test]
    fn colliding_fingerprints_keep_both_keys() {
        let mut replies = ReplyIndex::default();
        let _ = replies.insert(b"a", 1);
        // Force a collision by inserting under the same fingerprint as "a".
        let taken = fingerprint(b"a");
        assert!(replies.by_fingerprint.contains_key(&taken));
        replies.collided.insert(b"b".to_vec(), 2);
        assert_eq!(replies.candidates(b"a").collect::<Vec<_>>(), vec![1]);
        assert_eq!(replies.candidates(b"b").collect::<Vec<_>>(), vec![2]);
        assert_eq!(replies.candidates(b"c").count(), 0);
        assert_eq!(replies.len(), 2);
    }
}
