//! `POST /v1/commands/{type}` (protocol.md §3): wraps the body in the §1 envelope and sends it to
//! the writer on `<prefix>.cmd.<type>`; the writer's reply is the response body, byte for byte,
//! with the status of its error code ([`protocol::http_status`]).
//!
//! The gateway decides only what it must: who the actor is (the token's `sub`, never the body),
//! that service commands come from service tokens, and that the request is well-formed. Every
//! rule is the writer's. Errors the gateway answers itself also have the §1 shape
//! (`{"ok": false, "error": {…}}`), so a client reads one shape on this endpoint.

use axum::body::Body;
use axum::extract::State;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use bus::Headers;
use domain::command::COMMAND_TYPES;
use domain::{CommandId, ErrorCode};
use futures::StreamExt;
use protocol::{Format, Reply};
use serde::Serialize;
use serde_json::value::RawValue;

use crate::auth::Caller;
use crate::error::{json_response, ApiError};
use crate::extract::{Authenticated, PathText};
use crate::state::{AppState, SharedState};

/// The largest command body, in bytes (protocol.md §1: a payload over 1 MiB is
/// `invalid_command`). The envelope adds a few hundred bytes; the bus refuses what then passes
/// its own 1 MiB message limit, with the same answer.
pub(crate) const COMMAND_BODY_BYTES_MAX: usize = protocol::PAYLOAD_BYTES_MAX;

/// The service commands, marked (S) in protocol.md §1: only `service:<name>` actors may send
/// them. The writer enforces this too; checking here answers 403 without a round trip.
pub(crate) const SERVICE_COMMAND_TYPES: [&str; 5] = [
    "user.register",
    "room.open_interview",
    "contract.start",
    "contract.end",
    "file.register",
];

/// The clients of `X-Client` (protocol.md §1).
const CLIENTS: [&str; 3] = ["desktop", "mobile_web", "mobile_app"];

/// The header carrying the command id used, so that a client that sent no `Idempotency-Key`
/// can still retry with the same id.
pub(crate) const COMMAND_ID_HEADER: &str = "parlor-command-id";

/// The §1 envelope, with `data` spliced in unparsed.
#[derive(Serialize)]
pub(crate) struct Envelope<'a> {
    pub(crate) command_id: String,
    pub(crate) actor: &'a str,
    pub(crate) client: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) correlation_id: Option<&'a str>,
    pub(crate) data: &'a RawValue,
}

/// The writer's answer: the reply's bytes and the status they map to.
#[derive(Debug)]
pub(crate) struct WriterAnswer {
    /// The decoded reply.
    pub(crate) reply: Reply,
    /// The reply exactly as the writer sent it (JSON).
    pub(crate) payload: bytes::Bytes,
}

/// Sends an envelope to the writer and decodes its reply.
pub(crate) async fn send_command(
    state: &AppState,
    command_type: &str,
    envelope: &Envelope<'_>,
) -> Result<WriterAnswer, ApiError> {
    let payload = serde_json::to_vec(envelope)
        .map_err(|error| ApiError::internal(format!("cannot encode the command: {error}")))?;
    let message = state
        .bus
        .request(
            &state.subjects.command(command_type),
            Headers::new().with("Content-Type", protocol::CONTENT_TYPE_JSON),
            payload,
            state.limits.command_timeout,
        )
        .await
        .map_err(|error| {
            let error = ApiError::from_bus(&error, "the writer");
            if error.status() == StatusCode::SERVICE_UNAVAILABLE {
                // The command may or may not have been committed: the same id tells.
                ApiError::unavailable(format!(
                    "{}; retry with the same Idempotency-Key",
                    error.message()
                ))
            } else {
                error
            }
        })?;
    let reply = protocol::decode_reply(&message.payload, Format::Json).map_err(|error| {
        ApiError::bad_reply(format!("the writer sent a malformed reply: {error}"))
    })?;
    Ok(WriterAnswer {
        reply,
        payload: message.payload,
    })
}

/// The HTTP status of a reply.
pub(crate) fn reply_status(reply: &Reply) -> StatusCode {
    match reply.code() {
        None => StatusCode::OK,
        Some(code) => StatusCode::from_u16(protocol::http_status(code))
            .unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
    }
}

/// `POST /v1/commands/{type}`.
pub(crate) async fn post_command(
    State(state): State<SharedState>,
    Authenticated(caller): Authenticated,
    PathText(command_type): PathText,
    headers: HeaderMap,
    body: Body,
) -> Response {
    match command(&state, &caller, &command_type, &headers, body).await {
        Ok(response) => response,
        Err(error) => error.in_command_shape().into_response(),
    }
}

async fn command(
    state: &AppState,
    caller: &Caller,
    command_type: &str,
    headers: &HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    // H-L2: user tokens only; services are trusted parts (and over NATS nothing is limited).
    if !caller.is_service() {
        if let Err(retry_after) = state.command_rate.check(&caller.subject) {
            return Err(ApiError::rate_limited(
                "too many commands; retry after the time in Retry-After",
                retry_after,
            ));
        }
    }
    if !COMMAND_TYPES.contains(&command_type) {
        return Err(ApiError::invalid(format!(
            "unknown command type '{}'",
            command_type.chars().take(64).collect::<String>()
        )));
    }
    if SERVICE_COMMAND_TYPES.contains(&command_type) && !caller.is_service() {
        return Err(ApiError::forbidden(format!(
            "{command_type} is a service command: it needs a token with role 'service'"
        )));
    }
    let command_id = match header_text(headers, "idempotency-key")? {
        None => CommandId(uuid::Uuid::new_v4()),
        Some(text) => CommandId::parse(text)
            .map_err(|_| ApiError::invalid("Idempotency-Key: must be a UUID"))?,
    };
    let client = match header_text(headers, "x-client")? {
        None => "desktop",
        Some(text) => CLIENTS
            .iter()
            .find(|client| **client == text)
            .copied()
            .ok_or_else(|| {
                ApiError::invalid(format!("X-Client: must be one of {}", CLIENTS.join(", ")))
            })?,
    };
    let correlation_id = header_text(headers, "x-correlation-id")?;
    if correlation_id.is_some_and(|text| text.chars().count() > protocol::CORRELATION_ID_CHARS_MAX)
    {
        return Err(ApiError::invalid(format!(
            "X-Correlation-Id: at most {} characters",
            protocol::CORRELATION_ID_CHARS_MAX
        )));
    }
    let body = read_body(state, headers, body).await?;
    let data = parse_data(&body)?;
    let envelope = Envelope {
        command_id: command_id.to_string(),
        actor: &caller.subject,
        client,
        correlation_id,
        data: &data,
    };
    let answer = send_command(state, command_type, &envelope).await?;
    let mut response = json_response(reply_status(&answer.reply), answer.payload);
    if let Ok(value) = HeaderValue::from_str(&envelope.command_id) {
        response.headers_mut().insert(COMMAND_ID_HEADER, value);
    }
    if answer.reply.code() == Some(ErrorCode::Unavailable) {
        tracing::warn!(command_type, "the writer answered unavailable");
    }
    Ok(response)
}

/// A header's value as text; `None` when absent or empty.
pub(crate) fn header_text<'a>(
    headers: &'a HeaderMap,
    name: &str,
) -> Result<Option<&'a str>, ApiError> {
    match headers.get(name) {
        None => Ok(None),
        Some(value) => {
            let text = value
                .to_str()
                .map_err(|_| ApiError::invalid(format!("{name}: must be visible ASCII")))?
                .trim();
            Ok((!text.is_empty()).then_some(text))
        }
    }
}

/// Reads the body up to [`COMMAND_BODY_BYTES_MAX`]; a declared or actual larger one is 413.
async fn read_body(
    state: &AppState,
    headers: &HeaderMap,
    body: Body,
) -> Result<bytes::Bytes, ApiError> {
    let too_large = || {
        ApiError::too_large(
            "invalid_command",
            format!("the body is over the {COMMAND_BODY_BYTES_MAX}-byte limit"),
        )
    };
    let declared = header_text(headers, header::CONTENT_LENGTH.as_str())?
        .and_then(|text| text.parse::<u64>().ok());
    if declared.is_some_and(|length| length > COMMAND_BODY_BYTES_MAX as u64) {
        return Err(too_large());
    }
    // Read chunk by chunk so that the limit holds for chunked bodies too.
    let mut stream = body.into_data_stream();
    let mut buffer = bytes::BytesMut::new();
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(|error| body_error(state, &error))?;
        if buffer.len().saturating_add(chunk.len()) > COMMAND_BODY_BYTES_MAX {
            return Err(too_large());
        }
        buffer.extend_from_slice(&chunk);
    }
    Ok(buffer.freeze())
}

/// The answer to a request body that failed while being read: 408 when it stopped sending
/// (H-L5), else 400.
pub(crate) fn body_error(state: &AppState, error: &(dyn std::error::Error + 'static)) -> ApiError {
    if crate::serve::is_body_timeout(error) {
        ApiError::body_timeout(state.limits.body_progress_timeout)
    } else {
        ApiError::invalid(format!("cannot read the body: {error}"))
    }
}

/// The body as the command's `data`: a JSON object, `{}` when empty.
fn parse_data(body: &[u8]) -> Result<Box<RawValue>, ApiError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return RawValue::from_string("{}".to_owned())
            .map_err(|error| ApiError::internal(error.to_string()));
    }
    let data: Box<RawValue> = serde_json::from_slice(body)
        .map_err(|error| ApiError::invalid(format!("the body is not valid JSON: {error}")))?;
    if !data.get().trim_start().starts_with('{') {
        return Err(ApiError::invalid(
            "the body must be a JSON object (the command's data)",
        ));
    }
    Ok(data)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn data_must_be_an_object() {
        assert_eq!(
            parse_data(b"").map(|raw| raw.get().to_owned()).ok(),
            Some("{}".into())
        );
        assert_eq!(
            parse_data(b" {\"a\": 1} ")
                .map(|raw| raw.get().trim().to_owned())
                .ok(),
            Some("{\"a\": 1}".into())
        );
        for bad in [&b"[1]"[..], b"12", b"\"x\"", b"{", b"{} {}", b"null"] {
            assert!(
                parse_data(bad).is_err(),
                "{:?}",
                String::from_utf8_lossy(bad)
            );
        }
    }

    #[test]
    fn service_commands_are_command_types() {
        for command_type in SERVICE_COMMAND_TYPES {
            assert!(COMMAND_TYPES.contains(&command_type), "{command_type}");
        }
    }
}
