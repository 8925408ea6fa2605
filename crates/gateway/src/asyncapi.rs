//! `GET /asyncapi.json`: the AsyncAPI 3 document of the NATS contract (`protocol::asyncapi`,
//! the JSON form of docs/asyncapi.yaml), served beside `/openapi.json` so an integrator finds
//! both contracts at the gateway. Public, like the OpenAPI document: it holds nothing secret.

use std::sync::OnceLock;

use axum::http::StatusCode;
use axum::response::{IntoResponse as _, Response};

use crate::error::{json_response, ApiError};

/// The document's bytes, built on the first request (the same every time: it comes from code).
static DOCUMENT: OnceLock<Result<Vec<u8>, String>> = OnceLock::new();

/// `GET /asyncapi.json`.
pub(crate) async fn serve() -> Response {
    let document = DOCUMENT.get_or_init(|| {
        let document = protocol::asyncapi::document()?;
        serde_json::to_vec(&document).map_err(|error| error.to_string())
    });
    match document {
        Ok(bytes) => json_response(StatusCode::OK, bytes.clone()),
        Err(why) => {
            tracing::error!(%why, "the AsyncAPI document cannot be built");
            ApiError::internal("the AsyncAPI document cannot be built").into_response()
        }
    }
}
