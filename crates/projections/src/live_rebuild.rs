//! Live rebuilds: a running projector rebuilds its read model from the log into a fresh
//! instance while the old one keeps answering queries and applying live events, then swaps the
//! new one in with a pause of a few milliseconds for readers (`parlor replay <model>
//! --nats-url …`; docs/queries.md "Operator subjects").
//!
//! 1. `<prefix>.admin.replay.<name>` (request/reply, queue group `parlor-<name>-admin`) is
//!    answered at once: accepted with a rebuild id, or refused (one rebuild per model at a
//!    time; a malformed request).
//! 2. A task opens a fresh instance in `<name>.rebuild` ([`OpenFor::Rebuilding`]) and applies
//!    the log to it through `log.read`, pages of [`REBUILD_PAGE_EVENTS`], the next page
//!    fetched while one is applied, until it is within [`HANDOVER_LAG_EVENTS_MAX`] of the head;
//!    then [`Projector::finish_rebuild`] (the search index merges its segments), then it closes
//!    that gap again (merging takes a while).
//! 3. It hands the instance to the runner's follow loop, the only place that applies events to
//!    the live instance, so live application pauses by construction (live events wait in the
//!    subscription). [`Runner::take_over`] brings both instances to exactly the same position
//!    through `log.read`, flushes and closes both, swaps the directories ([`crate::swap`]),
//!    reopens the model in place and resumes. Queries wait on the model's lock meanwhile: they
//!    are answered late, never refused.
//! 4. Progress goes out on `<prefix>.admin.replay.<name>.progress` as JSON at most every
//!    [`PROGRESS_INTERVAL_MIN`] and at least every [`PROGRESS_HEARTBEAT`], ending with one
//!    message that is `done` or carries an `error`. A failed rebuild deletes its directory and
//!    leaves the live model untouched.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bus::{Bus, Headers, Message, Subscription};
use protocol::{Format, LogReadReply, HEADER_CONTENT_TYPE};
use serde_json::{json, Value};
use tokio::sync::{mpsc, oneshot, watch};
use tokio::task::JoinSet;
use tracing::{info, warn};

use crate::envelope::EventEnvelope;
use crate::error::ProjectionError;
use crate::runtime::{
    closed, contiguous, join_failed, log_read, poisoned, stopped, LiveRebuild, OpenFor, Projector,
    RunOptions, Runner,
};
use crate::swap;

/// Events asked for per `log.read` page while rebuilding: the protocol's maximum (a reply also
/// stops before 1 MiB, so pages of large events hold fewer).
pub const REBUILD_PAGE_EVENTS: u32 = protocol::LOG_READ_EVENTS_MAX;

/// The rebuild is handed over once it is at most this far behind the head: the events the
/// follow loop then applies to it while live application pauses (one small page).
pub const HANDOVER_LAG_EVENTS_MAX: u64 = 1_000;

/// The least time between two progress messages.
pub const PROGRESS_INTERVAL_MIN: Duration = Duration::from_millis(250);

/// The most time between two progress messages, even when the position does not move (while
/// the search index merges), so a client can tell a silent projector from a slow step.
pub const PROGRESS_HEARTBEAT: Duration = Duration::from_secs(1);

/// How often one `log.read` of a rebuild is tried before the rebuild fails (the writer may be
/// restarting), with [`LOG_READ_RETRY_PAUSE`] between tries.
pub const LOG_READ_ATTEMPTS: u32 = 20;

/// The pause between two tries of a failed `log.read`.
pub const LOG_READ_RETRY_PAUSE: Duration = Duration::from_millis(500);

/// The request subject of live rebuilds of `name`.
pub fn request_subject(prefix: &str, name: &str) -> String {
    format!("{prefix}.admin.replay.{name}")
}

/// The subject a live rebuild of `name` publishes its progress on.
pub fn progress_subject(prefix: &str, name: &str) -> String {
    format!("{prefix}.admin.replay.{name}.progress")
}

/// A rebuilt instance handed to the follow loop to be swapped in; the answer is the position
/// at which the swap happened.
pub(crate) struct Handover<P> {
    pub(crate) model: P,
    pub(crate) reply: oneshot::Sender<Result<u64, ProjectionError>>,
}

/// What serving rebuild requests needs from the runner.
pub(crate) struct Context<P> {
    pub(crate) name: &'static str,
    pub(crate) bus: Bus,
    pub(crate) options: RunOptions,
    pub(crate) rebuild: LiveRebuild<P>,
    /// The live instance's applied position.
    pub(crate) position: watch::Receiver<u64>,
    pub(crate) handover: mpsc::Sender<Handover<P>>,
}

impl<P> Clone for Context<P> {
    fn clone(&self) -> Self {
        Context {
            name: self.name,
            bus: self.bus.clone(),
            options: self.options.clone(),
            rebuild: self.rebuild.clone(),
            position: self.position.clone(),
            handover: self.handover.clone(),
        }
    }
}

/// Subscribes to the rebuild requests of `name`. A queue group: with several replicas of a
/// model, one of them takes each request.
pub(crate) async fn subscribe(
    bus: &Bus,
    options: &RunOptions,
    name: &str,
) -> Result<Subscription, ProjectionError> {
    Ok(bus
        .queue_subscribe(
            &request_subject(&options.subject_prefix, name),
            &format!("parlor-{name}-admin"),
        )
        .await?)
}

/// Answers rebuild requests until stopped; runs at most one rebuild at a time.
pub(crate) async fn serve_requests<P: Projector>(
    mut requests: Subscription,
    context: Context<P>,
    mut stop: watch::Receiver<bool>,
) {
    let running = Arc::new(AtomicBool::new(false));
    let mut rebuilds = JoinSet::new();
    loop {
        tokio::select! {
            () = stopped(&mut stop) => break,
            request = requests.next() => {
                let Some(request) = request else { break };
                while rebuilds.try_join_next().is_some() {}
                let reply = match check_request(&request.payload) {
                    Err(message) => refusal("invalid_command", &message),
                    Ok(()) if running.swap(true, Ordering::SeqCst) => refusal(
                        "rebuild_in_progress",
                        &format!("a rebuild of {} is already running; wait for it to end", context.name),
                    ),
                    Ok(()) => {
                        let id = uuid::Uuid::new_v4().to_string();
                        let position = *context.position.borrow();
                        info!(model = context.name, rebuild = %id, position, "live rebuild accepted");
                        let (task_context, running, task_id) =
                            (context.clone(), Arc::clone(&running), id.clone());
                        rebuilds.spawn(drive(task_context, task_id, running));
                        json!({
                            "ok": true,
                            "position": position,
                            "data": {"model": context.name, "rebuild_id": id},
                        })
                    }
                };
                respond(&context.bus, &request, &reply).await;
            }
        }
    }
    rebuilds.abort_all();
    while rebuilds.join_next().await.is_some() {}
}

/// A request is empty, `{}`, or `{"from": 1}`: a live rebuild always starts from scratch.
fn check_request(payload: &[u8]) -> Result<(), String> {
    if payload.iter().all(u8::is_ascii_whitespace) {
        return Ok(());
    }
    let value: Value = serde_json::from_slice(payload)
        .map_err(|error| format!("the request is not JSON: {error}"))?;
    let Value::Object(fields) = value else {
        return Err("the request is not a JSON object".into());
    };
    for (name, value) in fields {
        match (name.as_str(), value.as_u64()) {
            ("from", Some(1)) => {}
            ("from", _) => {
                return Err(
                    "from: a live rebuild starts at position 1 (continuing from a later position needs a stopped data directory)".into(),
                )
            }
            (other, _) => return Err(format!("{other}: unknown field")),
        }
    }
    Ok(())
}

fn refusal(code: &str, message: &str) -> Value {
    json!({"ok": false, "error": {"code": code, "message": message}})
}

async fn respond(bus: &Bus, request: &Message, reply: &Value) {
    let headers = Headers::new().with(HEADER_CONTENT_TYPE, Format::Json.content_type());
    if let Err(error) = bus.respond(request, headers, reply.to_string()).await {
        warn!(%error, "could not answer a rebuild request");
    }
}

/// Where a rebuild is, as published on the progress subject.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Progress {
    /// `rebuilding`, `finishing` (merging, flushing), `swapping`, `done` or `failed`.
    phase: &'static str,
    position: u64,
    head: u64,
    error: Option<String>,
}

/// Runs one rebuild to its end and publishes its progress and outcome, clearing `running`
/// before the outcome goes out.
async fn drive<P: Projector>(context: Context<P>, id: String, running: Arc<AtomicBool>) {
    let started = Instant::now();
    let (progress, watched) = watch::channel(Progress {
        phase: "rebuilding",
        position: 0,
        head: *context.position.borrow(),
        error: None,
    });
    let publisher = tokio::spawn(publish_progress(
        context.bus.clone(),
        progress_subject(&context.options.subject_prefix, context.name),
        context.name,
        id.clone(),
        started,
        watched,
    ));
    let outcome = rebuild(&context, &progress).await;
    publisher.abort();
    let _ = publisher.await;
    let mut last = progress.borrow().clone();
    match &outcome {
        Ok(position) => {
            info!(model = context.name, rebuild = %id, position, seconds = started.elapsed().as_secs_f64(), "live rebuild swapped in");
            last.phase = "done";
            last.position = *position;
            last.head = last.head.max(*position);
        }
        Err(error) => {
            warn!(model = context.name, rebuild = %id, %error, "live rebuild failed; the live model is untouched");
            last.phase = "failed";
            last.error = Some(error.to_string());
            // Nothing half-built stays behind (the instance was closed when dropped).
            let directory = swap::rebuild_path(&context.rebuild.directory);
            let removed = tokio::task::spawn_blocking(move || swap::remove_dir(&directory)).await;
            if let Ok(Err(error)) = removed {
                warn!(model = context.name, %error, "could not delete the failed rebuild");
            }
        }
    }
    // Free before the last report goes out: whoever reads it may ask for the next rebuild at
    // once, and must not be told one is still running.
    running.store(false, Ordering::SeqCst);
    let subject = progress_subject(&context.options.subject_prefix, context.name);
    publish(&context.bus, &subject, context.name, &id, started, &last).await;
}

/// Publishes the progress whenever it changes (at most every [`PROGRESS_INTERVAL_MIN`]) and at
/// least every [`PROGRESS_HEARTBEAT`], until aborted.
async fn publish_progress(
    bus: Bus,
    subject: String,
    name: &'static str,
    id: String,
    started: Instant,
    mut progress: watch::Receiver<Progress>,
) {
    loop {
        let state = progress.borrow_and_update().clone();
        publish(&bus, &subject, name, &id, started, &state).await;
        tokio::time::sleep(PROGRESS_INTERVAL_MIN).await;
        if let Ok(Err(_)) = tokio::time::timeout(
            PROGRESS_HEARTBEAT.saturating_sub(PROGRESS_INTERVAL_MIN),
            progress.changed(),
        )
        .await
        {
            // The rebuild ended; its final message is published by `drive`.
            return;
        }
    }
}

async fn publish(
    bus: &Bus,
    subject: &str,
    name: &str,
    id: &str,
    started: Instant,
    state: &Progress,
) {
    let seconds = started.elapsed().as_secs_f64().max(1e-3);
    let body = json!({
        "model": name,
        "rebuild_id": id,
        "phase": state.phase,
        "position": state.position,
        "head": state.head,
        "events_per_s": (state.position as f64 / seconds).round(),
        "elapsed_ms": started.elapsed().as_millis() as u64,
        "done": state.phase == "done",
        "error": state.error,
    });
    let headers = Headers::new().with(HEADER_CONTENT_TYPE, Format::Json.content_type());
    if let Err(error) = bus.publish(subject, headers, body.to_string()).await {
        warn!(%subject, %error, "could not publish rebuild progress");
    }
}

/// Builds a fresh instance from the log and has the follow loop swap it in; returns the
/// position of the swap.
async fn rebuild<P: Projector>(
    context: &Context<P>,
    progress: &watch::Sender<Progress>,
) -> Result<u64, ProjectionError> {
    let directory = swap::rebuild_path(&context.rebuild.directory);
    let open = Arc::clone(&context.rebuild.open);
    let model = tokio::task::spawn_blocking(move || {
        // A leftover of an earlier rebuild that did not finish is no use: start afresh.
        swap::remove_dir(&directory)?;
        open(&directory, OpenFor::Rebuilding)
    })
    .await
    .map_err(join_failed)??;
    let (bus, options) = (&context.bus, &context.options);
    let lag = StopAt::Lag(HANDOVER_LAG_EVENTS_MAX);
    if model.position() != 0 {
        return Err(ProjectionError::Store(format!(
            "the fresh instance is at position {}, not 0",
            model.position()
        )));
    }
    let model = read_into(bus, options, model, lag, Some(progress)).await?;
    progress.send_modify(|state| state.phase = "finishing");
    let model = tokio::task::spawn_blocking(move || model.finish_rebuild().map(|()| model))
        .await
        .map_err(join_failed)??;
    // Finishing (merging) took a while; close the gap it let grow before pausing live events.
    let model = read_into(bus, options, model, lag, Some(progress)).await?;
    progress.send_modify(|state| state.phase = "swapping");
    let (reply, answer) = oneshot::channel();
    let stopping = || ProjectionError::Task("the projector is stopping".into());
    context
        .handover
        .send(Handover { model, reply })
        .await
        .map_err(|_| stopping())?;
    answer.await.map_err(|_| stopping())?
}

/// Where [`read_into`] stops.
#[derive(Debug, Clone, Copy)]
enum StopAt {
    /// Once the model is at most this many events behind the head `log.read` reports.
    Lag(u64),
    /// Exactly at this position, never beyond.
    Exactly(u64),
}

/// Applies the log to `model` from its position on through `log.read`, fetching the next page
/// while one is applied, until `stop_at`. On failure the model is closed (dropped).
async fn read_into<P: Projector>(
    bus: &Bus,
    options: &RunOptions,
    mut model: P,
    stop_at: StopAt,
    progress: Option<&watch::Sender<Progress>>,
) -> Result<P, ProjectionError> {
    let mut from = model.position() + 1;
    if let StopAt::Exactly(target) = stop_at {
        if from > target {
            return Ok(model);
        }
    }
    let mut reply = read_page(bus, options, from, stop_at).await?;
    loop {
        let head = reply.head;
        let mut events = contiguous(reply.events, from);
        if let StopAt::Exactly(target) = stop_at {
            events.retain(|envelope| envelope.position <= target);
        }
        let Some(last) = events.last().map(|envelope| envelope.position) else {
            if matches!(stop_at, StopAt::Lag(_)) && head < from {
                return Ok(model);
            }
            return Err(ProjectionError::LogRead(format!(
                "log.read returned no event at position {from} (head {head})"
            )));
        };
        let finished = match stop_at {
            StopAt::Lag(lag) => head.saturating_sub(last) <= lag,
            StopAt::Exactly(target) => last >= target,
        };
        let report = |progress: Option<&watch::Sender<Progress>>| {
            if let Some(progress) = progress {
                progress.send_modify(|state| {
                    state.position = last;
                    state.head = head;
                });
            }
        };
        if finished {
            let model = apply(model, events).await?;
            report(progress);
            return Ok(model);
        }
        let (applied, next) = tokio::join!(
            apply(model, events),
            read_page(bus, options, last + 1, stop_at)
        );
        model = applied?;
        report(progress);
        reply = next?;
        from = last + 1;
    }
}

/// One page for [`read_into`], tried [`LOG_READ_ATTEMPTS`] times.
async fn read_page(
    bus: &Bus,
    options: &RunOptions,
    from: u64,
    stop_at: StopAt,
) -> Result<LogReadReply, ProjectionError> {
    let max = match stop_at {
        StopAt::Lag(_) => REBUILD_PAGE_EVENTS,
        StopAt::Exactly(target) => u32::try_from(target.saturating_sub(from) + 1)
            .map_or(REBUILD_PAGE_EVENTS, |wanted| {
                wanted.clamp(1, REBUILD_PAGE_EVENTS)
            }),
    };
    let mut attempt = 1;
    loop {
        match log_read(bus, options, from, max).await {
            Ok(reply) => return Ok(reply),
            Err(error) if attempt < LOG_READ_ATTEMPTS => {
                warn!(from, attempt, %error, "rebuild: cannot read the log; retrying");
                attempt += 1;
                tokio::time::sleep(LOG_READ_RETRY_PAUSE).await;
            }
            Err(error) => return Err(error),
        }
    }
}

/// Applies one page on the blocking pool.
async fn apply<P: Projector>(
    mut model: P,
    events: Vec<EventEnvelope>,
) -> Result<P, ProjectionError> {
    tokio::task::spawn_blocking(move || model.apply(&events).map(|()| model))
        .await
        .map_err(join_failed)?
}

impl<P: Projector> Runner<P> {
    /// Swaps the rebuilt instance in, in the follow loop (live events wait meanwhile). The
    /// inner result is the rebuild's outcome (the position of the swap, or why it did not
    /// happen, the live model untouched); the outer error stops the runner (the live store
    /// failed, or no instance could be reopened).
    pub(crate) async fn take_over(
        &self,
        rebuilt: P,
    ) -> Result<Result<u64, ProjectionError>, ProjectionError> {
        let Some(rebuild) = self.live_rebuild.clone() else {
            return Ok(Err(ProjectionError::Task("live rebuilds are off".into())));
        };
        let live = *self.position.borrow();
        let target = live.max(rebuilt.position());
        // Bring the rebuild up to the live instance…
        let exactly = StopAt::Exactly(target);
        let rebuilt = match read_into(&self.bus, &self.options, rebuilt, exactly, None).await {
            Ok(rebuilt) => rebuilt,
            Err(error) => return Ok(Err(error)),
        };
        // …and the live instance up to the rebuild, when the rebuild read further.
        while *self.position.borrow() < target {
            let from = *self.position.borrow() + 1;
            let wanted = u32::try_from(target - from + 1).unwrap_or(u32::MAX);
            let reply = match self.log_read(from, wanted.min(REBUILD_PAGE_EVENTS)).await {
                Ok(reply) => reply,
                Err(error) => return Ok(Err(error)),
            };
            let mut events = contiguous(reply.events, from);
            events.retain(|envelope| envelope.position <= target);
            if events.is_empty() {
                return Ok(Err(ProjectionError::LogRead(format!(
                    "log.read returned no event at position {from}"
                ))));
            }
            self.write(events).await?;
        }
        if rebuilt.position() != target || *self.position.borrow() != target {
            return Ok(Err(ProjectionError::Task(format!(
                "could not level the instances at {target} (rebuild at {}, live at {})",
                rebuilt.position(),
                *self.position.borrow()
            ))));
        }
        let slot = Arc::clone(&self.model);
        let swapped = tokio::task::spawn_blocking(move || swap_instances(&slot, rebuilt, &rebuild))
            .await
            .map_err(join_failed)??;
        if let Ok(position) = &swapped {
            let position = *position;
            self.position.send_if_modified(|announced| {
                let changed = *announced != position;
                *announced = position;
                changed
            });
            if position != target {
                warn!(model = self.name, position, target, "the swapped-in model reopened at another position; following the log from there");
            }
        }
        Ok(swapped)
    }
}

/// The blocking part of a swap, under the model's write lock (queries wait): flushes and
/// closes both instances, swaps the directories, reopens the model in place. Outer error:
/// neither instance could be reopened (the slot stays empty and the runner stops; the next
/// start opens whichever the directories hold, see [`swap::recover`]).
fn swap_instances<P: Projector>(
    slot: &crate::runtime::Slot<P>,
    rebuilt: P,
    rebuild: &LiveRebuild<P>,
) -> Result<Result<u64, ProjectionError>, ProjectionError> {
    if let Err(error) = rebuilt.flush() {
        return Ok(Err(error));
    }
    drop(rebuilt);
    let mut slot = slot.write().map_err(poisoned)?;
    let Some(old) = slot.take() else {
        return Err(closed());
    };
    if let Err(error) = old.flush() {
        *slot = Some(old);
        return Ok(Err(error));
    }
    // A model that shows presence gets its table from the `open` it was wired with, so the
    // reopened instance reads the same heartbeats (`Runner::with_presence`).
    drop(old);
    let directory = &rebuild.directory;
    // On failure the live model's directory is back in place, and is reopened below.
    let outcome = swap::swap_in(directory);
    let reopened = (rebuild.open)(directory, OpenFor::Serving)?;
    let position = reopened.position();
    *slot = Some(reopened);
    Ok(outcome.map(|()| position))
}

/// One progress message of a live rebuild (`<prefix>.admin.replay.<name>.progress`).
#[derive(Debug, Clone, PartialEq, serde::Deserialize)]
pub struct ProgressReport {
    /// The model being rebuilt.
    pub model: String,
    /// The id the accepting reply gave.
    pub rebuild_id: String,
    /// `rebuilding`, `finishing`, `swapping`, `done` or `failed`.
    pub phase: String,
    /// The position the rebuild has applied (at `done`: the position of the swap).
    pub position: u64,
    /// The log's head as last seen.
    pub head: u64,
    /// Events applied per second since the rebuild started.
    pub events_per_s: f64,
    /// Milliseconds since the rebuild started.
    pub elapsed_ms: u64,
    /// The rebuild is swapped in: the last message.
    pub done: bool,
    /// Why the rebuild failed (the live model is untouched): the last message.
    pub error: Option<String>,
}

/// Why a live rebuild could not be followed to its end, as `parlor replay --nats-url` says it.
#[derive(Debug, thiserror::Error)]
pub enum RebuildRequestError {
    /// Nobody subscribes to the request subject.
    #[error("no projector serves {model} on {subject}: is `parlor projector {model}` (or `parlor up`) running with --nats-url on this NATS server and this --subject-prefix?")]
    NoProjector {
        /// The model asked for.
        model: String,
        /// The request subject.
        subject: String,
    },
    /// The projector did not answer the request in time.
    #[error("the {model} projector did not answer on {subject} within {seconds} s")]
    NoAnswer {
        /// The model asked for.
        model: String,
        /// The request subject.
        subject: String,
        /// The wait.
        seconds: u64,
    },
    /// The projector refused the request.
    #[error("the {model} projector refused the rebuild ({code}): {message}")]
    Refused {
        /// The model asked for.
        model: String,
        /// The error code.
        code: String,
        /// Why.
        message: String,
    },
    /// No progress came for too long: the projector stopped or the connection broke.
    #[error("no progress from the {model} rebuild for {seconds} s (the projector stopped, or NATS is unreachable)")]
    Silent {
        /// The model.
        model: String,
        /// The wait.
        seconds: u64,
    },
    /// The rebuild failed; the live model is untouched.
    #[error("the {model} rebuild failed, the live model is untouched: {message}")]
    Failed {
        /// The model.
        model: String,
        /// The projector's reason.
        message: String,
    },
    /// An answer that is not what this protocol says.
    #[error("unexpected answer from the {model} projector: {detail}")]
    Malformed {
        /// The model.
        model: String,
        /// What was wrong.
        detail: String,
    },
    /// The bus failed.
    #[error("bus: {0}")]
    Bus(#[from] bus::BusError),
}

/// A live rebuild that was accepted, and its progress messages.
#[derive(Debug)]
pub struct RebuildWatch {
    model: String,
    /// The id of the rebuild, as its progress messages carry it.
    pub rebuild_id: String,
    /// The live model's position when the rebuild was accepted.
    pub position_at_start: u64,
    progress: Subscription,
}

/// Asks the projector of `model` for a live rebuild (waiting at most `answer_wait` for its
/// answer) and returns a watch over its progress. The progress subject is subscribed before
/// the request is sent, so no message is missed.
pub async fn request_rebuild(
    bus: &Bus,
    prefix: &str,
    model: &str,
    answer_wait: Duration,
) -> Result<RebuildWatch, RebuildRequestError> {
    let progress = bus.subscribe(&progress_subject(prefix, model)).await?;
    let subject = request_subject(prefix, model);
    let headers = Headers::new().with(HEADER_CONTENT_TYPE, Format::Json.content_type());
    let reply = match bus.request(&subject, headers, "{}", answer_wait).await {
        Ok(reply) => reply,
        Err(bus::BusError::NoResponders) => {
            return Err(RebuildRequestError::NoProjector {
                model: model.to_owned(),
                subject,
            })
        }
        Err(bus::BusError::Timeout) => {
            return Err(RebuildRequestError::NoAnswer {
                model: model.to_owned(),
                subject,
                seconds: answer_wait.as_secs(),
            })
        }
        Err(error) => return Err(error.into()),
    };
    let malformed = |detail: String| RebuildRequestError::Malformed {
        model: model.to_owned(),
        detail,
    };
    let reply: Value = serde_json::from_slice(&reply.payload)
        .map_err(|error| malformed(format!("the reply is not JSON: {error}")))?;
    if reply["ok"] != Value::Bool(true) {
        return Err(RebuildRequestError::Refused {
            model: model.to_owned(),
            code: reply["error"]["code"]
                .as_str()
                .unwrap_or("unknown")
                .to_owned(),
            message: reply["error"]["message"].as_str().unwrap_or("").to_owned(),
        });
    }
    let rebuild_id = reply["data"]["rebuild_id"]
        .as_str()
        .ok_or_else(|| malformed(format!("no rebuild_id in {reply}")))?
        .to_owned();
    Ok(RebuildWatch {
        model: model.to_owned(),
        rebuild_id,
        position_at_start: reply["position"].as_u64().unwrap_or(0),
        progress,
    })
}

impl RebuildWatch {
    /// The next progress message of this rebuild: an error when it failed, or when none came
    /// for `silence_max` (the projector publishes at least every [`PROGRESS_HEARTBEAT`]).
    /// After a `done` report there is nothing more to wait for.
    pub async fn next(
        &mut self,
        silence_max: Duration,
    ) -> Result<ProgressReport, RebuildRequestError> {
        loop {
            let message = match tokio::time::timeout(silence_max, self.progress.next()).await {
                Ok(Some(message)) => message,
                Ok(None) => return Err(RebuildRequestError::Bus(bus::BusError::Closed)),
                Err(_) => {
                    return Err(RebuildRequestError::Silent {
                        model: self.model.clone(),
                        seconds: silence_max.as_secs(),
                    })
                }
            };
            let report: ProgressReport =
                serde_json::from_slice(&message.payload).map_err(|error| {
                    RebuildRequestError::Malformed {
                        model: self.model.clone(),
                        detail: format!("a progress message is not understood: {error}"),
                    }
                })?;
            // Another operator's rebuild on another replica publishes on the same subject.
            if report.rebuild_id != self.rebuild_id {
                continue;
            }
            if let Some(message) = report.error {
                return Err(RebuildRequestError::Failed {
                    model: self.model.clone(),
                    message,
                });
            }
            return Ok(report);
        }
    }
}
