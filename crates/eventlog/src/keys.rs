//! The key catalogue: the one sled tree this crate owns and every key shape stored in it.
//!
//! Everything lives in one tree so that a batch is a single `Tree::apply_batch`, which sled
//! recovers atomically after a crash (a multi-tree transaction would also be atomic, but is
//! slower and has more moving parts). Each kind of entry has its own one-byte prefix:
//!
//! | key | value | written |
//! |---|---|---|
//! | `r` ‖ position (u64 BE) | the record's stored bytes (see `record.rs`) | once, by the commit that assigns the position |
//! | `s` ‖ stream length (u16 BE) ‖ stream ‖ version (u64 BE) | position (u64 BE) | once, with the record |
//! | `k` ‖ idempotency key | format byte ‖ reply bytes | once, with the command's records |
//! | `m` | format byte ‖ head position (u64 BE) ‖ head hash (32 bytes) | rewritten by every commit |
//!
//! Big-endian integers make sled's byte order equal to numeric order, so a range scan over
//! record keys walks positions in order and a reverse scan over a stream's keys finds its
//! latest version first. The stream name is length-prefixed so that stream `a` never shares a
//! key prefix with stream `ab`.

/// Name of the sled tree holding the whole log.
pub const TREE: &str = "eventlog";

/// First byte of a record key.
pub const RECORD_PREFIX: u8 = b'r';

/// First byte of a stream index key.
pub const STREAM_PREFIX: u8 = b's';

/// First byte of an idempotency (command id → reply) key.
pub const REPLY_PREFIX: u8 = b'k';

/// The key of the meta record (head position and head hash).
pub const META_KEY: &[u8] = b"m";

/// Format byte at the start of meta and reply values, so either can change shape later.
pub(crate) const VALUE_FORMAT_VERSION: u8 = 1;

/// The key of the record at `position`.
pub fn record_key(position: u64) -> [u8; 9] {
    let mut key = [0u8; 9];
    key[0] = RECORD_PREFIX;
    key[1..].copy_from_slice(&position.to_be_bytes());
    key
}

/// The position in a record key, or `None` if `key` is not shaped like one.
pub fn parse_record_key(key: &[u8]) -> Option<u64> {
    match key {
        [RECORD_PREFIX, rest @ ..] => Some(u64::from_be_bytes(rest.try_into().ok()?)),
        _ => None,
    }
}

/// The prefix shared by every index key of `stream`.
///
/// Callers validate stream names against `STREAM_NAME_BYTES_MAX` (far below `u16::MAX`) before
/// building keys, so the length always fits; saturating keeps this function total anyway.
pub(crate) fn stream_prefix(stream: &str) -> Vec<u8> {
    debug_assert!(stream.len() <= usize::from(u16::MAX));
    let length = u16::try_from(stream.len()).unwrap_or(u16::MAX);
    let mut key = Vec::with_capacity(1 + 2 + stream.len() + 8);
    key.push(STREAM_PREFIX);
    key.extend_from_slice(&length.to_be_bytes());
    key.extend_from_slice(stream.as_bytes());
    key
}

/// The index key of `stream` at `version`.
pub(crate) fn stream_key(stream: &str, version: u64) -> Vec<u8> {
    let mut key = stream_prefix(stream);
    key.extend_from_slice(&version.to_be_bytes());
    key
}

/// The stream and version in an index key, or `None` if `key` is not shaped like one.
pub(crate) fn parse_stream_key(key: &[u8]) -> Option<(&str, u64)> {
    let [STREAM_PREFIX, length_high, length_low, rest @ ..] = key else {
        return None;
    };
    let length = usize::from(u16::from_be_bytes([*length_high, *length_low]));
    let stream = rest.get(..length)?;
    let version = rest.get(length..)?;
    let version = u64::from_be_bytes(version.try_into().ok()?);
    Some((std::str::from_utf8(stream).ok()?, version))
}

/// The key under which the reply of the command with idempotency key `key` is stored.
pub(crate) fn reply_key(key: &[u8]) -> Vec<u8> {
    let mut stored = Vec::with_capacity(1 + key.len());
    stored.push(REPLY_PREFIX);
    stored.extend_from_slice(key);
    stored
}

/// A position stored as an index value.
pub(crate) fn parse_position_value(value: &[u8]) -> Option<u64> {
    Some(u64::from_be_bytes(value.try_into().ok()?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn record_keys_sort_by_position() {
        let positions = [1u64, 2, 255, 256, 65_536, u64::MAX];
        for pair in positions.windows(2) {
            assert!(record_key(pair[0]) < record_key(pair[1]));
        }
        for position in positions {
            assert_eq!(parse_record_key(&record_key(position)), Some(position));
        }
        assert_eq!(parse_record_key(b"r123"), None);
        assert_eq!(parse_record_key(&stream_key("a", 1)), None);
    }

    #[test]
    fn stream_keys_round_trip_and_do_not_share_prefixes() {
        let key = stream_key("room/1", 7);
        assert_eq!(parse_stream_key(&key), Some(("room/1", 7)));
        // Without the length prefix, every key of stream "a" would start with the prefix of "a"
        // and a scan of "a" would also walk "ab".
        assert!(!stream_key("ab", 1).starts_with(&stream_prefix("a")));
        assert_eq!(parse_stream_key(b"s\x00\x05ab"), None);
        assert!(stream_key("a", 9) < stream_key("a", 10));
    }
}
