//! Parlor's HTTP gateway (protocol.md §3): authenticates frontends with JWTs, answers reads by
//! asking the projectors over the bus, forwards commands to the writer, streams uploads into the
//! blob store and downloads out of it, and pushes each caller's live changes as Server-Sent
//! Events. It never reads sled or the log directly: everything goes over the [`bus::Bus`] it is
//! given, the same one the writer and the projectors use, in process (`parlor up`) or over NATS
//! (`parlor gateway`).
//!
//! ```no_run
//! # async fn example(bus: bus::Bus) -> Result<(), gateway::GatewayError> {
//! use gateway::{Gateway, GatewayConfig};
//!
//! let data_dir = std::path::PathBuf::from("./parlor-data");
//! let secret = gateway::auth::load_or_create_secret(&data_dir)?;
//! let config = GatewayConfig::new("127.0.0.1:8787".parse().unwrap(), secret, data_dir);
//! let gateway = Gateway::bind(config, bus, clock::Clock::system()).await?;
//! println!("listening on {}", gateway.local_addr());
//! gateway.run(async { let _ = tokio::signal::ctrl_c().await; }).await
//! # }
//! ```
//!
//! The endpoints, their parameters and errors are described in docs/api.md.

pub mod auth;
mod commands;
mod error;
mod events;
mod extract;
mod files;
mod health;
pub mod jwks;
mod metrics;
mod queries;
mod state;
mod thumbnail;

use std::fmt;
use std::future::{Future, IntoFuture};
use std::io;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::Router;
use blobs::{BlobStore, LocalBlobStore};
use bus::{Bus, BusError};
use clock::Clock;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio_util::sync::{CancellationToken, DropGuard};

pub use auth::{AuthError, Caller, Role};

use crate::error::ApiError;
use crate::state::{AppState, Limits, SharedState, Subjects};
use bus::EventHub;

/// The address served when none is configured (protocol.md, `--http-addr`).
pub const HTTP_ADDR_DEFAULT: &str = "127.0.0.1:8787";

/// The first token of every subject when none is configured (`--subject-prefix`).
pub const SUBJECT_PREFIX_DEFAULT: &str = "parlor";

/// The directory of file bytes inside the data directory.
pub const BLOBS_DIR_NAME: &str = "blobs";

/// How long a read waits for its projector: a bit over the projectors' own 5 s wait for
/// `min_position`, so that their `projection_lagging` answer arrives rather than a timeout.
pub const QUERY_TIMEOUT_DEFAULT: Duration = Duration::from_secs(6);

/// How long a command waits for the writer's reply (it replies after its fsync).
pub const COMMAND_TIMEOUT_DEFAULT: Duration = Duration::from_secs(10);

/// The most SSE streams open at once; more are refused with 503.
pub const SSE_CLIENTS_MAX_DEFAULT: usize = 1024;

/// How long a stream may wait for a slow client to take an event before it is disconnected.
pub const SSE_SEND_WAIT_MAX_DEFAULT: Duration = Duration::from_secs(10);

/// Image decodes (for thumbnails) running at once.
pub const THUMBNAILS_CONCURRENT_MAX_DEFAULT: usize = 2;

/// How long a shutdown waits for open requests (downloads, say) before closing them.
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(10);

/// How the gateway runs.
#[derive(Clone)]
pub struct GatewayConfig {
    /// Where to listen (`--http-addr`); port 0 picks a free port (see [`Gateway::local_addr`]).
    pub http_addr: SocketAddr,
    /// The operator address (`--ops-addr`): `/healthz` with each part's status and position,
    /// and `/metrics` (security.md H-I4). `None` serves neither; port 0 picks a free port
    /// (see [`Gateway::ops_addr`]).
    pub ops_addr: Option<SocketAddr>,
    /// The HS256 secret of the tokens (`--jwt-secret`, `--jwt-secret-file`, or
    /// [`auth::load_or_create_secret`]); empty when tokens are checked with public keys only.
    pub jwt_secret: String,
    /// The previous HS256 secret, still accepted during a rotation (`--jwt-previous-secret-file`).
    pub jwt_previous_secret: Option<String>,
    /// Ed25519 public keys from a JWKS file (`--jwt-jwks`, [`jwks::read_jwks`]).
    pub jwt_public_keys: Vec<jwks::PublicKey>,
    /// `exp` at most this far ahead, and `iss`/`aud` when set (security.md H-I3).
    pub jwt_policy: auth::TokenPolicy,
    /// The first token of every subject (`--subject-prefix`).
    pub subject_prefix: String,
    /// The data directory; file bytes live in `<data_dir>/blobs`.
    pub data_dir: PathBuf,
    /// The largest upload, in bytes (1 GiB, R-F1; smaller in tests).
    pub upload_bytes_max: u64,
    /// How long a read waits for its projector.
    pub query_timeout: Duration,
    /// How long a command waits for the writer.
    pub command_timeout: Duration,
    /// The most SSE streams open at once.
    pub sse_clients_max: usize,
    /// How long a stream waits for a slow client before disconnecting it.
    pub sse_send_wait_max: Duration,
    /// Image decodes running at once.
    pub thumbnails_concurrent_max: usize,
    /// The live events of the process, when it shares one hub between its parts (`parlor up`:
    /// each event is received and decoded once); the gateway starts its own when `None`.
    pub events: Option<EventHub>,
}

impl GatewayConfig {
    /// A configuration with the defaults for everything but the address, secret and data dir.
    pub fn new(http_addr: SocketAddr, jwt_secret: impl Into<String>, data_dir: PathBuf) -> Self {
        GatewayConfig {
            http_addr,
            ops_addr: None,
            jwt_secret: jwt_secret.into(),
            jwt_previous_secret: None,
            jwt_public_keys: Vec::new(),
            jwt_policy: auth::TokenPolicy::default(),
            subject_prefix: SUBJECT_PREFIX_DEFAULT.to_owned(),
            data_dir,
            upload_bytes_max: domain::limits::FILE_BYTES_MAX,
            query_timeout: QUERY_TIMEOUT_DEFAULT,
            command_timeout: COMMAND_TIMEOUT_DEFAULT,
            sse_clients_max: SSE_CLIENTS_MAX_DEFAULT,
            sse_send_wait_max: SSE_SEND_WAIT_MAX_DEFAULT,
            thumbnails_concurrent_max: THUMBNAILS_CONCURRENT_MAX_DEFAULT,
            events: None,
        }
    }
}

impl fmt::Debug for GatewayConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("GatewayConfig")
            .field("http_addr", &self.http_addr)
            .field("ops_addr", &self.ops_addr)
            .field("jwt_secret", &"<redacted>")
            .field(
                "jwt_previous_secret",
                &self.jwt_previous_secret.as_ref().map(|_| "<redacted>"),
            )
            .field("jwt_public_keys", &self.jwt_public_keys)
            .field("jwt_policy", &self.jwt_policy)
            .field("subject_prefix", &self.subject_prefix)
            .field("data_dir", &self.data_dir)
            .field("upload_bytes_max", &self.upload_bytes_max)
            .field("query_timeout", &self.query_timeout)
            .field("command_timeout", &self.command_timeout)
            .field("sse_clients_max", &self.sse_clients_max)
            .field("sse_send_wait_max", &self.sse_send_wait_max)
            .field("thumbnails_concurrent_max", &self.thumbnails_concurrent_max)
            .field("events", &self.events.is_some())
            .finish()
    }
}

/// Why the gateway could not start or stopped.
#[derive(Debug, thiserror::Error)]
pub enum GatewayError {
    /// A configuration value is unusable.
    #[error("invalid gateway configuration: {0}")]
    Config(String),
    /// The JWT secret is unusable.
    #[error(transparent)]
    Auth(#[from] AuthError),
    /// The blob directory could not be opened.
    #[error("cannot open the blob store at {path}: {source}")]
    BlobStore {
        /// The directory.
        path: PathBuf,
        /// What went wrong.
        source: io::Error,
    },
    /// The address could not be bound.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// What went wrong.
        source: io::Error,
    },
    /// The event subscription could not be made.
    #[error("cannot subscribe to the event log: {0}")]
    Bus(#[from] BusError),
    /// The HTTP server failed while running.
    #[error("the HTTP server failed: {0}")]
    Serve(io::Error),
}

/// A bound gateway, ready to [`Gateway::run`].
pub struct Gateway {
    listener: TcpListener,
    local_addr: SocketAddr,
    router: Router,
    /// The operator address's listener and its own router, when configured.
    ops: Option<(TcpListener, SocketAddr, Router)>,
    shutdown: CancellationToken,
    /// Stops the event hub if the gateway is dropped without running.
    _stop_on_drop: DropGuard,
}

impl fmt::Debug for Gateway {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Gateway")
            .field("local_addr", &self.local_addr)
            .field("ops_addr", &self.ops_addr())
            .finish_non_exhaustive()
    }
}

impl Gateway {
    /// Binds the HTTP address and subscribes to the event log, with file bytes in
    /// `<data_dir>/blobs`. Requests are served once [`Gateway::run`] is called.
    pub async fn bind(
        config: GatewayConfig,
        bus: Bus,
        clock: Clock,
    ) -> Result<Gateway, GatewayError> {
        let path = config.data_dir.join(BLOBS_DIR_NAME);
        let opened = {
            let path = path.clone();
            tokio::task::spawn_blocking(move || LocalBlobStore::new(path))
                .await
                .map_err(io::Error::other)
                .and_then(|opened| opened)
        };
        let store = opened.map_err(|source| GatewayError::BlobStore { path, source })?;
        Gateway::bind_with_blob_store(config, bus, clock, Arc::new(store)).await
    }

    /// Like [`Gateway::bind`], with file bytes in `blobs` (a shared store, say).
    pub async fn bind_with_blob_store(
        config: GatewayConfig,
        bus: Bus,
        clock: Clock,
        blobs: Arc<dyn BlobStore>,
    ) -> Result<Gateway, GatewayError> {
        check_config(&config)?;
        let verifier =
            auth::TokenVerifier::with_keys(&token_keys(&config), config.jwt_policy.clone())?;
        let subjects = Subjects::new(&config.subject_prefix);
        let listener = TcpListener::bind(config.http_addr)
            .await
            .map_err(|source| GatewayError::Bind {
                addr: config.http_addr,
                source,
            })?;
        let local_addr = listener.local_addr().map_err(|source| GatewayError::Bind {
            addr: config.http_addr,
            source,
        })?;
        let ops = match config.ops_addr {
            Some(addr) => {
                let listener = TcpListener::bind(addr)
                    .await
                    .map_err(|source| GatewayError::Bind { addr, source })?;
                let bound = listener
                    .local_addr()
                    .map_err(|source| GatewayError::Bind { addr, source })?;
                Some((listener, bound))
            }
            None => None,
        };
        let shutdown = CancellationToken::new();
        let events = match &config.events {
            Some(hub) => hub.clone(),
            None => events::start_hub(&bus, &subjects).await?,
        };
        let state: SharedState = Arc::new(AppState {
            bus,
            clock,
            subjects,
            verifier,
            blobs,
            events,
            limits: Limits {
                upload_bytes_max: config.upload_bytes_max,
                query_timeout: config.query_timeout,
                command_timeout: config.command_timeout,
                sse_send_wait_max: config.sse_send_wait_max,
            },
            sse_permits: Arc::new(Semaphore::new(config.sse_clients_max)),
            thumbnail_permits: Arc::new(Semaphore::new(config.thumbnails_concurrent_max.max(1))),
            shutdown: shutdown.clone(),
            metrics: metrics::install(),
        });
        tracing::info!(%local_addr, prefix = %config.subject_prefix, "gateway bound");
        let ops = ops.map(|(listener, addr)| {
            tracing::info!(%addr, "operator address bound (/healthz with parts, /metrics)");
            (listener, addr, ops_router(state.clone()))
        });
        Ok(Gateway {
            listener,
            local_addr,
            router: router(state),
            ops,
            _stop_on_drop: shutdown.clone().drop_guard(),
            shutdown,
        })
    }

    /// The address actually bound (the port chosen when the configuration said 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// The operator address actually bound, when one was configured.
    pub fn ops_addr(&self) -> Option<SocketAddr> {
        self.ops.as_ref().map(|(_, addr, _)| *addr)
    }

    /// Serves until `shutdown` resolves, then ends the event streams, lets open requests
    /// finish for up to [`SHUTDOWN_GRACE`], and returns.
    pub async fn run(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> Result<(), GatewayError> {
        let Gateway {
            listener,
            local_addr,
            router,
            ops,
            shutdown: token,
            _stop_on_drop,
        } = self;
        // The operator address stops with the public one; its requests are short.
        let ops_server = ops.map(|(listener, _, router)| {
            let stopped = token.clone().cancelled_owned();
            tokio::spawn(
                axum::serve(listener, router)
                    .with_graceful_shutdown(stopped)
                    .into_future(),
            )
        });
        let signal = {
            let token = token.clone();
            async move {
                shutdown.await;
                // Event streams never end by themselves: end them so connections can close.
                token.cancel();
            }
        };
        let server = axum::serve(listener, router)
            .with_graceful_shutdown(signal)
            .into_future();
        let grace = async {
            token.cancelled().await;
            tokio::time::sleep(SHUTDOWN_GRACE).await;
        };
        tokio::select! {
            served = server => served.map_err(GatewayError::Serve)?,
            () = grace => tracing::warn!("requests still open after the shutdown grace; closing them"),
        }
        if let Some(ops_server) = ops_server {
            token.cancel();
            match tokio::time::timeout(SHUTDOWN_GRACE, ops_server).await {
                Ok(Ok(served)) => served.map_err(GatewayError::Serve)?,
                Ok(Err(join_error)) => {
                    tracing::warn!(%join_error, "the operator address's task failed")
                }
                Err(_) => tracing::warn!("operator requests still open after the shutdown grace"),
            }
        }
        tracing::info!(%local_addr, "gateway stopped");
        Ok(())
    }

    /// Binds and serves until `shutdown` resolves ([`Gateway::bind`] then [`Gateway::run`]).
    pub async fn serve(
        config: GatewayConfig,
        bus: Bus,
        clock: Clock,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> Result<(), GatewayError> {
        Gateway::bind(config, bus, clock).await?.run(shutdown).await
    }
}

/// The keys of the configuration: the secrets that are set (current first), the public keys.
fn token_keys(config: &GatewayConfig) -> auth::TokenKeys {
    let secrets = [
        Some(&config.jwt_secret),
        config.jwt_previous_secret.as_ref(),
    ]
    .into_iter()
    .flatten()
    .filter(|secret| !secret.is_empty())
    .cloned()
    .collect();
    auth::TokenKeys {
        secrets,
        public_keys: config.jwt_public_keys.clone(),
    }
}

/// Refuses configurations that cannot work.
fn check_config(config: &GatewayConfig) -> Result<(), GatewayError> {
    // Every subject is `<prefix>.<more>`: check the prefix as a publishable subject.
    bus::subject::validate_publish_subject(&config.subject_prefix)
        .map_err(|error| GatewayError::Config(format!("subject_prefix: {error}")))?;
    if config.sse_clients_max == 0 {
        return Err(GatewayError::Config(
            "sse_clients_max: must be at least 1".into(),
        ));
    }
    Ok(())
}

/// The operator address's endpoints (security.md H-I4): each part's status and position, and
/// the Prometheus metrics. Nothing here needs a token: the address is for operators' networks.
fn ops_router(state: SharedState) -> Router {
    Router::new()
        .route("/healthz", get(health::healthz))
        .route("/metrics", get(metrics::render))
        .fallback(no_such_endpoint)
        .method_not_allowed_fallback(method_not_allowed)
        .with_state(state)
}

/// Every endpoint of protocol.md §3. `/healthz` here says only whether Parlor is up; the parts
/// and `/metrics` are on the operator address (security.md H-I4).
fn router(state: SharedState) -> Router {
    Router::new()
        .route("/healthz", get(health::liveness))
        .route("/v1/rooms", get(queries::list_rooms))
        .route("/v1/rooms/{room_id}", get(queries::get_room))
        .route("/v1/rooms/{room_id}/messages", get(queries::messages))
        .route("/v1/rooms/{room_id}/files", get(queries::room_files))
        .route("/v1/search", get(queries::search))
        .route("/v1/moderation/reports", get(queries::reports))
        .route("/v1/commands/{command_type}", post(commands::post_command))
        .route("/v1/files", post(files::upload))
        .route("/v1/files/{file_id}", get(files::download))
        .route("/v1/files/{file_id}/preview", get(files::preview))
        .route("/v1/events", get(events::events))
        .route("/v1/presence/heartbeat", post(health::heartbeat))
        .fallback(no_such_endpoint)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(axum::middleware::from_fn(metrics::track))
        .with_state(state)
}

async fn no_such_endpoint() -> ApiError {
    ApiError::not_found("no such endpoint (see docs/api.md)")
}

async fn method_not_allowed() -> ApiError {
    ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
        "this endpoint does not take this method",
    )
}
