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
use domain::{evolve, ErrorCode, State, Timestamp};
use eventlog::{AddRejected, Batch, EventLog, NewRecord};

use crate::shared_log::SharedLog;
use protocol::{Format, Reply};
use tokio::sync::{mpsc, watch};
use tracing::{debug, error, info, warn};

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
            snapshot_started: std::time::Instant::now(),
            snapshot_in_flight: None,
        }
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
        let now = self.clock.now();
        let (batch, mut pending) = build_batch(
            &mut self.state,
            &self.command_prefix,
            now,
            &log,
            incoming,
            carry,
        );
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
        self.maybe_snapshot().await;
        Ok(())
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
        self.reap_snapshot().await;
        if self.snapshot_in_flight.is_some() {
            return;
        }
        let head = self.log.head();
        let behind = head.position.saturating_sub(self.snapshot_position);
        let by_count =
            self.config.snapshot_every_events > 0 && behind >= self.config.snapshot_every_events;
        let by_time = !self.config.snapshot_every.is_zero()
            && behind > 0
            && self.snapshot_started.elapsed() >= self.config.snapshot_every;
        if !(by_count || by_time) {
            return;
        }
        let state = self.state.clone();
        let data_dir = self.config.data_dir.clone();
        self.snapshot_started = std::time::Instant::now();
        let writing = tokio::task::spawn_blocking(move || snapshot::save(&data_dir, head, &state));
        self.snapshot_in_flight = Some((head.position, writing));
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

/// Decides `incoming` in order into one batch against `state` at `now`, folding each accepted
/// command's events into `state` as it is added (so later commands of the batch see it).
/// Commands that do not fit, or that repeat a command id already in this batch, go back to
/// `carry` for the next batch (so a resend is answered from the stored reply once the first is
/// durable). Returns the batch and every answer decided so far, in order.
pub(crate) fn build_batch(
    state: &mut State,
    command_prefix: &str,
    now: Timestamp,
    log: &EventLog,
    incoming: Vec<Message>,
    carry: &mut VecDeque<Message>,
) -> (Batch, Vec<Pending>) {
    let mut batch = log.batch();
    let mut pending = Vec::with_capacity(incoming.len());
    let mut keys = HashSet::with_capacity(incoming.len());
    let mut incoming = incoming.into_iter();
    while let Some(message) = incoming.next() {
        let command_type = message.subject.strip_prefix(command_prefix).unwrap_or("");
        let content_type = message.headers.get("Content-Type");
        let decoded = match protocol::decode_command(command_type, &message.payload, content_type) {
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
                let reply = protocol::decode_reply(&stored, Format::Bincode).unwrap_or_else(|_| {
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
            bytes
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
    committer.final_index_run().await;
    committer.final_snapshot().await
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
            "service:test",
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

        /// Builds a batch of `incoming` and commits it; returns the answers and the carry.
        fn run(&mut self, incoming: Vec<Message>) -> (Vec<Reply>, VecDeque<Message>) {
            let mut carry = VecDeque::new();
            let (batch, pending) = build_batch(
                &mut self.state,
                PREFIX,
                Timestamp::from_millis(1_000_000),
                &self.log,
                incoming,
                &mut carry,
            );
            if !batch.is_empty() {
                self.log.commit(batch).unwrap();
            }
            (pending.into_iter().map(|p| p.reply).collect(), carry)
        }
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
}
