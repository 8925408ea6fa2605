//! Uploads not yet attached to a message, kept on disk so that a restart forgets none of them
//! (security.md H-L3: an upload never attached within its grace period is deleted, bytes
//! included).
//!
//! Layout under the store's root:
//!
//! | path | what |
//! |---|---|
//! | `pending/<file id>` | an unattached upload: `<sha256> <uploaded at, ms since the epoch>` |
//! | `<blob>.kept` | a derived object marking a blob some attached file uses: never collected |
//! | `attachments-position` | the log position up to which attachments were applied |
//!
//! Content is deduplicated, so one blob may hold the bytes of several uploads: a blob is
//! deleted only when every upload holding it has expired unattached and no attached file uses
//! it. Holding, attaching and collecting take the store's pending lock, so an upload that reuses
//! a blob at the moment it is collected either sees it gone (and fails, keeping nothing) or
//! keeps it.

use std::collections::BTreeMap;
use std::io;
use std::path::{Path, PathBuf};

use tokio::io::AsyncWriteExt;

use crate::local::{LocalBlobStore, TempFile};
use crate::{BlobError, Collected, ContentHash};

/// The directory of unattached uploads, inside the root.
pub(crate) const PENDING_DIR: &str = "pending";

/// The derived object that marks a blob used by an attached file.
pub const KEPT_MARK_NAME: &str = "kept";

/// The file holding the log position of the last attachment applied, inside the root.
const POSITION_FILE: &str = "attachments-position";

/// The longest pending record, in bytes: 64 hex characters, a space, an i64 and a newline.
const PENDING_RECORD_BYTES_MAX: usize = 128;

/// One unattached upload as recorded.
#[derive(Debug, Clone, Copy)]
struct PendingUpload {
    hash: ContentHash,
    uploaded_at_ms: i64,
}

impl PendingUpload {
    fn encode(&self) -> String {
        format!("{} {}\n", self.hash.to_hex(), self.uploaded_at_ms)
    }

    fn decode(text: &str) -> Option<PendingUpload> {
        let (hash, at) = text.trim().split_once(' ')?;
        Some(PendingUpload {
            hash: ContentHash::from_hex(hash)?,
            uploaded_at_ms: at.parse().ok()?,
        })
    }
}

impl LocalBlobStore {
    fn pending_dir(&self) -> PathBuf {
        self.root().join(PENDING_DIR)
    }

    /// The record of `file` (a UUID in simple form, so the name is always a plain file name).
    fn pending_path(&self, file: uuid::Uuid) -> PathBuf {
        self.pending_dir().join(file.simple().to_string())
    }

    /// Writes `content` to `target` atomically and durably (temporary file, fsync, rename).
    async fn write_atomically(&self, target: &Path, content: &[u8]) -> io::Result<()> {
        let (temp, mut file) = TempFile::create(&self.root().join(crate::local::TEMP_DIR)).await?;
        file.write_all(content).await?;
        file.sync_all().await?;
        drop(file);
        temp.commit(target).await
    }

    pub(crate) async fn hold_unattached_upload(
        &self,
        file: uuid::Uuid,
        hash: ContentHash,
        uploaded_at_ms: i64,
    ) -> Result<(), BlobError> {
        let _pending = self.pending_lock().lock().await;
        // The blob may have been collected between its `put` (which found it stored) and now.
        if !tokio::fs::try_exists(self.blob_path(hash)).await? {
            return Err(BlobError::Collected(hash));
        }
        let record = PendingUpload {
            hash,
            uploaded_at_ms,
        };
        self.write_atomically(&self.pending_path(file), record.encode().as_bytes())
            .await?;
        Ok(())
    }

    pub(crate) async fn mark_attached(&self, file: uuid::Uuid) -> Result<(), BlobError> {
        let _pending = self.pending_lock().lock().await;
        let path = self.pending_path(file);
        let Some(record) = read_record(&path).await? else {
            // Not an upload of this store, or already handled.
            return Ok(());
        };
        // The mark first: a crash in between leaves a record whose blob is marked kept, which
        // collection then simply drops.
        let mark = self.derived_path(record.hash, KEPT_MARK_NAME);
        if !tokio::fs::try_exists(&mark).await? {
            self.write_atomically(&mark, b"").await?;
        }
        remove_if_present(&path).await?;
        Ok(())
    }

    pub(crate) async fn collect_unattached_uploads(
        &self,
        uploaded_before_ms: i64,
    ) -> Result<Collected, BlobError> {
        let _pending = self.pending_lock().lock().await;
        let mut by_blob: BTreeMap<ContentHash, Vec<(PathBuf, PendingUpload)>> = BTreeMap::new();
        let mut entries = match tokio::fs::read_dir(self.pending_dir()).await {
            Ok(entries) => entries,
            Err(error) if error.kind() == io::ErrorKind::NotFound => {
                return Ok(Collected::default())
            }
            Err(error) => return Err(error.into()),
        };
        while let Some(entry) = entries.next_entry().await? {
            let path = entry.path();
            match read_record(&path).await? {
                Some(record) => by_blob.entry(record.hash).or_default().push((path, record)),
                None => {
                    tracing::warn!(path = %path.display(), "an unreadable pending upload record is left alone")
                }
            }
        }
        let mut collected = Collected::default();
        for (hash, uploads) in by_blob {
            let expired: Vec<&PathBuf> = uploads
                .iter()
                .filter(|(_, record)| record.uploaded_at_ms < uploaded_before_ms)
                .map(|(path, _)| path)
                .collect();
            if expired.is_empty() {
                continue;
            }
            let all_expired = expired.len() == uploads.len();
            let kept = tokio::fs::try_exists(self.derived_path(hash, KEPT_MARK_NAME)).await?;
            if all_expired && !kept {
                collected.bytes_deleted = collected
                    .bytes_deleted
                    .saturating_add(self.delete_blob(hash).await?);
                collected.blobs_deleted += 1;
            }
            // The bytes go before the records, so a crash in between retries the deletion.
            for path in expired {
                remove_if_present(path).await?;
                collected.uploads_dropped += 1;
            }
        }
        Ok(collected)
    }

    /// Deletes a blob and its derived objects; returns the bytes freed.
    async fn delete_blob(&self, hash: ContentHash) -> Result<u64, BlobError> {
        let path = self.blob_path(hash);
        let (Some(directory), Some(name)) = (path.parent(), path.file_name()) else {
            return Ok(0);
        };
        let name = name.to_string_lossy().into_owned();
        let derived_prefix = format!("{name}.");
        let mut freed: u64 = 0;
        let mut entries = match tokio::fs::read_dir(directory).await {
            Ok(entries) => entries,
            Err(error) if error.kind() == io::ErrorKind::NotFound => return Ok(0),
            Err(error) => return Err(error.into()),
        };
        while let Some(entry) = entries.next_entry().await? {
            let entry_name = entry.file_name().to_string_lossy().into_owned();
            if entry_name == name || entry_name.starts_with(&derived_prefix) {
                let bytes = entry.metadata().await.map(|m| m.len()).unwrap_or(0);
                remove_if_present(&entry.path()).await?;
                freed = freed.saturating_add(bytes);
            }
        }
        tracing::info!(blob = %hash, bytes = freed, "deleted the bytes of uploads never attached");
        Ok(freed)
    }

    pub(crate) async fn read_attachments_position(&self) -> Result<Option<u64>, BlobError> {
        let path = self.root().join(POSITION_FILE);
        match tokio::fs::read_to_string(&path).await {
            Ok(text) => text.trim().parse().map(Some).map_err(|_| {
                BlobError::Io(io::Error::new(
                    io::ErrorKind::InvalidData,
                    format!("{} does not hold a log position", path.display()),
                ))
            }),
            Err(error) if error.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(error) => Err(error.into()),
        }
    }

    pub(crate) async fn write_attachments_position(&self, position: u64) -> Result<(), BlobError> {
        let path = self.root().join(POSITION_FILE);
        self.write_atomically(&path, format!("{position}\n").as_bytes())
            .await?;
        Ok(())
    }
}

/// A pending record; `None` when absent or malformed.
async fn read_record(path: &Path) -> Result<Option<PendingUpload>, BlobError> {
    match tokio::fs::read(path).await {
        Ok(bytes) if bytes.len() <= PENDING_RECORD_BYTES_MAX => Ok(std::str::from_utf8(&bytes)
            .ok()
            .and_then(PendingUpload::decode)),
        Ok(_) => Ok(None),
        Err(error) if error.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(error) => Err(error.into()),
    }
}

async fn remove_if_present(path: &Path) -> io::Result<()> {
    match tokio::fs::remove_file(path).await {
        Err(error) if error.kind() != io::ErrorKind::NotFound => Err(error),
        _ => Ok(()),
    }
}
