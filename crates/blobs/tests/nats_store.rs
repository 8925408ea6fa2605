//! The NATS blob store against a real nats-server (Debian's 2.9 with JetStream): round trips
//! between two connections (two gateways), deduplication, the streaming limit, a large file
//! streamed in bounded memory, unattached uploads collected, the chunks of uploads cut by a
//! crash purged (and no others), and clear errors while NATS is down.

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
    store_with_orphan_age(server, name, blobs::ORPHAN_CHUNKS_AGE_MIN).await
}

/// A store whose orphan sweep purges undescribed chunks older than `orphan_chunks_age`.
async fn store_with_orphan_age(
    server: &NatsServer,
    name: &str,
    orphan_chunks_age: Duration,
) -> NatsBlobStore {
    let bus = bus::Bus::connect(&server.url(), name).await.unwrap();
    let config = NatsBlobStoreConfig {
        orphan_chunks_age,
        ..NatsBlobStoreConfig::for_subject_prefix("parlor", 1)
    };
    NatsBlobStore::open(bus.nats_client().unwrap(), &config)
        .await
        .unwrap()
}

/// The chunk subjects in the object stream (one per upload whose chunks are kept), sorted.
async fn chunk_subjects(server: &NatsServer) -> Vec<String> {
    let client = async_nats::connect(server.url()).await.unwrap();
    let jetstream = async_nats::jetstream::new(client);
    let stream = jetstream.get_stream("OBJ_parlor-blobs").await.unwrap();
    let mut subjects: Vec<String> = stream
        .info_with_subjects("$O.parlor-blobs.C.>")
        .await
        .unwrap()
        .map(|subject| subject.unwrap().0)
        .collect()
        .await;
    subjects.sort();
    subjects
}

/// Waits (bounded) until the object stream holds `count` chunk subjects.
async fn await_chunk_subjects(server: &NatsServer, count: usize) -> Vec<String> {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let subjects = chunk_subjects(server).await;
        if subjects.len() == count {
            return subjects;
        }
        assert!(
            Instant::now() < deadline,
            "expected {count} chunk subjects: {subjects:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
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
async fn chunks_of_uploads_cut_by_a_crash_are_purged_and_no_others() {
    let server = NatsServer::start();
    let gateway = std::sync::Arc::new(store_on(&server, "gateway-a").await);
    // Another gateway whose sweep takes every undescribed chunk as old.
    let sweeper = store_with_orphan_age(&server, "gateway-b", Duration::ZERO).await;
    let kept = gateway.put(generated(3, 100_000), 1 << 30).await.unwrap();
    let kept_subjects = await_chunk_subjects(&server, 1).await;

    // A gateway killed mid-upload leaves chunks that no description names.
    let client = async_nats::connect(server.url()).await.unwrap();
    let jetstream = async_nats::jetstream::new(client);
    for index in 0..2 {
        jetstream
            .publish(
                "$O.parlor-blobs.C.cutbyacrash",
                generated_chunk(index, 1000),
            )
            .await
            .unwrap()
            .await
            .unwrap();
    }
    // Younger than the default age: they may be a running upload's, so they stay.
    assert_eq!(gateway.purge_orphan_chunks().await.unwrap(), 0);
    await_chunk_subjects(&server, 2).await;

    // An upload running on the first gateway while the other sweeps with no age at all.
    let (sender, receiver) = futures::channel::mpsc::unbounded::<std::io::Result<Bytes>>();
    let running = tokio::spawn({
        let gateway = gateway.clone();
        async move { gateway.put(Box::pin(receiver), 1 << 30).await }
    });
    for index in 0..2 {
        sender
            .unbounded_send(Ok(generated_chunk(index, 128 * 1024)))
            .unwrap();
    }
    await_chunk_subjects(&server, 3).await;
    assert_eq!(sweeper.purge_orphan_chunks().await.unwrap(), 2);
    assert_eq!(chunk_subjects(&server).await, kept_subjects);

    // Its chunks gone, the upload fails rather than describe a blob missing bytes.
    sender.unbounded_send(Ok(generated_chunk(2, 1000))).unwrap();
    drop(sender);
    let outcome = tokio::time::timeout(Duration::from_secs(30), running)
        .await
        .expect("the upload ends")
        .unwrap();
    let error = outcome.expect_err("an upload whose chunks were purged fails");
    assert!(error.to_string().contains("chunks are stored"), "{error}");
    let mut running_content = Sha256::new();
    running_content.update(generated_chunk(0, 128 * 1024));
    running_content.update(generated_chunk(1, 128 * 1024));
    running_content.update(generated_chunk(2, 1000));
    let running_hash = ContentHash(running_content.finalize().into());
    assert!(!sweeper.exists(running_hash).await.unwrap());

    // The described blob is whole through both gateways, and uploads go on.
    let expected: Vec<u8> = (0..3)
        .flat_map(|index| generated_chunk(index, 100_000))
        .collect();
    assert_eq!(read_all(&sweeper, kept.hash).await.unwrap().1, expected);
    assert_eq!(read_all(&gateway, kept.hash).await.unwrap().1, expected);
    let later = gateway
        .put(stream_of(b"after the sweep"), 1 << 20)
        .await
        .unwrap();
    assert_eq!(
        read_all(&sweeper, later.hash).await.unwrap().1,
        b"after the sweep"
    );
    assert_eq!(sweeper.purge_orphan_chunks().await.unwrap(), 0);
    await_chunk_subjects(&server, 2).await;
}

#[tokio::test]
async fn an_upload_running_past_half_the_orphan_age_fails_and_keeps_nothing() {
    let server = NatsServer::start();
    // Uploads may run one second here.
    let gateway = store_with_orphan_age(&server, "gateway", Duration::from_secs(2)).await;
    let slow: ByteStream = Box::pin(futures::stream::unfold(0, |index| async move {
        match index {
            0 => Some((Ok(generated_chunk(0, 1000)), 1)),
            1 => {
                tokio::time::sleep(Duration::from_millis(1500)).await;
                Some((Ok(generated_chunk(1, 1000)), 2))
            }
            _ => None,
        }
    }));
    let outcome = gateway.put(slow, 1 << 20).await;
    let error = outcome.expect_err("an upload past its time fails");
    assert!(error.to_string().contains("longer than"), "{error}");
    await_chunk_subjects(&server, 0).await;
    let quick = gateway.put(stream_of(b"quick"), 1 << 20).await.unwrap();
    assert_eq!(read_all(&gateway, quick.hash).await.unwrap().1, b"quick");
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
