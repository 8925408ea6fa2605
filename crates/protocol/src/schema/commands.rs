//! The JSON Schema of each `parlor.cmd.<type>` payload (protocol.md §1): the envelope and the
//! type's `data`.
//!
//! The JSON decoder ([`crate::command`]) reads fields one by one so that every error names its
//! field, so there is no serde type to derive from; these schema-only types are the schema's
//! description of the same table, and the decoder's own tests plus the schema-vs-decoder
//! property tests hold the two together. Absent and `null` are the same to the decoder, so an
//! optional field is `T | null`; unknown fields are ignored, so no object forbids them. Optional
//! fields are marked `default` and `skip_serializing_if` so that they stay optional whichever
//! direction a generator is set for (the gateway's OpenAPI generator describes outputs).

use domain::{
    CallId, CallMedia, Client, CommandId, ContractId, FileId, InterviewId, MessageId,
    NotificationFrequency, ReportReason, RoomId, Timestamp, UserId, UserKind,
};
use schemars::{json_schema, JsonSchema, Schema, SchemaGenerator};

use crate::command::CORRELATION_ID_CHARS_MAX;

// Its `data` is replaced by the type's own in `envelope_schema`.
/// A command (protocol.md §1): the envelope and the type's `data`.
#[derive(JsonSchema)]
#[schemars(inline)]
struct Envelope {
    /// The idempotency key (R-M7): the same id from the same actor and type gets the first
    /// reply again.
    command_id: CommandId,
    /// A user id, or `service:<name>` for the service commands.
    actor: ActorText,
    /// The frontend it was sent from (`desktop` when absent).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    client: Option<Client>,
    /// The caller's id for tracing this request.
    #[schemars(length(max = CORRELATION_ID_CHARS_MAX))]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    correlation_id: Option<String>,
    /// The type's fields; only `user.clear_out_of_office` may leave it out.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    data: Option<NoData>,
}

/// An actor as text: a user id or `service:<name>` (both of R-U2's characters).
pub(crate) struct ActorText;

impl JsonSchema for ActorText {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "Actor".into()
    }

    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({
            "type": "string",
            "pattern": "^[A-Za-z0-9._:-]{1,64}$",
            "description": "a user id, or service:<name> for a service command"
        })
    }
}

/// An empty `data` object.
#[derive(JsonSchema)]
#[schemars(inline)]
pub(crate) struct NoData {}

/// `user.register` (service `identity`).
#[derive(JsonSchema)]
pub(crate) struct UserRegister {
    /// The user's id (R-U2).
    pub user_id: UserId,
    /// The name others see.
    pub display_name: String,
    /// Client, freelancer or agency.
    pub kind: UserKind,
}

/// `user.block` and `user.unblock`.
#[derive(JsonSchema)]
pub(crate) struct UserTarget {
    /// The other user.
    pub user_id: UserId,
}

/// `user.set_out_of_office`.
#[derive(JsonSchema)]
pub(crate) struct SetOutOfOffice {
    /// The automatic reply (at most 1,000 characters, checked by the rules).
    pub message: String,
    /// Start of the period.
    pub from: Timestamp,
    /// End of the period (exclusive).
    pub until: Timestamp,
}

/// `user.set_online_visibility`.
#[derive(JsonSchema)]
pub(crate) struct SetOnlineVisibility {
    /// Online for messages or not.
    pub visible: bool,
}

/// `user.set_notifications`.
#[derive(JsonSchema)]
pub(crate) struct SetNotifications {
    /// How often to be notified.
    pub frequency: NotificationFrequency,
}

/// `room.create`.
#[derive(JsonSchema)]
pub(crate) struct RoomCreate {
    /// The room's name.
    pub name: String,
    /// The other members (the actor is added).
    pub members: Vec<UserId>,
}

/// `room.open_interview` (service `hiring`).
#[derive(JsonSchema)]
pub(crate) struct RoomOpenInterview {
    /// The hiring service's id; the room id derives from it.
    pub interview_id: InterviewId,
    /// The room's name.
    pub title: String,
    /// The hiring client.
    pub client: UserId,
    /// The interviewed freelancer.
    pub freelancer: UserId,
}

/// `room.add_member`.
#[derive(JsonSchema)]
pub(crate) struct RoomAddMember {
    /// The room.
    pub room_id: RoomId,
    /// The new member.
    pub user_id: UserId,
}

/// `room.leave`.
#[derive(JsonSchema)]
pub(crate) struct RoomOnly {
    /// The room.
    pub room_id: RoomId,
}

/// `room.rename`.
#[derive(JsonSchema)]
pub(crate) struct RoomRename {
    /// The room.
    pub room_id: RoomId,
    /// Its new name.
    pub name: String,
}

/// `room.favorite`, `room.hide` and `room.archive`.
#[derive(JsonSchema)]
pub(crate) struct RoomToggle {
    /// The room.
    pub room_id: RoomId,
    /// On or off.
    pub on: bool,
}

/// `room.mark_read`, `message.delete`.
#[derive(JsonSchema)]
pub(crate) struct RoomMessage {
    /// The room.
    pub room_id: RoomId,
    /// The message.
    pub message_id: MessageId,
}

/// `contract.start` (service `contracts`).
#[derive(JsonSchema)]
pub(crate) struct ContractStart {
    /// The contracts service's id.
    pub contract_id: ContractId,
    /// The room's new name.
    pub title: String,
    /// The client party.
    pub client: UserId,
    /// The freelancer party.
    pub freelancer: UserId,
    /// An existing room to turn into the contract's room.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub room_id: Option<RoomId>,
}

/// `contract.end` (service `contracts`).
#[derive(JsonSchema)]
pub(crate) struct ContractEnd {
    /// The contract.
    pub contract_id: ContractId,
}

/// `message.send`: `room_id` or `to`, exactly one.
pub(crate) struct MessageSend;

/// The fields of `message.send` besides its target.
#[derive(JsonSchema)]
#[schemars(inline)]
struct MessageSendFields {
    /// The room (give this or `to`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    room_id: Option<RoomId>,
    /// A user: the direct room with them, opened if absent (give this or `room_id`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    to: Option<UserId>,
    /// The sender's own id for the message; derived from the command id when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    message_id: Option<MessageId>,
    /// The text.
    body: String,
    /// The message this one answers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    reply_to: Option<MessageId>,
    /// Files (by id, registered within 24 h) and links.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    attachments: Option<Vec<AttachmentRef>>,
}

impl JsonSchema for MessageSend {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "MessageSend".into()
    }

    fn json_schema(generator: &mut SchemaGenerator) -> Schema {
        let mut schema = MessageSendFields::json_schema(generator);
        // Exactly one target: the decoder refuses both and neither ("give room_id or to").
        schema.insert(
            "oneOf".into(),
            serde_json::json!([
                { "required": ["room_id"], "properties": { "room_id": { "type": "string" } },
                  "not": { "required": ["to"], "properties": { "to": { "type": "string" } } } },
                { "required": ["to"], "properties": { "to": { "type": "string" } },
                  "not": { "required": ["room_id"], "properties": { "room_id": { "type": "string" } } } }
            ]),
        );
        schema
    }
}

/// One attachment of `message.send`: `{"file_id"}` or `{"url"}`, exactly one.
pub(crate) struct AttachmentRef;

impl JsonSchema for AttachmentRef {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "AttachmentRef".into()
    }

    fn json_schema(generator: &mut SchemaGenerator) -> Schema {
        let file_id = generator.subschema_for::<FileId>();
        json_schema!({
            "oneOf": [
                { "type": "object", "properties": { "file_id": file_id },
                  "required": ["file_id"], "not": { "required": ["url"] } },
                { "type": "object", "properties": { "url": { "type": "string" } },
                  "required": ["url"], "not": { "required": ["file_id"] } }
            ]
        })
    }
}

/// `message.edit`.
#[derive(JsonSchema)]
pub(crate) struct MessageEdit {
    /// The room.
    pub room_id: RoomId,
    /// The message.
    pub message_id: MessageId,
    /// The new text.
    pub body: String,
}

/// `message.report`.
#[derive(JsonSchema)]
pub(crate) struct MessageReport {
    /// The room.
    pub room_id: RoomId,
    /// The message.
    pub message_id: MessageId,
    /// Why.
    pub reason: ReportReason,
    /// More words.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub details: Option<String>,
}

/// `call.start`.
#[derive(JsonSchema)]
pub(crate) struct CallStart {
    /// The room.
    pub room_id: RoomId,
    /// Audio or video.
    pub media: CallMedia,
}

/// `call.end`.
#[derive(JsonSchema)]
pub(crate) struct CallEnd {
    /// The room.
    pub room_id: RoomId,
    /// The call.
    pub call_id: CallId,
}

/// `file.register` (service `gateway`, after an upload is stored).
#[derive(JsonSchema)]
pub(crate) struct FileRegister {
    /// The file.
    pub file_id: FileId,
    /// Who uploaded it.
    pub uploader: UserId,
    /// Its name.
    pub name: String,
    /// Bytes.
    // The decoder reads a u64, so the schema says so: without the maximum a schema-valid 2^64
    // was refused as malformed (found by tests/contract).
    #[schemars(range(max = u64::MAX))]
    pub size: u64,
    /// MIME type.
    pub content_type: String,
    /// 64 lowercase hex characters.
    pub sha256: String,
}

/// The schema of the `data` of `command_type`, or `None` for an unknown type. The match is
/// over [`domain::command::COMMAND_TYPES`]; a test checks every type has one.
pub(crate) fn data_schema(command_type: &str, generator: &mut SchemaGenerator) -> Option<Schema> {
    let mut of = |schema: fn(&mut SchemaGenerator) -> Schema| Some(schema(generator));
    match command_type {
        "user.register" => of(UserRegister::json_schema),
        "user.block" | "user.unblock" => of(UserTarget::json_schema),
        "user.set_out_of_office" => of(SetOutOfOffice::json_schema),
        "user.clear_out_of_office" => of(NoData::json_schema),
        "user.set_online_visibility" => of(SetOnlineVisibility::json_schema),
        "user.set_notifications" => of(SetNotifications::json_schema),
        "room.create" => of(RoomCreate::json_schema),
        "room.open_interview" => of(RoomOpenInterview::json_schema),
        "room.add_member" => of(RoomAddMember::json_schema),
        "room.leave" => of(RoomOnly::json_schema),
        "room.rename" => of(RoomRename::json_schema),
        "room.favorite" | "room.hide" | "room.archive" => of(RoomToggle::json_schema),
        "room.mark_read" | "message.delete" => of(RoomMessage::json_schema),
        "contract.start" => of(ContractStart::json_schema),
        "contract.end" => of(ContractEnd::json_schema),
        "message.send" => of(MessageSend::json_schema),
        "message.edit" => of(MessageEdit::json_schema),
        "message.report" => of(MessageReport::json_schema),
        "call.start" => of(CallStart::json_schema),
        "call.end" => of(CallEnd::json_schema),
        "file.register" => of(FileRegister::json_schema),
        _ => None,
    }
}

/// The schema of a whole `parlor.cmd.<command_type>` payload, or `None` for an unknown type.
pub(crate) fn envelope_schema(
    command_type: &str,
    generator: &mut SchemaGenerator,
) -> Option<Schema> {
    let data = data_schema(command_type, generator)?;
    let mut envelope = Envelope::json_schema(generator);
    if command_type != "user.clear_out_of_office" {
        let object = envelope.as_object_mut()?;
        if let Some(serde_json::Value::Object(properties)) = object.get_mut("properties") {
            properties.insert("data".into(), data.to_value());
        }
        if let Some(serde_json::Value::Array(required)) = object.get_mut("required") {
            required.push("data".into());
        }
    }
    Some(envelope)
}
