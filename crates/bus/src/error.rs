//! The bus's error type, shared by the NATS and the in-process implementations.

/// Why a bus operation failed. Both implementations return the same variant for the same
/// situation, so callers never need to know which one they talk to.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BusError {
    /// Nobody is subscribed to the request's subject (NATS answers this at once).
    #[error("no responders on the subject")]
    NoResponders,
    /// The reply did not arrive within the request's timeout.
    #[error("timed out waiting for a reply")]
    Timeout,
    /// The connection is down and the operation could not be handed over within its bound.
    #[error("disconnected from the message server")]
    Disconnected,
    /// The bus is closed for good (the connection task has ended); nothing more can succeed.
    #[error("the bus is closed")]
    Closed,
    /// A subject or queue group name is malformed (see [`crate::subject`] for the rules).
    #[error("invalid subject {subject:?}: {reason}")]
    InvalidSubject {
        /// The offending subject or group name.
        subject: String,
        /// Which rule it breaks.
        reason: &'static str,
    },
    /// A header name or value cannot be carried (see [`crate::Headers`] for the rules).
    #[error("invalid header {name:?}: {reason}")]
    InvalidHeader {
        /// The offending header's name.
        name: String,
        /// Which rule it breaks.
        reason: &'static str,
    },
    /// `respond` was given a message that carries no reply subject (it was not a request).
    #[error("the message has no reply subject")]
    NoReplySubject,
    /// The message (headers plus payload, as NATS counts it) is larger than the limit.
    #[error("message of {bytes} bytes exceeds the limit of {bytes_max} bytes")]
    PayloadTooLarge {
        /// The message's size as NATS counts it (see [`crate::message_bytes`]).
        bytes: usize,
        /// The limit that applied.
        bytes_max: usize,
    },
    /// The connection's options are wrong (a missing file, a certificate without its key, a
    /// refused password): trying again will not help.
    #[error("NATS configuration: {0}")]
    Config(String),
    /// Any other transport failure, described as text so that async-nats types stay inside.
    #[error("transport error: {0}")]
    Transport(String),
}
