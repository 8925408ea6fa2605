//! A Parlor deployed as separate processes, as on several machines: one `parlor writer`,
//! replicas of every `parlor projector <model>` (each replica set with its own data directory),
//! and `parlor gateway`s sharing file bytes in the NATS object store (`--blob-store nats`).
//! Each part connects to the NATS URL it is given, so a test can spread them over the nodes of
//! a cluster. Parts can be killed (SIGKILL) and started again on the same directories and ports.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use uuid::Uuid;

use crate::harness::http_client::{self, Body, Response};
use crate::harness::{log_file, read_logs, spawn_part_logging_to, Parlor, START_WAIT};

/// Every read model a projector serves.
pub const MODELS: [&str; 6] = protocol::ReadModel::ALL_NAMES;

/// Where each kind of part connects.
#[derive(Debug, Clone)]
pub struct Placement {
    pub writer: String,
    /// One URL per projector replica set (the replica count is its length).
    pub projector_replicas: Vec<String>,
    /// One URL per gateway.
    pub gateways: Vec<String>,
    /// `--blob-replicas` of the gateways (3 on a three-node cluster).
    pub blob_replicas: u64,
}

/// A gateway process and its addresses.
pub struct GatewayPart {
    pub parlor: Parlor,
    pub addr: SocketAddr,
    pub ops_addr: SocketAddr,
    nats_url: String,
    data_dir: PathBuf,
    blob_replicas: u64,
}

/// The running deployment.
pub struct Deployment {
    pub root: tempfile::TempDir,
    pub secret: String,
    pub writer: Parlor,
    /// `projectors[replica][model]`, in [`MODELS`] order.
    pub projectors: Vec<Vec<Parlor>>,
    projector_urls: Vec<String>,
    pub gateways: Vec<GatewayPart>,
}

fn free_addr() -> SocketAddr {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("a free port");
    listener.local_addr().expect("its address")
}

impl Deployment {
    /// Starts every part and waits until each gateway reports the writer and every read model
    /// up on its operator address.
    pub async fn start(placement: &Placement) -> Deployment {
        let root = tempfile::tempdir().unwrap();
        let secret = format!("deployment secret {}", Uuid::new_v4());
        let writer = Deployment::spawn_writer(root.path(), &placement.writer);
        let projectors = (0..placement.projector_replicas.len())
            .map(|replica| {
                MODELS
                    .iter()
                    .map(|model| {
                        Deployment::spawn_projector(
                            root.path(),
                            replica,
                            model,
                            &placement.projector_replicas[replica],
                        )
                    })
                    .collect()
            })
            .collect();
        let gateways = placement
            .gateways
            .iter()
            .enumerate()
            .map(|(index, url)| {
                let data_dir = root.path().join(format!("gateway-{index}"));
                let (addr, ops_addr) = (free_addr(), free_addr());
                let blob_replicas = placement.blob_replicas;
                GatewayPart {
                    parlor: spawn_gateway(&data_dir, url, &secret, (addr, ops_addr), blob_replicas),
                    addr,
                    ops_addr,
                    nats_url: url.clone(),
                    data_dir,
                    blob_replicas,
                }
            })
            .collect();
        let deployment = Deployment {
            root,
            secret,
            writer,
            projectors,
            projector_urls: placement.projector_replicas.clone(),
            gateways,
        };
        for index in 0..deployment.gateways.len() {
            deployment.wait_until_healthy(index, START_WAIT).await;
        }
        deployment
    }

    fn spawn_writer(root: &Path, url: &str) -> Parlor {
        let data_dir = root.join("writer");
        spawn_part_logging_to(
            &["writer", "--nats-url", url, "--dev-clock"],
            &data_dir,
            log_file(root),
        )
    }

    fn spawn_projector(root: &Path, replica: usize, model: &str, url: &str) -> Parlor {
        // One data directory per replica set: each model keeps its own store inside it.
        let data_dir = root.join(format!("projectors-{replica}"));
        spawn_part_logging_to(
            &["projector", model, "--nats-url", url, "--dev-clock"],
            &data_dir,
            log_file(root),
        )
    }

    /// SIGKILLs one projector replica of `model`.
    pub fn kill_projector(&mut self, replica: usize, model: usize) {
        self.projectors[replica][model].kill();
    }

    /// Starts a killed projector replica again on its data directory.
    pub fn start_projector(&mut self, replica: usize, model: usize) {
        self.projectors[replica][model] = Deployment::spawn_projector(
            self.root.path(),
            replica,
            MODELS[model],
            &self.projector_urls[replica],
        );
    }

    /// SIGKILLs a gateway.
    pub fn kill_gateway(&mut self, index: usize) {
        self.gateways[index].parlor.kill();
    }

    /// Starts a killed gateway again on its data directory and ports.
    pub fn start_gateway(&mut self, index: usize) {
        let part = &mut self.gateways[index];
        part.parlor = spawn_gateway(
            &part.data_dir,
            &part.nats_url,
            &self.secret,
            (part.addr, part.ops_addr),
            part.blob_replicas,
        );
    }

    /// What every part wrote on stderr.
    pub fn logs(&self) -> String {
        read_logs(self.root.path())
    }

    /// Waits until gateway `index` reports the writer and every read model up.
    pub async fn wait_until_healthy(&self, index: usize, wait: Duration) {
        let deadline = Instant::now() + wait;
        let ops_addr = self.gateways[index].ops_addr;
        loop {
            if tokio::net::TcpStream::connect(ops_addr).await.is_ok() {
                let health = http_client::send(ops_addr, "GET", "/healthz", &[], Body::None).await;
                if health.status == 200 {
                    let parts = health.json()["parts"].clone();
                    let writer_up = parts["writer"]["status"] == "up";
                    let models_up = MODELS
                        .iter()
                        .filter(|model| parts.get(**model).is_some())
                        .all(|model| parts[*model]["status"] == "up");
                    if writer_up && models_up {
                        return;
                    }
                }
            }
            assert!(
                Instant::now() < deadline,
                "gateway {index} did not become healthy within {wait:?}: {}",
                self.logs()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// A token of `subject` (with `role`) valid for an hour.
    pub fn token_with(&self, subject: &str, role: Option<gateway::auth::Role>) -> String {
        gateway::auth::mint_token(
            self.secret.as_bytes(),
            subject,
            role,
            Duration::from_secs(3600),
        )
        .expect("mint a token")
    }

    /// A user token valid for an hour.
    pub fn token(&self, user: &str) -> String {
        self.token_with(user, None)
    }

    /// `method path` on gateway `index` with a bearer token, extra headers and a body.
    pub async fn request(
        &self,
        index: usize,
        method: &str,
        path: &str,
        token: &str,
        headers: &[(&str, &str)],
        body: Body<'_>,
    ) -> Response {
        let authorization = format!("Bearer {token}");
        let mut all = vec![("Authorization", authorization.as_str())];
        all.extend_from_slice(headers);
        http_client::send(self.gateways[index].addr, method, path, &all, body).await
    }

    /// `POST /v1/commands/<type>` through gateway `index`.
    pub async fn command(
        &self,
        index: usize,
        token: &str,
        command_type: &str,
        data: &Value,
    ) -> Response {
        let body = serde_json::to_vec(data).unwrap();
        self.request(
            index,
            "POST",
            &format!("/v1/commands/{command_type}"),
            token,
            &[("Content-Type", "application/json")],
            Body::Bytes(&body),
        )
        .await
    }

    /// A command through gateway `index` that must be accepted: its §1 reply.
    pub async fn ok(&self, index: usize, token: &str, command_type: &str, data: Value) -> Value {
        let response = self.command(index, token, command_type, &data).await;
        let reply = response.json();
        assert_eq!(
            (response.status, &reply["ok"]),
            (200, &json!(true)),
            "{command_type} {data} through gateway {index} → {reply}"
        );
        reply
    }

    /// Registers `users` (id and display name) through gateway 0.
    pub async fn register(&self, users: &[(&str, &str)]) -> u64 {
        let service = self.token_with("service:identity", Some(gateway::auth::Role::Service));
        let mut position = 0;
        for (user, name) in users {
            let reply = self
                .ok(
                    0,
                    &service,
                    "user.register",
                    json!({"user_id": user, "display_name": name, "kind": "freelancer"}),
                )
                .await;
            position = reply["position"].as_u64().expect("a position");
        }
        position
    }
}

fn spawn_gateway(
    data_dir: &Path,
    url: &str,
    secret: &str,
    (addr, ops_addr): (SocketAddr, SocketAddr),
    blob_replicas: u64,
) -> Parlor {
    let (addr, ops_addr) = (addr.to_string(), ops_addr.to_string());
    let blob_replicas = blob_replicas.to_string();
    spawn_part_logging_to(
        &[
            "gateway",
            "--nats-url",
            url,
            "--dev-clock",
            "--blob-store",
            "nats",
            "--blob-replicas",
            &blob_replicas,
            "--http-addr",
            &addr,
            "--ops-addr",
            &ops_addr,
            "--jwt-secret",
            secret,
        ],
        data_dir,
        log_file(data_dir.parent().expect("the deployment's root")),
    )
}
