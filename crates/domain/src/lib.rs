//! Parlor's domain: the messaging rules as pure functions. `decide(state, command, now)` judges a
//! command; `evolve(state, event)` applies an accepted event. No IO, no clock, no randomness, no
//! async: time and the command id (the seed of every created id) are inputs.

pub mod command;
pub mod contact;
pub mod decide;
pub mod event;
pub mod ids;
pub mod limits;
pub mod message_table;
pub mod rejection;
pub mod services;
pub mod state;
pub mod time;

pub use command::{
    Action, AttachmentRef, CallMedia, Client, Command, MessageTarget, NotificationFrequency,
    ReportReason, UserKind,
};
pub use decide::{command_result, decide, CommandResult};
pub use event::{Attachment, Event, MembershipChange, RoomKind};
pub use ids::{
    Actor, CallId, CommandId, ContractId, FileId, IdError, InterviewId, MessageId, ReportId,
    RoomId, ServiceName, UserId,
};
pub use rejection::{ErrorCode, Rejection};
pub use services::{ServiceTable, ServiceTableError};
pub use state::{evolve, Config, State};
pub use time::Timestamp;
