//! Prometheus metrics: request counts and latencies per route, upload bytes, open SSE streams,
//! served as text on `GET /metrics`.
//!
//! The `metrics` facade has one recorder per process, so the first gateway started installs it
//! and later ones (several in one test process) share it. If something else installed a
//! recorder first, `/metrics` says so instead of showing numbers.

use std::sync::OnceLock;
use std::time::{Duration, Instant};

use axum::extract::{MatchedPath, Request, State};
use axum::http::{header, HeaderValue, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};

use crate::state::SharedState;

/// Requests answered, by `route`, `method` and `status`.
pub const REQUESTS_TOTAL: &str = "parlor_gateway_http_requests_total";
/// Time to the response head, by `route` and `method` (seconds).
pub const REQUEST_DURATION_SECONDS: &str = "parlor_gateway_http_request_duration_seconds";
/// Bytes received in uploads.
pub const UPLOAD_BYTES_TOTAL: &str = "parlor_gateway_upload_bytes_total";
/// SSE streams open now.
pub const SSE_CLIENTS: &str = "parlor_gateway_sse_clients";
/// SSE streams ended, by `reason` (`client_gone`, `slow_client`, `shutdown`, …).
pub const SSE_ENDED_TOTAL: &str = "parlor_gateway_sse_ended_total";

/// Connections closed at once because the connection cap was reached (H-L5).
pub const CONNECTIONS_REFUSED_TOTAL: &str = "parlor_gateway_http_connections_refused_total";
/// Bytes of uploads never attached that were deleted (H-L3).
pub const UNATTACHED_BYTES_DELETED_TOTAL: &str = "parlor_gateway_unattached_bytes_deleted_total";

/// Latency histogram buckets, in seconds.
const DURATION_BUCKETS_SECONDS: [f64; 13] = [
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

/// How often histogram samples are folded into their buckets; without it they pile up between
/// scrapes.
const UPKEEP_INTERVAL: Duration = Duration::from_secs(5);

static HANDLE: OnceLock<Option<PrometheusHandle>> = OnceLock::new();

/// Installs the process's Prometheus recorder (once) and returns its handle; `None` when
/// another recorder was installed first.
pub(crate) fn install() -> Option<PrometheusHandle> {
    HANDLE
        .get_or_init(|| {
            let builder = match PrometheusBuilder::new().set_buckets(&DURATION_BUCKETS_SECONDS) {
                Ok(builder) => builder,
                Err(error) => {
                    tracing::warn!(%error, "cannot set histogram buckets; using summaries");
                    PrometheusBuilder::new()
                }
            };
            let recorder = builder.build_recorder();
            let handle = recorder.handle();
            if let Err(error) = metrics::set_global_recorder(recorder) {
                tracing::warn!(%error, "another metrics recorder is installed; /metrics is empty");
                return None;
            }
            let upkeep = handle.clone();
            // A thread rather than a task: the recorder outlives any one runtime (tests start
            // many), and upkeep is a few microseconds every few seconds.
            let spawned = std::thread::Builder::new()
                .name("metrics-upkeep".into())
                .spawn(move || loop {
                    std::thread::sleep(UPKEEP_INTERVAL);
                    upkeep.run_upkeep();
                });
            if let Err(error) = spawned {
                tracing::warn!(%error, "cannot start the metrics upkeep thread");
            }
            Some(handle)
        })
        .clone()
}

/// The `method` label: standard methods by name, anything else as `other` (bounded labels).
fn method_label(method: &Method) -> &'static str {
    match *method {
        Method::GET => "GET",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::DELETE => "DELETE",
        Method::HEAD => "HEAD",
        Method::OPTIONS => "OPTIONS",
        Method::PATCH => "PATCH",
        _ => "other",
    }
}

/// Middleware: counts and times every request by its route template (`/v1/rooms/{room_id}`,
/// never the raw path, so that labels stay bounded).
pub(crate) async fn track(request: Request, next: Next) -> Response {
    let started = Instant::now();
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| "unmatched".to_owned(), |path| path.as_str().to_owned());
    let method = method_label(request.method());
    let response = next.run(request).await;
    let status = response.status().as_u16().to_string();
    metrics::counter!(REQUESTS_TOTAL, "route" => route.clone(), "method" => method, "status" => status)
        .increment(1);
    metrics::histogram!(REQUEST_DURATION_SECONDS, "route" => route, "method" => method)
        .record(started.elapsed().as_secs_f64());
    response
}

/// Counts uploaded bytes.
pub(crate) fn upload_bytes(bytes: usize) {
    metrics::counter!(UPLOAD_BYTES_TOTAL).increment(u64::try_from(bytes).unwrap_or(u64::MAX));
}

/// Moves the open SSE stream gauge by `delta`.
pub(crate) fn sse_clients(delta: f64) {
    metrics::gauge!(SSE_CLIENTS).increment(delta);
}

/// Counts an ended SSE stream.
pub(crate) fn sse_ended(reason: &'static str) {
    metrics::counter!(SSE_ENDED_TOTAL, "reason" => reason).increment(1);
}

/// Counts a connection closed at the cap.
pub(crate) fn connection_refused() {
    metrics::counter!(CONNECTIONS_REFUSED_TOTAL).increment(1);
}

/// Counts the bytes of collected unattached uploads.
pub(crate) fn unattached_collected(bytes: u64) {
    metrics::counter!(UNATTACHED_BYTES_DELETED_TOTAL).increment(bytes);
}

/// `GET /metrics`.
pub(crate) async fn render(State(state): State<SharedState>) -> Response {
    let text = match &state.metrics {
        Some(handle) => handle.render(),
        None => "# another metrics recorder is installed in this process\n".to_owned(),
    };
    let mut response = (StatusCode::OK, text).into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
    );
    response
}
