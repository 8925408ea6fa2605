//! Reliability of the writer: a full disk answers `unavailable`, acknowledges nothing it did not
//! flush, and recovers when space returns; overload is answered, not queued without bound.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use serde_json::{json, Value};
use testkit::CommandWithin;
use uuid::Uuid;

use crate::harness::{Client, COMMAND_WAIT};

/// A small tmpfs mounted for the test, unmounted on drop. Mounting needs root (CI and these
/// machines run as root); elsewhere the test says so and skips.
struct SmallDisk {
    path: PathBuf,
    _parent: tempfile::TempDir,
}

impl SmallDisk {
    fn mount(megabytes: u32) -> Option<SmallDisk> {
        let parent = tempfile::tempdir().ok()?;
        let path = parent.path().join("disk");
        std::fs::create_dir(&path).ok()?;
        let status = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={megabytes}m"), "tmpfs"])
            .arg(&path)
            .status_within(COMMAND_WAIT)
            .ok()?;
        status.success().then_some(SmallDisk {
            path,
            _parent: parent,
        })
    }
}

/// Whether this process runs as root (`id -u` prints 0).
fn running_as_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output_within(COMMAND_WAIT)
        .is_ok_and(|output| String::from_utf8_lossy(&output.stdout).trim() == "0")
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        let _ = Command::new("umount")
            .arg("-l")
            .arg(&self.path)
            .status_within(COMMAND_WAIT);
    }
}

/// Writes zeros into `path` until the filesystem is full.
fn fill(path: &Path) {
    use std::io::Write;
    let mut file = std::fs::File::create(path).unwrap();
    let chunk = vec![0u8; 64 * 1024];
    while file.write_all(&chunk).is_ok() {}
    let _ = file.sync_all();
}

/// Sends with a given command id, retrying on a lost or late reply as a client must (the
/// writer may be busy reopening its log); gives up after a minute.
async fn send(c: &Client, id: Uuid, body: &str, room: &str) -> Value {
    let envelope =
        json!({"command_id": id, "actor": "alice", "data": {"room_id": room, "body": body}});
    for _ in 0..12 {
        match c
            .bus
            .request(
                "parlor.cmd.message.send",
                crate::harness::json_headers(),
                envelope.to_string(),
                Duration::from_secs(5),
            )
            .await
        {
            Ok(reply) => return serde_json::from_slice(&reply.payload).unwrap(),
            Err(_) => continue,
        }
    }
    panic!("command {id} got no reply within a minute");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_disk_is_unavailable_then_recovers_without_loss() {
    let Some(disk) = SmallDisk::mount(48) else {
        // Only a non-root run may skip (mounting needs root); as root (CI) a failed mount is a
        // failure, so the test can never pass without having filled a disk.
        assert!(
            !running_as_root(),
            "running as root, but a tmpfs could not be mounted: the full-disk test cannot run"
        );
        println!("SKIPPED: cannot mount a tmpfs here (not root); the eventlog's injected-fault tests cover the storage layer");
        return;
    };
    let nats = testkit::NatsServer::start();
    let data = disk.path.join("data");
    // The writer's stderr is on the disk that fills up: a log line it cannot write must not
    // take it down (tracing's own error report panicked on a failed stderr, which stalled
    // sled's flush forever).
    let stderr = std::fs::File::create(disk.path.join("writer.stderr")).unwrap();
    let mut parlor = crate::harness::spawn_part_logging_to(
        &["writer", "--nats-url", &nats.url(), "--dev-clock"],
        &data,
        stderr,
    );
    let c = Client::connect(&nats.url()).await;
    c.wait_for_writer().await;
    c.register(&["alice", "bob"]).await;
    let room = c
        .ok(
            "alice",
            "room.create",
            json!({"name": "Disk", "members": ["bob"]}),
        )
        .await["result"]["room_id"]
        .as_str()
        .unwrap()
        .to_owned();

    let filler = disk.path.join("filler");
    fill(&filler);
    // With the disk full, commands are refused as unavailable, and the writer stays up.
    let mut refused = Vec::new();
    for i in 0..40 {
        let id = Uuid::new_v4();
        let reply = send(
            &c,
            id,
            &format!("while full {i} {}", "x".repeat(2_000)),
            &room,
        )
        .await;
        if reply["ok"] == true {
            // sled may still have had room in its current segment: fine, that one is durable.
            continue;
        }
        assert_eq!(reply["error"]["code"], "unavailable", "{reply}");
        refused.push((id, i));
    }
    assert!(!refused.is_empty(), "a full disk must refuse some commands");
    c.wait_for_writer().await;
    parlor.assert_alive();

    // Space returns: the same command ids go through, exactly once.
    std::fs::remove_file(&filler).unwrap();
    let mut recovered = false;
    for _ in 0..50 {
        let (id, i) = refused[0];
        let reply = send(
            &c,
            id,
            &format!("while full {i} {}", "x".repeat(2_000)),
            &room,
        )
        .await;
        if reply["ok"] == true {
            recovered = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(recovered, "the writer recovers when space returns");
    for (id, i) in &refused[1..] {
        let reply = send(
            &c,
            *id,
            &format!("while full {i} {}", "x".repeat(2_000)),
            &room,
        )
        .await;
        assert_eq!(reply["ok"], true, "{reply}");
    }
    let log = c.whole_log().await;
    for (id, _) in &refused {
        let count = log
            .iter()
            .filter(|e| e["command_id"] == id.to_string())
            .count();
        assert_eq!(count, 1, "command {id} is in the log exactly once");
    }
    let positions: Vec<u64> = log
        .iter()
        .map(|e| e["position"].as_u64().unwrap())
        .collect();
    assert_eq!(positions, (1..=positions.len() as u64).collect::<Vec<_>>());
}

mod under_load {
    //! NATS restarts and projector kills under load: every service reconnects by itself, every
    //! acknowledged command is visible in the read models afterwards, and each model answers
    //! exactly as a rebuild from the log does.

    use std::process::Command;
    use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
    use std::sync::{Arc, Mutex};
    use std::time::Duration;

    use bus::BusError;
    use serde_json::{json, Value};
    use testkit::CommandWithin;
    use uuid::Uuid;

    use crate::harness::{json_headers, spawn_part as spawn, Client, COMMAND_WAIT};

    const SENDERS: usize = 10;

    async fn query(c: &Client, model: &str, request: Value) -> Option<Value> {
        let reply = c
            .bus
            .request(
                &format!("parlor.query.{model}"),
                json_headers(),
                request.to_string(),
                Duration::from_secs(8),
            )
            .await
            .ok()?;
        serde_json::from_slice(&reply.payload).ok()
    }

    /// [`query`], asked again until it is answered and caught up: right after a restart the
    /// model may not subscribe yet (no responders) or may still be catching up, and a request
    /// in flight when NATS restarts is lost.
    async fn query_answered(c: &Client, model: &str, request: Value) -> Value {
        let deadline = std::time::Instant::now() + Duration::from_secs(60);
        loop {
            match query(c, model, request.clone()).await {
                // Still catching up after the restart: ask again.
                Some(answer) if answer["error"]["code"] == "projection_lagging" => {}
                Some(answer) => return answer,
                None => {}
            }
            assert!(
                std::time::Instant::now() < deadline,
                "{model} answered no query within a minute: {request}"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Retries one command with the same id until it is answered.
    async fn send_until_answered(c: &Client, actor: &str, data: &Value) -> Value {
        let envelope = serde_json::to_vec(
            &json!({"command_id": Uuid::new_v4(), "actor": actor, "data": data}),
        )
        .unwrap();
        loop {
            match c
                .bus
                .request(
                    "parlor.cmd.message.send",
                    json_headers(),
                    envelope.clone(),
                    Duration::from_secs(1),
                )
                .await
            {
                Ok(reply) => {
                    let reply: Value = serde_json::from_slice(&reply.payload).unwrap();
                    if reply["error"]["code"] != "unavailable" {
                        return reply;
                    }
                }
                Err(BusError::NoResponders | BusError::Timeout | BusError::Disconnected) => {}
                Err(other) => panic!("unexpected bus error: {other}"),
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn nats_restarts_and_projector_kills_lose_nothing() {
        let cycles: usize = std::env::var("PARLOR_NATS_CYCLES")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(5);
        let mut nats = testkit::NatsServer::start();
        let url = nats.url();
        let data = tempfile::tempdir().unwrap();
        // The writer and two read models, each its own process, as they would run in production.
        let mut writer = spawn(&["writer", "--nats-url", &url], data.path());
        let mut rooms = spawn(&["projector", "rooms", "--nats-url", &url], data.path());
        let mut timeline = spawn(&["projector", "timeline", "--nats-url", &url], data.path());
        let c = Client::connect(&url).await;
        c.wait_for_writer().await;
        let (users, room) = c.group_room("member", SENDERS, "Busy").await;

        let stop = Arc::new(AtomicBool::new(false));
        let highest = Arc::new(AtomicU64::new(0));
        let acknowledged: Arc<Mutex<Vec<String>>> = Arc::default();
        let mut senders = Vec::new();
        for user in users.clone() {
            let (c, stop, highest, acknowledged, room) = (
                c.clone(),
                stop.clone(),
                highest.clone(),
                acknowledged.clone(),
                room.clone(),
            );
            senders.push(tokio::spawn(async move {
                let mut n = 0;
                while !stop.load(Ordering::Relaxed) {
                    let reply = send_until_answered(
                        &c,
                        &user,
                        &json!({"room_id": room, "body": format!("{user} says {n}")}),
                    )
                    .await;
                    assert_eq!(reply["ok"], true, "{reply}");
                    highest.fetch_max(reply["position"].as_u64().unwrap(), Ordering::Relaxed);
                    acknowledged
                        .lock()
                        .unwrap()
                        .push(reply["result"]["message_id"].as_str().unwrap().to_owned());
                    n += 1;
                }
            }));
        }
        for cycle in 0..cycles {
            tokio::time::sleep(Duration::from_millis(400)).await;
            nats.stop();
            tokio::time::sleep(Duration::from_millis(300)).await;
            nats.start_again();
            if cycle % 2 == 1 {
                // A projector killed mid-stream restarts from its own store.
                timeline.kill();
                timeline = spawn(&["projector", "timeline", "--nats-url", &url], data.path());
            }
            println!(
                "cycle {cycle}: restarted nats-server; {} acknowledged so far",
                acknowledged.lock().unwrap().len()
            );
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
        stop.store(true, Ordering::Relaxed);
        for sender in senders {
            sender.await.unwrap();
        }
        let head = highest.load(Ordering::Relaxed);
        let acknowledged = acknowledged.lock().unwrap().clone();
        assert!(acknowledged.len() > cycles);

        // Every acknowledged message is in the timeline, once.
        let mut seen = Vec::new();
        let mut cursor = Value::Null;
        loop {
            let page = query_answered(&c, "timeline", json!({"op": "messages", "caller": "member1", "room_id": room, "limit": 200, "cursor": cursor, "min_position": head}))
                .await;
            assert_eq!(page["ok"], true, "{page}");
            for message in page["data"]["messages"].as_array().unwrap() {
                seen.push(message["message_id"].as_str().unwrap().to_owned());
            }
            cursor = page["data"]["next_cursor"].clone();
            if cursor.is_null() {
                break;
            }
        }
        let mut unique = seen.clone();
        unique.sort();
        unique.dedup();
        assert_eq!(unique.len(), seen.len(), "no message twice in the timeline");
        for id in &acknowledged {
            assert!(
                unique.binary_search(id).is_ok(),
                "acknowledged message {id} missing from the timeline"
            );
        }
        let questions: Vec<(&str, Value)> = vec![
            (
                "rooms",
                json!({"op": "list", "caller": "member0", "view": "inbox"}),
            ),
            (
                "rooms",
                json!({"op": "get", "caller": "member3", "room_id": room}),
            ),
            (
                "timeline",
                json!({"op": "messages", "caller": "member2", "room_id": room, "limit": 200}),
            ),
        ];
        let mut live = Vec::new();
        for (model, question) in &questions {
            let mut question = question.clone();
            question["min_position"] = json!(head);
            live.push(query_answered(&c, model, question).await["data"].clone());
        }

        // Rebuilt from the log alone, the models answer the same.
        for process in [&mut writer, &mut rooms, &mut timeline] {
            assert!(process.terminate().success());
        }
        let output = Command::new(env!("CARGO_BIN_EXE_parlor"))
            .args(["replay", "all", "--data-dir"])
            .arg(data.path())
            .output_within(COMMAND_WAIT)
            .unwrap();
        assert!(
            output.status.success(),
            "{}",
            String::from_utf8_lossy(&output.stderr)
        );
        // A port of its own: tests run in parallel, and a developer's `parlor up` may hold 8787.
        let _main = spawn(
            &[
                "up",
                "--nats-url",
                &url,
                "--http-addr",
                "127.0.0.1:0",
                "--ops-addr",
                "127.0.0.1:0",
            ],
            data.path(),
        );
        c.wait_for_writer().await;
        for ((model, question), expected) in questions.iter().zip(live) {
            let mut question = question.clone();
            question["min_position"] = json!(head);
            let answer = query_answered(&c, model, question).await;
            // Presence depends on heartbeats, not the log; nobody sent any here.
            assert_eq!(answer["data"], expected, "{model} equals its rebuild");
        }
        println!(
            "nats restarts: {cycles} cycles, {} acknowledged, lost 0, duplicated 0",
            acknowledged.len()
        );
    }
}

/// Peak resident memory of a process, from /proc (kB → bytes). Panics when it cannot be read:
/// a ceiling checked against a zero that stands for "unknown" would always pass.
fn peak_memory_bytes(pid: u32) -> u64 {
    let path = format!("/proc/{pid}/status");
    let status = std::fs::read_to_string(&path)
        .unwrap_or_else(|error| panic!("cannot read {path} for the memory ceiling: {error}"));
    status
        .lines()
        .find(|line| line.starts_with("VmHWM:"))
        .and_then(|line| line.split_whitespace().nth(1))
        .and_then(|kb| kb.parse::<u64>().ok())
        .map(|kb| kb * 1024)
        .unwrap_or_else(|| panic!("no VmHWM line in {path}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn overload_is_answered_and_memory_stays_bounded() {
    const IN_FLIGHT: usize = 2_000;
    const PER_TASK: usize = 15;
    /// The ceiling asserted here; the figure measured is printed and kept in docs/reliability.md.
    const MEMORY_CEILING_BYTES: u64 = 1024 * 1024 * 1024;
    // A small queue, so that 2,000 commands in flight are more than the writer takes at once.
    let system = crate::harness::System::start_with(&["--command-queue-max", "256"]).await;
    let c = system.client.clone();
    c.register(&["alice", "bob"]).await;
    let room = c
        .ok(
            "alice",
            "room.create",
            json!({"name": "Flood", "members": ["bob"]}),
        )
        .await["result"]["room_id"]
        .as_str()
        .unwrap()
        .to_owned();
    let mut tasks = Vec::new();
    for task in 0..IN_FLIGHT {
        let (c, room) = (c.clone(), room.clone());
        tasks.push(tokio::spawn(async move {
            let (mut accepted, mut unavailable, mut retried) = (0u64, 0u64, 0u64);
            for i in 0..PER_TASK {
                let envelope = json!({"command_id": Uuid::new_v4(), "actor": "alice", "data": {"room_id": room, "body": format!("flood {task}/{i}")}});
                // Core NATS may drop a request under such load (a slow consumer): clients retry
                // with the same command id, as the protocol tells them to.
                loop {
                    match c
                        .bus
                        .request("parlor.cmd.message.send", crate::harness::json_headers(), envelope.to_string(), Duration::from_secs(5))
                        .await
                    {
                        Ok(reply) => {
                            let reply: Value = serde_json::from_slice(&reply.payload).unwrap();
                            match reply["ok"].as_bool() {
                                Some(true) => accepted += 1,
                                _ => {
                                    assert_eq!(reply["error"]["code"], "unavailable", "{reply}");
                                    unavailable += 1;
                                }
                            }
                            break;
                        }
                        Err(_) => retried += 1,
                    }
                }
            }
            (accepted, unavailable, retried)
        }));
    }
    let (mut accepted, mut unavailable, mut retried) = (0, 0, 0);
    for task in tasks {
        let (a, u, r) = task.await.unwrap();
        accepted += a;
        unavailable += u;
        retried += r;
    }
    let peak = peak_memory_bytes(system.parlor.child.id());
    println!(
        "overload: {} commands, {accepted} accepted, {unavailable} answered unavailable, {retried} requests retried after a timeout; writer peak memory {} MiB",
        IN_FLIGHT * PER_TASK,
        peak / (1024 * 1024)
    );
    assert!(accepted > 0);
    assert!(
        unavailable > 0,
        "the overload was answered with unavailable"
    );
    assert!(peak < MEMORY_CEILING_BYTES, "peak memory {peak} bytes");
    // The writer still works afterwards.
    c.ok(
        "bob",
        "message.send",
        json!({"room_id": room, "body": "after the flood"}),
    )
    .await;
}
