//! File bytes in the NATS JetStream object store, shared by every gateway that connects to the
//! same NATS (`--blob-store nats`): an upload through one gateway downloads through any other.
//!
//! Three JetStream buckets, named after [`NatsBlobStoreConfig::bucket`]:
//!
//! | bucket | what |
//! |---|---|
//! | `<bucket>` (object store, stream `OBJ_<bucket>`) | blobs named by their sha256 in hex, derived objects named `<hex>.<name>` |
//! | `<bucket>-holds` (key-value layout, stream `KV_<bucket>-holds`) | unattached uploads (`hold.<file id>`) and blobs being collected (`doomed.<hex>`): small, listed on every collection |
//! | `<bucket>-marks` (key-value layout, stream `KV_<bucket>-marks`) | blobs attached files use (`kept.<hex>`), each blob's derived names (`derived.<hex>`), the attachments position: read by key, never listed |
//!
//! Blobs are written in the object store's own layout (chunks on `$O.<bucket>.C.<nuid>`, the
//! description on `$O.<bucket>.M.<base64 name>`), so `nats object get` reads them; but the
//! bytes are streamed by [`objects`] itself, because the name of a content-addressed blob is
//! known only after its last byte. Only JetStream features of nats-server 2.9 are used (direct
//! get, rollups, expected-last-subject-sequence).

mod collect;
mod holds;
mod objects;
mod records;

use std::fmt;
use std::io;
use std::path::PathBuf;
use std::time::Duration;

use async_nats::jetstream;
use bytes::Bytes;
use futures::future::BoxFuture;

use crate::{
    validate_derived_name, BlobError, BlobReader, BlobStore, ByteStream, Collected, ContentHash,
    Stored,
};

/// How long one JetStream request (a chunk's acknowledgement, a get, a key-value write) may
/// wait before the operation fails with a clear error rather than hanging on a NATS that is down.
pub const NATS_OPERATION_TIMEOUT: Duration = Duration::from_secs(5);

/// How often a gateway looks for the chunks of uploads cut by a crash (with its collection of
/// unattached uploads, so every gateway does, each at most this often).
pub const ORPHAN_SWEEP_INTERVAL: Duration = Duration::from_secs(60 * 60);

/// How old the chunks of an undescribed upload must be before the sweep purges them, by
/// default: the local store's bound for its temporary files. An upload running longer than half
/// of it fails before it describes its chunks, so the sweep never purges chunks that a
/// description names (see `objects::Objects::purge_orphan_chunks`).
pub const ORPHAN_CHUNKS_AGE_MIN: Duration = crate::TEMP_FILE_AGE_MAX;

/// Where and how the buckets are kept.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NatsBlobStoreConfig {
    /// The object store bucket's name; the key-value buckets are named after it.
    pub bucket: String,
    /// Copies JetStream keeps of each bucket (1 on a single server, 3 on a three-node cluster).
    pub replicas: usize,
    /// The age after which undescribed chunks are purged as a crashed upload's, and twice the
    /// longest an upload may run ([`ORPHAN_CHUNKS_AGE_MIN`] unless a test shortens it).
    pub orphan_chunks_age: Duration,
}

impl NatsBlobStoreConfig {
    /// The buckets of the deployment whose subjects start with `subject_prefix`: `parlor` gives
    /// `parlor-blobs` (dots, which bucket names cannot hold, become `_`).
    pub fn for_subject_prefix(subject_prefix: &str, replicas: usize) -> NatsBlobStoreConfig {
        let name: String = subject_prefix
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                    c
                } else {
                    '_'
                }
            })
            .collect();
        NatsBlobStoreConfig {
            bucket: format!("{name}-blobs"),
            replicas,
            orphan_chunks_age: ORPHAN_CHUNKS_AGE_MIN,
        }
    }
}

/// Blobs in the NATS JetStream object store.
pub struct NatsBlobStore {
    objects: objects::Objects,
    holds: holds::Holds,
    /// When this store last looked for orphan chunks; `None` before the first time.
    last_orphan_sweep: std::sync::Mutex<Option<std::time::Instant>>,
}

impl fmt::Debug for NatsBlobStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("NatsBlobStore")
            .field("bucket", &self.objects.bucket())
            .finish_non_exhaustive()
    }
}

impl NatsBlobStore {
    /// Opens the buckets over `client`, creating those that do not exist yet.
    pub async fn open(
        client: async_nats::Client,
        config: &NatsBlobStoreConfig,
    ) -> Result<NatsBlobStore, BlobError> {
        let jetstream = jetstream::ContextBuilder::new()
            .timeout(NATS_OPERATION_TIMEOUT)
            .build(client);
        let objects = objects::Objects::open(jetstream.clone(), config).await?;
        let holds = holds::Holds::open(jetstream, config).await?;
        tracing::info!(bucket = %config.bucket, replicas = config.replicas, "file bytes in the NATS object store");
        Ok(NatsBlobStore {
            objects,
            holds,
            last_orphan_sweep: std::sync::Mutex::new(None),
        })
    }

    /// Purges the chunks of uploads cut by a crash (or whose description's publication failed)
    /// once they are older than [`NatsBlobStoreConfig::orphan_chunks_age`]; returns how many
    /// uploads' chunks were purged. Collections do it every [`ORPHAN_SWEEP_INTERVAL`]; safe
    /// while other gateways upload and sweep.
    pub async fn purge_orphan_chunks(&self) -> Result<usize, BlobError> {
        self.objects.purge_orphan_chunks().await
    }

    /// Purges orphan chunks when [`ORPHAN_SWEEP_INTERVAL`] has passed since the last look (the
    /// first look comes with the first collection). A failure is logged, not returned: the
    /// collection it rides on succeeded, and the next look comes an interval later.
    pub(super) async fn sweep_orphans_when_due(&self) {
        let due = {
            let mut last = self
                .last_orphan_sweep
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            let due = last.is_none_or(|at| at.elapsed() >= ORPHAN_SWEEP_INTERVAL);
            if due {
                *last = Some(std::time::Instant::now());
            }
            due
        };
        if due {
            match self.objects.purge_orphan_chunks().await {
                Ok(0) => {}
                Ok(purged) => {
                    tracing::info!(uploads = purged, "purged the chunks of unfinished uploads");
                }
                Err(error) => {
                    tracing::warn!(%error, "cannot look for the chunks of unfinished uploads");
                }
            }
        }
    }

    /// Deletes a blob and its derived objects; returns the bytes freed.
    async fn delete_blob(&self, hash: ContentHash) -> Result<u64, BlobError> {
        let mut freed: u64 = 0;
        for name in self.holds.derived_names(hash).await? {
            freed = freed.saturating_add(
                self.objects
                    .delete(&derived_object_name(hash, &name))
                    .await?,
            );
        }
        freed = freed.saturating_add(self.objects.delete(&hash.to_hex()).await?);
        self.holds.forget_derived_names(hash).await?;
        tracing::info!(blob = %hash, bytes = freed, "deleted the bytes of uploads never attached");
        Ok(freed)
    }
}

/// The object name of the derived object `name` of the blob `hash`.
fn derived_object_name(hash: ContentHash, name: &str) -> String {
    format!("{}.{name}", hash.to_hex())
}

/// A failed NATS operation as a [`BlobError`] naming what was being done. A full stream or
/// account (JetStream's limits) becomes [`io::ErrorKind::StorageFull`], which the gateway
/// answers as it answers a full disk; NATS not answering becomes [`io::ErrorKind::TimedOut`],
/// which it answers as unavailable (try again).
pub(crate) fn nats_failed(doing: &str, error: impl fmt::Display) -> BlobError {
    let text = error.to_string();
    let lowercase = text.to_ascii_lowercase();
    let has = |signs: &[&str]| signs.iter().any(|sign| lowercase.contains(sign));
    let kind = if has(&["maximum bytes", "insufficient resources", "storage limit"]) {
        io::ErrorKind::StorageFull
    } else if has(&[
        "timed out",
        "no answer",
        "disconnected",
        "broken pipe",
        "no responders",
    ]) {
        io::ErrorKind::TimedOut
    } else {
        io::ErrorKind::Other
    };
    BlobError::Io(io::Error::new(
        kind,
        format!("NATS object store: {doing}: {text}"),
    ))
}

/// Runs one NATS operation with [`NATS_OPERATION_TIMEOUT`], for those whose own timeout does
/// not cover every wait (a hand-over to a disconnected client, a listing).
pub(crate) async fn bounded<T>(
    doing: &str,
    operation: impl std::future::Future<Output = Result<T, BlobError>>,
) -> Result<T, BlobError> {
    tokio::time::timeout(NATS_OPERATION_TIMEOUT, operation)
        .await
        .unwrap_or_else(|_| {
            Err(nats_failed(
                doing,
                format!("no answer within {NATS_OPERATION_TIMEOUT:?} (is NATS up?)"),
            ))
        })
}

impl BlobStore for NatsBlobStore {
    fn put(&self, content: ByteStream, bytes_max: u64) -> BoxFuture<'_, Result<Stored, BlobError>> {
        Box::pin(self.objects.put_content(content, bytes_max))
    }

    fn open(&self, hash: ContentHash) -> BoxFuture<'_, Result<Option<BlobReader>, BlobError>> {
        Box::pin(async move { self.objects.read(&hash.to_hex()).await })
    }

    fn exists(&self, hash: ContentHash) -> BoxFuture<'_, Result<bool, BlobError>> {
        Box::pin(async move { self.objects.exists(&hash.to_hex()).await })
    }

    fn put_derived<'a>(
        &'a self,
        hash: ContentHash,
        name: &'a str,
        content: Bytes,
    ) -> BoxFuture<'a, Result<(), BlobError>> {
        Box::pin(async move {
            validate_derived_name(name)?;
            // The name first: a crash in between leaves a name without an object, which a
            // deletion skips, rather than an object no deletion finds.
            self.holds.add_derived_name(hash, name).await?;
            self.objects
                .put_small(&derived_object_name(hash, name), content)
                .await
        })
    }

    fn open_derived<'a>(
        &'a self,
        hash: ContentHash,
        name: &'a str,
    ) -> BoxFuture<'a, Result<Option<BlobReader>, BlobError>> {
        Box::pin(async move {
            validate_derived_name(name)?;
            self.objects.read(&derived_object_name(hash, name)).await
        })
    }

    fn local_path(&self, _hash: ContentHash) -> Option<PathBuf> {
        None
    }

    fn hold_unattached(
        &self,
        file: uuid::Uuid,
        hash: ContentHash,
        uploaded_at_ms: i64,
    ) -> BoxFuture<'_, Result<(), BlobError>> {
        Box::pin(async move {
            self.holds.hold(file, hash, uploaded_at_ms).await?;
            // Held first, checked second: a collection that doomed the blob before the hold was
            // written is seen here, and one that starts later sees the hold (see `holds`).
            let collected =
                self.holds.is_doomed(hash).await? || !self.objects.exists(&hash.to_hex()).await?;
            if collected {
                self.holds.release(file).await?;
                return Err(BlobError::Collected(hash));
            }
            Ok(())
        })
    }

    fn attached(&self, file: uuid::Uuid) -> BoxFuture<'_, Result<(), BlobError>> {
        Box::pin(self.holds.attached(file))
    }

    fn collect_unattached(
        &self,
        uploaded_before_ms: i64,
    ) -> BoxFuture<'_, Result<Collected, BlobError>> {
        Box::pin(self.collect(uploaded_before_ms))
    }

    fn attachments_position(&self) -> BoxFuture<'_, Result<Option<u64>, BlobError>> {
        Box::pin(self.holds.attachments_position())
    }

    fn set_attachments_position(&self, position: u64) -> BoxFuture<'_, Result<(), BlobError>> {
        Box::pin(self.holds.set_attachments_position(position))
    }
}
