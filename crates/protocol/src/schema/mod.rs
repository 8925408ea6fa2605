//! The JSON Schemas of the outside contract, by name: the one list the `parlor schema`
//! subcommand, the checked-in `docs/schemas/` files (and the test that they have not drifted),
//! the gateway's OpenAPI document and the AsyncAPI document take their schemas from.
//!
//! Names: `command.<type>` for each `parlor.cmd.<type>` payload, `event.<type>` for each
//! `parlor.evt.<type>` event in JSON (a [`RecordedEvent`] of that type), and the Rust type's
//! name for the rest (`Reply`, `RecordedEvent`, `LogReadRequest`, …; `query.<model>` for the
//! internal query requests). Each schema says what the JSON is, in one direction: an input's
//! optional fields may be absent or `null` (as the decoders read them), an output's fields are
//! all written ([`Direction`]).
//!
//! Every type's schema comes from `schemars` (derived where serde is derived, written out in
//! [`wire`] where the JSON form is written by hand, and in [`commands`] for the field-by-field
//! command decoder).

// Schema-only types: they are described, never built or read.
#[allow(dead_code)]
mod commands;
mod wire;

use domain::command::COMMAND_TYPES;
use domain::event::EVENT_TYPES;
use domain::ErrorCode;
use schemars::generate::SchemaSettings;
use schemars::{JsonSchema, Schema, SchemaGenerator};
use serde_json::{Map, Value};

use crate::messages::{
    AuditHead, DevClockReply, DevClockRequest, LogReadReply, LogReadRequest, Notification,
};
use crate::query::{FilesQuery, ModerationQuery, RoomsQuery, SearchQuery, TimelineQuery};
use crate::record::RecordedEvent;
use crate::reply::Reply;

pub use wire::error_object;

/// The command that rewrites `docs/schemas/` from the code; named by the drift test.
pub const WRITE_COMMAND: &str = "cargo run -p parlor -- schema --write docs/schemas";

/// Which way a payload travels, which decides whether optional fields are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    /// Sent to Parlor: optional fields may be left out or `null`.
    Input,
    /// Sent by Parlor: every field is written (`null` when empty) unless documented otherwise.
    Output,
}

/// What a published schema describes, for tools that map schemas to subjects and routes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Describes {
    /// The payload of `parlor.cmd.<type>`.
    Command(&'static str),
    /// An event of `parlor.evt.<type>`, in JSON.
    Event(&'static str),
    /// Another message or type of the contract, named by its Rust type.
    Message,
}

/// One published schema.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Published {
    /// The schema's name, also its file name without `.json`.
    pub name: String,
    /// What it describes.
    pub describes: Describes,
    /// Its direction.
    pub direction: Direction,
}

/// Builds a schema into a generator.
type Build = fn(&mut SchemaGenerator) -> Schema;

/// The messages other than commands and events, with their direction and builder.
const MESSAGES: [(&str, Direction, Build); 15] = [
    ("Reply", Direction::Output, Reply::json_schema),
    (
        "RecordedEvent",
        Direction::Output,
        RecordedEvent::json_schema,
    ),
    ("ErrorCode", Direction::Output, ErrorCode::json_schema),
    (
        "LogReadRequest",
        Direction::Input,
        LogReadRequest::json_schema,
    ),
    ("LogReadReply", Direction::Output, LogReadReply::json_schema),
    ("AuditHead", Direction::Output, AuditHead::json_schema),
    (
        "DevClockRequest",
        Direction::Input,
        DevClockRequest::json_schema,
    ),
    (
        "DevClockReply",
        Direction::Output,
        DevClockReply::json_schema,
    ),
    ("Notification", Direction::Output, Notification::json_schema),
    ("Error", Direction::Output, error_body),
    (
        "query.rooms",
        Direction::Output,
        query_request::<RoomsQuery>,
    ),
    (
        "query.timeline",
        Direction::Output,
        query_request::<TimelineQuery>,
    ),
    (
        "query.files",
        Direction::Output,
        query_request::<FilesQuery>,
    ),
    (
        "query.search",
        Direction::Output,
        query_request::<SearchQuery>,
    ),
    (
        "query.moderation",
        Direction::Output,
        query_request::<ModerationQuery>,
    ),
];

/// The name of `parlor.cmd.<command_type>`'s schema.
pub fn command_schema_name(command_type: &str) -> String {
    format!("command.{command_type}")
}

/// The name of `parlor.evt.<event_type>`'s schema.
pub fn event_schema_name(event_type: &str) -> String {
    format!("event.{event_type}")
}

/// Every published schema, commands first, then events, then the other messages.
pub fn published() -> Vec<Published> {
    let commands = COMMAND_TYPES.iter().map(|command_type| Published {
        name: command_schema_name(command_type),
        describes: Describes::Command(command_type),
        direction: Direction::Input,
    });
    let events = EVENT_TYPES.iter().map(|event_type| Published {
        name: event_schema_name(event_type),
        describes: Describes::Event(event_type),
        direction: Direction::Output,
    });
    let messages = MESSAGES.iter().map(|(name, direction, _)| Published {
        name: (*name).to_owned(),
        describes: Describes::Message,
        direction: *direction,
    });
    commands.chain(events).chain(messages).collect()
}

/// A generator of draft 2020-12 schemas for payloads travelling in `direction`.
pub fn generator(direction: Direction) -> SchemaGenerator {
    let settings = SchemaSettings::draft2020_12();
    match direction {
        Direction::Input => settings.for_deserialize(),
        Direction::Output => settings.for_serialize(),
    }
    .into_generator()
}

/// The schema of `name` built with `generator` (whose settings decide where `$ref`s point),
/// or `None` for an unknown name. For embedding in another document; [`render`] makes a
/// standalone one.
pub fn schema_in(name: &str, generator: &mut SchemaGenerator) -> Option<Schema> {
    if let Some(command_type) = name.strip_prefix("command.") {
        return commands::envelope_schema(command_type, generator);
    }
    if let Some(event_type) = name.strip_prefix("event.") {
        return event_schema(event_type, generator);
    }
    MESSAGES
        .iter()
        .find(|(message, _, _)| *message == name)
        .map(|(_, _, build)| build(generator))
}

/// The schema of the `data` of `POST /v1/commands/<command_type>` (the command's `data`
/// object), or `None` for an unknown type.
pub fn command_data_schema(command_type: &str, generator: &mut SchemaGenerator) -> Option<Schema> {
    commands::data_schema(command_type, generator)
}

/// The standalone schema document of `name` (`$schema`, `title`, `$defs`), or `None` for an
/// unknown name.
pub fn render(name: &str) -> Option<Value> {
    let direction = published()
        .into_iter()
        .find(|published| published.name == name)?
        .direction;
    let mut generator = generator(direction);
    let schema = schema_in(name, &mut generator)?;
    let mut document = match schema.to_value() {
        Value::Object(object) => object,
        other => {
            let mut object = Map::new();
            object.insert("allOf".into(), Value::Array(vec![other]));
            object
        }
    };
    if let Some(meta_schema) = &generator.settings().meta_schema {
        document.insert("$schema".into(), Value::String(meta_schema.to_string()));
    }
    document.insert("title".into(), Value::String(name.to_owned()));
    let definitions = generator.take_definitions(true);
    if !definitions.is_empty() {
        document.insert("$defs".into(), Value::Object(definitions));
    }
    Some(Value::Object(document))
}

/// The text of `name`'s file: the document, pretty-printed, with a final newline.
pub fn render_text(name: &str) -> Option<String> {
    let document = render(name)?;
    // Displaying a Value cannot fail; `{:#}` pretty-prints it.
    Some(format!("{document:#}\n"))
}

/// `event.<event_type>`: a [`RecordedEvent`] of that type.
fn event_schema(event_type: &str, generator: &mut SchemaGenerator) -> Option<Schema> {
    let data = wire::event_data_schemas(generator);
    let data = data.get(event_type)?;
    Some(wire::recorded_event(
        generator,
        wire::type_and_data(event_type, data),
    ))
}

/// `{"error": {"code", "message"}}`: the body of every HTTP error (protocol.md §3).
fn error_body(generator: &mut SchemaGenerator) -> Schema {
    schemars::json_schema!({
        "type": "object",
        "properties": { "error": error_object(generator) },
        "required": ["error"]
    })
}

/// A query request on `<prefix>.query.<model>`: the operation's object and the envelope's
/// fields, flat (docs/queries.md).
fn query_request<Q: JsonSchema>(generator: &mut SchemaGenerator) -> Schema {
    let operation = Q::json_schema(generator);
    schemars::json_schema!({
        "allOf": [
            operation,
            {
                "type": "object",
                "properties": {
                    "caller": { "type": ["string", "null"] },
                    "moderator": { "type": "boolean" },
                    "min_position": { "type": ["integer", "null"], "minimum": 0 }
                },
                "required": ["caller", "moderator", "min_position"]
            }
        ]
    })
}

#[cfg(test)]
mod tests;
