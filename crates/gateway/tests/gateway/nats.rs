//! The same gateway over a real nats-server: commands, reads and live events cross NATS.

use std::time::Duration;

use bus::Bus;
use serde_json::json;

use crate::http::{Body, SseStream};
use crate::support::{
    accepted, answer, message_sent, responder, room, sync_with_server, token, FakeLog, TestGateway,
};

#[tokio::test]
async fn commands_reads_and_events_over_nats() {
    let server = testkit::NatsServer::start();
    let gateway_bus = Bus::connect(&server.url(), "gateway-test").await.unwrap();
    // The fakes use their own connection, as the real services would.
    let services = Bus::connect(&server.url(), "fake-services").await.unwrap();
    let gateway = TestGateway::start_with(gateway_bus, |_| {}).await;

    let writer = responder(&services, "parlor.cmd.>", |_, _| Some(accepted(5))).await;
    let log = FakeLog::start(&services).await;
    let head = log.clone();
    responder(&services, "parlor.query.rooms", move |_, request| {
        Some(match request["op"].as_str() {
            Some("member_rooms") => answer(head.head(), json!({"room_ids": [room(1).to_string()]})),
            Some("get") => answer(head.head(), json!({"room_id": room(1).to_string()})),
            _ => answer(head.head(), json!({"rooms": [], "next_cursor": null})),
        })
    })
    .await;
    // The timeline renders each message the stream learns of from the log.
    let head = log.clone();
    responder(&services, "parlor.query.timeline", move |_, request| {
        let messages: Vec<_> = request["message_ids"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|id| json!({"message_id": id, "body": "over nats", "deleted": false}))
            .collect();
        Some(answer(head.head(), json!({ "messages": messages })))
    })
    .await;
    sync_with_server(&services).await;

    let response = gateway
        .post(
            "/v1/commands/message.send",
            &token("alice"),
            &[],
            Body::Bytes(br#"{"to": "bob", "body": "hi"}"#),
        )
        .await;
    assert_eq!(
        response.status,
        200,
        "{}",
        String::from_utf8_lossy(&response.body)
    );
    assert_eq!(writer.last()["actor"], "alice");
    let response = gateway
        .get("/v1/rooms?min_position=0", &token("alice"))
        .await;
    assert_eq!(response.status, 200);

    let authorization = format!("Bearer {}", token("alice"));
    let mut stream = SseStream::open(
        gateway.addr,
        "/v1/events",
        &[("Authorization", &authorization)],
    )
    .await;
    assert_eq!(stream.status, 200);
    log.append_and_publish(message_sent(room(1), "bob", "over nats"))
        .await;
    let message = stream
        .next(Duration::from_secs(5))
        .await
        .expect("the live message");
    assert_eq!(message.event.as_deref(), Some("message"));
    assert!(message.data.contains("over nats"));
    let room_event = stream.next(Duration::from_secs(5)).await.expect("its room");
    assert_eq!(room_event.event.as_deref(), Some("room"));
    assert_eq!(room_event.position(), 1);
    gateway.stop().await;
}
