//! The AsyncAPI 3 document of the NATS contract (protocol.md §1, §2, §4, docs/queries.md):
//! every subject with its payload schema and, for requests, its reply. Checked in as
//! `docs/asyncapi.yaml` (a test fails when it drifts; [`WRITE_COMMAND`] rewrites it) and served
//! by the gateway at `GET /asyncapi.json`.
//!
//! The payload schemas are the ones of [`crate::schema`] (the same registry as `docs/schemas/`),
//! generated again here as JSON Schema draft-07 with their definitions under
//! `#/components/schemas/`: draft-07 is the dialect AsyncAPI 3's default schema format extends,
//! so AsyncAPI tools read them without a `schemaFormat`. The few messages the registry does not
//! hold (the writer's ping, the presence heartbeat, the query reply envelope, the live
//! rebuild's request, reply and progress; their types live outside `protocol`) are written out
//! in [`extra`] from the prose of protocol.md and docs/queries.md.
//!
//! The document describes Parlor as the application: it *receives* commands and requests (and
//! replies on the requester's inbox) and *sends* events, audit heads and notifications. Subjects
//! are given under the default prefix `parlor`; `--subject-prefix` changes the first token.

mod extra;
mod yaml;

use domain::command::COMMAND_TYPES;
use domain::event::EVENT_TYPES;
use schemars::generate::SchemaSettings;
use schemars::SchemaGenerator;
use serde_json::{json, Map, Value};

use crate::schema::{command_schema_name, event_schema_name, published, schema_in, Direction};
use crate::ReadModel;

/// The command that rewrites `docs/asyncapi.yaml` from the code; named by the drift test.
pub const WRITE_COMMAND: &str = "cargo run -p parlor -- asyncapi --write docs/asyncapi.yaml";

/// Where the component schemas live in the document, as a JSON pointer.
const SCHEMAS_POINTER: &str = "/components/schemas";

/// The subject prefix the document is written with (the `--subject-prefix` default).
const PREFIX: &str = "parlor";

/// The channel of the requester's reply inbox (NATS request/reply: a subject the requester
/// chooses, hence no address).
const INBOX: &str = "inbox";

/// The AsyncAPI 3 document as JSON, or why it cannot be built (a name the registry lacks, or two
/// payloads giving one definition name different schemas).
pub fn document() -> Result<Value, String> {
    let mut builder = Builder::default();
    builder.add_schemas()?;
    builder.add_commands();
    builder.add_events();
    builder.add_log_and_audit();
    builder.add_notifications();
    builder.add_dev_clock();
    builder.add_admin();
    builder.add_queries();
    builder.add_writer_ping();
    builder.add_presence();
    Ok(builder.finish())
}

/// The document as the YAML text of `docs/asyncapi.yaml`.
pub fn render_yaml() -> Result<String, String> {
    let header = format!(
        "# The AsyncAPI 3 document of Parlor's NATS contract, generated from the code: do not \
         edit.\n# Regenerate with `{WRITE_COMMAND}`.\n"
    );
    let document = document()?;
    // The top-level sections in the specification's order (serde_json's maps sort keys, which
    // would put `info` after `components`); within them the keys are sorted.
    let mut text = header;
    for section in TOP_LEVEL_ORDER {
        if let Some(value) = document.get(section) {
            text += &yaml::to_yaml(&json!({ section: value }));
        }
    }
    Ok(text)
}

/// The document's top-level keys, in the order of the AsyncAPI 3 specification.
const TOP_LEVEL_ORDER: [&str; 7] = [
    "asyncapi",
    "info",
    "servers",
    "defaultContentType",
    "channels",
    "operations",
    "components",
];

/// A `$ref` to a component schema.
fn schema_ref(name: &str) -> Value {
    json!({ "$ref": format!("#{SCHEMAS_POINTER}/{name}") })
}

/// The generator of one direction's schemas: draft-07, definitions among the components.
fn generator(direction: Direction) -> SchemaGenerator {
    let settings = SchemaSettings::draft07().with(|settings| {
        settings.definitions_path = SCHEMAS_POINTER.into();
        settings.meta_schema = None;
    });
    match direction {
        Direction::Input => settings.for_deserialize(),
        Direction::Output => settings.for_serialize(),
    }
    .into_generator()
}

#[derive(Default)]
struct Builder {
    channels: Map<String, Value>,
    operations: Map<String, Value>,
    messages: Map<String, Value>,
    schemas: Map<String, Value>,
    /// The messages of the inbox channel: every reply.
    replies: Map<String, Value>,
}

/// One message on a channel: its key there and the component message it is.
struct OnChannel<'a> {
    key: &'a str,
    message: &'a str,
}

impl Builder {
    /// Every schema of the registry, then the extra ones, under `components.schemas`.
    fn add_schemas(&mut self) -> Result<(), String> {
        for direction in [Direction::Input, Direction::Output] {
            let mut generator = generator(direction);
            for entry in published().into_iter().filter(|e| e.direction == direction) {
                let mut schema = schema_in(&entry.name, &mut generator)
                    .ok_or_else(|| format!("the registry has no schema {:?}", entry.name))?;
                for transform in generator.transforms_mut() {
                    transform.transform(&mut schema);
                }
                self.add_schema(entry.name, schema.to_value())?;
            }
            for (name, schema) in generator.take_definitions(true) {
                self.add_schema(name, schema)?;
            }
        }
        let mut generator = generator(Direction::Output);
        for (name, schema) in extra::schemas(&mut generator) {
            self.add_schema(name.to_owned(), schema)?;
        }
        for (name, schema) in generator.take_definitions(true) {
            self.add_schema(name, schema)?;
        }
        Ok(())
    }

    /// One component schema; a name already given another schema is an error (the two
    /// directions share definition names only where the schemas agree).
    fn add_schema(&mut self, name: String, schema: Value) -> Result<(), String> {
        match self.schemas.get(&name) {
            Some(existing) if *existing != schema => Err(format!(
                "two different schemas are named {name:?} (input and output differ)"
            )),
            _ => {
                self.schemas.insert(name, schema);
                Ok(())
            }
        }
    }

    /// A component message carrying the schema `schema` as JSON.
    fn message(&mut self, name: &str, schema: &str, summary: &str, headers: Option<Value>) {
        let mut message = json!({
            "name": name,
            "title": name,
            "summary": summary,
            "contentType": "application/json",
            "payload": schema_ref(schema),
        });
        if let Some(headers) = headers {
            message["headers"] = headers;
        }
        self.messages.insert(name.to_owned(), message);
    }

    fn channel(
        &mut self,
        id: &str,
        address: &str,
        description: &str,
        messages: &[OnChannel<'_>],
        parameters: Option<Value>,
    ) {
        let on_channel: Map<String, Value> = messages
            .iter()
            .map(|on| {
                let target = json!({ "$ref": format!("#/components/messages/{}", on.message) });
                (on.key.to_owned(), target)
            })
            .collect();
        let mut channel = json!({
            "address": address,
            "description": description,
            "messages": on_channel,
        });
        if let Some(parameters) = parameters {
            channel["parameters"] = parameters;
        }
        self.channels.insert(id.to_owned(), channel);
    }

    /// An operation on `channel` with its message `key`, and for a request the reply message
    /// (added to the inbox channel).
    fn operation(&mut self, action: &str, channel: &str, key: &str, reply: Option<&str>) {
        let mut operation = json!({
            "action": action,
            "channel": { "$ref": format!("#/channels/{}", pointer_token(channel)) },
            "messages": [{
                "$ref": format!("#/channels/{}/messages/{key}", pointer_token(channel))
            }],
        });
        if let Some(reply) = reply {
            self.replies.insert(
                reply.to_owned(),
                json!({ "$ref": format!("#/components/messages/{reply}") }),
            );
            operation["reply"] = json!({
                "channel": { "$ref": format!("#/channels/{INBOX}") },
                "messages": [{ "$ref": format!("#/channels/{INBOX}/messages/{reply}") }],
            });
        }
        self.operations
            .insert(format!("{action}.{channel}"), operation);
    }

    /// A request subject Parlor answers: channel, request message and reply.
    fn request(&mut self, channel: &str, description: &str, request: &str, reply: &str) {
        self.channel(
            channel,
            &format!("{PREFIX}.{channel}"),
            description,
            &[OnChannel {
                key: "request",
                message: request,
            }],
            None,
        );
        self.operation("receive", channel, "request", Some(reply));
    }

    fn add_commands(&mut self) {
        self.message(
            "Reply",
            "Reply",
            "The reply to a command: accepted with its position and events, or refused with an \
             error code (protocol.md §1).",
            None,
        );
        for command_type in COMMAND_TYPES {
            let name = command_schema_name(command_type);
            self.message(
                &name,
                &name,
                &format!("The `{command_type}` command: the envelope and its `data`."),
                Some(extra::command_headers()),
            );
            self.request(
                &format!("cmd.{command_type}"),
                &format!(
                    "`{command_type}` commands (protocol.md §1): JSON by default, bincode with \
                     `Content-Type: application/x-bincode`, the reply in the same encoding. A \
                     payload that is not valid, or over 1 MiB, is answered `invalid_command`."
                ),
                &name,
                "Reply",
            );
        }
    }

    fn add_events(&mut self) {
        for event_type in EVENT_TYPES {
            let name = event_schema_name(event_type);
            self.message(
                &name,
                &name,
                &format!("A committed `{event_type}` event, as a RecordedEvent in JSON."),
                Some(extra::event_headers()),
            );
            let channel = format!("evt.{event_type}");
            self.channel(
                &channel,
                &format!("{PREFIX}.{channel}"),
                &format!(
                    "Every committed `{event_type}` event, in position order (protocol.md §2). \
                     Bincode by default; JSON (this schema) with `--event-format json`. Core NATS \
                     may drop a message: a gap in `Parlor-Position` is filled from `log.read`."
                ),
                &[OnChannel {
                    key: "event",
                    message: &name,
                }],
                None,
            );
            self.operation("send", &channel, "event", None);
        }
    }

    fn add_log_and_audit(&mut self) {
        self.message(
            "LogReadRequest",
            "LogReadRequest",
            "A page of the log from a position.",
            None,
        );
        self.message(
            "LogReadReply",
            "LogReadReply",
            "The page and the head.",
            None,
        );
        self.request(
            "log.read",
            "Reads the log from a position (protocol.md §2): at most `max` (≤ 10,000) events \
             and below 1 MiB; JSON unless the request is bincode.",
            "LogReadRequest",
            "LogReadReply",
        );
        self.message(
            "AuditHead",
            "AuditHead",
            "The writer's head position and hash.",
            None,
        );
        self.channel(
            "audit.head",
            &format!("{PREFIX}.audit.head"),
            "Published by the writer every few seconds, for an operator to anchor elsewhere.",
            &[OnChannel {
                key: "head",
                message: "AuditHead",
            }],
            None,
        );
        self.operation("send", "audit.head", "head", None);
    }

    fn add_notifications(&mut self) {
        self.message(
            "Notification",
            "Notification",
            "A batch of messages due for a user.",
            None,
        );
        self.channel(
            "notify",
            &format!("{PREFIX}.notify.{{user_id}}"),
            "Published by the notifications projector, one message per batch due, for a mail \
             or push service to deliver (protocol.md §2).",
            &[OnChannel {
                key: "notification",
                message: "Notification",
            }],
            Some(json!({ "user_id": { "description": "The user to notify." } })),
        );
        self.operation("send", "notify", "notification", None);
    }

    fn add_dev_clock(&mut self) {
        self.message(
            "DevClockRequest",
            "DevClockRequest",
            "Move the development clock.",
            None,
        );
        self.message(
            "DevClockReply",
            "DevClockReply",
            "The clock's time now.",
            None,
        );
        self.request(
            "dev.clock",
            "Development only (`--dev-clock`; without the flag nothing subscribes): moves the \
             clock every service started with the flag follows (protocol.md §4).",
            "DevClockRequest",
            "DevClockReply",
        );
    }

    fn add_admin(&mut self) {
        let model = json!({
            "model": {
                "description": "A read model.",
                "enum": ReadModel::ALL_NAMES,
            }
        });
        for (name, summary) in extra::ADMIN_MESSAGES {
            self.message(name, name, summary, None);
        }
        self.channel(
            "admin.replay",
            &format!("{PREFIX}.admin.replay.{{model}}"),
            "Rebuilds a read model inside its running projectors, then swaps it in (protocol.md \
             §4, `parlor replay <model> --nats-url`). One rebuild per model at a time.",
            &[OnChannel {
                key: "request",
                message: "ReplayRequest",
            }],
            Some(model.clone()),
        );
        self.operation("receive", "admin.replay", "request", Some("ReplayReply"));
        self.channel(
            "admin.replay.progress",
            &format!("{PREFIX}.admin.replay.{{model}}.progress"),
            "A live rebuild's progress, at least every second, ending with `done` or `error`.",
            &[OnChannel {
                key: "progress",
                message: "ReplayProgress",
            }],
            Some(model),
        );
        self.operation("send", "admin.replay.progress", "progress", None);
    }

    fn add_queries(&mut self) {
        self.message(
            "QueryReply",
            "QueryReply",
            "A read model's answer, with the position it had applied.",
            None,
        );
        for model in ReadModel::QUERIED_BY_THE_GATEWAY {
            let name = format!("query.{}", model.name());
            self.message(
                &name,
                &name,
                &format!("A query of the `{}` read model.", model.name()),
                None,
            );
            self.request(
                &name,
                &format!(
                    "Queries of the `{}` read model (docs/queries.md): the internal contract \
                     between the gateway and the projectors, subscribed in a queue group per \
                     model; `{{\"op\": \"status\"}}` answers the model's position.",
                    model.name()
                ),
                &name,
                "QueryReply",
            );
        }
    }

    fn add_writer_ping(&mut self) {
        for (name, summary) in extra::PING_MESSAGES {
            self.message(name, name, summary, None);
        }
        self.request(
            "writer.ping",
            "The writer's liveness and head, asked by the operator `/healthz`, `parlor status`, \
             and a starting writer (a second writer refuses to start).",
            "WriterPingRequest",
            "WriterPingReply",
        );
    }

    fn add_presence(&mut self) {
        for (name, summary) in extra::PRESENCE_MESSAGES {
            self.message(name, name, summary, None);
        }
        self.request(
            "presence.heartbeat",
            "`POST /v1/presence/heartbeat` as the gateway forwards it (docs/queries.md): every \
             rooms replica subscribes (no queue group) and replies once it has recorded it. \
             Presence is volatile: not an event, not in the log.",
            "PresenceHeartbeat",
            "PresenceHeartbeatReply",
        );
    }

    fn finish(mut self) -> Value {
        let replies = std::mem::take(&mut self.replies);
        self.channels.insert(
            INBOX.to_owned(),
            json!({
                "address": null,
                "description": "The requester's reply inbox (the NATS reply subject of a \
                                request): every reply is sent there.",
                "messages": replies,
            }),
        );
        json!({
            "asyncapi": "3.0.0",
            "info": {
                "title": "Parlor NATS contract",
                "version": env!("CARGO_PKG_VERSION"),
                "description": "Commands, events, the log, notifications and the operator \
                                subjects of Parlor over NATS (docs/protocol.md). Subjects are \
                                shown under the default prefix `parlor` (`--subject-prefix` \
                                changes it). Payload schemas are those of docs/schemas/.",
            },
            "defaultContentType": "application/json",
            "servers": {
                "local": {
                    "host": "127.0.0.1:4222",
                    "protocol": "nats",
                    "description": "`parlor up --nats-url nats://127.0.0.1:4222`",
                }
            },
            "channels": self.channels,
            "operations": self.operations,
            "components": {
                "schemas": self.schemas,
                "messages": self.messages,
            },
        })
    }
}

/// `name` as one JSON pointer token (`~` and `/` escaped).
fn pointer_token(name: &str) -> String {
    name.replace('~', "~0").replace('/', "~1")
}

#[cfg(test)]
mod tests;
