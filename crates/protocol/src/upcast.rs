//! Upcasting: stored events written under an earlier schema version, read as today's
//! [`StoredEvent`]. Old records are never rewritten (the hash chain covers their bytes); they
//! are translated each time they are read.
//!
//! Schema v0 is the layout before v1. It is small on purpose: its events are three message
//! events, and its `MessageSent` had neither `reply_to` nor attachments. It exists so that the
//! seam is exercised from the start (a checked-in fixture, `tests/fixtures/events_v0.bin`, is
//! read back through it); no Parlor log was ever written in it.
//!
//! How to change a stored layout (v1 → v2):
//! 1. Copy today's `domain::Event` here as a frozen `EventV1` (and `StoredEventV1` around it),
//!    exactly as it is before the change: its bincode layout must not move.
//! 2. Change `domain::Event`, bump [`crate::CURRENT_SCHEMA_VERSION`] to 2.
//! 3. Write `upcast_v1(StoredEventV1) -> StoredEvent` filling what v1 lacks, make
//!    `upcast_v0` produce a `StoredEventV1` and chain them, and add `1 =>` to
//!    [`crate::decode_stored`]'s match.
//! 4. Check in a v1 fixture and a test that reads it, like the v0 one.

use domain::{CommandId, Event, MessageId, RoomId, Timestamp, UserId};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::codec::{self, CodecError};
use crate::record::{StoredEvent, CURRENT_SCHEMA_VERSION, STORED_BODY_BYTES_MAX};

/// The schema version of [`StoredEventV0`].
pub const SCHEMA_VERSION_V0: u16 = 0;

/// A stored event in schema v0: the same envelope as v1, with the v0 events.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StoredEventV0 {
    /// Always [`SCHEMA_VERSION_V0`].
    pub schema_version: u16,
    /// The event's own id.
    pub event_id: Uuid,
    /// The command that caused it.
    pub command_id: CommandId,
    /// Who sent that command, as text.
    pub actor: String,
    /// When it was recorded.
    pub recorded_at: Timestamp,
    /// What happened, in the v0 layout.
    pub event: LegacyEventV0,
}

/// The events of schema v0. Frozen: their bincode layout is what v0 records hold.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum LegacyEventV0 {
    /// A member sent a message; v0 had no replies and no attachments.
    MessageSent {
        /// The room.
        room_id: RoomId,
        /// The message.
        message_id: MessageId,
        /// The sender.
        author: UserId,
        /// The text.
        body: String,
        /// When.
        sent_at: Timestamp,
    },
    /// The author edited a message (unchanged since).
    MessageEdited {
        /// The room.
        room_id: RoomId,
        /// The message.
        message_id: MessageId,
        /// The new text.
        body: String,
        /// When.
        edited_at: Timestamp,
    },
    /// The author deleted a message (unchanged since).
    MessageDeleted {
        /// The room.
        room_id: RoomId,
        /// The message.
        message_id: MessageId,
        /// When.
        deleted_at: Timestamp,
    },
}

/// Encodes a v0 record. Parlor never writes v0; this builds fixtures and tests of the upcaster.
pub fn encode_v0(record: &StoredEventV0) -> Result<Vec<u8>, CodecError> {
    if record.schema_version != SCHEMA_VERSION_V0 {
        return Err(CodecError::Encode(format!(
            "schema_version is {}, expected {SCHEMA_VERSION_V0}",
            record.schema_version
        )));
    }
    codec::encode(record)
}

/// Decodes a v0 record (its schema version already read from its first field).
pub(crate) fn decode_v0(bytes: &[u8]) -> Result<StoredEventV0, CodecError> {
    codec::decode(bytes, STORED_BODY_BYTES_MAX)
}

/// Steps a v0 record up to the current schema: a v0 message had no reply and no attachments.
pub fn upcast_v0(record: StoredEventV0) -> StoredEvent {
    let event = match record.event {
        LegacyEventV0::MessageSent {
            room_id,
            message_id,
            author,
            body,
            sent_at,
        } => Event::MessageSent {
            room_id,
            message_id,
            author,
            body,
            reply_to: None,
            attachments: Vec::new(),
            sent_at,
        },
        LegacyEventV0::MessageEdited {
            room_id,
            message_id,
            body,
            edited_at,
        } => Event::MessageEdited {
            room_id,
            message_id,
            body,
            edited_at,
        },
        LegacyEventV0::MessageDeleted {
            room_id,
            message_id,
            deleted_at,
        } => Event::MessageDeleted {
            room_id,
            message_id,
            deleted_at,
        },
    };
    StoredEvent {
        schema_version: CURRENT_SCHEMA_VERSION,
        event_id: record.event_id,
        command_id: record.command_id,
        actor: record.actor,
        recorded_at: record.recorded_at,
        event,
    }
}
