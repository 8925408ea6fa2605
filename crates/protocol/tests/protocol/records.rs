//! Stored events and the §2 / §4 messages: layouts, JSON shapes, round trips, precise request
//! errors, event headers.

use domain::{
    Actor, Attachment, CallId, CallMedia, Event, FileId, MessageId, NotificationFrequency,
    ReportId, ReportReason, RoomId, UserKind,
};
use protocol::upcast::SCHEMA_VERSION_V0;
use protocol::{
    decode_stored, encode_stored, event_from_type_and_data, AuditHead, CodecError, DevClockReply,
    DevClockRequest, EventHeaders, Format, LogReadReply, LogReadRequest, Notification,
    NotificationItem, RecordedEvent, Sha256, StoredEvent, CURRENT_SCHEMA_VERSION, FORMAT_VERSION,
    HEADER_CONTENT_TYPE, HEADER_POSITION, HEADER_STREAM, HEADER_VERSION, STORED_EVENT_BYTES_MAX,
};
use serde_json::{json, Value};

use crate::support::*;

/// Events of many shapes: options, lists, enums, timestamps, every id type.
pub fn sample_events() -> Vec<Event> {
    let sent_at = at("2026-11-27T10:00:00.123Z");
    vec![
        Event::UserRegistered {
            user_id: user("bob"),
            display_name: "Bob".into(),
            kind: UserKind::Agency,
        },
        Event::NotificationFrequencyChanged {
            user_id: user("bob"),
            frequency: NotificationFrequency::Every15Minutes,
        },
        Event::RoomRenamed {
            room_id: room(),
            name: "Ops".into(),
            renamed_by: user("alice"),
        },
        Event::MessageSent {
            room_id: room(),
            message_id: message(),
            author: user("alice"),
            body: "hello ünïcode \u{0}".into(),
            reply_to: Some(MessageId(uuid(OTHER_MESSAGE))),
            attachments: vec![
                Attachment::File {
                    file_id: FileId(uuid(FILE)),
                    name: "logo.png".into(),
                    size: 1234,
                    content_type: "image/png".into(),
                },
                Attachment::Link {
                    url: "https://www.dropbox.com/s/x".into(),
                    provider: Some("dropbox".into()),
                },
            ],
            sent_at,
        },
        Event::MessageReported {
            report_id: ReportId(uuid(EVENT)),
            room_id: room(),
            message_id: message(),
            reporter: user("carol"),
            reason: ReportReason::PaymentOutsidePlatform,
            details: None,
            reported_at: sent_at,
        },
        Event::CallEnded {
            room_id: room(),
            call_id: CallId(uuid(CALL)),
            ended_by: user("alice"),
            ended_at: sent_at,
            duration_ms: -5,
        },
        Event::CallStarted {
            room_id: room(),
            call_id: CallId(uuid(CALL)),
            media: CallMedia::Audio,
            started_by: user("alice"),
            started_at: sent_at,
        },
        Event::GroupRoomCreated {
            room_id: RoomId(uuid(ROOM)),
            name: "Launch".into(),
            creator: user("alice"),
            members: vec![user("alice"), user("bob")],
            created_at: sent_at,
        },
    ]
}

pub fn stored(event: Event) -> StoredEvent {
    StoredEvent::new(
        uuid(EVENT),
        command_id(),
        &Actor::User(user("alice")),
        at("2026-11-27T10:00:00.456Z"),
        event,
    )
}

fn recorded(event: Event) -> RecordedEvent {
    let stream = event.stream();
    RecordedEvent::new(42, stream, 7, [0xab; 32], &stored(event))
}

#[test]
fn stored_events_round_trip_and_start_with_format_and_schema() {
    for event in sample_events() {
        let record = stored(event);
        let bytes = encode_stored(&record).expect("encodes");
        assert_eq!(bytes[0], FORMAT_VERSION);
        assert_eq!(
            u16::from_le_bytes([bytes[1], bytes[2]]),
            CURRENT_SCHEMA_VERSION
        );
        assert_eq!(decode_stored(&bytes), Ok(record));
        for end in 0..bytes.len() {
            assert!(decode_stored(&bytes[..end]).is_err());
        }
        let mut trailing = bytes.clone();
        trailing.push(0);
        assert!(decode_stored(&trailing).is_err());
    }
}

#[test]
fn unknown_schemas_and_foreign_versions_are_refused() {
    let mut record = stored(sample_events().remove(0));
    record.schema_version = 2;
    assert!(matches!(encode_stored(&record), Err(CodecError::Encode(_))));
    record.schema_version = CURRENT_SCHEMA_VERSION;
    let mut bytes = encode_stored(&record).expect("encodes");
    bytes[1] = 7;
    assert_eq!(decode_stored(&bytes), Err(CodecError::UnknownSchema(7)));
    bytes[1] = 1;
    bytes[0] = 2;
    assert_eq!(decode_stored(&bytes), Err(CodecError::UnknownFormat(2)));
    // A v1 record relabelled v0 does not decode as v0.
    let mut bytes = encode_stored(&record).expect("encodes");
    bytes[1] = u8::try_from(SCHEMA_VERSION_V0).expect("small");
    assert!(decode_stored(&bytes).is_err());
}

#[test]
fn stored_events_are_bounded_when_written() {
    let record = stored(Event::RoomRenamed {
        room_id: room(),
        name: "x".repeat(usize::try_from(STORED_EVENT_BYTES_MAX).expect("fits")),
        renamed_by: user("alice"),
    });
    assert_eq!(
        encode_stored(&record),
        Err(CodecError::TooLarge {
            limit: STORED_EVENT_BYTES_MAX
        })
    );
}

#[test]
fn a_recorded_event_has_the_json_shape_of_section_2() {
    let event = recorded(Event::RoomRenamed {
        room_id: room(),
        name: "Ops".into(),
        renamed_by: user("alice"),
    });
    let text = String::from_utf8(event.encode(Format::Json).expect("encodes")).expect("UTF-8");
    let value: Value = serde_json::from_str(&text).expect("JSON");
    assert_eq!(
        value,
        json!({
            "position": 42,
            "stream": format!("room-{ROOM}"),
            "version": 7,
            "type": "room_renamed",
            "event_id": EVENT,
            "command_id": COMMAND,
            "actor": "alice",
            "recorded_at": "2026-11-27T10:00:00.456Z",
            "data": {"room_id": ROOM, "name": "Ops", "renamed_by": "alice"},
            "hash": "ab".repeat(32),
        })
    );
    // The keys come in the order of §2.
    let keys = [
        "position",
        "stream",
        "version",
        "type",
        "event_id",
        "command_id",
        "actor",
        "recorded_at",
        "data",
        "hash",
    ];
    let offsets: Vec<usize> = keys
        .iter()
        .map(|key| text.find(&format!("\"{key}\":")).expect("key present"))
        .collect();
    assert!(offsets.windows(2).all(|pair| pair[0] < pair[1]), "{text}");
}

#[test]
fn event_data_spells_enums_as_the_protocol_does() {
    let event = recorded(Event::NotificationFrequencyChanged {
        user_id: user("bob"),
        frequency: NotificationFrequency::Every15Minutes,
    });
    let data = event.data().expect("data");
    assert_eq!(data["frequency"], json!("every_15_minutes"));
    assert_eq!(
        event_from_type_and_data("notification_frequency_changed", data),
        Ok(event.event.clone())
    );
}

#[test]
fn recorded_events_round_trip_in_both_formats() {
    for event in sample_events() {
        let event = recorded(event);
        for format in [Format::Json, Format::Bincode] {
            let bytes = event.encode(format).expect("encodes");
            assert_eq!(
                event.encoded_len(format),
                Ok(u64::try_from(bytes.len()).expect("fits"))
            );
            assert_eq!(RecordedEvent::decode(&bytes, format), Ok(event.clone()));
        }
        let data = event.data().expect("data");
        assert_eq!(
            event_from_type_and_data(event.type_name(), data),
            Ok(event.event.clone())
        );
    }
}

#[test]
fn json_views_with_bad_types_data_or_hashes_are_refused() {
    let event = recorded(sample_events().remove(2));
    let good: Value =
        serde_json::from_slice(&event.encode(Format::Json).expect("encodes")).expect("JSON");
    let variants = [
        ("type", json!("room_exploded")),
        ("type", json!("user_registered")),
        ("data", json!([])),
        ("hash", json!("AB".repeat(32))),
        ("hash", json!("ab")),
        ("recorded_at", json!(12)),
    ];
    for (key, bad) in variants {
        let mut value = good.clone();
        value[key] = bad;
        let bytes = serde_json::to_vec(&value).expect("JSON");
        assert!(
            RecordedEvent::decode(&bytes, Format::Json).is_err(),
            "{key}"
        );
    }
    assert!(event_from_type_and_data("no_such_event", serde_json::Map::new()).is_err());
}

#[test]
fn log_read_requests_default_and_check_their_bounds() {
    let defaults = LogReadRequest {
        from: 1,
        max: 1000,
        raw: false,
    };
    for body in [&b""[..], b"  ", b"{}", b"{\"from\": null, \"other\": 1}"] {
        assert_eq!(
            LogReadRequest::decode(body, Format::Json),
            Ok(defaults),
            "{body:?}"
        );
    }
    assert_eq!(
        LogReadRequest::decode(br#"{"from": 1, "max": 1000}"#, Format::Json),
        Ok(defaults)
    );
    assert_eq!(
        LogReadRequest::decode(br#"{"from": 77, "max": 10000}"#, Format::Json),
        Ok(LogReadRequest {
            from: 77,
            max: 10_000,
            raw: false,
        })
    );
    let cases: [(&[u8], &str); 8] = [
        (br#"{"from": 0}"#, "from: must be at least 1"),
        (br#"{"from": -1}"#, "from: expected a non-negative integer"),
        (br#"{"from": "1"}"#, "from: expected a non-negative integer"),
        (br#"{"max": 0}"#, "max: must be 1 to 10000"),
        (br#"{"max": 10001}"#, "max: must be 1 to 10000"),
        (br#"{"max": 99999999999}"#, "max: must be 1 to 10000"),
        (br#"[1]"#, "payload: expected an object"),
        (br#"{"from": 1"#, "payload is not valid JSON"),
    ];
    for (body, expected) in cases {
        let error = LogReadRequest::decode(body, Format::Json).expect_err(expected);
        assert!(error.message.contains(expected), "{expected}: {error}");
    }
    let request = LogReadRequest::new(5, 20).expect("valid");
    let bytes = request.encode(Format::Bincode).expect("encodes");
    assert_eq!(LogReadRequest::decode(&bytes, Format::Bincode), Ok(request));
    assert_eq!(
        String::from_utf8(request.encode(Format::Json).expect("encodes")).expect("UTF-8"),
        r#"{"from":5,"max":20}"#
    );
    let zero = protocol::encode(&(0u64, 10u32)).expect("encodes");
    assert!(LogReadRequest::decode(&zero, Format::Bincode).is_err());
    assert!(LogReadRequest::new(1, 0).is_err());
}

#[test]
fn log_read_replies_round_trip_in_both_formats() {
    let reply = LogReadReply {
        events: sample_events().into_iter().map(recorded).collect(),
        head: 1042,
    };
    for format in [Format::Json, Format::Bincode] {
        let bytes = reply.encode(format).expect("encodes");
        assert_eq!(LogReadReply::decode(&bytes, format), Ok(reply.clone()));
    }
    let value: Value =
        serde_json::from_slice(&reply.encode(Format::Json).expect("encodes")).expect("JSON");
    assert_eq!(value["head"], json!(1042));
    assert_eq!(value["events"][0]["type"], json!("user_registered"));
}

#[test]
fn the_audit_head_is_position_and_hex_hash() {
    let head = AuditHead {
        position: 1042,
        hash: Sha256([0x0f; 32]),
    };
    let text = String::from_utf8(head.encode(Format::Json).expect("encodes")).expect("UTF-8");
    assert_eq!(
        text,
        format!(r#"{{"position":1042,"hash":"{}"}}"#, "0f".repeat(32))
    );
    for format in [Format::Json, Format::Bincode] {
        let bytes = head.encode(format).expect("encodes");
        assert_eq!(AuditHead::decode(&bytes, format), Ok(head));
    }
    // 32 raw bytes in bincode, after the position.
    assert_eq!(
        head.encode(Format::Bincode).map(|b| b.len()),
        Ok(1 + 8 + 32)
    );
}

#[test]
fn dev_clock_requests_take_exactly_one_field() {
    assert_eq!(
        DevClockRequest::decode(br#"{"advance_ms": 60000, "note": "x"}"#, Format::Json),
        Ok(DevClockRequest::AdvanceMs(60_000))
    );
    assert_eq!(
        DevClockRequest::decode(br#"{"set_ms": 1795000000000}"#, Format::Json),
        Ok(DevClockRequest::SetMs(1_795_000_000_000))
    );
    let cases: [(&[u8], &str); 4] = [
        (br#"{"advance_ms": 1, "set_ms": 2}"#, "not both"),
        (br#"{}"#, "advance_ms: missing"),
        (br#"{"set_ms": 1.5}"#, "set_ms: expected an integer"),
        (br#"{"advance_ms": "1"}"#, "advance_ms: expected an integer"),
    ];
    for (body, expected) in cases {
        let error = DevClockRequest::decode(body, Format::Json).expect_err(expected);
        assert!(error.message.contains(expected), "{expected}: {error}");
    }
    for request in [DevClockRequest::AdvanceMs(-5), DevClockRequest::SetMs(7)] {
        for format in [Format::Json, Format::Bincode] {
            let bytes = request.encode(format).expect("encodes");
            assert_eq!(DevClockRequest::decode(&bytes, format), Ok(request));
        }
    }
    assert_eq!(
        DevClockRequest::AdvanceMs(3).encode(Format::Json),
        Ok(br#"{"advance_ms":3}"#.to_vec())
    );
    let reply = DevClockReply { now_ms: 12 };
    assert_eq!(reply.encode(Format::Json), Ok(br#"{"now_ms":12}"#.to_vec()));
    let bytes = reply.encode(Format::Bincode).expect("encodes");
    assert_eq!(DevClockReply::decode(&bytes, Format::Bincode), Ok(reply));
}

#[test]
fn notifications_have_the_json_shape_of_section_2() {
    let notification = Notification {
        user_id: user("bob"),
        frequency: NotificationFrequency::Every15Minutes,
        items: vec![NotificationItem {
            room_id: room(),
            message_id: message(),
            author: user("alice"),
            preview: "hello".into(),
            sent_at: at("2026-11-27T10:00:00Z"),
        }],
    };
    let value: Value =
        serde_json::from_slice(&notification.encode(Format::Json).expect("encodes")).expect("JSON");
    assert_eq!(
        value,
        json!({
            "user_id": "bob",
            "frequency": "every_15_minutes",
            "items": [{
                "room_id": ROOM,
                "message_id": MESSAGE,
                "author": "alice",
                "preview": "hello",
                "sent_at": "2026-11-27T10:00:00.000Z",
            }],
        })
    );
    for format in [Format::Json, Format::Bincode] {
        let bytes = notification.encode(format).expect("encodes");
        assert_eq!(
            Notification::decode(&bytes, format),
            Ok(notification.clone())
        );
    }
}

#[test]
fn event_headers_round_trip_and_are_checked() {
    let event = recorded(sample_events().remove(3));
    let headers = EventHeaders::for_event(&event, Format::Bincode);
    let pairs = headers.to_pairs();
    assert_eq!(
        pairs,
        vec![
            (HEADER_POSITION.to_owned(), "42".to_owned()),
            (HEADER_STREAM.to_owned(), format!("room-{ROOM}")),
            (HEADER_VERSION.to_owned(), "7".to_owned()),
            (
                HEADER_CONTENT_TYPE.to_owned(),
                "application/x-bincode".to_owned()
            ),
        ]
    );
    let borrowed = pairs
        .iter()
        .map(|(name, value)| (name.as_str(), value.as_str()));
    assert_eq!(EventHeaders::from_pairs(borrowed), Ok(headers.clone()));
    let lowercase = [
        ("parlor-position", "42"),
        ("parlor-stream", "room-x"),
        ("parlor-version", "7"),
        ("x-other", "ignored"),
    ];
    let parsed = EventHeaders::from_pairs(lowercase).expect("parses");
    assert_eq!(parsed.format, Format::Json);
    let missing = [("Parlor-Position", "1"), ("Parlor-Stream", "s")];
    assert!(EventHeaders::from_pairs(missing)
        .is_err_and(|error| error.message.contains("Parlor-Version: missing")));
    let bad = [
        ("Parlor-Position", "-1"),
        ("Parlor-Stream", "s"),
        ("Parlor-Version", "1"),
    ];
    assert!(EventHeaders::from_pairs(bad).is_err());
    let foreign = [
        ("Parlor-Position", "1"),
        ("Parlor-Stream", "s"),
        ("Parlor-Version", "1"),
        ("Content-Type", "text/csv"),
    ];
    assert!(EventHeaders::from_pairs(foreign).is_err());
}

#[test]
fn the_published_bincode_spliced_from_stored_bytes_is_the_encoded_view() {
    for event in sample_events() {
        let stream = event.stream();
        let type_name = event.type_name();
        let bytes = encode_stored(&stored(event.clone())).expect("encodes");
        let (spliced_type, spliced) =
            protocol::recorded_bincode_from_stored(42, &stream, 7, [0xab; 32], &bytes)
                .expect("splices");
        assert_eq!(spliced_type, type_name);
        assert_eq!(
            spliced,
            recorded(event).encode(Format::Bincode).expect("encodes"),
            "{type_name}"
        );
    }
}

#[test]
fn the_published_bincode_of_a_record_that_is_not_the_current_schema_is_refused_or_upcast() {
    // Garbage is an error, as decoding it would be.
    assert!(protocol::recorded_bincode_from_stored(
        1,
        "room-x",
        1,
        [0; 32],
        &[FORMAT_VERSION, 9, 9]
    )
    .is_err());
    // A v1 record relabelled v0 goes the decoding way and is refused there.
    let mut bytes = encode_stored(&stored(sample_events().remove(0))).expect("encodes");
    bytes[1] = u8::try_from(SCHEMA_VERSION_V0).expect("small");
    assert!(protocol::recorded_bincode_from_stored(1, "user-bob", 1, [0; 32], &bytes).is_err());
}
