//! Test support for the rule tests: a small world that folds accepted commands into state, so a
//! test reads given (commands already accepted) / when (one command) / then (events or code).

#![allow(
    dead_code,
    missing_docs,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::new_without_default
)]

use domain::{
    decide, evolve, Action, Actor, AttachmentRef, Client, Command, CommandId, Config, ErrorCode,
    Event, FileId, MessageId, MessageTarget, Rejection, RoomId, State, Timestamp, UserId, UserKind,
};
use uuid::Uuid;

/// 2026-11-27T10:00:00.000Z
pub const T0: i64 = 1_795_773_600_000;
pub const MINUTE: i64 = 60_000;
pub const HOUR: i64 = 60 * MINUTE;

pub fn user(id: &str) -> UserId {
    UserId::parse(id).unwrap()
}

pub struct World {
    pub state: State,
    pub now: i64,
    pub client: Client,
    next_command: u128,
    /// Every event accepted so far, in order: the log of this world.
    pub log: Vec<Event>,
}

impl World {
    /// A world where alice, bob, carol and dave are registered.
    pub fn new() -> World {
        World::with_config(Config::default())
    }

    pub fn with_config(config: Config) -> World {
        let mut world = World {
            state: State::new(config),
            now: T0,
            client: Client::Desktop,
            next_command: 1,
            log: Vec::new(),
        };
        for (id, kind) in [
            ("alice", UserKind::Client),
            ("bob", UserKind::Freelancer),
            ("carol", UserKind::Freelancer),
            ("dave", UserKind::Agency),
        ] {
            world.register(id, kind);
        }
        world
    }

    pub fn register(&mut self, id: &str, kind: UserKind) {
        self.service_ok(Action::RegisterUser {
            user_id: user(id),
            display_name: id.to_uppercase(),
            kind,
        });
    }

    pub fn next_command_id(&mut self) -> CommandId {
        self.next_command += 1;
        CommandId(Uuid::from_u128(self.next_command))
    }

    pub fn command(&mut self, actor: Actor, action: Action) -> Command {
        Command {
            command_id: self.next_command_id(),
            actor,
            client: self.client,
            action,
        }
    }

    /// Decides and, when accepted, folds the events in.
    pub fn run_as(&mut self, actor: Actor, action: Action) -> Result<Vec<Event>, Rejection> {
        let command = self.command(actor, action);
        let now = Timestamp::from_millis(self.now);
        let events = decide(&self.state, &command, now)?;
        for event in &events {
            evolve(&mut self.state, event);
        }
        self.log.extend(events.iter().cloned());
        Ok(events)
    }

    pub fn run(&mut self, actor: &str, action: Action) -> Result<Vec<Event>, Rejection> {
        self.run_as(Actor::User(user(actor)), action)
    }

    #[track_caller]
    pub fn ok(&mut self, actor: &str, action: Action) -> Vec<Event> {
        match self.run(actor, action) {
            Ok(events) => events,
            Err(rejection) => panic!("expected acceptance, got {rejection}"),
        }
    }

    #[track_caller]
    pub fn code(&mut self, actor: &str, action: Action) -> ErrorCode {
        match self.run(actor, action) {
            Ok(events) => panic!("expected a rejection, got {events:?}"),
            Err(rejection) => rejection.code,
        }
    }

    #[track_caller]
    pub fn service_ok(&mut self, action: Action) -> Vec<Event> {
        let actor = Actor::parse("service:test").unwrap();
        match self.run_as(actor, action) {
            Ok(events) => events,
            Err(rejection) => panic!("expected acceptance, got {rejection}"),
        }
    }

    #[track_caller]
    pub fn service_code(&mut self, action: Action) -> ErrorCode {
        let actor = Actor::parse("service:test").unwrap();
        self.run_as(actor, action)
            .expect_err("expected a rejection")
            .code
    }

    pub fn advance(&mut self, ms: i64) {
        self.now += ms;
    }

    /// Sends `body` from `from` to `to`, opening their direct room if needed.
    #[track_caller]
    pub fn direct(&mut self, from: &str, to: &str, body: &str) -> (RoomId, MessageId) {
        let events = self.ok(from, send_to(to, body));
        sent(&events)
    }

    /// A group room created by `creator` with `others`.
    #[track_caller]
    pub fn group(&mut self, creator: &str, others: &[&str]) -> RoomId {
        let events = self.ok(
            creator,
            Action::CreateRoom {
                name: "Project".into(),
                members: others.iter().map(|id| user(id)).collect(),
            },
        );
        events[0].room_id().unwrap()
    }

    #[track_caller]
    pub fn say(&mut self, author: &str, room: RoomId, body: &str) -> MessageId {
        let events = self.ok(author, send(room, body));
        sent(&events).1
    }

    /// Registers a file uploaded by `uploader`.
    #[track_caller]
    pub fn upload(&mut self, uploader: &str, size: u64) -> FileId {
        let file_id = FileId(Uuid::from_u128(0xF11E_0000 + self.next_command));
        self.service_ok(Action::RegisterFile {
            file_id,
            uploader: user(uploader),
            name: "design.png".into(),
            size,
            content_type: "image/png".into(),
            sha256: "ab".repeat(32),
        });
        file_id
    }

    /// An interview room of alice (client) and bob (freelancer).
    #[track_caller]
    pub fn interview(&mut self, id: &str) -> RoomId {
        let events = self.service_ok(Action::OpenInterview {
            interview_id: domain::InterviewId::parse(id).unwrap(),
            title: "Interview".into(),
            client: user("alice"),
            freelancer: user("bob"),
        });
        events[0].room_id().unwrap()
    }

    /// A contract of alice and bob with its own room.
    #[track_caller]
    pub fn contract(&mut self, id: &str) -> RoomId {
        let events = self.service_ok(Action::StartContract {
            contract_id: domain::ContractId::parse(id).unwrap(),
            title: "Contract".into(),
            client: user("alice"),
            freelancer: user("bob"),
            room_id: None,
        });
        events[0].room_id().unwrap()
    }
}

pub fn send(room: RoomId, body: &str) -> Action {
    Action::SendMessage {
        target: MessageTarget::Room(room),
        message_id: None,
        body: body.into(),
        reply_to: None,
        attachments: vec![],
    }
}

pub fn send_to(to: &str, body: &str) -> Action {
    Action::SendMessage {
        target: MessageTarget::User(user(to)),
        message_id: None,
        body: body.into(),
        reply_to: None,
        attachments: vec![],
    }
}

pub fn send_with(room: RoomId, body: &str, attachments: Vec<AttachmentRef>) -> Action {
    Action::SendMessage {
        target: MessageTarget::Room(room),
        message_id: None,
        body: body.into(),
        reply_to: None,
        attachments,
    }
}

/// The room and message of the `MessageSent` among `events`.
#[track_caller]
pub fn sent(events: &[Event]) -> (RoomId, MessageId) {
    events
        .iter()
        .find_map(|e| match e {
            Event::MessageSent {
                room_id,
                message_id,
                ..
            } => Some((*room_id, *message_id)),
            _ => None,
        })
        .expect("a message_sent event")
}

pub fn types(events: &[Event]) -> Vec<&'static str> {
    events.iter().map(Event::type_name).collect()
}
