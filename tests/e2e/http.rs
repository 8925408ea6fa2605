//! The HTTP API of `parlor up`, as a frontend uses it (protocol.md §3, docs/api.md): a
//! conversation from first message to tombstone, files and links, a table of every refusal,
//! hostile parameters and bodies on every endpoint, and the live event stream.
//!
//! Every read after a write passes the command reply's `position` as `min_position`
//! (read-your-writes), so no test sleeps for the read side. The search read model may not be
//! running yet: where `/v1/search` answers 503, that part is skipped with a message.

use std::io::Cursor;
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use uuid::Uuid;

use crate::harness::http_client::{self, Body, Response, SseEvent, SseStream};
use crate::harness::{start_up_http, HttpSystem};

/// How long to wait for an SSE event that should come.
const EVENT_WAIT: Duration = Duration::from_secs(10);
/// How long to wait to be sure no more SSE events come.
const QUIET: Duration = Duration::from_millis(700);

/// The `position` of a command reply.
fn position(reply: &Value) -> u64 {
    reply["position"]
        .as_u64()
        .unwrap_or_else(|| panic!("no position in {reply}"))
}

/// A string field of a command's `result`.
fn result(reply: &Value, field: &str) -> String {
    reply["result"][field]
        .as_str()
        .unwrap_or_else(|| panic!("no result.{field} in {reply}"))
        .to_owned()
}

/// `GET path` (with `min_position` appended) that must answer 200 with JSON.
async fn read(sys: &HttpSystem, path: &str, token: &str, min_position: u64) -> Value {
    let separator = if path.contains('?') { '&' } else { '?' };
    let path = format!("{path}{separator}min_position={min_position}");
    let response = sys.get(&path, Some(token)).await;
    assert_eq!(response.status, 200, "GET {path} → {}", response.text());
    assert!(
        response.header("parlor-position").is_some(),
        "GET {path}: no Parlor-Position header"
    );
    response.json()
}

/// The entry for `room_id` in a room list, if listed.
fn listed(list: &Value, room_id: &str) -> Option<Value> {
    list["rooms"]
        .as_array()
        .expect("a rooms array")
        .iter()
        .find(|room| room["room_id"] == room_id)
        .cloned()
}

/// The messages of a timeline page.
fn messages(page: &Value) -> Vec<Value> {
    page["messages"]
        .as_array()
        .expect("a messages array")
        .clone()
}

/// RFC 3339 UTC with milliseconds: `2024-05-01T12:00:00.123Z`.
fn assert_timestamp(value: &Value, what: &str) {
    let text = value
        .as_str()
        .unwrap_or_else(|| panic!("{what}: not a string: {value}"));
    let bytes = text.as_bytes();
    let ok = bytes.len() == 24
        && bytes[4] == b'-'
        && bytes[10] == b'T'
        && bytes[19] == b'.'
        && bytes[23] == b'Z'
        && bytes[20..23].iter().all(u8::is_ascii_digit);
    assert!(ok, "{what}: not RFC 3339 UTC with milliseconds: {text}");
}

/// An error answer: `status`, `{"error": {"code": code, "message": …}}`.
fn assert_error(response: &Response, status: u16, code: &str, what: &str) {
    assert_eq!(response.status, status, "{what}: {}", response.text());
    assert_eq!(response.error_code(), code, "{what}: {}", response.text());
    assert!(
        response.json()["error"]["message"].is_string(),
        "{what}: {}",
        response.text()
    );
}

/// A PNG of `width` × `height` pixels.
fn png(width: u32, height: u32) -> Vec<u8> {
    let image = image::RgbImage::from_fn(width, height, |x, y| {
        image::Rgb([(x % 256) as u8, (y % 256) as u8, 90])
    });
    let mut bytes = Cursor::new(Vec::new());
    image::DynamicImage::ImageRgb8(image)
        .write_to(&mut bytes, image::ImageFormat::Png)
        .expect("encode a PNG");
    bytes.into_inner()
}

/// Uploads `body` as `token`'s user; expects 201 and returns the answer.
async fn upload(
    sys: &HttpSystem,
    token: &str,
    encoded_name: &str,
    content_type: &str,
    body: &[u8],
) -> Value {
    let response = sys
        .post(
            "/v1/files",
            Some(token),
            &[
                ("X-File-Name", encoded_name),
                ("Content-Type", content_type),
            ],
            Body::Bytes(body),
        )
        .await;
    assert_eq!(response.status, 201, "upload: {}", response.text());
    response.json()
}

/// `/v1/search` for `q` as `token` once the index has `min_position`. Search is part of
/// readiness, so any answer but 200 (a 503 included) fails the test.
async fn search(sys: &HttpSystem, token: &str, q: &str, min_position: u64) -> Value {
    let path = format!("/v1/search?q={q}&min_position={min_position}");
    let response = sys.get(&path, Some(token)).await;
    assert_eq!(response.status, 200, "GET {path} → {}", response.text());
    response.json()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_conversation_over_http() {
    let sys = start_up_http(&[]).await;
    // Tokens both ways: printed by `parlor token`, and minted in process.
    let service = sys.cli_token(&["service:identity", "--service"]);
    let alice = sys.cli_token(&["alice"]);
    let bob = sys.token("bob");
    sys.register(&service, &[("alice", "Alice Adams"), ("bob", "Bob Brown")])
        .await;

    // The first message `to` bob creates the direct room.
    let first = sys
        .ok(
            &alice,
            "message.send",
            json!({"to": "bob", "body": "hello bob, the quokka plan is ready"}),
        )
        .await;
    let room = result(&first, "room_id");
    let m1 = result(&first, "message_id");
    let at = position(&first);

    let alice_view = listed(&read(&sys, "/v1/rooms", &alice, at).await, &room)
        .expect("alice's inbox lists the room");
    assert_eq!(alice_view["kind"], "direct");
    assert_eq!(
        alice_view["name"], "Bob Brown",
        "named after the other person"
    );
    assert_eq!(alice_view["unread"], 0, "her own message is not unread");
    assert_eq!(alice_view["favorite"], false);
    assert_eq!(alice_view["hidden"], false);
    assert_eq!(alice_view["archived"], false);
    assert_eq!(alice_view["contract"], Value::Null);
    let last = &alice_view["last_message"];
    assert_eq!(last["message_id"], m1.as_str());
    assert_eq!(last["author"], "alice");
    assert_eq!(last["preview"], "hello bob, the quokka plan is ready");
    assert_eq!(last["deleted"], false);
    assert_timestamp(&last["sent_at"], "last_message.sent_at");
    assert_timestamp(&alice_view["last_activity_at"], "last_activity_at");
    let mut members: Vec<(String, String)> = alice_view["members"]
        .as_array()
        .unwrap()
        .iter()
        .map(|member| {
            (
                member["user_id"].as_str().unwrap().to_owned(),
                member["display_name"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    members.sort();
    assert_eq!(
        members,
        [
            ("alice".to_owned(), "Alice Adams".to_owned()),
            ("bob".to_owned(), "Bob Brown".to_owned())
        ]
    );
    let bob_view = listed(&read(&sys, "/v1/rooms", &bob, at).await, &room)
        .expect("bob's inbox lists the room");
    assert_eq!(bob_view["name"], "Alice Adams");
    assert_eq!(bob_view["unread"], 1);
    assert!(listed(&read(&sys, "/v1/rooms?view=unread", &bob, at).await, &room).is_some());
    let single = read(&sys, &format!("/v1/rooms/{room}"), &bob, at).await;
    assert_eq!(single, bob_view, "GET /v1/rooms/{{id}} is the list's entry");

    // A reply.
    let reply = sys
        .ok(
            &bob,
            "message.send",
            json!({"room_id": room, "body": "sounds good", "reply_to": m1}),
        )
        .await;
    let m2 = result(&reply, "message_id");
    let at = position(&reply);
    let timeline = messages(&read(&sys, &format!("/v1/rooms/{room}/messages"), &alice, at).await);
    let ids: Vec<&str> = timeline
        .iter()
        .map(|m| m["message_id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, [m2.as_str(), m1.as_str()], "newest first");
    assert_eq!(timeline[0]["author"], "bob");
    assert_eq!(timeline[0]["kind"], "text");
    assert_eq!(timeline[0]["body"], "sounds good");
    assert_eq!(timeline[0]["deleted"], false);
    assert_eq!(timeline[0]["edited_at"], Value::Null);
    assert_eq!(timeline[0]["room_id"], room.as_str());
    assert_eq!(timeline[0]["attachments"], json!([]));
    assert_timestamp(&timeline[0]["sent_at"], "sent_at");
    let quoted = &timeline[0]["reply_to"];
    assert_eq!(quoted["message_id"], m1.as_str());
    assert_eq!(quoted["author"], "alice");
    assert_eq!(quoted["preview"], "hello bob, the quokka plan is ready");
    assert_eq!(quoted["deleted"], false);
    assert_eq!(timeline[1]["reply_to"], Value::Null);
    let alice_view = listed(&read(&sys, "/v1/rooms", &alice, at).await, &room).unwrap();
    assert_eq!(alice_view["unread"], 1);
    assert_eq!(alice_view["last_message"]["preview"], "sounds good");

    // An edit: the latest body and an edited_at.
    let edit = sys
        .ok(
            &alice,
            "message.edit",
            json!({"room_id": room, "message_id": m1, "body": "hello bob, the quokka plan is final"}),
        )
        .await;
    let at = position(&edit);
    let timeline = messages(&read(&sys, &format!("/v1/rooms/{room}/messages"), &bob, at).await);
    assert_eq!(timeline[1]["body"], "hello bob, the quokka plan is final");
    assert_timestamp(&timeline[1]["edited_at"], "edited_at");

    // Search by a word prefix: the hit is marked.
    let found = search(&sys, &bob, "quok", at).await;
    let hit = found["messages"]
        .as_array()
        .expect("a messages array")
        .iter()
        .find(|hit| hit["message_id"] == m1.as_str())
        .unwrap_or_else(|| panic!("the message is found: {found}"))
        .clone();
    assert_eq!(hit["room_id"], room.as_str());
    assert_eq!(hit["author"], "alice");
    let snippet = hit["snippet"].as_str().expect("a snippet");
    assert!(snippet.contains("<mark>"), "a marked snippet: {snippet}");
    assert!(snippet.contains("final"), "the latest body: {snippet}");

    // Favorite and hide change alice's views only.
    let favorite = sys
        .ok(
            &alice,
            "room.favorite",
            json!({"room_id": room, "on": true}),
        )
        .await;
    let at = position(&favorite);
    let entry = listed(
        &read(&sys, "/v1/rooms?view=favorites", &alice, at).await,
        &room,
    )
    .expect("listed among favorites");
    assert_eq!(entry["favorite"], true);
    assert!(listed(
        &read(&sys, "/v1/rooms?view=favorites", &bob, at).await,
        &room
    )
    .is_none());
    let hide = sys
        .ok(&alice, "room.hide", json!({"room_id": room, "on": true}))
        .await;
    let at = position(&hide);
    let entry = listed(
        &read(&sys, "/v1/rooms?view=hidden", &alice, at).await,
        &room,
    )
    .expect("listed among hidden rooms");
    assert_eq!(entry["hidden"], true);
    assert!(listed(&read(&sys, "/v1/rooms", &alice, at).await, &room).is_none());
    assert!(listed(&read(&sys, "/v1/rooms", &bob, at).await, &room).is_some());

    // R-S2: a new message brings the hidden room back into the inbox.
    let third = sys
        .ok(
            &bob,
            "message.send",
            json!({"room_id": room, "body": "are you still there?"}),
        )
        .await;
    let m3 = result(&third, "message_id");
    let at = position(&third);
    let entry = listed(&read(&sys, "/v1/rooms", &alice, at).await, &room)
        .expect("back in the inbox after a new message");
    assert_eq!(entry["hidden"], false);
    assert_eq!(entry["unread"], 2);
    assert!(listed(
        &read(&sys, "/v1/rooms?view=unread", &alice, at).await,
        &room
    )
    .is_some());

    // Mark read.
    let mark = sys
        .ok(
            &alice,
            "room.mark_read",
            json!({"room_id": room, "message_id": m3}),
        )
        .await;
    let at = position(&mark);
    let entry = listed(&read(&sys, "/v1/rooms", &alice, at).await, &room).unwrap();
    assert_eq!(entry["unread"], 0);
    assert!(listed(
        &read(&sys, "/v1/rooms?view=unread", &alice, at).await,
        &room
    )
    .is_none());

    // Delete: a tombstone, and the reply shows the original as deleted without its body.
    let delete = sys
        .ok(
            &alice,
            "message.delete",
            json!({"room_id": room, "message_id": m1}),
        )
        .await;
    let at = position(&delete);
    let page = read(&sys, &format!("/v1/rooms/{room}/messages"), &bob, at).await;
    let timeline = messages(&page);
    let ids: Vec<&str> = timeline
        .iter()
        .map(|m| m["message_id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, [m3.as_str(), m2.as_str(), m1.as_str()]);
    assert_eq!(timeline[2]["deleted"], true);
    assert_eq!(timeline[2]["body"], Value::Null);
    assert_eq!(timeline[1]["reply_to"]["message_id"], m1.as_str());
    assert_eq!(timeline[1]["reply_to"]["deleted"], true);
    assert_eq!(timeline[1]["reply_to"]["preview"], Value::Null);
    assert!(
        !page.to_string().contains("quokka"),
        "the deleted body is nowhere in the timeline: {page}"
    );
    // R-S4: bob's unread counted alice's message; deleted, it no longer counts.
    let entry = listed(&read(&sys, "/v1/rooms", &bob, at).await, &room).unwrap();
    assert_eq!(entry["unread"], 0, "{entry}");
    assert!(!entry.to_string().contains("quokka"), "{entry}");
    let found = search(&sys, &bob, "quokka", at).await;
    assert_eq!(
        found["messages"],
        json!([]),
        "deleted messages are not found"
    );

    // The same Idempotency-Key twice: the first reply again, byte for byte, nothing appended.
    let key = Uuid::new_v4().to_string();
    let body = serde_json::to_vec(&json!({"room_id": room, "body": "oops, wrong chat"})).unwrap();
    let mut replies = Vec::new();
    for _ in 0..2 {
        let response = sys
            .post(
                "/v1/commands/message.send",
                Some(&bob),
                &[
                    ("Idempotency-Key", key.as_str()),
                    ("X-Client", "mobile_app"),
                ],
                Body::Bytes(&body),
            )
            .await;
        assert_eq!(response.status, 200, "{}", response.text());
        assert_eq!(response.header("parlor-command-id"), Some(key.as_str()));
        replies.push(response.body);
    }
    assert_eq!(replies[0], replies[1], "a resend gets the first reply");
    let oops: Value = serde_json::from_slice(&replies[0]).unwrap();
    let m4 = result(&oops, "message_id");
    let entry = listed(
        &read(&sys, "/v1/rooms", &alice, position(&oops)).await,
        &room,
    )
    .unwrap();
    assert_eq!(
        entry["unread"], 1,
        "one message, however often sent: {entry}"
    );

    // A deleted last message: the list shows it deleted, without a preview, and unread drops.
    let delete = sys
        .ok(
            &bob,
            "message.delete",
            json!({"room_id": room, "message_id": m4}),
        )
        .await;
    let at = position(&delete);
    let entry = listed(&read(&sys, "/v1/rooms", &alice, at).await, &room).unwrap();
    assert_eq!(entry["last_message"]["message_id"], m4.as_str(), "{entry}");
    assert_eq!(entry["last_message"]["deleted"], true, "{entry}");
    assert_eq!(entry["last_message"]["preview"], Value::Null, "{entry}");
    assert_eq!(entry["unread"], 0, "{entry}");
    assert!(!entry.to_string().contains("oops"), "{entry}");
    let page = read(
        &sys,
        &format!("/v1/rooms/{room}/messages?limit=2"),
        &alice,
        at,
    )
    .await;
    let newest = &messages(&page)[0];
    assert_eq!(newest["message_id"], m4.as_str());
    assert_eq!(newest["deleted"], true);
    assert_eq!(newest["body"], Value::Null);
    assert!(page["next_cursor"].is_string(), "a second page: {page}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn files_and_links_over_http() {
    let sys = start_up_http(&[]).await;
    let service = sys.cli_token(&["service:identity", "--service"]);
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

    let bytes = png(300, 200);
    let uploaded = upload(&sys, &alice, "site%20plan.png", "image/png", &bytes).await;
    assert_eq!(uploaded["name"], "site plan.png");
    assert_eq!(uploaded["size"], bytes.len());
    assert_eq!(uploaded["content_type"], "image/png");
    let sha256 = uploaded["sha256"].as_str().expect("a sha256");
    assert!(
        sha256.len() == 64
            && sha256
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)),
        "64 lowercase hex characters: {sha256}"
    );
    assert!(uploaded["position"].as_u64().is_some());
    let file_id = uploaded["file_id"].as_str().unwrap().to_owned();

    let sent = sys
        .ok(
            &alice,
            "message.send",
            json!({"to": "bob", "body": "the plans", "attachments": [
                {"file_id": file_id},
                {"url": "https://www.dropbox.com/s/x/plan.pdf"},
            ]}),
        )
        .await;
    let room = result(&sent, "room_id");
    let message = result(&sent, "message_id");
    let later = sys
        .ok(
            &bob,
            "message.send",
            json!({"room_id": room, "body": "notes", "attachments": [{"url": "https://example.com/notes"}]}),
        )
        .await;
    let later_message = result(&later, "message_id");
    let at = position(&later);

    // The timeline shows the attachments.
    let timeline = messages(&read(&sys, &format!("/v1/rooms/{room}/messages"), &bob, at).await);
    let attachments = timeline[1]["attachments"].as_array().unwrap();
    assert_eq!(attachments.len(), 2, "{attachments:?}");
    let file = attachments
        .iter()
        .find(|a| a["type"] == "file")
        .expect("a file attachment");
    assert_eq!(file["file_id"], file_id.as_str());
    assert_eq!(file["name"], "site plan.png");
    assert_eq!(file["size"], bytes.len());
    assert_eq!(file["content_type"], "image/png");
    assert_eq!(file["has_preview"], true);
    let link = attachments
        .iter()
        .find(|a| a["type"] == "link")
        .expect("a link attachment");
    assert_eq!(link["url"], "https://www.dropbox.com/s/x/plan.pdf");
    assert_eq!(link["provider"], "dropbox");

    // The files panel: newest first, both kinds, filtered by name.
    let panel = read(&sys, &format!("/v1/rooms/{room}/files"), &bob, at).await;
    let items = panel["items"].as_array().expect("items").clone();
    assert_eq!(items.len(), 3, "{panel}");
    assert_eq!(items[0]["type"], "link");
    assert_eq!(items[0]["url"], "https://example.com/notes");
    assert_eq!(items[0]["provider"], Value::Null);
    assert_eq!(items[0]["message_id"], later_message.as_str());
    assert_eq!(items[0]["author"], "bob");
    let file_item = items
        .iter()
        .find(|item| item["type"] == "file")
        .expect("the file is listed");
    assert_eq!(file_item["file_id"], file_id.as_str());
    assert_eq!(file_item["name"], "site plan.png");
    assert_eq!(file_item["size"], bytes.len());
    assert_eq!(file_item["content_type"], "image/png");
    assert_eq!(file_item["message_id"], message.as_str());
    assert_eq!(file_item["author"], "alice");
    assert!(file_item["preview_url"].is_string(), "{file_item}");
    assert_timestamp(&file_item["sent_at"], "sent_at");
    let dropbox = items
        .iter()
        .find(|item| item["url"] == "https://www.dropbox.com/s/x/plan.pdf")
        .expect("the dropbox link is listed");
    assert_eq!(dropbox["provider"], "dropbox");
    assert_eq!(dropbox["type"], "link");
    let names = |page: &Value| -> Vec<String> {
        page["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|item| item["name"].as_str().unwrap().to_owned())
            .collect()
    };
    let found = read(&sys, &format!("/v1/rooms/{room}/files?q=plan"), &bob, at).await;
    let mut found = names(&found);
    found.sort();
    assert_eq!(
        found,
        ["https://www.dropbox.com/s/x/plan.pdf", "site plan.png"]
    );
    let found = read(
        &sys,
        &format!("/v1/rooms/{room}/files?q=SITE%20PL"),
        &bob,
        at,
    )
    .await;
    assert_eq!(names(&found), ["site plan.png"]);
    let found = read(&sys, &format!("/v1/rooms/{room}/files?type=link"), &bob, at).await;
    assert_eq!(found["items"].as_array().unwrap().len(), 2);

    // Download by a member: the same bytes, named.
    let download = sys
        .get(
            &format!("/v1/files/{file_id}?min_position={at}"),
            Some(&bob),
        )
        .await;
    assert_eq!(download.status, 200, "{}", download.text());
    assert!(
        download.body == bytes,
        "the downloaded bytes are the uploaded ones"
    );
    assert_eq!(download.header("content-type"), Some("image/png"));
    assert_eq!(
        download.header("content-disposition"),
        Some("attachment; filename*=UTF-8''site%20plan.png")
    );
    assert_eq!(download.header("x-content-type-options"), Some("nosniff"));

    // The preview: a PNG of at most 256×256, aspect kept.
    let preview = sys
        .get(&format!("/v1/files/{file_id}/preview"), Some(&bob))
        .await;
    assert_eq!(preview.status, 200, "{}", preview.text());
    assert_eq!(preview.header("content-type"), Some("image/png"));
    let thumbnail = image::load_from_memory_with_format(&preview.body, image::ImageFormat::Png)
        .expect("the preview is a PNG");
    let (width, height) = (thumbnail.width(), thumbnail.height());
    assert!(width <= 256 && height <= 256, "{width}×{height}");
    assert_eq!(width, 256, "scaled down to fit: {width}×{height}");
    assert!(
        (169..=171).contains(&height),
        "aspect kept: {width}×{height}"
    );

    // A non-member learns nothing.
    for path in [
        format!("/v1/files/{file_id}"),
        format!("/v1/files/{file_id}/preview"),
        format!("/v1/rooms/{room}/files"),
    ] {
        let response = sys.get(&path, Some(&carol)).await;
        assert_error(&response, 404, "not_found", &format!("carol GET {path}"));
        assert!(!response.text().contains("plan"), "{}", response.text());
    }

    // Over 1 GiB declared: 413 from the Content-Length alone, no body sent.
    let started = Instant::now();
    let huge = sys
        .post(
            "/v1/files",
            Some(&alice),
            &[("X-File-Name", "huge.bin")],
            Body::DeclaredOnly((1 << 30) + 1),
        )
        .await;
    assert_error(&huge, 413, "file_too_large", "a 1 GiB + 1 upload");
    println!("413 answered in {:?}", started.elapsed());

    // R-M6: a message carrying a file is deleted from desktop or mobile web only.
    let delete = serde_json::to_vec(&json!({"room_id": room, "message_id": message})).unwrap();
    let refused = sys
        .post(
            "/v1/commands/message.delete",
            Some(&alice),
            &[("X-Client", "mobile_app")],
            Body::Bytes(&delete),
        )
        .await;
    assert_error(
        &refused,
        422,
        "platform_not_supported",
        "delete from the app",
    );
    assert_eq!(refused.json()["ok"], false);
    let deleted = sys
        .post(
            "/v1/commands/message.delete",
            Some(&alice),
            &[("X-Client", "mobile_web")],
            Body::Bytes(&delete),
        )
        .await;
    assert_eq!(deleted.status, 200, "{}", deleted.text());
    let at = position(&deleted.json());
    // R-M4, R-F2: the panel drops the deleted message's file and link.
    let panel = read(&sys, &format!("/v1/rooms/{room}/files"), &bob, at).await;
    assert_eq!(names(&panel), ["https://example.com/notes"], "{panel}");
    // Its file is now downloadable by its uploader only.
    let gone = sys
        .get(
            &format!("/v1/files/{file_id}?min_position={at}"),
            Some(&bob),
        )
        .await;
    assert_error(
        &gone,
        404,
        "not_found",
        "bob downloads a deleted message's file",
    );
    let own = sys
        .get(
            &format!("/v1/files/{file_id}?min_position={at}"),
            Some(&alice),
        )
        .await;
    assert_eq!(
        own.status,
        200,
        "the uploader still downloads: {}",
        own.text()
    );
    assert!(own.body == bytes);
}

/// One row of the access table.
struct Case {
    what: String,
    method: &'static str,
    path: String,
    token: Option<String>,
    body: Option<Value>,
    status: u16,
    code: &'static str,
}

fn case(
    what: impl Into<String>,
    method: &'static str,
    path: impl Into<String>,
    token: Option<&str>,
    body: Option<Value>,
    status: u16,
    code: &'static str,
) -> Case {
    Case {
        what: what.into(),
        method,
        path: path.into(),
        token: token.map(str::to_owned),
        body,
        status,
        code,
    }
}

async fn run_case(sys: &HttpSystem, case: &Case) -> Response {
    let authorization = case.token.as_ref().map(|token| format!("Bearer {token}"));
    let mut headers = Vec::new();
    if let Some(authorization) = &authorization {
        headers.push(("Authorization", authorization.as_str()));
    }
    match (&case.body, case.method) {
        (_, "GET") => http_client::send(sys.addr, "GET", &case.path, &headers, Body::None).await,
        (Some(body), _) if case.path == "/v1/files" => {
            let bytes = body.as_str().unwrap_or_default().as_bytes().to_vec();
            headers.push(("X-File-Name", "note.txt"));
            http_client::send(sys.addr, "POST", &case.path, &headers, Body::Bytes(&bytes)).await
        }
        (Some(body), _) => {
            let bytes = serde_json::to_vec(body).unwrap();
            headers.push(("Content-Type", "application/json"));
            http_client::send(sys.addr, "POST", &case.path, &headers, Body::Bytes(&bytes)).await
        }
        (None, method) => {
            http_client::send(sys.addr, method, &case.path, &headers, Body::None).await
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_refusal_has_its_documented_code_and_leaks_nothing() {
    let sys = start_up_http(&[]).await;
    // Expires a second from now; used once the setup below (and a short wait) has passed.
    let expired =
        gateway::auth::mint_token(sys.secret.as_bytes(), "alice", None, Duration::from_secs(1))
            .unwrap();
    let minted = Instant::now();
    let bad_signature = gateway::auth::mint_token(
        b"not the server's secret",
        "alice",
        None,
        Duration::from_secs(3600),
    )
    .unwrap();
    let service = sys.cli_token(&["service:identity", "--service"]);
    let (alice, bob, carol, dave) = (
        sys.token("alice"),
        sys.token("bob"),
        sys.token("carol"),
        sys.token("dave"),
    );
    let moderator = sys.moderator_token("mod-1");
    sys.register(
        &service,
        &[
            ("alice", "Alice Adams"),
            ("bob", "Bob Brown"),
            ("carol", "Carol Cruz"),
            ("dave", "Dave Diaz"),
        ],
    )
    .await;

    // Secrets a refusal must never show.
    const ROOM_NAME: &str = "Zebra Crossing Plans";
    const SECRET_BODY: &str = "launch code xylophone";
    const FILE_NAME: &str = "xylophone-notes.txt";
    let secrets = ["Zebra", "xylophone", "launch code", "hello dave", FILE_NAME];

    let group = sys
        .ok(
            &alice,
            "room.create",
            json!({"name": ROOM_NAME, "members": ["bob"]}),
        )
        .await;
    let room = result(&group, "room_id");
    let sent = sys
        .ok(
            &alice,
            "message.send",
            json!({"room_id": room, "body": SECRET_BODY}),
        )
        .await;
    let message = result(&sent, "message_id");
    let bob_reply = sys
        .ok(
            &bob,
            "message.send",
            json!({"room_id": room, "body": "xylophone acknowledged"}),
        )
        .await;
    let bob_message = result(&bob_reply, "message_id");
    // alice reports bob's message, so the moderation queue holds something.
    sys.ok(
        &alice,
        "message.report",
        json!({"room_id": room, "message_id": bob_message, "reason": "other"}),
    )
    .await;
    let direct = sys
        .ok(
            &alice,
            "message.send",
            json!({"to": "dave", "body": "hello dave"}),
        )
        .await;
    let direct_room = result(&direct, "room_id");
    sys.ok(&dave, "user.block", json!({"user_id": "alice"}))
        .await;
    // A file alice uploaded and attached nowhere.
    let unattached = upload(&sys, &alice, FILE_NAME, "text/plain", b"xylophone tuning").await;
    let file_id = unattached["file_id"].as_str().unwrap().to_owned();
    let at = position(&unattached);
    // The read side has everything before the table runs.
    read(&sys, "/v1/rooms", &alice, at).await;
    read(&sys, &format!("/v1/rooms/{room}/files"), &alice, at).await;
    read(&sys, &format!("/v1/rooms/{room}/messages"), &alice, at).await;
    read(&sys, "/v1/moderation/reports", &moderator, at).await;
    let own = sys
        .get(
            &format!("/v1/files/{file_id}?min_position={at}"),
            Some(&alice),
        )
        .await;
    assert_eq!(own.status, 200, "the uploader downloads: {}", own.text());

    let missing_room = Uuid::new_v4().to_string();
    let call_id = Uuid::new_v4().to_string();
    let mut table = Vec::new();

    // Every endpoint but /healthz: 401 without a valid token.
    let endpoints: Vec<(&'static str, String, Option<Value>)> = vec![
        ("GET", "/v1/rooms".into(), None),
        ("GET", "/v1/rooms?view=unread".into(), None),
        ("GET", format!("/v1/rooms/{room}"), None),
        ("GET", format!("/v1/rooms/{room}/messages"), None),
        ("GET", format!("/v1/rooms/{room}/files"), None),
        ("GET", "/v1/search?q=xylophone".into(), None),
        ("GET", "/v1/moderation/reports".into(), None),
        ("GET", format!("/v1/files/{file_id}"), None),
        ("GET", format!("/v1/files/{file_id}/preview"), None),
        ("GET", "/v1/events".into(), None),
        (
            "POST",
            "/v1/commands/message.send".into(),
            Some(json!({"room_id": room, "body": "sneaky"})),
        ),
        (
            "POST",
            "/v1/commands/user.register".into(),
            Some(json!({"user_id": "eve", "display_name": "Eve", "kind": "client"})),
        ),
        ("POST", "/v1/files".into(), Some(json!("some bytes"))),
        ("POST", "/v1/presence/heartbeat".into(), None),
    ];
    let invalid_tokens: [(&str, Option<&str>); 5] = [
        ("no token", None),
        ("an expired token", Some(&expired)),
        ("a token signed with another secret", Some(&bad_signature)),
        ("a malformed token", Some("not.a.jwt")),
        ("an empty bearer", Some("")),
    ];
    for (method, path, body) in &endpoints {
        for (kind, token) in invalid_tokens {
            table.push(case(
                format!("{method} {path} with {kind}"),
                method,
                path.clone(),
                token,
                body.clone(),
                401,
                "unauthorized",
            ));
        }
    }

    // Room reads by a non-member: 404, like a room that does not exist (compared below).
    for suffix in [
        "",
        "/messages",
        "/files",
        "/files?q=plans",
        "/messages?limit=1",
    ] {
        table.push(case(
            format!("carol (non-member) GET /v1/rooms/{{room}}{suffix}"),
            "GET",
            format!("/v1/rooms/{room}{suffix}"),
            Some(&carol),
            None,
            404,
            "not_found",
        ));
    }

    // Room commands by a non-member: 404 not_member.
    let non_member_commands = [
        (
            "message.send",
            json!({"room_id": room, "body": "let me in"}),
        ),
        (
            "message.edit",
            json!({"room_id": room, "message_id": message, "body": "mine now"}),
        ),
        (
            "message.delete",
            json!({"room_id": room, "message_id": message}),
        ),
        (
            "message.report",
            json!({"room_id": room, "message_id": message, "reason": "other"}),
        ),
        (
            "room.add_member",
            json!({"room_id": room, "user_id": "carol"}),
        ),
        ("room.leave", json!({"room_id": room})),
        ("room.rename", json!({"room_id": room, "name": "Mine"})),
        ("room.favorite", json!({"room_id": room, "on": true})),
        ("room.hide", json!({"room_id": room, "on": true})),
        ("room.archive", json!({"room_id": room, "on": true})),
        (
            "room.mark_read",
            json!({"room_id": room, "message_id": message}),
        ),
        ("call.start", json!({"room_id": room, "media": "audio"})),
        ("call.end", json!({"room_id": room, "call_id": call_id})),
    ];
    for (command_type, data) in &non_member_commands {
        table.push(case(
            format!("carol (non-member) {command_type}"),
            "POST",
            format!("/v1/commands/{command_type}"),
            Some(&carol),
            Some(data.clone()),
            404,
            "not_member",
        ));
    }

    // Edits and deletions by someone other than the author.
    table.push(case(
        "bob edits alice's message",
        "POST",
        "/v1/commands/message.edit",
        Some(&bob),
        Some(json!({"room_id": room, "message_id": message, "body": "bob was here"})),
        422,
        "not_author",
    ));
    table.push(case(
        "bob deletes alice's message",
        "POST",
        "/v1/commands/message.delete",
        Some(&bob),
        Some(json!({"room_id": room, "message_id": message})),
        422,
        "not_author",
    ));

    // Blocking: neither side of a block may message the other.
    for (what, token, data) in [
        (
            "alice messages dave, who blocked her",
            &alice,
            json!({"to": "dave", "body": "please answer"}),
        ),
        (
            "alice writes in the direct room with dave, who blocked her",
            &alice,
            json!({"room_id": direct_room, "body": "please answer"}),
        ),
        (
            "dave messages alice, whom he blocked",
            &dave,
            json!({"to": "alice", "body": "never mind"}),
        ),
    ] {
        table.push(case(
            what,
            "POST",
            "/v1/commands/message.send",
            Some(token),
            Some(data),
            422,
            "blocked",
        ));
    }
    table.push(case(
        "alice calls dave, who blocked her",
        "POST",
        "/v1/commands/call.start",
        Some(&alice),
        Some(json!({"room_id": direct_room, "media": "video"})),
        422,
        "blocked",
    ));

    // Users acting as services, and services acting as users.
    let service_commands = [
        (
            "user.register",
            json!({"user_id": "eve", "display_name": "Eve", "kind": "client"}),
        ),
        (
            "room.open_interview",
            json!({"interview_id": "i-1", "title": "Interview", "client": "alice", "freelancer": "carol"}),
        ),
        (
            "contract.start",
            json!({"contract_id": "c-1", "title": "Contract", "client": "alice", "freelancer": "carol"}),
        ),
        ("contract.end", json!({"contract_id": "c-1"})),
        (
            "file.register",
            json!({"file_id": Uuid::new_v4(), "uploader": "alice", "name": "x.txt", "size": 1,
                   "content_type": "text/plain", "sha256": "0".repeat(64)}),
        ),
    ];
    for (command_type, data) in &service_commands {
        for (who, token) in [("a user", &alice), ("a moderator", &moderator)] {
            table.push(case(
                format!("{who} sends the service command {command_type}"),
                "POST",
                format!("/v1/commands/{command_type}"),
                Some(token),
                Some(data.clone()),
                403,
                "forbidden",
            ));
        }
    }
    table.push(case(
        "a service uploads a file",
        "POST",
        "/v1/files",
        Some(&service),
        Some(json!("some bytes")),
        403,
        "forbidden",
    ));
    table.push(case(
        "a service sends a heartbeat",
        "POST",
        "/v1/presence/heartbeat",
        Some(&service),
        None,
        403,
        "forbidden",
    ));

    // The moderation queue: moderators only.
    table.push(case(
        "a user reads the moderation queue",
        "GET",
        "/v1/moderation/reports",
        Some(&alice),
        None,
        403,
        "forbidden",
    ));
    table.push(case(
        "a moderator reads the moderation queue",
        "GET",
        "/v1/moderation/reports",
        Some(&moderator),
        None,
        200,
        "",
    ));

    // Another user's unattached file.
    for suffix in ["", "/preview"] {
        table.push(case(
            format!("bob downloads alice's unattached file{suffix}"),
            "GET",
            format!("/v1/files/{file_id}{suffix}"),
            Some(&bob),
            None,
            404,
            "not_found",
        ));
    }

    let wait = Duration::from_millis(2100).saturating_sub(minted.elapsed());
    tokio::time::sleep(wait).await;

    println!("access table: {} cases", table.len());
    for case in &table {
        let response = run_case(&sys, case).await;
        assert_eq!(
            response.status,
            case.status,
            "{}: {} {} → {}",
            case.what,
            case.method,
            case.path,
            response.text()
        );
        if case.status == 200 {
            continue;
        }
        let body = response.json();
        assert_eq!(body["error"]["code"], case.code, "{}: {body}", case.what);
        assert!(
            body["error"]["message"].is_string(),
            "{}: {body}",
            case.what
        );
        let text = response.text();
        for secret in secrets {
            assert!(
                !text.contains(secret),
                "{}: the refusal shows {secret:?}: {text}",
                case.what
            );
        }
    }

    // The moderator's answer holds the report.
    let reports = read(&sys, "/v1/moderation/reports", &moderator, at).await;
    let reports = reports["reports"].as_array().unwrap();
    assert_eq!(reports.len(), 1, "{reports:?}");
    assert_eq!(reports[0]["message_id"], bob_message.as_str());
    assert_eq!(reports[0]["reporter"], "alice");

    // A non-member's 404 is byte for byte the 404 of a room that does not exist.
    for suffix in ["", "/messages", "/files"] {
        let foreign = sys
            .get(&format!("/v1/rooms/{room}{suffix}"), Some(&carol))
            .await;
        let missing = sys
            .get(&format!("/v1/rooms/{missing_room}{suffix}"), Some(&carol))
            .await;
        assert_eq!(missing.status, 404, "{}", missing.text());
        assert_eq!(
            foreign.text(),
            missing.text(),
            "GET /v1/rooms/{{id}}{suffix}: non-member vs missing"
        );
        // And alice, a member, reads it.
        assert_eq!(
            sys.get(&format!("/v1/rooms/{room}{suffix}"), Some(&alice))
                .await
                .status,
            200
        );
    }
    for (command_type, data) in &non_member_commands {
        let foreign = sys.command(&carol, command_type, data).await;
        let mut data = data.clone();
        data["room_id"] = json!(missing_room);
        let missing = sys.command(&carol, command_type, &data).await;
        assert_eq!(missing.status, 404, "{command_type}: {}", missing.text());
        assert_eq!(
            foreign.json()["error"],
            missing.json()["error"],
            "{command_type}: non-member vs missing room"
        );
    }

    // Nothing refused was written: the room still shows only what members did.
    let page = read(&sys, &format!("/v1/rooms/{room}/messages"), &alice, at).await;
    let timeline = messages(&page);
    assert_eq!(timeline.len(), 2, "{page}");
    assert_eq!(timeline[1]["body"], SECRET_BODY);
    assert_eq!(timeline[1]["edited_at"], Value::Null);
    let entry = read(&sys, &format!("/v1/rooms/{room}"), &alice, at).await;
    assert_eq!(entry["name"], ROOM_NAME);
    assert_eq!(entry["members"].as_array().unwrap().len(), 2);
}

/// A xorshift64* generator: reproducible from its printed seed.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }

    fn chance(&mut self, percent: u64) -> bool {
        self.next() % 100 < percent
    }

    fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len())]
    }

    fn bytes(&mut self, len: usize) -> Vec<u8> {
        (0..len).map(|_| self.next() as u8).collect()
    }
}

/// Percent-encodes every byte but ASCII letters and digits.
fn percent(bytes: &[u8]) -> String {
    bytes
        .iter()
        .map(|byte| {
            if byte.is_ascii_alphanumeric() {
                (*byte as char).to_string()
            } else {
                format!("%{byte:02X}")
            }
        })
        .collect()
}

/// An odd value for a query parameter (already percent-encoded as it goes in the URL).
fn odd_value(rng: &mut Rng, ids: &[String]) -> String {
    const FIXED: [&str; 40] = [
        "",
        "0",
        "1",
        "-1",
        "200",
        "201",
        "4294967296",
        "18446744073709551616",
        "999999999999999999999999999999",
        "-9223372036854775809",
        "1e3",
        "1.5",
        "0x10",
        "%2B5",
        "%205",
        "%FF",
        "%C3%28",
        "%ED%A0%80",
        "%00",
        "a%00b",
        "%0A%0D",
        "%",
        "%G1",
        "abc",
        "null",
        "true",
        "%5B%5D",
        "%7B%7D",
        "inbox",
        "favorites",
        "hidden",
        "archived",
        "unread",
        "file",
        "link",
        "INBOX",
        "%E2%80%AE",
        "%F0%9F%98%80",
        "%3Cscript%3E",
        "..%2F..%2Fetc%2Fpasswd",
    ];
    match rng.below(6) {
        0 | 1 => (*rng.pick(&FIXED)).to_owned(),
        2 => rng.pick(ids).clone(),
        3 => "a".repeat(1 + rng.below(3000)),
        4 => "%FF".repeat(1 + rng.below(600)),
        _ => {
            let len = rng.below(200);
            percent(&rng.bytes(len))
        }
    }
}

/// A `min_position` that cannot make the read wait: small, or not a u64 at all.
fn odd_min_position(rng: &mut Rng) -> String {
    (*rng.pick(&[
        "0",
        "1",
        "2",
        "-1",
        "18446744073709551616",
        "1e2",
        "%FF",
        "abc",
        "%00",
        "%201",
        "%2B1",
        "",
    ]))
    .to_owned()
}

/// A query string of odd parameters.
fn odd_query(rng: &mut Rng, ids: &[String]) -> String {
    const NAMES: [&str; 13] = [
        "view",
        "limit",
        "cursor",
        "min_position",
        "before",
        "q",
        "type",
        "room_id",
        "unknown",
        "%FF",
        "",
        "limit%00",
        "Q",
    ];
    let count = rng.below(5);
    let mut pairs = Vec::new();
    for _ in 0..count {
        let name = *rng.pick(&NAMES);
        let value = if name == "min_position" {
            odd_min_position(rng)
        } else {
            odd_value(rng, ids)
        };
        pairs.push(match rng.below(8) {
            0 => name.to_owned(),
            1 => format!("{name}={value}&{name}={value}"),
            _ => format!("{name}={value}"),
        });
    }
    if pairs.is_empty() {
        String::new()
    } else {
        format!("?{}", pairs.join("&"))
    }
}

/// An odd path segment standing for an id.
fn odd_id(rng: &mut Rng, ids: &[String]) -> String {
    match rng.below(4) {
        0 | 1 => rng.pick(ids).clone(),
        2 => (*rng.pick(&[
            "not-a-uuid",
            "%FF",
            "%00",
            "..",
            "%2F",
            "00000000-0000-0000-0000-000000000000",
            "ffffffff-ffff-ffff-ffff-ffffffffffff",
            "%7B%7D",
            "-1",
            "0",
        ]))
        .to_owned(),
        _ => "z".repeat(1 + rng.below(2000)),
    }
}

/// A random JSON value, wrong for about any field.
fn odd_json(rng: &mut Rng, depth: usize) -> Value {
    match rng.below(if depth > 3 { 8 } else { 11 }) {
        0 => Value::Null,
        1 => json!(rng.chance(50)),
        2 => json!(-1),
        3 => json!(u64::MAX),
        4 => json!(i64::MIN),
        5 => json!(1.5e300),
        6 => json!("a\u{0}b"),
        7 => json!("x".repeat(rng.below(20_000))),
        8 => json!([odd_json(rng, depth + 1), odd_json(rng, depth + 1)]),
        9 => json!({"k": odd_json(rng, depth + 1)}),
        _ => json!("\u{202e}\u{1F600}\u{FFFF}"),
    }
}

/// A plausible body for `command_type`, for perturbing.
fn plausible(command_type: &str, room: &str, message: &str) -> Value {
    match command_type {
        "message.send" => json!({"room_id": room, "body": "hi"}),
        "message.edit" => json!({"room_id": room, "message_id": message, "body": "hi"}),
        "message.delete" | "room.mark_read" => json!({"room_id": room, "message_id": message}),
        "message.report" => {
            json!({"room_id": room, "message_id": message, "reason": "other", "details": "d"})
        }
        "room.create" => json!({"name": "Odd", "members": ["bob"]}),
        "room.favorite" | "room.hide" | "room.archive" => json!({"room_id": room, "on": true}),
        "room.rename" => json!({"room_id": room, "name": "Renamed"}),
        "room.add_member" => json!({"room_id": room, "user_id": "bob"}),
        "call.start" => json!({"room_id": room, "media": "audio"}),
        "user.block" | "user.unblock" => json!({"user_id": "bob"}),
        "user.set_out_of_office" => json!({"message": "away", "from": "2020-01-01T00:00:00Z",
                                           "until": "2999-01-01T00:00:00Z"}),
        "user.set_notifications" => json!({"frequency": "hourly"}),
        "user.set_online_visibility" => json!({"visible": true}),
        _ => json!({"room_id": room}),
    }
}

/// An odd command body (raw bytes).
fn odd_body(rng: &mut Rng, command_type: &str, room: &str, message: &str) -> Vec<u8> {
    match rng.below(9) {
        0 => {
            let len = rng.below(2000);
            rng.bytes(len)
        }
        1 => {
            let depth = *rng.pick(&[10, 127, 128, 129, 500, 100_000]);
            let (open, close) = if rng.chance(50) {
                ("{\"a\":", "}")
            } else {
                ("[", "]")
            };
            format!("{}1{}", open.repeat(depth), close.repeat(depth)).into_bytes()
        }
        2 | 3 => {
            // A plausible body with one field given an odd value (or an odd field added).
            let mut body = plausible(command_type, room, message);
            let fields: Vec<String> = body.as_object().unwrap().keys().cloned().collect();
            let field = if rng.chance(80) && !fields.is_empty() {
                rng.pick(&fields).clone()
            } else {
                "unexpected".to_owned()
            };
            body[field] = odd_json(rng, 0);
            serde_json::to_vec(&body).unwrap()
        }
        4 => (*rng.pick(&[
            "[]",
            "\"x\"",
            "12",
            "null",
            "{} {}",
            "{",
            "{\"room_id\": 1e999}",
            "{\"body\": \"\\ud800\"}",
            "{\"a\": 123456789012345678901234567890}",
            "\u{feff}{}",
            "{\"room_id\": \"x\", \"room_id\": \"y\"}",
        ]))
        .as_bytes()
        .to_vec(),
        5 => {
            // Invalid UTF-8 inside a JSON string.
            let mut body = b"{\"room_id\": \"".to_vec();
            body.extend_from_slice(room.as_bytes());
            body.extend_from_slice(b"\", \"body\": \"\xff\xfe\xc3\x28\"}");
            body
        }
        6 => {
            let mut body = plausible(command_type, room, message);
            body["body"] = json!("b".repeat(*rng.pick(&[5001, 100_000, 900_000])));
            serde_json::to_vec(&body).unwrap()
        }
        7 => {
            // Over the 1 MiB command limit.
            let mut body = b"{\"body\": \"".to_vec();
            body.extend(std::iter::repeat_n(b'x', (1 << 20) + 10));
            body.extend_from_slice(b"\"}");
            body
        }
        _ => serde_json::to_vec(&plausible(command_type, room, message)).unwrap(),
    }
}

/// Checks one answer: never a 5xx but 503, and errors in the JSON error shape.
fn check_answer(what: &str, response: &Response, json_on_success: bool) {
    assert!(
        response.status < 500 || response.status == 503,
        "{what} → {} {}",
        response.status,
        response.text()
    );
    if response.status == 503 {
        // Only a read model that is not running yet (search) or one that is behind may answer
        // 503 here: the writer and the other models are up and nothing is overloaded.
        let code = response.error_code();
        assert!(
            code == "projection_lagging"
                || (code == "unavailable" && what.starts_with("GET /v1/search")),
            "{what} → 503 {}",
            response.text()
        );
    }
    if response.status >= 400 {
        let body: Value = serde_json::from_slice(&response.body).unwrap_or_else(|error| {
            panic!(
                "{what} → {}: the error is not JSON ({error}): {}",
                response.status,
                response.text()
            )
        });
        assert!(
            body["error"]["code"].is_string() && body["error"]["message"].is_string(),
            "{what} → {}: not the error shape: {body}",
            response.status
        );
    } else if json_on_success && response.status != 204 {
        assert!(
            serde_json::from_slice::<Value>(&response.body).is_ok(),
            "{what} → {}: not JSON: {}",
            response.status,
            response.text()
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_parameters_and_bodies_on_every_endpoint() {
    let mut sys = start_up_http(&[]).await;
    let service = sys.service_token("identity");
    let (alice, bob) = (sys.token("alice"), sys.token("bob"));
    let moderator = sys.moderator_token("mod-1");
    sys.register(&service, &[("alice", "Alice Adams"), ("bob", "Bob Brown")])
        .await;
    let group = sys
        .ok(
            &alice,
            "room.create",
            json!({"name": "Odd Room", "members": ["bob"]}),
        )
        .await;
    let room = result(&group, "room_id");
    let sent = sys
        .ok(&bob, "message.send", json!({"room_id": room, "body": "hi"}))
        .await;
    let message = result(&sent, "message_id");
    let uploaded = upload(&sys, &alice, "pic.png", "image/png", &png(20, 20)).await;
    let file_id = uploaded["file_id"].as_str().unwrap().to_owned();
    let ids = vec![
        room.clone(),
        message.clone(),
        file_id.clone(),
        Uuid::new_v4().to_string(),
        room.to_uppercase(),
        format!("{{{room}}}"),
        room.replace('-', ""),
    ];

    let seed = std::env::var("PARLOR_E2E_SEED")
        .ok()
        .and_then(|text| text.parse().ok())
        .unwrap_or_else(|| clock::real_now_ms() as u64 | 1);
    println!("hostile input: seed {seed} (rerun with PARLOR_E2E_SEED={seed})");
    let mut rng = Rng(seed);
    let tokens = [
        alice.as_str(),
        alice.as_str(),
        alice.as_str(),
        bob.as_str(),
        moderator.as_str(),
        service.as_str(),
        "garbage",
    ];
    let started = Instant::now();
    let mut statuses = std::collections::BTreeMap::<u16, usize>::new();
    for iteration in 0..300 {
        let token = *rng.pick(&tokens);
        let authorization = format!("Bearer {token}");
        let query = odd_query(&mut rng, &ids);
        let (what, response) = match rng.below(12) {
            0..=5 => {
                let id = odd_id(&mut rng, &ids);
                let path = match rng.below(9) {
                    0 => "/v1/rooms".to_owned(),
                    1 => format!("/v1/rooms/{id}"),
                    2 => format!("/v1/rooms/{id}/messages"),
                    3 => format!("/v1/rooms/{id}/files"),
                    4 => "/v1/search".to_owned(),
                    5 => "/v1/moderation/reports".to_owned(),
                    6 => format!("/v1/files/{id}"),
                    7 => format!("/v1/files/{id}/preview"),
                    _ => "/v1/nothing/here".to_owned(),
                };
                let path = format!("{path}{query}");
                let response = http_client::send(
                    sys.addr,
                    "GET",
                    &path,
                    &[("Authorization", &authorization)],
                    Body::None,
                )
                .await;
                // A download that succeeds is the file's bytes, not JSON.
                let bytes = path.starts_with("/v1/files/");
                check_answer(&format!("GET {path}"), &response, !bytes);
                (format!("GET {path}"), response)
            }
            6..=8 => {
                let command_type = if rng.chance(85) {
                    (*rng.pick(&domain::command::COMMAND_TYPES)).to_owned()
                } else {
                    (*rng.pick(&[
                        "nope",
                        "%FF",
                        "message.send%00",
                        "MESSAGE.SEND",
                        "..%2Fwriter.ping",
                        "message.send.extra",
                        "%2A",
                    ]))
                    .to_owned()
                };
                let body = odd_body(&mut rng, &command_type, &room, &message);
                let mut headers = vec![
                    ("Authorization", authorization.clone()),
                    ("Content-Type", "application/json".to_owned()),
                ];
                if rng.chance(30) {
                    let key = if rng.chance(50) {
                        Uuid::new_v4().to_string()
                    } else {
                        odd_value(&mut rng, &ids)
                    };
                    headers.push(("Idempotency-Key", key));
                }
                if rng.chance(30) {
                    let client =
                        (*rng.pick(&["desktop", "mobile_app", "tv", "", "DESKTOP"])).to_owned();
                    headers.push(("X-Client", client));
                }
                if rng.chance(20) {
                    headers.push(("X-Correlation-Id", "c".repeat(rng.below(300))));
                }
                let headers: Vec<(&str, &str)> =
                    headers.iter().map(|(k, v)| (*k, v.as_str())).collect();
                let path = format!("/v1/commands/{command_type}{query}");
                let response =
                    http_client::send(sys.addr, "POST", &path, &headers, Body::Bytes(&body)).await;
                let what = format!(
                    "POST {path} with {}",
                    String::from_utf8_lossy(&body[..body.len().min(200)])
                );
                check_answer(&what, &response, true);
                (what, response)
            }
            9 | 10 => {
                let name = match rng.below(4) {
                    0 => odd_value(&mut rng, &ids),
                    1 => percent("ünïcode näme.png".as_bytes()),
                    2 => "..%2F..%2Fetc%2Fpasswd".to_owned(),
                    _ => "plain.bin".to_owned(),
                };
                let content_type = (*rng.pick(&[
                    "image/png",
                    "image/jpeg",
                    "image/gif",
                    "image/webp",
                    "application/octet-stream",
                    "text/html; charset=utf-8",
                    "",
                ]))
                .to_owned();
                let len = rng.below(5000);
                let mut body = rng.bytes(len);
                if rng.chance(30) {
                    // A PNG signature followed by garbage: the thumbnailer must cope.
                    let mut png_head = b"\x89PNG\r\n\x1a\n".to_vec();
                    png_head.append(&mut body);
                    body = png_head;
                }
                let mut headers = vec![("Authorization", authorization.as_str())];
                if rng.chance(90) {
                    headers.push(("X-File-Name", name.as_str()));
                }
                if !content_type.is_empty() {
                    headers.push(("Content-Type", content_type.as_str()));
                }
                let path = format!("/v1/files{query}");
                let response =
                    http_client::send(sys.addr, "POST", &path, &headers, Body::Bytes(&body)).await;
                let what = format!("POST {path} named {name:?} as {content_type:?}");
                check_answer(&what, &response, true);
                (what, response)
            }
            _ => {
                if rng.chance(50) {
                    let len = rng.below(100);
                    let body = rng.bytes(len);
                    let path = format!("/v1/presence/heartbeat{query}");
                    let response = http_client::send(
                        sys.addr,
                        "POST",
                        &path,
                        &[("Authorization", &authorization)],
                        Body::Bytes(&body),
                    )
                    .await;
                    check_answer(&format!("POST {path}"), &response, true);
                    (format!("POST {path}"), response)
                } else {
                    let last = (*rng.pick(&[
                        "abc",
                        "-1",
                        "0",
                        "1",
                        "2",
                        "18446744073709551616",
                        "%FF",
                        "1.5",
                        "",
                    ]))
                    .to_owned();
                    let path = format!("/v1/events{query}");
                    let stream = SseStream::open(
                        sys.addr,
                        &path,
                        &[("Authorization", &authorization), ("Last-Event-ID", &last)],
                    )
                    .await;
                    let response = Response {
                        status: stream.status,
                        headers: stream.headers.clone(),
                        body: stream.body.clone(),
                    };
                    let what = format!("GET {path} after {last:?}");
                    if stream.status == 200 {
                        assert_eq!(
                            stream.header("content-type"),
                            Some("text/event-stream"),
                            "{what}"
                        );
                    } else {
                        check_answer(&what, &response, true);
                    }
                    (what, response)
                }
            }
        };
        *statuses.entry(response.status).or_default() += 1;
        if response.status == 503 {
            println!(
                "#{iteration}: {} → 503 {}",
                what.chars().take(160).collect::<String>(),
                response.text()
            );
        }
        if iteration % 50 == 0 {
            println!(
                "#{iteration}: {} → {}",
                what.chars().take(160).collect::<String>(),
                response.status
            );
        }
    }
    println!(
        "300 hostile requests in {:?}: statuses {statuses:?}",
        started.elapsed()
    );

    // Requests the HTTP layer itself refuses (bad framing): never a 5xx, never a hang.
    let head = |line: &[u8]| {
        let mut head = line.to_vec();
        head.extend_from_slice(b"\r\nHost: x\r\nConnection: close\r\n\r\n");
        head
    };
    for raw in [
        head(b"GET /v1/rooms?q=\xff\xfe HTTP/1.1"),
        head(b"GET /v1/rooms/\x00 HTTP/1.1"),
        head(b"GET /v1/rooms HTTP/9.9"),
        head(b"BREW /v1/rooms HTTP/1.1"),
        head(format!("GET /v1/rooms?cursor={} HTTP/1.1", "c".repeat(70_000)).as_bytes()),
        b"POST /v1/commands/message.send HTTP/1.1\r\nHost: x\r\nContent-Length: -5\r\nConnection: close\r\n\r\n".to_vec(),
        b"POST /v1/commands/message.send HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\nzz\r\n".to_vec(),
    ] {
        let what = String::from_utf8_lossy(&raw[..raw.len().min(80)]).into_owned();
        let (status, body) = http_client::exchange_raw(sys.addr, &raw).await;
        assert!(
            status.is_none_or(|status| status < 500),
            "{what:?} → {status:?} {}",
            String::from_utf8_lossy(&body)
        );
        let is_json = serde_json::from_slice::<Value>(&body).is_ok();
        println!("raw {what:?} → {status:?} (JSON body: {is_json})");
    }

    // min_position beyond the head: refused at once, naming the parameter (H-L1).
    let beyond = sys
        .get(
            &format!("/v1/rooms?min_position={}", u64::MAX),
            Some(&alice),
        )
        .await;
    assert_error(&beyond, 400, "invalid_command", "min_position u64::MAX");
    assert!(beyond.text().contains("min_position"), "{}", beyond.text());

    // The server still answers, and still reads; nothing panicked.
    assert!(
        sys.parlor.child.try_wait().unwrap().is_none(),
        "parlor exited: {}",
        sys.logs()
    );
    let logs = sys.logs();
    assert!(!logs.contains("panicked"), "a panic in parlor: {logs}");
    let health = sys.get("/healthz", None).await;
    assert_eq!(health.status, 200, "{}", health.text());
    assert_eq!(health.json()["status"], "up");
    // Users the loop never named (it may have made alice or bob leave, block or go away).
    sys.register(&service, &[("zoe", "Zoe Zhang"), ("yann", "Yann Young")])
        .await;
    let zoe = sys.token("zoe");
    let after = sys
        .ok(
            &zoe,
            "message.send",
            json!({"to": "yann", "body": "still here"}),
        )
        .await;
    let direct = result(&after, "room_id");
    let timeline = read(
        &sys,
        &format!("/v1/rooms/{direct}/messages"),
        &sys.token("yann"),
        position(&after),
    )
    .await;
    assert_eq!(timeline["messages"][0]["body"], "still here", "{timeline}");
}

/// Reads events until one for `message_id` comes and then the event that carries its position
/// (the Message's Room, whose id the Message shares); returns every event read.
async fn events_until(stream: &mut SseStream, message_id: &str) -> Vec<SseEvent> {
    let mut events = Vec::new();
    let mut found = false;
    loop {
        let event = stream
            .next(EVENT_WAIT)
            .await
            .unwrap_or_else(|| panic!("no event for {message_id}; got {events:?}"));
        found |= event.json()["message_id"] == message_id;
        let has_id = event.id.is_some();
        events.push(event);
        if found && has_id {
            return events;
        }
    }
}

/// The ids of `events` strictly increase (events sharing a position carry it on the last).
fn strictly_increasing(events: &[SseEvent]) {
    let positions: Vec<u64> = events
        .iter()
        .filter(|event| event.id.is_some())
        .map(SseEvent::position)
        .collect();
    assert!(
        positions.windows(2).all(|pair| pair[0] < pair[1]),
        "positions strictly increase: {positions:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn live_events_and_resuming_with_last_event_id() {
    let sys = start_up_http(&[]).await;
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
    let first = sys
        .ok(
            &alice,
            "message.send",
            json!({"to": "bob", "body": "first"}),
        )
        .await;
    let room = result(&first, "room_id");
    // bob's room set holds the room before his stream opens.
    read(&sys, "/v1/rooms", &bob, position(&first)).await;
    // carol, in no room with them, follows her own stream all along.
    let carol_authorization = format!("Bearer {carol}");
    let mut outsider = SseStream::open(
        sys.addr,
        "/v1/events",
        &[("Authorization", carol_authorization.as_str())],
    )
    .await;
    assert_eq!(outsider.status, 200);

    let authorization = format!("Bearer {bob}");
    let mut live = SseStream::open(
        sys.addr,
        "/v1/events",
        &[("Authorization", authorization.as_str())],
    )
    .await;
    assert_eq!(live.status, 200, "{}", String::from_utf8_lossy(&live.body));
    assert_eq!(live.header("content-type"), Some("text/event-stream"));

    let second = sys
        .ok(
            &alice,
            "message.send",
            json!({"room_id": room, "body": "second"}),
        )
        .await;
    let second_id = result(&second, "message_id");
    let events = events_until(&mut live, &second_id).await;
    strictly_increasing(&events);
    assert!(
        events
            .iter()
            .all(|event| event.json()["message_id"] != result(&first, "message_id")),
        "nothing from before the stream opened: {events:?}"
    );
    let message = events
        .iter()
        .find(|event| event.json()["message_id"] == second_id.as_str())
        .unwrap();
    assert_eq!(message.event.as_deref(), Some("message"));
    let data = message.json();
    assert_eq!(data["author"], "alice");
    assert_eq!(data["body"], "second");
    assert_eq!(data["room_id"], room.as_str());
    let last = events.last().unwrap();
    assert_eq!(last.event.as_deref(), Some("room"));
    assert_eq!(
        last.position(),
        position(&second),
        "the SSE id is the position"
    );
    assert_eq!(
        last.json()["last_message"]["message_id"],
        second_id.as_str()
    );
    let resume_from = last.position();
    drop(live);

    // While bob is away, a message comes; reconnecting replays it, then follows live.
    let third = sys
        .ok(
            &alice,
            "message.send",
            json!({"room_id": room, "body": "third"}),
        )
        .await;
    let third_id = result(&third, "message_id");
    let last_event_id = resume_from.to_string();
    let mut resumed = SseStream::open(
        sys.addr,
        "/v1/events",
        &[
            ("Authorization", authorization.as_str()),
            ("Last-Event-ID", last_event_id.as_str()),
        ],
    )
    .await;
    assert_eq!(
        resumed.status,
        200,
        "{}",
        String::from_utf8_lossy(&resumed.body)
    );
    let mut events = events_until(&mut resumed, &third_id).await;
    let fourth = sys
        .ok(
            &bob,
            "message.send",
            json!({"room_id": room, "body": "fourth"}),
        )
        .await;
    let fourth_id = result(&fourth, "message_id");
    events.extend(events_until(&mut resumed, &fourth_id).await);
    events.extend(resumed.collect(QUIET).await);
    strictly_increasing(&events);
    assert!(
        events
            .iter()
            .all(|event| event.id.is_none() || event.position() > resume_from),
        "nothing at or before Last-Event-ID {resume_from}: {events:?}"
    );
    let bodies: Vec<Value> = events
        .iter()
        .filter(|event| event.event.as_deref() == Some("message"))
        .map(|event| event.json()["body"].clone())
        .collect();
    assert_eq!(
        bodies,
        [json!("third"), json!("fourth")],
        "no duplicate, no gap"
    );

    // carol saw nothing of a room she is not in, nor of her own settings (no read shows them).
    sys.ok(
        &carol,
        "user.set_online_visibility",
        json!({"visible": false}),
    )
    .await;
    let seen = outsider.collect(QUIET).await;
    assert!(seen.is_empty(), "carol sees events: {seen:?}");

    // A malformed Last-Event-ID is a 400, not a stream.
    let bad = SseStream::open(
        sys.addr,
        "/v1/events",
        &[
            ("Authorization", authorization.as_str()),
            ("Last-Event-ID", "yesterday"),
        ],
    )
    .await;
    assert_eq!(bad.status, 400);
    let body: Value = serde_json::from_slice(&bad.body).expect("a JSON error");
    assert_eq!(body["error"]["code"], "invalid_command");
}
