//! Two gateways and two replicas of every projector serve the same users (issue 15): a message
//! sent through one gateway is read through the other, a file uploaded through one downloads
//! through the other (`--blob-store nats`), presence and the event stream work through either,
//! and with one replica of each projector killed, reads through both still work.

use std::time::{Duration, Instant};

use serde_json::{json, Value};
use testkit::NatsServer;

use crate::deployment::{Deployment, Placement, MODELS};
use crate::harness::http_client::{Body, SseStream};

/// How long a read may keep failing after a replica is killed (NATS drops the dead member of
/// the queue group when its connection closes; a request already routed to it times out).
const FAILOVER_WAIT: Duration = Duration::from_secs(20);

/// How long an event may take to reach an SSE stream.
const EVENT_WAIT: Duration = Duration::from_secs(10);

fn position(reply: &Value) -> u64 {
    reply["position"].as_u64().expect("a position")
}

/// The messages' bodies of a room's timeline read through gateway `index` at `at`, or the
/// failing status and text.
async fn bodies(
    system: &Deployment,
    index: usize,
    token: &str,
    room: &str,
    at: u64,
) -> Result<Vec<String>, String> {
    let path = format!("/v1/rooms/{room}/messages?min_position={at}");
    let response = system
        .request(index, "GET", &path, token, &[], Body::None)
        .await;
    if response.status != 200 {
        return Err(format!("{} {}", response.status, response.text()));
    }
    Ok(response.json()["messages"]
        .as_array()
        .expect("a messages array")
        .iter()
        .map(|message| message["body"].as_str().unwrap_or_default().to_owned())
        .collect())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_gateways_and_two_replicas_of_each_projector_serve_the_same_users() {
    let nats = NatsServer::start();
    let url = nats.url();
    let mut system = Deployment::start(&Placement {
        writer: url.clone(),
        projector_replicas: vec![url.clone(), url.clone()],
        gateways: vec![url.clone(), url.clone()],
        blob_replicas: 1,
    })
    .await;
    system
        .register(&[("alice", "Alice Adams"), ("bob", "Bob Brown")])
        .await;
    let (alice, bob) = (system.token("alice"), system.token("bob"));

    // Bob listens on gateway B before Alice writes through gateway A.
    let authorization = format!("Bearer {bob}");
    let mut events = SseStream::open(
        system.gateways[1].addr,
        "/v1/events",
        &[("Authorization", authorization.as_str())],
    )
    .await;
    assert_eq!(events.status, 200, "GET /v1/events through gateway B");

    let sent = system
        .ok(
            0,
            &alice,
            "message.send",
            json!({"to": "bob", "body": "through A"}),
        )
        .await;
    let room = sent["result"]["room_id"].as_str().unwrap().to_owned();
    assert_eq!(
        bodies(&system, 1, &bob, &room, position(&sent)).await,
        Ok(vec!["through A".to_owned()])
    );
    // The live event reached Bob's stream on the other gateway.
    let deadline = Instant::now() + EVENT_WAIT;
    loop {
        let event = events
            .next(EVENT_WAIT)
            .await
            .expect("an event on gateway B's stream");
        if event.event.as_deref() == Some("message") && event.json()["body"] == "through A" {
            break;
        }
        assert!(Instant::now() < deadline, "no message event on gateway B");
    }

    // A file uploaded through A downloads through B, byte for byte.
    let bytes: Vec<u8> = (0..300_000u32).map(|i| (i % 253) as u8).collect();
    let uploaded = system
        .request(
            0,
            "POST",
            "/v1/files",
            &alice,
            &[
                ("X-File-Name", "plan.bin"),
                ("Content-Type", "application/octet-stream"),
            ],
            Body::Bytes(&bytes),
        )
        .await;
    assert_eq!(
        uploaded.status,
        201,
        "upload through A: {}",
        uploaded.text()
    );
    let file_id = uploaded.json()["file_id"].as_str().unwrap().to_owned();
    let attached = system
        .ok(
            0,
            &alice,
            "message.send",
            json!({"room_id": room, "body": "the plan", "attachments": [{"file_id": file_id}]}),
        )
        .await;
    let download = system
        .request(
            1,
            "GET",
            &format!("/v1/files/{file_id}?min_position={}", position(&attached)),
            &bob,
            &[],
            Body::None,
        )
        .await;
    assert_eq!(
        download.status,
        200,
        "download through B: {}",
        download.text()
    );
    assert!(
        download.body == bytes,
        "the bytes downloaded through B differ"
    );

    // Presence: a heartbeat through A shows Alice online to Bob through B.
    let heartbeat = system
        .request(0, "POST", "/v1/presence/heartbeat", &alice, &[], Body::None)
        .await;
    assert_eq!(
        heartbeat.status,
        204,
        "heartbeat through A: {}",
        heartbeat.text()
    );
    let listed = system
        .request(
            1,
            "GET",
            &format!("/v1/rooms/{room}?min_position={}", position(&attached)),
            &bob,
            &[],
            Body::None,
        )
        .await;
    assert_eq!(listed.status, 200, "{}", listed.text());
    let members = listed.json()["members"].clone();
    let alice_entry = members
        .as_array()
        .expect("members")
        .iter()
        .find(|member| member["user_id"] == "alice")
        .cloned()
        .expect("alice among the members");
    assert_eq!(alice_entry["online"], true, "{members}");

    // One replica of every projector killed: reads through both gateways keep working.
    for model in 0..MODELS.len() {
        system.kill_projector(0, model);
    }
    let after = system
        .ok(
            1,
            &bob,
            "message.send",
            json!({"room_id": room, "body": "through B"}),
        )
        .await;
    // Newest first.
    let want = vec![
        "through B".to_owned(),
        "the plan".to_owned(),
        "through A".to_owned(),
    ];
    for gateway in [0, 1] {
        let token = if gateway == 0 { &alice } else { &bob };
        // The first reads may still be routed to the dead replica until NATS drops it.
        let deadline = Instant::now() + FAILOVER_WAIT;
        loop {
            match bodies(&system, gateway, token, &room, position(&after)).await {
                Ok(found) => {
                    assert_eq!(found, want, "through gateway {gateway}");
                    break;
                }
                Err(error) => assert!(
                    Instant::now() < deadline,
                    "reads through gateway {gateway} still fail: {error}"
                ),
            }
        }
        // From then on every read is answered.
        for _ in 0..20 {
            assert_eq!(
                bodies(&system, gateway, token, &room, position(&after)).await,
                Ok(want.clone()),
                "through gateway {gateway} with one replica of each projector"
            );
        }
    }
    system.wait_until_healthy(0, FAILOVER_WAIT).await;
    system.wait_until_healthy(1, FAILOVER_WAIT).await;
}
