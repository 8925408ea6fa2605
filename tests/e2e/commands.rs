//! Commands over NATS: every error code a caller can meet, idempotent resends, raw payloads.

use serde_json::json;
use uuid::Uuid;

use crate::harness::{json_headers, System};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_error_code_is_reachable_from_outside() {
    let system = System::start_with(&["--daily-conversation-limit", "2"]).await;
    let c = &system.client;
    // The daily limit counts per UTC day: move the development clock to 06:00 UTC (today's or
    // tomorrow's, it only goes forward), so no midnight falls inside the test.
    const DAY_MS: i64 = 86_400_000;
    let now_ms = c.advance_clock(0).await;
    c.advance_clock((DAY_MS + 6 * 3_600_000 - now_ms.rem_euclid(DAY_MS)) % DAY_MS)
        .await;
    c.register(&["alice", "bob", "carol", "dave", "erin"]).await;

    // invalid_command: an unknown type, and a body that is not JSON.
    assert_eq!(
        c.code("alice", "message.shout", json!({})).await,
        "invalid_command"
    );
    let raw = c
        .raw("message.send", json_headers(), b"{not json".to_vec())
        .await
        .unwrap();
    let reply: serde_json::Value = serde_json::from_slice(&raw).unwrap();
    assert_eq!(reply["error"]["code"], "invalid_command");
    // forbidden: a user sending a service command.
    let register = json!({"user_id": "mallory", "display_name": "M", "kind": "client"});
    assert_eq!(
        c.code("alice", "user.register", register).await,
        "forbidden"
    );
    // not_found: an unknown user.
    assert_eq!(
        c.code("alice", "user.block", json!({"user_id": "nobody"}))
            .await,
        "not_found"
    );

    let group = c
        .ok(
            "alice",
            "room.create",
            json!({"name": "Team", "members": ["bob"]}),
        )
        .await;
    let group = group["result"]["room_id"].as_str().unwrap().to_owned();
    // not_member.
    assert_eq!(
        c.code(
            "carol",
            "message.send",
            json!({"room_id": group, "body": "hi"})
        )
        .await,
        "not_member"
    );
    let sent = c
        .ok(
            "alice",
            "message.send",
            json!({"room_id": group, "body": "hello"}),
        )
        .await;
    let message = sent["result"]["message_id"].as_str().unwrap().to_owned();
    // not_author.
    let edit = json!({"room_id": group, "message_id": message, "body": "mine now"});
    assert_eq!(c.code("bob", "message.edit", edit).await, "not_author");
    // contact_info_outside_contract.
    let leak = json!({"room_id": group, "body": "write to alice@example.com"});
    assert_eq!(
        c.code("alice", "message.send", leak).await,
        "contact_info_outside_contract"
    );
    // body_too_long and empty_message.
    let long = json!({"room_id": group, "body": "x".repeat(5_001)});
    assert_eq!(c.code("alice", "message.send", long).await, "body_too_long");
    assert_eq!(
        c.code(
            "alice",
            "message.send",
            json!({"room_id": group, "body": "  "})
        )
        .await,
        "empty_message"
    );
    // duplicate_message_id.
    let fixed = Uuid::new_v4();
    c.ok(
        "alice",
        "message.send",
        json!({"room_id": group, "message_id": fixed, "body": "one"}),
    )
    .await;
    let again = json!({"room_id": group, "message_id": fixed, "body": "two"});
    assert_eq!(
        c.code("bob", "message.send", again).await,
        "duplicate_message_id"
    );
    // already_deleted.
    let delete = json!({"room_id": group, "message_id": fixed});
    c.ok("alice", "message.delete", delete.clone()).await;
    assert_eq!(
        c.code("alice", "message.delete", delete).await,
        "already_deleted"
    );
    // call_in_progress.
    c.ok(
        "alice",
        "call.start",
        json!({"room_id": group, "media": "audio"}),
    )
    .await;
    assert_eq!(
        c.code(
            "bob",
            "call.start",
            json!({"room_id": group, "media": "video"})
        )
        .await,
        "call_in_progress"
    );
    // cannot_hide_kind, platform_not_supported.
    assert_eq!(
        c.code("alice", "room.hide", json!({"room_id": group, "on": true}))
            .await,
        "cannot_hide_kind"
    );
    let archive = c
        .send_as(
            Uuid::new_v4(),
            "alice",
            "mobile_app",
            "room.archive",
            json!({"room_id": group, "on": true}),
        )
        .await;
    assert_eq!(archive["error"]["code"], "platform_not_supported");
    // file_too_large.
    let huge = json!({"file_id": Uuid::new_v4(), "uploader": "alice", "name": "big.iso", "size": 1_073_741_825u64,
        "content_type": "application/octet-stream", "sha256": "0".repeat(64)});
    assert_eq!(
        c.code("service:gateway", "file.register", huge).await,
        "file_too_large"
    );

    // Direct rooms: cannot_add_to_direct, cannot_archive_kind, blocked, daily_conversation_limit.
    let direct = c
        .ok(
            "alice",
            "message.send",
            json!({"to": "carol", "body": "hi carol"}),
        )
        .await;
    let direct = direct["result"]["room_id"].as_str().unwrap().to_owned();
    assert_eq!(
        c.code(
            "alice",
            "room.add_member",
            json!({"room_id": direct, "user_id": "dave"})
        )
        .await,
        "cannot_add_to_direct"
    );
    assert_eq!(
        c.code(
            "alice",
            "room.archive",
            json!({"room_id": direct, "on": true})
        )
        .await,
        "cannot_archive_kind"
    );
    c.ok("carol", "user.block", json!({"user_id": "alice"}))
        .await;
    assert_eq!(
        c.code(
            "alice",
            "message.send",
            json!({"room_id": direct, "body": "?"})
        )
        .await,
        "blocked"
    );
    // alice started two conversations today (the group and the direct room): the limit is 2.
    assert_eq!(
        c.code("alice", "message.send", json!({"to": "dave", "body": "hi"}))
            .await,
        "daily_conversation_limit"
    );

    // edit_window_expired and delete_window_expired, an hour later by the development clock.
    c.advance_clock(3_600_000).await;
    let edit = json!({"room_id": group, "message_id": message, "body": "late"});
    assert_eq!(
        c.code("alice", "message.edit", edit).await,
        "edit_window_expired"
    );
    let delete = json!({"room_id": group, "message_id": message});
    assert_eq!(
        c.code("alice", "message.delete", delete).await,
        "delete_window_expired"
    );
    // forbidden: a service sending another service's command (H-I2).
    let register = json!({"user_id": "mallory", "display_name": "M", "kind": "client"});
    assert_eq!(
        c.code("service:hiring", "user.register", register).await,
        "forbidden"
    );
    // duplicate_command_id: another actor reusing an accepted command's id (H-I1).
    let id = Uuid::new_v4();
    let visible = json!({"visible": false});
    let first = c
        .send_as(
            id,
            "bob",
            "desktop",
            "user.set_online_visibility",
            visible.clone(),
        )
        .await;
    assert_eq!(first["ok"], true, "{first}");
    let reused = c
        .send_as(id, "dave", "desktop", "user.set_online_visibility", visible)
        .await;
    assert_eq!(reused["error"]["code"], "duplicate_command_id", "{reused}");

    // A new UTC day may have begun meanwhile; either way the limit is per day, not forever.
    // (`version_conflict` needs an expected version, which no public command carries, and
    // `unavailable` needs a failing disk or an overload: see the reliability tests.)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_resent_command_gets_the_first_reply_byte_for_byte() {
    let system = System::start().await;
    let c = &system.client;
    c.register(&["alice", "bob"]).await;
    let id = Uuid::new_v4();
    let envelope = |body: &str| {
        serde_json::to_vec(
            &json!({"command_id": id, "actor": "alice", "data": {"to": "bob", "body": body}}),
        )
        .unwrap()
    };
    let first = c
        .raw("message.send", json_headers(), envelope("hello"))
        .await
        .unwrap();
    let second = c
        .raw("message.send", json_headers(), envelope("hello"))
        .await
        .unwrap();
    let other_payload = c
        .raw("message.send", json_headers(), envelope("something else"))
        .await
        .unwrap();
    assert_eq!(first, second);
    assert_eq!(
        first, other_payload,
        "even another payload gets the first reply"
    );
    let log = c.whole_log().await;
    let sent: Vec<_> = log.iter().filter(|e| e["type"] == "message_sent").collect();
    assert_eq!(sent.len(), 1, "appended once");

    // A rejected command is not remembered: its id may be decided afresh.
    let retry = Uuid::new_v4();
    let reply = c
        .send_as(
            retry,
            "carol",
            "desktop",
            "message.send",
            json!({"to": "bob", "body": "hi"}),
        )
        .await;
    assert_eq!(reply["error"]["code"], "not_found");
    c.register(&["carol"]).await;
    let reply = c
        .send_as(
            retry,
            "carol",
            "desktop",
            "message.send",
            json!({"to": "bob", "body": "hi"}),
        )
        .await;
    assert_eq!(reply["ok"], true, "{reply}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn h_i1_a_command_id_belongs_to_the_actor_and_type_that_first_used_it() {
    let system = System::start().await;
    let c = &system.client;
    c.register(&["alice", "bob", "mallory"]).await;
    let id = Uuid::new_v4();
    let envelope = |actor: &str| {
        serde_json::to_vec(
            &json!({"command_id": id, "actor": actor, "data": {"to": "bob", "body": "hello"}}),
        )
        .unwrap()
    };
    let first = c
        .raw("message.send", json_headers(), envelope("alice"))
        .await
        .unwrap();
    // Another actor with the same id, even the same payload: refused, nothing of alice's reply.
    let stolen = c
        .raw("message.send", json_headers(), envelope("mallory"))
        .await
        .unwrap();
    let refused: serde_json::Value = serde_json::from_slice(&stolen).unwrap();
    assert_eq!(
        refused["error"]["code"], "duplicate_command_id",
        "{refused}"
    );
    let first_json: serde_json::Value = serde_json::from_slice(&first).unwrap();
    let room = first_json["result"]["room_id"].as_str().unwrap();
    assert!(
        !String::from_utf8_lossy(&stolen).contains(room),
        "the refusal names nothing of the first command"
    );
    // The same actor with another type: refused too.
    let other_type = c
        .send_as(
            id,
            "alice",
            "desktop",
            "user.block",
            json!({"user_id": "bob"}),
        )
        .await;
    assert_eq!(other_type["error"]["code"], "duplicate_command_id");
    // Alice's resend still gets her reply byte for byte.
    let again = c
        .raw("message.send", json_headers(), envelope("alice"))
        .await
        .unwrap();
    assert_eq!(again, first);
    let log = c.whole_log().await;
    assert!(
        !log.iter().any(|event| event["type"] == "user_blocked"),
        "the refused command appended nothing"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn h_i2_each_service_sends_only_its_own_commands_and_a_file_changes_the_table() {
    // Defaults: identity registers users, hiring does not.
    let system = System::start().await;
    let c = &system.client;
    c.register(&["alice", "bob"]).await;
    let register = json!({"user_id": "carol", "display_name": "C", "kind": "client"});
    assert_eq!(
        c.code("service:hiring", "user.register", register.clone())
            .await,
        "forbidden"
    );
    let interview = json!({"interview_id": "i-1", "title": "Interview", "client": "alice", "freelancer": "bob"});
    assert_eq!(
        c.code("service:identity", "room.open_interview", interview.clone())
            .await,
        "forbidden"
    );
    c.ok("service:hiring", "room.open_interview", interview)
        .await;
    drop(system);

    // An operator's file replaces the table: only `service:onboarding` registers users now.
    let directory = tempfile::tempdir().unwrap();
    let file = directory.path().join("services.toml");
    std::fs::write(&file, "[services]\nonboarding = [\"user.register\"]\n").unwrap();
    let system = System::start_with(&["--services", file.to_str().unwrap()]).await;
    let c = &system.client;
    c.ok("service:onboarding", "user.register", register.clone())
        .await;
    let register = json!({"user_id": "dave", "display_name": "D", "kind": "client"});
    assert_eq!(
        c.code("service:identity", "user.register", register).await,
        "forbidden"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_payloads_are_invalid_commands_never_silence() {
    let system = System::start().await;
    let c = &system.client;
    let cases: Vec<(&str, Vec<u8>)> = vec![
        ("message.send", vec![0xff, 0xfe, 0x00]),
        ("message.send", b"[]".to_vec()),
        ("message.send", br#"{"command_id": "nope", "actor": "alice", "data": {}}"#.to_vec()),
        ("message.send", br#"{"command_id": "0192f0c1-7a3e-7cc4-9a51-5c2d7e0f4b11", "actor": "al ice", "data": {}}"#.to_vec()),
        ("room.favorite", br#"{"command_id": "0192f0c1-7a3e-7cc4-9a51-5c2d7e0f4b11", "actor": "alice", "data": {"room_id": "x", "on": "yes"}}"#.to_vec()),
        ("user.set_online_visibility", br#"{"command_id": "0192f0c1-7a3e-7cc4-9a51-5c2d7e0f4b12", "actor": "alice", "data": {"visible": 1e999}}"#.to_vec()),
        ("nonsense", b"{}".to_vec()),
        ("message.send", "[".repeat(100_000).into_bytes()),
    ];
    for (command_type, payload) in cases {
        let raw = c
            .raw(command_type, json_headers(), payload.clone())
            .await
            .expect("a reply, never silence");
        let reply: serde_json::Value = serde_json::from_slice(&raw).unwrap();
        assert_eq!(reply["ok"], false);
        assert_eq!(
            reply["error"]["code"], "invalid_command",
            "{command_type}: {reply}"
        );
    }
    // Bincode garbage is answered too, in bincode.
    let headers = bus::Headers::new().with("Content-Type", "application/x-bincode");
    let raw = c
        .raw("message.send", headers, vec![1, 2, 3])
        .await
        .expect("a reply");
    assert!(!raw.is_empty());
    // The writer is still up.
    c.register(&["alice"]).await;
}

/// H-C1 through the real binary: contact details hidden with Unicode tricks are refused like
/// plain ones, in a message body and in a room name, while ordinary multilingual text with
/// numbers in other scripts is accepted.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn h_c1_tricked_contact_details_are_refused_end_to_end() {
    let system = System::start().await;
    let c = &system.client;
    c.register(&["alice", "bob"]).await;
    let group = c
        .ok(
            "alice",
            "room.create",
            json!({"name": "Team", "members": ["bob"]}),
        )
        .await;
    let group = group["result"]["room_id"].as_str().unwrap().to_owned();
    for body in [
        "write to alice\u{200B}@gmail.com",
        "call +1\u{2011}415\u{2011}555\u{2011}0134",
        "\u{430}lice@gm\u{430}il.com",
        "a l i c e @ g m a i l . c o m",
        "call me \u{661}\u{664}\u{661}\u{665} \u{665}\u{665}\u{665} \u{660}\u{661}\u{663}\u{664}",
    ] {
        assert_eq!(
            c.code(
                "alice",
                "message.send",
                json!({"room_id": group, "body": body})
            )
            .await,
            "contact_info_outside_contract",
            "{body:?}"
        );
        assert_eq!(
            c.code(
                "alice",
                "room.create",
                json!({"name": body, "members": ["bob"]})
            )
            .await,
            "contact_info_outside_contract",
            "{body:?}"
        );
    }
    c.ok(
        "alice",
        "message.send",
        json!({"room_id": group, "body": "Цена 8 000 грн — встреча ٢٧/١١ в 14:30, I am a b c"}),
    )
    .await;
}
