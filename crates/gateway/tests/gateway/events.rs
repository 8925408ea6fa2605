//! `GET /v1/events`: the caller's changes as the read models show them now (H-V2), live and
//! resumed from `Last-Event-ID` without gaps or duplicates, and the stream limits (H-L4).
//!
//! The read models here are fakes that answer from everything in the fake log (the current
//! view): alice is in room 1 and in the rooms she was added to and has not left; a message
//! shows its latest body, or none once deleted. The real shapes are checked end to end in
//! tests/e2e (http.rs).

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use domain::{Event, MessageId, RoomId, Timestamp};
use protocol::{Format, RecordedEvent};
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

/// What `caller` may see now, from everything in `log`.
struct View {
    rooms: HashSet<RoomId>,
    /// Message id → (room, latest body or `None` once deleted).
    messages: HashMap<String, (RoomId, Option<String>)>,
}

/// What `caller` may see now, from everything in `log`, with the messages in `wanted` only.
fn view(log: &FakeLog, caller: &str, wanted: &HashSet<String>) -> View {
    log.read_all(|events| view_of(events, caller, wanted))
}

fn view_of(events: &[RecordedEvent], caller: &str, wanted: &HashSet<String>) -> View {
    let mut rooms = HashSet::new();
    if caller == "alice" {
        rooms.insert(room(1));
    }
    let mut messages = HashMap::new();
    for recorded in events {
        match &recorded.event {
            Event::MemberAdded {
                room_id, user_id, ..
            } if user_id.as_str() == caller => {
                rooms.insert(*room_id);
            }
            Event::MemberLeft {
                room_id, user_id, ..
            } if user_id.as_str() == caller => {
                rooms.remove(room_id);
            }
            Event::MessageSent {
                room_id,
                message_id,
                body,
                ..
            } => {
                let id = message_id.to_string();
                if wanted.contains(&id) {
                    messages.insert(id, (*room_id, Some(body.clone())));
                }
            }
            Event::MessageEdited {
                message_id, body, ..
            } => {
                if let Some((_, Some(latest))) = messages.get_mut(&message_id.to_string()) {
                    latest.clone_from(body);
                }
            }
            Event::MessageDeleted { message_id, .. } => {
                if let Some((_, latest)) = messages.get_mut(&message_id.to_string()) {
                    *latest = None;
                }
            }
            _ => {}
        }
    }
    View { rooms, messages }
}

/// Fake rooms and timeline models answering from the log's current view; returns what the
/// timeline was asked.
async fn fake_read_models(gateway: &TestGateway, log: &FakeLog) -> Recorded {
    let rooms_log = log.clone();
    responder(&gateway.bus, "parlor.query.rooms", move |_, request| {
        let head = rooms_log.head();
        // H-L1: a position beyond the head is refused at once.
        if request["min_position"].as_u64().is_some_and(|at| at > head) {
            return Some(refused("invalid_command"));
        }
        let view = view(
            &rooms_log,
            request["caller"].as_str().unwrap_or_default(),
            &HashSet::new(),
        );
        Some(match request["op"].as_str() {
            Some("member_rooms") => {
                let ids: Vec<String> = view.rooms.iter().map(ToString::to_string).collect();
                answer(head, json!({ "room_ids": ids }))
            }
            Some("get") => {
                let room_id = request["room_id"].as_str().unwrap_or_default();
                match RoomId::parse(room_id) {
                    Ok(id) if view.rooms.contains(&id) => {
                        answer(head, json!({"room_id": room_id, "name": "a room"}))
                    }
                    _ => refused("not_found"),
                }
            }
            _ => refused("invalid_command"),
        })
    })
    .await;
    let timeline_log = log.clone();
    responder(&gateway.bus, "parlor.query.timeline", move |_, request| {
        let wanted: HashSet<String> = request["message_ids"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|id| id.as_str().map(ToOwned::to_owned))
            .collect();
        let view = view(
            &timeline_log,
            request["caller"].as_str().unwrap_or_default(),
            &wanted,
        );
        let room_id = request["room_id"].as_str().unwrap_or_default();
        let Ok(asked_room) = RoomId::parse(room_id) else {
            return Some(refused("invalid_command"));
        };
        if request["op"] != "by_id" {
            return Some(refused("invalid_command"));
        }
        if !view.rooms.contains(&asked_room) {
            return Some(refused("not_found"));
        }
        let messages: Vec<Value> = request["message_ids"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|id| {
                let id = id.as_str()?;
                let (in_room, body) = view.messages.get(id)?;
                (*in_room == asked_room).then(|| {
                    json!({"message_id": id, "room_id": room_id, "body": body,
                           "deleted": body.is_none()})
                })
            })
            .collect();
        Some(answer(timeline_log.head(), json!({ "messages": messages })))
    })
    .await
}

async fn open(gateway: &TestGateway, caller: &str, last_event_id: Option<&str>) -> SseStream {
    let authorization = format!("Bearer {}", token(caller));
    let mut headers = vec![("Authorization", authorization.as_str())];
    if let Some(last) = last_event_id {
        headers.push(("Last-Event-ID", last));
    }
    SseStream::open(gateway.addr, "/v1/events", &headers).await
}

async fn open_ok(gateway: &TestGateway, last_event_id: Option<&str>) -> SseStream {
    let stream = open(gateway, "alice", last_event_id).await;
    assert_eq!(
        stream.status,
        200,
        "{}",
        String::from_utf8_lossy(&stream.body)
    );
    stream
}

/// Reads events until one with an id at or past `position`; returns all read.
async fn until(stream: &mut SseStream, position: u64) -> Vec<SseEvent> {
    let mut events = Vec::new();
    loop {
        let event = stream
            .next(SHOULD_COME)
            .await
            .unwrap_or_else(|| panic!("nothing up to {position}; got {events:?}"));
        let done = event.id.is_some() && event.position() >= position;
        events.push(event);
        if done {
            return events;
        }
    }
}

/// The ids that came, in order: they only increase.
fn ids(events: &[SseEvent]) -> Vec<u64> {
    let ids: Vec<u64> = events
        .iter()
        .filter(|event| event.id.is_some())
        .map(SseEvent::position)
        .collect();
    assert!(
        ids.windows(2).all(|pair| pair[0] < pair[1]),
        "ids increase: {ids:?}"
    );
    ids
}

/// `(event name, data)` of the events named `name`.
fn named(events: &[SseEvent], name: &str) -> Vec<Value> {
    events
        .iter()
        .filter(|event| event.event.as_deref() == Some(name))
        .map(|event| serde_json::from_str(&event.data).expect("JSON data"))
        .collect()
}

fn message_id_of(event: &Event) -> MessageId {
    match event {
        Event::MessageSent { message_id, .. } => *message_id,
        _ => unreachable!("a sent message"),
    }
}

/// No SSE event carries a log record's fields.
fn assert_no_log_fields(events: &[SseEvent]) {
    for event in events {
        for field in ["\"hash\"", "\"command_id\"", "\"event_id\"", "\"actor\""] {
            assert!(!event.data.contains(field), "{field} in {event:?}");
        }
    }
}

#[tokio::test]
async fn h_v2_live_changes_are_the_callers_current_view_of_rooms_and_messages() {
    let gateway = TestGateway::start().await;
    let log = FakeLog::start(&gateway.bus).await;
    fake_read_models(&gateway, &log).await;
    log.append(message_sent(room(1), "bob", "before"));
    log.append(message_sent(room(2), "bob", "elsewhere"));

    let mut stream = open_ok(&gateway, None).await;
    assert_eq!(
        stream
            .headers
            .iter()
            .find(|(name, _)| name == "content-type")
            .map(|(_, value)| value.as_str()),
        Some("text/event-stream")
    );
    assert!(
        stream.next(QUIET).await.is_none(),
        "nothing from before the stream"
    );

    let hello = message_sent(room(1), "bob", "hello");
    let hello_id = message_id_of(&hello);
    log.append_and_publish(hello).await; // 3
    log.append_and_publish(message_sent(room(2), "bob", "not for alice"))
        .await; // 4
    log.append_and_publish(member_added(room(2), "alice")).await; // 5
    log.append_and_publish(message_sent(room(2), "bob", "now for alice"))
        .await; // 6
    for event in [
        Event::RoomFavoriteChanged {
            room_id: room(1),
            user_id: user("bob"),
            on: true,
        },
        Event::OnlineVisibilityChanged {
            user_id: user("alice"),
            visible: false,
        },
    ] {
        log.append_and_publish(event).await; // 7, 8
    }
    let events = until(&mut stream, 6).await;
    let mut events_all = events.clone();
    events_all.extend(stream.collect(QUIET).await);
    assert_eq!(ids(&events_all).last(), Some(&6), "nothing for 7 and 8");
    let bodies: Vec<Value> = named(&events_all, "message")
        .iter()
        .map(|message| message["body"].clone())
        .collect();
    assert_eq!(bodies, [json!("hello"), json!("now for alice")]);
    assert_eq!(
        named(&events_all, "message")[0]["message_id"],
        hello_id.to_string()
    );
    let rooms: HashSet<String> = named(&events_all, "room")
        .iter()
        .map(|room| room["room_id"].as_str().unwrap_or_default().to_owned())
        .collect();
    assert_eq!(
        rooms,
        HashSet::from([room(1).to_string(), room(2).to_string()])
    );
    assert_no_log_fields(&events_all);
    gateway.stop().await;
}

#[tokio::test]
async fn h_v2_resuming_after_an_edit_and_a_delete_shows_only_the_current_view() {
    let gateway = TestGateway::start().await;
    let log = FakeLog::start(&gateway.bus).await;
    fake_read_models(&gateway, &log).await;
    let first = message_sent(room(1), "bob", "first draft");
    let first_id = message_id_of(&first);
    let second = message_sent(room(1), "bob", "a secret");
    let second_id = message_id_of(&second);
    log.append(first); // 1
    log.append(second); // 2
    log.append(Event::MessageEdited {
        room_id: room(1),
        message_id: first_id,
        body: "first, final".into(),
        edited_at: Timestamp::from_millis(1_700_000_000_001),
    }); // 3
    log.append(Event::MessageDeleted {
        room_id: room(1),
        message_id: second_id,
        deleted_at: Timestamp::from_millis(1_700_000_000_002),
    }); // 4

    for resume_from in ["0", "2"] {
        let mut stream = open_ok(&gateway, Some(resume_from)).await;
        let mut events = until(&mut stream, 4).await;
        events.extend(stream.collect(QUIET).await);
        assert_eq!(ids(&events).last(), Some(&4));
        for event in &events {
            assert!(
                !event.data.contains("first draft") && !event.data.contains("a secret"),
                "an earlier or deleted body from {resume_from}: {event:?}"
            );
        }
        let messages = named(&events, "message");
        assert_eq!(messages.len(), 1, "{events:?}");
        assert_eq!(messages[0]["message_id"], first_id.to_string());
        assert_eq!(messages[0]["body"], "first, final");
        let deleted = named(&events, "message_deleted");
        assert_eq!(deleted.len(), 1, "{events:?}");
        assert_eq!(deleted[0]["message_id"], second_id.to_string());
        assert_eq!(deleted[0]["body"], Value::Null);
        assert_eq!(deleted[0]["deleted"], true);
        assert_no_log_fields(&events);
    }
    gateway.stop().await;
}

#[tokio::test]
async fn h_v2_a_room_left_since_shows_nothing_but_its_removal() {
    let gateway = TestGateway::start().await;
    let log = FakeLog::start(&gateway.bus).await;
    fake_read_models(&gateway, &log).await;
    log.append(member_added(room(2), "alice")); // 1
    log.append(message_sent(room(2), "bob", "while alice was there")); // 2
    log.append(Event::MemberLeft {
        room_id: room(2),
        user_id: user("alice"),
        left_at: Timestamp::from_millis(1_700_000_000_000),
    }); // 3
    log.append(message_sent(room(2), "bob", "after alice left")); // 4
    log.append(message_sent(room(1), "bob", "in room 1")); // 5
    let mut stream = open_ok(&gateway, Some("0")).await;
    let mut events = until(&mut stream, 5).await;
    events.extend(stream.collect(QUIET).await);
    for event in &events {
        assert!(!event.data.contains("alice was there") && !event.data.contains("alice left"));
    }
    assert_eq!(
        named(&events, "room_removed"),
        [json!({"room_id": room(2)})]
    );
    let rooms: Vec<Value> = named(&events, "room")
        .iter()
        .map(|room| room["room_id"].clone())
        .collect();
    assert_eq!(rooms, [json!(room(1))]);
    gateway.stop().await;
}

#[tokio::test]
async fn last_event_id_resumes_without_gaps_or_duplicates() {
    let gateway = TestGateway::start().await;
    let log = FakeLog::start(&gateway.bus).await;
    let timeline = fake_read_models(&gateway, &log).await;
    for index in 1..=5 {
        log.append(message_sent(room(1), "bob", &format!("m{index}")));
    }

    let mut stream = open_ok(&gateway, Some("2")).await;
    let mut seen = until(&mut stream, 5).await;
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
    let bodies = |events: &[SseEvent]| -> Vec<String> {
        named(events, "message")
            .iter()
            .map(|message| message["body"].as_str().unwrap_or_default().to_owned())
            .collect()
    };
    assert_eq!(bodies(&seen), ["m3", "m4", "m5", "m6", "m7", "m8"]);
    assert_eq!(ids(&seen).last(), Some(&8));
    assert!(
        timeline
            .all()
            .iter()
            .all(|(_, request)| request["min_position"].as_u64() >= Some(3)),
        "each change is rendered at least at its position"
    );
    drop(stream);

    // Disconnected while 9 and 10 happen.
    log.append_and_publish(message_sent(room(1), "bob", "m9"))
        .await;
    log.append_and_publish(message_sent(room(1), "bob", "m10"))
        .await;
    let mut stream = open_ok(&gateway, Some("8")).await;
    let mut resumed = until(&mut stream, 10).await;
    log.append_and_publish(message_sent(room(1), "bob", "m11"))
        .await;
    resumed.extend(stream.collect(QUIET).await);
    assert_eq!(bodies(&resumed), ["m9", "m10", "m11"]);
    gateway.stop().await;
}

#[tokio::test]
async fn h_v2_a_bad_or_too_large_last_event_id_is_refused() {
    let gateway = TestGateway::start().await;
    let log = FakeLog::start(&gateway.bus).await;
    fake_read_models(&gateway, &log).await;
    log.append(message_sent(room(1), "bob", "one"));
    for bad in ["yesterday", "-1", "1.5", "99"] {
        let stream = open(&gateway, "alice", Some(bad)).await;
        assert_eq!(stream.status, 400, "Last-Event-ID {bad}");
        let body: Value = serde_json::from_slice(&stream.body).expect("a JSON error");
        assert_eq!(body["error"]["code"], "invalid_command", "{body}");
        assert!(
            body["error"]["message"]
                .as_str()
                .is_some_and(|message| message.contains("Last-Event-ID")),
            "{body}"
        );
    }
    let stream = open(&gateway, "alice", Some("1")).await;
    assert_eq!(stream.status, 200, "the head itself is a fine resume point");
    gateway.stop().await;
}

#[tokio::test]
async fn streams_that_cannot_start_say_why() {
    let gateway = TestGateway::start().await;
    let authorization = format!("Bearer {}", token("alice"));
    // No rooms projector: 503.
    let stream = open(&gateway, "alice", None).await;
    assert_eq!(stream.status, 503);
    // A rooms projector behind the resume point: 503 projection_lagging.
    responder(&gateway.bus, "parlor.query.rooms", |_, _| {
        Some(refused("projection_lagging"))
    })
    .await;
    let stream = open(&gateway, "alice", Some("99")).await;
    assert_eq!(stream.status, 503);
    let body: Value = serde_json::from_slice(&stream.body).unwrap();
    assert_eq!(body["error"]["code"], "projection_lagging");
    // No token: 401.
    let stream = SseStream::open(gateway.addr, "/v1/events", &[]).await;
    assert_eq!(stream.status, 401);
    drop(authorization);
    gateway.stop().await;
}

#[tokio::test]
async fn h_l4_a_user_has_at_most_8_streams_and_a_dead_client_frees_its_slot() {
    let gateway = TestGateway::start_with(bus::Bus::in_process(), |config| {
        config.sse_keep_alive_interval = Duration::from_millis(200);
    })
    .await;
    let log = FakeLog::start(&gateway.bus).await;
    fake_read_models(&gateway, &log).await;
    let mut streams = Vec::new();
    for _ in 0..gateway::SSE_STREAMS_PER_USER_MAX_DEFAULT {
        streams.push(open_ok(&gateway, None).await);
    }
    let ninth = open(&gateway, "alice", None).await;
    assert_eq!(ninth.status, 429);
    let body: Value = serde_json::from_slice(&ninth.body).expect("a JSON error");
    assert_eq!(body["error"]["code"], "rate_limited");
    assert!(
        ninth.headers.iter().any(|(name, _)| name == "retry-after"),
        "{:?}",
        ninth.headers
    );
    let bob = open(&gateway, "bob", None).await;
    assert_eq!(
        bob.status, 200,
        "another user is not limited by alice's streams"
    );

    // An idle stream gets comment lines.
    let mut idle = streams.pop().expect("a stream");
    assert!(idle.next(Duration::from_secs(1)).await.is_none());
    assert!(idle.comments > 0, "no keep-alive comment came");

    // A client that went away without a word is found by the keep-alive, and its slot freed.
    drop(idle);
    let mut reopened = None;
    for _ in 0..50 {
        let stream = open(&gateway, "alice", None).await;
        if stream.status == 200 {
            reopened = Some(stream);
            break;
        }
        assert_eq!(stream.status, 429);
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(reopened.is_some(), "the dead client's slot was never freed");
    gateway.stop().await;
}

#[tokio::test]
async fn h_l4_all_users_together_have_at_most_the_total() {
    let gateway = TestGateway::start_with(bus::Bus::in_process(), |config| {
        config.sse_clients_max = 2;
    })
    .await;
    let log = FakeLog::start(&gateway.bus).await;
    fake_read_models(&gateway, &log).await;
    let alice = open(&gateway, "alice", None).await;
    assert_eq!(alice.status, 200);
    let bob = open(&gateway, "bob", None).await;
    assert_eq!(bob.status, 200);
    let carol = open(&gateway, "carol", None).await;
    assert_eq!(carol.status, 503);
    let body: Value = serde_json::from_slice(&carol.body).expect("a JSON error");
    assert_eq!(body["error"]["code"], "unavailable");
    gateway.stop().await;
}

#[tokio::test]
async fn a_client_that_stops_reading_is_disconnected() {
    let gateway = TestGateway::start_with(bus::Bus::in_process(), |config| {
        config.sse_send_wait_max = Duration::from_millis(200);
    })
    .await;
    let log = FakeLog::start(&gateway.bus).await;
    fake_read_models(&gateway, &log).await;
    let authorization = format!("Bearer {}", token("alice"));
    let mut stream = SseStream::open_with_tiny_buffer(
        gateway.addr,
        "/v1/events",
        &[("Authorization", &authorization)],
    )
    .await;
    assert_eq!(stream.status, 200);
    // About 15 MB of messages: more than the socket buffers, the connection's write buffer and
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
    let messages = named(&received, "message").len();
    assert!(
        messages < published,
        "a stalled client was buffered without bound ({messages} messages)"
    );
    ids(&received);
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
    fake_read_models(&gateway, &log).await;
    let mut stream = open_ok(&gateway, None).await;
    // Stopping returns although the stream never ends by itself.
    tokio::time::timeout(Duration::from_secs(5), gateway.stop())
        .await
        .expect("the gateway stops promptly with a stream open");
    assert!(stream.next(Duration::from_secs(2)).await.is_none());
}
