//! Error responses: every failure the gateway answers is `{"error": {"code", "message"}}` with an
//! HTTP status (protocol.md §3); on `POST /v1/commands/…` the body also carries `"ok": false`,
//! so that it has the shape of a §1 rejection there.

use std::borrow::Cow;
use std::time::Duration;

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
    /// Seconds for `Retry-After` (429 `rate_limited`).
    retry_after_seconds: Option<u64>,
    /// Whether the response closes the connection (a request that stopped sending).
    close_connection: bool,
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
            retry_after_seconds: None,
            close_connection: false,
        }
    }

    /// 429 `rate_limited` with `Retry-After` (whole seconds, at least 1), H-L2 and H-L3.
    pub(crate) fn rate_limited(message: impl Into<String>, retry_after: Duration) -> ApiError {
        let mut error = ApiError::new(StatusCode::TOO_MANY_REQUESTS, "rate_limited", message);
        // Rounded up, so a client that waits exactly this long is let through.
        let seconds = retry_after
            .as_secs()
            .saturating_add(u64::from(retry_after.subsec_nanos() > 0))
            .max(1);
        error.retry_after_seconds = Some(seconds);
        error
    }

    /// 429 `quota_exceeded`: the caller's daily upload bytes are used up (H-L3).
    pub(crate) fn quota_exceeded(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::TOO_MANY_REQUESTS, "quota_exceeded", message)
    }

    /// 507 `insufficient_storage`: storing this would eat the event log's disk reserve (H-L3).
    pub(crate) fn insufficient_storage(message: impl Into<String>) -> ApiError {
        ApiError::new(
            StatusCode::INSUFFICIENT_STORAGE,
            "insufficient_storage",
            message,
        )
    }

    /// 408 `request_timeout`: the request body stopped arriving (H-L5); the connection is
    /// closed after the answer.
    pub(crate) fn body_timeout(timeout: Duration) -> ApiError {
        let mut error = ApiError::new(
            StatusCode::REQUEST_TIMEOUT,
            "request_timeout",
            format!(
                "the request body sent nothing for {} s",
                timeout.as_secs_f64()
            ),
        );
        error.close_connection = true;
        error
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
        let mut response = json_response(self.status, bytes);
        if let Some(seconds) = self.retry_after_seconds {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(seconds));
        }
        if self.close_connection {
            response
                .headers_mut()
                .insert(header::CONNECTION, HeaderValue::from_static("close"));
        }
        response
    }
}

/// A response with a JSON body.
pub(crate) fn json_response(status: StatusCode, body: impl Into<axum::body::Body>) -> Response {
    let mut response = Response::new(body.into());
    *response.status_mut() = status;
    response.headers_mut().insert(header::CONTENT_TYPE, JSON);
    response
}
