//! The NATS blob store against a real nats-server (Debian's 2.9 with JetStream): round trips
//! between two connections (two gateways), deduplication, the streaming limit, a large file
//! streamed in bounded memory, unattached uploads collected, and clear errors while NATS is down.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::{Duration, Instant};

use blobs::{BlobError, BlobStore, ByteStream, ContentHash, NatsBlobStore, NatsBlobStoreConfig};
use bytes::Bytes;
use futures::StreamExt;
use sha2::{Digest, Sha256};
use testkit::NatsServer;

/// Chunk `index` of a generated file: varying bytes, so misordered chunks change the hash.
fn generated_chunk(index: usize, chunk_bytes: usize) -> Bytes {
    Bytes::from(
        (0..chunk_bytes)
            .map(|offset| ((index * 31 + offset * 7) % 251) as u8)
            .collect::<Vec<u8>>(),
    )
}

/// A generated file of `chunks` chunks, produced lazily (never whole in memory).
fn generated(chunks: usize, chunk_bytes: usize) -> ByteStream {
    Box::pin(
        futures::stream::iter(0..chunks).map(move |index| Ok(generated_chunk(index, chunk_bytes))),
    )
}

fn generated_sha256(chunks: usize, chunk_bytes: usize) -> ContentHash {
    let mut hasher = Sha256::new();
    for index in 0..chunks {
        hasher.update(generated_chunk(index, chunk_bytes));
    }
    ContentHash(hasher.finalize().into())
}

fn stream_of(bytes: &'static [u8]) -> ByteStream {
    Box::pin(futures::stream::iter([Ok(Bytes::from_static(bytes))]))
}

async fn store_on(server: &NatsServer, name: &str) -> NatsBlobStore {
    let bus = bus::Bus::connect(&server.url(), name).await.unwrap();
    let config = NatsBlobStoreConfig::for_subject_prefix("parlor", 1);
    NatsBlobStore::open(bus.nats_client().unwrap(), &config)
        .await
        .unwrap()
}

/// The blob's bytes (and declared size), or `None` when absent.
async fn read_all(store: &NatsBlobStore, hash: ContentHash) -> Option<(u64, Vec<u8>)> {
    let reader = store.open(hash).await.unwrap()?;
    let mut bytes = Vec::new();
    let mut stream = reader.stream;
    while let Some(chunk) = stream.next().await {
        bytes.extend_from_slice(&chunk.unwrap());
    }
    Some((reader.size, bytes))
}

/// The peak resident memory of this process so far, in bytes (Linux `VmHWM`).
fn peak_resident_bytes() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let line = status
        .lines()
        .find(|line| line.starts_with("VmHWM:"))
        .unwrap();
    let kib: u64 = line.split_whitespace().nth(1).unwrap().parse().unwrap();
    kib * 1024
}

#[tokio::test]
async fn an_upload_through_one_connection_reads_back_through_another() {
    let server = NatsServer::start();
    let gateway_a = store_on(&server, "gateway-a").await;
    let gateway_b = store_on(&server, "gateway-b").await;

    // Three chunks and a bit, in uneven pieces.
    let (chunks, chunk_bytes) = (7, 50_001);
    let stored = gateway_a
        .put(generated(chunks, chunk_bytes), 1 << 30)
        .await
        .unwrap();
    assert_eq!(stored.hash, generated_sha256(chunks, chunk_bytes));
    assert_eq!(stored.size, (chunks * chunk_bytes) as u64);
    assert!(stored.newly_stored);

    let (size, bytes) = read_all(&gateway_b, stored.hash).await.unwrap();
    assert_eq!(size, stored.size);
    assert_eq!(ContentHash(Sha256::digest(&bytes).into()), stored.hash);
    assert!(gateway_b.exists(stored.hash).await.unwrap());

    // The same content again, through the other gateway: stored once.
    let again = gateway_b
        .put(generated(chunks, chunk_bytes), 1 << 30)
        .await
        .unwrap();
    assert_eq!(again.hash, stored.hash);
    assert!(!again.newly_stored);

    // Derived objects too, replaced by a second put of the same name.
    gateway_a
        .put_derived(
            stored.hash,
            "thumbnail-256.png",
            Bytes::from_static(b"first"),
        )
        .await
        .unwrap();
    gateway_a
        .put_derived(
            stored.hash,
            "thumbnail-256.png",
            Bytes::from_static(b"second"),
        )
        .await
        .unwrap();
    let derived = gateway_b
        .open_derived(stored.hash, "thumbnail-256.png")
        .await
        .unwrap()
        .unwrap();
    let bytes: Vec<u8> = derived
        .stream
        .map(|chunk| chunk.unwrap())
        .collect::<Vec<_>>()
        .await
        .concat();
    assert_eq!(bytes, b"second");
    assert!(matches!(
        gateway_b.open_derived(stored.hash, "../escape").await,
        Err(BlobError::InvalidName(_))
    ));

    // Unknown blobs are absent, not errors; the store keeps no local files.
    let unknown = ContentHash([7; 32]);
    assert!(gateway_b.open(unknown).await.unwrap().is_none());
    assert!(!gateway_b.exists(unknown).await.unwrap());
    assert!(gateway_b.local_path(stored.hash).is_none());
    assert!(gateway_a
        .open_derived(unknown, "thumbnail-256.png")
        .await
        .unwrap()
        .is_none());
}

#[tokio::test]
async fn concurrent_uploads_of_the_same_content_store_it_once() {
    let server = NatsServer::start();
    let gateway_a = store_on(&server, "gateway-a").await;
    let gateway_b = store_on(&server, "gateway-b").await;
    let (first, second) = tokio::join!(
        gateway_a.put(generated(3, 100_000), 1 << 30),
        gateway_b.put(generated(3, 100_000), 1 << 30),
    );
    let (first, second) = (first.unwrap(), second.unwrap());
    assert_eq!(first.hash, second.hash);
    assert_eq!(
        u8::from(first.newly_stored) + u8::from(second.newly_stored),
        1,
        "exactly one of the two stored it: {first:?} {second:?}"
    );
    let (_, bytes) = read_all(&gateway_a, first.hash).await.unwrap();
    assert_eq!(ContentHash(Sha256::digest(&bytes).into()), first.hash);
}

#[tokio::test]
async fn an_upload_over_the_limit_or_broken_keeps_nothing() {
    let server = NatsServer::start();
    let store = store_on(&server, "gateway").await;
    let over = store.put(generated(4, 100_000), 250_000).await;
    assert!(
        matches!(over, Err(BlobError::TooLarge { bytes_max: 250_000 })),
        "{over:?}"
    );
    assert!(!store.exists(generated_sha256(4, 100_000)).await.unwrap());

    let broken: ByteStream = Box::pin(futures::stream::iter([
        Ok(generated_chunk(0, 200_000)),
        Err(std::io::Error::other("the client went away")),
    ]));
    assert!(matches!(
        store.put(broken, 1 << 30).await,
        Err(BlobError::Source(_))
    ));

    // The chunks of both were purged: the object stream holds no message at all.
    let client = async_nats::connect(server.url()).await.unwrap();
    let jetstream = async_nats::jetstream::new(client);
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let mut stream = jetstream.get_stream("OBJ_parlor-blobs").await.unwrap();
        let messages = stream.info().await.unwrap().state.messages;
        if messages == 0 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "{messages} chunk messages left behind"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn a_large_file_is_streamed_in_bounded_memory() {
    let mebibytes: usize = std::env::var("PARLOR_BLOB_LARGE_MIB")
        .ok()
        .and_then(|text| text.parse().ok())
        .unwrap_or(256);
    let server = NatsServer::start();
    let writer = store_on(&server, "gateway-a").await;
    let reader = store_on(&server, "gateway-b").await;
    let chunk_bytes = 64 * 1024;
    let chunks = mebibytes * 16;
    let before = peak_resident_bytes();

    let started = Instant::now();
    let stored = writer
        .put(generated(chunks, chunk_bytes), 1 << 30)
        .await
        .unwrap();
    let put_took = started.elapsed();
    assert_eq!(stored.size, (mebibytes as u64) << 20);

    let started = Instant::now();
    let opened = reader.open(stored.hash).await.unwrap().unwrap();
    assert_eq!(opened.size, stored.size);
    let mut hasher = Sha256::new();
    let mut read: u64 = 0;
    let mut stream = opened.stream;
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.unwrap();
        read += chunk.len() as u64;
        hasher.update(&chunk);
    }
    let get_took = started.elapsed();
    assert_eq!(read, stored.size);
    assert_eq!(ContentHash(hasher.finalize().into()), stored.hash);

    let grown = peak_resident_bytes().saturating_sub(before);
    eprintln!(
        "{mebibytes} MiB: put {put_took:?}, get {get_took:?}, peak memory grew {} MiB",
        grown >> 20
    );
    assert!(
        grown < 64 << 20,
        "the peak resident memory grew by {} MiB for a {mebibytes} MiB file",
        grown >> 20
    );
}

#[tokio::test]
async fn unattached_uploads_are_collected_and_attached_ones_kept() {
    let server = NatsServer::start();
    let gateway_a = store_on(&server, "gateway-a").await;
    let gateway_b = store_on(&server, "gateway-b").await;
    let lonely = gateway_a
        .put(stream_of(b"never attached"), 1 << 20)
        .await
        .unwrap();
    let shared = gateway_a
        .put(stream_of(b"attached later"), 1 << 20)
        .await
        .unwrap();
    gateway_a
        .put_derived(lonely.hash, "thumbnail-256.png", Bytes::from_static(b"png"))
        .await
        .unwrap();
    let (lonely_file, shared_file, young_file) = (
        uuid::Uuid::new_v4(),
        uuid::Uuid::new_v4(),
        uuid::Uuid::new_v4(),
    );
    gateway_a
        .hold_unattached(lonely_file, lonely.hash, 1_000)
        .await
        .unwrap();
    gateway_a
        .hold_unattached(shared_file, shared.hash, 1_000)
        .await
        .unwrap();
    // Attached through the other gateway: the records are shared.
    gateway_b.attached(shared_file).await.unwrap();
    gateway_b.attached(uuid::Uuid::new_v4()).await.unwrap();

    // A younger upload of the lonely content keeps it through the first collection.
    gateway_b
        .hold_unattached(young_file, lonely.hash, 5_000)
        .await
        .unwrap();
    let first = gateway_b.collect_unattached(2_000).await.unwrap();
    assert_eq!(
        (first.uploads_dropped, first.blobs_deleted),
        (1, 0),
        "{first:?}"
    );
    assert!(gateway_a.exists(lonely.hash).await.unwrap());

    let second = gateway_a.collect_unattached(10_000).await.unwrap();
    assert_eq!(
        (second.uploads_dropped, second.blobs_deleted),
        (1, 1),
        "{second:?}"
    );
    assert_eq!(second.bytes_deleted, b"never attached".len() as u64 + 3);
    assert!(read_all(&gateway_b, lonely.hash).await.is_none());
    assert!(gateway_b
        .open_derived(lonely.hash, "thumbnail-256.png")
        .await
        .unwrap()
        .is_none());
    // The attached one stays, and a hold on collected content fails clearly.
    assert!(gateway_b.exists(shared.hash).await.unwrap());
    let late = gateway_b
        .hold_unattached(uuid::Uuid::new_v4(), lonely.hash, 20_000)
        .await;
    assert!(
        matches!(late, Err(BlobError::Collected(hash)) if hash == lonely.hash),
        "{late:?}"
    );
    assert_eq!(
        gateway_a
            .collect_unattached(i64::MAX)
            .await
            .unwrap()
            .uploads_dropped,
        0
    );

    // Uploading the content again stores it afresh.
    let again = gateway_b
        .put(stream_of(b"never attached"), 1 << 20)
        .await
        .unwrap();
    assert!(again.newly_stored);
    assert_eq!(
        read_all(&gateway_a, again.hash).await.unwrap().1,
        b"never attached"
    );

    // The attachments position is shared too.
    assert_eq!(gateway_a.attachments_position().await.unwrap(), None);
    gateway_a.set_attachments_position(42).await.unwrap();
    assert_eq!(gateway_b.attachments_position().await.unwrap(), Some(42));
}

#[tokio::test]
async fn while_nats_is_down_operations_fail_clearly_and_recover() {
    let mut server = NatsServer::start();
    let store = store_on(&server, "gateway").await;
    let stored = store
        .put(stream_of(b"before the outage"), 1 << 20)
        .await
        .unwrap();
    server.stop();

    let started = Instant::now();
    let put = store.put(stream_of(b"during the outage"), 1 << 20).await;
    let opened = store.open(stored.hash).await;
    let held = store
        .hold_unattached(uuid::Uuid::new_v4(), stored.hash, 1)
        .await;
    let elapsed = started.elapsed();
    for (what, error) in [
        ("put", put.err()),
        ("open", opened.err()),
        ("hold", held.err()),
    ] {
        let error = error.unwrap_or_else(|| panic!("{what} succeeded while NATS was down"));
        let text = error.to_string();
        assert!(text.contains("NATS object store"), "{what}: {text}");
        // Told apart from a failing store: the gateway answers it 503, worth a retry.
        assert!(
            matches!(&error, BlobError::Io(io) if io.kind() == std::io::ErrorKind::TimedOut),
            "{what}: {error:?}"
        );
    }
    // Each operation gives up after its bound instead of hanging.
    assert!(elapsed < Duration::from_secs(60), "took {elapsed:?}");

    server.start_again();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        match read_all_result(&store, stored.hash).await {
            Ok(bytes) => {
                assert_eq!(bytes, b"before the outage");
                break;
            }
            Err(error) => {
                assert!(
                    Instant::now() < deadline,
                    "not back after the restart: {error}"
                );
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        }
    }
}

async fn read_all_result(store: &NatsBlobStore, hash: ContentHash) -> Result<Vec<u8>, String> {
    let reader = store
        .open(hash)
        .await
        .map_err(|error| error.to_string())?
        .ok_or("absent")?;
    let mut bytes = Vec::new();
    let mut stream = reader.stream;
    while let Some(chunk) = stream.next().await {
        bytes.extend_from_slice(&chunk.map_err(|error| error.to_string())?);
    }
    Ok(bytes)
}
