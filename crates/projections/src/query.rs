//! The internal query contract (docs/queries.md): the request every read model is asked with,
//! its parameters, and the reply envelope `{"ok", "position", "data"}` / `{"ok", "error"}`.

use domain::{MessageId, RoomId, UserId};
use serde_json::{json, Map, Value};

use crate::error::QueryError;

pub use protocol::query::{PAGE_ITEMS_DEFAULT, PAGE_ITEMS_MAX, QUERY_REQUEST_BYTES_MAX};

/// A decoded query: `{"op", "caller", "moderator", "min_position", …params}`.
#[derive(Debug, Clone, PartialEq)]
pub struct QueryRequest {
    /// The operation (`list`, `get`, `messages`, `status`, …).
    pub op: String,
    /// The authenticated user the gateway asks for, if any (never taken from a client).
    pub caller: Option<String>,
    /// Whether the caller's token carries the moderator role.
    pub moderator: bool,
    /// Answer only once this position is applied (read-your-writes).
    pub min_position: Option<u64>,
    /// Every other field: the operation's parameters.
    pub params: Map<String, Value>,
}

impl QueryRequest {
    /// Decodes a JSON request of at most [`QUERY_REQUEST_BYTES_MAX`] bytes.
    pub fn parse(bytes: &[u8]) -> Result<QueryRequest, QueryError> {
        if bytes.len() > QUERY_REQUEST_BYTES_MAX {
            return Err(QueryError::Invalid(format!(
                "the request is over {QUERY_REQUEST_BYTES_MAX} bytes"
            )));
        }
        let value: Value = serde_json::from_slice(bytes)
            .map_err(|error| QueryError::Invalid(format!("the request is not JSON: {error}")))?;
        QueryRequest::from_value(value)
    }

    /// Reads a request from a JSON value (an object).
    pub fn from_value(value: Value) -> Result<QueryRequest, QueryError> {
        let Value::Object(mut params) = value else {
            return Err(QueryError::Invalid(
                "the request is not a JSON object".into(),
            ));
        };
        let op = match params.remove("op") {
            Some(Value::String(op)) => op,
            _ => return Err(QueryError::Invalid("op: missing or not a string".into())),
        };
        let caller = match params.remove("caller") {
            None | Some(Value::Null) => None,
            Some(Value::String(caller)) => Some(caller),
            Some(_) => return Err(QueryError::Invalid("caller: not a string".into())),
        };
        let moderator = match params.remove("moderator") {
            None | Some(Value::Null) => false,
            Some(Value::Bool(moderator)) => moderator,
            Some(_) => return Err(QueryError::Invalid("moderator: not a boolean".into())),
        };
        let min_position = number(params.remove("min_position"), "min_position")?;
        Ok(QueryRequest {
            op,
            caller,
            moderator,
            min_position,
            params,
        })
    }

    /// The caller as a user id; `invalid_command` when absent or malformed.
    pub fn caller_user(&self) -> Result<UserId, QueryError> {
        let caller = self
            .caller
            .as_deref()
            .ok_or_else(|| QueryError::Invalid("caller: missing".into()))?;
        UserId::parse(caller).map_err(|error| QueryError::Invalid(format!("caller: {error}")))
    }

    /// A text parameter; `None` when absent or null.
    pub fn text(&self, name: &str) -> Result<Option<&str>, QueryError> {
        match self.params.get(name) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(text)) => Ok(Some(text)),
            Some(_) => Err(QueryError::Invalid(format!("{name}: not a string"))),
        }
    }

    /// A required room id parameter.
    pub fn room_id(&self, name: &str) -> Result<RoomId, QueryError> {
        let text = self
            .text(name)?
            .ok_or_else(|| QueryError::Invalid(format!("{name}: missing")))?;
        RoomId::parse(text).map_err(|error| QueryError::Invalid(format!("{name}: {error}")))
    }

    /// An optional message id parameter.
    pub fn message_id(&self, name: &str) -> Result<Option<MessageId>, QueryError> {
        self.text(name)?
            .map(|text| {
                MessageId::parse(text)
                    .map_err(|error| QueryError::Invalid(format!("{name}: {error}")))
            })
            .transpose()
    }

    /// The page size: `limit` (a positive integer, lowered to [`PAGE_ITEMS_MAX`]) or `default`.
    pub fn limit(&self, default: usize) -> Result<usize, QueryError> {
        match number(self.params.get("limit").cloned(), "limit")? {
            None => Ok(default.min(PAGE_ITEMS_MAX)),
            Some(0) => Err(QueryError::Invalid("limit: must be at least 1".into())),
            Some(limit) => Ok(usize::try_from(limit)
                .unwrap_or(PAGE_ITEMS_MAX)
                .min(PAGE_ITEMS_MAX)),
        }
    }

    /// The `cursor` parameter decoded (see [`encode_cursor`]); `None` for the first page.
    pub fn cursor(&self) -> Result<Option<Vec<u8>>, QueryError> {
        self.text("cursor")?
            .map(|text| {
                hex::decode(text).map_err(|_| QueryError::Invalid("cursor: malformed".into()))
            })
            .transpose()
    }
}

/// A non-negative integer parameter, given as a JSON number or a decimal string.
fn number(value: Option<Value>, name: &str) -> Result<Option<u64>, QueryError> {
    match value {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Number(number)) => number
            .as_u64()
            .map(Some)
            .ok_or_else(|| QueryError::Invalid(format!("{name}: not a non-negative integer"))),
        Some(Value::String(text)) => text
            .trim()
            .parse()
            .map(Some)
            .map_err(|_| QueryError::Invalid(format!("{name}: not a non-negative integer"))),
        Some(_) => Err(QueryError::Invalid(format!(
            "{name}: not a non-negative integer"
        ))),
    }
}

/// A cursor as the `next_cursor` text: the hex of the last key a page showed (opaque to
/// clients, exact for the model).
pub fn encode_cursor(key_suffix: &[u8]) -> String {
    hex::encode(key_suffix)
}

/// The answer to an operation the model does not have.
pub fn unknown_op(op: &str) -> QueryError {
    QueryError::Invalid(format!("op: unknown operation {op:?}"))
}

/// The reply envelope: `{"ok": true, "position", "data"}` or
/// `{"ok": false, "error": {"code", "message"}}`.
pub fn encode_reply(result: &Result<(u64, Value), QueryError>) -> Vec<u8> {
    let reply = match result {
        Ok((position, data)) => json!({"ok": true, "position": position, "data": data}),
        Err(error) => json!({
            "ok": false,
            "error": {"code": error.code(), "message": error.to_string()},
        }),
    };
    // A Value always serializes; the fallback keeps the reply well-formed regardless.
    serde_json::to_vec(&reply).unwrap_or_else(|_| {
        br#"{"ok":false,"error":{"code":"unavailable","message":"cannot encode"}}"#.to_vec()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_split_the_envelope_from_the_parameters() {
        let request = QueryRequest::parse(
            br#"{"op":"list","caller":"alice","min_position":"7","view":"inbox","limit":500}"#,
        );
        let request = request.unwrap_or_else(|error| panic!("{error}"));
        assert_eq!(request.op, "list");
        assert_eq!(request.min_position, Some(7));
        assert_eq!(request.text("view"), Ok(Some("inbox")));
        assert_eq!(request.limit(PAGE_ITEMS_DEFAULT), Ok(PAGE_ITEMS_MAX));
        assert!(!request.moderator);
        assert!(QueryRequest::parse(br#"{"caller":"alice"}"#).is_err());
        assert!(QueryRequest::parse(b"[]").is_err());
        let zero = QueryRequest::parse(br#"{"op":"list","limit":0}"#);
        assert!(zero.is_ok_and(|request| request.limit(50).is_err()));
    }
}
