//! The NATS bus: a thin adapter over async-nats that converts its types and errors to ours.
//!
//! async-nats queues every operation on a bounded command channel served by one connection
//! task. While the connection is down that task is busy reconnecting, so a send can wait until
//! the connection is back; every send here is therefore bounded by [`SEND_WAIT_MAX`] and then
//! fails with [`BusError::Disconnected`]. A request handed over before a disconnect is still
//! sent after the reconnect even if its caller has timed out; commands are idempotent by
//! `command_id`, so that is harmless.

use std::collections::VecDeque;
use std::str::FromStr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_nats::connection::State;
use async_nats::{ConnectOptions, Event, HeaderMap, HeaderName, HeaderValue};
use bytes::Bytes;
use tokio::sync::watch;

use crate::connect::{NatsAuth, NatsOptions};
use crate::{BusError, Headers, Message, SUBSCRIPTION_MESSAGES_MAX};

/// How long a publish, subscribe or flush may wait for a connection that is down.
pub const SEND_WAIT_MAX: Duration = Duration::from_secs(5);

/// How long one connection attempt (TCP, handshake, first PONG) may take.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// The longest pause between two reconnect attempts (the backoff doubles up to this).
pub const RECONNECT_DELAY_MAX: Duration = Duration::from_secs(2);

/// The longest pause between two tries of a first connection.
pub const FIRST_CONNECT_DELAY_MAX: Duration = Duration::from_secs(5);

/// The first pause between tries of a first connection.
const FIRST_CONNECT_DELAY_FIRST: Duration = Duration::from_millis(100);

/// How many of the server's latest `-ERR` lines a connection keeps for [`crate::Bus::server_errors`].
const SERVER_ERRORS_KEPT: usize = 64;

/// The first pause between reconnect attempts, after an immediate first retry.
const RECONNECT_DELAY_FIRST: Duration = Duration::from_millis(50);

/// The connection's default request timeout; [`crate::Bus::request`] always sets its own.
const REQUEST_TIMEOUT_DEFAULT: Duration = Duration::from_secs(10);

/// The bound on async-nats's command channel (publishes waiting for the connection task).
const CLIENT_COMMANDS_MAX: usize = 4096;

/// A cheap handle to one NATS connection.
#[derive(Clone, Debug)]
pub(crate) struct NatsBus {
    client: async_nats::Client,
    shared: Arc<Shared>,
}

/// State updated by the connection's event callback.
#[derive(Debug)]
struct Shared {
    /// Successful connections, the first one included.
    connects: AtomicU64,
    /// Successful connections after the first one.
    reconnects: watch::Sender<u64>,
    /// Slow-consumer events: each is at least one message dropped for a full subscription.
    slow_consumer_events: AtomicU64,
    /// The latest `-ERR` lines from the server (permission violations above all), newest last.
    server_errors: Mutex<VecDeque<String>>,
}

impl NatsBus {
    /// The async-nats client, for the JetStream parts of this crate (`ha`) and, through
    /// `Bus::nats_client`, the NATS blob store.
    pub(crate) fn client(&self) -> &async_nats::Client {
        &self.client
    }

    /// Connects once (failing if no server is there) and then reconnects forever.
    pub(crate) async fn connect(options: &NatsOptions) -> Result<NatsBus, BusError> {
        options.check()?;
        let connect_options = NatsBus::connect_options(options).await?;
        NatsBus::connect_once(options, connect_options).await
    }

    /// Connects, trying again with a capped backoff (and a log line per failed try) while no
    /// server answers; then reconnects forever. Fails at once only on a configuration error
    /// (bad options, refused credentials, a TLS failure), which trying again would not fix.
    pub(crate) async fn connect_retrying(options: &NatsOptions) -> Result<NatsBus, BusError> {
        options.check()?;
        let connect_options = NatsBus::connect_options(options).await?;
        let mut attempt: usize = 1;
        loop {
            match NatsBus::connect_once(options, connect_options.clone()).await {
                Ok(bus) => return Ok(bus),
                Err(BusError::Config(reason)) => return Err(BusError::Config(reason)),
                Err(error) => {
                    let pause = first_connect_delay(attempt);
                    tracing::warn!(
                        servers = %options.servers_text(),
                        client_name = %options.client_name,
                        attempt,
                        retry_in_ms = pause.as_millis() as u64,
                        %error,
                        "cannot connect to NATS yet; trying again"
                    );
                    tokio::time::sleep(pause).await;
                    attempt = attempt.saturating_add(1);
                }
            }
        }
    }

    /// The async-nats options for `options` (reads the credentials files).
    async fn connect_options(options: &NatsOptions) -> Result<ConnectOptions, BusError> {
        let mut connect = match &options.auth {
            NatsAuth::Anonymous => ConnectOptions::new(),
            NatsAuth::CredsFile(path) => ConnectOptions::with_credentials_file(path)
                .await
                .map_err(|error| {
                    BusError::Config(format!(
                        "cannot read the NATS credentials file {}: {error}",
                        path.display()
                    ))
                })?,
            NatsAuth::UserPasswordFile {
                user,
                password_file,
            } => ConnectOptions::with_user_and_password(
                user.clone(),
                NatsOptions::read_password(password_file)?,
            ),
        };
        if options.tls.is_required() {
            connect = connect.require_tls(true);
        }
        if let Some(ca) = &options.tls.ca {
            connect = connect.add_root_certificates(ca.clone());
        }
        if let (Some(cert), Some(key)) = (&options.tls.cert, &options.tls.key) {
            connect = connect.add_client_certificate(cert.clone(), key.clone());
        }
        if let Some(prefix) = &options.inbox_prefix {
            connect = connect.custom_inbox_prefix(prefix);
        }
        Ok(connect)
    }

    /// One connection attempt with the shared settings: reconnect forever, bounded buffers,
    /// and the event callback that logs and counts what happens to the connection.
    async fn connect_once(
        options: &NatsOptions,
        connect: ConnectOptions,
    ) -> Result<NatsBus, BusError> {
        let (reconnects, _) = watch::channel(0);
        let shared = Arc::new(Shared {
            connects: AtomicU64::new(0),
            reconnects,
            slow_consumer_events: AtomicU64::new(0),
            server_errors: Mutex::new(VecDeque::new()),
        });
        let callback_shared = Arc::clone(&shared);
        let client_name_for_log = options.client_name.clone();
        let client = connect
            .name(&options.client_name)
            .max_reconnects(None)
            .connection_timeout(CONNECT_TIMEOUT)
            .reconnect_delay_callback(reconnect_delay)
            .subscription_capacity(SUBSCRIPTION_MESSAGES_MAX)
            .client_capacity(CLIENT_COMMANDS_MAX)
            .request_timeout(Some(REQUEST_TIMEOUT_DEFAULT))
            .event_callback(move |event| {
                let shared = Arc::clone(&callback_shared);
                let client_name = client_name_for_log.clone();
                async move { shared.on_event(&client_name, event) }
            })
            .connect(options.servers.as_slice())
            .await
            .map_err(|error| {
                use async_nats::ConnectErrorKind;
                let text = format!("cannot connect to {}: {error}", options.servers_text());
                match error.kind() {
                    ConnectErrorKind::Authentication
                    | ConnectErrorKind::AuthorizationViolation
                    | ConnectErrorKind::Tls
                    | ConnectErrorKind::ServerParse => BusError::Config(text),
                    _ => BusError::Transport(text),
                }
            })?;
        Ok(NatsBus { client, shared })
    }

    pub(crate) async fn publish(
        &self,
        subject: &str,
        headers: &Headers,
        payload: Bytes,
    ) -> Result<(), BusError> {
        let bytes = crate::message_bytes(headers, &payload);
        let headers = to_header_map(headers)?;
        let sent = match headers {
            Some(headers) => {
                self.bounded(
                    self.client
                        .publish_with_headers(subject.to_owned(), headers, payload),
                )
                .await?
            }
            None => {
                self.bounded(self.client.publish(subject.to_owned(), payload))
                    .await?
            }
        };
        sent.map_err(|error| match error.kind() {
            async_nats::client::PublishErrorKind::MaxPayloadExceeded => {
                self.payload_too_large(bytes, error.to_string())
            }
            async_nats::client::PublishErrorKind::InvalidSubject => BusError::InvalidSubject {
                subject: subject.to_owned(),
                reason: "rejected by async-nats",
            },
            async_nats::client::PublishErrorKind::Send => BusError::Closed,
        })
    }

    pub(crate) async fn request(
        &self,
        subject: &str,
        headers: &Headers,
        payload: Bytes,
        timeout: Duration,
    ) -> Result<Message, BusError> {
        let bytes = crate::message_bytes(headers, &payload);
        let mut request = async_nats::Request::new()
            .payload(payload)
            .timeout(Some(timeout));
        if let Some(headers) = to_header_map(headers)? {
            request = request.headers(headers);
        }
        // The inner timeout covers the wait for the reply; this outer one also covers a
        // hand-over that waits on a full command channel while disconnected.
        let reply = tokio::time::timeout(
            timeout,
            self.client.send_request(subject.to_owned(), request),
        )
        .await
        .map_err(|_elapsed| BusError::Timeout)?;
        use async_nats::client::RequestErrorKind;
        match reply {
            Ok(message) => Ok(from_nats(message)),
            Err(error) => Err(match error.kind() {
                RequestErrorKind::TimedOut => BusError::Timeout,
                RequestErrorKind::NoResponders => BusError::NoResponders,
                RequestErrorKind::InvalidSubject => BusError::InvalidSubject {
                    subject: subject.to_owned(),
                    reason: "rejected by async-nats",
                },
                RequestErrorKind::MaxPayloadExceeded => {
                    self.payload_too_large(bytes, error.to_string())
                }
                RequestErrorKind::Other => BusError::Transport(error.to_string()),
            }),
        }
    }

    /// Subscribes and then flushes, so that when this returns the server knows the
    /// subscription and a publish from any other connection reaches it (the in-process bus
    /// gives the same guarantee for free).
    pub(crate) async fn subscribe(
        &self,
        subject: &str,
        group: Option<&str>,
    ) -> Result<async_nats::Subscriber, BusError> {
        let subscribed = match group {
            Some(group) => {
                self.bounded(
                    self.client
                        .queue_subscribe(subject.to_owned(), group.to_owned()),
                )
                .await?
            }
            None => {
                self.bounded(self.client.subscribe(subject.to_owned()))
                    .await?
            }
        };
        use async_nats::client::SubscribeErrorKind;
        let subscriber = subscribed.map_err(|error| match error.kind() {
            SubscribeErrorKind::InvalidSubject => BusError::InvalidSubject {
                subject: subject.to_owned(),
                reason: "rejected by async-nats",
            },
            SubscribeErrorKind::InvalidQueueName => BusError::InvalidSubject {
                subject: group.unwrap_or_default().to_owned(),
                reason: "queue group name rejected by async-nats",
            },
            SubscribeErrorKind::Other => BusError::Transport(error.to_string()),
        })?;
        self.sync_with_server().await?;
        Ok(subscriber)
    }

    /// A round trip through the server on this connection: a message to a fresh inbox we
    /// subscribe to. The server handles a connection's protocol lines in order, so once the
    /// message comes back every earlier subscription is active. (async-nats's `flush` only
    /// writes the socket; it does not wait for the server.)
    async fn sync_with_server(&self) -> Result<(), BusError> {
        let inbox = self.client.new_inbox();
        let mut probe = self
            .bounded(self.client.subscribe(inbox.clone()))
            .await?
            .map_err(|error| BusError::Transport(error.to_string()))?;
        self.bounded(self.client.publish(inbox, Bytes::new()))
            .await?
            .map_err(|error| BusError::Transport(error.to_string()))?;
        self.flush().await?;
        match tokio::time::timeout(SEND_WAIT_MAX, futures::StreamExt::next(&mut probe)).await {
            Ok(Some(_)) => Ok(()),
            Ok(None) => Err(BusError::Disconnected),
            Err(_) => Err(BusError::Timeout),
        }
    }

    pub(crate) async fn flush(&self) -> Result<(), BusError> {
        self.bounded(self.client.flush())
            .await?
            .map_err(|error| BusError::Transport(error.to_string()))
    }

    pub(crate) fn is_connected(&self) -> bool {
        self.client.connection_state() == State::Connected
    }

    pub(crate) fn reconnects(&self) -> watch::Receiver<u64> {
        self.shared.reconnects.subscribe()
    }

    pub(crate) fn dropped(&self) -> u64 {
        self.shared.slow_consumer_events.load(Ordering::Relaxed)
    }

    pub(crate) fn server_errors(&self) -> Vec<String> {
        self.shared
            .server_errors
            .lock()
            .map(|errors| errors.iter().cloned().collect())
            .unwrap_or_default()
    }

    /// Runs a send with the [`SEND_WAIT_MAX`] bound.
    async fn bounded<T>(&self, send: impl std::future::Future<Output = T>) -> Result<T, BusError> {
        tokio::time::timeout(SEND_WAIT_MAX, send)
            .await
            .map_err(|_elapsed| {
                if self.is_connected() {
                    BusError::Timeout
                } else {
                    BusError::Disconnected
                }
            })
    }

    /// The size check in `Bus` uses our own limit; this catches a server configured lower.
    fn payload_too_large(&self, bytes: usize, description: String) -> BusError {
        tracing::warn!(%description, "NATS refused a message as too large");
        BusError::PayloadTooLarge {
            bytes,
            bytes_max: self.client.max_payload(),
        }
    }
}

impl Shared {
    fn on_event(&self, client_name: &str, event: Event) {
        match event {
            Event::Connected => {
                let earlier = self.connects.fetch_add(1, Ordering::Relaxed);
                if earlier > 0 {
                    // async-nats re-subscribes every live subscription before it serves any
                    // later command, so a catch-up request sent after seeing this is ordered
                    // behind those subscriptions.
                    self.reconnects
                        .send_modify(|count| *count = count.saturating_add(1));
                    tracing::info!(client_name, "reconnected to NATS");
                } else {
                    tracing::debug!(client_name, "connected to NATS");
                }
            }
            Event::Disconnected => tracing::warn!(client_name, "disconnected from NATS"),
            Event::SlowConsumer(subscription) => {
                self.slow_consumer_events.fetch_add(1, Ordering::Relaxed);
                tracing::warn!(
                    client_name,
                    subscription,
                    "NATS subscription is a slow consumer: a message was dropped"
                );
            }
            Event::Closed => tracing::warn!(client_name, "NATS connection closed"),
            Event::ServerError(error) => {
                // A permission violation leaves the connection up: the refused publish or
                // subscription just does nothing, so this log line is the operator's only sign.
                let description = error.to_string();
                tracing::error!(client_name, error = %description, "the NATS server refused an operation");
                if let Ok(mut errors) = self.server_errors.lock() {
                    if errors.len() == SERVER_ERRORS_KEPT {
                        errors.pop_front();
                    }
                    errors.push_back(description);
                }
            }
            other => tracing::warn!(client_name, event = %other, "NATS connection event"),
        }
    }
}

/// The pause before the next try of a first connection: 100 ms doubling up to
/// [`FIRST_CONNECT_DELAY_MAX`].
fn first_connect_delay(attempt: usize) -> Duration {
    let doublings = u32::try_from(attempt.saturating_sub(1))
        .unwrap_or(u32::MAX)
        .min(16);
    FIRST_CONNECT_DELAY_FIRST
        .saturating_mul(1 << doublings)
        .min(FIRST_CONNECT_DELAY_MAX)
}

/// Exponential backoff: retry at once, then 50 ms, 100 ms, … up to [`RECONNECT_DELAY_MAX`].
fn reconnect_delay(attempts: usize) -> Duration {
    if attempts <= 1 {
        return Duration::ZERO;
    }
    let doublings = u32::try_from(attempts - 2).unwrap_or(u32::MAX).min(16);
    RECONNECT_DELAY_FIRST
        .saturating_mul(1 << doublings)
        .min(RECONNECT_DELAY_MAX)
}

/// Converts validated headers; `None` when empty, so that NATS sends no header block.
fn to_header_map(headers: &Headers) -> Result<Option<HeaderMap>, BusError> {
    if headers.is_empty() {
        return Ok(None);
    }
    let mut map = HeaderMap::new();
    for (name, value) in headers.iter() {
        // The `&str` conversions of async-nats panic on bad input; the fallible ones do not.
        let invalid = |reason| BusError::InvalidHeader {
            name: name.to_owned(),
            reason,
        };
        let header_name =
            HeaderName::from_str(name).map_err(|_| invalid("rejected by async-nats"))?;
        let header_value =
            HeaderValue::from_str(value).map_err(|_| invalid("rejected by async-nats"))?;
        map.append(header_name, header_value);
    }
    Ok(Some(map))
}

/// Converts a received async-nats message to ours.
pub(crate) fn from_nats(message: async_nats::Message) -> Message {
    let mut headers: Vec<(String, String)> = Vec::new();
    if let Some(map) = &message.headers {
        for (name, values) in map.iter() {
            let name: &str = name.as_ref();
            for value in values {
                headers.push((name.to_owned(), value.as_str().to_owned()));
            }
        }
    }
    // HeaderMap is a hash map: sort (stably) so that the order is at least deterministic.
    headers.sort_by(|left, right| left.0.cmp(&right.0));
    Message {
        subject: message.subject.to_string(),
        headers: headers.into_iter().collect(),
        payload: message.payload,
        reply_to: message.reply.map(|reply| reply.to_string()),
    }
}
