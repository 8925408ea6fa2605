//! Per-event costs of two steps of the write path, the old way beside the new, in one process
//! (so the machine's load hits both alike): publishing a stored `message_sent` (decode +
//! re-encode vs splicing the stored bytes) and checking its body for contact details (every
//! heuristic vs the prefilter first).
//!
//! `cargo run --release -p protocol --example write_path_costs -- 200000`

use std::hint::black_box;
use std::time::Instant;

use domain::contact::{find_all_contact_info, find_all_contact_info_without_prefilter};
use domain::{Actor, CommandId, Event, MessageId, RoomId, Timestamp, UserId};
use protocol::{encode_stored, Format, RecordedEvent, StoredEvent};
use uuid::Uuid;

/// The benchmark harness's message body (crates/bench/src/workload.rs).
const BODY: &str = "The quick brown fox jumps over the lazy dog while the whole team reviews \
the project plan together, and everyone agrees that the next milestone looks realistic for the \
work still ahead of us all";

/// Repetitions when none is given.
const ROUNDS_DEFAULT: u32 = 200_000;

fn per_call_ns(rounds: u32, started: Instant) -> f64 {
    started.elapsed().as_secs_f64() * 1e9 / f64::from(rounds.max(1))
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let rounds: u32 = std::env::args()
        .nth(1)
        .and_then(|arg| arg.parse().ok())
        .unwrap_or(ROUNDS_DEFAULT);
    let author = UserId::parse("alice")?;
    let event = Event::MessageSent {
        room_id: RoomId(Uuid::from_u128(1)),
        message_id: MessageId(Uuid::from_u128(2)),
        author: author.clone(),
        body: BODY.into(),
        reply_to: None,
        attachments: vec![],
        sent_at: Timestamp::from_millis(1_795_773_600_000),
    };
    let stream = event.stream();
    let stored = encode_stored(&StoredEvent::new(
        Uuid::from_u128(3),
        CommandId(Uuid::from_u128(4)),
        &Actor::User(author),
        Timestamp::from_millis(1_795_773_600_000),
        event,
    ))?;

    let started = Instant::now();
    for position in 1..=u64::from(rounds) {
        let decoded = protocol::decode_stored(black_box(&stored))?;
        let recorded = RecordedEvent::from_stored(position, stream.clone(), 7, [1; 32], decoded);
        black_box((recorded.type_name(), recorded.encode(Format::Bincode)?));
    }
    let decode_encode = per_call_ns(rounds, started);
    let started = Instant::now();
    for position in 1..=u64::from(rounds) {
        black_box(protocol::recorded_bincode_from_stored(
            position,
            &stream,
            7,
            [1; 32],
            black_box(&stored),
        )?);
    }
    let splice = per_call_ns(rounds, started);
    println!(
        "publish one message_sent: decode + encode {decode_encode:.0} ns, splice {splice:.0} ns"
    );

    // Warm the detector's regexes first.
    black_box(find_all_contact_info_without_prefilter(BODY));
    let started = Instant::now();
    for _ in 0..rounds {
        black_box(find_all_contact_info_without_prefilter(black_box(BODY)));
    }
    let heuristics = per_call_ns(rounds, started);
    let started = Instant::now();
    for _ in 0..rounds {
        black_box(find_all_contact_info(black_box(BODY)));
    }
    let prefiltered = per_call_ns(rounds, started);
    let started = Instant::now();
    for _ in 0..rounds {
        black_box(domain::contact::might_contain_contact_info(black_box(BODY)));
    }
    let prefilter_alone = per_call_ns(rounds, started);
    println!(
        "contact check of the 194-character body: every heuristic {heuristics:.0} ns, \
         prefilter first {prefiltered:.0} ns (the prefilter alone {prefilter_alone:.0} ns)"
    );
    Ok(())
}
