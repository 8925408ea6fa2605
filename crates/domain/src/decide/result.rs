//! What an accepted command returns besides its events (protocol.md §1's `result`).

use crate::command::{Action, Command};
use crate::event::Event;
use crate::ids::{CallId, MessageId, RoomId};
use crate::state::State;

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
