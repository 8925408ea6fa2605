//! Applies a synthetic log (users, group rooms, then messages with some read markers) to each
//! read model in memory-built batches and prints events per second: the A/B tool for the
//! models' storage (`cargo run --release -p projections --example apply_rate -- 200000`).
//!
//! Arguments: `[events] [serving|rebuilding] [model]` (defaults: 200000, rebuilding, all).

use std::time::Instant;

use domain::{CommandId, Event, MessageId, RoomId, Timestamp, UserId, UserKind};
use projections::{
    EventEnvelope, Files, Moderation, Notifications, OpenFor, ProjectionError, Projector, Rooms,
    Timeline,
};
use uuid::Uuid;

/// Users in the synthetic log.
const USERS: usize = 2_000;
/// Group rooms, each with [`ROOM_MEMBERS`] members.
const ROOMS: usize = 1_000;
/// Members per room.
const ROOM_MEMBERS: usize = 8;
/// Events per applied batch (about what the runtime hands a model under load).
const BATCH_EVENTS: usize = 256;
/// One message in this many is followed by its author's room being marked read by another member.
const MARK_READ_EVERY_MESSAGES: usize = 10;

fn main() -> Result<(), ProjectionError> {
    let mut arguments = std::env::args().skip(1);
    let events: usize = arguments
        .next()
        .and_then(|text| text.parse().ok())
        .unwrap_or(200_000);
    let purpose = match arguments.next().as_deref() {
        Some("serving") => OpenFor::Serving,
        _ => OpenFor::Rebuilding,
    };
    let only = arguments.next();
    let log = synthetic_log(events);
    println!("{} events, {purpose:?}", log.len());
    let scratch = std::env::temp_dir().join(format!("apply-rate-{}", std::process::id()));
    let run = |name: &str| only.as_deref().is_none_or(|only| only == name);
    if run("rooms") {
        measure(Rooms::open_path_for(&scratch.join("rooms"), purpose)?, &log)?;
    }
    if run("timeline") {
        measure(
            Timeline::open_path_for(&scratch.join("timeline"), purpose)?,
            &log,
        )?;
    }
    if run("notifications") {
        measure(
            Notifications::open_path_for(&scratch.join("notifications"), purpose)?,
            &log,
        )?;
    }
    if run("files") {
        measure(Files::open_path_for(&scratch.join("files"), purpose)?, &log)?;
    }
    if run("moderation") {
        measure(
            Moderation::open_path_for(&scratch.join("moderation"), purpose)?,
            &log,
        )?;
    }
    std::fs::remove_dir_all(&scratch).ok();
    Ok(())
}

fn measure<P: Projector>(mut model: P, log: &[EventEnvelope]) -> Result<(), ProjectionError> {
    let started = Instant::now();
    for batch in log.chunks(BATCH_EVENTS) {
        model.apply(batch)?;
    }
    let applied = started.elapsed();
    model.finish_rebuild()?;
    let total = started.elapsed();
    println!(
        "{:<14} {:>9.0} events/s applied, {:>9.0} events/s with the final flush ({:.1} µs/event)",
        model.name(),
        log.len() as f64 / applied.as_secs_f64(),
        log.len() as f64 / total.as_secs_f64(),
        total.as_secs_f64() * 1e6 / log.len() as f64,
    );
    Ok(())
}

/// A deterministic pseudo-random sequence (xorshift), so runs compare.
struct Rng(u64);

impl Rng {
    fn below(&mut self, n: usize) -> usize {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        (self.0 % n as u64) as usize
    }
}

fn synthetic_log(events: usize) -> Vec<EventEnvelope> {
    let users: Vec<UserId> = (0..USERS)
        .map(|index| UserId::parse(&format!("user{index}")).expect("a valid user id"))
        .collect();
    let rooms: Vec<RoomId> = (0..ROOMS)
        .map(|index| RoomId(Uuid::from_u128(0x1000 + index as u128)))
        .collect();
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let mut log = Vec::with_capacity(events);
    let push = |log: &mut Vec<EventEnvelope>, stream: String, actor: &UserId, event: Event| {
        let position = log.len() as u64 + 1;
        log.push(EventEnvelope {
            position,
            stream,
            version: position,
            event_id: Uuid::from_u128(u128::from(position)),
            command_id: CommandId(Uuid::from_u128(u128::from(position) << 64)),
            actor: actor.to_string(),
            recorded_at: Timestamp::from_millis(1_795_773_600_000 + position as i64),
            event,
        });
    };
    for user in &users {
        push(
            &mut log,
            format!("user-{user}"),
            user,
            Event::UserRegistered {
                user_id: user.clone(),
                display_name: format!("User {user}"),
                kind: UserKind::Freelancer,
            },
        );
    }
    let members_of = |room: usize| -> Vec<UserId> {
        (0..ROOM_MEMBERS)
            .map(|offset| users[(room * 3 + offset * 7) % USERS].clone())
            .collect()
    };
    for (index, room) in rooms.iter().enumerate() {
        let members = members_of(index);
        push(
            &mut log,
            format!("room-{}", room.0),
            &members[0],
            Event::GroupRoomCreated {
                room_id: *room,
                name: format!("Room {index}"),
                creator: members[0].clone(),
                members: members.clone(),
                created_at: Timestamp::from_millis(1_795_773_600_000 + index as i64),
            },
        );
    }
    let mut sent = 0usize;
    while log.len() < events {
        let index = rng.below(ROOMS);
        let members = members_of(index);
        let author = &members[rng.below(ROOM_MEMBERS)];
        let message_id = MessageId(Uuid::from_u128((sent as u128) << 32 | 0xabc));
        let position = log.len() as i64 + 1;
        push(
            &mut log,
            format!("room-{}", rooms[index].0),
            author,
            Event::MessageSent {
                room_id: rooms[index],
                message_id,
                author: author.clone(),
                body: format!("message {sent}: the quick brown fox jumps over the lazy dog"),
                reply_to: None,
                attachments: Vec::new(),
                sent_at: Timestamp::from_millis(1_795_800_000_000 + position),
            },
        );
        sent += 1;
        if sent % MARK_READ_EVERY_MESSAGES == 0 {
            let reader = &members[rng.below(ROOM_MEMBERS)];
            push(
                &mut log,
                format!("room-{}", rooms[index].0),
                reader,
                Event::RoomMarkedRead {
                    room_id: rooms[index],
                    user_id: reader.clone(),
                    message_id,
                },
            );
        }
    }
    log
}
