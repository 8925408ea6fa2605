//! The read side over NATS, without HTTP: `parlor up --nats-url` runs the writer and every read
//! model; queries with `min_position` see the writes; `parlor replay all` on the stopped data
//! directory rebuilds models that answer exactly as the live ones did; `parlor replay rooms
//! --nats-url` rebuilds a running projector's model while commands and queries flow, and the
//! swapped-in model equals an offline rebuild.

use std::process::{Command, Stdio};
use std::time::Duration;

use serde_json::{json, Value};
use testkit::CommandWithin;

use crate::harness::{json_headers, spawn_part, Client, Parlor, COMMAND_WAIT, REPLY_WAIT};

fn start_up(nats_url: &str, data_dir: &std::path::Path) -> Parlor {
    let child = Command::new(env!("CARGO_BIN_EXE_parlor"))
        // A port of its own: tests run in parallel, and a developer's `parlor up` may hold 8787.
        .args([
            "up",
            "--nats-url",
            nats_url,
            "--dev-clock",
            "--http-addr",
            "127.0.0.1:0",
            "--ops-addr",
            "127.0.0.1:0",
        ])
        .arg("--data-dir")
        .arg(data_dir)
        .env("PARLOR_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(crate::harness::log_file(data_dir))
        .spawn()
        .expect("spawn parlor up");
    Parlor { child }
}

/// Asks read model `model`; while no model answers yet (each subscribes to its queries once it
/// has opened its store, which can be after the writer is up), asks again, for up to
/// `START_WAIT`.
async fn query(c: &Client, model: &str, request: Value) -> Value {
    let deadline = std::time::Instant::now() + crate::harness::START_WAIT;
    loop {
        match c
            .bus
            .request(
                &format!("parlor.query.{model}"),
                json_headers(),
                request.to_string(),
                REPLY_WAIT,
            )
            .await
        {
            Ok(reply) => return serde_json::from_slice(&reply.payload).unwrap(),
            Err(_) if std::time::Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            Err(error) => panic!("{model} did not answer: {error:?}"),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn read_models_follow_the_log_and_a_replay_answers_the_same() {
    let nats = testkit::NatsServer::start();
    let data = tempfile::tempdir().unwrap();
    let mut parlor = start_up(&nats.url(), data.path());
    let c = Client::connect(&nats.url()).await;
    c.wait_for_writer().await;
    c.register(&["alice", "bob", "carol"]).await;
    let group = c
        .ok(
            "alice",
            "room.create",
            json!({"name": "Launch", "members": ["bob"]}),
        )
        .await;
    let room = group["result"]["room_id"].as_str().unwrap().to_owned();
    let first = c
        .ok(
            "bob",
            "message.send",
            json!({"room_id": room, "body": "hello team"}),
        )
        .await;
    let first_id = first["result"]["message_id"].as_str().unwrap().to_owned();
    c.ok(
        "bob",
        "message.edit",
        json!({"room_id": room, "message_id": first_id, "body": "hello, team"}),
    )
    .await;
    let last = c
        .ok(
            "alice",
            "message.send",
            json!({"room_id": room, "body": "welcome", "reply_to": first_id}),
        )
        .await;
    let head = last["position"].as_u64().unwrap();
    c.ok(
        "alice",
        "message.report",
        json!({"room_id": room, "message_id": first_id, "reason": "other"}),
    )
    .await;
    let head = head + 1;

    let rooms = query(
        &c,
        "rooms",
        json!({"op": "list", "caller": "alice", "view": "inbox", "min_position": head}),
    )
    .await;
    assert_eq!(rooms["ok"], true, "{rooms}");
    let listed = &rooms["data"]["rooms"][0];
    assert_eq!(listed["room_id"], room.as_str());
    assert_eq!(listed["last_message"]["preview"], "welcome");
    let messages = query(
        &c,
        "timeline",
        json!({"op": "messages", "caller": "bob", "room_id": room, "min_position": head}),
    )
    .await;
    let messages = messages["data"]["messages"].as_array().unwrap().clone();
    assert_eq!(messages.len(), 2);
    assert_eq!(messages[1]["body"], "hello, team");
    assert!(!messages[1]["edited_at"].is_null());
    assert_eq!(messages[0]["reply_to"]["message_id"], first_id.as_str());
    // R-R6: a non-member learns nothing.
    let foreign = query(
        &c,
        "timeline",
        json!({"op": "messages", "caller": "carol", "room_id": room, "min_position": head}),
    )
    .await;
    assert_eq!(foreign["error"]["code"], "not_found");
    let reports = query(
        &c,
        "moderation",
        json!({"op": "reports", "moderator": true, "min_position": head}),
    )
    .await;
    assert_eq!(reports["data"]["reports"].as_array().unwrap().len(), 1);

    // The same questions, asked again after a rebuild from the log alone.
    let questions = [
        (
            "rooms",
            json!({"op": "list", "caller": "alice", "view": "inbox"}),
        ),
        (
            "rooms",
            json!({"op": "list", "caller": "bob", "view": "unread"}),
        ),
        (
            "timeline",
            json!({"op": "messages", "caller": "alice", "room_id": room}),
        ),
        ("moderation", json!({"op": "reports", "moderator": true})),
    ];
    let mut before = Vec::new();
    for (model, question) in &questions {
        before.push(query(&c, model, question.clone()).await["data"].clone());
    }
    let status = parlor.terminate();
    assert!(
        status.success(),
        "parlor up exited with {status}: {}",
        crate::harness::read_logs(data.path())
    );
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
    assert!(String::from_utf8_lossy(&output.stdout).contains("rooms: rebuilt to position"));
    let _parlor = start_up(&nats.url(), data.path());
    c.wait_for_writer().await;
    for ((model, question), expected) in questions.iter().zip(before) {
        let mut question = question.clone();
        question["min_position"] = json!(head);
        let answer = query(&c, model, question).await;
        assert_eq!(answer["data"], expected, "{model} after replay");
    }
}

/// The digest of the rooms model in a stopped data directory, and its position.
fn rooms_digest(data_dir: &std::path::Path) -> (String, u64) {
    use projections::Projector as _;
    let rooms = projections::Rooms::open(data_dir).unwrap();
    (rooms.digest().unwrap(), rooms.position())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_live_replay_swaps_the_model_in_while_commands_and_queries_flow() {
    use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
    use std::sync::Arc;

    let nats = testkit::NatsServer::start();
    let url = nats.url();
    let data = tempfile::tempdir().unwrap();
    let mut writer = spawn_part(&["writer", "--nats-url", &url], data.path());
    let mut rooms = spawn_part(&["projector", "rooms", "--nats-url", &url], data.path());
    let c = Client::connect(&url).await;
    c.wait_for_writer().await;
    let (users, room) = c.group_room("member", 8, "Replayed").await;
    // Some history for the rebuild to go through.
    let mut history = Vec::new();
    for sender in users.clone() {
        let (c, room) = (c.clone(), room.clone());
        history.push(tokio::spawn(async move {
            let mut highest = 0;
            for n in 0..150 {
                let reply = c
                    .ok(
                        &sender,
                        "message.send",
                        json!({"room_id": room, "body": format!("{sender} history {n}")}),
                    )
                    .await;
                highest = reply["position"].as_u64().unwrap().max(highest);
            }
            highest
        }));
    }
    let mut history_head = 0;
    for task in history {
        history_head = history_head.max(task.await.unwrap());
    }
    // The projector may have started before the writer and still be waiting to retry: the
    // flow below begins once the model holds the history.
    let caught_up = query(
        &c,
        "rooms",
        json!({"op": "list", "caller": "member1", "view": "inbox", "min_position": history_head}),
    )
    .await;
    assert_eq!(
        caught_up["data"]["rooms"][0]["name"], "Replayed",
        "{caught_up}"
    );

    // A stream of message.send commands, and queries that must all be answered.
    let flowing = Arc::new(AtomicBool::new(true));
    let highest = Arc::new(AtomicU64::new(0));
    let mut senders = Vec::new();
    let live_senders: Vec<String> = users[..4].to_vec();
    for sender in live_senders {
        let (c, room, flowing, highest) =
            (c.clone(), room.clone(), flowing.clone(), highest.clone());
        senders.push(tokio::spawn(async move {
            let mut n = 0;
            while flowing.load(Ordering::SeqCst) {
                let reply = c
                    .ok(
                        &sender,
                        "message.send",
                        json!({"room_id": room, "body": format!("{sender} live {n}")}),
                    )
                    .await;
                highest.fetch_max(reply["position"].as_u64().unwrap(), Ordering::SeqCst);
                n += 1;
            }
            n
        }));
    }
    let querier = {
        let (c, flowing) = (c.clone(), flowing.clone());
        tokio::spawn(async move {
            let mut answered = 0u64;
            while flowing.load(Ordering::SeqCst) {
                let reply = query(
                    &c,
                    "rooms",
                    json!({"op": "list", "caller": "member1", "view": "inbox"}),
                )
                .await;
                assert_eq!(
                    reply["ok"], true,
                    "a query during the replay failed: {reply}"
                );
                assert_eq!(
                    reply["data"]["rooms"][0]["name"], "Replayed",
                    "a query during the replay lost the room: {reply}"
                );
                answered += 1;
            }
            answered
        })
    };

    let replay = tokio::task::spawn_blocking({
        let url = url.clone();
        move || {
            Command::new(env!("CARGO_BIN_EXE_parlor"))
                .args(["replay", "rooms", "--nats-url", &url])
                .output_within(COMMAND_WAIT)
                .unwrap()
        }
    })
    .await
    .unwrap();
    let stdout = String::from_utf8_lossy(&replay.stdout);
    assert!(
        replay.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&replay.stderr)
    );
    assert!(
        stdout.contains("rooms: rebuilt live to position"),
        "{stdout}"
    );
    tokio::time::sleep(Duration::from_millis(300)).await;
    flowing.store(false, Ordering::SeqCst);
    let mut sent_live = 0;
    for sender in senders {
        sent_live += sender.await.unwrap();
    }
    let answered = querier.await.unwrap();
    assert!(sent_live > 0 && answered > 0);
    let head = highest.load(Ordering::SeqCst);
    let status = query(&c, "rooms", json!({"op": "status", "min_position": head})).await;
    assert_eq!(status["ok"], true, "{status}");

    // A replay the projector would refuse: --from in live mode; and one nobody answers.
    let refused = Command::new(env!("CARGO_BIN_EXE_parlor"))
        .args(["replay", "rooms", "--from", "5", "--nats-url", &url])
        .output_within(COMMAND_WAIT)
        .unwrap();
    assert!(!refused.status.success());
    assert!(String::from_utf8_lossy(&refused.stderr).contains("position 1"));
    let unanswered = Command::new(env!("CARGO_BIN_EXE_parlor"))
        .args(["replay", "timeline", "--nats-url", &url])
        .output_within(COMMAND_WAIT)
        .unwrap();
    assert!(!unanswered.status.success());
    assert!(
        String::from_utf8_lossy(&unanswered.stderr).contains("no projector serves timeline"),
        "{}",
        String::from_utf8_lossy(&unanswered.stderr)
    );

    // Stopped, the model equals an offline rebuild of the same data directory, at the head.
    assert!(writer.terminate().success());
    assert!(rooms.terminate().success());
    let (live_digest, live_position) = rooms_digest(data.path());
    let offline = Command::new(env!("CARGO_BIN_EXE_parlor"))
        .args(["replay", "rooms", "--data-dir"])
        .arg(data.path())
        .output_within(COMMAND_WAIT)
        .unwrap();
    assert!(offline.status.success());
    let (offline_digest, offline_position) = rooms_digest(data.path());
    assert_eq!(live_position, offline_position);
    assert!(live_position >= head);
    assert_eq!(
        live_digest, offline_digest,
        "the live-replayed model equals an offline rebuild"
    );
    println!(
        "live replay: {sent_live} commands sent and {answered} queries answered during it, model at {live_position}; {}",
        stdout.trim()
    );
}
