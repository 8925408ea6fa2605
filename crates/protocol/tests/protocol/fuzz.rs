//! Fuzzing with proptest: arbitrary bytes, and valid encodings with bytes flipped or cut, into
//! every decoder. Each must return (Ok or Err), never panic or allocate without bound.

use domain::command::COMMAND_TYPES;
use proptest::prelude::*;
use protocol::{
    decode_command, decode_reply, decode_stored, encode_command_bincode, encode_command_json,
    encode_stored, AuditHead, DevClockRequest, EventHeaders, Format, LogReadReply, LogReadRequest,
    Notification, RecordedEvent, CONTENT_TYPE_BINCODE,
};

use crate::records::{sample_events, stored};
use crate::support::*;

fn any_bytes() -> impl Strategy<Value = Vec<u8>> {
    proptest::collection::vec(any::<u8>(), 0..512)
}

/// Bytes that start with the format byte, so bincode decoding gets past it.
fn framed_bytes() -> impl Strategy<Value = Vec<u8>> {
    any_bytes().prop_map(|mut bytes| {
        bytes.insert(0, protocol::FORMAT_VERSION);
        bytes
    })
}

/// Flips `flips` (index, xor) in `bytes` and cuts it at `cut` (a fraction of its length).
fn mutate(mut bytes: Vec<u8>, flips: &[(usize, u8)], cut: Option<usize>) -> Vec<u8> {
    if bytes.is_empty() {
        return bytes;
    }
    for (index, xor) in flips {
        let at = index % bytes.len();
        bytes[at] ^= xor;
    }
    if let Some(cut) = cut {
        bytes.truncate(cut % (bytes.len() + 1));
    }
    bytes
}

fn mutations() -> impl Strategy<Value = (Vec<(usize, u8)>, Option<usize>)> {
    (
        proptest::collection::vec((any::<usize>(), 1u8..), 0..4),
        proptest::option::of(any::<usize>()),
    )
}

fn decode_everything(bytes: &[u8]) {
    for command_type in COMMAND_TYPES {
        let _ = decode_command(command_type, bytes, None);
        let _ = decode_command(command_type, bytes, Some(CONTENT_TYPE_BINCODE));
    }
    let _ = decode_command("no.such_type", bytes, None);
    for format in [Format::Json, Format::Bincode] {
        let _ = decode_reply(bytes, format);
        let _ = RecordedEvent::decode(bytes, format);
        let _ = LogReadRequest::decode(bytes, format);
        let _ = LogReadReply::decode(bytes, format);
        let _ = AuditHead::decode(bytes, format);
        let _ = DevClockRequest::decode(bytes, format);
        let _ = Notification::decode(bytes, format);
    }
    let _ = decode_stored(bytes);
    if let Ok(text) = std::str::from_utf8(bytes) {
        let _ = EventHeaders::from_pairs([("Parlor-Position", text), ("Content-Type", text)]);
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn arbitrary_bytes_never_panic(bytes in any_bytes()) {
        decode_everything(&bytes);
    }

    #[test]
    fn arbitrary_framed_bytes_never_panic(bytes in framed_bytes()) {
        decode_everything(&bytes);
    }

    #[test]
    fn mutated_commands_never_panic(
        command in any_decoded_command(),
        (flips, cut) in mutations(),
    ) {
        let command_type = command.command.action.type_name();
        let bincode = encode_command_bincode(&command).expect("encodes");
        let bincode = mutate(bincode, &flips, cut);
        let _ = decode_command(command_type, &bincode, Some(CONTENT_TYPE_BINCODE));
        let json = mutate(encode_command_json(&command), &flips, cut);
        let _ = decode_command(command_type, &json, None);
    }

    #[test]
    fn mutated_stored_events_never_panic(
        index in 0usize..8,
        (flips, cut) in mutations(),
    ) {
        let events = sample_events();
        let record = stored(events[index % events.len()].clone());
        let bytes = mutate(encode_stored(&record).expect("encodes"), &flips, cut);
        let decoded = decode_stored(&bytes);
        if flips.is_empty() && cut.is_none() {
            prop_assert_eq!(decoded, Ok(record));
        }
    }

    #[test]
    fn mutated_json_views_never_panic(
        index in 0usize..8,
        (flips, cut) in mutations(),
    ) {
        let events = sample_events();
        let event = RecordedEvent::new(1, "s", 1, [1; 32], &stored(events[index % events.len()].clone()));
        for format in [Format::Json, Format::Bincode] {
            let bytes = mutate(event.encode(format).expect("encodes"), &flips, cut);
            let _ = RecordedEvent::decode(&bytes, format);
        }
    }
}
