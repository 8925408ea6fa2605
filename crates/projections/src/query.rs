//! The projectors' side of the internal query contract (docs/queries.md), whose types and
//! limits live in [`protocol::query`]: the reply a model's answer becomes, and the cursor text
//! of a page's end.

use protocol::query::{Cursor, QueryRefusal, QueryReply};
use serde_json::Value;

use crate::error::QueryError;

pub use protocol::query::{
    unknown_op, ModelQuery, Operation, QueryRequest, PAGE_ITEMS_DEFAULT, PAGE_ITEMS_MAX,
    QUERY_REQUEST_BYTES_MAX,
};

/// A cursor as the `next_cursor` text: the hex of the last key a page showed (opaque to
/// clients, exact for the model).
pub fn encode_cursor(key_suffix: &[u8]) -> String {
    Cursor::from_bytes(key_suffix).as_str().to_owned()
}

/// The reply envelope: `{"ok": true, "position", "data"}` or
/// `{"ok": false, "error": {"code", "message"}}` ([`QueryReply`]).
pub fn encode_reply(result: &Result<(u64, Value), QueryError>) -> Vec<u8> {
    let reply = match result {
        Ok((position, data)) => QueryReply::Answer {
            position: *position,
            data,
        },
        Err(error) => QueryReply::Refused(QueryRefusal {
            code: error.code(),
            message: error.to_string(),
        }),
    };
    // A Value always serializes; the fallback keeps the reply well-formed regardless.
    serde_json::to_vec(&reply).unwrap_or_else(|_| {
        br#"{"error":{"code":"unavailable","message":"cannot encode"},"ok":false}"#.to_vec()
    })
}
