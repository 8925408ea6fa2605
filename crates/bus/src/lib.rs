//! Request/reply and publish/subscribe over NATS or in process, behind one concrete type.
//!
//! [`Bus`] is either a NATS connection (async-nats) or an in-process registry with the same
//! semantics as NATS core, so services and tests run unchanged on both:
//!
//! - Subjects are `.`-separated tokens; subscriptions may use `*` (one token) and a final `>`
//!   (one or more tokens); see [`subject`] for the exact rules ([`BusError::InvalidSubject`]).
//! - Every plain subscription matching a subject receives the message; of each queue group
//!   (by name) exactly one member receives it.
//! - [`Bus::request`] sends to a unique inbox subject and waits for the first reply; with no
//!   subscriber at all it fails at once with [`BusError::NoResponders`], otherwise after the
//!   timeout with [`BusError::Timeout`].
//! - Delivery is at most once. A subscriber whose bounded channel
//!   ([`SUBSCRIPTION_MESSAGES_MAX`]) is full misses messages (a "slow consumer", counted by
//!   [`Bus::dropped`]), and a NATS disconnect loses what was in flight. Consumers of the event
//!   log notice the gap by position and catch up through `log.read`; after a reconnect
//!   ([`Bus::reconnects`]) they catch up too.
//! - A message (headers plus payload, see [`message_bytes`]) is at most
//!   [`PAYLOAD_BYTES_MAX`] bytes ([`BusError::PayloadTooLarge`]).
//!
//! No async-nats type appears in this API; its errors are turned into [`BusError`]s. The one
//! exception is [`Bus::nats_client`], which hands the connection to the blob store's JetStream
//! object store so that it uses the same servers, credentials and reconnects as the bus.
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), bus::BusError> {
//! use std::time::Duration;
//! use bus::{Bus, Headers};
//!
//! let bus = Bus::in_process(); // or Bus::connect("nats://127.0.0.1:4222", "writer").await?
//! let mut requests = bus.queue_subscribe("parlor.log.read", "log-readers").await?;
//! let server = bus.clone();
//! tokio::spawn(async move {
//!     while let Some(request) = requests.next().await {
//!         let headers = Headers::new().with("Content-Type", "application/json");
//!         let _ = server.respond(&request, headers, r#"{"events":[],"head":0}"#).await;
//!     }
//! });
//! let reply = bus
//!     .request("parlor.log.read", Headers::new(), r#"{"from":1}"#, Duration::from_secs(5))
//!     .await?;
//! assert_eq!(reply.headers.get("content-type"), Some("application/json"));
//! # Ok(())
//! # }
//! ```

pub mod chain;
mod connect;
mod error;
pub mod follow;
pub mod ha;
mod in_process;
mod message;
mod nats;
pub mod subject;

use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use futures::Stream;
use tokio::sync::watch;

pub use connect::{NatsAuth, NatsOptions, NatsTls};
pub use error::BusError;
pub use follow::{EventHub, FollowError, FollowOptions, LogFollower, LogReader, Page};
pub use message::{message_bytes, Headers, Message};
pub use nats::{CONNECT_TIMEOUT, FIRST_CONNECT_DELAY_MAX, RECONNECT_DELAY_MAX, SEND_WAIT_MAX};

/// The largest message accepted, headers included: 1 MiB, nats-server's default `max_payload`.
pub const PAYLOAD_BYTES_MAX: usize = 1024 * 1024;

/// How many messages a subscription buffers before further ones are dropped (both buses).
/// Sized for a projector that falls a few writer batches behind; beyond that it catches up
/// through `log.read` rather than holding an unbounded backlog in memory.
pub const SUBSCRIPTION_MESSAGES_MAX: usize = 8192;

/// A handle to a message bus, over NATS or in process. Clones are cheap and share the
/// connection (or registry).
#[derive(Clone, Debug)]
pub struct Bus {
    inner: Inner,
}

#[derive(Clone, Debug)]
enum Inner {
    Nats(nats::NatsBus),
    InProcess(in_process::InProcessBus),
}

impl Bus {
    /// Connects to the NATS server(s) at `url` (for example `nats://127.0.0.1:4222`, or a
    /// comma-separated list), naming the connection `client_name` (shown by the server's
    /// monitoring), without credentials.
    ///
    /// Fails if the first connection cannot be made; after that the connection is re-made
    /// forever with a capped exponential backoff ([`RECONNECT_DELAY_MAX`]), and its
    /// subscriptions are re-established by themselves.
    pub async fn connect(url: &str, client_name: &str) -> Result<Bus, BusError> {
        Bus::connect_with(&NatsOptions::new(url, client_name)).await
    }

    /// Like [`Bus::connect`] with credentials, TLS and an inbox prefix.
    pub async fn connect_with(options: &NatsOptions) -> Result<Bus, BusError> {
        let bus = nats::NatsBus::connect(options).await?;
        Ok(Bus::connected(options, bus))
    }

    /// Like [`Bus::connect_with`], but while no server answers it tries again (a warning per
    /// try, pauses doubling up to [`FIRST_CONNECT_DELAY_MAX`]) instead of failing, so a part
    /// may start before NATS does. Fails only on a configuration error ([`BusError::Config`]).
    pub async fn connect_retrying(options: &NatsOptions) -> Result<Bus, BusError> {
        let bus = nats::NatsBus::connect_retrying(options).await?;
        Ok(Bus::connected(options, bus))
    }

    fn connected(options: &NatsOptions, bus: nats::NatsBus) -> Bus {
        tracing::info!(
            servers = %options.servers_text(),
            client_name = %options.client_name,
            "connected to NATS"
        );
        Bus {
            inner: Inner::Nats(bus),
        }
    }

    /// A new in-process bus whose subscriptions buffer [`SUBSCRIPTION_MESSAGES_MAX`] messages.
    pub fn in_process() -> Bus {
        Bus::in_process_with_capacity(SUBSCRIPTION_MESSAGES_MAX)
    }

    /// A new in-process bus whose subscriptions buffer `subscription_messages_max` messages
    /// (at least 1); useful to test slow consumers.
    pub fn in_process_with_capacity(subscription_messages_max: usize) -> Bus {
        Bus {
            inner: Inner::InProcess(in_process::InProcessBus::new(subscription_messages_max)),
        }
    }

    /// The NATS connection underneath, for the JetStream object store of file bytes
    /// (`blobs::NatsBlobStore`), which needs JetStream's API rather than the bus's; `None` for
    /// the in-process bus. Nothing else uses it, so async-nats stays out of every other API.
    pub fn nats_client(&self) -> Option<async_nats::Client> {
        match &self.inner {
            Inner::Nats(bus) => Some(bus.client().clone()),
            Inner::InProcess(_) => None,
        }
    }

    /// Whether this is the in-process bus.
    pub fn is_in_process(&self) -> bool {
        matches!(self.inner, Inner::InProcess(_))
    }

    /// Publishes a message on a literal subject. It succeeds when the message is handed over,
    /// whether or not anybody receives it.
    pub async fn publish(
        &self,
        subject: &str,
        headers: Headers,
        payload: impl Into<Bytes>,
    ) -> Result<(), BusError> {
        let payload = payload.into();
        subject::validate_publish_subject(subject)?;
        check_message(&headers, &payload)?;
        match &self.inner {
            Inner::Nats(bus) => bus.publish(subject, &headers, payload).await,
            Inner::InProcess(bus) => {
                bus.publish(Message {
                    subject: subject.to_owned(),
                    headers,
                    payload,
                    reply_to: None,
                });
                Ok(())
            }
        }
    }

    /// Sends a request and waits up to `timeout` for the first reply.
    ///
    /// Fails with [`BusError::NoResponders`] at once when nobody subscribes to `subject`, and
    /// with [`BusError::Timeout`] when no reply comes in time.
    pub async fn request(
        &self,
        subject: &str,
        headers: Headers,
        payload: impl Into<Bytes>,
        timeout: Duration,
    ) -> Result<Message, BusError> {
        let payload = payload.into();
        subject::validate_publish_subject(subject)?;
        check_message(&headers, &payload)?;
        match &self.inner {
            Inner::Nats(bus) => bus.request(subject, &headers, payload, timeout).await,
            Inner::InProcess(bus) => {
                let message = Message {
                    subject: subject.to_owned(),
                    headers,
                    payload,
                    reply_to: None,
                };
                bus.request(message, timeout).await
            }
        }
    }

    /// Answers a request received on a subscription, by publishing to its reply subject.
    /// Fails with [`BusError::NoReplySubject`] when `request` carries none.
    pub async fn respond(
        &self,
        request: &Message,
        headers: Headers,
        payload: impl Into<Bytes>,
    ) -> Result<(), BusError> {
        let reply_to = request
            .reply_to
            .as_deref()
            .ok_or(BusError::NoReplySubject)?;
        self.publish(reply_to, headers, payload).await
    }

    /// Subscribes to a subject (wildcards allowed). When this returns the subscription is
    /// active: a message published afterwards, from any connection, reaches it.
    pub async fn subscribe(&self, subject: &str) -> Result<Subscription, BusError> {
        self.subscribe_inner(subject, None).await
    }

    /// Subscribes as a member of the queue group `group`: each message matching `subject` goes
    /// to one member of the group only (any number of replicas share the load).
    pub async fn queue_subscribe(
        &self,
        subject: &str,
        group: &str,
    ) -> Result<Subscription, BusError> {
        subject::validate_queue_group(group)?;
        self.subscribe_inner(subject, Some(group)).await
    }

    /// Waits until everything published so far has been processed by the server (NATS), so
    /// that it is ordered before anything another connection does afterwards. Immediate in
    /// process, where publishing is synchronous.
    pub async fn flush(&self) -> Result<(), BusError> {
        match &self.inner {
            Inner::Nats(bus) => bus.flush().await,
            Inner::InProcess(_) => Ok(()),
        }
    }

    /// A counter of reconnections (0 until the first one). A consumer that may have missed
    /// messages while disconnected awaits `changed()` on it and then catches up. It stays 0
    /// in process.
    pub fn reconnects(&self) -> watch::Receiver<u64> {
        match &self.inner {
            Inner::Nats(bus) => bus.reconnects(),
            Inner::InProcess(bus) => bus.reconnects(),
        }
    }

    /// Whether the connection is up right now (always true in process).
    pub fn is_connected(&self) -> bool {
        match &self.inner {
            Inner::Nats(bus) => bus.is_connected(),
            Inner::InProcess(_) => true,
        }
    }

    /// Messages dropped because a subscriber's channel was full. In process this is exact;
    /// over NATS it counts async-nats's slow-consumer events, a lower bound (its event queue
    /// is itself bounded and drops when full).
    pub fn dropped(&self) -> u64 {
        match &self.inner {
            Inner::Nats(bus) => bus.dropped(),
            Inner::InProcess(bus) => bus.dropped(),
        }
    }

    /// The server's latest error lines on this connection, oldest first (a bounded number;
    /// empty in process). A publish or subscription the server's permissions refuse fails
    /// only here, as `permissions violation for publish to "…"`, because NATS reports it
    /// asynchronously and leaves the connection up.
    pub fn server_errors(&self) -> Vec<String> {
        match &self.inner {
            Inner::Nats(bus) => bus.server_errors(),
            Inner::InProcess(_) => Vec::new(),
        }
    }

    async fn subscribe_inner(
        &self,
        subject: &str,
        group: Option<&str>,
    ) -> Result<Subscription, BusError> {
        subject::validate_subscribe_subject(subject)?;
        let inner = match &self.inner {
            Inner::Nats(bus) => SubscriptionInner::Nats(bus.subscribe(subject, group).await?),
            Inner::InProcess(bus) => SubscriptionInner::InProcess(bus.subscribe(subject, group)),
        };
        Ok(Subscription {
            subject: subject.to_owned(),
            inner,
        })
    }
}

/// Refuses invalid headers and messages over [`PAYLOAD_BYTES_MAX`], the same way on both
/// buses (async-nats would panic on some invalid headers).
fn check_message(headers: &Headers, payload: &[u8]) -> Result<(), BusError> {
    headers.validate()?;
    let bytes = message_bytes(headers, payload);
    if bytes > PAYLOAD_BYTES_MAX {
        return Err(BusError::PayloadTooLarge {
            bytes,
            bytes_max: PAYLOAD_BYTES_MAX,
        });
    }
    Ok(())
}

/// A live subscription. Read it with [`Subscription::next`] or as a [`Stream`]; dropping it
/// unsubscribes.
#[derive(Debug)]
pub struct Subscription {
    subject: String,
    inner: SubscriptionInner,
}

#[derive(Debug)]
enum SubscriptionInner {
    Nats(async_nats::Subscriber),
    InProcess(in_process::InProcessReceiver),
}

impl Subscription {
    /// The next message. `None` means the subscription has ended for good (the NATS
    /// connection was closed); while merely disconnected it waits for the reconnect.
    pub async fn next(&mut self) -> Option<Message> {
        match &mut self.inner {
            SubscriptionInner::Nats(subscriber) => futures::StreamExt::next(subscriber)
                .await
                .map(nats::from_nats),
            SubscriptionInner::InProcess(receiver) => receiver.recv().await,
        }
    }

    /// The subject (pattern) subscribed to.
    pub fn subject(&self) -> &str {
        &self.subject
    }

    /// Unsubscribes and waits until the request is handed to the connection; dropping the
    /// subscription does the same without waiting.
    pub async fn unsubscribe(self) -> Result<(), BusError> {
        match self.inner {
            SubscriptionInner::Nats(mut subscriber) => {
                tokio::time::timeout(SEND_WAIT_MAX, subscriber.unsubscribe())
                    .await
                    .map_err(|_elapsed| BusError::Disconnected)?
                    .map_err(|error| BusError::Transport(error.to_string()))
            }
            SubscriptionInner::InProcess(receiver) => {
                drop(receiver);
                Ok(())
            }
        }
    }
}

impl Stream for Subscription {
    type Item = Message;

    fn poll_next(self: Pin<&mut Self>, context: &mut Context<'_>) -> Poll<Option<Message>> {
        match &mut self.get_mut().inner {
            SubscriptionInner::Nats(subscriber) => Pin::new(subscriber)
                .poll_next(context)
                .map(|message| message.map(nats::from_nats)),
            SubscriptionInner::InProcess(receiver) => receiver.poll_recv(context),
        }
    }
}
