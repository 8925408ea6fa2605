//! Events as stored and as shown: [`StoredEvent`] is the payload the writer puts in the event log
//! (bincode, schema-versioned, upcast on read); [`RecordedEvent`] is the public view of one log
//! entry (protocol.md §2), in JSON for foreign consumers and in bincode for Rust ones.
//!
//! Stored layout: [`FORMAT_VERSION`](crate::FORMAT_VERSION), then bincode of the fields
//! `schema_version` (u16), `event_id` (UUID), `command_id` (UUID), `actor` (text),
//! `recorded_at` (i64 ms) and `event` (the domain's `Event`, by variant index). Because the
//! schema version comes first, a reader can tell the layout before decoding the rest. Event
//! variants may only be appended (the index is the tag); any other change is a new schema version
//! with an upcaster in [`crate::upcast`].

use domain::{Actor, CommandId, Event, Timestamp};
use serde::de::Error as _;
use serde::ser::Error as _;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::{Map, Value};
use uuid::Uuid;

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine as _;

use crate::codec::{self, CodecError, Format};
use crate::digest::Sha256;
use crate::spelling;
use crate::upcast;

/// The schema version [`encode_stored`] writes.
pub const CURRENT_SCHEMA_VERSION: u16 = 1;

/// The largest stored event, in bytes, format byte included: the event log's record payload
/// bound (512 KiB), checked before writing and when reading back.
pub const STORED_EVENT_BYTES_MAX: u64 = 512 * 1024;

/// The largest single [`RecordedEvent`] accepted by [`RecordedEvent::decode`], in bytes.
pub const RECORDED_EVENT_BYTES_MAX: u64 = 1024 * 1024;

/// One event as the writer stores it in the log.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StoredEvent {
    /// The layout version; [`CURRENT_SCHEMA_VERSION`] once decoded (older ones are upcast).
    pub schema_version: u16,
    /// The event's own id.
    pub event_id: Uuid,
    /// The command that caused it.
    pub command_id: CommandId,
    /// Who sent that command, as text (`alice`, `service:hiring`).
    pub actor: String,
    /// The writer's clock when the command was decided.
    pub recorded_at: Timestamp,
    /// What happened.
    pub event: Event,
}

impl StoredEvent {
    /// A stored event in the current schema.
    pub fn new(
        event_id: Uuid,
        command_id: CommandId,
        actor: &Actor,
        recorded_at: Timestamp,
        event: Event,
    ) -> StoredEvent {
        StoredEvent {
            schema_version: CURRENT_SCHEMA_VERSION,
            event_id,
            command_id,
            actor: actor.to_string(),
            recorded_at,
            event,
        }
    }
}

/// The bincode limit of a stored event's body (everything after the format byte).
pub(crate) const STORED_BODY_BYTES_MAX: u64 = STORED_EVENT_BYTES_MAX - 1;

/// The first field of every stored layout.
#[derive(Deserialize)]
struct SchemaHeader {
    schema_version: u16,
}

/// Encodes a stored event in the current schema; refuses another schema version, or a result
/// over [`STORED_EVENT_BYTES_MAX`] (which [`decode_stored`] would refuse to read back).
pub fn encode_stored(stored: &StoredEvent) -> Result<Vec<u8>, CodecError> {
    if stored.schema_version != CURRENT_SCHEMA_VERSION {
        return Err(CodecError::Encode(format!(
            "schema_version is {}, but only {CURRENT_SCHEMA_VERSION} is written",
            stored.schema_version
        )));
    }
    let bytes = codec::encode(stored)?;
    if u64::try_from(bytes.len()).map_or(true, |len| len > STORED_EVENT_BYTES_MAX) {
        return Err(CodecError::TooLarge {
            limit: STORED_EVENT_BYTES_MAX,
        });
    }
    Ok(bytes)
}

/// Decodes a stored event of any known schema version, upcast to the current one.
pub fn decode_stored(bytes: &[u8]) -> Result<StoredEvent, CodecError> {
    let SchemaHeader { schema_version } = codec::decode_prefix(bytes, STORED_BODY_BYTES_MAX)?;
    match schema_version {
        CURRENT_SCHEMA_VERSION => {
            let stored: StoredEvent = codec::decode(bytes, STORED_BODY_BYTES_MAX)?;
            Ok(stored)
        }
        // Each older layout is decoded as itself, then stepped up one version at a time.
        upcast::SCHEMA_VERSION_V0 => upcast::decode_v0(bytes).map(upcast::upcast_v0),
        unknown => Err(CodecError::UnknownSchema(unknown)),
    }
}

/// The fields of the current stored layout up to the event's variant index, borrowed: enough
/// to name the event without decoding it.
#[derive(Deserialize)]
struct StoredPrefix<'a> {
    schema_version: u16,
    _event_id: Uuid,
    _command_id: CommandId,
    _actor: &'a str,
    _recorded_at: Timestamp,
    variant: u32,
}

/// Bytes of the stored layout before `event_id`: the format byte and the `u16` schema version.
const STORED_HEAD_BYTES: usize = 3;

/// The bincode [`RecordedEvent`] of the stored record `stored` at `position` in `stream` at
/// `version` with chain hash `hash`, and the event's type name, without decoding the event.
///
/// The bincode view is the stored layout's fields from `event_id` to `event`, unchanged,
/// between the log's fields: `[format] position stream version | event_id … event | hash`.
/// So a record in the current schema is spliced byte for byte; an older schema is decoded,
/// upcast and encoded as before. Either way the result is exactly
/// `RecordedEvent::from_stored(…, decode_stored(stored)?).encode(Format::Bincode)`.
pub fn recorded_bincode_from_stored(
    position: u64,
    stream: &str,
    version: u64,
    hash: [u8; 32],
    stored: &[u8],
) -> Result<(&'static str, Vec<u8>), CodecError> {
    let prefix: Option<StoredPrefix<'_>> =
        codec::decode_prefix_borrowed(stored, STORED_BODY_BYTES_MAX).ok();
    let type_name = prefix
        .filter(|prefix| prefix.schema_version == CURRENT_SCHEMA_VERSION)
        .and_then(|prefix| usize::try_from(prefix.variant).ok())
        .and_then(|variant| domain::event::EVENT_TYPES.get(variant).copied());
    let (Some(type_name), Some(tail)) = (type_name, stored.get(STORED_HEAD_BYTES..)) else {
        let recorded =
            RecordedEvent::from_stored(position, stream, version, hash, decode_stored(stored)?);
        return Ok((recorded.type_name(), recorded.encode(Format::Bincode)?));
    };
    let head = codec::encode(&(position, stream, version))?;
    let mut bytes = Vec::with_capacity(head.len() + tail.len() + hash.len());
    bytes.extend_from_slice(&head);
    bytes.extend_from_slice(tail);
    bytes.extend_from_slice(&hash);
    Ok((type_name, bytes))
}

/// One log entry as consumers see it (protocol.md §2).
///
/// JSON: `{"position", "stream", "version", "type", "event_id", "command_id", "actor",
/// "recorded_at", "data", "hash"}` where `data` is the event's fields as an object and `hash` is
/// 64 lowercase hex characters. Bincode: the same fields in that order, but with the whole
/// `Event` in place of `type` and `data`, and the hash as 32 bytes.
///
/// `raw`, the stored record bytes, is an optional addition (docs/protocol.md §2): only a
/// `log.read` reply to a request with `"raw": true` has it. JSON then adds `"raw"` (base64,
/// as `parlor audit export` lines do) and omits it otherwise, so other events are the same
/// bytes as before. Bincode events never hold it: [`crate::LogReadReply`] carries it after its
/// events, and encoding a lone event that has it in bincode is an error rather than a silent
/// loss.
#[derive(Debug, Clone, PartialEq)]
pub struct RecordedEvent {
    /// Global position, gapless from 1.
    pub position: u64,
    /// The stream (`room-<uuid>`, …).
    pub stream: String,
    /// Version within the stream, gapless from 1.
    pub version: u64,
    /// The event's id.
    pub event_id: Uuid,
    /// The command that caused it.
    pub command_id: CommandId,
    /// Who sent that command.
    pub actor: String,
    /// When it was recorded.
    pub recorded_at: Timestamp,
    /// What happened.
    pub event: Event,
    /// The log's chain hash of this record.
    pub hash: Sha256,
    /// The record exactly as the event log stores it (format byte … hash), when asked for.
    pub raw: Option<Vec<u8>>,
}

impl RecordedEvent {
    /// The view of `stored`, kept at `position` in `stream` at `version`, with chain hash `hash`.
    pub fn new(
        position: u64,
        stream: impl Into<String>,
        version: u64,
        hash: [u8; 32],
        stored: &StoredEvent,
    ) -> RecordedEvent {
        RecordedEvent::from_stored(position, stream, version, hash, stored.clone())
    }

    /// Like [`RecordedEvent::new`], taking the stored event by value.
    pub fn from_stored(
        position: u64,
        stream: impl Into<String>,
        version: u64,
        hash: [u8; 32],
        stored: StoredEvent,
    ) -> RecordedEvent {
        RecordedEvent {
            position,
            stream: stream.into(),
            version,
            event_id: stored.event_id,
            command_id: stored.command_id,
            actor: stored.actor,
            recorded_at: stored.recorded_at,
            event: stored.event,
            hash: Sha256(hash),
            raw: None,
        }
    }

    /// The same event carrying its stored record bytes.
    pub fn with_raw(self, raw: Vec<u8>) -> RecordedEvent {
        RecordedEvent {
            raw: Some(raw),
            ..self
        }
    }

    /// The bincode layout of the event, without `raw`.
    pub(crate) fn binary(&self) -> BinaryRecordedRef<'_> {
        BinaryRecordedRef {
            position: self.position,
            stream: &self.stream,
            version: self.version,
            event_id: &self.event_id,
            command_id: &self.command_id,
            actor: &self.actor,
            recorded_at: self.recorded_at,
            event: &self.event,
            hash: self.hash,
        }
    }

    /// The event's type (`message_sent`), the JSON `type`.
    pub fn type_name(&self) -> &'static str {
        self.event.type_name()
    }

    /// The event's fields as a JSON object, the JSON `data`.
    pub fn data(&self) -> Result<Map<String, Value>, CodecError> {
        event_data(&self.event)
    }

    /// Encodes the view in `format`.
    pub fn encode(&self, format: Format) -> Result<Vec<u8>, CodecError> {
        codec::encode_as(self, format)
    }

    /// Decodes a view in `format`; at most [`RECORDED_EVENT_BYTES_MAX`] bytes.
    pub fn decode(bytes: &[u8], format: Format) -> Result<RecordedEvent, CodecError> {
        codec::decode_as(bytes, format, RECORDED_EVENT_BYTES_MAX)
    }

    /// The bytes [`RecordedEvent::encode`] produces (to fill a `log.read` page up to its byte
    /// bound). Inside a list, a bincode event takes one byte less (no format byte of its own)
    /// and a JSON one a byte more (the comma). In bincode, `raw` is counted as its share of the
    /// reply's trailing list (an 8-byte length and the bytes).
    pub fn encoded_len(&self, format: Format) -> Result<u64, CodecError> {
        match format {
            Format::Json => self
                .encode(Format::Json)
                .map(|bytes| u64::try_from(bytes.len()).unwrap_or(u64::MAX)),
            Format::Bincode => {
                let raw = self.raw.as_ref().map_or(0, |raw| {
                    u64::try_from(raw.len()).map_or(u64::MAX, |len| len.saturating_add(8))
                });
                Ok(codec::encoded_len(&self.binary())?.saturating_add(raw))
            }
        }
    }
}

/// The fields of `event` as a JSON object: serde_json writes an event as `{"<type>": {…}}`,
/// this is the inner object, with enum values in the protocol's spelling.
fn event_data(event: &Event) -> Result<Map<String, Value>, CodecError> {
    let value =
        serde_json::to_value(event).map_err(|error| CodecError::Encode(error.to_string()))?;
    let Value::Object(outer) = value else {
        return Err(CodecError::Encode("an event is not a JSON object".into()));
    };
    match outer.into_iter().next() {
        Some((type_name, Value::Object(mut data))) => {
            spelling::event_data_to_protocol(&type_name, &mut data);
            Ok(data)
        }
        _ => Err(CodecError::Encode(
            "an event is not {\"<type>\": {fields}}".into(),
        )),
    }
}

/// Rebuilds an event from its JSON `type` and `data` (the inverse of [`RecordedEvent::data`]).
pub fn event_from_type_and_data(
    type_name: &str,
    mut data: Map<String, Value>,
) -> Result<Event, CodecError> {
    spelling::event_data_from_protocol(type_name, &mut data);
    let mut outer = Map::new();
    outer.insert(type_name.to_owned(), Value::Object(data));
    serde_json::from_value(Value::Object(outer))
        .map_err(|error| CodecError::Json(format!("event of type '{type_name}': {error}")))
}

/// The JSON layout of [`RecordedEvent`], borrowed for encoding.
#[derive(Serialize)]
struct JsonRecordedRef<'a> {
    position: u64,
    stream: &'a str,
    version: u64,
    #[serde(rename = "type")]
    type_name: &'a str,
    event_id: &'a Uuid,
    command_id: &'a CommandId,
    actor: &'a str,
    recorded_at: Timestamp,
    data: Map<String, Value>,
    hash: Sha256,
    #[serde(skip_serializing_if = "Option::is_none")]
    raw: Option<String>,
}

/// The JSON layout of [`RecordedEvent`], as read.
#[derive(Deserialize)]
struct JsonRecorded {
    position: u64,
    stream: String,
    version: u64,
    #[serde(rename = "type")]
    type_name: String,
    event_id: Uuid,
    command_id: CommandId,
    actor: String,
    recorded_at: Timestamp,
    data: Map<String, Value>,
    hash: Sha256,
    #[serde(default)]
    raw: Option<String>,
}

/// The bincode layout of [`RecordedEvent`], borrowed for encoding.
#[derive(Serialize)]
pub(crate) struct BinaryRecordedRef<'a> {
    position: u64,
    stream: &'a str,
    version: u64,
    event_id: &'a Uuid,
    command_id: &'a CommandId,
    actor: &'a str,
    recorded_at: Timestamp,
    event: &'a Event,
    hash: Sha256,
}

/// The bincode layout of [`RecordedEvent`], as read; field for field [`BinaryRecordedRef`].
#[derive(Deserialize)]
struct BinaryRecorded {
    position: u64,
    stream: String,
    version: u64,
    event_id: Uuid,
    command_id: CommandId,
    actor: String,
    recorded_at: Timestamp,
    event: Event,
    hash: Sha256,
}

impl Serialize for RecordedEvent {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        if serializer.is_human_readable() {
            JsonRecordedRef {
                position: self.position,
                stream: &self.stream,
                version: self.version,
                type_name: self.type_name(),
                event_id: &self.event_id,
                command_id: &self.command_id,
                actor: &self.actor,
                recorded_at: self.recorded_at,
                data: self.data().map_err(S::Error::custom)?,
                hash: self.hash,
                raw: self.raw.as_deref().map(|raw| BASE64.encode(raw)),
            }
            .serialize(serializer)
        } else if self.raw.is_some() {
            Err(S::Error::custom(
                "an event's record bytes travel in bincode only inside a log.read reply",
            ))
        } else {
            self.binary().serialize(serializer)
        }
    }
}

impl<'de> Deserialize<'de> for RecordedEvent {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        if deserializer.is_human_readable() {
            let json = JsonRecorded::deserialize(deserializer)?;
            let event =
                event_from_type_and_data(&json.type_name, json.data).map_err(D::Error::custom)?;
            let raw = json
                .raw
                .map(|raw| BASE64.decode(raw.as_bytes()))
                .transpose()
                .map_err(|error| D::Error::custom(format!("raw: not base64: {error}")))?;
            Ok(RecordedEvent {
                position: json.position,
                stream: json.stream,
                version: json.version,
                event_id: json.event_id,
                command_id: json.command_id,
                actor: json.actor,
                recorded_at: json.recorded_at,
                event,
                hash: json.hash,
                raw,
            })
        } else {
            let binary = BinaryRecorded::deserialize(deserializer)?;
            Ok(RecordedEvent {
                position: binary.position,
                stream: binary.stream,
                version: binary.version,
                event_id: binary.event_id,
                command_id: binary.command_id,
                actor: binary.actor,
                recorded_at: binary.recorded_at,
                event: binary.event,
                hash: binary.hash,
                raw: None,
            })
        }
    }
}
