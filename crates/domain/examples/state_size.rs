//! Measures the write-side state's memory per message: folds N `message_sent` events (over
//! 1,000 rooms of two members, bodies the state does not keep) into a fresh state and reports
//! the growth of the resident set per message, and how long a clone of the state takes (the
//! committer's share of a background snapshot).
//!
//! `cargo run --release -p domain --example state_size -- 1000000`

use std::time::Instant;

use domain::{evolve, Event, State, Timestamp, UserId, UserKind};
use uuid::Uuid;

/// Rooms the messages are spread over.
const ROOMS: u128 = 1_000;
/// Messages folded when no count is given.
const MESSAGES_DEFAULT: u64 = 1_000_000;

/// The resident set of this process, in bytes (Linux only; 0 elsewhere).
fn resident_bytes() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|status| {
            status
                .lines()
                .find(|line| line.starts_with("VmRSS:"))
                .and_then(|line| line.split_whitespace().nth(1))
                .and_then(|kib| kib.parse::<u64>().ok())
        })
        .map_or(0, |kib| kib * 1024)
}

fn user(index: u128) -> UserId {
    match UserId::parse(&format!("user-{index:06}")) {
        Ok(user) => user,
        Err(error) => panic!("a generated user id is valid: {error}"),
    }
}

fn main() {
    let messages: u64 = std::env::args()
        .nth(1)
        .and_then(|arg| arg.parse().ok())
        .unwrap_or(MESSAGES_DEFAULT);
    let mut state = State::default();
    let at = Timestamp::from_millis(1_795_773_600_000);
    for index in 0..2 * ROOMS {
        evolve(
            &mut state,
            &Event::UserRegistered {
                user_id: user(index),
                display_name: format!("User {index}"),
                kind: UserKind::Freelancer,
            },
        );
    }
    for room in 0..ROOMS {
        evolve(
            &mut state,
            &Event::DirectRoomOpened {
                room_id: domain::RoomId(Uuid::from_u128(room + 1)),
                initiator: user(2 * room),
                recipient: user(2 * room + 1),
                opened_at: at,
            },
        );
    }
    let before = resident_bytes();
    let started = Instant::now();
    for index in 0..messages {
        let room = u128::from(index) % ROOMS;
        evolve(
            &mut state,
            &Event::MessageSent {
                room_id: domain::RoomId(Uuid::from_u128(room + 1)),
                message_id: domain::MessageId(Uuid::from_u128(u128::from(index) + (1 << 64))),
                author: user(2 * room + u128::from(index % 2)),
                body: "hello".into(),
                reply_to: None,
                attachments: vec![],
                sent_at: at.plus_millis(i64::try_from(index).unwrap_or(i64::MAX)),
            },
        );
    }
    let folded = started.elapsed();
    let after = resident_bytes();
    let per_message = after.saturating_sub(before) as f64 / messages.max(1) as f64;
    let cloning = Instant::now();
    let copy = state.clone();
    let cloned = cloning.elapsed();
    println!(
        "{messages} messages: {per_message:.0} bytes resident per message; folded in {:.2} s; \
         a clone of the state takes {:.0} ms",
        folded.as_secs_f64(),
        cloned.as_secs_f64() * 1000.0
    );
    drop(copy);
}
