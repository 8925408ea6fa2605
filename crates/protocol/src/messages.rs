//! The contract's other messages: `parlor.log.read` and `parlor.audit.head` (§2),
//! `parlor.notify.<user_id>` (§2) and `parlor.dev.clock` (§4), each in JSON and bincode.
//!
//! Requests (`log.read`, `dev.clock`) come from outside, so their decoders check every field and
//! say which one is wrong ([`InvalidRequest`]); unknown JSON fields are ignored. The other
//! messages are produced by Parlor and decode with [`CodecError`]s.

use domain::{MessageId, NotificationFrequency, RoomId, Timestamp, UserId};
use serde::de::Error as _;
use serde::{Deserialize, Deserializer, Serialize};
use serde_json::{Map, Value};

use crate::codec::{self, CodecError, Format};
use crate::digest::Sha256;
use crate::fields::{expect_object, FieldResult, Fields};
use crate::record::RecordedEvent;

/// The most events one `log.read` reply holds.
pub const LOG_READ_EVENTS_MAX: u32 = 10_000;

/// The events a `log.read` reply holds when the request names no `max`.
pub const LOG_READ_EVENTS_DEFAULT: u32 = 1_000;

/// The largest `log.read` reply, in bytes: a reply stops before this (one NATS message).
pub const LOG_READ_REPLY_BYTES_MAX: u64 = 1024 * 1024;

/// The largest `log.read` or `dev.clock` request, in bytes.
pub const REQUEST_BYTES_MAX: u64 = 4 * 1024;

/// The largest notification batch, in bytes (one NATS message).
pub const NOTIFICATION_BYTES_MAX: u64 = 1024 * 1024;

/// The largest audit head or dev clock reply, in bytes.
const SMALL_MESSAGE_BYTES_MAX: u64 = 4 * 1024;

/// A request that is not valid, with a message naming the field.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid request: {message}")]
pub struct InvalidRequest {
    /// What is wrong (`max: at most 10000`).
    pub message: String,
}

impl InvalidRequest {
    /// An invalid request with `message`.
    fn new(message: impl Into<String>) -> InvalidRequest {
        InvalidRequest {
            message: message.into(),
        }
    }
}

/// Parses a small JSON request into an object; an empty body is `{}` (all defaults).
fn request_object(bytes: &[u8]) -> Result<Map<String, Value>, InvalidRequest> {
    if u64::try_from(bytes.len()).map_or(true, |len| len > REQUEST_BYTES_MAX) {
        return Err(InvalidRequest::new(format!(
            "payload is over the {REQUEST_BYTES_MAX}-byte limit"
        )));
    }
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Ok(Map::new());
    }
    let value: Value = serde_json::from_slice(bytes)
        .map_err(|error| InvalidRequest::new(format!("payload is not valid JSON: {error}")))?;
    expect_object(&value, "payload")
        .cloned()
        .map_err(InvalidRequest::new)
}

/// Decodes a bincode request, mapping codec errors to an invalid request.
fn bincode_request<T: serde::de::DeserializeOwned>(bytes: &[u8]) -> Result<T, InvalidRequest> {
    codec::decode(bytes, REQUEST_BYTES_MAX)
        .map_err(|error| InvalidRequest::new(format!("payload: {error}")))
}

/// `parlor.log.read`: up to `max` events from position `from` on, with their stored record
/// bytes when `raw` is set.
///
/// `raw` is an optional addition to protocol.md §2 (docs/protocol.md): absent means `false`, and
/// a request without it is encoded exactly as before (JSON without the key; bincode as the
/// 12 bytes of `from` and `max`), so old writers keep understanding new readers that do not
/// ask for it. In bincode `raw: true` is one trailing byte `1` after `max`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct LogReadRequest {
    /// The first position wanted, at least 1 (default 1).
    pub from: u64,
    /// The most events wanted, 1 to [`LOG_READ_EVENTS_MAX`] (default [`LOG_READ_EVENTS_DEFAULT`]).
    pub max: u32,
    /// Ask for each event's stored record bytes ([`RecordedEvent::raw`]), so that a reader can
    /// recompute the hash chain of a running system (`parlor audit verify --nats-url`).
    pub raw: bool,
}

impl Default for LogReadRequest {
    fn default() -> LogReadRequest {
        LogReadRequest {
            from: 1,
            max: LOG_READ_EVENTS_DEFAULT,
            raw: false,
        }
    }
}

impl LogReadRequest {
    /// A request without record bytes, checked as a decoded one would be.
    pub fn new(from: u64, max: u32) -> Result<LogReadRequest, InvalidRequest> {
        LogReadRequest {
            from,
            max,
            raw: false,
        }
        .checked()
        .map_err(InvalidRequest::new)
    }

    /// The same request asking (or not) for each event's stored record bytes.
    pub fn with_raw(self, raw: bool) -> LogReadRequest {
        LogReadRequest { raw, ..self }
    }

    /// The request if its values are in bounds.
    fn checked(self) -> FieldResult<LogReadRequest> {
        if self.from == 0 {
            return Err("from: must be at least 1 (positions start at 1)".into());
        }
        if self.max == 0 || self.max > LOG_READ_EVENTS_MAX {
            return Err(format!("max: must be 1 to {LOG_READ_EVENTS_MAX}"));
        }
        Ok(self)
    }

    /// Reads `{"from": 1, "max": 1000, "raw": false}`, all optional.
    fn from_json(object: &Map<String, Value>) -> FieldResult<LogReadRequest> {
        let fields = Fields::new(object, "");
        let from = fields.optional_unsigned("from")?.unwrap_or(1);
        let max = match fields.optional_unsigned("max")? {
            None => LOG_READ_EVENTS_DEFAULT,
            Some(max) => u32::try_from(max)
                .map_err(|_| format!("max: must be 1 to {LOG_READ_EVENTS_MAX}"))?,
        };
        let raw = fields.optional_boolean("raw")?.unwrap_or(false);
        LogReadRequest { from, max, raw }.checked()
    }

    /// Encodes the request in `format`.
    pub fn encode(&self, format: Format) -> Result<Vec<u8>, CodecError> {
        codec::encode_as(self, format)
    }

    /// Decodes and checks a request in `format`; an empty JSON body asks for the defaults. In
    /// bincode both the old 12-byte layout and the one with the trailing `raw` flag decode.
    pub fn decode(bytes: &[u8], format: Format) -> Result<LogReadRequest, InvalidRequest> {
        match format {
            Format::Json => {
                LogReadRequest::from_json(&request_object(bytes)?).map_err(InvalidRequest::new)
            }
            Format::Bincode => {
                let (BinaryLogReadRequest { from, max }, raw) =
                    codec::decode_with_tail::<_, bool>(bytes, REQUEST_BYTES_MAX)
                        .map_err(|error| InvalidRequest::new(format!("payload: {error}")))?;
                LogReadRequest {
                    from,
                    max,
                    raw: raw.unwrap_or(false),
                }
                .checked()
                .map_err(InvalidRequest::new)
            }
        }
    }
}

/// The bincode layout of [`LogReadRequest`] as first published; `raw` trails it when set.
#[derive(Serialize, Deserialize)]
struct BinaryLogReadRequest {
    from: u64,
    max: u32,
}

/// The JSON layout of [`LogReadRequest`]: `raw` is written only when set, so a request that
/// does not ask for record bytes is the same text as before the addition.
#[derive(Serialize)]
struct JsonLogReadRequest {
    from: u64,
    max: u32,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    raw: bool,
}

impl Serialize for LogReadRequest {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeTuple as _;
        if serializer.is_human_readable() {
            JsonLogReadRequest {
                from: self.from,
                max: self.max,
                raw: self.raw,
            }
            .serialize(serializer)
        } else if self.raw {
            // bincode writes a tuple's elements back to back: the old layout, then the flag.
            let mut tuple = serializer.serialize_tuple(3)?;
            tuple.serialize_element(&self.from)?;
            tuple.serialize_element(&self.max)?;
            tuple.serialize_element(&true)?;
            tuple.end()
        } else {
            BinaryLogReadRequest {
                from: self.from,
                max: self.max,
            }
            .serialize(serializer)
        }
    }
}

impl<'de> Deserialize<'de> for LogReadRequest {
    /// JSON reads every field; bincode reads the first layout only (a trailing `raw` flag is
    /// left over and refused by the codec): use [`LogReadRequest::decode`], which reads both.
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let request = if deserializer.is_human_readable() {
            let value = Value::deserialize(deserializer)?;
            let object = expect_object(&value, "payload").map_err(D::Error::custom)?;
            LogReadRequest::from_json(object)
        } else {
            let BinaryLogReadRequest { from, max } =
                BinaryLogReadRequest::deserialize(deserializer)?;
            LogReadRequest {
                from,
                max,
                raw: false,
            }
            .checked()
        };
        request.map_err(D::Error::custom)
    }
}

/// The answer to `parlor.log.read`: events in position order and the log's head position.
///
/// When the request asked for `raw`, every event carries its stored record bytes
/// ([`RecordedEvent::raw`]). JSON writes them inside each event (`"raw"`, base64). Bincode's
/// event layout cannot grow (events are also published alone, and old readers decode them), so
/// there the record bytes follow the head as one trailing list, one entry per event in order;
/// a reply without them is byte for byte the reply of before the addition.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct LogReadReply {
    /// Events from the requested position on; fewer than asked at the head or at the byte bound.
    pub events: Vec<RecordedEvent>,
    /// The last position in the log.
    pub head: u64,
}

impl LogReadReply {
    /// Encodes the reply in `format` (the request's). Fails if only some events carry record
    /// bytes: a reply has them for every event or for none.
    pub fn encode(&self, format: Format) -> Result<Vec<u8>, CodecError> {
        codec::encode_as(self, format)
    }

    /// Decodes a reply in `format`; at most [`LOG_READ_REPLY_BYTES_MAX`] bytes.
    pub fn decode(bytes: &[u8], format: Format) -> Result<LogReadReply, CodecError> {
        match format {
            Format::Json => codec::decode_as(bytes, format, LOG_READ_REPLY_BYTES_MAX),
            Format::Bincode => {
                let (mut reply, raws) = codec::decode_with_tail::<LogReadReply, Vec<Vec<u8>>>(
                    bytes,
                    LOG_READ_REPLY_BYTES_MAX,
                )?;
                if let Some(raws) = raws {
                    if raws.len() != reply.events.len() {
                        return Err(CodecError::Malformed(format!(
                            "{} record byte strings for {} events",
                            raws.len(),
                            reply.events.len()
                        )));
                    }
                    for (event, raw) in reply.events.iter_mut().zip(raws) {
                        event.raw = Some(raw);
                    }
                }
                Ok(reply)
            }
        }
    }

    /// The events' record bytes in order, when every event has them; `None` when none has;
    /// an error when only some have.
    fn raws(&self) -> Result<Option<Vec<&[u8]>>, String> {
        let with_raw = self
            .events
            .iter()
            .filter(|event| event.raw.is_some())
            .count();
        if with_raw == 0 {
            return Ok(None);
        }
        if with_raw != self.events.len() {
            return Err(format!(
                "{with_raw} of {} events carry record bytes: all or none must",
                self.events.len()
            ));
        }
        Ok(Some(
            self.events
                .iter()
                .filter_map(|event| event.raw.as_deref())
                .collect(),
        ))
    }
}

impl Serialize for LogReadReply {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::{Error as _, SerializeStruct as _};
        let raws = self.raws().map_err(S::Error::custom)?;
        if serializer.is_human_readable() {
            // Each event writes its own `raw`.
            let mut reply = serializer.serialize_struct("LogReadReply", 2)?;
            reply.serialize_field("events", &self.events)?;
            reply.serialize_field("head", &self.head)?;
            return reply.end();
        }
        let events: Vec<_> = self.events.iter().map(RecordedEvent::binary).collect();
        let fields = if raws.is_some() { 3 } else { 2 };
        let mut reply = serializer.serialize_struct("LogReadReply", fields)?;
        reply.serialize_field("events", &events)?;
        reply.serialize_field("head", &self.head)?;
        if let Some(raws) = raws {
            reply.serialize_field("raw", &raws)?;
        }
        reply.end()
    }
}

/// `parlor.audit.head`: the writer's last position and its chain hash, for anchoring elsewhere.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, schemars::JsonSchema)]
pub struct AuditHead {
    /// The last position (0 for an empty log).
    pub position: u64,
    /// Its chain hash (64 lowercase hex in JSON).
    pub hash: Sha256,
}

impl AuditHead {
    /// Encodes the head in `format`.
    pub fn encode(&self, format: Format) -> Result<Vec<u8>, CodecError> {
        codec::encode_as(self, format)
    }

    /// Decodes a head in `format`.
    pub fn decode(bytes: &[u8], format: Format) -> Result<AuditHead, CodecError> {
        codec::decode_as(bytes, format, SMALL_MESSAGE_BYTES_MAX)
    }
}

/// `parlor.dev.clock` (development only): move the dev clock.
///
/// JSON: `{"advance_ms": N}` or `{"set_ms": T}`, exactly one of the two.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
pub enum DevClockRequest {
    /// Move the clock by this many milliseconds (negative moves it back).
    #[serde(rename = "advance_ms")]
    AdvanceMs(i64),
    /// Set the clock to this many milliseconds since the epoch.
    #[serde(rename = "set_ms")]
    SetMs(i64),
}

impl DevClockRequest {
    /// Reads `{"advance_ms": N}` or `{"set_ms": T}`.
    fn from_json(object: &Map<String, Value>) -> FieldResult<DevClockRequest> {
        let fields = Fields::new(object, "");
        match (
            fields.optional_signed("advance_ms")?,
            fields.optional_signed("set_ms")?,
        ) {
            (Some(advance), None) => Ok(DevClockRequest::AdvanceMs(advance)),
            (None, Some(set)) => Ok(DevClockRequest::SetMs(set)),
            (Some(_), Some(_)) => Err("payload: give advance_ms or set_ms, not both".into()),
            (None, None) => Err("advance_ms: missing (give advance_ms or set_ms)".into()),
        }
    }

    /// Encodes the request in `format`.
    pub fn encode(&self, format: Format) -> Result<Vec<u8>, CodecError> {
        codec::encode_as(self, format)
    }

    /// Decodes and checks a request in `format`.
    pub fn decode(bytes: &[u8], format: Format) -> Result<DevClockRequest, InvalidRequest> {
        match format {
            Format::Json => {
                DevClockRequest::from_json(&request_object(bytes)?).map_err(InvalidRequest::new)
            }
            Format::Bincode => bincode_request::<DevClockRequest>(bytes),
        }
    }
}

/// The bincode layout of [`DevClockRequest`] (the derived Serialize writes the same).
#[derive(Deserialize)]
enum BinaryDevClockRequest {
    AdvanceMs(i64),
    SetMs(i64),
}

impl<'de> Deserialize<'de> for DevClockRequest {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        if deserializer.is_human_readable() {
            let value = Value::deserialize(deserializer)?;
            let object = expect_object(&value, "payload").map_err(D::Error::custom)?;
            DevClockRequest::from_json(object).map_err(D::Error::custom)
        } else {
            Ok(match BinaryDevClockRequest::deserialize(deserializer)? {
                BinaryDevClockRequest::AdvanceMs(advance) => DevClockRequest::AdvanceMs(advance),
                BinaryDevClockRequest::SetMs(set) => DevClockRequest::SetMs(set),
            })
        }
    }
}

/// The answer to `parlor.dev.clock`: the dev clock's new time.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, schemars::JsonSchema)]
pub struct DevClockReply {
    /// Milliseconds since the epoch.
    pub now_ms: i64,
}

impl DevClockReply {
    /// Encodes the reply in `format`.
    pub fn encode(&self, format: Format) -> Result<Vec<u8>, CodecError> {
        codec::encode_as(self, format)
    }

    /// Decodes a reply in `format`.
    pub fn decode(bytes: &[u8], format: Format) -> Result<DevClockReply, CodecError> {
        codec::decode_as(bytes, format, SMALL_MESSAGE_BYTES_MAX)
    }
}

/// `parlor.notify.<user_id>`: one batch of new messages due for a user (R-A3).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct Notification {
    /// Whom to notify.
    pub user_id: UserId,
    /// Their setting, which made this batch due (spelled as in the protocol in JSON).
    #[serde(with = "crate::spelling::frequency_serde")]
    #[schemars(with = "NotificationFrequency")]
    pub frequency: NotificationFrequency,
    /// The messages, oldest first.
    pub items: Vec<NotificationItem>,
}

/// One message in a notification batch.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct NotificationItem {
    /// The room.
    pub room_id: RoomId,
    /// The message.
    pub message_id: MessageId,
    /// Its sender.
    pub author: UserId,
    /// The start of its body.
    pub preview: String,
    /// When it was sent (RFC 3339 in JSON).
    pub sent_at: Timestamp,
}

impl Notification {
    /// Encodes the batch in `format`.
    pub fn encode(&self, format: Format) -> Result<Vec<u8>, CodecError> {
        codec::encode_as(self, format)
    }

    /// Decodes a batch in `format`; at most [`NOTIFICATION_BYTES_MAX`] bytes.
    pub fn decode(bytes: &[u8], format: Format) -> Result<Notification, CodecError> {
        codec::decode_as(bytes, format, NOTIFICATION_BYTES_MAX)
    }
}
