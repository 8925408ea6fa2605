//! B9: restarting the whole system on a large log, and the read models' part of B8 (each
//! model's query latency on a large log).
//!
//! The log is B4's ([`crate::b4::read_log`]: generated once, or reused from `--log-dir`), with
//! every read model built on it by `parlor replay` (B4 leaves them in place; models missing
//! from the data directory are replayed here first). Each run then:
//! 1. starts `parlor up --nats-url` on that data directory until every part answers and stops
//!    it (a log generated in process has no writer snapshot, so this first start folds the whole
//!    log: B6's cold start, shown but not the goal's figure); then restarts it and, from the
//!    moment it is spawned,
//!    asks in parallel until each answers: the writer a `message.send` (the searcher into one
//!    of their rooms), each read model a real query of the kind the gateway asks (the room
//!    list, a room's timeline, its files, a search, the reports; notifications only answers
//!    `status`), each with `min_position` at the log's head when generated, so an answer from
//!    a model still catching up does not count. It records the time of each first answer and
//!    the process's resident memory (VmRSS then, of it anonymous and file-backed, VmHWM);
//! 2. sends [`Settings::queries`] more of each model's queries, one at a time, after
//!    [`WARMUP_QUERIES`] others not measured, and records their latency (B8's read part: run once on a small log with `--quick` and once on the
//!    10M-event log, and compare the p99s);
//! 3. stops it with SIGTERM, then starts the same parts as separate processes (`parlor
//!    writer`, `parlor projector <model>` for each model) to show each part's share of the
//!    memory, measured the same way.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use bytes::Bytes;
use protocol::query::{
    FilesQuery, ModerationQuery, PageLimit, QueryReply, QueryRequest, RoomView, RoomsQuery,
    SearchQuery, TimelineQuery,
};
use serde::Serialize;

use crate::b4::{self, ReadLog, MODELS};
use crate::corpus::Vocabulary;
use crate::procfs::Memory;
use crate::report::{thousands, verdict, Table};
use crate::stats::{Figure, Latencies};
use crate::system::{Nats, Parlor};
use crate::zipf::Rng;
use crate::{http, workload, Settings};

/// How long a restarted part may take to answer before the run fails.
const FIRST_ANSWER_WAIT_MAX: Duration = Duration::from_secs(300);
/// How long one probe may wait for its answer before it is asked again.
const PROBE_ANSWER_WAIT: Duration = Duration::from_secs(2);
/// The pause between two unanswered probes.
const PROBE_PAUSE: Duration = Duration::from_millis(20);
/// How long one measured query may take before it counts as an error.
const QUERY_WAIT_MAX: Duration = Duration::from_secs(10);
/// The page size of every measured query (a room list page, a timeline page, …).
const PAGE: usize = 50;
/// Queries asked of each model before B8's measured ones, not measured (B5 warms up alike).
const WARMUP_QUERIES: u64 = 100;

/// The number of the first warm-up query: other queries than the measured ones (0, 1, …).
const WARMUP_FIRST: u64 = 1_000_000;

/// Search results per page.
const SEARCH_PAGE: usize = 20;
/// performance.md's bound on each first answer after a restart.
const FIRST_ANSWER_GOAL: Duration = Duration::from_secs(10);
/// performance.md's bound on the whole system's resident memory after a restart.
const MEMORY_GOAL_BYTES: u64 = 2 * 1024 * 1024 * 1024;
const MIB: f64 = 1024.0 * 1024.0;

/// Who asks, and about what: the searcher of B4's log and their rooms.
struct Asker {
    searcher: String,
    rooms: Vec<String>,
    head: u64,
    vocabulary: Vocabulary,
}

impl Asker {
    fn new(log: &ReadLog) -> anyhow::Result<Asker> {
        let manifest = &log.manifest;
        if manifest.searcher_rooms.is_empty() {
            bail!("the log has no searcher with rooms (it was not generated for B4/B5)");
        }
        Ok(Asker {
            searcher: manifest.searcher.clone(),
            rooms: manifest.searcher_rooms.clone(),
            head: manifest.events,
            vocabulary: Vocabulary::new(),
        })
    }

    /// The `n`th query for `model` (rooms and search vary with `n`): its subject and body.
    fn query(&self, model: &str, n: u64) -> anyhow::Result<(String, Bytes)> {
        let room = || -> anyhow::Result<domain::RoomId> {
            let text = &self.rooms[(n as usize) % self.rooms.len()];
            domain::RoomId::parse(text).with_context(|| format!("room id {text}"))
        };
        let limit = PageLimit::new(PAGE).context("a page size")?;
        let body = match model {
            "rooms" => self.request(RoomsQuery::List {
                view: RoomView::Inbox,
                limit,
                cursor: None,
            }),
            "timeline" => self.request(TimelineQuery::Messages {
                room_id: room()?,
                before: None,
                limit,
                cursor: None,
            }),
            "files" => self.request(FilesQuery::List {
                room_id: room()?,
                q: None,
                item_type: None,
                limit,
                cursor: None,
            }),
            "search" => {
                let mut rng = Rng::new(0xB9_0000 + n);
                self.request(SearchQuery::Search {
                    q: self.vocabulary.query(&mut rng).join(" "),
                    room_id: None,
                    limit: PageLimit::new(SEARCH_PAGE).context("a page size")?,
                    cursor: None,
                })
            }
            "moderation" => {
                let mut request = self.request(ModerationQuery::Reports {
                    limit,
                    cursor: None,
                });
                request["moderator"] = serde_json::Value::Bool(true);
                request
            }
            // The notifications model answers nothing but its status (docs/queries.md).
            "notifications" => serde_json::json!({"op": "status"}),
            other => bail!("no query for the model {other}"),
        };
        Ok((
            format!("parlor.query.{model}"),
            Bytes::from(serde_json::to_vec(&body)?),
        ))
    }

    /// `op` asked by the searcher once the model has applied the generated log.
    fn request<Q: Serialize>(&self, op: Q) -> serde_json::Value {
        let request = QueryRequest {
            caller: Some(self.searcher.clone()),
            moderator: false,
            min_position: Some(self.head),
            op,
        };
        // Reason for unwrap_or: the contract's request types always serialise.
        serde_json::to_value(&request).unwrap_or_default()
    }
}

/// Asks `subject` once; Ok when answered (not refused) at `head` or later. Every query but
/// `status` carries `min_position`, so the position check matters for notifications only.
async fn ask(
    client: &async_nats::Client,
    subject: &str,
    body: Bytes,
    head: u64,
) -> anyhow::Result<()> {
    let reply = client
        .request(subject.to_owned(), body)
        .await
        .with_context(|| format!("{subject}: no reply"))?;
    match QueryReply::<serde_json::Value>::from_json(&reply.payload)
        .with_context(|| format!("{subject}: a malformed reply"))?
    {
        QueryReply::Answer { position, .. } if position >= head => Ok(()),
        QueryReply::Answer { position, .. } => {
            bail!("{subject}: answered at position {position}, before {head}")
        }
        QueryReply::Refused(refusal) => {
            bail!("{subject}: refused: {:?} {}", refusal.code, refusal.message)
        }
    }
}

/// Sends `message.send` until the writer accepts one.
async fn ask_writer(client: &async_nats::Client, asker: &Asker) -> anyhow::Result<()> {
    let payload = workload::message_send(&asker.searcher, &asker.rooms[0]);
    let reply = client
        .request("parlor.cmd.message.send", payload)
        .await
        .context("message.send: no reply")?;
    workload::accepted(&reply.payload).map(|_| ())
}

/// From `started`, asks `part` (the writer or a model) until it answers; the time it took.
async fn first_answer(
    client: async_nats::Client,
    asker: Arc<Asker>,
    part: &'static str,
    started: Instant,
) -> anyhow::Result<Duration> {
    let mut last_error = String::from("no answer yet");
    let mut n = 0;
    while started.elapsed() < FIRST_ANSWER_WAIT_MAX {
        let asked = async {
            if part == "writer" {
                ask_writer(&client, &asker).await
            } else {
                let (subject, body) = asker.query(part, n)?;
                ask(&client, &subject, body, asker.head).await
            }
        };
        match tokio::time::timeout(PROBE_ANSWER_WAIT, asked).await {
            Ok(Ok(())) => return Ok(started.elapsed()),
            Ok(Err(error)) => last_error = format!("{error:#}"),
            Err(_) => last_error = format!("no answer within {PROBE_ANSWER_WAIT:?}"),
        }
        n += 1;
        tokio::time::sleep(PROBE_PAUSE).await;
    }
    bail!("{part} did not answer within {FIRST_ANSWER_WAIT_MAX:?}: {last_error}")
}

/// The first answer of every part, asked in parallel from `started`.
async fn first_answers(
    client: &async_nats::Client,
    asker: &Arc<Asker>,
    parts: &[&'static str],
    started: Instant,
) -> anyhow::Result<Vec<Duration>> {
    let asked = parts
        .iter()
        .map(|&part| first_answer(client.clone(), Arc::clone(asker), part, started));
    futures::future::join_all(asked).await.into_iter().collect()
}

/// Each model's queries numbered `numbers`, one at a time: their latencies, errors and the
/// first error.
async fn measure_queries(
    client: &async_nats::Client,
    asker: &Asker,
    model: &str,
    numbers: std::ops::Range<u64>,
) -> anyhow::Result<(Latencies, u64, Option<String>)> {
    let mut latencies = Latencies::new();
    let (mut errors, mut first_error) = (0, None);
    for n in numbers {
        let (subject, body) = asker.query(model, n)?;
        let sent = Instant::now();
        let error =
            match tokio::time::timeout(QUERY_WAIT_MAX, ask(client, &subject, body, asker.head))
                .await
            {
                Ok(Ok(())) => {
                    latencies.record(sent.elapsed());
                    continue;
                }
                Ok(Err(error)) => format!("{error:#}"),
                Err(_) => format!("no answer within {QUERY_WAIT_MAX:?}"),
            };
        errors += 1;
        first_error.get_or_insert(error);
    }
    Ok((latencies, errors, first_error))
}

/// Replays every model the data directory does not hold yet (B4 leaves them built).
async fn ensure_models(settings: &Settings, data_dir: &Path) -> anyhow::Result<()> {
    for model in MODELS {
        // `projections::store_path`'s layout (the bench does not link the read models).
        if data_dir.join("projections").join(model).exists() {
            continue;
        }
        println!("B9: building the {model} model first (parlor replay {model})");
        let rebuild = b4::replay(settings, data_dir, model).await?;
        println!(
            "B9: {model} rebuilt to position {} in {:.1} s",
            rebuild.position,
            rebuild.wall.as_secs_f64()
        );
    }
    Ok(())
}

/// Stops a part with SIGTERM and fails if it did not exit cleanly.
async fn stop(part: Parlor, what: &str) -> anyhow::Result<()> {
    let status = part.terminate().await?;
    if !status.success() {
        bail!("{what} exited with {status} after SIGTERM");
    }
    Ok(())
}

/// Starts `parlor up` and waits for every part's first answer: their times and the memory then.
async fn start_up(
    settings: &Settings,
    nats: &Nats,
    client: &async_nats::Client,
    asker: &Arc<Asker>,
    parts: &[&'static str],
    data_dir: &Path,
) -> anyhow::Result<(Vec<Duration>, Memory, Parlor)> {
    let mut up = http::spawn_serving(&settings.parlor_bin, "up", &nats.url(), data_dir)?.parlor;
    let started = up.started();
    let answered = tokio::select! {
        answered = first_answers(client, asker, parts, started) => answered,
        died = async {
            loop {
                if let Err(error) = up.check_alive() {
                    return error;
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        } => Err(died),
    };
    let answered =
        answered.with_context(|| format!("parlor up; its log ends:\n{}", up.log_tail()))?;
    let memory = up.memory();
    Ok((answered, memory, up))
}

/// `VmRSS (anonymous + files); VmHWM`.
fn memory_cell(memory: &Memory) -> String {
    format!(
        "{} ({} + {}); {}",
        mib(memory.rss_bytes),
        mib(memory.anonymous_bytes),
        mib(memory.file_bytes),
        mib(memory.peak_bytes)
    )
}

fn mib(bytes: u64) -> String {
    format!("{:.0} MiB", bytes as f64 / MIB)
}

/// Runs B9 (and B8's read part) once; prints the tables and returns the figures.
pub async fn run(settings: &Settings) -> anyhow::Result<Vec<Figure>> {
    let log = b4::read_log(settings).await?;
    let data_dir = log.data_dir().to_path_buf();
    ensure_models(settings, &data_dir).await?;
    let asker = Arc::new(Asker::new(&log)?);
    let events = thousands(log.manifest.events as f64);
    let mut figures = vec![Figure::new(
        "B9 events",
        log.manifest.events as f64,
        "events",
    )];
    let nats = Nats::start()?;
    let client = nats.connect("parlor-bench-b9").await?;
    let mut parts: Vec<&'static str> = vec!["writer"];
    parts.extend(MODELS);

    // 1. The whole system in one process: a first start, then the restart B9 is about.
    let snapshot = data_dir.join(crate::b6::SNAPSHOT_FILE);
    let first_label = if snapshot.exists() {
        "first start (from the writer's snapshot)"
    } else {
        "first start (no writer snapshot: the whole log folded)"
    };
    let (first, first_memory, up) =
        start_up(settings, &nats, &client, &asker, &parts, &data_dir).await?;
    stop(up, "parlor up").await?;
    let (answered, memory, up) =
        start_up(settings, &nats, &client, &asker, &parts, &data_dir).await?;
    let mut table = Table::new(&["B9 parlor up", first_label, "restart", "goal ≤ 10 s"]);
    for ((part, time), first_time) in parts.iter().zip(&answered).zip(&first) {
        let what = if *part == "writer" {
            "writer: message.send accepted".to_owned()
        } else {
            format!("{part}: query answered")
        };
        table.row(vec![
            what,
            format!("{:.2} s", first_time.as_secs_f64()),
            format!("{:.2} s", time.as_secs_f64()),
            verdict(*time <= FIRST_ANSWER_GOAL).to_owned(),
        ]);
        figures.push(Figure::new(
            format!("B9 up {part} first answer"),
            time.as_secs_f64(),
            "s",
        ));
    }
    table.row(vec![
        "resident memory when all answered: VmRSS (anonymous + files); VmHWM".to_owned(),
        memory_cell(&first_memory),
        memory_cell(&memory),
        format!(
            "≤ 2 GiB: {}",
            verdict(memory.peak_bytes <= MEMORY_GOAL_BYTES)
        ),
    ]);
    figures.push(Figure::new(
        "B9 up VmRSS",
        memory.rss_bytes as f64 / MIB,
        "MiB",
    ));
    figures.push(Figure::new(
        "B9 up VmHWM",
        memory.peak_bytes as f64 / MIB,
        "MiB",
    ));
    println!("B9: parlor up --nats-url restarted on {events} events");
    println!("{}", table.render());

    // 2. B8's read part: each model's queries on this log.
    let mut queries = Table::new(&[
        "B8 query (parlor up, one at a time)",
        "queries",
        "p50 ms",
        "p99 ms",
        "max ms",
        "errors",
    ]);
    for model in MODELS {
        // Warmed first, as B5 is: the measured figure is a serving model's, not a cold cache's
        // (the first answers after the restart are B9's, above).
        let warmup = WARMUP_FIRST..WARMUP_FIRST + WARMUP_QUERIES;
        measure_queries(&client, &asker, model, warmup).await?;
        let (latencies, errors, first_error) =
            measure_queries(&client, &asker, model, 0..settings.queries as u64).await?;
        if let Some(error) = first_error {
            // The smoke test looks for this phrase: no measured query may fail.
            println!("  B8 {model}: {errors} errors, first: {error}");
        }
        let (p50, p99, _) = latencies.percentiles_ms();
        queries.row(vec![
            model.to_owned(),
            thousands(latencies.count() as f64),
            format!("{p50:.2}"),
            format!("{p99:.2}"),
            format!("{:.2}", latencies.max_ms()),
            errors.to_string(),
        ]);
        figures.push(Figure::new(format!("B8 {model} query p99"), p99, "ms"));
        figures.push(Figure::new(
            format!("B8 {model} query errors"),
            errors as f64,
            "errors",
        ));
    }
    println!(
        "B8: each model's queries on {events} events (compare the p99s with a run on a small log)"
    );
    println!("{}", queries.render());
    println!(
        "B9: parlor up after the queries: VmRSS (anonymous + files); VmHWM: {}",
        memory_cell(&up.memory())
    );
    stop(up, "parlor up").await?;

    // 3. Each part's share: the same parts as separate processes.
    let started = Instant::now();
    let mut separate = vec![Parlor::spawn(&settings.parlor_bin, &nats.url(), &data_dir)?];
    for model in MODELS {
        separate.push(Parlor::spawn_service(
            &settings.parlor_bin,
            &["projector", model],
            &nats.url(),
            &data_dir,
            &[],
        )?);
    }
    let answered = first_answers(&client, &asker, &parts, started).await;
    let memories: Vec<Memory> = separate.iter().map(Parlor::memory).collect();
    let mut shares = Table::new(&["B9 each part alone", "first answer", "VmRSS then", "VmHWM"]);
    let answered = answered.context("the parts as separate processes")?;
    for ((part, time), memory) in parts.iter().zip(&answered).zip(&memories) {
        shares.row(vec![
            part.to_string(),
            format!("{:.2} s", time.as_secs_f64()),
            mib(memory.rss_bytes),
            mib(memory.peak_bytes),
        ]);
        figures.push(Figure::new(
            format!("B9 {part} alone VmHWM"),
            memory.peak_bytes as f64 / MIB,
            "MiB",
        ));
    }
    let total: u64 = memories.iter().map(|memory| memory.peak_bytes).sum();
    shares.row(vec![
        "all parts".to_owned(),
        String::new(),
        mib(memories.iter().map(|memory| memory.rss_bytes).sum()),
        mib(total),
    ]);
    println!("{}", shares.render());
    for (part, process) in parts.iter().zip(separate) {
        stop(process, part).await?;
    }
    for line in goals(&|name| figures.iter().find(|f| f.name == name).map(|f| f.value)) {
        println!("{line}");
    }
    Ok(figures)
}

/// performance.md's B9 goals; B8's read part needs a second run on a small log to compare.
pub fn goals(get: &dyn Fn(&str) -> Option<f64>) -> Vec<String> {
    let mut lines = Vec::new();
    let parts = std::iter::once("writer").chain(MODELS);
    let slowest = parts
        .filter_map(|part| get(&format!("B9 up {part} first answer")).map(|time| (part, time)))
        .max_by(|a, b| a.1.total_cmp(&b.1));
    if let Some((part, time)) = slowest {
        lines.push(format!(
            "goal B9 every first answer ≤ 10 s after the restart: the last, {part}, at {time:.2} s — {}",
            verdict(time <= FIRST_ANSWER_GOAL.as_secs_f64())
        ));
    }
    if let Some(peak) = get("B9 up VmHWM") {
        lines.push(format!(
            "goal B9 resident memory ≤ 2 GiB: parlor up peaked at {peak:.0} MiB — {}",
            verdict(peak <= MEMORY_GOAL_BYTES as f64 / MIB)
        ));
    }
    lines.push(
        "goal B8 (read models) each query p99 on 10M events ≤ 1.5× its p99 on 100k: compare this \
         run's B8 p99s with `b9 --quick`'s"
            .to_owned(),
    );
    lines
}
