//! `parlor audit`: verify catches tampering (a changed byte, a missing record, a truncated tail
//! with an anchored head); a room's history as of three moments; export → import reproduces the
//! head hash.

use std::path::Path;
use std::process::{Command, Output};

use serde_json::{json, Value};
use uuid::Uuid;

use crate::harness::{Client, System};

fn parlor(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_parlor"))
        .args(args)
        .env("PARLOR_LOG", "warn")
        .output()
        .expect("run parlor")
}

fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

fn verify(dir: &Path, extra: &[&str]) -> Output {
    let mut args = vec!["audit", "verify", "--data-dir", dir.to_str().unwrap()];
    args.extend_from_slice(extra);
    parlor(&args)
}

/// The `head <position> <hash>` line of a successful verify.
fn head_line(output: &Output) -> (u64, String) {
    assert!(output.status.success(), "verify failed: {}", stderr(output));
    let text = stdout(output);
    let last = text.lines().last().expect("output").to_owned();
    let parts: Vec<&str> = last.split(' ').collect();
    assert_eq!(parts[0], "head", "{text}");
    (parts[1].parse().unwrap(), parts[2].to_owned())
}

fn copy_dir(from: &Path, to: &Path) {
    let status = Command::new("cp")
        .arg("-r")
        .arg(from)
        .arg(to)
        .status()
        .unwrap();
    assert!(status.success());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn verify_catches_a_changed_byte_a_missing_record_and_a_truncated_tail() {
    let mut system = System::start().await;
    let c = system.client.clone();
    c.register(&["alice", "bob"]).await;
    for i in 0..30 {
        c.ok(
            "alice",
            "message.send",
            json!({"to": "bob", "body": format!("note {i}")}),
        )
        .await;
    }
    assert!(system.parlor.terminate().success());
    let (head, hash) = head_line(&verify(system.data.path(), &[]));
    assert_eq!(head, 33);
    // The anchored head itself passes, in both forms.
    head_line(&verify(system.data.path(), &["--expect-head", &hash]));
    head_line(&verify(
        system.data.path(),
        &["--expect-head", &format!("{head}:{hash}")],
    ));

    let scratch = tempfile::tempdir().unwrap();
    let changed = scratch.path().join("changed");
    copy_dir(system.data.path(), &changed);
    eventlog::tamper::flip_byte(&changed.join("log"), 10, 40).unwrap();
    let output = verify(&changed, &[]);
    assert!(!output.status.success());
    assert!(
        stderr(&output).contains("position 10"),
        "{}",
        stderr(&output)
    );

    let missing = scratch.path().join("missing");
    copy_dir(system.data.path(), &missing);
    eventlog::tamper::delete_record(&missing.join("log"), 12).unwrap();
    let output = verify(&missing, &[]);
    assert!(!output.status.success());
    assert!(
        stderr(&output).contains("position 12"),
        "{}",
        stderr(&output)
    );

    let truncated = scratch.path().join("truncated");
    copy_dir(system.data.path(), &truncated);
    eventlog::tamper::truncate_tail(&truncated.join("log"), 28).unwrap();
    // A chain alone cannot see a cut tail…
    assert_eq!(head_line(&verify(&truncated, &[])).0, 28);
    // …an anchored head can.
    let output = verify(&truncated, &["--expect-head", &hash]);
    assert!(!output.status.success(), "{}", stdout(&output));
    let output = verify(&truncated, &["--expect-head", &format!("{head}:{hash}")]);
    assert!(!output.status.success(), "{}", stdout(&output));
}

/// Sends with a fixed command id, so the ids the command derives are known.
async fn send_fixed(c: &Client, id: u128, actor: &str, command_type: &str, data: Value) -> Value {
    let reply = c
        .send_as(Uuid::from_u128(id), actor, "desktop", command_type, data)
        .await;
    assert_eq!(reply["ok"], true, "{reply}");
    reply
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn room_history_as_of_three_moments() {
    let mut system = System::start().await;
    let c = system.client.clone();
    c.register(&["alice", "bob", "carol"]).await;
    let room = send_fixed(
        &c,
        1,
        "alice",
        "room.create",
        json!({"name": "Launch", "members": ["bob"]}),
    )
    .await["result"]["room_id"]
        .as_str()
        .unwrap()
        .to_owned();
    let draft = Uuid::from_u128(0xD1);
    let reply = Uuid::from_u128(0xD2);
    send_fixed(
        &c,
        2,
        "alice",
        "message.send",
        json!({"room_id": room, "message_id": draft, "body": "first draft"}),
    )
    .await;
    send_fixed(
        &c,
        3,
        "bob",
        "message.send",
        json!({"room_id": room, "message_id": reply, "body": "looks good", "reply_to": draft}),
    )
    .await;
    c.advance_clock(10 * 60_000).await;
    send_fixed(
        &c,
        4,
        "alice",
        "message.edit",
        json!({"room_id": room, "message_id": draft, "body": "second draft"}),
    )
    .await;
    c.advance_clock(10 * 60_000).await;
    send_fixed(
        &c,
        5,
        "alice",
        "message.edit",
        json!({"room_id": room, "message_id": draft, "body": "final"}),
    )
    .await;
    send_fixed(
        &c,
        6,
        "bob",
        "message.delete",
        json!({"room_id": room, "message_id": reply}),
    )
    .await;
    send_fixed(
        &c,
        7,
        "bob",
        "room.add_member",
        json!({"room_id": room, "user_id": "carol"}),
    )
    .await;
    send_fixed(
        &c,
        8,
        "carol",
        "message.report",
        json!({"room_id": room, "message_id": draft, "reason": "other", "details": "odd"}),
    )
    .await;
    assert!(system.parlor.terminate().success());

    // The facts, as the log recorded them: the expected text is built from these times.
    let log = eventlog::EventLog::open(&system.data.path().join("log")).unwrap();
    let records = log.read_stream(&format!("room-{room}"), 1, 100).unwrap();
    let times: Vec<String> = records
        .iter()
        .map(|r| {
            protocol::decode_stored(&r.payload)
                .unwrap()
                .recorded_at
                .to_rfc3339()
        })
        .collect();
    drop(log);
    // Stream order: created, draft, reply, edit, edit, delete, added, reported.
    let [created, sent, replied, edited1, edited2, deleted, added, reported] = &times[..] else {
        panic!("unexpected room stream: {times:?}");
    };
    let report_id = Uuid::new_v5(&Uuid::from_u128(8), b"report");

    let at = |moment: &str| {
        let output = parlor(&[
            "audit",
            "room",
            &room,
            "--at",
            moment,
            "--data-dir",
            system.data.path().to_str().unwrap(),
        ]);
        assert!(output.status.success(), "{}", stderr(&output));
        stdout(&output)
    };
    let header = |as_of: &str| {
        format!("room {room} (group) \"Launch\" as of {as_of}\ncreated {created} by alice\n")
    };

    // Just after the two first messages.
    let expected = format!(
        "{}members:\n  alice joined {created}\n  bob joined {created}\nmessages:\n  {sent} alice {draft}\n    body: first draft\n  {replied} bob {reply}\n    in reply to {draft}\n    body: looks good\n",
        header(replied)
    );
    assert_eq!(at(replied), expected);

    // After the first edit.
    let expected = format!(
        "{}members:\n  alice joined {created}\n  bob joined {created}\nmessages:\n  {sent} alice {draft}\n    body: first draft\n    edited {edited1} by alice: second draft\n  {replied} bob {reply}\n    in reply to {draft}\n    body: looks good\n",
        header(edited1)
    );
    assert_eq!(at(edited1), expected);

    // At the end: the second edit, the deletion with its original, carol, the report.
    let expected = format!(
        "{}members:\n  alice joined {created}\n  bob joined {created}\n  carol joined {added}\nmessages:\n  {sent} alice {draft}\n    body: first draft\n    edited {edited1} by alice: second draft\n    edited {edited2} by alice: final\n  {replied} bob {reply}\n    in reply to {draft}\n    body: looks good\n    deleted {deleted} by bob (was: looks good)\nreports:\n  {reported} carol reported {draft} (other): odd\n",
        header(reported)
    );
    assert_eq!(at(reported), expected);
    let _ = report_id;

    // JSON form carries the same facts.
    let output = parlor(&[
        "audit",
        "room",
        &room,
        "--json",
        "--data-dir",
        system.data.path().to_str().unwrap(),
    ]);
    let history: Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(
        history["messages"][0]["versions"].as_array().unwrap().len(),
        3
    );
    assert_eq!(history["messages"][1]["deleted"]["body"], "looks good");

    // What carol did.
    let output = parlor(&[
        "audit",
        "user",
        "carol",
        "--data-dir",
        system.data.path().to_str().unwrap(),
    ]);
    let lines: Vec<Value> = stdout(&output)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 1);
    assert_eq!(lines[0]["type"], "message_reported");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn export_then_import_reproduces_the_head_hash() {
    let events: usize = std::env::var("PARLOR_EXPORT_EVENTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(100_000);
    let source = tempfile::tempdir().unwrap();
    crate::harness::fill_log(source.path(), events).await;
    let (head, hash) = head_line(&verify(source.path(), &[]));
    assert!(head as usize >= events);

    let scratch = tempfile::tempdir().unwrap();
    let export_file = scratch.path().join("log.jsonl");
    let output = parlor(&[
        "audit",
        "export",
        "--data-dir",
        source.path().to_str().unwrap(),
    ]);
    assert!(output.status.success(), "{}", stderr(&output));
    std::fs::write(&export_file, &output.stdout).unwrap();
    let first: Value = serde_json::from_str(stdout(&output).lines().next().unwrap()).unwrap();
    for field in [
        "position",
        "stream",
        "version",
        "type",
        "event_id",
        "command_id",
        "actor",
        "recorded_at",
        "data",
        "hash",
        "raw",
    ] {
        assert!(!first[field].is_null(), "{field}");
    }

    let target = scratch.path().join("imported");
    let output = parlor(&[
        "audit",
        "import",
        export_file.to_str().unwrap(),
        "--data-dir",
        target.to_str().unwrap(),
    ]);
    assert!(output.status.success(), "{}", stderr(&output));
    assert_eq!(
        head_line(&verify(&target, &["--expect-head", &hash])),
        (head, hash)
    );
}
