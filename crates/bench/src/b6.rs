//! B6: restarting the writer on a large log — time to the first accepted command, and memory.
//!
//! The log is built by an in-process generator, not over NATS: it runs the writer's own pieces
//! in the writer's order — `protocol::decode_command` (JSON), `domain::decide`, `command_result`,
//! `protocol::encode_stored`, `eventlog::Batch::add_command` with the bincode reply stored under
//! the command id, `EventLog::commit` — so the log holds what the writer would have written for
//! the same commands (users, rooms, then `message.send` into Zipf-drawn rooms), in full batches
//! of 4,096 commands. It is much faster than driving millions of commands over NATS. The
//! generator writes no snapshot, so the first restart folds the whole log (as after a crash);
//! that writer's clean shutdown writes a snapshot, and the second restart starts from it.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context};
use domain::{evolve, Event, State};
use eventlog::{AddRejected, EventLog, NewRecord};
use protocol::Format;
use serde::{Deserialize, Serialize};

use crate::corpus::Vocabulary;
use crate::kept_log::{self, Place};
use crate::report::{thousands, verdict, Table};
use crate::stats::Figure;
use crate::system::{Nats, Parlor};
use crate::workload::{self, users_for, ROOMS_PER_USER, SERVICE_ACTOR};
use crate::zipf::{Rng, Zipf};
use crate::Settings;

/// How long a restart may take to accept its first command before B6 gives up.
pub const FIRST_COMMAND_WAIT_MAX: Duration = Duration::from_secs(900);
/// Print generator progress every this many events.
const PROGRESS_EVERY_EVENTS: u64 = 1_000_000;
/// The writer's snapshot file (writer::snapshot::SNAPSHOT_FILE).
pub const SNAPSHOT_FILE: &str = "writer-state.snapshot";

const MIB: f64 = 1024.0 * 1024.0;

/// The writer's clock: the system's UTC time in milliseconds.
fn now() -> domain::Timestamp {
    let millis = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |elapsed| {
            i64::try_from(elapsed.as_millis()).unwrap_or(i64::MAX)
        });
    domain::Timestamp::from_millis(millis)
}

/// What the generator built.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Generated {
    /// Events in the log.
    pub events: u64,
    /// How long it took.
    pub elapsed: Duration,
    /// `message.send` events among them.
    pub messages: u64,
    /// A room and a member of it, for the probe command.
    pub probe: (String, String),
    /// The rooms [`SEARCHER`] is a member of (empty unless the shape asked for them).
    pub searcher_rooms: Vec<String>,
}

/// The writer's pieces, driven in process.
struct Generator {
    log: EventLog,
    state: State,
    batch: eventlog::Batch,
    now: domain::Timestamp,
    events: u64,
    next_progress: u64,
    started: Instant,
}

impl Generator {
    fn new(log_dir: &Path) -> anyhow::Result<Generator> {
        let log = EventLog::open(log_dir).context("opening the log")?;
        if log.head().position != 0 {
            bail!("the generator needs an empty log");
        }
        Ok(Generator {
            batch: log.batch(),
            log,
            state: State::new(domain::Config::default()),
            now: now(),
            events: 0,
            next_progress: PROGRESS_EVERY_EVENTS,
            started: Instant::now(),
        })
    }

    /// Decides one command and adds its events to the batch (committing a full batch first);
    /// returns its events.
    fn add(&mut self, command_type: &str, payload: &[u8]) -> anyhow::Result<Vec<Event>> {
        let command = protocol::decode_command(command_type, payload, None)
            .map_err(|invalid| anyhow!("{command_type}: {invalid}"))?
            .command;
        let outcome = protocol::decide_command(&self.state, &command, self.now)
            .map_err(|rejection| anyhow!("{command_type} rejected: {rejection:?}"))?;
        let encoded = outcome.encode_records()?;
        let records: Vec<NewRecord<'_>> = encoded
            .iter()
            .map(|record| NewRecord {
                stream: &record.stream,
                payload: &record.bytes,
            })
            .collect();
        let key = *command.command_id.0.as_bytes();
        // At most two tries: a full batch is committed and the command goes into a new one.
        for _ in 0..2 {
            let head_before = self.batch.tip().position;
            let added = self
                .batch
                .add_command(Some(&key), &[], &records, |appended| {
                    let reply = outcome.reply(
                        head_before,
                        appended
                            .iter()
                            .map(|a| (a.position, a.stream.as_str(), a.version)),
                    );
                    protocol::encode_reply(&reply, Format::Bincode).unwrap_or_default()
                })?;
            match added {
                Ok(_) => {
                    for event in &outcome.events {
                        evolve(&mut self.state, event);
                    }
                    self.events += outcome.events.len() as u64;
                    if self.events >= self.next_progress {
                        self.next_progress += PROGRESS_EVERY_EVENTS;
                        let seconds = self.started.elapsed().as_secs_f64();
                        println!(
                            "  generated {} events in {seconds:.0} s ({}/s)",
                            thousands(self.events as f64),
                            thousands(self.events as f64 / seconds.max(1e-9))
                        );
                    }
                    return Ok(outcome.events);
                }
                Err(AddRejected::BatchFull) => self.commit()?,
                Err(other) => bail!("{command_type}: the log refused it: {other:?}"),
            }
        }
        bail!("{command_type}: does not fit an empty batch")
    }

    /// Commits the batch (one atomic write and flush) and begins the next.
    fn commit(&mut self) -> anyhow::Result<()> {
        let batch = std::mem::replace(&mut self.batch, self.log.batch());
        if !batch.is_empty() {
            self.log.commit(batch)?;
            // A new batch must begin after the commit: the one made above is stale now.
            self.batch = self.log.batch();
        }
        self.now = now();
        Ok(())
    }
}

/// What the generator writes. [`Shape::b6`] is B6's log; B4 and B5 add varied bodies and a
/// user who is a member of many rooms ([`Shape::searchable`]).
#[derive(Debug, Clone)]
pub struct Shape {
    /// Events in the log (about: the set-up is whole commands).
    pub events: u64,
    /// Group rooms of two members, created before the messages.
    pub rooms: usize,
    /// Message bodies drawn from this vocabulary; `None`: every body is [`workload::BODY`].
    pub vocabulary: Option<Arc<Vocabulary>>,
    /// Rooms the user [`SEARCHER`] is also a member of (0: no such user).
    pub searcher_rooms: usize,
}

impl Shape {
    /// B6's log: the same body in every message, no searcher.
    pub fn b6(events: u64, rooms: usize) -> Shape {
        Shape {
            events,
            rooms,
            vocabulary: None,
            searcher_rooms: 0,
        }
    }

    /// B4's and B5's log: bodies of Zipf-drawn words, and [`SEARCHER`] in `searcher_rooms`
    /// rooms spread over the Zipf ranks.
    pub fn searchable(events: u64, rooms: usize, searcher_rooms: usize) -> Shape {
        Shape {
            events,
            rooms,
            vocabulary: Some(Arc::new(Vocabulary::new())),
            searcher_rooms,
        }
    }
}

/// The user B5 searches as: a third member of [`Shape::searcher_rooms`] rooms.
pub const SEARCHER: &str = "bench-searcher";

/// Which room indexes (Zipf ranks) the searcher joins: `count` of `rooms`, evenly spread from
/// rank 1 (the second hottest room) on, so the searcher sees busy rooms and quiet ones.
pub fn searcher_room_indexes(rooms: usize, count: usize) -> Vec<usize> {
    let count = count.min(rooms);
    if count == 0 {
        return Vec::new();
    }
    let stride = (rooms / count).max(1);
    (0..count).map(|k| (1 + k * stride) % rooms).collect()
}

/// Fills `data_dir/log` with about `shape.events` events: users, rooms, then messages.
pub fn generate(data_dir: &Path, shape: &Shape) -> anyhow::Result<Generated> {
    let started = Instant::now();
    // Keep the set-up at most half of the log, so that small logs are mostly messages too.
    let rooms = shape
        .rooms
        .min(((shape.events / 2) as usize) * ROOMS_PER_USER / (ROOMS_PER_USER + 1))
        .max(1);
    let users = users_for(rooms);
    let mut generator = Generator::new(&data_dir.join("log"))?;
    let register = |generator: &mut Generator, user: &str, name: &str| {
        let payload = workload::envelope(
            workload::command_id(),
            SERVICE_ACTOR,
            serde_json::json!({
                "user_id": user,
                "display_name": name,
                "kind": "freelancer",
            }),
        );
        generator.add("user.register", &payload).map(|_| ())
    };
    for n in 0..users {
        register(
            &mut generator,
            &workload::user_id(n),
            &format!("Bench user {n}"),
        )?;
    }
    let searcher_indexes = searcher_room_indexes(rooms, shape.searcher_rooms);
    if !searcher_indexes.is_empty() {
        register(&mut generator, SEARCHER, "Bench searcher")?;
    }
    let mut room_ids = Vec::with_capacity(rooms);
    let mut searcher_rooms = Vec::with_capacity(searcher_indexes.len());
    for i in 0..rooms {
        let creator = workload::user_id(i / ROOMS_PER_USER);
        let other = workload::user_id((i / ROOMS_PER_USER + 1) % users);
        let with_searcher = searcher_indexes.contains(&i);
        let members = if with_searcher {
            vec![other, SEARCHER.to_owned()]
        } else {
            vec![other]
        };
        let payload = workload::envelope(
            workload::command_id(),
            &creator,
            serde_json::json!({"name": format!("room {i}"), "members": members}),
        );
        let events = generator.add("room.create", &payload)?;
        let room_id = events
            .iter()
            .find_map(|event| match event {
                Event::GroupRoomCreated { room_id, .. } => Some(room_id.to_string()),
                _ => None,
            })
            .context("room.create made no room")?;
        if with_searcher {
            searcher_rooms.push(room_id.clone());
        }
        room_ids.push((creator, room_id));
    }
    let zipf = Zipf::new(room_ids.len(), Zipf::EXPONENT);
    let mut rng = Rng::new(0xB6);
    let mut words = Rng::new(0xB5);
    // Bounded: every accepted message.send appends exactly one event.
    let messages = shape.events.saturating_sub(generator.events);
    for _ in 0..messages {
        let (actor, room) = room_ids
            .get(zipf.sample(&mut rng))
            .context("no room drawn")?;
        let payload = match &shape.vocabulary {
            None => workload::message_send(actor, room),
            Some(vocabulary) => {
                workload::message_send_with_body(actor, room, &vocabulary.body(&mut words))
            }
        };
        generator.add("message.send", &payload)?;
    }
    generator.commit()?;
    let events = generator.log.head().position;
    let probe = room_ids.first().cloned().context("no rooms")?;
    drop(generator);
    Ok(Generated {
        events,
        messages,
        elapsed: started.elapsed(),
        probe,
        searcher_rooms,
    })
}

/// Bytes under `dir`: `(allocated on disk, apparent file sizes)`.
pub fn disk_usage(dir: &Path) -> (u64, u64) {
    use std::os::unix::fs::MetadataExt;
    let mut allocated = 0;
    let mut apparent = 0;
    let mut pending = vec![dir.to_path_buf()];
    // Bounded by the directory tree, which the log keeps small (sled's few files).
    while let Some(path) = pending.pop() {
        let Ok(entries) = std::fs::read_dir(&path) else {
            continue;
        };
        for entry in entries.flatten() {
            let Ok(metadata) = entry.metadata() else {
                continue;
            };
            if metadata.is_dir() {
                pending.push(entry.path());
            } else {
                allocated += metadata.blocks() * 512;
                apparent += metadata.len();
            }
        }
    }
    (allocated, apparent)
}

/// B6's manifest beside a log kept with `--log-dir`: what was generated there, so a later
/// invocation restarts on it without generating 10M events again.
const MANIFEST_FILE: &str = "parlor-bench-b6.json";

/// A generated log, kept for the repeated runs of one invocation (the restarts are repeated,
/// the generation is not: it takes minutes for millions of events).
#[derive(Debug)]
pub struct GeneratedLog {
    /// The data directory (a temporary one is deleted when the last run is done).
    place: Place,
    /// What the generator made.
    pub generated: Generated,
    /// Allocated bytes of the log directory per event, right after generation.
    pub bytes_per_event: f64,
}

impl GeneratedLog {
    /// The data directory the writer restarts on.
    pub fn path(&self) -> &Path {
        self.place.path()
    }
}

/// What [`MANIFEST_FILE`] holds.
#[derive(Debug, Serialize, Deserialize)]
struct Manifest {
    generated: Generated,
    bytes_per_event: f64,
}

/// The log of `settings.events` events: generated on the first call (or found in
/// `--log-dir`), reused afterwards.
async fn generated_log(settings: &Settings) -> anyhow::Result<Arc<GeneratedLog>> {
    let mut cache = settings.b6_log.lock().await;
    if let Some(log) = cache.as_ref() {
        println!("B6: reusing the log generated by the first run");
        return Ok(log.clone());
    }
    let place = match kept_log::find::<Manifest>(
        settings.log_dir.as_deref(),
        MANIFEST_FILE,
        "B6",
        &settings.data_root,
        "parlor-bench-b6-",
    )? {
        kept_log::Found::Reuse(path, manifest) => {
            println!(
                "B6: reusing the log in {} ({} events; restarts there append to it)",
                path.display(),
                thousands(manifest.generated.events as f64),
            );
            let log = Arc::new(GeneratedLog {
                place: Place::Kept(path),
                generated: manifest.generated,
                bytes_per_event: manifest.bytes_per_event,
            });
            *cache = Some(log.clone());
            return Ok(log);
        }
        kept_log::Found::Generate(place) => place,
    };
    let data_dir = place.path().to_path_buf();
    println!(
        "B6: generating a log of {} events in {} (in process: decide + encode + eventlog batches)",
        thousands(settings.events as f64),
        data_dir.display()
    );
    let (events, rooms) = (settings.events, settings.rooms);
    let shape = Shape::b6(events, rooms);
    let generator_dir = data_dir.clone();
    let generated = tokio::task::spawn_blocking(move || generate(&generator_dir, &shape))
        .await
        .context("the generator panicked")??;
    let (allocated, apparent) = disk_usage(&data_dir.join("log"));
    let bytes_per_event = allocated as f64 / generated.events.max(1) as f64;
    println!(
        "B6: {} events in {:.1} s ({}/s); log on disk {:.1} MiB allocated ({:.1} MiB apparent) = {:.0} bytes/event",
        thousands(generated.events as f64),
        generated.elapsed.as_secs_f64(),
        thousands(generated.events as f64 / generated.elapsed.as_secs_f64().max(1e-9)),
        allocated as f64 / MIB,
        apparent as f64 / MIB,
        bytes_per_event
    );
    place.write_manifest(
        MANIFEST_FILE,
        &Manifest {
            generated: generated.clone(),
            bytes_per_event,
        },
    )?;
    let log = Arc::new(GeneratedLog {
        place,
        generated,
        bytes_per_event,
    });
    *cache = Some(log.clone());
    Ok(log)
}

/// One restart's figures.
struct Restart {
    label: &'static str,
    first_command: Duration,
    memory: crate::procfs::Memory,
    shutdown: Duration,
}

/// Starts the real writer on `data_dir`, sends `message.send` until one is accepted, records
/// the time since spawn and the memory, then stops it with SIGTERM.
async fn restart(
    settings: &Settings,
    nats: &Nats,
    client: &async_nats::Client,
    data_dir: &Path,
    probe: &(String, String),
    label: &'static str,
) -> anyhow::Result<Restart> {
    let mut parlor = Parlor::spawn(&settings.parlor_bin, &nats.url(), data_dir)?;
    let deadline = parlor.started() + FIRST_COMMAND_WAIT_MAX;
    let first_command = loop {
        parlor.check_alive()?;
        let payload = workload::message_send(&probe.0, &probe.1);
        let answer = tokio::time::timeout(
            workload::OP_WAIT_MAX,
            client.request("parlor.cmd.message.send", payload),
        )
        .await;
        if let Ok(Ok(reply)) = answer {
            workload::accepted(&reply.payload).context("the probe command")?;
            break parlor.started().elapsed();
        }
        if Instant::now() >= deadline {
            bail!(
                "the writer accepted nothing within {FIRST_COMMAND_WAIT_MAX:?}; its log ends:\n{}",
                parlor.log_tail()
            );
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    };
    let memory = parlor.memory();
    let stopping = Instant::now();
    let status = parlor.terminate().await?;
    if !status.success() {
        bail!("the writer exited with {status} after SIGTERM");
    }
    Ok(Restart {
        label,
        first_command,
        memory,
        shutdown: stopping.elapsed(),
    })
}

/// Runs B6 once; prints the table and returns the figures.
pub async fn run(settings: &Settings) -> anyhow::Result<Vec<Figure>> {
    let mut figures = crate::fsync_figures(settings, "B6").await?;
    let log = generated_log(settings).await?;
    let (data, generated, per_event) = (log.path(), &log.generated, log.bytes_per_event);
    figures.push(Figure::new("B6 events", generated.events as f64, "events"));
    figures.push(Figure::new("B6 disk bytes/event", per_event, "B"));

    let nats = Nats::start()?;
    let client = nats.connect("parlor-bench-b6").await?;
    let snapshot = data.join(SNAPSHOT_FILE);
    let mut restarts = Vec::new();
    let _ = std::fs::remove_file(&snapshot);
    restarts.push(
        restart(
            settings,
            &nats,
            &client,
            data,
            &generated.probe,
            "no snapshot (fold the whole log)",
        )
        .await?,
    );
    let snapshot_bytes = std::fs::metadata(&snapshot).map(|m| m.len()).unwrap_or(0);
    restarts.push(
        restart(
            settings,
            &nats,
            &client,
            data,
            &generated.probe,
            "from the shutdown snapshot",
        )
        .await?,
    );

    let mut table = Table::new(&[
        "B6 restart",
        "events",
        "first accepted cmd",
        "VmRSS then",
        "VmHWM",
        "SIGTERM → exit",
    ]);
    for (restart, key) in restarts.iter().zip(["cold", "snapshot"]) {
        table.row(vec![
            restart.label.to_owned(),
            thousands(generated.events as f64),
            format!("{:.2} s", restart.first_command.as_secs_f64()),
            format!("{:.0} MiB", restart.memory.rss_bytes as f64 / MIB),
            format!("{:.0} MiB", restart.memory.peak_bytes as f64 / MIB),
            format!("{:.2} s", restart.shutdown.as_secs_f64()),
        ]);
        figures.push(Figure::new(
            format!("B6 {key} first command"),
            restart.first_command.as_secs_f64(),
            "s",
        ));
        figures.push(Figure::new(
            format!("B6 {key} VmRSS"),
            restart.memory.rss_bytes as f64 / MIB,
            "MiB",
        ));
        figures.push(Figure::new(
            format!("B6 {key} VmHWM"),
            restart.memory.peak_bytes as f64 / MIB,
            "MiB",
        ));
    }
    println!("{}", table.render());
    println!(
        "B6: snapshot written at shutdown: {:.1} MiB",
        snapshot_bytes as f64 / MIB
    );
    figures.push(Figure::new(
        "B6 snapshot size",
        snapshot_bytes as f64 / MIB,
        "MiB",
    ));
    for line in goals(&|name| figures.iter().find(|f| f.name == name).map(|f| f.value)) {
        println!("{line}");
    }
    Ok(figures)
}

/// performance.md's B6 goals (stated for a 10M-event log).
pub fn goals(get: &dyn Fn(&str) -> Option<f64>) -> Vec<String> {
    let events = get("B6 events").unwrap_or(0.0);
    let mut lines = Vec::new();
    for key in ["cold", "snapshot"] {
        if let (Some(seconds), Some(peak)) = (
            get(&format!("B6 {key} first command")),
            get(&format!("B6 {key} VmHWM")),
        ) {
            lines.push(format!(
                "goal B6 ({key} restart, {} events; the goal is for 10M) first command ≤ 5 s: {seconds:.2} s — {}; memory ≤ 1 GiB: {peak:.0} MiB peak — {}",
                thousands(events),
                verdict(seconds <= 5.0),
                verdict(peak <= 1024.0)
            ));
        }
    }
    lines
}
