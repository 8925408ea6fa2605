//! Property tests over random valid logs (random command sequences, the accepted ones' events):
//! no command panics, `decide` is deterministic, a state restored from a snapshot at any
//! position plus the tail equals the state folded from the whole log, and read models'
//! membership folding agrees with the state.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::collections::{BTreeSet, HashMap};

use domain::{
    evolve, Action, Actor, AttachmentRef, CallId, CallMedia, Client, ContractId, InterviewId,
    MembershipChange, MessageId, MessageTarget, NotificationFrequency, ReportReason, RoomId, State,
    Timestamp, UserId,
};
use proptest::prelude::*;
use support::{user, World, HOUR, MINUTE};
use uuid::Uuid;

const ACTORS: [&str; 5] = ["alice", "bob", "carol", "dave", "zoe"];

/// One step: raw choices interpreted against the world as it is when the step runs, so that
/// most commands name rooms and messages that exist (and some name ones that do not).
#[derive(Debug, Clone)]
struct Step {
    actor: usize,
    kind: u8,
    pick: usize,
    other: usize,
    flag: bool,
    advance_ms: i64,
    client: u8,
    body: String,
}

fn step() -> impl Strategy<Value = Step> {
    (
        0..ACTORS.len(),
        0u8..26,
        any::<usize>(),
        any::<usize>(),
        any::<bool>(),
        prop_oneof![Just(0i64), 0..5 * MINUTE, Just(HOUR), Just(25 * HOUR)],
        0u8..3,
        prop_oneof![
            Just(String::new()),
            "[a-z ]{1,30}",
            Just("mail me at x@example.com".to_owned()),
            Just("   ".to_owned()),
            "\\PC{0,40}",
        ],
    )
        .prop_map(
            |(actor, kind, pick, other, flag, advance_ms, client, body)| Step {
                actor,
                kind,
                pick,
                other,
                flag,
                advance_ms,
                client,
                body,
            },
        )
}

fn pick<T: Copy>(items: &[T], index: usize, fallback: T) -> T {
    if items.is_empty() {
        fallback
    } else {
        items[index % items.len()]
    }
}

fn action_for(world: &World, step: &Step) -> (Actor, Action) {
    let mut rooms: Vec<RoomId> = world.state.rooms.keys().copied().collect();
    rooms.sort();
    let mut messages: Vec<MessageId> = world.state.messages.ids().collect();
    messages.sort();
    let mut files: Vec<domain::FileId> = world.state.files.keys().copied().collect();
    files.sort();
    let room = pick(&rooms, step.pick, RoomId(Uuid::from_u128(1)));
    let message = pick(&messages, step.other, MessageId(Uuid::from_u128(2)));
    let other = user(ACTORS[step.other % ACTORS.len()]);
    let actor = Actor::User(user(ACTORS[step.actor]));
    let service = Actor::parse("service:prop").unwrap();
    let active_call = world
        .state
        .rooms
        .get(&room)
        .and_then(|r| r.active_call.map(|(id, _)| id))
        .unwrap_or(CallId(Uuid::from_u128(3)));
    let action = match step.kind {
        0 => Action::SendMessage {
            target: MessageTarget::Room(room),
            message_id: None,
            body: step.body.clone(),
            reply_to: step.flag.then_some(message),
            attachments: vec![],
        },
        1 => Action::SendMessage {
            target: MessageTarget::User(other),
            message_id: None,
            body: step.body.clone(),
            reply_to: None,
            attachments: vec![],
        },
        2 => Action::EditMessage {
            room_id: room,
            message_id: message,
            body: step.body.clone(),
        },
        3 => Action::DeleteMessage {
            room_id: room,
            message_id: message,
        },
        4 => Action::CreateRoom {
            name: step.body.clone(),
            members: vec![other],
        },
        5 => Action::AddMember {
            room_id: room,
            user_id: other,
        },
        6 => Action::LeaveRoom { room_id: room },
        7 => Action::RenameRoom {
            room_id: room,
            name: step.body.clone(),
        },
        8 => Action::FavoriteRoom {
            room_id: room,
            on: step.flag,
        },
        9 => Action::HideRoom {
            room_id: room,
            on: step.flag,
        },
        10 => Action::ArchiveRoom {
            room_id: room,
            on: step.flag,
        },
        11 => Action::MarkRead {
            room_id: room,
            message_id: message,
        },
        12 => Action::BlockUser { user_id: other },
        13 => Action::UnblockUser { user_id: other },
        14 => Action::SetOutOfOffice {
            message: "away".into(),
            from: Timestamp::from_millis(world.now),
            until: Timestamp::from_millis(world.now + 2 * HOUR),
        },
        15 => Action::ClearOutOfOffice,
        16 => Action::ReportMessage {
            room_id: room,
            message_id: message,
            reason: ReportReason::Other,
            details: None,
        },
        17 => Action::StartCall {
            room_id: room,
            media: CallMedia::Audio,
        },
        18 => Action::EndCall {
            room_id: room,
            call_id: active_call,
        },
        19 => Action::SetNotifications {
            frequency: NotificationFrequency::Daily,
        },
        20 => Action::SetOnlineVisibility { visible: step.flag },
        21 => {
            let file = pick(&files, step.pick, domain::FileId(Uuid::from_u128(4)));
            Action::SendMessage {
                target: MessageTarget::Room(room),
                message_id: None,
                body: String::new(),
                reply_to: None,
                attachments: vec![AttachmentRef::File(file)],
            }
        }
        22 => {
            return (
                service,
                Action::RegisterFile {
                    file_id: domain::FileId(Uuid::from_u128(step.pick as u128)),
                    uploader: user(ACTORS[step.actor]),
                    name: "f.txt".into(),
                    size: step.other as u64 % 5_000,
                    content_type: "text/plain".into(),
                    sha256: "a".repeat(64),
                },
            )
        }
        23 => {
            return (
                service,
                Action::OpenInterview {
                    interview_id: InterviewId::parse(&format!("i-{}", step.pick % 4)).unwrap(),
                    title: "Interview".into(),
                    client: user(ACTORS[step.actor]),
                    freelancer: other,
                },
            )
        }
        24 => {
            return (
                service,
                Action::StartContract {
                    contract_id: ContractId::parse(&format!("c-{}", step.other % 4)).unwrap(),
                    title: "Contract".into(),
                    client: user(ACTORS[step.actor]),
                    freelancer: other,
                    room_id: step.flag.then_some(room),
                },
            )
        }
        _ => {
            return (
                service,
                Action::EndContract {
                    contract_id: ContractId::parse(&format!("c-{}", step.other % 4)).unwrap(),
                },
            )
        }
    };
    (actor, action)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    /// A restart loads a snapshot of the state at some position and folds the log after it.
    /// For random valid logs and a random cut: the snapshot (serialised and read back) plus
    /// the tail equals the state folded from the whole log, and decides every further command
    /// the same way. `decide` is deterministic on the way.
    #[test]
    fn snapshot_at_a_random_cut_plus_the_tail_equals_the_whole_fold(
        steps in proptest::collection::vec(step(), 1..120),
        cut in any::<proptest::sample::Index>(),
        probes in proptest::collection::vec(step(), 1..12),
    ) {
        let mut world = World::new();
        for step in &steps {
            world.advance(step.advance_ms);
            world.client = [Client::Desktop, Client::MobileWeb, Client::MobileApp][step.client as usize];
            let (actor, action) = action_for(&world, step);
            let command = world.command(actor.clone(), action.clone());
            let now = Timestamp::from_millis(world.now);
            let first = domain::decide(&world.state, &command, now);
            prop_assert_eq!(&first, &domain::decide(&world.state, &command, now), "decide is deterministic");
            let _ = world.run_as(actor, action);
        }
        let config = world.state.config.clone();
        let cut = cut.index(world.log.len() + 1);

        let mut snapshotted = State::new(config.clone());
        for event in &world.log[..cut] {
            evolve(&mut snapshotted, event);
        }
        let bytes = serde_json::to_vec(&snapshotted).expect("a state serialises");
        let mut restored: State = serde_json::from_slice(&bytes).expect("and reads back");
        prop_assert_eq!(&restored, &snapshotted, "the snapshot reads back as written");
        for event in &world.log[cut..] {
            evolve(&mut restored, event);
        }

        let mut whole = State::new(config);
        for event in &world.log {
            evolve(&mut whole, event);
        }
        prop_assert_eq!(&restored, &whole, "snapshot at {} + tail = whole fold", cut);
        for probe in &probes {
            world.advance(probe.advance_ms);
            let (actor, action) = action_for(&world, probe);
            let command = world.command(actor, action);
            let now = Timestamp::from_millis(world.now);
            prop_assert_eq!(
                domain::decide(&restored, &command, now),
                domain::decide(&whole, &command, now),
                "the restored state decides like the whole fold"
            );
        }
    }

    /// Read models follow `Event::membership_change` instead of the write-side state: folding
    /// it over the log must give every room exactly the members the state has.
    #[test]
    fn membership_changes_reproduce_every_rooms_members(steps in proptest::collection::vec(step(), 1..120)) {
        let mut world = World::new();
        for step in &steps {
            world.advance(step.advance_ms);
            let (actor, action) = action_for(&world, step);
            let _ = world.run_as(actor, action);
        }
        let mut members: HashMap<RoomId, BTreeSet<UserId>> = HashMap::new();
        for event in &world.log {
            match event.membership_change() {
                Some(MembershipChange::Joined { room_id, users }) => {
                    members.entry(room_id).or_default().extend(users.into_iter().cloned());
                }
                Some(MembershipChange::Left { room_id, user }) => {
                    members.entry(room_id).or_default().remove(user);
                }
                None => {}
            }
        }
        for (room_id, room) in &world.state.rooms {
            prop_assert_eq!(members.get(room_id).cloned().unwrap_or_default(), room.members.clone());
        }
        prop_assert!(members.keys().all(|room_id| world.state.rooms.contains_key(room_id)));
    }
}
