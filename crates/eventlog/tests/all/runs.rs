//! Persisted index runs: a reopen loads them and re-indexes only the records after the last
//! checkpoint; failures between the chunk write, the run write and the checkpoint flip lose no
//! index entry; runs that do not match the log are thrown away.

use std::path::Path;

use eventlog::{EventLog, FaultPlan, LogError, Record};

use crate::common::{add, open};

const STREAMS: u64 = 7;

/// Commits `commands` commands numbered from `first` (key `k<n>`, one record in stream
/// `s<n % STREAMS>`, every fifth with no record) in batches of 10.
fn commit_commands(log: &EventLog, first: u64, commands: u64) {
    let mut number = first;
    while number < first + commands {
        let mut batch = log.batch();
        for _ in 0..10.min(first + commands - number) {
            let key = format!("k{number}");
            let stream = format!("s{}", number % STREAMS);
            let payload = format!("payload {number}");
            let records: &[(&str, &[u8])] = if number.is_multiple_of(5) {
                &[]
            } else {
                &[(&stream, payload.as_bytes())]
            };
            add(&mut batch, Some(key.as_bytes()), &[], records).unwrap();
            number += 1;
        }
        log.commit(batch).unwrap();
    }
}

/// Everything the indexes answer for the first `commands` commands: each stream's version and
/// records, and each key's reply.
type Answers = (Vec<(u64, Vec<Record>)>, Vec<Option<Vec<u8>>>);

fn answers(log: &EventLog, commands: u64) -> Answers {
    let streams = (0..STREAMS)
        .map(|stream| {
            let name = format!("s{stream}");
            (
                log.stream_version(&name).unwrap(),
                log.read_stream(&name, 1, 10_000).unwrap(),
            )
        })
        .collect();
    let replies = (1..=commands + 5)
        .map(|number| log.reply_for(format!("k{number}").as_bytes()).unwrap())
        .collect();
    (streams, replies)
}

/// The answers of the log rebuilt from the chunks alone (the runs moved away, then back).
fn answers_without_runs(dir: &Path, commands: u64) -> Answers {
    let runs = dir.join("index-runs");
    let aside = dir.with_extension("runs-aside");
    let moved = runs.exists();
    if moved {
        std::fs::rename(&runs, &aside).unwrap();
    }
    let answers = answers(&open(dir), commands);
    if moved {
        std::fs::remove_dir_all(&runs).unwrap_or_default();
        std::fs::rename(&aside, &runs).unwrap();
    }
    answers
}

#[test]
fn a_reopen_loads_the_runs_and_reindexes_only_the_tail() {
    let dir = tempfile::tempdir().unwrap();
    let log_dir = dir.path().join("log");
    let log = open(&log_dir);
    commit_commands(&log, 1, 300);
    let checkpoint = log.persist_indexes().unwrap();
    assert_eq!(checkpoint, log.head());
    commit_commands(&log, 301, 120);
    let live = answers(&log, 420);
    let head = log.head();
    drop(log);

    let log = open(&log_dir);
    assert_eq!(log.head(), head);
    assert_eq!(
        answers(&log, 420),
        live,
        "runs + tail equal the live indexes"
    );
    assert!(log.verify(None, |_| {}).unwrap().is_ok());
    // A retried command is still refused after the reopen (R-M7).
    let mut batch = log.batch();
    assert!(add(&mut batch, Some(b"k17"), &[], &[("s3", b"again")]).is_err());
    drop(batch);
    drop(log);
    assert_eq!(
        answers_without_runs(&log_dir, 420),
        live,
        "equal to a full rebuild"
    );

    // Proof that the records before the checkpoint were not re-read: a record there whose
    // shape a full scan would refuse does not stop the open; `verify` still finds it.
    // The chunk holding record 5 is rewritten in place (chunk boundaries unchanged, so the
    // runs' checkpoint still ends a chunk), from the documented chunk layout.
    truncate_record_in_place(&log_dir, 5, 10);
    let log = open(&log_dir);
    assert_eq!(log.verify(None, |_| {}).unwrap().unwrap_err().position, 5);
}

#[test]
fn a_failed_run_loses_no_index_entry() {
    for reopen_right_after_failure in [false, true] {
        let dir = tempfile::tempdir().unwrap();
        let log_dir = dir.path().join("log");
        let mut log = open(&log_dir);
        commit_commands(&log, 1, 100);
        log.persist_indexes().unwrap();
        commit_commands(&log, 101, 100);
        // The run is written but the checkpoint does not flip.
        log.inject_fault(FaultPlan::FailIndexRun).unwrap();
        assert!(matches!(log.persist_indexes(), Err(LogError::Io(_))));
        commit_commands(&log, 201, 50);
        let live = answers(&log, 250);
        if reopen_right_after_failure {
            drop(log);
            log = open(&log_dir);
            assert_eq!(answers(&log, 250), live);
        }
        // The next run carries the failed run's entries too.
        log.persist_indexes().unwrap();
        commit_commands(&log, 251, 30);
        let live = answers(&log, 280);
        drop(log);
        let log = open(&log_dir);
        assert_eq!(
            answers(&log, 280),
            live,
            "reopen {reopen_right_after_failure}"
        );
        assert!(log.verify(None, |_| {}).unwrap().is_ok());
        drop(log);
        assert_eq!(answers_without_runs(&log_dir, 280), live);
        let leftovers: Vec<_> = std::fs::read_dir(log_dir.join("index-runs"))
            .unwrap()
            .map(|entry| entry.unwrap().file_name().into_string().unwrap())
            .filter(|name| name.ends_with(".tmp"))
            .collect();
        assert!(leftovers.is_empty(), "{leftovers:?}");
    }
}

#[test]
fn runs_of_another_log_are_thrown_away() {
    let dir = tempfile::tempdir().unwrap();
    let first = dir.path().join("first");
    let second = dir.path().join("second");
    let log = open(&first);
    commit_commands(&log, 1, 60);
    log.persist_indexes().unwrap();
    drop(log);
    let log = open(&second);
    commit_commands(&log, 1000, 80);
    let live = answers(&log, 1100);
    drop(log);
    // The second log gets the first's runs (a careless restore): they do not match its
    // records, so they are ignored, removed and the indexes rebuilt from the log.
    std::fs::create_dir_all(second.join("index-runs")).unwrap();
    for entry in std::fs::read_dir(first.join("index-runs")).unwrap() {
        let entry = entry.unwrap();
        std::fs::copy(
            entry.path(),
            second.join("index-runs").join(entry.file_name()),
        )
        .unwrap();
    }
    let log = open(&second);
    assert_eq!(answers(&log, 1100), live);
    assert!(log.verify(None, |_| {}).unwrap().is_ok());
}

/// Cuts the record at `position` to `length` bytes inside its chunk, keeping every chunk where
/// it is: chunk = format byte ‖ { length (u32 BE) ‖ record }*, keyed `c` ‖ first position.
fn truncate_record_in_place(dir: &Path, position: u64, length: usize) {
    let db = eventlog::tamper::open_db(dir).unwrap();
    let tree = db.open_tree(eventlog::keys::TREE).unwrap();
    let (key, value) = tree
        .range(..=eventlog::keys::chunk_key(position))
        .next_back()
        .unwrap()
        .unwrap();
    let start = eventlog::keys::parse_chunk_key(&key).unwrap();
    let mut rewritten = vec![value[0]];
    let mut rest = &value[1..];
    let mut at = start;
    while !rest.is_empty() {
        let size = u32::from_be_bytes(rest[..4].try_into().unwrap()) as usize;
        let mut record = rest[4..4 + size].to_vec();
        if at == position {
            record.truncate(length);
        }
        rewritten.extend_from_slice(&(record.len() as u32).to_be_bytes());
        rewritten.extend_from_slice(&record);
        rest = &rest[4 + size..];
        at += 1;
    }
    tree.insert(key, rewritten).unwrap();
    db.flush().unwrap();
}

/// The writer persists the indexes at every clean stop; a stop with nothing appended since the
/// last run must not leave an empty run file behind each time.
#[test]
fn a_run_with_nothing_new_writes_no_file() {
    let dir = tempfile::tempdir().unwrap();
    let log_dir = dir.path().join("log");
    let log = open(&log_dir);
    commit_commands(&log, 1, 40);
    log.persist_indexes().unwrap();
    let run_files = || {
        std::fs::read_dir(log_dir.join("index-runs"))
            .unwrap()
            .count()
    };
    let after_first = run_files();
    assert!(after_first > 0);
    for _ in 0..3 {
        assert_eq!(log.persist_indexes().unwrap(), log.head());
    }
    assert_eq!(run_files(), after_first);
    commit_commands(&log, 41, 10);
    log.persist_indexes().unwrap();
    assert!(run_files() > after_first);
}
