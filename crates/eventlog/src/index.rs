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

    /// Applies a persisted run's entries (see `runs.rs`); call
    /// [`ReplyIndex::finish_loading`] on `replies` after the last one.
    pub(crate) fn apply_run(&mut self, run: Delta, sections_to: u64) {
        self.chunk_starts.extend(run.chunk_starts);
        for (stream, positions) in run.streams {
            self.streams.entry(stream).or_default().extend(positions);
        }
        for (fingerprint, section) in run.fingerprints {
            self.replies.load_fingerprint(fingerprint, section);
        }
        for (key, section) in run.collided {
            self.replies.collided.insert(key, section);
        }
        self.next_section = sections_to;
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

/// Idempotency key → reply section, in about 16 bytes per key whatever the key's length: a
/// 64-bit fingerprint (the first bytes of the key's sha256) maps to the section number.
///
/// Most entries sit in `settled`, (fingerprint, section) pairs sorted by fingerprint with no
/// table slack (at ten million keys a hash map of them held 28.5 bytes per key, since its
/// table doubles); the entries added since the last merge sit in a hash map, merged in (sorted,
/// in place, from the back) when it reaches an eighth of `settled`. Loading persisted runs
/// appends to `settled` and sorts it once. The few keys whose fingerprint was already taken
/// when they were added go into a small map by full key.
///
/// A fingerprint hit is only a candidate: the caller reads the section and looks for the full
/// key there, so a collision costs a read, never a wrong answer. A miss costs no read at all.
#[derive(Debug, Default)]
pub(crate) struct ReplyIndex {
    settled: Vec<(u64, u64)>,
    /// `fence[p]`: the index of the first settled entry whose fingerprint's top `fence_bits`
    /// bits are ≥ `p` (2^`fence_bits` + 1 entries, empty while `settled` is): about 16 entries
    /// per step, so a lookup reads one fence entry and a short run of entries.
    fence: Vec<u32>,
    fence_bits: u32,
    recent: HashMap<u64, u64, BuildHasherDefault<PassThroughHasher>>,
    collided: HashMap<Vec<u8>, u64>,
}

/// `recent` is merged into `settled` at this many entries, or an eighth of `settled` if more.
const MERGE_ENTRIES_MIN: usize = 16_384;

impl ReplyIndex {
    /// Notes that the reply of `key` is in section `section`. Each key is stored once (the
    /// log refuses a key already used), so an occupied fingerprint means another key.
    pub(crate) fn insert(&mut self, key: &[u8], section: u64) -> Placed {
        let fingerprint = fingerprint(key);
        if self.settled_section(fingerprint).is_some() || self.recent.contains_key(&fingerprint) {
            self.collided.insert(key.to_vec(), section);
            return Placed::Collided;
        }
        self.recent.insert(fingerprint, section);
        if self.recent.len() >= MERGE_ENTRIES_MIN.max(self.settled.len() / 8) {
            self.merge();
        }
        Placed::ByFingerprint(fingerprint)
    }

    /// Appends a fingerprint read from a persisted run; [`ReplyIndex::finish_loading`] sorts
    /// them and checks that none is taken twice.
    fn load_fingerprint(&mut self, fingerprint: u64, section: u64) {
        self.settled.push((fingerprint, section));
    }

    /// Sorts the fingerprints the runs appended; `false` if one appears twice (a run then
    /// contradicts another, and the runs cannot be trusted).
    pub(crate) fn finish_loading(&mut self) -> bool {
        self.settled.sort_unstable();
        self.settled.shrink_to_fit();
        self.rebuild_fence();
        self.settled.windows(2).all(|pair| pair[0].0 != pair[1].0)
    }

    fn settled_section(&self, fingerprint: u64) -> Option<u64> {
        if self.settled.is_empty() {
            return None;
        }
        let prefix = (fingerprint >> (64 - self.fence_bits)) as usize;
        let (start, end) = (self.fence[prefix] as usize, self.fence[prefix + 1] as usize);
        let range = &self.settled[start..end];
        let at = range.partition_point(|&(stored, _)| stored < fingerprint);
        range
            .get(at)
            .filter(|&&(stored, _)| stored == fingerprint)
            .map(|&(_, section)| section)
    }

    fn rebuild_fence(&mut self) {
        self.fence.clear();
        if self.settled.is_empty() {
            return;
        }
        // About 16 entries per step, from 2^8 to 2^22 steps (16 MiB of fence at most).
        self.fence_bits = (self.settled.len() / 16)
            .max(1)
            .next_power_of_two()
            .trailing_zeros()
            .clamp(8, 22);
        let steps = 1u64 << self.fence_bits;
        self.fence.reserve_exact(steps as usize + 1);
        let mut at = 0usize;
        for prefix in 0..=steps {
            while at < self.settled.len() && (self.settled[at].0 >> (64 - self.fence_bits)) < prefix
            {
                at += 1;
            }
            // Fewer than 2^32 entries: more keys than that do not fit in memory here.
            self.fence.push(u32::try_from(at).unwrap_or(u32::MAX));
        }
    }

    /// Sorts `recent` and merges it into `settled` in place: the vector grows once and the
    /// entries are placed from the back, so no second copy is ever held.
    fn merge(&mut self) {
        let mut incoming: Vec<(u64, u64)> = self.recent.drain().collect();
        incoming.sort_unstable();
        let old = self.settled.len();
        self.settled.reserve_exact(incoming.len());
        self.settled.resize(old + incoming.len(), (0, 0));
        let (mut left, mut right, mut out) = (old, incoming.len(), old + incoming.len());
        while right > 0 {
            out -= 1;
            if left > 0 && self.settled[left - 1] > incoming[right - 1] {
                left -= 1;
                self.settled[out] = self.settled[left];
            } else {
                right -= 1;
                self.settled[out] = incoming[right];
            }
        }
        self.recent.shrink_to(MERGE_ENTRIES_MIN);
        self.rebuild_fence();
    }

    /// The sections that may hold `key`'s reply, most likely first (at most two).
    pub(crate) fn candidates(&self, key: &[u8]) -> impl Iterator<Item = u64> {
        // Nearly always empty: skip hashing the key for it.
        let collided = if self.collided.is_empty() {
            None
        } else {
            self.collided.get(key).copied()
        };
        let fingerprint = fingerprint(key);
        let by_fingerprint = self
            .recent
            .get(&fingerprint)
            .copied()
            .or_else(|| self.settled_section(fingerprint));
        collided.into_iter().chain(by_fingerprint)
    }

    /// Keys indexed.
    pub(crate) fn len(&self) -> usize {
        self.settled.len() + self.recent.len() + self.collided.len()
    }

    /// Bytes of memory the index holds (tables at their capacity), for measurements.
    pub(crate) fn memory_bytes(&self) -> usize {
        // hashbrown: one control byte per bucket, buckets = capacity rounded up to 8/7.
        let buckets = |capacity: usize| capacity.saturating_mul(8) / 7;
        self.settled.capacity() * 16
            + self.fence.capacity() * 4
            + buckets(self.recent.capacity()) * (1 + 16)
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
    /// fingerprint and a section number, sorted, plus the small map of recent entries).
    #[test]
    fn the_reply_index_holds_at_most_24_bytes_per_id() {
        let per_id = bytes_per_id(200_000);
        assert!(per_id <= 24.0, "{per_id} bytes per id");
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
        assert!(per_id <= 20.0);
    }

    /// Every key inserted is found in its section, across merges into the sorted entries and
    /// after a reload from run entries; keys never inserted find nothing.
    #[test]
    fn keys_are_found_across_merges_and_reloads() {
        let key = |id: u64| {
            let mut key = [0u8; 16];
            key[..8].copy_from_slice(&id.to_be_bytes());
            key
        };
        let mut replies = ReplyIndex::default();
        let mut run = Vec::new();
        for id in 0..(MERGE_ENTRIES_MIN as u64 * 3 + 17) {
            if let Placed::ByFingerprint(fingerprint) = replies.insert(&key(id), id / 3) {
                run.push((fingerprint, id / 3));
            }
        }
        assert!(!replies.settled.is_empty() && !replies.recent.is_empty());
        let mut reloaded = ReplyIndex::default();
        for (fingerprint, section) in run {
            reloaded.load_fingerprint(fingerprint, section);
        }
        assert!(reloaded.finish_loading());
        for index in [&replies, &reloaded] {
            for id in 0..(MERGE_ENTRIES_MIN as u64 * 3 + 17) {
                assert_eq!(index.candidates(&key(id)).collect::<Vec<_>>(), vec![id / 3]);
            }
            for id in 1_000_000..1_010_000 {
                assert_eq!(index.candidates(&key(id)).count(), 0);
            }
        }
        // The same fingerprint loaded twice means the runs contradict each other.
        let mut twice = ReplyIndex::default();
        twice.load_fingerprint(7, 1);
        twice.load_fingerprint(7, 2);
        assert!(!twice.finish_loading());
    }

    #[test]
    fn colliding_fingerprints_keep_both_keys() {
        let mut replies = ReplyIndex::default();
        let _ = replies.insert(b"a", 1);
        // Force a collision by inserting under the same fingerprint as "a".
        let taken = fingerprint(b"a");
        assert!(replies.recent.contains_key(&taken));
        replies.collided.insert(b"b".to_vec(), 2);
        assert_eq!(replies.candidates(b"a").collect::<Vec<_>>(), vec![1]);
        assert_eq!(replies.candidates(b"b").collect::<Vec<_>>(), vec![2]);
        assert_eq!(replies.candidates(b"c").count(), 0);
        assert_eq!(replies.len(), 2);
    }
}
