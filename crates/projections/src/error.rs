//! The errors of the read side: [`ProjectionError`] for the runtime and the stores (fail-stop or
//! retried), [`QueryError`] for answers a caller gets (expected outcomes, with a protocol code).

use bus::BusError;
use protocol::query::{InvalidQuery, QueryErrorCode};

/// Why applying events, reading the log or serving a read model failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProjectionError {
    /// The fjall store failed (IO, corruption detected by fjall, a lock held by another process).
    #[error("store: {0}")]
    Store(String),
    /// A stored value could not be encoded or decoded.
    #[error("stored value under key {key}: {message}")]
    Value {
        /// The key, hex-encoded.
        key: String,
        /// What went wrong.
        message: String,
    },
    /// A batch does not continue the checkpoint: applying it would skip events.
    #[error("gap in the events: expected position {expected}, got {got}")]
    Gap {
        /// The position that must come next (checkpoint + 1).
        expected: u64,
        /// The position offered instead.
        got: u64,
    },
    /// The bus failed (no writer answering `log.read`, a timeout, a closed connection).
    #[error("bus: {0}")]
    Bus(#[from] BusError),
    /// `log.read` answered something unusable (an error object, undecodable bytes).
    #[error("log.read: {0}")]
    LogRead(String),
    /// A blocking task panicked or a lock was poisoned by a panic.
    #[error("task: {0}")]
    Task(String),
    /// The store holds a model of another key layout (written by an earlier build): read as
    /// this one it would answer wrongly, so it is refused until rebuilt from the log.
    #[error(
        "the {model} store has key layout {found}, this build reads layout {expected}: \
         rebuild it from the log with `parlor replay {model}` (the writer stopped)"
    )]
    Layout {
        /// The read model.
        model: &'static str,
        /// The layout found (0: a store from before layouts were recorded).
        found: u32,
        /// The layout this build reads.
        expected: u32,
    },
}

impl From<fjall::Error> for ProjectionError {
    fn from(error: fjall::Error) -> ProjectionError {
        ProjectionError::Store(error.to_string())
    }
}

/// Why a query is not answered with data (docs/queries.md). Each variant has a protocol code.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum QueryError {
    /// The room or message does not exist, or the caller may not see it (R-R6: the same answer).
    #[error("not found")]
    NotFound,
    /// A parameter is missing, malformed or unknown (the text names it).
    #[error("{0}")]
    Invalid(String),
    /// The caller lacks a role (the moderation queue needs `"moderator": true`).
    #[error("{0}")]
    Forbidden(String),
    /// The read model has not applied `min_position` within the wait.
    #[error("the read model has applied position {position}, not yet {min_position}")]
    Lagging {
        /// The position the caller asked for.
        min_position: u64,
        /// The position applied when the wait ended.
        position: u64,
    },
    /// The read model could not answer (a store error); retrying may succeed.
    #[error("the read model cannot answer: {0}")]
    Unavailable(String),
    /// The caller has too many reads waiting at once (H-L1); retrying later may succeed.
    #[error("{0}")]
    RateLimited(String),
}

impl QueryError {
    /// The protocol's error code: `not_found`, `invalid_command`, `forbidden`,
    /// `projection_lagging`, `unavailable` or `rate_limited`.
    pub fn code(&self) -> QueryErrorCode {
        match self {
            QueryError::NotFound => QueryErrorCode::NotFound,
            QueryError::Invalid(_) => QueryErrorCode::InvalidCommand,
            QueryError::Forbidden(_) => QueryErrorCode::Forbidden,
            QueryError::Lagging { .. } => QueryErrorCode::ProjectionLagging,
            QueryError::Unavailable(_) => QueryErrorCode::Unavailable,
            QueryError::RateLimited(_) => QueryErrorCode::RateLimited,
        }
    }
}

impl From<InvalidQuery> for QueryError {
    fn from(InvalidQuery(message): InvalidQuery) -> QueryError {
        QueryError::Invalid(message)
    }
}

impl From<ProjectionError> for QueryError {
    fn from(error: ProjectionError) -> QueryError {
        QueryError::Unavailable(error.to_string())
    }
}
