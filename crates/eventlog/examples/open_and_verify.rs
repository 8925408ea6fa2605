//! Measures what a big log costs at start-up and in `verify`: fills a log with `--events`
//! events shaped like `message.send` (as `commit_throughput` does, 1,000 commands a batch),
//! then times `EventLog::open` from the index runs and from the log alone (runs moved away),
//! `verify` (events/s), and reports bytes on disk per event and the idempotency index's memory.
//! A tool for docs/speed-work.md, not a benchmark with goals.
//!
//! Run: `cargo run --release -p eventlog --example open_and_verify -- --events 1000000`
//! (`--dir PATH` for the disk to use, a temporary directory under /var/tmp otherwise).

use std::path::PathBuf;
use std::time::Instant;

use eventlog::{EventLog, NewRecord};

/// Bytes of a record's payload (a bincode `StoredEvent` of a `message.send` is about this).
const PAYLOAD_BYTES: usize = 400;
/// Bytes of a stored reply.
const REPLY_BYTES: usize = 150;
/// Streams the records are spread over (round robin: the order does not matter here).
const STREAMS: u64 = 10_000;
/// Commands per batch while filling.
const FILL_BATCH_COMMANDS: u64 = 1_000;

fn main() {
    let mut events = 1_000_000u64;
    let mut root = PathBuf::from("/var/tmp");
    let mut existing: Option<PathBuf> = None;
    let mut keep = false;
    let mut verify_only = false;
    let mut arguments = std::env::args().skip(1);
    while let Some(flag) = arguments.next() {
        if flag == "--keep" {
            keep = true;
            continue;
        }
        if flag == "--verify" {
            // With --open-only: verify after opening, timed on its own.
            verify_only = true;
            continue;
        }
        let value = arguments.next().unwrap_or_default();
        match flag.as_str() {
            "--events" => events = value.parse().expect("--events takes a number"),
            "--dir" => root = PathBuf::from(value),
            // Only time `EventLog::open` of a log directory left by an earlier run (for perf).
            "--open-only" => existing = Some(PathBuf::from(value)),
            _ => {
                eprintln!("open_and_verify: unknown flag {flag}");
                std::process::exit(2);
            }
        }
    }
    if let Some(log_dir) = existing {
        let started = Instant::now();
        let log = EventLog::open(&log_dir).expect("open");
        let (index_bytes, ids) = log.reply_index_memory();
        println!(
            "{:.2} s to head {}, reply index {:.1} bytes/id",
            started.elapsed().as_secs_f64(),
            log.head().position,
            index_bytes as f64 / ids.max(1) as f64
        );
        if verify_only {
            let started = Instant::now();
            let report = log.verify(None, |_| {}).expect("verify").expect("intact");
            let seconds = started.elapsed().as_secs_f64();
            println!(
                "verify: {} events in {seconds:.2} s = {:.0} events/s",
                report.events,
                report.events as f64 / seconds
            );
        }
        return;
    }
    let dir = tempfile::Builder::new()
        .prefix("open-and-verify-")
        .tempdir_in(&root)
        .expect("a temporary directory");
    let log_dir = dir.path().join("log");
    let log = EventLog::open(&log_dir).expect("open the log");
    let streams: Vec<String> = (0..STREAMS).map(|s| format!("room-{s:032x}")).collect();
    let mut payload = vec![7u8; PAYLOAD_BYTES];
    let reply = vec![b'r'; REPLY_BYTES];
    let started = Instant::now();
    let mut command = 0u64;
    while log.head().position < events {
        let mut batch = log.batch();
        for _ in 0..FILL_BATCH_COMMANDS {
            command += 1;
            payload[..8].copy_from_slice(&command.to_be_bytes());
            let key = command.wrapping_mul(0x9e37_79b9_7f4a_7c15).to_be_bytes();
            let stream = &streams[(command % STREAMS) as usize];
            let record = [NewRecord {
                stream,
                payload: &payload,
            }];
            batch
                .add_command(Some(&key), &[], &record, |_| reply.clone())
                .expect("add")
                .expect("accepted");
        }
        log.commit(batch).expect("commit");
    }
    let filled = started.elapsed().as_secs_f64();
    let head = log.head();
    let (index_bytes, ids) = log.reply_index_memory();
    drop(log);
    println!(
        "filled {} events in {filled:.1} s ({:.0} events/s); reply index {:.1} bytes/id over {ids} ids",
        head.position,
        head.position as f64 / filled,
        index_bytes as f64 / ids as f64
    );

    // Each open runs in a process of its own: sled releases its file lock from background
    // work after a drop (spacejam/sled#1234), and a reopen in the same process would time
    // that wait too.
    let open_in_child = |what: &str| {
        let output = std::process::Command::new(std::env::current_exe().expect("own path"))
            .arg("--open-only")
            .arg(&log_dir)
            .output()
            .expect("run the open");
        println!("{what}: {}", String::from_utf8_lossy(&output.stdout).trim());
    };
    open_in_child("open with index runs");
    let runs = log_dir.join("index-runs");
    let aside = dir.path().join("runs-aside");
    if runs.exists() {
        std::fs::rename(&runs, &aside).expect("move the runs aside");
    }
    open_in_child("open from the log alone");
    // That open found no runs and wrote none (it appended nothing); verify reads the log.
    let log = EventLog::open(&log_dir).expect("open");
    let started = Instant::now();
    let report = log.verify(None, |_| {}).expect("verify").expect("intact");
    let seconds = started.elapsed().as_secs_f64();
    println!(
        "verify: {} events in {seconds:.2} s = {:.0} events/s",
        report.events,
        report.events as f64 / seconds
    );
    drop(log);
    let bytes = directory_bytes(&log_dir);
    println!(
        "on disk: {:.0} bytes/event ({bytes} bytes, runs {} bytes)",
        bytes as f64 / head.position as f64,
        directory_bytes(&aside)
    );
    if keep {
        // Runs back in place, for `--open-only` runs under perf.
        if aside.exists() {
            let _ = std::fs::remove_dir_all(&runs);
            std::fs::rename(&aside, &runs).expect("put the runs back");
        }
        println!("kept {}", dir.keep().join("log").display());
    }
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
