//! The HA writer (`parlor writer --ha`): any number of writers run it; one leads, the others
//! follow.
//!
//! - **Following**: a writer reads the write-ahead log (a replicated JetStream stream, see
//!   `bus::ha`) from the first entry its own log does not hold and applies each entry to its
//!   log with `EventLog::apply_replicated` (same positions, bytes and hash chain; replies too),
//!   refusing gaps and forks, and folds the new records into its write-side state, which it
//!   keeps warm (loaded once from its snapshot and log). Meanwhile it tries to take the lease.
//! - **Taking over**: having won the lease, it reads the stream to its last sequence, applies
//!   what it lacks, then appends an empty entry (the fence of its epoch) expecting that last
//!   sequence. From then on any append of an earlier leader fails. Only then does it serve as
//!   [`crate::Writer`] does, with the state it kept warm (no snapshot load, no fold).
//! - **Serving reads while following**: a standby answers `log.read` (in the same queue group
//!   as the leader, so each request gets one answer) and announces `audit.head` from its own
//!   log. Before each read it asks the stream for its last sequence and waits (bounded) until
//!   it has applied that entry, so the head it reports is at least every head the leader has
//!   answered a command or published an event at: a standby's page is one the leader could
//!   have sent, never a stale "end of the log". Commands and `writer.ping` stay the leader's.
//! - **Leading**: each batch goes to the stream first (expecting the sequence of the previous
//!   entry), then to the local log, then the answers go out. A failed append or local commit,
//!   or a lost lease, makes it step down: it stops answering and becomes a follower again,
//!   which brings its log back in line with the stream.
//!
//! Nothing acknowledged can be lost or duplicated: an answer goes out only after a majority of
//! the servers stored the batch, every later leader reads the stream to its end before its
//! fence, and a command that was answered `unavailable` (its batch perhaps in the stream after
//! all) is answered from its stored reply when the caller retries it with the same id.

use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use bus::ha::{HaError, Held, Lease, LeaseOptions, Wal, WalEntry, WalFollower, WalOptions};
use bus::Bus;
use clock::Clock;
use eventlog::{EventLog, ReplicatedBatch};
use tokio::sync::watch;
use tokio::task::JoinSet;
use tracing::{info, warn};

use crate::shared_log::SharedLog;
use crate::snapshot::{fold_tail, load_state};
use crate::{services, stop_requested, Writer, WriterConfig, WriterError};

/// How far back from the first entry a follower lacks it looks for an entry with records, to
/// check that its log and the stream agree (entries without records are fences).
const FORK_CHECK_ENTRIES_MAX: u64 = 16;

/// How long a new leader waits for each entry while reading the stream to its end.
const CATCH_UP_ENTRY_WAIT_MAX: Duration = Duration::from_secs(10);

/// The pause before following again after the stream's consumer failed (a server restarting),
/// and before asking the stream again where to start following when it could not be read.
const FOLLOW_RETRY_PAUSE: Duration = Duration::from_millis(500);

/// How long a writer that won the lease keeps it while the stream cannot be read or appended to
/// (no leader server for it: nats-server's own election takes 4–9 s after a server dies), before
/// it gives the lease up. Longer than the longest election plus a few looks.
const TAKE_OVER_UNAVAILABLE_WAIT_MAX: Duration = Duration::from_secs(12);

/// The pause between a new leader's looks at a stream it could not read or append to: a few
/// looks per second end the wait soon after the stream has a leader again, while each look
/// costs the servers one small request.
const TAKE_OVER_RETRY_PAUSE: Duration = Duration::from_millis(200);

/// How long a standby's `log.read` waits for the stream's last sequence and for its own log to
/// hold that entry, before it answers `unavailable` instead. Well under a reader's timeout
/// (5 s for the log follower); reads are served one at a time, so this also bounds how long
/// one read can hold up the next.
const STANDBY_LEVEL_WAIT_MAX: Duration = Duration::from_secs(1);

/// The HA writer's settings.
#[derive(Clone, Debug)]
pub struct HaConfig {
    /// This writer's name in the lease and in `writer.ping` (unique per writer).
    pub name: String,
    /// The lease bucket and its time to live.
    pub lease: LeaseOptions,
    /// The write-ahead log's stream.
    pub wal: WalOptions,
}

impl HaConfig {
    /// Settings for writers under `subject_prefix` with a lease of `lease_ttl`.
    pub fn new(name: impl Into<String>, subject_prefix: &str, lease_ttl: Duration) -> HaConfig {
        HaConfig {
            name: name.into(),
            lease: LeaseOptions::new(subject_prefix, lease_ttl),
            wal: WalOptions::new(subject_prefix),
        }
    }
}

/// The leader's end of the write-ahead log: the stream, the sequence of its last entry, and
/// until when its lease stands (the lease keeper moves it on with each renewal).
pub(crate) struct Replication {
    wal: Wal,
    last_sequence: u64,
    lease_valid_until: LeaseClock,
}

/// Until when the leader's lease stands, shared by the lease keeper (which moves it on), the
/// committer (which answers nothing from its state alone once it has passed) and the reads,
/// announcements and pings (see [`ReadGate`]).
pub(crate) type LeaseClock = Arc<Mutex<Instant>>;

/// Whether the lease `clock` keeps still stands now.
fn lease_stands(clock: &LeaseClock) -> bool {
    Instant::now() < *clock.lock().unwrap_or_else(PoisonError::into_inner)
}

/// What an HA writer checks before it answers a `log.read`, announces its head or answers a
/// ping: that what it is about to say is still the log's head, as far as any caller can know.
#[derive(Clone)]
pub(crate) enum ReadGate {
    /// A standby: its log holds the stream's last entry ([`Level`]; boxed, as the stream's
    /// handle is large).
    Standby(Box<Level>),
    /// A leader: its lease stands. A leader paused past its lease and resumed would otherwise
    /// answer, until it steps down, with a head a newer leader has moved past.
    Leader(LeaseClock),
}

impl ReadGate {
    /// `Ok` when the writer may answer; otherwise why not (for an `unavailable` answer).
    pub(crate) async fn open(&self) -> Result<(), String> {
        match self {
            ReadGate::Standby(level) => level.reached().await,
            ReadGate::Leader(clock) if lease_stands(clock) => Ok(()),
            ReadGate::Leader(_) => {
                Err("this writer's lease has run out; it is stepping down".to_owned())
            }
        }
    }
}

impl Replication {
    /// Whether the lease still stands now. A batch that writes nothing (only rejections and
    /// stored replies) never reaches the write-ahead log, whose fence would stop a deposed
    /// leader; its answers are sent only while this holds, so a leader that was paused past
    /// its lease answers no rejection decided on a state that may be stale.
    pub(crate) fn lease_stands(&self) -> bool {
        lease_stands(&self.lease_valid_until)
    }

    /// Appends `entry` after the last entry this leader knows of and waits for the ack.
    pub(crate) async fn append(&mut self, entry: &ReplicatedBatch) -> Result<(), HaError> {
        let sequence = self
            .wal
            .append(self.last_sequence, entry.encode().into())
            .await?;
        self.last_sequence = sequence;
        Ok(())
    }
}

/// What a writer that won the lease hands to [`Writer::serve`].
pub(crate) struct Leadership {
    name: String,
    replication: Replication,
    lease: Lease,
    held: Held,
}

impl Leadership {
    /// The `writer.ping` fields of this leader (a JSON fragment).
    pub(crate) fn describe(&self) -> String {
        let name = serde_json::to_string(&self.name).unwrap_or_else(|_| "\"?\"".to_owned());
        format!("\"leader\":{name},\"epoch\":{}", self.held.epoch)
    }

    /// What this leader's reads, announcements and pings check.
    pub(crate) fn read_gate(&self) -> ReadGate {
        ReadGate::Leader(Arc::clone(&self.replication.lease_valid_until))
    }

    /// The committer's part and the lease keeper's part.
    pub(crate) fn split(self) -> (Replication, LeaseKeeper) {
        let clock = Arc::clone(&self.replication.lease_valid_until);
        (
            self.replication,
            LeaseKeeper {
                lease: self.lease,
                held: self.held,
                clock,
            },
        )
    }
}

/// The lease keeper's part of a leadership.
pub(crate) struct LeaseKeeper {
    lease: Lease,
    held: Held,
    clock: LeaseClock,
}

/// Renews the lease while the writer leads. Ends with `SteppedDown` when the lease is lost or
/// could not be renewed before it would run out; on a stop, gives it up.
pub(crate) async fn keep_lease(
    keeper: LeaseKeeper,
    mut stopped: watch::Receiver<bool>,
) -> Result<(), WriterError> {
    let LeaseKeeper {
        lease,
        mut held,
        clock,
    } = keeper;
    loop {
        tokio::select! {
            _ = stop_requested(&mut stopped) => {
                if let Err(release_error) = lease.release(held).await {
                    warn!(%release_error, "could not give the lease up; it runs out by itself");
                }
                return Ok(());
            }
            _ = tokio::time::sleep(lease.options().renew_every()) => {}
        }
        match lease.renew(&mut held).await {
            Ok(true) => {
                *clock.lock().unwrap_or_else(PoisonError::into_inner) = held.valid_until();
            }
            Ok(false) => {
                return Err(WriterError::SteppedDown(
                    "the lease is no longer this writer's".to_owned(),
                ))
            }
            Err(renew_error) => warn!(%renew_error, "lease renewal failed; trying again"),
        }
        if !held.is_valid() {
            return Err(WriterError::SteppedDown(
                "the lease ran out: renewals failed".to_owned(),
            ));
        }
    }
}

/// Runs an HA writer until `stop` is set: follows the write-ahead log, leads when it wins the
/// lease, follows again after stepping down. Fails when its log and the stream disagree (a
/// fork, or a log ahead of the stream), which needs an operator.
pub async fn run_ha(
    config: WriterConfig,
    ha: HaConfig,
    bus: Bus,
    clock: Clock,
    mut stop: watch::Receiver<bool>,
) -> Result<(), WriterError> {
    let Some((lease, wal)) = open_jetstream(&bus, &ha, &mut stop).await else {
        return Ok(());
    };
    loop {
        let log_dir = config.log_dir();
        let data_dir = config.data_dir.clone();
        let domain_config = domain::Config {
            daily_conversation_limit: config.daily_conversation_limit,
        };
        let (log, warm) = tokio::task::spawn_blocking(move || {
            let log = EventLog::open(&log_dir)?;
            let (state, snapshot_position) = load_state(&log, &data_dir, domain_config)?;
            let folded = log.head().position;
            Ok::<_, WriterError>((
                log,
                Warm {
                    state,
                    folded,
                    snapshot_position,
                },
            ))
        })
        .await
        .map_err(|e| WriterError::Task(e.to_string()))??;
        let warm = Arc::new(Mutex::new(warm));
        let following = Following {
            config: &config,
            bus: &bus,
            log: &log,
            warm: &warm,
            wal: &wal,
            lease: &lease,
            name: &ha.name,
        };
        let Some((held, last_sequence)) = following.until_leading(&mut stop).await? else {
            return Ok(());
        };
        // Every task that folded into it has ended: this is the only handle left.
        let warm = Arc::into_inner(warm)
            .map(|warm| warm.into_inner().unwrap_or_else(PoisonError::into_inner))
            .filter(|warm| warm.folded == log.head().position)
            .map(|warm| (warm.state, warm.snapshot_position));
        info!(
            name = %ha.name,
            epoch = held.epoch,
            head = log.head().position,
            wal_sequence = last_sequence,
            "took over the lease; leading"
        );
        let leadership = Leadership {
            name: ha.name.clone(),
            replication: Replication {
                wal: wal.clone(),
                last_sequence,
                lease_valid_until: Arc::new(Mutex::new(held.valid_until())),
            },
            lease: lease.clone(),
            held,
        };
        let mut writer = Writer::serve(
            config.clone(),
            bus.clone(),
            clock.clone(),
            log,
            Some(leadership),
            warm,
        )
        .await?;
        let failed = tokio::select! {
            _ = stop_requested(&mut stop) => None,
            failed = writer.failed() => Some(failed),
        };
        let shut = writer.shutdown().await;
        match failed {
            None => return shut,
            Some(reason) => {
                warn!(?reason, shutdown = ?shut, "stepped down; following the write-ahead log")
            }
        }
    }
}

/// Opens the lease bucket and the stream, trying again while JetStream is not ready (a
/// cluster still electing its meta leader); `None` when stopped first.
async fn open_jetstream(
    bus: &Bus,
    ha: &HaConfig,
    stop: &mut watch::Receiver<bool>,
) -> Option<(Lease, Wal)> {
    loop {
        let opened = async {
            let lease = Lease::open(bus, ha.lease.clone()).await?;
            let wal = Wal::open(bus, ha.wal.clone()).await?;
            Ok::<_, HaError>((lease, wal))
        };
        match opened.await {
            Ok(opened) => return Some(opened),
            Err(open_error) => warn!(%open_error, "JetStream not ready; trying again"),
        }
        tokio::select! {
            _ = stop_requested(stop) => return None,
            _ = tokio::time::sleep(FOLLOW_RETRY_PAUSE) => {}
        }
    }
}

/// What a writer follows the write-ahead log with.
struct Following<'a> {
    config: &'a WriterConfig,
    bus: &'a Bus,
    log: &'a EventLog,
    warm: &'a WarmState,
    wal: &'a Wal,
    lease: &'a Lease,
    name: &'a str,
}

impl Following<'_> {
    /// Follows the stream into the log, serving reads from it meanwhile, until this writer
    /// wins the lease and fences the stream (returns the lease and the fence's sequence) or is
    /// stopped (`None`).
    async fn until_leading(
        &self,
        stop: &mut watch::Receiver<bool>,
    ) -> Result<Option<(Held, u64)>, WriterError> {
        let start = loop {
            match first_sequence_lacking(self.log, self.wal).await {
                Ok(start) => break start,
                // A stream with no leader for a moment (an election, often right after the
                // restart that started this writer) is waited out: exiting would take a
                // standby away exactly when it may be needed.
                Err(Lacking::Unreadable(read_error)) => {
                    warn!(%read_error, "cannot read the write-ahead log yet; trying again");
                }
                Err(Lacking::Fatal(error)) => return Err(error),
            }
            tokio::select! {
                _ = stop_requested(stop) => return Ok(None),
                _ = tokio::time::sleep(FOLLOW_RETRY_PAUSE) => {}
            }
        };
        info!(
            head = self.log.head().position,
            from_sequence = start,
            "following the write-ahead log"
        );
        let (applied, level) = watch::channel(start - 1);
        let level = Level {
            wal: self.wal.clone(),
            applied: level,
        };
        let served = StandbyServices::start(self.config, self.bus, self.log, level).await?;
        let followed = self.follow(&applied, stop).await;
        served.end().await;
        followed
    }

    async fn follow(
        &self,
        applied: &watch::Sender<u64>,
        stop: &mut watch::Receiver<bool>,
    ) -> Result<Option<(Held, u64)>, WriterError> {
        let (log, warm, wal, lease) = (self.log, self.warm, self.wal, self.lease);
        // The borrow ends here: its guard must not live across an await.
        let start = applied.borrow().saturating_add(1);
        let mut follower = loop {
            // Subscribing fails only while the connection is down (NATS reconnects by itself).
            match wal.follow(start).await {
                Ok(follower) => break follower,
                Err(follow_error) => warn!(%follow_error, "cannot follow the write-ahead log yet"),
            }
            tokio::select! {
                _ = stop_requested(stop) => return Ok(None),
                _ = tokio::time::sleep(FOLLOW_RETRY_PAUSE) => {}
            }
        };
        let mut try_lease = tokio::time::interval(lease.options().contend_every());
        try_lease.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = stop_requested(stop) => return Ok(None),
                entry = follower.next() => match entry {
                    Some(Ok(entry)) => {
                        apply_entry(log, warm, &entry).await?;
                        applied.send_replace(entry.sequence);
                    }
                    failed => {
                        warn!(?failed, "following the write-ahead log failed; following again");
                        tokio::time::sleep(FOLLOW_RETRY_PAUSE).await;
                        follower = refollow(wal, &follower).await;
                    }
                },
                _ = try_lease.tick() => match lease.try_acquire(self.name).await {
                    Ok(Some(held)) => {
                        let taken = TakeOver { log, warm, wal, lease, applied }
                            .run(&mut follower, held, stop)
                            .await?;
                        if let Some(leading) = taken {
                            return Ok(Some(leading));
                        }
                    }
                    Ok(None) => {}
                    Err(lease_error) => warn!(%lease_error, "cannot reach the lease; following on"),
                },
            }
        }
    }
}

/// A new follower from where `follower` stands (the old one stays if that fails).
async fn refollow(wal: &Wal, follower: &WalFollower) -> WalFollower {
    loop {
        match wal.follow(follower.next_sequence()).await {
            Ok(again) => return again,
            Err(follow_error) => {
                warn!(%follow_error, "cannot follow the write-ahead log yet");
                tokio::time::sleep(FOLLOW_RETRY_PAUSE).await;
            }
        }
    }
}

/// What a writer that won the lease needs to read the stream to its end and fence it.
struct TakeOver<'a> {
    log: &'a EventLog,
    warm: &'a WarmState,
    wal: &'a Wal,
    lease: &'a Lease,
    applied: &'a watch::Sender<u64>,
}

impl TakeOver<'_> {
    /// Having won the lease: reads the stream to its end, then fences it. `None` (the lease
    /// given up again) when another leader appended meanwhile, the lease was lost, the stream
    /// stayed unavailable for [`TAKE_OVER_UNAVAILABLE_WAIT_MAX`] or a stop was asked for; an
    /// error when an entry does not fit the local log.
    ///
    /// A stream that cannot be read or appended to now (no leader server for a moment) is
    /// asked again every [`TAKE_OVER_RETRY_PAUSE`] while the lease is kept, instead of giving
    /// the lease up at once: the writer that would win it next would meet the same stream.
    /// Every retry keeps the one rule the fencing rests on: the fence expects a sequence that
    /// this writer read as the stream's last *after* winning the lease, and its log holds every
    /// entry up to it. So the fence lands right after what this writer holds or not at all, and
    /// once it lands every append of an earlier leader fails.
    async fn run(
        &self,
        follower: &mut WalFollower,
        mut held: Held,
        stop: &mut watch::Receiver<bool>,
    ) -> Result<Option<(Held, u64)>, WriterError> {
        let waited_until = Instant::now() + TAKE_OVER_UNAVAILABLE_WAIT_MAX;
        // The sequence to fence on again without reading the end first, after an append that no
        // server took: nothing was stored, so sending the same fence again cannot store it twice
        // (and had another writer appended meanwhile, the expected sequence would refuse it).
        let mut fence_again_on = None;
        loop {
            let tried = match fence_again_on.take() {
                Some(last) => self.fence(last, &mut held).await,
                None => match self.wal.last_sequence().await {
                    Ok(last) => match self.catch_up(follower, last, &mut held).await? {
                        Ok(()) => self.fence(last, &mut held).await,
                        Err(not_yet) => Err(not_yet),
                    },
                    Err(read_error) => Err(NotLeading::Unavailable(read_error)),
                },
            };
            let unavailable = match tried {
                Ok(sequence) => return Ok(Some((held, sequence))),
                Err(NotLeading::GiveUp(reason)) => return give_up(self.lease, held, &reason).await,
                Err(NotLeading::Untaken(last)) => {
                    fence_again_on = Some(last);
                    NotLeading::Untaken(last)
                }
                Err(unavailable) => unavailable,
            };
            if Instant::now() + TAKE_OVER_RETRY_PAUSE > waited_until {
                let reason = format!("the write-ahead log stayed unavailable: {unavailable}");
                return give_up(self.lease, held, &reason).await;
            }
            warn!(%unavailable, "taking over: the write-ahead log is unavailable; keeping the lease and trying again");
            tokio::select! {
                _ = stop_requested(stop) => return give_up(self.lease, held, "stopping").await,
                _ = tokio::time::sleep(TAKE_OVER_RETRY_PAUSE) => {}
            }
            if !keep(self.lease, &mut held).await {
                return give_up(self.lease, held, "the lease was lost while taking over").await;
            }
        }
    }

    /// Applies the stream's entries up to `last` (those the log lacks), keeping the lease. The
    /// outer error: an entry does not fit the local log (fatal); the inner one: why this try
    /// ends (an entry that cannot be read now is asked for again on the next: reads change
    /// nothing).
    async fn catch_up(
        &self,
        follower: &mut WalFollower,
        last: u64,
        held: &mut Held,
    ) -> Result<Result<(), NotLeading>, WriterError> {
        while follower.next_sequence() <= last {
            let entry = match tokio::time::timeout(CATCH_UP_ENTRY_WAIT_MAX, follower.next()).await {
                Ok(Some(Ok(entry))) => entry,
                Ok(Some(Err(read_error))) => return Ok(Err(NotLeading::Unavailable(read_error))),
                other => return Ok(Err(NotLeading::GiveUp(format!("catching up: {other:?}")))),
            };
            apply_entry(self.log, self.warm, &entry).await?;
            self.applied.send_replace(entry.sequence);
            // A long catch-up must not outlast the lease.
            if !keep(self.lease, held).await {
                return Ok(Err(NotLeading::lease_lost()));
            }
        }
        Ok(Ok(()))
    }

    /// Appends the fence of this writer's epoch, expecting `last` as the stream's last
    /// sequence; the fence's sequence when it landed while the lease stood.
    async fn fence(&self, last: u64, held: &mut Held) -> Result<u64, NotLeading> {
        if !keep(self.lease, held).await {
            return Err(NotLeading::lease_lost());
        }
        let fence = ReplicatedBatch {
            base_position: self.log.head().position,
            ..ReplicatedBatch::default()
        };
        // Whatever happens to the fence, the follower reads it later like any other entry.
        match self.wal.append(last, fence.encode().into()).await {
            Ok(sequence) if held.is_valid() => Ok(sequence),
            Ok(_) => Err(NotLeading::GiveUp(
                "the lease ran out while fencing".to_owned(),
            )),
            // Another writer appended after `last`: it led meanwhile, this one must not.
            Err(fenced @ HaError::Fenced { .. }) => Err(NotLeading::GiveUp(fenced.to_string())),
            // No server took it, so nothing was stored: the same fence may be sent again.
            Err(HaError::NoResponders) => Err(NotLeading::Untaken(last)),
            // It may have landed: the next try reads the stream's end again and fences on that
            // (a fence of this writer's found there is applied like any entry and fenced after;
            // one landing later makes that second fence fail, and the lease is given up).
            Err(append_error) => Err(NotLeading::Unavailable(append_error)),
        }
    }
}

/// Why a take-over try did not make this writer the leader.
#[derive(Debug, thiserror::Error)]
enum NotLeading {
    /// A read, or an append whose outcome is unknown, failed: the next try reads the stream's
    /// end again.
    #[error("{0}")]
    Unavailable(HaError),
    /// No server took the fence expecting this sequence, so nothing was stored: the next try
    /// sends it again.
    #[error("no server took the fence (expecting sequence {0})")]
    Untaken(u64),
    /// This writer must not lead (fenced by another, its lease lost or run out, the stream
    /// stalled); why. The lease is given up.
    #[error("{0}")]
    GiveUp(String),
}

impl NotLeading {
    fn lease_lost() -> NotLeading {
        NotLeading::GiveUp("the lease was lost or ran out while taking over".to_owned())
    }
}

/// Renews `held` once less than half its time to live is left (a long catch-up, a wait for the
/// stream); whether it still stands. A failed renewal is tried again on the next call, while
/// the lease stands.
async fn keep(lease: &Lease, held: &mut Held) -> bool {
    let remaining = held.valid_until().saturating_duration_since(Instant::now());
    if remaining < lease.options().ttl / 2 {
        match lease.renew(held).await {
            Ok(true) => {}
            Ok(false) => return false,
            Err(renew_error) => warn!(%renew_error, "lease renewal failed while taking over"),
        }
    }
    held.is_valid()
}

/// Gives a lease just won up again (the takeover did not complete).
async fn give_up(
    lease: &Lease,
    held: Held,
    reason: &str,
) -> Result<Option<(Held, u64)>, WriterError> {
    info!(reason, "taking over did not complete; following on");
    if let Err(release_error) = lease.release(held).await {
        warn!(%release_error, "could not give the lease up; it runs out by itself");
    }
    Ok(None)
}

/// A standby's check, before it answers a `log.read` (or announces its head), that its log
/// holds every entry the write-ahead log held when the read arrived. A leader answers a command, and publishes its
/// events, only after the stream acknowledged their entry, so a position any caller can know
/// of is then in this log: the head a standby reports is no lower than the leader's was when
/// the read was sent, and a caller never takes a lagging standby's head for the end of the log
/// (a read model refusing a `min_position` as "beyond the head", say).
#[derive(Clone)]
pub(crate) struct Level {
    wal: Wal,
    /// The last sequence of the stream this writer's log holds (applied or already held).
    applied: watch::Receiver<u64>,
}

impl Level {
    /// Waits (at most [`STANDBY_LEVEL_WAIT_MAX`]) until the log holds the stream's last entry;
    /// otherwise says why, for an `unavailable` answer (the caller asks again).
    pub(crate) async fn reached(&self) -> Result<(), String> {
        let mut applied = self.applied.clone();
        let waited = tokio::time::timeout(STANDBY_LEVEL_WAIT_MAX, async {
            let last =
                self.wal.last_sequence().await.map_err(|error| {
                    format!("this standby cannot ask the write-ahead log: {error}")
                })?;
            // The guard `wait_for` returns is dropped at once (it must not live across an await).
            applied
                .wait_for(|applied| *applied >= last)
                .await
                .map(|_| ())
                .map_err(|_| "this standby stopped following the write-ahead log".to_owned())
        })
        .await;
        match waited {
            Ok(result) => result,
            Err(_) => Err(format!(
                "this standby is behind the write-ahead log (it holds entry {} and has not \
                 caught up within {} ms); ask again",
                *self.applied.borrow(),
                STANDBY_LEVEL_WAIT_MAX.as_millis()
            )),
        }
    }
}

/// What a standby serves while it follows: `log.read` (gated by [`Level`]) and the
/// `audit.head` announcement (gated too), both from its own log. Dropping it aborts the
/// tasks; [`StandbyServices::end`] also waits for them.
struct StandbyServices {
    /// Held while they serve (its drop would end them too).
    _stop: watch::Sender<bool>,
    tasks: JoinSet<Result<(), WriterError>>,
}

impl StandbyServices {
    /// Subscribes `log.read` in the writers' queue group and starts announcing the head.
    async fn start(
        config: &WriterConfig,
        bus: &Bus,
        log: &EventLog,
        level: Level,
    ) -> Result<StandbyServices, WriterError> {
        let config = Arc::new(config.clone());
        let log = SharedLog::new(config.log_dir(), log.clone());
        let (stop, stopped) = watch::channel(false);
        let mut tasks = JoinSet::new();
        let gate = ReadGate::Standby(Box::new(level));
        tasks.spawn(services::serve_log_reads(
            bus.queue_subscribe(&config.subject("log.read"), services::LOG_READ_QUEUE_GROUP)
                .await?,
            bus.clone(),
            log.clone(),
            Some(gate.clone()),
            stopped.clone(),
        ));
        tasks.spawn(services::announce_head(
            config,
            bus.clone(),
            log,
            Some(gate),
            stopped,
        ));
        Ok(StandbyServices { _stop: stop, tasks })
    }

    /// Stops serving (unsubscribes) and waits until the tasks and their log handles are gone.
    /// They are aborted, not asked to stop: after a takeover no follower moves the level any
    /// more, so a read waiting for it would hold the new leader up for a second; its caller
    /// gets no answer and asks again.
    async fn end(mut self) {
        self.tasks.shutdown().await;
    }
}

/// The write-side state a standby keeps level with its log, so that a takeover need not
/// rebuild it: the state as of position `folded`, and the snapshot position it was loaded from.
struct Warm {
    state: domain::State,
    folded: u64,
    snapshot_position: u64,
}

/// The standby's warm state, shared with the blocking task that applies each entry.
type WarmState = Arc<Mutex<Warm>>;

/// Applies one entry of the stream to `log` and folds its records into the warm state:
/// skipped when the log holds it already (checked byte for byte), written when it continues
/// the head; anything else is an error.
async fn apply_entry(
    log: &EventLog,
    warm: &WarmState,
    entry: &WalEntry,
) -> Result<(), WriterError> {
    let batch = ReplicatedBatch::decode(&entry.payload)?;
    let log = log.clone();
    let warm = Arc::clone(warm);
    let sequence = entry.sequence;
    tokio::task::spawn_blocking(move || {
        if !log.holds_replicated(&batch)? {
            log.apply_replicated(&batch)?;
        }
        let mut warm = warm.lock().unwrap_or_else(PoisonError::into_inner);
        let after = warm.folded;
        warm.folded = fold_tail(&log, &mut warm.state, after)?;
        Ok::<_, WriterError>(())
    })
    .await
    .map_err(|e| WriterError::Task(e.to_string()))?
    .map_err(|error| {
        WriterError::Replication(format!(
            "write-ahead log entry {sequence} does not fit the local log: {error}"
        ))
    })
}

/// Why [`first_sequence_lacking`] found no answer.
#[derive(Debug)]
enum Lacking {
    /// The stream cannot be read now (no leader server for a moment, the connection down):
    /// ask again after a pause.
    Unreadable(HaError),
    /// The log and the stream disagree (a fork, a log ahead of the stream, an entry that is
    /// missing or does not decode), or the local log failed: this needs an operator.
    Fatal(WriterError),
}

impl From<HaError> for Lacking {
    fn from(error: HaError) -> Lacking {
        Lacking::Unreadable(error)
    }
}

impl From<WriterError> for Lacking {
    fn from(error: WriterError) -> Lacking {
        Lacking::Fatal(error)
    }
}

/// The entry at `sequence`, decoded.
async fn tip_at(wal: &Wal, sequence: u64) -> Result<ReplicatedBatch, Lacking> {
    let entry = wal.get(sequence).await?.ok_or_else(|| {
        WriterError::Replication(format!("write-ahead log entry {sequence} is missing"))
    })?;
    Ok(ReplicatedBatch::decode(&entry.payload).map_err(WriterError::from)?)
}

/// The first sequence of the stream whose entry goes past the local head (binary search: tips
/// never decrease along the stream), after checking that the local head ends an entry and
/// that the log holds the last entries with records before it byte for byte.
async fn first_sequence_lacking(log: &EventLog, wal: &Wal) -> Result<u64, Lacking> {
    let head = log.head().position;
    let last = wal.last_sequence().await?;
    if head == 0 {
        return Ok(1);
    }
    let (mut low, mut high) = (1u64, last + 1);
    while low < high {
        let middle = low + (high - low) / 2;
        if tip_at(wal, middle).await?.tip_position() > head {
            high = middle;
        } else {
            low = middle + 1;
        }
    }
    let mismatch = |reason: String| {
        WriterError::Replication(format!(
            "the local log (head {head}) and the write-ahead log (last sequence {last}) \
             disagree: {reason}; this writer's data directory must be replaced"
        ))
    };
    if low == 1 {
        return Err(mismatch("the stream holds none of the local records".to_owned()).into());
    }
    let before = tip_at(wal, low - 1).await?;
    if before.tip_position() != head {
        return Err(mismatch(format!(
            "the local head is not the end of a replicated batch (entry {} ends at {})",
            low - 1,
            before.tip_position()
        ))
        .into());
    }
    let mut sequence = low - 1;
    while sequence >= 1 && low - sequence <= FORK_CHECK_ENTRIES_MAX {
        let entry = tip_at(wal, sequence).await?;
        if !entry.records.is_empty() {
            let held = {
                let log = log.clone();
                tokio::task::spawn_blocking(move || log.holds_replicated(&entry))
                    .await
                    .map_err(|e| WriterError::Task(e.to_string()))?
            };
            if !matches!(held, Ok(true)) {
                return Err(mismatch(format!("entry {sequence}: {held:?}")).into());
            }
            break;
        }
        sequence -= 1;
    }
    Ok(low)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_leader_answers_reads_only_while_its_lease_stands() {
        let clock: LeaseClock = Arc::new(Mutex::new(Instant::now() + Duration::from_secs(60)));
        let gate = ReadGate::Leader(Arc::clone(&clock));
        assert_eq!(gate.open().await, Ok(()));
        // Paused past the lease: the keeper has not moved the clock on.
        *clock.lock().unwrap_or_else(PoisonError::into_inner) = Instant::now();
        assert!(gate.open().await.is_err());
    }
}
