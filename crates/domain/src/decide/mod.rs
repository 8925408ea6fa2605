//! `decide`: the rules. Given the write-side state, a command and the writer's *now*, it returns
//! the events the command causes or the rejection that refuses it. Pure and synchronous: no
//! clock, no randomness (ids derive from the command id), no IO.
//!
//! One module per aggregate (`users`, `rooms`, `contracts`, `messages`, `calls`, `files`), each
//! a function per command; `context` holds the checks shared between commands and `checks` the
//! text checks (lengths, names, R-C1's contact details).

mod calls;
mod checks;
mod context;
mod contracts;
mod files;
mod messages;
mod result;
mod rooms;
mod users;

use crate::command::{Action, Command};
use crate::event::Event;
use crate::rejection::Rejection;
use crate::state::State;
use crate::time::Timestamp;

use context::Context;
pub use result::{command_result, CommandResult};

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
        } => users::register_user(&ctx, user_id, display_name, kind),
        Action::BlockUser { user_id } | Action::UnblockUser { user_id } => {
            users::block_or_unblock(&ctx, user_id)
        }
        Action::SetOutOfOffice {
            message,
            from,
            until,
        } => users::set_out_of_office(&ctx, message, from, until),
        Action::ClearOutOfOffice => users::clear_out_of_office(&ctx),
        Action::SetOnlineVisibility { visible } => users::set_online_visibility(&ctx, visible),
        Action::SetNotifications { frequency } => users::set_notifications(&ctx, frequency),
        Action::CreateRoom { name, members } => rooms::create_room(&ctx, name, members),
        Action::OpenInterview {
            interview_id,
            title,
            client,
            freelancer,
        } => rooms::open_interview(&ctx, interview_id, title, client, freelancer),
        Action::AddMember { room_id, user_id } => rooms::add_member(&ctx, room_id, user_id),
        Action::LeaveRoom { room_id } => rooms::leave_room(&ctx, room_id),
        Action::RenameRoom { room_id, name } => rooms::rename_room(&ctx, room_id, name),
        Action::FavoriteRoom { room_id, on } => rooms::favorite_room(&ctx, room_id, on),
        Action::HideRoom { room_id, on } => rooms::hide_room(&ctx, room_id, on),
        Action::ArchiveRoom { room_id, on } => rooms::archive_room(&ctx, room_id, on),
        Action::MarkRead {
            room_id,
            message_id,
        } => rooms::mark_read(&ctx, room_id, message_id),
        Action::StartContract {
            contract_id,
            title,
            client,
            freelancer,
            room_id,
        } => contracts::start_contract(&ctx, contract_id, title, client, freelancer, room_id),
        Action::EndContract { contract_id } => contracts::end_contract(&ctx, contract_id),
        Action::SendMessage {
            target,
            message_id,
            body,
            reply_to,
            attachments,
        } => messages::send_message(&ctx, target, *message_id, body, *reply_to, attachments),
        Action::EditMessage {
            room_id,
            message_id,
            body,
        } => messages::edit_message(&ctx, room_id, message_id, body),
        Action::DeleteMessage {
            room_id,
            message_id,
        } => messages::delete_message(&ctx, room_id, message_id),
        Action::ReportMessage {
            room_id,
            message_id,
            reason,
            details,
        } => messages::report_message(&ctx, room_id, message_id, reason, details),
        Action::StartCall { room_id, media } => calls::start_call(&ctx, room_id, media),
        Action::EndCall { room_id, call_id } => calls::end_call(&ctx, room_id, call_id),
        Action::RegisterFile {
            file_id,
            uploader,
            name,
            size,
            content_type,
            sha256,
        } => files::register_file(&ctx, file_id, uploader, name, size, content_type, sha256),
    }
}
