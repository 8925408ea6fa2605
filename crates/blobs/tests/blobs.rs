//! The local blob store against a real directory: round trips, deduplication, the streaming
//! limit, broken streams, concurrency and derived objects.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io;
use std::path::Path;
use std::sync::Arc;

use blobs::{BlobError, BlobStore, ByteStream, ContentHash, LocalBlobStore};
use bytes::Bytes;
use futures::StreamExt;
use sha2::{Digest, Sha256};

/// `chunks` chunks of `chunk_bytes` bytes each, with varying content.
fn content(chunks: usize, chunk_bytes: usize) -> Vec<Bytes> {
    (0..chunks)
        .map(|index| {
            Bytes::from(
                (0..chunk_bytes)
                    .map(|offset| ((index * 31 + offset * 7) % 251) as u8)
                    .collect::<Vec<u8>>(),
            )
        })
        .collect()
}

fn stream_of(chunks: Vec<Bytes>) -> ByteStream {
    Box::pin(futures::stream::iter(chunks.into_iter().map(Ok)))
}

fn sha256_of(chunks: &[Bytes]) -> String {
    let mut hasher = Sha256::new();
    for chunk in chunks {
        hasher.update(chunk);
    }
    hex::encode(hasher.finalize())
}

async fn read_all(store: &LocalBlobStore, hash: ContentHash) -> Option<(u64, Vec<u8>)> {
    let reader = store.open(hash).await.unwrap()?;
    let mut bytes = Vec::new();
    let mut stream = reader.stream;
    while let Some(chunk) = stream.next().await {
        bytes.extend_from_slice(&chunk.unwrap());
    }
    Some((reader.size, bytes))
}

/// Every file under `root`, except the (empty) directories.
fn files_under(root: &Path) -> Vec<std::path::PathBuf> {
    let mut found = Vec::new();
    let mut pending = vec![root.to_owned()];
    while let Some(directory) = pending.pop() {
        for entry in std::fs::read_dir(&directory).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                pending.push(path);
            } else {
                found.push(path);
            }
        }
    }
    found
}

#[tokio::test]
async fn put_then_open_round_trips_the_bytes() {
    let root = tempfile::tempdir().unwrap();
    let store = LocalBlobStore::new(root.path()).unwrap();
    let chunks = content(40, 100_000);
    let expected: Vec<u8> = chunks.iter().flat_map(|chunk| chunk.to_vec()).collect();
    let stored = store
        .put(stream_of(chunks.clone()), 10_000_000)
        .await
        .unwrap();
    assert_eq!(stored.size, 4_000_000);
    assert!(stored.newly_stored);
    assert_eq!(stored.hash.to_hex(), sha256_of(&chunks));
    assert!(store.exists(stored.hash).await.unwrap());
    // Content-addressed layout: <root>/ab/cdef…
    let hex = stored.hash.to_hex();
    assert!(root.path().join(&hex[..2]).join(&hex[2..]).is_file());
    let (size, bytes) = read_all(&store, stored.hash).await.unwrap();
    assert_eq!(size, 4_000_000);
    assert!(bytes == expected, "the bytes read back differ");
}

#[tokio::test]
async fn a_missing_blob_is_none() {
    let root = tempfile::tempdir().unwrap();
    let store = LocalBlobStore::new(root.path()).unwrap();
    let hash = ContentHash([7; 32]);
    assert!(store.open(hash).await.unwrap().is_none());
    assert!(!store.exists(hash).await.unwrap());
    assert!(store
        .open_derived(hash, "thumb.png")
        .await
        .unwrap()
        .is_none());
}

#[tokio::test]
async fn identical_content_is_stored_once() {
    let root = tempfile::tempdir().unwrap();
    let store = LocalBlobStore::new(root.path()).unwrap();
    let chunks = content(3, 1000);
    let first = store.put(stream_of(chunks.clone()), 1 << 20).await.unwrap();
    // The same bytes cut into other chunks are the same content.
    let joined: Vec<u8> = chunks.iter().flat_map(|chunk| chunk.to_vec()).collect();
    let second = store
        .put(stream_of(vec![Bytes::from(joined)]), 1 << 20)
        .await
        .unwrap();
    assert_eq!(first.hash, second.hash);
    assert!(first.newly_stored);
    assert!(!second.newly_stored);
    assert_eq!(
        files_under(root.path()).len(),
        1,
        "one blob, no temporary files"
    );
}

#[tokio::test]
async fn content_over_the_limit_mid_stream_leaves_nothing_behind() {
    let root = tempfile::tempdir().unwrap();
    let store = LocalBlobStore::new(root.path()).unwrap();
    // 10 chunks of 1000 bytes against a limit of 4,500: refused in the fifth chunk.
    let consumed = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let counter = Arc::clone(&consumed);
    let stream: ByteStream = Box::pin(futures::stream::iter(content(10, 1000)).map(move |chunk| {
        counter.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        Ok(chunk)
    }));
    let error = store.put(stream, 4_500).await.unwrap_err();
    assert!(
        matches!(error, BlobError::TooLarge { bytes_max: 4_500 }),
        "{error}"
    );
    assert_eq!(
        consumed.load(std::sync::atomic::Ordering::SeqCst),
        5,
        "the stream is not read past the limit"
    );
    assert!(
        files_under(root.path()).is_empty(),
        "{:?}",
        files_under(root.path())
    );
    // Exactly at the limit is accepted.
    let stored = store
        .put(stream_of(content(1, 4_500)), 4_500)
        .await
        .unwrap();
    assert_eq!(stored.size, 4_500);
}

#[tokio::test]
async fn a_broken_stream_leaves_nothing_behind() {
    let root = tempfile::tempdir().unwrap();
    let store = LocalBlobStore::new(root.path()).unwrap();
    let chunks: Vec<io::Result<Bytes>> = vec![
        Ok(Bytes::from_static(b"some bytes")),
        Err(io::Error::new(
            io::ErrorKind::ConnectionReset,
            "client went away",
        )),
    ];
    let error = store
        .put(Box::pin(futures::stream::iter(chunks)), 1 << 20)
        .await
        .unwrap_err();
    assert!(matches!(error, BlobError::Source(_)), "{error}");
    assert!(files_under(root.path()).is_empty());
}

#[tokio::test]
async fn a_cancelled_put_leaves_nothing_behind() {
    let root = tempfile::tempdir().unwrap();
    let store = LocalBlobStore::new(root.path()).unwrap();
    // A stream that yields one chunk and then never ends: the put is dropped mid-way.
    let stream: ByteStream = Box::pin(
        futures::stream::iter(vec![Ok(Bytes::from_static(b"partial"))])
            .chain(futures::stream::pending()),
    );
    let put = store.put(stream, 1 << 20);
    let outcome = tokio::time::timeout(std::time::Duration::from_millis(200), put).await;
    assert!(outcome.is_err(), "the put cannot finish");
    assert!(files_under(root.path()).is_empty());
}

#[tokio::test]
async fn concurrent_puts_of_the_same_content_store_it_once() {
    let root = tempfile::tempdir().unwrap();
    let store = Arc::new(LocalBlobStore::new(root.path()).unwrap());
    let chunks = content(20, 50_000);
    let tasks: Vec<_> = (0..8)
        .map(|_| {
            let store = Arc::clone(&store);
            let chunks = chunks.clone();
            tokio::spawn(async move { store.put(stream_of(chunks), 10_000_000).await })
        })
        .collect();
    let mut hashes = Vec::new();
    for task in tasks {
        hashes.push(task.await.unwrap().unwrap().hash);
    }
    assert!(hashes.windows(2).all(|pair| pair[0] == pair[1]));
    assert_eq!(files_under(root.path()).len(), 1);
    let (size, bytes) = read_all(&store, hashes[0]).await.unwrap();
    assert_eq!(size, 1_000_000);
    assert_eq!(hex::encode(Sha256::digest(&bytes)), sha256_of(&chunks));
}

#[tokio::test]
async fn derived_objects_live_beside_their_blob() {
    let root = tempfile::tempdir().unwrap();
    let store = LocalBlobStore::new(root.path()).unwrap();
    let stored = store.put(stream_of(content(1, 10)), 100).await.unwrap();
    store
        .put_derived(
            stored.hash,
            "thumbnail-256.png",
            Bytes::from_static(b"png bytes"),
        )
        .await
        .unwrap();
    let reader = store
        .open_derived(stored.hash, "thumbnail-256.png")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(reader.size, 9);
    // Replacing keeps one object.
    store
        .put_derived(stored.hash, "thumbnail-256.png", Bytes::from_static(b"new"))
        .await
        .unwrap();
    let reader = store
        .open_derived(stored.hash, "thumbnail-256.png")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(reader.size, 3);
    assert_eq!(files_under(root.path()).len(), 2);
    let error = store
        .put_derived(stored.hash, "../escape", Bytes::new())
        .await
        .unwrap_err();
    assert!(matches!(error, BlobError::InvalidName(_)));
}

#[tokio::test]
async fn the_local_path_is_the_blob_file() {
    let root = tempfile::tempdir().unwrap();
    let store = LocalBlobStore::new(root.path()).unwrap();
    let stored = store.put(stream_of(content(1, 10)), 100).await.unwrap();
    let path = store.local_path(stored.hash).unwrap();
    assert_eq!(std::fs::metadata(path).unwrap().len(), 10);
}

// ---- Unattached uploads (security.md H-L3) ----

/// Stores `chunks` and holds them for a new upload at `at_ms`; returns the upload and blob.
async fn held_upload(
    store: &LocalBlobStore,
    chunks: Vec<Bytes>,
    at_ms: i64,
) -> (uuid::Uuid, ContentHash) {
    let stored = store.put(stream_of(chunks), 10_000_000).await.unwrap();
    let file = uuid::Uuid::new_v4();
    store
        .hold_unattached(file, stored.hash, at_ms)
        .await
        .unwrap();
    (file, stored.hash)
}

#[tokio::test]
async fn h_l3_unattached_uploads_survive_a_reopen_and_are_collected_with_their_derived_objects() {
    let root = tempfile::tempdir().unwrap();
    let store = LocalBlobStore::new(root.path()).unwrap();
    let (_, abandoned) = held_upload(&store, content(3, 1000), 1_000).await;
    store
        .put_derived(abandoned, "thumbnail.png", Bytes::from_static(b"png"))
        .await
        .unwrap();
    let (attached_file, attached) = held_upload(&store, content(2, 500), 1_000).await;
    store.attached(attached_file).await.unwrap();
    drop(store);

    // A restart: a new store over the same directory still knows the abandoned upload.
    let store = LocalBlobStore::new(root.path()).unwrap();
    // Not past the grace yet.
    let collected = store.collect_unattached(1_000).await.unwrap();
    assert_eq!(collected, blobs::Collected::default());
    assert!(store.exists(abandoned).await.unwrap());

    let collected = store.collect_unattached(1_001).await.unwrap();
    assert_eq!(collected.uploads_dropped, 1);
    assert_eq!(collected.blobs_deleted, 1);
    assert_eq!(collected.bytes_deleted, 3_000 + 3);
    assert!(!store.exists(abandoned).await.unwrap());
    assert!(store
        .open_derived(abandoned, "thumbnail.png")
        .await
        .unwrap()
        .is_none());
    assert!(store.exists(attached).await.unwrap(), "attached bytes stay");
    // Nothing is left of the abandoned upload anywhere under the root.
    let left: Vec<_> = files_under(root.path())
        .into_iter()
        .filter(|path| path.to_string_lossy().contains(&abandoned.to_hex()[2..]))
        .collect();
    assert!(left.is_empty(), "{left:?}");
}

#[tokio::test]
async fn h_l3_a_blob_shared_by_uploads_goes_only_when_every_one_expired_unattached() {
    let root = tempfile::tempdir().unwrap();
    let store = LocalBlobStore::new(root.path()).unwrap();
    let (_, shared) = held_upload(&store, content(2, 100), 1_000).await;
    let (_, same) = held_upload(&store, content(2, 100), 5_000).await;
    assert_eq!(shared, same);
    // The first expired, the second not: the bytes stay for the second.
    let collected = store.collect_unattached(2_000).await.unwrap();
    assert_eq!((collected.uploads_dropped, collected.blobs_deleted), (1, 0));
    assert!(store.exists(shared).await.unwrap());
    let collected = store.collect_unattached(6_000).await.unwrap();
    assert_eq!((collected.uploads_dropped, collected.blobs_deleted), (1, 1));
    assert!(!store.exists(shared).await.unwrap());

    // An upload of content just collected is refused, keeping nothing, rather than registered
    // without bytes.
    let collected_hash = shared;
    let refused = store
        .hold_unattached(uuid::Uuid::new_v4(), collected_hash, 7_000)
        .await;
    assert!(
        matches!(refused, Err(BlobError::Collected(_))),
        "{refused:?}"
    );
}

#[tokio::test]
async fn the_attachments_position_is_kept_across_a_reopen() {
    let root = tempfile::tempdir().unwrap();
    let store = LocalBlobStore::new(root.path()).unwrap();
    assert_eq!(store.attachments_position().await.unwrap(), None);
    store.set_attachments_position(42).await.unwrap();
    drop(store);
    let store = LocalBlobStore::new(root.path()).unwrap();
    assert_eq!(store.attachments_position().await.unwrap(), Some(42));
}
