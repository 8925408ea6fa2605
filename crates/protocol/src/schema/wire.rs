//! JSON Schemas of the types whose JSON form is written by hand (their serde impls switch on
//! `is_human_readable`, so a derive would describe the bincode layout instead). Each schema
//! here describes the JSON that type's `Serialize` writes and its `Deserialize` reads; the
//! golden tests of the JSON form pin that JSON, and `schema_tests` validates examples of it.

use std::borrow::Cow;

use domain::event::EVENT_TYPES;
use domain::{CallId, ErrorCode, Event, MessageId, RoomId};
use schemars::{json_schema, JsonSchema, Schema, SchemaGenerator};
use serde_json::{Map, Value};

use crate::digest::Sha256;
use crate::messages::{
    DevClockRequest, LogReadReply, LogReadRequest, LOG_READ_EVENTS_DEFAULT, LOG_READ_EVENTS_MAX,
};
use crate::record::RecordedEvent;
use crate::reply::{EventRef, Reply, ReplyResult};

impl JsonSchema for Sha256 {
    fn schema_name() -> Cow<'static, str> {
        "Sha256".into()
    }

    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({ "type": "string", "pattern": "^[0-9a-f]{64}$" })
    }
}

impl JsonSchema for ReplyResult {
    fn schema_name() -> Cow<'static, str> {
        "ReplyResult".into()
    }

    fn json_schema(generator: &mut SchemaGenerator) -> Schema {
        json_schema!({
            "type": "object",
            "description": "The ids the command returns; only those present appear.",
            "properties": {
                "room_id": generator.subschema_for::<RoomId>(),
                "message_id": generator.subschema_for::<MessageId>(),
                "call_id": generator.subschema_for::<CallId>()
            }
        })
    }
}

impl JsonSchema for Reply {
    fn schema_name() -> Cow<'static, str> {
        "Reply".into()
    }

    fn json_schema(generator: &mut SchemaGenerator) -> Schema {
        json_schema!({
            "description": "The answer to a command (protocol.md §1).",
            "oneOf": [
                {
                    "type": "object",
                    "properties": {
                        "ok": { "const": true },
                        "position": { "type": "integer", "minimum": 0 },
                        "events": { "type": "array", "items": generator.subschema_for::<EventRef>() },
                        "result": generator.subschema_for::<ReplyResult>()
                    },
                    "required": ["ok", "position", "events"]
                },
                {
                    "type": "object",
                    "properties": {
                        "ok": { "const": false },
                        "error": error_object(generator)
                    },
                    "required": ["ok", "error"]
                }
            ]
        })
    }
}

/// `{"code", "message"}`: the error of a refused command, and of every HTTP error body.
pub fn error_object(generator: &mut SchemaGenerator) -> Value {
    json_schema!({
        "type": "object",
        "properties": {
            "code": generator.subschema_for::<ErrorCode>(),
            "message": { "type": "string", "description": "A sentence for people." }
        },
        "required": ["code", "message"]
    })
    .to_value()
}

/// The `data` schema of each event type, keyed by type name, taken from the derived schema of
/// the domain's [`Event`] (externally tagged: one single-key object per variant).
pub(crate) fn event_data_schemas(generator: &mut SchemaGenerator) -> Map<String, Value> {
    let event = Event::json_schema(generator).to_value();
    let variants = event.get("oneOf").and_then(Value::as_array);
    let mut data = Map::new();
    for variant in variants.into_iter().flatten() {
        let Some(properties) = variant.get("properties").and_then(Value::as_object) else {
            continue;
        };
        for (type_name, schema) in properties {
            let mut schema = schema.clone();
            if let (Some(object), Some(description)) =
                (schema.as_object_mut(), variant.get("description"))
            {
                object
                    .entry("description")
                    .or_insert_with(|| description.clone());
            }
            data.insert(type_name.clone(), schema);
        }
    }
    data
}

/// The schema of a [`RecordedEvent`] whose `type` and `data` are given.
pub(crate) fn recorded_event(generator: &mut SchemaGenerator, type_and_data: Value) -> Schema {
    let mut schema = json_schema!({
        "type": "object",
        "description": "One log entry (protocol.md §2). `raw` appears only when a log.read asked for it.",
        "properties": {
            "position": { "type": "integer", "minimum": 1 },
            "stream": { "type": "string", "description": "room-<uuid>, user-<id> or file-<uuid>" },
            "version": { "type": "integer", "minimum": 1 },
            "type": { "type": "string" },
            "event_id": { "type": "string", "format": "uuid" },
            "command_id": { "type": "string", "format": "uuid" },
            "actor": { "type": "string" },
            "recorded_at": generator.subschema_for::<domain::Timestamp>(),
            "data": { "type": "object" },
            "hash": generator.subschema_for::<Sha256>(),
            "raw": { "type": "string", "contentEncoding": "base64" }
        },
        "required": ["position", "stream", "version", "type", "event_id", "command_id", "actor",
                     "recorded_at", "data", "hash"]
    });
    schema.insert("allOf".into(), Value::Array(vec![type_and_data]));
    schema
}

/// `{"type": <const>, "data": <schema>}` for one event type.
pub(crate) fn type_and_data(type_name: &str, data: &Value) -> Value {
    serde_json::json!({
        "properties": { "type": { "const": type_name }, "data": data }
    })
}

impl JsonSchema for RecordedEvent {
    fn schema_name() -> Cow<'static, str> {
        "RecordedEvent".into()
    }

    fn json_schema(generator: &mut SchemaGenerator) -> Schema {
        let data = event_data_schemas(generator);
        let branches: Vec<Value> = EVENT_TYPES
            .iter()
            .filter_map(|type_name| {
                data.get(*type_name)
                    .map(|schema| type_and_data(type_name, schema))
            })
            .collect();
        recorded_event(generator, serde_json::json!({ "oneOf": branches }))
    }
}

impl JsonSchema for LogReadRequest {
    fn schema_name() -> Cow<'static, str> {
        "LogReadRequest".into()
    }

    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({
            "type": "object",
            "description": "parlor.log.read: a page of the log from `from`. An empty payload is all defaults.",
            "properties": {
                "from": { "type": "integer", "minimum": 1, "default": 1 },
                "max": { "type": "integer", "minimum": 1, "maximum": LOG_READ_EVENTS_MAX,
                         "default": LOG_READ_EVENTS_DEFAULT },
                "raw": { "type": "boolean", "default": false }
            }
        })
    }
}

impl JsonSchema for LogReadReply {
    fn schema_name() -> Cow<'static, str> {
        "LogReadReply".into()
    }

    fn json_schema(generator: &mut SchemaGenerator) -> Schema {
        json_schema!({
            "type": "object",
            "properties": {
                "events": { "type": "array", "items": generator.subschema_for::<RecordedEvent>() },
                "head": { "type": "integer", "minimum": 0 }
            },
            "required": ["events", "head"]
        })
    }
}

impl JsonSchema for DevClockRequest {
    fn schema_name() -> Cow<'static, str> {
        "DevClockRequest".into()
    }

    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({
            "type": "object",
            "description": "parlor.dev.clock: move the development clock by advance_ms, or set it to set_ms (ms since the epoch); exactly one.",
            "properties": {
                "advance_ms": { "type": "integer" },
                "set_ms": { "type": "integer" }
            },
            "oneOf": [
                { "required": ["advance_ms"], "not": { "required": ["set_ms"] } },
                { "required": ["set_ms"], "not": { "required": ["advance_ms"] } }
            ]
        })
    }
}
