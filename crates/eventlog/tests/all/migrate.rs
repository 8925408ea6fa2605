//! Format 1 → format 2: a format-1 directory is refused by `open` and migrated in place by
//! `EventLog::migrate`, keeping the original until the copy verifies to the same head.

use std::path::{Path, PathBuf};

use eventlog::{EventLog, Head, LogError, Migration};

use crate::common::read_all;

/// The head of `tests/fixtures/format1`, written by the format-1 code (see its README).
const FIXTURE_HEAD: &str = "168:8aa45a343e4fbade4fc76c517917d274ff3a76999902b093d819c2d33796fa5f";

/// Copies the format-1 fixture to `<parent>/log` and returns that path.
fn format1_copy(parent: &Path) -> PathBuf {
    let fixture = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/format1");
    let log_dir = parent.join("log");
    std::fs::create_dir_all(&log_dir).unwrap();
    for name in ["db", "conf"] {
        std::fs::copy(fixture.join(name), log_dir.join(name)).unwrap();
    }
    log_dir
}

/// Idempotency key → reply pairs.
type Replies = Vec<(Vec<u8>, Vec<u8>)>;

/// Every record and reply of the fixture, read from the format-1 files with sled directly by
/// the documented format-1 layout (`r` ‖ position → record, `k` ‖ key → 1 ‖ reply).
fn format1_contents(dir: &Path) -> (Vec<Vec<u8>>, Replies) {
    let db = sled::open(dir).unwrap();
    let tree = db.open_tree("eventlog").unwrap();
    let records = tree
        .scan_prefix(b"r")
        .map(|entry| entry.unwrap().1.to_vec())
        .collect();
    let replies = tree
        .scan_prefix(b"k")
        .map(|entry| {
            let (key, value) = entry.unwrap();
            assert_eq!(value[0], 1);
            (key[1..].to_vec(), value[1..].to_vec())
        })
        .collect();
    (records, replies)
}

#[test]
fn a_format1_directory_is_refused_with_a_pointer_to_parlor_migrate() {
    let parent = tempfile::tempdir().unwrap();
    let log_dir = format1_copy(parent.path());
    match EventLog::open(&log_dir) {
        Err(error @ LogError::NeedsMigration { .. }) => {
            assert!(error.to_string().contains("parlor migrate"), "{error}");
        }
        other => panic!("expected NeedsMigration, got {other:?}"),
    }
    // Refusing changed nothing: the files still hold format 1.
    let (records, replies) = format1_contents(&log_dir);
    assert_eq!((records.len(), replies.len()), (168, 120));
}

#[test]
fn migration_keeps_every_record_reply_and_the_head() {
    let parent = tempfile::tempdir().unwrap();
    let log_dir = format1_copy(parent.path());
    let (old_records, old_replies) = format1_contents(&log_dir);
    let expected: Head = FIXTURE_HEAD.parse().unwrap();

    let mut progress = Vec::new();
    let outcome = EventLog::migrate(&log_dir, |done, total| progress.push((done, total))).unwrap();
    let original = parent.path().join("log.format1");
    assert_eq!(
        outcome,
        Migration::Migrated {
            head: expected,
            records: 168,
            replies: 120,
            original: original.clone(),
        }
    );
    assert_eq!(progress.last(), Some(&(168, 168)));
    // The original is kept, untouched.
    assert_eq!(
        format1_contents(&original),
        (old_records.clone(), old_replies.clone())
    );

    let log = EventLog::open(&log_dir).unwrap();
    assert_eq!(log.head(), expected);
    assert_eq!(
        log.verify(Some(expected), |_| {}).unwrap().unwrap().head,
        expected
    );
    let mut migrated = Vec::new();
    loop {
        let page = log
            .read_raw_from(migrated.len() as u64 + 1, usize::MAX, usize::MAX)
            .unwrap();
        if page.is_empty() {
            break;
        }
        migrated.extend(page);
    }
    assert_eq!(migrated, old_records, "every record's stored bytes");
    for (key, reply) in &old_replies {
        assert_eq!(
            log.reply_for(key).unwrap().as_ref(),
            Some(reply),
            "R-M7 resend"
        );
    }
    // Stream versions carry over: room-0's records are counted from its records.
    let records = read_all(&log);
    let room0 = records
        .iter()
        .filter(|record| record.stream == "room-0")
        .count() as u64;
    assert_eq!(log.stream_version("room-0").unwrap(), room0);
    drop(log);

    // Migrating again is a no-op.
    assert_eq!(
        EventLog::migrate(&log_dir, |_, _| {}).unwrap(),
        Migration::AlreadyCurrent { head: expected }
    );
}

#[test]
fn a_migration_stopped_between_its_renames_is_refused_by_open_and_finished_by_migrate() {
    let parent = tempfile::tempdir().unwrap();
    let log_dir = format1_copy(parent.path());
    EventLog::migrate(&log_dir, |_, _| {}).unwrap();
    // Put the directories back as a crash between the two renames leaves them.
    let copy = parent.path().join("log.format2-migrating");
    std::fs::rename(&log_dir, &copy).unwrap();
    assert!(matches!(
        EventLog::open(&log_dir),
        Err(LogError::NeedsMigration { .. })
    ));
    assert!(!log_dir.exists(), "open must not create an empty log there");

    let outcome = EventLog::migrate(&log_dir, |_, _| {}).unwrap();
    assert!(matches!(outcome, Migration::Migrated { records: 168, .. }));
    assert_eq!(
        EventLog::open(&log_dir).unwrap().head(),
        FIXTURE_HEAD.parse().unwrap()
    );
}

#[test]
fn a_stale_copy_from_a_crash_before_the_renames_is_thrown_away() {
    let parent = tempfile::tempdir().unwrap();
    let log_dir = format1_copy(parent.path());
    let copy = parent.path().join("log.format2-migrating");
    std::fs::create_dir_all(&copy).unwrap();
    std::fs::write(copy.join("db"), b"half written").unwrap();
    EventLog::migrate(&log_dir, |_, _| {}).unwrap();
    assert!(!copy.exists());
    assert_eq!(
        EventLog::open(&log_dir).unwrap().head(),
        FIXTURE_HEAD.parse().unwrap()
    );
}
