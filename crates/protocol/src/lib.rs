//! Parlor's outside contract (protocol.md §1, §2): the command envelope, replies, error codes,
//! stored events and their public views, and the JSON and bincode codecs.
//!
//! - [`codec`]: the only module that knows bincode; [`Format`] switches JSON and bincode.
//! - [`command`]: `parlor.cmd.<type>` payloads into [`domain::Command`]s ([`decode_command`]).
//! - [`reply`]: the §1 reply, in both formats, and the HTTP status of each error code.
//! - [`record`]: the stored event ([`StoredEvent`], schema-versioned) and its public view
//!   ([`RecordedEvent`]); [`upcast`] reads older schema versions.
//! - [`messages`]: `parlor.log.read`, `parlor.audit.head`, `parlor.dev.clock`, `parlor.notify.*`.
//! - [`headers`]: the headers of a published event.
//! - [`outcome`]: a command decided into its stored records and its reply ([`decide_command`]),
//!   the one definition the writer, the benchmark generator and the test supports share.
//! - [`query`]: the internal query contract: the read models by name ([`ReadModel`]), each
//!   model's operations ([`RoomsQuery`], …), the request and reply envelopes ([`QueryRequest`],
//!   [`QueryReply`]) and the limits both sides apply.
//! - [`asyncapi`]: the AsyncAPI 3 document of the NATS contract, from the [`schema`] registry.
//!
//! This crate holds no business rules: it checks types and id formats, the domain checks bounds.

pub mod asyncapi;
pub mod codec;
pub mod command;
pub mod digest;
mod fields;
pub mod headers;
pub mod messages;
pub mod outcome;
pub mod query;
pub mod record;
pub mod reply;
pub mod schema;
mod spelling;
pub mod upcast;

pub use codec::{
    decode, decode_as, encode, encode_as, CodecError, Format, CONTENT_TYPE_BINCODE,
    CONTENT_TYPE_JSON, FORMAT_VERSION,
};
pub use command::{
    decode_command, encode_command_bincode, encode_command_json, DecodedCommand, InvalidCommand,
    CORRELATION_ID_CHARS_MAX, PAYLOAD_BYTES_MAX,
};
pub use digest::Sha256;
pub use headers::{
    EventHeaders, InvalidHeaders, HEADER_CONTENT_TYPE, HEADER_POSITION, HEADER_STREAM,
    HEADER_VERSION,
};
pub use messages::{
    AuditHead, DevClockReply, DevClockRequest, InvalidRequest, LogReadReply, LogReadRequest,
    Notification, NotificationItem, LOG_READ_EVENTS_DEFAULT, LOG_READ_EVENTS_MAX,
    LOG_READ_REPLY_BYTES_MAX, NOTIFICATION_BYTES_MAX, REQUEST_BYTES_MAX,
};
pub use outcome::{decide_command, event_id, EncodedRecord, Outcome};
pub use query::{
    FilesQuery, ModelQuery, ModerationQuery, NotificationsQuery, Operation, QueryReply,
    QueryRequest, ReadModel, RoomsQuery, SearchQuery, TimelineQuery,
};
pub use record::{
    decode_stored, encode_stored, event_from_type_and_data, recorded_bincode_from_stored,
    RecordedEvent, StoredEvent, CURRENT_SCHEMA_VERSION, RECORDED_EVENT_BYTES_MAX,
    STORED_EVENT_BYTES_MAX,
};
pub use reply::{
    decode_reply, encode_reply, http_status, EventRef, Reply, ReplyResult, REPLY_BYTES_MAX,
};
