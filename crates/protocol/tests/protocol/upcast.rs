//! Schema v0 read as today's events, from the checked-in fixture `tests/fixtures/events_v0.bin`.
//!
//! The fixture was generated once by `v0_records()` below:
//!
//! ```text
//! cargo test -p protocol --test protocol -- --ignored write_the_v0_fixture
//! ```
//!
//! Its framing: each record as a little-endian u32 length followed by that many bytes (the
//! stored bytes, format byte first). It must never be regenerated after a layout change: it
//! stands for records already in someone's log. `the_v0_fixture_is_what_v0_encoding_writes`
//! catches a change to the v0 types that would make them unable to read it.

use std::path::PathBuf;

use domain::{Event, MessageId, Timestamp};
use protocol::upcast::{encode_v0, upcast_v0, LegacyEventV0, StoredEventV0, SCHEMA_VERSION_V0};
use protocol::{decode_stored, encode_stored, StoredEvent, CURRENT_SCHEMA_VERSION};

use crate::support::*;

const FIXTURE: &[u8] = include_bytes!("../fixtures/events_v0.bin");

fn fixture_path() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/events_v0.bin")
}

fn v0(event: LegacyEventV0, recorded_at: Timestamp) -> StoredEventV0 {
    StoredEventV0 {
        schema_version: SCHEMA_VERSION_V0,
        event_id: uuid(EVENT),
        command_id: command_id(),
        actor: "alice".into(),
        recorded_at,
        event,
    }
}

/// The records in the fixture, in order.
fn v0_records() -> Vec<StoredEventV0> {
    let sent = at("2025-03-01T09:30:00.250Z");
    vec![
        v0(
            LegacyEventV0::MessageSent {
                room_id: room(),
                message_id: message(),
                author: user("alice"),
                body: "first message, before replies existed".into(),
                sent_at: sent,
            },
            sent,
        ),
        v0(
            LegacyEventV0::MessageEdited {
                room_id: room(),
                message_id: message(),
                body: "first message (edited)".into(),
                edited_at: sent.plus_millis(60_000),
            },
            sent.plus_millis(60_000),
        ),
        v0(
            LegacyEventV0::MessageDeleted {
                room_id: room(),
                message_id: message(),
                deleted_at: sent.plus_millis(120_000),
            },
            sent.plus_millis(120_000),
        ),
    ]
}

/// What the fixture's records are today.
fn expected_today() -> Vec<StoredEvent> {
    let sent = at("2025-03-01T09:30:00.250Z");
    let current = |event: Event, recorded_at: Timestamp| StoredEvent {
        schema_version: CURRENT_SCHEMA_VERSION,
        event_id: uuid(EVENT),
        command_id: command_id(),
        actor: "alice".into(),
        recorded_at,
        event,
    };
    vec![
        current(
            Event::MessageSent {
                room_id: room(),
                message_id: message(),
                author: user("alice"),
                body: "first message, before replies existed".into(),
                reply_to: None::<MessageId>,
                attachments: vec![],
                sent_at: sent,
            },
            sent,
        ),
        current(
            Event::MessageEdited {
                room_id: room(),
                message_id: message(),
                body: "first message (edited)".into(),
                edited_at: sent.plus_millis(60_000),
            },
            sent.plus_millis(60_000),
        ),
        current(
            Event::MessageDeleted {
                room_id: room(),
                message_id: message(),
                deleted_at: sent.plus_millis(120_000),
            },
            sent.plus_millis(120_000),
        ),
    ]
}

/// The fixture's framing: u32 little-endian length, then the record.
fn frame(records: &[Vec<u8>]) -> Vec<u8> {
    let mut bytes = Vec::new();
    for record in records {
        let len = u32::try_from(record.len()).expect("small record");
        bytes.extend_from_slice(&len.to_le_bytes());
        bytes.extend_from_slice(record);
    }
    bytes
}

fn unframe(mut bytes: &[u8]) -> Vec<&[u8]> {
    let mut records = Vec::new();
    while !bytes.is_empty() {
        let (len, rest) = bytes.split_at(4);
        let len = u32::from_le_bytes(len.try_into().expect("4 bytes"));
        let (record, rest) = rest.split_at(usize::try_from(len).expect("fits"));
        records.push(record);
        bytes = rest;
    }
    records
}

fn encoded_v0_records() -> Vec<Vec<u8>> {
    v0_records()
        .iter()
        .map(|record| encode_v0(record).expect("encodes"))
        .collect()
}

#[test]
#[ignore = "writes the checked-in fixture; run once by hand, never after a layout change"]
fn write_the_v0_fixture() {
    std::fs::write(fixture_path(), frame(&encoded_v0_records())).expect("fixture written");
}

#[test]
fn the_v0_fixture_decodes_into_todays_events() {
    let records = unframe(FIXTURE);
    assert_eq!(records.len(), 3);
    let decoded: Vec<StoredEvent> = records
        .iter()
        .map(|bytes| decode_stored(bytes).expect("a v0 record decodes"))
        .collect();
    assert_eq!(decoded, expected_today());
    // Read back, they are re-encoded in today's schema, never in v0.
    for record in &decoded {
        let bytes = encode_stored(record).expect("encodes");
        assert_eq!(
            u16::from_le_bytes([bytes[1], bytes[2]]),
            CURRENT_SCHEMA_VERSION
        );
    }
}

#[test]
fn the_v0_fixture_is_what_v0_encoding_writes() {
    assert_eq!(FIXTURE, frame(&encoded_v0_records()).as_slice());
    assert_eq!(
        v0_records().into_iter().map(upcast_v0).collect::<Vec<_>>(),
        expected_today()
    );
}

#[test]
fn v0_records_start_with_schema_zero() {
    for record in unframe(FIXTURE) {
        assert_eq!(record[0], protocol::FORMAT_VERSION);
        assert_eq!(
            u16::from_le_bytes([record[1], record[2]]),
            SCHEMA_VERSION_V0
        );
    }
    let mut wrong = v0_records().remove(0);
    wrong.schema_version = 1;
    assert!(encode_v0(&wrong).is_err());
}

#[test]
fn the_published_bincode_of_a_v0_record_is_its_upcast_view() {
    for (bytes, today) in encoded_v0_records().iter().zip(expected_today()) {
        let stream = today.event.stream();
        let (type_name, published) =
            protocol::recorded_bincode_from_stored(5, &stream, 2, [1; 32], bytes).expect("upcasts");
        let view = protocol::RecordedEvent::from_stored(5, stream, 2, [1; 32], today);
        assert_eq!(type_name, view.type_name());
        assert_eq!(
            published,
            view.encode(protocol::Format::Bincode).expect("encodes")
        );
    }
}
