//! The event log over NATS: publication in position order with headers, `log.read` paging,
//! and the single-writer rule.

use std::time::Duration;

use serde_json::json;

use crate::harness::{Parlor, System, START_WAIT};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_are_published_in_position_order_with_headers() {
    let system = System::start_with(&["--event-format", "json"]).await;
    let c = &system.client;
    let mut events = c.bus.subscribe("parlor.evt.>").await.unwrap();
    c.register(&["alice", "bob"]).await;
    for i in 0..20 {
        c.ok(
            "alice",
            "message.send",
            json!({"to": "bob", "body": format!("message {i}")}),
        )
        .await;
    }
    // 2 registrations + 1 direct room + 20 messages.
    let mut expected_position = 1;
    while expected_position <= 23 {
        let message = tokio::time::timeout(Duration::from_secs(10), events.next())
            .await
            .expect("an event in time")
            .expect("subscription open");
        let position: u64 = message
            .headers
            .get("Parlor-Position")
            .unwrap()
            .parse()
            .unwrap();
        assert_eq!(
            position, expected_position,
            "in position order, none skipped"
        );
        let body: serde_json::Value = serde_json::from_slice(&message.payload).unwrap();
        assert_eq!(body["position"], position);
        assert_eq!(
            message.subject,
            format!("parlor.evt.{}", body["type"].as_str().unwrap())
        );
        assert_eq!(
            message.headers.get("Parlor-Stream").unwrap(),
            body["stream"].as_str().unwrap()
        );
        assert_eq!(
            message.headers.get("Parlor-Version").unwrap(),
            body["version"].to_string()
        );
        assert_eq!(
            message.headers.get("Content-Type").unwrap(),
            "application/json"
        );
        assert_eq!(body["hash"].as_str().unwrap().len(), 64);
        expected_position += 1;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn log_read_pages_through_the_whole_log() {
    let system = System::start().await;
    let c = &system.client;
    c.register(&["alice", "bob", "carol"]).await;
    let room = c
        .ok(
            "alice",
            "room.create",
            json!({"name": "R", "members": ["bob", "carol"]}),
        )
        .await;
    let room = room["result"]["room_id"].as_str().unwrap().to_owned();
    for i in 0..150 {
        c.ok(
            "bob",
            "message.send",
            json!({"room_id": room, "body": format!("n{i}")}),
        )
        .await;
    }
    let head = c.log_read(1, 1).await["head"].as_u64().unwrap();
    assert_eq!(head, 3 + 1 + 150);
    // Small pages.
    let mut positions = Vec::new();
    let mut from = 1;
    loop {
        let page = c.log_read(from, 7).await;
        let events = page["events"].as_array().unwrap();
        assert!(events.len() <= 7);
        if events.is_empty() {
            break;
        }
        for event in events {
            positions.push(event["position"].as_u64().unwrap());
            for field in [
                "stream",
                "version",
                "type",
                "event_id",
                "command_id",
                "actor",
                "recorded_at",
                "data",
                "hash",
            ] {
                assert!(!event[field].is_null(), "{field} in {event}");
            }
        }
        from = positions.last().unwrap() + 1;
    }
    assert_eq!(positions, (1..=head).collect::<Vec<_>>());
    // A message's data holds its fields.
    let whole = c.whole_log().await;
    let last = whole.last().unwrap();
    assert_eq!(last["type"], "message_sent");
    assert_eq!(last["data"]["body"], "n149");
    assert_eq!(last["actor"], "bob");
    // Oversized max is refused, not served.
    let refused = c.log_read(1, 10_001).await;
    assert!(refused.get("events").is_none(), "{refused}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_writer_refuses_to_start() {
    let system = System::start().await;
    let other_dir = tempfile::tempdir().unwrap();
    let mut second = Parlor::start_writer(&system.nats.url(), other_dir.path(), &[]);
    // Bounded: a regression that lets the second writer run must fail the test, not hang CI.
    let status = tokio::task::spawn_blocking(move || {
        testkit::reap_within(&mut second.child, START_WAIT).unwrap()
    })
    .await
    .unwrap()
    .expect("the second writer still runs: it did not refuse to start");
    assert!(!status.success());
    let logs = crate::harness::read_logs(other_dir.path());
    assert!(logs.contains("another writer"), "{logs}");
    // The first one still answers.
    system.client.register(&["alice"]).await;
}
