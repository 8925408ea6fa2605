//! `verify` against changed, missing, reordered and truncated records.

use std::path::Path;

use eventlog::keys::{record_key, META_KEY};
use eventlog::{Corruption, EventLog, Head, LogError};

use crate::common::{commit_one, meta_value, open, stream_index_key, tamper};

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

fn verdict(dir: &Path, anchor: Option<Head>) -> Result<u64, Corruption> {
    let log = EventLog::open(dir).unwrap();
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
    tamper(dir.path(), |tree| {
        let mut bytes = tree.get(record_key(20)).unwrap().unwrap().to_vec();
        let last_payload_byte = bytes.len() - 33;
        bytes[last_payload_byte] ^= 1;
        tree.insert(record_key(20), bytes).unwrap();
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
    tamper(dir.path(), |tree| {
        let mut bytes = tree.get(record_key(33)).unwrap().unwrap().to_vec();
        let last = bytes.len() - 1;
        bytes[last] ^= 0x80;
        tree.insert(record_key(33), bytes).unwrap();
    });
    assert_eq!(first_bad(dir.path(), None), 33);
}

#[test]
fn a_deleted_record_is_caught_at_its_position() {
    let dir = tempfile::tempdir().unwrap();
    build(dir.path());
    tamper(dir.path(), |tree| {
        tree.remove(record_key(20)).unwrap();
    });
    assert_eq!(first_bad(dir.path(), None), 20);
    let log = open(dir.path());
    assert!(matches!(
        log.read_from(18, 100, usize::MAX),
        Err(LogError::Corrupt { position: 20, .. })
    ));
}

#[test]
fn swapped_records_are_caught_at_the_first_of_them() {
    let dir = tempfile::tempdir().unwrap();
    build(dir.path());
    tamper(dir.path(), |tree| {
        let twenty = tree.get(record_key(20)).unwrap().unwrap();
        let twenty_one = tree.get(record_key(21)).unwrap().unwrap();
        tree.insert(record_key(20), twenty_one).unwrap();
        tree.insert(record_key(21), twenty).unwrap();
    });
    assert_eq!(first_bad(dir.path(), None), 20);
}

#[test]
fn a_truncated_tail_is_caught_only_with_an_anchor() {
    let dir = tempfile::tempdir().unwrap();
    let heads = build(dir.path());
    // Cut the last ten records and make meta and index agree, as a careful attacker (or a
    // restore from an old backup) would: the remaining chain is valid on its own.
    tamper(dir.path(), |tree| {
        for position in 41..=50u64 {
            let stream = format!("s{}", (position - 1) % 5);
            let version = (position - 1) / 5 + 1;
            tree.remove(record_key(position)).unwrap();
            tree.remove(stream_index_key(&stream, version)).unwrap();
        }
        tree.insert(META_KEY, meta_value(&heads[40])).unwrap();
    });
    assert_eq!(verdict(dir.path(), None), Ok(40));
    assert_eq!(verdict(dir.path(), Some(heads[35])), Ok(40));
    assert_eq!(first_bad(dir.path(), Some(heads[50])), 41);
}

#[test]
fn a_truncated_tail_without_a_matching_meta_head_fails_at_open() {
    let dir = tempfile::tempdir().unwrap();
    build(dir.path());
    tamper(dir.path(), |tree| {
        for position in 46..=50u64 {
            tree.remove(record_key(position)).unwrap();
        }
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
    tamper(dir.path(), |tree| {
        tree.insert(
            META_KEY,
            meta_value(&Head {
                position: 50,
                hash: heads[49].hash,
            }),
        )
        .unwrap();
    });
    assert!(matches!(
        EventLog::open(dir.path()),
        Err(LogError::Corrupt { position: 50, .. })
    ));

    let dir = tempfile::tempdir().unwrap();
    build(dir.path());
    tamper(dir.path(), |tree| {
        let mut bytes = tree.get(record_key(50)).unwrap().unwrap().to_vec();
        bytes[0] = 9; // unknown format version
        tree.insert(record_key(50), bytes).unwrap();
    });
    assert!(matches!(
        EventLog::open(dir.path()),
        Err(LogError::Corrupt { position: 50, .. })
    ));
}

#[test]
fn a_damaged_stream_index_is_caught() {
    let dir = tempfile::tempdir().unwrap();
    build(dir.path());
    // Record 12 is s1 version 3.
    tamper(dir.path(), |tree| {
        tree.remove(stream_index_key("s1", 3)).unwrap();
    });
    assert_eq!(first_bad(dir.path(), None), 12);

    let dir = tempfile::tempdir().unwrap();
    build(dir.path());
    // An entry for a version that has no record, pointing at record 7.
    tamper(dir.path(), |tree| {
        tree.insert(stream_index_key("s3", 99), 7u64.to_be_bytes().to_vec())
            .unwrap();
    });
    assert_eq!(first_bad(dir.path(), None), 7);
}

#[test]
fn the_first_bad_position_is_named_whether_the_index_or_the_chain_breaks_first() {
    // Record 12 (s1 version 3) loses its index entry; record 30's bytes change.
    let damage = |tree: &sled::Tree, changed: u64, unindexed: (&str, u64)| {
        tree.remove(stream_index_key(unindexed.0, unindexed.1))
            .unwrap();
        let mut bytes = tree.get(record_key(changed)).unwrap().unwrap().to_vec();
        let last = bytes.len() - 1;
        bytes[last] ^= 0x01;
        tree.insert(record_key(changed), bytes).unwrap();
    };
    let dir = tempfile::tempdir().unwrap();
    build(dir.path());
    tamper(dir.path(), |tree| damage(tree, 30, ("s1", 3)));
    assert_eq!(first_bad(dir.path(), None), 12);

    // The other way round: the chain breaks at 10, before the unindexed record 12.
    let dir = tempfile::tempdir().unwrap();
    build(dir.path());
    tamper(dir.path(), |tree| damage(tree, 10, ("s1", 3)));
    assert_eq!(first_bad(dir.path(), None), 10);
}

#[test]
fn reads_after_tampering_never_panic() {
    let dir = tempfile::tempdir().unwrap();
    build(dir.path());
    tamper(dir.path(), |tree| {
        for (position, length) in [(10u64, 0usize), (11, 3), (12, 54), (13, 60)] {
            let bytes = tree.get(record_key(position)).unwrap().unwrap();
            tree.insert(
                record_key(position),
                bytes[..length.min(bytes.len())].to_vec(),
            )
            .unwrap();
        }
    });
    let log = open(dir.path());
    for from in 9..=14 {
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
