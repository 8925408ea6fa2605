//! `decide` for the room aggregate: group rooms, interview rooms, members, names and each
//! member's view of a room (favorite, hidden, archived, read).

use std::collections::BTreeSet;

use crate::event::{Event, RoomKind};
use crate::ids::{InterviewId, MessageId, RoomId, UserId};
use crate::limits::{ROOM_CREATE_MEMBERS_MAX, ROOM_NAME_CHARS_MAX, TITLE_CHARS_MAX};
use crate::rejection::{ErrorCode, Rejection};

use super::checks::{bounded_text, display_name, flag_change, refuse_contact_info};
use super::context::Context;

/// `room.create`: a group room (R-R2, R-R3, H-B1, H-C2).
pub(super) fn create_room(
    ctx: &Context<'_>,
    name: &str,
    members: &[UserId],
) -> Result<Vec<Event>, Rejection> {
    let (command, now) = (ctx.command, ctx.now);
    let actor = ctx.user()?;
    let name = display_name("name", name, ROOM_NAME_CHARS_MAX)?;
    // H-C2: a group room is never a contract's, and every member reads its name.
    refuse_contact_info(&name)?;
    if members.len() > ROOM_CREATE_MEMBERS_MAX {
        return Err(Rejection::invalid(format!(
            "members: at most {ROOM_CREATE_MEMBERS_MAX} members"
        )));
    }
    let mut all = vec![actor.clone()];
    let mut seen = BTreeSet::from([actor.clone()]);
    for member in members {
        ctx.known_user(member)?;
        ctx.check_not_blocked_by(member)?;
        if seen.insert(member.clone()) {
            all.push(member.clone());
        }
    }
    if all.len() < 2 {
        return Err(Rejection::invalid(
            "members: name at least one other member",
        ));
    }
    ctx.check_daily_limit(actor)?;
    let room_id = RoomId::for_group(&command.command_id);
    ctx.check_room_id_free(&room_id, "command_id")?;
    Ok(vec![Event::GroupRoomCreated {
        room_id,
        name,
        creator: actor.clone(),
        members: all,
        created_at: now,
    }])
}

/// `room.open_interview` (service): the hiring service opens an interview room.
pub(super) fn open_interview(
    ctx: &Context<'_>,
    interview_id: &InterviewId,
    title: &str,
    client: &UserId,
    freelancer: &UserId,
) -> Result<Vec<Event>, Rejection> {
    let (state, now) = (ctx.state, ctx.now);
    let title = bounded_text("title", title, 1, TITLE_CHARS_MAX)?;
    ctx.known_user(client)?;
    ctx.known_user(freelancer)?;
    if client == freelancer {
        return Err(Rejection::invalid("freelancer: must differ from client"));
    }
    if state.interviews.contains_key(interview_id) {
        return Ok(vec![]); // Opening an interview again is a no-op: its room exists.
    }
    let room_id = RoomId::for_interview(interview_id);
    ctx.check_room_id_free(&room_id, "interview_id")?;
    Ok(vec![Event::InterviewRoomOpened {
        room_id,
        interview_id: interview_id.clone(),
        title,
        client: client.clone(),
        freelancer: freelancer.clone(),
        opened_at: now,
    }])
}

/// `room.add_member` (R-R4, H-B1).
pub(super) fn add_member(
    ctx: &Context<'_>,
    room_id: &RoomId,
    user_id: &UserId,
) -> Result<Vec<Event>, Rejection> {
    let now = ctx.now;
    let actor = ctx.user()?;
    let room = ctx.member_room(room_id)?;
    if room.kind == RoomKind::Direct {
        return Err(Rejection::new(
            ErrorCode::CannotAddToDirect,
            "members cannot be added to a direct room",
        ));
    }
    ctx.known_user(user_id)?;
    if room.members.contains(user_id) {
        return Ok(vec![]);
    }
    ctx.check_not_blocked_by(user_id)?;
    Ok(vec![Event::MemberAdded {
        room_id: *room_id,
        user_id: user_id.clone(),
        added_by: actor.clone(),
        added_at: now,
    }])
}

/// `room.leave` (R-R5).
pub(super) fn leave_room(ctx: &Context<'_>, room_id: &RoomId) -> Result<Vec<Event>, Rejection> {
    let now = ctx.now;
    let actor = ctx.user()?;
    let room = ctx.member_room(room_id)?;
    if room.kind != RoomKind::Group {
        return Err(Rejection::new(
            ErrorCode::Forbidden,
            "only group rooms can be left; hide the room instead",
        ));
    }
    Ok(vec![Event::MemberLeft {
        room_id: *room_id,
        user_id: actor.clone(),
        left_at: now,
    }])
}

/// `room.rename` (R-R7, H-C2).
pub(super) fn rename_room(
    ctx: &Context<'_>,
    room_id: &RoomId,
    name: &str,
) -> Result<Vec<Event>, Rejection> {
    let actor = ctx.user()?;
    let room = ctx.member_room(room_id)?;
    if room.kind != RoomKind::Group {
        return Err(Rejection::new(
            ErrorCode::Forbidden,
            "only group rooms can be renamed",
        ));
    }
    let name = display_name("name", name, ROOM_NAME_CHARS_MAX)?;
    if room.name == name {
        return Ok(vec![]);
    }
    refuse_contact_info(&name)?; // H-C2, as for a new room's name.
    Ok(vec![Event::RoomRenamed {
        room_id: *room_id,
        name,
        renamed_by: actor.clone(),
    }])
}

/// `room.favorite` (R-S1).
pub(super) fn favorite_room(
    ctx: &Context<'_>,
    room_id: &RoomId,
    on: &bool,
) -> Result<Vec<Event>, Rejection> {
    let actor = ctx.user()?;
    let room = ctx.member_room(room_id)?;
    let current = room.views.get(actor).is_some_and(|v| v.favorite);
    Ok(flag_change(current, *on, || Event::RoomFavoriteChanged {
        room_id: *room_id,
        user_id: actor.clone(),
        on: *on,
    }))
}

/// `room.hide` (R-S2).
pub(super) fn hide_room(
    ctx: &Context<'_>,
    room_id: &RoomId,
    on: &bool,
) -> Result<Vec<Event>, Rejection> {
    let actor = ctx.user()?;
    let room = ctx.member_room(room_id)?;
    if !matches!(room.kind, RoomKind::Direct | RoomKind::Interview) {
        return Err(Rejection::new(
            ErrorCode::CannotHideKind,
            "only direct and interview rooms can be hidden",
        ));
    }
    let current = room.views.get(actor).is_some_and(|v| v.hidden);
    Ok(flag_change(current, *on, || Event::RoomHiddenChanged {
        room_id: *room_id,
        user_id: actor.clone(),
        on: *on,
    }))
}

/// `room.archive` (R-S3).
pub(super) fn archive_room(
    ctx: &Context<'_>,
    room_id: &RoomId,
    on: &bool,
) -> Result<Vec<Event>, Rejection> {
    let actor = ctx.user()?;
    let room = ctx.member_room(room_id)?;
    if !matches!(room.kind, RoomKind::Group | RoomKind::Contract) {
        return Err(Rejection::new(
            ErrorCode::CannotArchiveKind,
            "only group and contract rooms can be archived",
        ));
    }
    ctx.require_full_client("archiving rooms")?;
    let current = room.views.get(actor).is_some_and(|v| v.archived);
    Ok(flag_change(current, *on, || Event::RoomArchivedChanged {
        room_id: *room_id,
        user_id: actor.clone(),
        on: *on,
    }))
}

/// `room.mark_read` (R-S4).
pub(super) fn mark_read(
    ctx: &Context<'_>,
    room_id: &RoomId,
    message_id: &MessageId,
) -> Result<Vec<Event>, Rejection> {
    let actor = ctx.user()?;
    let room = ctx.member_room(room_id)?;
    ctx.message_in_room(room_id, message_id)?;
    if room.views.get(actor).and_then(|v| v.read_up_to) == Some(*message_id) {
        return Ok(vec![]);
    }
    Ok(vec![Event::RoomMarkedRead {
        room_id: *room_id,
        user_id: actor.clone(),
        message_id: *message_id,
    }])
}
