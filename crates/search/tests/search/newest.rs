//! The newest-first search that stops early (`search::newest`) against a full scan of the log:
//! thousands of messages over many commits (segments, and the merges of them), edits that
//! re-add old messages at the end, deletions, and a caller who leaves a room and joins another.

use std::collections::{BTreeSet, HashMap};

use domain::{Event, MessageId, RoomId};
use search::text::{all_match, name_words, query_words};
use serde_json::json;
use testkit::SeededRng;

use crate::support::{ask, feed, message_ids, model, World};

/// Word pairs where one is a prefix of the other, so prefix matching is exercised.
const VOCABULARY: [&str; 12] = [
    "alpha", "alphabet", "alpine", "beta", "bet", "better", "gamma", "gam", "delta", "del",
    "omega", "zeta",
];

/// One message as a full scan sees it.
struct Seen {
    room: RoomId,
    body: String,
    key: (i64, u64),
    deleted: bool,
}

/// Every live message of `rooms` whose latest body matches `q`, newest first: what the search
/// must answer, found by reading the whole log.
fn full_scan(world: &World, rooms: &BTreeSet<RoomId>, q: &str) -> Vec<String> {
    let mut messages: HashMap<MessageId, Seen> = HashMap::new();
    for record in &world.log {
        match &record.event {
            Event::MessageSent {
                room_id,
                message_id,
                body,
                sent_at,
                ..
            } => {
                messages.insert(
                    *message_id,
                    Seen {
                        room: *room_id,
                        body: body.clone(),
                        key: (sent_at.millis(), record.position),
                        deleted: false,
                    },
                );
            }
            Event::MessageEdited {
                message_id, body, ..
            } => {
                if let Some(seen) = messages.get_mut(message_id) {
                    seen.body = body.clone();
                }
            }
            Event::MessageDeleted { message_id, .. } => {
                if let Some(seen) = messages.get_mut(message_id) {
                    seen.deleted = true;
                }
            }
            _ => {}
        }
    }
    let words = query_words(q);
    let mut found: Vec<(&(i64, u64), &MessageId)> = messages
        .iter()
        .filter(|(_, seen)| !seen.deleted && rooms.contains(&seen.room))
        .filter(|(_, seen)| {
            let body_words = name_words(&seen.body);
            all_match(&words, body_words.iter().map(String::as_str))
        })
        .map(|(id, seen)| (&seen.key, id))
        .collect();
    found.sort_unstable_by(|a, b| b.cmp(a));
    found.into_iter().map(|(_, id)| id.to_string()).collect()
}

/// Every page of `q` for `caller`, `limit` at a time, joined.
fn all_pages(model: &search::SearchProjector, caller: &str, q: &str, limit: usize) -> Vec<String> {
    let mut walked = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let mut params = json!({"q": q, "limit": limit});
        if let Some(cursor) = &cursor {
            params["cursor"] = json!(cursor);
        }
        let page = ask(model, caller, params).unwrap();
        walked.extend(message_ids(&page));
        match page["next_cursor"].as_str() {
            Some(next) => cursor = Some(next.to_owned()),
            None => return walked,
        }
    }
}

#[test]
fn the_newest_matches_equal_a_full_scan_over_segments_edits_deletions_and_leaving() {
    let mut world = World::new();
    let mut rng = SeededRng::new(0x5EA2_C401);
    let members: [&[&str]; 6] = [
        &["bob", "carol"],
        &["bob", "dave"],
        &["carol", "dave"],
        &["bob", "carol", "dave"],
        &["carol"],
        &["dave"],
    ];
    let rooms: Vec<RoomId> = members
        .iter()
        .enumerate()
        .map(|(index, others)| world.group("alice", &format!("Room {index}"), others))
        .collect();
    let mut bobs: BTreeSet<RoomId> = [0, 1, 3].iter().map(|&index| rooms[index]).collect();
    let mut model = model();
    let mut sent: Vec<(MessageId, usize)> = Vec::new();
    let queries = [
        "alpha",
        "alp",
        "bet",
        "better",
        "gam",
        "del",
        "omega zeta",
        "be al",
        "zeta",
    ];
    for index in 0..4_000 {
        // Half a second apart: every message is still editable an hour later (R-M5).
        world.advance(500);
        let room = rng.below(rooms.len());
        let body: Vec<&str> = (0..3)
            .map(|_| VOCABULARY[rng.below(VOCABULARY.len())])
            .collect();
        sent.push((world.say("alice", rooms[room], &body.join(" ")), room));
        if index % 37 == 36 {
            // An edit of an older message re-adds it at the end of the index.
            let (message, room) = sent[rng.below(sent.len())];
            let body = VOCABULARY[rng.below(VOCABULARY.len())];
            world.edit("alice", rooms[room], message, &format!("{body} edited"));
        }
        if index % 53 == 52 {
            let (message, room) = sent.swap_remove(rng.below(sent.len()));
            world.delete("alice", rooms[room], message);
        }
        if index == 2_500 {
            // Bob leaves a room and joins another: what he finds follows (R-Q1, R-R4).
            world.leave("bob", rooms[1]);
            bobs.remove(&rooms[1]);
            world.add("alice", rooms[4], "bob");
            bobs.insert(rooms[4]);
        }
        if index % 450 == 449 {
            // Each query commits what was fed: a segment per round, merged as they pile up.
            feed(&mut model, &world);
            let q = queries[rng.below(queries.len())];
            let first = message_ids(&ask(&model, "bob", json!({"q": q})).unwrap());
            let expected = full_scan(&world, &bobs, q);
            assert_eq!(
                first,
                expected[..expected.len().min(20)],
                "q={q:?} at {index}"
            );
        }
    }
    feed(&mut model, &world);
    for q in queries {
        let expected = full_scan(&world, &bobs, q);
        assert!(expected.len() > 20, "q={q:?} matches too little to page");
        assert_eq!(all_pages(&model, "bob", q, 200), expected, "q={q:?}");
        let some = expected.len().min(100);
        assert_eq!(
            all_pages(&model, "bob", q, 7)[..some],
            expected[..some],
            "q={q:?}"
        );
    }
    // Carol's view is computed alike (she never left anything).
    let carols: BTreeSet<RoomId> = [0, 2, 3, 4].iter().map(|&index| rooms[index]).collect();
    assert_eq!(
        all_pages(&model, "carol", "gam", 200),
        full_scan(&world, &carols, "gam")
    );
}
