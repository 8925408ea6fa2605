//! SIGKILL a child process that appends, and check every acknowledged record survives.
//!
//! The test re-executes its own binary as the child (selected by an environment variable).
//! The child appends batches in a loop and prints a line per record only after `commit`
//! returned; the parent kills it at a pseudo-random moment, reopens the log, and checks that
//! every printed record is there exactly once, positions are gapless and `verify` passes. The
//! next child continues from the recovered head. A third of the kills land during the child's
//! `EventLog::open` (sled's recovery and the rebuild of the in-memory indexes), a third right
//! after it, a third after the first acknowledgement. The child also persists its index runs now and then,
//! so kills land during run writes too, and reopens load runs. The child's exit status is checked: it
//! must die by the parent's SIGKILL, so a failed check inside the child (a retried key that
//! appended again, a commit that failed) fails the test. `EVENTLOG_CRASH_CYCLES` sets the number of
//! kills (5 by default); `EVENTLOG_CRASH_SEED` replays a run from the seed it printed.

use std::collections::{BTreeMap, HashMap};
use std::io::{BufRead, BufReader, Write};
use std::os::unix::process::ExitStatusExt;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use eventlog::{AddRejected, EventLog, Head, NewRecord};

use crate::common::{read_all, Xorshift};

const TEST_NAME: &str = "crash::acknowledged_records_survive_sigkill";
const CHILD_DIR_ENV: &str = "EVENTLOG_CRASH_CHILD_DIR";
const CHILD_SEED_ENV: &str = "EVENTLOG_CRASH_CHILD_SEED";
const CHILD_CYCLE_ENV: &str = "EVENTLOG_CRASH_CHILD_CYCLE";
/// The signal number of SIGKILL on Linux.
const SIGKILL: i32 = 9;
/// How long the child appends if nobody kills it, so a failed parent never leaves it running.
const CHILD_LIFETIME_MAX: Duration = Duration::from_secs(60);
/// How long the parent waits for the child's first line before giving up (a hang guard, not
/// a timing assertion).
const CHILD_LINE_WAIT_MAX: Duration = Duration::from_secs(120);

/// What the child printed about one acknowledged record.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Ack {
    stream: String,
    version: u64,
    tag: String,
    payload_len: usize,
}

#[test]
fn acknowledged_records_survive_sigkill() {
    if let Ok(dir) = std::env::var(CHILD_DIR_ENV) {
        let seed = std::env::var(CHILD_SEED_ENV).unwrap().parse().unwrap();
        let cycle = std::env::var(CHILD_CYCLE_ENV).unwrap().parse().unwrap();
        run_child(Path::new(&dir), seed, cycle);
        return;
    }

    let cycles: u32 =
        std::env::var("EVENTLOG_CRASH_CYCLES").map_or(5, |text| text.parse().unwrap());
    let seed: u64 = std::env::var("EVENTLOG_CRASH_SEED").map_or_else(
        |_| {
            SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .unwrap()
                .as_nanos() as u64
        },
        |text| text.parse().unwrap(),
    );
    println!("crash test seed {seed} (replay with EVENTLOG_CRASH_SEED={seed}), {cycles} cycles");
    let mut random = Xorshift(seed);
    let dir = tempfile::tempdir().unwrap();
    let mut acked: BTreeMap<u64, Ack> = BTreeMap::new();
    let mut recovered = Head::GENESIS;

    for cycle in 0..cycles {
        let mut child = KillOnDrop(
            Command::new(std::env::current_exe().unwrap())
                .args(["--exact", TEST_NAME, "--nocapture", "--test-threads", "1"])
                .env(CHILD_DIR_ENV, dir.path())
                .env(CHILD_SEED_ENV, random.next().to_string())
                .env(CHILD_CYCLE_ENV, cycle.to_string())
                .stdout(Stdio::piped())
                .spawn()
                .unwrap(),
        );
        let stdout = child.0.stdout.take().unwrap();
        let (sender, lines) = mpsc::channel::<String>();
        let reader = std::thread::spawn(move || {
            let mut stdout = BufReader::new(stdout);
            loop {
                let mut line = String::new();
                match stdout.read_line(&mut line) {
                    // A line cut short by the kill was never a complete acknowledgement.
                    Ok(0) | Err(_) => return,
                    Ok(_) if !line.ends_with('\n') => return,
                    Ok(_) => {
                        if sender.send(line).is_err() {
                            return;
                        }
                    }
                }
            }
        });

        // A third of the kills land during `open` (recovery and index rebuild), a third soon
        // after it, a third after the first acknowledgement, so every run checks some records.
        let (trigger, delay_ms) = match cycle % 3 {
            0 => ("opening", random.between(0, 30)),
            1 => ("open ", random.between(50, 400)),
            _ => ("ack ", random.between(50, 400)),
        };
        let mut received = Vec::new();
        loop {
            let line = lines
                .recv_timeout(CHILD_LINE_WAIT_MAX)
                .unwrap_or_else(|error| {
                    panic!("child of cycle {cycle} printed no {trigger:?} line: {error}")
                });
            let found = line.starts_with(trigger);
            received.push(line);
            if found {
                break;
            }
        }
        let delay = Duration::from_millis(delay_ms);
        std::thread::sleep(delay);
        if let Some(status) = child.0.try_wait().unwrap() {
            panic!("cycle {cycle} (seed {seed}): the child exited by itself ({status}); its own checks failed");
        }
        child.0.kill().unwrap(); // SIGKILL on unix
        let status = reap_killed(&mut child.0).unwrap_or_else(|| {
            panic!("cycle {cycle} (seed {seed}): the child was not reaped after SIGKILL")
        });
        assert_eq!(
            status.signal(),
            Some(SIGKILL),
            "cycle {cycle} (seed {seed}): the child ended by {status}, not by the parent's SIGKILL"
        );
        reader.join().unwrap();
        received.extend(lines.try_iter());

        let mut new_acks = 0;
        for line in &received {
            let words: Vec<&str> = line.split_whitespace().collect();
            match words.as_slice() {
                ["open", head] => {
                    let head: Head = head.parse().unwrap();
                    assert_eq!(
                        head, recovered,
                        "cycle {cycle}: the child resumed from the recovered head"
                    );
                }
                ["ack", position, stream, version, tag, payload_len] => {
                    let ack = Ack {
                        stream: stream.to_string(),
                        version: version.parse().unwrap(),
                        tag: tag.to_string(),
                        payload_len: payload_len.parse().unwrap(),
                    };
                    let previous = acked.insert(position.parse().unwrap(), ack);
                    assert_eq!(
                        previous, None,
                        "cycle {cycle}: position {position} acknowledged twice"
                    );
                    new_acks += 1;
                }
                _ => {} // the test harness's own lines
            }
        }

        let log = EventLog::open(dir.path())
            .unwrap_or_else(|error| panic!("cycle {cycle}: reopen failed: {error}"));
        let report = log
            .verify(None, |_| {})
            .unwrap()
            .unwrap_or_else(|corruption| {
                panic!("cycle {cycle} (seed {seed}): verify failed: {corruption}")
            });
        let records = read_all(&log);
        assert_eq!(
            records.len() as u64,
            report.head.position,
            "gapless from 1 to the head"
        );
        let mut tags: HashMap<&str, u32> = HashMap::new();
        for (index, record) in records.iter().enumerate() {
            assert_eq!(record.position, index as u64 + 1);
            let text = std::str::from_utf8(&record.payload).unwrap();
            let (tag, _) = text.split_once(':').unwrap();
            *tags.entry(tag).or_default() += 1;
        }
        assert!(
            tags.values().all(|&count| count == 1),
            "cycle {cycle}: a record was appended twice"
        );
        for (&position, ack) in &acked {
            let Some(record) = records.get(position as usize - 1) else {
                panic!(
                    "cycle {cycle} (seed {seed}): acknowledged position {position} lost; head {}",
                    log.head()
                );
            };
            assert_eq!(
                (&record.stream, record.version, record.payload.len()),
                (&ack.stream, ack.version, ack.payload_len),
                "cycle {cycle}: position {position}"
            );
            assert!(record
                .payload
                .starts_with(format!("{}:", ack.tag).as_bytes()));
        }
        recovered = log.head();
        let opened = received.iter().any(|line| line.starts_with("open "));
        println!(
            "cycle {cycle}: killed after {delay:?}{}, {new_acks} new acknowledged records, recovered head {}",
            if opened { "" } else { " during open" },
            recovered.position
        );
    }
    println!(
        "{} acknowledged records survived {cycles} kills",
        acked.len()
    );
}

/// Kills the child if the parent panics, so a failed run leaves nothing behind.
struct KillOnDrop(Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = reap_killed(&mut self.0);
    }
}

/// How long a SIGKILLed child may take to be reaped.
const KILL_REAP_WAIT: Duration = Duration::from_secs(10);

/// Waits (bounded) for a killed child: its status, or `None` when it is still there.
fn reap_killed(child: &mut Child) -> Option<std::process::ExitStatus> {
    testkit::reap_within(child, KILL_REAP_WAIT).ok().flatten()
}

/// The child: appends batches and reports each acknowledged record until it is killed.
fn run_child(dir: &Path, seed: u64, cycle: u64) {
    let mut stdout = std::io::stdout().lock();
    // The harness has printed "test <name> ... " without a newline; start a fresh line.
    writeln!(stdout, "\nopening").unwrap();
    stdout.flush().unwrap();
    let log = EventLog::open(dir).unwrap();
    writeln!(stdout, "open {}", log.head()).unwrap();
    stdout.flush().unwrap();
    let mut random = Xorshift(seed);
    let started = Instant::now();
    let mut command = 0u64;
    let mut acknowledged_keys: Vec<String> = Vec::new();
    while started.elapsed() < CHILD_LIFETIME_MAX {
        let mut batch = log.batch();
        let mut lines = String::new();
        let mut keys = Vec::new();
        for _ in 0..random.between(1, 20) {
            // Now and then retry an acknowledged command: it must not append again.
            if !acknowledged_keys.is_empty() && random.between(0, 9) == 0 {
                let key = &acknowledged_keys[random.next() as usize % acknowledged_keys.len()];
                let retried = batch
                    .add_command(Some(key.as_bytes()), &[], &[], |_| Vec::new())
                    .unwrap();
                assert!(matches!(retried, Err(AddRejected::AlreadyRecorded { .. })));
                continue;
            }
            let key = format!("c{cycle}-{command}");
            command += 1;
            let payloads: Vec<(String, Vec<u8>)> = (0..random.between(1, 3))
                .map(|index| {
                    let stream = format!("s{}", random.between(0, 40));
                    let mut payload = format!("{key}/{index}:").into_bytes();
                    payload.resize(payload.len() + random.between(0, 200) as usize, b'x');
                    (stream, payload)
                })
                .collect();
            let records: Vec<NewRecord<'_>> = payloads
                .iter()
                .map(|(stream, payload)| NewRecord { stream, payload })
                .collect();
            let appended = batch
                .add_command(Some(key.as_bytes()), &[], &records, |_| {
                    key.as_bytes().to_vec()
                })
                .unwrap()
                .unwrap();
            for (index, (appended, (_, payload))) in appended.iter().zip(&payloads).enumerate() {
                lines.push_str(&format!(
                    "ack {} {} {} {key}/{index} {}\n",
                    appended.position,
                    appended.stream,
                    appended.version,
                    payload.len()
                ));
            }
            keys.push(key);
        }
        log.commit(batch).unwrap();
        // Now and then persist the indexes, so kills also land while a run is written.
        if random.between(0, 29) == 0 {
            log.persist_indexes().unwrap();
        }
        // Printed only now: each line is a promise that the record is durable.
        stdout.write_all(lines.as_bytes()).unwrap();
        stdout.flush().unwrap();
        acknowledged_keys.extend(keys);
    }
}
