//! `decide` for the message aggregate: send (with its attachments and automatic replies),
//! edit, delete and report.

use std::collections::BTreeSet;

use crate::command::{AttachmentRef, MessageTarget, ReportReason};
use crate::event::{Attachment, Event};
use crate::ids::{MessageId, ReportId, RoomId, UserId};
use crate::limits::{
    ATTACHMENTS_MAX, BODY_CHARS_MAX, EDIT_WINDOW_MS, FILE_ATTACH_GRACE_MS, FILE_BYTES_MAX,
    REPORT_DETAILS_CHARS_MAX, URL_BYTES_MAX,
};
use crate::rejection::{ErrorCode, Rejection};

use super::checks::{blocked, bounded_text, refuse_contact_info};
use super::context::Context;

/// `message.send`: R-R1, R-R3, R-B2, R-M1, R-M2, R-M7, R-F1, R-C1 and R-A2 together.
pub(super) fn send_message(
    ctx: &Context<'_>,
    target: &MessageTarget,
    message_id: Option<MessageId>,
    body: &str,
    reply_to: Option<MessageId>,
    attachments: &[AttachmentRef],
) -> Result<Vec<Event>, Rejection> {
    let state = ctx.state;
    let actor = ctx.user()?;
    // The room, or the direct room this message opens (R-R1).
    let (room_id, room, opens_direct_with) = match target {
        MessageTarget::Room(room_id) => (*room_id, Some(ctx.member_room(room_id)?), None),
        MessageTarget::User(to) => {
            ctx.known_user(to)?;
            if to == actor {
                return Err(Rejection::invalid("to: you cannot message yourself"));
            }
            let room_id = RoomId::direct(actor, to);
            match state.rooms.get(&room_id) {
                Some(room) => (room_id, Some(room), None),
                None => (room_id, None, Some(to)),
            }
        }
    };
    // R-B2: neither can send in, nor open, a direct room while either blocks the other.
    match (room, opens_direct_with) {
        (Some(room), _) => ctx.check_direct_not_blocked(room)?,
        (None, Some(to)) if state.blocked_either_way(actor, to) => return Err(blocked()),
        _ => {}
    }

    let body = message_body(body)?;
    if attachments.len() > ATTACHMENTS_MAX {
        return Err(Rejection::invalid(format!(
            "attachments: at most {ATTACHMENTS_MAX} per message"
        )));
    }
    if body.is_empty() && attachments.is_empty() {
        return Err(Rejection::new(
            ErrorCode::EmptyMessage,
            "a message needs a body or an attachment",
        ));
    }
    if let Some(original) = reply_to {
        ctx.message_in_room(&room_id, &original).map_err(|_| {
            Rejection::new(
                ErrorCode::NotFound,
                "reply_to: no such message in this room",
            )
        })?;
    }
    let attachments = resolve_attachments(ctx, actor, attachments)?;
    if !room.is_some_and(|room| state.allows_contact_info(room)) {
        refuse_contact_info(&body)?;
        // H-C2: whatever the other members read, link URLs and file names too.
        for attachment in &attachments {
            match attachment {
                Attachment::Link { url, .. } => refuse_contact_info(url)?,
                Attachment::File { name, .. } => refuse_contact_info(name)?,
            }
        }
    }

    if opens_direct_with.is_some() {
        ctx.check_daily_limit(actor)?;
    }
    // Last of all: whether a message id exists is answered only to a command that would
    // otherwise be accepted, so a probe with a bogus file, room or body learns nothing of
    // messages in rooms the caller cannot see (security.md, the existence oracle).
    let message_id = match message_id {
        Some(id) if state.message_or_call_id_taken(&id.0) => {
            return Err(Rejection::new(
                ErrorCode::DuplicateMessageId,
                "message_id: a message with this id exists",
            ))
        }
        Some(id) => id,
        None => MessageId(derived_id_free(ctx, "message")?),
    };

    let mut events = Vec::with_capacity(2);
    if let Some(to) = opens_direct_with {
        events.push(Event::DirectRoomOpened {
            room_id,
            initiator: actor.clone(),
            recipient: to.clone(),
            opened_at: ctx.now,
        });
    }
    events.push(Event::MessageSent {
        room_id,
        message_id,
        author: actor.clone(),
        body,
        reply_to,
        attachments,
        sent_at: ctx.now,
    });
    // R-A2: every away member answers once per room per away period.
    let members: Vec<&UserId> = match (room, opens_direct_with) {
        (Some(room), _) => room.members.iter().collect(),
        (None, Some(to)) => vec![to],
        (None, None) => vec![],
    };
    for member in members.into_iter().filter(|m| *m != actor) {
        let Some(away) = state.users.get(member).and_then(|u| u.away.as_ref()) else {
            continue;
        };
        if away.is_active(ctx.now) && !away.answered_rooms.contains(&room_id) {
            let reply_id = derived_id_free(ctx, &format!("auto-reply\n{member}"))?;
            if reply_id == message_id.0 {
                return Err(Rejection::new(
                    ErrorCode::DuplicateMessageId,
                    "message_id: the id of an automatic reply to this message",
                ));
            }
            events.push(Event::AutoReplySent {
                room_id,
                message_id: MessageId(reply_id),
                author: member.clone(),
                body: away.message.clone(),
                in_reply_to: message_id,
                sent_at: ctx.now,
            });
        }
    }
    Ok(events)
}

/// The id this command derives for `purpose`, unless a message or call has it already: a client
/// may have chosen it as a `message_id` (ids a command derives are computable by anyone who
/// knows the command id), and two entries of one id would overwrite each other.
fn derived_id_free(ctx: &Context<'_>, purpose: &str) -> Result<uuid::Uuid, Rejection> {
    let id = ctx.command.command_id.derive(purpose);
    if ctx.state.message_or_call_id_taken(&id) {
        return Err(Rejection::invalid(
            "command_id: a message id it gives is taken; send with a new command id",
        ));
    }
    Ok(id)
}

/// Turns attachment references into recorded attachments (R-F1); a file only within its grace
/// after registration (H-L3).
fn resolve_attachments(
    ctx: &Context<'_>,
    actor: &UserId,
    attachments: &[AttachmentRef],
) -> Result<Vec<Attachment>, Rejection> {
    let mut files_seen = BTreeSet::new();
    attachments
        .iter()
        .map(|attachment| match attachment {
            AttachmentRef::File(file_id) => {
                let file = ctx
                    .state
                    .files
                    .get(file_id)
                    .filter(|f| &f.uploader == actor && !f.attached)
                    .filter(|_| files_seen.insert(*file_id))
                    .ok_or_else(|| {
                        Rejection::new(
                            ErrorCode::NotFound,
                            "attachments: no such file of yours that is not attached yet",
                        )
                    })?;
                // H-L3: past the grace the gateway may have deleted the bytes; a message must not
                // carry a file nobody can download. Refused as a file that is not there.
                if ctx.now.millis_since(file.registered_at) >= FILE_ATTACH_GRACE_MS {
                    return Err(Rejection::new(
                        ErrorCode::NotFound,
                        format!(
                            "attachments: file {file_id} was uploaded more than {} hours ago \
                             and can no longer be attached; upload it again",
                            FILE_ATTACH_GRACE_MS / crate::time::HOUR_MS
                        ),
                    ));
                }
                if file.size > FILE_BYTES_MAX {
                    return Err(Rejection::new(
                        ErrorCode::FileTooLarge,
                        "files can be at most 1 GiB",
                    ));
                }
                Ok(Attachment::File {
                    file_id: *file_id,
                    name: file.name.clone(),
                    size: file.size,
                    content_type: file.content_type.clone(),
                })
            }
            AttachmentRef::Link(url) => {
                let host = link_host(url).ok_or_else(|| {
                    Rejection::invalid("attachments: a link must be an http or https URL")
                })?;
                let dropbox =
                    host == "dropbox.com" || host.ends_with(".dropbox.com") || host == "db.tt";
                Ok(Attachment::Link {
                    url: url.clone(),
                    provider: dropbox.then(|| "dropbox".to_owned()),
                })
            }
        })
        .collect()
}

/// The lowercase host of an http(s) URL, or none when `url` is not one.
fn link_host(url: &str) -> Option<String> {
    if url.len() > URL_BYTES_MAX || url.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return None;
    }
    let lower = url.to_ascii_lowercase();
    let rest = lower
        .strip_prefix("https://")
        .or_else(|| lower.strip_prefix("http://"))?;
    let authority = rest.split(['/', '?', '#']).next()?;
    let host_port = authority.rsplit('@').next()?;
    let host = match host_port.strip_prefix('[') {
        Some(ipv6) => ipv6.split(']').next()?,
        None => host_port.split(':').next()?,
    };
    let valid = !host.is_empty()
        && host
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b':'));
    valid.then(|| host.trim_end_matches('.').to_owned())
}

/// `message.edit` (R-M3, H-B2, R-C1).
pub(super) fn edit_message(
    ctx: &Context<'_>,
    room_id: &RoomId,
    message_id: &MessageId,
    body: &str,
) -> Result<Vec<Event>, Rejection> {
    let (state, now) = (ctx.state, ctx.now);
    let actor = ctx.user()?;
    let room = ctx.member_room(room_id)?;
    let message = ctx.message_in_room(room_id, message_id)?;
    if !state.is_author(&message, actor) {
        return Err(Rejection::new(
            ErrorCode::NotAuthor,
            "only the author can edit a message",
        ));
    }
    // H-B2: a closed direct room is closed to edits as to new messages.
    ctx.check_direct_not_blocked(room)?;
    if message.deleted {
        return Err(Rejection::new(
            ErrorCode::AlreadyDeleted,
            "the message is deleted",
        ));
    }
    if now.millis_since(message.sent_at) >= EDIT_WINDOW_MS {
        return Err(Rejection::new(
            ErrorCode::EditWindowExpired,
            "messages can be edited for 1 hour after sending",
        ));
    }
    let body = message_body(body)?;
    if body.is_empty() && !message.carries_file {
        return Err(Rejection::new(
            ErrorCode::EmptyMessage,
            "a message needs a body or an attachment",
        ));
    }
    if !state.allows_contact_info(room) {
        refuse_contact_info(&body)?;
    }
    Ok(vec![Event::MessageEdited {
        room_id: *room_id,
        message_id: *message_id,
        body,
        edited_at: now,
    }])
}

/// `message.delete` (R-M4, R-M6, H-B2).
pub(super) fn delete_message(
    ctx: &Context<'_>,
    room_id: &RoomId,
    message_id: &MessageId,
) -> Result<Vec<Event>, Rejection> {
    let (state, now) = (ctx.state, ctx.now);
    let actor = ctx.user()?;
    let room = ctx.member_room(room_id)?;
    let message = ctx.message_in_room(room_id, message_id)?;
    if !state.is_author(&message, actor) {
        return Err(Rejection::new(
            ErrorCode::NotAuthor,
            "only the author can delete a message",
        ));
    }
    // H-B2: and to deletions.
    ctx.check_direct_not_blocked(room)?;
    if message.deleted {
        return Err(Rejection::new(
            ErrorCode::AlreadyDeleted,
            "the message is already deleted",
        ));
    }
    if now.millis_since(message.sent_at) >= EDIT_WINDOW_MS {
        return Err(Rejection::new(
            ErrorCode::DeleteWindowExpired,
            "messages can be deleted for 1 hour after sending",
        ));
    }
    if message.carries_file {
        ctx.require_full_client("deleting a message with a file")?;
    }
    Ok(vec![Event::MessageDeleted {
        room_id: *room_id,
        message_id: *message_id,
        deleted_at: now,
    }])
}

/// `message.report` (R-P1).
pub(super) fn report_message(
    ctx: &Context<'_>,
    room_id: &RoomId,
    message_id: &MessageId,
    reason: &ReportReason,
    details: &Option<String>,
) -> Result<Vec<Event>, Rejection> {
    let (state, command, now) = (ctx.state, ctx.command, ctx.now);
    let actor = ctx.user()?;
    ctx.member_room(room_id)?;
    let message = ctx.message_in_room(room_id, message_id)?;
    if state.is_author(&message, actor) {
        return Err(Rejection::invalid(
            "message_id: you cannot report your own message",
        ));
    }
    let details = match details {
        Some(text) => {
            let text = bounded_text("details", text, 0, REPORT_DETAILS_CHARS_MAX)?;
            (!text.is_empty()).then_some(text)
        }
        None => None,
    };
    if state.has_reported(message_id, actor) {
        return Ok(vec![]); // One report per reporter and message, whatever the reason.
    }
    Ok(vec![Event::MessageReported {
        report_id: ReportId(command.command_id.derive("report")),
        room_id: *room_id,
        message_id: *message_id,
        reporter: actor.clone(),
        reason: *reason,
        details,
        reported_at: now,
    }])
}

/// Trims a body and checks its length (R-M1).
fn message_body(body: &str) -> Result<String, Rejection> {
    let body = body.trim();
    if body.chars().count() > BODY_CHARS_MAX {
        return Err(Rejection::new(
            ErrorCode::BodyTooLong,
            format!("body: at most {BODY_CHARS_MAX} characters"),
        ));
    }
    Ok(body.to_owned())
}
