//! Group commit: the commands that arrive while a batch is being flushed form the next batch.
//! Each batch is decided in order against the in-memory state, appended with one atomic write
//! and one flush, and only then answered. Nothing is acknowledged before its flush returns.
//!
//! The answers of a batch go out from their own task (`answer_batches`), so the committer
//! starts on the next batch while the replies of the last one are encoded and sent.

use std::collections::{HashSet, VecDeque};
use std::sync::Arc;

use bus::{Bus, Message};
use clock::Clock;
use domain::{command_result, decide, evolve, ErrorCode, State};
use eventlog::{AddRejected, Batch, EventLog, NewRecord};

use crate::shared_log::SharedLog;
use protocol::{EventRef, Format, Reply, StoredEvent};
use tokio::sync::{mpsc, watch};
use tracing::{debug, error, warn};

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
    snapshot_position: u64,
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
        }
    }

    /// Decides `incoming` in order into one batch. Commands that do not fit, or that repeat a
    /// command id already in this batch, go back to `carry` for the next batch (so a resend is
    /// answered from the stored reply once the first is durable).
    fn build_batch(
        &mut self,
        log: &EventLog,
        incoming: Vec<Message>,
        carry: &mut VecDeque<Message>,
    ) -> (Batch, Vec<Pending>) {
        let mut batch = log.batch();
        let mut pending = Vec::with_capacity(incoming.len());
        let mut keys = HashSet::with_capacity(incoming.len());
        let now = self.clock.now();
        let mut incoming = incoming.into_iter();
        while let Some(message) = incoming.next() {
            let command_type = message
                .subject
                .strip_prefix(&self.command_prefix)
                .unwrap_or("");
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
            match batch.committed_reply_for(&key) {
                Ok(Some(stored)) => {
                    let reply =
                        protocol::decode_reply(&stored, Format::Bincode).unwrap_or_else(|_| {
                            error_reply(ErrorCode::Unavailable, "stored reply unreadable")
                        });
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
            let events = match decide(&self.state, &command, now) {
                Ok(events) => events,
                Err(rejection) => {
                    let reply = error_reply(rejection.code, rejection.message);
                    pending.push(Pending { message, reply });
                    continue;
                }
            };
            let result = command_result(&self.state, &command, &events);
            let stored = events
                .iter()
                .enumerate()
                .map(|(index, event)| {
                    let stored = StoredEvent::new(
                        command.command_id.derive(&format!("event\n{index}")),
                        command.command_id,
                        &command.actor,
                        now,
                        event.clone(),
                    );
                    protocol::encode_stored(&stored).map(|bytes| (event.stream(), bytes))
                })
                .collect::<Result<_, _>>();
            let stored: Vec<(String, Vec<u8>)> = match stored {
                Ok(stored) => stored,
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
            let records: Vec<NewRecord<'_>> = stored
                .iter()
                .map(|(stream, payload)| NewRecord { stream, payload })
                .collect();
            let head_before = batch.tip().position;
            let mut reply = None;
            let added = batch.add_command(Some(&key), &[], &records, |appended| {
                let accepted = Reply::accepted(
                    appended.last().map_or(head_before, |a| a.position),
                    appended
                        .iter()
                        .zip(&events)
                        .map(|(a, event)| EventRef {
                            position: a.position,
                            stream: a.stream.clone(),
                            version: a.version,
                            type_name: event.type_name().to_owned(),
                        })
                        .collect(),
                    &result,
                );
                // Replies are small and always encodable; an empty stored reply would only
                // make a resend answer `unavailable`, never a wrong answer.
                let bytes = protocol::encode_reply(&accepted, Format::Bincode).unwrap_or_default();
                reply = Some(accepted);
                bytes
            });
            match added {
                Ok(Ok(_)) => {
                    for event in &events {
                        evolve(&mut self.state, event);
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
                    let reply = protocol::decode_reply(&reply, Format::Bincode)
                        .unwrap_or_else(|_| unavailable());
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
        (batch, pending)
    }

    /// Decides, commits and answers one batch.
    async fn process(
        &mut self,
        incoming: Vec<Message>,
        carry: &mut VecDeque<Message>,
    ) -> Result<(), WriterError> {
        let log = match self.log.get() {
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
                self.answer(refused).await;
                return self.recover().await;
            }
        };
        let (batch, mut pending) = self.build_batch(&log, incoming, carry);
        if !batch.is_empty() {
            let committing = log.clone();
            let commands = batch.len();
            let committed = tokio::task::spawn_blocking(move || committing.commit(batch))
                .await
                .map_err(|e| WriterError::Task(e.to_string()))?;
            match committed {
                Ok(committed) => {
                    debug!(commands, head = committed.head.position, "batch committed");
                    let _ = self.committed.send(committed.head.position);
                }
                Err(log_error) => {
                    // Nothing of the batch is durable: every answer of it becomes `unavailable`
                    // (rejections too, since they were decided against state that included the
                    // batch), and the state goes back to what the log holds.
                    error!(%log_error, commands, "batch commit failed; answering unavailable");
                    for answer in &mut pending {
                        answer.reply = unavailable();
                    }
                    drop(log);
                    self.answer(pending).await;
                    return self.recover().await;
                }
            }
        }
        self.answer(pending).await;
        self.maybe_snapshot(false).await
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

    /// Writes a snapshot when enough events have been appended since the last one (or always,
    /// at shutdown). The committer pauses meanwhile; commands wait in the bounded queue.
    async fn maybe_snapshot(&mut self, force: bool) -> Result<(), WriterError> {
        let head = self.log.head();
        let due = self.config.snapshot_every_events > 0
            && head.position.saturating_sub(self.snapshot_position)
                >= self.config.snapshot_every_events;
        if !(due || force && head.position > self.snapshot_position) {
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
            // A snapshot only shortens start-up; failing to write one loses nothing.
            Err(snapshot_error) => warn!(%snapshot_error, "could not write a state snapshot"),
        }
        Ok(())
    }
}

/// The committer's loop: batches form from whatever waits in the queue when the previous batch
/// is done, up to the batch bounds.
pub(crate) async fn run(
    mut committer: Committer,
    mut queue: mpsc::Receiver<Message>,
) -> Result<(), WriterError> {
    let mut carry: VecDeque<Message> = VecDeque::new();
    loop {
        let first = match carry.pop_front() {
            Some(message) => message,
            None => match queue.recv().await {
                Some(message) => message,
                None => break,
            },
        };
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
        committer.process(incoming, &mut carry).await?;
    }
    committer.maybe_snapshot(true).await
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
