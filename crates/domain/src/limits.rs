//! Every bound of the domain as a named constant, units last (rules.md "Bounds").

/// A user, contract or interview id: at most 64 bytes (R-U2).
pub const ID_BYTES_MAX: usize = 64;
/// A message body, after trimming: at most 5,000 Unicode scalar values (R-M1).
pub const BODY_CHARS_MAX: usize = 5_000;
/// Attachments on one message (R-F1).
pub const ATTACHMENTS_MAX: usize = 10;
/// One uploaded file: 1 GiB (R-F1).
pub const FILE_BYTES_MAX: u64 = 1024 * 1024 * 1024;
/// A room name: 1–100 characters (R-R2, R-R7).
pub const ROOM_NAME_CHARS_MAX: usize = 100;
/// A display name: 1–100 characters (R-U1).
pub const DISPLAY_NAME_CHARS_MAX: usize = 100;
/// An interview or contract title: 1–200 characters.
pub const TITLE_CHARS_MAX: usize = 200;
/// An out-of-office message: 1–1,000 characters (R-A2).
pub const AWAY_MESSAGE_CHARS_MAX: usize = 1_000;
/// Report details: at most 1,000 characters (R-P1).
pub const REPORT_DETAILS_CHARS_MAX: usize = 1_000;
/// A file name: 1–255 characters.
pub const FILE_NAME_CHARS_MAX: usize = 255;
/// A content type: 1–255 characters.
pub const CONTENT_TYPE_CHARS_MAX: usize = 255;
/// A link attachment's URL: at most 2,048 bytes.
pub const URL_BYTES_MAX: usize = 2_048;
/// Members named in one `room.create`, the creator excluded.
pub const ROOM_CREATE_MEMBERS_MAX: usize = 500;
/// Default new conversations per user per UTC day (R-R3).
pub const DAILY_CONVERSATION_LIMIT_DEFAULT: u32 = 50;
/// The edit and delete window, in milliseconds (R-M3, R-M4, R-M5).
pub const EDIT_WINDOW_MS: i64 = crate::time::HOUR_MS;
/// How long after its registration an uploaded file can be attached to a message (H-L3): 24 h.
/// The contract of the write side; the gateway deletes the bytes of uploads never attached a
/// little after it (`gateway::unattached`), so a file the writer accepts still has its bytes.
pub const FILE_ATTACH_GRACE_MS: i64 = 24 * crate::time::HOUR_MS;
