//! The projection runtime: a read model behind the [`Projector`] trait, kept level with the log
//! by [`Runner`] and serving its queries over the bus; [`rebuild`] and [`replay`] build a model
//! from the log alone.
//!
//! The runner follows the log with a [`bus::LogFollower`] at the model's checkpoint (protocol.md
//! §2: no event is ever lost to a read model): catch-up through `log.read` first, then live
//! `evt.>` events, every gap, lag and reconnect closed from the log, and an idle probe for a
//! dropped last event. Its live events come from its own subscription, or, with
//! [`Runner::with_hub`], from an [`EventHub`] the process shares: then each event is received
//! and decoded once per process, and every model takes it from the hub at its own pace (a model
//! that falls behind the hub's buffer reads the log instead). Each batch the follower yields is
//! one store write; while the follower pages through the log it reads the next page while the
//! current one is written.
//!
//! With [`Runner::with_live_rebuild`], the runner also rebuilds its model from the log into a
//! fresh instance on request and swaps it in between two live batches
//! ([`crate::live_rebuild`]).
//!
//! Blocking work (the store) runs on tokio's blocking pool; the model sits behind an `RwLock`, so
//! queries run concurrently with each other and wait only while a batch is written.
//!
//! Writing a read model: own a [`crate::Store`] (or an index that commits its checkpoint with
//! its changes), and in [`Projector::apply`] take `unapplied(batch, checkpoint)?`, buffer the
//! changes of every event in one [`crate::store::Changes`], and `commit(last.position)`; the
//! rooms, timeline and moderation modules are three examples of that shape.

use std::path::{Path, PathBuf};
use std::sync::{Arc, PoisonError, RwLock};
use std::time::{Duration, Instant};

use bus::{
    Bus, BusError, EventHub, FollowError, FollowOptions, Headers, LogFollower, LogReader, Message,
    Subscription,
};
use clock::Clock;
use domain::Timestamp;
use protocol::{Format, LogReadReply, RecordedEvent, HEADER_CONTENT_TYPE};
use serde_json::{json, Value};
use tokio::sync::{mpsc, watch, Semaphore};
use tokio::task::JoinSet;
use tracing::{debug, info, warn};

use crate::envelope::EventEnvelope;
use crate::error::{ProjectionError, QueryError};
use crate::live_rebuild::{self, Handover};
use crate::presence::{self, Presence};
use crate::query::{encode_reply, ModelQuery, Operation, QueryRequest};
use crate::store::{dump_digest, Dump};

/// Events asked for per `log.read` page during a catch-up (one store write each).
pub const CATCH_UP_PAGE_EVENTS: u32 = 1_000;

/// Live events applied as one batch (one store write) when several are waiting.
pub const LIVE_BATCH_EVENTS_MAX: usize = bus::follow::LIVE_BATCH_EVENTS_MAX;

/// Queries answered at the same time by one runner; further requests wait in the bus's
/// bounded subscription buffer.
pub const QUERIES_IN_FLIGHT_MAX: usize = 64;

/// Events per store write in [`rebuild`].
pub const REBUILD_BATCH_EVENTS: usize = 1_000;

/// A message to publish that is not an answer: a notification batch, say. `subject` comes
/// after the prefix (`notify.alice` is published on `<prefix>.notify.alice`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outgoing {
    /// The subject after `<prefix>.`.
    pub subject: String,
    /// A JSON body.
    pub payload: Vec<u8>,
}

/// A read model: a fold of the log into its own store, answering queries.
///
/// Every method is synchronous and may block on its store; the runtime calls them on tokio's
/// blocking pool. Implementations keep their checkpoint in the same atomic write as the changes
/// (see [`crate::store::Changes::commit`]).
pub trait Projector: Send + Sync + 'static {
    /// The model's name: its query subject `<prefix>.query.<name>`, its queue group
    /// `parlor-<name>` and its directory `<data_dir>/projections/<name>/`.
    fn name(&self) -> &'static str;

    /// The position of the last applied event (0 for a new model).
    fn position(&self) -> u64;

    /// Applies a batch of events in position order, writing the model's changes and the new
    /// checkpoint in one atomic store operation. Envelopes at or below the checkpoint are
    /// skipped, so applying anything twice has no effect; a batch that would leave a gap is
    /// refused with [`ProjectionError::Gap`] (use [`unapplied`]).
    fn apply(&mut self, batch: &[EventEnvelope]) -> Result<(), ProjectionError>;

    /// The model's operations (`protocol::query`): what the runtime reads a request on
    /// `<prefix>.query.<name>` as.
    type Query: ModelQuery;

    /// Answers one query (docs/queries.md) at `now` (the clock of the service, dev-clock aware,
    /// for presence and away periods). `status` and `min_position` are handled by the runtime;
    /// the request's parameters are read and checked already.
    fn query(
        &self,
        request: &QueryRequest<Self::Query>,
        now: Timestamp,
    ) -> Result<Value, QueryError>;

    /// The whole model as ordered `(key, value)` pairs, leaving out state that depends on the
    /// clock rather than the log: equal logs give equal dumps, however they were applied. For
    /// tests and consistency checks: it holds the whole model in memory.
    fn dump(&self) -> Result<Dump, ProjectionError>;

    /// A digest of [`Projector::dump`] (sha256, 64 lowercase hex characters).
    fn digest(&self) -> Result<String, ProjectionError> {
        self.dump().map(|dump| dump_digest(&dump))
    }

    /// Work that falls due with time rather than with an event (notification batches): called
    /// after every applied batch and at every idle tick; returns messages to publish, after
    /// recording in the store that they were sent. None by default.
    fn due(&mut self, _now: Timestamp) -> Result<Vec<Outgoing>, ProjectionError> {
        Ok(Vec::new())
    }

    /// [`Projector::apply`] (when `batch` is not empty) then [`Projector::due`]: what the
    /// runtime does with every batch it is handed. A model may do both in one commit (the
    /// notifications model then never writes what a batch makes and its tick takes at once).
    fn apply_and_due(
        &mut self,
        batch: &[EventEnvelope],
        now: Timestamp,
    ) -> Result<Vec<Outgoing>, ProjectionError> {
        if !batch.is_empty() {
            self.apply(batch)?;
        }
        self.due(now)
    }

    /// Makes everything applied so far durable (called when the runner stops).
    fn flush(&self) -> Result<(), ProjectionError> {
        Ok(())
    }

    /// Ends a rebuild from the log: makes it durable and leaves it in its best shape for
    /// serving (the search index merges its segments). [`Projector::flush`] by default.
    fn finish_rebuild(&self) -> Result<(), ProjectionError> {
        self.flush()
    }
}

/// The part of `batch` not yet applied at `checkpoint`: envelopes at or below it are skipped,
/// and the rest must continue it without a gap.
pub fn unapplied(
    batch: &[EventEnvelope],
    checkpoint: u64,
) -> Result<&[EventEnvelope], ProjectionError> {
    let start = batch
        .iter()
        .position(|envelope| envelope.position > checkpoint)
        .unwrap_or(batch.len());
    let fresh = &batch[start..];
    let mut expected = checkpoint.saturating_add(1);
    for envelope in fresh {
        if envelope.position != expected {
            return Err(ProjectionError::Gap {
                expected,
                got: envelope.position,
            });
        }
        expected = expected.saturating_add(1);
    }
    Ok(fresh)
}

/// Builds `projector` from the log alone: applies `events` (in position order) in batches of
/// [`REBUILD_BATCH_EVENTS`]. Returns the position reached.
pub fn rebuild<P, I>(projector: &mut P, events: I) -> Result<u64, ProjectionError>
where
    P: Projector + ?Sized,
    I: IntoIterator<Item = EventEnvelope>,
{
    replay(projector, events, REBUILD_BATCH_EVENTS, |_| {})
}

/// Like [`rebuild`], with the batch size chosen and `progress` told the position after each
/// batch (for `parlor replay`).
pub fn replay<P, I>(
    projector: &mut P,
    events: I,
    batch_events: usize,
    mut progress: impl FnMut(u64),
) -> Result<u64, ProjectionError>
where
    P: Projector + ?Sized,
    I: IntoIterator<Item = EventEnvelope>,
{
    let batch_events = batch_events.max(1);
    let mut batch = Vec::with_capacity(batch_events);
    for envelope in events {
        batch.push(envelope);
        if batch.len() == batch_events {
            projector.apply(&batch)?;
            batch.clear();
            progress(projector.position());
        }
    }
    if !batch.is_empty() {
        projector.apply(&batch)?;
        progress(projector.position());
    }
    Ok(projector.position())
}

/// Batches [`replay_read_ahead`] keeps read and decoded ahead of the one being applied.
pub const READ_AHEAD_BATCHES: usize = 2;

/// Like [`replay`], with the log read on a second thread a batch or two ahead of the model, and
/// [`Projector::finish_rebuild`] at the end,
/// so that reading and applying share two cores instead of taking turns (`parlor replay` on a
/// stopped data directory). `read_batch(from)` returns the next decoded events from `from` on
/// (empty at the end; an error as text); reading stops after `head`. Applied batches go back to
/// the reading thread to be freed where they were allocated: glibc's malloc frees another
/// thread's memory under that thread's arena lock, which made the models that do little per
/// event slower than reading on one thread. `progress` is told the position after each batch.
pub fn replay_read_ahead<P, R>(
    model: &mut P,
    from: u64,
    head: u64,
    read_batch: R,
    mut progress: impl FnMut(u64),
) -> Result<u64, ProjectionError>
where
    P: Projector + ?Sized,
    R: FnMut(u64) -> Result<Vec<EventEnvelope>, String> + Send,
{
    std::thread::scope(|scope| -> Result<(), ProjectionError> {
        let (sender, batches) = std::sync::mpsc::sync_channel(READ_AHEAD_BATCHES);
        let (give_back, spent) = std::sync::mpsc::channel();
        scope.spawn(move || read_ahead(read_batch, from.max(1), head, &sender, &spent));
        for batch in batches {
            // On an error the receiver is dropped on return, which stops the reader.
            let batch = batch.map_err(ProjectionError::LogRead)?;
            model.apply(&batch)?;
            progress(model.position());
            // The reader may have finished; then the batch is freed here.
            let _ = give_back.send(batch);
        }
        Ok(())
    })?;
    model.finish_rebuild()?;
    Ok(model.position())
}

/// The reading thread of [`replay_read_ahead`]: sends batches (or the first error) until `head`
/// or the receiver is gone, and frees the batches that come back on `spent`.
fn read_ahead<R>(
    mut read_batch: R,
    from: u64,
    head: u64,
    batches: &std::sync::mpsc::SyncSender<Result<Vec<EventEnvelope>, String>>,
    spent: &std::sync::mpsc::Receiver<Vec<EventEnvelope>>,
) where
    R: FnMut(u64) -> Result<Vec<EventEnvelope>, String>,
{
    let mut next = from;
    while next <= head {
        // Free (by dropping) the batches the model is done with.
        while spent.try_recv().is_ok() {}
        let batch = read_batch(next);
        // After an error, or an empty read, there is nothing more to read.
        let last = batch
            .as_ref()
            .ok()
            .and_then(|events| events.last())
            .map(|event| event.position);
        if batches.send(batch).is_err() {
            return;
        }
        match last {
            Some(position) => next = position + 1,
            None => return,
        }
    }
}

/// How a [`Runner`] talks to the log and answers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunOptions {
    /// The subject prefix (`parlor`).
    pub subject_prefix: String,
    /// The format of `log.read` requests and so of their replies; bincode is the compact one.
    pub log_read_format: Format,
    /// How long one `log.read` may take.
    pub log_read_timeout: Duration,
    /// Events asked for per catch-up page.
    pub catch_up_page_events: u32,
    /// Quiet time after which the log is probed for a dropped last event; also the period of
    /// [`Projector::due`] ticks.
    pub idle_probe_interval: Duration,
    /// How long a query with `min_position` waits before `projection_lagging`.
    pub min_position_wait_max: Duration,
}

impl RunOptions {
    /// The defaults under `subject_prefix`: bincode `log.read` with a 5 s timeout, pages of
    /// [`CATCH_UP_PAGE_EVENTS`], a 1 s idle probe, and a 5 s `min_position` wait (protocol.md §3).
    pub fn new(subject_prefix: &str) -> RunOptions {
        RunOptions {
            subject_prefix: subject_prefix.to_owned(),
            log_read_format: Format::Bincode,
            log_read_timeout: Duration::from_secs(5),
            catch_up_page_events: CATCH_UP_PAGE_EVENTS,
            idle_probe_interval: Duration::from_secs(1),
            min_position_wait_max: Duration::from_secs(5),
        }
    }

    pub(crate) fn subject(&self, suffix: &str) -> String {
        format!("{}.{suffix}", self.subject_prefix)
    }

    /// How the runner's [`LogFollower`] reads the log: these options, pages of
    /// `page_events`, batches of [`LIVE_BATCH_EVENTS_MAX`].
    pub fn follow_options(&self, page_events: u32) -> FollowOptions {
        let mut options = FollowOptions::new(&self.subject_prefix);
        options.format = self.log_read_format;
        options.timeout = self.log_read_timeout;
        options.page_events = page_events;
        options.idle_probe_interval = self.idle_probe_interval;
        options.live_batch_events_max = LIVE_BATCH_EVENTS_MAX;
        options
    }
}

/// A read model shared between the runner, its queries and its owner (for `/healthz`, tests and
/// `parlor replay`).
#[derive(Debug)]
pub struct Shared<P> {
    model: Slot<P>,
}

/// The runner's model instance. `None` only while a live rebuild swaps instances (under the
/// write lock, so nobody sees it), or after a swap failed so badly that neither instance
/// opens, which stops the runner.
pub(crate) type Slot<P> = Arc<RwLock<Option<P>>>;

impl<P> Clone for Shared<P> {
    fn clone(&self) -> Self {
        Shared {
            model: Arc::clone(&self.model),
        }
    }
}

impl<P: Projector> Shared<P> {
    /// Runs `read` on the model (blocking while a batch is being written).
    pub fn read<R>(&self, read: impl FnOnce(&P) -> R) -> Result<R, ProjectionError> {
        let model = self.model.read().map_err(poisoned)?;
        Ok(read(model.as_ref().ok_or_else(closed)?))
    }
}

/// What [`OpenModel`] opens an instance for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OpenFor {
    /// Following the log live and answering queries.
    Serving,
    /// Being rebuilt from the log in bulk, unseen until it is swapped in (the search index
    /// uses its bulk settings).
    Rebuilding,
}

/// Opens an instance of a read model in a directory: how a runner with live rebuilds makes
/// the fresh instance it rebuilds, and reopens it in place after the swap.
pub type OpenModel<P> = Arc<dyn Fn(&Path, OpenFor) -> Result<P, ProjectionError> + Send + Sync>;

/// Where a runner's model lives and how to open another instance of it: what live rebuilds
/// (`<prefix>.admin.replay.<name>`) need.
pub struct LiveRebuild<P> {
    /// The model's directory (`<data_dir>/projections/<name>`); the rebuild is written beside
    /// it, into `<name>.rebuild`.
    pub directory: PathBuf,
    /// Opens an instance at a directory.
    pub open: OpenModel<P>,
}

impl<P> Clone for LiveRebuild<P> {
    fn clone(&self) -> Self {
        LiveRebuild {
            directory: self.directory.clone(),
            open: Arc::clone(&self.open),
        }
    }
}

impl<P> std::fmt::Debug for LiveRebuild<P> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LiveRebuild")
            .field("directory", &self.directory)
            .finish_non_exhaustive()
    }
}

/// Runs one read model: follows the log and serves its queries until stopped.
#[derive(Debug)]
pub struct Runner<P> {
    pub(crate) model: Slot<P>,
    pub(crate) name: &'static str,
    pub(crate) bus: Bus,
    clock: Clock,
    pub(crate) options: RunOptions,
    pub(crate) position: watch::Sender<u64>,
    pub(crate) live_rebuild: Option<LiveRebuild<P>>,
    hub: Option<EventHub>,
    /// The heartbeat table this runner fills, for a model that shows who is online.
    presence: Option<Presence>,
    /// How many queries wait for their `min_position` right now.
    queries_waiting: Arc<watch::Sender<usize>>,
    /// The highest position the follower has handed over (applied or being applied): a lower
    /// bound of the log's head, so a `min_position` at or below it is not beyond the head.
    head_seen: Arc<watch::Sender<u64>>,
}

/// Runs `projector` on `bus` under `subject_prefix` with the default [`RunOptions`] until `stop`
/// turns true (or its sender is dropped).
pub async fn run<P: Projector>(
    projector: P,
    bus: Bus,
    subject_prefix: &str,
    clock: Clock,
    stop: watch::Receiver<bool>,
) -> Result<(), ProjectionError> {
    Runner::new(projector, bus, clock, RunOptions::new(subject_prefix))
        .run(stop)
        .await
}

impl<P: Projector> Runner<P> {
    /// A runner for `projector`; nothing happens until [`Runner::run`].
    pub fn new(projector: P, bus: Bus, clock: Clock, options: RunOptions) -> Runner<P> {
        let name = projector.name();
        // The subject it serves and the operations it reads name the same model.
        debug_assert_eq!(name, <P::Query as ModelQuery>::MODEL.name());
        let (position, _) = watch::channel(projector.position());
        Runner {
            model: Arc::new(RwLock::new(Some(projector))),
            name,
            bus,
            clock,
            options,
            position,
            live_rebuild: None,
            hub: None,
            presence: None,
            queries_waiting: Arc::new(watch::channel(0).0),
            head_seen: Arc::new(watch::channel(0).0),
        }
    }

    /// Takes live events from `hub` (shared by the models of this process, decoded once)
    /// instead of a subscription of its own.
    #[must_use]
    pub fn with_hub(mut self, hub: EventHub) -> Runner<P> {
        self.hub = Some(hub);
        self
    }

    /// Fills `presence` from `<prefix>.presence.heartbeat` (every replica subscribes plainly,
    /// so each keeps its own table) and answers each heartbeat once it is recorded. The model
    /// that shows who is online holds a clone of the same table (the rooms model:
    /// `Rooms::with_presence`), and so must every instance its [`LiveRebuild::open`] opens,
    /// so the table outlives a live rebuild's swap.
    #[must_use]
    pub fn with_presence(mut self, presence: Presence) -> Runner<P> {
        self.presence = Some(presence);
        self
    }

    /// Serves live rebuilds of the model on `<prefix>.admin.replay.<name>` (docs/queries.md):
    /// a fresh instance is built from the log beside `rebuild.directory` while this one keeps
    /// serving, then swapped in.
    #[must_use]
    pub fn with_live_rebuild(mut self, rebuild: LiveRebuild<P>) -> Runner<P> {
        self.live_rebuild = Some(rebuild);
        self
    }

    /// The applied position, updated after every write (for `/healthz` and read-your-writes).
    pub fn position(&self) -> watch::Receiver<u64> {
        self.position.subscribe()
    }

    /// How many queries wait for their `min_position` right now: a test that must reach the
    /// waiting path synchronises on it instead of on time.
    pub fn queries_waiting(&self) -> watch::Receiver<usize> {
        self.queries_waiting.subscribe()
    }

    /// The model, for reading it from outside the runner.
    pub fn model(&self) -> Shared<P> {
        Shared {
            model: Arc::clone(&self.model),
        }
    }

    /// Follows the log and serves queries until `stop` turns true (or its sender is dropped);
    /// then flushes the store. Fails when the store fails or the bus is closed for good;
    /// an unreachable writer is not an error (queries are still answered, catch-up retried).
    pub async fn run(self, stop: watch::Receiver<bool>) -> Result<(), ProjectionError> {
        // Live first: an event published while the catch-up runs is then buffered, not lost.
        let follow_options = self
            .options
            .follow_options(self.options.catch_up_page_events);
        let checkpoint = *self.position.borrow();
        let follower = match &self.hub {
            Some(hub) => LogFollower::from_hub(&self.bus, &follow_options, checkpoint, hub),
            None => LogFollower::subscribe(&self.bus, &follow_options, checkpoint).await?,
        };
        let queries = self
            .bus
            .queue_subscribe(
                &self.options.subject(&format!("query.{}", self.name)),
                &format!("parlor-{}", self.name),
            )
            .await?;
        let heartbeats = match &self.presence {
            Some(presence) => Some((
                presence.clone(),
                self.bus
                    .subscribe(&self.options.subject("presence.heartbeat"))
                    .await?,
            )),
            None => None,
        };
        let mut services = JoinSet::new();
        // Rebuilt instances come back to the follow loop, the only place that applies events
        // to the live one, to be levelled and swapped in between two live batches.
        let mut handovers = None;
        if let Some(rebuild) = &self.live_rebuild {
            let (handover, handed_over) = mpsc::channel(1);
            let requests = live_rebuild::subscribe(&self.bus, &self.options, self.name).await?;
            services.spawn(live_rebuild::serve_requests(
                requests,
                live_rebuild::Context {
                    name: self.name,
                    bus: self.bus.clone(),
                    options: self.options.clone(),
                    rebuild: rebuild.clone(),
                    position: self.position.subscribe(),
                    handover,
                },
                stop.clone(),
            ));
            handovers = Some(handed_over);
        }
        let answers = Answers {
            model: Arc::clone(&self.model),
            name: self.name,
            bus: self.bus.clone(),
            clock: self.clock.clone(),
            position: self.position.subscribe(),
            wait_max: self.options.min_position_wait_max,
            waiting: Arc::clone(&self.queries_waiting),
            options: self.options.clone(),
            head_known: Arc::default(),
            head_seen: self.head_seen.subscribe(),
            waiting_by_caller: Arc::default(),
        };
        services.spawn(serve_queries(queries, answers, stop.clone()));
        if let Some((presence, subscription)) = heartbeats {
            services.spawn(presence::serve_heartbeats(
                subscription,
                presence,
                self.bus.clone(),
                self.clock.clone(),
                self.position.subscribe(),
                stop.clone(),
            ));
        }
        info!(
            model = self.name,
            position = *self.position.borrow(),
            "projector starting"
        );
        let result = self.follow(follower, handovers, stop).await;
        // The services watch `stop` too, but after an error it may still be false.
        services.abort_all();
        while services.join_next().await.is_some() {}
        let model = Arc::clone(&self.model);
        let flushed = tokio::task::spawn_blocking(move || {
            let model = model.read().map_err(poisoned)?;
            model.as_ref().map_or(Ok(()), |model| model.flush())
        })
        .await
        .map_err(join_failed)
        .and_then(|flushed| flushed);
        info!(
            model = self.name,
            position = *self.position.borrow(),
            "projector stopped"
        );
        result.and(flushed)
    }

    /// The follow loop: applies what the follower yields, swaps in rebuilt instances, and
    /// runs [`Projector::due`] at every tick.
    async fn follow(
        &self,
        mut follower: LogFollower,
        mut handovers: Option<mpsc::Receiver<Handover<P>>>,
        mut stop: watch::Receiver<bool>,
    ) -> Result<(), ProjectionError> {
        let mut ticks = tokio::time::interval(self.options.idle_probe_interval);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        ticks.tick().await;
        let mut failures = FollowFailures::default();
        loop {
            tokio::select! {
                () = stopped(&mut stop) => return Ok(()),
                events = follower.next() => match events {
                    Ok(events) => {
                        failures.recovered(self.name);
                        if let Some(last) = events.last().map(|event| event.position) {
                            self.head_seen.send_if_modified(|seen| {
                                let higher = last > *seen;
                                *seen = (*seen).max(last);
                                higher
                            });
                        }
                        self.write(envelopes(events)).await?;
                    }
                    Err(FollowError::Closed) => return Err(ProjectionError::Bus(BusError::Closed)),
                    // Retried by the follower after a pause; queries are still answered.
                    Err(error) => failures.failed(self.name, &error),
                },
                handover = next_handover(&mut handovers) => {
                    // Live events wait in the follower's source meanwhile, and are applied to
                    // the swapped-in instance afterwards: nothing is dropped or reordered.
                    let Some(handover) = handover else {
                        handovers = None;
                        continue;
                    };
                    let outcome = self.take_over(handover.model).await?;
                    let _ = handover.reply.send(outcome);
                    // The swap levelled the model through log.read: follow on from there.
                    follower.reset(*self.position.borrow());
                }
                _ = ticks.tick() => self.write(Vec::new()).await?,
            }
        }
    }

    /// One `log.read` request.
    pub(crate) async fn log_read(
        &self,
        from: u64,
        max: u32,
    ) -> Result<LogReadReply, ProjectionError> {
        log_read(&self.bus, &self.options, from, max).await
    }

    /// Applies `batch` (possibly empty), runs [`Projector::due`], publishes what fell due and
    /// announces the new position.
    pub(crate) async fn write(&self, batch: Vec<EventEnvelope>) -> Result<(), ProjectionError> {
        let model = Arc::clone(&self.model);
        let now = self.clock.now();
        let (position, outgoing) = tokio::task::spawn_blocking(move || {
            let mut model = model.write().map_err(poisoned)?;
            let model = model.as_mut().ok_or_else(closed)?;
            let outgoing = model.apply_and_due(&batch, now)?;
            Ok::<_, ProjectionError>((model.position(), outgoing))
        })
        .await
        .map_err(join_failed)??;
        self.position.send_if_modified(|announced| {
            let changed = *announced != position;
            *announced = position;
            changed
        });
        for message in outgoing {
            let subject = self.options.subject(&message.subject);
            let headers = Headers::new().with(HEADER_CONTENT_TYPE, Format::Json.content_type());
            if let Err(error) = self.bus.publish(&subject, headers, message.payload).await {
                // Recorded as sent already: at most once, by design (a duplicate is worse).
                warn!(model = self.name, %subject, %error, "could not publish");
            }
        }
        Ok(())
    }
}

/// One `log.read` request on `bus`.
pub(crate) async fn log_read(
    bus: &Bus,
    options: &RunOptions,
    from: u64,
    max: u32,
) -> Result<LogReadReply, ProjectionError> {
    LogReader::new(bus, &options.follow_options(max))
        .read(from, max)
        .await
        .map_err(|error| ProjectionError::LogRead(error.to_string()))
}

/// The follower's events as read models apply them; an event shared with other models of the
/// process (through a hub) is copied, one taken from the log or a subscription is moved.
pub(crate) fn envelopes(events: Vec<Arc<RecordedEvent>>) -> Vec<EventEnvelope> {
    events
        .into_iter()
        .map(|event| {
            EventEnvelope::from(Arc::try_unwrap(event).unwrap_or_else(|shared| (*shared).clone()))
        })
        .collect()
}

/// The next rebuilt instance handed over, or never when live rebuilds are off.
async fn next_handover<P>(
    handovers: &mut Option<mpsc::Receiver<Handover<P>>>,
) -> Option<Handover<P>> {
    match handovers {
        Some(receiver) => receiver.recv().await,
        None => std::future::pending().await,
    }
}

/// The events of a `log.read` page that continue from `from` without a gap.
pub(crate) fn contiguous(events: Vec<RecordedEvent>, from: u64) -> Vec<EventEnvelope> {
    (from..)
        .zip(events)
        .take_while(|(expected, recorded)| recorded.position == *expected)
        .map(|(_, recorded)| EventEnvelope::from(recorded))
        .collect()
}

/// What a query answer needs, cloned into each answering task.
struct Answers<P> {
    model: Slot<P>,
    name: &'static str,
    bus: Bus,
    clock: Clock,
    position: watch::Receiver<u64>,
    wait_max: Duration,
    waiting: Arc<watch::Sender<usize>>,
    /// For asking the log's head (H-L1).
    options: RunOptions,
    /// The highest log head `log.read` reported to the head check.
    head_known: Arc<std::sync::atomic::AtomicU64>,
    /// The highest position the follower has handed over (see `Runner::head_seen`).
    head_seen: watch::Receiver<u64>,
    /// Reads waiting for `min_position`, per caller (H-L1).
    waiting_by_caller: Arc<std::sync::Mutex<std::collections::HashMap<String, usize>>>,
}

impl<P> Clone for Answers<P> {
    fn clone(&self) -> Self {
        Answers {
            model: Arc::clone(&self.model),
            name: self.name,
            bus: self.bus.clone(),
            clock: self.clock.clone(),
            position: self.position.clone(),
            wait_max: self.wait_max,
            waiting: Arc::clone(&self.waiting),
            options: self.options.clone(),
            head_known: Arc::clone(&self.head_known),
            head_seen: self.head_seen.clone(),
            waiting_by_caller: Arc::clone(&self.waiting_by_caller),
        }
    }
}

impl<P: Projector> Answers<P> {
    async fn answer(&self, message: Message) {
        let result = match QueryRequest::<Operation<P::Query>>::parse(&message.payload) {
            Ok(request) => self.result(request).await,
            Err(error) => Err(error.into()),
        };
        let headers = Headers::new().with(HEADER_CONTENT_TYPE, Format::Json.content_type());
        match self
            .bus
            .respond(&message, headers.clone(), encode_reply(&result))
            .await
        {
            Ok(()) => {}
            Err(BusError::PayloadTooLarge { .. }) => {
                let too_large = Err(QueryError::Unavailable(
                    "the answer is larger than a message; ask for a smaller limit".into(),
                ));
                let _ = self
                    .bus
                    .respond(&message, headers, encode_reply(&too_large))
                    .await;
            }
            Err(error) => debug!(model = self.name, %error, "could not answer a query"),
        }
    }

    async fn result(
        &self,
        request: QueryRequest<Operation<P::Query>>,
    ) -> Result<(u64, Value), QueryError> {
        let mut position = self.position.clone();
        if let Some(min_position) = request.min_position {
            let behind = *position.borrow() < min_position;
            // H-L1: a position the log does not have yet is refused at once, and a caller has
            // at most a few reads waiting, so nobody can hold the answering slots.
            let _slot = if behind {
                self.check_not_beyond_head(min_position).await?;
                Some(CallerWait::take(
                    &self.waiting_by_caller,
                    request.caller.as_deref(),
                )?)
            } else {
                None
            };
            if behind {
                self.waiting.send_modify(|waiting| *waiting += 1);
            }
            let reached = matches!(
                tokio::time::timeout(self.wait_max, position.wait_for(|p| *p >= min_position))
                    .await,
                Ok(Ok(_))
            );
            if behind {
                self.waiting
                    .send_modify(|waiting| *waiting = waiting.saturating_sub(1));
            }
            if !reached {
                return Err(QueryError::Lagging {
                    min_position,
                    position: *position.borrow(),
                });
            }
        }
        let Some(request) = request.into_model() else {
            let position = *position.borrow();
            return Ok((position, json!({"name": self.name, "position": position})));
        };
        let now = self.clock.now();
        let model = Arc::clone(&self.model);
        tokio::task::spawn_blocking(move || {
            let model = model.read().map_err(poisoned)?;
            let model = model.as_ref().ok_or_else(closed)?;
            let data = model.query(&request, now)?;
            Ok((model.position(), data))
        })
        .await
        .map_err(|error| QueryError::Unavailable(error.to_string()))?
    }
}

impl<P> Answers<P> {
    /// Refuses a `min_position` beyond the log's head (H-L1). A read-your-writes query names a
    /// position the writer has committed and published, so the follower has usually handed it
    /// over already, or does within [`HEAD_SEEN_GRACE`]; only past that is the log asked for
    /// its head (one `log.read`). When the log cannot be asked (the writer restarts), the read
    /// waits as before.
    async fn check_not_beyond_head(&self, min_position: u64) -> Result<(), QueryError> {
        use std::sync::atomic::Ordering;
        if min_position <= self.head_known.load(Ordering::SeqCst) {
            return Ok(());
        }
        let mut seen = self.head_seen.clone();
        // The guard `wait_for` returns is dropped at once (it must not live across an await).
        let handed_over = tokio::time::timeout(HEAD_SEEN_GRACE, async {
            seen.wait_for(|seen| *seen >= min_position).await.is_ok()
        })
        .await
        .unwrap_or(false);
        if handed_over {
            return Ok(());
        }
        let Ok(reply) = log_read(&self.bus, &self.options, min_position, 1).await else {
            return Ok(());
        };
        self.head_known.fetch_max(reply.head, Ordering::SeqCst);
        if min_position > reply.head {
            return Err(QueryError::Invalid(format!(
                "min_position: {min_position} is beyond the log's head ({})",
                reply.head
            )));
        }
        Ok(())
    }
}

/// How long the head check waits for the follower to hand over a `min_position` before it
/// asks the log for its head: the time from the writer's publication to this projector.
pub const HEAD_SEEN_GRACE: Duration = Duration::from_millis(100);

/// The most reads one caller may have waiting for `min_position` at once (H-L1).
pub const MIN_POSITION_WAITS_PER_CALLER_MAX: usize = 8;

/// One caller's read waiting for `min_position`, counted while it lives.
struct CallerWait<'a> {
    counts: &'a std::sync::Mutex<std::collections::HashMap<String, usize>>,
    caller: Option<String>,
}

impl<'a> CallerWait<'a> {
    /// Counts a waiting read of `caller` (reads without a caller, from services, are not
    /// limited), or refuses it when the caller already has the most waiting.
    fn take(
        counts: &'a std::sync::Mutex<std::collections::HashMap<String, usize>>,
        caller: Option<&str>,
    ) -> Result<CallerWait<'a>, QueryError> {
        let Some(caller) = caller else {
            return Ok(CallerWait {
                counts,
                caller: None,
            });
        };
        let mut map = counts.lock().unwrap_or_else(PoisonError::into_inner);
        let waiting = map.entry(caller.to_owned()).or_insert(0);
        if *waiting >= MIN_POSITION_WAITS_PER_CALLER_MAX {
            return Err(QueryError::RateLimited(format!(
                "at most {MIN_POSITION_WAITS_PER_CALLER_MAX} reads may wait for min_position at once; retry when one is answered"
            )));
        }
        *waiting += 1;
        Ok(CallerWait {
            counts,
            caller: Some(caller.to_owned()),
        })
    }
}

impl Drop for CallerWait<'_> {
    fn drop(&mut self) {
        let Some(caller) = self.caller.take() else {
            return;
        };
        let mut map = self.counts.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(waiting) = map.get_mut(&caller) {
            *waiting = waiting.saturating_sub(1);
            if *waiting == 0 {
                map.remove(&caller);
            }
        }
    }
}

/// Answers `<prefix>.query.<name>` until stopped, at most [`QUERIES_IN_FLIGHT_MAX`] at a time.
async fn serve_queries<P: Projector>(
    mut subscription: Subscription,
    answers: Answers<P>,
    mut stop: watch::Receiver<bool>,
) {
    let permits = Arc::new(Semaphore::new(QUERIES_IN_FLIGHT_MAX));
    let mut in_flight = JoinSet::new();
    loop {
        tokio::select! {
            () = stopped(&mut stop) => break,
            message = subscription.next() => {
                let Some(message) = message else { break };
                let Ok(permit) = Arc::clone(&permits).acquire_owned().await else { break };
                while in_flight.try_join_next().is_some() {}
                let answers = answers.clone();
                in_flight.spawn(async move {
                    answers.answer(message).await;
                    drop(permit);
                });
            }
        }
    }
    in_flight.abort_all();
    while in_flight.join_next().await.is_some() {}
}

/// Resolves once `stop` turns true or its sender is gone.
pub(crate) async fn stopped(stop: &mut watch::Receiver<bool>) {
    // The guard `wait_for` returns is dropped here, before any await of the caller.
    let _ = stop.wait_for(|stopped| *stopped).await;
}

pub(crate) fn poisoned<T>(_: PoisonError<T>) -> ProjectionError {
    ProjectionError::Task("the read model's lock was poisoned by a panic".into())
}

pub(crate) fn join_failed(error: tokio::task::JoinError) -> ProjectionError {
    ProjectionError::Task(error.to_string())
}

/// The error of a model slot left empty by a failed swap.
pub(crate) fn closed() -> ProjectionError {
    ProjectionError::Store("the read model is closed: a live rebuild could not reopen it".into())
}

/// How long the log may stay unreadable before a follower's failures are warnings: a writer
/// loading a large log at start-up (`parlor up` starts the models beside it) is not a fault.
const FOLLOW_FAILURE_QUIET: Duration = Duration::from_secs(30);

/// A model's run of failed attempts to follow the log, logged in proportion: the first at
/// info, warnings only once the run has lasted [`FOLLOW_FAILURE_QUIET`] and then at most one
/// per that interval, and a line when following works again.
#[derive(Debug, Default)]
struct FollowFailures {
    /// When the current run of failures began.
    since: Option<Instant>,
    /// When the last warning of this run was logged.
    warned: Option<Instant>,
}

impl FollowFailures {
    fn failed(&mut self, model: &str, error: &FollowError) {
        let now = Instant::now();
        let Some(since) = self.since else {
            self.since = Some(now);
            info!(model, %error, "cannot follow the log yet; retrying");
            return;
        };
        let due = self
            .warned
            .is_none_or(|warned| now.duration_since(warned) >= FOLLOW_FAILURE_QUIET);
        if now.duration_since(since) >= FOLLOW_FAILURE_QUIET && due {
            self.warned = Some(now);
            let seconds = now.duration_since(since).as_secs();
            warn!(model, %error, seconds, "cannot follow the log; will retry");
        }
    }

    fn recovered(&mut self, model: &str) {
        if let Some(since) = self.since.take() {
            self.warned = None;
            let seconds = since.elapsed().as_secs_f64();
            info!(model, seconds, "following the log again");
        }
    }
}
