//! B3: projection lag during B2's open loop — how long after a command's accepted reply its
//! message is visible in the room list, the timeline and search, read through the gateway's
//! HTTP API as a frontend would.
//!
//! The system is `parlor up --nats-url <the harness's nats-server>`: the writer, every read
//! model and the HTTP gateway in one process, talking over the real NATS server (the
//! processes of a split deployment talk the same way; one process keeps the harness simple
//! and is what the embedded mode runs). B2's open loop ([`crate::b2::open_loop`]) drives it.
//! One command in [`SAMPLE_EVERY`] carries a word of its own ([`crate::corpus::unique_word`]);
//! the moment its accepted reply (position `P`, `message_id` `M`) arrives, three requests go
//! out at once as its author, each with `min_position=P` (protocol.md §3: the read waits until
//! the model applied `P`; search answers from its committed index and, in memory, what it
//! applied since):
//! `GET /v1/rooms`, `GET /v1/rooms/<room>/messages`, and `GET /v1/search?q=<its word>`. The
//! lag is the time from the reply to each answer, and each answer is checked: the room list
//! shows the room with `M` or a later message as its last one, the timeline's first page holds
//! `M` (or only later messages, when a hot room filled the page first), search finds `M`.
//! A read the gateway answers 429 (the author already has its bound of reads waiting for a
//! position, H-L1; hot authors of the Zipf load do) is asked again after 10 ms, as a frontend
//! would, with the lag still running from the reply; the output counts those reads.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};

use crate::b2::{self, Observer};
use crate::corpus::unique_word;
use crate::http::{self, Gateway};
use crate::report::{thousands, verdict, Table};
use crate::stats::{Figure, Latencies};
use crate::system::{Nats, WRITER_READY_WAIT};
use crate::workload::{self, ReplyHead};
use crate::Settings;

/// One command in this many is followed into the read models.
pub const SAMPLE_EVERY: u64 = 20;

/// The three reads, in table order.
const READS: [Read; 3] = [Read::Rooms, Read::Timeline, Read::Search];

/// Where a sampled message is looked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Read {
    Rooms,
    Timeline,
    Search,
}

impl Read {
    fn label(self) -> &'static str {
        match self {
            Read::Rooms => "room list (GET /v1/rooms)",
            Read::Timeline => "timeline (GET /v1/rooms/{id}/messages)",
            Read::Search => "search (GET /v1/search?q=<its word>)",
        }
    }

    fn key(self) -> &'static str {
        match self {
            Read::Rooms => "rooms",
            Read::Timeline => "timeline",
            Read::Search => "search",
        }
    }

    /// performance.md's goal for its p99, in milliseconds.
    fn goal_ms(self) -> f64 {
        match self {
            Read::Rooms | Read::Timeline => 50.0,
            Read::Search => 1_000.0,
        }
    }
}

/// A sampled command's message.
#[derive(Debug, Clone)]
struct Sample {
    position: u64,
    message_id: String,
    room: String,
}

/// One read's answer, checked after the run (when every reply's position is known).
#[derive(Debug)]
struct Probe {
    read: Read,
    sample: Sample,
    lag: Duration,
    /// The answer, or why there was none.
    answer: anyhow::Result<serde_json::Value>,
    /// How many times the gateway answered 429 before it.
    rate_limited: u64,
}

/// Follows the sampled commands of the open loop.
struct Sampler {
    gateway: Gateway,
    /// A token per author.
    tokens: HashMap<String, String>,
    /// The position of every accepted message, to tell later messages from earlier ones.
    positions: Mutex<HashMap<String, u64>>,
    probes: Mutex<Vec<tokio::task::JoinHandle<Probe>>>,
}

impl Observer for Sampler {
    fn body(&self, i: u64) -> Option<String> {
        i.is_multiple_of(SAMPLE_EVERY)
            .then(|| format!("{} {}", workload::BODY, unique_word(i)))
    }

    fn accepted(&self, i: u64, actor: &str, room: &str, reply: ReplyHead, at: Instant) {
        let message_id = reply
            .result
            .as_ref()
            .and_then(|result| result.get("message_id"))
            .and_then(|id| id.as_str())
            .map(str::to_owned);
        let (Some(position), Some(message_id)) = (reply.position, message_id) else {
            // Counted below as a failed probe of every read, never silently skipped.
            if i.is_multiple_of(SAMPLE_EVERY) {
                self.record_failure(room, "the accepted reply has no position or message_id");
            }
            return;
        };
        if let Ok(mut positions) = self.positions.lock() {
            positions.insert(message_id.clone(), position);
        }
        if !i.is_multiple_of(SAMPLE_EVERY) {
            return;
        }
        let sample = Sample {
            position,
            message_id,
            room: room.to_owned(),
        };
        let token = self.tokens.get(actor).cloned().unwrap_or_default();
        let word = unique_word(i);
        let mut spawned = Vec::with_capacity(READS.len());
        for read in READS {
            let (gateway, token, sample, word) = (
                self.gateway.clone(),
                token.clone(),
                sample.clone(),
                word.clone(),
            );
            spawned.push(tokio::spawn(async move {
                let min_position = sample.position.to_string();
                let timeline = format!("/v1/rooms/{}/messages", sample.room);
                let (path, query): (&str, Vec<(&str, &str)>) = match read {
                    Read::Rooms => ("/v1/rooms", vec![("min_position", &min_position)]),
                    Read::Timeline => (&timeline, vec![("min_position", &min_position)]),
                    Read::Search => (
                        "/v1/search",
                        vec![("q", &word), ("min_position", &min_position)],
                    ),
                };
                // A hot author has many sampled reads waiting at once; past the gateway's
                // bound per caller they are told to wait (429) and ask again, as a frontend
                // would. The lag runs on from the accepted reply meanwhile.
                let (answer, rate_limited) = gateway
                    .get_retrying_rate_limited(path, &query, &token)
                    .await;
                Probe {
                    read,
                    sample,
                    lag: at.elapsed(),
                    answer,
                    rate_limited,
                }
            }));
        }
        if let Ok(mut probes) = self.probes.lock() {
            probes.extend(spawned);
        }
    }
}

impl Sampler {
    fn record_failure(&self, room: &str, why: &'static str) {
        let spawned: Vec<_> = READS
            .iter()
            .map(|&read| {
                let room = room.to_owned();
                tokio::spawn(async move {
                    Probe {
                        read,
                        sample: Sample {
                            position: 0,
                            message_id: String::new(),
                            room,
                        },
                        lag: Duration::ZERO,
                        answer: Err(anyhow::anyhow!(why)),
                        rate_limited: 0,
                    }
                })
            })
            .collect();
        if let Ok(mut probes) = self.probes.lock() {
            probes.extend(spawned);
        }
    }
}

/// How a checked answer turned out.
enum Checked {
    /// It shows the message (or, in the room list, a later one as the room's last).
    Visible,
    /// The timeline's first page holds only later messages (a hot room filled it first).
    Superseded,
}

/// Checks `probe`'s answer against the positions of every accepted message.
fn check(probe: &Probe, positions: &HashMap<String, u64>) -> anyhow::Result<Checked> {
    let answer = probe
        .answer
        .as_ref()
        .map_err(|error| anyhow::anyhow!("{error:#}"))?;
    let sample = &probe.sample;
    let later = |id: &str| positions.get(id).is_some_and(|&p| p > sample.position);
    let ids = |list: &str| -> Vec<String> {
        answer
            .get(list)
            .and_then(|items| items.as_array())
            .map(|items| {
                items
                    .iter()
                    .filter_map(|item| item.get("message_id").and_then(|id| id.as_str()))
                    .map(str::to_owned)
                    .collect()
            })
            .unwrap_or_default()
    };
    match probe.read {
        Read::Rooms => {
            let room = answer
                .get("rooms")
                .and_then(|rooms| rooms.as_array())
                .and_then(|rooms| {
                    rooms.iter().find(|room| {
                        room.get("room_id").and_then(|id| id.as_str()) == Some(&sample.room)
                    })
                })
                .with_context(|| {
                    format!("room {} is not in the author's room list", sample.room)
                })?;
            let last = room
                .pointer("/last_message/message_id")
                .and_then(|id| id.as_str())
                .context("the room has no last_message")?;
            if last == sample.message_id || later(last) {
                Ok(Checked::Visible)
            } else {
                bail!(
                    "the room's last message {last} is older than {} (position {})",
                    sample.message_id,
                    sample.position
                )
            }
        }
        Read::Timeline => {
            let messages = ids("messages");
            if messages.contains(&sample.message_id) {
                Ok(Checked::Visible)
            } else if !messages.is_empty() && messages.iter().all(|id| later(id)) {
                Ok(Checked::Superseded)
            } else {
                bail!(
                    "message {} (position {}) is not in the timeline",
                    sample.message_id,
                    sample.position
                )
            }
        }
        Read::Search => {
            if ids("messages").contains(&sample.message_id) {
                Ok(Checked::Visible)
            } else {
                bail!(
                    "search did not find message {} (position {})",
                    sample.message_id,
                    sample.position
                )
            }
        }
    }
}

/// One read model's results.
#[derive(Default)]
struct Lags {
    latencies: Latencies,
    superseded: u64,
    /// Reads told to wait (429) at least once, and the 429s in all.
    rate_limited_reads: u64,
    rate_limited: u64,
    errors: u64,
    first_error: Option<String>,
}

/// Runs B3 once; prints the table and returns the figures.
pub async fn run(settings: &Settings) -> anyhow::Result<Vec<Figure>> {
    let mut figures = crate::fsync_figures(settings, "B3").await?;
    let nats = Nats::start()?;
    let client = nats.connect("parlor-bench-b3").await?;
    let data = tempfile::Builder::new()
        .prefix("parlor-bench-b3-")
        .tempdir_in(&settings.data_root)?;
    let http::Serving {
        mut parlor,
        address,
        secret,
    } = http::spawn_serving(&settings.parlor_bin, "up", &nats.url(), data.path())?;
    parlor.wait_ready(&client, WRITER_READY_WAIT).await?;
    let gateway = Gateway::new(address)?;
    gateway
        .wait_listening(http::GATEWAY_READY_WAIT)
        .await
        .with_context(|| parlor.log_tail())?;
    let rooms = Arc::new(workload::set_up(&client, settings.rooms).await?);
    let mut tokens = HashMap::new();
    for (actor, _) in &rooms.rooms {
        if !tokens.contains_key(actor) {
            tokens.insert(actor.clone(), http::mint_token(&secret, actor)?);
        }
    }
    let sampler = Arc::new(Sampler {
        gateway,
        tokens,
        positions: Mutex::default(),
        probes: Mutex::default(),
    });

    let (cpu0, own0) = (parlor.cpu_time(), b2::own_cpu());
    let observer: Arc<dyn Observer> = sampler.clone();
    let outcome = b2::open_loop(
        &client,
        &rooms,
        settings.rate,
        settings.open_duration,
        Some(observer),
    )
    .await?;
    let handles = match sampler.probes.lock() {
        Ok(mut probes) => std::mem::take(&mut *probes),
        Err(_) => bail!("a B3 probe panicked while recording"),
    };
    let mut probes = Vec::with_capacity(handles.len());
    for handle in handles {
        probes.push(handle.await.context("a B3 probe panicked")?);
    }
    let seconds = outcome.elapsed.as_secs_f64().max(1e-9);
    let cpu = parlor.cpu_time().saturating_sub(cpu0);
    let client_cpu = b2::own_cpu().saturating_sub(own0);
    parlor.check_alive()?;
    let memory = parlor.memory();
    drop(parlor);

    let positions = match sampler.positions.lock() {
        Ok(positions) => positions.clone(),
        Err(_) => bail!("a B3 task panicked while recording positions"),
    };
    let mut lags: HashMap<Read, Lags> = HashMap::new();
    for probe in &probes {
        let lag = lags.entry(probe.read).or_default();
        if probe.rate_limited > 0 {
            lag.rate_limited_reads += 1;
            lag.rate_limited += probe.rate_limited;
        }
        match check(probe, &positions) {
            Ok(checked) => {
                lag.latencies.record(probe.lag);
                if matches!(checked, Checked::Superseded) {
                    lag.superseded += 1;
                }
            }
            Err(error) => {
                lag.errors += 1;
                lag.first_error.get_or_insert_with(|| format!("{error:#}"));
            }
        }
    }

    let mut table = Table::new(&[
        "B3 accepted → visible",
        "samples",
        "p50 ms",
        "p99 ms",
        "p99.9 ms",
        "max ms",
        "errors",
        "goal p99",
    ]);
    let (c50, c99, c999) = outcome.latencies.percentiles_ms();
    table.row(vec![
        format!(
            "(the load: message.send at {}/s, from the intended send time)",
            thousands(settings.rate as f64)
        ),
        thousands(outcome.latencies.count() as f64),
        format!("{c50:.2}"),
        format!("{c99:.2}"),
        format!("{c999:.2}"),
        format!("{:.1}", outcome.latencies.max_ms()),
        outcome.errors.to_string(),
        String::new(),
    ]);
    figures.push(Figure::new("B3 commands p99", c99, "ms"));
    figures.push(Figure::new(
        "B3 commands errors",
        outcome.errors as f64,
        "count",
    ));
    for read in READS {
        let lag = lags.remove(&read).unwrap_or_default();
        let (p50, p99, p999) = lag.latencies.percentiles_ms();
        table.row(vec![
            read.label().to_owned(),
            thousands((lag.latencies.count() + lag.errors) as f64),
            format!("{p50:.2}"),
            format!("{p99:.2}"),
            format!("{p999:.2}"),
            format!("{:.1}", lag.latencies.max_ms()),
            lag.errors.to_string(),
            format!(
                "≤ {} ms — {}",
                thousands(read.goal_ms()),
                verdict(p99 <= read.goal_ms() && lag.errors == 0)
            ),
        ]);
        let key = read.key();
        figures.push(Figure::new(format!("B3 {key} p50"), p50, "ms"));
        figures.push(Figure::new(format!("B3 {key} p99"), p99, "ms"));
        figures.push(Figure::new(format!("B3 {key} p99.9"), p999, "ms"));
        figures.push(Figure::new(
            format!("B3 {key} errors"),
            lag.errors as f64,
            "count",
        ));
        if lag.superseded > 0 {
            println!(
                "  {}: {} answers held only later messages on their first page (counted as visible: \
                 the read waited for the position)",
                read.key(),
                lag.superseded
            );
        }
        if lag.rate_limited_reads > 0 {
            println!(
                "  {}: {} reads were told to wait (429, {} times in all) and asked again; their \
                 lag includes the waiting",
                read.key(),
                lag.rate_limited_reads,
                lag.rate_limited
            );
        }
        if let Some(error) = lag.first_error {
            println!("  {}: {} errors, first: {error}", read.key(), lag.errors);
        }
    }
    println!("{}", table.render());
    println!(
        "B3: parlor up (writer + every read model + gateway, over NATS) used {:.2} cores, peak RSS \
         {:.0} MiB; the harness {:.2} cores; 1 command in {SAMPLE_EVERY} followed, lag from its \
         accepted reply to each answer",
        cpu.as_secs_f64() / seconds,
        memory.peak_bytes as f64 / (1024.0 * 1024.0),
        client_cpu.as_secs_f64() / seconds
    );
    if let Some(error) = &outcome.first_error {
        println!("  commands: {} errors, first: {error}", outcome.errors);
    }
    if outcome.behind_max > Duration::from_millis(5) {
        println!(
            "  the sender itself fell up to {:.1} ms behind schedule",
            outcome.behind_max.as_secs_f64() * 1000.0
        );
    }
    for line in goals(&|name| figures.iter().find(|f| f.name == name).map(|f| f.value)) {
        println!("{line}");
    }
    Ok(figures)
}

/// performance.md's B3 goals.
pub fn goals(get: &dyn Fn(&str) -> Option<f64>) -> Vec<String> {
    READS
        .iter()
        .filter_map(|read| {
            let p99 = get(&format!("B3 {} p99", read.key()))?;
            let clean = get(&format!("B3 {} errors", read.key())).unwrap_or(0.0) == 0.0;
            Some(format!(
                "goal B3 {} p99 ≤ {} ms during the open loop: {p99:.2} ms — {}",
                read.key(),
                thousands(read.goal_ms()),
                verdict(p99 <= read.goal_ms() && clean)
            ))
        })
        .collect()
}
