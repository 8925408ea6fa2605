//! Commands: what users and services ask Parlor to do (protocol.md §1), after the `protocol`
//! crate has decoded them. Field types are validated (ids parse), bounds are the domain's to check.

use serde::{Deserialize, Serialize};

use crate::ids::{
    Actor, CallId, CommandId, ContractId, FileId, InterviewId, MessageId, RoomId, UserId,
};
use crate::time::Timestamp;

/// One command with its envelope: who sends it, from which client, under which id.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Command {
    /// The idempotency key (R-M7) and the seed of every id the command creates.
    pub command_id: CommandId,
    /// The user or service that sends it.
    pub actor: Actor,
    /// The frontend it came from; some rules depend on it (R-S3, R-M6).
    pub client: Client,
    /// What to do.
    pub action: Action,
}

/// The frontend a command was sent from.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize, schemars::JsonSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum Client {
    /// The desktop web app (the default).
    #[default]
    Desktop,
    /// The web app on a phone.
    MobileWeb,
    /// The native phone app, which cannot archive rooms or delete files (R-S3, R-M6).
    MobileApp,
}

impl Client {
    /// Desktop and mobile web can archive rooms and delete files; the mobile app cannot.
    pub fn supports_archive_and_file_deletion(self) -> bool {
        matches!(self, Client::Desktop | Client::MobileWeb)
    }
}

/// The kind of user an identity service registers (R-U1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum UserKind {
    /// Hires freelancers.
    Client,
    /// Works for clients.
    Freelancer,
    /// A company of freelancers.
    Agency,
}

/// How often a user is notified of new messages (R-A3).
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize, schemars::JsonSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum NotificationFrequency {
    /// One notification per message.
    #[default]
    Immediate,
    /// Batched every 15 minutes.
    #[serde(rename = "every_15_minutes")]
    Every15Minutes,
    /// Batched hourly.
    Hourly,
    /// Batched daily.
    Daily,
    /// No notifications.
    Off,
}

/// Audio or video.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum CallMedia {
    /// Voice only.
    Audio,
    /// Voice and video.
    Video,
}

/// Why a member reports a message (R-P1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum ReportReason {
    /// Asking to pay outside the platform.
    PaymentOutsidePlatform,
    /// Sharing contact details before a contract.
    ContactInfoBeforeContract,
    /// A link that looks like phishing or malware.
    SuspiciousLink,
    /// Insults or harassment.
    AbusiveLanguage,
    /// Anything else; the details say what.
    Other,
}

/// Where a message goes: an existing room, or the direct room with a user (R-R1).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum MessageTarget {
    /// A room the sender is a member of.
    Room(RoomId),
    /// The direct room with this user, created by this message if absent.
    User(UserId),
}

/// An attachment as the sender names it (R-F1).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum AttachmentRef {
    /// A file the sender uploaded and has not attached before.
    File(FileId),
    /// An http or https link.
    Link(String),
}

/// What a command asks for: one variant per command type of protocol.md §1.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Action {
    /// `user.register` (service): make a user known or update their display name (R-U1).
    RegisterUser {
        /// The identity service's id for the user.
        user_id: UserId,
        /// The name others see.
        display_name: String,
        /// Client, freelancer or agency.
        kind: UserKind,
    },
    /// `user.block` (R-B1).
    BlockUser {
        /// Whom to block.
        user_id: UserId,
    },
    /// `user.unblock` (R-B1).
    UnblockUser {
        /// Whom to unblock.
        user_id: UserId,
    },
    /// `user.set_out_of_office` (R-A2).
    SetOutOfOffice {
        /// The text of the automatic reply and of the away badge.
        message: String,
        /// Start of the away period.
        from: Timestamp,
        /// End of the away period (exclusive), after `from` and after now.
        until: Timestamp,
    },
    /// `user.clear_out_of_office` (R-A2).
    ClearOutOfOffice,
    /// `user.set_online_visibility` (R-A1).
    SetOnlineVisibility {
        /// Whether others may see the user online.
        visible: bool,
    },
    /// `user.set_notifications` (R-A3).
    SetNotifications {
        /// How often to be notified.
        frequency: NotificationFrequency,
    },
    /// `room.create`: a group room (R-R2).
    CreateRoom {
        /// 1–100 characters.
        name: String,
        /// The other members; the actor joins implicitly.
        members: Vec<UserId>,
    },
    /// `room.open_interview` (service): the hiring service opens an interview room.
    OpenInterview {
        /// The hiring service's id; the room id is derived from it.
        interview_id: InterviewId,
        /// The room's name.
        title: String,
        /// The hiring client.
        client: UserId,
        /// The interviewed freelancer.
        freelancer: UserId,
    },
    /// `room.add_member` (R-R4).
    AddMember {
        /// The room.
        room_id: RoomId,
        /// Who joins.
        user_id: UserId,
    },
    /// `room.leave` (R-R5).
    LeaveRoom {
        /// The room.
        room_id: RoomId,
    },
    /// `room.rename` (R-R7).
    RenameRoom {
        /// The room.
        room_id: RoomId,
        /// 1–100 characters.
        name: String,
    },
    /// `room.favorite` (R-S1).
    FavoriteRoom {
        /// The room.
        room_id: RoomId,
        /// Favorite or not.
        on: bool,
    },
    /// `room.hide` (R-S2).
    HideRoom {
        /// The room.
        room_id: RoomId,
        /// Hidden or not.
        on: bool,
    },
    /// `room.archive` (R-S3).
    ArchiveRoom {
        /// The room.
        room_id: RoomId,
        /// Archived or not.
        on: bool,
    },
    /// `room.mark_read` (R-S4).
    MarkRead {
        /// The room.
        room_id: RoomId,
        /// The newest message read.
        message_id: MessageId,
    },
    /// `contract.start` (service, R-C2).
    StartContract {
        /// The contracts service's id.
        contract_id: ContractId,
        /// The room's name.
        title: String,
        /// The client party.
        client: UserId,
        /// The freelancer party.
        freelancer: UserId,
        /// An existing room (an interview room, say) to turn into the contract's room.
        room_id: Option<RoomId>,
    },
    /// `contract.end` (service, R-C2).
    EndContract {
        /// The contract.
        contract_id: ContractId,
    },
    /// `message.send` (R-M1, R-M2, R-R1, R-F1, R-C1, R-B2, R-A2).
    SendMessage {
        /// A room, or a user for the direct room.
        target: MessageTarget,
        /// The sender's own id for the message, or none to have one derived.
        message_id: Option<MessageId>,
        /// The text, trimmed before the rules apply.
        body: String,
        /// A message of the same room this one answers.
        reply_to: Option<MessageId>,
        /// Files and links.
        attachments: Vec<AttachmentRef>,
    },
    /// `message.edit` (R-M3).
    EditMessage {
        /// The room.
        room_id: RoomId,
        /// The message.
        message_id: MessageId,
        /// The new text.
        body: String,
    },
    /// `message.delete` (R-M4, R-M6).
    DeleteMessage {
        /// The room.
        room_id: RoomId,
        /// The message.
        message_id: MessageId,
    },
    /// `message.report` (R-P1).
    ReportMessage {
        /// The room.
        room_id: RoomId,
        /// The message.
        message_id: MessageId,
        /// Why.
        reason: ReportReason,
        /// Up to 1,000 characters.
        details: Option<String>,
    },
    /// `call.start` (R-K1).
    StartCall {
        /// The room.
        room_id: RoomId,
        /// Audio or video.
        media: CallMedia,
    },
    /// `call.end` (R-K1).
    EndCall {
        /// The room.
        room_id: RoomId,
        /// The active call.
        call_id: CallId,
    },
    /// `file.register` (service): the gateway stored an upload (R-F1).
    RegisterFile {
        /// The file's id, chosen by the gateway.
        file_id: FileId,
        /// Who uploaded it; only they may attach it.
        uploader: UserId,
        /// The file name as uploaded.
        name: String,
        /// Bytes.
        size: u64,
        /// The MIME type the uploader declared.
        content_type: String,
        /// 64 lowercase hex characters.
        sha256: String,
    },
}

impl Action {
    /// The protocol's type name, e.g. `message.send`.
    pub fn type_name(&self) -> &'static str {
        match self {
            Action::RegisterUser { .. } => "user.register",
            Action::BlockUser { .. } => "user.block",
            Action::UnblockUser { .. } => "user.unblock",
            Action::SetOutOfOffice { .. } => "user.set_out_of_office",
            Action::ClearOutOfOffice => "user.clear_out_of_office",
            Action::SetOnlineVisibility { .. } => "user.set_online_visibility",
            Action::SetNotifications { .. } => "user.set_notifications",
            Action::CreateRoom { .. } => "room.create",
            Action::OpenInterview { .. } => "room.open_interview",
            Action::AddMember { .. } => "room.add_member",
            Action::LeaveRoom { .. } => "room.leave",
            Action::RenameRoom { .. } => "room.rename",
            Action::FavoriteRoom { .. } => "room.favorite",
            Action::HideRoom { .. } => "room.hide",
            Action::ArchiveRoom { .. } => "room.archive",
            Action::MarkRead { .. } => "room.mark_read",
            Action::StartContract { .. } => "contract.start",
            Action::EndContract { .. } => "contract.end",
            Action::SendMessage { .. } => "message.send",
            Action::EditMessage { .. } => "message.edit",
            Action::DeleteMessage { .. } => "message.delete",
            Action::ReportMessage { .. } => "message.report",
            Action::StartCall { .. } => "call.start",
            Action::EndCall { .. } => "call.end",
            Action::RegisterFile { .. } => "file.register",
        }
    }

    /// Service commands, marked (S) in protocol.md §1: only `service:<name>` actors may send them.
    pub fn is_service_command(&self) -> bool {
        matches!(
            self,
            Action::RegisterUser { .. }
                | Action::OpenInterview { .. }
                | Action::StartContract { .. }
                | Action::EndContract { .. }
                | Action::RegisterFile { .. }
        )
    }
}

/// Every command type name, in protocol.md §1 order.
pub const COMMAND_TYPES: [&str; 25] = [
    "user.register",
    "user.block",
    "user.unblock",
    "user.set_out_of_office",
    "user.clear_out_of_office",
    "user.set_online_visibility",
    "user.set_notifications",
    "room.create",
    "room.open_interview",
    "room.add_member",
    "room.leave",
    "room.rename",
    "room.favorite",
    "room.hide",
    "room.archive",
    "room.mark_read",
    "contract.start",
    "contract.end",
    "message.send",
    "message.edit",
    "message.delete",
    "message.report",
    "call.start",
    "call.end",
    "file.register",
];
