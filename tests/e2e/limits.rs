//! The gateway's limits through the real `parlor up` and its flags (security.md H-L2, H-L3,
//! H-L5): command rates of user tokens, the daily upload quota, the disk reserve, unattached
//! uploads deleted from disk while attached ones stay, and the header timeout.

use std::path::PathBuf;
use std::time::Duration;

use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::harness::http_client::Body;
use crate::harness::{start_up_http, HttpSystem};

/// The longest a background effect may take before the test fails (a bound, not a measure).
const WAIT_MAX: Duration = Duration::from_secs(30);

/// Uploads `body` as `token`'s user; the response.
async fn upload(
    sys: &HttpSystem,
    token: &str,
    body: &[u8],
) -> crate::harness::http_client::Response {
    sys.post(
        "/v1/files",
        Some(token),
        &[("X-File-Name", "notes.txt"), ("Content-Type", "text/plain")],
        Body::Bytes(body),
    )
    .await
}

/// Where the blob of `content` is stored.
fn blob_path(sys: &HttpSystem, content: &[u8]) -> PathBuf {
    let hex = hex::encode(Sha256::digest(content));
    sys.data
        .path()
        .join("blobs")
        .join(&hex[..2])
        .join(&hex[2..])
}

#[tokio::test]
async fn h_l2_h_l3_h_l5_the_flags_of_parlor_up_limit_users_and_collect_unattached_uploads() {
    let sys = start_up_http(&[
        "--user-command-rate",
        "1",
        "--user-command-burst",
        "3",
        "--upload-quota-bytes-per-day",
        "1000",
        "--unattached-upload-grace-seconds",
        "5",
        "--http-header-timeout-ms",
        "500",
    ])
    .await;
    // A service token is not limited: more commands than the burst go through.
    let service = sys.service_token("identity");
    sys.register(
        &service,
        &[
            ("alice", "Alice"),
            ("bob", "Bob"),
            ("carol", "Carol"),
            ("dave", "Dave"),
        ],
    )
    .await;
    let alice = sys.token("alice");
    let bob = sys.token("bob");

    // H-L3 and the attachment: alice's upload attached at once stays; bob's never attached goes.
    let kept = b"the signed contract, attached at once".to_vec();
    let response = upload(&sys, &alice, &kept).await;
    assert_eq!(response.status, 201, "{}", response.text());
    let kept_id = response.json()["file_id"].as_str().unwrap().to_owned();
    let reply = sys
        .ok(
            &alice,
            "message.send",
            json!({"to": "bob", "body": "here it is", "attachments": [{"file_id": kept_id}]}),
        )
        .await;
    let at = reply["position"].as_u64().unwrap();
    let abandoned = b"a draft bob never sent".to_vec();
    let response = upload(&sys, &bob, &abandoned).await;
    assert_eq!(response.status, 201, "{}", response.text());

    // H-L3 quota: alice has 1000 bytes a day.
    let response = upload(&sys, &alice, &[7u8; 990]).await;
    assert_eq!(response.status, 429, "{}", response.text());
    assert_eq!(response.error_code(), "quota_exceeded");

    // H-L2: alice's burst is 3 commands (one came back per second): within a few more she is
    // refused, with Retry-After, while bob is not.
    let mut refused = None;
    for n in 0..20 {
        let response = sys
            .command(
                &alice,
                "user.set_online_visibility",
                &json!({"visible": n % 2 == 0}),
            )
            .await;
        if response.status == 429 {
            refused = Some(response);
            break;
        }
        assert_eq!(response.status, 200, "{}", response.text());
    }
    let refused = refused.expect("alice was rate limited");
    assert_eq!(refused.error_code(), "rate_limited");
    assert!(refused.header("retry-after").is_some());
    let response = sys
        .command(
            &bob,
            "user.set_online_visibility",
            &json!({"visible": true}),
        )
        .await;
    assert_eq!(response.status, 200, "{}", response.text());

    // H-L5: a client that never finishes its headers is disconnected.
    let mut slow = tokio::net::TcpStream::connect(sys.addr).await.unwrap();
    slow.write_all(b"GET /v1/rooms HTTP/1.1\r\nHost: x\r\n")
        .await
        .unwrap();
    let closed = tokio::time::timeout(WAIT_MAX, async {
        let mut buffer = [0u8; 1024];
        while let Ok(n) = slow.read(&mut buffer).await {
            if n == 0 {
                break;
            }
        }
    })
    .await;
    assert!(closed.is_ok(), "the slow client was not disconnected");

    // The abandoned upload's bytes leave the disk after its 5 s grace; the attached file stays.
    let abandoned_blob = blob_path(&sys, &abandoned);
    let deadline = tokio::time::Instant::now() + WAIT_MAX;
    while abandoned_blob.exists() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the unattached upload was not deleted: {}",
            sys.logs()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(blob_path(&sys, &kept).exists());
    let download = sys
        .get(
            &format!("/v1/files/{kept_id}?min_position={at}"),
            Some(&bob),
        )
        .await;
    assert_eq!(download.status, 200, "{}", download.text());
    assert!(download.body == kept);
}

#[tokio::test]
async fn h_l3_parlor_up_refuses_uploads_507_that_would_eat_the_log_disk_reserve() {
    let reserve = u64::MAX.to_string();
    let sys = start_up_http(&["--disk-reserve-bytes", &reserve]).await;
    let alice = sys.token("alice");
    let response = upload(&sys, &alice, b"anything at all").await;
    assert_eq!(response.status, 507, "{}", response.text());
    assert_eq!(response.error_code(), "insufficient_storage");
    assert!(!blob_path(&sys, b"anything at all").exists());
    // Commands still go to the log the reserve is kept for.
    let service = sys.service_token("identity");
    let reply: Value = sys
        .ok(
            &service,
            "user.register",
            json!({"user_id": "alice", "display_name": "Alice", "kind": "client"}),
        )
        .await;
    assert_eq!(reply["ok"], true);
}

#[tokio::test]
async fn h_l3_parlor_up_refuses_attaching_an_upload_after_the_domains_grace() {
    // The gateway keeps unattached bytes past the domain's grace (its default), so the upload
    // is still on disk when the writer stops accepting it: the refusal is the writer's.
    let sys = start_up_http(&[]).await;
    let client = crate::harness::Client::connect(&sys._nats.url()).await;
    let service = sys.service_token("identity");
    sys.register(&service, &[("alice", "Alice"), ("bob", "Bob")])
        .await;
    let alice = sys.token("alice");
    let upload_id = |response: &crate::harness::http_client::Response| {
        assert_eq!(response.status, 201, "{}", response.text());
        response.json()["file_id"].as_str().unwrap().to_owned()
    };
    let on_time = upload_id(&upload(&sys, &alice, b"attached within the day").await);
    let late = upload_id(&upload(&sys, &alice, b"attached a day later").await);
    let send = |file_id: &str| json!({"to": "bob", "body": "the file", "attachments": [{"file_id": file_id}]});

    client.advance_clock(23 * 3_600_000).await;
    let reply = sys.ok(&alice, "message.send", send(&on_time)).await;
    let (room_id, at) = (
        reply["result"]["room_id"].as_str().unwrap().to_owned(),
        reply["position"].as_u64().unwrap(),
    );

    client.advance_clock(3_600_000).await;
    let response = sys.command(&alice, "message.send", &send(&late)).await;
    assert_eq!(response.status, 404, "{}", response.text());
    assert_eq!(response.error_code(), "not_found");
    assert!(
        response.text().contains("upload it again"),
        "{}",
        response.text()
    );
    // Its bytes are still there (the gateway's grace is longer), and nothing was sent.
    assert!(blob_path(&sys, b"attached a day later").exists());
    let messages = sys
        .get(
            &format!("/v1/rooms/{room_id}/messages?min_position={at}"),
            Some(&sys.token("bob")),
        )
        .await;
    assert_eq!(messages.status, 200, "{}", messages.text());
    let messages = messages.json()["messages"].as_array().unwrap().clone();
    assert_eq!(messages.len(), 1, "{messages:?}");
    assert_eq!(messages[0]["attachments"][0]["file_id"], on_time.as_str());
}
