//! The model over time: edits (found by the latest body only, R-M3) and deletions (not found,
//! R-M4); the checkpoint in the commit payload across a restart (resume from it, nothing
//! applied twice, nothing uncommitted kept); rebuild equality; the commit cadence.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use projections::{EventEnvelope, Projector};
use search::{SearchOptions, SearchProjector};
use serde_json::json;
use testkit::TempDataDir;

use crate::support::{ask, feed, finds, message_ids, model, model_of, search, World, MINUTE};

#[test]
fn edits_are_found_by_the_latest_body_only() {
    let mut world = World::new();
    let room = world.group("alice", "Planning", &["bob"]);
    // Edited in the same batch as it was sent (the writer has not committed it yet).
    let quick = world.say("alice", room, "first draft of the brochure");
    world.edit("alice", room, quick, "final version of the brochure");
    let mut model = model_of(&world);
    assert!(message_ids(&search(&model, "bob", "draft")).is_empty());
    assert_eq!(
        message_ids(&search(&model, "bob", "final")),
        [quick.to_string()]
    );

    // Edited after the message was committed, twice.
    let slow = world.say("alice", room, "meeting at noon");
    feed(&mut model, &world);
    assert!(finds(&search(&model, "bob", "noon"), slow));
    world.advance(MINUTE);
    world.edit("alice", room, slow, "meeting at three");
    feed(&mut model, &world);
    world.edit("alice", room, slow, "meeting at four");
    feed(&mut model, &world);
    assert!(message_ids(&search(&model, "bob", "noon")).is_empty());
    assert!(message_ids(&search(&model, "bob", "three")).is_empty());
    let answer = search(&model, "bob", "meeting four");
    assert_eq!(message_ids(&answer), [slow.to_string()]);
    assert_eq!(
        answer["messages"][0]["snippet"],
        "<mark>meeting</mark> at <mark>four</mark>"
    );
    // The edit keeps the message's place: its author and send time.
    let dump = model.dump().unwrap();
    let key = format!("m/{slow}").into_bytes();
    let (_, value) = dump.iter().find(|(k, _)| *k == key).unwrap();
    let value: serde_json::Value = serde_json::from_slice(value).unwrap();
    assert_eq!(value["author"], "alice");
    assert_eq!(value["body"], "meeting at four");
}

#[test]
fn deleted_messages_are_not_found() {
    let mut world = World::new();
    let room = world.group("alice", "Planning", &["bob"]);
    let gone = world.say("alice", room, "wrong invoice attached");
    let kept = world.say("alice", room, "right invoice attached");
    let edited = world.say("alice", room, "invoice draft");
    let mut model = model_of(&world);
    assert_eq!(message_ids(&search(&model, "bob", "invoice")).len(), 3);

    world.delete("alice", room, gone);
    world.edit("alice", room, edited, "invoice final");
    world.delete("alice", room, edited);
    // Deleted in the same batch as it was sent.
    let brief = world.say("alice", room, "invoice oops");
    world.delete("alice", room, brief);
    feed(&mut model, &world);
    assert_eq!(
        message_ids(&search(&model, "bob", "invoice")),
        [kept.to_string()]
    );
    assert!(message_ids(&search(&model, "bob", "wrong")).is_empty());
    assert!(message_ids(&search(&model, "bob", "oops")).is_empty());
}

#[test]
fn the_checkpoint_survives_a_restart() {
    let data = TempDataDir::new();
    let mut world = World::new();
    let room = world.group("alice", "Planning", &["bob"]);
    world.say("alice", room, "before the restart");
    {
        let mut model = SearchProjector::open(data.path()).unwrap();
        assert_eq!(model.position(), 0);
        feed(&mut model, &world);
        model.flush().unwrap();
        assert_eq!(model.committed_position(), world.head());
    }
    assert!(data.join("projections").join("search").is_dir());

    world.add("alice", room, "carol");
    let after = world.say("bob", room, "after the restart");
    let mut model = SearchProjector::open(data.path()).unwrap();
    let resumed = model.position();
    assert!(resumed > 0 && resumed < world.head());
    assert_eq!(model.committed_position(), resumed);
    // The rooms and names came back with the index.
    assert_eq!(
        search(&model, "bob", "planning")["rooms"][0]["room_id"],
        room.to_string()
    );
    // Offering the whole log again applies only what follows the checkpoint.
    projections::rebuild(&mut model, world.envelopes()).unwrap();
    assert_eq!(model.position(), world.head());
    let answer = search(&model, "carol", "restart");
    assert_eq!(message_ids(&answer).len(), 2);
    assert!(finds(&answer, after));
    assert_eq!(
        model.dump().unwrap(),
        model_of(&world).dump().unwrap(),
        "resumed model differs from a rebuilt one"
    );
}

#[test]
fn what_was_not_committed_is_applied_again_after_a_restart() {
    let data = TempDataDir::new();
    let mut world = World::new();
    let room = world.group("alice", "Planning", &["bob"]);
    world.say("alice", room, "committed message");
    let rare = SearchOptions {
        commit_interval: Duration::from_secs(3_600),
        bulk_commit_interval: Duration::from_secs(3_600),
        ..SearchOptions::live()
    };
    let committed;
    {
        let mut model = SearchProjector::open_with(data.path(), rare.clone()).unwrap();
        feed(&mut model, &world);
        model.commit().unwrap();
        committed = model.committed_position();
        world.say("alice", room, "uncommitted message");
        world.leave("bob", room);
        feed(&mut model, &world);
        assert_eq!(model.position(), world.head());
        assert_eq!(model.committed_position(), committed);
        // Dropped without a flush: a crash, as far as the index knows.
    }
    let mut model = SearchProjector::open_with(data.path(), rare).unwrap();
    assert_eq!(model.position(), committed);
    // Bob was still a member at the checkpoint.
    assert_eq!(
        message_ids(&search(&model, "bob", "committed")).len(),
        1,
        "the model came back as it was committed"
    );
    feed(&mut model, &world);
    assert!(message_ids(&search(&model, "bob", "message")).is_empty());
    assert_eq!(message_ids(&search(&model, "alice", "message")).len(), 2);
    assert_eq!(model.dump().unwrap(), model_of(&world).dump().unwrap());
}

#[test]
fn a_rebuild_merges_into_segments_of_bounded_size_and_answers_alike() {
    let world = busy_world();
    let reference = model_of(&world);
    let model = SearchProjector::temporary(SearchOptions {
        segment_docs_max: 30,
        ..SearchOptions::rebuild()
    })
    .unwrap();
    let mut model = model;
    // Batches of 10 events, each committed: a small segment each.
    for chunk in world.envelopes().chunks(10) {
        model.apply(chunk).unwrap();
        model.commit().unwrap();
    }
    let before = model.segment_count();
    model.merge_segments().unwrap();
    let after = model.segment_count();
    assert!(after > 1, "merged into one segment despite the bound");
    assert!(
        after < before,
        "{before} segments were not merged ({after} after)"
    );
    assert_eq!(model.dump().unwrap(), reference.dump().unwrap());
    for q in ["roadmap", "update", "edited roadmap", "budget 3"] {
        let mut params = json!({"q": q, "limit": 200});
        assert_eq!(
            message_ids(&ask(&model, "bob", params.clone()).unwrap()),
            message_ids(&ask(&reference, "bob", params.take()).unwrap()),
            "q={q:?}"
        );
    }
}

#[test]
fn a_small_rebuild_merges_into_one_segment_and_keeps_its_checkpoint() {
    let data = TempDataDir::new();
    let world = busy_world();
    let expected = model_of(&world).dump().unwrap();
    {
        let mut model = SearchProjector::open_with(data.path(), SearchOptions::rebuild()).unwrap();
        // Small batches, each committed: many segments, none merged meanwhile.
        for chunk in world.envelopes().chunks(40) {
            model.apply(chunk).unwrap();
            model.commit().unwrap();
        }
        assert!(model.segment_count() > 1);
        model.merge_segments().unwrap();
        assert_eq!(model.segment_count(), 1);
        assert_eq!(model.committed_position(), world.head());
        assert_eq!(model.dump().unwrap(), expected);
    }
    let model = SearchProjector::open(data.path()).unwrap();
    assert_eq!(model.position(), world.head());
    assert_eq!(model.segment_count(), 1);
    assert_eq!(model.dump().unwrap(), expected);
}

/// An index as layout 1 left it: the room a term only (not a fast column), the payload's
/// format 1, messages applied up to position 5.
fn layout_1_index(path: &std::path::Path) {
    use tantivy::schema::{NumericOptions, Schema, STORED, STRING, TEXT};
    std::fs::create_dir_all(path).unwrap();
    let mut builder = Schema::builder();
    builder.add_text_field("doc_type", STRING);
    builder.add_text_field("message_id", STRING | STORED);
    builder.add_text_field("room_id", STRING | STORED);
    builder.add_text_field("author", STORED);
    builder.add_i64_field("sent_at", NumericOptions::default().set_fast().set_stored());
    builder.add_u64_field(
        "position",
        NumericOptions::default().set_fast().set_stored(),
    );
    builder.add_text_field("body", TEXT | STORED);
    builder.add_text_field("record_key", STRING);
    builder.add_text_field("record", STORED);
    let index = tantivy::Index::create_in_dir(path, builder.build()).unwrap();
    let mut writer: tantivy::IndexWriter = index.writer(15_000_000).unwrap();
    let mut commit = writer.prepare_commit().unwrap();
    commit.set_payload(r#"{"format":1,"position":5}"#);
    commit.commit().unwrap();
}

#[test]
fn an_index_of_the_earlier_layout_is_refused_by_path_and_rebuilt_when_served() {
    let data = TempDataDir::new();
    let path = projections::store_path(data.path(), search::NAME);
    layout_1_index(&path);
    match SearchProjector::open_path(&path, SearchOptions::live()) {
        Err(projections::ProjectionError::Layout {
            found, expected, ..
        }) => assert_eq!((found, expected), (1, 2)),
        other => panic!("expected a layout error, got {other:?}"),
    }
    // Served, it starts afresh from position 0 and finds what it applies.
    let mut world = World::new();
    let room = world.group("alice", "Planning", &["bob"]);
    let message = world.say("alice", room, "layout upgrade");
    let mut model = SearchProjector::open(data.path()).unwrap();
    assert_eq!(model.position(), 0);
    feed(&mut model, &world);
    assert!(finds(&search(&model, "bob", "upgrade"), message));
}

#[test]
fn a_second_writer_on_the_same_index_is_refused() {
    let data = TempDataDir::new();
    let _first = SearchProjector::open(data.path()).unwrap();
    assert!(SearchProjector::open(data.path()).is_err());
}

/// A model that commits only when told to (or when forced by its memory bound).
fn never_committing() -> SearchProjector {
    SearchProjector::temporary(SearchOptions {
        commit_interval: Duration::from_secs(3600),
        bulk_commit_interval: Duration::from_secs(3600),
        ..SearchOptions::live()
    })
    .unwrap()
}

#[test]
fn queries_with_min_position_find_what_is_applied_without_a_commit() {
    let mut world = World::new();
    let room = world.group("alice", "Planning", &["bob"]);
    let message = world.say("alice", room, "quarterly numbers");
    let mut model = never_committing();
    feed(&mut model, &world);
    let commits = model.commit_count();
    let answers: Vec<serde_json::Value> = std::thread::scope(|scope| {
        let readers: Vec<_> = (0..16)
            .map(|_| scope.spawn(|| ask(&model, "bob", json!({"q": "quarterly"})).unwrap()))
            .collect();
        readers
            .into_iter()
            .map(|reader| reader.join().unwrap())
            .collect()
    });
    // Every read saw the message, and none of them waited for or made a commit.
    for answer in &answers {
        assert!(finds(answer, message));
    }
    assert_eq!(model.commit_count(), commits);
    assert!(model.committed_position() < world.head());
}

/// Every page of every query of `queries` as `caller`, following the cursors to the end.
fn every_page(
    model: &SearchProjector,
    caller: &str,
    queries: &[&str],
    limit: usize,
) -> Vec<serde_json::Value> {
    let mut pages = Vec::new();
    for q in queries {
        let mut cursor = serde_json::Value::Null;
        loop {
            let mut params = json!({"q": q, "limit": limit});
            if !cursor.is_null() {
                params["cursor"] = cursor.clone();
            }
            let page = ask(model, caller, params).unwrap();
            cursor = page["next_cursor"].clone();
            pages.push(page);
            if cursor.is_null() {
                break;
            }
        }
    }
    pages
}

/// What is applied but not committed is searched in memory beside the committed index
/// (crate::recent): the answers are the same once it is committed — new messages, edits and
/// deletions of committed messages and of uncommitted ones, short and long prefixes, pages.
#[test]
fn answers_are_the_same_before_and_after_a_commit() {
    let mut world = World::new();
    let planning = world.group("alice", "Planning", &["bob"]);
    let (direct, _) = world.direct("alice", "bob", "roadmap draft attached");
    let elsewhere = world.group("carol", "Elsewhere", &["dave"]);
    let words = ["roadmap", "review", "invoice", "meeting", "road", "rollout"];
    let mut committed = Vec::new();
    // Ten seconds apart: edits and deletions stay within their hour (R-M3, R-M4).
    for index in 0..40 {
        world.advance(MINUTE / 6);
        let room = [planning, direct, elsewhere][index % 3];
        let author = if room == elsewhere { "carol" } else { "alice" };
        let body = format!(
            "{} {} number {index}",
            words[index % 6],
            words[(index + 1) % 6]
        );
        committed.push((room, author, world.say(author, room, &body)));
    }
    let mut model = never_committing();
    feed(&mut model, &world);
    model.commit().unwrap();
    assert_eq!(model.committed_position(), world.head());

    // Then, uncommitted: new messages, edits and deletions of committed ones and of new ones.
    for index in 0..30 {
        world.advance(MINUTE / 6);
        let room = [planning, direct, elsewhere][index % 3];
        let author = if room == elsewhere { "carol" } else { "alice" };
        let body = format!(
            "{} later {index} {}",
            words[(index + 2) % 6],
            words[index % 6]
        );
        let message = world.say(author, room, &body);
        match index % 5 {
            0 => world.edit(author, room, message, "rollout moved to friday"),
            1 => world.delete(author, room, message),
            _ => {}
        }
    }
    for (index, (room, author, message)) in committed.iter().enumerate() {
        match index % 4 {
            0 => world.edit(
                author,
                *room,
                *message,
                "invoice corrected, roadmap unchanged",
            ),
            1 => world.delete(author, *room, *message),
            _ => {}
        }
    }
    feed(&mut model, &world);
    assert!(model.committed_position() < world.head());

    let queries = [
        "ro",
        "road",
        "roadmap",
        "r",
        "invoice roadmap",
        "later",
        "number",
        "fri",
    ];
    let before: Vec<_> = ["bob", "carol"]
        .iter()
        .flat_map(|caller| every_page(&model, caller, &queries, 3))
        .collect();
    model.commit().unwrap();
    assert_eq!(model.committed_position(), world.head());
    let after: Vec<_> = ["bob", "carol"]
        .iter()
        .flat_map(|caller| every_page(&model, caller, &queries, 3))
        .collect();
    assert_eq!(before, after);
    // Not vacuous: the answers hold messages of both parts, and edits and deletions showed.
    let found: usize = after
        .iter()
        .map(|page| page["messages"].as_array().unwrap().len())
        .sum();
    assert!(found > 100, "only {found} messages found");
    let all = every_page(&model, "bob", &["invoice"], 200);
    assert!(all[0]["messages"]
        .as_array()
        .unwrap()
        .iter()
        .any(|message| message["snippet"].as_str().unwrap().contains("corrected")));
}

#[test]
fn the_committer_makes_applied_messages_searchable_without_a_query() {
    let mut world = World::new();
    let room = world.group("alice", "Planning", &["bob"]);
    world.say("alice", room, "near real time");
    let mut model = SearchProjector::temporary(SearchOptions {
        commit_interval: Duration::from_millis(10),
        ..SearchOptions::live()
    })
    .unwrap();
    feed(&mut model, &world);
    // Generous: the committer ticks every 25 ms; this only bounds a hang.
    let deadline = Instant::now() + Duration::from_secs(30);
    while model.committed_position() < world.head() {
        assert!(Instant::now() < deadline, "the committer never committed");
        std::thread::sleep(Duration::from_millis(10));
    }
    let request = crate::support::search_request(json!({
        "op": "search", "caller": "bob", "q": "real",
    }))
    .unwrap();
    let answer = model
        .query(&request, domain::Timestamp::from_millis(0))
        .unwrap();
    assert_eq!(message_ids(&answer).len(), 1);
}

#[test]
fn a_large_batch_is_committed_at_the_bulk_cadence() {
    let mut world = World::new();
    let room = world.group("alice", "Planning", &["bob"]);
    for index in 0..search::BULK_BATCH_EVENTS_MIN {
        world.say("alice", room, &format!("backlog item {index}"));
    }
    let mut model = SearchProjector::temporary(SearchOptions {
        commit_interval: Duration::ZERO,
        bulk_commit_interval: Duration::from_secs(3_600),
        ..SearchOptions::live()
    })
    .unwrap();
    // Catching up: one large batch is applied but not committed yet...
    model.apply(&world.envelopes()).unwrap();
    assert_eq!(model.position(), world.head());
    assert_eq!(model.committed_position(), 0);
    // ...and after the first small batch, the committer thread commits everything at the live
    // cadence.
    let last = world.say("bob", room, "caught up");
    let head = model.position();
    model.apply(&world.envelopes_after(head)).unwrap();
    // Generous: the committer ticks every 25 ms; this only bounds a hang.
    let deadline = Instant::now() + Duration::from_secs(30);
    while model.committed_position() < world.head() {
        assert!(Instant::now() < deadline, "the committer never committed");
        std::thread::sleep(Duration::from_millis(10));
    }
    assert_eq!(model.committed_position(), world.head());
    let request = crate::support::search_request(json!({
        "op": "search", "caller": "alice", "q": "caught",
    }))
    .unwrap();
    let answer = model
        .query(&request, domain::Timestamp::from_millis(0))
        .unwrap();
    assert!(finds(&answer, last));
}

/// A deterministic world with every kind of event search cares about.
fn busy_world() -> World {
    let mut world = World::new();
    world.register("erin", "Erin Example");
    let team = world.group("alice", "Team room", &["bob", "carol"]);
    let side = world.group("bob", "Side project", &["dave"]);
    let interview = world.interview("int-1", "Interview for designer");
    let mut sent = Vec::new();
    for index in 0..60u32 {
        world.advance(MINUTE / 4);
        let (author, room) = match index % 4 {
            0 => ("alice", team),
            1 => ("bob", side),
            2 => ("alice", interview),
            _ => ("carol", team),
        };
        let body = format!("update {index} about the roadmap and budget {}", index % 7);
        let message = world.say(author, room, &body);
        sent.push((author, room, message));
        match index % 10 {
            3 => {
                let (author, room, message) = sent[sent.len() - 2];
                world.edit(author, room, message, &format!("edited {index} roadmap"));
            }
            5 => {
                let (author, room, message) = sent[sent.len() - 1];
                world.delete(author, room, message);
            }
            7 => world.add("alice", team, if index < 30 { "dave" } else { "erin" }),
            9 if index == 19 => world.leave("dave", team),
            9 => world.rename("bob", side, &format!("Side project {index}")),
            _ => {}
        }
        if index == 40 {
            world.register("carol", "Caroline Cook");
            world.direct("erin", "alice", "hello from erin");
            world.contract("c-1", "Design contract", Some(interview));
        }
    }
    world
}

/// Every user's answers to a few queries, for comparing two models.
fn answers(model: &SearchProjector) -> BTreeMap<String, serde_json::Value> {
    let mut all = BTreeMap::new();
    for caller in ["alice", "bob", "carol", "dave", "erin"] {
        for q in [
            "roadmap", "budget 3", "edit", "update 1", "side", "cook", "design",
        ] {
            all.insert(format!("{caller}/{q}"), search(model, caller, q));
        }
    }
    all
}

#[test]
fn a_model_built_live_equals_one_rebuilt_from_the_log() {
    let world = busy_world();
    let envelopes: Vec<EventEnvelope> = world.envelopes();
    let mut live = model();
    // A batch that would skip events is refused.
    assert!(live.apply(&envelopes[1..2]).is_err());
    let mut index = 0;
    let mut step = 0;
    while index < envelopes.len() {
        step += 1;
        let end = (index + 1 + step % 6).min(envelopes.len());
        live.apply(&envelopes[index..end]).unwrap();
        if step % 5 == 0 {
            // Applying again (the same batch, or one overlapping the checkpoint) changes nothing.
            let once = live.digest().unwrap();
            live.apply(&envelopes[index..end]).unwrap();
            live.apply(&envelopes[index.saturating_sub(3)..end])
                .unwrap();
            assert_eq!(live.digest().unwrap(), once, "applied twice");
        }
        index = end;
    }
    let mut rebuilt = SearchProjector::temporary(SearchOptions::rebuild()).unwrap();
    projections::rebuild(&mut rebuilt, world.envelopes()).unwrap();
    assert_eq!(live.position(), world.head());
    assert_eq!(rebuilt.position(), world.head());
    assert_eq!(live.dump().unwrap(), rebuilt.dump().unwrap());
    assert_eq!(answers(&live), answers(&rebuilt));
    // The world did produce what the comparison is about.
    let dump = rebuilt.dump().unwrap();
    assert!(
        dump.iter()
            .filter(|(key, _)| key.starts_with(b"m/"))
            .count()
            > 40
    );
    assert!(!message_ids(&search(&rebuilt, "erin", "roadmap")).is_empty());
}
