//! Uploads stream into the blob store with their limit enforced, images get a thumbnail, and
//! downloads stream back to callers the files projector allows.

use std::collections::HashMap;
use std::io::Cursor;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use sha2::{Digest, Sha256};

use crate::http::Body;
use crate::support::{
    accepted, answer, refused, responder, service_token, token, Recorded, TestGateway,
};

/// Files known to the fake files projector: file id → its `file` data, downloadable by `owner`.
type Catalogue = Arc<Mutex<HashMap<String, (String, Value)>>>;

/// A fake writer accepting every `file.register` at position 7.
async fn fake_writer(gateway: &TestGateway) -> Recorded {
    responder(&gateway.bus, "parlor.cmd.>", |_, _| Some(accepted(7))).await
}

/// A fake files projector answering `file` from `catalogue`.
async fn fake_files(gateway: &TestGateway, catalogue: &Catalogue) -> Recorded {
    let catalogue = Arc::clone(catalogue);
    responder(&gateway.bus, "parlor.query.files", move |_, request| {
        let file_id = request["file_id"].as_str().unwrap_or_default();
        let catalogue = catalogue.lock().unwrap();
        Some(match catalogue.get(file_id) {
            Some((owner, data)) if request["caller"] == owner.as_str() => answer(3, data.clone()),
            _ => refused("not_found"),
        })
    })
    .await
}

/// Uploads `body` as `alice`, expecting 201; returns the answer.
async fn upload(gateway: &TestGateway, name: &str, content_type: &str, body: &[u8]) -> Value {
    let response = gateway
        .post(
            "/v1/files",
            &token("alice"),
            &[("X-File-Name", name), ("Content-Type", content_type)],
            Body::Bytes(body),
        )
        .await;
    assert_eq!(
        response.status,
        201,
        "{}",
        String::from_utf8_lossy(&response.body)
    );
    response.json()
}

/// Registers an uploaded file with the fake projector, downloadable by `owner`.
fn catalogue_add(catalogue: &Catalogue, uploaded: &Value, owner: &str) -> String {
    let file_id = uploaded["file_id"].as_str().unwrap().to_owned();
    let mut data = uploaded.clone();
    data["has_preview"] = json!(false);
    data["uploader"] = json!(owner);
    catalogue
        .lock()
        .unwrap()
        .insert(file_id.clone(), (owner.to_owned(), data));
    file_id
}

/// Every blob and derived object under the blob directory: not uploads in progress (`tmp/`),
/// nor the records of unattached uploads (`pending/`, `attachments-position`).
fn blob_files(data_dir: &Path) -> Vec<std::path::PathBuf> {
    let mut found = Vec::new();
    let mut pending = vec![data_dir.join("blobs")];
    while let Some(directory) = pending.pop() {
        for entry in std::fs::read_dir(&directory).unwrap() {
            let path = entry.unwrap().path();
            let name = path.file_name().unwrap().to_string_lossy().into_owned();
            if ["tmp", "pending", "attachments-position"].contains(&name.as_str()) {
                continue;
            }
            if path.is_dir() {
                pending.push(path);
            } else {
                found.push(path);
            }
        }
    }
    found
}

fn pseudo_random(bytes: usize) -> Vec<u8> {
    let mut state = 0x2545_f491_4f6c_dd1du64;
    (0..bytes)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            (state >> 24) as u8
        })
        .collect()
}

fn png(width: u32, height: u32) -> Vec<u8> {
    let image = image::RgbImage::from_fn(width, height, |x, y| {
        image::Rgb([(x % 256) as u8, (y % 256) as u8, 90])
    });
    let mut bytes = Cursor::new(Vec::new());
    image::DynamicImage::ImageRgb8(image)
        .write_to(&mut bytes, image::ImageFormat::Png)
        .unwrap();
    bytes.into_inner()
}

#[tokio::test]
async fn a_multi_megabyte_upload_is_stored_and_registered() {
    let gateway = TestGateway::start().await;
    let writer = fake_writer(&gateway).await;
    let body = pseudo_random(6 * 1024 * 1024 + 123);
    let uploaded = upload(&gateway, "quarterly%20report.pdf", "application/pdf", &body).await;
    let sha256 = hex::encode(Sha256::digest(&body));
    assert_eq!(uploaded["name"], "quarterly report.pdf");
    assert_eq!(uploaded["size"], body.len());
    assert_eq!(uploaded["content_type"], "application/pdf");
    assert_eq!(uploaded["sha256"], sha256.as_str());
    assert_eq!(uploaded["position"], 7);
    let file_id = uploaded["file_id"].as_str().unwrap();

    let (subject, envelope) = writer.all().pop().unwrap();
    assert_eq!(subject, "parlor.cmd.file.register");
    assert_eq!(envelope["actor"], "service:gateway");
    assert_eq!(
        envelope["data"],
        json!({
            "file_id": file_id,
            "uploader": "alice",
            "name": "quarterly report.pdf",
            "size": body.len(),
            "content_type": "application/pdf",
            "sha256": sha256,
        })
    );
    // Content-addressed on disk: blobs/ab/cdef…
    let stored = gateway
        .data_dir
        .path()
        .join("blobs")
        .join(&sha256[..2])
        .join(&sha256[2..]);
    assert_eq!(std::fs::metadata(stored).unwrap().len(), body.len() as u64);
    gateway.stop().await;
}

#[tokio::test]
async fn a_declared_length_over_1_gib_is_413_before_the_body() {
    let gateway = TestGateway::start().await;
    let writer = fake_writer(&gateway).await;
    let started = Instant::now();
    // Headers only: the gateway must answer without waiting for 2 GiB that never come.
    let response = gateway
        .post(
            "/v1/files",
            &token("alice"),
            &[("X-File-Name", "huge.bin")],
            Body::DeclaredOnly(2 * 1024 * 1024 * 1024),
        )
        .await;
    assert_eq!(response.status, 413);
    assert_eq!(response.error_code(), "file_too_large");
    assert!(started.elapsed() < Duration::from_secs(5));
    assert_eq!(writer.len(), 0);
    assert!(blob_files(gateway.data_dir.path()).is_empty());
    gateway.stop().await;
}

#[tokio::test]
async fn a_chunked_body_over_the_limit_is_413_and_leaves_nothing() {
    let gateway = TestGateway::start_with(bus::Bus::in_process(), |config| {
        config.upload_bytes_max = 1024 * 1024;
    })
    .await;
    let writer = fake_writer(&gateway).await;
    let chunks = vec![vec![7u8; 64 * 1024]; 48];
    let response = gateway
        .post(
            "/v1/files",
            &token("alice"),
            &[("X-File-Name", "big.bin")],
            Body::Chunked(chunks),
        )
        .await;
    assert_eq!(response.status, 413);
    assert_eq!(response.error_code(), "file_too_large");
    // The declared form of the same is refused up front.
    let response = gateway
        .post(
            "/v1/files",
            &token("alice"),
            &[("X-File-Name", "big.bin")],
            Body::DeclaredOnly(1024 * 1024 + 1),
        )
        .await;
    assert_eq!(response.status, 413);
    // Exactly at the limit is fine.
    let exact = vec![1u8; 1024 * 1024];
    upload(&gateway, "exact.bin", "application/octet-stream", &exact).await;
    assert_eq!(writer.len(), 1);
    assert_eq!(
        blob_files(gateway.data_dir.path()).len(),
        1,
        "only the accepted blob"
    );
    gateway.stop().await;
}

#[tokio::test]
async fn an_image_gets_a_thumbnail_of_at_most_256_pixels() {
    let gateway = TestGateway::start().await;
    fake_writer(&gateway).await;
    let catalogue = Catalogue::default();
    fake_files(&gateway, &catalogue).await;

    let uploaded = upload(&gateway, "wide.png", "image/png", &png(600, 300)).await;
    let file_id = catalogue_add(&catalogue, &uploaded, "alice");
    let preview = gateway
        .get(&format!("/v1/files/{file_id}/preview"), &token("alice"))
        .await;
    assert_eq!(preview.status, 200);
    assert_eq!(preview.header("content-type"), Some("image/png"));
    let thumbnail =
        image::load_from_memory_with_format(&preview.body, image::ImageFormat::Png).unwrap();
    assert_eq!((thumbnail.width(), thumbnail.height()), (256, 128));

    let tall = upload(&gateway, "tall.png", "image/png", &png(100, 1000)).await;
    let file_id = catalogue_add(&catalogue, &tall, "alice");
    let preview = gateway
        .get(&format!("/v1/files/{file_id}/preview"), &token("alice"))
        .await;
    let thumbnail = image::load_from_memory(&preview.body).unwrap();
    assert!(
        thumbnail.width() <= 256 && thumbnail.height() == 256,
        "{}x{}",
        thumbnail.width(),
        thumbnail.height()
    );

    // Not an image, or an image that does not decode: no preview, but the upload succeeds.
    for (name, content_type, body) in [
        ("notes.txt", "text/plain", b"just text".to_vec()),
        ("broken.png", "image/png", b"\x89PNG\r\n\x1a\nnope".to_vec()),
    ] {
        let uploaded = upload(&gateway, name, content_type, &body).await;
        let file_id = catalogue_add(&catalogue, &uploaded, "alice");
        let preview = gateway
            .get(&format!("/v1/files/{file_id}/preview"), &token("alice"))
            .await;
        assert_eq!(preview.status, 404, "{name}");
        assert_eq!(preview.error_code(), "not_found");
    }
    gateway.stop().await;
}

#[tokio::test]
async fn downloads_stream_the_bytes_to_allowed_callers_only() {
    let gateway = TestGateway::start().await;
    fake_writer(&gateway).await;
    let catalogue = Catalogue::default();
    let files = fake_files(&gateway, &catalogue).await;
    let body = pseudo_random(300_000);
    let uploaded = upload(
        &gateway,
        "r%C3%A9sum%C3%A9%202024.txt",
        "text/plain; charset=utf-8",
        &body,
    )
    .await;
    assert_eq!(uploaded["name"], "résumé 2024.txt");
    let file_id = catalogue_add(&catalogue, &uploaded, "alice");

    let download = gateway
        .get(
            &format!("/v1/files/{file_id}?min_position=3"),
            &token("alice"),
        )
        .await;
    assert_eq!(download.status, 200);
    assert!(download.body == body, "the bytes downloaded differ");
    assert_eq!(
        download.header("content-type"),
        Some("text/plain; charset=utf-8")
    );
    assert_eq!(
        download.header("content-length"),
        Some(body.len().to_string().as_str())
    );
    assert_eq!(
        download.header("content-disposition"),
        Some("attachment; filename*=UTF-8''r%C3%A9sum%C3%A9%202024.txt")
    );
    let asked = files.last();
    assert_eq!(asked["op"], "file");
    assert_eq!(asked["caller"], "alice");
    assert_eq!(asked["file_id"], file_id.as_str());
    assert_eq!(asked["min_position"], 3);

    // Not allowed looks exactly like missing.
    let denied = gateway
        .get(&format!("/v1/files/{file_id}"), &token("bob"))
        .await;
    assert_eq!(denied.status, 404);
    assert_eq!(denied.error_code(), "not_found");
    let denied = gateway
        .get(&format!("/v1/files/{file_id}/preview"), &token("bob"))
        .await;
    assert_eq!(denied.status, 404);
    let malformed = gateway.get("/v1/files/not-a-file", &token("alice")).await;
    assert_eq!(malformed.status, 400);
    gateway.stop().await;
}

#[tokio::test]
async fn bad_uploads_are_refused() {
    let gateway = TestGateway::start().await;
    let writer = responder(&gateway.bus, "parlor.cmd.>", |_, request| {
        Some(if request["data"]["name"] == "rejected.txt" {
            refused("invalid_command")
        } else {
            accepted(1)
        })
    })
    .await;
    for (what, headers) in [
        ("no name", vec![]),
        ("bad percent-encoding", vec![("X-File-Name", "%FF%FE")]),
        ("control character", vec![("X-File-Name", "a%0Ab")]),
    ] {
        let response = gateway
            .post("/v1/files", &token("alice"), &headers, Body::Bytes(b"x"))
            .await;
        assert_eq!(response.status, 400, "{what}");
        assert_eq!(response.error_code(), "invalid_command", "{what}");
    }
    let long_name = "n".repeat(256);
    let response = gateway
        .post(
            "/v1/files",
            &token("alice"),
            &[("X-File-Name", &long_name)],
            Body::Bytes(b"x"),
        )
        .await;
    assert_eq!(response.status, 400);
    let response = gateway
        .post(
            "/v1/files",
            &service_token("hiring"),
            &[("X-File-Name", "a.txt")],
            Body::Bytes(b"x"),
        )
        .await;
    assert_eq!(response.status, 403);
    assert_eq!(writer.len(), 0);
    // The writer's refusal of file.register is the answer.
    let response = gateway
        .post(
            "/v1/files",
            &token("alice"),
            &[("X-File-Name", "rejected.txt")],
            Body::Bytes(b"x"),
        )
        .await;
    assert_eq!(response.status, 400);
    assert_eq!(response.error_code(), "invalid_command");
    // No Content-Type: application/octet-stream.
    let response = gateway
        .post(
            "/v1/files",
            &token("alice"),
            &[("X-File-Name", "a.bin")],
            Body::Bytes(b"x"),
        )
        .await;
    assert_eq!(response.json()["content_type"], "application/octet-stream");
    gateway.stop().await;
}
