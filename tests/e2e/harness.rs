//! Test harness: a real nats-server (testkit), the real `parlor` binary as a child process, and
//! a NATS client that speaks protocol.md §1 and §2 as another service would.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use bus::{Bus, BusError, Headers};
use serde_json::{json, Value};
use testkit::{CommandWithin, NatsServer};
use uuid::Uuid;

/// How long to wait for a reply to a command.
pub const REPLY_WAIT: Duration = Duration::from_secs(10);
/// How long the writer may take to start answering.
pub const START_WAIT: Duration = Duration::from_secs(30);
/// How long a SIGKILLed child may take to be reaped.
pub const KILL_REAP_WAIT: Duration = Duration::from_secs(10);
/// How long a command the tests run to its end (`parlor replay`, `parlor token`, a system
/// tool) may take before it is killed and the test fails: generous for a replay of a large log
/// in a debug build on a loaded machine, finite so that a hang fails CI instead of stalling it.
pub const COMMAND_WAIT: Duration = Duration::from_secs(600);

/// A running `parlor` process.
pub struct Parlor {
    pub child: Child,
}

impl Parlor {
    /// Starts `parlor writer` (dev clock on) against `nats_url` on `data_dir`.
    pub fn start_writer(nats_url: &str, data_dir: &Path, extra: &[&str]) -> Parlor {
        let mut args = vec!["writer", "--nats-url", nats_url, "--dev-clock"];
        args.extend_from_slice(extra);
        spawn_part(&args, data_dir)
    }

    /// Panics unless the process is still running.
    pub fn assert_alive(&mut self) {
        match self.child.try_wait() {
            Ok(None) => {}
            Ok(Some(status)) => panic!("parlor exited early with {status}"),
            Err(error) => panic!("cannot ask whether parlor runs: {error}"),
        }
    }

    /// SIGKILL, then reap (bounded: a process stuck in the kernel is reported, not awaited).
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        match testkit::reap_within(&mut self.child, KILL_REAP_WAIT) {
            Ok(Some(_)) => {}
            Ok(None) => eprintln!("parlor (pid {}) not reaped after SIGKILL", self.child.id()),
            Err(error) => eprintln!("cannot reap parlor: {error}"),
        }
    }

    /// SIGTERM, then wait for the exit status (bounded).
    pub fn terminate(&mut self) -> std::process::ExitStatus {
        let pid = self.child.id().to_string();
        let _ = Command::new("kill")
            .args(["-TERM", &pid])
            .status_within(COMMAND_WAIT);
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

/// Where the logs of children started on `data_dir` go: the system's temporary directory,
/// never the data directory's own filesystem (which a test may fill on purpose).
fn log_prefix(data_dir: &Path) -> String {
    let flat: String = data_dir
        .to_string_lossy()
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
        .collect();
    format!("parlor-e2e{flat}.")
}

/// A fresh log file for the stderr of a child started on `data_dir`.
pub fn log_file(data_dir: &Path) -> std::fs::File {
    let path = std::env::temp_dir().join(format!("{}{}.log", log_prefix(data_dir), Uuid::new_v4()));
    std::fs::File::create(path).expect("create a log file")
}

/// `parlor <args> --data-dir <dir>` (one part, such as `writer` or `projector rooms`) with its
/// stderr in this harness's log files.
pub fn spawn_part(args: &[&str], data_dir: &Path) -> Parlor {
    spawn_part_logging_to(args, data_dir, log_file(data_dir))
}

/// [`spawn_part`] with the child's stderr in `stderr` (a test may put it on a disk it fills).
pub fn spawn_part_logging_to(args: &[&str], data_dir: &Path, stderr: std::fs::File) -> Parlor {
    spawn_part_with_env(args, data_dir, stderr, &[])
}

/// [`spawn_part_logging_to`] with extra environment variables (`PARLOR_*` flags, say).
pub fn spawn_part_with_env(
    args: &[&str],
    data_dir: &Path,
    stderr: std::fs::File,
    envs: &[(&str, &str)],
) -> Parlor {
    let child = Command::new(env!("CARGO_BIN_EXE_parlor"))
        .args(args)
        .envs(envs.iter().copied())
        .arg("--data-dir")
        .arg(data_dir)
        .env("PARLOR_LOG", "warn")
        .stdout(Stdio::null())
        // A file, not a pipe: nobody reads a pipe while the test runs, and a full pipe would
        // stall the process the moment it logs a lot.
        .stderr(stderr)
        .spawn()
        .expect("spawn parlor");
    Parlor { child }
}

/// The stderr of every parlor started on `data_dir`.
pub fn read_logs(data_dir: &Path) -> String {
    let prefix = log_prefix(data_dir);
    let mut text = String::new();
    for entry in std::fs::read_dir(std::env::temp_dir()).unwrap().flatten() {
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

    /// Registers `count` users `<prefix>0`… and has the first create a group room `name` with
    /// all the others: the users and the room's id.
    pub async fn group_room(
        &self,
        prefix: &str,
        count: usize,
        name: &str,
    ) -> (Vec<String>, String) {
        let users: Vec<String> = (0..count).map(|i| format!("{prefix}{i}")).collect();
        let names: Vec<&str> = users.iter().map(String::as_str).collect();
        self.register(&names).await;
        let room = self
            .ok(
                names[0],
                "room.create",
                json!({"name": name, "members": names[1..]}),
            )
            .await["result"]["room_id"]
            .as_str()
            .expect("room.create answers a room_id")
            .to_owned();
        (users, room)
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
            "service:identity".into(),
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

// ---------------------------------------------------------------------------------------------
// HTTP: `parlor up` with its gateway, and a small HTTP/1.1 client over raw TCP (after the
// gateway's own tests: no reqwest; it can also declare a body and send none).

/// `parlor up --nats-url … --dev-clock --http-addr … --jwt-secret …`, and what it runs on.
pub struct HttpSystem {
    /// Kept for as long as the system runs.
    pub _nats: NatsServer,
    pub data: tempfile::TempDir,
    pub parlor: Parlor,
    /// Where the gateway listens.
    pub addr: std::net::SocketAddr,
    /// The operator address: `/healthz` with each part, and `/metrics` (security.md H-I4).
    pub ops_addr: std::net::SocketAddr,
    /// The JWT secret given on the command line.
    pub secret: String,
}

/// Starts `parlor up` with the HTTP gateway on a free port and waits until `/healthz` reports
/// the writer and the read models up.
pub async fn start_up_http(extra: &[&str]) -> HttpSystem {
    let nats = NatsServer::start();
    let data = tempfile::tempdir().unwrap();
    let secret = format!("e2e secret {}", Uuid::new_v4());
    // A port picked free may be taken again before parlor binds it: then try another.
    for _attempt in 0..3 {
        let free_port = || {
            let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("a free port");
            listener.local_addr().unwrap()
        };
        let (addr, ops_addr) = (free_port(), free_port());
        let child = Command::new(env!("CARGO_BIN_EXE_parlor"))
            .args(["up", "--nats-url", &nats.url(), "--dev-clock", "--data-dir"])
            .arg(data.path())
            .args(["--http-addr", &addr.to_string(), "--jwt-secret", &secret])
            .args(["--ops-addr", &ops_addr.to_string()])
            .args(extra)
            .env("PARLOR_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(log_file(data.path()))
            .spawn()
            .expect("spawn parlor up");
        let mut parlor = Parlor { child };
        if wait_for_http(&mut parlor, addr, ops_addr).await {
            return HttpSystem {
                _nats: nats,
                data,
                parlor,
                addr,
                ops_addr,
                secret,
            };
        }
    }
    panic!(
        "parlor up did not start serving HTTP: {}",
        read_logs(data.path())
    );
}

/// The parts `/healthz` must report up before a test starts: the writer and every read model
/// the gateway queries, search included.
const HTTP_PARTS_NEEDED: [&str; 6] = [
    "writer",
    "rooms",
    "timeline",
    "files",
    "search",
    "moderation",
];

/// Waits for the operator address's `/healthz` to report the writer and the read models up
/// (and the public address to accept connections); `false` when the process exited first (a
/// port was taken, say).
pub async fn wait_for_http(
    parlor: &mut Parlor,
    addr: std::net::SocketAddr,
    ops_addr: std::net::SocketAddr,
) -> bool {
    let deadline = Instant::now() + START_WAIT;
    loop {
        if parlor.child.try_wait().expect("wait").is_some() {
            return false;
        }
        if tokio::net::TcpStream::connect(addr).await.is_ok()
            && tokio::net::TcpStream::connect(ops_addr).await.is_ok()
        {
            let health =
                http_client::send(ops_addr, "GET", "/healthz", &[], http_client::Body::None).await;
            if health.status == 200 {
                let value = health.json();
                if HTTP_PARTS_NEEDED
                    .iter()
                    .all(|part| value["parts"][part]["status"] == "up")
                {
                    return true;
                }
            }
        }
        assert!(
            Instant::now() < deadline,
            "parlor up did not become healthy at {addr}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

impl HttpSystem {
    /// What parlor wrote on stderr so far.
    pub fn logs(&self) -> String {
        read_logs(self.data.path())
    }

    /// A user token valid for an hour, minted in process.
    pub fn token(&self, user: &str) -> String {
        gateway::auth::mint_token(
            self.secret.as_bytes(),
            user,
            None,
            Duration::from_secs(3600),
        )
        .expect("mint a user token")
    }

    /// A moderator token valid for an hour.
    pub fn moderator_token(&self, subject: &str) -> String {
        gateway::auth::mint_token(
            self.secret.as_bytes(),
            subject,
            Some(gateway::auth::Role::Moderator),
            Duration::from_secs(3600),
        )
        .expect("mint a moderator token")
    }

    /// A service token (`service:<name>`, role `service`) valid for an hour.
    pub fn service_token(&self, name: &str) -> String {
        gateway::auth::mint_token(
            self.secret.as_bytes(),
            &format!("service:{name}"),
            Some(gateway::auth::Role::Service),
            Duration::from_secs(3600),
        )
        .expect("mint a service token")
    }

    /// A token printed by `parlor token <args…> --jwt-secret <secret>`.
    pub fn cli_token(&self, args: &[&str]) -> String {
        let output = Command::new(env!("CARGO_BIN_EXE_parlor"))
            .arg("token")
            .args(args)
            .args(["--jwt-secret", &self.secret])
            .output_within(COMMAND_WAIT)
            .expect("run parlor token");
        assert!(
            output.status.success(),
            "parlor token: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        String::from_utf8(output.stdout).unwrap().trim().to_owned()
    }

    /// `GET path`, with a bearer token when given.
    pub async fn get(&self, path: &str, token: Option<&str>) -> http_client::Response {
        let authorization = token.map(|token| format!("Bearer {token}"));
        let mut headers = Vec::new();
        if let Some(authorization) = &authorization {
            headers.push(("Authorization", authorization.as_str()));
        }
        http_client::send(self.addr, "GET", path, &headers, http_client::Body::None).await
    }

    /// `POST path` with a bearer token (when given), extra headers and a body.
    pub async fn post(
        &self,
        path: &str,
        token: Option<&str>,
        headers: &[(&str, &str)],
        body: http_client::Body<'_>,
    ) -> http_client::Response {
        let authorization = token.map(|token| format!("Bearer {token}"));
        let mut all = Vec::new();
        if let Some(authorization) = &authorization {
            all.push(("Authorization", authorization.as_str()));
        }
        all.extend_from_slice(headers);
        http_client::send(self.addr, "POST", path, &all, body).await
    }

    /// `POST /v1/commands/<type>` with `data` as the body.
    pub async fn command(
        &self,
        token: &str,
        command_type: &str,
        data: &Value,
    ) -> http_client::Response {
        let body = serde_json::to_vec(data).unwrap();
        self.post(
            &format!("/v1/commands/{command_type}"),
            Some(token),
            &[("Content-Type", "application/json")],
            http_client::Body::Bytes(&body),
        )
        .await
    }

    /// A command that must be accepted: its §1 reply.
    pub async fn ok(&self, token: &str, command_type: &str, data: Value) -> Value {
        let response = self.command(token, command_type, &data).await;
        let reply = response.json();
        assert_eq!(
            (response.status, &reply["ok"]),
            (200, &json!(true)),
            "{command_type} {data} → {reply}"
        );
        reply
    }

    /// Registers `(user id, display name)` pairs through `user.register` with `service_token`.
    pub async fn register(&self, service_token: &str, users: &[(&str, &str)]) -> u64 {
        let mut position = 0;
        for (user, name) in users {
            let reply = self
                .ok(
                    service_token,
                    "user.register",
                    json!({"user_id": user, "display_name": name, "kind": "freelancer"}),
                )
                .await;
            position = reply["position"].as_u64().expect("a position");
        }
        position
    }
}

/// A small HTTP/1.1 client over raw TCP, one request per connection.
pub mod http_client {
    use std::net::SocketAddr;
    use std::time::Duration;

    use serde_json::Value;
    use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
    use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
    use tokio::net::TcpStream;

    /// How long a response may take before the test fails (no request may hang).
    pub const RESPONSE_WAIT_MAX: Duration = Duration::from_secs(20);

    /// A complete response.
    #[derive(Debug)]
    pub struct Response {
        pub status: u16,
        /// The headers, names lowercased.
        pub headers: Vec<(String, String)>,
        /// The body, de-chunked.
        pub body: Vec<u8>,
    }

    impl Response {
        /// The first value of a header.
        pub fn header(&self, name: &str) -> Option<&str> {
            let name = name.to_ascii_lowercase();
            self.headers
                .iter()
                .find(|(key, _)| *key == name)
                .map(|(_, value)| value.as_str())
        }

        /// The body as JSON (panics with the body when it is not).
        pub fn json(&self) -> Value {
            serde_json::from_slice(&self.body).unwrap_or_else(|error| {
                panic!(
                    "status {}: body is not JSON ({error}): {}",
                    self.status,
                    self.text()
                )
            })
        }

        /// The body as (lossy) text.
        pub fn text(&self) -> String {
            String::from_utf8_lossy(&self.body).into_owned()
        }

        /// `error.code` of a JSON error body.
        pub fn error_code(&self) -> String {
            self.json()["error"]["code"]
                .as_str()
                .unwrap_or_else(|| panic!("no error code in {}", self.text()))
                .to_owned()
        }
    }

    /// A request body.
    pub enum Body<'a> {
        /// No body.
        None,
        /// A body with a `Content-Length`.
        Bytes(&'a [u8]),
        /// Headers declaring `Content-Length: n`, and no body at all.
        DeclaredOnly(u64),
    }

    /// Sends one request on a new connection (`Connection: close`) and reads the whole response
    /// (panics after [`RESPONSE_WAIT_MAX`]).
    pub async fn send(
        addr: SocketAddr,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: Body<'_>,
    ) -> Response {
        let head = request_head(addr, method, path, headers, &body);
        send_raw(addr, head.into_bytes(), body).await
    }

    fn request_head(
        addr: SocketAddr,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: &Body<'_>,
    ) -> String {
        let mut head = format!("{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n");
        for (name, value) in headers {
            head.push_str(&format!("{name}: {value}\r\n"));
        }
        match body {
            Body::None => {}
            Body::Bytes(bytes) => head.push_str(&format!("Content-Length: {}\r\n", bytes.len())),
            Body::DeclaredOnly(length) => head.push_str(&format!("Content-Length: {length}\r\n")),
        }
        head.push_str("\r\n");
        head
    }

    /// Writes `request` as is and reads until the server closes: `(status, body)`, status `None`
    /// when the server closed without answering (panics after [`RESPONSE_WAIT_MAX`]).
    pub async fn exchange_raw(addr: SocketAddr, request: &[u8]) -> (Option<u16>, Vec<u8>) {
        let mut stream = TcpStream::connect(addr)
            .await
            .expect("connect to the gateway");
        // The server may close before taking everything: what it answered still counts.
        let _ = stream.write_all(request).await;
        let mut answer = Vec::new();
        let _ = tokio::time::timeout(RESPONSE_WAIT_MAX, stream.read_to_end(&mut answer))
            .await
            .expect("the server answered or closed in time");
        let text = String::from_utf8_lossy(&answer).into_owned();
        let status = text
            .lines()
            .next()
            .and_then(|line| line.split_whitespace().nth(1))
            .and_then(|code| code.parse().ok());
        let body = match text.find("\r\n\r\n") {
            Some(end) => answer[end + 4..].to_vec(),
            None => Vec::new(),
        };
        (status, body)
    }

    /// Sends `head` (the request line and headers, as raw bytes) and `body`; reads the response.
    pub async fn send_raw(addr: SocketAddr, head: Vec<u8>, body: Body<'_>) -> Response {
        let stream = TcpStream::connect(addr)
            .await
            .expect("connect to the gateway");
        let (read, mut write) = stream.into_split();
        let chunks: Vec<Vec<u8>> = match body {
            Body::None | Body::DeclaredOnly(_) => Vec::new(),
            Body::Bytes(bytes) => bytes.chunks(64 * 1024).map(<[u8]>::to_vec).collect(),
        };
        // The body is written while the response is read: a server may answer (413, say) and
        // close before taking the whole body, and the answer must still be seen.
        let writer = tokio::spawn(async move {
            write.write_all(&head).await?;
            for chunk in chunks {
                write.write_all(&chunk).await?;
            }
            write.flush().await?;
            // Keep the write half open until the server is done; dropping it would half-close.
            Ok::<_, std::io::Error>(write)
        });
        let mut reader = BufReader::new(read);
        let response = tokio::time::timeout(RESPONSE_WAIT_MAX, read_response(&mut reader))
            .await
            .expect("the response came in time");
        // A write error is expected when the server refused the body early.
        let _ = writer.await;
        response
    }

    async fn read_head(reader: &mut BufReader<OwnedReadHalf>) -> (u16, Vec<(String, String)>) {
        let mut line = String::new();
        reader
            .read_line(&mut line)
            .await
            .expect("read the status line");
        let status = line
            .split_whitespace()
            .nth(1)
            .and_then(|code| code.parse().ok())
            .unwrap_or_else(|| panic!("bad status line {line:?}"));
        let mut headers = Vec::new();
        loop {
            line.clear();
            reader.read_line(&mut line).await.expect("read a header");
            let trimmed = line.trim_end();
            if trimmed.is_empty() {
                break;
            }
            if let Some((name, value)) = trimmed.split_once(':') {
                headers.push((name.trim().to_ascii_lowercase(), value.trim().to_owned()));
            }
        }
        (status, headers)
    }

    async fn read_response(reader: &mut BufReader<OwnedReadHalf>) -> Response {
        let (status, headers) = read_head(reader).await;
        let header = |name: &str| {
            headers
                .iter()
                .find(|(key, _)| key == name)
                .map(|(_, value)| value.clone())
        };
        let mut body = Vec::new();
        if header("transfer-encoding").is_some_and(|value| value.contains("chunked")) {
            while let Some(chunk) = read_chunk(reader).await {
                body.extend_from_slice(&chunk);
            }
        } else if let Some(length) = header("content-length") {
            let length: usize = length.parse().expect("a numeric Content-Length");
            body.resize(length, 0);
            reader.read_exact(&mut body).await.expect("read the body");
        } else {
            let _ = reader.read_to_end(&mut body).await;
        }
        Response {
            status,
            headers,
            body,
        }
    }

    /// One chunk of a chunked body; `None` at the last (empty) chunk or at the end.
    async fn read_chunk(reader: &mut BufReader<OwnedReadHalf>) -> Option<Vec<u8>> {
        let mut line = String::new();
        if reader.read_line(&mut line).await.ok()? == 0 {
            return None;
        }
        let size = usize::from_str_radix(line.trim().split(';').next()?.trim(), 16).ok()?;
        if size == 0 {
            line.clear();
            let _ = reader.read_line(&mut line).await;
            return None;
        }
        let mut chunk = vec![0; size + 2];
        reader.read_exact(&mut chunk).await.ok()?;
        chunk.truncate(size);
        Some(chunk)
    }

    /// One Server-Sent Event.
    #[derive(Debug, Clone, PartialEq, Eq)]
    pub struct SseEvent {
        pub id: Option<String>,
        pub event: Option<String>,
        /// `data:` lines joined by newlines.
        pub data: String,
    }

    impl SseEvent {
        /// The id as a position.
        pub fn position(&self) -> u64 {
            self.id
                .as_deref()
                .and_then(|id| id.parse().ok())
                .unwrap_or_else(|| panic!("event without a numeric id: {self:?}"))
        }

        /// The data as JSON.
        pub fn json(&self) -> Value {
            serde_json::from_str(&self.data).expect("SSE data is JSON")
        }
    }

    /// An open SSE stream (or the error answered instead).
    pub struct SseStream {
        pub status: u16,
        pub headers: Vec<(String, String)>,
        reader: BufReader<OwnedReadHalf>,
        _write: OwnedWriteHalf,
        text: String,
        /// The body of a non-200 (error) answer.
        pub body: Vec<u8>,
    }

    impl SseStream {
        /// Opens `GET path` with `headers`.
        pub async fn open(addr: SocketAddr, path: &str, headers: &[(&str, &str)]) -> SseStream {
            let stream = TcpStream::connect(addr)
                .await
                .expect("connect to the gateway");
            let (read, mut write) = stream.into_split();
            let mut head =
                format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nAccept: text/event-stream\r\n");
            for (name, value) in headers {
                head.push_str(&format!("{name}: {value}\r\n"));
            }
            head.push_str("\r\n");
            write
                .write_all(head.as_bytes())
                .await
                .expect("send the request");
            let mut reader = BufReader::new(read);
            let (status, headers) = tokio::time::timeout(RESPONSE_WAIT_MAX, read_head(&mut reader))
                .await
                .expect("the response head came in time");
            let mut stream = SseStream {
                status,
                headers,
                reader,
                _write: write,
                text: String::new(),
                body: Vec::new(),
            };
            if status != 200 {
                let length = stream
                    .header("content-length")
                    .and_then(|value| value.parse::<usize>().ok())
                    .unwrap_or(0);
                stream.body.resize(length, 0);
                let _ = tokio::time::timeout(
                    RESPONSE_WAIT_MAX,
                    stream.reader.read_exact(&mut stream.body),
                )
                .await
                .expect("the error body came in time");
            }
            stream
        }

        /// The first value of a header.
        pub fn header(&self, name: &str) -> Option<&str> {
            self.headers
                .iter()
                .find(|(key, _)| key == name)
                .map(|(_, value)| value.as_str())
        }

        /// The next event, or `None` when none comes within `wait` (or the stream ends).
        pub async fn next(&mut self, wait: Duration) -> Option<SseEvent> {
            let deadline = tokio::time::Instant::now() + wait;
            loop {
                if let Some(event) = self.parse_one() {
                    return Some(event);
                }
                let chunk = tokio::time::timeout_at(deadline, read_chunk(&mut self.reader))
                    .await
                    .ok()??;
                self.text.push_str(&String::from_utf8_lossy(&chunk));
            }
        }

        /// Every event arriving within `wait` of the previous one.
        pub async fn collect(&mut self, wait: Duration) -> Vec<SseEvent> {
            let mut events = Vec::new();
            while let Some(event) = self.next(wait).await {
                events.push(event);
            }
            events
        }

        /// Takes one complete event off the buffered text; comments (keep-alives) are skipped.
        fn parse_one(&mut self) -> Option<SseEvent> {
            loop {
                let end = self.text.find("\n\n")?;
                let block: String = self.text.drain(..end + 2).collect();
                let mut event = SseEvent {
                    id: None,
                    event: None,
                    data: String::new(),
                };
                let mut has_data = false;
                for line in block.lines() {
                    if let Some(value) = line.strip_prefix("id:") {
                        event.id = Some(value.trim_start().to_owned());
                    } else if let Some(value) = line.strip_prefix("event:") {
                        event.event = Some(value.trim_start().to_owned());
                    } else if let Some(value) = line.strip_prefix("data:") {
                        if has_data {
                            event.data.push('\n');
                        }
                        event
                            .data
                            .push_str(value.strip_prefix(' ').unwrap_or(value));
                        has_data = true;
                    }
                }
                if has_data || event.id.is_some() {
                    return Some(event);
                }
            }
        }
    }
}

/// Who leads the HA writers now, by `writer.ping` over `bus`: the leader's name and epoch
/// (`None` while no writer answers or none leads).
pub async fn ha_leader(bus: &Bus) -> Option<(String, u64)> {
    let reply = bus
        .request(
            "parlor.writer.ping",
            Headers::new(),
            "{}",
            Duration::from_millis(500),
        )
        .await
        .ok()?;
    let ping: Value = serde_json::from_slice(&reply.payload).ok()?;
    Some((ping["leader"].as_str()?.to_owned(), ping["epoch"].as_u64()?))
}
