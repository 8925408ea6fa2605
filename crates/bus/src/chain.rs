//! The hash chain as a follower checks it (security.md H-N2): a live event is taken only if
//! its hash is the log's chain hash of its own fields onto the hash of the event before it.
//! Anybody who may publish on `evt.>` can make up an event, but not one that chains, without
//! the previous hash and a sha256 preimage; a replayed real event fails on its position.

use protocol::{encode_stored, RecordedEvent, Sha256, StoredEvent, CURRENT_SCHEMA_VERSION};

/// The hash `event` must carry to follow the event whose hash is `previous`: the chain hash
/// of its record as the writer stores it. `None` when the event cannot be stored at all.
///
/// The record is rebuilt in the current schema; a live event is always freshly written in it,
/// so only events read back from an older log (which come from `log.read`, trusted as it is)
/// would differ.
pub fn chained_hash(previous: &Sha256, event: &RecordedEvent) -> Option<Sha256> {
    let stored = StoredEvent {
        schema_version: CURRENT_SCHEMA_VERSION,
        event_id: event.event_id,
        command_id: event.command_id,
        actor: event.actor.clone(),
        recorded_at: event.recorded_at,
        event: event.event.clone(),
    };
    let payload = encode_stored(&stored).ok()?;
    eventlog::record_hash(
        &eventlog::Hash(previous.0),
        event.position,
        &event.stream,
        event.version,
        &payload,
    )
    .ok()
    .map(|hash| Sha256(hash.0))
}

/// Whether `event` chains onto `previous`.
pub fn chains(previous: &Sha256, event: &RecordedEvent) -> bool {
    chained_hash(previous, event).is_some_and(|hash| hash == event.hash)
}
