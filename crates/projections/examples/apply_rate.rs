//! Applies a synthetic log (users, group rooms, then messages with some read markers) to each
//! read model in memory-built batches and prints events per second: the A/B tool for the
//! models' storage (`cargo run --release -p projections --example apply_rate -- 200000`).
//!
//! Arguments: `[events] [serving|rebuilding] [model] [queries] [ticks]` (defaults: 200000,
//! rebuilding, all, 0, 0). With `queries` above 0 the log also has a user `hub` in every room,
//! and after applying, the rooms model answers that many first pages of `list` for `hub` and as
//! many for ordinary users (a few rooms each), timed one by one: what reading a room list costs.
//! With `ticks` 1 every model is asked for its due notifications after each applied batch, at
//! the time of the batch's last event: every synthetic user is `immediate`, so the
//! notifications model then sends (and removes) what each batch made, as a served model does,
//! instead of letting it pile up.

use std::time::Instant;

use domain::{CommandId, Event, MessageId, RoomId, Timestamp, UserId, UserKind};
use projections::{
    EventEnvelope, Files, Moderation, Notifications, OpenFor, ProjectionError, Projector,
    QueryRequest, Rooms, Timeline,
};
use protocol::query::{PageLimit, RoomView, RoomsQuery};
use testkit::SeededRng;
use uuid::Uuid;

/// Users in the synthetic log.
const USERS: usize = 2_000;
/// Group rooms, each with [`ROOM_MEMBERS`] members.
const ROOMS: usize = 1_000;
/// Members per room.
const ROOM_MEMBERS: usize = 8;
/// When the message at log position 0 would have been sent; each later one is a millisecond later.
const SENT_AT_ZERO_MILLIS: i64 = 1_795_800_000_000;
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
    let queries: usize = arguments
        .next()
        .and_then(|text| text.parse().ok())
        .unwrap_or(0);
    let ticks = arguments.next().as_deref() == Some("1");
    let log = synthetic_log(events, queries > 0);
    println!(
        "{} events, {purpose:?}{}",
        log.len(),
        if ticks { ", ticks" } else { "" }
    );
    let scratch = std::env::temp_dir().join(format!("apply-rate-{}", std::process::id()));
    let run = |name: &str| only.as_deref().is_none_or(|only| only == name);
    if run("rooms") {
        let rooms = Rooms::open_path_for(&scratch.join("rooms"), purpose)?;
        let rooms = measure(rooms, &log, ticks)?;
        if queries > 0 {
            measure_lists(&rooms, queries)?;
        }
    }
    if run("timeline") {
        measure(
            Timeline::open_path_for(&scratch.join("timeline"), purpose)?,
            &log,
            ticks,
        )?;
    }
    if run("notifications") {
        measure(
            Notifications::open_path_for(&scratch.join("notifications"), purpose)?,
            &log,
            ticks,
        )?;
    }
    if run("files") {
        measure(
            Files::open_path_for(&scratch.join("files"), purpose)?,
            &log,
            ticks,
        )?;
    }
    if run("moderation") {
        measure(
            Moderation::open_path_for(&scratch.join("moderation"), purpose)?,
            &log,
            ticks,
        )?;
    }
    std::fs::remove_dir_all(&scratch).ok();
    Ok(())
}

fn measure<P: Projector>(
    mut model: P,
    log: &[EventEnvelope],
    ticks: bool,
) -> Result<P, ProjectionError> {
    let started = Instant::now();
    let mut published = 0usize;
    for batch in log.chunks(BATCH_EVENTS) {
        match batch.last().filter(|_| ticks) {
            // The batch's last message is due now for its `immediate` recipients; applied and
            // asked for at once, as the runtime does.
            Some(last) => {
                let now = Timestamp::from_millis(SENT_AT_ZERO_MILLIS + last.position as i64);
                published += model.apply_and_due(batch, now)?.len();
            }
            None => model.apply(batch)?,
        }
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
    if ticks {
        println!("{:<14} {published} notifications due", model.name());
    }
    Ok(model)
}

/// Times `queries` first pages of `list` (inbox, limit 50) for `hub` and as many for ordinary
/// users, and prints the median and 99th percentile of each.
fn measure_lists(rooms: &Rooms, queries: usize) -> Result<(), ProjectionError> {
    let now = Timestamp::from_millis(1_795_900_000_000);
    let mut rng = SeededRng::new(0x2545_f491_4f6c_dd1d);
    for who in ["hub", "users"] {
        let mut micros = Vec::with_capacity(queries);
        for _ in 0..queries {
            let caller = match who {
                "hub" => "hub".to_owned(),
                _ => format!("user{}", rng.below(USERS)),
            };
            let request = QueryRequest {
                caller: Some(caller),
                moderator: false,
                min_position: None,
                op: RoomsQuery::List {
                    view: RoomView::Inbox,
                    limit: PageLimit::list_default(),
                    cursor: None,
                },
            };
            let started = Instant::now();
            let answer = rooms
                .query(&request, now)
                .map_err(|error| ProjectionError::Task(error.to_string()))?;
            micros.push(started.elapsed().as_secs_f64() * 1e6);
            assert!(answer["rooms"].is_array(), "{answer}");
        }
        micros.sort_by(f64::total_cmp);
        println!(
            "rooms list     {who:<5} {queries} first pages: p50 {:.0} µs, p99 {:.0} µs",
            micros[micros.len() / 2],
            micros[(micros.len() * 99 / 100).min(micros.len() - 1)],
        );
    }
    Ok(())
}

fn synthetic_log(events: usize, with_hub: bool) -> Vec<EventEnvelope> {
    let users: Vec<UserId> = (0..USERS)
        .map(|index| UserId::parse(&format!("user{index}")).expect("a valid user id"))
        .collect();
    let hub = UserId::parse("hub").expect("a valid user id");
    let rooms: Vec<RoomId> = (0..ROOMS)
        .map(|index| RoomId(Uuid::from_u128(0x1000 + index as u128)))
        .collect();
    let mut rng = SeededRng::new(0x9e37_79b9_7f4a_7c15);
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
    for user in users.iter().chain(with_hub.then_some(&hub)) {
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
        let mut members = members_of(index);
        if with_hub {
            members.push(hub.clone());
        }
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
                sent_at: Timestamp::from_millis(SENT_AT_ZERO_MILLIS + position),
            },
        );
        sent += 1;
        if sent.is_multiple_of(MARK_READ_EVERY_MESSAGES) {
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
