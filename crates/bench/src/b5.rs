//! B5: search over the generated log's messages (1M events by default) as a user who is a
//! member of 50 rooms among 10,000 — Parlor's search read model, asked directly on its NATS
//! query subject and through the HTTP gateway, against Postgres 15 full-text search on the same
//! messages, with the same queries at the same concurrency, in the same run.
//!
//! Queries are one word (half of them) or two, drawn by the same Zipf law as the words of the
//! bodies ([`crate::corpus`]), so common words (matching most of the user's messages) and rare
//! ones (matching a few or none) both occur. Every word must match as a word prefix in both
//! systems: Parlor's search does that (docs/queries.md), and the Postgres peer's `tsquery` is
//! `w1:* & w2:*`. Each system first answers 100 other queries, uncounted (warm caches), then
//! the measured ones.
//!
//! The Postgres peer: a fresh table `(message_id text, room_id text, body text, tsv tsvector
//! GENERATED ALWAYS AS (to_tsvector('simple', body)) STORED)`, filled with COPY from the log
//! (read here through `eventlog`), a GIN index on `tsv` and a B-tree on `room_id`, ANALYZEd;
//! each query is `… WHERE room_id = ANY(<the user's 50 rooms>) AND tsv @@ q ORDER BY
//! ts_rank(tsv, q) DESC LIMIT 20`. The table is dropped at the end.

use std::future::Future;
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use bytes::Bytes;
use futures::SinkExt;

use crate::b4::{self, ReadLog};
use crate::corpus::Vocabulary;
use crate::http::{self, Gateway};
use crate::report::{thousands, verdict, Table};
use crate::stats::{Figure, Latencies};
use crate::system::{Nats, Parlor};
use crate::zipf::Rng;
use crate::{b1, Settings};

/// Uncounted queries each system answers first.
const WARMUP_QUERIES: usize = 100;
/// Results asked for per query (the gateway's default page).
const PAGE: usize = 20;
/// How long the search projector may take to open its index and answer at the log's head.
const PROJECTOR_READY_WAIT: Duration = Duration::from_secs(300);
/// One query's time limit.
const QUERY_WAIT_MAX: Duration = Duration::from_secs(30);
/// Log records read per step while filling the Postgres table.
const COPY_RECORDS_PER_READ: usize = 10_000;

/// How one system answered the queries.
#[derive(Debug, Default)]
struct QueryRun {
    latencies: Latencies,
    /// Queries that found at least one message.
    with_hits: u64,
    errors: u64,
    first_error: Option<String>,
    elapsed: Duration,
}

/// Runs `queries` through `op` (which returns how many messages it found) with `concurrency`
/// in flight, each worker taking the next query when its last one is answered.
async fn run_queries<F, Fut>(queries: &Arc<Vec<Vec<String>>>, concurrency: usize, op: F) -> QueryRun
where
    F: Fn(Vec<String>) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = anyhow::Result<usize>> + Send + 'static,
{
    let op = Arc::new(op);
    let next = Arc::new(AtomicUsize::new(0));
    let run = Arc::new(Mutex::new(QueryRun::default()));
    let started = Instant::now();
    let mut workers = tokio::task::JoinSet::new();
    for _ in 0..concurrency {
        let (op, next, run, queries) = (op.clone(), next.clone(), run.clone(), queries.clone());
        workers.spawn(async move {
            // Bounded by the number of queries.
            while let Some(query) = queries.get(next.fetch_add(1, Ordering::Relaxed)) {
                let sent = Instant::now();
                let answer = tokio::time::timeout(QUERY_WAIT_MAX, op(query.clone())).await;
                let latency = sent.elapsed();
                let Ok(mut run) = run.lock() else { return };
                match answer {
                    Ok(Ok(hits)) => {
                        run.latencies.record(latency);
                        if hits > 0 {
                            run.with_hits += 1;
                        }
                    }
                    Ok(Err(error)) => {
                        run.errors += 1;
                        run.first_error
                            .get_or_insert_with(|| format!("{:?}: {error:#}", query.join(" ")));
                    }
                    Err(_) => {
                        run.errors += 1;
                        run.first_error
                            .get_or_insert_with(|| format!("no answer within {QUERY_WAIT_MAX:?}"));
                    }
                }
            }
        });
    }
    while workers.join_next().await.is_some() {}
    let mut outcome = match run.lock() {
        Ok(mut run) => std::mem::take(&mut *run),
        Err(_) => QueryRun {
            errors: 1,
            first_error: Some("a query worker panicked".to_owned()),
            ..QueryRun::default()
        },
    };
    outcome.elapsed = started.elapsed();
    outcome
}

/// The messages of a search answer's `data` (NATS) or body (HTTP).
fn messages_found(data: &serde_json::Value) -> anyhow::Result<usize> {
    data.get("messages")
        .and_then(|messages| messages.as_array())
        .map(Vec::len)
        .with_context(|| format!("no messages in the answer: {data}"))
}

/// One query on `parlor.query.search`, as the gateway would send it for the searcher.
async fn search_over_nats(
    client: &async_nats::Client,
    searcher: &str,
    words: &[String],
) -> anyhow::Result<usize> {
    // The contract's own types (protocol::query), so the harness asks exactly what the
    // gateway asks.
    let request = protocol::query::QueryRequest {
        caller: Some(searcher.to_owned()),
        moderator: false,
        min_position: None,
        op: protocol::query::SearchQuery::Search {
            q: words.join(" "),
            room_id: None,
            limit: protocol::query::PageLimit::new(PAGE).context("a page size")?,
            cursor: None,
        },
    };
    let reply = client
        .request(
            "parlor.query.search",
            Bytes::from(serde_json::to_vec(&request)?),
        )
        .await
        .context("parlor.query.search: no reply")?;
    match protocol::query::QueryReply::<serde_json::Value>::from_json(&reply.payload)
        .context("the search reply is malformed")?
    {
        protocol::query::QueryReply::Answer { data, .. } => messages_found(&data),
        protocol::query::QueryReply::Refused(refusal) => {
            bail!(
                "search refused: {} {}",
                refusal.code.as_str(),
                refusal.message
            )
        }
    }
}

/// Waits until the search projector answers `status` at `head`.
async fn wait_for_projector(
    projector: &mut Parlor,
    client: &async_nats::Client,
    head: u64,
) -> anyhow::Result<Duration> {
    let deadline = Instant::now() + PROJECTOR_READY_WAIT;
    let mut last = None;
    loop {
        projector.check_alive()?;
        let status = tokio::time::timeout(
            Duration::from_secs(2),
            client.request("parlor.query.search", Bytes::from(r#"{"op":"status"}"#)),
        )
        .await;
        if let Ok(Ok(reply)) = status {
            let reply: serde_json::Value = serde_json::from_slice(&reply.payload)?;
            let position = reply.get("position").and_then(|p| p.as_u64());
            if position == Some(head) {
                return Ok(projector.started().elapsed());
            }
            last = position;
        }
        if Instant::now() >= deadline {
            bail!(
                "the search projector did not answer at position {head} within \
                 {PROJECTOR_READY_WAIT:?} (last seen {last:?}); its log ends:\n{}",
                projector.log_tail()
            );
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// A row of the table.
struct Row {
    name: String,
    run: QueryRun,
}

/// Runs B5 once; prints the table and returns the figures.
pub async fn run(settings: &Settings) -> anyhow::Result<Vec<Figure>> {
    let mut figures = crate::fsync_figures(settings, "B5").await?;
    let log = b4::read_log(settings).await?;
    let manifest = &log.manifest;
    let data_dir = log.data_dir();
    if manifest.searcher_rooms.is_empty() {
        bail!("the log has no searcher (it was not generated for B5)");
    }
    let search_store = data_dir.join("projections").join("search");
    if !log.search_rebuilt.load(Ordering::Relaxed) && !search_store.exists() {
        println!("B5: rebuilding the search model first (parlor replay search)");
        let rebuild = b4::replay(settings, data_dir, "search").await?;
        println!(
            "B5: search rebuilt to position {} ({} events/s)",
            rebuild.position,
            thousands(rebuild.events_per_second)
        );
        log.search_rebuilt.store(true, Ordering::Relaxed);
    }
    figures.push(Figure::new(
        "B5 messages",
        manifest.messages as f64,
        "messages",
    ));

    let vocabulary = Vocabulary::new();
    let mut rng = Rng::new(0xB5_0001);
    let queries: Arc<Vec<Vec<String>>> = Arc::new(
        (0..settings.queries)
            .map(|_| vocabulary.query(&mut rng))
            .collect(),
    );
    let mut warm_rng = Rng::new(0xB5_0002);
    let warmup: Arc<Vec<Vec<String>>> = Arc::new(
        (0..WARMUP_QUERIES.min(settings.queries))
            .map(|_| vocabulary.query(&mut warm_rng))
            .collect(),
    );
    let concurrency = settings.query_concurrency;

    // Postgres's table first, while nothing of Parlor runs (loading takes a while).
    let mut skipped = Vec::new();
    let postgres = if !settings.peers {
        skipped.push("Postgres peer skipped: --no-peers".to_owned());
        None
    } else {
        match PostgresPeer::load(&log).await {
            Ok(peer) => Some(peer),
            Err(reason) => {
                skipped.push(format!("Postgres peer skipped: {reason:#}"));
                None
            }
        }
    };

    let mut rows = Vec::new();
    let parlor_outcome = measure_parlor(settings, &log, &queries, &warmup, &mut rows).await;
    if let Some(peer) = postgres {
        let outcome = peer.measure(&queries, &warmup, concurrency).await;
        peer.drop_table().await;
        match outcome {
            Ok(run) => rows.push(Row {
                name: "postgres 15 full-text (tsvector + GIN, ts_rank)".to_owned(),
                run,
            }),
            Err(reason) => skipped.push(format!("Postgres peer failed: {reason:#}")),
        }
    }
    parlor_outcome?;

    let mut table = Table::new(&[
        "B5 search",
        "queries",
        "p50 ms",
        "p99 ms",
        "p99.9 ms",
        "max ms",
        "queries/s",
        "with hits",
        "errors",
        "postgres p99 ÷ it",
    ]);
    let postgres_p99 = rows
        .iter()
        .find(|row| row.name.starts_with("postgres"))
        .map(|row| row.run.latencies.quantile_ms(0.99));
    for row in &rows {
        let (p50, p99, p999) = row.run.latencies.percentiles_ms();
        let key = if row.name.starts_with("postgres") {
            "postgres"
        } else if row.name.contains("HTTP") {
            "parlor http"
        } else {
            "parlor nats"
        };
        table.row(vec![
            row.name.clone(),
            thousands(row.run.latencies.count() as f64),
            format!("{p50:.2}"),
            format!("{p99:.2}"),
            format!("{p999:.2}"),
            format!("{:.1}", row.run.latencies.max_ms()),
            thousands(row.run.latencies.count() as f64 / row.run.elapsed.as_secs_f64().max(1e-9)),
            thousands(row.run.with_hits as f64),
            row.run.errors.to_string(),
            match postgres_p99 {
                Some(theirs) if p99 > 0.0 => format!("{:.2}×", theirs / p99),
                _ => "n/a".to_owned(),
            },
        ]);
        figures.push(Figure::new(format!("B5 {key} p50"), p50, "ms"));
        figures.push(Figure::new(format!("B5 {key} p99"), p99, "ms"));
        figures.push(Figure::new(format!("B5 {key} p99.9"), p999, "ms"));
        figures.push(Figure::new(
            format!("B5 {key} errors"),
            row.run.errors as f64,
            "count",
        ));
        if let Some(theirs) = postgres_p99.filter(|_| key != "postgres" && p99 > 0.0) {
            figures.push(Figure::new(
                format!("B5 postgres ÷ {key} p99"),
                theirs / p99,
                "×",
            ));
        }
    }
    println!("{}", table.render());
    println!(
        "B5: {} messages, {} as a member of {} rooms, {} queries (1–2 Zipf-drawn words, \
         every word a prefix match), {concurrency} in flight, {PAGE} results each",
        thousands(manifest.messages as f64),
        manifest.searcher,
        manifest.searcher_rooms.len(),
        thousands(queries.len() as f64)
    );
    for row in &rows {
        if let Some(error) = &row.run.first_error {
            println!("  {}: {} errors, first: {error}", row.name, row.run.errors);
        }
    }
    let hits: Vec<u64> = rows.iter().map(|row| row.run.with_hits).collect();
    if hits.windows(2).any(|pair| pair[0] != pair[1]) {
        println!(
            "  note: the systems disagree on how many queries found something ({hits:?}): \
             check that both match the same words"
        );
    }
    for reason in &skipped {
        println!("  {reason}");
    }
    for line in goals(&|name| figures.iter().find(|f| f.name == name).map(|f| f.value)) {
        println!("{line}");
    }
    Ok(figures)
}

/// Starts `parlor projector search` on the log's data directory and `parlor gateway`, and
/// measures the queries over NATS and over HTTP; pushes the rows.
async fn measure_parlor(
    settings: &Settings,
    log: &ReadLog,
    queries: &Arc<Vec<Vec<String>>>,
    warmup: &Arc<Vec<Vec<String>>>,
    rows: &mut Vec<Row>,
) -> anyhow::Result<()> {
    let manifest = &log.manifest;
    let concurrency = settings.query_concurrency;
    let nats = Nats::start()?;
    let client = nats.connect("parlor-bench-b5").await?;
    let mut projector = Parlor::spawn_service(
        &settings.parlor_bin,
        &["projector", "search"],
        &nats.url(),
        log.data_dir(),
        &[],
    )?;
    let ready = wait_for_projector(&mut projector, &client, manifest.events).await?;
    println!(
        "B5: parlor projector search answers at position {} {:.2} s after its start",
        manifest.events,
        ready.as_secs_f64()
    );

    let searcher = Arc::new(manifest.searcher.clone());
    let over_nats = |client: async_nats::Client, searcher: Arc<String>| {
        move |words: Vec<String>| {
            let (client, searcher) = (client.clone(), searcher.clone());
            async move { search_over_nats(&client, &searcher, &words).await }
        }
    };
    run_queries(
        warmup,
        concurrency,
        over_nats(client.clone(), searcher.clone()),
    )
    .await;
    let nats_run = run_queries(
        queries,
        concurrency,
        over_nats(client.clone(), searcher.clone()),
    )
    .await;
    rows.push(Row {
        name: "parlor search, NATS query subject".to_owned(),
        run: nats_run,
    });

    // The gateway in its own empty data directory: it reads nothing there but its blobs.
    let gateway_dir = tempfile::Builder::new()
        .prefix("parlor-bench-b5-gateway-")
        .tempdir_in(&settings.data_root)?;
    let http::Serving {
        parlor: mut gateway_process,
        address,
        secret,
    } = http::spawn_serving(
        &settings.parlor_bin,
        "gateway",
        &nats.url(),
        gateway_dir.path(),
    )?;
    let gateway = Gateway::new(address)?;
    gateway
        .wait_listening(http::GATEWAY_READY_WAIT)
        .await
        .with_context(|| gateway_process.log_tail())?;
    let token = Arc::new(http::mint_token(&secret, &manifest.searcher)?);
    let over_http = |gateway: Gateway, token: Arc<String>| {
        move |words: Vec<String>| {
            let (gateway, token) = (gateway.clone(), token.clone());
            async move {
                let q = words.join(" ");
                let limit = PAGE.to_string();
                let body = gateway
                    .get("/v1/search", &[("q", &q), ("limit", &limit)], &token)
                    .await?;
                messages_found(&body)
            }
        }
    };
    run_queries(
        warmup,
        concurrency,
        over_http(gateway.clone(), token.clone()),
    )
    .await;
    let http_run = run_queries(queries, concurrency, over_http(gateway.clone(), token)).await;
    rows.push(Row {
        name: "parlor search, HTTP gateway".to_owned(),
        run: http_run,
    });
    gateway_process.check_alive()?;
    projector.check_alive()?;
    let _ = gateway_process.terminate().await;
    let _ = projector.terminate().await;
    Ok(())
}

/// The Postgres full-text search peer: a loaded table of the log's messages.
struct PostgresPeer {
    admin: tokio_postgres::Client,
    table: String,
    rooms: Vec<String>,
}

impl PostgresPeer {
    /// Creates a fresh table and fills it with the log's messages (COPY), then indexes it.
    async fn load(log: &ReadLog) -> anyhow::Result<PostgresPeer> {
        let admin = b1::postgres_connect().await?;
        let table = format!(
            "bench_search_{}_{}",
            std::process::id(),
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_millis())
                .unwrap_or_default()
        );
        admin
            .batch_execute(&format!(
                "CREATE TABLE {table}(message_id text NOT NULL, room_id text NOT NULL, \
                 body text NOT NULL, \
                 tsv tsvector GENERATED ALWAYS AS (to_tsvector('simple', body)) STORED)"
            ))
            .await
            .context("creating the table")?;
        let peer = PostgresPeer {
            admin,
            table,
            rooms: log.manifest.searcher_rooms.clone(),
        };
        let started = Instant::now();
        match peer.fill(log.data_dir()).await {
            Ok(rows) => {
                println!(
                    "B5: Postgres table {} filled with {} messages and indexed in {:.1} s",
                    peer.table,
                    thousands(rows as f64),
                    started.elapsed().as_secs_f64()
                );
                Ok(peer)
            }
            Err(error) => {
                peer.drop_table().await;
                Err(error)
            }
        }
    }

    /// COPY of every `message_sent` of the log, then the indexes and ANALYZE.
    async fn fill(&self, data_dir: &Path) -> anyhow::Result<u64> {
        let table = &self.table;
        let (chunks, mut receive) = tokio::sync::mpsc::channel::<anyhow::Result<Bytes>>(4);
        let log_dir = data_dir.join("log");
        let reader = tokio::task::spawn_blocking(move || {
            if let Err(error) = read_messages(&log_dir, &chunks) {
                let _ = chunks.blocking_send(Err(error));
            }
        });
        let sink = self
            .admin
            .copy_in::<_, Bytes>(&format!(
                "COPY {table}(message_id, room_id, body) FROM STDIN"
            ))
            .await
            .context("COPY")?;
        futures::pin_mut!(sink);
        // Bounded: the reader ends at the log's head and then drops its sender.
        while let Some(chunk) = receive.recv().await {
            sink.send(chunk?).await.context("COPY data")?;
        }
        let rows = sink.finish().await.context("finishing COPY")?;
        reader.await.context("the log reader panicked")?;
        self.admin
            .batch_execute(&format!(
                "CREATE INDEX {table}_tsv ON {table} USING GIN (tsv); \
                 CREATE INDEX {table}_room ON {table}(room_id); ANALYZE {table}"
            ))
            .await
            .context("indexing")?;
        Ok(rows)
    }

    /// The same queries, each with one connection of `concurrency`.
    async fn measure(
        &self,
        queries: &Arc<Vec<Vec<String>>>,
        warmup: &Arc<Vec<Vec<String>>>,
        concurrency: usize,
    ) -> anyhow::Result<QueryRun> {
        let mut connections = Vec::with_capacity(concurrency);
        for _ in 0..concurrency {
            let client = b1::postgres_connect().await?;
            let statement = client
                .prepare(&format!(
                    "SELECT message_id FROM {table} \
                     WHERE room_id = ANY($1) AND tsv @@ to_tsquery('simple', $2) \
                     ORDER BY ts_rank(tsv, to_tsquery('simple', $2)) DESC LIMIT {PAGE}",
                    table = self.table
                ))
                .await?;
            connections.push((client, statement));
        }
        let pool = Arc::new(tokio::sync::Mutex::new(connections));
        let rooms = Arc::new(self.rooms.clone());
        let op = move |words: Vec<String>| {
            let (pool, rooms) = (pool.clone(), rooms.clone());
            async move {
                // A connection of our own for this query (there are as many as workers).
                let (client, statement) = pool.lock().await.pop().context("no connection")?;
                let tsquery = words
                    .iter()
                    .map(|word| format!("{word}:*"))
                    .collect::<Vec<_>>()
                    .join(" & ");
                let rows = client.query(&statement, &[&*rooms, &tsquery]).await;
                pool.lock().await.push((client, statement));
                Ok(rows.context("query")?.len())
            }
        };
        run_queries(warmup, concurrency, op.clone()).await;
        Ok(run_queries(queries, concurrency, op).await)
    }

    /// Drops the table (also after a failure), printing rather than failing.
    async fn drop_table(&self) {
        let dropped = self
            .admin
            .batch_execute(&format!("DROP TABLE IF EXISTS {}", self.table))
            .await;
        if let Err(error) = dropped {
            println!("  could not drop {}: {error}", self.table);
        }
    }
}

/// Reads the log's `message_sent` events and sends them as COPY text rows, a chunk per step.
fn read_messages(
    log_dir: &Path,
    chunks: &tokio::sync::mpsc::Sender<anyhow::Result<Bytes>>,
) -> anyhow::Result<()> {
    let log = eventlog::EventLog::open(log_dir).context("opening the log")?;
    let head = log.head().position;
    let mut next = 1;
    // Bounded: every step moves `next` past at least one record, up to the head.
    while next <= head {
        let records = log.read_from(next, COPY_RECORDS_PER_READ, usize::MAX)?;
        let Some(last) = records.last().map(|record| record.position) else {
            break;
        };
        next = last + 1;
        let mut rows = String::with_capacity(records.len() * 256);
        for record in records {
            let stored = protocol::decode_stored(&record.payload)
                .with_context(|| format!("the event at position {}", record.position))?;
            if let domain::Event::MessageSent {
                room_id,
                message_id,
                body,
                ..
            } = stored.event
            {
                rows.push_str(&copy_text(&message_id.to_string()));
                rows.push('\t');
                rows.push_str(&copy_text(&room_id.to_string()));
                rows.push('\t');
                rows.push_str(&copy_text(&body));
                rows.push('\n');
            }
        }
        if chunks.blocking_send(Ok(Bytes::from(rows))).is_err() {
            bail!("COPY stopped reading");
        }
    }
    Ok(())
}

/// `text` escaped for COPY's text format.
fn copy_text(text: &str) -> String {
    text.replace('\\', "\\\\")
        .replace('\t', "\\t")
        .replace('\n', "\\n")
        .replace('\r', "\\r")
}

/// performance.md's B5 goals (stated for 1M messages).
pub fn goals(get: &dyn Fn(&str) -> Option<f64>) -> Vec<String> {
    let messages = thousands(get("B5 messages").unwrap_or(0.0));
    let mut lines = Vec::new();
    for (key, how) in [
        ("parlor nats", "on its NATS query subject"),
        ("parlor http", "through the HTTP gateway"),
    ] {
        if let Some(p99) = get(&format!("B5 {key} p99")) {
            let clean = get(&format!("B5 {key} errors")).unwrap_or(0.0) == 0.0;
            lines.push(format!(
                "goal B5 ({messages} messages; the goal is for 1M) search p99 ≤ 20 ms, {how}: {p99:.2} ms — {}",
                verdict(p99 <= 20.0 && clean)
            ));
        }
    }
    match get("B5 postgres ÷ parlor nats p99") {
        Some(ratio) => lines.push(format!(
            "goal B5 ≥ 5× faster than Postgres full-text search (p99, direct): {ratio:.2}× — {}",
            verdict(ratio >= 5.0)
        )),
        None => lines.push("goal B5 ≥ 5× faster than Postgres: no Postgres figure".to_owned()),
    }
    lines
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn copy_text_escapes_what_copy_would_misread() {
        assert_eq!(copy_text("a\tb\nc\\d\re"), "a\\tb\\nc\\\\d\\re");
        assert_eq!(copy_text("plain words"), "plain words");
    }
}
