//! The single-machine quick start (README, issue 15): `parlor up` with no NATS at all (no
//! `--nats-url`, no `PARLOR_NATS_URL`) runs every part on its in-process bus and serves the
//! HTTP API, file bytes in the local store under its data directory.

use std::process::{Command, Stdio};

use serde_json::{json, Value};

use crate::harness::http_client::{self, Body, Response};
use crate::harness::{log_file, read_logs, wait_for_http, Parlor};

fn free_addr() -> std::net::SocketAddr {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("a free port");
    listener.local_addr().unwrap()
}

async fn post(
    addr: std::net::SocketAddr,
    token: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> Response {
    let authorization = format!("Bearer {token}");
    let mut all = vec![("Authorization", authorization.as_str())];
    all.extend_from_slice(headers);
    http_client::send(addr, "POST", path, &all, Body::Bytes(body)).await
}

async fn command(
    addr: std::net::SocketAddr,
    token: &str,
    command_type: &str,
    data: Value,
) -> Value {
    let body = serde_json::to_vec(&data).unwrap();
    let response = post(
        addr,
        token,
        &format!("/v1/commands/{command_type}"),
        &[("Content-Type", "application/json")],
        &body,
    )
    .await;
    let reply = response.json();
    assert_eq!(
        (response.status, &reply["ok"]),
        (200, &json!(true)),
        "{command_type} {data} → {reply}"
    );
    reply
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn parlor_up_needs_no_nats() {
    let data = tempfile::tempdir().unwrap();
    let secret = "quick start secret";
    let mut started = None;
    // A port picked free may be taken again before parlor binds it: then try another.
    for _attempt in 0..3 {
        let (addr, ops_addr) = (free_addr(), free_addr());
        let child = Command::new(env!("CARGO_BIN_EXE_parlor"))
            .args(["up", "--dev-clock", "--data-dir"])
            .arg(data.path())
            .args(["--http-addr", &addr.to_string(), "--jwt-secret", secret])
            .args(["--ops-addr", &ops_addr.to_string()])
            .env_remove("PARLOR_NATS_URL")
            .env_remove("PARLOR_BLOB_STORE")
            .env("PARLOR_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(log_file(data.path()))
            .spawn()
            .expect("spawn parlor up");
        let mut parlor = Parlor { child };
        if wait_for_http(&mut parlor, addr, ops_addr).await {
            started = Some((parlor, addr));
            break;
        }
    }
    let Some((_parlor, addr)) = started else {
        panic!(
            "parlor up without NATS did not serve HTTP: {}",
            read_logs(data.path())
        );
    };
    let token = |subject: &str, role| {
        gateway::auth::mint_token(
            secret.as_bytes(),
            subject,
            role,
            std::time::Duration::from_secs(3600),
        )
        .unwrap()
    };
    let service = token("service:identity", Some(gateway::auth::Role::Service));
    for (user, name) in [("alice", "Alice Adams"), ("bob", "Bob Brown")] {
        command(
            addr,
            &service,
            "user.register",
            json!({"user_id": user, "display_name": name, "kind": "freelancer"}),
        )
        .await;
    }
    let (alice, bob) = (token("alice", None), token("bob", None));

    // A message and a file, read and downloaded by the other user.
    let bytes: Vec<u8> = (0..200_000u32).map(|i| (i % 251) as u8).collect();
    let uploaded = post(
        addr,
        &alice,
        "/v1/files",
        &[
            ("X-File-Name", "plan.bin"),
            ("Content-Type", "application/octet-stream"),
        ],
        &bytes,
    )
    .await;
    assert_eq!(uploaded.status, 201, "upload: {}", uploaded.text());
    let file_id = uploaded.json()["file_id"].as_str().unwrap().to_owned();
    let sent = command(
        addr,
        &alice,
        "message.send",
        json!({"to": "bob", "body": "the plan", "attachments": [{"file_id": file_id}]}),
    )
    .await;
    let room = sent["result"]["room_id"].as_str().unwrap();
    let at = sent["position"].as_u64().unwrap();
    let authorization = format!("Bearer {bob}");
    let read = http_client::send(
        addr,
        "GET",
        &format!("/v1/rooms/{room}/messages?min_position={at}"),
        &[("Authorization", authorization.as_str())],
        Body::None,
    )
    .await;
    assert_eq!(read.status, 200, "{}", read.text());
    assert_eq!(read.json()["messages"][0]["body"], "the plan");
    let download = http_client::send(
        addr,
        "GET",
        &format!("/v1/files/{file_id}?min_position={at}"),
        &[("Authorization", authorization.as_str())],
        Body::None,
    )
    .await;
    assert_eq!(download.status, 200, "{}", download.text());
    assert!(download.body == bytes, "the downloaded bytes differ");
    // The bytes are in the local store, under the data directory.
    assert!(
        data.path()
            .join("blobs")
            .read_dir()
            .unwrap()
            .next()
            .is_some(),
        "no file under {}/blobs",
        data.path().display()
    );
}
