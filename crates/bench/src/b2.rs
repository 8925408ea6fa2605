//! B2: an open loop at a fixed rate of `message.send` commands; each latency is measured from
//! the command's *intended* send time, so a stalled server is charged for every command it
//! delayed (no coordinated omission).

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::Context;

use crate::report::{thousands, verdict, Table};
use crate::stats::{Figure, Latencies};
use crate::system::{Nats, Parlor, WRITER_READY_WAIT};
use crate::zipf::Rng;
use crate::{procfs, workload, Settings};

/// Commands in flight at most; past this the schedule waits (and the wait is charged to the
/// latencies, which run from the intended time).
pub const IN_FLIGHT_MAX: usize = 50_000;

/// Watches an open loop's commands (B3 samples them): may give a command its own body, and
/// sees every accepted reply the moment it arrives.
pub trait Observer: Send + Sync + 'static {
    /// The body of command `i`, or `None` for [`workload::BODY`].
    fn body(&self, i: u64) -> Option<String>;
    /// Command `i` into `room` by `actor` was accepted with `reply`, which arrived `at`.
    fn accepted(&self, i: u64, actor: &str, room: &str, reply: workload::ReplyHead, at: Instant);
}

/// What the open loop saw.
#[derive(Debug, Default)]
pub struct Outcome {
    /// Latency of every accepted command, from its intended send time.
    pub latencies: Latencies,
    /// Commands not accepted (rejected, or no answer).
    pub errors: u64,
    /// The first of those errors.
    pub first_error: Option<String>,
    /// From the first intended send time to the last reply.
    pub elapsed: Duration,
    /// How far the sender itself fell behind its schedule at worst.
    pub behind_max: Duration,
}

/// Sends `rate` `message.send` commands per second for `duration` into Zipf-drawn rooms, each
/// at its intended time whatever the answers do, and waits for every answer.
pub async fn open_loop(
    client: &async_nats::Client,
    rooms: &Arc<workload::Rooms>,
    rate: u64,
    duration: Duration,
    observer: Option<Arc<dyn Observer>>,
) -> anyhow::Result<Outcome> {
    let rate = rate.max(1);
    let total = (rate as f64 * duration.as_secs_f64()).round() as u64;
    let interval = Duration::from_secs_f64(1.0 / rate as f64);
    let outcome = Arc::new(Mutex::new(Outcome::default()));
    let permits = Arc::new(tokio::sync::Semaphore::new(IN_FLIGHT_MAX));
    let mut rng = Rng::new(0xB2);
    let mut tasks = tokio::task::JoinSet::new();
    let start = Instant::now() + Duration::from_millis(50);
    let mut behind_max = Duration::ZERO;
    for i in 0..total {
        let intended = start + interval.mul_f64(i as f64);
        let now = Instant::now();
        if now < intended {
            tokio::time::sleep_until(intended.into()).await;
        } else {
            behind_max = behind_max.max(now - intended);
        }
        let permit = permits.clone().acquire_owned().await?;
        let (actor, room) = rooms.pick(&mut rng);
        let payload = match observer.as_ref().and_then(|observer| observer.body(i)) {
            Some(body) => workload::message_send_with_body(actor, room, &body),
            None => workload::message_send(actor, room),
        };
        let watched = observer
            .clone()
            .map(|observer| (observer, actor.to_owned(), room.to_owned()));
        let client = client.clone();
        let outcome = outcome.clone();
        tasks.spawn(async move {
            let answer = tokio::time::timeout(
                workload::OP_WAIT_MAX,
                client.request("parlor.cmd.message.send", payload),
            )
            .await;
            let finished = Instant::now();
            let result = match answer {
                Ok(Ok(reply)) => workload::accepted(&reply.payload),
                Ok(Err(error)) => Err(error).context("message.send"),
                Err(_) => Err(anyhow::anyhow!(
                    "no answer within {:?}",
                    workload::OP_WAIT_MAX
                )),
            };
            drop(permit);
            let result = match (result, watched) {
                (Ok(reply), Some((observer, actor, room))) => {
                    observer.accepted(i, &actor, &room, reply, finished);
                    Ok(())
                }
                (result, _) => result.map(|_| ()),
            };
            if let Ok(mut outcome) = outcome.lock() {
                match result {
                    Ok(()) => outcome
                        .latencies
                        .record(finished.saturating_duration_since(intended)),
                    Err(error) => {
                        outcome.errors += 1;
                        outcome
                            .first_error
                            .get_or_insert_with(|| format!("{error:#}"));
                    }
                }
            }
        });
        // Reap finished tasks as we go so the set stays small.
        while tasks.try_join_next().is_some() {}
    }
    while tasks.join_next().await.is_some() {}
    let elapsed = start.elapsed();
    let mut outcome = match outcome.lock() {
        Ok(mut outcome) => std::mem::take(&mut *outcome),
        Err(_) => anyhow::bail!("an open-loop task panicked while recording"),
    };
    outcome.elapsed = elapsed;
    outcome.behind_max = behind_max;
    Ok(outcome)
}

/// Runs B2 once; prints the table and returns the figures.
pub async fn run(settings: &Settings) -> anyhow::Result<Vec<Figure>> {
    let mut figures = crate::fsync_figures(settings, "B2").await?;
    let nats = Nats::start()?;
    let client = nats.connect("parlor-bench-b2").await?;
    let data = tempfile::Builder::new()
        .prefix("parlor-bench-b2-")
        .tempdir_in(&settings.data_root)?;
    let mut parlor = Parlor::spawn(&settings.parlor_bin, &nats.url(), data.path())?;
    parlor.wait_ready(&client, WRITER_READY_WAIT).await?;
    let rooms = Arc::new(workload::set_up(&client, settings.rooms).await?);

    let rate = settings.rate.max(1);
    let (cpu0, own0) = (parlor.cpu_time(), own_cpu());
    let outcome = open_loop(&client, &rooms, rate, settings.open_duration, None).await?;
    let elapsed = outcome.elapsed;
    let behind_max = outcome.behind_max;
    let cpu = parlor.cpu_time().saturating_sub(cpu0);
    let client_cpu = own_cpu().saturating_sub(own0);
    parlor.check_alive()?;
    let memory = parlor.memory();
    drop(parlor);

    let (latencies, errors, first_error) = (outcome.latencies, outcome.errors, outcome.first_error);
    let (p50, p99, p999) = latencies.percentiles_ms();
    let achieved = latencies.count() as f64 / elapsed.as_secs_f64().max(1e-9);
    let mut table = Table::new(&[
        "B2 open loop",
        "target/s",
        "achieved/s",
        "p50 ms",
        "p99 ms",
        "p99.9 ms",
        "max ms",
        "errors",
        "writer CPU",
        "client CPU",
        "peak RSS",
    ]);
    let seconds = elapsed.as_secs_f64().max(1e-9);
    table.row(vec![
        format!("parlor, {} s", settings.open_duration.as_secs_f64()),
        thousands(rate as f64),
        thousands(achieved),
        format!("{p50:.2}"),
        format!("{p99:.2}"),
        format!("{p999:.2}"),
        format!("{:.1}", latencies.max_ms()),
        errors.to_string(),
        format!("{:.2} cores", cpu.as_secs_f64() / seconds),
        format!("{:.2} cores", client_cpu.as_secs_f64() / seconds),
        format!("{:.0} MiB", memory.peak_bytes as f64 / (1024.0 * 1024.0)),
    ]);
    println!("{}", table.render());
    if let Some(first_error) = first_error {
        println!("  {errors} errors, first: {first_error}");
    }
    if behind_max > Duration::from_millis(5) {
        println!(
            "  the sender itself fell up to {:.1} ms behind schedule (charged to the latencies)",
            behind_max.as_secs_f64() * 1000.0
        );
    }
    if let Some(dir) = &settings.plot_dir {
        let path = dir.join("b2-latency.svg");
        crate::plot::write_percentile_plot(
            &path,
            &format!(
                "B2: open loop at {}/s, from the intended send time — latency by percentile",
                thousands(rate as f64)
            ),
            &[("parlor".to_owned(), &latencies)],
        )?;
        println!("B2 latency plot: {}", path.display());
    }
    figures.push(Figure::new("B2 achieved rate", achieved, "/s"));
    figures.push(Figure::new("B2 p50", p50, "ms"));
    figures.push(Figure::new("B2 p99", p99, "ms"));
    figures.push(Figure::new("B2 p99.9", p999, "ms"));
    figures.push(Figure::new("B2 errors", errors as f64, "count"));
    for line in goals(&|name| figures.iter().find(|f| f.name == name).map(|f| f.value)) {
        println!("{line}");
    }
    Ok(figures)
}

/// performance.md's B2 goal.
pub fn goals(get: &dyn Fn(&str) -> Option<f64>) -> Vec<String> {
    get("B2 p99")
        .map(|p99| {
            format!(
                "goal B2 p99 ≤ 10 ms (from the intended send time): {p99:.2} ms — {}",
                verdict(p99 <= 10.0 && get("B2 errors").unwrap_or(0.0) == 0.0)
            )
        })
        .into_iter()
        .collect()
}

pub fn own_cpu() -> Duration {
    procfs::cpu_time(std::process::id()).unwrap_or_default()
}
