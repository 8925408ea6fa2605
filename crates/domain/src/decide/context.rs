//! The context every rule needs: the state, the command, now, and the checks shared between
//! commands (who acts, membership, blocks, the daily limit, the client).

use crate::command::Command;
use crate::event::RoomKind;
use crate::ids::{Actor, MessageId, RoomId, UserId};
use crate::rejection::{ErrorCode, Rejection};
use crate::state::{MessageState, RoomState, State, UserState};
use crate::time::Timestamp;

use super::checks::blocked;

/// What every rule needs: the state, the command, now, and checks shared between commands.
pub(super) struct Context<'a> {
    pub(super) state: &'a State,
    pub(super) command: &'a Command,
    pub(super) now: Timestamp,
}

impl<'a> Context<'a> {
    /// Checks that the actor may send this kind of command at all.
    pub(super) fn new(
        state: &'a State,
        command: &'a Command,
        now: Timestamp,
    ) -> Result<Self, Rejection> {
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
    pub(super) fn user(&self) -> Result<&'a UserId, Rejection> {
        self.command
            .actor
            .user()
            .ok_or_else(|| Rejection::new(ErrorCode::Forbidden, "users only"))
    }

    pub(super) fn actor_state(&self) -> Result<&'a UserState, Rejection> {
        let user = self.user()?;
        self.state
            .users
            .get(user)
            .ok_or_else(|| Rejection::new(ErrorCode::NotFound, "actor: not a registered user"))
    }

    /// R-U1: a named user must be registered.
    pub(super) fn known_user(&self, user: &UserId) -> Result<&'a UserState, Rejection> {
        self.state.users.get(user).ok_or_else(|| {
            Rejection::new(
                ErrorCode::NotFound,
                format!("user {user} is not registered"),
            )
        })
    }

    /// R-R6: a room the actor is a member of; a missing room is refused the same way.
    pub(super) fn member_room(&self, room_id: &RoomId) -> Result<&'a RoomState, Rejection> {
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
    pub(super) fn message_in_room(
        &self,
        room_id: &RoomId,
        message_id: &MessageId,
    ) -> Result<MessageState, Rejection> {
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
    pub(super) fn check_direct_not_blocked(&self, room: &RoomState) -> Result<(), Rejection> {
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
    pub(super) fn check_not_blocked_by(&self, other: &UserId) -> Result<(), Rejection> {
        match self.command.actor.user() {
            Some(actor) if self.state.blocks(other, actor) => Err(blocked()),
            _ => Ok(()),
        }
    }

    /// R-R3: starting a conversation counts against the initiator's limit for the UTC day.
    pub(super) fn check_daily_limit(&self, user: &UserId) -> Result<(), Rejection> {
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

    /// A room this command would create must not exist: a creation never replaces a room.
    /// Ids of different kinds come from different namespaces, so this refuses only what a log
    /// written before they did can hold (a group room made with a namespace as its command id);
    /// `field` names the input the id derives from.
    pub(super) fn check_room_id_free(
        &self,
        room_id: &RoomId,
        field: &str,
    ) -> Result<(), Rejection> {
        if self.state.rooms.contains_key(room_id) {
            return Err(Rejection::invalid(format!(
                "{field}: the room id it gives is taken by another room"
            )));
        }
        Ok(())
    }

    /// R-S3, R-M6: some actions only the desktop and mobile web clients can do.
    pub(super) fn require_full_client(&self, what: &str) -> Result<(), Rejection> {
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
