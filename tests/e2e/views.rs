//! One view on every path (security.md H-V1, H-V2) and the event stream's limits (H-L4), over
//! `parlor up` on a real nats-server: after sends, edits and deletions, every path a user reads
//! through shows the latest body, a tombstone for a deleted message and nothing of a room the
//! user is no longer in; the event stream carries Rooms and Messages in the shapes of the HTTP
//! reads, never log records.

use std::time::Duration;

use serde_json::{json, Value};

use crate::harness::http_client::{Body, SseEvent, SseStream};
use crate::harness::{start_up_http, Client, HttpSystem};

/// How long to wait for an SSE event or a notification that should come.
const EVENT_WAIT: Duration = Duration::from_secs(10);
/// How long to wait to be sure nothing more comes.
const QUIET: Duration = Duration::from_millis(1_500);

fn position(reply: &Value) -> u64 {
    reply["position"]
        .as_u64()
        .unwrap_or_else(|| panic!("no position in {reply}"))
}

fn result(reply: &Value, field: &str) -> String {
    reply["result"][field]
        .as_str()
        .unwrap_or_else(|| panic!("no result.{field} in {reply}"))
        .to_owned()
}

/// `GET path` at least at `min_position`, answered with `status`; the body as JSON.
async fn read_status(
    sys: &HttpSystem,
    path: &str,
    token: &str,
    min_position: u64,
    status: u16,
) -> Value {
    let separator = if path.contains('?') { '&' } else { '?' };
    let path = format!("{path}{separator}min_position={min_position}");
    let response = sys.get(&path, Some(token)).await;
    assert_eq!(response.status, status, "GET {path} → {}", response.text());
    response.json()
}

async fn read(sys: &HttpSystem, path: &str, token: &str, min_position: u64) -> Value {
    read_status(sys, path, token, min_position, 200).await
}

/// Opens `GET /v1/events` as `token`'s user, resuming after `last_event_id` when given.
async fn open_events(sys: &HttpSystem, token: &str, last_event_id: Option<u64>) -> SseStream {
    let authorization = format!("Bearer {token}");
    let last = last_event_id.map(|id| id.to_string());
    let mut headers = vec![("Authorization", authorization.as_str())];
    if let Some(last) = &last {
        headers.push(("Last-Event-ID", last.as_str()));
    }
    SseStream::open(sys.addr, "/v1/events", &headers).await
}

/// Reads events until one whose id is at or past `position`, then whatever follows at once.
async fn events_up_to(stream: &mut SseStream, position: u64) -> Vec<SseEvent> {
    let mut events = Vec::new();
    loop {
        let event = stream
            .next(EVENT_WAIT)
            .await
            .unwrap_or_else(|| panic!("nothing up to position {position}; got {events:?}"));
        let done = event.id.is_some() && event.position() >= position;
        events.push(event);
        if done {
            break;
        }
    }
    events.extend(stream.collect(QUIET).await);
    events
}

/// The data of the events named `name`.
fn named(events: &[SseEvent], name: &str) -> Vec<Value> {
    events
        .iter()
        .filter(|event| event.event.as_deref() == Some(name))
        .map(SseEvent::json)
        .collect()
}

/// The last event about message `message_id`, whatever its name.
fn last_about(events: &[SseEvent], message_id: &str) -> Option<(String, Value)> {
    events
        .iter()
        .filter(|event| event.json()["message_id"] == message_id)
        .map(|event| (event.event.clone().unwrap_or_default(), event.json()))
        .next_back()
}

/// Ids only increase; no event carries a log record's fields; the names are the documented.
fn assert_view_events(events: &[SseEvent], what: &str) {
    let ids: Vec<u64> = events
        .iter()
        .filter(|event| event.id.is_some())
        .map(SseEvent::position)
        .collect();
    assert!(
        ids.windows(2).all(|pair| pair[0] < pair[1]),
        "{what}: ids increase: {ids:?}"
    );
    for event in events {
        let name = event.event.as_deref().unwrap_or_default();
        assert!(
            ["room", "message", "message_deleted", "room_removed"].contains(&name),
            "{what}: an undocumented event {event:?}"
        );
        for field in [
            "\"hash\"",
            "\"command_id\"",
            "\"event_id\"",
            "\"actor\"",
            "\"stream\"",
            "\"recorded_at\"",
        ] {
            assert!(!event.data.contains(field), "{what}: {field} in {event:?}");
        }
    }
}

/// `body` must appear in no event.
fn assert_absent(events: &[SseEvent], texts: &[&str], what: &str) {
    for event in events {
        for text in texts {
            assert!(!event.data.contains(text), "{what}: {text:?} in {event:?}");
        }
    }
}

/// A small PNG.
fn png() -> Vec<u8> {
    let image = image::RgbImage::from_fn(8, 8, |x, y| image::Rgb([x as u8, y as u8, 90]));
    let mut bytes = std::io::Cursor::new(Vec::new());
    image::DynamicImage::ImageRgb8(image)
        .write_to(&mut bytes, image::ImageFormat::Png)
        .expect("encode a PNG");
    bytes.into_inner()
}

/// The next notification on `inbox`, or `None` within `wait`.
async fn notification(inbox: &mut bus::Subscription, wait: Duration) -> Option<Value> {
    let message = tokio::time::timeout(wait, inbox.next()).await.ok()??;
    Some(serde_json::from_slice(&message.payload).expect("a JSON notification"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn h_v1_every_path_shows_the_latest_body_a_tombstone_and_nothing_of_rooms_left() {
    let sys = start_up_http(&[]).await;
    let client = Client::connect(&sys._nats.url()).await;
    let service = sys.service_token("identity");
    let (alice, bob, carol) = (sys.token("alice"), sys.token("bob"), sys.token("carol"));
    sys.register(
        &service,
        &[
            ("alice", "Alice Adams"),
            ("bob", "Bob Brown"),
            ("carol", "Carol Cruz"),
        ],
    )
    .await;
    for token in [&bob, &carol] {
        sys.ok(
            token,
            "user.set_notifications",
            json!({"frequency": "hourly"}),
        )
        .await;
    }
    let mut bob_inbox = client.bus.subscribe("parlor.notify.bob").await.unwrap();
    let mut carol_inbox = client.bus.subscribe("parlor.notify.carol").await.unwrap();
    let created = sys
        .ok(
            &alice,
            "room.create",
            json!({"name": "Plans", "members": ["bob", "carol"]}),
        )
        .await;
    let room = result(&created, "room_id");
    let before = position(&created);
    // bob follows live from before the first message.
    read(&sys, "/v1/rooms", &bob, before).await;
    let mut live = open_events(&sys, &bob, None).await;
    assert_eq!(live.status, 200);

    let upload = sys
        .post(
            "/v1/files",
            Some(&alice),
            &[("X-File-Name", "plan.png"), ("Content-Type", "image/png")],
            Body::Bytes(&png()),
        )
        .await;
    assert_eq!(upload.status, 201, "upload: {}", upload.text());
    let file_id = upload.json()["file_id"].as_str().unwrap().to_owned();
    let first = sys
        .ok(
            &alice,
            "message.send",
            json!({"room_id": room, "body": "original plan"}),
        )
        .await;
    let first_id = result(&first, "message_id");
    let second = sys
        .ok(
            &alice,
            "message.send",
            json!({"room_id": room, "body": "secret 42",
                   "attachments": [{"file_id": file_id}]}),
        )
        .await;
    let second_id = result(&second, "message_id");
    let reply_first = sys
        .ok(
            &alice,
            "message.send",
            json!({"room_id": room, "body": "about the first", "reply_to": first_id}),
        )
        .await;
    let reply_second = sys
        .ok(
            &alice,
            "message.send",
            json!({"room_id": room, "body": "about the second", "reply_to": second_id}),
        )
        .await;
    sys.ok(
        &alice,
        "message.edit",
        json!({"room_id": room, "message_id": first_id, "body": "final plan"}),
    )
    .await;
    sys.ok(
        &alice,
        "message.delete",
        json!({"room_id": room, "message_id": second_id}),
    )
    .await;
    let left = sys.ok(&carol, "room.leave", json!({"room_id": room})).await;
    let head = position(&left);
    let gone = ["original plan", "secret 42"];

    // The timeline: the latest body, a tombstone without its file, reply quotes alike.
    let timeline = read(&sys, &format!("/v1/rooms/{room}/messages"), &bob, head).await;
    let messages = timeline["messages"].as_array().unwrap();
    let message = |id: &str| {
        messages
            .iter()
            .find(|message| message["message_id"] == id)
            .unwrap_or_else(|| panic!("{id} in {timeline}"))
            .clone()
    };
    assert_eq!(message(&first_id)["body"], "final plan");
    let tombstone = message(&second_id);
    assert_eq!(tombstone["deleted"], true);
    assert_eq!(tombstone["body"], Value::Null);
    assert_eq!(tombstone["attachments"], json!([]));
    let quote = message(&result(&reply_first, "message_id"))["reply_to"].clone();
    assert_eq!(quote["preview"], "final plan", "{quote}");
    let quote = message(&result(&reply_second, "message_id"))["reply_to"].clone();
    assert_eq!(quote["deleted"], true, "{quote}");
    assert_eq!(quote["preview"], Value::Null, "{quote}");
    let text = timeline.to_string();
    for body in gone {
        assert!(!text.contains(body), "{body:?} in the timeline: {text}");
    }
    assert!(
        !text.contains(&file_id),
        "the deleted message's file: {text}"
    );

    // The room list and the room.
    for path in ["/v1/rooms".to_owned(), format!("/v1/rooms/{room}")] {
        let text = read(&sys, &path, &bob, head).await.to_string();
        for body in gone {
            assert!(!text.contains(body), "{body:?} in {path}: {text}");
        }
    }

    // Search: the latest body only.
    for (q, found) in [("final", true), ("original", false), ("secret", false)] {
        let answer = read(&sys, &format!("/v1/search?q={q}"), &bob, head).await;
        let hits = answer["messages"].as_array().unwrap();
        assert_eq!(
            hits.iter().any(|hit| hit["message_id"] == first_id),
            found,
            "search {q}: {answer}"
        );
        assert!(
            hits.iter().all(|hit| hit["message_id"] != second_id),
            "search {q} finds the deleted message: {answer}"
        );
    }

    // The files panel, the download and the preview: the deleted message's file is gone.
    let files = read(&sys, &format!("/v1/rooms/{room}/files"), &bob, head).await;
    assert_eq!(files["items"], json!([]), "{files}");
    for path in [
        format!("/v1/files/{file_id}"),
        format!("/v1/files/{file_id}/preview"),
    ] {
        let response = sys.get(&path, Some(&bob)).await;
        assert_eq!(response.status, 404, "GET {path}: {}", response.text());
    }

    // Live, each message's last event is its current view.
    let seen = events_up_to(&mut live, head).await;
    assert_view_events(&seen, "live");
    let (name, data) = last_about(&seen, &first_id).expect("the first message streamed");
    assert_eq!(
        (name.as_str(), &data["body"]),
        ("message", &json!("final plan"))
    );
    let (name, data) = last_about(&seen, &second_id).expect("the second message streamed");
    assert_eq!(name, "message_deleted");
    assert_eq!(data["body"], Value::Null);
    assert_eq!(data["attachments"], json!([]));

    // Resumed from before the first message: only what bob may see now.
    let mut resumed = open_events(&sys, &bob, Some(before)).await;
    assert_eq!(resumed.status, 200);
    let replayed = events_up_to(&mut resumed, head).await;
    assert_view_events(&replayed, "resumed");
    assert_absent(&replayed, &gone, "resumed");
    assert_absent(&replayed, &[&file_id], "resumed");
    assert_eq!(
        named(&replayed, "message_deleted")
            .iter()
            .map(|message| message["message_id"].clone())
            .collect::<Vec<_>>(),
        [json!(second_id)]
    );

    // carol left: no read, no event, no notification of the room.
    read_status(&sys, &format!("/v1/rooms/{room}"), &carol, head, 404).await;
    read_status(
        &sys,
        &format!("/v1/rooms/{room}/messages"),
        &carol,
        head,
        404,
    )
    .await;
    let found = read(&sys, "/v1/search?q=final", &carol, head).await;
    assert_eq!(
        found["messages"],
        json!([]),
        "carol searches a room she left: {found}"
    );
    let found = read(&sys, "/v1/search?q=plans", &carol, head).await;
    assert_eq!(
        found["rooms"],
        json!([]),
        "carol searches a room she left: {found}"
    );
    let mut carols = open_events(&sys, &carol, Some(before)).await;
    assert_eq!(carols.status, 200);
    let carol_saw = events_up_to(&mut carols, position(&left)).await;
    assert_view_events(&carol_saw, "carol");
    assert_eq!(
        carol_saw
            .iter()
            .map(|event| event.event.clone().unwrap_or_default())
            .collect::<Vec<_>>(),
        ["room_removed"],
        "{carol_saw:?}"
    );
    assert_absent(&carol_saw, &gone, "carol");
    assert_absent(&carol_saw, &["final plan", "about the"], "carol");

    // Notifications, due an hour later: bob's show the latest body, never the deleted one;
    // carol, who left, gets nothing of the room.
    client.advance_clock(61 * 60_000).await;
    let sent = notification(&mut bob_inbox, EVENT_WAIT)
        .await
        .expect("bob's notification");
    let text = sent.to_string();
    for body in gone {
        assert!(
            !text.contains(body),
            "{body:?} in bob's notification: {text}"
        );
    }
    let items = sent["items"].as_array().unwrap();
    let item = items
        .iter()
        .find(|item| item["message_id"] == first_id)
        .unwrap_or_else(|| panic!("the first message in {text}"));
    assert_eq!(item["preview"], "final plan");
    assert!(items.iter().all(|item| item["message_id"] != second_id));
    assert!(
        notification(&mut carol_inbox, QUIET).await.is_none(),
        "carol is notified of a room she left"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn h_v2_events_are_rooms_and_messages_in_the_shapes_of_the_reads() {
    let sys = start_up_http(&[]).await;
    let service = sys.service_token("identity");
    let (alice, bob) = (sys.token("alice"), sys.token("bob"));
    sys.register(&service, &[("alice", "Alice Adams"), ("bob", "Bob Brown")])
        .await;
    let first = sys
        .ok(
            &alice,
            "message.send",
            json!({"to": "bob", "body": "hello"}),
        )
        .await;
    let room = result(&first, "room_id");
    let before = position(&first);
    let second = sys
        .ok(
            &alice,
            "message.send",
            json!({"room_id": room, "body": "a first draft"}),
        )
        .await;
    let second_id = result(&second, "message_id");
    let third = sys
        .ok(
            &alice,
            "message.send",
            json!({"room_id": room, "body": "not meant for bob"}),
        )
        .await;
    let third_id = result(&third, "message_id");
    sys.ok(
        &alice,
        "message.edit",
        json!({"room_id": room, "message_id": second_id, "body": "the final text"}),
    )
    .await;
    let deleted = sys
        .ok(
            &alice,
            "message.delete",
            json!({"room_id": room, "message_id": third_id}),
        )
        .await;
    let head = position(&deleted);

    // Resumed after the first message: the edit and the delete show as the current view.
    let mut stream = open_events(&sys, &bob, Some(before)).await;
    assert_eq!(
        stream.status,
        200,
        "{}",
        String::from_utf8_lossy(&stream.body)
    );
    assert_eq!(stream.header("content-type"), Some("text/event-stream"));
    let events = events_up_to(&mut stream, head).await;
    assert_view_events(&events, "resumed");
    assert_absent(&events, &["a first draft", "not meant for bob"], "resumed");
    assert!(
        events
            .iter()
            .all(|event| event.id.is_none() || event.position() > before),
        "nothing at or before Last-Event-ID: {events:?}"
    );
    assert_eq!(
        events.last().and_then(|event| event.id.clone()),
        Some(head.to_string())
    );

    // Each Message and the Room are exactly what the HTTP reads answer.
    let timeline = read(&sys, &format!("/v1/rooms/{room}/messages"), &bob, head).await;
    let read_message = |id: &str| {
        timeline["messages"]
            .as_array()
            .unwrap()
            .iter()
            .find(|message| message["message_id"] == id)
            .cloned()
            .unwrap()
    };
    let (name, data) = last_about(&events, &second_id).expect("the edited message");
    assert_eq!(name, "message");
    assert_eq!(data, read_message(&second_id));
    let (name, data) = last_about(&events, &third_id).expect("the deleted message");
    assert_eq!(name, "message_deleted");
    assert_eq!(data, read_message(&third_id));
    let rooms = named(&events, "room");
    let room_read = read(&sys, &format!("/v1/rooms/{room}"), &bob, head).await;
    assert_eq!(rooms.last(), Some(&room_read));

    // Live: a new message comes as a Message and its Room, the Room's id last.
    let fourth = sys
        .ok(
            &bob,
            "message.send",
            json!({"room_id": room, "body": "thanks"}),
        )
        .await;
    let live = events_up_to(&mut stream, position(&fourth)).await;
    assert_view_events(&live, "live");
    let names: Vec<&str> = live
        .iter()
        .map(|event| event.event.as_deref().unwrap_or_default())
        .collect();
    assert_eq!(names, ["message", "room"], "{live:?}");
    assert_eq!(live[0].id, None, "the Message shares the Room's position");
    assert_eq!(live[1].position(), position(&fourth));
    assert_eq!(live[0].json()["body"], "thanks");
    assert_eq!(live[1].json()["last_message"]["preview"], "thanks");

    // Last-Event-ID: not a number, or beyond the head, is 400 invalid_command.
    let beyond = (position(&fourth) + 1_000).to_string();
    for bad in ["yesterday", "-3", beyond.as_str()] {
        let authorization = format!("Bearer {bob}");
        let refused = SseStream::open(
            sys.addr,
            "/v1/events",
            &[
                ("Authorization", authorization.as_str()),
                ("Last-Event-ID", bad),
            ],
        )
        .await;
        assert_eq!(refused.status, 400, "Last-Event-ID {bad}");
        let body: Value = serde_json::from_slice(&refused.body).expect("a JSON error");
        assert_eq!(body["error"]["code"], "invalid_command", "{body}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn h_l4_a_user_has_at_most_8_event_streams() {
    let sys = start_up_http(&[]).await;
    let service = sys.service_token("identity");
    let (alice, bob) = (sys.token("alice"), sys.token("bob"));
    sys.register(&service, &[("alice", "Alice Adams"), ("bob", "Bob Brown")])
        .await;
    let mut open = Vec::new();
    for _ in 0..8 {
        let stream = open_events(&sys, &alice, None).await;
        assert_eq!(
            stream.status,
            200,
            "{}",
            String::from_utf8_lossy(&stream.body)
        );
        open.push(stream);
    }
    let ninth = open_events(&sys, &alice, None).await;
    assert_eq!(ninth.status, 429);
    let body: Value = serde_json::from_slice(&ninth.body).expect("a JSON error");
    assert_eq!(body["error"]["code"], "rate_limited");
    assert!(ninth.header("retry-after").is_some(), "{:?}", ninth.headers);
    let other = open_events(&sys, &bob, None).await;
    assert_eq!(other.status, 200, "bob is not limited by alice's streams");
}
