//! `newest` against a scan of what was indexed, on an index built directly (fast and
//! deterministic): runs long enough for several windows each, record documents between the
//! messages, ties of `sent_at`, edits re-added at a segment's end, deletions, a segment of
//! records only, a caller whose room is rare enough that its postings lead, and the same after
//! a merge that concatenates the segments out of time order. Every page, following the
//! cursor, must equal the scan.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Weak;

use domain::{MessageId, RoomId, Timestamp, UserId};
use tantivy::indexer::NoMergePolicy;
use tantivy::tokenizer::TextAnalyzer;
use tantivy::{Index, IndexReader, IndexWriter, ReloadPolicy, TantivyDocument};
use testkit::SeededRng;

use super::*;
use crate::schema::{MessageDoc, MessageMeta, PREFIX_TOKENIZER};
use crate::text::{all_match, name_words, query_words, PrefixTokenizer};

const VOCABULARY: [&str; 13] = [
    "alpha", "alphabet", "alpine", "beta", "bet", "better", "gamma", "gam", "delta", "del",
    "omega", "zeta", "zebra",
];

struct Msg {
    id: MessageId,
    room: usize,
    body: String,
    key: SortKey,
    alive: bool,
}

struct World {
    fields: Fields,
    rooms: Vec<RoomId>,
    msgs: Vec<Msg>,
    rng: SeededRng,
    next_position: u64,
}

impl World {
    fn body(&mut self) -> String {
        let mut words: Vec<&str> = (0..3)
            .map(|_| VOCABULARY[self.rng.below(VOCABULARY.len())])
            .collect();
        if self.rng.below(500) == 0 {
            words.push("rareword");
        }
        let mut body = words.join(" ");
        if self.rng.below(10) == 0 {
            // One of 40 completions of `prefix`: more than a stepped union takes.
            let n = self.rng.below(40);
            let letter = |n: usize| char::from(b'a' + n as u8);
            body.push_str(&format!(" prefix{}{}", letter(n / 26), letter(n % 26)));
        }
        body
    }

    fn room(&mut self) -> usize {
        // Room 0 is rare (its postings lead the intersection for a caller only in it).
        if self.rng.below(200) == 0 {
            0
        } else {
            1 + self.rng.below(self.rooms.len() - 1)
        }
    }

    fn doc(&self, msg: &Msg) -> TantivyDocument {
        self.fields.message_document(&MessageDoc {
            message_id: msg.id,
            meta: MessageMeta {
                room_id: self.rooms[msg.room],
                author: UserId::parse("alice").unwrap(),
                sent_at: Timestamp::from_millis(msg.key.0),
                position: msg.key.1,
            },
            body: msg.body.clone(),
        })
    }

    /// `count` messages from `sent_at` on, coarse times (ties broken by position).
    fn send(&mut self, writer: &IndexWriter, sent_at: i64, count: usize) {
        for index in 0..count {
            if index % 37 == 0 {
                let room = self.rooms[self.rng.below(self.rooms.len())];
                writer
                    .add_document(self.fields.room_document(&room, "{}"))
                    .unwrap();
            }
            self.next_position += 1;
            let at = sent_at + (index as i64 / 3) + self.rng.below(3) as i64;
            let msg = Msg {
                id: MessageId::parse(&format!(
                    "00000000-0000-0000-0000-{:012x}",
                    self.next_position
                ))
                .unwrap(),
                room: self.room(),
                body: self.body(),
                key: (at, self.next_position),
                alive: true,
            };
            writer.add_document(self.doc(&msg)).unwrap();
            self.msgs.push(msg);
        }
    }

    fn edit_some(&mut self, writer: &IndexWriter, count: usize) {
        for _ in 0..count {
            let index = self.rng.below(self.msgs.len());
            if !self.msgs[index].alive {
                continue;
            }
            let body = self.body();
            self.msgs[index].body = body;
            writer.delete_term(self.fields.message_term(&self.msgs[index].id));
            writer.add_document(self.doc(&self.msgs[index])).unwrap();
        }
    }

    fn delete_some(&mut self, writer: &IndexWriter, count: usize) {
        for _ in 0..count {
            let index = self.rng.below(self.msgs.len());
            self.msgs[index].alive = false;
            writer.delete_term(self.fields.message_term(&self.msgs[index].id));
        }
    }

    fn scan(&self, rooms: &BTreeSet<RoomId>, words: &[String]) -> Vec<SortKey> {
        let mut keys: Vec<SortKey> = self
            .msgs
            .iter()
            .filter(|msg| msg.alive && rooms.contains(&self.rooms[msg.room]))
            .filter(|msg| {
                let body = name_words(&msg.body);
                all_match(words, body.iter().map(String::as_str))
            })
            .map(|msg| msg.key)
            .collect();
        keys.sort_unstable_by(|a, b| b.cmp(a));
        keys
    }
}

fn cap(want: usize) -> usize {
    if want == 1 {
        150
    } else {
        1_500
    }
}

fn check(world: &World, reader: &IndexReader, orders: &SegmentCache, label: &str) {
    let searcher = reader.searcher();
    let callers: Vec<Vec<usize>> = vec![vec![0], vec![1, 2, 3], (0..8).collect(), vec![0, 7]];
    let queries = [
        "alp",
        "alpha",
        "bet",
        "better",
        "ze",
        "omega zeta",
        "rarewo",
        "rareword alp",
        "a",
        "prefix",
        "prefixa bet",
    ];
    let mut windows_checked = 0;
    for caller in &callers {
        let rooms: BTreeSet<RoomId> = caller.iter().map(|&r| world.rooms[r]).collect();
        for q in queries {
            let words = query_words(q);
            let terms: Vec<WordTerms> = words
                .iter()
                .map(|w| WordTerms::of(world.fields.body, w))
                .collect();
            let expected = world.scan(&rooms, &words);
            for want in [1usize, 21, 301] {
                // Page through everything, `want` at a time.
                let mut walked = Vec::new();
                let mut below = None;
                loop {
                    let request = Request {
                        rooms: &rooms,
                        words: &terms,
                        want,
                        below,
                    };
                    let page: Vec<SortKey> = newest(&searcher, &world.fields, orders, &request)
                        .unwrap()
                        .into_iter()
                        .map(|(key, _)| key)
                        .collect();
                    windows_checked += 1;
                    let Some(last) = page.last().copied() else {
                        break;
                    };
                    walked.extend(page);
                    below = Some(last);
                    if walked.len() > expected.len() || walked.len() >= cap(want) {
                        break;
                    }
                }
                let n = expected.len().min(cap(want));
                assert!(
                    walked.len() >= n,
                    "{label}: caller {caller:?} q={q:?} want={want}: {} < {n}",
                    walked.len()
                );
                assert_eq!(
                    walked[..n],
                    expected[..n],
                    "{label}: caller {caller:?} q={q:?} want={want}"
                );
                if expected.len() < cap(want) {
                    assert_eq!(
                        walked.len(),
                        expected.len(),
                        "{label}: caller {caller:?} q={q:?} want={want}"
                    );
                }
            }
        }
    }
    assert!(windows_checked > 0);
}

#[test]
fn equals_a_scan_over_runs_of_many_windows_and_after_a_merge() {
    let (schema, fields) = Fields::schema();
    let index = Index::create_in_ram(schema);
    index.tokenizers().register(
        PREFIX_TOKENIZER,
        TextAnalyzer::from(PrefixTokenizer::default()),
    );
    let mut writer: IndexWriter = index.writer_with_num_threads(1, 200_000_000).unwrap();
    writer.set_merge_policy(Box::new(NoMergePolicy));
    let orders = Arc::new(SegmentCache::default());
    let reader = index
        .reader_builder()
        .reload_policy(ReloadPolicy::Manual)
        .warmers(vec![Arc::downgrade(&orders) as Weak<dyn Warmer>])
        .try_into()
        .unwrap();
    let rooms = (1..=8)
        .map(|n| RoomId::parse(&format!("00000000-0000-0000-0001-{n:012x}")).unwrap())
        .collect();
    let mut world = World {
        fields,
        rooms,
        msgs: Vec::new(),
        rng: SeededRng::new(0x5EA2_C401),
        next_position: 0,
    };
    // Segment 1: a middle chunk, then the oldest, then the newest (two runs, each of
    // several windows), edits re-added at its end, deletions.
    world.send(&writer, 200_000, 9_000);
    world.send(&writer, 0, 9_000);
    world.send(&writer, 400_000, 9_000);
    world.edit_some(&writer, 300);
    world.delete_some(&writer, 300);
    writer.commit().unwrap();
    // Segment 2: between, with edits and deletions of segment 1's messages.
    world.send(&writer, 300_000, 2_000);
    world.edit_some(&writer, 100);
    world.delete_some(&writer, 100);
    writer.commit().unwrap();
    // Segment 3: records only (no message at all).
    for room in world.rooms.clone() {
        writer
            .add_document(world.fields.room_document(&room, "{}"))
            .unwrap();
    }
    writer.commit().unwrap();
    // Segment 4: the newest, few.
    world.send(&writer, 600_000, 500);
    writer.commit().unwrap();
    reader.reload().unwrap();
    assert_eq!(reader.searcher().segment_readers().len(), 4);
    let first = reader.searcher();
    let order = &orders.of(&first.segment_readers()[0]).unwrap().order;
    assert!(order.runs.len() >= 2, "{:?}", order.runs);
    assert!(
        order
            .runs
            .iter()
            .all(|run| run.len() > FIRST_WINDOW_BLOCKS as usize),
        "{:?}",
        order.runs
    );
    check(&world, &reader, &orders, "4 segments");
    // Merged (in segment id order, whatever the time order).
    let ids = index.searchable_segment_ids().unwrap();
    writer.merge(&ids).wait().unwrap();
    reader.reload().unwrap();
    assert_eq!(reader.searcher().segment_readers().len(), 1);
    let order = &orders
        .of(&reader.searcher().segment_readers()[0])
        .unwrap()
        .order;
    eprintln!("merged runs: {:?}", order.runs);
    check(&world, &reader, &orders, "merged");
}
