//! Who finds what (R-Q1, R-R4, R-R6): members find their rooms' messages, from before they
//! joined too; a non-member finds nothing of a room, and naming it answers `not_found`; a
//! member who left no longer finds it. Rooms are found by their names and by the display names
//! of their other members (renames included).

use serde_json::json;

use crate::support::{ask, feed, finds, message_ids, model, model_of, room_ids, search, World};

#[test]
fn a_non_member_never_sees_another_room() {
    let mut world = World::new();
    let secret = world.group("alice", "Secret plans", &["bob"]);
    let hidden = world.say("alice", secret, "the secret roadmap");
    let open = world.group("carol", "Open plans", &["dave"]);
    let visible = world.say("carol", open, "the open roadmap");
    let model = model_of(&world);

    let carol = search(&model, "carol", "roadmap");
    assert_eq!(message_ids(&carol), [visible.to_string()]);
    assert!(!finds(&carol, hidden));
    assert!(search(&model, "carol", "secret")["rooms"]
        .as_array()
        .unwrap()
        .is_empty());
    // Naming a room one is not in answers exactly like a room that does not exist.
    let named = ask(
        &model,
        "carol",
        json!({"q": "roadmap", "room_id": secret.to_string()}),
    );
    assert_eq!(named.unwrap_err().code(), "not_found");
    let unknown = ask(
        &model,
        "carol",
        json!({"q": "roadmap", "room_id": "0192f0c1-7a3e-7cc4-9a51-5c2d7e0f4b11"}),
    );
    assert_eq!(unknown.unwrap_err().code(), "not_found");
    // A user in no room at all finds nothing.
    world.register("erin", "Erin Example");
    let mut model = model;
    feed(&mut model, &world);
    assert!(message_ids(&search(&model, "erin", "roadmap")).is_empty());
}

#[test]
fn the_room_filter_narrows_to_one_room() {
    let mut world = World::new();
    let first = world.group("alice", "First", &["bob"]);
    let second = world.group("alice", "Second", &["bob"]);
    let in_first = world.say("alice", first, "invoice sent");
    let in_second = world.say("alice", second, "invoice paid");
    let model = model_of(&world);

    let all = search(&model, "bob", "invoice");
    assert_eq!(
        message_ids(&all),
        [in_second.to_string(), in_first.to_string()]
    );
    let only = ask(
        &model,
        "bob",
        json!({"q": "invoice", "room_id": first.to_string()}),
    )
    .unwrap();
    assert_eq!(message_ids(&only), [in_first.to_string()]);
    // The room list is narrowed too.
    let by_name = ask(
        &model,
        "bob",
        json!({"q": "second", "room_id": first.to_string()}),
    )
    .unwrap();
    assert!(room_ids(&by_name).is_empty());
}

#[test]
fn a_new_member_finds_the_history_from_before_they_joined() {
    let mut world = World::new();
    let room = world.group("alice", "Launch", &["bob"]);
    let early = world.say("alice", room, "launch checklist draft");
    let mut model = model_of(&world);
    assert!(message_ids(&search(&model, "carol", "checklist")).is_empty());

    world.add("bob", room, "carol");
    let later = world.say("carol", room, "checklist reviewed");
    feed(&mut model, &world);
    assert_eq!(
        message_ids(&search(&model, "carol", "checklist")),
        [later.to_string(), early.to_string()]
    );
    assert_eq!(
        room_ids(&search(&model, "carol", "launch")),
        [room.to_string()]
    );
}

#[test]
fn a_member_who_left_no_longer_finds_the_room() {
    let mut world = World::new();
    let room = world.group("alice", "Offsite", &["bob", "carol"]);
    let message = world.say("alice", room, "offsite agenda");
    let mut model = model_of(&world);
    assert!(finds(&search(&model, "carol", "agenda"), message));

    world.leave("carol", room);
    feed(&mut model, &world);
    let after = search(&model, "carol", "offsite");
    assert!(message_ids(&after).is_empty());
    assert!(room_ids(&after).is_empty());
    let named = ask(
        &model,
        "carol",
        json!({"q": "agenda", "room_id": room.to_string()}),
    );
    assert_eq!(named.unwrap_err().code(), "not_found");
    // The others still do.
    assert!(finds(&search(&model, "bob", "agenda"), message));
}

#[test]
fn rooms_are_found_by_name_and_by_other_members_display_names() {
    let mut world = World::new();
    let group = world.group("alice", "Website redesign", &["bob", "carol"]);
    let (direct, _) = world.direct("alice", "dave", "hi dave");
    let interview = world.interview("int-7", "Interview for Rust developer");
    world.advance(1_000);
    let model = model_of(&world);

    // By the room's own name.
    let answer = search(&model, "alice", "redes");
    assert_eq!(room_ids(&answer), [group.to_string()]);
    assert_eq!(answer["rooms"][0]["name"], "Website redesign");
    assert_eq!(answer["rooms"][0]["kind"], "group");
    assert_eq!(
        room_ids(&search(&model, "bob", "rust dev")),
        [interview.to_string()]
    );
    // By another member's display name: a direct room is named after the other person.
    let answer = search(&model, "alice", "dive");
    assert_eq!(room_ids(&answer), [direct.to_string()]);
    assert_eq!(answer["rooms"][0]["name"], "Dave Diver");
    assert_eq!(answer["rooms"][0]["kind"], "direct");
    let answer = search(&model, "dave", "archer");
    assert_eq!(room_ids(&answer), [direct.to_string()]);
    assert_eq!(answer["rooms"][0]["name"], "Alice Archer");
    // Carol is in the group: her name finds it for alice, newest activity first.
    assert_eq!(
        room_ids(&search(&model, "alice", "carol")),
        [group.to_string()]
    );
    // One's own name is not how one finds a room.
    assert!(room_ids(&search(&model, "dave", "dave")).is_empty());
    // Every word must match: a room name word and a member's name together.
    assert_eq!(
        room_ids(&search(&model, "alice", "website cook")),
        [group.to_string()]
    );
    assert!(room_ids(&search(&model, "alice", "website diver")).is_empty());
}

#[test]
fn renamed_rooms_and_people_are_found_by_their_new_names() {
    let mut world = World::new();
    let group = world.group("alice", "Website redesign", &["bob"]);
    let (direct, _) = world.direct("carol", "alice", "hello alice");
    let mut model = model_of(&world);
    assert_eq!(
        room_ids(&search(&model, "carol", "archer")),
        [direct.to_string()]
    );

    world.rename("bob", group, "Brand refresh");
    world.register("alice", "Alicia Keys");
    feed(&mut model, &world);
    assert!(room_ids(&search(&model, "bob", "website")).is_empty());
    assert_eq!(
        room_ids(&search(&model, "bob", "brand")),
        [group.to_string()]
    );
    assert!(room_ids(&search(&model, "carol", "archer")).is_empty());
    let answer = search(&model, "carol", "keys");
    assert_eq!(room_ids(&answer), [direct.to_string()]);
    assert_eq!(answer["rooms"][0]["name"], "Alicia Keys");
}

#[test]
fn a_contract_room_is_found_by_its_title() {
    let mut world = World::new();
    let interview = world.interview("int-9", "Interview for logo design");
    let before = world.say("alice", interview, "portfolio link please");
    let room = world.contract("c-1", "Logo contract", Some(interview));
    assert_eq!(room, interview);
    let own = world.contract("c-2", "Maintenance retainer", None);
    let model = model_of(&world);

    let answer = search(&model, "bob", "logo");
    assert_eq!(room_ids(&answer), [interview.to_string()]);
    assert_eq!(answer["rooms"][0]["name"], "Logo contract");
    assert_eq!(answer["rooms"][0]["kind"], "contract");
    assert!(finds(&search(&model, "bob", "portfolio"), before));
    assert_eq!(
        room_ids(&search(&model, "alice", "retainer")),
        [own.to_string()]
    );
}

#[test]
fn a_fresh_model_answers_with_nothing() {
    let model = model();
    let answer = search(&model, "alice", "anything");
    assert_eq!(answer["rooms"], json!([]));
    assert_eq!(answer["messages"], json!([]));
    assert!(answer["next_cursor"].is_null());
}

/// R-Q1 as one scenario: names (the room's, the other members' display names) and keywords,
/// over every room the caller is a member of, history from before they joined included, never
/// another room; deleted messages not found, edits by their latest body only; newest first,
/// each message with its room, the matched words highlighted.
#[test]
fn r_q1_a_member_finds_names_and_keywords_of_their_rooms_only() {
    let mut world = World::new();
    world.register("alice", "Alice Lighthouse");
    world.register("bob", "Bob Builder");
    world.register("carol", "Carol Keeper");
    world.register("erin", "Erin Elsewhere");
    let ours = world.group("alice", "Harbour crew", &["bob"]);
    let before = world.say("alice", ours, "the harbour schedule is ready");
    let deleted = world.say("alice", ours, "harbour secret, to be deleted");
    world.delete("alice", ours, deleted);
    let edited = world.say("bob", ours, "some typo");
    world.edit("bob", ours, edited, "harbour schedule fixed");
    let theirs = world.group("dave", "Harbour elsewhere", &["erin"]);
    let elsewhere = world.say("dave", theirs, "harbour schedule elsewhere");
    // Carol joins after the messages were sent.
    world.add("alice", ours, "carol");
    let model = model_of(&world);

    let answer = search(&model, "carol", "harbour");
    // Newest first, only her room's, neither the deleted one nor another room's.
    assert_eq!(
        message_ids(&answer),
        [edited.to_string(), before.to_string()]
    );
    assert!(!finds(&answer, elsewhere));
    assert_eq!(room_ids(&answer), [ours.to_string()]);
    for message in answer["messages"].as_array().unwrap() {
        assert_eq!(message["room_id"], ours.to_string());
        assert!(
            message["snippet"].as_str().unwrap().contains("<mark>"),
            "{message}"
        );
    }
    // The edit replaced the body: the old one is not found.
    assert!(!finds(&search(&model, "carol", "typo"), edited));
    // Rooms by the other members' display names.
    assert_eq!(
        room_ids(&search(&model, "carol", "lighthouse")),
        [ours.to_string()]
    );
    assert_eq!(
        room_ids(&search(&model, "carol", "builder")),
        [ours.to_string()]
    );
    // Dave's room is found by nobody outside it, by name or keyword.
    assert!(room_ids(&search(&model, "alice", "elsewhere")).is_empty());
    assert!(message_ids(&search(&model, "alice", "elsewhere")).is_empty());
}
