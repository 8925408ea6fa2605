//! The files read model, applied straight from a log: the "Files and links" listing (R-F1,
//! R-F2) — order, type filter, search, paging, deleted messages (R-M4) — who may list it (R-R4,
//! R-R6), and who may download a file (`file`).

use domain::{Action, AttachmentRef, FileId, MessageId, RoomId, Timestamp};
use projections::files::ITEMS_SCANNED_PER_QUERY_MAX;
use projections::{Files, QueryError};
use serde_json::{json, Value};

use crate::support::{ask, rebuilt, user, World, MINUTE};

const DROPBOX: &str = "https://www.dropbox.com/s/abc/Budget_2026.xlsx";
const EXAMPLE: &str = "https://example.com/docs/roadmap";

fn files(world: &World) -> Files {
    rebuilt(Files::temporary().unwrap(), &world.log)
}

fn at() -> Timestamp {
    Timestamp::from_millis(0)
}

/// One page of `caller`'s listing of `room` with the extra parameters `params`.
fn page(model: &Files, caller: &str, room: RoomId, params: Value) -> Result<Value, QueryError> {
    let mut request = json!({"op": "list", "caller": caller, "room_id": room.to_string()});
    for (name, value) in params.as_object().unwrap() {
        request[name] = value.clone();
    }
    ask(model, request, at())
}

/// The names of the items of one page (which must be the last).
fn names(model: &Files, caller: &str, room: RoomId, params: Value) -> Vec<String> {
    let data = page(model, caller, room, params).unwrap();
    assert_eq!(data["next_cursor"], Value::Null);
    data["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|item| item["name"].as_str().unwrap().to_owned())
        .collect()
}

fn file(model: &Files, caller: &str, file_id: FileId) -> Result<Value, QueryError> {
    ask(
        model,
        json!({"op": "file", "caller": caller, "file_id": file_id.to_string()}),
        at(),
    )
}

fn delete(world: &mut World, author: &str, room: RoomId, message: MessageId) {
    world.ok(
        author,
        Action::DeleteMessage {
            room_id: room,
            message_id: message,
        },
    );
}

/// A group of alice, bob and carol with, oldest first: alice's report (pdf), a message without
/// attachments, then bob's photo (png), a Dropbox link and another link in one message.
struct Team {
    world: World,
    room: RoomId,
    report: FileId,
    photo: FileId,
    report_message: MessageId,
    photo_message: MessageId,
}

fn team() -> Team {
    let mut world = World::new();
    let room = world.group("alice", "Team", &["bob", "carol"]);
    let report = world.upload("alice", "Final_Report_v2.pdf", "application/pdf");
    let report_message = world.send(
        "alice",
        room,
        "the report",
        None,
        vec![AttachmentRef::File(report)],
    );
    world.advance(MINUTE);
    world.say("bob", room, "thanks");
    world.advance(MINUTE);
    let photo = world.upload("bob", "Team Photo.PNG", "image/png");
    let photo_message = world.send(
        "bob",
        room,
        "",
        None,
        vec![
            AttachmentRef::File(photo),
            AttachmentRef::Link(DROPBOX.into()),
            AttachmentRef::Link(EXAMPLE.into()),
        ],
    );
    Team {
        world,
        room,
        report,
        photo,
        report_message,
        photo_message,
    }
}

#[test]
fn r_f2_items_are_listed_newest_first_with_their_fields() {
    let team = team();
    let model = files(&team.world);
    let data = page(&model, "carol", team.room, json!({})).unwrap();
    assert_eq!(data["next_cursor"], Value::Null);
    assert_eq!(
        data["items"],
        json!([
            {"type": "file", "name": "Team Photo.PNG", "message_id": team.photo_message.to_string(),
             "author": "bob", "sent_at": "2026-11-27T10:02:00.000Z",
             "file_id": team.photo.to_string(), "size": 1234, "content_type": "image/png",
             "preview_url": format!("/v1/files/{}/preview", team.photo)},
            {"type": "link", "name": DROPBOX, "message_id": team.photo_message.to_string(),
             "author": "bob", "sent_at": "2026-11-27T10:02:00.000Z",
             "url": DROPBOX, "provider": "dropbox"},
            {"type": "link", "name": EXAMPLE, "message_id": team.photo_message.to_string(),
             "author": "bob", "sent_at": "2026-11-27T10:02:00.000Z",
             "url": EXAMPLE, "provider": null},
            {"type": "file", "name": "Final_Report_v2.pdf",
             "message_id": team.report_message.to_string(),
             "author": "alice", "sent_at": "2026-11-27T10:00:00.000Z",
             "file_id": team.report.to_string(), "size": 1234, "content_type": "application/pdf",
             "preview_url": null},
        ])
    );
}

#[test]
fn r_f2_the_type_filter_keeps_files_or_links() {
    let team = team();
    let model = files(&team.world);
    assert_eq!(
        names(&model, "alice", team.room, json!({"type": "file"})),
        ["Team Photo.PNG", "Final_Report_v2.pdf"]
    );
    assert_eq!(
        names(&model, "alice", team.room, json!({"type": "link"})),
        [DROPBOX, EXAMPLE]
    );
    assert_eq!(
        names(&model, "alice", team.room, json!({"type": null, "q": null})).len(),
        4
    );
    assert!(matches!(
        page(&model, "alice", team.room, json!({"type": "video"})),
        Err(QueryError::Invalid(_))
    ));
}

#[test]
fn r_f2_search_is_case_insensitive_by_substring_and_word_prefix() {
    let team = team();
    let model = files(&team.world);
    let search = |q: &str| names(&model, "bob", team.room, json!({"q": q}));
    // Substring, in any case.
    assert_eq!(search("REPORT"), ["Final_Report_v2.pdf"]);
    assert_eq!(search("eport_v"), ["Final_Report_v2.pdf"]);
    assert_eq!(search("photo.png"), ["Team Photo.PNG"]);
    // Word prefixes, in any order.
    assert_eq!(search("fin rep"), ["Final_Report_v2.pdf"]);
    assert_eq!(search("pho te"), ["Team Photo.PNG"]);
    assert!(
        search("inal eport").is_empty(),
        "inner parts of words are no prefixes"
    );
    // Links are searched by URL.
    assert_eq!(search("dropbox"), [DROPBOX]);
    assert_eq!(search("budget 2026"), [DROPBOX]);
    assert_eq!(search("https"), [DROPBOX, EXAMPLE]);
    assert_eq!(search("  "), search(""));
    assert_eq!(search("").len(), 4);
    assert!(search("invoice").is_empty());
    // The filters combine.
    assert_eq!(
        names(&model, "bob", team.room, json!({"q": "o", "type": "file"})),
        ["Team Photo.PNG", "Final_Report_v2.pdf"]
    );
}

#[test]
fn r_m4_a_deleted_message_drops_its_files_and_links() {
    let mut team = team();
    delete(&mut team.world, "bob", team.room, team.photo_message);
    let model = files(&team.world);
    assert_eq!(
        names(&model, "carol", team.room, json!({})),
        ["Final_Report_v2.pdf"]
    );
    assert!(names(&model, "carol", team.room, json!({"q": "dropbox"})).is_empty());
    assert!(names(&model, "carol", team.room, json!({"type": "link"})).is_empty());
    // Other members can no longer download its file; its uploader still can.
    assert_eq!(file(&model, "carol", team.photo), Err(QueryError::NotFound));
    assert_eq!(file(&model, "alice", team.photo), Err(QueryError::NotFound));
    assert_eq!(
        file(&model, "bob", team.photo).unwrap()["name"],
        "Team Photo.PNG"
    );
    assert_eq!(
        file(&model, "carol", team.report).unwrap()["name"],
        "Final_Report_v2.pdf"
    );
}

#[test]
fn r_r6_non_members_and_missing_rooms_get_not_found_and_r_r4_new_members_see_earlier_files() {
    let mut team = team();
    let room = team.room;
    team.world.ok(
        "carol",
        Action::AddMember {
            room_id: room,
            user_id: user("dave"),
        },
    );
    team.world.ok("carol", Action::LeaveRoom { room_id: room });
    // A direct room of others, and a room that never existed.
    let (direct, _) = team.world.direct("alice", "bob", "hi");
    let model = files(&team.world);
    assert_eq!(names(&model, "dave", room, json!({})).len(), 4);
    assert_eq!(
        file(&model, "dave", team.report).unwrap()["name"],
        "Final_Report_v2.pdf"
    );
    for (caller, room) in [("carol", room), ("zoe", room), ("dave", direct)] {
        assert_eq!(
            page(&model, caller, room, json!({})),
            Err(QueryError::NotFound)
        );
    }
    assert_eq!(
        file(&model, "carol", team.report),
        Err(QueryError::NotFound)
    );
    let nowhere = RoomId::parse("00000000-0000-0000-0000-00000000002a").unwrap();
    assert_eq!(
        page(&model, "alice", nowhere, json!({})),
        Err(QueryError::NotFound)
    );
    assert!(matches!(
        ask(&model, json!({"op": "list", "caller": "alice"}), at()),
        Err(QueryError::Invalid(_))
    ));
    assert!(matches!(
        page(&model, "alice", room, json!({"cursor": "00ff"})),
        Err(QueryError::Invalid(_))
    ));
    assert!(matches!(
        ask(&model, json!({"op": "files", "caller": "alice"}), at()),
        Err(QueryError::Invalid(_))
    ));
}

#[test]
fn file_downloads_are_for_the_uploader_and_members_where_it_is_attached() {
    let mut team = team();
    let draft = team.world.upload("carol", "draft.txt", "text/plain");
    let model = files(&team.world);
    // Never attached: only its uploader.
    assert_eq!(
        file(&model, "carol", draft).unwrap(),
        json!({"file_id": draft.to_string(), "name": "draft.txt", "size": 1234,
               "content_type": "text/plain", "sha256": "ab".repeat(32), "has_preview": false,
               "uploader": "carol"})
    );
    assert_eq!(file(&model, "alice", draft), Err(QueryError::NotFound));
    // Attached: every member of that room, nobody else.
    assert_eq!(
        file(&model, "alice", team.photo).unwrap(),
        json!({"file_id": team.photo.to_string(), "name": "Team Photo.PNG", "size": 1234,
               "content_type": "image/png", "sha256": "ab".repeat(32), "has_preview": true,
               "uploader": "bob"})
    );
    assert_eq!(file(&model, "dave", team.photo), Err(QueryError::NotFound));
    let unknown = FileId(uuid::Uuid::from_u128(7));
    assert_eq!(file(&model, "alice", unknown), Err(QueryError::NotFound));
    assert!(matches!(
        ask(&model, json!({"op": "file", "caller": "alice"}), at()),
        Err(QueryError::Invalid(_))
    ));
    assert!(matches!(
        ask(
            &model,
            json!({"op": "file", "caller": "alice", "file_id": "x"}),
            at()
        ),
        Err(QueryError::Invalid(_))
    ));
}

#[test]
fn pages_follow_the_cursor_through_both_types_and_filters() {
    let mut world = World::new();
    let room = world.group("alice", "Team", &["bob"]);
    let mut expected = Vec::new();
    for n in 0..7 {
        let doc = world.upload("alice", &format!("doc-{n}.pdf"), "application/pdf");
        let link = format!("https://example.com/page-{n}");
        world.send(
            "alice",
            room,
            "",
            None,
            vec![AttachmentRef::Link(link.clone()), AttachmentRef::File(doc)],
        );
        expected.push(format!("doc-{n}.pdf"));
        expected.push(link);
    }
    let model = files(&world);
    let all = |params: Value| {
        let mut seen = Vec::new();
        let mut cursor = Value::Null;
        loop {
            let mut params = params.clone();
            params["limit"] = json!(3);
            params["cursor"] = cursor;
            let data = page(&model, "bob", room, params).unwrap();
            let items = data["items"].as_array().unwrap();
            assert!(items.len() <= 3);
            seen.extend(
                items
                    .iter()
                    .map(|item| item["name"].as_str().unwrap().to_owned()),
            );
            cursor = data["next_cursor"].clone();
            if cursor.is_null() {
                return seen;
            }
        }
    };
    // Newest message first; within a message, its attachments in their order.
    let newest_first: Vec<String> = expected
        .chunks(2)
        .rev()
        .flat_map(|pair| [pair[1].clone(), pair[0].clone()])
        .collect();
    assert_eq!(all(json!({})), newest_first);
    let docs: Vec<String> = (0..7).rev().map(|n| format!("doc-{n}.pdf")).collect();
    assert_eq!(all(json!({"type": "file"})), docs);
    assert_eq!(all(json!({"q": "doc"})), docs);
    assert_eq!(all(json!({"q": "page 3"})), ["https://example.com/page-3"]);
    assert_eq!(
        names(&model, "bob", room, json!({"limit": 500})),
        newest_first,
        "a larger limit is lowered to the maximum"
    );
}

#[test]
fn a_search_reads_a_bounded_number_of_items_per_page() {
    let mut world = World::new();
    let room = world.group("alice", "Archive", &["bob"]);
    let needle = world.upload("alice", "needle.txt", "text/plain");
    world.send("alice", room, "", None, vec![AttachmentRef::File(needle)]);
    // Ten links per message, enough messages to pass the bound.
    let messages = ITEMS_SCANNED_PER_QUERY_MAX / 10 + 1;
    for n in 0..messages {
        let links = (0..10)
            .map(|k| AttachmentRef::Link(format!("https://example.com/{n}/{k}")))
            .collect();
        world.send("bob", room, "", None, links);
    }
    let model = files(&world);
    let first = page(&model, "alice", room, json!({"q": "needle"})).unwrap();
    assert_eq!(first["items"], json!([]), "the bound is reached first");
    assert!(first["next_cursor"].is_string());
    let second = page(
        &model,
        "alice",
        room,
        json!({"q": "needle", "cursor": first["next_cursor"]}),
    )
    .unwrap();
    let found: Vec<&str> = second["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|item| item["name"].as_str().unwrap())
        .collect();
    assert_eq!(found, ["needle.txt"]);
    assert_eq!(second["next_cursor"], Value::Null);
    // Without a search, a page is served from the first items alone.
    let plain = page(&model, "alice", room, json!({"limit": 2})).unwrap();
    assert_eq!(plain["items"].as_array().unwrap().len(), 2);
    assert!(plain["next_cursor"].is_string());
}
