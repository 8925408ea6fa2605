//! What one caller may use (security.md H-L2, H-L3, H-L5): command rates of user tokens,
//! uploads at once, daily upload bytes, the disk reserve, unattached uploads collected, header
//! and body timeouts, and the connection cap, each against a real gateway on real sockets and
//! a real blob directory.

use std::path::{Path, PathBuf};
use std::time::Duration;

use domain::{Attachment, Event, FileId, MessageId, Timestamp};
use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::http::{self, Body};
use crate::support::{
    accepted, refused, responder, room, service_token, token, user, FakeLog, Recorded, TestGateway,
};

/// The longest any wait for the gateway to do something in the background may take before the
/// test fails (a bound, not a measurement).
const WAIT_MAX: Duration = Duration::from_secs(20);

/// Polls `done` until it holds, failing the test after [`WAIT_MAX`].
async fn wait_until(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + WAIT_MAX;
    while !done() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "waited too long for {what}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// `POST /v1/commands/<type>` with `data`.
async fn command(
    gateway: &TestGateway,
    token: &str,
    command_type: &str,
    data: &Value,
) -> http::Response {
    let body = data.to_string();
    gateway
        .post(
            &format!("/v1/commands/{command_type}"),
            token,
            &[("Content-Type", "application/json")],
            Body::Bytes(body.as_bytes()),
        )
        .await
}

/// `POST /v1/files` of `body` as `uploader`.
async fn upload_as(gateway: &TestGateway, uploader: &str, body: Body<'_>) -> http::Response {
    gateway
        .post(
            "/v1/files",
            &token(uploader),
            &[("X-File-Name", "notes.txt"), ("Content-Type", "text/plain")],
            body,
        )
        .await
}

/// Where the blob of `content` is stored under `data_dir`.
fn blob_path(data_dir: &Path, content: &[u8]) -> PathBuf {
    let hex = hex::encode(Sha256::digest(content));
    data_dir.join("blobs").join(&hex[..2]).join(&hex[2..])
}

/// The record of the unattached upload `file_id` under `data_dir`.
fn pending_path(data_dir: &Path, file_id: &str) -> PathBuf {
    let simple = uuid::Uuid::parse_str(file_id).unwrap().simple().to_string();
    data_dir.join("blobs").join("pending").join(simple)
}

/// Files (not directories) under `directory`, recursively.
fn files_under(directory: &Path) -> usize {
    let mut count = 0;
    let mut pending = vec![directory.to_owned()];
    while let Some(directory) = pending.pop() {
        for entry in std::fs::read_dir(&directory).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                pending.push(path);
            } else {
                count += 1;
            }
        }
    }
    count
}

// ---- H-L2: commands of user tokens are rate limited per user ----

#[tokio::test]
async fn h_l2_user_commands_past_the_burst_get_429_with_retry_after_and_never_reach_the_writer() {
    let gateway = TestGateway::start_with(bus::Bus::in_process(), |config| {
        // One command an hour after a burst of 3: nothing comes back during the test.
        config.user_command_rate = gateway::CommandRate {
            interval: Duration::from_secs(3600),
            burst: 3,
        };
    })
    .await;
    let writer = responder(&gateway.bus, "parlor.cmd.>", |_, _| Some(accepted(1))).await;
    let alice = token("alice");
    for _ in 0..3 {
        let response = command(
            &gateway,
            &alice,
            "user.block",
            &json!({"user_id": "mallory"}),
        )
        .await;
        assert_eq!(response.status, 200);
    }
    let response = command(
        &gateway,
        &alice,
        "user.block",
        &json!({"user_id": "mallory"}),
    )
    .await;
    assert_eq!(response.status, 429);
    assert_eq!(response.error_code(), "rate_limited");
    assert_eq!(response.json()["ok"], false);
    let retry_after: u64 = response
        .header("retry-after")
        .expect("a Retry-After header")
        .parse()
        .expect("Retry-After in seconds");
    assert!(retry_after > 0 && retry_after <= 3600, "{retry_after}");
    // Refused at the gateway: the writer saw only the three.
    assert_eq!(writer.len(), 3);

    // Another user is not slowed down by alice.
    let response = command(
        &gateway,
        &token("bob"),
        "user.block",
        &json!({"user_id": "mallory"}),
    )
    .await;
    assert_eq!(response.status, 200);
    // Service tokens are not limited (services are trusted parts; over NATS nothing is).
    let hiring = service_token("hiring");
    for n in 0..5 {
        let response = command(
            &gateway,
            &hiring,
            "room.open_interview",
            &json!({"interview_id": format!("i{n}"), "title": "t", "client": "c", "freelancer": "f"}),
        )
        .await;
        assert_eq!(
            response.status,
            200,
            "{}",
            String::from_utf8_lossy(&response.body)
        );
    }
    assert_eq!(writer.len(), 9);
    gateway.stop().await;
}

#[tokio::test]
async fn every_rate_limited_answer_carries_retry_after_reads_too() {
    let gateway = TestGateway::start().await;
    // A projector refusing a read for too many waiting ones (H-L1).
    let _rooms = responder(&gateway.bus, "parlor.query.rooms", |_, _| {
        Some(refused("rate_limited"))
    })
    .await;
    let response = gateway
        .get("/v1/rooms?min_position=5", &token("alice"))
        .await;
    assert_eq!(response.status, 429);
    assert_eq!(response.error_code(), "rate_limited");
    assert_eq!(response.header("retry-after"), Some("1"));
    gateway.stop().await;
}

// ---- H-L3: uploads at once, daily bytes, disk reserve, unattached uploads ----

#[tokio::test]
async fn h_l3_a_user_runs_at_most_four_uploads_at_once() {
    let gateway = TestGateway::start_with(bus::Bus::in_process(), |config| {
        // Long enough that the four held uploads are still waiting when the fifth comes.
        config.command_timeout = Duration::from_secs(60);
    })
    .await;
    // The writer answers bob's uploads and keeps alice's waiting, so hers stay in flight.
    let writer = responder(&gateway.bus, "parlor.cmd.file.register", |_, request| {
        (request["data"]["uploader"] != "alice").then(|| accepted(2))
    })
    .await;
    let addr = gateway.addr;
    let alice = token("alice");
    let mut held = Vec::new();
    for n in 0..4 {
        let alice = alice.clone();
        held.push(tokio::spawn(async move {
            let body = format!("upload {n}").into_bytes();
            let authorization = format!("Bearer {alice}");
            http::send(
                addr,
                "POST",
                "/v1/files",
                &[("Authorization", &authorization), ("X-File-Name", "a.txt")],
                Body::Bytes(&body),
            )
            .await
        }));
    }
    let waiting = writer.clone();
    wait_until("four uploads waiting on the writer", move || {
        waiting.len() == 4
    })
    .await;

    let response = upload_as(&gateway, "alice", Body::Bytes(b"the fifth")).await;
    assert_eq!(response.status, 429);
    assert_eq!(response.error_code(), "rate_limited");
    assert!(response.header("retry-after").is_some());
    assert_eq!(writer.len(), 4, "the fifth never reached the writer");
    // Another user's upload goes through meanwhile.
    let response = upload_as(&gateway, "bob", Body::Bytes(b"bob's file")).await;
    assert_eq!(response.status, 201);
    for task in held {
        task.abort();
    }
    // Not `stop`: alice's uploads would hold the graceful shutdown for its whole grace.
    drop(gateway);
}

#[tokio::test]
async fn h_l3_uploads_past_the_daily_quota_get_429_quota_exceeded_and_keep_nothing() {
    let gateway = TestGateway::start_with(bus::Bus::in_process(), |config| {
        config.upload_quota_bytes_per_day = 1000;
    })
    .await;
    let writer = responder(&gateway.bus, "parlor.cmd.>", |_, _| Some(accepted(3))).await;
    let blobs = gateway.data_dir.path().join("blobs");
    let first = vec![1u8; 600];
    assert_eq!(
        upload_as(&gateway, "alice", Body::Bytes(&first))
            .await
            .status,
        201
    );
    let stored = files_under(&blobs);

    // Declared: refused before the body is read.
    let response = upload_as(&gateway, "alice", Body::DeclaredOnly(600)).await;
    assert_eq!(response.status, 429);
    assert_eq!(response.error_code(), "quota_exceeded");
    // Undeclared (chunked): refused when the bytes pass the quota, and nothing is kept.
    let response = upload_as(&gateway, "alice", Body::Chunked(vec![vec![2u8; 100]; 6])).await;
    assert_eq!(response.status, 429);
    assert_eq!(response.error_code(), "quota_exceeded");
    assert_eq!(
        files_under(&blobs),
        stored,
        "a refused upload leaves no bytes"
    );
    assert_eq!(writer.len(), 1);

    // Refused uploads do not count: the rest of the quota is still there.
    let rest = vec![3u8; 400];
    assert_eq!(
        upload_as(&gateway, "alice", Body::Bytes(&rest))
            .await
            .status,
        201
    );
    let response = upload_as(&gateway, "alice", Body::Bytes(b"x")).await;
    assert_eq!(response.error_code(), "quota_exceeded");
    // Per user: bob has his own.
    assert_eq!(
        upload_as(&gateway, "bob", Body::Bytes(&first)).await.status,
        201
    );
    // A new UTC day starts afresh.
    gateway.clock.advance(24 * 60 * 60 * 1000).unwrap();
    assert_eq!(
        upload_as(&gateway, "alice", Body::Bytes(&first))
            .await
            .status,
        201
    );
    gateway.stop().await;
}

#[tokio::test]
async fn h_l3_uploads_are_refused_507_before_the_disk_reserve_is_touched() {
    let gateway = TestGateway::start_with(bus::Bus::in_process(), |config| {
        // More than any disk has free: deterministic.
        config.disk_reserve_bytes = u64::MAX / 4;
    })
    .await;
    let writer = responder(&gateway.bus, "parlor.cmd.>", |_, _| Some(accepted(3))).await;
    let blobs = gateway.data_dir.path().join("blobs");
    let before = files_under(&blobs);
    for body in [
        Body::Bytes(b"a small file"),
        Body::DeclaredOnly(1024),
        Body::Chunked(vec![vec![5u8; 10]; 3]),
    ] {
        let response = upload_as(&gateway, "alice", body).await;
        assert_eq!(response.status, 507);
        assert_eq!(response.error_code(), "insufficient_storage");
    }
    assert_eq!(files_under(&blobs), before, "nothing was written");
    assert_eq!(writer.len(), 0);
    // Commands are not uploads: the reserve is for the log they go to.
    let response = command(
        &gateway,
        &token("alice"),
        "user.block",
        &json!({"user_id": "m"}),
    )
    .await;
    assert_eq!(response.status, 200);
    gateway.stop().await;
}

/// `message_sent` by alice attaching `file_id`.
fn attaching(file_id: &str) -> Event {
    Event::MessageSent {
        room_id: room(1),
        message_id: MessageId(uuid::Uuid::new_v4()),
        author: user("alice"),
        body: String::new(),
        reply_to: None,
        attachments: vec![Attachment::File {
            file_id: FileId(uuid::Uuid::parse_str(file_id).unwrap()),
            name: "notes.txt".into(),
            size: 1,
            content_type: "text/plain".into(),
        }],
        sent_at: Timestamp::from_millis(1_700_000_000_000),
    }
}

/// A gateway collecting uploads unattached for an hour (of its development clock), looking
/// every 50 ms, with a writer accepting everything and a log of `log`'s events.
async fn collecting_gateway(bus: bus::Bus, data_dir: tempfile::TempDir) -> TestGateway {
    TestGateway::start_in(bus, data_dir, |config| {
        config.unattached_upload_grace = Duration::from_secs(3600);
        config.unattached_collect_interval = Duration::from_millis(50);
    })
    .await
}

async fn uploaded_file_id(gateway: &TestGateway, content: &[u8]) -> String {
    let response = upload_as(gateway, "alice", Body::Bytes(content)).await;
    assert_eq!(
        response.status,
        201,
        "{}",
        String::from_utf8_lossy(&response.body)
    );
    response.json()["file_id"].as_str().unwrap().to_owned()
}

#[tokio::test]
async fn h_l3_uploads_never_attached_are_deleted_with_their_bytes_and_attached_ones_kept() {
    let bus = bus::Bus::in_process();
    let log = FakeLog::start(&bus).await;
    let data_dir = tempfile::tempdir().unwrap();
    let gateway = collecting_gateway(bus.clone(), data_dir).await;
    let _writer: Recorded = responder(&bus, "parlor.cmd.>", |_, _| Some(accepted(1))).await;
    let data = gateway.data_dir.path().to_owned();

    let attached = uploaded_file_id(&gateway, b"the contract draft").await;
    // The same content uploaded again and never attached: its bytes are the attached file's.
    let duplicate = uploaded_file_id(&gateway, b"the contract draft").await;
    let abandoned = uploaded_file_id(&gateway, b"a file nobody sent").await;
    log.append_and_publish(attaching(&attached)).await;
    let record = pending_path(&data, &attached);
    wait_until("the attachment applied", move || !record.exists()).await;

    // Not yet past the grace: nothing goes.
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(blob_path(&data, b"a file nobody sent").exists());

    gateway.clock.advance(2 * 60 * 60 * 1000).unwrap();
    let abandoned_blob = blob_path(&data, b"a file nobody sent");
    wait_until("the abandoned upload deleted", move || {
        !abandoned_blob.exists()
    })
    .await;
    let duplicate_record = pending_path(&data, &duplicate);
    wait_until("the duplicate's record dropped", move || {
        !duplicate_record.exists()
    })
    .await;
    let abandoned_record = pending_path(&data, &abandoned);
    wait_until("the abandoned upload's record dropped", move || {
        !abandoned_record.exists()
    })
    .await;
    assert!(
        blob_path(&data, b"the contract draft").exists(),
        "attached bytes are kept, whoever else uploaded them"
    );
    gateway.stop().await;
}

#[tokio::test]
async fn h_l3_a_restart_forgets_no_unattached_upload_nor_an_attachment_made_while_down() {
    let bus = bus::Bus::in_process();
    let log = FakeLog::start(&bus).await;
    let gateway = collecting_gateway(bus.clone(), tempfile::tempdir().unwrap()).await;
    let _writer = responder(&bus, "parlor.cmd.>", |_, _| Some(accepted(1))).await;
    let attached_later = uploaded_file_id(&gateway, b"sent while the gateway was down").await;
    let abandoned = uploaded_file_id(&gateway, b"never sent").await;
    let data = gateway.data_dir.path().to_owned();
    let position = data.join("blobs").join("attachments-position");
    wait_until("the start position stored", move || position.exists()).await;
    let data_dir = gateway.stop_keeping_data().await;

    // While no gateway runs, the file is attached (the log has it; nobody hears it live).
    log.append(attaching(&attached_later));

    let gateway = collecting_gateway(bus.clone(), data_dir).await;
    let record = pending_path(&data, &attached_later);
    wait_until("the missed attachment applied from the log", move || {
        !record.exists()
    })
    .await;
    gateway.clock.advance(2 * 60 * 60 * 1000).unwrap();
    let abandoned_blob = blob_path(&data, b"never sent");
    wait_until(
        "the abandoned upload deleted after the restart",
        move || !abandoned_blob.exists(),
    )
    .await;
    // The bytes go first, then the record.
    let abandoned_record = pending_path(&data, &abandoned);
    wait_until("the abandoned upload's record dropped", move || {
        !abandoned_record.exists()
    })
    .await;
    assert!(blob_path(&data, b"sent while the gateway was down").exists());
    gateway.stop().await;
}

// ---- H-L5: header and body timeouts, the connection cap ----

/// Reads until the server closes the connection; what it sent. Fails after [`WAIT_MAX`].
async fn read_until_closed(stream: &mut TcpStream) -> Vec<u8> {
    let mut received = Vec::new();
    let read = tokio::time::timeout(WAIT_MAX, async {
        let mut buffer = [0u8; 4096];
        loop {
            match stream.read(&mut buffer).await {
                Ok(0) | Err(_) => break,
                Ok(n) => received.extend_from_slice(&buffer[..n]),
            }
        }
    })
    .await;
    assert!(read.is_ok(), "the server did not close the connection");
    received
}

#[tokio::test]
async fn h_l5_hundreds_of_idle_and_slow_connections_do_not_stop_other_clients() {
    let gateway = TestGateway::start().await;
    let mut idle = Vec::new();
    for _ in 0..300 {
        idle.push(TcpStream::connect(gateway.addr).await.unwrap());
    }
    let mut slow = Vec::new();
    for _ in 0..50 {
        let mut stream = TcpStream::connect(gateway.addr).await.unwrap();
        stream
            .write_all(b"GET /v1/rooms HTTP/1.1\r\nHost: x\r\n")
            .await
            .unwrap();
        slow.push(stream);
    }
    // Another client is answered at once (401: no token; the point is that it is served).
    let response = http::send(gateway.addr, "GET", "/v1/rooms", &[], Body::None).await;
    assert_eq!(response.status, 401);
    drop((idle, slow));
    gateway.stop().await;
}

#[tokio::test]
async fn h_l5_a_connection_trickling_its_headers_is_closed_after_the_header_timeout() {
    let gateway = TestGateway::start_with(bus::Bus::in_process(), |config| {
        config.http.header_read_timeout = Duration::from_millis(500);
    })
    .await;
    let stream = TcpStream::connect(gateway.addr).await.unwrap();
    let (mut read, mut write) = stream.into_split();
    // One byte of a header every 50 ms: never a complete head.
    let trickle = tokio::spawn(async move {
        let _ = write.write_all(b"GET /v1/rooms HTTP/1.1\r\nX-Slow: ").await;
        for _ in 0..2000 {
            if write.write_all(b"a").await.is_err() {
                return true;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        false
    });
    let closed = tokio::time::timeout(WAIT_MAX, async {
        let mut buffer = [0u8; 1024];
        loop {
            match read.read(&mut buffer).await {
                Ok(0) | Err(_) => break,
                Ok(_) => {}
            }
        }
    })
    .await;
    assert!(closed.is_ok(), "the trickling connection was not closed");
    trickle.abort();
    // Idle from the start counts too: no byte at all within the timeout.
    let mut idle = TcpStream::connect(gateway.addr).await.unwrap();
    read_until_closed(&mut idle).await;
    // And idle between two requests of a keep-alive connection.
    let mut kept_alive = TcpStream::connect(gateway.addr).await.unwrap();
    kept_alive
        .write_all(b"GET /v1/rooms HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    let received = read_until_closed(&mut kept_alive).await;
    assert!(
        received.starts_with(b"HTTP/1.1 401"),
        "{}",
        String::from_utf8_lossy(&received)
    );
    gateway.stop().await;
}

#[tokio::test]
async fn h_l5_a_body_that_stops_sending_gets_408_and_its_connection_closed() {
    let gateway = TestGateway::start_with(bus::Bus::in_process(), |config| {
        config.http.body_progress_timeout = Duration::from_millis(300);
    })
    .await;
    let writer = responder(&gateway.bus, "parlor.cmd.>", |_, _| {
        Some(refused("unavailable"))
    })
    .await;
    for (path, extra) in [
        (
            "/v1/commands/user.block",
            "Content-Type: application/json\r\n",
        ),
        ("/v1/files", "X-File-Name: a.txt\r\n"),
    ] {
        let mut stream = TcpStream::connect(gateway.addr).await.unwrap();
        let head = format!(
            "POST {path} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {}\r\n{extra}Content-Length: 100\r\n\r\n{{\"user",
            token("alice")
        );
        stream.write_all(head.as_bytes()).await.unwrap();
        let received = String::from_utf8_lossy(&read_until_closed(&mut stream).await).into_owned();
        assert!(received.starts_with("HTTP/1.1 408"), "{received}");
        assert!(received.contains("request_timeout"), "{received}");
    }
    assert_eq!(writer.len(), 0);
    gateway.stop().await;
}

#[tokio::test]
async fn h_l5_connections_past_the_cap_are_closed_and_others_served_once_some_go() {
    let gateway = TestGateway::start_with(bus::Bus::in_process(), |config| {
        config.http.connections_max = 20;
        config.http.header_read_timeout = Duration::from_secs(120);
    })
    .await;
    let mut held = Vec::new();
    for _ in 0..20 {
        held.push(TcpStream::connect(gateway.addr).await.unwrap());
    }
    // The 21st is accepted after the 20 (the backlog is in order) and closed at once.
    let mut over = TcpStream::connect(gateway.addr).await.unwrap();
    let _ = over
        .write_all(b"GET /v1/rooms HTTP/1.1\r\nHost: x\r\n\r\n")
        .await;
    let received = read_until_closed(&mut over).await;
    assert!(
        received.is_empty(),
        "{}",
        String::from_utf8_lossy(&received)
    );

    // Idle clients that leave give their places back.
    held.truncate(10);
    let deadline = tokio::time::Instant::now() + WAIT_MAX;
    loop {
        let mut stream = TcpStream::connect(gateway.addr).await.unwrap();
        stream
            .write_all(b"GET /v1/rooms HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            .await
            .unwrap();
        let received = read_until_closed(&mut stream).await;
        if received.starts_with(b"HTTP/1.1 401") {
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "no place came back");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    drop(held);
    gateway.stop().await;
}
