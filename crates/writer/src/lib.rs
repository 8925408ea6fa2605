//! The writer: Parlor's only command service for a log.
//!
//! It takes commands from `<prefix>.cmd.<type>`, decides them with the pure domain against the
//! write-side state it keeps in memory, appends the events of many commands as one durable batch
//! (group commit: one atomic sled write, one flush), answers every command of the batch, and
//! then publishes the committed events, in position order, on `<prefix>.evt.<type>`. It also
//! serves `<prefix>.log.read`, announces the head on `<prefix>.audit.head`, and obeys
//! `<prefix>.dev.clock` when started with the development clock.
//!
//! Exactly one writer may answer for a log: two would fork history. A writer that finds another
//! answering `<prefix>.writer.ping` at start-up refuses to start.
//!
//! With [`run_ha`] (`parlor writer --ha`) several writers share one log through JetStream: one
//! leads by a lease and replicates each batch to a stream before its own log and before any
//! answer; the others follow that stream into their logs, serve `log.read` and `audit.head`
//! from them, and take over when the lease is free (see `ha.rs`).

mod committer;
mod ha;
mod publisher;
mod services;
mod services_file;
mod shared_log;
mod snapshot;
mod stored_reply;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use bus::{Bus, BusError, Headers};
use clock::Clock;
use eventlog::EventLog;
use protocol::Format;
use shared_log::SharedLog;
use tokio::sync::{mpsc, watch};
use tokio::task::JoinSet;
use tracing::info;

pub use ha::{run_ha, HaConfig};
pub use services_file::{
    parse_services, read_services, ServicesFileError, SERVICES_FILE_BYTES_MAX,
};
pub use snapshot::{load_state, SnapshotError};

/// Commands waiting for the committer, by default. When the queue is full the writer answers `unavailable`
/// at once instead of queueing without bound (back-pressure to the callers, who retry).
pub const QUEUE_COMMANDS_MAX: usize = 16_384;
/// Events between two state snapshots, by default: at the fold rate of a restart (about 150,000
/// events/s) the tail after a snapshot folds in under two seconds.
pub const SNAPSHOT_EVERY_EVENTS_DEFAULT: u64 = 250_000;
/// On a large log, snapshots are at least this fraction of the log apart (1/16): see
/// `Committer::snapshot_due`.
pub const SNAPSHOT_SPACING_LOG_DIVISOR: u64 = 16;
/// Time between two state snapshots when events arrive too slowly to reach the count.
pub const SNAPSHOT_EVERY_DEFAULT: Duration = Duration::from_secs(60);
/// How long the start-up check waits for another writer's answer.
pub const PING_WAIT: Duration = Duration::from_millis(500);

/// How the writer runs.
#[derive(Debug, Clone)]
pub struct WriterConfig {
    /// The data directory; the log lives in `<data_dir>/log`.
    pub data_dir: PathBuf,
    /// The first token of every subject (`parlor`).
    pub subject_prefix: String,
    /// R-R3's limit.
    pub daily_conversation_limit: u32,
    /// How committed events are encoded when published.
    pub event_format: Format,
    /// How often the head is announced on `<prefix>.audit.head`.
    pub head_interval: Duration,
    /// Write a state snapshot after this many events since the last one, or a sixteenth of the
    /// log if that is more (0: not by count).
    pub snapshot_every_events: u64,
    /// Write a state snapshot when this long has passed since the last one and the head has
    /// moved (zero: not by time). Snapshots are written in the background; one at a time.
    pub snapshot_every: Duration,
    /// Commands waiting for the committer at most; more are answered `unavailable` at once.
    pub queue_commands_max: usize,
    /// Which service may send which service command (security.md H-I2; `--services FILE`).
    pub services: domain::ServiceTable,
}

impl WriterConfig {
    /// Defaults for a data directory: prefix `parlor`, bincode events, head every 5 s.
    pub fn new(data_dir: impl Into<PathBuf>) -> WriterConfig {
        WriterConfig {
            data_dir: data_dir.into(),
            subject_prefix: "parlor".to_owned(),
            daily_conversation_limit: domain::limits::DAILY_CONVERSATION_LIMIT_DEFAULT,
            event_format: Format::Bincode,
            head_interval: Duration::from_secs(5),
            snapshot_every_events: SNAPSHOT_EVERY_EVENTS_DEFAULT,
            snapshot_every: SNAPSHOT_EVERY_DEFAULT,
            queue_commands_max: QUEUE_COMMANDS_MAX,
            services: domain::ServiceTable::default(),
        }
    }

    /// Where the log lives.
    pub fn log_dir(&self) -> PathBuf {
        self.data_dir.join("log")
    }

    pub(crate) fn subject(&self, rest: &str) -> String {
        format!("{}.{rest}", self.subject_prefix)
    }
}

/// Why the writer could not start or stopped badly.
#[derive(Debug, thiserror::Error)]
pub enum WriterError {
    /// Another writer answers for this prefix: starting would fork history.
    #[error("another writer already answers on {subject}; refusing to start (two writers would fork the log)")]
    AnotherWriterRunning {
        /// The ping subject that was answered.
        subject: String,
    },
    /// The log could not be opened or read.
    #[error("event log: {0}")]
    Log(#[from] eventlog::LogError),
    /// The write-side state could not be rebuilt.
    #[error("state: {0}")]
    State(#[from] SnapshotError),
    /// The bus refused a subscription.
    #[error("bus: {0}")]
    Bus(#[from] BusError),
    /// A task of the writer failed.
    #[error("task failed: {0}")]
    Task(String),
    /// The HA leader stopped leading: its lease was lost, or an append to the write-ahead log
    /// failed (fenced by a newer leader, or unknown whether it landed). It answers nothing more.
    #[error("stepped down: {0}")]
    SteppedDown(String),
    /// The HA writer's JetStream parts failed, or its log and the write-ahead log disagree.
    #[error("replication: {0}")]
    Replication(String),
}

/// Resolves once a stop is requested (or the stop sender is gone). The borrow of the watch
/// value ends inside, so callers' futures stay `Send`.
pub(crate) async fn stop_requested(stopped: &mut watch::Receiver<bool>) {
    let _ = stopped.wait_for(|stop| *stop).await.map(|_| ());
}

/// A running writer. Dropping it does not stop it; call [`Writer::shutdown`].
pub struct Writer {
    log: SharedLog,
    stop: watch::Sender<bool>,
    tasks: JoinSet<Result<(), WriterError>>,
}

impl Writer {
    /// Opens the log, rebuilds the state, checks that no other writer answers, subscribes, and
    /// starts serving.
    pub async fn start(
        config: WriterConfig,
        bus: Bus,
        clock: Clock,
    ) -> Result<Writer, WriterError> {
        let log_dir = config.log_dir();
        let opened = tokio::task::spawn_blocking(move || EventLog::open(&log_dir))
            .await
            .map_err(|e| WriterError::Task(e.to_string()))??;
        let ping_subject = config.subject("writer.ping");
        match bus
            .request(&ping_subject, Headers::new(), "{}", PING_WAIT)
            .await
        {
            Ok(_) => {
                return Err(WriterError::AnotherWriterRunning {
                    subject: ping_subject,
                })
            }
            Err(BusError::NoResponders | BusError::Timeout) => {}
            Err(other) => return Err(other.into()),
        }
        Writer::serve(config, bus, clock, opened, None, None).await
    }

    /// Rebuilds the state from `opened` (or takes `warm`: the state as of its head and the
    /// snapshot position it started from) and starts serving; as the HA leader when
    /// `leadership` is given (no ping check: the lease and the write-ahead log's fence decide).
    pub(crate) async fn serve(
        config: WriterConfig,
        bus: Bus,
        clock: Clock,
        opened: EventLog,
        leadership: Option<ha::Leadership>,
        warm: Option<(domain::State, u64)>,
    ) -> Result<Writer, WriterError> {
        let config = Arc::new(config);
        let log = SharedLog::new(config.log_dir(), opened.clone());
        let ping_subject = config.subject("writer.ping");

        let (stop, stopped) = watch::channel(false);
        let mut tasks = JoinSet::new();
        // An HA leader keeps its lease from the start: rebuilding the state may take longer
        // than the lease lasts.
        let (replication, leader, gate) = match leadership {
            Some(leadership) => {
                let (leader, gate) = (leadership.describe(), leadership.read_gate());
                let (replication, keeper) = leadership.split();
                tasks.spawn(ha::keep_lease(keeper, stopped.clone()));
                (Some(replication), Some((leader, gate.clone())), Some(gate))
            }
            None => (None, None, None),
        };
        let started = std::time::Instant::now();
        let domain_config = domain::Config {
            daily_conversation_limit: config.daily_conversation_limit,
        };
        let (state, snapshot_position) = match warm {
            Some(warm) => warm,
            None => {
                let log = opened.clone();
                let data_dir = config.data_dir.clone();
                tokio::task::spawn_blocking(move || load_state(&log, &data_dir, domain_config))
                    .await
                    .map_err(|e| WriterError::Task(e.to_string()))??
            }
        };
        let head = opened.head();
        drop(opened);
        info!(
            head = head.position,
            from_snapshot = snapshot_position,
            elapsed_ms = started.elapsed().as_millis() as u64,
            "write-side state ready"
        );

        // Subscribe to everything before answering anything, so no command is missed.
        let commands = bus.subscribe(&config.subject("cmd.>")).await?;
        let (queue_tx, queue_rx) = mpsc::channel(config.queue_commands_max.max(1));
        let (committed_tx, committed_rx) = watch::channel(head.position);
        tasks.spawn(services::serve_pings(
            bus.subscribe(&ping_subject).await?,
            bus.clone(),
            log.clone(),
            leader,
            stopped.clone(),
        ));
        tasks.spawn(services::serve_log_reads(
            bus.queue_subscribe(&config.subject("log.read"), services::LOG_READ_QUEUE_GROUP)
                .await?,
            bus.clone(),
            log.clone(),
            gate.clone(),
            stopped.clone(),
        ));
        tasks.spawn(services::announce_head(
            config.clone(),
            bus.clone(),
            log.clone(),
            gate,
            stopped.clone(),
        ));
        if clock.is_adjustable() {
            let subscription = bus.subscribe(&config.subject("dev.clock")).await?;
            let (bus, clock, stopped) = (bus.clone(), clock.clone(), stopped.clone());
            tasks.spawn(async move {
                clock::serve_dev_clock(subscription, bus, clock, stopped).await;
                Ok(())
            });
        }
        tasks.spawn(publisher::publish_committed(
            config.clone(),
            bus.clone(),
            log.clone(),
            committed_rx,
        ));
        tasks.spawn(committer::take_commands(
            commands,
            bus.clone(),
            queue_tx,
            stopped.clone(),
        ));
        let (answers_tx, answers_rx) = mpsc::channel(committer::ANSWER_BATCHES_MAX);
        tasks.spawn(committer::answer_batches(bus.clone(), answers_rx));
        tasks.spawn(committer::run(
            committer::Committer::new(
                config.clone(),
                bus,
                log.clone(),
                clock,
                state,
                committed_tx,
                answers_tx,
                snapshot_position,
                replication,
            ),
            queue_rx,
        ));
        info!(head = head.position, "writer serving");
        Ok(Writer { log, stop, tasks })
    }

    /// The acknowledged head of the log.
    pub fn head(&self) -> eventlog::Head {
        self.log.head()
    }

    /// Stops taking commands, answers the ones already taken (finishing the batch in flight and
    /// flushing it), publishes what was committed, writes a state snapshot and returns.
    pub async fn shutdown(mut self) -> Result<(), WriterError> {
        let _ = self.stop.send(true);
        let mut first_error = None;
        while let Some(joined) = self.tasks.join_next().await {
            let result = joined
                .map_err(|e| WriterError::Task(e.to_string()))
                .and_then(|r| r);
            if let Err(error) = result {
                first_error.get_or_insert(error);
            }
        }
        first_error.map_or(Ok(()), Err)
    }

    /// Waits until a task of the writer ends by itself (which only an unrecoverable failure
    /// does) and returns its result.
    pub async fn failed(&mut self) -> Result<(), WriterError> {
        match self.tasks.join_next().await {
            Some(joined) => joined
                .map_err(|e| WriterError::Task(e.to_string()))
                .and_then(|r| r),
            None => Ok(()),
        }
    }
}
