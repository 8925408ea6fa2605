//! `parlor audit`: verify catches tampering (a changed byte, a missing record, a truncated tail
//! with an anchored head); verify of a running system through `log.read` agrees with the writer
//! and with the stopped verify; a room's history as of three moments; export → import
//! reproduces the head hash.

use std::path::Path;
use std::process::{Command, Output};

use serde_json::{json, Value};
use testkit::CommandWithin;
use uuid::Uuid;

use crate::harness::{Client, System, COMMAND_WAIT};

fn parlor(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_parlor"))
        .args(args)
        .env("PARLOR_LOG", "warn")
        .output_within(COMMAND_WAIT)
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
        .status_within(COMMAND_WAIT)
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

/// `parlor audit verify --nats-url` against the running system.
fn verify_live(nats_url: &str, extra: &[&str]) -> Output {
    let mut args = vec!["audit", "verify", "--nats-url", nats_url];
    args.extend_from_slice(extra);
    parlor(&args)
}

/// Sends `count` messages from alice to bob, 20 in flight; returns the highest position a
/// reply acknowledged.
async fn send_messages(c: &Client, count: usize, tag: &str) -> u64 {
    let mut in_flight = tokio::task::JoinSet::new();
    let mut highest = 0;
    for i in 0..count {
        let c = c.clone();
        let body = format!("{tag} {i}");
        in_flight.spawn(async move {
            c.ok("alice", "message.send", json!({"to": "bob", "body": body}))
                .await["position"]
                .as_u64()
                .expect("position")
        });
        if in_flight.len() >= 20 {
            highest = highest.max(in_flight.join_next().await.unwrap().unwrap());
        }
    }
    while let Some(position) = in_flight.join_next().await {
        highest = highest.max(position.unwrap());
    }
    highest
}

/// The hash the writer announces on `parlor.audit.head` for `position` (it announces every
/// few seconds; nothing is appended meanwhile, so an announcement reaches `position`).
async fn announced_hash(c: &Client, position: u64) -> String {
    let mut heads = c.bus.subscribe("parlor.audit.head").await.unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    loop {
        let wait = deadline.saturating_duration_since(std::time::Instant::now());
        let message = tokio::time::timeout(wait, heads.next())
            .await
            .expect("an audit.head announcement in time")
            .expect("the subscription is open");
        let head: Value = serde_json::from_slice(&message.payload).unwrap();
        if head["position"].as_u64() == Some(position) {
            return head["hash"].as_str().unwrap().to_owned();
        }
    }
}

/// Runs a blocking `parlor` invocation without holding up the test's runtime.
async fn in_background(run: impl FnOnce() -> Output + Send + 'static) -> Output {
    tokio::task::spawn_blocking(run).await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn verify_a_running_system_through_log_read() {
    let mut system = System::start().await;
    let c = system.client.clone();
    let url = system.nats.url();
    c.register(&["alice", "bob"]).await;
    let last = send_messages(&c, 300, "before").await;
    assert!(last >= 302, "{last}");

    // A JSON log.read shows the record bytes only when asked.
    for raw in [false, true] {
        let reply = c
            .bus
            .request(
                "parlor.log.read",
                crate::harness::json_headers(),
                json!({"from": 1, "max": 5, "raw": raw}).to_string(),
                crate::harness::REPLY_WAIT,
            )
            .await
            .unwrap();
        let page: Value = serde_json::from_slice(&reply.payload).unwrap();
        let events = page["events"].as_array().expect("events");
        assert_eq!(events.len(), 5, "{page}");
        for event in events {
            assert_eq!(event.get("raw").is_some(), raw, "{event}");
        }
    }

    // While the writer runs, the chain verifies up to the head, and the head line is the
    // writer's own: the last acknowledged position, with the hash it announces.
    let output = in_background({
        let url = url.clone();
        move || verify_live(&url, &[])
    })
    .await;
    let (position, hash) = head_line(&output);
    assert_eq!(position, last, "{}", stdout(&output));
    assert!(
        stdout(&output).contains(&format!("events {last}\n")),
        "{}",
        stdout(&output)
    );
    assert_eq!(hash, announced_hash(&c, last).await);

    // Anchors the log reaches with their own hashes pass, in both forms.
    let hash_at_100 = c.log_read(100, 1).await["events"][0]["hash"]
        .as_str()
        .unwrap()
        .to_owned();
    for anchor in [format!("100:{hash_at_100}"), hash.clone()] {
        let output = in_background({
            let url = url.clone();
            move || verify_live(&url, &["--expect-head", &anchor])
        })
        .await;
        assert_eq!(head_line(&output), (last, hash.clone()));
    }
    // A wrong hash at an anchored position fails, naming it; so does an anchor past the end
    // (a truncated tail), naming the first position missing.
    let wrong_anchors = [
        (format!("100:{hash}"), "position 100".to_owned()),
        (
            format!("{}:{hash}", last + 50),
            format!("position {}", last + 1),
        ),
    ];
    for (anchor, named) in &wrong_anchors {
        let output = in_background({
            let url = url.clone();
            let anchor = anchor.clone();
            move || verify_live(&url, &["--expect-head", &anchor])
        })
        .await;
        assert!(!output.status.success(), "{anchor}: {}", stdout(&output));
        assert!(
            stderr(&output).contains(named.as_str()),
            "{anchor}: {}",
            stderr(&output)
        );
        assert!(!stdout(&output).contains("head "), "{}", stdout(&output));
    }

    // Verification while commands keep arriving: it verifies up to the head it saw first.
    let during = tokio::spawn({
        let c = c.clone();
        async move { send_messages(&c, 200, "during").await }
    });
    let output = in_background({
        let url = url.clone();
        move || verify_live(&url, &[])
    })
    .await;
    let last_during = during.await.unwrap();
    let (position, _) = head_line(&output);
    assert!(
        (last..=last_during).contains(&position),
        "{position} not in {last}..={last_during}"
    );

    // Once everything is in, the live and the stopped verification print the same head line.
    let live = in_background({
        let url = url.clone();
        move || verify_live(&url, &[])
    })
    .await;
    let live_head = head_line(&live);
    assert_eq!(live_head.0, last_during);
    assert!(system.parlor.terminate().success());
    let stopped = verify(system.data.path(), &[]);
    assert_eq!(head_line(&stopped), live_head);
    assert_eq!(
        stdout(&live).lines().last(),
        stdout(&stopped).lines().last()
    );

    // With no writer left, the live mode fails clearly instead of reporting a head.
    let output = verify_live(&url, &[]);
    assert!(!output.status.success());
    assert!(
        stderr(&output).contains("parlor.log.read"),
        "{}",
        stderr(&output)
    );
}

#[test]
fn verify_takes_exactly_one_of_a_data_directory_and_a_nats_url() {
    let neither = parlor(&["audit", "verify"]);
    assert!(!neither.status.success());
    assert!(
        stderr(&neither).contains("--data-dir") && stderr(&neither).contains("--nats-url"),
        "{}",
        stderr(&neither)
    );
    let both = parlor(&[
        "audit",
        "verify",
        "--data-dir",
        "/nonexistent",
        "--nats-url",
        "nats://127.0.0.1:1",
    ]);
    assert!(!both.status.success());
    assert!(
        stderr(&both).contains("cannot be used with"),
        "{}",
        stderr(&both)
    );

    // The environment: a flag wins over the other's variable; with no flag, exactly one of the
    // two variables must be set.
    let empty = tempfile::tempdir().unwrap();
    let run = |args: &[&str], env: &[(&str, &str)]| {
        Command::new(env!("CARGO_BIN_EXE_parlor"))
            .args(args)
            .env("PARLOR_LOG", "warn")
            .env_remove("PARLOR_DATA_DIR")
            .env_remove("PARLOR_NATS_URL")
            .envs(env.iter().copied())
            .output_within(COMMAND_WAIT)
            .expect("run parlor")
    };
    let dir = empty.path().to_str().unwrap();
    let refused_url = "nats://127.0.0.1:1";
    let by_flag = run(
        &["audit", "verify", "--data-dir", dir],
        &[("PARLOR_NATS_URL", refused_url)],
    );
    assert!(
        stderr(&by_flag).contains("no event log in"),
        "{}",
        stderr(&by_flag)
    );
    let by_flag = run(
        &["audit", "verify", "--nats-url", refused_url],
        &[("PARLOR_DATA_DIR", dir)],
    );
    assert!(
        stderr(&by_flag).contains("connecting to NATS"),
        "{}",
        stderr(&by_flag)
    );
    let by_env = run(&["audit", "verify"], &[("PARLOR_DATA_DIR", dir)]);
    assert!(
        stderr(&by_env).contains("no event log in"),
        "{}",
        stderr(&by_env)
    );
    let both_env = run(
        &["audit", "verify"],
        &[("PARLOR_DATA_DIR", dir), ("PARLOR_NATS_URL", refused_url)],
    );
    assert!(!both_env.status.success());
    assert!(
        stderr(&both_env).contains("PARLOR_DATA_DIR and PARLOR_NATS_URL are both set"),
        "{}",
        stderr(&both_env)
    );
}

/// The `verified in … s (… events/s)` line of a successful verify.
fn speed_line(output: &Output) -> String {
    stdout(output)
        .lines()
        .find(|line| line.starts_with("verified in"))
        .unwrap_or_default()
        .to_owned()
}

/// Speed of the live verification against the stopped one over the same log (ignored: a
/// measurement; run with `--ignored --nocapture`, on a release build for meaningful figures).
/// `PARLOR_MEASURE_EVENTS` sets the log's size (default 50,000).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "measurement; run explicitly"]
async fn measure_live_and_stopped_verify() {
    let events = std::env::var("PARLOR_MEASURE_EVENTS")
        .ok()
        .and_then(|text| text.parse().ok())
        .unwrap_or(50_000);
    let data = tempfile::tempdir().unwrap();
    crate::harness::fill_log(data.path(), events).await;
    let stopped = verify(data.path(), &[]);
    let stopped_head = head_line(&stopped);

    let nats = testkit::NatsServer::start();
    let mut writer = crate::harness::Parlor::start_writer(&nats.url(), data.path(), &[]);
    Client::connect(&nats.url()).await.wait_for_writer().await;
    let live = in_background({
        let url = nats.url();
        move || verify_live(&url, &[])
    })
    .await;
    assert_eq!(head_line(&live), stopped_head);
    assert!(writer.terminate().success());
    println!(
        "{} events: stopped {}; live {}",
        stopped_head.0,
        speed_line(&stopped),
        speed_line(&live)
    );
}
