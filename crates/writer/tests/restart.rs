//! Restart from a state snapshot, with a real writer, a real nats-server and a real data
//! directory: a snapshot older than the head is loaded and the tail after it folded in; a
//! snapshot that does not match the log (another history, ahead of the head, garbage) is
//! ignored and the whole log folded; and snapshots are written while the writer serves, not
//! only at shutdown.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::Path;
use std::time::{Duration, Instant};

use bus::{Bus, Headers};
use clock::Clock;
use domain::{Config, State};
use eventlog::EventLog;
use serde_json::{json, Value};
use testkit::{NatsServer, TempDataDir};
use uuid::Uuid;
use writer::{load_state, Writer, WriterConfig};

const SNAPSHOT_FILE: &str = "writer-state.snapshot";
const REPLY_WAIT: Duration = Duration::from_secs(10);
const SNAPSHOT_WAIT: Duration = Duration::from_secs(20);

fn config(data_dir: &Path) -> WriterConfig {
    let mut config = WriterConfig::new(data_dir);
    // Only the snapshots a test makes on purpose (and the one at shutdown).
    config.snapshot_every_events = 0;
    config.snapshot_every = Duration::ZERO;
    config
}

async fn start(bus: &Bus, config: WriterConfig) -> Writer {
    Writer::start(config, bus.clone(), Clock::system())
        .await
        .expect("the writer starts")
}

/// Sends a command and returns the reply as JSON.
async fn send(bus: &Bus, command_type: &str, command_id: Uuid, actor: &str, data: Value) -> Value {
    let payload = json!({ "command_id": command_id, "actor": actor, "data": data });
    let reply = bus
        .request(
            &format!("parlor.cmd.{command_type}"),
            Headers::new(),
            payload.to_string(),
            REPLY_WAIT,
        )
        .await
        .expect("a reply");
    serde_json::from_slice(&reply.payload).expect("a JSON reply")
}

async fn register(bus: &Bus, command_id: Uuid, user: &str) -> Value {
    let reply = send(
        bus,
        "user.register",
        command_id,
        "service:identity",
        json!({ "user_id": user, "display_name": user, "kind": "freelancer" }),
    )
    .await;
    assert_eq!(reply["ok"], true, "{reply}");
    reply
}

async fn message(bus: &Bus, from: &str, to: &str) -> Value {
    send(
        bus,
        "message.send",
        Uuid::new_v4(),
        from,
        json!({ "to": to, "body": "hello there" }),
    )
    .await
}

/// The state the writer would start from on `data_dir`, and the snapshot position it used.
fn state_on_disk(data_dir: &Path) -> (State, u64) {
    let log = EventLog::open(&data_dir.join("log")).expect("the log opens");
    load_state(&log, data_dir, Config::default()).expect("the state loads")
}

/// The state folded from the whole log, the snapshot set aside meanwhile.
fn state_folded_whole(data_dir: &Path) -> State {
    let snapshot = data_dir.join(SNAPSHOT_FILE);
    let aside = data_dir.join("snapshot-aside");
    let had = snapshot.exists();
    if had {
        std::fs::rename(&snapshot, &aside).unwrap();
    }
    let (state, from) = state_on_disk(data_dir);
    assert_eq!(from, 0);
    if had {
        std::fs::rename(&aside, &snapshot).unwrap();
    }
    state
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restart_from_a_snapshot_older_than_the_head_folds_the_tail() {
    let nats = NatsServer::start();
    let bus = Bus::connect(&nats.url(), "restart-test").await.unwrap();
    let dir = TempDataDir::new();
    let data_dir = dir.join("data");

    // First run: five users; the shutdown snapshot is of head 5.
    let writer = start(&bus, config(&data_dir)).await;
    for index in 0..5 {
        register(&bus, Uuid::new_v4(), &format!("user{index}")).await;
    }
    writer.shutdown().await.unwrap();
    let older = std::fs::read(data_dir.join(SNAPSHOT_FILE)).expect("a snapshot at shutdown");

    // Second run: more users and a conversation, then the newer snapshot is replaced by the
    // older one, as if the writer had died between two snapshots.
    let writer = start(&bus, config(&data_dir)).await;
    let last_registration = Uuid::new_v4();
    for index in 5..9 {
        register(&bus, Uuid::new_v4(), &format!("user{index}")).await;
    }
    let first_reply = register(&bus, last_registration, "user9").await;
    let sent = message(&bus, "user5", "user6").await;
    assert_eq!(sent["ok"], true, "{sent}");
    let head = writer.head().position;
    writer.shutdown().await.unwrap();
    std::fs::write(data_dir.join(SNAPSHOT_FILE), older).unwrap();

    let (loaded, from) = state_on_disk(&data_dir);
    assert_eq!(from, 5, "the older snapshot is used");
    assert!(from < head);
    assert_eq!(
        loaded,
        state_folded_whole(&data_dir),
        "snapshot + tail = the whole fold"
    );

    // Third run, from that snapshot: the tail's users, room and idempotency keys are there.
    let writer = start(&bus, config(&data_dir)).await;
    assert_eq!(writer.head().position, head);
    let reply = message(&bus, "user7", "user5").await;
    assert_eq!(
        reply["ok"], true,
        "a user registered in the tail can send: {reply}"
    );
    let again = message(&bus, "user6", "user5").await;
    assert_eq!(again["ok"], true, "{again}");
    assert_eq!(
        again["result"]["room_id"], sent["result"]["room_id"],
        "the direct room opened in the tail is found again"
    );
    let resent = register(&bus, last_registration, "user9").await;
    assert_eq!(
        resent, first_reply,
        "R-M7: the stored reply of a tail command"
    );
    writer.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_snapshot_that_does_not_match_the_log_is_ignored_and_the_whole_log_folded() {
    let nats = NatsServer::start();
    let bus = Bus::connect(&nats.url(), "mismatch-test").await.unwrap();
    let dir = TempDataDir::new();
    let (first, second) = (dir.join("first"), dir.join("second"));

    // Two histories of the same length: their snapshots have the same position, other hashes.
    let writer = start(&bus, config(&first)).await;
    register(&bus, Uuid::new_v4(), "alice").await;
    register(&bus, Uuid::new_v4(), "bob").await;
    writer.shutdown().await.unwrap();
    let foreign = std::fs::read(first.join(SNAPSHOT_FILE)).unwrap();

    let writer = start(&bus, config(&second)).await;
    register(&bus, Uuid::new_v4(), "carol").await;
    register(&bus, Uuid::new_v4(), "dave").await;
    writer.shutdown().await.unwrap();

    // A snapshot ahead of the head: the first history, two events further.
    let writer = start(&bus, config(&first)).await;
    register(&bus, Uuid::new_v4(), "erin").await;
    register(&bus, Uuid::new_v4(), "frank").await;
    writer.shutdown().await.unwrap();
    let ahead = std::fs::read(first.join(SNAPSHOT_FILE)).unwrap();

    let whole = state_folded_whole(&second);
    // This history's own snapshot in the first layout, which began with the position: its
    // position and hash match the log, only the layout tells it apart (the state it holds is
    // laid out differently, so it must not be decoded).
    let own = std::fs::read(second.join(SNAPSHOT_FILE)).unwrap();
    let mut earlier_layout = own[..1].to_vec();
    earlier_layout.extend_from_slice(&own[9..]);
    for (what, bytes) in [
        ("another history", foreign),
        ("ahead of the head", ahead),
        ("garbage", b"not a snapshot".to_vec()),
        ("an earlier layout", earlier_layout),
    ] {
        std::fs::write(second.join(SNAPSHOT_FILE), bytes).unwrap();
        let (loaded, from) = state_on_disk(&second);
        assert_eq!(from, 0, "{what}: the whole log is folded");
        assert_eq!(loaded, whole, "{what}");
    }

    // The writer serves from the log's own state, not the foreign snapshot's.
    std::fs::write(
        second.join(SNAPSHOT_FILE),
        std::fs::read(first.join(SNAPSHOT_FILE)).unwrap(),
    )
    .unwrap();
    let writer = start(&bus, config(&second)).await;
    let ours = message(&bus, "carol", "dave").await;
    assert_eq!(ours["ok"], true, "{ours}");
    let theirs = message(&bus, "alice", "bob").await;
    assert_eq!(
        theirs["ok"], false,
        "alice is not a user of this log: {theirs}"
    );
    assert_eq!(theirs["error"]["code"], "not_found");
    writer.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn snapshots_are_written_in_the_background_while_serving() {
    let nats = NatsServer::start();
    let bus = Bus::connect(&nats.url(), "background-test").await.unwrap();
    let dir = TempDataDir::new();
    let data_dir = dir.join("data");
    let mut config = config(&data_dir);
    config.snapshot_every_events = 3;
    let writer = start(&bus, config).await;
    for index in 0..8 {
        register(&bus, Uuid::new_v4(), &format!("user{index}")).await;
    }
    let deadline = Instant::now() + SNAPSHOT_WAIT;
    while !data_dir.join(SNAPSHOT_FILE).exists() {
        assert!(
            Instant::now() < deadline,
            "no snapshot was written while the writer served"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // What is on disk while serving is a consistent snapshot of some head: loading it and
    // folding the rest gives the whole state (the log is read through another handle only
    // after the writer has stopped, since sled locks it).
    let serving = std::fs::read(data_dir.join(SNAPSHOT_FILE)).unwrap();
    writer.shutdown().await.unwrap();
    std::fs::write(data_dir.join(SNAPSHOT_FILE), serving).unwrap();
    let (loaded, from) = state_on_disk(&data_dir);
    assert!(from >= 3, "a snapshot of at least three events, got {from}");
    assert_eq!(loaded, state_folded_whole(&data_dir));
    assert_eq!(loaded.users.len(), 8);
}

/// A clean stop persists the log's indexes: the next open loads them instead of re-indexing
/// the records since the last background run (written only every 65,536 events).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_clean_stop_persists_the_log_indexes() {
    let nats = NatsServer::start();
    let bus = Bus::connect(&nats.url(), "restart-test").await.unwrap();
    let dir = TempDataDir::new();
    let data_dir = dir.join("data");
    let runs = data_dir.join("log").join("index-runs");
    let run_files = || std::fs::read_dir(&runs).map_or(0, |entries| entries.count());

    let writer = start(&bus, config(&data_dir)).await;
    for index in 0..5 {
        register(&bus, Uuid::new_v4(), &format!("user{index}")).await;
    }
    assert_eq!(
        run_files(),
        0,
        "far fewer events than a background run needs"
    );
    writer.shutdown().await.unwrap();
    let after_stop = run_files();
    assert!(after_stop > 0, "the stop wrote a run");

    // A stop with nothing new writes none.
    start(&bus, config(&data_dir))
        .await
        .shutdown()
        .await
        .unwrap();
    assert_eq!(run_files(), after_stop);
}
