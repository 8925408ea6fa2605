//! [`EventEnvelope`]: one logged event as read models apply it, converted from the protocol's
//! [`RecordedEvent`] (whatever the wire format was, JSON or bincode).

use domain::{CommandId, Event, Timestamp};
use protocol::RecordedEvent;
use uuid::Uuid;

/// One event of the log with its place in it. Read models key their checkpoints on `position`.
#[derive(Debug, Clone, PartialEq)]
pub struct EventEnvelope {
    /// Global position, gapless from 1.
    pub position: u64,
    /// The stream (`room-<uuid>`, `user-<id>`, `file-<uuid>`).
    pub stream: String,
    /// Version within the stream.
    pub version: u64,
    /// The event's own id.
    pub event_id: Uuid,
    /// The command that caused it.
    pub command_id: CommandId,
    /// Who sent that command (`alice`, `service:hiring`).
    pub actor: String,
    /// The writer's clock when the command was decided.
    pub recorded_at: Timestamp,
    /// What happened.
    pub event: Event,
}

impl From<RecordedEvent> for EventEnvelope {
    fn from(recorded: RecordedEvent) -> EventEnvelope {
        EventEnvelope {
            position: recorded.position,
            stream: recorded.stream,
            version: recorded.version,
            event_id: recorded.event_id,
            command_id: recorded.command_id,
            actor: recorded.actor,
            recorded_at: recorded.recorded_at,
            event: recorded.event,
        }
    }
}
