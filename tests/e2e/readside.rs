//! The read side over NATS, without HTTP: `parlor up --nats-url` runs the writer and every read
//! model; queries with `min_position` see the writes; `parlor replay all` on the stopped data
//! directory rebuilds models that answer exactly as the live ones did.

use std::process::{Command, Stdio};
use std::time::Duration;

use serde_json::{json, Value};

use crate::harness::{json_headers, Client, Parlor, REPLY_WAIT};

fn start_up(nats_url: &str, data_dir: &std::path::Path) -> Parlor {
    let child = Command::new(env!("CARGO_BIN_EXE_parlor"))
        .args(["up", "--nats-url", nats_url, "--dev-clock", "--data-dir"])
        .arg(data_dir)
        .env("PARLOR_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn parlor up");
    Parlor { child }
}

async fn query(c: &Client, model: &str, request: Value) -> Value {
    let reply = c
        .bus
        .request(
            &format!("parlor.query.{model}"),
            json_headers(),
            request.to_string(),
            REPLY_WAIT,
        )
        .await
        .expect("query reply");
    serde_json::from_slice(&reply.payload).unwrap()
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
    assert!(parlor.terminate().success());
    let output = Command::new(env!("CARGO_BIN_EXE_parlor"))
        .args(["replay", "all", "--data-dir"])
        .arg(data.path())
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(String::from_utf8_lossy(&output.stdout).contains("rooms: rebuilt to position"));
    let _parlor = start_up(&nats.url(), data.path());
    c.wait_for_writer().await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    for ((model, question), expected) in questions.iter().zip(before) {
        let mut question = question.clone();
        question["min_position"] = json!(head);
        let answer = query(&c, model, question).await;
        assert_eq!(answer["data"], expected, "{model} after replay");
    }
}
