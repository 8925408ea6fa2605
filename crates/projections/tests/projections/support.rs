//! Test support: a world that folds domain commands into a log of RecordedEvents (positions
//! 1..N, as the writer would number them), a tiny log server that answers `log.read` from that
//! log and publishes events with the writer's headers, and helpers to query models and wait.

use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bus::{Bus, Headers};
use clock::Clock;
use domain::{
    evolve, Action, Actor, AttachmentRef, Client, Command, CommandId, Config, Event, FileId,
    MessageId, MessageTarget, Rejection, RoomId, State, Timestamp, UserId, UserKind,
};
use projections::{EventEnvelope, Projector, QueryError, QueryRequest};
use protocol::query::Operation;
use protocol::{
    Format, LogReadReply, LogReadRequest, RecordedEvent, HEADER_CONTENT_TYPE, HEADER_POSITION,
    HEADER_STREAM, HEADER_VERSION,
};
use serde_json::Value;
use tokio::task::JoinHandle;
use uuid::Uuid;

/// 2026-11-27T10:00:00.000Z
pub const T0: i64 = 1_795_773_600_000;
pub const MINUTE: i64 = 60_000;
pub const HOUR: i64 = 60 * MINUTE;

/// The subject prefix of every test.
pub const PREFIX: &str = "parlor";

pub fn user(id: &str) -> UserId {
    UserId::parse(id).unwrap()
}

/// A write side in a test: decides commands, folds accepted events, and numbers them.
pub struct World {
    pub state: State,
    now: i64,
    clock: Option<Clock>,
    pub client: Client,
    next_command: u128,
    versions: HashMap<String, u64>,
    /// Every event accepted so far, positioned: the log of this world.
    pub log: Vec<RecordedEvent>,
}

impl World {
    /// A world at T0 where alice, bob, carol and dave are registered (display names in capitals).
    pub fn new() -> World {
        World::build(None)
    }

    /// Like [`World::new`], but every command is decided at `clock.now()` (the dev clock).
    pub fn with_clock(clock: Clock) -> World {
        World::build(Some(clock))
    }

    fn build(clock: Option<Clock>) -> World {
        let mut world = World {
            state: State::new(Config::default()),
            now: T0,
            clock,
            client: Client::Desktop,
            next_command: 1,
            versions: HashMap::new(),
            log: Vec::new(),
        };
        for (id, kind) in [
            ("alice", UserKind::Client),
            ("bob", UserKind::Freelancer),
            ("carol", UserKind::Freelancer),
            ("dave", UserKind::Agency),
        ] {
            world.service_ok(Action::RegisterUser {
                user_id: user(id),
                display_name: id.to_uppercase(),
                kind,
            });
        }
        world
    }

    pub fn now(&self) -> Timestamp {
        match &self.clock {
            Some(clock) => clock.now(),
            None => Timestamp::from_millis(self.now),
        }
    }

    pub fn advance(&mut self, ms: i64) {
        self.now += ms;
    }

    pub fn head(&self) -> u64 {
        self.log.len() as u64
    }

    pub fn envelopes(&self) -> Vec<EventEnvelope> {
        self.log.iter().cloned().map(EventEnvelope::from).collect()
    }

    /// Decides and, when accepted, folds the events in and logs them; returns the new records.
    pub fn run_as(
        &mut self,
        actor: Actor,
        action: Action,
    ) -> Result<Vec<RecordedEvent>, Rejection> {
        self.next_command += 1;
        let command = Command {
            command_id: CommandId(Uuid::from_u128(self.next_command)),
            actor: actor.clone(),
            client: self.client,
            action,
        };
        let now = self.now();
        let outcome = protocol::decide_command(&self.state, &command, now)?;
        let mut records = Vec::new();
        for stored in outcome.into_stored_events() {
            evolve(&mut self.state, &stored.event);
            let stream = stored.event.stream();
            let version = self.versions.entry(stream.clone()).or_insert(0);
            *version += 1;
            let position = self.log.len() as u64 + 1;
            // Chained like the writer's records (security.md H-N2), so that followers take
            // the live events instead of reading them through `log.read`.
            let previous = self
                .log
                .last()
                .map_or(protocol::Sha256([0; 32]), |last| last.hash);
            let mut record =
                RecordedEvent::from_stored(position, stream, *version, [0; 32], stored);
            record.hash = bus::chain::chained_hash(&previous, &record).expect("a storable event");
            self.log.push(record.clone());
            records.push(record);
        }
        Ok(records)
    }

    pub fn run(&mut self, actor: &str, action: Action) -> Result<Vec<RecordedEvent>, Rejection> {
        self.run_as(Actor::User(user(actor)), action)
    }

    #[track_caller]
    pub fn ok(&mut self, actor: &str, action: Action) -> Vec<RecordedEvent> {
        match self.run(actor, action) {
            Ok(records) => records,
            Err(rejection) => panic!("expected acceptance, got {rejection}"),
        }
    }

    #[track_caller]
    pub fn service_ok(&mut self, action: Action) -> Vec<RecordedEvent> {
        match self.run_as(Actor::parse("service:test").unwrap(), action) {
            Ok(records) => records,
            Err(rejection) => panic!("expected acceptance, got {rejection}"),
        }
    }

    /// Sends `body` from `from` to `to`, opening their direct room if needed.
    #[track_caller]
    pub fn direct(&mut self, from: &str, to: &str, body: &str) -> (RoomId, MessageId) {
        let records = self.ok(
            from,
            Action::SendMessage {
                target: MessageTarget::User(user(to)),
                message_id: None,
                body: body.into(),
                reply_to: None,
                attachments: vec![],
            },
        );
        sent(&records)
    }

    /// A group room created by `creator` with `others`.
    #[track_caller]
    pub fn group(&mut self, creator: &str, name: &str, others: &[&str]) -> RoomId {
        let records = self.ok(
            creator,
            Action::CreateRoom {
                name: name.into(),
                members: others.iter().map(|id| user(id)).collect(),
            },
        );
        records[0].event.room_id().unwrap()
    }

    #[track_caller]
    pub fn say(&mut self, author: &str, room: RoomId, body: &str) -> MessageId {
        self.send(author, room, body, None, vec![])
    }

    #[track_caller]
    pub fn send(
        &mut self,
        author: &str,
        room: RoomId,
        body: &str,
        reply_to: Option<MessageId>,
        attachments: Vec<AttachmentRef>,
    ) -> MessageId {
        let records = self.ok(
            author,
            Action::SendMessage {
                target: MessageTarget::Room(room),
                message_id: None,
                body: body.into(),
                reply_to,
                attachments,
            },
        );
        sent(&records).1
    }

    /// Registers a file uploaded by `uploader`.
    #[track_caller]
    pub fn upload(&mut self, uploader: &str, name: &str, content_type: &str) -> FileId {
        let file_id = FileId(Uuid::from_u128(0xF11E_0000 + self.next_command));
        self.service_ok(Action::RegisterFile {
            file_id,
            uploader: user(uploader),
            name: name.into(),
            size: 1234,
            content_type: content_type.into(),
            sha256: "ab".repeat(32),
        });
        file_id
    }

    /// An interview room of alice (client) and bob (freelancer).
    #[track_caller]
    pub fn interview(&mut self, id: &str) -> RoomId {
        let records = self.service_ok(Action::OpenInterview {
            interview_id: domain::InterviewId::parse(id).unwrap(),
            title: format!("Interview {id}"),
            client: user("alice"),
            freelancer: user("bob"),
        });
        records[0].event.room_id().unwrap()
    }

    /// A contract of alice and bob with its own room.
    #[track_caller]
    pub fn contract(&mut self, id: &str) -> RoomId {
        let records = self.service_ok(Action::StartContract {
            contract_id: domain::ContractId::parse(id).unwrap(),
            title: format!("Contract {id}"),
            client: user("alice"),
            freelancer: user("bob"),
            room_id: None,
        });
        records[0].event.room_id().unwrap()
    }
}

/// The room and message of the `message_sent` among `records`.
#[track_caller]
pub fn sent(records: &[RecordedEvent]) -> (RoomId, MessageId) {
    records
        .iter()
        .find_map(|record| match &record.event {
            Event::MessageSent {
                room_id,
                message_id,
                ..
            } => Some((*room_id, *message_id)),
            _ => None,
        })
        .expect("a message_sent event")
}

/// Asks `model` a query given as JSON, read as the runtime reads it (`status` is the
/// runtime's, not the model's, and is not asked here).
pub fn ask<P: Projector>(model: &P, request: Value, now: Timestamp) -> Result<Value, QueryError> {
    let request = QueryRequest::<Operation<P::Query>>::from_value(request)?;
    let request = request.into_model().expect("a model operation, not status");
    model.query(&request, now)
}

/// Like [`ask`], expecting an answer.
#[track_caller]
pub fn answer<P: Projector>(model: &P, request: Value, now: Timestamp) -> Value {
    match ask(model, request.clone(), now) {
        Ok(value) => value,
        Err(error) => panic!("{request} failed: {error}"),
    }
}

/// A model of type `P` rebuilt from `log` alone.
pub fn rebuilt<P: Projector>(mut model: P, log: &[RecordedEvent]) -> P {
    projections::rebuild(&mut model, log.iter().cloned().map(EventEnvelope::from)).unwrap();
    model
}

/// Waits (polling, at most `limit`) until `condition` holds; panics naming `what` otherwise.
pub async fn wait_until(what: &str, limit: Duration, mut condition: impl FnMut() -> bool) {
    let deadline = Instant::now() + limit;
    while !condition() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Waits (at most `limit`) for `future`; panics naming `what` otherwise.
pub async fn within<T>(what: &str, limit: Duration, future: impl Future<Output = T>) -> T {
    match tokio::time::timeout(limit, future).await {
        Ok(value) => value,
        Err(_) => panic!("timed out waiting for {what}"),
    }
}

/// A stand-in for the writer's log service: answers `<prefix>.log.read` from a list of
/// RecordedEvents (JSON or bincode, as asked, under the 1 MiB bound) and publishes events on
/// `<prefix>.evt.<type>` with the writer's headers.
pub struct LogServer {
    events: Arc<Mutex<Vec<RecordedEvent>>>,
    /// Events from this index on count in the head but are not served yet: committed by the
    /// writer, not yet delivered to this projector.
    withheld_from: Arc<Mutex<Option<usize>>>,
    bus: Bus,
    /// `log.read` requests answered so far.
    pub reads: Arc<Mutex<u64>>,
    task: JoinHandle<()>,
}

/// Room left in a reply for headers.
const REPLY_BYTES_MAX: usize = bus::PAYLOAD_BYTES_MAX - 16 * 1024;

impl LogServer {
    pub async fn start(bus: &Bus) -> LogServer {
        let mut requests = bus
            .queue_subscribe(&format!("{PREFIX}.log.read"), "test-log")
            .await
            .unwrap();
        let events: Arc<Mutex<Vec<RecordedEvent>>> = Arc::default();
        let withheld_from: Arc<Mutex<Option<usize>>> = Arc::default();
        let reads: Arc<Mutex<u64>> = Arc::default();
        let (served, counter, server) = (Arc::clone(&events), Arc::clone(&reads), bus.clone());
        let withheld = Arc::clone(&withheld_from);
        let task = tokio::spawn(async move {
            while let Some(request) = requests.next().await {
                let format = Format::from_content_type(request.headers.get(HEADER_CONTENT_TYPE))
                    .unwrap_or(Format::Json);
                let read = LogReadRequest::decode(&request.payload, format).unwrap();
                let (mut page, head) = {
                    let log = served.lock().unwrap();
                    let servable = withheld.lock().unwrap().unwrap_or(log.len()).min(log.len());
                    let start = usize::try_from(read.from - 1).unwrap().min(servable);
                    let end = start.saturating_add(read.max as usize).min(servable);
                    (log[start..end].to_vec(), log.len() as u64)
                };
                let payload = loop {
                    let reply = LogReadReply { events: page, head };
                    let payload = reply.encode(format).unwrap();
                    if payload.len() <= REPLY_BYTES_MAX || reply.events.len() <= 1 {
                        break payload;
                    }
                    page = reply.events;
                    page.truncate(page.len() / 2);
                };
                *counter.lock().unwrap() += 1;
                let headers = Headers::new().with(HEADER_CONTENT_TYPE, format.content_type());
                let _ = server.respond(&request, headers, payload).await;
            }
        });
        LogServer {
            events,
            withheld_from,
            bus: bus.clone(),
            reads,
            task,
        }
    }

    /// Adds records to the log without publishing them (history, or dropped messages).
    pub fn append(&self, records: &[RecordedEvent]) {
        let mut log = self.events.lock().unwrap();
        for record in records {
            assert_eq!(
                record.position,
                log.len() as u64 + 1,
                "records come in order"
            );
            log.push(record.clone());
        }
    }

    /// Adds records that count in the head `log.read` reports but are not served (nor
    /// published) until [`LogServer::release`]: committed, not yet delivered.
    pub fn withhold(&self, records: &[RecordedEvent]) {
        let served = self.events.lock().unwrap().len();
        self.append(records);
        self.withheld_from.lock().unwrap().get_or_insert(served);
    }

    /// Serves the withheld records and publishes them.
    pub async fn release(&self, format: Format) {
        let from = self.withheld_from.lock().unwrap().take();
        let records = from.map_or_else(Vec::new, |from| {
            self.events.lock().unwrap()[from..].to_vec()
        });
        for record in &records {
            self.publish(record, format).await;
        }
    }

    /// Publishes one record as the writer does.
    pub async fn publish(&self, record: &RecordedEvent, format: Format) {
        let headers = Headers::new()
            .with(HEADER_POSITION, record.position.to_string())
            .with(HEADER_STREAM, record.stream.clone())
            .with(HEADER_VERSION, record.version.to_string())
            .with(HEADER_CONTENT_TYPE, format.content_type());
        let subject = format!("{PREFIX}.evt.{}", record.type_name());
        self.bus
            .publish(&subject, headers, record.encode(format).unwrap())
            .await
            .unwrap();
    }

    /// Appends records and publishes those `keep` admits (the others are "dropped").
    pub async fn commit(
        &self,
        records: &[RecordedEvent],
        format: Format,
        mut keep: impl FnMut(&RecordedEvent) -> bool,
    ) {
        self.append(records);
        for record in records {
            if keep(record) {
                self.publish(record, format).await;
            }
        }
    }
}

impl Drop for LogServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// A small deterministic random number generator (xorshift64*), so a failing workload can be
/// replayed from its printed seed.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed.max(1))
    }

    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    pub fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }

    pub fn chance(&mut self, percent: u64) -> bool {
        self.below(100) < percent
    }
}
