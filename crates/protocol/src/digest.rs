//! `Sha256`: a sha256 digest as the contract shows it (64 lowercase hex characters in JSON,
//! 32 raw bytes in bincode), for record hashes and head hashes (protocol.md §2).

use std::fmt;

use serde::de::Error as _;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// Bytes of a sha256 digest.
pub const SHA256_BYTES: usize = 32;

/// A sha256 digest: 64 lowercase hex characters in human-readable formats, 32 bytes in bincode.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct Sha256(pub [u8; SHA256_BYTES]);

impl Sha256 {
    /// The digest as 64 lowercase hex characters.
    pub fn to_hex(&self) -> String {
        hex::encode(self.0)
    }

    /// Parses exactly 64 lowercase hex characters (the contract's only spelling).
    pub fn from_hex(text: &str) -> Option<Sha256> {
        let lowercase_hex = text.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'));
        if text.len() != 2 * SHA256_BYTES || !lowercase_hex {
            return None;
        }
        let mut bytes = [0u8; SHA256_BYTES];
        hex::decode_to_slice(text, &mut bytes).ok()?;
        Some(Sha256(bytes))
    }
}

impl fmt::Display for Sha256 {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_hex())
    }
}

impl fmt::Debug for Sha256 {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Sha256({})", self.to_hex())
    }
}

impl From<[u8; SHA256_BYTES]> for Sha256 {
    fn from(bytes: [u8; SHA256_BYTES]) -> Sha256 {
        Sha256(bytes)
    }
}

impl Serialize for Sha256 {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        if serializer.is_human_readable() {
            serializer.serialize_str(&self.to_hex())
        } else {
            self.0.serialize(serializer)
        }
    }
}

impl<'de> Deserialize<'de> for Sha256 {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        if deserializer.is_human_readable() {
            let text = String::deserialize(deserializer)?;
            Sha256::from_hex(&text)
                .ok_or_else(|| D::Error::custom("expected 64 lowercase hex characters"))
        } else {
            <[u8; SHA256_BYTES]>::deserialize(deserializer).map(Sha256)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hex_is_lowercase_and_exactly_64_characters() {
        let digest = Sha256([0xab; 32]);
        assert_eq!(digest.to_hex(), "ab".repeat(32));
        assert_eq!(Sha256::from_hex(&"ab".repeat(32)), Some(digest));
        assert_eq!(Sha256::from_hex(&"AB".repeat(32)), None);
        assert_eq!(Sha256::from_hex(&"ab".repeat(31)), None);
        assert_eq!(Sha256::from_hex(&"zz".repeat(32)), None);
    }
}
