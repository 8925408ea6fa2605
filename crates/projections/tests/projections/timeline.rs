//! The timeline read model, applied straight from a log: tombstones (R-M4), edits (R-M3),
//! replies (R-M2), attachments (R-F1), automatic replies (R-A2), calls (R-K1), and who may
//! read (R-R4, R-R6).

use domain::{Action, AttachmentRef, CallMedia, Event, MessageId, RoomId};
use projections::{QueryError, Timeline};
use serde_json::{json, Value};

use crate::support::{answer, ask, rebuilt, user, World, HOUR, MINUTE};

fn timeline(world: &World) -> Timeline {
    rebuilt(Timeline::temporary().unwrap(), &world.log)
}

fn messages(model: &Timeline, caller: &str, room: RoomId) -> Vec<Value> {
    let data = answer(
        model,
        json!({"op": "messages", "caller": caller, "room_id": room.to_string(), "limit": 200}),
        domain::Timestamp::from_millis(0),
    );
    data["messages"].as_array().unwrap().clone()
}

fn find(messages: &[Value], id: impl ToString) -> Value {
    let id = id.to_string();
    messages
        .iter()
        .find(|m| m["message_id"] == id.as_str())
        .unwrap_or_else(|| panic!("message {id} not listed"))
        .clone()
}

#[test]
fn messages_show_edits_tombstones_replies_attachments_and_calls() {
    let mut world = World::new();
    let group = world.group("alice", "Team", &["bob"]);
    let first = world.say("alice", group, "original text");
    world.advance(MINUTE);
    world.ok(
        "alice",
        Action::EditMessage {
            room_id: group,
            message_id: first,
            body: "edited text".into(),
        },
    );
    let doomed = world.say("bob", group, "secret body");
    let png = world.upload("bob", "design.png", "image/png");
    let pdf = world.upload("bob", "spec.pdf", "application/pdf");
    let files = world.send(
        "bob",
        group,
        "files",
        None,
        vec![
            AttachmentRef::File(png),
            AttachmentRef::File(pdf),
            AttachmentRef::Link("https://www.dropbox.com/s/x/a.zip".into()),
        ],
    );
    let live_reply = world.send("alice", group, "answering", Some(first), vec![]);
    let dead_reply = world.send("alice", group, "about that", Some(doomed), vec![]);
    world.ok(
        "bob",
        Action::DeleteMessage {
            room_id: group,
            message_id: doomed,
        },
    );
    let started = world.ok(
        "alice",
        Action::StartCall {
            room_id: group,
            media: CallMedia::Video,
        },
    );
    let Event::CallStarted { call_id, .. } = started[0].event else {
        panic!("a call_started")
    };
    world.advance(90_000);
    world.ok(
        "bob",
        Action::EndCall {
            room_id: group,
            call_id,
        },
    );

    let model = timeline(&world);
    let listed = messages(&model, "bob", group);
    let order: Vec<&str> = listed
        .iter()
        .map(|m| m["message_id"].as_str().unwrap())
        .collect();
    let expected: Vec<String> = [
        call_id.0,
        dead_reply.0,
        live_reply.0,
        files.0,
        doomed.0,
        first.0,
    ]
    .iter()
    .map(ToString::to_string)
    .collect();
    assert_eq!(order, expected, "newest first");

    let edited = find(&listed, first);
    assert_eq!(edited["body"], "edited text");
    assert_eq!(edited["edited_at"], "2026-11-27T10:01:00.000Z");
    assert_eq!(edited["sent_at"], "2026-11-27T10:00:00.000Z");
    assert_eq!(edited["kind"], "text");
    assert_eq!(edited["room_id"], group.to_string());

    let tombstone = find(&listed, doomed);
    assert_eq!(tombstone["deleted"], true);
    assert_eq!(tombstone["body"], Value::Null);
    assert_eq!(tombstone["attachments"], json!([]));

    assert_eq!(
        find(&listed, dead_reply)["reply_to"],
        json!({"message_id": doomed.to_string(), "author": "bob", "preview": null, "deleted": true})
    );
    assert_eq!(
        find(&listed, live_reply)["reply_to"],
        json!({"message_id": first.to_string(), "author": "alice", "preview": "edited text", "deleted": false})
    );
    let whole = serde_json::to_string(&listed).unwrap();
    assert!(!whole.contains("secret body"), "a deleted body never leaks");
    assert!(
        !whole.contains("original text"),
        "readers see the latest body only"
    );

    assert_eq!(
        find(&listed, files)["attachments"],
        json!([
            {"type": "file", "file_id": png.0.to_string(), "name": "design.png", "size": 1234,
             "content_type": "image/png", "has_preview": true},
            {"type": "file", "file_id": pdf.0.to_string(), "name": "spec.pdf", "size": 1234,
             "content_type": "application/pdf", "has_preview": false},
            {"type": "link", "url": "https://www.dropbox.com/s/x/a.zip", "provider": "dropbox"},
        ])
    );

    let call = find(&listed, call_id.0);
    assert_eq!(call["kind"], "call");
    assert_eq!(call["author"], "alice");
    assert_eq!(call["body"], Value::Null);
    assert_eq!(
        call["call"],
        json!({"call_id": call_id.0.to_string(), "media": "video",
               "started_at": "2026-11-27T10:01:00.000Z", "ended_at": "2026-11-27T10:02:30.000Z",
               "duration_ms": 90_000})
    );
    assert_eq!(edited["call"], Value::Null);
    let mut keys: Vec<&str> = edited
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    keys.sort_unstable();
    assert_eq!(
        keys,
        [
            "attachments",
            "author",
            "body",
            "call",
            "deleted",
            "edited_at",
            "kind",
            "message_id",
            "reply_to",
            "room_id",
            "sent_at"
        ]
    );
}

#[test]
fn automatic_replies_are_their_own_kind() {
    let mut world = World::new();
    let now = world.now();
    world.ok(
        "bob",
        Action::SetOutOfOffice {
            message: "back monday".into(),
            from: now,
            until: now.plus_millis(HOUR),
        },
    );
    let (direct, ping) = world.direct("alice", "bob", "ping");
    let listed = messages(&timeline(&world), "alice", direct);
    assert_eq!(listed.len(), 2);
    assert_eq!(listed[0]["kind"], "auto_reply");
    assert_eq!(listed[0]["author"], "bob");
    assert_eq!(listed[0]["body"], "back monday");
    assert_eq!(listed[0]["reply_to"]["message_id"], ping.to_string());
    assert_eq!(listed[1]["kind"], "text");
}

#[test]
fn r_r4_new_members_read_the_whole_history_and_r_r6_others_get_not_found() {
    let mut world = World::new();
    let group = world.group("alice", "Team", &["bob", "carol"]);
    let early = world.say("alice", group, "before dave joined");
    world.ok(
        "bob",
        Action::AddMember {
            room_id: group,
            user_id: user("dave"),
        },
    );
    world.ok("carol", Action::LeaveRoom { room_id: group });
    let model = timeline(&world);
    let listed = messages(&model, "dave", group);
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0]["message_id"], early.to_string());
    let request =
        |caller: &str| json!({"op": "messages", "caller": caller, "room_id": group.to_string()});
    let at = domain::Timestamp::from_millis(0);
    assert_eq!(ask(&model, request("carol"), at), Err(QueryError::NotFound));
    assert_eq!(ask(&model, request("zoe"), at), Err(QueryError::NotFound));
    let nowhere = json!({"op": "messages", "caller": "alice",
                         "room_id": "00000000-0000-0000-0000-00000000002a"});
    assert_eq!(ask(&model, nowhere, at), Err(QueryError::NotFound));
    assert!(matches!(
        ask(&model, json!({"op": "messages", "caller": "alice"}), at),
        Err(QueryError::Invalid(_))
    ));
}

#[test]
fn messages_page_by_limit_cursor_and_before() {
    let mut world = World::new();
    let group = world.group("alice", "Team", &["bob"]);
    let sent: Vec<MessageId> = (0..9)
        .map(|n| world.say("alice", group, &format!("m{n}")))
        .collect();
    let model = timeline(&world);
    let at = domain::Timestamp::from_millis(0);
    let mut seen = Vec::new();
    let mut cursor = Value::Null;
    loop {
        let page = answer(
            &model,
            json!({"op": "messages", "caller": "bob", "room_id": group.to_string(),
                   "limit": 4, "cursor": cursor}),
            at,
        );
        for message in page["messages"].as_array().unwrap() {
            seen.push(message["body"].as_str().unwrap().to_owned());
        }
        cursor = page["next_cursor"].clone();
        if cursor.is_null() {
            break;
        }
    }
    let expected: Vec<String> = (0..9).rev().map(|n| format!("m{n}")).collect();
    assert_eq!(seen, expected);
    let before = answer(
        &model,
        json!({"op": "messages", "caller": "bob", "room_id": group.to_string(),
               "before": sent[5].to_string(), "limit": 2}),
        at,
    );
    let bodies: Vec<&str> = before["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["body"].as_str().unwrap())
        .collect();
    assert_eq!(bodies, ["m4", "m3"]);
    assert!(before["next_cursor"].is_string());
}

#[test]
fn h_v2_by_id_renders_named_messages_as_messages_lists_them_and_only_for_members() {
    let mut world = World::new();
    let group = world.group("alice", "Team", &["bob", "carol"]);
    let elsewhere = world.group("alice", "Other", &["dave"]);
    let first = world.say("alice", group, "first draft");
    world.ok(
        "alice",
        Action::EditMessage {
            room_id: group,
            message_id: first,
            body: "first, final".into(),
        },
    );
    let doomed = world.say("bob", group, "secret body");
    world.ok(
        "bob",
        Action::DeleteMessage {
            room_id: group,
            message_id: doomed,
        },
    );
    let other_room = world.say("alice", elsewhere, "not in this room");
    world.ok("carol", Action::LeaveRoom { room_id: group });
    let model = timeline(&world);
    let at = domain::Timestamp::from_millis(0);
    let by_id = |caller: &str, ids: Vec<String>| json!({"op": "by_id", "caller": caller, "room_id": group.to_string(), "message_ids": ids});
    let unknown = "00000000-0000-0000-0000-00000000002a".to_owned();
    let asked = vec![
        doomed.to_string(),
        unknown.clone(),
        other_room.to_string(),
        first.to_string(),
    ];
    let data = answer(&model, by_id("bob", asked.clone()), at);
    let listed = messages(&model, "bob", group);
    assert_eq!(
        data,
        json!({"messages": [find(&listed, doomed), find(&listed, first)]}),
        "in the order asked, exactly as listed; other rooms' and unknown ids left out"
    );
    assert_eq!(data["messages"][0]["body"], Value::Null);
    assert_eq!(data["messages"][1]["body"], "first, final");
    assert_eq!(
        ask(&model, by_id("carol", asked), at),
        Err(QueryError::NotFound)
    );
    let too_many = vec![unknown; protocol::query::PAGE_ITEMS_MAX + 1];
    assert!(matches!(
        ask(&model, by_id("bob", too_many), at),
        Err(QueryError::Invalid(_))
    ));
    assert!(matches!(
        ask(&model, by_id("bob", vec!["nope".into()]), at),
        Err(QueryError::Invalid(_))
    ));
}
