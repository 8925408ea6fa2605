//! The query contract's wire format: every request the gateway sends, serialized from the typed
//! operations, equals byte for byte what the gateway sent before `protocol::query` held these
//! types (golden strings, and the old construction replayed: a `serde_json::Map` of the
//! parameters with `op`, `caller`, `moderator` and `min_position` inserted), and reads back as
//! the same operation on the projector's side. Replies likewise; malformed requests keep their
//! `invalid_command` messages.

use protocol::query::{
    Cursor, FilesQuery, InvalidQuery, ItemType, ModelQuery, ModerationQuery, NotificationsQuery,
    Operation, PageLimit, QueryErrorCode, QueryRefusal, QueryReply, QueryRequest, RoomView,
    RoomsQuery, SearchQuery, TimelineQuery,
};
use serde_json::{json, Map, Value};

const ROOM: &str = "0192f0c1-7a3e-7cc4-9a51-5c2d7e0f4b11";
const MESSAGE: &str = "0192f0c1-7a3e-7cc4-9a51-5c2d7e0f4b22";
const CALL: &str = "0192f0c1-7a3e-7cc4-9a51-5c2d7e0f4b33";

fn room() -> domain::RoomId {
    domain::RoomId::parse(ROOM).expect("a room id")
}

fn limit(items: usize) -> PageLimit {
    PageLimit::new(items).expect("a page size")
}

fn request<Q>(caller: &str, moderator: bool, min_position: Option<u64>, op: Q) -> QueryRequest<Q> {
    QueryRequest {
        caller: Some(caller.to_owned()),
        moderator,
        min_position,
        op,
    }
}

/// The gateway's request before the typed contract (gateway/src/queries.rs `ask`, verbatim in
/// effect): the parameters' object with the envelope inserted, serialized.
fn sent_before(
    op: &str,
    caller: &str,
    moderator: bool,
    min_position: Option<u64>,
    params: Value,
) -> String {
    let mut request = match params {
        Value::Object(map) => map,
        _ => Map::new(),
    };
    request.insert("op".into(), op.into());
    request.insert("caller".into(), caller.into());
    request.insert("moderator".into(), moderator.into());
    request.insert("min_position".into(), min_position.into());
    String::from_utf8(serde_json::to_vec(&request).expect("encodes")).expect("UTF-8")
}

/// Checks that `typed` is sent as `golden`, that the old construction gave `golden` too, and
/// that `golden` reads back as `typed`.
fn check<Q: ModelQuery + std::fmt::Debug + PartialEq + Clone>(
    typed: QueryRequest<Q>,
    before: String,
    golden: &str,
) {
    let sent = serde_json::to_string(&typed).expect("encodes");
    assert_eq!(sent, golden, "the typed request");
    assert_eq!(before, golden, "the request as sent before");
    let read = QueryRequest::<Operation<Q>>::parse(golden.as_bytes())
        .unwrap_or_else(|error| panic!("{golden}: {error}"));
    assert_eq!(read.into_model(), Some(typed), "{golden} read back");
}

#[test]
fn rooms_requests_are_byte_for_byte_what_the_gateway_sent_before() {
    check(
        request(
            "alice",
            false,
            None,
            RoomsQuery::List {
                view: RoomView::Inbox,
                limit: PageLimit::list_default(),
                cursor: None,
            },
        ),
        sent_before(
            "list",
            "alice",
            false,
            None,
            json!({"view": "inbox", "limit": 50, "cursor": null}),
        ),
        r#"{"caller":"alice","cursor":null,"limit":50,"min_position":null,"moderator":false,"op":"list","view":"inbox"}"#,
    );
    check(
        request(
            "alice",
            false,
            Some(5),
            RoomsQuery::List {
                view: RoomView::Archived,
                limit: limit(7),
                cursor: Some(Cursor::new("ab12").expect("a cursor")),
            },
        ),
        sent_before(
            "list",
            "alice",
            false,
            Some(5),
            json!({"view": "archived", "limit": 7, "cursor": "ab12"}),
        ),
        r#"{"caller":"alice","cursor":"ab12","limit":7,"min_position":5,"moderator":false,"op":"list","view":"archived"}"#,
    );
    check(
        request("alice", false, None, RoomsQuery::Get { room_id: room() }),
        sent_before("get", "alice", false, None, json!({"room_id": ROOM})),
        &format!(
            r#"{{"caller":"alice","min_position":null,"moderator":false,"op":"get","room_id":"{ROOM}"}}"#
        ),
    );
    check(
        request("alice", false, Some(3), RoomsQuery::MemberRooms),
        sent_before("member_rooms", "alice", false, Some(3), json!({})),
        r#"{"caller":"alice","min_position":3,"moderator":false,"op":"member_rooms"}"#,
    );
}

#[test]
fn timeline_requests_are_byte_for_byte_what_the_gateway_sent_before() {
    check(
        request(
            "alice",
            false,
            None,
            TimelineQuery::Messages {
                room_id: room(),
                before: None,
                limit: PageLimit::list_default(),
                cursor: None,
            },
        ),
        sent_before(
            "messages",
            "alice",
            false,
            None,
            json!({"room_id": ROOM, "before": null, "limit": 50, "cursor": null}),
        ),
        &format!(
            r#"{{"before":null,"caller":"alice","cursor":null,"limit":50,"min_position":null,"moderator":false,"op":"messages","room_id":"{ROOM}"}}"#
        ),
    );
    check(
        request(
            "alice",
            false,
            Some(8),
            TimelineQuery::Messages {
                room_id: room(),
                before: Some(domain::MessageId::parse(MESSAGE).expect("an id")),
                limit: limit(200),
                cursor: Some(Cursor::from_bytes(&9u64.to_be_bytes())),
            },
        ),
        sent_before(
            "messages",
            "alice",
            false,
            Some(8),
            json!({"room_id": ROOM, "before": MESSAGE, "limit": 200, "cursor": "0000000000000009"}),
        ),
        &format!(
            r#"{{"before":"{MESSAGE}","caller":"alice","cursor":"0000000000000009","limit":200,"min_position":8,"moderator":false,"op":"messages","room_id":"{ROOM}"}}"#
        ),
    );
    check(
        request(
            "alice",
            false,
            Some(12),
            TimelineQuery::ById {
                room_id: room(),
                message_ids: vec![
                    uuid::Uuid::parse_str(MESSAGE).expect("an id"),
                    uuid::Uuid::parse_str(CALL).expect("an id"),
                ],
            },
        ),
        sent_before(
            "by_id",
            "alice",
            false,
            Some(12),
            json!({"room_id": ROOM, "message_ids": [MESSAGE, CALL]}),
        ),
        &format!(
            r#"{{"caller":"alice","message_ids":["{MESSAGE}","{CALL}"],"min_position":12,"moderator":false,"op":"by_id","room_id":"{ROOM}"}}"#
        ),
    );
}

#[test]
fn files_search_and_moderation_requests_are_byte_for_byte_what_the_gateway_sent_before() {
    check(
        request(
            "alice",
            false,
            None,
            FilesQuery::List {
                room_id: room(),
                q: Some("report".into()),
                item_type: Some(ItemType::File),
                limit: PageLimit::list_default(),
                cursor: None,
            },
        ),
        sent_before(
            "list",
            "alice",
            false,
            None,
            json!({"room_id": ROOM, "q": "report", "type": "file", "limit": 50, "cursor": null}),
        ),
        &format!(
            r#"{{"caller":"alice","cursor":null,"limit":50,"min_position":null,"moderator":false,"op":"list","q":"report","room_id":"{ROOM}","type":"file"}}"#
        ),
    );
    check(
        request(
            "alice",
            false,
            None,
            FilesQuery::List {
                room_id: room(),
                q: None,
                item_type: None,
                limit: limit(3),
                cursor: None,
            },
        ),
        sent_before(
            "list",
            "alice",
            false,
            None,
            json!({"room_id": ROOM, "q": null, "type": null, "limit": 3, "cursor": null}),
        ),
        &format!(
            r#"{{"caller":"alice","cursor":null,"limit":3,"min_position":null,"moderator":false,"op":"list","q":null,"room_id":"{ROOM}","type":null}}"#
        ),
    );
    check(
        request(
            "alice",
            false,
            Some(4),
            FilesQuery::File {
                file_id: domain::FileId::parse(MESSAGE).expect("an id"),
            },
        ),
        sent_before("file", "alice", false, Some(4), json!({"file_id": MESSAGE})),
        &format!(
            r#"{{"caller":"alice","file_id":"{MESSAGE}","min_position":4,"moderator":false,"op":"file"}}"#
        ),
    );
    check(
        request(
            "alice",
            false,
            None,
            SearchQuery::Search {
                q: "hello world".into(),
                room_id: None,
                limit: PageLimit::search_default(),
                cursor: None,
            },
        ),
        sent_before(
            "search",
            "alice",
            false,
            None,
            json!({"q": "hello world", "room_id": null, "limit": 20, "cursor": null}),
        ),
        r#"{"caller":"alice","cursor":null,"limit":20,"min_position":null,"moderator":false,"op":"search","q":"hello world","room_id":null}"#,
    );
    check(
        request(
            "alice",
            false,
            Some(30),
            SearchQuery::Search {
                q: "x".into(),
                room_id: Some(room()),
                limit: limit(3),
                cursor: None,
            },
        ),
        sent_before(
            "search",
            "alice",
            false,
            Some(30),
            json!({"q": "x", "room_id": ROOM, "limit": 3, "cursor": null}),
        ),
        &format!(
            r#"{{"caller":"alice","cursor":null,"limit":3,"min_position":30,"moderator":false,"op":"search","q":"x","room_id":"{ROOM}"}}"#
        ),
    );
    check(
        request(
            "mod",
            true,
            None,
            ModerationQuery::Reports {
                limit: PageLimit::list_default(),
                cursor: None,
            },
        ),
        sent_before(
            "reports",
            "mod",
            true,
            None,
            json!({"limit": 50, "cursor": null}),
        ),
        r#"{"caller":"mod","cursor":null,"limit":50,"min_position":null,"moderator":true,"op":"reports"}"#,
    );
}

/// Reads `json` as a request of `Q`: the operation, or the `invalid_command` message.
fn read<Q: ModelQuery>(json: &str) -> Result<Operation<Q>, String> {
    QueryRequest::<Operation<Q>>::parse(json.as_bytes())
        .map(|request| request.op)
        .map_err(|InvalidQuery(message)| message)
}

#[test]
fn projectors_read_what_older_and_other_peers_send() {
    // `status` on any model, with nothing else (the gateway's /healthz, the benchmark harness).
    assert_eq!(
        read::<RoomsQuery>(r#"{"op":"status"}"#),
        Ok(Operation::Status)
    );
    assert_eq!(
        read::<NotificationsQuery>(r#"{"op":"status"}"#),
        Ok(Operation::Status)
    );
    // Absent parameters take their defaults; numbers may be decimal strings; a larger limit
    // is lowered; unknown fields are ignored.
    assert_eq!(
        read::<RoomsQuery>(r#"{"op":"list","caller":"alice","limit":"500","extra":1}"#),
        Ok(Operation::Model(RoomsQuery::List {
            view: RoomView::Inbox,
            limit: limit(200),
            cursor: None,
        }))
    );
    assert_eq!(
        read::<SearchQuery>(r#"{"op":"search","q":"hi"}"#),
        Ok(Operation::Model(SearchQuery::Search {
            q: "hi".into(),
            room_id: None,
            limit: PageLimit::search_default(),
            cursor: None,
        }))
    );
    let request = QueryRequest::<Operation<RoomsQuery>>::parse(
        br#"{"op":"member_rooms","caller":"alice","min_position":"7"}"#,
    )
    .expect("valid");
    assert_eq!(request.min_position, Some(7));
    assert_eq!(
        request.caller_user().map(|user| user.to_string()),
        Ok("alice".into())
    );
}

#[test]
fn malformed_requests_keep_their_invalid_command_messages() {
    let cases: Vec<(Result<(), String>, &str)> = vec![
        (
            read::<RoomsQuery>("[]").map(drop),
            "the request is not a JSON object",
        ),
        (
            read::<RoomsQuery>(r#"{"caller":"alice"}"#).map(drop),
            "op: missing or not a string",
        ),
        (
            read::<RoomsQuery>(r#"{"op":"nope"}"#).map(drop),
            "op: unknown operation \"nope\"",
        ),
        (
            read::<NotificationsQuery>(r#"{"op":"list"}"#).map(drop),
            "op: unknown operation \"list\"",
        ),
        (
            read::<RoomsQuery>(r#"{"op":"list","caller":1}"#).map(drop),
            "caller: not a string",
        ),
        (
            read::<RoomsQuery>(r#"{"op":"list","moderator":"yes"}"#).map(drop),
            "moderator: not a boolean",
        ),
        (
            read::<RoomsQuery>(r#"{"op":"list","min_position":-1}"#).map(drop),
            "min_position: not a non-negative integer",
        ),
        (
            read::<RoomsQuery>(r#"{"op":"list","limit":0}"#).map(drop),
            "limit: must be at least 1",
        ),
        (
            read::<RoomsQuery>(r#"{"op":"list","limit":"x"}"#).map(drop),
            "limit: not a non-negative integer",
        ),
        (
            read::<RoomsQuery>(r#"{"op":"list","cursor":"zz"}"#).map(drop),
            "cursor: malformed",
        ),
        (
            read::<RoomsQuery>(r#"{"op":"list","view":"all"}"#).map(drop),
            "view: \"all\" is not inbox, favorites, hidden, archived or unread",
        ),
        (
            read::<RoomsQuery>(r#"{"op":"get"}"#).map(drop),
            "room_id: missing",
        ),
        (
            read::<RoomsQuery>(r#"{"op":"get","room_id":"r1"}"#).map(drop),
            "room_id: must be a UUID",
        ),
        (
            read::<TimelineQuery>(&format!(
                r#"{{"op":"messages","room_id":"{ROOM}","before":"b"}}"#
            ))
            .map(drop),
            "before: must be a UUID",
        ),
        (
            read::<TimelineQuery>(&format!(r#"{{"op":"by_id","room_id":"{ROOM}"}}"#)).map(drop),
            "message_ids: missing or not an array",
        ),
        (
            read::<TimelineQuery>(&format!(
                r#"{{"op":"by_id","room_id":"{ROOM}","message_ids":[1]}}"#
            ))
            .map(drop),
            "message_ids: each must be a UUID",
        ),
        (
            read::<FilesQuery>(&format!(
                r#"{{"op":"list","room_id":"{ROOM}","type":"pdf"}}"#
            ))
            .map(drop),
            "type: \"pdf\" is not file or link",
        ),
        (
            read::<FilesQuery>(&format!(
                r#"{{"op":"list","room_id":"{ROOM}","q":"{}"}}"#,
                "n".repeat(256)
            ))
            .map(drop),
            "q: at most 255 characters",
        ),
        (
            read::<FilesQuery>(r#"{"op":"file"}"#).map(drop),
            "file_id: missing",
        ),
        (
            read::<SearchQuery>(r#"{"op":"search"}"#).map(drop),
            "q: missing",
        ),
        (
            read::<SearchQuery>(&format!(r#"{{"op":"search","q":"{}"}}"#, "é".repeat(501)))
                .map(drop),
            "q: longer than 1000 bytes",
        ),
    ];
    for (result, message) in cases {
        assert_eq!(result, Err(message.to_owned()));
    }
    let too_many: Vec<String> = (0..201).map(|_| MESSAGE.to_owned()).collect();
    let json = json!({"op": "by_id", "room_id": ROOM, "message_ids": too_many}).to_string();
    assert_eq!(
        read::<TimelineQuery>(&json).map(drop),
        Err("message_ids: at most 200".to_owned())
    );
    let huge = format!(r#"{{"op":"status","pad":"{}"}}"#, "x".repeat(64 * 1024));
    assert!(read::<RoomsQuery>(&huge).is_err_and(|message| message.contains("over 65536 bytes")));
}

#[test]
fn replies_are_byte_for_byte_what_the_projectors_sent_before() {
    let answer: QueryReply<Value> = QueryReply::Answer {
        position: 9,
        data: json!({"rooms": [], "next_cursor": null}),
    };
    let golden = r#"{"data":{"next_cursor":null,"rooms":[]},"ok":true,"position":9}"#;
    assert_eq!(serde_json::to_string(&answer).expect("encodes"), golden);
    let before = json!({"ok": true, "position": 9, "data": {"rooms": [], "next_cursor": null}});
    assert_eq!(before.to_string(), golden);
    assert_eq!(
        QueryReply::<Value>::from_json(golden.as_bytes()),
        Ok(answer)
    );

    let refused: QueryReply<Value> = QueryReply::Refused(QueryRefusal {
        code: QueryErrorCode::NotFound,
        message: "not found".into(),
    });
    let golden = r#"{"error":{"code":"not_found","message":"not found"},"ok":false}"#;
    assert_eq!(serde_json::to_string(&refused).expect("encodes"), golden);
    let before = json!({"ok": false, "error": {"code": "not_found", "message": "not found"}});
    assert_eq!(before.to_string(), golden);
    assert_eq!(
        QueryReply::<Value>::from_json(golden.as_bytes()),
        Ok(refused)
    );

    // A code from a newer peer is kept as sent.
    let newer =
        QueryReply::<Value>::from_json(br#"{"ok":false,"error":{"code":"gone","message":""}}"#);
    assert_eq!(
        newer,
        Ok(QueryReply::Refused(QueryRefusal {
            code: QueryErrorCode::Other("gone".into()),
            message: String::new(),
        }))
    );
    assert!(QueryReply::<Value>::from_json(br#"{"ok":true,"position":1}"#).is_err());
    assert!(QueryReply::<Value>::from_json(br#"{"ok":true,"data":{}}"#).is_err());
    assert!(QueryReply::<Value>::from_json(br#"{"ok":false}"#).is_err());
}
