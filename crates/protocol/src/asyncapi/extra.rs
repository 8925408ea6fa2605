//! The parts of the AsyncAPI document the schema registry does not hold: the headers of
//! commands and events, and the messages whose types live outside `protocol` (the writer's
//! ping, the presence heartbeat, the query reply envelope, the live rebuild's request, reply and
//! progress), written from protocol.md §1, §2, §4 and docs/queries.md.

use schemars::SchemaGenerator;
use serde_json::{json, Value};

use crate::schema::error_object;

/// The live rebuild's messages and what each is.
pub(super) const ADMIN_MESSAGES: [(&str, &str); 3] = [
    (
        "ReplayRequest",
        "Start a live rebuild (from position 1 only).",
    ),
    (
        "ReplayReply",
        "The rebuild is accepted with its id, or refused.",
    ),
    ("ReplayProgress", "How far a live rebuild is."),
];

/// The writer's ping messages and what each is.
pub(super) const PING_MESSAGES: [(&str, &str); 2] = [
    ("WriterPingRequest", "Is a writer there?"),
    ("WriterPingReply", "The writer's head position."),
];

/// The presence heartbeat's messages and what each is.
pub(super) const PRESENCE_MESSAGES: [(&str, &str); 2] = [
    ("PresenceHeartbeat", "A user was seen (R-A1)."),
    (
        "PresenceHeartbeatReply",
        "The heartbeat is recorded, or refused.",
    ),
];

/// `{"ok": false, "error": {"code", "message"}}`, the refusal of a request.
fn refusal(generator: &mut SchemaGenerator) -> Value {
    json!({
        "type": "object",
        "properties": {
            "ok": { "const": false },
            "error": error_object(generator),
        },
        "required": ["ok", "error"],
    })
}

/// The schemas, by component name.
pub(super) fn schemas(generator: &mut SchemaGenerator) -> Vec<(&'static str, Value)> {
    let position = json!({ "type": "integer", "minimum": 0, "description": "A log position." });
    vec![
        (
            "WriterPingRequest",
            json!({ "type": "object", "description": "Any payload; `{}` by convention." }),
        ),
        (
            "WriterPingReply",
            json!({
                "type": "object",
                "properties": { "head": position },
                "required": ["head"],
            }),
        ),
        (
            "PresenceHeartbeat",
            json!({
                "type": "object",
                "properties": {
                    "user_id": { "type": "string" },
                    "at_ms": {
                        "type": "integer",
                        "description": "When, in ms since the epoch (absent: the replica's clock).",
                    },
                },
                "required": ["user_id"],
            }),
        ),
        (
            "PresenceHeartbeatReply",
            json!({
                "description": "Refusal code: `invalid_command` (a malformed heartbeat).",
                "oneOf": [
                    {
                        "type": "object",
                        "properties": {
                            "ok": { "const": true },
                            "position": position,
                            "data": { "type": "object" },
                        },
                        "required": ["ok", "position", "data"],
                    },
                    refusal(generator),
                ],
            }),
        ),
        (
            "QueryReply",
            json!({
                "description": "docs/queries.md: `data` is the operation's answer in the shapes \
                                of protocol.md §3 (`{\"name\", \"position\"}` for `status`).",
                "oneOf": [
                    {
                        "type": "object",
                        "properties": {
                            "ok": { "const": true },
                            "position": position,
                            "data": {},
                        },
                        "required": ["ok", "position", "data"],
                    },
                    refusal(generator),
                ],
            }),
        ),
        (
            "ReplayRequest",
            json!({
                "type": "object",
                "properties": {
                    "from": {
                        "type": "integer",
                        "const": 1,
                        "description": "Live rebuilds start at position 1 (absent: 1).",
                    }
                },
            }),
        ),
        (
            "ReplayReply",
            json!({
                "description": "Refusal codes: `rebuild_in_progress` (one rebuild per model at \
                                a time), `invalid_command`.",
                "oneOf": [
                    {
                        "type": "object",
                        "properties": {
                            "ok": { "const": true },
                            "position": position,
                            "data": {
                                "type": "object",
                                "properties": {
                                    "model": { "type": "string" },
                                    "rebuild_id": { "type": "string" },
                                },
                                "required": ["model", "rebuild_id"],
                            },
                        },
                        "required": ["ok", "position", "data"],
                    },
                    refusal(generator),
                ],
            }),
        ),
        (
            "ReplayProgress",
            json!({
                "type": "object",
                "properties": {
                    "model": { "type": "string" },
                    "rebuild_id": { "type": "string" },
                    "phase": {
                        "enum": ["rebuilding", "finishing", "swapping", "done", "failed"],
                    },
                    "position": position,
                    "head": position,
                    "events_per_s": { "type": "number" },
                    "elapsed_ms": { "type": "integer", "minimum": 0 },
                    "done": { "type": "boolean" },
                    "error": { "type": ["string", "null"] },
                },
                "required": [
                    "model", "rebuild_id", "phase", "position", "head", "events_per_s",
                    "elapsed_ms", "done", "error",
                ],
            }),
        ),
    ]
}

/// The headers a command may carry (protocol.md §1).
pub(super) fn command_headers() -> Value {
    json!({
        "type": "object",
        "properties": {
            "Content-Type": {
                "enum": ["application/json", "application/x-bincode"],
                "description": "The request's encoding, and the reply's (JSON when absent).",
            }
        },
    })
}

/// The headers of every published event (protocol.md §2).
pub(super) fn event_headers() -> Value {
    let number = |description: &str| json!({ "type": "string", "pattern": "^[0-9]+$", "description": description });
    json!({
        "type": "object",
        "properties": {
            "Parlor-Position": number("The event's log position."),
            "Parlor-Stream": { "type": "string", "description": "The event's stream." },
            "Parlor-Version": number("The event's version in its stream."),
            "Content-Type": {
                "enum": ["application/x-bincode", "application/json"],
                "description": "Bincode by default, JSON with `--event-format json`.",
            },
        },
        "required": ["Parlor-Position", "Parlor-Stream", "Parlor-Version", "Content-Type"],
    })
}
