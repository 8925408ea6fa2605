//! Rejections: why a command was refused, as a stable code (protocol.md §1) and a message for
//! people. Messages never carry data the caller may not see (R-R6, R-B2).

use std::fmt;

use serde::{Deserialize, Serialize};

/// The stable error codes of protocol.md §1.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum ErrorCode {
    /// Malformed input, unknown type, or a field outside its bounds.
    InvalidCommand,
    /// The actor may not do this (a user sending a service command, leaving a direct room, …).
    Forbidden,
    /// A named user, message, file, contract or call does not exist (or is not the actor's).
    NotFound,
    /// The room does not exist or the actor is not a member: the two are indistinguishable.
    NotMember,
    /// Only the author may edit or delete a message.
    NotAuthor,
    /// One of the two users blocks the other.
    Blocked,
    /// Contact or payment details outside an active contract's room.
    ContactInfoOutsideContract,
    /// Too many new conversations today.
    DailyConversationLimit,
    /// The one-hour edit window has passed.
    EditWindowExpired,
    /// The one-hour delete window has passed.
    DeleteWindowExpired,
    /// The message is deleted.
    AlreadyDeleted,
    /// A message with this id exists.
    DuplicateMessageId,
    /// Direct rooms have exactly two members.
    CannotAddToDirect,
    /// Only direct and interview rooms can be hidden.
    CannotHideKind,
    /// Only group and contract rooms can be archived.
    CannotArchiveKind,
    /// This client cannot do this (archive, delete a file).
    PlatformNotSupported,
    /// The body is over 5,000 characters.
    BodyTooLong,
    /// Neither a body nor an attachment.
    EmptyMessage,
    /// A file over 1 GiB.
    FileTooLarge,
    /// The room has an active call.
    CallInProgress,
    /// An expected stream version did not match (writer level).
    VersionConflict,
    /// The writer cannot commit now; retry with the same command id (writer level).
    Unavailable,
    /// The command id was first used by another actor or for another command type (H-I1,
    /// writer level). Declared last so that the bincode index of every earlier code stays what
    /// it was; `ALL` keeps protocol.md's order.
    DuplicateCommandId,
}

impl ErrorCode {
    /// Every code, in protocol.md §1 order.
    pub const ALL: [ErrorCode; 23] = [
        ErrorCode::InvalidCommand,
        ErrorCode::Forbidden,
        ErrorCode::NotFound,
        ErrorCode::NotMember,
        ErrorCode::NotAuthor,
        ErrorCode::Blocked,
        ErrorCode::ContactInfoOutsideContract,
        ErrorCode::DailyConversationLimit,
        ErrorCode::EditWindowExpired,
        ErrorCode::DeleteWindowExpired,
        ErrorCode::AlreadyDeleted,
        ErrorCode::DuplicateMessageId,
        ErrorCode::CannotAddToDirect,
        ErrorCode::CannotHideKind,
        ErrorCode::CannotArchiveKind,
        ErrorCode::PlatformNotSupported,
        ErrorCode::BodyTooLong,
        ErrorCode::EmptyMessage,
        ErrorCode::FileTooLarge,
        ErrorCode::CallInProgress,
        ErrorCode::VersionConflict,
        ErrorCode::DuplicateCommandId,
        ErrorCode::Unavailable,
    ];

    /// The code as the protocol spells it.
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorCode::InvalidCommand => "invalid_command",
            ErrorCode::Forbidden => "forbidden",
            ErrorCode::NotFound => "not_found",
            ErrorCode::NotMember => "not_member",
            ErrorCode::NotAuthor => "not_author",
            ErrorCode::Blocked => "blocked",
            ErrorCode::ContactInfoOutsideContract => "contact_info_outside_contract",
            ErrorCode::DailyConversationLimit => "daily_conversation_limit",
            ErrorCode::EditWindowExpired => "edit_window_expired",
            ErrorCode::DeleteWindowExpired => "delete_window_expired",
            ErrorCode::AlreadyDeleted => "already_deleted",
            ErrorCode::DuplicateMessageId => "duplicate_message_id",
            ErrorCode::CannotAddToDirect => "cannot_add_to_direct",
            ErrorCode::CannotHideKind => "cannot_hide_kind",
            ErrorCode::CannotArchiveKind => "cannot_archive_kind",
            ErrorCode::PlatformNotSupported => "platform_not_supported",
            ErrorCode::BodyTooLong => "body_too_long",
            ErrorCode::EmptyMessage => "empty_message",
            ErrorCode::FileTooLarge => "file_too_large",
            ErrorCode::CallInProgress => "call_in_progress",
            ErrorCode::VersionConflict => "version_conflict",
            ErrorCode::Unavailable => "unavailable",
            ErrorCode::DuplicateCommandId => "duplicate_command_id",
        }
    }
}

impl fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A refused command: an expected outcome, not a failure of the system.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Rejection {
    /// The stable code.
    pub code: ErrorCode,
    /// A sentence for people; names the field or the rule, never another user's data.
    pub message: String,
}

impl Rejection {
    /// A rejection with `code` and `message`.
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Rejection {
        Rejection {
            code,
            message: message.into(),
        }
    }

    /// `invalid_command` with a message naming the field and why.
    pub fn invalid(message: impl Into<String>) -> Rejection {
        Rejection::new(ErrorCode::InvalidCommand, message)
    }
}

impl fmt::Display for Rejection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.code, self.message)
    }
}
