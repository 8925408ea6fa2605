//! Replies to commands (protocol.md §1) in JSON and bincode, and the HTTP status of each error
//! code (§3).
//!
//! JSON, exactly as §1 (compact, keys in this order):
//! `{"ok":true,"position":1042,"events":[{"position":1042,"stream":"room-…","version":7,"type":"message_sent"}],"result":{"room_id":"…","message_id":"…"}}`
//! and `{"ok":false,"error":{"code":"edit_window_expired","message":"…"}}`. When a command has
//! no result the `result` key is left out (decoding also accepts `"result": null`); inside
//! `result` only the ids the command returns appear.
//!
//! Bincode: [`Reply`] as an externally tagged enum (`Ok` = 0, `Err` = 1) of the same fields.

use domain::{CallId, CommandResult, ErrorCode, MessageId, Rejection, RoomId};
use serde::de::Error as _;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::Value;

use crate::codec::{self, CodecError, Format};
use crate::command::InvalidCommand;

/// The largest reply, in bytes, in either format (the event log stores replies up to this).
pub const REPLY_BYTES_MAX: u64 = 64 * 1024;

/// The answer to a command.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reply {
    /// Accepted: the events it appended (none for a no-op) and its result.
    Ok {
        /// The global log position after the command (the head, for a no-op).
        position: u64,
        /// The events appended, in order.
        events: Vec<EventRef>,
        /// The ids the command returns, if any.
        result: Option<ReplyResult>,
    },
    /// Refused.
    Err {
        /// The stable error code.
        code: ErrorCode,
        /// A sentence for people.
        message: String,
    },
}

impl Reply {
    /// The reply to an accepted command.
    pub fn accepted(position: u64, events: Vec<EventRef>, result: &CommandResult) -> Reply {
        Reply::Ok {
            position,
            events,
            result: ReplyResult::from_command_result(result),
        }
    }

    /// The reply to a refused command.
    pub fn rejected(rejection: &Rejection) -> Reply {
        Reply::Err {
            code: rejection.code,
            message: rejection.message.clone(),
        }
    }

    /// The error code, for a refusal.
    pub fn code(&self) -> Option<ErrorCode> {
        match self {
            Reply::Ok { .. } => None,
            Reply::Err { code, .. } => Some(*code),
        }
    }
}

impl From<Rejection> for Reply {
    fn from(rejection: Rejection) -> Reply {
        Reply::Err {
            code: rejection.code,
            message: rejection.message,
        }
    }
}

impl From<InvalidCommand> for Reply {
    fn from(invalid: InvalidCommand) -> Reply {
        Reply::Err {
            code: ErrorCode::InvalidCommand,
            message: invalid.message,
        }
    }
}

/// One appended event, as a reply lists it.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize, schemars::JsonSchema)]
pub struct EventRef {
    /// Its global position.
    pub position: u64,
    /// Its stream (`room-<uuid>`, `user-<id>`, `file-<uuid>`).
    pub stream: String,
    /// Its version within the stream.
    pub version: u64,
    /// Its type (`message_sent`); the JSON key is `type`.
    #[serde(rename = "type")]
    pub type_name: String,
}

impl EventRef {
    /// An event reference.
    pub fn new(
        position: u64,
        stream: impl Into<String>,
        version: u64,
        type_name: impl Into<String>,
    ) -> EventRef {
        EventRef {
            position,
            stream: stream.into(),
            version,
            type_name: type_name.into(),
        }
    }
}

/// The ids an accepted command returns (§1's `result` column).
///
/// In JSON only the ids present appear; in bincode all three options are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct ReplyResult {
    /// `room.create`, `room.open_interview`, `contract.start`, `message.send`.
    pub room_id: Option<RoomId>,
    /// `message.send`.
    pub message_id: Option<MessageId>,
    /// `call.start`.
    pub call_id: Option<CallId>,
}

impl ReplyResult {
    /// The result of `result`; `None` for [`CommandResult::None`].
    pub fn from_command_result(result: &CommandResult) -> Option<ReplyResult> {
        match result {
            CommandResult::None => None,
            CommandResult::Room { room_id } => Some(ReplyResult {
                room_id: Some(*room_id),
                ..ReplyResult::default()
            }),
            CommandResult::Message {
                room_id,
                message_id,
            } => Some(ReplyResult {
                room_id: Some(*room_id),
                message_id: Some(*message_id),
                call_id: None,
            }),
            CommandResult::Call { call_id } => Some(ReplyResult {
                call_id: Some(*call_id),
                ..ReplyResult::default()
            }),
        }
    }
}

/// The bincode layout of [`ReplyResult`].
#[derive(Serialize, Deserialize)]
struct BinaryResult {
    room_id: Option<RoomId>,
    message_id: Option<MessageId>,
    call_id: Option<CallId>,
}

/// The JSON layout of [`ReplyResult`]: absent ids are left out.
#[derive(Serialize, Deserialize)]
struct JsonResult {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    room_id: Option<RoomId>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    message_id: Option<MessageId>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    call_id: Option<CallId>,
}

impl Serialize for ReplyResult {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let ReplyResult {
            room_id,
            message_id,
            call_id,
        } = *self;
        if serializer.is_human_readable() {
            JsonResult {
                room_id,
                message_id,
                call_id,
            }
            .serialize(serializer)
        } else {
            BinaryResult {
                room_id,
                message_id,
                call_id,
            }
            .serialize(serializer)
        }
    }
}

impl<'de> Deserialize<'de> for ReplyResult {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        if deserializer.is_human_readable() {
            let JsonResult {
                room_id,
                message_id,
                call_id,
            } = JsonResult::deserialize(deserializer)?;
            Ok(ReplyResult {
                room_id,
                message_id,
                call_id,
            })
        } else {
            let BinaryResult {
                room_id,
                message_id,
                call_id,
            } = BinaryResult::deserialize(deserializer)?;
            Ok(ReplyResult {
                room_id,
                message_id,
                call_id,
            })
        }
    }
}

/// The JSON layout of an accepted reply.
#[derive(Serialize)]
struct JsonOk<'a> {
    ok: bool,
    position: u64,
    events: &'a [EventRef],
    #[serde(skip_serializing_if = "Option::is_none")]
    result: Option<&'a ReplyResult>,
}

/// The JSON layout of an accepted reply, as read.
#[derive(Deserialize)]
struct JsonOkOwned {
    position: u64,
    events: Vec<EventRef>,
    #[serde(default)]
    result: Option<ReplyResult>,
}

/// The JSON layout of a refusal.
#[derive(Serialize)]
struct JsonErr<'a> {
    ok: bool,
    error: JsonError<'a>,
}

/// The `error` object of a refusal.
#[derive(Serialize)]
struct JsonError<'a> {
    code: ErrorCode,
    message: &'a str,
}

/// The JSON layout of a refusal, as read.
#[derive(Deserialize)]
struct JsonErrOwned {
    error: JsonErrorOwned,
}

/// The `error` object of a refusal, as read.
#[derive(Deserialize)]
struct JsonErrorOwned {
    code: ErrorCode,
    message: String,
}

/// The bincode layout of [`Reply`], borrowed for encoding.
#[derive(Serialize)]
enum BinaryReplyRef<'a> {
    Ok {
        position: u64,
        events: &'a [EventRef],
        result: &'a Option<ReplyResult>,
    },
    Err {
        code: ErrorCode,
        message: &'a str,
    },
}

/// The bincode layout of [`Reply`], as read; variant for variant the same as [`BinaryReplyRef`].
#[derive(Deserialize)]
enum BinaryReply {
    Ok {
        position: u64,
        events: Vec<EventRef>,
        result: Option<ReplyResult>,
    },
    Err {
        code: ErrorCode,
        message: String,
    },
}

impl Serialize for Reply {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let human = serializer.is_human_readable();
        match self {
            Reply::Ok {
                position,
                events,
                result,
            } if human => JsonOk {
                ok: true,
                position: *position,
                events,
                result: result.as_ref(),
            }
            .serialize(serializer),
            Reply::Err { code, message } if human => JsonErr {
                ok: false,
                error: JsonError {
                    code: *code,
                    message,
                },
            }
            .serialize(serializer),
            Reply::Ok {
                position,
                events,
                result,
            } => BinaryReplyRef::Ok {
                position: *position,
                events,
                result,
            }
            .serialize(serializer),
            Reply::Err { code, message } => BinaryReplyRef::Err {
                code: *code,
                message,
            }
            .serialize(serializer),
        }
    }
}

impl<'de> Deserialize<'de> for Reply {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        if !deserializer.is_human_readable() {
            return Ok(match BinaryReply::deserialize(deserializer)? {
                BinaryReply::Ok {
                    position,
                    events,
                    result,
                } => Reply::Ok {
                    position,
                    events,
                    result,
                },
                BinaryReply::Err { code, message } => Reply::Err { code, message },
            });
        }
        let value = Value::deserialize(deserializer)?;
        match value.get("ok").and_then(Value::as_bool) {
            Some(true) => {
                let JsonOkOwned {
                    position,
                    events,
                    result,
                } = serde_json::from_value(value).map_err(D::Error::custom)?;
                Ok(Reply::Ok {
                    position,
                    events,
                    result,
                })
            }
            Some(false) => {
                let JsonErrOwned { error } =
                    serde_json::from_value(value).map_err(D::Error::custom)?;
                Ok(Reply::Err {
                    code: error.code,
                    message: error.message,
                })
            }
            None => Err(D::Error::custom("ok: expected a boolean")),
        }
    }
}

/// Encodes a reply in `format` (the format of the request it answers).
pub fn encode_reply(reply: &Reply, format: Format) -> Result<Vec<u8>, CodecError> {
    codec::encode_as(reply, format)
}

/// Decodes a reply in `format`; at most [`REPLY_BYTES_MAX`] bytes.
pub fn decode_reply(bytes: &[u8], format: Format) -> Result<Reply, CodecError> {
    codec::decode_as(bytes, format, REPLY_BYTES_MAX)
}

/// The HTTP status of an error code (protocol.md §3).
pub fn http_status(code: ErrorCode) -> u16 {
    match code {
        ErrorCode::InvalidCommand => 400,
        ErrorCode::Forbidden => 403,
        ErrorCode::NotFound | ErrorCode::NotMember => 404,
        ErrorCode::VersionConflict
        | ErrorCode::DuplicateMessageId
        | ErrorCode::AlreadyDeleted
        | ErrorCode::CallInProgress
        | ErrorCode::DuplicateCommandId => 409,
        ErrorCode::FileTooLarge => 413,
        ErrorCode::DailyConversationLimit => 429,
        ErrorCode::Unavailable => 503,
        // Rule rejections; listed one by one so that a new code needs a decision here.
        ErrorCode::NotAuthor
        | ErrorCode::Blocked
        | ErrorCode::ContactInfoOutsideContract
        | ErrorCode::EditWindowExpired
        | ErrorCode::DeleteWindowExpired
        | ErrorCode::CannotAddToDirect
        | ErrorCode::CannotHideKind
        | ErrorCode::CannotArchiveKind
        | ErrorCode::PlatformNotSupported
        | ErrorCode::BodyTooLong
        | ErrorCode::EmptyMessage => 422,
    }
}
