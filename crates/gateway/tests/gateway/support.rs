//! Test support: a gateway on a free port, tokens, and small fake parts behind it (writer,
//! projectors, presence, the log) that answer on the bus the way docs/queries.md and
//! protocol.md say the real ones do, recording what they were asked.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bus::{Bus, Headers};
use clock::Clock;
use domain::{CommandId, Event, MessageId, RoomId, Timestamp, UserId};
use gateway::{Gateway, GatewayConfig, GatewayError, Role};
use protocol::{EventHeaders, Format, LogReadReply, LogReadRequest, RecordedEvent, Sha256};
use serde_json::{json, Value};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use crate::http::{self, Body, Response};

/// The JWT secret of every test gateway.
pub const SECRET: &str = "a test secret that is long enough";

/// A running gateway and what it runs on.
pub struct TestGateway {
    /// Where it listens.
    pub addr: SocketAddr,
    /// Its operator address (`/healthz` with parts, `/metrics`), on a free port unless the
    /// test's configuration turned it off.
    pub ops_addr: Option<SocketAddr>,
    /// Its bus (fakes subscribe here).
    pub bus: Bus,
    /// Its clock.
    pub clock: Clock,
    /// Its data directory.
    pub data_dir: tempfile::TempDir,
    stop: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<Result<(), GatewayError>>>,
}

impl TestGateway {
    /// A gateway on an in-process bus with the default configuration.
    pub async fn start() -> TestGateway {
        TestGateway::start_with(Bus::in_process(), |_| {}).await
    }

    /// A gateway on `bus`, its configuration adjusted by `configure`.
    pub async fn start_with(bus: Bus, configure: impl FnOnce(&mut GatewayConfig)) -> TestGateway {
        let data_dir = tempfile::tempdir().expect("a temporary data dir");
        TestGateway::start_in(bus, data_dir, configure).await
    }

    /// A gateway on `bus` over an existing data directory (a restart, say).
    pub async fn start_in(
        bus: Bus,
        data_dir: tempfile::TempDir,
        configure: impl FnOnce(&mut GatewayConfig),
    ) -> TestGateway {
        let mut config = GatewayConfig::new(
            "127.0.0.1:0".parse().expect("an address"),
            SECRET,
            data_dir.path().to_owned(),
        );
        // Short enough that a test of a missing part does not wait long.
        config.query_timeout = Duration::from_secs(3);
        config.command_timeout = Duration::from_secs(3);
        config.ops_addr = Some("127.0.0.1:0".parse().expect("an address"));
        configure(&mut config);
        let clock = Clock::development();
        let gateway = Gateway::bind(config, bus.clone(), clock.clone())
            .await
            .expect("the gateway binds");
        let addr = gateway.local_addr();
        let ops_addr = gateway.ops_addr();
        let (stop, stopped) = oneshot::channel();
        let task = tokio::spawn(gateway.run(async move {
            let _ = stopped.await;
        }));
        TestGateway {
            addr,
            ops_addr,
            bus,
            clock,
            data_dir,
            stop: Some(stop),
            task: Some(task),
        }
    }

    /// The operator address; the test's configuration must have kept it.
    pub fn ops(&self) -> SocketAddr {
        self.ops_addr.expect("the operator address is on")
    }

    /// `GET path` with a bearer token.
    pub async fn get(&self, path: &str, token: &str) -> Response {
        let authorization = format!("Bearer {token}");
        http::send(
            self.addr,
            "GET",
            path,
            &[("Authorization", &authorization)],
            Body::None,
        )
        .await
    }

    /// `POST path` with a bearer token, extra headers and a body.
    pub async fn post(
        &self,
        path: &str,
        token: &str,
        headers: &[(&str, &str)],
        body: Body<'_>,
    ) -> Response {
        let authorization = format!("Bearer {token}");
        let mut all = vec![("Authorization", authorization.as_str())];
        all.extend_from_slice(headers);
        http::send(self.addr, "POST", path, &all, body).await
    }

    /// Stops the gateway, waits until it has stopped, and hands back its data directory.
    pub async fn stop_keeping_data(mut self) -> tempfile::TempDir {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(task) = self.task.take() {
            let result = tokio::time::timeout(Duration::from_secs(15), task)
                .await
                .expect("the gateway stops in time")
                .expect("the gateway task did not panic");
            result.expect("the gateway stopped cleanly");
        }
        let placeholder = tempfile::tempdir().expect("a temporary data dir");
        std::mem::replace(&mut self.data_dir, placeholder)
    }

    /// Stops the gateway and waits until it has stopped.
    pub async fn stop(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(task) = self.task.take() {
            let result = tokio::time::timeout(Duration::from_secs(15), task)
                .await
                .expect("the gateway stops in time")
                .expect("the gateway task did not panic");
            result.expect("the gateway stopped cleanly");
        }
    }
}

impl Drop for TestGateway {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

/// A user token valid for an hour.
pub fn token(user: &str) -> String {
    gateway::auth::mint_token(SECRET.as_bytes(), user, None, Duration::from_secs(3600))
        .expect("mint a user token")
}

/// A moderator token.
pub fn moderator_token(user: &str) -> String {
    gateway::auth::mint_token(
        SECRET.as_bytes(),
        user,
        Some(Role::Moderator),
        Duration::from_secs(3600),
    )
    .expect("mint a moderator token")
}

/// A service token for `service:<name>`.
pub fn service_token(name: &str) -> String {
    gateway::auth::mint_token(
        SECRET.as_bytes(),
        &format!("service:{name}"),
        Some(Role::Service),
        Duration::from_secs(3600),
    )
    .expect("mint a service token")
}

/// A token with arbitrary claims, signed with `secret` (for the refusals).
pub fn raw_token(secret: &str, claims: &Value) -> String {
    // mint_token installs the HS256 provider jsonwebtoken needs.
    let _ = token("warm-up");
    jsonwebtoken::encode(
        &jsonwebtoken::Header::default(),
        claims,
        &jsonwebtoken::EncodingKey::from_secret(secret.as_bytes()),
    )
    .expect("encode a raw token")
}

/// Seconds since the epoch, by the real clock.
pub fn now_seconds() -> i64 {
    clock::real_now_ms() / 1000
}

/// Requests a fake received: (subject, JSON payload).
#[derive(Clone, Default)]
pub struct Recorded(Arc<Mutex<Vec<(String, Value)>>>);

impl Recorded {
    /// Everything received so far.
    pub fn all(&self) -> Vec<(String, Value)> {
        self.0.lock().expect("the record lock").clone()
    }

    /// The last request's payload.
    pub fn last(&self) -> Value {
        self.all()
            .last()
            .map(|(_, payload)| payload.clone())
            .expect("the fake received a request")
    }

    /// How many requests were received.
    pub fn len(&self) -> usize {
        self.0.lock().expect("the record lock").len()
    }
}

/// Answers requests on `subject` with `handler(subject, request)` (`None`: stay silent),
/// recording each request.
pub async fn responder<F>(bus: &Bus, subject: &str, handler: F) -> Recorded
where
    F: Fn(&str, &Value) -> Option<Value> + Send + Sync + 'static,
{
    let mut subscription = bus.subscribe(subject).await.expect("subscribe a fake");
    let recorded = Recorded::default();
    let record = recorded.clone();
    let bus = bus.clone();
    tokio::spawn(async move {
        while let Some(message) = subscription.next().await {
            let request: Value = serde_json::from_slice(&message.payload).unwrap_or(Value::Null);
            record
                .0
                .lock()
                .expect("the record lock")
                .push((message.subject.clone(), request.clone()));
            if let Some(reply) = handler(&message.subject, &request) {
                let headers = Headers::new().with("Content-Type", "application/json");
                let _ = bus.respond(&message, headers, reply.to_string()).await;
            }
        }
    });
    recorded
}

/// Returns once the server has processed every subscription `bus` made so far.
///
/// Over NATS, `Bus::subscribe` returns once the SUB is written to the socket, not once the
/// server has processed it, so a request from another connection right after may still find no
/// responders. A request on the same connection is ordered after its earlier SUBs: its answer
/// proves they are in place.
pub async fn sync_with_server(bus: &Bus) {
    let subject = format!("barrier.{}", uuid::Uuid::new_v4().simple());
    responder(bus, &subject, |_, _| Some(json!({}))).await;
    bus.request(&subject, Headers::new(), "{}", Duration::from_secs(5))
        .await
        .expect("the barrier answers");
}

/// A writer's accepted reply.
pub fn accepted(position: u64) -> Value {
    json!({"ok": true, "position": position, "events": []})
}

/// A writer's (or projector's) refusal.
pub fn refused(code: &str) -> Value {
    json!({"ok": false, "error": {"code": code, "message": format!("refused: {code}")}})
}

/// A projector's answer.
pub fn answer(position: u64, data: Value) -> Value {
    json!({"ok": true, "position": position, "data": data})
}

/// An event log kept in memory: serves `parlor.log.read` and publishes on `parlor.evt.<type>`.
#[derive(Clone)]
pub struct FakeLog {
    bus: Bus,
    events: Arc<Mutex<Vec<RecordedEvent>>>,
}

impl FakeLog {
    /// Starts serving `parlor.log.read` on `bus`.
    pub async fn start(bus: &Bus) -> FakeLog {
        let log = FakeLog {
            bus: bus.clone(),
            events: Arc::default(),
        };
        let mut subscription = bus
            .subscribe("parlor.log.read")
            .await
            .expect("subscribe log.read");
        let server = log.clone();
        tokio::spawn(async move {
            while let Some(message) = subscription.next().await {
                let format = Format::from_content_type(message.headers.get("Content-Type"))
                    .unwrap_or(Format::Json);
                let request = LogReadRequest::decode(&message.payload, format)
                    .expect("a valid log.read request");
                let reply = server.read(request.from, request.max);
                let payload = reply.encode(format).expect("encode log.read");
                let headers = Headers::new().with("Content-Type", format.content_type());
                let _ = server.bus.respond(&message, headers, payload).await;
            }
        });
        log
    }

    fn read(&self, from: u64, max: u32) -> LogReadReply {
        let events = self.events.lock().expect("the log lock");
        LogReadReply {
            events: events
                .iter()
                .filter(|event| event.position >= from)
                .take(max as usize)
                .cloned()
                .collect(),
            head: events.len() as u64,
        }
    }

    /// `read` of every event appended so far.
    pub fn read_all<T>(&self, read: impl FnOnce(&[RecordedEvent]) -> T) -> T {
        read(&self.events.lock().expect("the log lock"))
    }

    /// The last position.
    pub fn head(&self) -> u64 {
        self.events.lock().expect("the log lock").len() as u64
    }

    /// Appends an event without publishing it (as if its publication were lost).
    pub fn append(&self, event: Event) -> RecordedEvent {
        let mut events = self.events.lock().expect("the log lock");
        let recorded = RecordedEvent {
            position: events.len() as u64 + 1,
            stream: event.stream(),
            version: 1,
            event_id: uuid::Uuid::new_v4(),
            command_id: CommandId(uuid::Uuid::new_v4()),
            actor: "tester".into(),
            recorded_at: Timestamp::from_millis(1_700_000_000_000),
            event,
            hash: Sha256([0; 32]),
            raw: None,
        };
        // Chained like the writer's (security.md H-N2): a follower takes the live event instead
        // of reading it through `log.read`.
        let previous = events.last().map_or(Sha256([0; 32]), |last| last.hash);
        let mut recorded = recorded;
        recorded.hash = bus::chain::chained_hash(&previous, &recorded).expect("a storable event");
        events.push(recorded.clone());
        recorded
    }

    /// Publishes a logged event on `parlor.evt.<type>` in `format`.
    pub async fn publish(&self, event: &RecordedEvent, format: Format) {
        let headers: Headers = EventHeaders::for_event(event, format)
            .to_pairs()
            .into_iter()
            .collect();
        let payload = event.encode(format).expect("encode an event");
        self.bus
            .publish(
                &format!("parlor.evt.{}", event.type_name()),
                headers,
                payload,
            )
            .await
            .expect("publish an event");
    }

    /// Appends and publishes (bincode, the writer's default); returns the position.
    pub async fn append_and_publish(&self, event: Event) -> u64 {
        let recorded = self.append(event);
        self.publish(&recorded, Format::Bincode).await;
        recorded.position
    }
}

/// A user id.
pub fn user(text: &str) -> UserId {
    UserId::parse(text).expect("a valid user id")
}

/// The room with number `n`.
pub fn room(n: u128) -> RoomId {
    RoomId(uuid::Uuid::from_u128(n))
}

/// `author` sent `body` in `room_id`.
pub fn message_sent(room_id: RoomId, author: &str, body: &str) -> Event {
    Event::MessageSent {
        room_id,
        message_id: MessageId(uuid::Uuid::new_v4()),
        author: user(author),
        body: body.into(),
        reply_to: None,
        attachments: Vec::new(),
        sent_at: Timestamp::from_millis(1_700_000_000_000),
    }
}

/// `user_id` was added to `room_id`.
pub fn member_added(room_id: RoomId, user_id: &str) -> Event {
    Event::MemberAdded {
        room_id,
        user_id: user(user_id),
        added_by: user("bob"),
        added_at: Timestamp::from_millis(1_700_000_000_000),
    }
}
