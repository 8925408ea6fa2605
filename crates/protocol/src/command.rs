//! Commands on the wire (protocol.md §1): a `parlor.cmd.<type>` payload, JSON or bincode, into a
//! [`domain::Command`], and back (for Rust clients and tests).
//!
//! JSON: the envelope `{command_id, actor, client, correlation_id, data}` with the per-type `data`
//! fields of §1. Fields are read one by one, so every error names its field
//! (`data.body: missing`) and unknown fields are ignored.
//!
//! Bincode: [`FORMAT_VERSION`](crate::FORMAT_VERSION), then the fields `command_id` (UUID),
//! `actor` (text), `client`, `correlation_id` (optional text) and `action` (the domain's
//! `Action`, externally tagged by variant index) in that order. Ids inside the action validate
//! while decoding; the actor and the correlation id are checked as in JSON.
//!
//! Only types and id formats are checked here; bounds (body length, attachment count, …) are
//! the domain's.

use domain::command::COMMAND_TYPES;
use domain::{
    Action, Actor, AttachmentRef, CallId, Client, Command, CommandId, ContractId, ErrorCode,
    FileId, InterviewId, MessageId, MessageTarget, Rejection, RoomId, UserId,
};
use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};

use crate::codec::{self, CodecError, Format};
use crate::fields::{expect_object, parse_str, FieldResult, Fields};
use crate::spelling::Spelled;

/// The largest command payload accepted, in bytes (1 MiB); larger is `invalid_command`.
pub const PAYLOAD_BYTES_MAX: usize = 1024 * 1024;

/// The longest `correlation_id`, in characters.
pub const CORRELATION_ID_CHARS_MAX: usize = 128;

/// The longest command type quoted back in an error message, in characters.
const QUOTED_TYPE_CHARS_MAX: usize = 64;

/// A decoded command and the caller's correlation id (for logs and traces; not part of the
/// domain's command).
#[derive(Debug, Clone, PartialEq)]
pub struct DecodedCommand {
    /// The command for the domain.
    pub command: Command,
    /// The caller's id for tracing this request, up to 128 characters.
    pub correlation_id: Option<String>,
}

/// A payload that is not a valid command: answered with `invalid_command` and this message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid_command: {message}")]
pub struct InvalidCommand {
    /// What is wrong, naming the field (`data.body: missing`).
    pub message: String,
}

impl InvalidCommand {
    /// An `invalid_command` with `message`.
    pub fn new(message: impl Into<String>) -> InvalidCommand {
        InvalidCommand {
            message: message.into(),
        }
    }

    /// Always [`ErrorCode::InvalidCommand`].
    pub fn code(&self) -> ErrorCode {
        ErrorCode::InvalidCommand
    }
}

impl From<InvalidCommand> for Rejection {
    fn from(invalid: InvalidCommand) -> Rejection {
        Rejection::invalid(invalid.message)
    }
}

/// Decodes the payload of `parlor.cmd.<command_type>`; `command_type` is the subject without
/// its prefix (`message.send`), `content_type` the request's `Content-Type` header.
///
/// Never panics: malformed input of any kind is an [`InvalidCommand`].
pub fn decode_command(
    command_type: &str,
    payload: &[u8],
    content_type: Option<&str>,
) -> Result<DecodedCommand, InvalidCommand> {
    if payload.len() > PAYLOAD_BYTES_MAX {
        return Err(InvalidCommand::new(format!(
            "payload is {} bytes, over the {PAYLOAD_BYTES_MAX}-byte limit",
            payload.len()
        )));
    }
    let format = Format::from_content_type(content_type).ok_or_else(|| {
        InvalidCommand::new(format!(
            "unsupported content type '{}' (use {} or {})",
            quote(content_type.unwrap_or_default()),
            codec::CONTENT_TYPE_JSON,
            codec::CONTENT_TYPE_BINCODE
        ))
    })?;
    if !COMMAND_TYPES.contains(&command_type) {
        return Err(InvalidCommand::new(format!(
            "unknown command type '{}'",
            quote(command_type)
        )));
    }
    let decoded = match format {
        Format::Json => decode_json(command_type, payload),
        Format::Bincode => decode_bincode(command_type, payload),
    };
    decoded.map_err(InvalidCommand::new)
}

/// Text from the caller, shortened for an error message.
fn quote(text: &str) -> String {
    if text.chars().count() <= QUOTED_TYPE_CHARS_MAX {
        text.to_owned()
    } else {
        let mut short: String = text.chars().take(QUOTED_TYPE_CHARS_MAX).collect();
        short.push('…');
        short
    }
}

/// Checks the correlation id's length.
fn check_correlation_id(correlation_id: &Option<String>) -> FieldResult<()> {
    match correlation_id {
        Some(text) if text.chars().count() > CORRELATION_ID_CHARS_MAX => Err(format!(
            "correlation_id: at most {CORRELATION_ID_CHARS_MAX} characters"
        )),
        _ => Ok(()),
    }
}

/// The JSON form: envelope, then the type's `data`.
fn decode_json(command_type: &str, payload: &[u8]) -> FieldResult<DecodedCommand> {
    let text = std::str::from_utf8(payload).map_err(|error| {
        format!(
            "payload is not valid UTF-8 (invalid byte at offset {})",
            error.valid_up_to()
        )
    })?;
    // serde_json's default nesting limit (128) stays on: deep nesting is an error, not a crash.
    let value: Value = serde_json::from_str(text)
        .map_err(|error| format!("payload is not valid JSON: {error}"))?;
    let envelope = value
        .as_object()
        .ok_or_else(|| "payload: expected a JSON object".to_owned())?;
    let fields = Fields::new(envelope, "");
    let command_id = fields.parsed("command_id", CommandId::parse)?;
    let actor = fields.parsed("actor", Actor::parse)?;
    let client: Client = fields.optional_choice("client")?.unwrap_or_default();
    let correlation_id = fields.optional_string("correlation_id")?;
    check_correlation_id(&correlation_id)?;
    let empty = Map::new();
    let data = if command_type == "user.clear_out_of_office" {
        fields.optional_object("data")?.unwrap_or(&empty)
    } else {
        fields.object("data")?
    };
    let action = decode_action(command_type, &Fields::new(data, "data."))?;
    Ok(DecodedCommand {
        command: Command {
            command_id,
            actor,
            client,
            action,
        },
        correlation_id,
    })
}

/// The `data` of each command type, as in protocol.md §1's table.
fn decode_action(command_type: &str, data: &Fields<'_>) -> FieldResult<Action> {
    let room_id = || data.parsed("room_id", RoomId::parse);
    let message_id = || data.parsed("message_id", MessageId::parse);
    Ok(match command_type {
        "user.register" => Action::RegisterUser {
            user_id: data.parsed("user_id", UserId::parse)?,
            display_name: data.string("display_name")?,
            kind: data.choice("kind")?,
        },
        "user.block" => Action::BlockUser {
            user_id: data.parsed("user_id", UserId::parse)?,
        },
        "user.unblock" => Action::UnblockUser {
            user_id: data.parsed("user_id", UserId::parse)?,
        },
        "user.set_out_of_office" => Action::SetOutOfOffice {
            message: data.string("message")?,
            from: data.timestamp("from")?,
            until: data.timestamp("until")?,
        },
        "user.clear_out_of_office" => Action::ClearOutOfOffice,
        "user.set_online_visibility" => Action::SetOnlineVisibility {
            visible: data.boolean("visible")?,
        },
        "user.set_notifications" => Action::SetNotifications {
            frequency: data.choice("frequency")?,
        },
        "room.create" => Action::CreateRoom {
            name: data.string("name")?,
            members: data
                .array("members")?
                .iter()
                .enumerate()
                .map(|(index, member)| {
                    parse_str(
                        member,
                        &data.path(&format!("members[{index}]")),
                        UserId::parse,
                    )
                })
                .collect::<FieldResult<_>>()?,
        },
        "room.open_interview" => Action::OpenInterview {
            interview_id: data.parsed("interview_id", InterviewId::parse)?,
            title: data.string("title")?,
            client: data.parsed("client", UserId::parse)?,
            freelancer: data.parsed("freelancer", UserId::parse)?,
        },
        "room.add_member" => Action::AddMember {
            room_id: room_id()?,
            user_id: data.parsed("user_id", UserId::parse)?,
        },
        "room.leave" => Action::LeaveRoom {
            room_id: room_id()?,
        },
        "room.rename" => Action::RenameRoom {
            room_id: room_id()?,
            name: data.string("name")?,
        },
        "room.favorite" => Action::FavoriteRoom {
            room_id: room_id()?,
            on: data.boolean("on")?,
        },
        "room.hide" => Action::HideRoom {
            room_id: room_id()?,
            on: data.boolean("on")?,
        },
        "room.archive" => Action::ArchiveRoom {
            room_id: room_id()?,
            on: data.boolean("on")?,
        },
        "room.mark_read" => Action::MarkRead {
            room_id: room_id()?,
            message_id: message_id()?,
        },
        "contract.start" => Action::StartContract {
            contract_id: data.parsed("contract_id", ContractId::parse)?,
            title: data.string("title")?,
            client: data.parsed("client", UserId::parse)?,
            freelancer: data.parsed("freelancer", UserId::parse)?,
            room_id: data.optional_parsed("room_id", RoomId::parse)?,
        },
        "contract.end" => Action::EndContract {
            contract_id: data.parsed("contract_id", ContractId::parse)?,
        },
        "message.send" => Action::SendMessage {
            target: message_target(data)?,
            message_id: data.optional_parsed("message_id", MessageId::parse)?,
            body: data.string("body")?,
            reply_to: data.optional_parsed("reply_to", MessageId::parse)?,
            attachments: match data.optional_array("attachments")? {
                None => Vec::new(),
                Some(items) => items
                    .iter()
                    .enumerate()
                    .map(|(index, item)| {
                        attachment(item, &data.path(&format!("attachments[{index}]")))
                    })
                    .collect::<FieldResult<_>>()?,
            },
        },
        "message.edit" => Action::EditMessage {
            room_id: room_id()?,
            message_id: message_id()?,
            body: data.string("body")?,
        },
        "message.delete" => Action::DeleteMessage {
            room_id: room_id()?,
            message_id: message_id()?,
        },
        "message.report" => Action::ReportMessage {
            room_id: room_id()?,
            message_id: message_id()?,
            reason: data.choice("reason")?,
            details: data.optional_string("details")?,
        },
        "call.start" => Action::StartCall {
            room_id: room_id()?,
            media: data.choice("media")?,
        },
        "call.end" => Action::EndCall {
            room_id: room_id()?,
            call_id: data.parsed("call_id", CallId::parse)?,
        },
        "file.register" => Action::RegisterFile {
            file_id: data.parsed("file_id", FileId::parse)?,
            uploader: data.parsed("uploader", UserId::parse)?,
            name: data.string("name")?,
            size: data.unsigned("size")?,
            content_type: data.string("content_type")?,
            sha256: data.string("sha256")?,
        },
        other => return Err(format!("unknown command type '{}'", quote(other))),
    })
}

/// `message.send`'s `room_id` or `to`: exactly one.
fn message_target(data: &Fields<'_>) -> FieldResult<MessageTarget> {
    match (data.has("room_id"), data.has("to")) {
        (true, false) => data
            .parsed("room_id", RoomId::parse)
            .map(MessageTarget::Room),
        (false, true) => data.parsed("to", UserId::parse).map(MessageTarget::User),
        (true, true) => Err(format!(
            "{}: give room_id or to, not both",
            data.path("room_id")
        )),
        (false, false) => Err(format!(
            "{}: missing (give room_id, or to for a direct message)",
            data.path("room_id")
        )),
    }
}

/// One attachment: `{"file_id": …}` or `{"url": …}`, exactly one of the two.
fn attachment(item: &Value, path: &str) -> FieldResult<AttachmentRef> {
    let fields = Fields::new(expect_object(item, path)?, format!("{path}."));
    match (fields.has("file_id"), fields.has("url")) {
        (true, false) => fields
            .parsed("file_id", FileId::parse)
            .map(AttachmentRef::File),
        (false, true) => fields.string("url").map(AttachmentRef::Link),
        (true, true) => Err(format!("{path}: give file_id or url, not both")),
        (false, false) => Err(format!("{path}: give file_id or url")),
    }
}

/// The bincode form, as decoded (see the module documentation for the layout).
#[derive(Deserialize)]
struct WireCommand {
    command_id: CommandId,
    actor: String,
    client: Client,
    correlation_id: Option<String>,
    action: Action,
}

/// The bincode form, borrowed for encoding; field for field the same layout as [`WireCommand`].
#[derive(Serialize)]
struct WireCommandRef<'a> {
    command_id: &'a CommandId,
    actor: String,
    client: Client,
    correlation_id: &'a Option<String>,
    action: &'a Action,
}

/// The bincode form: decode, then check what bincode cannot (actor, correlation id, type).
fn decode_bincode(command_type: &str, payload: &[u8]) -> FieldResult<DecodedCommand> {
    // PAYLOAD_BYTES_MAX is far below u64::MAX; the conversion cannot fail on any platform.
    let limit = u64::try_from(PAYLOAD_BYTES_MAX).unwrap_or(u64::MAX);
    let wire: WireCommand = codec::decode(payload, limit).map_err(|error| match error {
        CodecError::Malformed(detail) => {
            format!("payload is not a valid bincode command: {detail}")
        }
        other => format!("payload: {other}"),
    })?;
    let actor = Actor::parse(&wire.actor).map_err(|error| format!("actor: {error}"))?;
    check_correlation_id(&wire.correlation_id)?;
    if wire.action.type_name() != command_type {
        return Err(format!(
            "action: is a {} command, but it was sent as {command_type}",
            wire.action.type_name()
        ));
    }
    Ok(DecodedCommand {
        command: Command {
            command_id: wire.command_id,
            actor,
            client: wire.client,
            action: wire.action,
        },
        correlation_id: wire.correlation_id,
    })
}

/// Encodes a command in the bincode form, for Rust clients of `parlor.cmd.<type>` (sent with
/// `Content-Type: application/x-bincode` on the subject of `command.action.type_name()`).
pub fn encode_command_bincode(decoded: &DecodedCommand) -> Result<Vec<u8>, CodecError> {
    let command = &decoded.command;
    codec::encode(&WireCommandRef {
        command_id: &command.command_id,
        actor: command.actor.to_string(),
        client: command.client,
        correlation_id: &decoded.correlation_id,
        action: &command.action,
    })
}

/// Encodes a command in the JSON form of protocol.md §1 (for test clients and round trips).
///
/// Absent optional fields are left out, and so is an empty `attachments` list.
pub fn encode_command_json(decoded: &DecodedCommand) -> Vec<u8> {
    let command = &decoded.command;
    let mut envelope = Map::new();
    envelope.insert("command_id".into(), json!(command.command_id.to_string()));
    envelope.insert("actor".into(), json!(command.actor.to_string()));
    envelope.insert("client".into(), json!(command.client.spelling()));
    if let Some(correlation_id) = &decoded.correlation_id {
        envelope.insert("correlation_id".into(), json!(correlation_id));
    }
    envelope.insert("data".into(), Value::Object(action_data(&command.action)));
    // Displaying a Value cannot fail (keys are strings), unlike serde_json::to_vec in general.
    Value::Object(envelope).to_string().into_bytes()
}

/// The `data` object of `action`.
fn action_data(action: &Action) -> Map<String, Value> {
    let mut data = Map::new();
    let mut put = |key: &str, value: Value| {
        data.insert(key.to_owned(), value);
    };
    match action {
        Action::RegisterUser {
            user_id,
            display_name,
            kind,
        } => {
            put("user_id", json!(user_id.as_str()));
            put("display_name", json!(display_name));
            put("kind", json!(kind.spelling()));
        }
        Action::BlockUser { user_id } | Action::UnblockUser { user_id } => {
            put("user_id", json!(user_id.as_str()));
        }
        Action::SetOutOfOffice {
            message,
            from,
            until,
        } => {
            put("message", json!(message));
            put("from", json!(from.to_rfc3339()));
            put("until", json!(until.to_rfc3339()));
        }
        Action::ClearOutOfOffice => {}
        Action::SetOnlineVisibility { visible } => put("visible", json!(visible)),
        Action::SetNotifications { frequency } => put("frequency", json!(frequency.spelling())),
        Action::CreateRoom { name, members } => {
            put("name", json!(name));
            let members: Vec<&str> = members.iter().map(UserId::as_str).collect();
            put("members", json!(members));
        }
        Action::OpenInterview {
            interview_id,
            title,
            client,
            freelancer,
        } => {
            put("interview_id", json!(interview_id.as_str()));
            put("title", json!(title));
            put("client", json!(client.as_str()));
            put("freelancer", json!(freelancer.as_str()));
        }
        Action::AddMember { room_id, user_id } => {
            put("room_id", json!(room_id.to_string()));
            put("user_id", json!(user_id.as_str()));
        }
        Action::LeaveRoom { room_id } => put("room_id", json!(room_id.to_string())),
        Action::RenameRoom { room_id, name } => {
            put("room_id", json!(room_id.to_string()));
            put("name", json!(name));
        }
        Action::FavoriteRoom { room_id, on }
        | Action::HideRoom { room_id, on }
        | Action::ArchiveRoom { room_id, on } => {
            put("room_id", json!(room_id.to_string()));
            put("on", json!(on));
        }
        Action::MarkRead {
            room_id,
            message_id,
        }
        | Action::DeleteMessage {
            room_id,
            message_id,
        } => {
            put("room_id", json!(room_id.to_string()));
            put("message_id", json!(message_id.to_string()));
        }
        Action::StartContract {
            contract_id,
            title,
            client,
            freelancer,
            room_id,
        } => {
            put("contract_id", json!(contract_id.as_str()));
            put("title", json!(title));
            put("client", json!(client.as_str()));
            put("freelancer", json!(freelancer.as_str()));
            if let Some(room_id) = room_id {
                put("room_id", json!(room_id.to_string()));
            }
        }
        Action::EndContract { contract_id } => put("contract_id", json!(contract_id.as_str())),
        Action::SendMessage {
            target,
            message_id,
            body,
            reply_to,
            attachments,
        } => {
            match target {
                MessageTarget::Room(room_id) => put("room_id", json!(room_id.to_string())),
                MessageTarget::User(user_id) => put("to", json!(user_id.as_str())),
            }
            if let Some(message_id) = message_id {
                put("message_id", json!(message_id.to_string()));
            }
            put("body", json!(body));
            if let Some(reply_to) = reply_to {
                put("reply_to", json!(reply_to.to_string()));
            }
            if !attachments.is_empty() {
                let attachments: Vec<Value> = attachments
                    .iter()
                    .map(|attachment| match attachment {
                        AttachmentRef::File(file_id) => json!({ "file_id": file_id.to_string() }),
                        AttachmentRef::Link(url) => json!({ "url": url }),
                    })
                    .collect();
                put("attachments", Value::Array(attachments));
            }
        }
        Action::EditMessage {
            room_id,
            message_id,
            body,
        } => {
            put("room_id", json!(room_id.to_string()));
            put("message_id", json!(message_id.to_string()));
            put("body", json!(body));
        }
        Action::ReportMessage {
            room_id,
            message_id,
            reason,
            details,
        } => {
            put("room_id", json!(room_id.to_string()));
            put("message_id", json!(message_id.to_string()));
            put("reason", json!(reason.spelling()));
            if let Some(details) = details {
                put("details", json!(details));
            }
        }
        Action::StartCall { room_id, media } => {
            put("room_id", json!(room_id.to_string()));
            put("media", json!(media.spelling()));
        }
        Action::EndCall { room_id, call_id } => {
            put("room_id", json!(room_id.to_string()));
            put("call_id", json!(call_id.to_string()));
        }
        Action::RegisterFile {
            file_id,
            uploader,
            name,
            size,
            content_type,
            sha256,
        } => {
            put("file_id", json!(file_id.to_string()));
            put("uploader", json!(uploader.as_str()));
            put("name", json!(name));
            put("size", json!(size));
            put("content_type", json!(content_type));
            put("sha256", json!(sha256));
        }
    }
    data
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_types_are_shortened_in_messages() {
        let long = "x".repeat(1000);
        let error = decode_command(&long, b"{}", None).err();
        assert!(error.is_some_and(|e| e.message.len() < 200));
    }
}
