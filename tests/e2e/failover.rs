//! HA writers (`parlor writer --ha`, issue 16) on a three-node nats-server 2.15 cluster with
//! `sync_interval: always`: two writers, one leading by the lease, the other following the
//! write-ahead log. 100 senders keep sending, each retrying with the same command id until
//! answered; in every second round one of the three NATS servers is down as well. Afterwards
//! every acknowledged command is in every writer's log exactly once, the positions are
//! gapless, the hash chains verify and the logs are byte for byte equal.
//!
//! A third test pauses each writer in turn to show that a standby serves `log.read` and
//! `audit.head` from its own log, byte for byte what the leader served, never past its head.
//!
//! A fourth takes two of the three NATS servers away from a lone leader: it steps down, cannot
//! read the write-ahead log, and must wait (not exit) until the servers are back, then lead.
//!
//! `PARLOR_FAILOVER_ROUNDS` sets the number of leader kills (CI: 3; by hand `just failover 20`),
//! `PARLOR_FAILOVER_SEED` replays the kill times.

use std::collections::HashMap;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use bus::{Bus, Headers};
use serde_json::{json, Value};
use testkit::{ClusterOptions, NatsCluster};
use uuid::Uuid;

use crate::crash::{spawn_senders, Xorshift, SENDERS};
use crate::harness::{read_logs, spawn_part, Client, Parlor};

/// The lease's time to live: a dead leader is replaced about this long after its last renewal.
const LEASE_TTL_MS: u64 = 2000;
/// The lease of the standby-reads test: long enough that a paused leader is not replaced
/// while the test reads from the standby.
const LONG_LEASE_TTL_MS: u64 = 60_000;
/// How long a test waits for a new leader.
const LEADER_WAIT: Duration = Duration::from_secs(60);

/// One HA writer: its name, data directory and process.
struct HaWriter {
    name: String,
    data: tempfile::TempDir,
    process: Parlor,
}

impl HaWriter {
    fn start(urls: &str, name: &str) -> HaWriter {
        HaWriter::start_with_ttl(urls, name, LEASE_TTL_MS)
    }

    fn start_with_ttl(urls: &str, name: &str, ttl_ms: u64) -> HaWriter {
        let data = tempfile::tempdir().unwrap();
        let process = spawn_ha(urls, name, data.path(), ttl_ms);
        HaWriter {
            name: name.to_owned(),
            data,
            process,
        }
    }

    fn restart(&mut self, urls: &str) {
        self.process = spawn_ha(urls, &self.name, self.data.path(), LEASE_TTL_MS);
    }

    fn signal(&self, signal: &str) {
        let pid = self.process.child.id().to_string();
        let status = std::process::Command::new("kill")
            .args([signal, &pid])
            .status()
            .unwrap();
        assert!(status.success(), "kill {signal} {pid}");
    }
}

fn spawn_ha(urls: &str, name: &str, data_dir: &Path, ttl_ms: u64) -> Parlor {
    let ttl = ttl_ms.to_string();
    spawn_part(
        &[
            "writer",
            "--ha",
            "--ha-name",
            name,
            "--nats-url",
            urls,
            "--ha-lease-ttl-ms",
            &ttl,
        ],
        data_dir,
    )
}

/// Waits (bounded) for a leader with an epoch above `after`.
async fn wait_for_leader(client: &Client, after: u64, writers: &[HaWriter]) -> (String, u64) {
    let deadline = Instant::now() + LEADER_WAIT;
    loop {
        if let Some((name, epoch)) = crate::harness::ha_leader(&client.bus).await {
            if epoch > after {
                return (name, epoch);
            }
        }
        if Instant::now() > deadline {
            for writer in writers {
                eprintln!("--- {}:\n{}", writer.name, read_logs(writer.data.path()));
            }
            panic!("no leader after epoch {after} within {LEADER_WAIT:?}");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// What the senders saw: each acknowledged command's reply and when it came.
type Acknowledged = Arc<Mutex<HashMap<Uuid, (Value, Instant)>>>;

/// 100 senders in one room, until `stop`.
async fn start_load(
    client: &Client,
    stop: &Arc<AtomicBool>,
    acknowledged: &Acknowledged,
) -> Vec<tokio::task::JoinHandle<()>> {
    let (users, room) = client.group_room("sender", SENDERS, "Load").await;
    let acknowledged = acknowledged.clone();
    spawn_senders(client, users, &room, stop, move |command_id, reply| {
        acknowledged
            .lock()
            .unwrap()
            .insert(command_id, (reply, Instant::now()));
    })
}

/// Waits (bounded) for a command acknowledged after `since`; how long after `since` it came.
async fn first_ack_after(acknowledged: &Acknowledged, since: Instant) -> Duration {
    let deadline = Instant::now() + LEADER_WAIT;
    loop {
        let first = acknowledged
            .lock()
            .unwrap()
            .values()
            .map(|(_, at)| *at)
            .filter(|at| *at > since)
            .min();
        if let Some(at) = first {
            return at - since;
        }
        assert!(
            Instant::now() < deadline,
            "nothing acknowledged after the kill"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Ends a run: SIGTERM the leader (it gives the lease up), wait for the other writer to take
/// over (reading the write-ahead log to its end), SIGTERM that one too. Both logs are then
/// complete.
async fn stop_both(client: &Client, writers: &mut [HaWriter]) {
    let (first, epoch) = wait_for_leader(client, 0, writers).await;
    let index = writers.iter().position(|w| w.name == first).unwrap();
    assert!(
        writers[index].process.terminate().success(),
        "{first} exits cleanly"
    );
    let (second, _) = wait_for_leader(client, epoch, writers).await;
    assert_ne!(first, second);
    let other = writers.iter().position(|w| w.name == second).unwrap();
    assert!(
        writers[other].process.terminate().success(),
        "{second} exits cleanly"
    );
}

/// Every writer's log: verifies, gapless, byte for byte equal to the others; every
/// acknowledged command exactly once with the positions it was answered with. Returns the head.
fn check_logs(writers: &[HaWriter], acknowledged: &HashMap<Uuid, (Value, Instant)>) -> u64 {
    let mut exports: Vec<Vec<Vec<u8>>> = Vec::new();
    let mut head = 0;
    for writer in writers {
        let log = eventlog::EventLog::open(&writer.data.path().join("log")).unwrap();
        let report = log
            .verify(None, |_| {})
            .unwrap()
            .expect("the hash chain verifies");
        head = log.head().position;
        assert_eq!(report.head.position, head);
        let mut raw = Vec::new();
        let mut per_command: HashMap<Uuid, Vec<u64>> = HashMap::new();
        while (raw.len() as u64) < head {
            let from = raw.len() as u64 + 1;
            let records = log.read_from(from, 10_000, usize::MAX).unwrap();
            for record in &records {
                assert_eq!(
                    record.position,
                    raw.len() as u64 + 1,
                    "positions are gapless"
                );
                let stored = protocol::decode_stored(&record.payload).unwrap();
                per_command
                    .entry(stored.command_id.0)
                    .or_default()
                    .push(record.position);
                raw.push(log.raw_record(record.position).unwrap().unwrap());
            }
        }
        for (command_id, (reply, _)) in acknowledged {
            let positions = per_command.get(command_id).unwrap_or_else(|| {
                panic!("{}: acknowledged command {command_id} lost", writer.name)
            });
            let replied: Vec<u64> = reply["events"]
                .as_array()
                .unwrap()
                .iter()
                .map(|e| e["position"].as_u64().unwrap())
                .collect();
            assert_eq!(
                positions, &replied,
                "command {command_id}: once, where answered"
            );
        }
        for positions in per_command.values() {
            assert_eq!(positions.len(), 1, "no command appended twice");
        }
        exports.push(raw);
    }
    for (writer, export) in writers.iter().zip(&exports).skip(1) {
        assert!(
            export == &exports[0],
            "{} has other records than {}",
            writer.name,
            writers[0].name
        );
    }
    head
}

fn seed() -> u64 {
    std::env::var("PARLOR_FAILOVER_SEED")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| {
            SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .unwrap()
                .as_nanos() as u64
                | 1
        })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killing_the_leader_under_load_loses_and_duplicates_nothing() {
    let rounds: usize = std::env::var("PARLOR_FAILOVER_ROUNDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(3);
    let seed = seed();
    println!("failover: {rounds} rounds, seed {seed} (PARLOR_FAILOVER_SEED={seed} replays)");
    let mut random = Xorshift(seed);
    let mut cluster = NatsCluster::start_cluster_with(ClusterOptions::ha());
    let urls = cluster.urls();
    let mut writers = vec![HaWriter::start(&urls, "w1"), HaWriter::start(&urls, "w2")];
    let client = Client::connect(&urls).await;
    let (_, mut epoch) = wait_for_leader(&client, 0, &writers).await;

    let stop = Arc::new(AtomicBool::new(false));
    let acknowledged: Acknowledged = Arc::default();
    let senders = start_load(&client, &stop, &acknowledged).await;
    let mut takeovers = Vec::new();
    for round in 0..rounds {
        tokio::time::sleep(Duration::from_millis(random.between(500, 2000))).await;
        let (name, current) = wait_for_leader(&client, epoch - 1, &writers).await;
        let index = writers.iter().position(|w| w.name == name).unwrap();
        // Every second round one NATS server is down too, from just before the kill until
        // the new leader answers (the stream and the lease keep a majority).
        let node_down = (round % 2 == 1).then_some(round % 3);
        if let Some(node) = node_down {
            cluster.stop(node);
        }
        writers[index].process.kill();
        let killed_at = Instant::now();
        let before = acknowledged.lock().unwrap().len();
        // Back at once as a standby: it follows the write-ahead log from its own head.
        writers[index].restart(&urls);
        let (next, next_epoch) = wait_for_leader(&client, current, &writers).await;
        let takeover = first_ack_after(&acknowledged, killed_at).await;
        if let Some(node) = node_down {
            cluster.start(node);
        }
        println!(
            "round {round}: killed {name} (epoch {current}) after {before} acknowledged{}; \
             {next} leads (epoch {next_epoch}); first answer {} ms after the kill",
            node_down.map_or(String::new(), |node| format!(", NATS node {node} down")),
            takeover.as_millis()
        );
        takeovers.push(takeover);
        epoch = next_epoch;
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    stop.store(true, Ordering::Relaxed);
    for sender in senders {
        sender.await.unwrap();
    }
    stop_both(&client, &mut writers).await;
    let acknowledged = acknowledged.lock().unwrap().clone();
    assert!(acknowledged.len() > rounds, "the load made progress");
    let head = check_logs(&writers, &acknowledged);
    takeovers.sort();
    println!(
        "failover: {rounds} rounds, {} acknowledged, head {head}, lost 0, duplicated 0, \
         takeover ms {:?}",
        acknowledged.len(),
        takeovers
            .iter()
            .map(Duration::as_millis)
            .collect::<Vec<_>>()
    );
}

/// How long the test below keeps two of the three NATS servers down: long enough for the
/// leader's lease renewals to fail (each up to 5 s), for it to step down, and for its reads of
/// the write-ahead log to fail a few times (before the fix, the first such failure ended it).
const QUORUM_LOSS: Duration = Duration::from_secs(15);

/// The index of the NATS server that leads the write-ahead log's stream (servers are named
/// `n1`… in index order).
async fn wal_stream_leader(bus: &Bus) -> usize {
    let reply = bus
        .request(
            "$JS.API.STREAM.INFO.PARLOR_WAL",
            Headers::new(),
            "{}",
            Duration::from_secs(5),
        )
        .await
        .unwrap();
    let info: Value = serde_json::from_slice(&reply.payload).unwrap();
    let leader = info["cluster"]["leader"].as_str().unwrap_or_default();
    match leader
        .strip_prefix('n')
        .and_then(|n| n.parse::<usize>().ok())
    {
        Some(number @ 1..=3) => number - 1,
        _ => panic!("no stream leader in {info}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_writer_that_cannot_read_the_stream_waits_for_it_instead_of_exiting() {
    let mut cluster = NatsCluster::start_cluster_with(ClusterOptions::ha());
    let urls = cluster.urls();
    let mut writers = vec![HaWriter::start(&urls, "q1")];
    let client = Client::connect(&urls).await;
    let (_, epoch) = wait_for_leader(&client, 0, &writers).await;
    client.register(&["before"]).await;

    // No quorum for the lease or the stream: the leader steps down and then follows, which
    // starts by asking the stream for its last sequence, which cannot be answered. The server
    // that leads the stream is one of the two stopped: a leader left without quorum would
    // still answer reads for a few seconds.
    let stream_leader = wal_stream_leader(&client.bus).await;
    let stopped = [stream_leader, (stream_leader + 1) % 3];
    for node in stopped {
        cluster.stop(node);
    }
    tokio::time::sleep(QUORUM_LOSS).await;
    writers[0].process.assert_alive();
    let logs = read_logs(writers[0].data.path());
    assert!(
        logs.contains("stepped down") && logs.contains("cannot read the write-ahead log yet"),
        "the leader stepped down and waited for the stream:\n{logs}"
    );

    for node in stopped {
        cluster.start(node);
    }
    let (leader, next_epoch) = wait_for_leader(&client, epoch, &writers).await;
    assert_eq!(leader, "q1");
    assert!(next_epoch > epoch);
    client.register(&["after"]).await;
    assert!(writers[0].process.terminate().success(), "q1 exits cleanly");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_paused_leader_resumed_after_a_takeover_steps_down_and_a_stopped_standby_catches_up() {
    let cluster = NatsCluster::start_cluster_with(ClusterOptions::ha());
    let urls = cluster.urls();
    let mut writers = vec![HaWriter::start(&urls, "p1"), HaWriter::start(&urls, "p2")];
    let client = Client::connect(&urls).await;
    let (first, epoch) = wait_for_leader(&client, 0, &writers).await;
    let paused = writers.iter().position(|w| w.name == first).unwrap();

    let stop = Arc::new(AtomicBool::new(false));
    let acknowledged: Acknowledged = Arc::default();
    let senders = start_load(&client, &stop, &acknowledged).await;
    tokio::time::sleep(Duration::from_millis(1000)).await;

    // Paused mid-load: its lease runs out and the other writer takes over.
    writers[paused].signal("-STOP");
    let (second, second_epoch) = wait_for_leader(&client, epoch, &writers).await;
    assert_ne!(second, first);
    tokio::time::sleep(Duration::from_millis(1000)).await;
    // Resumed: its next append is fenced, so it steps down and follows again; whatever it
    // answers from now on is `unavailable` or an answer the log holds (checked below).
    writers[paused].signal("-CONT");
    tokio::time::sleep(Duration::from_millis(3000)).await;
    writers[paused].process.assert_alive();
    assert_eq!(
        wait_for_leader(&client, 0, &writers).await,
        (second.clone(), second_epoch),
        "the resumed writer does not lead"
    );

    // The standby (the resumed writer) stopped for a while, then back: it catches up.
    assert!(writers[paused].process.terminate().success());
    tokio::time::sleep(Duration::from_millis(2000)).await;
    writers[paused].restart(&urls);
    tokio::time::sleep(Duration::from_millis(1000)).await;

    stop.store(true, Ordering::Relaxed);
    for sender in senders {
        sender.await.unwrap();
    }
    // The leader stops first, so the caught-up standby must lead to the end of the log.
    stop_both(&client, &mut writers).await;
    let acknowledged = acknowledged.lock().unwrap().clone();
    let head = check_logs(&writers, &acknowledged);
    println!(
        "paused leader: {} acknowledged, head {head}, lost 0, duplicated 0",
        acknowledged.len()
    );
}

/// A `log.read` (JSON, with record bytes) from `from`: the reply's bytes and the reply. Asked
/// again on a timeout (a paused writer's turn in the queue group) or an error answer, within
/// a bound.
async fn log_read(bus: &Bus, from: u64, max: u32) -> (Vec<u8>, Value) {
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut last_failure = String::new();
    while Instant::now() < deadline {
        let request = json!({"from": from, "max": max, "raw": true}).to_string();
        let headers = Headers::new().with("Content-Type", "application/json");
        match bus
            .request(
                "parlor.log.read",
                headers,
                request,
                Duration::from_millis(700),
            )
            .await
        {
            Ok(reply) => {
                let value: Value = serde_json::from_slice(&reply.payload).unwrap();
                if value.get("error").is_none() {
                    return (reply.payload.to_vec(), value);
                }
                last_failure = value.to_string();
            }
            Err(error) => last_failure = error.to_string(),
        }
    }
    panic!("log.read from {from} was not answered: {last_failure}");
}

/// The positions of a `log.read` reply's events, and its head.
fn positions_and_head(reply: &Value) -> (Vec<u64>, u64) {
    let positions = reply["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|event| event["position"].as_u64().unwrap())
        .collect();
    (positions, reply["head"].as_u64().unwrap())
}

/// Waits (bounded: the writer announces every 5 s) for an `audit.head` announcement.
async fn next_audit_head(heads: &mut bus::Subscription) -> Value {
    let announcement = tokio::time::timeout(Duration::from_secs(12), heads.next())
        .await
        .expect("an audit.head announcement within 12 s")
        .expect("the subscription is open");
    serde_json::from_slice(&announcement.payload).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_standby_serves_log_read_and_audit_head_up_to_its_head_while_the_leader_is_paused() {
    let cluster = NatsCluster::start_cluster_with(ClusterOptions::ha());
    let urls = cluster.urls();
    let mut writers = vec![
        HaWriter::start_with_ttl(&urls, "r1", LONG_LEASE_TTL_MS),
        HaWriter::start_with_ttl(&urls, "r2", LONG_LEASE_TTL_MS),
    ];
    let client = Client::connect(&urls).await;
    let (leader_name, epoch) = wait_for_leader(&client, 0, &writers).await;
    let leader = writers.iter().position(|w| w.name == leader_name).unwrap();
    let standby = 1 - leader;

    // Load, with the standby paused for the second half: it resumes behind the stream.
    let stop = Arc::new(AtomicBool::new(false));
    let acknowledged: Acknowledged = Arc::default();
    let senders = start_load(&client, &stop, &acknowledged).await;
    tokio::time::sleep(Duration::from_millis(700)).await;
    writers[standby].signal("-STOP");
    tokio::time::sleep(Duration::from_millis(1500)).await;
    stop.store(true, Ordering::Relaxed);
    for sender in senders {
        sender.await.unwrap();
    }
    let acknowledged_head = acknowledged
        .lock()
        .unwrap()
        .values()
        .flat_map(|(reply, _)| reply["events"].as_array().cloned().unwrap_or_default())
        .filter_map(|event| event["position"].as_u64())
        .max()
        .expect("the load was acknowledged");

    // Only the leader can answer now: the log as it serves it, page by page.
    let mut leader_pages = Vec::new();
    let mut from = 1;
    let head = loop {
        let (bytes, reply) = log_read(&client.bus, from, 1000).await;
        let (positions, head) = positions_and_head(&reply);
        assert!(
            head >= acknowledged_head,
            "the leader's head holds every answer"
        );
        leader_pages.push((from, bytes, reply.clone()));
        match positions.last() {
            Some(&last) if last < head => from = last + 1,
            _ => break head,
        }
    };
    let (_, _, last_page) = leader_pages.last().unwrap();
    let head_hash = last_page["events"]
        .as_array()
        .unwrap()
        .iter()
        .find(|event| event["position"].as_u64() == Some(head))
        .map(|event| event["hash"].clone())
        .expect("the last page ends at the head");

    // The leader paused (its lease stands for a minute: no takeover), the standby resumed:
    // every read from here on is the standby's.
    writers[leader].signal("-STOP");
    writers[standby].signal("-CONT");
    let mut heads = client.bus.subscribe("parlor.audit.head").await.unwrap();
    // At once, before it could have read the stream it missed: it answers only once level
    // with the stream, so the head it reports holds every acknowledged position.
    let (_, first) = log_read(&client.bus, acknowledged_head, 1).await;
    let (positions, standby_head) = positions_and_head(&first);
    assert_eq!(
        standby_head, head,
        "the standby's first answer reports the whole log"
    );
    assert_eq!(positions, vec![acknowledged_head]);
    for (from, leader_bytes, leader_reply) in &leader_pages {
        let (bytes, reply) = log_read(&client.bus, *from, 1000).await;
        let (positions, standby_head) = positions_and_head(&reply);
        assert!(
            positions.iter().all(|position| *position <= standby_head),
            "no event past the head the standby reports"
        );
        assert_eq!(reply, *leader_reply, "the standby's page from {from}");
        assert!(
            bytes == *leader_bytes,
            "the standby's page from {from}, byte for byte"
        );
    }
    let (_, past) = log_read(&client.bus, head + 1, 1000).await;
    assert_eq!(
        positions_and_head(&past),
        (vec![], head),
        "nothing past the head"
    );
    let announced = next_audit_head(&mut heads).await;
    assert_eq!(announced, json!({"position": head, "hash": head_hash}));
    // writer.ping stays the leader's: a standby does not claim to lead, nor to take commands.
    assert_eq!(crate::harness::ha_leader(&client.bus).await, None);

    // What the standby served is what it holds durably: its log, read once it is gone.
    writers[standby].process.kill();
    let log = eventlog::EventLog::open(&writers[standby].data.path().join("log")).unwrap();
    assert_eq!(log.head().position, head);
    for (_, bytes, _) in &leader_pages {
        let page = protocol::LogReadReply::decode(bytes, protocol::Format::Json).unwrap();
        for event in page.events {
            let stored = log.raw_record(event.position).unwrap();
            assert_eq!(
                stored, event.raw,
                "the record at {} as stored",
                event.position
            );
        }
    }
    writers[leader].signal("-CONT");
    println!(
        "standby reads: {} acknowledged, head {head}, {} pages served byte for byte by the \
         standby with leader {leader_name} (epoch {epoch}) paused",
        acknowledged.lock().unwrap().len(),
        leader_pages.len()
    );
}
