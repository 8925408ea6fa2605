//! The codec: the one place that knows bincode, and the switch between JSON and bincode.
//!
//! Binary layout: one format-version byte ([`FORMAT_VERSION`]), then bincode 1.3 with fixed-size
//! little-endian integers (the bytes of `bincode::serialize`, and of bincode 2's legacy config).
//! Decoding always takes a byte limit and refuses trailing bytes, so a truncated, padded,
//! oversized or garbage input is an error value, never a panic or a huge allocation.
//!
//! Types encoded here must not use serde's `flatten`, `skip`, `skip_serializing_if`, `tag` or
//! `untagged`: bincode is not self-describing and such attributes silently break decoding.
//! Where a JSON shape needs them, the type switches shape on `is_human_readable()` instead.

use bincode::Options;
use serde::de::DeserializeOwned;
use serde::Serialize;

/// The first byte of every bincode payload of this crate. A new binary layout gets a new byte,
/// so that old and new bytes can be told apart (and the codec swapped) without guessing.
pub const FORMAT_VERSION: u8 = 1;

/// The content type of JSON payloads (the default when none is given).
pub const CONTENT_TYPE_JSON: &str = "application/json";

/// The content type of bincode payloads (this module's binary layout).
pub const CONTENT_TYPE_BINCODE: &str = "application/x-bincode";

/// Why bytes could not be encoded or decoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CodecError {
    /// There are no bytes at all, not even the format-version byte.
    #[error("empty payload: expected a format-version byte")]
    Empty,
    /// The format-version byte is not one this build reads.
    #[error("unknown format version {0} (this build reads version {FORMAT_VERSION})")]
    UnknownFormat(u8),
    /// The input is longer than the limit the caller set.
    #[error("payload is over the {limit}-byte limit")]
    TooLarge {
        /// The limit, in bytes.
        limit: u64,
    },
    /// Truncated, trailing or garbage bytes, or a value that does not validate (a bad id, say).
    #[error("malformed bincode: {0}")]
    Malformed(String),
    /// Not valid JSON, or JSON of the wrong shape.
    #[error("malformed JSON: {0}")]
    Json(String),
    /// A stored event's schema version that this build cannot read (see [`crate::upcast`]).
    #[error("unknown stored-event schema version {0}")]
    UnknownSchema(u16),
    /// The value cannot be encoded (should not happen for this crate's types).
    #[error("cannot encode: {0}")]
    Encode(String),
}

/// A payload format: JSON for everyone, bincode for Rust services that link this crate.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Format {
    /// `application/json`, the default.
    #[default]
    Json,
    /// `application/x-bincode`: [`FORMAT_VERSION`] then bincode.
    Bincode,
}

impl Format {
    /// The format a `Content-Type` names: JSON when absent, `None` when unsupported.
    ///
    /// Parameters (`; charset=utf-8`) and letter case are ignored.
    pub fn from_content_type(content_type: Option<&str>) -> Option<Format> {
        let Some(content_type) = content_type else {
            return Some(Format::Json);
        };
        let media_type = content_type.split(';').next().unwrap_or_default().trim();
        if media_type.eq_ignore_ascii_case(CONTENT_TYPE_JSON) {
            Some(Format::Json)
        } else if media_type.eq_ignore_ascii_case(CONTENT_TYPE_BINCODE) {
            Some(Format::Bincode)
        } else {
            None
        }
    }

    /// The `Content-Type` of this format.
    pub fn content_type(self) -> &'static str {
        match self {
            Format::Json => CONTENT_TYPE_JSON,
            Format::Bincode => CONTENT_TYPE_BINCODE,
        }
    }
}

/// The bincode options of the binary layout: fixed-size little-endian integers, no trailing
/// bytes. Plain `bincode::options()` would be varint, a different format.
fn options() -> impl Options {
    bincode::options()
        .with_fixint_encoding()
        .with_little_endian()
        .reject_trailing_bytes()
}

/// Maps a bincode error, telling a size-limit hit and a truncation apart from other garbage.
fn decode_error(error: bincode::ErrorKind, limit_bytes: u64) -> CodecError {
    match error {
        bincode::ErrorKind::SizeLimit => CodecError::TooLarge { limit: limit_bytes },
        bincode::ErrorKind::Io(io) if io.kind() == std::io::ErrorKind::UnexpectedEof => {
            CodecError::Malformed("truncated: the input ends too early".into())
        }
        other => CodecError::Malformed(other.to_string()),
    }
}

/// Encodes `value` as [`FORMAT_VERSION`] followed by its bincode bytes.
pub fn encode<T: Serialize>(value: &T) -> Result<Vec<u8>, CodecError> {
    let mut bytes = vec![FORMAT_VERSION];
    options()
        .serialize_into(&mut bytes, value)
        .map_err(|error| CodecError::Encode(error.to_string()))?;
    Ok(bytes)
}

/// The number of bytes [`encode`] produces for `value`, without producing them.
pub fn encoded_len<T: Serialize>(value: &T) -> Result<u64, CodecError> {
    options()
        .serialized_size(value)
        .map(|size| size.saturating_add(1))
        .map_err(|error| CodecError::Encode(error.to_string()))
}

/// Checks the format byte and the limit; returns the bincode bytes after the format byte.
fn body(bytes: &[u8], limit_bytes: u64) -> Result<&[u8], CodecError> {
    let (&format, body) = bytes.split_first().ok_or(CodecError::Empty)?;
    if format != FORMAT_VERSION {
        return Err(CodecError::UnknownFormat(format));
    }
    if u64::try_from(body.len()).map_or(true, |len| len > limit_bytes) {
        return Err(CodecError::TooLarge { limit: limit_bytes });
    }
    Ok(body)
}

/// Decodes bytes made by [`encode`]. `limit_bytes` bounds the bincode part; the whole input must
/// be consumed.
///
/// The limit is enforced by checking the input's length first: bincode 1.3 replaces the limit
/// with "unlimited" when it decodes from a slice, because every read is then bounded by the
/// slice itself (a length prefix larger than what remains fails before allocating, and serde
/// caps collection preallocation). So memory stays proportional to the input's length.
pub fn decode<T: DeserializeOwned>(bytes: &[u8], limit_bytes: u64) -> Result<T, CodecError> {
    let body = body(bytes, limit_bytes)?;
    options()
        .with_limit(limit_bytes)
        .deserialize(body)
        .map_err(|error| decode_error(*error, limit_bytes))
}

/// Decodes what [`encode`] wrote from a reader, without holding all of its bytes at once (a
/// large snapshot is read in the reader's buffer-sized steps, not into one allocation the size
/// of the file beside the value it decodes into). `limit_bytes` bounds the bincode part, and
/// every byte up to the reader's end must belong to the value.
pub fn decode_from_reader<T: DeserializeOwned, R: std::io::Read>(
    mut reader: R,
    limit_bytes: u64,
) -> Result<T, CodecError> {
    let mut format = [0u8; 1];
    reader
        .read_exact(&mut format)
        .map_err(|_| CodecError::Empty)?;
    if format[0] != FORMAT_VERSION {
        return Err(CodecError::UnknownFormat(format[0]));
    }
    let value = options()
        .with_limit(limit_bytes)
        .deserialize_from(&mut reader)
        .map_err(|error| decode_error(*error, limit_bytes))?;
    // bincode checks for trailing bytes only when it decodes a slice.
    let mut extra = [0u8; 1];
    match reader.read(&mut extra) {
        Ok(0) => Ok(value),
        Ok(_) => Err(CodecError::Malformed("bytes follow the value".into())),
        Err(error) => Err(CodecError::Malformed(error.to_string())),
    }
}

/// Decodes a `T` from the start of bytes made by [`encode`], ignoring what follows it.
///
/// For reading a header (such as a stored event's schema version) before choosing the type of
/// the whole; [`decode`] is the one that checks every byte.
pub fn decode_prefix<T: DeserializeOwned>(bytes: &[u8], limit_bytes: u64) -> Result<T, CodecError> {
    let body = body(bytes, limit_bytes)?;
    options()
        .allow_trailing_bytes()
        .with_limit(limit_bytes)
        .deserialize(body)
        .map_err(|error| decode_error(*error, limit_bytes))
}

/// Like [`decode_prefix`], borrowing strings from `bytes` instead of copying them.
pub fn decode_prefix_borrowed<'a, T: serde::Deserialize<'a>>(
    bytes: &'a [u8],
    limit_bytes: u64,
) -> Result<T, CodecError> {
    let body = body(bytes, limit_bytes)?;
    options()
        .allow_trailing_bytes()
        .with_limit(limit_bytes)
        .deserialize(body)
        .map_err(|error| decode_error(*error, limit_bytes))
}

/// Decodes bytes made by [`encode`] of a value `H` optionally followed by a `T`: `(head, None)`
/// when nothing follows `H`, `(head, Some(tail))` when a whole `T` does. Every byte must be
/// consumed, as in [`decode`].
///
/// This is how a layout grows backward-compatibly: bincode is not self-describing, so an
/// optional addition can only be a trailing field, present or absent as a whole (the `raw`
/// flag of a `log.read` request and the record bytes of its reply). Old bytes (no tail) keep
/// decoding, and an old decoder refuses the new bytes instead of misreading them.
pub fn decode_with_tail<H: DeserializeOwned, T: DeserializeOwned>(
    bytes: &[u8],
    limit_bytes: u64,
) -> Result<(H, Option<T>), CodecError> {
    let body = body(bytes, limit_bytes)?;
    // `&mut &[u8]` reads by advancing the slice, so what is left afterwards is the tail.
    let mut rest = body;
    let head: H = options()
        .allow_trailing_bytes()
        .with_limit(limit_bytes)
        .deserialize_from(&mut rest)
        .map_err(|error| decode_error(*error, limit_bytes))?;
    if rest.is_empty() {
        return Ok((head, None));
    }
    let tail: T = options()
        .with_limit(limit_bytes)
        .deserialize(rest)
        .map_err(|error| decode_error(*error, limit_bytes))?;
    Ok((head, Some(tail)))
}

/// Encodes `value` in `format`: compact JSON, or [`encode`].
pub fn encode_as<T: Serialize>(value: &T, format: Format) -> Result<Vec<u8>, CodecError> {
    match format {
        Format::Json => {
            serde_json::to_vec(value).map_err(|error| CodecError::Encode(error.to_string()))
        }
        Format::Bincode => encode(value),
    }
}

/// Decodes `bytes` in `format`, refusing inputs over `limit_bytes`.
///
/// JSON keeps serde_json's nesting limit (128 levels), so deeply nested input is an error, not a
/// stack overflow.
pub fn decode_as<T: DeserializeOwned>(
    bytes: &[u8],
    format: Format,
    limit_bytes: u64,
) -> Result<T, CodecError> {
    match format {
        Format::Json => {
            if u64::try_from(bytes.len()).map_or(true, |len| len > limit_bytes) {
                return Err(CodecError::TooLarge { limit: limit_bytes });
            }
            serde_json::from_slice(bytes).map_err(|error| CodecError::Json(error.to_string()))
        }
        Format::Bincode => decode(bytes, limit_bytes),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A reader decodes what `encode` wrote, and refuses another format byte, a truncation and
    /// bytes left over, as `decode` does.
    #[test]
    fn a_reader_decodes_what_encode_wrote_and_nothing_else() {
        let bytes = encode(&(7u32, "seven".to_owned(), vec![1u8; 300])).unwrap_or_default();
        let read: Result<(u32, String, Vec<u8>), _> = decode_from_reader(&bytes[..], 1 << 20);
        assert_eq!(read, Ok((7, "seven".to_owned(), vec![1u8; 300])));
        let mut other_format = bytes.clone();
        other_format[0] = FORMAT_VERSION.wrapping_add(1);
        assert!(matches!(
            decode_from_reader::<(u32, String, Vec<u8>), _>(&other_format[..], 1 << 20),
            Err(CodecError::UnknownFormat(_))
        ));
        assert!(decode_from_reader::<(u32, String, Vec<u8>), _>(
            &bytes[..bytes.len() - 1],
            1 << 20
        )
        .is_err());
        let mut longer = bytes.clone();
        longer.push(0);
        assert!(decode_from_reader::<(u32, String, Vec<u8>), _>(&longer[..], 1 << 20).is_err());
        assert!(matches!(
            decode_from_reader::<(u32, String, Vec<u8>), _>(&bytes[..], 64),
            Err(CodecError::TooLarge { .. })
        ));
        assert!(matches!(
            decode_from_reader::<u32, _>(&[][..], 64),
            Err(CodecError::Empty)
        ));
    }

    #[test]
    fn the_format_byte_comes_first_and_integers_are_fixed_little_endian() {
        assert_eq!(
            encode(&(1u16, 2u64)),
            Ok(vec![FORMAT_VERSION, 1, 0, 2, 0, 0, 0, 0, 0, 0, 0])
        );
        assert_eq!(encoded_len(&(1u16, 2u64)), Ok(11));
    }

    #[test]
    fn bad_framing_is_an_error() {
        assert_eq!(decode::<u16>(&[], 16), Err(CodecError::Empty));
        assert_eq!(
            decode::<u16>(&[9, 1, 0], 16),
            Err(CodecError::UnknownFormat(9))
        );
        assert!(matches!(
            decode::<u16>(&[1, 1], 16),
            Err(CodecError::Malformed(_))
        ));
        assert!(matches!(
            decode::<u16>(&[1, 1, 0, 0], 16),
            Err(CodecError::Malformed(_))
        ));
        assert_eq!(
            decode::<u16>(&[1, 1, 0, 0], 2),
            Err(CodecError::TooLarge { limit: 2 })
        );
        assert_eq!(decode_prefix::<u16>(&[1, 1, 0, 0], 16), Ok(1));
    }

    #[test]
    fn a_length_over_the_limit_is_refused_before_allocating() {
        // A string and a vector claiming u64::MAX elements, in 9 bytes.
        let mut bytes = vec![FORMAT_VERSION];
        bytes.extend_from_slice(&u64::MAX.to_le_bytes());
        assert_eq!(
            decode::<String>(&bytes, 7),
            Err(CodecError::TooLarge { limit: 7 })
        );
        assert!(matches!(
            decode::<String>(&bytes, 1024),
            Err(CodecError::Malformed(_))
        ));
        assert!(matches!(
            decode::<Vec<u64>>(&bytes, 1024),
            Err(CodecError::Malformed(_))
        ));
    }

    #[test]
    fn content_types_name_formats() {
        assert_eq!(Format::from_content_type(None), Some(Format::Json));
        assert_eq!(
            Format::from_content_type(Some("Application/JSON; charset=utf-8")),
            Some(Format::Json)
        );
        assert_eq!(
            Format::from_content_type(Some("application/x-bincode")),
            Some(Format::Bincode)
        );
        assert_eq!(Format::from_content_type(Some("text/plain")), None);
        assert_eq!(Format::from_content_type(Some("")), None);
    }
}
