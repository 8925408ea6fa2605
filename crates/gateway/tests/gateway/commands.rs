//! `POST /v1/commands/{type}`: the §1 envelope built from the token and headers, the service
//! commands, and the reply passed through with the status of its code.

use serde_json::{json, Value};

use crate::http::Body;
use crate::support::{refused, responder, service_token, token, TestGateway};

/// A fake writer: refuses with the code named in `data.refuse`, else accepts at position 42.
async fn fake_writer(gateway: &TestGateway) -> crate::support::Recorded {
    responder(&gateway.bus, "parlor.cmd.>", |_, request| {
        Some(match request["data"]["refuse"].as_str() {
            Some(code) => refused(code),
            None => json!({
                "ok": true,
                "position": 42,
                "events": [{"position": 42, "stream": "room-x", "version": 1, "type": "message_sent"}],
                "result": {"room_id": "0192f0c1-7a3e-7cc4-9a51-5c2d7e0f4b11"}
            }),
        })
    })
    .await
}

#[tokio::test]
async fn a_command_is_forwarded_in_the_envelope_and_its_reply_returned_unchanged() {
    let gateway = TestGateway::start().await;
    let writer = fake_writer(&gateway).await;
    let body = br#"{"room_id": "0192f0c1-7a3e-7cc4-9a51-5c2d7e0f4b11", "body": "hello"}"#;
    let response = gateway
        .post(
            "/v1/commands/message.send",
            &token("alice"),
            &[],
            Body::Bytes(body),
        )
        .await;
    assert_eq!(
        response.status,
        200,
        "{}",
        String::from_utf8_lossy(&response.body)
    );
    assert_eq!(response.header("content-type"), Some("application/json"));
    let reply = response.json();
    assert_eq!(reply["ok"], true);
    assert_eq!(reply["position"], 42);
    assert_eq!(reply["events"][0]["type"], "message_sent");

    let (subject, envelope) = writer.all().pop().unwrap();
    assert_eq!(subject, "parlor.cmd.message.send");
    assert_eq!(envelope["actor"], "alice", "the actor is the token's sub");
    assert_eq!(envelope["client"], "desktop");
    assert_eq!(envelope["data"]["body"], "hello");
    let command_id = envelope["command_id"].as_str().unwrap();
    assert!(uuid::Uuid::parse_str(command_id).is_ok());
    assert_eq!(response.header("parlor-command-id"), Some(command_id));
    gateway.stop().await;
}

#[tokio::test]
async fn the_reply_body_is_passed_through_byte_for_byte() {
    let gateway = TestGateway::start().await;
    // Odd but valid JSON spacing and key order: the gateway must not re-encode it.
    let mut subscription = gateway.bus.subscribe("parlor.cmd.>").await.unwrap();
    let bus = gateway.bus.clone();
    let exact = r#"{"ok":true,"position":7,"events":[],"result":{"call_id":"0192f0c1-7a3e-7cc4-9a51-5c2d7e0f4b11"}}"#;
    tokio::spawn(async move {
        while let Some(message) = subscription.next().await {
            let _ = bus.respond(&message, bus::Headers::new(), exact).await;
        }
    });
    let response = gateway
        .post(
            "/v1/commands/call.start",
            &token("alice"),
            &[],
            Body::Bytes(b"{}"),
        )
        .await;
    assert_eq!(response.status, 200);
    assert_eq!(response.body, exact.as_bytes());
    gateway.stop().await;
}

#[tokio::test]
async fn each_error_code_gets_its_status() {
    let gateway = TestGateway::start().await;
    fake_writer(&gateway).await;
    for (code, status) in [
        ("invalid_command", 400),
        ("forbidden", 403),
        ("not_found", 404),
        ("not_member", 404),
        ("version_conflict", 409),
        ("duplicate_message_id", 409),
        ("already_deleted", 409),
        ("call_in_progress", 409),
        ("file_too_large", 413),
        ("edit_window_expired", 422),
        ("contact_info_outside_contract", 422),
        ("blocked", 422),
        ("daily_conversation_limit", 429),
        ("unavailable", 503),
    ] {
        let body = json!({"refuse": code}).to_string();
        let response = gateway
            .post(
                "/v1/commands/message.edit",
                &token("alice"),
                &[],
                Body::Bytes(body.as_bytes()),
            )
            .await;
        assert_eq!(response.status, status, "{code}");
        assert_eq!(
            response.json(),
            refused(code),
            "{code}: the reply, unchanged"
        );
    }
    gateway.stop().await;
}

#[tokio::test]
async fn headers_set_the_command_id_and_client() {
    let gateway = TestGateway::start().await;
    let writer = fake_writer(&gateway).await;
    let key = "0192f0c1-7a3e-7cc4-9a51-5c2d7e0f4b99";
    let response = gateway
        .post(
            "/v1/commands/room.archive",
            &token("alice"),
            &[
                ("Idempotency-Key", key),
                ("X-Client", "mobile_web"),
                ("X-Correlation-Id", "trace-1"),
            ],
            Body::Bytes(br#"{"room_id": "0192f0c1-7a3e-7cc4-9a51-5c2d7e0f4b11", "on": true}"#),
        )
        .await;
    assert_eq!(response.status, 200);
    assert_eq!(response.header("parlor-command-id"), Some(key));
    let envelope = writer.last();
    assert_eq!(envelope["command_id"], key);
    assert_eq!(envelope["client"], "mobile_web");
    assert_eq!(envelope["correlation_id"], "trace-1");

    // The same key twice reaches the writer twice, with the same id: the writer deduplicates.
    gateway
        .post(
            "/v1/commands/room.archive",
            &token("alice"),
            &[("Idempotency-Key", key)],
            Body::Bytes(b"{}"),
        )
        .await;
    assert_eq!(writer.last()["command_id"], key);

    for (name, value) in [("Idempotency-Key", "not-a-uuid"), ("X-Client", "fridge")] {
        let response = gateway
            .post(
                "/v1/commands/room.archive",
                &token("alice"),
                &[(name, value)],
                Body::Bytes(b"{}"),
            )
            .await;
        assert_eq!(response.status, 400, "{name}");
        assert_eq!(response.json()["ok"], false);
        assert_eq!(response.error_code(), "invalid_command");
    }
    gateway.stop().await;
}

#[tokio::test]
async fn malformed_bodies_and_types_are_400_before_the_writer() {
    let gateway = TestGateway::start().await;
    let writer = fake_writer(&gateway).await;
    for (what, path, body) in [
        ("not JSON", "/v1/commands/message.send", &b"{nope"[..]),
        ("an array", "/v1/commands/message.send", b"[1, 2]"),
        ("a string", "/v1/commands/message.send", b"\"hi\""),
        ("unknown type", "/v1/commands/message.shout", b"{}"),
    ] {
        let response = gateway
            .post(path, &token("alice"), &[], Body::Bytes(body))
            .await;
        assert_eq!(response.status, 400, "{what}");
        assert_eq!(response.error_code(), "invalid_command", "{what}");
        assert_eq!(response.json()["ok"], false, "{what}");
    }
    assert_eq!(writer.len(), 0);

    // An empty body is `{}` (user.clear_out_of_office takes no data).
    let response = gateway
        .post(
            "/v1/commands/user.clear_out_of_office",
            &token("alice"),
            &[],
            Body::None,
        )
        .await;
    assert_eq!(response.status, 200);
    assert_eq!(writer.last()["data"], json!({}));

    // Over 1 MiB: 413 invalid_command, declared or chunked.
    let big = vec![b' '; 1024 * 1024 + 1];
    let response = gateway
        .post(
            "/v1/commands/message.send",
            &token("alice"),
            &[],
            Body::Bytes(&big),
        )
        .await;
    assert_eq!(response.status, 413);
    assert_eq!(response.error_code(), "invalid_command");
    let chunks = vec![vec![b' '; 256 * 1024]; 5];
    let response = gateway
        .post(
            "/v1/commands/message.send",
            &token("alice"),
            &[],
            Body::Chunked(chunks),
        )
        .await;
    assert_eq!(response.status, 413);
    assert_eq!(writer.len(), 1);
    gateway.stop().await;
}

#[tokio::test]
async fn service_commands_need_a_service_token() {
    let gateway = TestGateway::start().await;
    let writer = fake_writer(&gateway).await;
    let body = br#"{"user_id": "carol", "display_name": "Carol", "kind": "client"}"#;
    for command_type in [
        "user.register",
        "room.open_interview",
        "contract.start",
        "contract.end",
        "file.register",
    ] {
        let response = gateway
            .post(
                &format!("/v1/commands/{command_type}"),
                &token("alice"),
                &[],
                Body::Bytes(body),
            )
            .await;
        assert_eq!(response.status, 403, "{command_type}");
        assert_eq!(response.error_code(), "forbidden");
    }
    assert_eq!(writer.len(), 0);

    let response = gateway
        .post(
            "/v1/commands/user.register",
            &service_token("identity"),
            &[],
            Body::Bytes(body),
        )
        .await;
    assert_eq!(response.status, 200);
    let envelope: Value = writer.last();
    assert_eq!(envelope["actor"], "service:identity");
    assert_eq!(envelope["data"]["user_id"], "carol");
    gateway.stop().await;
}

#[tokio::test]
async fn a_missing_or_silent_writer_is_503() {
    let gateway = TestGateway::start().await;
    let response = gateway
        .post(
            "/v1/commands/message.send",
            &token("alice"),
            &[],
            Body::Bytes(b"{}"),
        )
        .await;
    assert_eq!(response.status, 503);
    assert_eq!(response.error_code(), "unavailable");
    assert_eq!(response.json()["ok"], false);

    responder(&gateway.bus, "parlor.cmd.>", |_, _| None).await;
    let response = gateway
        .post(
            "/v1/commands/message.send",
            &token("alice"),
            &[],
            Body::Bytes(b"{}"),
        )
        .await;
    assert_eq!(response.status, 503);

    // A reply that is not a §1 reply is the writer's fault: 502.
    let gateway = TestGateway::start().await;
    responder(&gateway.bus, "parlor.cmd.>", |_, _| {
        Some(json!({"surprise": 1}))
    })
    .await;
    let response = gateway
        .post(
            "/v1/commands/message.send",
            &token("alice"),
            &[],
            Body::Bytes(b"{}"),
        )
        .await;
    assert_eq!(response.status, 502);
    gateway.stop().await;
}
