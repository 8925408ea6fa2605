//! File bytes behind a small trait, so that a shared store can replace the local one later.
//!
//! [`BlobStore`] stores content by its sha256 ([`ContentHash`]): identical uploads are stored
//! once, and a blob, once visible, never changes. Content goes in and comes out as a stream of
//! [`Bytes`] ([`ByteStream`]), so no caller ever needs a whole file in memory; [`BlobStore::put`]
//! enforces its byte limit while the bytes flow and keeps nothing of a refused or broken upload.
//! A blob may have small derived objects (a thumbnail, say), named after the blob.
//!
//! Uploads not yet attached to a message are *held* ([`BlobStore::hold_unattached`]) until
//! they are attached ([`BlobStore::attached`]) or collected, bytes included, once their grace
//! period has passed ([`BlobStore::collect_unattached`], security.md H-L3). The holds are stored
//! with the blobs, so a restart forgets none.
//!
//! [`LocalBlobStore`] keeps the blobs in a directory (`<root>/ab/cdef…`). When gateways run on
//! several machines, [`NatsBlobStore`] keeps them in the NATS JetStream object store instead,
//! shared by every gateway, behind the same trait.

mod local;
mod nats;
mod pending;

use std::fmt;
use std::io;
use std::path::PathBuf;
use std::pin::Pin;

use bytes::Bytes;
use futures::future::BoxFuture;
use futures::Stream;

pub use local::{LocalBlobStore, READ_CHUNK_BYTES, TEMP_FILE_AGE_MAX, WRITE_BUFFER_BYTES};
pub use nats::{
    NatsBlobStore, NatsBlobStoreConfig, NATS_OPERATION_TIMEOUT, ORPHAN_CHUNKS_AGE_MIN,
    ORPHAN_SWEEP_INTERVAL,
};
pub use pending::KEPT_MARK_NAME;

/// A stream of content, chunk by chunk; an `Err` item aborts whatever consumes it.
pub type ByteStream = Pin<Box<dyn Stream<Item = io::Result<Bytes>> + Send + 'static>>;

/// The bytes of a sha256 digest.
pub const CONTENT_HASH_BYTES: usize = 32;

/// The longest name of a derived object, in bytes.
pub const DERIVED_NAME_BYTES_MAX: usize = 64;

/// The sha256 of a blob's content: its address in the store.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ContentHash(pub [u8; CONTENT_HASH_BYTES]);

impl ContentHash {
    /// The digest as 64 lowercase hex characters (the protocol's spelling of file digests).
    pub fn to_hex(&self) -> String {
        hex::encode(self.0)
    }

    /// Parses exactly 64 lowercase hex characters.
    pub fn from_hex(text: &str) -> Option<ContentHash> {
        let lowercase_hex = text
            .bytes()
            .all(|byte| matches!(byte, b'0'..=b'9' | b'a'..=b'f'));
        if text.len() != 2 * CONTENT_HASH_BYTES || !lowercase_hex {
            return None;
        }
        let mut bytes = [0u8; CONTENT_HASH_BYTES];
        hex::decode_to_slice(text, &mut bytes).ok()?;
        Some(ContentHash(bytes))
    }
}

impl fmt::Display for ContentHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_hex())
    }
}

impl fmt::Debug for ContentHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ContentHash({})", self.to_hex())
    }
}

/// What [`BlobStore::put`] stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stored {
    /// The content's sha256, its address.
    pub hash: ContentHash,
    /// Its length in bytes.
    pub size: u64,
    /// False when the same content was already stored (the upload was deduplicated).
    pub newly_stored: bool,
}

/// What [`BlobStore::collect_unattached`] removed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Collected {
    /// Unattached uploads whose grace period had passed.
    pub uploads_dropped: usize,
    /// Blobs deleted (an upload whose content another file still uses keeps its blob).
    pub blobs_deleted: usize,
    /// Bytes freed, derived objects included.
    pub bytes_deleted: u64,
}

/// A blob (or derived object) opened for reading.
pub struct BlobReader {
    /// Its length in bytes, known before the first chunk (for `Content-Length`).
    pub size: u64,
    /// Its content, chunk by chunk.
    pub stream: ByteStream,
}

impl fmt::Debug for BlobReader {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BlobReader")
            .field("size", &self.size)
            .finish_non_exhaustive()
    }
}

/// Why a blob operation failed.
#[derive(Debug, thiserror::Error)]
pub enum BlobError {
    /// The content is longer than the limit given to [`BlobStore::put`]; nothing was kept.
    #[error("content is over the {bytes_max}-byte limit")]
    TooLarge {
        /// The limit that applied, in bytes.
        bytes_max: u64,
    },
    /// The content stream itself failed (a client that went away, say); nothing was kept.
    #[error("the content stream failed: {0}")]
    Source(io::Error),
    /// A derived object's name is not 1–64 bytes of `[A-Za-z0-9._-]` not starting with `.`.
    #[error("invalid derived object name {0:?}")]
    InvalidName(String),
    /// The blob was collected (its uploads expired unattached) while a new upload of the same
    /// content was being recorded; nothing of the new upload was kept, and sending it again
    /// stores it afresh.
    #[error("the blob {0} was just collected as unattached; upload the file again")]
    Collected(ContentHash),
    /// The store's own storage failed.
    #[error("blob storage failed: {0}")]
    Io(#[from] io::Error),
}

/// Content-addressed storage of file bytes.
///
/// Methods return boxed futures so that the trait can be used as `Arc<dyn BlobStore>`.
pub trait BlobStore: Send + Sync + fmt::Debug {
    /// Stores `content`, refusing it with [`BlobError::TooLarge`] as soon as it passes
    /// `bytes_max` bytes. The sha256 is computed as the bytes flow; content already stored is
    /// kept once. On any error nothing of this content is left behind, and a blob becomes
    /// visible to [`BlobStore::open`] only once it is complete and durable.
    fn put(&self, content: ByteStream, bytes_max: u64) -> BoxFuture<'_, Result<Stored, BlobError>>;

    /// Opens a blob for reading; `None` when no such blob is stored.
    fn open(&self, hash: ContentHash) -> BoxFuture<'_, Result<Option<BlobReader>, BlobError>>;

    /// Whether a blob is stored.
    fn exists(&self, hash: ContentHash) -> BoxFuture<'_, Result<bool, BlobError>>;

    /// Stores a small object derived from the blob `hash` (a thumbnail) under `name`,
    /// replacing an earlier one of that name. Derived objects are small by nature, hence
    /// `Bytes` rather than a stream.
    fn put_derived<'a>(
        &'a self,
        hash: ContentHash,
        name: &'a str,
        content: Bytes,
    ) -> BoxFuture<'a, Result<(), BlobError>>;

    /// Opens the derived object `name` of the blob `hash`; `None` when there is none.
    fn open_derived<'a>(
        &'a self,
        hash: ContentHash,
        name: &'a str,
    ) -> BoxFuture<'a, Result<Option<BlobReader>, BlobError>>;

    /// The blob's path on the local file system, for readers that need random access (image
    /// decoders seek); `None` for stores that keep no local files, whose callers then read
    /// [`BlobStore::open`]'s stream instead.
    fn local_path(&self, hash: ContentHash) -> Option<PathBuf>;

    /// Holds the blob `hash` for the upload `file`, not attached to a message yet, since
    /// `uploaded_at_ms` (milliseconds since the epoch). Fails with [`BlobError::Collected`] when
    /// the blob is no longer stored. Durable once it returns.
    fn hold_unattached(
        &self,
        file: uuid::Uuid,
        hash: ContentHash,
        uploaded_at_ms: i64,
    ) -> BoxFuture<'_, Result<(), BlobError>>;

    /// The upload `file` was attached to a message: its blob is kept for good. Files this
    /// store holds nothing for are ignored.
    fn attached(&self, file: uuid::Uuid) -> BoxFuture<'_, Result<(), BlobError>>;

    /// Drops every upload held since before `uploaded_before_ms` and never attached, and
    /// deletes each blob (with its derived objects) no attached or younger upload uses.
    fn collect_unattached(
        &self,
        uploaded_before_ms: i64,
    ) -> BoxFuture<'_, Result<Collected, BlobError>>;

    /// The log position up to which [`BlobStore::attached`] was applied; `None` before the
    /// first time.
    fn attachments_position(&self) -> BoxFuture<'_, Result<Option<u64>, BlobError>>;

    /// Records the log position up to which [`BlobStore::attached`] was applied.
    fn set_attachments_position(&self, position: u64) -> BoxFuture<'_, Result<(), BlobError>>;
}

/// Checks a derived object's name (see [`BlobError::InvalidName`]).
pub fn validate_derived_name(name: &str) -> Result<(), BlobError> {
    let valid = !name.is_empty()
        && name.len() <= DERIVED_NAME_BYTES_MAX
        && !name.starts_with('.')
        && name
            .bytes()
            .all(|byte| byte.is_ascii_alphanumeric() || matches!(byte, b'.' | b'_' | b'-'));
    if valid {
        Ok(())
    } else {
        Err(BlobError::InvalidName(name.to_owned()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn content_hashes_are_64_lowercase_hex() {
        let text = "ab".repeat(32);
        let hash = ContentHash::from_hex(&text);
        assert_eq!(hash.map(|hash| hash.to_hex()), Some(text));
        for bad in [
            "",
            "AB",
            &"AB".repeat(32),
            &"ab".repeat(33),
            &"zz".repeat(32),
        ] {
            assert_eq!(ContentHash::from_hex(bad), None, "{bad}");
        }
    }

    #[test]
    fn derived_names() {
        for good in ["thumbnail-256.png", "a", "A_b-9"] {
            assert!(validate_derived_name(good).is_ok(), "{good}");
        }
        let too_long = "a".repeat(DERIVED_NAME_BYTES_MAX + 1);
        for bad in ["", ".hidden", "a/b", "..", "a b", &too_long] {
            assert!(validate_derived_name(bad).is_err(), "{bad:?}");
        }
    }
}
