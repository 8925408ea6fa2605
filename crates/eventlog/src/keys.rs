//! The key catalogue: the one sled tree this crate owns and every key shape stored in it.
//!
//! Everything lives in one tree so that a batch is a single `Tree::apply_batch`, which sled
//! recovers atomically after a crash. Log format 2 stores a few large values per batch instead
//! of several small ones per event (sled copies a leaf on every insert, so the number of keys,
//! not the bytes, set the cost of a commit). Each kind of entry has its own one-byte prefix:
//!
//! | key | value | written |
//! |---|---|---|
//! | `c` ‖ first position (u64 BE) | a chunk: consecutive records (see `chunk.rs`) | once, by the commit that assigns the positions |
//! | `p` ‖ section number (u64 BE) | a reply section: idempotency keys and replies (see `chunk.rs`) | once, by the commit of the commands |
//! | `m` | log format (2) ‖ head position (u64 BE) ‖ head hash (32 bytes) | rewritten by every commit |
//!
//! Big-endian integers make sled's byte order equal to numeric order, so a range scan over
//! chunk keys walks positions in order. The stream index (stream → version → position) and the
//! idempotency index (key → reply section) are derived from these values and held in memory
//! (`index.rs`); nothing is written per event besides the record's own bytes.
//!
//! Format 1 (before format 2) used the prefixes `r` (one record per key), `s` (stream index),
//! `k` (one reply per key) and a meta value starting with the byte 1. Those prefixes are kept
//! here so a format-1 directory is recognised (and refused, or migrated) and never misread.

/// Name of the sled tree holding the whole log.
pub const TREE: &str = "eventlog";

/// First byte of a chunk key.
pub const CHUNK_PREFIX: u8 = b'c';

/// First byte of a reply section key.
pub const REPLY_SECTION_PREFIX: u8 = b'p';

/// The key of the meta record (log format, head position and head hash).
pub const META_KEY: &[u8] = b"m";

/// The log format this code writes, first byte of the meta value and of every chunk and reply
/// section, so a directory of another format is recognised and never misread.
pub const LOG_FORMAT_VERSION: u8 = 2;

/// Format 1: first byte of its meta value.
pub const FORMAT1_VERSION: u8 = 1;

/// Format 1: first byte of a record key (`r` ‖ position u64 BE → record bytes).
pub const FORMAT1_RECORD_PREFIX: u8 = b'r';

/// Format 1: first byte of a stream index key.
pub const FORMAT1_STREAM_PREFIX: u8 = b's';

/// Format 1: first byte of an idempotency key (`k` ‖ key → format byte 1 ‖ reply).
pub const FORMAT1_REPLY_PREFIX: u8 = b'k';

/// The key of the chunk whose first record is at `position`.
pub fn chunk_key(position: u64) -> [u8; 9] {
    prefixed(CHUNK_PREFIX, position)
}

/// The first position in a chunk key, or `None` if `key` is not shaped like one.
pub fn parse_chunk_key(key: &[u8]) -> Option<u64> {
    parse_prefixed(CHUNK_PREFIX, key)
}

/// The key of reply section `number`.
pub fn reply_section_key(number: u64) -> [u8; 9] {
    prefixed(REPLY_SECTION_PREFIX, number)
}

/// The number in a reply section key, or `None` if `key` is not shaped like one.
pub fn parse_reply_section_key(key: &[u8]) -> Option<u64> {
    parse_prefixed(REPLY_SECTION_PREFIX, key)
}

/// Format 1: the key of the record at `position`.
pub fn format1_record_key(position: u64) -> [u8; 9] {
    prefixed(FORMAT1_RECORD_PREFIX, position)
}

/// Format 1: the position in a record key.
pub fn parse_format1_record_key(key: &[u8]) -> Option<u64> {
    parse_prefixed(FORMAT1_RECORD_PREFIX, key)
}

fn prefixed(prefix: u8, number: u64) -> [u8; 9] {
    let mut key = [0u8; 9];
    key[0] = prefix;
    key[1..].copy_from_slice(&number.to_be_bytes());
    key
}

fn parse_prefixed(prefix: u8, key: &[u8]) -> Option<u64> {
    match key {
        [first, rest @ ..] if *first == prefix => Some(u64::from_be_bytes(rest.try_into().ok()?)),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunk_keys_sort_by_position() {
        let positions = [1u64, 2, 255, 256, 65_536, u64::MAX];
        for pair in positions.windows(2) {
            assert!(chunk_key(pair[0]) < chunk_key(pair[1]));
        }
        for position in positions {
            assert_eq!(parse_chunk_key(&chunk_key(position)), Some(position));
            assert_eq!(
                parse_reply_section_key(&reply_section_key(position)),
                Some(position)
            );
        }
        assert_eq!(parse_chunk_key(b"c123"), None);
        assert_eq!(parse_chunk_key(&reply_section_key(1)), None);
        assert_eq!(parse_chunk_key(&format1_record_key(1)), None);
    }
}
