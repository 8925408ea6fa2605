//! Narrow identities through the real binary (security.md H-I3, H-I4): `parlor token` mints
//! tokens the gateway's checks accept, the gateway's token flags work, the data directory is
//! private, and the public address says only whether Parlor is up.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Command;

use testkit::CommandWithin;

use crate::harness::http_client::{self, Body};
use crate::harness::{start_up_http, COMMAND_WAIT};

/// `parlor token <args…>`: the token, or the error output when it refuses.
fn parlor_token(args: &[&str]) -> Result<String, String> {
    let output = Command::new(env!("CARGO_BIN_EXE_parlor"))
        .arg("token")
        .args(args)
        .env_remove("PARLOR_JWT_SECRET")
        .output_within(COMMAND_WAIT)
        .expect("run parlor token");
    if output.status.success() {
        Ok(String::from_utf8(output.stdout).unwrap().trim().to_owned())
    } else {
        Err(String::from_utf8_lossy(&output.stderr).into_owned())
    }
}

/// Paths with their permission bits.
type Modes = Vec<(String, u32)>;

/// Each directory under `root` (itself included) with its mode, then each file with its mode.
fn modes(root: &Path) -> (Modes, Modes) {
    let mut directories = Vec::new();
    let mut files = Vec::new();
    let mut pending = vec![root.to_owned()];
    while let Some(directory) = pending.pop() {
        let mode = std::fs::metadata(&directory).unwrap().permissions().mode() & 0o777;
        directories.push((directory.display().to_string(), mode));
        for entry in std::fs::read_dir(&directory).unwrap() {
            let entry = entry.unwrap();
            let metadata = entry.metadata().unwrap();
            if metadata.is_dir() {
                pending.push(entry.path());
            } else {
                let mode = metadata.permissions().mode() & 0o777;
                files.push((entry.path().display().to_string(), mode));
            }
        }
    }
    (directories, files)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn h_i3_parlor_token_mints_what_the_gateway_checks() {
    let directory = tempfile::tempdir().unwrap();
    let previous = directory.path().join("previous-secret");
    std::fs::write(&previous, "the secret of last month\n").unwrap();
    let checks = [
        "--jwt-issuer",
        "https://id.example",
        "--jwt-audience",
        "parlor",
        "--jwt-max-ttl",
        "2h",
    ];
    let mut flags = checks.to_vec();
    let previous_text = previous.to_str().unwrap();
    flags.extend(["--jwt-previous-secret-file", previous_text]);
    let mut sys = start_up_http(&flags).await;
    let secret_file = directory.path().join("secret");
    std::fs::write(&secret_file, format!("{}\n", sys.secret)).unwrap();
    let secret_text = secret_file.to_str().unwrap();

    // Minted with the gateway's issuer, audience and a lifetime within its maximum: accepted.
    let mut args = vec![
        "alice",
        "--ttl-hours",
        "1",
        "--jwt-secret-file",
        secret_text,
    ];
    args.extend(checks);
    let token = parlor_token(&args).expect("a token");
    let rooms = sys.get("/v1/rooms", Some(&token)).await;
    // alice is not registered; any answer but 401 means the token passed.
    assert_ne!(rooms.status, 401, "{}", rooms.text());

    // The previous secret still works during the rotation.
    let mut args = vec![
        "alice",
        "--ttl-hours",
        "1",
        "--jwt-secret-file",
        previous_text,
    ];
    args.extend(checks);
    let old = parlor_token(&args).expect("a token with the previous secret");
    assert_ne!(sys.get("/v1/rooms", Some(&old)).await.status, 401);

    // Without the issuer and audience: refused.
    let bare = parlor_token(&[
        "alice",
        "--ttl-hours",
        "1",
        "--jwt-secret-file",
        secret_text,
    ])
    .expect("a token");
    assert_eq!(sys.get("/v1/rooms", Some(&bare)).await.status, 401);

    // parlor token itself refuses a lifetime over the maximum.
    let mut args = vec![
        "alice",
        "--ttl-hours",
        "3",
        "--jwt-secret-file",
        secret_text,
    ];
    args.extend(checks);
    let refused = parlor_token(&args).expect_err("3 h is over the 2 h maximum");
    assert!(refused.contains("--jwt-max-ttl"), "{refused}");
    sys.parlor.terminate();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn h_i4_public_healthz_says_only_up_and_metrics_are_on_the_ops_address() {
    let mut sys = start_up_http(&[]).await;
    let health = sys.get("/healthz", None).await;
    assert_eq!(health.status, 200);
    assert_eq!(health.json(), serde_json::json!({"status": "up"}));
    assert!(!health.text().contains("position"), "{}", health.text());
    assert_eq!(sys.get("/metrics", None).await.status, 404);

    let parts = http_client::send(sys.ops_addr, "GET", "/healthz", &[], Body::None).await;
    assert_eq!(parts.status, 200, "{}", parts.text());
    assert!(parts.json()["parts"]["writer"]["position"].is_u64());
    let metrics = http_client::send(sys.ops_addr, "GET", "/metrics", &[], Body::None).await;
    assert_eq!(metrics.status, 200);
    assert!(metrics
        .text()
        .contains("parlor_gateway_http_requests_total"));
    sys.parlor.terminate();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn h_i4_the_data_directory_is_0700_and_its_files_0600() {
    let mut sys = start_up_http(&[]).await;
    // Something in every store: a user, a message, an upload (blobs, thumbnails).
    let service = sys.service_token("identity");
    sys.register(&service, &[("alice", "Alice"), ("bob", "Bob")])
        .await;
    let alice = sys.token("alice");
    sys.ok(
        &alice,
        "message.send",
        serde_json::json!({"to": "bob", "body": "hello"}),
    )
    .await;
    let upload = sys
        .post(
            "/v1/files",
            Some(&alice),
            &[("X-File-Name", "notes.txt"), ("Content-Type", "text/plain")],
            Body::Bytes(b"some notes"),
        )
        .await;
    assert_eq!(upload.status, 201, "{}", upload.text());
    // A clean stop writes the snapshot and the index runs too.
    assert!(sys.parlor.terminate().success());

    // The test made the data directory itself (parlor reports an open one, but leaves it as the
    // operator made it); everything parlor created inside must be private.
    let (directories, files) = modes(sys.data.path());
    assert!(files.len() > 5, "the stores wrote files: {files:?}");
    let open: Vec<_> = directories
        .iter()
        .skip(1)
        .filter(|(_, mode)| *mode != 0o700)
        .chain(files.iter().filter(|(_, mode)| *mode != 0o600))
        .collect();
    assert!(open.is_empty(), "not private: {open:?}");

    // A data directory parlor creates itself is 0700 (parents included), its secret 0600.
    let parent = tempfile::tempdir().unwrap();
    let fresh = parent.path().join("new").join("data");
    parlor_token(&["alice", "--data-dir", fresh.to_str().unwrap()]).expect("a token");
    let (directories, files) = modes(&parent.path().join("new"));
    assert!(
        directories.iter().all(|(_, mode)| *mode == 0o700),
        "{directories:?}"
    );
    assert_eq!(files.len(), 1, "{files:?}");
    assert!(files.iter().all(|(_, mode)| *mode == 0o600), "{files:?}");
}
