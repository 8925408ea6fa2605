//! `decide`: the rules. Given the write-side state, a command and the writer's *now*, it returns
//! the events the command causes or the rejection that refuses it. Pure and synchronous: no
//! clock, no randomness (ids derive from the command id), no IO.

use std::collections::BTreeSet;

use crate::command::{Action, AttachmentRef, Command, MessageTarget};
use crate::contact::find_contact_info;
use crate::event::{Attachment, Event, RoomKind};
use crate::ids::{Actor, CallId, MessageId, ReportId, RoomId, UserId};
use crate::limits::{
    ATTACHMENTS_MAX, AWAY_MESSAGE_CHARS_MAX, BODY_CHARS_MAX, CONTENT_TYPE_CHARS_MAX,
    DISPLAY_NAME_CHARS_MAX, EDIT_WINDOW_MS, FILE_BYTES_MAX, FILE_NAME_CHARS_MAX,
    REPORT_DETAILS_CHARS_MAX, ROOM_CREATE_MEMBERS_MAX, ROOM_NAME_CHARS_MAX, TITLE_CHARS_MAX,
    URL_BYTES_MAX,
};
use crate::rejection::{ErrorCode, Rejection};
use crate::state::{RoomState, State, UserState};
use crate::time::Timestamp;

/// Decides `command` against `state` at `now`: the events to append, or why not.
///
/// An empty list is an accepted no-op (adding an existing member, reporting twice, …).
pub fn decide(state: &State, command: &Command, now: Timestamp) -> Result<Vec<Event>, Rejection> {
    let ctx = Context::new(state, command, now)?;
    match &command.action {
        Action::RegisterUser {
            user_id,
            display_name,
            kind,
        } => {
            let display_name =
                bounded_text("display_name", display_name, 1, DISPLAY_NAME_CHARS_MAX)?;
            Ok(match state.users.get(user_id) {
                None => vec![Event::UserRegistered {
                    user_id: user_id.clone(),
                    display_name,
                    kind: *kind,
                }],
                Some(user) if user.display_name == display_name => vec![],
                Some(_) => vec![Event::UserDisplayNameChanged {
                    user_id: user_id.clone(),
                    display_name,
                }],
            })
        }
        Action::BlockUser { user_id } | Action::UnblockUser { user_id } => {
            let actor = ctx.user()?;
            ctx.known_user(user_id)?;
            if user_id == actor {
                return Err(Rejection::invalid("user_id: you cannot block yourself"));
            }
            let blocks = ctx.actor_state()?.blocks.contains(user_id);
            let block = matches!(command.action, Action::BlockUser { .. });
            Ok(match (block, blocks) {
                (true, false) => vec![Event::UserBlocked {
                    blocker: actor.clone(),
                    blocked: user_id.clone(),
                }],
                (false, true) => vec![Event::UserUnblocked {
                    blocker: actor.clone(),
                    blocked: user_id.clone(),
                }],
                _ => vec![],
            })
        }
        Action::SetOutOfOffice {
            message,
            from,
            until,
        } => {
            let actor = ctx.user()?;
            let message = bounded_text("message", message, 1, AWAY_MESSAGE_CHARS_MAX)?;
            if until <= from || *until <= now {
                return Err(Rejection::invalid(
                    "until: must be after both from and the current time",
                ));
            }
            // The away message is shown to everyone the user talks to and sent as automatic
            // replies in any room, so it must not carry contact details either (R-C1).
            refuse_contact_info(&message)?;
            Ok(vec![Event::OutOfOfficeSet {
                user_id: actor.clone(),
                message,
                from: *from,
                until: *until,
            }])
        }
        Action::ClearOutOfOffice => {
            let actor = ctx.user()?;
            Ok(match ctx.actor_state()?.away {
                Some(_) => vec![Event::OutOfOfficeCleared {
                    user_id: actor.clone(),
                }],
                None => vec![],
            })
        }
        Action::SetOnlineVisibility { visible } => {
            let actor = ctx.user()?;
            Ok(if ctx.actor_state()?.visible == *visible {
                vec![]
            } else {
                vec![Event::OnlineVisibilityChanged {
                    user_id: actor.clone(),
                    visible: *visible,
                }]
            })
        }
        Action::SetNotifications { frequency } => {
            let actor = ctx.user()?;
            Ok(if ctx.actor_state()?.frequency == *frequency {
                vec![]
            } else {
                vec![Event::NotificationFrequencyChanged {
                    user_id: actor.clone(),
                    frequency: *frequency,
                }]
            })
        }
        Action::CreateRoom { name, members } => {
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
            Ok(vec![Event::GroupRoomCreated {
                room_id: RoomId(command.command_id.derive("room")),
                name,
                creator: actor.clone(),
                members: all,
                created_at: now,
            }])
        }
        Action::OpenInterview {
            interview_id,
            title,
            client,
            freelancer,
        } => {
            let title = bounded_text("title", title, 1, TITLE_CHARS_MAX)?;
            ctx.known_user(client)?;
            ctx.known_user(freelancer)?;
            if client == freelancer {
                return Err(Rejection::invalid("freelancer: must differ from client"));
            }
            if state.interviews.contains_key(interview_id) {
                return Ok(vec![]); // Opening an interview again is a no-op: its room exists.
            }
            Ok(vec![Event::InterviewRoomOpened {
                room_id: RoomId::for_interview(interview_id),
                interview_id: interview_id.clone(),
                title,
                client: client.clone(),
                freelancer: freelancer.clone(),
                opened_at: now,
            }])
        }
        Action::AddMember { room_id, user_id } => {
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
        Action::LeaveRoom { room_id } => {
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
        Action::RenameRoom { room_id, name } => {
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
        Action::FavoriteRoom { room_id, on } => {
            let actor = ctx.user()?;
            let room = ctx.member_room(room_id)?;
            let current = room.views.get(actor).is_some_and(|v| v.favorite);
            Ok(flag_change(current, *on, || Event::RoomFavoriteChanged {
                room_id: *room_id,
                user_id: actor.clone(),
                on: *on,
            }))
        }
        Action::HideRoom { room_id, on } => {
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
        Action::ArchiveRoom { room_id, on } => {
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
        Action::MarkRead {
            room_id,
            message_id,
        } => {
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
        Action::StartContract {
            contract_id,
            title,
            client,
            freelancer,
            room_id,
        } => {
            let title = bounded_text("title", title, 1, TITLE_CHARS_MAX)?;
            ctx.known_user(client)?;
            ctx.known_user(freelancer)?;
            if client == freelancer {
                return Err(Rejection::invalid("freelancer: must differ from client"));
            }
            if let Some(contract) = state.contracts.get(contract_id) {
                if room_id.is_some_and(|id| id != contract.room_id) {
                    return Err(Rejection::invalid(
                        "room_id: the contract already has another room",
                    ));
                }
                if contract.active {
                    return Ok(vec![]); // Starting an active contract again is a no-op.
                }
                // A contract that ended can be restarted in its room.
                return Ok(vec![Event::ContractStarted {
                    contract_id: contract_id.clone(),
                    room_id: contract.room_id,
                    room_created: false,
                    title,
                    client: client.clone(),
                    freelancer: freelancer.clone(),
                    started_at: now,
                }]);
            }
            let (room_id, room_created) = match room_id {
                None => (RoomId::for_contract(contract_id), true),
                Some(id) => {
                    let room = state.rooms.get(id).ok_or_else(|| {
                        Rejection::new(ErrorCode::NotFound, "room_id: no such room")
                    })?;
                    if room.kind == RoomKind::Direct {
                        return Err(Rejection::new(
                            ErrorCode::Forbidden,
                            "a direct room cannot become a contract room",
                        ));
                    }
                    if state.allows_contact_info(room) {
                        return Err(Rejection::new(
                            ErrorCode::Forbidden,
                            "the room belongs to another active contract",
                        ));
                    }
                    (*id, false)
                }
            };
            Ok(vec![Event::ContractStarted {
                contract_id: contract_id.clone(),
                room_id,
                room_created,
                title,
                client: client.clone(),
                freelancer: freelancer.clone(),
                started_at: now,
            }])
        }
        Action::EndContract { contract_id } => {
            let contract = state.contracts.get(contract_id).ok_or_else(|| {
                Rejection::new(ErrorCode::NotFound, "contract_id: no such contract")
            })?;
            Ok(if contract.active {
                vec![Event::ContractEnded {
                    contract_id: contract_id.clone(),
                    room_id: contract.room_id,
                    ended_at: now,
                }]
            } else {
                vec![]
            })
        }
        Action::SendMessage {
            target,
            message_id,
            body,
            reply_to,
            attachments,
        } => decide_send(&ctx, target, *message_id, body, *reply_to, attachments),
        Action::EditMessage {
            room_id,
            message_id,
            body,
        } => {
            let actor = ctx.user()?;
            let room = ctx.member_room(room_id)?;
            let message = ctx.message_in_room(room_id, message_id)?;
            if !state.is_author(message, actor) {
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
        Action::DeleteMessage {
            room_id,
            message_id,
        } => {
            let actor = ctx.user()?;
            let room = ctx.member_room(room_id)?;
            let message = ctx.message_in_room(room_id, message_id)?;
            if !state.is_author(message, actor) {
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
        Action::ReportMessage {
            room_id,
            message_id,
            reason,
            details,
        } => {
            let actor = ctx.user()?;
            ctx.member_room(room_id)?;
            let message = ctx.message_in_room(room_id, message_id)?;
            if state.is_author(message, actor) {
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
        Action::StartCall { room_id, media } => {
            let actor = ctx.user()?;
            let room = ctx.member_room(room_id)?;
            ctx.check_direct_not_blocked(room)?;
            if room.active_call.is_some() {
                return Err(Rejection::new(
                    ErrorCode::CallInProgress,
                    "the room has an active call",
                ));
            }
            Ok(vec![Event::CallStarted {
                room_id: *room_id,
                call_id: CallId(command.command_id.derive("call")),
                media: *media,
                started_by: actor.clone(),
                started_at: now,
            }])
        }
        Action::EndCall { room_id, call_id } => {
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
        Action::RegisterFile {
            file_id,
            uploader,
            name,
            size,
            content_type,
            sha256,
        } => {
            let name = display_name("name", name, FILE_NAME_CHARS_MAX)?;
            let content_type =
                bounded_text("content_type", content_type, 1, CONTENT_TYPE_CHARS_MAX)?;
            if !(sha256.len() == 64
                && sha256
                    .bytes()
                    .all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')))
            {
                return Err(Rejection::invalid(
                    "sha256: must be 64 lowercase hex characters",
                ));
            }
            if *size > FILE_BYTES_MAX {
                return Err(Rejection::new(
                    ErrorCode::FileTooLarge,
                    "files can be at most 1 GiB",
                ));
            }
            ctx.known_user(uploader)?;
            if state.files.contains_key(file_id) {
                return Err(Rejection::invalid("file_id: already registered"));
            }
            Ok(vec![Event::FileRegistered {
                file_id: *file_id,
                uploader: uploader.clone(),
                name,
                size: *size,
                content_type,
                sha256: sha256.clone(),
                registered_at: now,
            }])
        }
    }
}

/// `message.send`: R-R1, R-R3, R-B2, R-M1, R-M2, R-M7, R-F1, R-C1 and R-A2 together.
fn decide_send(
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
    let message_id = match message_id {
        Some(id) if state.messages.contains_key(&id) => {
            return Err(Rejection::new(
                ErrorCode::DuplicateMessageId,
                "message_id: a message with this id exists",
            ))
        }
        Some(id) => id,
        None => MessageId(ctx.command.command_id.derive("message")),
    };
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

    let mut events = Vec::with_capacity(2);
    if let Some(to) = opens_direct_with {
        ctx.check_daily_limit(actor)?;
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
            events.push(Event::AutoReplySent {
                room_id,
                message_id: MessageId(
                    ctx.command
                        .command_id
                        .derive(&format!("auto-reply\n{member}")),
                ),
                author: member.clone(),
                body: away.message.clone(),
                in_reply_to: message_id,
                sent_at: ctx.now,
            });
        }
    }
    Ok(events)
}

/// Turns attachment references into recorded attachments (R-F1).
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

/// Trims `text` and checks it has `min..=max` characters.
fn bounded_text(field: &str, text: &str, min: usize, max: usize) -> Result<String, Rejection> {
    let text = text.trim();
    let chars = text.chars().count();
    if chars < min || chars > max {
        return Err(Rejection::invalid(format!(
            "{field}: must be {min} to {max} characters"
        )));
    }
    Ok(text.to_owned())
}

/// A name shown to others in lists (a file's, a group room's): [`bounded_text`], refusing
/// control characters and bidirectional formatting characters, with which `invoice`, U+202E,
/// `fdp.exe` shows as `invoiceexe.pdf` (security.md's review).
fn display_name(field: &str, text: &str, max: usize) -> Result<String, Rejection> {
    let text = bounded_text(field, text, 1, max)?;
    // Marks (LRM, RLM, ALM), embeddings and overrides (LRE…RLO), isolates (LRI…PDI).
    let bidi = |c: char| {
        matches!(c, '\u{200E}' | '\u{200F}' | '\u{061C}')
            || ('\u{202A}'..='\u{202E}').contains(&c)
            || ('\u{2066}'..='\u{2069}').contains(&c)
    };
    let hostile = |c: char| c.is_control() || bidi(c);
    if text.chars().any(hostile) {
        return Err(Rejection::invalid(format!(
            "{field}: must not contain control or bidirectional formatting characters"
        )));
    }
    Ok(text)
}

/// R-C1: contact or payment details are refused outside an active contract's room.
fn refuse_contact_info(text: &str) -> Result<(), Rejection> {
    match find_contact_info(text) {
        Some(_) => Err(Rejection::new(
            ErrorCode::ContactInfoOutsideContract,
            "contact and payment details can be shared only in an active contract's room",
        )),
        None => Ok(()),
    }
}

fn blocked() -> Rejection {
    Rejection::new(ErrorCode::Blocked, "you cannot message this user")
}

/// The events for setting a per-user flag: none when it already has that value.
fn flag_change(current: bool, wanted: bool, event: impl FnOnce() -> Event) -> Vec<Event> {
    if current == wanted {
        vec![]
    } else {
        vec![event()]
    }
}

/// What every rule needs: the state, the command, now, and checks shared between commands.
struct Context<'a> {
    state: &'a State,
    command: &'a Command,
    now: Timestamp,
}

impl<'a> Context<'a> {
    /// Checks that the actor may send this kind of command at all.
    fn new(state: &'a State, command: &'a Command, now: Timestamp) -> Result<Self, Rejection> {
        let service_command = command.action.is_service_command();
        match (&command.actor, service_command) {
            (Actor::User(_), true) => {
                return Err(Rejection::new(
                    ErrorCode::Forbidden,
                    format!("{} is a service command", command.action.type_name()),
                ))
            }
            (Actor::Service(_), false) => {
                return Err(Rejection::new(
                    ErrorCode::Forbidden,
                    format!(
                        "{} is sent by users, not services",
                        command.action.type_name()
                    ),
                ))
            }
            (Actor::User(user), false) if !state.users.contains_key(user) => {
                return Err(Rejection::new(
                    ErrorCode::NotFound,
                    "actor: not a registered user",
                ))
            }
            _ => {}
        }
        Ok(Context {
            state,
            command,
            now,
        })
    }

    /// The acting user (user commands only; `new` rejected the rest).
    fn user(&self) -> Result<&'a UserId, Rejection> {
        self.command
            .actor
            .user()
            .ok_or_else(|| Rejection::new(ErrorCode::Forbidden, "users only"))
    }

    fn actor_state(&self) -> Result<&'a UserState, Rejection> {
        let user = self.user()?;
        self.state
            .users
            .get(user)
            .ok_or_else(|| Rejection::new(ErrorCode::NotFound, "actor: not a registered user"))
    }

    /// R-U1: a named user must be registered.
    fn known_user(&self, user: &UserId) -> Result<&'a UserState, Rejection> {
        self.state.users.get(user).ok_or_else(|| {
            Rejection::new(
                ErrorCode::NotFound,
                format!("user {user} is not registered"),
            )
        })
    }

    /// R-R6: a room the actor is a member of; a missing room is refused the same way.
    fn member_room(&self, room_id: &RoomId) -> Result<&'a RoomState, Rejection> {
        let user = self.user()?;
        self.state
            .rooms
            .get(room_id)
            .filter(|room| room.members.contains(user))
            .ok_or_else(|| {
                Rejection::new(
                    ErrorCode::NotMember,
                    "no such room, or you are not a member",
                )
            })
    }

    /// A message that belongs to `room_id`.
    fn message_in_room(
        &self,
        room_id: &RoomId,
        message_id: &MessageId,
    ) -> Result<&'a crate::state::MessageState, Rejection> {
        self.state
            .messages
            .get(message_id)
            .filter(|m| &m.room_id == room_id)
            .ok_or_else(|| {
                Rejection::new(
                    ErrorCode::NotFound,
                    "message_id: no such message in this room",
                )
            })
    }

    /// R-B2 for an existing room: in a direct room, neither member may act while blocked.
    fn check_direct_not_blocked(&self, room: &RoomState) -> Result<(), Rejection> {
        if room.kind != RoomKind::Direct {
            return Ok(()); // R-B3: blocking does not touch shared rooms of other kinds.
        }
        let mut members = room.members.iter();
        match (members.next(), members.next()) {
            (Some(a), Some(b)) if self.state.blocked_either_way(a, b) => Err(blocked()),
            _ => Ok(()),
        }
    }

    /// H-B1: a user cannot put someone who blocks them into a room (a group created with them,
    /// or an added member); otherwise a group room would bypass the block. Rooms opened by
    /// services and rooms already shared are not this check's business (R-B3).
    fn check_not_blocked_by(&self, other: &UserId) -> Result<(), Rejection> {
        match self.command.actor.user() {
            Some(actor) if self.state.blocks(other, actor) => Err(blocked()),
            _ => Ok(()),
        }
    }

    /// R-R3: starting a conversation counts against the initiator's limit for the UTC day.
    fn check_daily_limit(&self, user: &UserId) -> Result<(), Rejection> {
        let started = self.state.conversations_started_on(user, self.now);
        if started >= self.state.config.daily_conversation_limit {
            return Err(Rejection::new(
                ErrorCode::DailyConversationLimit,
                format!(
                    "you can start {} new conversations per day",
                    self.state.config.daily_conversation_limit
                ),
            ));
        }
        Ok(())
    }

    /// R-S3, R-M6: some actions only the desktop and mobile web clients can do.
    fn require_full_client(&self, what: &str) -> Result<(), Rejection> {
        if self.command.client.supports_archive_and_file_deletion() {
            Ok(())
        } else {
            Err(Rejection::new(
                ErrorCode::PlatformNotSupported,
                format!("{what} is possible from desktop or mobile web only"),
            ))
        }
    }
}

/// The `result` of an accepted command (protocol.md §1), from its events, or for a no-op from
/// the state (opening an interview that exists returns its room). Ids derived from the command
/// id make the result the same whether it is computed before or after the events are applied.
pub fn command_result(state: &State, command: &Command, events: &[Event]) -> CommandResult {
    for event in events {
        match event {
            Event::GroupRoomCreated { room_id, .. }
            | Event::InterviewRoomOpened { room_id, .. }
            | Event::ContractStarted { room_id, .. } => {
                return CommandResult::Room { room_id: *room_id }
            }
            Event::MessageSent {
                room_id,
                message_id,
                ..
            } => {
                return CommandResult::Message {
                    room_id: *room_id,
                    message_id: *message_id,
                }
            }
            Event::CallStarted { call_id, .. } => return CommandResult::Call { call_id: *call_id },
            _ => {}
        }
    }
    match &command.action {
        Action::OpenInterview { interview_id, .. } => CommandResult::Room {
            room_id: state
                .interviews
                .get(interview_id)
                .copied()
                .unwrap_or_else(|| RoomId::for_interview(interview_id)),
        },
        Action::StartContract { contract_id, .. } => CommandResult::Room {
            room_id: state
                .contracts
                .get(contract_id)
                .map_or_else(|| RoomId::for_contract(contract_id), |c| c.room_id),
        },
        _ => CommandResult::None,
    }
}

/// What an accepted command returns besides its events.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CommandResult {
    /// Nothing.
    None,
    /// `room.create`, `room.open_interview`, `contract.start`.
    Room {
        /// The room.
        room_id: RoomId,
    },
    /// `message.send`.
    Message {
        /// The room (the direct room when sent `to` a user).
        room_id: RoomId,
        /// The message.
        message_id: MessageId,
    },
    /// `call.start`.
    Call {
        /// The call.
        call_id: CallId,
    },
}
