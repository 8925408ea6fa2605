//! The optional `raw` addition to `parlor.log.read` (docs/protocol.md §2): a request may ask for
//! each event's stored record bytes. Old requests (JSON without `raw`, the 12-byte bincode
//! layout) keep decoding; replies that were not asked for them are the same bytes as before.

use base64::Engine as _;
use protocol::{
    CodecError, Format, LogReadReply, LogReadRequest, RecordedEvent, REQUEST_BYTES_MAX,
};
use serde_json::Value;

use crate::records::{sample_events, stored};

/// A reply of every sample event at positions 1.., each with made-up record bytes when `raw`.
fn reply(raw: bool) -> LogReadReply {
    let events = sample_events()
        .into_iter()
        .enumerate()
        .map(|(index, event)| {
            let position = index as u64 + 1;
            let stream = event.stream();
            let recorded =
                RecordedEvent::new(position, stream, 1, [position as u8; 32], &stored(event));
            if raw {
                // Lengths vary (0 included) and bytes cover every value, as stored records do.
                let bytes = (0..index * 37).map(|byte| (byte % 256) as u8).collect();
                recorded.with_raw(bytes)
            } else {
                recorded
            }
        })
        .collect();
    LogReadReply { events, head: 4242 }
}

#[test]
fn json_requests_read_raw_as_an_optional_boolean() {
    let decode = |body: &[u8]| LogReadRequest::decode(body, Format::Json);
    assert!(!decode(b"{}").expect("defaults").raw);
    assert!(!decode(br#"{"from": 3, "raw": false}"#).expect("valid").raw);
    assert!(!decode(br#"{"raw": null}"#).expect("null is absent").raw);
    let asked = decode(br#"{"from": 3, "max": 50, "raw": true}"#).expect("valid");
    assert_eq!(
        asked,
        LogReadRequest::new(3, 50).expect("valid").with_raw(true)
    );
    for bad in [
        &br#"{"raw": 1}"#[..],
        br#"{"raw": "true"}"#,
        br#"{"raw": [true]}"#,
    ] {
        let error = decode(bad).expect_err("not a boolean");
        assert!(error.message.contains("raw: expected a boolean"), "{error}");
    }
    // Encoding writes `raw` only when it is asked for: the text of before otherwise.
    let plain = LogReadRequest::new(3, 50).expect("valid");
    assert_eq!(
        plain.encode(Format::Json).expect("encodes"),
        br#"{"from":3,"max":50}"#
    );
    assert_eq!(
        plain.with_raw(true).encode(Format::Json).expect("encodes"),
        br#"{"from":3,"max":50,"raw":true}"#
    );
    assert_eq!(
        decode(&asked.encode(Format::Json).expect("encodes")),
        Ok(asked)
    );
}

#[test]
fn bincode_requests_decode_in_the_old_layout_and_with_the_trailing_flag() {
    // The layout of before the addition: format byte, from (u64), max (u32): 12 bytes of body.
    let old = protocol::encode(&(9u64, 300u32)).expect("encodes");
    assert_eq!(old.len(), 1 + 12);
    let plain = LogReadRequest::new(9, 300).expect("valid");
    assert_eq!(LogReadRequest::decode(&old, Format::Bincode), Ok(plain));
    // A request without raw is still exactly those bytes, so an old writer understands it.
    assert_eq!(plain.encode(Format::Bincode).expect("encodes"), old);

    let asked = plain.with_raw(true);
    let new = asked.encode(Format::Bincode).expect("encodes");
    assert_eq!(new.len(), old.len() + 1);
    assert_eq!(new[..old.len()], old[..]);
    assert_eq!(new[old.len()], 1);
    assert_eq!(LogReadRequest::decode(&new, Format::Bincode), Ok(asked));
    // An explicit `false` flag decodes too.
    let mut explicit_false = old.clone();
    explicit_false.push(0);
    assert_eq!(
        LogReadRequest::decode(&explicit_false, Format::Bincode),
        Ok(plain)
    );

    // Anything else after `max` is an error, not a silently ignored byte.
    for tail in [&[2u8][..], &[1, 0], &[0, 0], &[0xff]] {
        let mut bytes = old.clone();
        bytes.extend_from_slice(tail);
        assert!(
            LogReadRequest::decode(&bytes, Format::Bincode).is_err(),
            "tail {tail:?}"
        );
    }
    // Truncations of both layouts, and the bounds, are errors too.
    for end in 0..old.len() {
        assert!(LogReadRequest::decode(&new[..end], Format::Bincode).is_err());
    }
    let zero_max = protocol::encode(&(1u64, 0u32, true)).expect("encodes");
    let error = LogReadRequest::decode(&zero_max, Format::Bincode).expect_err("max 0");
    assert!(error.message.contains("max: must be 1 to 10000"), "{error}");
    let oversized = vec![1u8; REQUEST_BYTES_MAX as usize + 2];
    assert!(LogReadRequest::decode(&oversized, Format::Bincode).is_err());
}

#[test]
fn replies_without_raw_are_the_bytes_of_before() {
    let plain = reply(false);
    // JSON: no `raw` key anywhere.
    let json = plain.encode(Format::Json).expect("encodes");
    let value: Value = serde_json::from_slice(&json).expect("JSON");
    for event in value["events"].as_array().expect("events") {
        assert!(event.get("raw").is_none(), "{event}");
    }
    // Bincode: the list of events then the head, as the layout has always been (a tuple of
    // the two is their bytes back to back).
    let bincode = plain.encode(Format::Bincode).expect("encodes");
    let before = protocol::encode(&(&plain.events, plain.head)).expect("encodes");
    assert_eq!(bincode, before);
    for format in [Format::Json, Format::Bincode] {
        let bytes = plain.encode(format).expect("encodes");
        let decoded = LogReadReply::decode(&bytes, format).expect("decodes");
        assert_eq!(decoded, plain);
        assert!(decoded.events.iter().all(|event| event.raw.is_none()));
    }
}

#[test]
fn replies_with_raw_carry_every_events_record_bytes_in_both_formats() {
    let asked = reply(true);
    let json = asked.encode(Format::Json).expect("encodes");
    let value: Value = serde_json::from_slice(&json).expect("JSON");
    for (event, sent) in value["events"]
        .as_array()
        .expect("events")
        .iter()
        .zip(&asked.events)
    {
        // base64 with padding, as `parlor audit export` writes it.
        let text = event["raw"].as_str().expect("raw is a string");
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(text)
            .expect("base64");
        assert_eq!(Some(bytes), sent.raw, "{event}");
    }
    assert_eq!(LogReadReply::decode(&json, Format::Json), Ok(asked.clone()));

    let bincode = asked.encode(Format::Bincode).expect("encodes");
    assert_eq!(
        LogReadReply::decode(&bincode, Format::Bincode),
        Ok(asked.clone())
    );
    // The events and head are laid out as before; the record bytes follow as one list.
    let plain = reply(false).encode(Format::Bincode).expect("encodes");
    assert!(bincode.starts_with(&plain));
    let raws: Vec<&Vec<u8>> = asked.events.iter().filter_map(|e| e.raw.as_ref()).collect();
    let tail = protocol::encode(&raws).expect("encodes");
    assert_eq!(bincode[plain.len()..], tail[1..]);
    // A decoder of before (no tail expected) refuses the new bytes rather than misread them.
    assert!(protocol::decode::<LogReadReply>(&bincode, 1 << 20).is_err());
    // A tail with the wrong number of byte strings is refused.
    let short = protocol::encode(&raws[1..].to_vec()).expect("encodes");
    let mut wrong = plain.clone();
    wrong.extend_from_slice(&short[1..]);
    assert!(matches!(
        LogReadReply::decode(&wrong, Format::Bincode),
        Err(CodecError::Malformed(_))
    ));
    // Every truncation of the tail is an error too.
    for end in plain.len() + 1..bincode.len() {
        assert!(LogReadReply::decode(&bincode[..end], Format::Bincode).is_err());
    }
}

#[test]
fn record_bytes_are_for_every_event_of_a_reply_or_none() {
    let mut mixed = reply(true);
    mixed.events[1].raw = None;
    for format in [Format::Json, Format::Bincode] {
        assert!(mixed.encode(format).is_err(), "{format:?}");
    }
    // A lone event with record bytes: JSON shows them; bincode refuses rather than drop them.
    let event = reply(true).events.remove(2);
    let json = event.encode(Format::Json).expect("encodes");
    assert_eq!(
        RecordedEvent::decode(&json, Format::Json),
        Ok(event.clone())
    );
    assert!(event.encode(Format::Bincode).is_err());
    // Its bincode size counts the record bytes as its share of a reply's tail.
    let without = RecordedEvent {
        raw: None,
        ..event.clone()
    };
    let raw_len = event.raw.as_ref().map_or(0, Vec::len) as u64;
    assert_eq!(
        event.encoded_len(Format::Bincode),
        Ok(without.encoded_len(Format::Bincode).expect("size") + 8 + raw_len)
    );
    // Bad base64 in JSON is an error naming the field.
    let mut value: Value = serde_json::from_slice(&json).expect("JSON");
    value["raw"] = Value::from("not base64!");
    let bytes = serde_json::to_vec(&value).expect("JSON");
    let error = RecordedEvent::decode(&bytes, Format::Json).expect_err("bad base64");
    assert!(error.to_string().contains("raw"), "{error}");
}
