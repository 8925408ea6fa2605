//! Replies (protocol.md §1): the JSON of the two examples byte for byte, bincode round trips,
//! and the HTTP status of every error code (§3).

use domain::{CallId, CommandResult, ErrorCode, MessageId, Rejection, RoomId};
use proptest::prelude::*;
use protocol::{
    decode_reply, encode_reply, http_status, EventRef, Format, InvalidCommand, Reply, ReplyResult,
};
use serde_json::Value;

use crate::support::*;

fn accepted_example() -> Reply {
    Reply::accepted(
        1042,
        vec![EventRef::new(
            1042,
            format!("room-{ROOM}"),
            7,
            "message_sent",
        )],
        &CommandResult::Message {
            room_id: room(),
            message_id: message(),
        },
    )
}

fn rejected_example() -> Reply {
    Reply::rejected(&Rejection::new(
        ErrorCode::EditWindowExpired,
        "messages can be edited for 1 hour after sending",
    ))
}

fn json(reply: &Reply) -> String {
    String::from_utf8(encode_reply(reply, Format::Json).expect("encodes")).expect("UTF-8")
}

#[test]
fn the_accepted_reply_is_byte_exact() {
    let expected = format!(
        r#"{{"ok":true,"position":1042,"events":[{{"position":1042,"stream":"room-{ROOM}","version":7,"type":"message_sent"}}],"result":{{"room_id":"{ROOM}","message_id":"{MESSAGE}"}}}}"#
    );
    assert_eq!(json(&accepted_example()), expected);
}

#[test]
fn the_rejected_reply_is_byte_exact() {
    assert_eq!(
        json(&rejected_example()),
        r#"{"ok":false,"error":{"code":"edit_window_expired","message":"messages can be edited for 1 hour after sending"}}"#
    );
}

#[test]
fn the_section_1_examples_decode_as_written() {
    // The examples of protocol.md §1 with their spacing, the elided ids filled in.
    let accepted = format!(
        r#"{{"ok": true, "position": 1042, "events": [{{"position": 1042, "stream": "room-{ROOM}", "version": 7, "type": "message_sent"}}], "result": {{"room_id": "{ROOM}", "message_id": "{MESSAGE}"}}}}"#
    );
    let rejected = r#"{"ok": false, "error": {"code": "edit_window_expired", "message": "messages can be edited for 1 hour after sending"}}"#;
    assert_eq!(
        decode_reply(accepted.as_bytes(), Format::Json),
        Ok(accepted_example())
    );
    assert_eq!(
        decode_reply(rejected.as_bytes(), Format::Json),
        Ok(rejected_example())
    );
}

#[test]
fn a_reply_without_result_leaves_the_key_out_and_reads_null_as_none() {
    let reply = Reply::accepted(9, vec![], &CommandResult::None);
    assert_eq!(json(&reply), r#"{"ok":true,"position":9,"events":[]}"#);
    assert_eq!(
        decode_reply(
            br#"{"ok":true,"position":9,"events":[],"result":null}"#,
            Format::Json
        ),
        Ok(reply.clone())
    );
    assert_eq!(
        decode_reply(
            br#"{"ok":true,"position":9,"events":[],"extra":1}"#,
            Format::Json
        ),
        Ok(reply)
    );
}

#[test]
fn results_hold_only_the_ids_the_command_returns() {
    let room_id = RoomId(uuid(ROOM));
    let call_id = CallId(uuid(CALL));
    let room = Reply::accepted(1, vec![], &CommandResult::Room { room_id });
    assert_eq!(
        json(&room),
        format!(r#"{{"ok":true,"position":1,"events":[],"result":{{"room_id":"{ROOM}"}}}}"#)
    );
    let call = Reply::accepted(1, vec![], &CommandResult::Call { call_id });
    assert_eq!(
        json(&call),
        format!(r#"{{"ok":true,"position":1,"events":[],"result":{{"call_id":"{CALL}"}}}}"#)
    );
    assert_eq!(
        ReplyResult::from_command_result(&CommandResult::Message {
            room_id,
            message_id: MessageId(uuid(MESSAGE)),
        })
        .map(|result| (result.room_id, result.call_id)),
        Some((Some(room_id), None))
    );
}

#[test]
fn every_error_code_round_trips_in_both_formats() {
    for code in ErrorCode::ALL {
        let reply = Reply::rejected(&Rejection::new(code, "why"));
        let value: Value = serde_json::from_str(&json(&reply)).expect("JSON");
        assert_eq!(value["error"]["code"], Value::from(code.as_str()));
        for format in [Format::Json, Format::Bincode] {
            let bytes = encode_reply(&reply, format).expect("encodes");
            assert_eq!(
                decode_reply(&bytes, format),
                Ok(reply.clone()),
                "{code} {format:?}"
            );
        }
    }
}

#[test]
fn invalid_commands_become_invalid_command_replies() {
    let reply = Reply::from(InvalidCommand::new("data.body: missing"));
    assert_eq!(
        json(&reply),
        r#"{"ok":false,"error":{"code":"invalid_command","message":"data.body: missing"}}"#
    );
    assert_eq!(reply.code(), Some(ErrorCode::InvalidCommand));
}

#[test]
fn malformed_replies_are_errors() {
    for bytes in [
        &b""[..],
        b"{}",
        b"{\"ok\":\"yes\"}",
        b"{\"ok\":true}",
        b"{\"ok\":false,\"error\":{\"code\":\"no_such_code\",\"message\":\"m\"}}",
        b"[1]",
    ] {
        assert!(decode_reply(bytes, Format::Json).is_err(), "{bytes:?}");
    }
    assert!(decode_reply(&[1, 9, 9, 9, 9], Format::Bincode).is_err());
    let too_large = vec![b' '; 64 * 1024 + 1];
    assert!(decode_reply(&too_large, Format::Json).is_err());
}

#[test]
fn http_statuses_follow_section_3() {
    use ErrorCode::*;
    let expected = [
        (InvalidCommand, 400),
        (Forbidden, 403),
        (NotFound, 404),
        (NotMember, 404),
        (NotAuthor, 422),
        (Blocked, 422),
        (ContactInfoOutsideContract, 422),
        (DailyConversationLimit, 429),
        (EditWindowExpired, 422),
        (DeleteWindowExpired, 422),
        (AlreadyDeleted, 409),
        (DuplicateMessageId, 409),
        (CannotAddToDirect, 422),
        (CannotHideKind, 422),
        (CannotArchiveKind, 422),
        (PlatformNotSupported, 422),
        (BodyTooLong, 422),
        (EmptyMessage, 422),
        (FileTooLarge, 413),
        (CallInProgress, 409),
        (VersionConflict, 409),
        (DuplicateCommandId, 409),
        (Unavailable, 503),
    ];
    assert_eq!(expected.len(), ErrorCode::ALL.len());
    for (code, status) in expected {
        assert_eq!(http_status(code), status, "{code}");
    }
}

fn any_reply() -> impl Strategy<Value = Reply> {
    let event = (any::<u64>(), any_text(), any::<u64>(), any_text()).prop_map(
        |(position, stream, version, type_name)| {
            EventRef::new(position, stream, version, type_name)
        },
    );
    let result = (
        proptest::option::of(any_uuid()),
        proptest::option::of(any_uuid()),
        proptest::option::of(any_uuid()),
    )
        .prop_map(|(room, message, call)| ReplyResult {
            room_id: room.map(RoomId),
            message_id: message.map(MessageId),
            call_id: call.map(CallId),
        });
    prop_oneof![
        (
            any::<u64>(),
            proptest::collection::vec(event, 0..4),
            proptest::option::of(result)
        )
            .prop_map(|(position, events, result)| Reply::Ok {
                position,
                events,
                result
            }),
        (
            proptest::sample::select(ErrorCode::ALL.to_vec()),
            any_text()
        )
            .prop_map(|(code, message)| Reply::Err { code, message }),
    ]
}

proptest! {
    #[test]
    fn any_reply_round_trips(reply in any_reply()) {
        for format in [Format::Json, Format::Bincode] {
            let bytes = encode_reply(&reply, format).expect("encodes");
            prop_assert_eq!(decode_reply(&bytes, format), Ok(reply.clone()));
        }
    }
}
