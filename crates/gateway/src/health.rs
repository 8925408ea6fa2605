//! `GET /healthz` (public and operator) and `POST /v1/presence/heartbeat`: the endpoints that
//! only ping a part.
//!
//! On the public address `/healthz` says only whether Parlor is up (security.md H-I4): 200
//! `{"status": "up"}` when the writer answers its ping, 503 `{"status": "down"}` otherwise — no
//! positions, no parts, which would tell anyone how busy the system is.
//!
//! On the operator address `/healthz` asks the writer (`<prefix>.writer.ping` → `{"head": N}`)
//! and every query model (`{"op": "status"}`) at once, each with a short timeout, and reports
//! each part's position: 200 `"ok"` when all answer, 200 `"degraded"` when only projectors are
//! missing (reads of the others still work), 503 `"down"` when the writer is (nothing can be
//! written).

use std::time::Duration;

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use bus::{Bus, Headers};
use domain::UserId;
use serde_json::{json, Map, Value};

use crate::error::{json_response, ApiError};
use crate::extract::Authenticated;
use crate::state::{SharedState, Subjects};

/// How long `/healthz` waits for each part.
pub(crate) const HEALTH_WAIT_MAX: Duration = Duration::from_secs(2);

/// The query models whose projectors `/healthz` asks (docs/queries.md).
pub(crate) const QUERY_MODELS: [protocol::ReadModel; 5] =
    protocol::ReadModel::QUERIED_BY_THE_GATEWAY;

/// Asks one part over `bus`, returning the position it reports, or why it did not answer.
async fn ask_part(bus: &Bus, subject: String, request: &'static str) -> Result<u64, String> {
    let reply = bus
        .request(
            &subject,
            Headers::new().with("Content-Type", protocol::CONTENT_TYPE_JSON),
            request,
            HEALTH_WAIT_MAX,
        )
        .await
        .map_err(|error| error.to_string())?;
    let value: Value = serde_json::from_slice(&reply.payload)
        .map_err(|error| format!("malformed reply: {error}"))?;
    // The writer answers `{"head"}`; projectors `{"position"}`, possibly inside `data`.
    ["head", "position"]
        .iter()
        .find_map(|key| value.get(key).and_then(Value::as_u64))
        .or_else(|| value.pointer("/data/position").and_then(Value::as_u64))
        .ok_or_else(|| "the reply holds no position".to_owned())
}

/// What the parts of a running system answered: the writer's head and each asked model's
/// applied position, or why it did not answer within [`HEALTH_WAIT_MAX`].
#[derive(Debug)]
pub struct PartsReport {
    /// The writer's head (`<prefix>.writer.ping`).
    pub writer: Result<u64, String>,
    /// Each read model's applied position (`{"op": "status"}` on `<prefix>.query.<model>`).
    pub models: Vec<(protocol::ReadModel, Result<u64, String>)>,
}

/// Asks the writer and `models` at once, over any bus: the gateway's operator `/healthz` and
/// `parlor status` both report from this.
pub async fn ask_parts(bus: &Bus, prefix: &str, models: &[protocol::ReadModel]) -> PartsReport {
    let subjects = Subjects::new(prefix);
    let writer = ask_part(bus, subjects.writer_ping(), "{}");
    let answers = futures::future::join_all(
        models
            .iter()
            .map(|model| ask_part(bus, subjects.query(model.name()), r#"{"op":"status"}"#)),
    );
    let (writer, answers) = tokio::join!(writer, answers);
    PartsReport {
        writer,
        models: models.iter().copied().zip(answers).collect(),
    }
}

fn part(answer: &Result<u64, String>) -> Value {
    match answer {
        Ok(position) => json!({"status": "up", "position": position}),
        Err(error) => json!({"status": "down", "error": error}),
    }
}

/// `GET /healthz` on the public address: up or down, nothing more.
pub(crate) async fn liveness(State(state): State<SharedState>) -> Response {
    match ask_part(&state.bus, state.subjects.writer_ping(), "{}").await {
        Ok(_) => json_response(StatusCode::OK, json!({"status": "up"}).to_string()),
        Err(_) => json_response(
            StatusCode::SERVICE_UNAVAILABLE,
            json!({"status": "down"}).to_string(),
        ),
    }
}

/// `GET /healthz` on the operator address: each part's status and position.
pub(crate) async fn healthz(State(state): State<SharedState>) -> Response {
    let report = ask_parts(&state.bus, state.subjects.prefix(), &QUERY_MODELS).await;
    let mut parts = Map::new();
    parts.insert("writer".into(), part(&report.writer));
    for (model, answer) in &report.models {
        parts.insert(model.name().into(), part(answer));
    }
    let (status, text) = if report.writer.is_err() {
        (StatusCode::SERVICE_UNAVAILABLE, "down")
    } else if report.models.iter().all(|(_, answer)| answer.is_ok()) {
        (StatusCode::OK, "ok")
    } else {
        (StatusCode::OK, "degraded")
    };
    let body = json!({"status": text, "parts": parts}).to_string();
    json_response(status, body)
}

/// `POST /v1/presence/heartbeat` (R-A1): 204 once a rooms replica has recorded it.
pub(crate) async fn heartbeat(
    State(state): State<SharedState>,
    Authenticated(caller): Authenticated,
) -> Result<StatusCode, ApiError> {
    let user = UserId::parse(&caller.subject)
        .map_err(|_| ApiError::forbidden("only users have presence"))?;
    let request = json!({"user_id": user.as_str(), "at_ms": state.clock.now().millis()});
    state
        .bus
        .request(
            &state.subjects.presence_heartbeat(),
            Headers::new().with("Content-Type", protocol::CONTENT_TYPE_JSON),
            request.to_string(),
            state.limits.query_timeout,
        )
        .await
        .map_err(|error| ApiError::from_bus(&error, "the rooms projector"))?;
    Ok(StatusCode::NO_CONTENT)
}
