//! Measures the log's write path alone: commits batches shaped like the writer's under B1 and
//! prints events/s. A tool for profiling (docs/speed-work.md), not a benchmark with goals.
//!
//! Each command is what a `message.send` costs the log: one record of ~400 bytes in one of
//! 10,000 streams drawn by a Zipf law (exponent 1, like the harness), a 16-byte time-ordered
//! idempotency key (a UUIDv7's shape) and a ~150-byte reply. The log is first filled with
//! `--prefill` events (the tree's depth and the stream index's spread matter), then batches of
//! `--batch` commands are committed for `--seconds`.
//!
//! Run: `cargo run --release -p eventlog --example commit_throughput -- --batch 100`
//! (`--dir PATH` to put the log on a given disk, a temporary directory under /var/tmp otherwise;
//! `--log-lookup` to look keys up through `EventLog::reply_for`, as the writer did before
//! `Batch::committed_reply_for`).

use std::path::PathBuf;
use std::time::{Duration, Instant};

use eventlog::{EventLog, NewRecord};

/// Streams the commands are spread over.
const STREAMS: usize = 10_000;
/// Bytes of a record's payload (a bincode `StoredEvent` of a `message.send` is about this).
const PAYLOAD_BYTES: usize = 400;
/// Bytes of a stored reply.
const REPLY_BYTES: usize = 150;

struct Options {
    batch: usize,
    prefill: u64,
    seconds: f64,
    dir: Option<PathBuf>,
    log_lookup: bool,
}

fn parse_options() -> Result<Options, String> {
    let mut options = Options {
        batch: 100,
        prefill: 200_000,
        seconds: 10.0,
        dir: None,
        log_lookup: false,
    };
    let mut arguments = std::env::args().skip(1);
    while let Some(flag) = arguments.next() {
        if flag == "--log-lookup" {
            options.log_lookup = true;
            continue;
        }
        let value = arguments
            .next()
            .ok_or_else(|| format!("{flag} needs a value"))?;
        let bad = format!("{flag}: cannot read {value:?}");
        match flag.as_str() {
            "--batch" => options.batch = value.parse().map_err(|_| bad.clone())?,
            "--prefill" => options.prefill = value.parse().map_err(|_| bad.clone())?,
            "--seconds" => options.seconds = value.parse().map_err(|_| bad.clone())?,
            "--dir" => options.dir = Some(PathBuf::from(value)),
            _ => return Err(format!("unknown flag {flag}")),
        }
    }
    if options.batch == 0 {
        return Err("--batch must be at least 1".to_owned());
    }
    Ok(options)
}

/// A small deterministic generator (xorshift64*), so runs are repeatable without a dependency.
struct Random(u64);

impl Random {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn unit(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }
}

/// Draws stream indexes by a Zipf law with exponent 1 (cumulative weights, binary search).
struct Zipf(Vec<f64>);

impl Zipf {
    fn new(count: usize) -> Zipf {
        let mut total = 0.0;
        let cumulative = (1..=count)
            .map(|rank| {
                total += 1.0 / rank as f64;
                total
            })
            .collect::<Vec<_>>();
        Zipf(cumulative.into_iter().map(|c| c / total).collect())
    }

    fn draw(&self, random: &mut Random) -> usize {
        let target = random.unit();
        self.0
            .partition_point(|&c| c < target)
            .min(self.0.len() - 1)
    }
}

struct Workload {
    streams: Vec<String>,
    zipf: Zipf,
    random: Random,
    payload: Vec<u8>,
    reply: Vec<u8>,
    sequence: u64,
    log_lookup: bool,
}

impl Workload {
    fn new() -> Workload {
        let mut random = Random(0x9e37_79b9_7f4a_7c15);
        // Stream names shaped like the domain's: `room-<uuid>`.
        let streams = (0..STREAMS)
            .map(|_| {
                let (a, b) = (random.next(), random.next());
                format!(
                    "room-{:08x}-{:04x}-{:04x}-{:04x}-{:012x}",
                    a >> 32,
                    (a >> 16) & 0xffff,
                    a & 0xffff,
                    b >> 48,
                    b & 0xffff_ffff_ffff
                )
            })
            .collect();
        let payload = (0..PAYLOAD_BYTES).map(|i| (i * 7) as u8).collect();
        Workload {
            streams,
            zipf: Zipf::new(STREAMS),
            random,
            payload,
            reply: vec![b'r'; REPLY_BYTES],
            sequence: 0,
            log_lookup: false,
        }
    }

    /// Commits one batch of `commands` commands; returns the events appended.
    fn commit_batch(&mut self, log: &EventLog, commands: usize) -> u64 {
        let mut batch = log.batch();
        for _ in 0..commands {
            self.sequence += 1;
            // A UUIDv7's shape: milliseconds first (here a counter standing in for them), then
            // random bits, so keys arrive roughly in order, as real v7 ids do.
            let mut key = [0u8; 16];
            key[..8].copy_from_slice(&(self.sequence / 16).to_be_bytes());
            key[8..].copy_from_slice(&self.random.next().to_be_bytes());
            let stream = &self.streams[self.zipf.draw(&mut self.random)];
            // Vary the payload a little so records are not identical.
            self.payload[..8].copy_from_slice(&self.sequence.to_be_bytes());
            let record = [NewRecord {
                stream,
                payload: &self.payload,
            }];
            // The writer looks the key up before deciding the command; do the same (through the
            // log, as the writer did before `Batch::committed_reply_for`, with `--log-lookup`).
            let stored = if self.log_lookup {
                log.reply_for(&key).expect("look the key up")
            } else {
                batch.committed_reply_for(&key).expect("look the key up")
            };
            assert!(stored.is_none(), "keys are fresh");
            let reply = &self.reply;
            let added = batch
                .add_command(Some(&key), &[], &record, |_| reply.clone())
                .expect("add a command");
            added.expect("the command is accepted");
        }
        log.commit(batch).expect("commit").records
    }
}

/// Bytes this process has caused to be written to storage so far (`write_bytes` of
/// /proc/self/io): with the log's bytes per event, the write amplification.
fn process_write_bytes() -> u64 {
    let io = std::fs::read_to_string("/proc/self/io").unwrap_or_default();
    io.lines()
        .find_map(|line| line.strip_prefix("write_bytes: "))
        .and_then(|value| value.trim().parse().ok())
        .unwrap_or(0)
}

/// Bytes of every file under `dir`, recursively.
fn directory_bytes(dir: &std::path::Path) -> u64 {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return 0;
    };
    entries
        .flatten()
        .map(|entry| match entry.metadata() {
            Ok(metadata) if metadata.is_dir() => directory_bytes(&entry.path()),
            Ok(metadata) => metadata.len(),
            Err(_) => 0,
        })
        .sum()
}

/// User + system CPU seconds of this process (all threads, sled's included), from /proc.
fn process_cpu_seconds() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    // Fields after the parenthesised command name; utime and stime are the 14th and 15th.
    let after_name = stat.rsplit_once(')').map_or("", |(_, rest)| rest);
    let fields: Vec<&str> = after_name.split_whitespace().collect();
    let ticks = |index: usize| fields.get(index).and_then(|f| f.parse::<f64>().ok());
    // 100 clock ticks per second on Linux.
    (ticks(11).unwrap_or(0.0) + ticks(12).unwrap_or(0.0)) / 100.0
}

fn main() {
    let options = match parse_options() {
        Ok(options) => options,
        Err(message) => {
            eprintln!("commit_throughput: {message}");
            std::process::exit(2);
        }
    };
    let root = options
        .dir
        .clone()
        .unwrap_or_else(|| PathBuf::from("/var/tmp"));
    let dir = tempfile::Builder::new()
        .prefix("commit-throughput-")
        .tempdir_in(&root)
        .expect("a temporary directory");
    let log = EventLog::open(dir.path()).expect("open the log");
    let mut workload = Workload::new();
    workload.log_lookup = options.log_lookup;

    let started = Instant::now();
    let mut filled = 0;
    while filled < options.prefill {
        filled += workload.commit_batch(&log, 1_000);
    }
    eprintln!(
        "prefill: {filled} events in {:.1} s",
        started.elapsed().as_secs_f64()
    );

    let measured = Duration::from_secs_f64(options.seconds);
    let cpu_before = process_cpu_seconds();
    let written_before = process_write_bytes();
    let started = Instant::now();
    let mut events = 0;
    let mut batches = 0u64;
    while started.elapsed() < measured {
        events += workload.commit_batch(&log, options.batch);
        batches += 1;
    }
    let elapsed = started.elapsed().as_secs_f64();
    let cpu = process_cpu_seconds() - cpu_before;
    let written = process_write_bytes() - written_before;
    // CPU time per event moves far less than events/s with the load of a shared machine.
    println!(
        "batch {}: {:.0} events/s, {:.1} µs CPU/event, {:.2} cores ({events} events, {batches} batches, {:.3} ms/batch)",
        options.batch,
        events as f64 / elapsed,
        cpu * 1e6 / events as f64,
        cpu / elapsed,
        elapsed * 1000.0 / batches as f64
    );
    let total_events = log.head().position;
    drop(log);
    println!(
        "written: {:.0} bytes/event during the measurement; on disk: {:.0} bytes/event ({total_events} events, {} bytes)",
        written as f64 / events as f64,
        directory_bytes(dir.path()) as f64 / total_events as f64,
        directory_bytes(dir.path())
    );
}
