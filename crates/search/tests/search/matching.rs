//! Matching (R-Q1): word prefixes, every word (AND), any case; snippets with `<mark>` and the
//! rest escaped; newest first; pagination with an opaque cursor; the parameters' bounds.

use serde_json::json;

use crate::support::{ask, finds, message_ids, model_of, search, World, MINUTE};

#[test]
fn a_word_prefix_finds_the_word() {
    let mut world = World::new();
    let room = world.group("alice", "Planning", &["bob"]);
    let roadmap = world.say("alice", room, "Here is the Q3 roadmap for review");
    let file = world.say("bob", room, "see foo.png attached");
    let other = world.say("bob", room, "nothing to see");
    let model = model_of(&world);

    let answer = search(&model, "alice", "roadm");
    assert_eq!(message_ids(&answer), [roadmap.to_string()]);
    let answer = search(&model, "alice", "foo");
    assert_eq!(message_ids(&answer), [file.to_string()]);
    let answer = search(&model, "alice", "png");
    assert_eq!(message_ids(&answer), [file.to_string()]);
    // A prefix of a word, not a substring in its middle.
    assert!(message_ids(&search(&model, "alice", "oadmap")).is_empty());
    assert!(message_ids(&search(&model, "alice", "roadmaps")).is_empty());
    assert!(!finds(&search(&model, "alice", "roadm"), other));
}

#[test]
fn short_and_long_prefixes_match_alike() {
    let mut world = World::new();
    let room = world.group("alice", "Planning", &["bob"]);
    let accented = world.say("alice", room, "Ärger über Öl");
    let short = world.say("alice", room, "a b ab");
    let model = model_of(&world);

    // Up to three characters are indexed prefixes; four and more a range of whole words.
    for (q, expected) in [
        ("ä", vec![accented]),
        ("är", vec![accented]),
        ("ärg", vec![accented]),
        ("ärge", vec![accented]),
        ("ÄRGER", vec![accented]),
        ("über öl", vec![accented]),
        ("ö", vec![accented]),
        ("a", vec![short]),
        ("ab", vec![short]),
        ("b", vec![short]),
        ("abc", vec![]),
        ("ärgern", vec![]),
    ] {
        let expected: Vec<String> = expected.iter().map(ToString::to_string).collect();
        assert_eq!(
            message_ids(&search(&model, "bob", q)),
            expected,
            "query {q:?}"
        );
    }
}

#[test]
fn every_query_word_must_match() {
    let mut world = World::new();
    let room = world.group("alice", "Planning", &["bob"]);
    let both = world.say("alice", room, "budget review on friday");
    let one = world.say("alice", room, "budget is fine");
    let model = model_of(&world);

    assert_eq!(
        message_ids(&search(&model, "bob", "budget rev")),
        [both.to_string()]
    );
    let budget = message_ids(&search(&model, "bob", "budg"));
    assert_eq!(budget, [one.to_string(), both.to_string()]);
    assert!(message_ids(&search(&model, "bob", "budget monday")).is_empty());
}

#[test]
fn matching_ignores_case_and_punctuation() {
    let mut world = World::new();
    let room = world.group("alice", "Planning", &["bob"]);
    let loud = world.say("alice", room, "DEPLOY the Über-Service now!");
    let model = model_of(&world);

    for q in [
        "deploy",
        "Deploy",
        "DEPL",
        "über",
        "ÜBER-serv",
        "service?",
        "  deploy,,now ",
    ] {
        assert_eq!(
            message_ids(&search(&model, "bob", q)),
            [loud.to_string()],
            "query {q:?}"
        );
    }
}

#[test]
fn snippets_mark_the_matched_words_and_escape_the_rest() {
    let mut world = World::new();
    let room = world.group("alice", "Planning", &["bob"]);
    world.say(
        "alice",
        room,
        "<script>alert('x')</script> & the Roadmap \"draft\"",
    );
    let model = model_of(&world);

    let answer = search(&model, "bob", "roadm scri");
    let snippet = answer["messages"][0]["snippet"].as_str().unwrap();
    assert_eq!(
        snippet,
        "&lt;<mark>script</mark>&gt;alert(&#39;x&#39;)&lt;/<mark>script</mark>&gt; &amp; the \
         <mark>Roadmap</mark> &quot;draft&quot;"
    );
    let message = &answer["messages"][0];
    assert_eq!(message["room_id"], room.to_string());
    assert_eq!(message["author"], "alice");
    assert!(message["sent_at"].as_str().unwrap().ends_with('Z'));
}

#[test]
fn long_bodies_are_cut_around_the_first_match() {
    let mut world = World::new();
    let room = world.group("alice", "Planning", &["bob"]);
    let body = format!(
        "{} the needle is here {}",
        "lorem ipsum ".repeat(100),
        "dolor sit ".repeat(100)
    );
    world.say("alice", room, &body);
    let model = model_of(&world);

    let answer = search(&model, "bob", "needle");
    let snippet = answer["messages"][0]["snippet"].as_str().unwrap();
    assert!(
        snippet.starts_with('…') && snippet.ends_with('…'),
        "{snippet}"
    );
    assert!(snippet.contains("<mark>needle</mark>"), "{snippet}");
    assert!(snippet.chars().count() <= search::text::SNIPPET_CHARS_MAX + 20);
}

#[test]
fn results_are_newest_first_and_page_with_a_cursor() {
    let mut world = World::new();
    let room = world.group("alice", "Planning", &["bob"]);
    let mut sent = Vec::new();
    for index in 0..25 {
        world.advance(MINUTE);
        sent.push(world.say("alice", room, &format!("status update {index}")));
    }
    let model = model_of(&world);
    let newest_first: Vec<String> = sent.iter().rev().map(ToString::to_string).collect();

    // The default page is 20 on search.
    let first = search(&model, "bob", "status");
    assert_eq!(message_ids(&first), newest_first[..20]);
    let cursor = first["next_cursor"].as_str().unwrap().to_owned();
    let second = ask(&model, "bob", json!({"q": "status", "cursor": cursor})).unwrap();
    assert_eq!(message_ids(&second), newest_first[20..]);
    assert!(second["next_cursor"].is_null());
    // Rooms are listed on the first page only.
    assert!(second["rooms"].as_array().unwrap().is_empty());

    // Smaller pages walk the same order without gaps or repeats.
    let mut walked = Vec::new();
    let mut cursor = None;
    loop {
        let mut params = json!({"q": "update", "limit": 7});
        if let Some(cursor) = &cursor {
            params["cursor"] = json!(cursor);
        }
        let page = ask(&model, "bob", params).unwrap();
        walked.extend(message_ids(&page));
        match page["next_cursor"].as_str() {
            Some(next) => cursor = Some(next.to_owned()),
            None => break,
        }
    }
    assert_eq!(walked, newest_first);
}

#[test]
fn messages_of_the_same_millisecond_page_in_log_order() {
    let mut world = World::new();
    let room = world.group("alice", "Planning", &["bob"]);
    world.ok(
        "alice",
        domain::Action::SetOutOfOffice {
            message: "away on holiday".into(),
            from: domain::Timestamp::from_millis(crate::support::T0),
            until: domain::Timestamp::from_millis(crate::support::T0 + 60 * MINUTE),
        },
    );
    // Bob's message and alice's automatic reply share one sent_at.
    let records = world.ok(
        "bob",
        domain::Action::SendMessage {
            target: domain::MessageTarget::Room(room),
            message_id: None,
            body: "holiday plans?".into(),
            reply_to: None,
            attachments: vec![],
        },
    );
    let reply = records
        .iter()
        .find_map(|record| match &record.event {
            domain::Event::AutoReplySent { message_id, .. } => Some(*message_id),
            _ => None,
        })
        .expect("an automatic reply");
    let question = crate::support::sent(&records).1;
    let model = model_of(&world);

    let all = message_ids(&search(&model, "bob", "holiday"));
    assert_eq!(all, [reply.to_string(), question.to_string()]);
    let first = ask(&model, "bob", json!({"q": "holiday", "limit": 1})).unwrap();
    assert_eq!(message_ids(&first), [reply.to_string()]);
    let cursor = first["next_cursor"].as_str().unwrap();
    let second = ask(
        &model,
        "bob",
        json!({"q": "holiday", "limit": 1, "cursor": cursor}),
    )
    .unwrap();
    assert_eq!(message_ids(&second), [question.to_string()]);
    assert!(second["next_cursor"].is_null());
}

#[test]
fn parameters_are_checked() {
    let mut world = World::new();
    let room = world.group("alice", "Planning", &["bob"]);
    world.say("alice", room, "hello");
    let model = model_of(&world);

    let invalid = |params: serde_json::Value| {
        let error = ask(&model, "alice", params).unwrap_err();
        assert_eq!(error.code(), "invalid_command", "{error}");
    };
    invalid(json!({}));
    invalid(json!({"q": 7}));
    invalid(json!({"q": "x".repeat(search::QUERY_BYTES_MAX + 1)}));
    invalid(json!({"q": "a b c d e f g h i j k l m n o p q"}));
    invalid(json!({"q": "hello", "cursor": "zz"}));
    invalid(json!({"q": "hello", "cursor": "00"}));
    invalid(json!({"q": "hello", "room_id": "not-a-uuid"}));
    invalid(json!({"q": "hello", "limit": 0}));
    // A query without a word finds nothing, and is not an error.
    let empty = search(&model, "alice", " ?! ");
    assert!(empty["messages"].as_array().unwrap().is_empty());
    assert!(empty["rooms"].as_array().unwrap().is_empty());
    // A caller is required.
    let request = crate::support::search_request(json!({"op": "search", "q": "hello"}));
    let error =
        projections::Projector::query(&model, &request.unwrap(), domain::Timestamp::from_millis(0))
            .unwrap_err();
    assert_eq!(error.code(), "invalid_command");
    // Other operations are unknown.
    let error =
        crate::support::search_request(json!({"op": "list", "caller": "alice"})).unwrap_err();
    assert_eq!(error.code(), "invalid_command");
}
