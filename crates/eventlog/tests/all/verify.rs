//! `verify` (and `open`, which rebuilds the indexes) against changed, missing, reordered and
//! truncated records.

use std::path::Path;

use eventlog::{Corruption, EventLog, Head, LogError};

use crate::common::{commit_one, open, tamper};

/// Builds a closed log of 50 records over 5 streams and returns the heads after each record.
fn build(dir: &Path) -> Vec<Head> {
    let log = open(dir);
    let mut heads = vec![Head::GENESIS];
    for index in 0..50u32 {
        let stream = format!("s{}", index % 5);
        commit_one(
            &log,
            None,
            &[(&stream, format!("payload {index}").as_bytes())],
        );
        heads.push(log.head());
    }
    heads
}

/// What `audit verify` concludes: `open` rebuilds the indexes from every record's shape, so
/// damage it meets is a verification failure at that position too.
fn verdict(dir: &Path, anchor: Option<Head>) -> Result<u64, Corruption> {
    let log = match EventLog::open(dir) {
        Ok(log) => log,
        Err(LogError::Corrupt { position, reason }) => return Err(Corruption { position, reason }),
        Err(error) => panic!("open failed: {error}"),
    };
    log.verify(anchor, |_| {})
        .unwrap()
        .map(|report| report.events)
}

fn first_bad(dir: &Path, anchor: Option<Head>) -> u64 {
    match verdict(dir, anchor) {
        Ok(events) => panic!("verify passed over {events} events"),
        Err(corruption) => corruption.position,
    }
}

#[test]
fn an_intact_log_verifies_and_reports_progress() {
    let dir = tempfile::tempdir().unwrap();
    let heads = build(dir.path());
    let log = open(dir.path());
    let mut progress = Vec::new();
    let report = log
        .verify(None, |position| progress.push(position))
        .unwrap()
        .unwrap();
    assert_eq!(progress, (1..=50).collect::<Vec<_>>());
    assert_eq!(
        (report.events, report.head, report.streams),
        (50, heads[50], 5)
    );
    assert!(log.verify(Some(heads[50]), |_| {}).unwrap().is_ok());
    assert!(log.verify(Some(heads[17]), |_| {}).unwrap().is_ok());
    assert!(log.verify(Some(Head::GENESIS), |_| {}).unwrap().is_ok());
    // The anchor survives the operator's copy-paste: it is parsed from `position:hash` text.
    let anchor: Head = heads[30].to_string().parse().unwrap();
    assert!(log.verify(Some(anchor), |_| {}).unwrap().is_ok());
    // An anchor whose hash differs: history up to it was rewritten.
    let forged = Head {
        position: 30,
        hash: heads[29].hash,
    };
    assert_eq!(
        log.verify(Some(forged), |_| {})
            .unwrap()
            .unwrap_err()
            .position,
        30
    );
}

#[test]
fn a_changed_byte_is_caught_at_its_position() {
    let dir = tempfile::tempdir().unwrap();
    build(dir.path());
    tamper(dir.path(), |records| {
        let bytes = records.get_mut(&20).unwrap();
        let last_payload_byte = bytes.len() - 33;
        bytes[last_payload_byte] ^= 1;
    });
    assert_eq!(first_bad(dir.path(), None), 20);
    // Reads that cover it fail too, with the same position; reads before it still work.
    let log = open(dir.path());
    assert!(matches!(
        log.read_from(15, 100, usize::MAX),
        Err(LogError::Corrupt { position: 20, .. })
    ));
    assert!(matches!(
        log.read_stream("s4", 1, 100),
        Err(LogError::Corrupt { position: 20, .. })
    ));
    assert_eq!(log.read_from(1, 19, usize::MAX).unwrap().len(), 19);
}

#[test]
fn a_changed_hash_is_caught_at_its_position() {
    let dir = tempfile::tempdir().unwrap();
    build(dir.path());
    tamper(dir.path(), |records| {
        let bytes = records.get_mut(&33).unwrap();
        let last = bytes.len() - 1;
        bytes[last] ^= 0x80;
    });
    assert_eq!(first_bad(dir.path(), None), 33);
}

#[test]
fn a_deleted_record_is_caught_at_its_position() {
    let dir = tempfile::tempdir().unwrap();
    build(dir.path());
    tamper(dir.path(), |records| {
        records.remove(&20);
    });
    assert_eq!(first_bad(dir.path(), None), 20);
    // The indexes cannot be rebuilt over a gap: the log refuses to open rather than serve it.
    assert!(matches!(
        EventLog::open(dir.path()),
        Err(LogError::Corrupt { position: 20, .. })
    ));
}

#[test]
fn swapped_records_are_caught_at_the_first_of_them() {
    let dir = tempfile::tempdir().unwrap();
    build(dir.path());
    tamper(dir.path(), |records| {
        let twenty = records.remove(&20).unwrap();
        let twenty_one = records.remove(&21).unwrap();
        records.insert(20, twenty_one);
        records.insert(21, twenty);
    });
    assert_eq!(first_bad(dir.path(), None), 20);
}

#[test]
fn a_truncated_tail_is_caught_only_with_an_anchor() {
    let dir = tempfile::tempdir().unwrap();
    let heads = build(dir.path());
    // Cut the last ten records and make meta agree, as a careful attacker (or a restore from
    // an old backup) would: the remaining chain is valid on its own.
    eventlog::tamper::truncate_tail(dir.path(), 40).unwrap();
    assert_eq!(verdict(dir.path(), None), Ok(40));
    assert_eq!(verdict(dir.path(), Some(heads[35])), Ok(40));
    assert_eq!(first_bad(dir.path(), Some(heads[50])), 41);
}

#[test]
fn a_truncated_tail_without_a_matching_meta_head_fails_at_open() {
    let dir = tempfile::tempdir().unwrap();
    build(dir.path());
    tamper(dir.path(), |records| {
        records.retain(|&position, _| position < 46);
    });
    assert!(matches!(
        EventLog::open(dir.path()),
        Err(LogError::Corrupt { position: 46, .. })
    ));
}

#[test]
fn a_changed_last_record_or_meta_head_fails_at_open() {
    let dir = tempfile::tempdir().unwrap();
    let heads = build(dir.path());
    eventlog::tamper::set_meta_head(
        dir.path(),
        Head {
            position: 50,
            hash: heads[49].hash,
        },
    )
    .unwrap();
    assert!(matches!(
        EventLog::open(dir.path()),
        Err(LogError::Corrupt { position: 50, .. })
    ));

    let dir = tempfile::tempdir().unwrap();
    build(dir.path());
    tamper(dir.path(), |records| {
        records.get_mut(&50).unwrap()[0] = 9; // unknown format version
    });
    assert!(matches!(
        EventLog::open(dir.path()),
        Err(LogError::Corrupt { position: 50, .. })
    ));
}

#[test]
fn a_record_stored_past_the_head_is_caught() {
    let dir = tempfile::tempdir().unwrap();
    build(dir.path());
    // A copy of record 50 stored as 51: the chunk says position 51, the record says 50.
    tamper(dir.path(), |records| {
        let last = records[&50].clone();
        records.insert(51, last);
    });
    assert_eq!(first_bad(dir.path(), None), 51);
}

#[test]
fn a_chunk_cut_inside_a_record_is_caught_at_that_record() {
    let dir = tempfile::tempdir().unwrap();
    build(dir.path());
    // Every commit of `build` wrote one chunk of one record; chunk 30 loses its last byte.
    let log = open(dir.path());
    let record = log.raw_record(30).unwrap().unwrap();
    drop(log);
    let mut value = vec![eventlog::keys::LOG_FORMAT_VERSION];
    value.extend_from_slice(&(record.len() as u32).to_be_bytes());
    value.extend_from_slice(&record[..record.len() - 1]);
    eventlog::tamper::put_raw_chunk(dir.path(), 30, value).unwrap();
    assert_eq!(first_bad(dir.path(), None), 30);
}

#[test]
fn reads_after_tampering_never_panic() {
    let dir = tempfile::tempdir().unwrap();
    build(dir.path());
    // Shortened records: open finds them (it decodes every record to rebuild the indexes).
    tamper(dir.path(), |records| {
        for (position, length) in [(10u64, 0usize), (11, 3), (12, 54), (13, 60)] {
            let bytes = records.get_mut(&position).unwrap();
            bytes.truncate(length);
        }
    });
    assert!(matches!(
        EventLog::open(dir.path()),
        Err(LogError::Corrupt { position: 10, .. })
    ));
    assert_eq!(first_bad(dir.path(), None), 10);

    // Changed bytes that keep every record's shape: open succeeds and reads name them.
    let dir = tempfile::tempdir().unwrap();
    build(dir.path());
    tamper(dir.path(), |records| {
        for position in 10..=13u64 {
            let bytes = records.get_mut(&position).unwrap();
            let middle = bytes.len() / 2;
            bytes[middle] ^= 0x40;
        }
    });
    let log = open(dir.path());
    for from in 9..=13 {
        assert!(matches!(
            log.read_from(from, 100, usize::MAX),
            Err(LogError::Corrupt { .. })
        ));
    }
    assert!(matches!(
        log.read_from(1, 100, usize::MAX),
        Err(LogError::Corrupt { position: 10, .. })
    ));
    drop(log);
    assert_eq!(first_bad(dir.path(), None), 10);
}
