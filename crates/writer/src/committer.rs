//! Group commit: the commands that arrive while a batch is being flushed form the next batch.
//! Each batch is decided in order against the in-memory state, appended with one atomic write
//! and one flush, and only then answered. Nothing is acknowledged before its flush returns.
//!
//! The commit is pipelined: while batch N is written and flushed on a blocking thread, the
//! committer decides the commands that arrive into batch N+1, a continuation of N in the log
//! (`eventlog::Batch::continuation`: it sees N's stream versions and command ids and can only
//! be committed right after N). At most one batch is in flight. If N's commit fails, N+1 was
//! decided against state that included N: it is never committed, every command of both is
//! answered `unavailable`, and the state is reloaded from the log.
//!
//! An HA leader (`ha.rs`) first appends the batch to the replicated write-ahead log and waits
//! for its ack, then commits it to its own log. Any failure of either makes it step down: it
//! answers the batch and its continuation `unavailable` and stops (its state and log may now
//! lag the write-ahead log, which only a standby's catch-up puts right).
//!
//! The answers of a batch go out from their own task (`answer_batches`), so the committer
//! starts on the next batch while the replies of the last one are encoded and sent.

use std::collections::{HashSet, VecDeque};
use std::sync::Arc;

use bus::{Bus, Message};
use clock::Clock;
use domain::{evolve, ErrorCode, ServiceTable, State, Timestamp};
use eventlog::{AddRejected, Batch, Committed, EventLog, LogError, NewRecord};

use crate::shared_log::SharedLog;
use protocol::{Format, Reply};
use tokio::sync::{mpsc, watch};
use tracing::{debug, error, info, warn};

use crate::ha::Replication;
use crate::stored_reply::{self, Owner};
use crate::{snapshot, WriterConfig, WriterError};

/// Takes commands off the bus into the bounded queue. A full queue is answered `unavailable`
/// at once: the caller retries with the same command id, and memory stays bounded.
pub(crate) async fn take_commands(
    mut commands: bus::Subscription,
    bus: Bus,
    queue: mpsc::Sender<Message>,
    mut stopped: watch::Receiver<bool>,
) -> Result<(), WriterError> {
    let mut refused: u64 = 0;
    loop {
        let message = tokio::select! {
            _ = crate::stop_requested(&mut stopped) => break,
            message = commands.next() => match message {
                Some(message) => message,
                None => break,
            },
        };
        match queue.try_send(message) {
            Ok(()) => {}
            Err(mpsc::error::TrySendError::Full(message)) => {
                // Logged at powers of two only: under overload a line per command would itself
                // become the bottleneck (or fill a log pipe and stall the process).
                refused += 1;
                if refused.is_power_of_two() {
                    warn!(refused, "command queue full; answering unavailable");
                }
                let reply = error_reply(
                    ErrorCode::Unavailable,
                    "the writer is overloaded; retry with the same command_id",
                );
                respond(&bus, &message, &reply).await;
            }
            Err(mpsc::error::TrySendError::Closed(_)) => break,
        }
    }
    // Dropping the subscription unsubscribes; dropping the sender lets the committer drain.
    Ok(())
}

/// The committer: owns the write-side state and the appending side of the log.
pub(crate) struct Committer {
    config: Arc<WriterConfig>,
    bus: Bus,
    log: SharedLog,
    clock: Clock,
    state: State,
    committed: watch::Sender<u64>,
    /// Batches of answers for `answer_batches`, sent only once their batch is durable.
    answers: mpsc::Sender<Vec<Pending>>,
    /// Command subject prefix, `<prefix>.cmd.`.
    command_prefix: String,
    /// The head of the newest snapshot written (or loaded at start).
    snapshot_position: u64,
    /// When the last snapshot was started (or the committer began).
    snapshot_started: std::time::Instant,
    /// The snapshot being written in the background, and the head it is of.
    snapshot_in_flight: Option<(
        u64,
        tokio::task::JoinHandle<Result<(), snapshot::SnapshotError>>,
    )>,
    /// For an HA leader: the write-ahead log each batch goes to first. Shared with the task of
    /// the one commit in flight.
    replication: Option<Arc<tokio::sync::Mutex<Replication>>>,
}

/// Why a batch was not committed.
#[derive(Debug, thiserror::Error)]
enum CommitError {
    /// The local log refused or failed the write.
    #[error("{0}")]
    Log(#[from] LogError),
    /// The write-ahead log refused the append or did not acknowledge it.
    #[error("write-ahead log: {0}")]
    Replication(#[from] bus::ha::HaError),
    /// The commit's task died.
    #[error("task failed: {0}")]
    Task(String),
}

/// Batches of answers waiting for `answer_batches`. When it falls this far behind, the committer
/// waits for it rather than let answers pile up without bound.
pub(crate) const ANSWER_BATCHES_MAX: usize = 4;

/// One command's answer, held until its batch is durable.
pub(crate) struct Pending {
    message: Message,
    reply: Reply,
}

impl Committer {
    // Each argument is a distinct part the committer owns or feeds; a struct gathering them
    // would only move the same list to its one caller in lib.rs.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn new(
        config: Arc<WriterConfig>,
        bus: Bus,
        log: SharedLog,
        clock: Clock,
        state: State,
        committed: watch::Sender<u64>,
        answers: mpsc::Sender<Vec<Pending>>,
        snapshot_position: u64,
        replication: Option<Replication>,
    ) -> Committer {
        let command_prefix = config.subject("cmd.");
        Committer {
            config,
            bus,
            log,
            clock,
            state,
            committed,
            answers,
            command_prefix,
            snapshot_position,
            snapshot_started: std::time::Instant::now(),
            snapshot_in_flight: None,
            replication: replication.map(|r| Arc::new(tokio::sync::Mutex::new(r))),
        }
    }

    /// Decides `incoming` (and what it carries over) into `building` against the state now.
    fn decide(
        &mut self,
        building: &mut Building,
        incoming: Vec<Message>,
        carry: &mut VecDeque<Message>,
    ) {
        let now = self.clock.now();
        building.decide(
            &mut self.state,
            &self.config.services,
            &self.command_prefix,
            now,
            incoming,
            carry,
        );
    }

    /// Commits `building`; while it is written, decides the commands that arrive into its
    /// continuation, then commits that the same way, and so on, until a batch has nothing to
    /// write or a commit fails. Returns with nothing in flight and the state at the log's head.
    async fn pipeline(
        &mut self,
        log: EventLog,
        mut building: Building,
        carry: &mut VecDeque<Message>,
        queue: &mut mpsc::Receiver<Message>,
        queue_open: &mut bool,
    ) -> Result<(), WriterError> {
        // Answers of the batch committed last, sent once the next commit has started, so that
        // handing them over never delays the disk.
        let mut durable: Vec<Pending> = Vec::new();
        loop {
            if building.batch.is_empty() {
                if let Some(replication) = &self.replication {
                    if !replication.lock().await.lease_stands() {
                        // An HA leader past its lease answers nothing from its state alone.
                        self.answer(durable).await;
                        for answer in &mut building.pending {
                            answer.reply = unavailable();
                        }
                        self.answer(std::mem::take(&mut building.pending)).await;
                        return Err(WriterError::SteppedDown(
                            "the lease ran out before answering".to_owned(),
                        ));
                    }
                }
                // Nothing to write: these answers (rejections, stored replies) were decided
                // after the batch before, which is durable now, and wait for nothing else.
                durable.append(&mut building.pending);
                self.answer(durable).await;
                return Ok(());
            }
            let next = Building::new(building.batch.continuation());
            let batch = std::mem::replace(&mut building, next);
            let commands = batch.batch.len();
            let in_flight = batch.pending;
            let committing = log.clone();
            let eventlog_batch = batch.batch;
            // The debug lines time the two halves of a group-commit cycle (docs/speed-work.md,
            // "B1's floor"): the write and flush on the blocking thread, and the whole cycle
            // until the committer took the result.
            let cycle_started = std::time::Instant::now();
            let mut commit = match &self.replication {
                None => tokio::task::spawn_blocking(move || {
                    let started = std::time::Instant::now();
                    let committed = committing.commit(eventlog_batch).map_err(CommitError::Log);
                    let micros = started.elapsed().as_micros();
                    debug!(write_and_flush_us = micros, "batch written and flushed");
                    committed
                }),
                Some(replication) => {
                    // The HA leader: the write-ahead log first (its ack means a majority of
                    // the servers stored the batch), then the local log.
                    let replication = Arc::clone(replication);
                    let entry = eventlog_batch.replicated();
                    tokio::spawn(async move {
                        replication.lock().await.append(&entry).await?;
                        tokio::task::spawn_blocking(move || committing.commit(eventlog_batch))
                            .await
                            .map_err(|e| CommitError::Task(e.to_string()))?
                            .map_err(CommitError::Log)
                    })
                }
            };
            self.answer(std::mem::take(&mut durable)).await;

            // Deciding during the commit puts the state ahead of the log; a snapshot must be of
            // the committed head, so when one is due this commit runs without overlap and the
            // snapshot is taken at the quiet point that follows.
            let overlap = !self.snapshot_due().await;
            if overlap {
                // What the last batch could not take (it was full, or repeated one of its
                // command ids) goes first into this one.
                if let Some(first) = carry.pop_front() {
                    let incoming = gather(first, carry, queue);
                    self.decide(&mut building, incoming, carry);
                }
            }
            let joined = loop {
                // A carried command goes first into the next decide, so nothing new is taken
                // past it (it waits for a full batch or repeats an id of this one).
                let take_more = overlap && *queue_open && carry.is_empty();
                tokio::select! {
                    biased;
                    joined = &mut commit => break joined,
                    message = queue.recv(), if take_more => match message {
                        Some(message) => {
                            let incoming = gather(message, carry, queue);
                            self.decide(&mut building, incoming, carry);
                        }
                        None => *queue_open = false,
                    },
                }
            };
            let committed: Result<Committed, CommitError> =
                joined.map_err(|e| WriterError::Task(e.to_string()))?;
            match committed {
                Ok(committed) => {
                    let cycle_us = cycle_started.elapsed().as_micros();
                    debug!(
                        commands,
                        head = committed.head.position,
                        cycle_us,
                        "batch committed"
                    );
                    let _ = self.committed.send(committed.head.position);
                    durable = in_flight;
                }
                Err(log_error) => {
                    // Nothing of the batch is durable: every answer of it becomes `unavailable`
                    // (rejections too, since they were decided against state that included the
                    // batch), and so does every answer of its continuation, which was decided
                    // against that state and which the log would refuse as stale anyway. The
                    // state goes back to what the log holds.
                    error!(
                        %log_error,
                        commands,
                        next_commands = building.pending.len(),
                        "batch commit failed; answering unavailable"
                    );
                    let mut refused = in_flight;
                    refused.append(&mut building.pending);
                    for answer in &mut refused {
                        answer.reply = unavailable();
                    }
                    // Both hold handles on the log, which `recover` must be able to reopen.
                    drop(building);
                    drop(log);
                    self.answer(refused).await;
                    if self.replication.is_some() {
                        // The write-ahead log may hold the batch while this log does not (or
                        // the reverse never: the append came first). Only a standby's
                        // catch-up from the write-ahead log makes them agree again.
                        return Err(WriterError::SteppedDown(log_error.to_string()));
                    }
                    return self.recover().await;
                }
            }
        }
    }

    /// Hands a batch's answers to `answer_batches`. Call only once the batch is durable (or
    /// refused whole): whatever is handed over is sent.
    async fn answer(&self, pending: Vec<Pending>) {
        if pending.is_empty() {
            return;
        }
        if let Err(mpsc::error::SendError(pending)) = self.answers.send(pending).await {
            // The answering task has ended (it ends only with the committer, so this is not
            // expected); answer from here rather than leave the callers waiting.
            for answer in &pending {
                respond(&self.bus, &answer.message, &answer.reply).await;
            }
            return;
        }
        // tokio runs a task woken by the running one next on the same worker (its LIFO slot,
        // which other workers do not steal), so without a yield the answers would wait until
        // the committer next awaits, after deciding the whole next batch. Yielding lets the
        // answers go out at once while another worker may pick the committer up.
        tokio::task::yield_now().await;
    }

    /// After a failed commit: reopen the log (sled refuses everything after a failed write) and
    /// rebuild the state from what is durable. A failure here leaves the writer answering
    /// `unavailable` and trying again with the next command, so it recovers when the disk does.
    async fn recover(&mut self) -> Result<(), WriterError> {
        let shared = self.log.clone();
        let data_dir = self.config.data_dir.clone();
        let config = self.state.config.clone();
        let recovered = tokio::task::spawn_blocking(move || {
            let log = shared.reopen().map_err(snapshot::SnapshotError::from)?;
            snapshot::load_state(&log, &data_dir, config)
        })
        .await
        .map_err(|e| WriterError::Task(e.to_string()))?;
        match recovered {
            Ok((state, position)) => {
                self.state = state;
                self.snapshot_position = position;
                warn!("event log reopened after a failed write; serving again");
            }
            Err(recover_error) => error!(%recover_error, "could not reopen the event log yet"),
        }
        Ok(())
    }

    /// Starts a snapshot in the background when enough events or time have passed since the
    /// last one and none is being written. The committer only pays for a copy of the state
    /// (taken here, where the state is exactly the committed head); encoding, writing and
    /// syncing the file happen on a blocking thread while batches go on.
    async fn maybe_snapshot(&mut self) {
        if !self.snapshot_due().await {
            return;
        }
        let head = self.log.head();
        let state = self.state.clone();
        let data_dir = self.config.data_dir.clone();
        self.snapshot_started = std::time::Instant::now();
        let writing = tokio::task::spawn_blocking(move || snapshot::save(&data_dir, head, &state));
        self.snapshot_in_flight = Some((head.position, writing));
    }

    /// True when enough events or time have passed since the last snapshot and none is being
    /// written (taking the result of one that has finished).
    async fn snapshot_due(&mut self) -> bool {
        self.reap_snapshot().await;
        if self.snapshot_in_flight.is_some() {
            return false;
        }
        let head = self.log.head().position;
        let behind = head.saturating_sub(self.snapshot_position);
        // A snapshot costs in proportion to the state, which grows with the log: spacing them
        // by a sixteenth of the log keeps their cost per event flat (at 10M events, a 306 MiB
        // snapshot every 625,000 events rather than every 250,000), while the tail a restart
        // folds stays a bounded share of the log (B6: about 1.5 s of folding at 10M).
        let every_events = self
            .config
            .snapshot_every_events
            .max(head / crate::SNAPSHOT_SPACING_LOG_DIVISOR);
        let by_count = self.config.snapshot_every_events > 0 && behind >= every_events;
        let by_time = !self.config.snapshot_every.is_zero()
            && behind > 0
            && self.snapshot_started.elapsed() >= self.config.snapshot_every;
        by_count || by_time
    }

    /// Takes the result of the background snapshot once it is done.
    async fn reap_snapshot(&mut self) {
        let done = self
            .snapshot_in_flight
            .as_ref()
            .is_some_and(|(_, writing)| writing.is_finished());
        if !done {
            return;
        }
        if let Some((position, writing)) = self.snapshot_in_flight.take() {
            // Finished: the await returns at once.
            let joined = writing.await;
            self.note_snapshot(position, joined);
        }
    }

    fn note_snapshot(
        &mut self,
        position: u64,
        joined: Result<Result<(), snapshot::SnapshotError>, tokio::task::JoinError>,
    ) {
        match joined {
            Ok(Ok(())) => self.snapshot_position = self.snapshot_position.max(position),
            // A snapshot only shortens start-up; failing to write one loses nothing.
            Ok(Err(snapshot_error)) => warn!(%snapshot_error, "could not write a state snapshot"),
            Err(join_error) => warn!(%join_error, "the snapshot task failed"),
        }
    }

    /// At shutdown: persists what the log's indexes gained since their last run, so the next
    /// open loads them instead of re-indexing the tail (up to 65,536 events). A failure only
    /// makes that open slower.
    async fn final_index_run(&self) {
        let Ok(log) = self.log.get() else {
            return;
        };
        match tokio::task::spawn_blocking(move || log.persist_indexes()).await {
            Ok(Ok(head)) => info!(position = head.position, "indexes persisted"),
            Ok(Err(log_error)) => warn!(%log_error, "could not persist the log's indexes"),
            Err(join_error) => warn!(%join_error, "the index run task failed"),
        }
    }

    /// At shutdown: waits for a snapshot in flight, then writes one of the final head unless
    /// that is the one just written.
    async fn final_snapshot(&mut self) -> Result<(), WriterError> {
        if let Some((position, writing)) = self.snapshot_in_flight.take() {
            let joined = writing.await;
            self.note_snapshot(position, joined);
        }
        let head = self.log.head();
        if head.position <= self.snapshot_position {
            return Ok(());
        }
        let state = std::mem::take(&mut self.state);
        let data_dir = self.config.data_dir.clone();
        let (state, saved) = tokio::task::spawn_blocking(move || {
            let saved = snapshot::save(&data_dir, head, &state);
            (state, saved)
        })
        .await
        .map_err(|e| WriterError::Task(e.to_string()))?;
        self.state = state;
        match saved {
            Ok(()) => self.snapshot_position = head.position,
            Err(snapshot_error) => warn!(%snapshot_error, "could not write a state snapshot"),
        }
        Ok(())
    }
}

/// A batch being decided: the log's batch, the answers decided so far (in order), and the
/// command ids in it.
pub(crate) struct Building {
    batch: Batch,
    pending: Vec<Pending>,
    /// Command ids decided into this batch; a repeat waits for the next batch, where it is
    /// answered from the stored reply.
    keys: HashSet<[u8; 16]>,
}

impl Building {
    pub(crate) fn new(batch: Batch) -> Building {
        Building {
            batch,
            pending: Vec::new(),
            keys: HashSet::new(),
        }
    }

    /// Decides `incoming` in order into this batch against `state` at `now`, folding each
    /// accepted command's events into `state` as it is added (so later commands see it).
    /// Commands that do not fit, or that repeat a command id already in this batch, go back to
    /// `carry` for the next batch (so a resend is answered from the stored reply). A command id
    /// of the batch this one continues is answered with that batch's stored reply: this batch's
    /// answers go out only after it is durable, which is after that batch is.
    pub(crate) fn decide(
        &mut self,
        state: &mut State,
        services: &ServiceTable,
        command_prefix: &str,
        now: Timestamp,
        incoming: Vec<Message>,
        carry: &mut VecDeque<Message>,
    ) {
        let Building {
            batch,
            pending,
            keys,
        } = self;
        pending.reserve(incoming.len());
        let mut incoming = incoming.into_iter();
        while let Some(message) = incoming.next() {
            let command_type = message.subject.strip_prefix(command_prefix).unwrap_or("");
            let content_type = message.headers.get("Content-Type");
            let decoded =
                match protocol::decode_command(command_type, &message.payload, content_type) {
                    Ok(decoded) => decoded,
                    Err(invalid) => {
                        let reply = error_reply(ErrorCode::InvalidCommand, invalid.message);
                        pending.push(Pending { message, reply });
                        continue;
                    }
                };
            let command = decoded.command;
            let key = *command.command_id.0.as_bytes();
            if !keys.insert(key) {
                carry.push_back(message);
                continue;
            }
            let owner = Owner::of(&command);
            match batch.committed_reply_for(&key) {
                Ok(Some(stored)) => {
                    let reply = answer_resend(&stored, owner);
                    pending.push(Pending { message, reply });
                    continue;
                }
                Ok(None) => {}
                Err(log_error) => {
                    error!(%log_error, "idempotency lookup failed");
                    pending.push(Pending {
                        message,
                        reply: unavailable(),
                    });
                    continue;
                }
            }
            // After the idempotency lookup: an accepted id keeps its reply even if the table
            // changed since; a refusal is not remembered, like every rejection.
            if let Err(rejection) = services.check(&command) {
                let reply = error_reply(rejection.code, rejection.message);
                pending.push(Pending { message, reply });
                continue;
            }
            let outcome = match protocol::decide_command(state, &command, now) {
                Ok(outcome) => outcome,
                Err(rejection) => {
                    let reply = error_reply(rejection.code, rejection.message);
                    pending.push(Pending { message, reply });
                    continue;
                }
            };
            let encoded = match outcome.encode_records() {
                Ok(encoded) => encoded,
                Err(codec_error) => {
                    // An event the codec refuses (over the record size bound) is this command's
                    // problem, not the batch's: refuse it alone.
                    warn!(%codec_error, "an event could not be encoded");
                    let reply = error_reply(
                        ErrorCode::InvalidCommand,
                        "the command's events exceed the size limit",
                    );
                    pending.push(Pending { message, reply });
                    continue;
                }
            };
            let records: Vec<NewRecord<'_>> = encoded
                .iter()
                .map(|record| NewRecord {
                    stream: &record.stream,
                    payload: &record.bytes,
                })
                .collect();
            let head_before = batch.tip().position;
            let mut reply = None;
            let added = batch.add_command(Some(&key), &[], &records, |appended| {
                let accepted = outcome.reply(
                    head_before,
                    appended
                        .iter()
                        .map(|a| (a.position, a.stream.as_str(), a.version)),
                );
                // Replies are small and always encodable; an empty stored reply would only
                // make a resend answer `unavailable`, never a wrong answer.
                let bytes = protocol::encode_reply(&accepted, Format::Bincode).unwrap_or_default();
                reply = Some(accepted);
                stored_reply::encode(owner, &bytes)
            });
            match added {
                Ok(Ok(_)) => {
                    for event in &outcome.events {
                        evolve(state, event);
                    }
                    let reply = reply.unwrap_or_else(unavailable);
                    pending.push(Pending { message, reply });
                }
                Ok(Err(AddRejected::BatchFull)) => {
                    keys.remove(&key);
                    carry.push_back(message);
                    carry.extend(incoming.by_ref());
                    break;
                }
                Ok(Err(AddRejected::AlreadyRecorded { reply })) => {
                    let reply = answer_resend(&reply, owner);
                    pending.push(Pending { message, reply });
                }
                Ok(Err(AddRejected::VersionConflict { stream, .. })) => {
                    let reply =
                        error_reply(ErrorCode::VersionConflict, format!("stream {stream} moved"));
                    pending.push(Pending { message, reply });
                }
                Err(log_error) => {
                    error!(%log_error, "could not add a command to the batch");
                    pending.push(Pending {
                        message,
                        reply: unavailable(),
                    });
                }
            }
        }
    }
}

/// The committer's loop: a batch forms from whatever waits in the queue when nothing is in
/// flight, up to the batch bounds; then `Committer::pipeline` keeps deciding the next batch
/// while the last one commits, for as long as commands keep coming.
pub(crate) async fn run(
    mut committer: Committer,
    mut queue: mpsc::Receiver<Message>,
) -> Result<(), WriterError> {
    let mut carry: VecDeque<Message> = VecDeque::new();
    let mut queue_open = true;
    loop {
        // Nothing is in flight and nothing decided is unwritten: the state is exactly the
        // committed head, the one point where a snapshot may be taken.
        committer.maybe_snapshot().await;
        let first = match carry.pop_front() {
            Some(message) => message,
            None => match queue.recv().await {
                Some(message) => message,
                None => break,
            },
        };
        let incoming = gather(first, &mut carry, &mut queue);
        let log = match committer.log.get() {
            Ok(log) => log,
            Err(_) => {
                // The log is being reopened after a failure: nothing can be decided now.
                let refused = incoming
                    .into_iter()
                    .chain(carry.drain(..))
                    .map(|message| Pending {
                        message,
                        reply: unavailable(),
                    })
                    .collect();
                committer.answer(refused).await;
                committer.recover().await?;
                continue;
            }
        };
        let mut building = Building::new(log.batch());
        committer.decide(&mut building, incoming, &mut carry);
        committer
            .pipeline(log, building, &mut carry, &mut queue, &mut queue_open)
            .await?;
    }
    committer.final_index_run().await;
    committer.final_snapshot().await
}

/// The commands for one decide step: `first`, then what waits in `carry` and the queue, up to
/// the batch bounds (a batch that fills carries the rest over).
fn gather(
    first: Message,
    carry: &mut VecDeque<Message>,
    queue: &mut mpsc::Receiver<Message>,
) -> Vec<Message> {
    let mut bytes = first.payload.len();
    let mut incoming = vec![first];
    while incoming.len() < eventlog::limits::BATCH_COMMANDS_MAX
        && bytes < eventlog::limits::BATCH_BYTES_MAX
    {
        let next = match carry.pop_front() {
            Some(message) => message,
            None => match queue.try_recv() {
                Ok(message) => message,
                Err(_) => break,
            },
        };
        bytes += next.payload.len();
        incoming.push(next);
    }
    incoming
}

/// Sends the answers of each batch the committer hands over, in the order given. It runs beside
/// the committer so that encoding and sending replies overlaps with deciding and committing
/// the next batch; it ends when the committer has ended and every answer is sent.
pub(crate) async fn answer_batches(
    bus: Bus,
    mut batches: mpsc::Receiver<Vec<Pending>>,
) -> Result<(), WriterError> {
    while let Some(batch) = batches.recv().await {
        for answer in &batch {
            respond(&bus, &answer.message, &answer.reply).await;
        }
    }
    Ok(())
}

/// The answer to a command whose id is already recorded: the stored reply, byte for byte, when
/// the command's actor and type own the id (R-M7); `duplicate_command_id` otherwise, which names
/// nothing of the first command (H-I1).
fn answer_resend(stored: &[u8], claimant: Owner) -> Reply {
    let stored = stored_reply::decode(stored);
    if !stored.answers(claimant) {
        return error_reply(
            ErrorCode::DuplicateCommandId,
            "this command_id was already used by another actor or for another command type; \
             send this command with a new command_id",
        );
    }
    protocol::decode_reply(stored.reply_bincode, Format::Bincode)
        .unwrap_or_else(|_| error_reply(ErrorCode::Unavailable, "stored reply unreadable"))
}

fn error_reply(code: ErrorCode, message: impl Into<String>) -> Reply {
    Reply::Err {
        code,
        message: message.into(),
    }
}

fn unavailable() -> Reply {
    error_reply(
        ErrorCode::Unavailable,
        "the writer could not commit; retry with the same command_id",
    )
}

/// Answers a command in the format it was sent in. A lost reply is not an error for the writer:
/// the caller retries with the same command id and gets the stored reply.
pub(crate) async fn respond(bus: &Bus, request: &Message, reply: &Reply) {
    // An unsupported content type was refused as invalid_command; that answer goes in JSON.
    let format = Format::from_content_type(request.headers.get("Content-Type")).unwrap_or_default();
    let headers = bus::Headers::new().with("Content-Type", format.content_type());
    let payload = match protocol::encode_reply(reply, format) {
        Ok(payload) => payload,
        Err(codec_error) => {
            error!(%codec_error, "a reply could not be encoded");
            return;
        }
    };
    if let Err(bus_error) = bus.respond(request, headers, payload).await {
        debug!(%bus_error, "could not deliver a reply");
    }
}

#[cfg(test)]
mod tests {
    //! The batch logic over a real log in a temporary directory.
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

    use super::*;
    use domain::Config;
    use protocol::encode_reply;

    const PREFIX: &str = "parlor.cmd.";

    fn command(
        command_type: &str,
        command_id: u128,
        actor: &str,
        data: serde_json::Value,
    ) -> Message {
        let payload = serde_json::json!({
            "command_id": uuid::Uuid::from_u128(command_id).to_string(),
            "actor": actor,
            "data": data,
        });
        Message {
            subject: format!("{PREFIX}{command_type}"),
            headers: bus::Headers::new(),
            payload: payload.to_string().into_bytes().into(),
            reply_to: Some("_INBOX.test".to_owned()),
        }
    }

    fn register(command_id: u128, user: &str) -> Message {
        command(
            "user.register",
            command_id,
            "service:identity",
            serde_json::json!({ "user_id": user, "display_name": user, "kind": "freelancer" }),
        )
    }

    struct Fixture {
        _dir: tempfile::TempDir,
        log: EventLog,
        state: State,
    }

    impl Fixture {
        fn new() -> Fixture {
            let dir = tempfile::tempdir().unwrap();
            let log = EventLog::open(&dir.path().join("log")).unwrap();
            Fixture {
                _dir: dir,
                log,
                state: State::new(Config::default()),
            }
        }

        /// Decides `incoming` into `building`; returns the carry.
        fn decide(&mut self, building: &mut Building, incoming: Vec<Message>) -> VecDeque<Message> {
            let mut carry = VecDeque::new();
            building.decide(
                &mut self.state,
                &ServiceTable::default(),
                PREFIX,
                Timestamp::from_millis(1_000_000),
                incoming,
                &mut carry,
            );
            carry
        }

        /// Builds a batch of `incoming` and commits it; returns the answers and the carry.
        fn run(&mut self, incoming: Vec<Message>) -> (Vec<Reply>, VecDeque<Message>) {
            let mut building = Building::new(self.log.batch());
            let carry = self.decide(&mut building, incoming);
            if !building.batch.is_empty() {
                self.log.commit(building.batch).unwrap();
            }
            (replies(building.pending), carry)
        }
    }

    fn replies(pending: Vec<Pending>) -> Vec<Reply> {
        pending.into_iter().map(|p| p.reply).collect()
    }

    fn code(reply: &Reply) -> Option<ErrorCode> {
        reply.code()
    }

    #[test]
    fn an_invalid_command_is_answered_invalid_and_appends_nothing() {
        let mut fixture = Fixture::new();
        let mut garbage = register(1, "alice");
        garbage.payload = b"{not json".to_vec().into();
        let unknown = command("user.levitate", 2, "alice", serde_json::json!({}));
        let (replies, carry) = fixture.run(vec![garbage, unknown]);
        assert_eq!(replies.len(), 2);
        assert!(replies
            .iter()
            .all(|reply| code(reply) == Some(ErrorCode::InvalidCommand)));
        assert!(carry.is_empty());
        assert_eq!(fixture.log.head().position, 0);
    }

    #[test]
    fn a_rejected_command_gets_the_domains_code_and_appends_nothing() {
        let mut fixture = Fixture::new();
        // An unregistered user sending a message: the domain refuses it (R-U: not a user).
        let send = command(
            "message.send",
            3,
            "alice",
            serde_json::json!({ "to": "bob", "body": "hello" }),
        );
        let (replies, _) = fixture.run(vec![send]);
        assert_eq!(code(&replies[0]), Some(ErrorCode::NotFound));
        assert_eq!(fixture.log.head().position, 0);
    }

    #[test]
    fn accepted_commands_see_the_earlier_ones_of_their_batch() {
        let mut fixture = Fixture::new();
        let (replies, carry) = fixture.run(vec![
            register(10, "alice"),
            register(11, "bob"),
            command(
                "message.send",
                12,
                "alice",
                serde_json::json!({ "to": "bob", "body": "hello" }),
            ),
        ]);
        assert!(carry.is_empty());
        assert!(
            replies.iter().all(|reply| code(reply).is_none()),
            "{replies:?}"
        );
        let Reply::Ok {
            position, events, ..
        } = &replies[2]
        else {
            panic!("expected acceptance");
        };
        assert_eq!(*position, fixture.log.head().position);
        assert_eq!(events.last().map(|e| e.position), Some(*position));
        assert!(fixture.state.users.len() == 2);
    }

    #[test]
    fn r_m7_a_repeated_id_in_one_batch_is_carried_and_then_answered_from_the_stored_reply() {
        let mut fixture = Fixture::new();
        let (replies, carry) = fixture.run(vec![register(20, "alice"), register(20, "alice")]);
        assert_eq!(replies.len(), 1, "the repeat is not answered in this batch");
        assert_eq!(carry.len(), 1, "the repeat waits for the next batch");
        let head = fixture.log.head().position;
        let (again, carry) = fixture.run(carry.into_iter().collect());
        assert!(carry.is_empty());
        assert_eq!(again, replies, "the resend gets the first reply");
        assert_eq!(fixture.log.head().position, head, "nothing appended twice");
    }

    #[test]
    fn r_m7_a_resend_after_commit_gets_the_stored_reply_byte_for_byte() {
        let mut fixture = Fixture::new();
        let (first, _) = fixture.run(vec![register(30, "alice")]);
        // Other commands in between move the head; the stored reply still names the old one.
        fixture.run(vec![register(31, "bob")]);
        let (again, _) = fixture.run(vec![register(30, "alice")]);
        assert_eq!(
            encode_reply(&again[0], Format::Json).unwrap(),
            encode_reply(&first[0], Format::Json).unwrap()
        );
        assert_eq!(fixture.log.head().position, 2);
    }

    #[test]
    fn a_full_batch_carries_the_rest_in_order() {
        let mut fixture = Fixture::new();
        let commands = eventlog::limits::BATCH_COMMANDS_MAX + 2;
        let incoming: Vec<Message> = (0..commands)
            .map(|index| register(1_000 + index as u128, &format!("user{index}")))
            .collect();
        let (replies, carry) = fixture.run(incoming);
        assert_eq!(replies.len(), eventlog::limits::BATCH_COMMANDS_MAX);
        assert_eq!(carry.len(), 2);
        let carried: Vec<String> = carry
            .iter()
            .map(|message| String::from_utf8(message.payload.to_vec()).unwrap())
            .collect();
        assert!(carried[0].contains(&format!("user{}", commands - 2)));
        assert!(carried[1].contains(&format!("user{}", commands - 1)));
        let (rest, _) = fixture.run(carry.into_iter().collect());
        assert!(rest.iter().all(|reply| code(reply).is_none()));
        assert_eq!(fixture.log.head().position, commands as u64);
    }

    #[test]
    fn r_m7_a_repeat_in_the_next_batch_decided_while_the_first_commits_gets_the_first_reply() {
        let mut fixture = Fixture::new();
        let mut first = Building::new(fixture.log.batch());
        let carry = fixture.decide(&mut first, vec![register(50, "alice")]);
        assert!(carry.is_empty());
        // The next batch is decided before the first is committed, as the pipelined committer
        // does: the repeat must not be decided again (the state already has alice, so deciding
        // it would reject it) but answered with the first command's reply.
        let mut second = Building::new(first.batch.continuation());
        let carry = fixture.decide(
            &mut second,
            vec![register(50, "alice"), register(51, "bob")],
        );
        assert!(carry.is_empty());
        fixture.log.commit(first.batch).unwrap();
        fixture.log.commit(second.batch).unwrap();
        let first = replies(first.pending);
        let second = replies(second.pending);
        assert_eq!(second[0], first[0], "the repeat gets the stored reply");
        assert_eq!(
            encode_reply(&second[0], Format::Bincode).unwrap(),
            encode_reply(&first[0], Format::Bincode).unwrap()
        );
        let Reply::Ok { position, .. } = &second[1] else {
            panic!("expected acceptance: {:?}", second[1]);
        };
        assert_eq!(*position, 2, "bob follows alice's batch");
        assert_eq!(fixture.log.head().position, 2, "alice appended once");
        // And once both are durable, a third resend is answered from the log, the same way.
        let (third, _) = fixture.run(vec![register(50, "alice")]);
        assert_eq!(third[0], first[0]);
    }

    fn block(command_id: u128, actor: &str, user: &str) -> Message {
        command(
            "user.block",
            command_id,
            actor,
            serde_json::json!({ "user_id": user }),
        )
    }

    fn unblock(command_id: u128, actor: &str, user: &str) -> Message {
        command(
            "user.unblock",
            command_id,
            actor,
            serde_json::json!({ "user_id": user }),
        )
    }

    /// Registers alice, bob and mallory.
    fn three_users(fixture: &mut Fixture) {
        let (replies, _) = fixture.run(vec![
            register(70, "alice"),
            register(71, "bob"),
            register(72, "mallory"),
        ]);
        assert!(
            replies.iter().all(|reply| code(reply).is_none()),
            "{replies:?}"
        );
    }

    #[test]
    fn h_i1_another_actor_reusing_a_command_id_gets_duplicate_command_id_not_the_first_reply() {
        let mut fixture = Fixture::new();
        three_users(&mut fixture);
        let (first, _) = fixture.run(vec![block(80, "alice", "bob")]);
        assert!(code(&first[0]).is_none(), "{first:?}");
        let head = fixture.log.head().position;
        // Mallory sends alice's id, even with alice's very payload.
        let (stolen, _) = fixture.run(vec![block(80, "mallory", "bob")]);
        assert_eq!(code(&stolen[0]), Some(ErrorCode::DuplicateCommandId));
        assert_ne!(stolen[0], first[0]);
        assert_eq!(fixture.log.head().position, head, "nothing appended");
        // Alice herself still gets her reply, byte for byte (R-M7).
        let (again, _) = fixture.run(vec![block(80, "alice", "bob")]);
        assert_eq!(
            encode_reply(&again[0], Format::Bincode).unwrap(),
            encode_reply(&first[0], Format::Bincode).unwrap()
        );
    }

    #[test]
    fn h_i1_the_same_actor_reusing_a_command_id_for_another_type_gets_duplicate_command_id() {
        let mut fixture = Fixture::new();
        three_users(&mut fixture);
        let (first, _) = fixture.run(vec![block(81, "alice", "bob")]);
        assert!(code(&first[0]).is_none(), "{first:?}");
        let (other_type, _) = fixture.run(vec![unblock(81, "alice", "bob")]);
        assert_eq!(code(&other_type[0]), Some(ErrorCode::DuplicateCommandId));
        let (alice, bob) = (
            domain::UserId::parse("alice").unwrap(),
            domain::UserId::parse("bob").unwrap(),
        );
        assert!(
            fixture.state.blocks(&alice, &bob),
            "the unblock was not applied"
        );
    }

    #[test]
    fn h_i1_a_reuse_decided_while_the_first_commits_is_refused_too() {
        let mut fixture = Fixture::new();
        three_users(&mut fixture);
        let mut first = Building::new(fixture.log.batch());
        fixture.decide(&mut first, vec![block(82, "alice", "bob")]);
        // The continuation sees the id in flight: another actor still gets no reply of it.
        let mut second = Building::new(first.batch.continuation());
        fixture.decide(&mut second, vec![block(82, "mallory", "bob")]);
        fixture.log.commit(first.batch).unwrap();
        fixture.log.commit(second.batch).unwrap();
        let second = replies(second.pending);
        assert_eq!(code(&second[0]), Some(ErrorCode::DuplicateCommandId));
    }

    #[test]
    fn h_i1_a_reply_stored_before_owners_still_answers_a_resend_byte_for_byte() {
        let mut fixture = Fixture::new();
        three_users(&mut fixture);
        // A command committed by a writer from before H-I1: its stored value is the bincode
        // reply alone, with no owner.
        let old_reply = Reply::Ok {
            position: 0,
            events: Vec::new(),
            result: None,
        };
        let old_bytes = encode_reply(&old_reply, Format::Bincode).unwrap();
        let key = *uuid::Uuid::from_u128(83).as_bytes();
        let mut batch = fixture.log.batch();
        batch
            .add_command(Some(&key), &[], &[], |_| old_bytes.clone())
            .unwrap()
            .unwrap();
        fixture.log.commit(batch).unwrap();
        let (again, _) = fixture.run(vec![block(83, "alice", "bob")]);
        assert_eq!(
            encode_reply(&again[0], Format::Bincode).unwrap(),
            old_bytes,
            "an ownerless reply answers whoever resends"
        );
    }

    /// A pipelined committer over a log whose first commit is held in flight and then fails:
    /// the commands decided meanwhile (into the continuation) are answered `unavailable` with
    /// it, nothing of either is written, and the state is reloaded from the log, so the same
    /// commands sent again are decided afresh.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_failed_commit_takes_the_batch_decided_during_it_down_too() {
        let dir = tempfile::tempdir().unwrap();
        let mut config = WriterConfig::new(dir.path());
        config.snapshot_every_events = 0;
        config.snapshot_every = std::time::Duration::ZERO;
        let config = Arc::new(config);
        let log = EventLog::open(&config.log_dir()).unwrap();
        let shared = SharedLog::new(config.log_dir(), log.clone());
        let (committed_tx, _committed_rx) = watch::channel(0);
        let (answers_tx, mut answers_rx) = mpsc::channel(ANSWER_BATCHES_MAX);
        let (queue_tx, queue_rx) = mpsc::channel(64);
        let committer = Committer::new(
            config.clone(),
            Bus::in_process(),
            shared.clone(),
            Clock::system(),
            State::new(Config::default()),
            committed_tx,
            answers_tx,
            0,
            None,
        );
        log.inject_fault(eventlog::FaultPlan::FailFlushAfterMs(1_500))
            .unwrap();
        drop(log);
        let running = tokio::spawn(run(committer, queue_rx));

        queue_tx.send(register(60, "alice")).await.unwrap();
        // The first commit is now held for 1.5 s; these arrive during it.
        tokio::time::sleep(std::time::Duration::from_millis(300)).await;
        queue_tx.send(register(61, "bob")).await.unwrap();
        queue_tx.send(register(60, "alice")).await.unwrap();

        let mut answered: Vec<Reply> = Vec::new();
        while answered.len() < 3 {
            let batch = tokio::time::timeout(std::time::Duration::from_secs(20), answers_rx.recv())
                .await
                .expect("answers in time")
                .expect("answers");
            answered.extend(replies(batch));
        }
        assert_eq!(answered.len(), 3, "{answered:?}");
        assert!(
            answered
                .iter()
                .all(|reply| code(reply) == Some(ErrorCode::Unavailable)),
            "{answered:?}"
        );

        // Sent again after the recovery: decided against the reloaded (empty) state, so bob is
        // accepted first, at position 1, and alice is no duplicate.
        for (expected, (number, user)) in [(1, (61, "bob")), (2, (60, "alice"))] {
            queue_tx.send(register(number, user)).await.unwrap();
            let batch = tokio::time::timeout(std::time::Duration::from_secs(20), answers_rx.recv())
                .await
                .unwrap()
                .unwrap();
            let again = replies(batch);
            let Reply::Ok { position, .. } = &again[0] else {
                panic!("expected acceptance: {again:?}");
            };
            assert_eq!(*position, expected, "{user}");
        }

        drop(queue_tx);
        running.await.unwrap().unwrap();
        let log = shared.get().unwrap();
        assert_eq!(log.head().position, 2);
        let streams: Vec<String> = log
            .read_from(1, 10, usize::MAX)
            .unwrap()
            .into_iter()
            .map(|record| record.stream)
            .collect();
        assert_eq!(streams.len(), 2, "{streams:?}");
    }
}
