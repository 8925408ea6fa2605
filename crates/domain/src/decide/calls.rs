//! `decide` for calls: one active call per room, started and ended by its members.

use crate::command::CallMedia;
use crate::event::Event;
use crate::ids::{CallId, RoomId};
use crate::rejection::{ErrorCode, Rejection};

use super::context::Context;

/// `call.start` (R-B2 in direct rooms; one call at a time).
pub(super) fn start_call(
    ctx: &Context<'_>,
    room_id: &RoomId,
    media: &CallMedia,
) -> Result<Vec<Event>, Rejection> {
    let (command, now) = (ctx.command, ctx.now);
    let actor = ctx.user()?;
    let room = ctx.member_room(room_id)?;
    ctx.check_direct_not_blocked(room)?;
    if room.active_call.is_some() {
        return Err(Rejection::new(
            ErrorCode::CallInProgress,
            "the room has an active call",
        ));
    }
    let call_id = CallId(command.command_id.derive("call"));
    // Calls and messages share the timeline's lookup by id: a client-chosen message id may have
    // taken the id this command id gives its call.
    if ctx.state.message_or_call_id_taken(&call_id.0) {
        return Err(Rejection::invalid(
            "command_id: the call id it gives is taken; send with a new command id",
        ));
    }
    Ok(vec![Event::CallStarted {
        room_id: *room_id,
        call_id,
        media: *media,
        started_by: actor.clone(),
        started_at: now,
    }])
}

/// `call.end`.
pub(super) fn end_call(
    ctx: &Context<'_>,
    room_id: &RoomId,
    call_id: &CallId,
) -> Result<Vec<Event>, Rejection> {
    let now = ctx.now;
    let actor = ctx.user()?;
    let room = ctx.member_room(room_id)?;
    match room.active_call {
        Some((active, started_at)) if active == *call_id => Ok(vec![Event::CallEnded {
            room_id: *room_id,
            call_id: *call_id,
            ended_by: actor.clone(),
            ended_at: now,
            duration_ms: now.millis_since(started_at).max(0),
        }]),
        _ => Err(Rejection::new(
            ErrorCode::NotFound,
            "call_id: no such active call in the room",
        )),
    }
}
