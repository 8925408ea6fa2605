//! Objects in the JetStream object store's layout, streamed in both directions.
//!
//! An upload publishes its bytes as chunks of [`CHUNK_BYTES`] on `$O.<bucket>.C.<nuid>` (at
//! most [`ACKS_IN_FLIGHT_MAX`] unacknowledged, so a gigabyte never sits in memory), hashing
//! them as they go; only then is its name, the sha256, known, and its description is published
//! on `$O.<bucket>.M.<base64 name>` with the rollup header and the subject's expected last
//! sequence: of two gateways storing the same content at once, one wins and the other drops
//! its chunks and reports the content as already stored. Until the description is published
//! no reader can see the chunks, so a blob is visible only once complete; chunks of an upload
//! that fails are purged.
//!
//! Chunks that no description names outlive their upload when a gateway crashes mid-upload,
//! or when publishing the description fails without saying whether it was stored (the chunks
//! are then kept, as a description may name them). [`Objects::purge_orphan_chunks`] purges
//! them once older than the configured age; an upload running longer than half that age fails
//! before describing its chunks, so no purge can hit chunks a description names.
//!
//! A download reads the chunks one direct get at a time (`next_by_subj`), so memory stays at
//! one chunk whatever the file's size, and checks the size and digest at the end: a blob that
//! does not match its description fails the download instead of serving wrong bytes.

use std::future::IntoFuture;
use std::io;
use std::time::{Duration, Instant, SystemTime};

use async_nats::jetstream::{self, object_store::ObjectInfo, stream::DirectGetErrorKind};
use async_nats::HeaderMap;
use base64::engine::general_purpose::URL_SAFE;
use base64::Engine;
use bytes::{Bytes, BytesMut};
use futures::stream::FuturesOrdered;
use futures::{StreamExt, TryStreamExt};
use sha2::{Digest, Sha256};

use super::{bounded, nats_failed, NatsBlobStoreConfig};
use crate::{BlobError, BlobReader, ByteStream, ContentHash, Stored};

/// The size of one chunk message, in bytes: the object store's default, well under NATS's
/// 1 MiB `max_payload`.
pub const CHUNK_BYTES: usize = 128 * 1024;

/// Chunks published and not yet acknowledged by JetStream, at most, during one upload.
pub const ACKS_IN_FLIGHT_MAX: usize = 16;

/// The object store's own description of an object (shared with the `nats` CLI).
struct Description {
    info: ObjectInfo,
    /// The stream sequence of the description message, for the next one's expected sequence.
    sequence: u64,
}

/// One object store bucket.
pub(crate) struct Objects {
    bucket: String,
    jetstream: jetstream::Context,
    stream: jetstream::stream::Stream,
    /// See [`NatsBlobStoreConfig::orphan_chunks_age`].
    orphan_chunks_age: Duration,
}

impl Objects {
    /// Opens the bucket, creating it when it does not exist.
    pub(crate) async fn open(
        jetstream: jetstream::Context,
        config: &NatsBlobStoreConfig,
    ) -> Result<Objects, BlobError> {
        let created = jetstream
            .create_object_store(jetstream::object_store::Config {
                bucket: config.bucket.clone(),
                description: Some("Parlor's file bytes (crates/blobs)".to_owned()),
                num_replicas: config.replicas,
                ..Default::default()
            })
            .await;
        if let Err(error) = created {
            // Made already with other settings (another replica count, say): use it as it is.
            let stream = jetstream.get_stream(format!("OBJ_{}", config.bucket)).await;
            if stream.is_err() {
                return Err(nats_failed(
                    &format!("opening the bucket {}", config.bucket),
                    error,
                ));
            }
            tracing::warn!(bucket = %config.bucket, %error, "using the existing object store as it is");
        }
        let stream = jetstream
            .get_stream(format!("OBJ_{}", config.bucket))
            .await
            .map_err(|error| {
                nats_failed(&format!("opening the bucket {}", config.bucket), error)
            })?;
        Ok(Objects {
            bucket: config.bucket.clone(),
            jetstream,
            stream,
            orphan_chunks_age: config.orphan_chunks_age,
        })
    }

    pub(crate) fn bucket(&self) -> &str {
        &self.bucket
    }

    fn description_subject(&self, name: &str) -> String {
        format!("$O.{}.M.{}", self.bucket, URL_SAFE.encode(name))
    }

    fn chunk_subject(&self, nuid: &str) -> String {
        format!("$O.{}.C.{}", self.bucket, nuid)
    }

    /// The latest description of `name`, deleted or not; `None` when there never was one.
    async fn describe(&self, name: &str) -> Result<Option<Description>, BlobError> {
        let doing = || format!("reading the description of {name}");
        let message = match self
            .stream
            .direct_get_last_for_subject(self.description_subject(name))
            .await
        {
            Ok(message) => message,
            Err(error) if error.kind() == DirectGetErrorKind::NotFound => return Ok(None),
            Err(error) => return Err(nats_failed(&doing(), error)),
        };
        let info: ObjectInfo = serde_json::from_slice(&message.payload)
            .map_err(|error| nats_failed(&doing(), error))?;
        Ok(Some(Description {
            info,
            sequence: message.sequence,
        }))
    }

    pub(crate) async fn exists(&self, name: &str) -> Result<bool, BlobError> {
        Ok(self
            .describe(name)
            .await?
            .is_some_and(|description| !description.info.deleted))
    }

    /// Stores a content-addressed blob (see the module's documentation).
    pub(crate) async fn put_content(
        &self,
        mut content: ByteStream,
        bytes_max: u64,
    ) -> Result<Stored, BlobError> {
        // Before the first chunk is published, so that the chunks are never older than this.
        let started = Instant::now();
        let nuid = uuid::Uuid::new_v4().simple().to_string();
        let chunks = Chunks::new(self, nuid);
        let mut hasher = Sha256::new();
        let mut size: u64 = 0;
        let mut buffer = BytesMut::with_capacity(CHUNK_BYTES);
        let mut acks = FuturesOrdered::new();
        let mut chunk_count: usize = 0;
        loop {
            let next = content.next().await;
            let finished = next.is_none();
            if let Some(chunk) = next {
                let chunk = chunk.map_err(BlobError::Source)?;
                size = size.saturating_add(u64::try_from(chunk.len()).unwrap_or(u64::MAX));
                // Checked before publishing, so that not one byte over the limit is stored.
                if size > bytes_max {
                    return Err(BlobError::TooLarge { bytes_max });
                }
                hasher.update(&chunk);
                buffer.extend_from_slice(&chunk);
            }
            while buffer.len() >= CHUNK_BYTES || (finished && !buffer.is_empty()) {
                let take = buffer.len().min(CHUNK_BYTES);
                let payload = buffer.split_to(take).freeze();
                let ack = bounded("publishing a chunk", async {
                    self.jetstream
                        .publish(chunks.subject.clone(), payload)
                        .await
                        .map_err(|error| nats_failed("publishing a chunk", error))
                })
                .await?;
                acks.push_back(ack.into_future());
                chunk_count += 1;
                if acks.len() >= ACKS_IN_FLIGHT_MAX {
                    await_ack(&mut acks).await?;
                }
            }
            if finished {
                break;
            }
        }
        while !acks.is_empty() {
            await_ack(&mut acks).await?;
        }
        self.check_running_time(started)?;
        self.check_chunks_stored(&chunks, chunk_count).await?;
        let digest: [u8; 32] = hasher.finalize().into();
        let hash = ContentHash(digest);
        let name = hash.to_hex();
        let existing = self.describe(&name).await?;
        if existing.as_ref().is_some_and(|found| !found.info.deleted) {
            // Deduplicated: this upload's chunks are purged when `chunks` drops.
            return Ok(Stored {
                hash,
                size,
                newly_stored: false,
            });
        }
        let info = ObjectInfo {
            name: name.clone(),
            description: None,
            metadata: Default::default(),
            headers: None,
            options: Some(jetstream::object_store::ObjectOptions {
                link: None,
                max_chunk_size: Some(CHUNK_BYTES),
            }),
            bucket: self.bucket.clone(),
            nuid: chunks.nuid.clone(),
            size: usize::try_from(size).unwrap_or(usize::MAX),
            chunks: chunk_count,
            modified: None,
            digest: Some(format!("SHA-256={}", URL_SAFE.encode(digest))),
            deleted: false,
        };
        let expected = existing.map_or(0, |found| found.sequence);
        match self.publish_description(&name, &info, Some(expected)).await {
            Ok(()) => {
                chunks.keep();
                Ok(Stored {
                    hash,
                    size,
                    newly_stored: true,
                })
            }
            // Another upload of the same content published its description first.
            Err(DescriptionError::Raced) => Ok(Stored {
                hash,
                size,
                newly_stored: false,
            }),
            Err(DescriptionError::Failed(error)) => {
                // The description may be stored all the same (an acknowledgement lost): purging
                // the chunks could leave a blob whose bytes are gone, and every later upload of
                // the same content would be deduplicated against it. Kept, the chunks are
                // purged by the orphan sweep if no description names them.
                chunks.keep();
                Err(error)
            }
        }
    }

    /// Fails an upload that ran so long that the orphan sweep may purge its chunks: one that
    /// started (published its first chunk) longer than half of [`Self::orphan_chunks_age`] ago.
    /// The other half covers the description's publication and clocks that disagree.
    fn check_running_time(&self, started: Instant) -> Result<(), BlobError> {
        let running = started.elapsed();
        let running_max = self.orphan_chunks_age / 2;
        if running <= running_max {
            return Ok(());
        }
        Err(BlobError::Io(io::Error::new(
            io::ErrorKind::TimedOut,
            format!(
                "NATS object store: an upload ran {}s, longer than the {}s allowed",
                running.as_secs(),
                running_max.as_secs()
            ),
        )))
    }

    /// Fails unless the stream holds every chunk of this upload. [`Self::check_running_time`]
    /// keeps the orphan sweep off a running upload's chunks as long as the clocks of gateways
    /// and servers agree within hours; this check catches the case where they do not.
    async fn check_chunks_stored(&self, chunks: &Chunks, expected: usize) -> Result<(), BlobError> {
        let doing = "counting an upload's chunks";
        let counts: Vec<(String, usize)> = bounded(doing, async {
            self.stream
                .info_with_subjects(chunks.subject.clone())
                .await
                .map_err(|error| nats_failed(doing, error))?
                .try_collect()
                .await
                .map_err(|error| nats_failed(doing, error))
        })
        .await?;
        let stored: usize = counts.iter().map(|(_, count)| count).sum();
        if stored == expected {
            Ok(())
        } else {
            Err(nats_failed(
                doing,
                format!("{stored} of {expected} chunks are stored (purged as a crashed upload's after running too long?)"),
            ))
        }
    }

    /// Publishes `info` as the description of `name`, replacing earlier ones (rollup); with
    /// `expected`, only if the subject's last message is still that sequence (0: none).
    async fn publish_description(
        &self,
        name: &str,
        info: &ObjectInfo,
        expected: Option<u64>,
    ) -> Result<(), DescriptionError> {
        let doing = format!("publishing the description of {name}");
        let payload = serde_json::to_vec(info).map_err(|error| nats_failed(&doing, error))?;
        let mut headers = HeaderMap::new();
        headers.insert("Nats-Rollup", "sub");
        if let Some(sequence) = expected {
            headers.insert(
                "Nats-Expected-Last-Subject-Sequence",
                sequence.to_string().as_str(),
            );
        }
        let ack = bounded(&doing, async {
            self.jetstream
                .publish_with_headers(self.description_subject(name), headers, payload.into())
                .await
                .map_err(|error| nats_failed(&doing, error))
        })
        .await?;
        match ack.await {
            Ok(_) => Ok(()),
            Err(error)
                if error.kind() == jetstream::context::PublishErrorKind::WrongLastSequence =>
            {
                Err(DescriptionError::Raced)
            }
            Err(error) => Err(DescriptionError::Failed(nats_failed(&doing, error))),
        }
    }

    /// Stores a small object under a known name, replacing an earlier one of that name.
    pub(crate) async fn put_small(&self, name: &str, content: Bytes) -> Result<(), BlobError> {
        let started = Instant::now();
        let doing = format!("storing {name}");
        let existing = self.describe(name).await?;
        let nuid = uuid::Uuid::new_v4().simple().to_string();
        let chunks = Chunks::new(self, nuid);
        let mut chunk_count = 0;
        for payload in content.chunks(CHUNK_BYTES) {
            let ack = bounded(&doing, async {
                self.jetstream
                    .publish(chunks.subject.clone(), Bytes::copy_from_slice(payload))
                    .await
                    .map_err(|error| nats_failed(&doing, error))
            })
            .await?;
            ack.await.map_err(|error| nats_failed(&doing, error))?;
            chunk_count += 1;
        }
        let digest: [u8; 32] = Sha256::digest(&content).into();
        let info = ObjectInfo {
            name: name.to_owned(),
            description: None,
            metadata: Default::default(),
            headers: None,
            options: Some(jetstream::object_store::ObjectOptions {
                link: None,
                max_chunk_size: Some(CHUNK_BYTES),
            }),
            bucket: self.bucket.clone(),
            nuid: chunks.nuid.clone(),
            size: content.len(),
            chunks: chunk_count,
            modified: None,
            digest: Some(format!("SHA-256={}", URL_SAFE.encode(digest))),
            deleted: false,
        };
        self.check_running_time(started)?;
        match self.publish_description(name, &info, None).await {
            Ok(()) => {}
            Err(DescriptionError::Raced) => unreachable_race(name)?,
            Err(DescriptionError::Failed(error)) => {
                // Perhaps stored all the same: left to the orphan sweep (see `put_content`).
                chunks.keep();
                return Err(error);
            }
        }
        chunks.keep();
        if let Some(old) = existing.filter(|old| !old.info.deleted) {
            self.purge_chunks(&old.info.nuid).await?;
        }
        Ok(())
    }

    /// Deletes `name` (a deleted description, then its chunks purged); returns its size.
    pub(crate) async fn delete(&self, name: &str) -> Result<u64, BlobError> {
        let Some(found) = self.describe(name).await? else {
            return Ok(0);
        };
        if found.info.deleted {
            return Ok(0);
        }
        let mut deleted = found.info.clone();
        deleted.deleted = true;
        deleted.size = 0;
        deleted.chunks = 0;
        deleted.digest = None;
        match self.publish_description(name, &deleted, None).await {
            Ok(()) => {}
            Err(DescriptionError::Raced) => unreachable_race(name)?,
            Err(DescriptionError::Failed(error)) => return Err(error),
        }
        self.purge_chunks(&found.info.nuid).await?;
        Ok(u64::try_from(found.info.size).unwrap_or(u64::MAX))
    }

    async fn purge_chunks(&self, nuid: &str) -> Result<(), BlobError> {
        let subject = self.chunk_subject(nuid);
        self.stream
            .purge()
            .filter(subject)
            .await
            .map(|_| ())
            .map_err(|error| nats_failed("purging chunks", error))
    }

    /// Purges the chunks no description names whose first chunk is older than
    /// [`Self::orphan_chunks_age`]: the leftovers of uploads cut by a crash or whose description
    /// may not have been stored (a failed upload purges its own). Younger ones may belong to an
    /// upload still running on another gateway. Returns the uploads purged.
    ///
    /// Why a description published while this runs never names purged chunks: `now` is read
    /// before the descriptions are listed, and only chunks whose first one was stored before
    /// `now - age` are purged; their upload started before that, so it described them (within
    /// half the age, [`Self::check_running_time`]) before `now - age / 2`, long before the
    /// listing, which therefore saw the description — or it fails without describing them.
    ///
    /// Costs a listing of every description and of every chunk subject (no payloads but one
    /// chunk per unreferenced upload), so it runs rarely ([`super::ORPHAN_SWEEP_INTERVAL`]).
    pub(crate) async fn purge_orphan_chunks(&self) -> Result<usize, BlobError> {
        let doing = "looking for chunks of unfinished uploads";
        let now = SystemTime::now();
        let mut referenced = std::collections::HashSet::new();
        let descriptions = format!("$O.{}.M.>", self.bucket);
        let mut next = 1;
        loop {
            let message = match self
                .stream
                .direct_get_next_for_subject(descriptions.clone(), Some(next))
                .await
            {
                Ok(message) => message,
                Err(error) if error.kind() == DirectGetErrorKind::NotFound => break,
                Err(error) => return Err(nats_failed(doing, error)),
            };
            next = message.sequence.saturating_add(1);
            let info: ObjectInfo = serde_json::from_slice(&message.payload)
                .map_err(|error| nats_failed(doing, error))?;
            referenced.insert(info.nuid);
        }
        let chunk_prefix = self.chunk_subject("");
        let subjects: Vec<(String, usize)> = bounded(doing, async {
            self.stream
                .info_with_subjects(format!("{chunk_prefix}>"))
                .await
                .map_err(|error| nats_failed(doing, error))?
                .try_collect()
                .await
                .map_err(|error| nats_failed(doing, error))
        })
        .await?;
        let mut purged = 0;
        for (subject, _) in subjects {
            let nuid = subject.get(chunk_prefix.len()..).unwrap_or_default();
            if nuid.is_empty() || referenced.contains(nuid) {
                continue;
            }
            let first = match self
                .stream
                .direct_get_next_for_subject(subject.clone(), Some(1))
                .await
            {
                Ok(message) => message,
                // Purged meanwhile (by its upload or another gateway's sweep).
                Err(error) if error.kind() == DirectGetErrorKind::NotFound => continue,
                Err(error) => return Err(nats_failed(doing, error)),
            };
            let stored_at = SystemTime::from(first.time);
            let old = now
                .duration_since(stored_at)
                .is_ok_and(|age| age >= self.orphan_chunks_age);
            if old {
                self.purge_chunks(nuid).await?;
                purged += 1;
            }
        }
        Ok(purged)
    }

    /// Opens `name` for streaming; `None` when absent or deleted.
    pub(crate) async fn read(&self, name: &str) -> Result<Option<BlobReader>, BlobError> {
        let Some(found) = self.describe(name).await? else {
            return Ok(None);
        };
        if found.info.deleted {
            return Ok(None);
        }
        let size = u64::try_from(found.info.size).unwrap_or(u64::MAX);
        let reader = ChunkReader {
            stream: self.stream.clone(),
            subject: self.chunk_subject(&found.info.nuid),
            name: name.to_owned(),
            next_sequence: 1,
            chunks_left: found.info.chunks,
            bytes_left: size,
            hasher: Sha256::new(),
            digest: found.info.digest.clone(),
        };
        let stream = futures::stream::try_unfold(reader, |mut reader| async move {
            match reader.next_chunk().await? {
                Some(chunk) => Ok(Some((chunk, reader))),
                None => Ok(None),
            }
        });
        Ok(Some(BlobReader {
            size,
            stream: Box::pin(stream),
        }))
    }
}

/// Why a description was not published.
enum DescriptionError {
    /// The subject's last message was not the expected one.
    Raced,
    Failed(BlobError),
}

impl From<BlobError> for DescriptionError {
    fn from(error: BlobError) -> DescriptionError {
        DescriptionError::Failed(error)
    }
}

/// Descriptions published without an expected sequence cannot race; a server that says so
/// anyway is answered with an error rather than a panic.
fn unreachable_race(name: &str) -> Result<(), BlobError> {
    Err(nats_failed(
        &format!("publishing the description of {name}"),
        "refused as a race although no sequence was expected",
    ))
}

async fn await_ack(
    acks: &mut FuturesOrdered<<jetstream::context::PublishAckFuture as IntoFuture>::IntoFuture>,
) -> Result<(), BlobError> {
    if let Some(ack) = acks.next().await {
        ack.map_err(|error| nats_failed("storing a chunk", error))?;
    }
    Ok(())
}

/// The chunks of one upload, purged when dropped unless kept: whatever way an upload ends
/// early (a limit, a broken stream, a cancelled future, NATS gone), no chunk stays behind —
/// unless NATS is unreachable for the purge too, which the log then says.
struct Chunks {
    nuid: String,
    subject: String,
    stream: jetstream::stream::Stream,
    kept: bool,
}

impl Chunks {
    fn new(objects: &Objects, nuid: String) -> Chunks {
        Chunks {
            subject: objects.chunk_subject(&nuid),
            nuid,
            stream: objects.stream.clone(),
            kept: false,
        }
    }

    fn keep(mut self) {
        self.kept = true;
    }
}

impl Drop for Chunks {
    fn drop(&mut self) {
        if self.kept {
            return;
        }
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return;
        };
        let stream = self.stream.clone();
        let subject = self.subject.clone();
        // Drop cannot await: the purge runs on its own, bounded by the context's timeout.
        runtime.spawn(async move {
            if let Err(error) = stream.purge().filter(subject.clone()).await {
                tracing::warn!(%subject, %error, "cannot purge the chunks of an unfinished upload");
            }
        });
    }
}

/// Reads one object's chunks in order.
struct ChunkReader {
    stream: jetstream::stream::Stream,
    subject: String,
    name: String,
    next_sequence: u64,
    chunks_left: usize,
    bytes_left: u64,
    hasher: Sha256,
    digest: Option<String>,
}

impl ChunkReader {
    async fn next_chunk(&mut self) -> io::Result<Option<Bytes>> {
        if self.chunks_left == 0 {
            return self.finish().map(|()| None);
        }
        let message = self
            .stream
            .direct_get_next_for_subject(self.subject.clone(), Some(self.next_sequence))
            .await
            .map_err(|error| {
                io::Error::other(format!(
                    "NATS object store: reading a chunk of {}: {error}",
                    self.name
                ))
            })?;
        self.next_sequence = message.sequence.saturating_add(1);
        self.chunks_left -= 1;
        let length = u64::try_from(message.payload.len()).unwrap_or(u64::MAX);
        if length > self.bytes_left {
            return Err(self.corrupt("more bytes than its size"));
        }
        self.bytes_left -= length;
        self.hasher.update(&message.payload);
        Ok(Some(message.payload))
    }

    fn finish(&mut self) -> io::Result<()> {
        if self.bytes_left != 0 {
            return Err(self.corrupt("fewer bytes than its size"));
        }
        let digest: [u8; 32] = std::mem::take(&mut self.hasher).finalize().into();
        let expected = format!("SHA-256={}", URL_SAFE.encode(digest));
        if self
            .digest
            .as_deref()
            .is_some_and(|stored| stored != expected)
        {
            return Err(self.corrupt("a digest other than its description's"));
        }
        Ok(())
    }

    fn corrupt(&self, what: &str) -> io::Error {
        io::Error::new(
            io::ErrorKind::InvalidData,
            format!("NATS object store: {} has {what}", self.name),
        )
    }
}
