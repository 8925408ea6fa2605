//! The bodies the gateway answers with, as schemas: the read models' shapes of protocol.md §3
//! (Room, Message, Item, search results, reports), the upload's answer and the SSE events'
//! data. The projectors write these as JSON (`projections`, `search`) and the gateway passes
//! it through unparsed, so these schema-only types describe that JSON; schemathesis
//! (`tests/api-fuzz/run`) checks every answer it gets against them.
//!
//! Every field is always written (`null` when empty), so with the gateway's serialize-contract
//! generator every field is required and each `Option` is nullable.

use domain::{
    CallId, CallMedia, ContractId, FileId, MessageId, ReportId, ReportReason, RoomId, RoomKind,
    Timestamp, UserId,
};
use schemars::JsonSchema;
use uuid::Uuid;

/// `GET /v1/rooms`: a page of the caller's rooms, newest activity first.
#[derive(JsonSchema)]
pub(crate) struct RoomPage {
    /// The rooms of this page.
    pub rooms: Vec<Room>,
    /// Pass as `cursor` for the next page; null at the end.
    pub next_cursor: Option<String>,
}

/// A room as the caller sees it.
#[derive(JsonSchema)]
pub(crate) struct Room {
    /// The room.
    pub room_id: RoomId,
    /// Direct, interview, contract or group.
    pub kind: RoomKind,
    /// Its name; for a direct room the other person's display name.
    pub name: String,
    /// Every member.
    pub members: Vec<Member>,
    /// The latest message, if any.
    pub last_message: Option<LastMessage>,
    /// The latest activity (the list's order).
    pub last_activity_at: Timestamp,
    /// Messages the caller has not read.
    pub unread: u64,
    /// The caller's favorite (R-S1).
    pub favorite: bool,
    /// Hidden by the caller until a new message (R-S2).
    pub hidden: bool,
    /// Archived by the caller (R-S3).
    pub archived: bool,
    /// The room's contract, for a contract room.
    pub contract: Option<RoomContract>,
}

/// A member of a room.
#[derive(JsonSchema)]
pub(crate) struct Member {
    /// The member.
    pub user_id: UserId,
    /// Their name.
    pub display_name: String,
    /// Online for messages now (R-A1).
    pub online: bool,
    /// Their out-of-office message, while it runs (R-A2).
    pub away: Option<Away>,
}

/// An out-of-office period that runs now.
#[derive(JsonSchema)]
pub(crate) struct Away {
    /// The automatic reply.
    pub message: String,
    /// When it ends.
    pub until: Timestamp,
}

/// A room's latest message, in the room list.
#[derive(JsonSchema)]
pub(crate) struct LastMessage {
    /// The message (or call).
    pub message_id: Uuid,
    /// Its author.
    pub author: UserId,
    /// The start of its text; null when deleted.
    pub preview: Option<String>,
    /// When.
    pub sent_at: Timestamp,
    /// Deleted since.
    pub deleted: bool,
}

/// A contract room's contract.
#[derive(JsonSchema)]
pub(crate) struct RoomContract {
    /// The contract.
    pub contract_id: ContractId,
    /// Whether it still runs.
    pub active: bool,
}

/// `GET /v1/rooms/{room_id}/messages`: a page of a room's messages, newest first.
#[derive(JsonSchema)]
pub(crate) struct MessagePage {
    /// The messages of this page.
    pub messages: Vec<Message>,
    /// Pass as `cursor` for the next page; null at the end.
    pub next_cursor: Option<String>,
}

/// What a message is.
#[derive(JsonSchema)]
#[serde(rename_all = "snake_case")]
pub(crate) enum MessageKind {
    /// Written by its author.
    Text,
    /// An out-of-office reply (R-A2).
    AutoReply,
    /// A call (its `call` says which).
    Call,
}

/// A message, automatic reply or call of a room's timeline.
#[derive(JsonSchema)]
pub(crate) struct Message {
    /// The message's (or call's) id.
    pub message_id: Uuid,
    /// Its room.
    pub room_id: RoomId,
    /// Its author (the caller of a call).
    pub author: UserId,
    /// Text, automatic reply or call.
    pub kind: MessageKind,
    /// The text; null when deleted and for calls.
    pub body: Option<String>,
    /// Deleted (a tombstone: no body, no attachments).
    pub deleted: bool,
    /// When.
    pub sent_at: Timestamp,
    /// When last edited, if ever.
    pub edited_at: Option<Timestamp>,
    /// The message it answers.
    pub reply_to: Option<ReplyPreview>,
    /// Files and links.
    pub attachments: Vec<MessageAttachment>,
    /// For kind `call`: the call.
    pub call: Option<CallView>,
}

/// The message a message answers.
#[derive(JsonSchema)]
pub(crate) struct ReplyPreview {
    /// The message answered.
    pub message_id: MessageId,
    /// Its author; null when it is gone.
    pub author: Option<UserId>,
    /// The start of its text; null when deleted.
    pub preview: Option<String>,
    /// Deleted since.
    pub deleted: bool,
}

/// An attachment of a message.
#[derive(JsonSchema)]
#[serde(tag = "type", rename_all = "snake_case")]
pub(crate) enum MessageAttachment {
    /// An uploaded file.
    File {
        /// The file (`GET /v1/files/{file_id}`).
        file_id: FileId,
        /// Its name.
        name: String,
        /// Bytes.
        size: u64,
        /// MIME type, as uploaded.
        content_type: String,
        /// Whether `GET /v1/files/{file_id}/preview` has a thumbnail.
        has_preview: bool,
    },
    /// A link.
    Link {
        /// The http or https URL.
        url: String,
        /// `dropbox` for Dropbox links, else null.
        provider: Option<String>,
    },
}

/// A call, in its timeline entry.
#[derive(JsonSchema)]
pub(crate) struct CallView {
    /// The call.
    pub call_id: CallId,
    /// Audio or video.
    pub media: CallMedia,
    /// When it started.
    pub started_at: Timestamp,
    /// When it ended; null while it runs.
    pub ended_at: Option<Timestamp>,
    /// How long it lasted; null while it runs.
    pub duration_ms: Option<u64>,
}

/// `GET /v1/rooms/{room_id}/files`: a page of a room's files and links, newest first.
#[derive(JsonSchema)]
pub(crate) struct ItemPage {
    /// The items of this page.
    pub items: Vec<Item>,
    /// Pass as `cursor` for the next page; null at the end.
    pub next_cursor: Option<String>,
}

/// A file or link of the files panel.
#[derive(JsonSchema)]
#[serde(tag = "type", rename_all = "snake_case")]
pub(crate) enum Item {
    /// An uploaded file.
    File {
        /// Its name.
        name: String,
        /// The message it is attached to.
        message_id: MessageId,
        /// Who sent it.
        author: UserId,
        /// When.
        sent_at: Timestamp,
        /// The file.
        file_id: FileId,
        /// Bytes.
        size: u64,
        /// MIME type.
        content_type: String,
        /// Its thumbnail's path, or null when it has none.
        preview_url: Option<String>,
    },
    /// A link.
    Link {
        /// The URL (links are named by it).
        name: String,
        /// The message it is in.
        message_id: MessageId,
        /// Who sent it.
        author: UserId,
        /// When.
        sent_at: Timestamp,
        /// The http or https URL.
        url: String,
        /// `dropbox` for Dropbox links, else null.
        provider: Option<String>,
    },
}

/// `GET /v1/search`: rooms and messages matching the text.
#[derive(JsonSchema)]
pub(crate) struct SearchResults {
    /// Rooms whose name matches.
    pub rooms: Vec<RoomHit>,
    /// Messages that match, newest first.
    pub messages: Vec<MessageHit>,
    /// Pass as `cursor` for the next page of messages; null at the end.
    pub next_cursor: Option<String>,
}

/// A room whose name matches.
#[derive(JsonSchema)]
pub(crate) struct RoomHit {
    /// The room.
    pub room_id: RoomId,
    /// Its name.
    pub name: String,
    /// Its kind.
    pub kind: RoomKind,
}

/// A message that matches.
#[derive(JsonSchema)]
pub(crate) struct MessageHit {
    /// Its room.
    pub room_id: RoomId,
    /// The message.
    pub message_id: MessageId,
    /// Its author.
    pub author: UserId,
    /// When.
    pub sent_at: Timestamp,
    /// Its text around the hits, each marked with `<mark>`.
    pub snippet: String,
}

/// `GET /v1/moderation/reports`: a page of the moderators' queue.
#[derive(JsonSchema)]
pub(crate) struct ReportPage {
    /// The reports of this page.
    pub reports: Vec<Report>,
    /// Pass as `cursor` for the next page; null at the end.
    pub next_cursor: Option<String>,
}

/// A reported message.
#[derive(JsonSchema)]
pub(crate) struct Report {
    /// The report.
    pub report_id: ReportId,
    /// The room.
    pub room_id: RoomId,
    /// The message.
    pub message_id: MessageId,
    /// Who reported it.
    pub reporter: UserId,
    /// Why.
    pub reason: ReportReason,
    /// More words.
    pub details: Option<String>,
    /// When.
    pub reported_at: Timestamp,
}

/// `POST /v1/files`: the stored, registered file.
#[derive(JsonSchema)]
pub(crate) struct Uploaded {
    /// The new file's id, to attach to a message within 24 h.
    pub file_id: FileId,
    /// Its name.
    pub name: String,
    /// Bytes.
    pub size: u64,
    /// MIME type, as declared.
    pub content_type: String,
    /// 64 lowercase hex characters.
    #[schemars(regex(pattern = "^[0-9a-f]{64}$"))]
    pub sha256: String,
    /// The log position of its `file.register`.
    pub position: u64,
}

/// Up or down.
#[derive(JsonSchema)]
#[serde(rename_all = "snake_case")]
pub(crate) enum Status {
    /// The writer answers.
    Up,
    /// It does not.
    Down,
}

/// `GET /healthz`: whether Parlor is up, nothing more.
#[derive(JsonSchema)]
pub(crate) struct Liveness {
    /// Up or down.
    pub status: Status,
}

/// The `room_removed` event's data.
#[derive(JsonSchema)]
pub(crate) struct RoomRemoved {
    /// The room the caller left or was removed from.
    pub room_id: RoomId,
}
