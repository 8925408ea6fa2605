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

mod asyncapi;
pub mod auth;
mod commands;
mod error;
mod events;
mod extract;
mod files;
pub mod health;
pub mod jwks;
pub mod limits;
mod metrics;
pub mod openapi;
mod queries;
mod routes;
pub mod serve;
mod state;
mod thumbnail;
pub mod unattached;
mod web;

use std::fmt;
use std::future::{Future, IntoFuture as _};
use std::io;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use axum::http::StatusCode;
use axum::routing::get;
use axum::Router;
use blobs::{BlobStore, LocalBlobStore};
use bus::{Bus, BusError};
use clock::Clock;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio_util::sync::{CancellationToken, DropGuard};

pub use auth::{AuthError, Caller, Role};
pub use limits::CommandRate;
pub use serve::HttpLimits;

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

/// The most SSE streams open at once; more are refused with 503 (`--sse-streams-max`).
pub const SSE_CLIENTS_MAX_DEFAULT: usize = 1024;

/// The most SSE streams one user may have open at once; more are refused with 429
/// `rate_limited` (security.md H-L4; `--sse-streams-per-user-max`).
pub const SSE_STREAMS_PER_USER_MAX_DEFAULT: usize = 8;

/// How often an idle SSE stream sends a comment line (security.md H-L4).
pub const SSE_KEEP_ALIVE_INTERVAL_DEFAULT: Duration = events::KEEP_ALIVE_INTERVAL;

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
    /// The most SSE streams of one user open at once.
    pub sse_streams_per_user_max: usize,
    /// How often an idle SSE stream sends a comment line (shorter in tests).
    pub sse_keep_alive_interval: Duration,
    /// How long a stream waits for a slow client before disconnecting it.
    pub sse_send_wait_max: Duration,
    /// Image decodes running at once.
    pub thumbnails_concurrent_max: usize,
    /// The live events of the process, when it shares one hub between its parts (`parlor up`:
    /// each event is received and decoded once); the gateway starts its own when `None`.
    pub events: Option<EventHub>,
    /// Commands per user token (H-L2: `--user-command-rate`, `--user-command-burst`).
    pub user_command_rate: CommandRate,
    /// Uploads one user may run at once (H-L3).
    pub user_uploads_concurrent_max: usize,
    /// Bytes one user may upload per UTC day (H-L3: `--upload-quota-bytes-per-day`).
    pub upload_quota_bytes_per_day: u64,
    /// Free bytes kept on the disks of the event log and the file bytes (H-L3:
    /// `--disk-reserve-bytes`).
    pub disk_reserve_bytes: u64,
    /// The event log's directory when it is on this machine (`parlor up`): its disk's free
    /// space is checked before an upload, as well as the blob directory's.
    pub event_log_dir: Option<PathBuf>,
    /// How long an upload may stay unattached before its bytes are deleted (H-L3).
    pub unattached_upload_grace: Duration,
    /// How often uploads past that grace are looked for.
    pub unattached_collect_interval: Duration,
    /// Header and body timeouts and the connection cap (H-L5).
    pub http: HttpLimits,
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
            sse_streams_per_user_max: SSE_STREAMS_PER_USER_MAX_DEFAULT,
            sse_keep_alive_interval: SSE_KEEP_ALIVE_INTERVAL_DEFAULT,
            sse_send_wait_max: SSE_SEND_WAIT_MAX_DEFAULT,
            thumbnails_concurrent_max: THUMBNAILS_CONCURRENT_MAX_DEFAULT,
            events: None,
            user_command_rate: CommandRate::default(),
            user_uploads_concurrent_max: limits::USER_UPLOADS_CONCURRENT_MAX_DEFAULT,
            upload_quota_bytes_per_day: limits::UPLOAD_QUOTA_BYTES_PER_DAY_DEFAULT,
            disk_reserve_bytes: limits::DISK_RESERVE_BYTES_DEFAULT,
            event_log_dir: None,
            unattached_upload_grace: unattached::UNATTACHED_UPLOAD_GRACE_DEFAULT,
            unattached_collect_interval: unattached::COLLECT_INTERVAL_DEFAULT,
            http: HttpLimits::default(),
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
            .field("sse_streams_per_user_max", &self.sse_streams_per_user_max)
            .field("sse_keep_alive_interval", &self.sse_keep_alive_interval)
            .field("sse_send_wait_max", &self.sse_send_wait_max)
            .field("thumbnails_concurrent_max", &self.thumbnails_concurrent_max)
            .field("events", &self.events.is_some())
            .field("user_command_rate", &self.user_command_rate)
            .field(
                "user_uploads_concurrent_max",
                &self.user_uploads_concurrent_max,
            )
            .field(
                "upload_quota_bytes_per_day",
                &self.upload_quota_bytes_per_day,
            )
            .field("disk_reserve_bytes", &self.disk_reserve_bytes)
            .field("event_log_dir", &self.event_log_dir)
            .field("unattached_upload_grace", &self.unattached_upload_grace)
            .field(
                "unattached_collect_interval",
                &self.unattached_collect_interval,
            )
            .field("http", &self.http)
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
    http: HttpLimits,
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

    /// The directories whose disks keep [`GatewayConfig::disk_reserve_bytes`] free: the data
    /// directory's (where [`Gateway::bind`] keeps the file bytes), and the event log's when it is
    /// known.
    fn reserve_paths(config: &GatewayConfig) -> Vec<PathBuf> {
        let mut paths = vec![config.data_dir.clone()];
        if let Some(log) = &config.event_log_dir {
            paths.push(log.clone());
        }
        paths
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
        let command_rate = limits::CommandRateLimiter::new(config.user_command_rate)
            .ok_or_else(|| GatewayError::Config("user_command_rate: must be above zero".into()))?;
        let disk_reserve = limits::DiskReserve {
            paths: Gateway::reserve_paths(&config),
            reserve_bytes: config.disk_reserve_bytes,
        };
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
                sse_streams_per_user_max: config.sse_streams_per_user_max,
                sse_keep_alive_interval: config.sse_keep_alive_interval,
                body_progress_timeout: config.http.body_progress_timeout,
            },
            sse_slots: events::StreamSlots::new(
                config.sse_clients_max,
                config.sse_streams_per_user_max,
            ),
            thumbnail_permits: Arc::new(Semaphore::new(config.thumbnails_concurrent_max.max(1))),
            shutdown: shutdown.clone(),
            metrics: metrics::install(),
            command_rate,
            upload_slots: limits::UploadSlots::new(config.user_uploads_concurrent_max),
            upload_quota: limits::UploadQuota::new(config.upload_quota_bytes_per_day),
            disk_reserve,
        });
        tokio::spawn(sweep_rate_limits(state.clone()));
        if config.unattached_upload_grace < unattached::UNATTACHED_UPLOAD_GRACE_DEFAULT {
            // The operator's choice (a disk short of space), but one with a cost users see.
            tracing::warn!(
                grace = ?config.unattached_upload_grace,
                "unattached uploads are deleted before the writer stops accepting them as \
                 attachments: a file attached late downloads as 404"
            );
        }
        tokio::spawn(unattached::run(
            state.clone(),
            config.unattached_upload_grace,
            config
                .unattached_collect_interval
                .max(Duration::from_millis(1)),
        ));
        tracing::info!(%local_addr, prefix = %config.subject_prefix, "gateway bound");
        let ops = ops.map(|(listener, addr)| {
            tracing::info!(%addr, "operator address bound (/healthz with parts, /metrics)");
            (listener, addr, ops_router(state.clone()))
        });
        Ok(Gateway {
            listener,
            local_addr,
            router: router(state, config.http),
            http: config.http,
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
            http,
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
        let finished = serve::serve(listener, router, http, signal, SHUTDOWN_GRACE).await;
        if !finished {
            tracing::warn!("requests still open after the shutdown grace; closing them");
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
    if config.user_uploads_concurrent_max == 0 {
        return Err(GatewayError::Config(
            "user_uploads_concurrent_max: must be at least 1".into(),
        ));
    }
    if config.http.connections_max == 0 {
        return Err(GatewayError::Config(
            "http.connections_max: must be at least 1".into(),
        ));
    }
    if config.unattached_upload_grace.is_zero() {
        return Err(GatewayError::Config(
            "unattached_upload_grace: must be above zero".into(),
        ));
    }
    if config.sse_clients_max == 0 {
        return Err(GatewayError::Config(
            "sse_clients_max: must be at least 1".into(),
        ));
    }
    if config.sse_streams_per_user_max == 0 {
        return Err(GatewayError::Config(
            "sse_streams_per_user_max: must be at least 1".into(),
        ));
    }
    if config.sse_keep_alive_interval.is_zero() {
        return Err(GatewayError::Config(
            "sse_keep_alive_interval: must be longer than zero".into(),
        ));
    }
    Ok(())
}

/// Drops idle users' rate-limit state now and then, so its map stays bounded (H-L2).
async fn sweep_rate_limits(state: SharedState) {
    let mut sweep = tokio::time::interval(limits::RATE_LIMIT_SWEEP_INTERVAL);
    loop {
        tokio::select! {
            () = state.shutdown.cancelled() => return,
            _ = sweep.tick() => state.command_rate.sweep(),
        }
    }
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
fn router(state: SharedState, http: HttpLimits) -> Router {
    let mut api = aide::openapi::OpenApi::default();
    let documented = routes::documented(&mut api);
    openapi::publish(&api);
    documented
        .fallback(no_such_endpoint)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(axum::middleware::from_fn(metrics::track))
        // H-L5: a body that stops sending for this long fails its handler's read.
        .layer(tower_http::timeout::RequestBodyTimeoutLayer::new(
            http.body_progress_timeout,
        ))
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
