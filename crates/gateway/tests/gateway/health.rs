//! `/healthz` (public: up or down; operator address: each part), `/metrics` (operator address
//! only, security.md H-I4) and presence heartbeats.

use serde_json::json;

use crate::http::{self, Body};
use crate::support::{answer, responder, service_token, token, TestGateway};

async fn fake_writer_ping(gateway: &TestGateway) {
    responder(&gateway.bus, "parlor.writer.ping", |_, _| {
        Some(json!({"head": 1042}))
    })
    .await;
}

async fn fake_status(gateway: &TestGateway, model: &'static str, position: u64) {
    responder(
        &gateway.bus,
        &format!("parlor.query.{model}"),
        move |_, request| {
            assert_eq!(request["op"], "status");
            Some(answer(
                position,
                json!({"name": model, "position": position}),
            ))
        },
    )
    .await;
}

#[tokio::test]
async fn healthz_reports_each_part() {
    let gateway = TestGateway::start().await;
    fake_writer_ping(&gateway).await;
    for (model, position) in [
        ("rooms", 1040),
        ("timeline", 1041),
        ("files", 1042),
        ("search", 1000),
    ] {
        fake_status(&gateway, model, position).await;
    }
    // Moderation is missing: degraded, still 200.
    let health = http::send(gateway.ops(), "GET", "/healthz", &[], Body::None).await;
    assert_eq!(health.status, 200);
    let body = health.json();
    assert_eq!(body["status"], "degraded");
    assert_eq!(
        body["parts"]["writer"],
        json!({"status": "up", "position": 1042})
    );
    assert_eq!(
        body["parts"]["rooms"],
        json!({"status": "up", "position": 1040})
    );
    assert_eq!(body["parts"]["search"]["position"], 1000);
    assert_eq!(body["parts"]["moderation"]["status"], "down");

    fake_status(&gateway, "moderation", 1042).await;
    let health = http::send(gateway.ops(), "GET", "/healthz", &[], Body::None).await;
    assert_eq!(health.status, 200);
    assert_eq!(health.json()["status"], "ok");
    gateway.stop().await;
}

#[tokio::test]
async fn h_i4_public_healthz_says_only_up_or_down_and_metrics_are_on_the_ops_address_only() {
    let gateway = TestGateway::start().await;
    // No writer yet: down, and nothing else.
    let down = http::send(gateway.addr, "GET", "/healthz", &[], Body::None).await;
    assert_eq!(down.status, 503);
    assert_eq!(down.json(), json!({"status": "down"}));
    fake_writer_ping(&gateway).await;
    fake_status(&gateway, "rooms", 1040).await;
    let up = http::send(gateway.addr, "GET", "/healthz", &[], Body::None).await;
    assert_eq!(up.status, 200);
    assert_eq!(up.json(), json!({"status": "up"}), "no positions, no parts");
    let text = String::from_utf8(up.body.clone()).unwrap();
    assert!(!text.contains("1042") && !text.contains("1040"), "{text}");
    // The parts and their positions are the operator's.
    let parts = http::send(gateway.ops(), "GET", "/healthz", &[], Body::None).await;
    assert_eq!(parts.json()["parts"]["writer"]["position"], 1042);
    // /metrics: not on the public address, on the operator address.
    let public = http::send(gateway.addr, "GET", "/metrics", &[], Body::None).await;
    assert_eq!(public.status, 404);
    let ops = http::send(gateway.ops(), "GET", "/metrics", &[], Body::None).await;
    assert_eq!(ops.status, 200);
    assert!(String::from_utf8(ops.body)
        .unwrap()
        .contains("parlor_gateway_http_requests_total"));
    // The operator address serves nothing of the API.
    let api = http::send(gateway.ops(), "GET", "/v1/rooms", &[], Body::None).await;
    assert_eq!(api.status, 404);
    gateway.stop().await;
}

#[tokio::test]
async fn h_i4_the_ops_address_can_be_off() {
    let gateway = TestGateway::start_with(bus::Bus::in_process(), |config| {
        config.ops_addr = None;
    })
    .await;
    assert_eq!(gateway.ops_addr, None);
    let metrics = http::send(gateway.addr, "GET", "/metrics", &[], Body::None).await;
    assert_eq!(metrics.status, 404);
    gateway.stop().await;
}

#[tokio::test]
async fn metrics_count_requests_per_route() {
    let gateway = TestGateway::start().await;
    responder(&gateway.bus, "parlor.query.rooms", |_, _| {
        Some(answer(1, json!({"rooms": []})))
    })
    .await;
    let room = "0192f0c1-7a3e-7cc4-9a51-5c2d7e0f4b11";
    gateway.get("/v1/rooms", &token("alice")).await;
    gateway
        .get(&format!("/v1/rooms/{room}"), &token("alice"))
        .await;
    let metrics = http::send(gateway.ops(), "GET", "/metrics", &[], Body::None).await;
    assert_eq!(metrics.status, 200);
    assert!(metrics
        .header("content-type")
        .unwrap()
        .starts_with("text/plain"));
    let text = String::from_utf8(metrics.body).unwrap();
    assert!(
        text.contains("parlor_gateway_http_requests_total"),
        "{text}"
    );
    // Routes are labelled by template, never by the raw path.
    assert!(text.contains(r#"route="/v1/rooms/{room_id}""#), "{text}");
    assert!(!text.contains(room), "{text}");
    assert!(
        text.contains("parlor_gateway_http_request_duration_seconds"),
        "{text}"
    );
    gateway.stop().await;
}

#[tokio::test]
async fn a_heartbeat_is_204_once_presence_has_it() {
    let gateway = TestGateway::start().await;
    let presence = responder(&gateway.bus, "parlor.presence.heartbeat", |_, _| {
        Some(json!({"ok": true}))
    })
    .await;
    // The heartbeat carries the dev clock's time, which drives presence.
    gateway.clock.advance(3_600_000).unwrap();
    let response = gateway
        .post("/v1/presence/heartbeat", &token("alice"), &[], Body::None)
        .await;
    assert_eq!(response.status, 204);
    let heartbeat = presence.last();
    assert_eq!(heartbeat["user_id"], "alice");
    let at_ms = heartbeat["at_ms"].as_i64().unwrap();
    let expected = clock::real_now_ms() + 3_600_000;
    assert!((at_ms - expected).abs() < 60_000, "{at_ms} vs {expected}");

    let response = gateway
        .post(
            "/v1/presence/heartbeat",
            &service_token("x"),
            &[],
            Body::None,
        )
        .await;
    assert_eq!(response.status, 403);

    let lonely = TestGateway::start().await;
    let response = lonely
        .post("/v1/presence/heartbeat", &token("alice"), &[], Body::None)
        .await;
    assert_eq!(response.status, 503);
    assert_eq!(response.error_code(), "unavailable");
    lonely.stop().await;
    gateway.stop().await;
}
