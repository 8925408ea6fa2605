//! Events: the facts the log keeps, in the past tense, one enum. Every read model and every audit
//! is a fold over these. A variant's fields are never changed in place: a new layout is a new
//! schema version with an upcaster (see docs/events.md).

use serde::{Deserialize, Serialize};

use crate::command::{CallMedia, NotificationFrequency, ReportReason, UserKind};
use crate::ids::{CallId, ContractId, FileId, InterviewId, MessageId, ReportId, RoomId, UserId};
use crate::time::Timestamp;

/// The kind of a room, which decides what may be done in it (rules.md "Rooms").
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum RoomKind {
    /// Two users, opened by their first message (R-R1).
    Direct,
    /// Opened by the hiring service.
    Interview,
    /// A contract's room (R-C2).
    Contract,
    /// Created by a user (R-R2).
    Group,
}

impl RoomKind {
    /// The kind's name as the protocol spells it.
    pub fn as_str(self) -> &'static str {
        match self {
            RoomKind::Direct => "direct",
            RoomKind::Interview => "interview",
            RoomKind::Contract => "contract",
            RoomKind::Group => "group",
        }
    }
}

/// An attachment as recorded: files carry what readers need to list them (R-F1, R-F2).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Attachment {
    /// An uploaded file.
    File {
        /// The file.
        file_id: FileId,
        /// Its name as uploaded.
        name: String,
        /// Bytes.
        size: u64,
        /// MIME type.
        content_type: String,
    },
    /// A link.
    Link {
        /// The http or https URL.
        url: String,
        /// `Some("dropbox")` for Dropbox links, else none.
        provider: Option<String>,
    },
}

/// Everything that can happen in Parlor.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Event {
    /// A user became known (R-U1). Emitted by `user.register` for a new user id.
    UserRegistered {
        /// The user.
        user_id: UserId,
        /// The name others see.
        display_name: String,
        /// Client, freelancer or agency.
        kind: UserKind,
    },
    /// A known user was registered again under another name (R-U1).
    UserDisplayNameChanged {
        /// The user.
        user_id: UserId,
        /// The new name.
        display_name: String,
    },
    /// `blocker` blocked `blocked` (R-B1).
    UserBlocked {
        /// Who blocks.
        blocker: UserId,
        /// Who is blocked.
        blocked: UserId,
    },
    /// `blocker` lifted a block (R-B1).
    UserUnblocked {
        /// Who unblocks.
        blocker: UserId,
        /// Who was blocked.
        blocked: UserId,
    },
    /// A user set an out-of-office message; a new away period begins (R-A2).
    OutOfOfficeSet {
        /// The user.
        user_id: UserId,
        /// The automatic reply's text.
        message: String,
        /// Start of the period.
        from: Timestamp,
        /// End of the period (exclusive).
        until: Timestamp,
    },
    /// A user cleared their out-of-office message (R-A2).
    OutOfOfficeCleared {
        /// The user.
        user_id: UserId,
    },
    /// A user turned "online for messages" on or off (R-A1).
    OnlineVisibilityChanged {
        /// The user.
        user_id: UserId,
        /// Visible or not.
        visible: bool,
    },
    /// A user chose how often to be notified (R-A3).
    NotificationFrequencyChanged {
        /// The user.
        user_id: UserId,
        /// The new setting.
        frequency: NotificationFrequency,
    },
    /// The first message between two users opened their direct room (R-R1, counts for R-R3).
    DirectRoomOpened {
        /// Derived from the pair.
        room_id: RoomId,
        /// Who sent the first message; the conversation counts against their daily limit.
        initiator: UserId,
        /// The other user.
        recipient: UserId,
        /// When.
        opened_at: Timestamp,
    },
    /// A user created a group room (R-R2, counts for R-R3).
    GroupRoomCreated {
        /// The new room.
        room_id: RoomId,
        /// Its name.
        name: String,
        /// The creator, also a member.
        creator: UserId,
        /// Every member, the creator first.
        members: Vec<UserId>,
        /// When.
        created_at: Timestamp,
    },
    /// The hiring service opened an interview room.
    InterviewRoomOpened {
        /// Derived from the interview id.
        room_id: RoomId,
        /// The hiring service's id.
        interview_id: InterviewId,
        /// The room's name.
        title: String,
        /// The hiring client.
        client: UserId,
        /// The interviewed freelancer.
        freelancer: UserId,
        /// When.
        opened_at: Timestamp,
    },
    /// A contract became active (R-C2). Its room is created, or an existing room is turned into
    /// a contract room (kind `contract`, renamed to the title, client and freelancer added).
    ContractStarted {
        /// The contract.
        contract_id: ContractId,
        /// Its room.
        room_id: RoomId,
        /// Whether this event created the room (otherwise it existed before).
        room_created: bool,
        /// The room's new name.
        title: String,
        /// The client party.
        client: UserId,
        /// The freelancer party.
        freelancer: UserId,
        /// When.
        started_at: Timestamp,
    },
    /// A contract ended; contact details are refused in its room again (R-C2).
    ContractEnded {
        /// The contract.
        contract_id: ContractId,
        /// Its room.
        room_id: RoomId,
        /// When.
        ended_at: Timestamp,
    },
    /// A member added someone to a room (R-R4).
    MemberAdded {
        /// The room.
        room_id: RoomId,
        /// The new member.
        user_id: UserId,
        /// The member who added them.
        added_by: UserId,
        /// When.
        added_at: Timestamp,
    },
    /// A member left a group room (R-R5).
    MemberLeft {
        /// The room.
        room_id: RoomId,
        /// Who left.
        user_id: UserId,
        /// When.
        left_at: Timestamp,
    },
    /// A member renamed a group room (R-R7).
    RoomRenamed {
        /// The room.
        room_id: RoomId,
        /// The new name.
        name: String,
        /// Who renamed it.
        renamed_by: UserId,
    },
    /// A user marked or unmarked a room as a favorite (R-S1).
    RoomFavoriteChanged {
        /// The room.
        room_id: RoomId,
        /// Whose view.
        user_id: UserId,
        /// Favorite or not.
        on: bool,
    },
    /// A user hid or unhid a room (R-S2).
    RoomHiddenChanged {
        /// The room.
        room_id: RoomId,
        /// Whose view.
        user_id: UserId,
        /// Hidden or not.
        on: bool,
    },
    /// A user archived or unarchived a room (R-S3).
    RoomArchivedChanged {
        /// The room.
        room_id: RoomId,
        /// Whose view.
        user_id: UserId,
        /// Archived or not.
        on: bool,
    },
    /// A user read a room up to a message (R-S4).
    RoomMarkedRead {
        /// The room.
        room_id: RoomId,
        /// Whose marker.
        user_id: UserId,
        /// The newest message read.
        message_id: MessageId,
    },
    /// A member sent a message (R-M1, R-M2, R-F1).
    MessageSent {
        /// The room.
        room_id: RoomId,
        /// The message.
        message_id: MessageId,
        /// The sender.
        author: UserId,
        /// The trimmed text (may be empty when there are attachments).
        body: String,
        /// The message answered, in the same room.
        reply_to: Option<MessageId>,
        /// Files and links.
        attachments: Vec<Attachment>,
        /// When.
        sent_at: Timestamp,
    },
    /// An away member answered automatically (R-A2); recorded with the message that triggered it.
    AutoReplySent {
        /// The room.
        room_id: RoomId,
        /// The automatic reply's own id.
        message_id: MessageId,
        /// The away member, in whose name it is sent.
        author: UserId,
        /// The away message.
        body: String,
        /// The message that triggered it.
        in_reply_to: MessageId,
        /// When.
        sent_at: Timestamp,
    },
    /// The author edited a message (R-M3); the earlier body stays in the log.
    MessageEdited {
        /// The room.
        room_id: RoomId,
        /// The message.
        message_id: MessageId,
        /// The new trimmed text.
        body: String,
        /// When.
        edited_at: Timestamp,
    },
    /// The author deleted a message (R-M4); readers see a tombstone, the log keeps the original.
    MessageDeleted {
        /// The room.
        room_id: RoomId,
        /// The message.
        message_id: MessageId,
        /// When.
        deleted_at: Timestamp,
    },
    /// A member reported another member's message to the moderators (R-P1).
    MessageReported {
        /// The report.
        report_id: ReportId,
        /// The room.
        room_id: RoomId,
        /// The message.
        message_id: MessageId,
        /// Who reports.
        reporter: UserId,
        /// Why.
        reason: ReportReason,
        /// Free text, up to 1,000 characters.
        details: Option<String>,
        /// When.
        reported_at: Timestamp,
    },
    /// A member started a call (R-K1).
    CallStarted {
        /// The room.
        room_id: RoomId,
        /// The call.
        call_id: CallId,
        /// Audio or video.
        media: CallMedia,
        /// Who started it.
        started_by: UserId,
        /// When.
        started_at: Timestamp,
    },
    /// A member ended the active call (R-K1).
    CallEnded {
        /// The room.
        room_id: RoomId,
        /// The call.
        call_id: CallId,
        /// Who ended it.
        ended_by: UserId,
        /// When.
        ended_at: Timestamp,
        /// From start to end.
        duration_ms: i64,
    },
    /// The gateway stored an upload (R-F1).
    FileRegistered {
        /// The file.
        file_id: FileId,
        /// Who uploaded it.
        uploader: UserId,
        /// The file name.
        name: String,
        /// Bytes.
        size: u64,
        /// MIME type.
        content_type: String,
        /// 64 lowercase hex characters.
        sha256: String,
        /// When.
        registered_at: Timestamp,
    },
}

/// Every event type name, in declaration order (the order of the stored enum's variants).
pub const EVENT_TYPES: [&str; 28] = [
    "user_registered",
    "user_display_name_changed",
    "user_blocked",
    "user_unblocked",
    "out_of_office_set",
    "out_of_office_cleared",
    "online_visibility_changed",
    "notification_frequency_changed",
    "direct_room_opened",
    "group_room_created",
    "interview_room_opened",
    "contract_started",
    "contract_ended",
    "member_added",
    "member_left",
    "room_renamed",
    "room_favorite_changed",
    "room_hidden_changed",
    "room_archived_changed",
    "room_marked_read",
    "message_sent",
    "auto_reply_sent",
    "message_edited",
    "message_deleted",
    "message_reported",
    "call_started",
    "call_ended",
    "file_registered",
];

impl Event {
    /// The event's type name, as in `parlor.evt.<type>` (snake case, past tense).
    pub fn type_name(&self) -> &'static str {
        match self {
            Event::UserRegistered { .. } => "user_registered",
            Event::UserDisplayNameChanged { .. } => "user_display_name_changed",
            Event::UserBlocked { .. } => "user_blocked",
            Event::UserUnblocked { .. } => "user_unblocked",
            Event::OutOfOfficeSet { .. } => "out_of_office_set",
            Event::OutOfOfficeCleared { .. } => "out_of_office_cleared",
            Event::OnlineVisibilityChanged { .. } => "online_visibility_changed",
            Event::NotificationFrequencyChanged { .. } => "notification_frequency_changed",
            Event::DirectRoomOpened { .. } => "direct_room_opened",
            Event::GroupRoomCreated { .. } => "group_room_created",
            Event::InterviewRoomOpened { .. } => "interview_room_opened",
            Event::ContractStarted { .. } => "contract_started",
            Event::ContractEnded { .. } => "contract_ended",
            Event::MemberAdded { .. } => "member_added",
            Event::MemberLeft { .. } => "member_left",
            Event::RoomRenamed { .. } => "room_renamed",
            Event::RoomFavoriteChanged { .. } => "room_favorite_changed",
            Event::RoomHiddenChanged { .. } => "room_hidden_changed",
            Event::RoomArchivedChanged { .. } => "room_archived_changed",
            Event::RoomMarkedRead { .. } => "room_marked_read",
            Event::MessageSent { .. } => "message_sent",
            Event::AutoReplySent { .. } => "auto_reply_sent",
            Event::MessageEdited { .. } => "message_edited",
            Event::MessageDeleted { .. } => "message_deleted",
            Event::MessageReported { .. } => "message_reported",
            Event::CallStarted { .. } => "call_started",
            Event::CallEnded { .. } => "call_ended",
            Event::FileRegistered { .. } => "file_registered",
        }
    }

    /// The stream the event belongs to: `user-<id>`, `room-<uuid>` or `file-<uuid>`.
    ///
    /// Everything that happens in or to a room (membership, per-member views, contracts,
    /// messages, reports, calls) is in the room's stream, so an auditor reads one stream per room
    /// and rooms can later be sharded over several logs.
    pub fn stream(&self) -> String {
        match self {
            Event::UserRegistered { user_id, .. }
            | Event::UserDisplayNameChanged { user_id, .. }
            | Event::OutOfOfficeSet { user_id, .. }
            | Event::OutOfOfficeCleared { user_id }
            | Event::OnlineVisibilityChanged { user_id, .. }
            | Event::NotificationFrequencyChanged { user_id, .. } => format!("user-{user_id}"),
            Event::UserBlocked { blocker, .. } | Event::UserUnblocked { blocker, .. } => {
                format!("user-{blocker}")
            }
            Event::FileRegistered { file_id, .. } => format!("file-{file_id}"),
            Event::DirectRoomOpened { room_id, .. }
            | Event::GroupRoomCreated { room_id, .. }
            | Event::InterviewRoomOpened { room_id, .. }
            | Event::ContractStarted { room_id, .. }
            | Event::ContractEnded { room_id, .. }
            | Event::MemberAdded { room_id, .. }
            | Event::MemberLeft { room_id, .. }
            | Event::RoomRenamed { room_id, .. }
            | Event::RoomFavoriteChanged { room_id, .. }
            | Event::RoomHiddenChanged { room_id, .. }
            | Event::RoomArchivedChanged { room_id, .. }
            | Event::RoomMarkedRead { room_id, .. }
            | Event::MessageSent { room_id, .. }
            | Event::AutoReplySent { room_id, .. }
            | Event::MessageEdited { room_id, .. }
            | Event::MessageDeleted { room_id, .. }
            | Event::MessageReported { room_id, .. }
            | Event::CallStarted { room_id, .. }
            | Event::CallEnded { room_id, .. } => format!("room-{room_id}"),
        }
    }

    /// The room the event happened in, if any.
    pub fn room_id(&self) -> Option<RoomId> {
        match self {
            Event::DirectRoomOpened { room_id, .. }
            | Event::GroupRoomCreated { room_id, .. }
            | Event::InterviewRoomOpened { room_id, .. }
            | Event::ContractStarted { room_id, .. }
            | Event::ContractEnded { room_id, .. }
            | Event::MemberAdded { room_id, .. }
            | Event::MemberLeft { room_id, .. }
            | Event::RoomRenamed { room_id, .. }
            | Event::RoomFavoriteChanged { room_id, .. }
            | Event::RoomHiddenChanged { room_id, .. }
            | Event::RoomArchivedChanged { room_id, .. }
            | Event::RoomMarkedRead { room_id, .. }
            | Event::MessageSent { room_id, .. }
            | Event::AutoReplySent { room_id, .. }
            | Event::MessageEdited { room_id, .. }
            | Event::MessageDeleted { room_id, .. }
            | Event::MessageReported { room_id, .. }
            | Event::CallStarted { room_id, .. }
            | Event::CallEnded { room_id, .. } => Some(*room_id),
            _ => None,
        }
    }

    /// How the event changes a room's membership, if it does. Read models that keep their own
    /// membership set for access checks follow this one definition instead of each listing the
    /// events that open rooms and add or remove members.
    pub fn membership_change(&self) -> Option<MembershipChange<'_>> {
        match self {
            Event::DirectRoomOpened {
                room_id,
                initiator,
                recipient,
                ..
            } => Some(MembershipChange::Joined {
                room_id: *room_id,
                users: vec![initiator, recipient],
            }),
            Event::GroupRoomCreated {
                room_id, members, ..
            } => Some(MembershipChange::Joined {
                room_id: *room_id,
                users: members.iter().collect(),
            }),
            // A contract started in an existing room (an interview, say) makes both parties
            // members of it too (R-C2); joining twice changes nothing.
            Event::InterviewRoomOpened {
                room_id,
                client,
                freelancer,
                ..
            }
            | Event::ContractStarted {
                room_id,
                client,
                freelancer,
                ..
            } => Some(MembershipChange::Joined {
                room_id: *room_id,
                users: vec![client, freelancer],
            }),
            Event::MemberAdded {
                room_id, user_id, ..
            } => Some(MembershipChange::Joined {
                room_id: *room_id,
                users: vec![user_id],
            }),
            Event::MemberLeft {
                room_id, user_id, ..
            } => Some(MembershipChange::Left {
                room_id: *room_id,
                user: user_id,
            }),
            _ => None,
        }
    }
}

/// A change to a room's membership (see [`Event::membership_change`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MembershipChange<'a> {
    /// These users are members of the room from this event on (some may already have been).
    Joined {
        /// The room.
        room_id: RoomId,
        /// The users who are members now.
        users: Vec<&'a UserId>,
    },
    /// This user is no longer a member of the room.
    Left {
        /// The room.
        room_id: RoomId,
        /// The user who left.
        user: &'a UserId,
    },
}
