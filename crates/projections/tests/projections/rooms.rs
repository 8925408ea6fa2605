//! The rooms read model, applied straight from a log: views (R-S1..R-S3), unread counts (R-S4),
//! names, members, presence (R-A1), away (R-A2), contracts (R-C2), membership (R-R4, R-R6).

use domain::{Action, ContractId, RoomId, Timestamp, UserKind};
use projections::{Projector, QueryError, Rooms};
use serde_json::{json, Value};
use uuid::Uuid;

use crate::support::{answer, ask, rebuilt, user, World, HOUR, MINUTE};

fn rooms(world: &World) -> Rooms {
    rebuilt(Rooms::temporary().unwrap(), &world.log)
}

/// The caller's list in `view`, all pages.
fn list(model: &Rooms, caller: &str, view: &str, now: Timestamp) -> Vec<Value> {
    let data = answer(
        model,
        json!({"op": "list", "caller": caller, "view": view, "limit": 200}),
        now,
    );
    assert_eq!(data["next_cursor"], Value::Null);
    data["rooms"].as_array().unwrap().clone()
}

fn ids(rooms: &[Value]) -> Vec<String> {
    rooms
        .iter()
        .map(|room| room["room_id"].as_str().unwrap().to_owned())
        .collect()
}

fn id(room: RoomId) -> String {
    room.to_string()
}

fn get(model: &Rooms, caller: &str, room: RoomId, now: Timestamp) -> Result<Value, QueryError> {
    ask(
        model,
        json!({"op": "get", "caller": caller, "room_id": room.to_string()}),
        now,
    )
}

#[test]
fn lists_are_newest_first_with_each_users_views_and_unread_counts() {
    let mut world = World::new();
    let (direct, first) = world.direct("alice", "bob", "hi bob");
    world.advance(MINUTE);
    let group = world.group("alice", "Team", &["bob", "carol"]);
    world.advance(MINUTE);
    world.say("carol", group, "hello team");
    world.advance(MINUTE);
    let contract = world.contract("c-1");
    world.advance(MINUTE);
    let interview = world.interview("i-1");
    let now = world.now();

    let model = rooms(&world);
    let inbox = list(&model, "bob", "inbox", now);
    assert_eq!(
        ids(&inbox),
        [id(interview), id(contract), id(group), id(direct)]
    );
    let kinds: Vec<&str> = inbox.iter().map(|r| r["kind"].as_str().unwrap()).collect();
    assert_eq!(kinds, ["interview", "contract", "group", "direct"]);
    let unread: Vec<u64> = inbox
        .iter()
        .map(|r| r["unread"].as_u64().unwrap())
        .collect();
    assert_eq!(unread, [0, 0, 1, 1]);
    assert_eq!(
        ids(&list(&model, "bob", "unread", now)),
        [id(group), id(direct)]
    );
    // Direct rooms are named after the other person; others by their own name.
    assert_eq!(inbox[3]["name"], "ALICE");
    assert_eq!(inbox[2]["name"], "Team");
    assert_eq!(get(&model, "alice", direct, now).unwrap()["name"], "BOB");
    assert_eq!(
        inbox[1]["contract"],
        json!({"contract_id": "c-1", "active": true})
    );
    assert_eq!(inbox[2]["contract"], Value::Null);
    let last = &inbox[3]["last_message"];
    assert_eq!(last["message_id"], first.to_string());
    assert_eq!(last["author"], "alice");
    assert_eq!(last["preview"], "hi bob");
    assert_eq!(last["deleted"], false);
    let members: Vec<&str> = inbox[2]["members"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["display_name"].as_str().unwrap())
        .collect();
    assert_eq!(members, ["ALICE", "BOB", "CAROL"]);
    // The exact shape of protocol.md §3.
    let mut keys: Vec<&str> = inbox[2]
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    keys.sort_unstable();
    assert_eq!(
        keys,
        [
            "archived",
            "contract",
            "favorite",
            "hidden",
            "kind",
            "last_activity_at",
            "last_message",
            "members",
            "name",
            "room_id",
            "unread"
        ]
    );
    assert_eq!(inbox[0]["last_activity_at"], "2026-11-27T10:04:00.000Z");
    // Alice sent the direct message: nothing unread for her there.
    assert_eq!(get(&model, "alice", direct, now).unwrap()["unread"], 0);
}

#[test]
fn r_s4_unread_counts_messages_by_others_after_the_marker_that_are_not_deleted() {
    let mut world = World::new();
    let (direct, first) = world.direct("alice", "bob", "one");
    world.ok(
        "bob",
        Action::MarkRead {
            room_id: direct,
            message_id: first,
        },
    );
    let model = rooms(&world);
    assert_eq!(
        get(&model, "bob", direct, world.now()).unwrap()["unread"],
        0
    );

    world.say("alice", direct, "two");
    let third = world.say("alice", direct, "three");
    world.say("bob", direct, "mine do not count");
    world.ok(
        "alice",
        Action::DeleteMessage {
            room_id: direct,
            message_id: third,
        },
    );
    let model = rooms(&world);
    let room = get(&model, "bob", direct, world.now()).unwrap();
    assert_eq!(room["unread"], 1);
    // Marking read an older message counts again from there.
    world.ok(
        "bob",
        Action::MarkRead {
            room_id: direct,
            message_id: first,
        },
    );
    assert_eq!(
        get(&rooms(&world), "bob", direct, world.now()).unwrap()["unread"],
        1
    );

    // Deleting the last message leaves a tombstone preview.
    let last = world.say("alice", direct, "oops");
    world.ok(
        "alice",
        Action::DeleteMessage {
            room_id: direct,
            message_id: last,
        },
    );
    let room = get(&rooms(&world), "bob", direct, world.now()).unwrap();
    assert_eq!(
        room["last_message"],
        json!({"message_id": last.to_string(), "author": "alice", "preview": null,
               "sent_at": "2026-11-27T10:00:00.000Z", "deleted": true})
    );
    assert_eq!(room["unread"], 1);
}

#[test]
fn r_s2_hidden_rooms_come_back_with_a_new_message_and_r_s3_archived_ones_stay() {
    let mut world = World::new();
    let (direct, _) = world.direct("alice", "bob", "hi");
    let group = world.group("alice", "Team", &["bob", "carol"]);
    world.ok(
        "bob",
        Action::HideRoom {
            room_id: direct,
            on: true,
        },
    );
    world.ok(
        "bob",
        Action::ArchiveRoom {
            room_id: group,
            on: true,
        },
    );
    world.ok(
        "bob",
        Action::FavoriteRoom {
            room_id: group,
            on: true,
        },
    );
    let now = world.now();
    let model = rooms(&world);
    assert!(list(&model, "bob", "inbox", now).is_empty());
    assert_eq!(ids(&list(&model, "bob", "hidden", now)), [id(direct)]);
    assert_eq!(ids(&list(&model, "bob", "archived", now)), [id(group)]);
    assert_eq!(ids(&list(&model, "bob", "favorites", now)), [id(group)]);
    // Per user: alice's own list is untouched.
    assert_eq!(list(&model, "alice", "inbox", now).len(), 2);

    world.advance(MINUTE);
    world.say("alice", direct, "are you there?");
    world.advance(MINUTE);
    world.say("carol", group, "news");
    let now = world.now();
    let model = rooms(&world);
    let inbox = list(&model, "bob", "inbox", now);
    assert_eq!(ids(&inbox), [id(direct)]);
    assert_eq!(inbox[0]["hidden"], false);
    assert_eq!(inbox[0]["unread"], 2);
    let archived = list(&model, "bob", "archived", now);
    assert_eq!(ids(&archived), [id(group)]);
    assert_eq!(archived[0]["archived"], true);
    assert_eq!(archived[0]["favorite"], true);
    // The archived room's unread count still grows.
    assert_eq!(archived[0]["unread"], 1);
    assert!(list(&model, "bob", "hidden", now).is_empty());
    assert_eq!(
        ids(&list(&model, "bob", "unread", now)),
        [id(group), id(direct)]
    );
    assert!(ask(
        &model,
        json!({"op": "list", "caller": "bob", "view": "bogus"}),
        now
    )
    .is_err());
}

#[test]
fn names_contracts_and_automatic_replies_follow_the_log() {
    let mut world = World::new();
    let (direct, _) = world.direct("alice", "bob", "hi");
    let contract = world.contract("c-9");
    world.service_ok(Action::RegisterUser {
        user_id: user("alice"),
        display_name: "Alice Smith".into(),
        kind: UserKind::Client,
    });
    world.service_ok(Action::EndContract {
        contract_id: ContractId::parse("c-9").unwrap(),
    });
    let now = world.now();
    world.ok(
        "bob",
        Action::SetOutOfOffice {
            message: "on holiday".into(),
            from: now,
            until: now.plus_millis(2 * HOUR),
        },
    );
    world.say("alice", direct, "ping");
    let model = rooms(&world);
    let room = get(&model, "bob", direct, now).unwrap();
    assert_eq!(room["name"], "Alice Smith");
    assert_eq!(room["members"][0]["display_name"], "Alice Smith");
    let contract_room = get(&model, "bob", contract, now).unwrap();
    assert_eq!(
        contract_room["contract"],
        json!({"contract_id": "c-9", "active": false})
    );
    // Bob's automatic reply is a message of his: unread for alice, and the last message.
    let room = get(&model, "alice", direct, now).unwrap();
    assert_eq!(room["unread"], 1);
    assert_eq!(room["last_message"]["author"], "bob");
    assert_eq!(room["last_message"]["preview"], "on holiday");
    // Bob is away while the period lasts, for everyone who sees him.
    let bob = |room: &Value| room["members"][1].clone();
    assert_eq!(bob(&room)["user_id"], "bob");
    assert_eq!(
        bob(&room)["away"],
        json!({"message": "on holiday", "until": now.plus_millis(2 * HOUR).to_rfc3339()})
    );
    let later = get(&model, "alice", direct, now.plus_millis(3 * HOUR)).unwrap();
    assert_eq!(bob(&later)["away"], Value::Null);
}

#[test]
fn r_a1_members_are_online_when_visible_with_a_recent_heartbeat() {
    let mut world = World::new();
    let (direct, _) = world.direct("alice", "bob", "hi");
    let now = world.now();
    let model = rooms(&world);
    let bob_online = |model: &Rooms, at: Timestamp| {
        get(model, "alice", direct, at).unwrap()["members"][1]["online"].clone()
    };
    assert_eq!(bob_online(&model, now), false);
    model.presence_table().heartbeat(&user("bob"), now);
    assert_eq!(bob_online(&model, now.plus_millis(59_999)), true);
    assert_eq!(bob_online(&model, now.plus_millis(60_000)), false);

    world.ok("bob", Action::SetOnlineVisibility { visible: false });
    let hidden = rooms(&world);
    hidden.presence_table().heartbeat(&user("bob"), now);
    assert_eq!(bob_online(&hidden, now), false);
}

#[test]
fn r_r4_new_members_see_the_room_and_r_r6_others_get_not_found() {
    let mut world = World::new();
    let group = world.group("alice", "Team", &["bob", "carol"]);
    world.say("bob", group, "before dave");
    let deleted = world.say("bob", group, "deleted before dave");
    world.ok(
        "bob",
        Action::DeleteMessage {
            room_id: group,
            message_id: deleted,
        },
    );
    world.say("alice", group, "also before dave");
    world.ok(
        "alice",
        Action::AddMember {
            room_id: group,
            user_id: user("dave"),
        },
    );
    world.ok("carol", Action::LeaveRoom { room_id: group });
    let (direct, _) = world.direct("alice", "bob", "private");
    let now = world.now();
    let model = rooms(&world);

    let room = get(&model, "dave", group, now).unwrap();
    assert_eq!(
        room["unread"], 2,
        "the history before joining counts, deleted messages do not"
    );
    assert_eq!(ids(&list(&model, "dave", "inbox", now)), [id(group)]);
    assert_eq!(
        answer(&model, json!({"op": "member_rooms", "caller": "dave"}), now),
        json!({"room_ids": [id(group)]})
    );
    // Carol left: the room is gone from her list and answers like a room that never existed.
    assert_eq!(get(&model, "carol", group, now), Err(QueryError::NotFound));
    assert!(list(&model, "carol", "inbox", now).is_empty());
    assert_eq!(get(&model, "dave", direct, now), Err(QueryError::NotFound));
    let nowhere = RoomId(Uuid::from_u128(42));
    assert_eq!(get(&model, "dave", nowhere, now), Err(QueryError::NotFound));
    let members: Vec<&str> = room["members"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["user_id"].as_str().unwrap())
        .collect();
    assert_eq!(members, ["alice", "bob", "dave"]);
}

#[test]
fn lists_page_with_limit_and_cursor() {
    let mut world = World::new();
    let mut expected = Vec::new();
    for index in 0..7 {
        world.advance(MINUTE);
        let room = world.group("alice", &format!("Room {index}"), &["bob"]);
        expected.insert(0, id(room));
    }
    let now = world.now();
    let model = rooms(&world);
    let mut seen = Vec::new();
    let mut cursor = Value::Null;
    let mut pages = 0;
    loop {
        let page = answer(
            &model,
            json!({"op": "list", "caller": "bob", "limit": 3, "cursor": cursor}),
            now,
        );
        pages += 1;
        seen.extend(ids(page["rooms"].as_array().unwrap()));
        cursor = page["next_cursor"].clone();
        if cursor.is_null() {
            break;
        }
    }
    assert_eq!(pages, 3);
    assert_eq!(seen, expected);
    let default = answer(&model, json!({"op": "list", "caller": "bob"}), now);
    assert_eq!(default["rooms"].as_array().unwrap().len(), 7);
    assert!(model.position() > 0);
}

/// One member's view as the rules define it, counted from the log by brute force.
#[derive(Debug, Default, Clone)]
struct ExpectedView {
    favorite: bool,
    hidden: bool,
    archived: bool,
    /// The position of the marked message (0: none).
    read_position: u64,
}

/// A message as R-S4 counts it.
#[derive(Debug, Clone)]
struct ExpectedMessage {
    message_id: domain::MessageId,
    author: domain::UserId,
    position: u64,
    deleted: bool,
}

/// The rooms model's per-user facts recomputed from the log with no cleverness at all: every
/// member's marker and flags, every room's messages and last activity. The model derives the
/// same at query time from per-room sequences; this is what it must equal.
#[derive(Debug, Default)]
struct Expected {
    views: std::collections::BTreeMap<(RoomId, domain::UserId), ExpectedView>,
    messages: std::collections::HashMap<RoomId, Vec<ExpectedMessage>>,
    activity: std::collections::HashMap<RoomId, Timestamp>,
}

impl Expected {
    fn from_log(log: &[protocol::RecordedEvent]) -> Expected {
        use domain::{Event, MembershipChange};
        let mut expected = Expected::default();
        for record in log {
            let position = record.position;
            match &record.event {
                Event::DirectRoomOpened {
                    room_id, opened_at, ..
                }
                | Event::InterviewRoomOpened {
                    room_id, opened_at, ..
                } => {
                    expected.activity.insert(*room_id, *opened_at);
                }
                Event::GroupRoomCreated {
                    room_id,
                    created_at,
                    ..
                } => {
                    expected.activity.insert(*room_id, *created_at);
                }
                Event::ContractStarted {
                    room_id,
                    room_created: true,
                    started_at,
                    ..
                } => {
                    expected.activity.insert(*room_id, *started_at);
                }
                Event::MessageSent {
                    room_id,
                    message_id,
                    author,
                    sent_at,
                    ..
                }
                | Event::AutoReplySent {
                    room_id,
                    message_id,
                    author,
                    sent_at,
                    ..
                } => {
                    expected.activity.insert(*room_id, *sent_at);
                    expected
                        .messages
                        .entry(*room_id)
                        .or_default()
                        .push(ExpectedMessage {
                            message_id: *message_id,
                            author: author.clone(),
                            position,
                            deleted: false,
                        });
                    // R-S2: every new message brings a hidden room back.
                    for ((room, _), view) in expected.views.iter_mut() {
                        if room == room_id {
                            view.hidden = false;
                        }
                    }
                }
                Event::MessageDeleted {
                    room_id,
                    message_id,
                    ..
                } => {
                    for message in expected.messages.entry(*room_id).or_default() {
                        if message.message_id == *message_id {
                            message.deleted = true;
                        }
                    }
                }
                Event::RoomMarkedRead {
                    room_id,
                    user_id,
                    message_id,
                } => {
                    let marked = expected
                        .messages
                        .get(room_id)
                        .and_then(|messages| messages.iter().find(|m| m.message_id == *message_id))
                        .map(|message| message.position);
                    if let (Some(marked), Some(view)) =
                        (marked, expected.views.get_mut(&(*room_id, user_id.clone())))
                    {
                        view.read_position = marked;
                    }
                }
                Event::RoomHiddenChanged {
                    room_id,
                    user_id,
                    on,
                } => {
                    if let Some(view) = expected.views.get_mut(&(*room_id, user_id.clone())) {
                        view.hidden = *on;
                    }
                }
                Event::RoomArchivedChanged {
                    room_id,
                    user_id,
                    on,
                } => {
                    if let Some(view) = expected.views.get_mut(&(*room_id, user_id.clone())) {
                        view.archived = *on;
                    }
                }
                Event::RoomFavoriteChanged {
                    room_id,
                    user_id,
                    on,
                } => {
                    if let Some(view) = expected.views.get_mut(&(*room_id, user_id.clone())) {
                        view.favorite = *on;
                    }
                }
                _ => {}
            }
            match record.event.membership_change() {
                Some(MembershipChange::Joined { room_id, users }) => {
                    for user in users {
                        expected.views.entry((room_id, user.clone())).or_default();
                    }
                }
                Some(MembershipChange::Left { room_id, user }) => {
                    expected.views.remove(&(room_id, user.clone()));
                }
                None => {}
            }
        }
        expected
    }

    /// R-S4: messages by others after the marker that are not deleted.
    fn unread(&self, room: RoomId, user: &domain::UserId) -> u64 {
        let view = &self.views[&(room, user.clone())];
        self.messages.get(&room).map_or(0, |messages| {
            messages
                .iter()
                .filter(|m| m.position > view.read_position && &m.author != user && !m.deleted)
                .count() as u64
        })
    }

    /// `user`'s rooms admitted by `admit`, newest activity first (ties by room id).
    fn list(
        &self,
        user: &domain::UserId,
        admit: impl Fn(RoomId, &ExpectedView) -> bool,
    ) -> Vec<String> {
        let mut rooms: Vec<(Timestamp, RoomId)> = self
            .views
            .iter()
            .filter(|((room, member), view)| member == user && admit(*room, view))
            .map(|((room, _), _)| (self.activity[room], *room))
            .collect();
        rooms.sort_by(|a, b| b.0.cmp(&a.0).then(a.1 .0.as_bytes().cmp(b.1 .0.as_bytes())));
        rooms.into_iter().map(|(_, room)| id(room)).collect()
    }
}

/// Which of a user's rooms a list view admits, by the brute-force facts.
type Admits<'a> = &'a dyn Fn(RoomId, &ExpectedView) -> bool;

/// Every page of the caller's list in `view`, `limit` rooms at a time.
fn list_paged(model: &Rooms, caller: &str, view: &str, limit: u64, now: Timestamp) -> Vec<String> {
    let mut seen = Vec::new();
    let mut cursor = Value::Null;
    loop {
        let page = answer(
            model,
            json!({"op": "list", "caller": caller, "view": view, "limit": limit, "cursor": cursor}),
            now,
        );
        seen.extend(ids(page["rooms"].as_array().unwrap()));
        cursor = page["next_cursor"].clone();
        if cursor.is_null() {
            return seen;
        }
    }
}

#[test]
fn r_s4_unread_counts_and_r_s2_hidden_views_equal_a_count_from_the_log_after_random_workloads() {
    for seed in [7, 1_013, 90_001] {
        let mut world = World::new();
        let mut rng = crate::support::Rng::new(seed);
        let mut checked_unread = 0;
        // Checked at several points, since a count that drifts may drift back.
        for _ in 0..4 {
            crate::workload::run(&mut world, &mut rng, 400);
            let now = world.now();
            let model = rooms(&world);
            let expected = Expected::from_log(&world.log);
            for ((room, member), view) in &expected.views {
                let got = get(&model, member.as_str(), *room, now).unwrap();
                let unread = expected.unread(*room, member);
                assert_eq!(got["unread"], unread, "seed {seed}: {member} in {room}");
                assert_eq!(
                    got["hidden"], view.hidden,
                    "seed {seed}: {member} in {room}"
                );
                assert_eq!(got["archived"], view.archived, "seed {seed}");
                assert_eq!(got["favorite"], view.favorite, "seed {seed}");
                checked_unread += unread;
            }
            for member in ["alice", "bob", "carol", "dave", "zoe"] {
                let user = user(member);
                let views: [(&str, Admits<'_>); 5] = [
                    ("inbox", &|_, v| !v.hidden && !v.archived),
                    ("favorites", &|_, v| v.favorite),
                    ("hidden", &|_, v| v.hidden),
                    ("archived", &|_, v| v.archived),
                    ("unread", &|room, _| expected.unread(room, &user) > 0),
                ];
                for (view, admit) in views {
                    let want = expected.list(&user, admit);
                    assert_eq!(list_paged(&model, member, view, 200, now), want, "{view}");
                    assert_eq!(list_paged(&model, member, view, 2, now), want, "{view}");
                }
                let all = expected.list(&user, |_, _| true);
                assert_eq!(
                    answer(&model, json!({"op": "member_rooms", "caller": member}), now),
                    json!({ "room_ids": all }),
                    "seed {seed}: {member}"
                );
            }
        }
        assert!(
            checked_unread > 0,
            "seed {seed}: the workload left nothing unread"
        );
    }
}

#[test]
fn a_store_of_the_earlier_layout_is_refused_naming_the_rebuild_served_afresh_and_a_new_one_reopens()
{
    let dir = testkit::TempDataDir::new();
    let path = dir.path().join("rooms");
    {
        // What a build before the layout mark left: events applied, no `v/layout`.
        let store = projections::Store::open(&path).unwrap();
        let mut changes = store.changes().unwrap();
        changes.put(b"r/old".to_vec(), &1u32).unwrap();
        changes.commit(5).unwrap();
        store.flush().unwrap();
    }
    let refused = Rooms::open_path(&path).unwrap_err();
    assert_eq!(
        refused,
        projections::ProjectionError::Layout {
            model: "rooms",
            found: 0,
            expected: projections::rooms::LAYOUT_VERSION,
        }
    );
    assert!(
        refused.to_string().contains("parlor replay rooms"),
        "{refused}"
    );

    // Opened as a service opens it (under a data directory), it starts afresh instead.
    let data_dir = testkit::TempDataDir::new();
    let served = projections::store_path(data_dir.path(), "rooms");
    std::fs::create_dir_all(served.parent().unwrap()).unwrap();
    std::fs::rename(&path, &served).unwrap();
    let afresh = Rooms::open(data_dir.path()).unwrap();
    assert_eq!(
        afresh.position(),
        0,
        "an earlier layout is rebuilt from the log"
    );
    drop(afresh);

    let path = dir.path().join("rooms-new");
    let mut world = World::new();
    world.direct("alice", "bob", "hi");
    {
        let mut model = Rooms::open_path(&path).unwrap();
        projections::rebuild(&mut model, world.envelopes()).unwrap();
        model.flush().unwrap();
    }
    let reopened = Rooms::open_path(&path).unwrap();
    assert_eq!(reopened.position(), world.head());
    assert_eq!(list(&reopened, "bob", "unread", world.now()).len(), 1);
}
