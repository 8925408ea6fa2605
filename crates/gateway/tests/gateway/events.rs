//! `GET /v1/events`: the caller's events, live and replayed from the log, resumable with
//! `Last-Event-ID` without gaps or duplicates.

use std::time::Duration;

use domain::Event;
use protocol::Format;
use serde_json::{json, Value};

use crate::http::{SseEvent, SseStream};
use crate::support::{
    answer, member_added, message_sent, refused, responder, room, token, user, FakeLog, Recorded,
    TestGateway,
};

/// How long to wait for an event that should come.
const SHOULD_COME: Duration = Duration::from_secs(5);
/// How long to wait to be sure nothing more comes.
const QUIET: Duration = Duration::from_millis(400);

/// A rooms projector whose `member_rooms` of alice is room 1, at the log's head.
async fn fake_rooms(gateway: &TestGateway, log: &FakeLog) -> Recorded {
    let log = log.clone();
    responder(&gateway.bus, "parlor.query.rooms", move |_, request| {
        Some(match request["op"].as_str() {
            Some("member_rooms") if request["caller"] == "alice" => {
                answer(log.head(), json!({"room_ids": [room(1).to_string()]}))
            }
            Some("member_rooms") => answer(log.head(), json!({"room_ids": []})),
            _ => refused("invalid_command"),
        })
    })
    .await
}

async fn open(gateway: &TestGateway, last_event_id: Option<u64>) -> SseStream {
    let authorization = format!("Bearer {}", token("alice"));
    let last = last_event_id.map(|id| id.to_string());
    let mut headers = vec![("Authorization", authorization.as_str())];
    if let Some(last) = &last {
        headers.push(("Last-Event-ID", last.as_str()));
    }
    let stream = SseStream::open(gateway.addr, "/v1/events", &headers).await;
    assert_eq!(
        stream.status,
        200,
        "{}",
        String::from_utf8_lossy(&stream.body)
    );
    stream
}

fn positions(events: &[SseEvent]) -> Vec<u64> {
    events.iter().map(SseEvent::position).collect()
}

#[tokio::test]
async fn live_events_of_the_callers_rooms_and_self_are_streamed() {
    let gateway = TestGateway::start().await;
    let log = FakeLog::start(&gateway.bus).await;
    fake_rooms(&gateway, &log).await;
    log.append(message_sent(room(1), "bob", "before"));
    log.append(message_sent(room(2), "bob", "elsewhere"));

    let mut stream = open(&gateway, None).await;
    assert_eq!(
        crate::http::Response {
            status: 200,
            headers: stream.headers.clone(),
            body: Vec::new()
        }
        .header("content-type"),
        Some("text/event-stream")
    );
    // Without Last-Event-ID the stream starts after the position of the room set.
    assert!(
        stream.next(QUIET).await.is_none(),
        "nothing from before the stream"
    );

    log.append_and_publish(message_sent(room(1), "bob", "hello"))
        .await; // 3
    log.append_and_publish(message_sent(room(2), "bob", "not for alice"))
        .await; // 4
    log.append_and_publish(member_added(room(2), "alice")).await; // 5: alice joins room 2
    log.append_and_publish(message_sent(room(2), "bob", "now for alice"))
        .await; // 6
    log.append_and_publish(Event::RoomFavoriteChanged {
        room_id: room(1),
        user_id: user("bob"),
        on: true,
    })
    .await; // 7
    log.append_and_publish(Event::OnlineVisibilityChanged {
        user_id: user("alice"),
        visible: false,
    })
    .await; // 8
    log.append_and_publish(Event::OnlineVisibilityChanged {
        user_id: user("bob"),
        visible: false,
    })
    .await; // 9

    let events = stream
        .collect(SHOULD_COME.min(Duration::from_secs(1)))
        .await;
    assert_eq!(positions(&events), [3, 5, 6, 8]);
    let first = &events[0];
    assert_eq!(first.event.as_deref(), Some("message_sent"));
    let data: Value = serde_json::from_str(&first.data).unwrap();
    assert_eq!(data["position"], 3);
    assert_eq!(data["type"], "message_sent");
    assert_eq!(data["data"]["body"], "hello");
    assert_eq!(data["data"]["room_id"], room(1).to_string());
    assert_eq!(events[1].event.as_deref(), Some("member_added"));
    assert_eq!(
        events[3].event.as_deref(),
        Some("online_visibility_changed")
    );
    gateway.stop().await;
}

#[tokio::test]
async fn last_event_id_resumes_without_gaps_or_duplicates() {
    let gateway = TestGateway::start().await;
    let log = FakeLog::start(&gateway.bus).await;
    let rooms = fake_rooms(&gateway, &log).await;
    for index in 1..=5 {
        log.append(message_sent(room(1), "bob", &format!("m{index}")));
    }

    let mut stream = open(&gateway, Some(2)).await;
    assert_eq!(
        rooms.last()["min_position"],
        2,
        "the room set is at least as new as the resume point"
    );
    let mut seen = Vec::new();
    for _ in 0..3 {
        seen.push(stream.next(SHOULD_COME).await.expect("a replayed event"));
    }
    assert_eq!(positions(&seen), [3, 4, 5], "replayed from the log");

    let six = log.append(message_sent(room(1), "bob", "m6"));
    log.publish(&six, Format::Json).await;
    // 7 is committed but its publication is lost; 8 reveals the gap, which the log fills.
    log.append(message_sent(room(1), "bob", "m7"));
    let eight = log.append(message_sent(room(1), "bob", "m8"));
    log.publish(&eight, Format::Bincode).await;
    // Duplicates (a re-published event) are dropped.
    log.publish(&six, Format::Bincode).await;
    log.publish(&eight, Format::Json).await;
    seen.extend(stream.collect(QUIET).await);
    assert_eq!(positions(&seen), [3, 4, 5, 6, 7, 8]);
    drop(stream);

    // Disconnected while 9 and 10 happen.
    log.append_and_publish(message_sent(room(1), "bob", "m9"))
        .await;
    log.append_and_publish(message_sent(room(1), "bob", "m10"))
        .await;
    let mut stream = open(&gateway, Some(8)).await;
    let mut resumed = Vec::new();
    for _ in 0..2 {
        resumed.push(stream.next(SHOULD_COME).await.expect("a missed event"));
    }
    log.append_and_publish(message_sent(room(1), "bob", "m11"))
        .await;
    resumed.extend(stream.collect(QUIET).await);
    assert_eq!(positions(&resumed), [9, 10, 11]);
    let bodies: Vec<String> = resumed
        .iter()
        .map(|event| {
            serde_json::from_str::<Value>(&event.data).unwrap()["data"]["body"]
                .as_str()
                .unwrap()
                .to_owned()
        })
        .collect();
    assert_eq!(bodies, ["m9", "m10", "m11"]);
    gateway.stop().await;
}

#[tokio::test]
async fn streams_that_cannot_start_say_why() {
    let gateway = TestGateway::start().await;
    let authorization = format!("Bearer {}", token("alice"));
    // No rooms projector: 503.
    let stream = SseStream::open(
        gateway.addr,
        "/v1/events",
        &[("Authorization", &authorization)],
    )
    .await;
    assert_eq!(stream.status, 503);
    // A bad Last-Event-ID: 400.
    let stream = SseStream::open(
        gateway.addr,
        "/v1/events",
        &[
            ("Authorization", &authorization),
            ("Last-Event-ID", "yesterday"),
        ],
    )
    .await;
    assert_eq!(stream.status, 400);
    // A rooms projector behind the resume point: 503 projection_lagging.
    responder(&gateway.bus, "parlor.query.rooms", |_, _| {
        Some(refused("projection_lagging"))
    })
    .await;
    let stream = SseStream::open(
        gateway.addr,
        "/v1/events",
        &[("Authorization", &authorization), ("Last-Event-ID", "99")],
    )
    .await;
    assert_eq!(stream.status, 503);
    let body: Value = serde_json::from_slice(&stream.body).unwrap();
    assert_eq!(body["error"]["code"], "projection_lagging");
    // No token: 401.
    let stream = SseStream::open(gateway.addr, "/v1/events", &[]).await;
    assert_eq!(stream.status, 401);
    gateway.stop().await;
}

#[tokio::test]
async fn a_client_that_stops_reading_is_disconnected() {
    let gateway = TestGateway::start_with(bus::Bus::in_process(), |config| {
        config.sse_send_wait_max = Duration::from_millis(200);
    })
    .await;
    let log = FakeLog::start(&gateway.bus).await;
    fake_rooms(&gateway, &log).await;
    let authorization = format!("Bearer {}", token("alice"));
    let mut stream = SseStream::open_with_tiny_buffer(
        gateway.addr,
        "/v1/events",
        &[("Authorization", &authorization)],
    )
    .await;
    assert_eq!(stream.status, 200);
    // About 16 MB of events: more than the socket buffers, the connection's write buffer and
    // the stream's bounded queue together can hold while the client reads nothing.
    let body = "x".repeat(5_000);
    let published = 3_000;
    for _ in 0..published {
        log.append_and_publish(message_sent(room(1), "bob", &body))
            .await;
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    // Now read: what was buffered arrives, then the stream ends, well short of everything.
    let received = stream.collect(Duration::from_secs(2)).await;
    assert!(
        received.len() < published,
        "a stalled client was buffered without bound ({} events)",
        received.len()
    );
    let positions = positions(&received);
    assert!(
        positions.windows(2).all(|pair| pair[1] == pair[0] + 1),
        "no gaps in what came"
    );
    let metrics = crate::http::send(
        gateway.ops(),
        "GET",
        "/metrics",
        &[],
        crate::http::Body::None,
    )
    .await;
    let text = String::from_utf8(metrics.body).unwrap();
    assert!(
        text.contains(r#"parlor_gateway_sse_ended_total{reason="slow_client"}"#),
        "{text}"
    );
    gateway.stop().await;
}

#[tokio::test]
async fn shutdown_ends_open_streams() {
    let gateway = TestGateway::start().await;
    let log = FakeLog::start(&gateway.bus).await;
    fake_rooms(&gateway, &log).await;
    let mut stream = open(&gateway, None).await;
    // Stopping returns although the stream never ends by itself.
    tokio::time::timeout(Duration::from_secs(5), gateway.stop())
        .await
        .expect("the gateway stops promptly with a stream open");
    assert!(stream.next(Duration::from_secs(2)).await.is_none());
}
