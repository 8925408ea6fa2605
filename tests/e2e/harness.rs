//! Test harness: a real nats-server (testkit), the real `parlor` binary as a child process, and
//! a NATS client that speaks protocol.md §1 and §2 as another service would.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use bus::{Bus, BusError, Headers};
use serde_json::{json, Value};
use testkit::NatsServer;
use uuid::Uuid;

/// How long to wait for a reply to a command.
pub const REPLY_WAIT: Duration = Duration::from_secs(10);
/// How long the writer may take to start answering.
pub const START_WAIT: Duration = Duration::from_secs(30);

/// A running `parlor` process.
pub struct Parlor {
    pub child: Child,
}

impl Parlor {
    /// Starts `parlor writer` (dev clock on) against `nats_url` on `data_dir`.
    pub fn start_writer(nats_url: &str, data_dir: &Path, extra: &[&str]) -> Parlor {
        let child = Command::new(env!("CARGO_BIN_EXE_parlor"))
            .arg("writer")
            .arg("--nats-url")
            .arg(nats_url)
            .arg("--data-dir")
            .arg(data_dir)
            .arg("--dev-clock")
            .args(extra)
            .env("PARLOR_LOG", "warn")
            .stdout(Stdio::null())
            // A file, not a pipe: nobody reads a pipe while the test runs, and a full pipe would
            // stall the writer the moment it logs a lot.
            .stderr(log_file(data_dir))
            .spawn()
            .expect("spawn parlor");
        Parlor { child }
    }

    /// SIGKILL, then reap.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// SIGTERM, then wait for the exit status (bounded).
    pub fn terminate(&mut self) -> std::process::ExitStatus {
        let pid = self.child.id().to_string();
        let _ = Command::new("kill").args(["-TERM", &pid]).status();
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(status) = self.child.try_wait().expect("wait") {
                return status;
            }
            assert!(
                Instant::now() < deadline,
                "parlor did not exit after SIGTERM"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Parlor {
    fn drop(&mut self) {
        self.kill();
    }
}

/// A fresh log file beside `data_dir` for a child's stderr.
pub fn log_file(data_dir: &Path) -> std::fs::File {
    let name = format!("{}.parlor-{}.log", data_dir.display(), Uuid::new_v4());
    std::fs::File::create(name).expect("create a log file")
}

/// The stderr of the last parlor started beside `data_dir`.
pub fn read_logs(data_dir: &Path) -> String {
    let parent = data_dir.parent().expect("a parent");
    let prefix = format!(
        "{}.parlor-",
        data_dir.file_name().unwrap().to_string_lossy()
    );
    let mut text = String::new();
    for entry in std::fs::read_dir(parent).unwrap().flatten() {
        if entry.file_name().to_string_lossy().starts_with(&prefix) {
            text.push_str(&std::fs::read_to_string(entry.path()).unwrap_or_default());
        }
    }
    text
}

/// A NATS client for the tests.
#[derive(Clone)]
pub struct Client {
    pub bus: Bus,
}

impl Client {
    pub async fn connect(url: &str) -> Client {
        Client {
            bus: Bus::connect(url, "e2e-test")
                .await
                .expect("connect to nats"),
        }
    }

    /// Waits until a writer answers `parlor.writer.ping`.
    pub async fn wait_for_writer(&self) {
        let deadline = Instant::now() + START_WAIT;
        loop {
            match self
                .bus
                .request(
                    "parlor.writer.ping",
                    Headers::new(),
                    "{}",
                    Duration::from_millis(500),
                )
                .await
            {
                Ok(_) => return,
                Err(_) if Instant::now() < deadline => {
                    tokio::time::sleep(Duration::from_millis(100)).await
                }
                Err(error) => panic!("writer did not start: {error}"),
            }
        }
    }

    /// Sends raw bytes to `parlor.cmd.<type>` and returns the raw reply bytes.
    pub async fn raw(
        &self,
        command_type: &str,
        headers: Headers,
        payload: Vec<u8>,
    ) -> Result<Vec<u8>, BusError> {
        self.bus
            .request(
                &format!("parlor.cmd.{command_type}"),
                headers,
                payload,
                REPLY_WAIT,
            )
            .await
            .map(|reply| reply.payload.to_vec())
    }

    /// Sends a command with a fresh command id and returns the JSON reply.
    pub async fn send(&self, actor: &str, command_type: &str, data: Value) -> Value {
        self.send_as(Uuid::new_v4(), actor, "desktop", command_type, data)
            .await
    }

    /// Sends a command with the given envelope and returns the JSON reply.
    pub async fn send_as(
        &self,
        command_id: Uuid,
        actor: &str,
        client: &str,
        command_type: &str,
        data: Value,
    ) -> Value {
        let envelope =
            json!({"command_id": command_id, "actor": actor, "client": client, "data": data});
        let bytes = self
            .raw(
                command_type,
                json_headers(),
                serde_json::to_vec(&envelope).unwrap(),
            )
            .await
            .expect("a reply");
        serde_json::from_slice(&bytes).expect("reply is JSON")
    }

    /// Sends and asserts acceptance; returns the reply.
    pub async fn ok(&self, actor: &str, command_type: &str, data: Value) -> Value {
        let reply = self.send(actor, command_type, data.clone()).await;
        assert_eq!(reply["ok"], true, "{command_type} {data} → {reply}");
        reply
    }

    /// Sends and returns the error code of a rejection.
    pub async fn code(&self, actor: &str, command_type: &str, data: Value) -> String {
        let reply = self.send(actor, command_type, data.clone()).await;
        assert_eq!(reply["ok"], false, "{command_type} {data} → {reply}");
        reply["error"]["code"].as_str().expect("code").to_owned()
    }

    /// Registers users through the identity-service command.
    pub async fn register(&self, users: &[&str]) {
        for user in users {
            self.ok(
                "service:identity",
                "user.register",
                json!({"user_id": user, "display_name": user.to_uppercase(), "kind": "freelancer"}),
            )
            .await;
        }
    }

    /// One page of `parlor.log.read`.
    pub async fn log_read(&self, from: u64, max: u64) -> Value {
        let request = json!({"from": from, "max": max});
        let reply = self
            .bus
            .request(
                "parlor.log.read",
                json_headers(),
                serde_json::to_vec(&request).unwrap(),
                REPLY_WAIT,
            )
            .await
            .expect("log.read reply");
        serde_json::from_slice(&reply.payload).expect("log.read JSON")
    }

    /// The whole log through `parlor.log.read`, page by page.
    pub async fn whole_log(&self) -> Vec<Value> {
        let mut events = Vec::new();
        let mut from = 1;
        loop {
            let page = self.log_read(from, 1000).await;
            let batch = page["events"].as_array().expect("events").clone();
            let head = page["head"].as_u64().expect("head");
            if batch.is_empty() {
                assert!(from > head, "an empty page before the head");
                return events;
            }
            from = batch.last().unwrap()["position"].as_u64().unwrap() + 1;
            events.extend(batch);
        }
    }

    /// Moves the writer's development clock.
    pub async fn advance_clock(&self, ms: i64) -> i64 {
        let reply = self
            .bus
            .request(
                "parlor.dev.clock",
                json_headers(),
                json!({"advance_ms": ms}).to_string(),
                REPLY_WAIT,
            )
            .await
            .expect("dev clock reply");
        let value: Value = serde_json::from_slice(&reply.payload).unwrap();
        value["now_ms"].as_i64().expect("now_ms")
    }
}

pub fn json_headers() -> Headers {
    Headers::new().with("Content-Type", "application/json")
}

/// nats-server + one writer + a client, on a fresh data directory.
pub struct System {
    pub nats: NatsServer,
    pub data: tempfile::TempDir,
    pub parlor: Parlor,
    pub client: Client,
}

impl System {
    pub async fn start() -> System {
        System::start_with(&[]).await
    }

    pub async fn start_with(extra: &[&str]) -> System {
        let nats = NatsServer::start();
        let data = tempfile::tempdir().unwrap();
        let parlor = Parlor::start_writer(&nats.url(), data.path(), extra);
        let client = Client::connect(&nats.url()).await;
        client.wait_for_writer().await;
        System {
            nats,
            data,
            parlor,
            client,
        }
    }
}

/// Fills `data_dir` with a log of at least `events` events by running the writer in process
/// (in-process bus, no NATS) and sending commands with many in flight; then stops it cleanly.
pub async fn fill_log(data_dir: &Path, events: usize) {
    use std::sync::Arc;

    let bus = Bus::in_process();
    let config = writer::WriterConfig::new(data_dir);
    let writer = writer::Writer::start(config, bus.clone(), clock::Clock::system())
        .await
        .expect("writer");
    let send = |bus: Bus, actor: String, command_type: &'static str, data: Value| async move {
        let envelope = json!({"command_id": Uuid::new_v4(), "actor": actor, "data": data});
        let reply = bus
            .request(
                &format!("parlor.cmd.{command_type}"),
                json_headers(),
                serde_json::to_vec(&envelope).unwrap(),
                REPLY_WAIT,
            )
            .await
            .expect("reply");
        let reply: Value = serde_json::from_slice(&reply.payload).unwrap();
        assert_eq!(reply["ok"], true, "{reply}");
        reply
    };
    let users: Vec<String> = (0..50).map(|i| format!("user{i}")).collect();
    for user in &users {
        send(
            bus.clone(),
            "service:fill".into(),
            "user.register",
            json!({"user_id": user, "display_name": user, "kind": "client"}),
        )
        .await;
    }
    let room = send(
        bus.clone(),
        users[0].clone(),
        "room.create",
        json!({"name": "Bulk", "members": users[1..]}),
    )
    .await;
    let room = Arc::new(room["result"]["room_id"].as_str().unwrap().to_owned());
    let in_flight = 256;
    let per_task = events / in_flight + 1;
    let mut tasks = Vec::new();
    for task in 0..in_flight {
        let (bus, room, user) = (bus.clone(), room.clone(), users[task % users.len()].clone());
        tasks.push(tokio::spawn(async move {
            for i in 0..per_task {
                send(
                    bus.clone(),
                    user.clone(),
                    "message.send",
                    json!({"room_id": *room, "body": format!("bulk {task}/{i}")}),
                )
                .await;
            }
        }));
    }
    for task in tasks {
        task.await.unwrap();
    }
    writer.shutdown().await.expect("clean shutdown");
}
