//! Reads: parameters are checked before the projector is asked, the caller comes from the token,
//! `min_position` passes through, and projector answers map to statuses.

use serde_json::{json, Value};

use crate::support::{answer, moderator_token, refused, responder, token, Recorded, TestGateway};

const ROOM: &str = "0192f0c1-7a3e-7cc4-9a51-5c2d7e0f4b11";

/// A projector for `model` that answers `data` echoing the request, at position 9.
async fn echo_projector(gateway: &TestGateway, model: &str) -> Recorded {
    responder(
        &gateway.bus,
        &format!("parlor.query.{model}"),
        |_, request| Some(answer(9, json!({"asked": request}))),
    )
    .await
}

#[tokio::test]
async fn each_read_asks_its_projector_with_the_callers_identity() {
    let gateway = TestGateway::start().await;
    for model in ["rooms", "timeline", "files", "search", "moderation"] {
        echo_projector(&gateway, model).await;
    }
    let alice = token("alice");
    let cases: Vec<(String, &str, Value)> = vec![
        (
            "/v1/rooms".into(),
            "list",
            json!({"view": "inbox", "limit": 50, "cursor": null}),
        ),
        (
            "/v1/rooms?view=archived&limit=7&cursor=abc".into(),
            "list",
            json!({"view": "archived", "limit": 7, "cursor": "abc"}),
        ),
        (format!("/v1/rooms/{ROOM}"), "get", json!({"room_id": ROOM})),
        (
            format!("/v1/rooms/{ROOM}/messages?before={ROOM}&limit=200"),
            "messages",
            json!({"room_id": ROOM, "before": ROOM, "limit": 200, "cursor": null}),
        ),
        (
            format!("/v1/rooms/{ROOM}/files?q=report&type=file"),
            "list",
            json!({"room_id": ROOM, "q": "report", "type": "file", "limit": 50, "cursor": null}),
        ),
        (
            "/v1/search?q=hello%20world".into(),
            "search",
            json!({"q": "hello world", "room_id": null, "limit": 20, "cursor": null}),
        ),
        (
            format!("/v1/search?q=x&room_id={ROOM}&limit=3"),
            "search",
            json!({"q": "x", "room_id": ROOM, "limit": 3, "cursor": null}),
        ),
    ];
    for (path, op, params) in cases {
        let response = gateway.get(&path, &alice).await;
        assert_eq!(
            response.status,
            200,
            "{path}: {}",
            String::from_utf8_lossy(&response.body)
        );
        assert_eq!(response.header("parlor-position"), Some("9"), "{path}");
        let asked = &response.json()["asked"];
        assert_eq!(asked["op"], op, "{path}");
        assert_eq!(asked["caller"], "alice", "{path}");
        assert_eq!(asked["moderator"], false, "{path}");
        assert_eq!(asked["min_position"], Value::Null, "{path}");
        for (key, value) in params.as_object().unwrap() {
            assert_eq!(&asked[key], value, "{path}: {key}");
        }
    }
    gateway.stop().await;
}

#[tokio::test]
async fn bad_parameters_are_400_and_never_reach_a_projector() {
    let gateway = TestGateway::start().await;
    let mut projectors = Vec::new();
    for model in ["rooms", "timeline", "files", "search"] {
        projectors.push(echo_projector(&gateway, model).await);
    }
    let alice = token("alice");
    for path in [
        "/v1/rooms?limit=0".to_owned(),
        "/v1/rooms?limit=201".into(),
        "/v1/rooms?limit=ten".into(),
        "/v1/rooms?limit=-1".into(),
        "/v1/rooms?view=everything".into(),
        "/v1/rooms?min_position=soon".into(),
        "/v1/rooms?limit=1&limit=2".into(),
        format!("/v1/rooms?cursor={}", "c".repeat(2000)),
        "/v1/rooms/not-a-room".into(),
        "/v1/rooms/not-a-room/messages".into(),
        format!("/v1/rooms/{ROOM}/messages?before=yesterday"),
        format!("/v1/rooms/{ROOM}/files?type=video"),
        "/v1/search".into(),
        "/v1/search?q=%20%20".into(),
        "/v1/search?q=x&room_id=nope".into(),
        format!("/v1/search?q={}", "x".repeat(300)),
        // 256 characters but 1,024 bytes: over the contract's bound of the text on the bus.
        format!("/v1/search?q={}", "%F0%9F%98%80".repeat(256)),
    ] {
        let response = gateway.get(&path, &alice).await;
        assert_eq!(response.status, 400, "{path}");
        assert_eq!(response.error_code(), "invalid_command", "{path}");
        assert!(!response.json()["error"]["message"]
            .as_str()
            .unwrap()
            .is_empty());
    }
    assert!(projectors.iter().all(|projector| projector.len() == 0));
    gateway.stop().await;
}

#[tokio::test]
async fn projector_refusals_map_to_statuses() {
    let gateway = TestGateway::start().await;
    responder(&gateway.bus, "parlor.query.rooms", |_, request| {
        Some(match request["room_id"].as_str() {
            // R-R6: the projector says not_found for other people's rooms too.
            Some(_) => refused("not_found"),
            None => refused("invalid_command"),
        })
    })
    .await;
    let missing = gateway
        .get(&format!("/v1/rooms/{ROOM}"), &token("alice"))
        .await;
    assert_eq!(missing.status, 404);
    assert_eq!(missing.error_code(), "not_found");
    let invalid = gateway.get("/v1/rooms?cursor=stale", &token("alice")).await;
    assert_eq!(invalid.status, 400);
    assert_eq!(invalid.error_code(), "invalid_command");
    gateway.stop().await;
}

#[tokio::test]
async fn min_position_passes_through_and_lagging_is_503() {
    let gateway = TestGateway::start().await;
    let timeline = responder(&gateway.bus, "parlor.query.timeline", |_, request| {
        Some(match request["min_position"].as_u64() {
            Some(position) if position > 100 => refused("projection_lagging"),
            _ => answer(100, json!({"messages": [], "next_cursor": null})),
        })
    })
    .await;
    let path = format!("/v1/rooms/{ROOM}/messages?min_position=42");
    let response = gateway.get(&path, &token("alice")).await;
    assert_eq!(response.status, 200);
    assert_eq!(timeline.last()["min_position"], 42);
    assert_eq!(response.header("parlor-position"), Some("100"));
    assert_eq!(
        response.json(),
        json!({"messages": [], "next_cursor": null})
    );

    let lagging = gateway
        .get(
            &format!("/v1/rooms/{ROOM}/messages?min_position=500"),
            &token("alice"),
        )
        .await;
    assert_eq!(lagging.status, 503);
    assert_eq!(lagging.error_code(), "projection_lagging");
    gateway.stop().await;
}

#[tokio::test]
async fn a_missing_or_broken_projector_is_503_or_502() {
    let gateway = TestGateway::start().await;
    let response = gateway.get("/v1/rooms", &token("alice")).await;
    assert_eq!(response.status, 503);
    assert_eq!(response.error_code(), "unavailable");
    responder(&gateway.bus, "parlor.query.rooms", |_, _| {
        Some(json!("not a reply"))
    })
    .await;
    let response = gateway.get("/v1/rooms", &token("alice")).await;
    assert_eq!(response.status, 502);
    gateway.stop().await;
}

#[tokio::test]
async fn the_moderation_queue_is_for_moderators_only() {
    let gateway = TestGateway::start().await;
    let moderation = echo_projector(&gateway, "moderation").await;
    let response = gateway.get("/v1/moderation/reports", &token("alice")).await;
    assert_eq!(response.status, 403);
    assert_eq!(response.error_code(), "forbidden");
    assert_eq!(moderation.len(), 0);

    // A moderator need not be a registered user.
    let response = gateway
        .get("/v1/moderation/reports?limit=10", &moderator_token("mod-1"))
        .await;
    assert_eq!(response.status, 200);
    let asked = &response.json()["asked"];
    assert_eq!(asked["op"], "reports");
    assert_eq!(asked["moderator"], true);
    assert_eq!(asked["caller"], "mod-1");
    assert_eq!(asked["limit"], 10);
    gateway.stop().await;
}

/// The request on the bus is byte for byte what `protocol::query` writes and what the gateway
/// wrote before the typed contract (docs/queries.md): sorted keys, absent parameters `null`.
#[tokio::test]
async fn each_read_is_sent_on_the_bus_byte_for_byte_as_before() {
    let gateway = TestGateway::start().await;
    let cases = [
        (
            "rooms",
            "/v1/rooms?view=archived&limit=7&cursor=ab12&min_position=5".to_owned(),
            r#"{"caller":"alice","cursor":"ab12","limit":7,"min_position":5,"moderator":false,"op":"list","view":"archived"}"#.to_owned(),
        ),
        (
            "timeline",
            format!("/v1/rooms/{ROOM}/messages"),
            format!(r#"{{"before":null,"caller":"alice","cursor":null,"limit":50,"min_position":null,"moderator":false,"op":"messages","room_id":"{ROOM}"}}"#),
        ),
        (
            "files",
            format!("/v1/rooms/{ROOM}/files?q=report&type=link"),
            format!(r#"{{"caller":"alice","cursor":null,"limit":50,"min_position":null,"moderator":false,"op":"list","q":"report","room_id":"{ROOM}","type":"link"}}"#),
        ),
        (
            "search",
            "/v1/search?q=hello".to_owned(),
            r#"{"caller":"alice","cursor":null,"limit":20,"min_position":null,"moderator":false,"op":"search","q":"hello","room_id":null}"#.to_owned(),
        ),
    ];
    for (model, path, golden) in cases {
        let mut subscription = gateway
            .bus
            .subscribe(&format!("parlor.query.{model}"))
            .await
            .unwrap();
        let bus = gateway.bus.clone();
        let projector = tokio::spawn(async move {
            let message = subscription.next().await.expect("a request");
            let reply = answer(9, json!({"asked": true})).to_string();
            let headers = bus::Headers::new().with("Content-Type", "application/json");
            bus.respond(&message, headers, reply).await.unwrap();
            message.payload
        });
        let response = gateway.get(&path, &token("alice")).await;
        assert_eq!(response.status, 200, "{path}");
        let sent = projector.await.unwrap();
        assert_eq!(String::from_utf8_lossy(&sent), golden, "{path}");
    }
    gateway.stop().await;
}
