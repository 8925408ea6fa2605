//! B7: the whole system keeping up — the highest rate of durable `message.send` commands that
//! `parlor up --nats-url` (writer, every read model and the gateway in one process) sustains
//! while every read model stays within [`LAG_MAX`] of the head.
//!
//! The offered rate steps up ([`steps`]); each step is B2's open loop
//! ([`crate::b2::open_loop`]: `message.send` into Zipf-drawn rooms at fixed intended times, at
//! most [`crate::b2`]'s in-flight bound outstanding, the harness's publishers) for the step's
//! length. Meanwhile a sampler asks every read model for its position (`status` on
//! `parlor.query.<model>`, the runtime's own answer) every [`SAMPLE_INTERVAL`] and notes the
//! head (the highest accepted position). A model's lag at a sample is how long ago the head first
//! passed the model's position (0 when level). A step is sustained when every command was
//! accepted, the durable rate reached [`SUSTAINED_SHARE`] of the offered one, and no model's
//! lag ever exceeded [`LAG_MAX`] (its position is checked after the step, too: the models must
//! reach the step's head within [`LAG_MAX`]). The figure is the durable rate of the highest
//! sustained step; stepping stops at the first step that is not.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::Context;

use crate::b2::{self, Observer};
use crate::http;
use crate::report::{thousands, verdict, Table};
use crate::stats::Figure;
use crate::system::{Nats, WRITER_READY_WAIT};
use crate::workload::{self, ReplyHead};
use crate::Settings;

/// The read models whose lag is watched: every one `parlor up` runs.
const MODELS: [&str; 6] = protocol::ReadModel::ALL_NAMES;

/// How far behind the head a model may fall (performance.md B7).
pub const LAG_MAX: Duration = Duration::from_secs(1);

/// How often every model's position is sampled.
pub const SAMPLE_INTERVAL: Duration = Duration::from_millis(100);

/// The share of the offered rate a step must make durable to count as sustained.
pub const SUSTAINED_SHARE: f64 = 0.95;

/// performance.md's goal: durable commands/s sustained with every model within a second.
pub const GOAL_COMMANDS_PER_S: f64 = 15_000.0;

/// How long one `status` query may take before the sample counts the model as unanswered.
const STATUS_WAIT: Duration = Duration::from_secs(2);

/// The offered rates, in order, and each step's length: tiny for `--smoke`, a few seconds
/// each for `--quick`, ten seconds each otherwise (the open loop's `--open-seconds` when given).
fn steps(settings: &Settings) -> (Vec<u64>, Duration) {
    if settings.smoke {
        // One small step proves the wiring.
        return (vec![100], settings.open_duration);
    }
    let rates = vec![
        2_000, 4_000, 6_000, 8_000, 10_000, 12_500, 15_000, 17_500, 20_000,
    ];
    (rates, settings.open_duration.min(Duration::from_secs(10)))
}

/// The head as the open loop sees it: the highest position of an accepted reply.
#[derive(Default)]
struct Head {
    position: Mutex<u64>,
}

impl Observer for Head {
    fn body(&self, _i: u64) -> Option<String> {
        None
    }

    fn accepted(&self, _i: u64, _actor: &str, _room: &str, reply: ReplyHead, _at: Instant) {
        if let (Some(position), Ok(mut head)) = (reply.position, self.position.lock()) {
            *head = (*head).max(position);
        }
    }
}

impl Head {
    fn get(&self) -> u64 {
        self.position.lock().map_or(0, |head| *head)
    }
}

/// What the sampler saw of one step.
#[derive(Debug, Default)]
struct Lags {
    /// The worst lag of each model.
    worst: BTreeMap<&'static str, Duration>,
    /// Status queries that got no answer.
    unanswered: u64,
    /// The first of those failures.
    first_error: Option<String>,
}

/// Asks `model` for its position.
async fn status(client: &async_nats::Client, model: &str) -> anyhow::Result<u64> {
    let request = client.request(
        format!("parlor.query.{model}"),
        bytes::Bytes::from_static(br#"{"op":"status"}"#),
    );
    let reply = tokio::time::timeout(STATUS_WAIT, request)
        .await
        .map_err(|_| anyhow::anyhow!("{model}: no status within {STATUS_WAIT:?}"))?
        .with_context(|| format!("{model}: status"))?;
    let answer: serde_json::Value = serde_json::from_slice(&reply.payload)
        .with_context(|| format!("{model}: a status that is not JSON"))?;
    answer["data"]["position"]
        .as_u64()
        .or_else(|| answer["position"].as_u64())
        .with_context(|| format!("{model}: a status without a position: {answer}"))
}

/// Samples every model until `done`, measuring each one's lag against the head's history.
async fn sample(
    client: async_nats::Client,
    head: Arc<Head>,
    done: tokio::sync::watch::Receiver<bool>,
) -> Lags {
    let mut lags = Lags::default();
    // (when, head) each time the head moved: when the head first passed a position.
    let mut history: Vec<(Instant, u64)> = vec![(Instant::now(), head.get())];
    let mut ticks = tokio::time::interval(SAMPLE_INTERVAL);
    loop {
        ticks.tick().await;
        let finished = *done.borrow();
        let now = Instant::now();
        let current = head.get();
        if history.last().is_some_and(|(_, last)| current > *last) {
            history.push((now, current));
        }
        let answers =
            futures::future::join_all(MODELS.iter().map(|model| status(&client, model))).await;
        for (model, answer) in MODELS.iter().zip(answers) {
            let lag = match answer {
                Ok(position) => history
                    .iter()
                    .find(|(_, head)| *head > position)
                    .map_or(Duration::ZERO, |(since, _)| {
                        now.saturating_duration_since(*since)
                    }),
                Err(error) => {
                    lags.unanswered += 1;
                    lags.first_error.get_or_insert_with(|| format!("{error:#}"));
                    continue;
                }
            };
            let worst = lags.worst.entry(model).or_default();
            *worst = (*worst).max(lag);
        }
        if finished {
            return lags;
        }
    }
}

/// One step's outcome.
struct Step {
    offered: u64,
    durable_per_s: f64,
    errors: u64,
    lags: Lags,
    sustained: bool,
}

/// Runs B7 once; prints the table and returns the figures.
pub async fn run(settings: &Settings) -> anyhow::Result<Vec<Figure>> {
    let mut figures = crate::fsync_figures(settings, "B7").await?;
    let nats = Nats::start()?;
    let client = nats.connect("parlor-bench-b7").await?;
    let data = tempfile::Builder::new()
        .prefix("parlor-bench-b7-")
        .tempdir_in(&settings.data_root)?;
    let mut parlor =
        http::spawn_serving(&settings.parlor_bin, "up", &nats.url(), data.path())?.parlor;
    parlor.wait_ready(&client, WRITER_READY_WAIT).await?;
    let rooms = Arc::new(workload::set_up(&client, settings.rooms).await?);
    let (rates, step_length) = steps(settings);
    let started = Instant::now();
    let cpu0 = parlor.cpu_time();
    let mut done_steps: Vec<Step> = Vec::new();
    let head = Arc::new(Head::default());
    for offered in rates {
        let (stop_sampling, sampling_done) = tokio::sync::watch::channel(false);
        let sampler = tokio::spawn(sample(client.clone(), Arc::clone(&head), sampling_done));
        let observer: Arc<dyn Observer> = head.clone();
        let outcome = b2::open_loop(&client, &rooms, offered, step_length, Some(observer)).await?;
        // The models must reach this step's head within the bound too.
        tokio::time::sleep(LAG_MAX).await;
        let _ = stop_sampling.send(true);
        let lags = sampler.await.context("the B7 sampler panicked")?;
        parlor.check_alive()?;
        let durable = outcome.latencies.count() as f64;
        let durable_per_s = durable / outcome.elapsed.as_secs_f64().max(1e-9);
        let within = lags.unanswered == 0
            && lags.worst.len() == MODELS.len()
            && lags.worst.values().all(|lag| *lag <= LAG_MAX);
        let sustained =
            outcome.errors == 0 && durable_per_s >= offered as f64 * SUSTAINED_SHARE && within;
        if let Some(error) = &outcome.first_error {
            println!(
                "  B7 at {offered}/s: {} commands failed, first: {error}",
                outcome.errors
            );
        }
        if let Some(error) = &lags.first_error {
            println!(
                "  B7 at {offered}/s: {} status queries failed, first: {error}",
                lags.unanswered
            );
        }
        done_steps.push(Step {
            offered,
            durable_per_s,
            errors: outcome.errors,
            lags,
            sustained,
        });
        if !sustained {
            break;
        }
    }
    let seconds = started.elapsed().as_secs_f64().max(1e-9);
    let cpu = parlor.cpu_time().saturating_sub(cpu0);
    let memory = parlor.memory();
    drop(parlor);

    let mut header = vec!["B7 offered/s", "durable/s", "errors"];
    header.extend(MODELS.iter().copied());
    header.push("sustained");
    let mut table = Table::new(&header);
    for step in &done_steps {
        let mut row = vec![
            thousands(step.offered as f64),
            thousands(step.durable_per_s),
            step.errors.to_string(),
        ];
        for model in MODELS {
            row.push(step.lags.worst.get(model).map_or("–".to_owned(), |lag| {
                format!("{:.0} ms", lag.as_secs_f64() * 1000.0)
            }));
        }
        row.push(if step.sustained { "yes" } else { "no" }.to_owned());
        table.row(row);
    }
    println!("{}", table.render());
    let best = done_steps
        .iter()
        .filter(|step| step.sustained)
        .map(|step| step.durable_per_s)
        .fold(0.0f64, f64::max);
    println!(
        "B7: parlor up over NATS, {} rooms (Zipf), steps of {:.1} s; model columns are the worst \
         lag behind the head (status sampled every {} ms); used {:.2} cores on average, peak RSS \
         {:.0} MiB",
        thousands(settings.rooms as f64),
        step_length.as_secs_f64(),
        SAMPLE_INTERVAL.as_millis(),
        cpu.as_secs_f64() / seconds,
        memory.peak_bytes as f64 / (1024.0 * 1024.0)
    );
    figures.push(Figure::new("B7 sustained commands/s", best, "commands/s"));
    for line in goals(&|name| figures.iter().find(|f| f.name == name).map(|f| f.value)) {
        println!("{line}");
    }
    Ok(figures)
}

/// performance.md's B7 goal.
pub fn goals(get: &dyn Fn(&str) -> Option<f64>) -> Vec<String> {
    get("B7 sustained commands/s")
        .map(|best| {
            format!(
                "goal B7 ≥ {} durable commands/s with every read model within {} s of the head: \
                 {} — {}",
                thousands(GOAL_COMMANDS_PER_S),
                LAG_MAX.as_secs(),
                thousands(best),
                verdict(best >= GOAL_COMMANDS_PER_S)
            )
        })
        .into_iter()
        .collect()
}
