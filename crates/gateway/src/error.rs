//! Error responses: every failure the gateway answers is `{"error": {"code", "message"}}` with an
//! HTTP status (protocol.md §3); on `POST /v1/commands/…` the body also carries `"ok": false`,
//! so that it has the shape of a §1 rejection there.

use std::borrow::Cow;

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use bus::BusError;
use serde::Serialize;

/// The JSON content type of every body the gateway writes.
pub(crate) const JSON: HeaderValue = HeaderValue::from_static("application/json");

/// A failure answered to the client.
#[derive(Debug, Clone)]
pub(crate) struct ApiError {
    status: StatusCode,
    code: Cow<'static, str>,
    message: String,
    /// Whether the body carries `"ok": false` (the §1 reply shape).
    command_shape: bool,
}

#[derive(Serialize)]
struct ErrorBody<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    ok: Option<bool>,
    error: ErrorFields<'a>,
}

#[derive(Serialize)]
struct ErrorFields<'a> {
    code: &'a str,
    message: &'a str,
}

impl ApiError {
    /// An error with any status and code.
    pub(crate) fn new(
        status: StatusCode,
        code: impl Into<Cow<'static, str>>,
        message: impl Into<String>,
    ) -> ApiError {
        ApiError {
            status,
            code: code.into(),
            message: message.into(),
            command_shape: false,
        }
    }

    /// 400 `invalid_command`: a malformed request.
    pub(crate) fn invalid(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::BAD_REQUEST, "invalid_command", message)
    }

    /// 401 `unauthorized`.
    pub(crate) fn unauthorized(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::UNAUTHORIZED, "unauthorized", message)
    }

    /// 403 `forbidden`.
    pub(crate) fn forbidden(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::FORBIDDEN, "forbidden", message)
    }

    /// 404 `not_found`.
    pub(crate) fn not_found(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::NOT_FOUND, "not_found", message)
    }

    /// 413 with `code` (`invalid_command` for commands, `file_too_large` for uploads).
    pub(crate) fn too_large(code: &'static str, message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::PAYLOAD_TOO_LARGE, code, message)
    }

    /// 503 `unavailable`: a part behind the gateway cannot answer now; retrying may work.
    pub(crate) fn unavailable(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "unavailable", message)
    }

    /// 500 `internal`: the gateway itself failed.
    pub(crate) fn internal(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", message)
    }

    /// 502 `unavailable`: a part behind the gateway answered something unreadable.
    pub(crate) fn bad_reply(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::BAD_GATEWAY, "unavailable", message)
    }

    /// The error of a failed bus request to `part` (`the writer`, `the rooms projector`).
    pub(crate) fn from_bus(error: &BusError, part: &str) -> ApiError {
        match error {
            BusError::NoResponders => ApiError::unavailable(format!("{part} is not running")),
            BusError::Timeout => ApiError::unavailable(format!("{part} did not answer in time")),
            BusError::Disconnected | BusError::Closed => {
                ApiError::unavailable(format!("the message bus is down ({error})"))
            }
            BusError::PayloadTooLarge { bytes_max, .. } => ApiError::too_large(
                "invalid_command",
                format!("the request is over the bus's {bytes_max}-byte message limit"),
            ),
            other => ApiError::internal(format!("cannot reach {part}: {other}")),
        }
    }

    /// The same error with `"ok": false` in its body.
    pub(crate) fn in_command_shape(mut self) -> ApiError {
        self.command_shape = true;
        self
    }

    /// The HTTP status.
    pub(crate) fn status(&self) -> StatusCode {
        self.status
    }

    /// The message for people.
    pub(crate) fn message(&self) -> &str {
        &self.message
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = ErrorBody {
            ok: self.command_shape.then_some(false),
            error: ErrorFields {
                code: &self.code,
                message: &self.message,
            },
        };
        // Serializing two strings cannot fail; the fallback keeps the shape regardless.
        let bytes = serde_json::to_vec(&body).unwrap_or_else(|_| {
            br#"{"error":{"code":"internal","message":"cannot encode the error"}}"#.to_vec()
        });
        json_response(self.status, bytes)
    }
}

/// A response with a JSON body.
pub(crate) fn json_response(status: StatusCode, body: impl Into<axum::body::Body>) -> Response {
    let mut response = Response::new(body.into());
    *response.status_mut() = status;
    response.headers_mut().insert(header::CONTENT_TYPE, JSON);
    response
}
