//! Test support: a world that folds real domain commands (`decide`/`evolve`) into a log of
//! RecordedEvents numbered 1..N as the writer would, as in the projections crate's tests, and
//! helpers to feed them to a search model and ask it.

use std::collections::HashMap;

use domain::{
    evolve, Action, Actor, Client, Command, CommandId, Config, Event, MessageId, MessageTarget,
    RoomId, State, Timestamp, UserId, UserKind,
};
use projections::{EventEnvelope, Projector, QueryError, QueryRequest};
use protocol::query::{Operation, SearchQuery};
use protocol::RecordedEvent;
use search::{SearchOptions, SearchProjector};
use serde_json::{json, Value};
use uuid::Uuid;

/// 2026-11-27T10:00:00.000Z
pub const T0: i64 = 1_795_773_600_000;
pub const MINUTE: i64 = 60_000;

pub fn user(id: &str) -> UserId {
    UserId::parse(id).unwrap()
}

/// A write side in a test: decides commands, folds accepted events, and numbers them.
pub struct World {
    pub state: State,
    now: i64,
    next_command: u128,
    versions: HashMap<String, u64>,
    /// Every event accepted so far, positioned: the log of this world.
    pub log: Vec<RecordedEvent>,
}

impl World {
    /// A world at T0 where alice, bob, carol and dave are registered with full names.
    pub fn new() -> World {
        let mut world = World {
            state: State::new(Config::default()),
            now: T0,
            next_command: 1,
            versions: HashMap::new(),
            log: Vec::new(),
        };
        for (id, name) in [
            ("alice", "Alice Archer"),
            ("bob", "Bob Builder"),
            ("carol", "Carol Cook"),
            ("dave", "Dave Diver"),
        ] {
            world.register(id, name);
        }
        world
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

    /// The envelopes after position `after`.
    pub fn envelopes_after(&self, after: u64) -> Vec<EventEnvelope> {
        self.envelopes()
            .into_iter()
            .filter(|envelope| envelope.position > after)
            .collect()
    }

    /// Decides and folds a command; panics on a rejection. Returns the new records.
    #[track_caller]
    pub fn run_as(&mut self, actor: Actor, action: Action) -> Vec<RecordedEvent> {
        self.next_command += 1;
        let command = Command {
            command_id: CommandId(Uuid::from_u128(self.next_command)),
            actor: actor.clone(),
            client: Client::Desktop,
            action,
        };
        let now = Timestamp::from_millis(self.now);
        let outcome = match protocol::decide_command(&self.state, &command, now) {
            Ok(outcome) => outcome,
            Err(rejection) => panic!("expected acceptance, got {rejection}"),
        };
        let mut records = Vec::new();
        for stored in outcome.into_stored_events() {
            evolve(&mut self.state, &stored.event);
            let stream = stored.event.stream();
            let version = self.versions.entry(stream.clone()).or_insert(0);
            *version += 1;
            let position = self.log.len() as u64 + 1;
            let mut record =
                RecordedEvent::from_stored(position, stream, *version, [0; 32], stored);
            // Chained as the writer's log chains them, so that followers take the live events
            // (security.md H-N2) instead of reading each one back through log.read.
            let previous = self
                .log
                .last()
                .map_or(protocol::Sha256([0; 32]), |last| last.hash);
            record.hash = bus::chain::chained_hash(&previous, &record).expect("a storable event");
            self.log.push(record.clone());
            records.push(record);
        }
        self.now += 1;
        records
    }

    #[track_caller]
    pub fn ok(&mut self, actor: &str, action: Action) -> Vec<RecordedEvent> {
        self.run_as(Actor::User(user(actor)), action)
    }

    #[track_caller]
    pub fn service(&mut self, action: Action) -> Vec<RecordedEvent> {
        self.run_as(Actor::parse("service:test").unwrap(), action)
    }

    /// Registers a user, or renames a registered one.
    #[track_caller]
    pub fn register(&mut self, id: &str, display_name: &str) {
        self.service(Action::RegisterUser {
            user_id: user(id),
            display_name: display_name.into(),
            kind: UserKind::Freelancer,
        });
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
        let records = self.ok(
            author,
            Action::SendMessage {
                target: MessageTarget::Room(room),
                message_id: None,
                body: body.into(),
                reply_to: None,
                attachments: vec![],
            },
        );
        sent(&records).1
    }

    #[track_caller]
    pub fn edit(&mut self, author: &str, room: RoomId, message: MessageId, body: &str) {
        self.ok(
            author,
            Action::EditMessage {
                room_id: room,
                message_id: message,
                body: body.into(),
            },
        );
    }

    #[track_caller]
    pub fn delete(&mut self, author: &str, room: RoomId, message: MessageId) {
        self.ok(
            author,
            Action::DeleteMessage {
                room_id: room,
                message_id: message,
            },
        );
    }

    #[track_caller]
    pub fn add(&mut self, actor: &str, room: RoomId, member: &str) {
        self.ok(
            actor,
            Action::AddMember {
                room_id: room,
                user_id: user(member),
            },
        );
    }

    #[track_caller]
    pub fn leave(&mut self, member: &str, room: RoomId) {
        self.ok(member, Action::LeaveRoom { room_id: room });
    }

    #[track_caller]
    pub fn rename(&mut self, actor: &str, room: RoomId, name: &str) {
        self.ok(
            actor,
            Action::RenameRoom {
                room_id: room,
                name: name.into(),
            },
        );
    }

    /// An interview room of alice (client) and bob (freelancer).
    #[track_caller]
    pub fn interview(&mut self, id: &str, title: &str) -> RoomId {
        let records = self.service(Action::OpenInterview {
            interview_id: domain::InterviewId::parse(id).unwrap(),
            title: title.into(),
            client: user("alice"),
            freelancer: user("bob"),
        });
        records[0].event.room_id().unwrap()
    }

    /// A contract of alice and bob, in `room` or its own new room.
    #[track_caller]
    pub fn contract(&mut self, id: &str, title: &str, room: Option<RoomId>) -> RoomId {
        let records = self.service(Action::StartContract {
            contract_id: domain::ContractId::parse(id).unwrap(),
            title: title.into(),
            client: user("alice"),
            freelancer: user("bob"),
            room_id: room,
        });
        records
            .iter()
            .find_map(|record| match &record.event {
                Event::ContractStarted { room_id, .. } => Some(*room_id),
                _ => None,
            })
            .unwrap()
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

/// A fresh model in a temporary directory.
pub fn model() -> SearchProjector {
    SearchProjector::temporary(SearchOptions::live()).unwrap()
}

/// A model built from the whole log of `world`.
pub fn model_of(world: &World) -> SearchProjector {
    let mut model = model();
    feed(&mut model, world);
    model
}

/// Applies what `model` has not applied yet of `world`'s log.
pub fn feed(model: &mut SearchProjector, world: &World) {
    let fresh = world.envelopes_after(model.position());
    projections::rebuild(model, fresh).unwrap();
}

/// Asks `model` a `search` as `caller` with extra parameters (`q`, `room_id`, `limit`,
/// `cursor`); always with `min_position` at the model's position, so the answer sees every
/// applied event.
pub fn ask(model: &SearchProjector, caller: &str, params: Value) -> Result<Value, QueryError> {
    let mut request = json!({
        "op": "search",
        "caller": caller,
        "min_position": model.position(),
    });
    if let (Some(request), Some(params)) = (request.as_object_mut(), params.as_object()) {
        for (key, value) in params {
            request.insert(key.clone(), value.clone());
        }
    }
    model.query(&search_request(request)?, Timestamp::from_millis(T0))
}

/// A request given as JSON, read as the runtime reads it for the search model.
pub fn search_request(request: Value) -> Result<QueryRequest<SearchQuery>, QueryError> {
    QueryRequest::<Operation<SearchQuery>>::from_value(request)?
        .into_model()
        .ok_or_else(|| QueryError::Invalid("status is the runtime's, not the model's".into()))
}

/// Like [`ask`], expecting an answer.
#[track_caller]
pub fn search(model: &SearchProjector, caller: &str, q: &str) -> Value {
    ask(model, caller, json!({ "q": q })).unwrap()
}

/// The message ids of an answer, in order.
pub fn message_ids(answer: &Value) -> Vec<String> {
    answer["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|message| message["message_id"].as_str().unwrap().to_owned())
        .collect()
}

/// The room ids of an answer, in order.
pub fn room_ids(answer: &Value) -> Vec<String> {
    answer["rooms"]
        .as_array()
        .unwrap()
        .iter()
        .map(|room| room["room_id"].as_str().unwrap().to_owned())
        .collect()
}

/// Whether `answer` lists the message `id`.
pub fn finds(answer: &Value, id: MessageId) -> bool {
    message_ids(answer).contains(&id.to_string())
}
