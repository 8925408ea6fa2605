//! Every request but `/healthz` needs a valid token (protocol.md §3); the operator address's
//! `/healthz` and `/metrics` need none either (it is for operators' networks, security.md H-I4).

use serde_json::json;

use crate::http::{self, Body};
use crate::support::{now_seconds, raw_token, responder, token, TestGateway, SECRET};

#[tokio::test]
async fn requests_without_a_valid_token_are_401() {
    let gateway = TestGateway::start().await;
    // A projector that would answer, so that a 401 cannot be a 503 in disguise.
    let rooms = responder(&gateway.bus, "parlor.query.rooms", |_, _| {
        Some(json!({"ok": true, "position": 1, "data": {"rooms": [], "next_cursor": null}}))
    })
    .await;

    let none = http::send(gateway.addr, "GET", "/v1/rooms", &[], Body::None).await;
    assert_eq!(none.status, 401);
    assert_eq!(none.error_code(), "unauthorized");
    assert!(none.json()["error"]["message"].is_string());

    let expired = raw_token(SECRET, &json!({"sub": "alice", "exp": now_seconds() - 10}));
    let bad_signature = raw_token(
        "another secret",
        &json!({"sub": "alice", "exp": now_seconds() + 600}),
    );
    let no_exp = raw_token(SECRET, &json!({"sub": "alice"}));
    let bad_role = raw_token(
        SECRET,
        &json!({"sub": "alice", "exp": now_seconds() + 600, "role": "admin"}),
    );
    // A user token cannot pose as a service, nor a service token as a user.
    let user_as_service = raw_token(
        SECRET,
        &json!({"sub": "service:x", "exp": now_seconds() + 600}),
    );
    let service_as_user = raw_token(
        SECRET,
        &json!({"sub": "alice", "exp": now_seconds() + 600, "role": "service"}),
    );
    for (what, token) in [
        ("expired", expired.as_str()),
        ("bad signature", bad_signature.as_str()),
        ("malformed", "not.a.jwt"),
        ("garbage", "%%%"),
        ("no exp", no_exp.as_str()),
        ("unknown role", bad_role.as_str()),
        ("user posing as a service", user_as_service.as_str()),
        ("service posing as a user", service_as_user.as_str()),
    ] {
        let response = gateway.get("/v1/rooms", token).await;
        assert_eq!(response.status, 401, "{what}");
        assert_eq!(response.error_code(), "unauthorized", "{what}");
    }
    let basic = http::send(
        gateway.addr,
        "GET",
        "/v1/rooms",
        &[("Authorization", "Basic YWxpY2U6cHc=")],
        Body::None,
    )
    .await;
    assert_eq!(basic.status, 401);
    // Uploads are refused before a byte of the body is read.
    let upload = http::send(
        gateway.addr,
        "POST",
        "/v1/files",
        &[],
        Body::DeclaredOnly(1 << 40),
    )
    .await;
    assert_eq!(upload.status, 401);
    assert_eq!(rooms.len(), 0, "nothing reached the projector");

    let fine = gateway.get("/v1/rooms", &token("alice")).await;
    assert_eq!(fine.status, 200);
    // The dev clock moves the rules, never token expiry.
    gateway.clock.advance(10 * 3600 * 1000).unwrap();
    assert_eq!(gateway.get("/v1/rooms", &token("alice")).await.status, 200);
    gateway.stop().await;
}

#[tokio::test]
async fn healthz_and_metrics_need_no_token() {
    let gateway = TestGateway::start().await;
    let health = http::send(gateway.addr, "GET", "/healthz", &[], Body::None).await;
    // No writer on this bus: down, but answered.
    assert_eq!(health.status, 503);
    assert_eq!(health.json()["status"], "down");
    let metrics = http::send(gateway.ops(), "GET", "/metrics", &[], Body::None).await;
    assert_eq!(metrics.status, 200);
    gateway.stop().await;
}

#[tokio::test]
async fn unknown_paths_and_methods_get_json_errors() {
    let gateway = TestGateway::start().await;
    let missing = gateway.get("/v1/nope", &token("alice")).await;
    assert_eq!(missing.status, 404);
    assert_eq!(missing.error_code(), "not_found");
    let wrong_method = http::send(gateway.addr, "DELETE", "/v1/rooms", &[], Body::None).await;
    assert_eq!(wrong_method.status, 405);
    assert_eq!(wrong_method.error_code(), "method_not_allowed");
    gateway.stop().await;
}
