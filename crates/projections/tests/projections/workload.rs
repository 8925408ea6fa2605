//! A random workload: a few hundred commands of every type, chosen against the world as it is
//! when each runs, so most name rooms and messages that exist. Rejections are simply skipped.

use domain::{
    Action, Actor, AttachmentRef, CallId, CallMedia, Client, ContractId, FileId, InterviewId,
    MessageId, MessageTarget, NotificationFrequency, ReportReason, RoomId, Timestamp,
};
use uuid::Uuid;

use crate::support::{user, Rng, World, HOUR, MINUTE};

const ACTORS: [&str; 5] = ["alice", "bob", "carol", "dave", "zoe"];
const BODIES: [&str; 6] = [
    "hello",
    "how is the project going?",
    "see the attached design",
    "",
    "ok",
    "a rather longer message that goes on and on, well past the hundred characters a preview shows, to test cutting",
];

fn pick<T: Copy>(items: &[T], rng: &mut Rng, fallback: T) -> T {
    if items.is_empty() {
        fallback
    } else {
        items[rng.below(items.len() as u64) as usize]
    }
}

/// Runs `steps` random commands; returns how many were accepted.
pub fn run(world: &mut World, rng: &mut Rng, steps: usize) -> usize {
    let mut accepted = 0;
    for _ in 0..steps {
        match rng.below(4) {
            0 => world.advance(rng.below(5 * MINUTE as u64) as i64),
            1 if rng.chance(5) => world.advance(HOUR),
            _ => {}
        }
        world.client =
            [Client::Desktop, Client::MobileWeb, Client::MobileApp][rng.below(3) as usize];
        let (actor, action) = action(world, rng);
        if world.run_as(actor, action).is_ok() {
            accepted += 1;
        }
    }
    accepted
}

fn action(world: &World, rng: &mut Rng) -> (Actor, Action) {
    let mut rooms: Vec<RoomId> = world.state.rooms.keys().copied().collect();
    rooms.sort();
    let mut messages: Vec<MessageId> = world.state.messages.ids().collect();
    messages.sort();
    let mut files: Vec<FileId> = world.state.files.keys().copied().collect();
    files.sort();
    let room = pick(&rooms, rng, RoomId(Uuid::from_u128(1)));
    // Most message commands name a message of the chosen room.
    let in_room: Vec<MessageId> = messages
        .iter()
        .copied()
        .filter(|id| {
            world
                .state
                .messages
                .get(id)
                .is_some_and(|m| m.room_id == room)
        })
        .collect();
    let message = if rng.chance(80) {
        pick(&in_room, rng, MessageId(Uuid::from_u128(2)))
    } else {
        pick(&messages, rng, MessageId(Uuid::from_u128(2)))
    };
    let members: Vec<&str> = ACTORS
        .iter()
        .copied()
        .filter(|name| {
            world
                .state
                .rooms
                .get(&room)
                .is_some_and(|r| r.members.contains(&user(name)))
        })
        .collect();
    // Actors are usually members of the room, so that most commands are accepted.
    let actor_name = if rng.chance(85) {
        pick(&members, rng, ACTORS[0])
    } else {
        ACTORS[rng.below(ACTORS.len() as u64) as usize]
    };
    let other = user(ACTORS[rng.below(ACTORS.len() as u64) as usize]);
    let outsiders: Vec<&str> = ACTORS
        .iter()
        .copied()
        .filter(|name| !members.contains(name))
        .collect();
    let outsider = user(pick(&outsiders, rng, ACTORS[0]));
    // Edits and deletes come from the author, mostly, so that some are accepted.
    let author = world
        .state
        .messages
        .get(&message)
        .filter(|_| rng.chance(90))
        .and_then(|m| world.state.user_id(m.author).cloned())
        .unwrap_or_else(|| user(actor_name));
    let calling: Vec<RoomId> = rooms
        .iter()
        .copied()
        .filter(|id| world.state.rooms[id].active_call.is_some())
        .collect();
    let actor = Actor::User(user(actor_name));
    let service = Actor::parse("service:test").unwrap();
    let body = BODIES[rng.below(BODIES.len() as u64) as usize].to_owned();
    let flag = rng.chance(50);
    let active_call = world
        .state
        .rooms
        .get(&room)
        .and_then(|r| r.active_call.map(|(id, _)| id))
        .unwrap_or(CallId(Uuid::from_u128(3)));
    let now = world.now().millis();
    let action = match rng.below(30) {
        0..=7 => Action::SendMessage {
            target: MessageTarget::Room(room),
            message_id: None,
            body: if body.is_empty() { "hi".into() } else { body },
            reply_to: rng.chance(30).then_some(message),
            attachments: if rng.chance(20) {
                vec![AttachmentRef::Link(
                    "https://www.dropbox.com/s/abc/file.pdf".into(),
                )]
            } else {
                vec![]
            },
        },
        8 => Action::SendMessage {
            target: MessageTarget::User(other),
            message_id: None,
            body: "direct hello".into(),
            reply_to: None,
            attachments: vec![],
        },
        9 | 10 => {
            return (
                Actor::User(author),
                Action::EditMessage {
                    room_id: room,
                    message_id: message,
                    body: "edited body".into(),
                },
            )
        }
        11 | 12 => {
            return (
                Actor::User(author),
                Action::DeleteMessage {
                    room_id: room,
                    message_id: message,
                },
            )
        }
        13 => Action::CreateRoom {
            name: "Random room".into(),
            members: vec![other],
        },
        14 => Action::AddMember {
            room_id: room,
            user_id: outsider,
        },
        15 => Action::LeaveRoom { room_id: room },
        16 => Action::RenameRoom {
            room_id: room,
            name: "Renamed".into(),
        },
        17 => Action::FavoriteRoom {
            room_id: room,
            on: flag,
        },
        18 => Action::HideRoom {
            room_id: room,
            on: flag,
        },
        19 => Action::ArchiveRoom {
            room_id: room,
            on: flag,
        },
        20 | 21 => Action::MarkRead {
            room_id: room,
            message_id: message,
        },
        22 => {
            if flag {
                Action::BlockUser { user_id: other }
            } else {
                Action::UnblockUser { user_id: other }
            }
        }
        23 => {
            if flag {
                Action::SetOutOfOffice {
                    message: "away for a while".into(),
                    from: Timestamp::from_millis(now),
                    until: Timestamp::from_millis(now + 2 * HOUR),
                }
            } else {
                Action::ClearOutOfOffice
            }
        }
        24 => {
            // Reports come from another member than the author.
            let reporter = members
                .iter()
                .map(|name| user(name))
                .find(|member| {
                    world
                        .state
                        .messages
                        .get(&message)
                        .is_some_and(|m| !world.state.is_author(&m, member))
                })
                .unwrap_or_else(|| user(actor_name));
            return (
                Actor::User(reporter),
                Action::ReportMessage {
                    room_id: room,
                    message_id: message,
                    reason: ReportReason::SuspiciousLink,
                    details: flag.then(|| "looks odd".into()),
                },
            );
        }
        25 => match calling.first() {
            Some(calling_room) if flag => {
                let state = &world.state.rooms[calling_room];
                let member = state
                    .members
                    .iter()
                    .next()
                    .cloned()
                    .unwrap_or(user("alice"));
                let call_id = state.active_call.map_or(active_call, |(id, _)| id);
                return (
                    Actor::User(member),
                    Action::EndCall {
                        room_id: *calling_room,
                        call_id,
                    },
                );
            }
            _ => Action::StartCall {
                room_id: room,
                media: CallMedia::Video,
            },
        },
        26 => Action::SetNotifications {
            frequency: [
                NotificationFrequency::Immediate,
                NotificationFrequency::Every15Minutes,
                NotificationFrequency::Hourly,
                NotificationFrequency::Daily,
                NotificationFrequency::Off,
            ][rng.below(5) as usize],
        },
        27 => Action::SetOnlineVisibility { visible: flag },
        28 => {
            if flag || files.is_empty() {
                return (
                    service,
                    Action::RegisterFile {
                        file_id: FileId(Uuid::from_u128(0xF000 + u128::from(rng.below(1 << 20)))),
                        uploader: user(actor_name),
                        name: "photo.png".into(),
                        size: 2048,
                        content_type: "image/png".into(),
                        sha256: "a".repeat(64),
                    },
                );
            }
            Action::SendMessage {
                target: MessageTarget::Room(room),
                message_id: None,
                body: String::new(),
                reply_to: None,
                attachments: vec![AttachmentRef::File(pick(&files, rng, files[0]))],
            }
        }
        _ => {
            let id = rng.below(4);
            return match rng.below(3) {
                0 => (
                    service,
                    Action::OpenInterview {
                        interview_id: InterviewId::parse(&format!("i-{id}")).unwrap(),
                        title: "Interview".into(),
                        client: user(actor_name),
                        freelancer: other,
                    },
                ),
                1 => (
                    service,
                    Action::StartContract {
                        contract_id: ContractId::parse(&format!("c-{id}")).unwrap(),
                        title: "Contract".into(),
                        client: user(actor_name),
                        freelancer: other,
                        room_id: flag.then_some(room),
                    },
                ),
                _ => (
                    service,
                    Action::EndContract {
                        contract_id: ContractId::parse(&format!("c-{id}")).unwrap(),
                    },
                ),
            };
        }
    };
    (actor, action)
}
