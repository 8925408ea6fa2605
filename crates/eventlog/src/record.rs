//! The stored record format, its checks, and the sha256 hash chain (`Hash`, `Head`, `Record`).
//!
//! ```text
//! offset  size  field
//! 0       1     format version (RECORD_FORMAT_VERSION)
//! 1       8     position, u64 big-endian
//! 9       2     stream name length S, u16 big-endian
//! 11      S     stream name, UTF-8
//! 11+S    8     stream version, u64 big-endian
//! 19+S    4     payload length P, u32 big-endian
//! 23+S    P     payload
//! 23+S+P  32    hash = sha256(previous record's hash ‖ bytes 0 .. 23+S+P)
//! ```
//! The first record's previous hash is 32 zero bytes. Because each hash covers the previous
//! one, the head hash commits to the whole history: a changed byte, a removed record or two
//! swapped records all change it.

use std::fmt;
use std::str::FromStr;

use sha2::{Digest, Sha256};

use crate::error::LogError;
use crate::limits::{RECORD_PAYLOAD_BYTES_MAX, STREAM_NAME_BYTES_MAX};

/// Format byte at the start of every stored record.
pub const RECORD_FORMAT_VERSION: u8 = 1;

/// Bytes of a sha256 hash.
pub const HASH_BYTES: usize = 32;

/// Bytes of a record besides its stream name and payload.
pub const RECORD_OVERHEAD_BYTES: usize = 1 + 8 + 2 + 8 + 4 + HASH_BYTES;

/// A sha256 hash of the chain; shown as 64 lowercase hex characters.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Hash(pub [u8; HASH_BYTES]);

impl Hash {
    /// The previous hash of the first record, and the head hash of an empty log.
    pub const ZERO: Hash = Hash([0; HASH_BYTES]);

    /// The hash as 64 lowercase hex characters.
    pub fn to_hex(&self) -> String {
        hex::encode(self.0)
    }

    /// Parses 64 hex characters.
    pub fn from_hex(text: &str) -> Result<Hash, ParseHeadError> {
        let mut bytes = [0u8; HASH_BYTES];
        hex::decode_to_slice(text, &mut bytes).map_err(|_| ParseHeadError::Hash)?;
        Ok(Hash(bytes))
    }
}

impl fmt::Display for Hash {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str(&self.to_hex())
    }
}

impl fmt::Debug for Hash {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(formatter, "Hash({})", self.to_hex())
    }
}

/// The last acknowledged position and its hash; `position` 0 is the empty log.
///
/// Displays and parses as `position:hash`, the form an operator anchors elsewhere.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub struct Head {
    /// Position of the last record, 0 when the log is empty.
    pub position: u64,
    /// Hash of the last record, `Hash::ZERO` when the log is empty.
    pub hash: Hash,
}

impl Head {
    /// The head of an empty log.
    pub const GENESIS: Head = Head {
        position: 0,
        hash: Hash::ZERO,
    };
}

impl fmt::Display for Head {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(formatter, "{}:{}", self.position, self.hash)
    }
}

impl FromStr for Head {
    type Err = ParseHeadError;

    fn from_str(text: &str) -> Result<Head, ParseHeadError> {
        let (position, hash) = text.split_once(':').ok_or(ParseHeadError::Shape)?;
        Ok(Head {
            position: position.parse().map_err(|_| ParseHeadError::Position)?,
            hash: Hash::from_hex(hash)?,
        })
    }
}

/// Why a `position:hash` text did not parse.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum ParseHeadError {
    /// There is no `:` between position and hash.
    #[error("expected position:hash")]
    Shape,
    /// The position is not a decimal u64.
    #[error("position is not a number")]
    Position,
    /// The hash is not 64 hex characters.
    #[error("hash is not 64 hex characters")]
    Hash,
}

/// One event as read back from the log, after its checks passed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Record {
    /// Global position, gapless from 1.
    pub position: u64,
    /// Stream the record belongs to.
    pub stream: String,
    /// Version within the stream, gapless from 1.
    pub version: u64,
    /// The caller's bytes.
    pub payload: Vec<u8>,
    /// Chain hash of this record.
    pub hash: Hash,
}

/// A stored record decoded in place; fields borrow the stored bytes.
#[derive(Clone, Copy, Debug)]
pub(crate) struct RecordView<'a> {
    pub position: u64,
    pub stream: &'a str,
    pub version: u64,
    pub payload: &'a [u8],
    pub hash: Hash,
}

impl RecordView<'_> {
    /// An owned copy.
    pub fn to_record(self) -> Record {
        Record {
            position: self.position,
            stream: self.stream.to_owned(),
            version: self.version,
            payload: self.payload.to_vec(),
            hash: self.hash,
        }
    }
}

/// Stored size of a record with this stream name and payload.
pub(crate) fn encoded_len(stream: &str, payload: &[u8]) -> usize {
    RECORD_OVERHEAD_BYTES + stream.len() + payload.len()
}

/// Checks a stream name against the limits; used for every name that reaches storage keys.
pub(crate) fn check_stream_name(stream: &str) -> Result<(), LogError> {
    if stream.is_empty() {
        return Err(LogError::InvalidArgument("stream name is empty"));
    }
    if stream.len() > STREAM_NAME_BYTES_MAX {
        return Err(LogError::LimitExceeded {
            what: "stream name bytes",
            limit: STREAM_NAME_BYTES_MAX,
            actual: stream.len(),
        });
    }
    Ok(())
}

/// Checks a payload against the limits.
pub(crate) fn check_payload(payload: &[u8]) -> Result<(), LogError> {
    if payload.len() > RECORD_PAYLOAD_BYTES_MAX {
        return Err(LogError::LimitExceeded {
            what: "record payload bytes",
            limit: RECORD_PAYLOAD_BYTES_MAX,
            actual: payload.len(),
        });
    }
    Ok(())
}

/// sha256(previous ‖ body).
pub(crate) fn chain_hash(previous: &Hash, body: &[u8]) -> Hash {
    let mut hasher = Sha256::new();
    hasher.update(previous.0);
    hasher.update(body);
    Hash(hasher.finalize().into())
}

/// Encodes a record chained onto `previous`. Returns the stored bytes and the record's hash.
pub(crate) fn encode(
    previous: &Hash,
    position: u64,
    stream: &str,
    version: u64,
    payload: &[u8],
) -> Result<(Vec<u8>, Hash), LogError> {
    check_stream_name(stream)?;
    check_payload(payload)?;
    // Both conversions succeed after the checks above (the limits are far below the integer
    // widths); they are fallible only so that no input can make this function panic.
    let stream_length = u16::try_from(stream.len()).map_err(|_| LogError::LimitExceeded {
        what: "stream name bytes",
        limit: STREAM_NAME_BYTES_MAX,
        actual: stream.len(),
    })?;
    let payload_length = u32::try_from(payload.len()).map_err(|_| LogError::LimitExceeded {
        what: "record payload bytes",
        limit: RECORD_PAYLOAD_BYTES_MAX,
        actual: payload.len(),
    })?;
    let mut bytes = Vec::with_capacity(encoded_len(stream, payload));
    bytes.push(RECORD_FORMAT_VERSION);
    bytes.extend_from_slice(&position.to_be_bytes());
    bytes.extend_from_slice(&stream_length.to_be_bytes());
    bytes.extend_from_slice(stream.as_bytes());
    bytes.extend_from_slice(&version.to_be_bytes());
    bytes.extend_from_slice(&payload_length.to_be_bytes());
    bytes.extend_from_slice(payload);
    let hash = chain_hash(previous, &bytes);
    bytes.extend_from_slice(&hash.0);
    debug_assert_eq!(bytes.len(), encoded_len(stream, payload));
    Ok((bytes, hash))
}

/// The hash a record with these fields has when chained onto `previous`: what [`encode`]
/// stores, for readers that hold a record's fields but not its stored bytes (security.md H-N2:
/// a live event is applied only if its hash chains from the last one applied).
pub fn record_hash(
    previous: &Hash,
    position: u64,
    stream: &str,
    version: u64,
    payload: &[u8],
) -> Result<Hash, LogError> {
    encode(previous, position, stream, version, payload).map(|(_, hash)| hash)
}

/// Reads fields off the front of a byte slice, failing instead of panicking when it runs out.
struct Cursor<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl<'a> Cursor<'a> {
    fn take(&mut self, length: usize, field: &str) -> Result<&'a [u8], String> {
        let end = self.at.checked_add(length);
        let taken = end.and_then(|end| self.bytes.get(self.at..end));
        let taken = taken.ok_or_else(|| {
            format!(
                "record of {} bytes ends inside its {field}",
                self.bytes.len()
            )
        })?;
        self.at += length;
        Ok(taken)
    }

    fn array<const N: usize>(&mut self, field: &str) -> Result<[u8; N], String> {
        let taken = self.take(N, field)?;
        <[u8; N]>::try_from(taken).map_err(|_| format!("{field} has the wrong width"))
    }
}

/// Decodes stored bytes and checks their shape: format byte, exact length, UTF-8 stream name,
/// non-zero position and version. The hash is read but not checked (that needs the previous
/// record's hash; see `check`).
pub(crate) fn decode(bytes: &[u8]) -> Result<RecordView<'_>, String> {
    if bytes.len() < RECORD_OVERHEAD_BYTES {
        return Err(format!(
            "record is {} bytes, shorter than the {RECORD_OVERHEAD_BYTES}-byte minimum",
            bytes.len()
        ));
    }
    let mut cursor = Cursor { bytes, at: 0 };
    let [format] = cursor.array::<1>("format byte")?;
    if format != RECORD_FORMAT_VERSION {
        return Err(format!("unknown record format version {format}"));
    }
    let position = u64::from_be_bytes(cursor.array("position")?);
    let stream_length = usize::from(u16::from_be_bytes(cursor.array("stream length")?));
    let stream = cursor.take(stream_length, "stream name")?;
    let stream = std::str::from_utf8(stream).map_err(|_| "stream name is not UTF-8".to_owned())?;
    let version = u64::from_be_bytes(cursor.array("version")?);
    let payload_length = u32::from_be_bytes(cursor.array("payload length")?);
    let payload_length = usize::try_from(payload_length)
        .map_err(|_| "payload length does not fit in memory".to_owned())?;
    let payload = cursor.take(payload_length, "payload")?;
    let hash = Hash(cursor.array("hash")?);
    if cursor.at != bytes.len() {
        return Err(format!(
            "record is {} bytes but its fields take {}",
            bytes.len(),
            cursor.at
        ));
    }
    if position == 0 {
        return Err("record position is 0".to_owned());
    }
    if version == 0 {
        return Err("record stream version is 0".to_owned());
    }
    if stream.is_empty() {
        return Err("record stream name is empty".to_owned());
    }
    Ok(RecordView {
        position,
        stream,
        version,
        payload,
        hash,
    })
}

/// Decodes stored bytes and checks that their hash chains onto `previous`.
pub(crate) fn check<'a>(previous: &Hash, bytes: &'a [u8]) -> Result<RecordView<'a>, String> {
    let view = decode(bytes)?;
    // decode proved bytes.len() >= RECORD_OVERHEAD_BYTES > HASH_BYTES.
    let body = bytes.get(..bytes.len() - HASH_BYTES).unwrap_or_default();
    let expected = chain_hash(previous, body);
    if expected != view.hash {
        return Err(format!(
            "hash {} does not match sha256(previous hash {} ‖ record) = {}",
            view.hash, previous, expected
        ));
    }
    Ok(view)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn encode_then_check_round_trips() {
        let (bytes, hash) = encode(&Hash::ZERO, 1, "room/1", 1, b"hello").unwrap();
        assert_eq!(bytes.len(), RECORD_OVERHEAD_BYTES + 6 + 5);
        let view = check(&Hash::ZERO, &bytes).unwrap();
        assert_eq!(view.position, 1);
        assert_eq!(view.stream, "room/1");
        assert_eq!(view.version, 1);
        assert_eq!(view.payload, b"hello");
        assert_eq!(view.hash, hash);
        // The hash covers the previous hash, so the same bytes after another record differ.
        assert!(check(&hash, &bytes).is_err());
    }

    #[test]
    fn every_truncation_and_every_flipped_byte_is_caught() {
        let (bytes, _) = encode(&Hash::ZERO, 3, "s", 2, b"payload").unwrap();
        for length in 0..bytes.len() {
            assert!(
                check(&Hash::ZERO, &bytes[..length]).is_err(),
                "length {length}"
            );
        }
        let mut longer = bytes.clone();
        longer.push(0);
        assert!(check(&Hash::ZERO, &longer).is_err());
        for index in 0..bytes.len() {
            let mut flipped = bytes.clone();
            flipped[index] ^= 0x40;
            assert!(check(&Hash::ZERO, &flipped).is_err(), "byte {index}");
        }
    }

    #[test]
    fn limits_are_errors() {
        let long_name = "x".repeat(STREAM_NAME_BYTES_MAX + 1);
        assert!(matches!(
            encode(&Hash::ZERO, 1, &long_name, 1, b""),
            Err(LogError::LimitExceeded { .. })
        ));
        let big = vec![0u8; RECORD_PAYLOAD_BYTES_MAX + 1];
        assert!(matches!(
            encode(&Hash::ZERO, 1, "s", 1, &big),
            Err(LogError::LimitExceeded { .. })
        ));
        assert!(matches!(
            encode(&Hash::ZERO, 1, "", 1, b""),
            Err(LogError::InvalidArgument(_))
        ));
    }

    #[test]
    fn head_displays_and_parses_as_position_colon_hash() {
        let head = Head {
            position: 42,
            hash: chain_hash(&Hash::ZERO, b"x"),
        };
        let text = head.to_string();
        assert_eq!(text.len(), 2 + 1 + 64);
        assert_eq!(text, text.to_lowercase());
        assert_eq!(text.parse::<Head>(), Ok(head));
        assert_eq!("42".parse::<Head>(), Err(ParseHeadError::Shape));
        assert_eq!("x:00".parse::<Head>(), Err(ParseHeadError::Position));
        assert_eq!("1:00".parse::<Head>(), Err(ParseHeadError::Hash));
    }
}
