//! Commands (protocol.md §1): each type decodes from its JSON example; invalid input of every
//! kind is `invalid_command` naming the field; JSON and bincode round-trip.

use domain::command::COMMAND_TYPES;
use domain::{
    Action, Actor, AttachmentRef, CallId, CallMedia, Client, ContractId, ErrorCode, FileId,
    InterviewId, MessageId, MessageTarget, NotificationFrequency, ReportReason, RoomId, UserKind,
};
use proptest::prelude::*;
use protocol::{
    decode_command, encode_command_bincode, encode_command_json, DecodedCommand, InvalidCommand,
    CONTENT_TYPE_BINCODE, PAYLOAD_BYTES_MAX,
};
use serde_json::{json, Value};

use crate::support::*;

/// (type, data, the action it decodes to): one example per command type of §1.
fn examples() -> Vec<(&'static str, Value, Action)> {
    let file = FileId(uuid(FILE));
    vec![
        (
            "user.register",
            json!({"user_id": "bob", "display_name": "Bob B.", "kind": "freelancer"}),
            Action::RegisterUser {
                user_id: user("bob"),
                display_name: "Bob B.".into(),
                kind: UserKind::Freelancer,
            },
        ),
        (
            "user.block",
            json!({"user_id": "bob"}),
            Action::BlockUser {
                user_id: user("bob"),
            },
        ),
        (
            "user.unblock",
            json!({"user_id": "bob"}),
            Action::UnblockUser {
                user_id: user("bob"),
            },
        ),
        (
            "user.set_out_of_office",
            json!({"message": "Back Monday", "from": "2026-11-27T10:00:00Z",
                   "until": "2026-11-30T08:00:00.500+01:00"}),
            Action::SetOutOfOffice {
                message: "Back Monday".into(),
                from: at("2026-11-27T10:00:00.000Z"),
                until: at("2026-11-30T07:00:00.500Z"),
            },
        ),
        (
            "user.clear_out_of_office",
            json!({}),
            Action::ClearOutOfOffice,
        ),
        (
            "user.set_online_visibility",
            json!({"visible": false}),
            Action::SetOnlineVisibility { visible: false },
        ),
        (
            "user.set_notifications",
            json!({"frequency": "every_15_minutes"}),
            Action::SetNotifications {
                frequency: NotificationFrequency::Every15Minutes,
            },
        ),
        (
            "room.create",
            json!({"name": "Launch", "members": ["bob", "carol"]}),
            Action::CreateRoom {
                name: "Launch".into(),
                members: vec![user("bob"), user("carol")],
            },
        ),
        (
            "room.open_interview",
            json!({"interview_id": "iv-7", "title": "Logo design", "client": "alice",
                   "freelancer": "bob"}),
            Action::OpenInterview {
                interview_id: InterviewId::parse("iv-7").expect("id"),
                title: "Logo design".into(),
                client: user("alice"),
                freelancer: user("bob"),
            },
        ),
        (
            "room.add_member",
            json!({"room_id": ROOM, "user_id": "carol"}),
            Action::AddMember {
                room_id: room(),
                user_id: user("carol"),
            },
        ),
        (
            "room.leave",
            json!({"room_id": ROOM}),
            Action::LeaveRoom { room_id: room() },
        ),
        (
            "room.rename",
            json!({"room_id": ROOM, "name": "Ops"}),
            Action::RenameRoom {
                room_id: room(),
                name: "Ops".into(),
            },
        ),
        (
            "room.favorite",
            json!({"room_id": ROOM, "on": true}),
            Action::FavoriteRoom {
                room_id: room(),
                on: true,
            },
        ),
        (
            "room.hide",
            json!({"room_id": ROOM, "on": false}),
            Action::HideRoom {
                room_id: room(),
                on: false,
            },
        ),
        (
            "room.archive",
            json!({"room_id": ROOM, "on": true}),
            Action::ArchiveRoom {
                room_id: room(),
                on: true,
            },
        ),
        (
            "room.mark_read",
            json!({"room_id": ROOM, "message_id": MESSAGE}),
            Action::MarkRead {
                room_id: room(),
                message_id: message(),
            },
        ),
        (
            "contract.start",
            json!({"contract_id": "c-1", "title": "Logo", "client": "alice", "freelancer": "bob",
                   "room_id": ROOM}),
            Action::StartContract {
                contract_id: ContractId::parse("c-1").expect("id"),
                title: "Logo".into(),
                client: user("alice"),
                freelancer: user("bob"),
                room_id: Some(room()),
            },
        ),
        (
            "contract.end",
            json!({"contract_id": "c-1"}),
            Action::EndContract {
                contract_id: ContractId::parse("c-1").expect("id"),
            },
        ),
        (
            "message.send",
            json!({"room_id": ROOM, "message_id": MESSAGE, "body": "hello",
                   "reply_to": OTHER_MESSAGE,
                   "attachments": [{"file_id": FILE}, {"url": "https://example.com/a"}]}),
            Action::SendMessage {
                target: MessageTarget::Room(room()),
                message_id: Some(message()),
                body: "hello".into(),
                reply_to: Some(MessageId(uuid(OTHER_MESSAGE))),
                attachments: vec![
                    AttachmentRef::File(file),
                    AttachmentRef::Link("https://example.com/a".into()),
                ],
            },
        ),
        (
            "message.edit",
            json!({"room_id": ROOM, "message_id": MESSAGE, "body": "hello again"}),
            Action::EditMessage {
                room_id: room(),
                message_id: message(),
                body: "hello again".into(),
            },
        ),
        (
            "message.delete",
            json!({"room_id": ROOM, "message_id": MESSAGE}),
            Action::DeleteMessage {
                room_id: room(),
                message_id: message(),
            },
        ),
        (
            "message.report",
            json!({"room_id": ROOM, "message_id": MESSAGE, "reason": "suspicious_link",
                   "details": "phishing"}),
            Action::ReportMessage {
                room_id: room(),
                message_id: message(),
                reason: ReportReason::SuspiciousLink,
                details: Some("phishing".into()),
            },
        ),
        (
            "call.start",
            json!({"room_id": ROOM, "media": "video"}),
            Action::StartCall {
                room_id: room(),
                media: CallMedia::Video,
            },
        ),
        (
            "call.end",
            json!({"room_id": ROOM, "call_id": CALL}),
            Action::EndCall {
                room_id: room(),
                call_id: CallId(uuid(CALL)),
            },
        ),
        (
            "file.register",
            json!({"file_id": FILE, "uploader": "alice", "name": "logo.png", "size": 1234,
                   "content_type": "image/png", "sha256": "ab".repeat(32)}),
            Action::RegisterFile {
                file_id: file,
                uploader: user("alice"),
                name: "logo.png".into(),
                size: 1234,
                content_type: "image/png".into(),
                sha256: "ab".repeat(32),
            },
        ),
    ]
}

fn decode_json(command_type: &str, payload: &[u8]) -> Result<DecodedCommand, InvalidCommand> {
    decode_command(command_type, payload, None)
}

#[test]
fn every_command_type_decodes_from_its_json_example() {
    let examples = examples();
    let covered: Vec<&str> = examples
        .iter()
        .map(|(command_type, ..)| *command_type)
        .collect();
    assert_eq!(
        covered,
        COMMAND_TYPES.to_vec(),
        "one example per type, in §1 order"
    );
    for (command_type, data, action) in examples {
        assert_eq!(action.type_name(), command_type);
        let decoded = decode_json(command_type, &envelope(data));
        assert_eq!(decoded, Ok(alice_command(action)), "{command_type}");
    }
}

#[test]
fn every_example_round_trips_through_json_and_bincode() {
    for (command_type, _, action) in examples() {
        let command = alice_command(action);
        let json = encode_command_json(&command);
        assert_eq!(
            decode_json(command_type, &json),
            Ok(command.clone()),
            "{command_type}"
        );
        let bincode = encode_command_bincode(&command).expect("encodes");
        let decoded = decode_command(command_type, &bincode, Some(CONTENT_TYPE_BINCODE));
        assert_eq!(decoded, Ok(command), "{command_type}");
    }
}

#[test]
fn the_envelope_reads_client_correlation_id_and_service_actors() {
    let payload = json!({
        "command_id": COMMAND,
        "actor": "service:hiring",
        "client": "mobile_app",
        "correlation_id": "trace-1",
        "data": {"user_id": "bob"},
    });
    let decoded = decode_json("user.block", payload.to_string().as_bytes()).expect("decodes");
    assert_eq!(
        decoded.command.actor,
        Actor::parse("service:hiring").expect("actor")
    );
    assert_eq!(decoded.command.client, Client::MobileApp);
    assert_eq!(decoded.correlation_id.as_deref(), Some("trace-1"));
}

#[test]
fn content_types_choose_the_format() {
    let payload = envelope(json!({"user_id": "bob"}));
    for content_type in [
        None,
        Some("application/json"),
        Some("application/json; charset=utf-8"),
    ] {
        assert!(decode_command("user.block", &payload, content_type).is_ok());
    }
    let error = decode_command("user.block", &payload, Some("text/plain")).expect_err("refused");
    assert!(
        error
            .message
            .contains("unsupported content type 'text/plain'"),
        "{error}"
    );
    // JSON bytes declared as bincode: the format byte is wrong.
    let error = decode_command("user.block", &payload, Some(CONTENT_TYPE_BINCODE)).expect_err("no");
    assert!(error.message.contains("format version"), "{error}");
}

#[test]
fn unknown_fields_are_ignored_everywhere() {
    let payload = json!({
        "command_id": COMMAND,
        "actor": "alice",
        "future_envelope_field": {"nested": [1, 2, 3]},
        "data": {
            "room_id": ROOM,
            "body": "hi",
            "priority": "high",
            "attachments": [{"file_id": FILE, "caption": "later"}],
        },
    });
    let decoded = decode_json("message.send", payload.to_string().as_bytes()).expect("decodes");
    assert_eq!(
        decoded,
        alice_command(Action::SendMessage {
            target: MessageTarget::Room(room()),
            message_id: None,
            body: "hi".into(),
            reply_to: None,
            attachments: vec![AttachmentRef::File(FileId(uuid(FILE)))],
        })
    );
}

#[test]
fn optional_fields_may_be_absent_or_null() {
    let decoded = decode_json(
        "message.send",
        &envelope(
            json!({"to": "bob", "body": "", "message_id": null, "reply_to": null,
                         "attachments": null}),
        ),
    );
    assert_eq!(
        decoded,
        Ok(alice_command(Action::SendMessage {
            target: MessageTarget::User(user("bob")),
            message_id: None,
            body: String::new(),
            reply_to: None,
            attachments: vec![],
        }))
    );
    let payload = json!({"command_id": COMMAND, "actor": "alice", "client": null,
                         "correlation_id": null});
    let decoded = decode_json("user.clear_out_of_office", payload.to_string().as_bytes());
    assert_eq!(decoded, Ok(alice_command(Action::ClearOutOfOffice)));
    let decoded = decode_json(
        "contract.start",
        &envelope(json!({"contract_id": "c", "title": "t",
        "client": "a", "freelancer": "b"})),
    );
    assert!(matches!(
        decoded.map(|d| d.command.action),
        Ok(Action::StartContract { room_id: None, .. })
    ));
}

/// (type, payload, a part of the expected message): every one is `invalid_command`.
fn invalid_cases() -> Vec<(&'static str, Vec<u8>, &'static str)> {
    let data = |value: Value| envelope(value);
    let raw = |text: &str| text.as_bytes().to_vec();
    vec![
        // The envelope.
        ("user.block", raw("[1, 2]"), "payload: expected a JSON object"),
        ("user.block", raw("\"text\""), "payload: expected a JSON object"),
        ("user.block", raw("{\"command_id\": "), "payload is not valid JSON"),
        ("user.block", raw(""), "payload is not valid JSON"),
        ("user.block", b"{\"actor\": \"\xff\"}".to_vec(), "payload is not valid UTF-8"),
        ("user.block", raw(r#"{"actor": "alice", "data": {}}"#), "command_id: missing"),
        (
            "user.block",
            raw(r#"{"command_id": "not-a-uuid", "actor": "alice", "data": {}}"#),
            "command_id: must be a UUID",
        ),
        (
            "user.block",
            raw(r#"{"command_id": 7, "actor": "alice", "data": {}}"#),
            "command_id: expected a string",
        ),
        (
            "user.block",
            format!(r#"{{"command_id": "{COMMAND}", "data": {{}}}}"#).into_bytes(),
            "actor: missing",
        ),
        (
            "user.block",
            format!(r#"{{"command_id": "{COMMAND}", "actor": "al ice", "data": {{}}}}"#)
                .into_bytes(),
            "actor: must be 1-64 characters",
        ),
        (
            "user.block",
            format!(r#"{{"command_id": "{COMMAND}", "actor": "service:", "data": {{}}}}"#)
                .into_bytes(),
            "actor: must be 'service:<name>'",
        ),
        (
            "user.block",
            format!(r#"{{"command_id": "{COMMAND}", "actor": "a", "client": "tv", "data": {{}}}}"#)
                .into_bytes(),
            "client: expected one of desktop, mobile_web, mobile_app",
        ),
        (
            "user.block",
            json!({"command_id": COMMAND, "actor": "a", "correlation_id": "x".repeat(129),
                   "data": {"user_id": "bob"}})
            .to_string()
            .into_bytes(),
            "correlation_id: at most 128 characters",
        ),
        (
            "user.block",
            json!({"command_id": COMMAND, "actor": "a", "correlation_id": 5, "data": {}})
                .to_string()
                .into_bytes(),
            "correlation_id: expected a string",
        ),
        (
            "user.block",
            format!(r#"{{"command_id": "{COMMAND}", "actor": "alice"}}"#).into_bytes(),
            "data: missing",
        ),
        (
            "user.block",
            format!(r#"{{"command_id": "{COMMAND}", "actor": "alice", "data": [1]}}"#)
                .into_bytes(),
            "data: expected an object",
        ),
        (
            "user.clear_out_of_office",
            format!(r#"{{"command_id": "{COMMAND}", "actor": "alice", "data": "x"}}"#)
                .into_bytes(),
            "data: expected an object",
        ),
        // Missing fields and wrong types.
        ("message.edit", data(json!({"room_id": ROOM, "message_id": MESSAGE})), "data.body: missing"),
        ("message.edit", data(json!({"room_id": ROOM, "message_id": MESSAGE, "body": null})), "data.body: missing"),
        ("message.edit", data(json!({"room_id": ROOM, "message_id": MESSAGE, "body": 5})), "data.body: expected a string"),
        ("user.set_online_visibility", data(json!({"visible": "yes"})), "data.visible: expected a boolean"),
        ("user.set_online_visibility", data(json!({"visible": 1})), "data.visible: expected a boolean"),
        ("room.favorite", data(json!({"room_id": ROOM})), "data.on: missing"),
        ("user.register", data(json!({"user_id": "b", "display_name": "B", "kind": "robot"})), "data.kind: expected one of client, freelancer, agency"),
        ("user.set_notifications", data(json!({"frequency": "every15_minutes"})), "data.frequency: expected one of immediate, every_15_minutes, hourly, daily, off"),
        ("call.start", data(json!({"room_id": ROOM, "media": 1})), "data.media: expected one of audio, video"),
        ("message.report", data(json!({"room_id": ROOM, "message_id": MESSAGE, "reason": "spam"})), "data.reason: expected one of"),
        ("message.report", data(json!({"room_id": ROOM, "message_id": MESSAGE, "reason": "other", "details": ["x"]})), "data.details: expected a string"),
        ("room.create", data(json!({"name": "n"})), "data.members: missing"),
        ("room.create", data(json!({"name": "n", "members": "bob"})), "data.members: expected an array"),
        ("room.create", data(json!({"name": "n", "members": ["bob", "b o b"]})), "data.members[1]: must be 1-64 characters"),
        ("room.create", data(json!({"name": "n", "members": ["bob", 7]})), "data.members[1]: expected a string"),
        // Ids.
        ("room.leave", data(json!({"room_id": "room-1"})), "data.room_id: must be a UUID"),
        ("room.mark_read", data(json!({"room_id": ROOM, "message_id": "m"})), "data.message_id: must be a UUID"),
        ("call.end", data(json!({"room_id": ROOM, "call_id": 12})), "data.call_id: expected a string"),
        ("user.block", data(json!({"user_id": "bob smith"})), "data.user_id: must be 1-64 characters"),
        ("user.block", data(json!({"user_id": "service:x"})), "data.user_id: must not start with 'service:'"),
        ("user.block", data(json!({"user_id": "x".repeat(65)})), "data.user_id: must be 1-64 characters"),
        ("contract.end", data(json!({"contract_id": ""})), "data.contract_id: must be 1-64 characters"),
        ("room.open_interview", data(json!({"interview_id": "i/1", "title": "t", "client": "a", "freelancer": "b"})), "data.interview_id: must be 1-64"),
        // Timestamps.
        ("user.set_out_of_office", data(json!({"message": "m", "from": "tomorrow", "until": "2026-11-27T10:00:00Z"})), "data.from: expected an RFC 3339 timestamp"),
        ("user.set_out_of_office", data(json!({"message": "m", "from": "2026-11-27T10:00:00Z", "until": 1795000000000u64})), "data.until: expected a string"),
        // message.send's target and attachments.
        ("message.send", data(json!({"room_id": ROOM, "to": "bob", "body": "x"})), "data.room_id: give room_id or to, not both"),
        ("message.send", data(json!({"body": "x"})), "data.room_id: missing (give room_id, or to for a direct message)"),
        ("message.send", data(json!({"to": "bob smith", "body": "x"})), "data.to: must be 1-64 characters"),
        ("message.send", data(json!({"to": "bob", "body": "x", "attachments": [{"file_id": FILE, "url": "https://a"}]})), "data.attachments[0]: give file_id or url, not both"),
        ("message.send", data(json!({"to": "bob", "body": "x", "attachments": [{"url": "https://a"}, {}]})), "data.attachments[1]: give file_id or url"),
        ("message.send", data(json!({"to": "bob", "body": "x", "attachments": ["https://a"]})), "data.attachments[0]: expected an object"),
        ("message.send", data(json!({"to": "bob", "body": "x", "attachments": [{"file_id": "f"}]})), "data.attachments[0].file_id: must be a UUID"),
        ("message.send", data(json!({"to": "bob", "body": "x", "attachments": [{"url": 5}]})), "data.attachments[0].url: expected a string"),
        ("message.send", data(json!({"to": "bob", "body": "x", "attachments": {"url": "u"}})), "data.attachments: expected an array"),
        ("message.send", data(json!({"to": "bob", "body": "x", "reply_to": "r"})), "data.reply_to: must be a UUID"),
        // Numbers.
        ("file.register", data(json!({"file_id": FILE, "uploader": "a", "name": "n", "size": -1, "content_type": "t", "sha256": "s"})), "data.size: expected a non-negative integer"),
        ("file.register", data(json!({"file_id": FILE, "uploader": "a", "name": "n", "size": 1.5, "content_type": "t", "sha256": "s"})), "data.size: expected a non-negative integer"),
        ("file.register", data(json!({"file_id": FILE, "uploader": "a", "name": "n", "size": "12", "content_type": "t", "sha256": "s"})), "data.size: expected a non-negative integer"),
        (
            "file.register",
            format!(r#"{{"command_id": "{COMMAND}", "actor": "a", "data": {{"file_id": "{FILE}", "uploader": "a", "name": "n", "size": 18446744073709551616, "content_type": "t", "sha256": "s"}}}}"#).into_bytes(),
            "data.size: expected a non-negative integer",
        ),
        (
            "file.register",
            format!(r#"{{"command_id": "{COMMAND}", "actor": "a", "data": {{"size": 1e400}}}}"#).into_bytes(),
            "payload is not valid JSON: number out of range",
        ),
        // Types.
        ("message.shout", data(json!({})), "unknown command type 'message.shout'"),
        ("", data(json!({})), "unknown command type ''"),
    ]
}

#[test]
fn invalid_input_is_invalid_command_naming_the_field() {
    for (command_type, payload, expected) in invalid_cases() {
        let error = decode_json(command_type, &payload).expect_err(expected);
        assert_eq!(error.code(), ErrorCode::InvalidCommand);
        assert!(
            error.message.contains(expected),
            "{command_type}: expected a message containing {expected:?}, got {:?}",
            error.message
        );
    }
}

#[test]
fn payloads_over_one_mebibyte_are_refused_before_parsing() {
    let mut payload = envelope(json!({"room_id": ROOM, "message_id": MESSAGE, "body": "x"}));
    payload.resize(PAYLOAD_BYTES_MAX + 1, b' ');
    let error = decode_json("message.edit", &payload).expect_err("too large");
    assert!(
        error.message.contains("over the 1048576-byte limit"),
        "{error}"
    );
    // Exactly the limit is fine (trailing whitespace is valid JSON).
    payload.truncate(PAYLOAD_BYTES_MAX);
    assert!(decode_json("message.edit", &payload).is_ok());
    let error = decode_command("message.edit", &payload, Some(CONTENT_TYPE_BINCODE));
    assert!(error.is_err());
}

#[test]
fn deep_nesting_is_an_error_not_a_stack_overflow() {
    let deep = "[".repeat(100_000) + &"]".repeat(100_000);
    let error = decode_json("user.block", deep.as_bytes()).expect_err("too deep");
    assert!(error.message.contains("recursion limit"), "{error}");
    let inside = format!(
        r#"{{"command_id": "{COMMAND}", "actor": "a", "data": {{"user_id": "b", "x": {}}}}}"#,
        "[".repeat(100_000) + &"]".repeat(100_000)
    );
    let error = decode_json("user.block", inside.as_bytes()).expect_err("too deep");
    assert!(error.message.contains("recursion limit"), "{error}");
    let objects = "{\"a\":".repeat(50_000) + "1" + &"}".repeat(50_000);
    assert!(decode_json("user.block", objects.as_bytes()).is_err());
}

#[test]
fn bincode_commands_are_checked_like_json_ones() {
    let block = alice_command(Action::BlockUser {
        user_id: user("bob"),
    });
    let bytes = encode_command_bincode(&block).expect("encodes");
    let bincode = Some(CONTENT_TYPE_BINCODE);

    let error = decode_command("user.unblock", &bytes, bincode).expect_err("wrong subject");
    assert!(error.message.contains("is a user.block command"), "{error}");
    let error = decode_command("user.nope", &bytes, bincode).expect_err("unknown type");
    assert!(
        error.message.contains("unknown command type 'user.nope'"),
        "{error}"
    );

    let mut trailing = bytes.clone();
    trailing.push(0);
    assert!(decode_command("user.block", &trailing, bincode).is_err());
    for end in 0..bytes.len() {
        assert!(
            decode_command("user.block", &bytes[..end], bincode).is_err(),
            "{end}"
        );
    }

    // An invalid user id inside the action, written by hand: bincode decoding validates it.
    let mut invalid_user = block.clone();
    invalid_user.command.action = Action::BlockUser {
        user_id: user("bobby"),
    };
    let mut bytes = encode_command_bincode(&invalid_user).expect("encodes");
    let at = bytes
        .windows(5)
        .position(|window| window == b"bobby")
        .expect("the id is in the bytes");
    bytes[at + 2] = b' ';
    let error = decode_command("user.block", &bytes, bincode).expect_err("bad id");
    assert!(error.message.contains("must be 1-64 characters"), "{error}");

    // The same for the actor, which bincode carries as text.
    let mut bytes = encode_command_bincode(&block).expect("encodes");
    let at = bytes
        .windows(5)
        .position(|window| window == b"alice")
        .expect("the actor is in the bytes");
    bytes[at] = b'/';
    let error = decode_command("user.block", &bytes, bincode).expect_err("bad actor");
    assert!(error.message.starts_with("actor: "), "{error}");
}

#[test]
fn bincode_correlation_ids_are_bounded_too() {
    let mut command = alice_command(Action::ClearOutOfOffice);
    command.correlation_id = Some("é".repeat(128));
    let bytes = encode_command_bincode(&command).expect("encodes");
    assert_eq!(
        decode_command(
            "user.clear_out_of_office",
            &bytes,
            Some(CONTENT_TYPE_BINCODE)
        ),
        Ok(command.clone())
    );
    command.correlation_id = Some("x".repeat(129));
    let bytes = encode_command_bincode(&command).expect("encodes");
    let error = decode_command(
        "user.clear_out_of_office",
        &bytes,
        Some(CONTENT_TYPE_BINCODE),
    );
    assert!(error.is_err_and(|e| e.message.contains("correlation_id")));
}

#[test]
fn the_json_encoding_has_the_shape_of_section_1() {
    let command = alice_command(Action::SendMessage {
        target: MessageTarget::User(user("bob")),
        message_id: None,
        body: "hello".into(),
        reply_to: None,
        attachments: vec![AttachmentRef::Link("https://x.test".into())],
    });
    let value: Value = serde_json::from_slice(&encode_command_json(&command)).expect("JSON");
    assert_eq!(
        value,
        json!({
            "command_id": COMMAND,
            "actor": "alice",
            "client": "desktop",
            "data": {"to": "bob", "body": "hello", "attachments": [{"url": "https://x.test"}]},
        })
    );
    let room_id = RoomId(uuid(ROOM));
    let command = alice_command(Action::StartContract {
        contract_id: ContractId::parse("c").expect("id"),
        title: "t".into(),
        client: user("a"),
        freelancer: user("b"),
        room_id: Some(room_id),
    });
    let value: Value = serde_json::from_slice(&encode_command_json(&command)).expect("JSON");
    assert_eq!(value["data"]["room_id"], json!(ROOM));
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn any_command_round_trips_through_json(command in any_decoded_command()) {
        let command_type = command.command.action.type_name();
        let bytes = encode_command_json(&command);
        prop_assert_eq!(decode_command(command_type, &bytes, None), Ok(command));
    }

    #[test]
    fn any_command_round_trips_through_bincode(command in any_decoded_command()) {
        let command_type = command.command.action.type_name();
        let bytes = encode_command_bincode(&command).expect("encodes");
        prop_assert_eq!(
            decode_command(command_type, &bytes, Some(CONTENT_TYPE_BINCODE)),
            Ok(command)
        );
    }
}
