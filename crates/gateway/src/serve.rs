//! The HTTP/1 accept loop (security.md H-L5): request headers must arrive within
//! [`HttpLimits::header_read_timeout`], a request body must make progress every
//! [`HttpLimits::body_progress_timeout`], and at most [`HttpLimits::connections_max`]
//! connections are open at once; a connection past the cap is closed as soon as it is accepted.
//! So slow or idle clients cost a bounded number of sockets for a bounded time, and never stop
//! the gateway from serving others.
//!
//! This replaces `axum::serve`, which has no header timeout and no connection cap: hyper's
//! HTTP/1 connection builder enforces the header timeout (it needs a timer: `TokioTimer`),
//! tower-http's `RequestBodyTimeoutLayer` (added to the router) the body progress, and a
//! semaphore here the cap. Shutdown is graceful: connections finish their request in flight
//! (hyper-util's `GracefulShutdown`) for up to the caller's grace period.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::extract::Request;
use axum::Router;
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tower::ServiceExt as _;

/// How long a client has to send a request's headers (H-L5).
pub const HEADER_READ_TIMEOUT_DEFAULT: Duration = Duration::from_secs(10);

/// The longest a request body may go without sending bytes (H-L5).
pub const BODY_PROGRESS_TIMEOUT_DEFAULT: Duration = Duration::from_secs(30);

/// The most connections open at once (`--http-connections-max`). SSE streams count too.
pub const CONNECTIONS_MAX_DEFAULT: usize = 1024;

/// How long the loop waits after a failed `accept` (out of file descriptors, say) before the
/// next, so that a persistent failure does not spin.
const ACCEPT_FAILURE_PAUSE: Duration = Duration::from_millis(50);

/// The connection limits of the HTTP server.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HttpLimits {
    /// How long a client has to send a request's headers, from the connection's start or the
    /// end of its previous request.
    pub header_read_timeout: Duration,
    /// The longest a request body may go without sending bytes.
    pub body_progress_timeout: Duration,
    /// The most connections open at once.
    pub connections_max: usize,
}

impl Default for HttpLimits {
    fn default() -> HttpLimits {
        HttpLimits {
            header_read_timeout: HEADER_READ_TIMEOUT_DEFAULT,
            body_progress_timeout: BODY_PROGRESS_TIMEOUT_DEFAULT,
            connections_max: CONNECTIONS_MAX_DEFAULT,
        }
    }
}

/// Serves `router` on `listener` until `shutdown` resolves, then waits for open connections to
/// finish for at most `grace`. Returns whether every connection finished in time.
pub(crate) async fn serve(
    listener: TcpListener,
    router: Router,
    limits: HttpLimits,
    shutdown: impl Future<Output = ()>,
    grace: Duration,
) -> bool {
    let permits = Arc::new(Semaphore::new(limits.connections_max));
    let graceful = GracefulShutdown::new();
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_read_timeout);
    tokio::pin!(shutdown);
    loop {
        let (stream, remote) = tokio::select! {
            () = &mut shutdown => break,
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(error) => {
                    tracing::warn!(%error, "cannot accept a connection");
                    tokio::time::sleep(ACCEPT_FAILURE_PAUSE).await;
                    continue;
                }
            },
        };
        let Ok(permit) = Arc::clone(&permits).try_acquire_owned() else {
            // Over the cap: closing at once tells the client, where leaving it in the backlog
            // would let it wait for nothing.
            tracing::debug!(%remote, "connection refused: too many open connections");
            crate::metrics::connection_refused();
            drop(stream);
            continue;
        };
        let _ = stream.set_nodelay(true);
        let router = router.clone();
        let service = TowerToHyperService::new(
            router.map_request(|request: Request<Incoming>| request.map(Body::new)),
        );
        let connection = builder.serve_connection(TokioIo::new(stream), service);
        let watched = graceful.watch(connection);
        tokio::spawn(async move {
            if let Err(error) = watched.await {
                tracing::debug!(%remote, %error, "connection ended with an error");
            }
            drop(permit);
        });
    }
    drop(listener);
    tokio::select! {
        () = graceful.shutdown() => true,
        () = tokio::time::sleep(grace) => false,
    }
}

/// Whether `error`, or an error it was caused by, is a request body's progress timeout.
pub(crate) fn is_body_timeout(error: &(dyn std::error::Error + 'static)) -> bool {
    let mut current = Some(error);
    while let Some(error) = current {
        if error.is::<tower_http::timeout::TimeoutError>() {
            return true;
        }
        current = error.source();
    }
    false
}
