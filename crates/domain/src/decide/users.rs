//! `decide` for the user aggregate: registration, blocks, out-of-office, online visibility
//! and notification settings.

use crate::command::{Action, NotificationFrequency, UserKind};
use crate::event::Event;
use crate::ids::UserId;
use crate::limits::{AWAY_MESSAGE_CHARS_MAX, DISPLAY_NAME_CHARS_MAX};
use crate::rejection::Rejection;
use crate::time::Timestamp;

use super::checks::{bounded_text, refuse_contact_info};
use super::context::Context;

/// `user.register` (R-U1): a new user, or a changed display name.
pub(super) fn register_user(
    ctx: &Context<'_>,
    user_id: &UserId,
    display_name: &str,
    kind: &UserKind,
) -> Result<Vec<Event>, Rejection> {
    let state = ctx.state;
    let display_name = bounded_text("display_name", display_name, 1, DISPLAY_NAME_CHARS_MAX)?;
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

/// `user.block` and `user.unblock` (R-B1).
pub(super) fn block_or_unblock(
    ctx: &Context<'_>,
    user_id: &UserId,
) -> Result<Vec<Event>, Rejection> {
    let command = ctx.command;
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

/// `user.set_out_of_office` (R-A2, and R-C1 for the away message).
pub(super) fn set_out_of_office(
    ctx: &Context<'_>,
    message: &str,
    from: &Timestamp,
    until: &Timestamp,
) -> Result<Vec<Event>, Rejection> {
    let now = ctx.now;
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

/// `user.clear_out_of_office` (R-A2).
pub(super) fn clear_out_of_office(ctx: &Context<'_>) -> Result<Vec<Event>, Rejection> {
    let actor = ctx.user()?;
    Ok(match ctx.actor_state()?.away {
        Some(_) => vec![Event::OutOfOfficeCleared {
            user_id: actor.clone(),
        }],
        None => vec![],
    })
}

/// `user.set_online_visibility` (R-A1).
pub(super) fn set_online_visibility(
    ctx: &Context<'_>,
    visible: &bool,
) -> Result<Vec<Event>, Rejection> {
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

/// `user.set_notifications` (R-A3).
pub(super) fn set_notifications(
    ctx: &Context<'_>,
    frequency: &NotificationFrequency,
) -> Result<Vec<Event>, Rejection> {
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
