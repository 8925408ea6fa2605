//! The document's own consistency: every subject of the contract (and every one named in
//! docs/protocol.md and docs/queries.md) is there, and every `$ref` points at something in the
//! document.

use serde_json::Value;

use super::*;

fn built() -> Value {
    match document() {
        Ok(document) => document,
        Err(why) => panic!("the AsyncAPI document cannot be built: {why}"),
    }
}

/// Every `$ref` string in `value`.
fn refs<'a>(value: &'a Value, found: &mut Vec<&'a str>) {
    match value {
        Value::Object(map) => {
            for (key, child) in map {
                match (key.as_str(), child) {
                    ("$ref", Value::String(target)) => found.push(target),
                    _ => refs(child, found),
                }
            }
        }
        Value::Array(items) => items.iter().for_each(|item| refs(item, found)),
        _ => {}
    }
}

#[test]
fn every_reference_resolves_inside_the_document() {
    let document = built();
    let mut found = Vec::new();
    refs(&document, &mut found);
    assert!(found.len() > 100, "{}", found.len());
    for target in found {
        let pointer = target.strip_prefix('#').unwrap_or("not local");
        assert!(
            document.pointer(pointer).is_some(),
            "{target} does not resolve"
        );
    }
}

#[test]
fn every_command_event_and_request_subject_is_described() {
    let document = built();
    let channel = |id: &str| document["channels"][id].clone();
    for command_type in COMMAND_TYPES {
        let id = format!("cmd.{command_type}");
        assert_eq!(channel(&id)["address"], format!("parlor.{id}"));
        let operation = &document["operations"][format!("receive.{id}")];
        assert_eq!(
            operation["reply"]["messages"][0]["$ref"], "#/channels/inbox/messages/Reply",
            "{id}"
        );
    }
    for event_type in EVENT_TYPES {
        let id = format!("evt.{event_type}");
        assert_eq!(channel(&id)["address"], format!("parlor.{id}"));
        assert_eq!(
            document["operations"][format!("send.{id}")]["action"],
            "send"
        );
    }
    for (id, reply) in [
        ("log.read", "LogReadReply"),
        ("dev.clock", "DevClockReply"),
        ("admin.replay", "ReplayReply"),
        ("writer.ping", "WriterPingReply"),
        ("query.rooms", "QueryReply"),
        ("presence.heartbeat", "PresenceHeartbeatReply"),
    ] {
        let operation = &document["operations"][format!("receive.{id}")];
        assert_eq!(
            operation["reply"]["messages"][0]["$ref"],
            format!("#/channels/inbox/messages/{reply}"),
            "{id}"
        );
    }
    for id in ["audit.head", "notify", "admin.replay.progress"] {
        assert_eq!(
            document["operations"][format!("send.{id}")]["action"],
            "send"
        );
    }
    assert_eq!(channel("notify")["address"], "parlor.notify.{user_id}");
}

#[test]
fn each_operation_names_messages_of_its_own_channel() {
    let document = built();
    let Some(operations) = document["operations"].as_object() else {
        panic!("no operations");
    };
    for (id, operation) in operations {
        let channel = operation["channel"]["$ref"].as_str().unwrap_or_default();
        for message in operation["messages"].as_array().into_iter().flatten() {
            let target = message["$ref"].as_str().unwrap_or_default();
            assert!(
                target.starts_with(&format!("{channel}/messages/")),
                "{id}: {target} is not a message of {channel}"
            );
        }
    }
}

#[test]
fn the_payload_schemas_are_draft_07_with_definitions_among_the_components() {
    let text = built().to_string();
    assert!(!text.contains("#/$defs/"), "a 2020-12 reference is left");
    assert!(
        !text.contains("\"prefixItems\""),
        "a 2020-12 keyword is left"
    );
}

/// The subjects written in backquotes in `text`: `parlor.…` or `<prefix>.…`, the prefix made
/// `parlor`.
fn subjects_named_in(text: &str) -> Vec<String> {
    text.split('`')
        .skip(1)
        .step_by(2)
        .filter(|span| !span.contains(char::is_whitespace))
        .filter_map(|span| {
            span.strip_prefix("parlor.")
                .or_else(|| span.strip_prefix("<prefix>."))
                .map(|rest| format!("parlor.{rest}"))
        })
        .collect()
}

/// Whether `address` is an instance of `subject`, where each `<placeholder>` of the subject
/// stands for one or more characters (a command type has dots; the address may have `{name}`).
fn is_instance(subject: &str, address: &str) -> bool {
    let mut literals = Vec::new();
    let mut rest = subject;
    while let Some(open) = rest.find('<') {
        literals.push(&rest[..open]);
        rest = rest[open..]
            .find('>')
            .map_or("", |close| &rest[open + close + 1..]);
    }
    let Some((first, others)) = literals.split_first() else {
        return subject == address;
    };
    let Some(mut remaining) = address.strip_prefix(first) else {
        return false;
    };
    for literal in others.iter().chain(std::iter::once(&rest)) {
        // The placeholder before this literal takes at least one character.
        let found = match remaining.get(1..) {
            Some(_) if literal.is_empty() => Some(remaining.len()),
            Some(tail) => tail.find(literal).map(|at| at + 1),
            None => None,
        };
        let Some(at) = found else {
            return false;
        };
        remaining = &remaining[at + literal.len()..];
    }
    remaining.is_empty()
}

#[test]
fn placeholders_stand_for_one_or_more_characters() {
    assert!(is_instance("parlor.cmd.<type>", "parlor.cmd.message.send"));
    assert!(is_instance(
        "parlor.notify.<user_id>",
        "parlor.notify.{user_id}"
    ));
    assert!(is_instance(
        "parlor.admin.replay.<model>.progress",
        "parlor.admin.replay.{model}.progress"
    ));
    assert!(is_instance("parlor.log.read", "parlor.log.read"));
    assert!(!is_instance("parlor.log.read", "parlor.log.reads"));
    assert!(!is_instance("parlor.cmd.<type>", "parlor.cmd."));
    assert!(!is_instance(
        "parlor.admin.replay.<model>.progress",
        "parlor.admin.replay.x"
    ));
}

#[test]
fn every_subject_of_the_protocol_documents_is_a_channel() {
    let document = built();
    let addresses: Vec<&str> = document["channels"]
        .as_object()
        .into_iter()
        .flatten()
        .filter_map(|(_, channel)| channel["address"].as_str())
        .collect();
    let docs = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs");
    let mut named = Vec::new();
    for file in ["protocol.md", "queries.md"] {
        let path = docs.join(file);
        let text = std::fs::read_to_string(&path)
            .unwrap_or_else(|error| panic!("{}: {error}", path.display()));
        named.extend(subjects_named_in(&text));
    }
    assert!(named.len() >= 12, "only {named:?} found");
    let missing: Vec<&String> = named
        .iter()
        .filter(|subject| {
            !addresses
                .iter()
                .any(|address| is_instance(subject, address))
        })
        .collect();
    assert!(
        missing.is_empty(),
        "subjects of docs/protocol.md or docs/queries.md without a channel in the AsyncAPI \
         document: {missing:?}"
    );
}

#[test]
fn the_yaml_keeps_every_top_level_section() {
    let document = built();
    let Some(sections) = document.as_object() else {
        panic!("the document is not an object");
    };
    for section in sections.keys() {
        assert!(
            TOP_LEVEL_ORDER.contains(&section.as_str()),
            "{section} would be left out"
        );
    }
    let text = render_yaml().unwrap_or_default();
    assert!(
        text.contains("\nasyncapi: \"3.0.0\"\ninfo:\n"),
        "{}",
        &text[..200]
    );
}
