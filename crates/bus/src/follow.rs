//! Following the event log: one component for every reader that must see each event exactly
//! once, in position order (the projection runtime, the gateway's SSE streams, `parlor audit
//! verify --nats-url`).
//!
//! - [`LogReader`] sends one `<prefix>.log.read` request and decodes its reply.
//! - [`EventHub`] subscribes `<prefix>.evt.>` once per process, decodes each event once,
//!   checks once whether it chains from the event the hub received before it, and broadcasts
//!   it to any number of followers (bounded: a follower that falls behind the buffer is told it
//!   lagged, and reads the log instead).
//! - [`LogFollower`] is a cursor, the last position handed out. [`LogFollower::next`] yields
//!   the events after it, contiguous and in order:
//!   1. Live events come from its own `evt.>` subscription or from a hub, taken *before* the
//!      first `log.read`, so that nothing published during the catch-up slips by.
//!   2. At the start, and whenever the live source shows a gap (a dropped message, a lagged
//!      hub receiver, an undecodable event) or the bus reconnects, it reads the log from the
//!      cursor + 1 page by page until the head; a duplicate (at or below the cursor) is skipped.
//!   3. After [`FollowOptions::idle_probe_interval`] without any event it reads the log once,
//!      so that a dropped *last* event (no later one reveals the gap) is found too.
//!   4. A live event is taken only if its hash chains from the last event handed out
//!      ([`crate::chain`], security.md H-N2); the chain's start is learnt from `log.read`, which
//!      only the writer answers. A forged or replayed event is treated as a gap: the log is
//!      read, and the real event at that position comes from there or live after.
//!
//!   While it pages through the log, the next page is read while the caller handles the
//!   current one. Every wait in `next` is cancel-safe (an unfinished `log.read` runs on in its
//!   own task and is picked up by the next call), so it can sit in a `select!` beside a timer.

use std::sync::Arc;
use std::time::Duration;

use futures::FutureExt as _;
use protocol::{
    EventHeaders, Format, LogReadReply, LogReadRequest, RecordedEvent, Sha256, HEADER_CONTENT_TYPE,
};
use tokio::sync::{broadcast, watch};
use tokio::task::JoinHandle;
use tokio::time::Instant;

use crate::chain::chains;
use crate::{Bus, BusError, Headers, Message, Subscription};

/// Events asked for per `log.read` page by default.
pub const FOLLOW_PAGE_EVENTS: u32 = 1_000;

/// The most live events one [`LogFollower::next`] hands out at once, when several are waiting.
pub const LIVE_BATCH_EVENTS_MAX: usize = 1_000;

/// Decoded events an [`EventHub`] buffers for its slowest follower (about a second at
/// 15,000 events/s); a follower further behind reads the log instead.
pub const HUB_EVENTS_MAX: usize = 16_384;

/// The longest pause before a failed `log.read` is tried again (shorter when the idle probe
/// interval is).
pub const RETRY_PAUSE_MAX: Duration = Duration::from_secs(1);

/// How many characters of an undecodable `log.read` reply an error quotes.
const REPLY_QUOTE_CHARS_MAX: usize = 200;

/// Why following the log failed. Every variant but [`FollowError::Closed`] is passing: the
/// follower tries again after a pause ([`RETRY_PAUSE_MAX`] at most) on the next call.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FollowError {
    /// A `log.read` failed: no writer, a timeout, or a reply that is not a page of the log.
    #[error("log.read from position {from}: {reason}")]
    LogRead {
        /// The first position asked for.
        from: u64,
        /// What went wrong.
        reason: String,
    },
    /// The log says its head is at or past `expected` but did not return that position.
    #[error("the log lacks position {expected} (its head is {head})")]
    Missing {
        /// The position after the cursor.
        expected: u64,
        /// The head the log reported.
        head: u64,
    },
    /// The live source has ended for good (the bus is closed).
    #[error("the live event source has ended")]
    Closed,
}

/// How a [`LogReader`] and a [`LogFollower`] talk to the log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FollowOptions {
    /// The subject prefix (`parlor`).
    pub subject_prefix: String,
    /// The format of `log.read` requests and so of their replies; bincode is the compact one.
    pub format: Format,
    /// How long one `log.read` may take.
    pub timeout: Duration,
    /// Events asked for per page.
    pub page_events: u32,
    /// Whether to ask for each event's stored record bytes (`raw`, for chain verification).
    pub raw: bool,
    /// Quiet time after which the log is read for a dropped last event; also the pause before
    /// a failed `log.read` is tried again (at most [`RETRY_PAUSE_MAX`]).
    pub idle_probe_interval: Duration,
    /// The most live events handed out at once.
    pub live_batch_events_max: usize,
}

impl FollowOptions {
    /// The defaults under `subject_prefix`: bincode pages of [`FOLLOW_PAGE_EVENTS`] without
    /// record bytes, a 5 s timeout, a 1 s idle probe, live batches of [`LIVE_BATCH_EVENTS_MAX`].
    pub fn new(subject_prefix: &str) -> FollowOptions {
        FollowOptions {
            subject_prefix: subject_prefix.to_owned(),
            format: Format::Bincode,
            timeout: Duration::from_secs(5),
            page_events: FOLLOW_PAGE_EVENTS,
            raw: false,
            idle_probe_interval: Duration::from_secs(1),
            live_batch_events_max: LIVE_BATCH_EVENTS_MAX,
        }
    }

    /// The subject of published events, `<prefix>.evt.>`.
    pub fn events_subject(&self) -> String {
        format!("{}.evt.>", self.subject_prefix)
    }
}

/// Sends `<prefix>.log.read` requests. Cheap to clone.
#[derive(Debug, Clone)]
pub struct LogReader {
    bus: Bus,
    subject: String,
    format: Format,
    timeout: Duration,
    raw: bool,
}

impl LogReader {
    /// A reader on `bus` with the subject, format, timeout and `raw` of `options`.
    pub fn new(bus: &Bus, options: &FollowOptions) -> LogReader {
        LogReader {
            bus: bus.clone(),
            subject: format!("{}.log.read", options.subject_prefix),
            format: options.format,
            timeout: options.timeout,
            raw: options.raw,
        }
    }

    /// One page: at most `max` events from `from` on, and the head. A writer's error reply
    /// (a JSON object) becomes a [`FollowError::LogRead`] quoting its start.
    pub async fn read(&self, from: u64, max: u32) -> Result<LogReadReply, FollowError> {
        let failed = |reason: String| FollowError::LogRead { from, reason };
        let request = LogReadRequest::new(from, max)
            .map_err(|invalid| failed(invalid.message))?
            .with_raw(self.raw);
        let payload = request
            .encode(self.format)
            .map_err(|error| failed(error.to_string()))?;
        let headers = Headers::new().with(HEADER_CONTENT_TYPE, self.format.content_type());
        let reply = self
            .bus
            .request(&self.subject, headers, payload, self.timeout)
            .await
            .map_err(|error| failed(error.to_string()))?;
        let reply_format = Format::from_content_type(reply.headers.get(HEADER_CONTENT_TYPE))
            .unwrap_or(self.format);
        LogReadReply::decode(&reply.payload, reply_format).map_err(|error| {
            let start: String = String::from_utf8_lossy(&reply.payload)
                .chars()
                .take(REPLY_QUOTE_CHARS_MAX)
                .collect();
            failed(format!("{error}; the reply starts {start:?}"))
        })
    }
}

/// The live events of one process, decoded once and shared by every follower made from it.
/// Cheap to clone; the subscription ends when the last clone is dropped.
#[derive(Debug, Clone)]
pub struct EventHub {
    sender: broadcast::Sender<HubEvent>,
    _pump: Arc<AbortOnDrop>,
}

/// Aborts the hub's pump when the last hub handle goes.
#[derive(Debug)]
struct AbortOnDrop(JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

impl EventHub {
    /// Subscribes to `subject` (`<prefix>.evt.>`) and starts broadcasting what arrives,
    /// buffering [`HUB_EVENTS_MAX`] events. When this returns the subscription is active.
    pub async fn start(bus: &Bus, subject: &str) -> Result<EventHub, BusError> {
        EventHub::start_with_capacity(bus, subject, HUB_EVENTS_MAX).await
    }

    /// Like [`EventHub::start`], buffering `events_max` events (at least 1); useful to test
    /// followers that fall behind.
    pub async fn start_with_capacity(
        bus: &Bus,
        subject: &str,
        events_max: usize,
    ) -> Result<EventHub, BusError> {
        let subscription = bus.subscribe(subject).await?;
        let (sender, _) = broadcast::channel(events_max.max(1));
        let pump = tokio::spawn(pump(subscription, sender.clone()));
        Ok(EventHub {
            sender,
            _pump: Arc::new(AbortOnDrop(pump)),
        })
    }

    /// A receiver of every event broadcast from now on.
    fn subscribe(&self) -> broadcast::Receiver<HubEvent> {
        self.sender.subscribe()
    }
}

/// An event as a hub broadcasts it: decoded, and with the hash it was found to chain from.
///
/// Every follower of a process checks each live event's chain (H-N2), and with one hub they
/// all check the same events against the same hashes: the hub checks each event once against
/// the event it received before it, and a follower whose last hash is that one takes the
/// answer instead of hashing again: one hash per event instead of one per follower. Only the hub
/// makes these, so the claim cannot be forged from outside the process.
#[derive(Debug, Clone)]
struct HubEvent {
    event: Arc<RecordedEvent>,
    /// `Some(h)` when the hub computed that `event` chains from `h`; `None` when it did not
    /// check (no event before it) or the event does not chain from its predecessor.
    vouched_from: Option<Sha256>,
}

impl HubEvent {
    /// Whether the event chains from `previous`: the hub's answer when it checked against
    /// that hash, else computed here (and logged when it does not).
    fn chains_onto(&self, previous: Option<Sha256>) -> bool {
        if previous.is_some() && self.vouched_from == previous {
            return true;
        }
        chains_from(previous, &self.event)
    }
}

/// Moves events from the bus to the broadcast channel, decoded, each checked against the hash
/// of the event received before it when that one is its predecessor.
async fn pump(mut subscription: Subscription, sender: broadcast::Sender<HubEvent>) {
    // The last event received, whatever it was: only what the hub vouches for depends on it,
    // never what a follower accepts, so a forged event here costs the followers one hash of
    // their own for the event after it, nothing more.
    let mut last: Option<(u64, Sha256)> = None;
    while let Some(message) = subscription.next().await {
        if let Some(event) = decode_event(&message) {
            // `checked_add`: a forged event may carry any position, u64::MAX included.
            let vouched = last
                .filter(|&(position, hash)| {
                    position.checked_add(1) == Some(event.position) && chains(&hash, &event)
                })
                .map(|(_, hash)| hash);
            last = Some((event.position, event.hash));
            // No receiver is fine: nobody is following right now.
            let _ = sender.send(HubEvent {
                event: Arc::new(event),
                vouched_from: vouched,
            });
        }
    }
    tracing::warn!("the event subscription ended; followers of this hub get no more live events");
}

/// Decodes a published event by its `Content-Type` (JSON when absent, as everywhere).
fn decode_event(message: &Message) -> Option<RecordedEvent> {
    let content_type = message.headers.get(HEADER_CONTENT_TYPE);
    let Some(format) = Format::from_content_type(content_type) else {
        tracing::warn!(subject = %message.subject, ?content_type, "an event in an unknown format");
        return None;
    };
    match RecordedEvent::decode(&message.payload, format) {
        Ok(event) => Some(event),
        Err(error) => {
            tracing::warn!(subject = %message.subject, %error, "cannot decode a published event");
            None
        }
    }
}

/// Where a follower's live events come from.
#[derive(Debug)]
enum Live {
    /// None: the follower only pages through the log ([`LogFollower::read_page`]).
    Off,
    /// Its own subscription to `<prefix>.evt.>`; events are decoded only when they continue
    /// the cursor (duplicates are skipped by their position header).
    Subscription(Subscription),
    /// A receiver of an [`EventHub`].
    Hub(broadcast::Receiver<HubEvent>),
}

/// One page of the log as a follower read it.
#[derive(Debug, Clone)]
pub struct Page {
    /// The events after the cursor it was read at, contiguous (possibly none).
    pub events: Vec<Arc<RecordedEvent>>,
    /// The head the log reported.
    pub head: u64,
}

/// A `log.read` running in its own task, so that a cancelled wait does not lose it.
#[derive(Debug)]
struct PendingRead {
    from: u64,
    task: JoinHandle<Result<LogReadReply, FollowError>>,
}

/// A cursor over the log that yields every event after it once, in order (see the module's
/// documentation).
#[derive(Debug)]
pub struct LogFollower {
    reader: LogReader,
    live: Live,
    reconnects: watch::Receiver<u64>,
    reconnects_open: bool,
    cursor: u64,
    /// The hash of the event at the cursor, once known (from the log or a chained live event):
    /// the start of the chain that live events must continue.
    cursor_hash: Option<Sha256>,
    page_events: u32,
    idle_probe_interval: Duration,
    live_batch_events_max: usize,
    /// Whether the log must be read before live events continue the cursor.
    catching_up: bool,
    /// When the log was last found level or an event last arrived: the idle probe's clock.
    quiet_since: Instant,
    /// After a failure, no `log.read` before this.
    retry_at: Option<Instant>,
    pending: Option<PendingRead>,
}

impl LogFollower {
    /// A follower after `cursor` with its own subscription to `<prefix>.evt.>`. When this
    /// returns the subscription is active.
    pub async fn subscribe(
        bus: &Bus,
        options: &FollowOptions,
        cursor: u64,
    ) -> Result<LogFollower, BusError> {
        let subscription = bus.subscribe(&options.events_subject()).await?;
        Ok(LogFollower::with_live(
            bus,
            options,
            cursor,
            Live::Subscription(subscription),
        ))
    }

    /// A follower after `cursor` whose live events come from `hub` (from now on).
    pub fn from_hub(bus: &Bus, options: &FollowOptions, cursor: u64, hub: &EventHub) -> Self {
        LogFollower::with_live(bus, options, cursor, Live::Hub(hub.subscribe()))
    }

    /// A follower after `cursor` that only reads the log, page by page, with
    /// [`LogFollower::read_page`] (`next` would read the log again at every idle probe).
    pub fn log_only(bus: &Bus, options: &FollowOptions, cursor: u64) -> LogFollower {
        LogFollower::with_live(bus, options, cursor, Live::Off)
    }

    fn with_live(bus: &Bus, options: &FollowOptions, cursor: u64, live: Live) -> LogFollower {
        let mut reconnects = bus.reconnects();
        reconnects.borrow_and_update();
        LogFollower {
            reader: LogReader::new(bus, options),
            live,
            reconnects,
            reconnects_open: true,
            cursor,
            cursor_hash: chain_start(cursor),
            page_events: options.page_events.max(1),
            idle_probe_interval: options.idle_probe_interval,
            live_batch_events_max: options.live_batch_events_max.max(1),
            catching_up: true,
            quiet_since: Instant::now(),
            retry_at: None,
            pending: None,
        }
    }

    /// The last position handed out (or the one the follower was started or reset at).
    pub fn cursor(&self) -> u64 {
        self.cursor
    }

    /// Whether the follower knows itself level with the log: it is not paging through it.
    pub fn is_live(&self) -> bool {
        !self.catching_up
    }

    /// Moves the cursor to `cursor` (after the caller applied events by other means) and reads
    /// the log from there before trusting live events again.
    pub fn reset(&mut self, cursor: u64) {
        self.cursor = cursor;
        self.cursor_hash = chain_start(cursor);
        self.catching_up = true;
    }

    /// The next events after the cursor, at least one, contiguous; waits for them. A passing
    /// failure (see [`FollowError`]) is returned so the caller can log it; the next call
    /// tries again after a pause.
    pub async fn next(&mut self) -> Result<Vec<Arc<RecordedEvent>>, FollowError> {
        loop {
            if let Some(at) = self.retry_at {
                tokio::time::sleep_until(at).await;
                self.retry_at = None;
            }
            if self.catching_up {
                let page = self.read_page().await?;
                if !self.catching_up {
                    self.quiet_since = Instant::now();
                }
                if !page.events.is_empty() {
                    return Ok(page.events);
                }
                continue;
            }
            let probe_at = self.quiet_since + self.idle_probe_interval;
            let events = tokio::select! {
                biased;
                changed = self.reconnects.changed(), if self.reconnects_open => {
                    match changed {
                        Ok(()) => {
                            tracing::info!("bus reconnected; reading the log");
                            self.catching_up = true;
                        }
                        Err(_) => self.reconnects_open = false,
                    }
                    continue;
                }
                events = receive_live(&mut self.live, self.cursor, self.cursor_hash, self.live_batch_events_max) => events,
                () = tokio::time::sleep_until(probe_at) => {
                    self.catching_up = true;
                    continue;
                }
            };
            self.quiet_since = Instant::now();
            let received = events?;
            if received.gap {
                self.catching_up = true;
            }
            if let Some(last) = received.events.last() {
                self.cursor = last.position;
                self.cursor_hash = Some(last.hash);
                return Ok(received.events);
            }
        }
    }

    /// Reads one page of the log from the cursor + 1 and moves the cursor past its contiguous
    /// events. Empty at the head. Fails with [`FollowError::Missing`] when the log reports a
    /// head at or past the cursor + 1 but returns nothing there.
    pub async fn read_page(&mut self) -> Result<Page, FollowError> {
        let from = self.cursor.saturating_add(1);
        let reply = match self.read_at(from).await {
            Ok(reply) => reply,
            Err(error) => {
                self.retry_at =
                    Some(Instant::now() + self.idle_probe_interval.min(RETRY_PAUSE_MAX));
                return Err(error);
            }
        };
        let head = reply.head;
        let events: Vec<Arc<RecordedEvent>> = (from..)
            .zip(reply.events)
            .take_while(|(expected, recorded)| recorded.position == *expected)
            .map(|(_, recorded)| Arc::new(recorded))
            .collect();
        let Some(last) = events.last().map(|event| event.position) else {
            if head >= from {
                self.retry_at =
                    Some(Instant::now() + self.idle_probe_interval.min(RETRY_PAUSE_MAX));
                return Err(FollowError::Missing {
                    expected: from,
                    head,
                });
            }
            self.catching_up = false;
            return Ok(Page { events, head });
        };
        self.cursor = last;
        self.cursor_hash = events.last().map(|event| event.hash);
        if last < head {
            // Read the next page while the caller handles this one.
            self.pending = Some(self.spawn_read(last + 1));
        } else {
            self.catching_up = false;
        }
        Ok(Page { events, head })
    }

    /// The page at `from`: the one already being read, or a new read.
    async fn read_at(&mut self, from: u64) -> Result<LogReadReply, FollowError> {
        if self.pending.as_ref().is_some_and(|read| read.from != from) {
            if let Some(stale) = self.pending.take() {
                stale.task.abort();
            }
        }
        if self.pending.is_none() {
            self.pending = Some(self.spawn_read(from));
        }
        let Some(pending) = self.pending.as_mut() else {
            return Err(FollowError::LogRead {
                from,
                reason: "no read in progress".into(),
            });
        };
        let joined = (&mut pending.task).await;
        self.pending = None;
        joined.unwrap_or_else(|error| {
            Err(FollowError::LogRead {
                from,
                reason: format!("the read task failed: {error}"),
            })
        })
    }

    fn spawn_read(&self, from: u64) -> PendingRead {
        let reader = self.reader.clone();
        let max = self.page_events;
        PendingRead {
            from,
            task: tokio::spawn(async move { reader.read(from, max).await }),
        }
    }
}

impl Drop for LogFollower {
    fn drop(&mut self) {
        if let Some(pending) = self.pending.take() {
            pending.task.abort();
        }
    }
}

/// What one wait on the live source gave.
struct Received {
    /// The events that continue the cursor.
    events: Vec<Arc<RecordedEvent>>,
    /// Whether something was missing after them: the log must be read.
    gap: bool,
}

/// Waits for the next live event and takes what else is already waiting (up to `batch_max`),
/// keeping those that continue `cursor` and chain from `cursor_hash` (unknown: nothing
/// chains, so the log is read first). Never resolves without a live source. Cancel-safe:
/// nothing is taken from the source before the first event arrives, and everything after
/// it is taken without waiting.
async fn receive_live(
    live: &mut Live,
    cursor: u64,
    cursor_hash: Option<Sha256>,
    batch_max: usize,
) -> Result<Received, FollowError> {
    let mut received = Received {
        events: Vec::new(),
        gap: false,
    };
    // The hash the next event must chain from: the cursor's, then each one taken.
    let previous = |received: &Received| {
        received
            .events
            .last()
            .map(|event| event.hash)
            .or(cursor_hash)
    };
    match live {
        Live::Off => std::future::pending().await,
        Live::Subscription(subscription) => {
            let Some(first) = subscription.next().await else {
                return Err(FollowError::Closed);
            };
            let mut message = Some(first);
            let mut taken = 0usize;
            while let Some(current) = message.take() {
                taken += 1;
                let expected = cursor + received.events.len() as u64 + 1;
                match continue_from_message(&current, expected, previous(&received)) {
                    Continues::Duplicate => {}
                    Continues::Next(event) => received.events.push(event),
                    Continues::Gap => {
                        received.gap = true;
                        break;
                    }
                }
                if taken < batch_max {
                    if let Some(Some(next)) = subscription.next().now_or_never() {
                        message = Some(next);
                    }
                }
            }
        }
        Live::Hub(receiver) => {
            let mut first = Some(receiver.recv().await);
            let mut taken = 0usize;
            while let Some(current) = first.take() {
                taken += 1;
                match current {
                    Ok(hub_event) => {
                        let expected = cursor + received.events.len() as u64 + 1;
                        let position = hub_event.event.position;
                        if position == expected {
                            if !hub_event.chains_onto(previous(&received)) {
                                received.gap = true;
                                break;
                            }
                            received.events.push(hub_event.event);
                        } else if position > expected {
                            received.gap = true;
                            break;
                        }
                    }
                    Err(broadcast::error::RecvError::Lagged(missed)) => {
                        tracing::debug!(missed, "a follower lagged behind its hub");
                        received.gap = true;
                        break;
                    }
                    Err(broadcast::error::RecvError::Closed) => {
                        if received.events.is_empty() {
                            return Err(FollowError::Closed);
                        }
                        break;
                    }
                }
                if taken < batch_max {
                    match receiver.try_recv() {
                        Ok(event) => first = Some(Ok(event)),
                        Err(broadcast::error::TryRecvError::Lagged(missed)) => {
                            first = Some(Err(broadcast::error::RecvError::Lagged(missed)));
                        }
                        Err(broadcast::error::TryRecvError::Closed) => {
                            first = Some(Err(broadcast::error::RecvError::Closed));
                        }
                        Err(broadcast::error::TryRecvError::Empty) => {}
                    }
                }
            }
        }
    }
    Ok(received)
}

/// How a live message relates to the position expected next.
enum Continues {
    /// At or below the cursor: seen already.
    Duplicate,
    /// The expected event, decoded.
    Next(Arc<RecordedEvent>),
    /// Past the expected position, or unreadable: something is missing.
    Gap,
}

/// The hash live events must chain from at `cursor`, when it is known without the log: at 0
/// the chain starts from 32 zero bytes (eventlog's `Hash::ZERO`).
fn chain_start(cursor: u64) -> Option<Sha256> {
    (cursor == 0).then_some(Sha256([0; 32]))
}

/// Whether a live event at the expected position chains from `previous` (security.md H-N2);
/// logs the ones that do not when the chain's start is known.
fn chains_from(previous: Option<Sha256>, event: &RecordedEvent) -> bool {
    let Some(previous) = previous else {
        // The chain's start is not known yet (a fresh or reset follower): read the log.
        return false;
    };
    let chained = chains(&previous, event);
    if !chained {
        tracing::warn!(
            position = event.position,
            "a live event does not chain from the last one applied (forged or replayed?); reading the log"
        );
    }
    chained
}

/// Reads the position from the headers first, so that a duplicate costs no decoding.
fn continue_from_message(message: &Message, expected: u64, previous: Option<Sha256>) -> Continues {
    let headers = match EventHeaders::from_pairs(message.headers.iter()) {
        Ok(headers) => headers,
        Err(error) => {
            tracing::warn!(subject = %message.subject, %error, "ignoring a message without event headers");
            return Continues::Duplicate;
        }
    };
    if headers.position < expected {
        return Continues::Duplicate;
    }
    if headers.position > expected {
        tracing::debug!(expected, got = headers.position, "gap in live events");
        return Continues::Gap;
    }
    match RecordedEvent::decode(&message.payload, headers.format) {
        Ok(event) if event.position == expected => {
            if chains_from(previous, &event) {
                Continues::Next(Arc::new(event))
            } else {
                Continues::Gap
            }
        }
        Ok(event) => {
            tracing::warn!(
                header = headers.position,
                body = event.position,
                "event headers and body disagree; reading the log"
            );
            Continues::Gap
        }
        Err(error) => {
            tracing::warn!(position = expected, %error, "undecodable live event; reading the log");
            Continues::Gap
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use domain::{CommandId, Event, Timestamp, UserId, UserKind};
    use protocol::{HEADER_POSITION, HEADER_STREAM, HEADER_VERSION};

    use super::*;
    use crate::chain::chained_hash;

    fn event(position: u64, previous: &Sha256) -> RecordedEvent {
        let mut event = RecordedEvent {
            position,
            stream: format!("user-u{position}"),
            version: 1,
            event_id: uuid::Uuid::from_u128(u128::from(position)),
            command_id: CommandId(uuid::Uuid::from_u128(u128::from(position) + 1_000_000)),
            actor: "service:test".into(),
            recorded_at: Timestamp::from_millis(0),
            event: Event::UserRegistered {
                user_id: UserId::parse(&format!("u{position}")).unwrap(),
                display_name: format!("User {position}"),
                kind: UserKind::Client,
            },
            hash: Sha256([0; 32]),
            raw: None,
        };
        event.hash = chained_hash(previous, &event).unwrap();
        event
    }

    async fn publish(bus: &Bus, event: &RecordedEvent) {
        let headers = Headers::new()
            .with(HEADER_POSITION, event.position.to_string())
            .with(HEADER_STREAM, event.stream.clone())
            .with(HEADER_VERSION, event.version.to_string())
            .with(HEADER_CONTENT_TYPE, Format::Bincode.content_type());
        bus.publish(
            "parlor.evt.user_registered",
            headers,
            event.encode(Format::Bincode).unwrap(),
        )
        .await
        .unwrap();
    }

    /// The hub vouches for a chain link only where it computed one, and a follower takes its
    /// word only for the hash it vouched for: a forged event, an event after a gap and an
    /// event whose predecessor the hub never saw are each checked by the follower itself.
    #[tokio::test]
    async fn the_hub_vouches_only_for_links_it_checked() {
        let bus = Bus::in_process();
        let hub = EventHub::start(&bus, "parlor.evt.>").await.unwrap();
        let mut receiver = hub.subscribe();
        let zero = Sha256([0; 32]);
        let first = event(1, &zero);
        let second = event(2, &first.hash);
        let mut forged = event(3, &second.hash);
        forged.actor = "mallory".into();
        let third = event(3, &second.hash);
        let fifth = event(5, &third.hash);
        for event in [&first, &second, &forged, &third, &fifth] {
            publish(&bus, event).await;
        }
        let mut received = Vec::new();
        for _ in 0..5 {
            received.push(next(&mut receiver).await);
        }

        assert_eq!(received[0].vouched_from, None, "no event before the first");
        assert_eq!(received[1].vouched_from, Some(first.hash));
        assert!(received[1].chains_onto(Some(first.hash)));
        assert_eq!(
            received[2].vouched_from, None,
            "the forged event does not chain"
        );
        assert!(!received[2].chains_onto(Some(second.hash)));
        assert_eq!(
            received[3].vouched_from, None,
            "the real 3 came after the forged 3, not after 2"
        );
        assert!(
            received[3].chains_onto(Some(second.hash)),
            "the follower checks it itself"
        );
        assert_eq!(received[4].vouched_from, None, "5 does not follow 3");
        assert!(
            !received[4].chains_onto(Some(second.hash)),
            "checked by the follower: 5 does not chain from 2"
        );
        assert!(
            !received[1].chains_onto(Some(zero)),
            "vouched for another hash than the follower's: checked, and refused"
        );
        assert!(
            !received[1].chains_onto(None),
            "an unknown chain start is a gap"
        );

        // A forged event at the last position there is, then another: the hub goes on.
        let mut at_the_end = event(6, &fifth.hash);
        at_the_end.position = u64::MAX;
        let after = event(7, &fifth.hash);
        publish(&bus, &at_the_end).await;
        publish(&bus, &after).await;
        assert_eq!(next(&mut receiver).await.vouched_from, None);
        assert_eq!(next(&mut receiver).await.vouched_from, None);
    }

    /// The hub's next event; fails rather than waits forever when the pump has died.
    async fn next(receiver: &mut broadcast::Receiver<HubEvent>) -> HubEvent {
        tokio::time::timeout(std::time::Duration::from_secs(5), receiver.recv())
            .await
            .expect("the hub broadcast nothing for 5 s (its pump died?)")
            .unwrap()
    }
}
