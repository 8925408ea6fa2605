//! The local blob store: one directory, blobs at `<root>/ab/cdef…` (the sha256 split after two
//! hex characters so that no directory grows past 256 × its share of the blobs), derived objects
//! beside them as `<root>/ab/cdef….<name>`, uploads in progress under `<root>/tmp/`.
//!
//! An upload is written to a temporary file on the same file system, fsynced, then renamed
//! into place and its directory fsynced: a blob path either does not exist or holds the complete
//! content, even after a crash. Two concurrent uploads of the same content both rename onto the
//! same path, which is harmless because the bytes are identical.

use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use futures::future::BoxFuture;
use futures::StreamExt;
use sha2::{Digest, Sha256};
use tokio::io::{AsyncWriteExt, BufWriter};
use tokio_util::io::ReaderStream;

use crate::{
    validate_derived_name, BlobError, BlobReader, BlobStore, ByteStream, Collected, ContentHash,
    Stored,
};

/// The write buffer of an upload, in bytes: large writes keep the number of blocking file
/// operations (each a hop to tokio's blocking pool) low for gigabyte uploads.
pub const WRITE_BUFFER_BYTES: usize = 256 * 1024;

/// The size of the chunks a blob is read in, in bytes.
pub const READ_CHUNK_BYTES: usize = 64 * 1024;

/// Temporary files older than this are removed when a store opens: they belong to uploads that
/// a crash interrupted. Younger ones may belong to another process sharing the directory.
pub const TEMP_FILE_AGE_MAX: Duration = Duration::from_secs(24 * 60 * 60);

/// The directory of uploads in progress, inside the root.
pub(crate) const TEMP_DIR: &str = "tmp";

/// Blobs in a local directory.
#[derive(Debug, Clone)]
pub struct LocalBlobStore {
    root: PathBuf,
    /// Serialises holding, attaching and collecting unattached uploads (see `pending`).
    pending_lock: Arc<tokio::sync::Mutex<()>>,
}

impl LocalBlobStore {
    /// Opens (creating it if needed) the store at `root`, and removes temporary files left
    /// behind by interrupted uploads older than [`TEMP_FILE_AGE_MAX`].
    ///
    /// Blocking: meant for start-up.
    pub fn new(root: impl Into<PathBuf>) -> io::Result<LocalBlobStore> {
        let store = LocalBlobStore {
            root: root.into(),
            pending_lock: Arc::new(tokio::sync::Mutex::new(())),
        };
        std::fs::create_dir_all(store.temp_dir())?;
        std::fs::create_dir_all(store.root.join(crate::pending::PENDING_DIR))?;
        store.remove_stale_temp_files();
        Ok(store)
    }

    /// The store's root directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Where the blob `hash` lives (whether or not it exists).
    pub fn blob_path(&self, hash: ContentHash) -> PathBuf {
        let hex = hash.to_hex();
        let (directory, rest) = hex.split_at(2);
        self.root.join(directory).join(rest)
    }

    /// The lock of the unattached uploads' records.
    pub(crate) fn pending_lock(&self) -> &tokio::sync::Mutex<()> {
        &self.pending_lock
    }

    /// Where the derived object `name` of the blob `hash` lives; `name` must be valid.
    pub(crate) fn derived_path(&self, hash: ContentHash, name: &str) -> PathBuf {
        let mut path = self.blob_path(hash).into_os_string();
        path.push(".");
        path.push(name);
        PathBuf::from(path)
    }

    fn temp_dir(&self) -> PathBuf {
        self.root.join(TEMP_DIR)
    }

    fn remove_stale_temp_files(&self) {
        let Ok(entries) = std::fs::read_dir(self.temp_dir()) else {
            return;
        };
        let now = SystemTime::now();
        for entry in entries.flatten() {
            let stale = entry
                .metadata()
                .and_then(|metadata| metadata.modified())
                .ok()
                .and_then(|modified| now.duration_since(modified).ok())
                .is_some_and(|age| age > TEMP_FILE_AGE_MAX);
            if stale {
                match std::fs::remove_file(entry.path()) {
                    Ok(()) => {
                        tracing::info!(path = %entry.path().display(), "removed a stale upload")
                    }
                    Err(error) => {
                        tracing::warn!(path = %entry.path().display(), %error, "cannot remove a stale upload")
                    }
                }
            }
        }
    }

    async fn put_content(
        &self,
        mut content: ByteStream,
        bytes_max: u64,
    ) -> Result<Stored, BlobError> {
        let (temp, file) = TempFile::create(&self.temp_dir()).await?;
        let mut writer = BufWriter::with_capacity(WRITE_BUFFER_BYTES, file);
        let mut hasher = Sha256::new();
        let mut size: u64 = 0;
        while let Some(chunk) = content.next().await {
            let chunk = chunk.map_err(BlobError::Source)?;
            size = size.saturating_add(u64::try_from(chunk.len()).unwrap_or(u64::MAX));
            // Checked before writing, so that not one byte over the limit reaches the disk.
            if size > bytes_max {
                return Err(BlobError::TooLarge { bytes_max });
            }
            hasher.update(&chunk);
            writer.write_all(&chunk).await?;
        }
        writer.flush().await?;
        let file = writer.into_inner();
        file.sync_all().await?;
        drop(file);

        let hash = ContentHash(hasher.finalize().into());
        let path = self.blob_path(hash);
        if tokio::fs::try_exists(&path).await? {
            // Deduplicated: the temporary file goes when `temp` drops.
            return Ok(Stored {
                hash,
                size,
                newly_stored: false,
            });
        }
        temp.commit(&path).await?;
        Ok(Stored {
            hash,
            size,
            newly_stored: true,
        })
    }

    async fn put_derived_content(
        &self,
        hash: ContentHash,
        name: &str,
        content: Bytes,
    ) -> Result<(), BlobError> {
        validate_derived_name(name)?;
        let (temp, mut file) = TempFile::create(&self.temp_dir()).await?;
        file.write_all(&content).await?;
        file.sync_all().await?;
        drop(file);
        temp.commit(&self.derived_path(hash, name)).await?;
        Ok(())
    }
}

/// Opens `path` for streaming; `None` when it does not exist.
async fn open_path(path: PathBuf) -> Result<Option<BlobReader>, BlobError> {
    let file = match tokio::fs::File::open(&path).await {
        Ok(file) => file,
        Err(error) if error.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(error) => return Err(error.into()),
    };
    let size = file.metadata().await?.len();
    Ok(Some(BlobReader {
        size,
        stream: Box::pin(ReaderStream::with_capacity(file, READ_CHUNK_BYTES)),
    }))
}

impl BlobStore for LocalBlobStore {
    fn put(&self, content: ByteStream, bytes_max: u64) -> BoxFuture<'_, Result<Stored, BlobError>> {
        Box::pin(self.put_content(content, bytes_max))
    }

    fn open(&self, hash: ContentHash) -> BoxFuture<'_, Result<Option<BlobReader>, BlobError>> {
        Box::pin(open_path(self.blob_path(hash)))
    }

    fn exists(&self, hash: ContentHash) -> BoxFuture<'_, Result<bool, BlobError>> {
        let path = self.blob_path(hash);
        Box::pin(async move { Ok(tokio::fs::try_exists(path).await?) })
    }

    fn put_derived<'a>(
        &'a self,
        hash: ContentHash,
        name: &'a str,
        content: Bytes,
    ) -> BoxFuture<'a, Result<(), BlobError>> {
        Box::pin(self.put_derived_content(hash, name, content))
    }

    fn open_derived<'a>(
        &'a self,
        hash: ContentHash,
        name: &'a str,
    ) -> BoxFuture<'a, Result<Option<BlobReader>, BlobError>> {
        Box::pin(async move {
            validate_derived_name(name)?;
            open_path(self.derived_path(hash, name)).await
        })
    }

    fn local_path(&self, hash: ContentHash) -> Option<PathBuf> {
        Some(self.blob_path(hash))
    }

    fn hold_unattached(
        &self,
        file: uuid::Uuid,
        hash: ContentHash,
        uploaded_at_ms: i64,
    ) -> BoxFuture<'_, Result<(), BlobError>> {
        Box::pin(self.hold_unattached_upload(file, hash, uploaded_at_ms))
    }

    fn attached(&self, file: uuid::Uuid) -> BoxFuture<'_, Result<(), BlobError>> {
        Box::pin(self.mark_attached(file))
    }

    fn collect_unattached(
        &self,
        uploaded_before_ms: i64,
    ) -> BoxFuture<'_, Result<Collected, BlobError>> {
        Box::pin(self.collect_unattached_uploads(uploaded_before_ms))
    }

    fn attachments_position(&self) -> BoxFuture<'_, Result<Option<u64>, BlobError>> {
        Box::pin(self.read_attachments_position())
    }

    fn set_attachments_position(&self, position: u64) -> BoxFuture<'_, Result<(), BlobError>> {
        Box::pin(self.write_attachments_position(position))
    }
}

/// A temporary file that is removed when dropped, unless it was renamed into place: whatever
/// way an upload ends early (a limit, a broken stream, a cancelled future), nothing is left.
pub(crate) struct TempFile {
    path: PathBuf,
    committed: bool,
}

impl TempFile {
    /// Creates a new, uniquely named temporary file in `directory`.
    pub(crate) async fn create(directory: &Path) -> io::Result<(TempFile, tokio::fs::File)> {
        let path = directory.join(format!("{}.part", uuid::Uuid::new_v4().simple()));
        let file = tokio::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&path)
            .await?;
        Ok((
            TempFile {
                path,
                committed: false,
            },
            file,
        ))
    }

    /// Renames the file to `target` (creating its directory) and makes the rename durable.
    pub(crate) async fn commit(mut self, target: &Path) -> io::Result<()> {
        let directory = target
            .parent()
            .ok_or_else(|| io::Error::other("a blob path has no parent directory"))?
            .to_owned();
        tokio::fs::create_dir_all(&directory).await?;
        tokio::fs::rename(&self.path, target).await?;
        self.committed = true;
        // The rename is durable only once the directory entry is on disk.
        tokio::task::spawn_blocking(move || std::fs::File::open(&directory)?.sync_all())
            .await
            .map_err(io::Error::other)?
    }
}

impl Drop for TempFile {
    fn drop(&mut self) {
        if self.committed {
            return;
        }
        // Synchronous on purpose: Drop cannot await, and unlinking one file is quick.
        if let Err(error) = std::fs::remove_file(&self.path) {
            if error.kind() != io::ErrorKind::NotFound {
                tracing::warn!(path = %self.path.display(), %error, "cannot remove a temporary upload");
            }
        }
    }
}
