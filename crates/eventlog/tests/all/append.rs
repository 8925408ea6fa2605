//! Appending batches: positions, versions, expected-version checks, batch bounds.

use std::collections::HashMap;

use eventlog::limits::{BATCH_BYTES_MAX, BATCH_COMMANDS_MAX, RECORD_PAYLOAD_BYTES_MAX};
use eventlog::{AddRejected, EventLog, ExpectedVersion, Head, LogError, NewRecord};

use crate::common::{add, commit_one, open, read_all, recomputed_head, Xorshift};

#[test]
fn batches_across_many_streams_read_back_identically_after_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let log = open(dir.path());
    let mut random = Xorshift(7);
    let mut expected_versions: HashMap<String, u64> = HashMap::new();
    // (position, stream, version, payload) in append order.
    let mut written = Vec::new();
    for batch_number in 0..20 {
        let mut batch = log.batch();
        for command in 0..random.between(1, 40) {
            let records: Vec<(String, Vec<u8>)> = (0..random.between(0, 3))
                .map(|index| {
                    let stream = format!("stream-{}", random.between(0, 12));
                    let payload = format!("b{batch_number} c{command} r{index}").into_bytes();
                    (stream, payload)
                })
                .collect();
            let borrowed: Vec<(&str, &[u8])> = records
                .iter()
                .map(|(stream, payload)| (stream.as_str(), payload.as_slice()))
                .collect();
            let appended = add(&mut batch, None, &[], &borrowed).unwrap();
            assert_eq!(appended.len(), records.len());
            for (appended, (stream, payload)) in appended.iter().zip(&records) {
                let version = expected_versions.entry(stream.clone()).or_default();
                *version += 1;
                assert_eq!(
                    appended.position,
                    written.len() as u64 + 1,
                    "gapless from 1"
                );
                assert_eq!(&appended.stream, stream);
                assert_eq!(appended.version, *version, "per-stream versions from 1");
                written.push((appended.position, stream.clone(), *version, payload.clone()));
            }
        }
        let tip = batch.tip();
        let committed = log.commit(batch).unwrap();
        assert_eq!(committed.head, tip);
        assert_eq!(log.head(), tip);
    }
    let head_before = log.head();
    assert_eq!(head_before.position, written.len() as u64);
    drop(log);

    let log = open(dir.path());
    assert_eq!(log.head(), head_before);
    let records = read_all(&log);
    let read: Vec<_> = records
        .iter()
        .map(|record| {
            (
                record.position,
                record.stream.clone(),
                record.version,
                record.payload.clone(),
            )
        })
        .collect();
    assert_eq!(read, written);
    assert_eq!(recomputed_head(&records), head_before);
    for (stream, version) in &expected_versions {
        assert_eq!(log.stream_version(stream).unwrap(), *version);
        let stream_records = log.read_stream(stream, 1, usize::MAX).unwrap();
        let versions: Vec<u64> = stream_records.iter().map(|record| record.version).collect();
        assert_eq!(versions, (1..=*version).collect::<Vec<_>>());
    }
    assert_eq!(log.stream_version("never-written").unwrap(), 0);
    let report = log.verify(None, |_| {}).unwrap().unwrap();
    assert_eq!(report.head, head_before);
    assert_eq!(report.streams, expected_versions.len() as u64);
}

#[test]
fn expected_version_conflict_rejects_only_that_command() {
    let dir = tempfile::tempdir().unwrap();
    let log = open(dir.path());
    commit_one(&log, None, &[("b", b"b1"), ("b", b"b2")]);

    let mut batch = log.batch();
    let first = add(
        &mut batch,
        None,
        &[("a", ExpectedVersion::NoStream)],
        &[("a", b"a1")],
    );
    assert!(first.is_ok());
    let conflict = add(
        &mut batch,
        None,
        &[("b", ExpectedVersion::Exactly(5))],
        &[("b", b"lost")],
    );
    assert_eq!(
        conflict,
        Err(AddRejected::VersionConflict {
            stream: "b".to_owned(),
            expected: ExpectedVersion::Exactly(5),
            actual: 2,
        })
    );
    // The pending record of the first command counts: "a" is at version 1 inside the batch.
    let stale_no_stream = add(
        &mut batch,
        None,
        &[("a", ExpectedVersion::NoStream)],
        &[("a", b"lost")],
    );
    assert!(matches!(
        stale_no_stream,
        Err(AddRejected::VersionConflict { actual: 1, .. })
    ));
    let third = add(
        &mut batch,
        None,
        &[
            ("a", ExpectedVersion::Exactly(1)),
            ("b", ExpectedVersion::Exactly(2)),
        ],
        &[("a", b"a2"), ("b", b"b3")],
    )
    .unwrap();
    assert_eq!(
        third
            .iter()
            .map(|a| (a.position, a.version))
            .collect::<Vec<_>>(),
        [(4, 2), (5, 3)]
    );
    assert_eq!(batch.len(), 2);
    log.commit(batch).unwrap();

    let payloads: Vec<Vec<u8>> = read_all(&log)
        .into_iter()
        .map(|record| record.payload)
        .collect();
    assert_eq!(payloads, [&b"b1"[..], b"b2", b"a1", b"a2", b"b3"]);
    assert_eq!(log.stream_version("a").unwrap(), 2);
    assert_eq!(log.stream_version("b").unwrap(), 3);
}

#[test]
fn a_batch_begun_against_an_old_head_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let log = open(dir.path());
    let mut first = log.batch();
    let mut second = log.batch();
    add(&mut first, None, &[], &[("s", b"one")]).unwrap();
    add(&mut second, None, &[], &[("s", b"two")]).unwrap();
    log.commit(first).unwrap();
    let new_record = [NewRecord {
        stream: "s",
        payload: b"three",
    }];
    assert!(matches!(
        second.add_command(None, &[], &new_record, |_| Vec::new()),
        Err(LogError::StaleBatch { .. })
    ));
    assert!(matches!(
        log.commit(second),
        Err(LogError::StaleBatch { .. })
    ));

    // A batch of one log cannot be committed on another at the same head.
    let other_dir = tempfile::tempdir().unwrap();
    let other = EventLog::open(other_dir.path()).unwrap();
    let mut foreign = other.batch();
    add(&mut foreign, None, &[], &[("s", b"x")]).unwrap();
    let blank = tempfile::tempdir().unwrap();
    let blank = EventLog::open(blank.path()).unwrap();
    assert!(matches!(
        blank.commit(foreign),
        Err(LogError::StaleBatch { .. })
    ));

    assert_eq!(read_all(&log).len(), 1);
    assert_eq!(log.head().position, 1);

    // Batches that append nothing leave the head where it was, but they still write replies:
    // the second one must not overwrite the first one's reply for the same key.
    let mut first = log.batch();
    let mut second = log.batch();
    add(&mut first, Some(b"same-key"), &[], &[]).unwrap();
    add(&mut second, Some(b"same-key"), &[], &[]).unwrap();
    log.commit(first).unwrap();
    assert!(matches!(
        log.commit(second),
        Err(LogError::StaleBatch { .. })
    ));
}

#[test]
fn batch_bounds_are_outcomes_and_impossible_inputs_are_errors() {
    let dir = tempfile::tempdir().unwrap();
    let log = open(dir.path());

    let mut batch = log.batch();
    for _ in 0..BATCH_COMMANDS_MAX {
        add(&mut batch, None, &[], &[("s", b"x")]).unwrap();
    }
    assert_eq!(
        add(&mut batch, None, &[], &[("s", b"x")]),
        Err(AddRejected::BatchFull)
    );
    assert_eq!(batch.len(), BATCH_COMMANDS_MAX);
    log.commit(batch).unwrap();

    let big = vec![7u8; RECORD_PAYLOAD_BYTES_MAX];
    let mut batch = log.batch();
    let mut accepted = 0;
    while add(&mut batch, None, &[], &[("s", &big)]).is_ok() {
        accepted += 1;
    }
    assert_eq!(
        add(&mut batch, None, &[], &[("s", &big)]),
        Err(AddRejected::BatchFull)
    );
    assert_eq!(accepted, BATCH_BYTES_MAX / (RECORD_PAYLOAD_BYTES_MAX + 56));
    assert!(batch.byte_size() <= BATCH_BYTES_MAX);
    log.commit(batch).unwrap();
    assert_eq!(
        log.head().position,
        BATCH_COMMANDS_MAX as u64 + accepted as u64
    );

    let mut batch = log.batch();
    let too_big = vec![0u8; RECORD_PAYLOAD_BYTES_MAX + 1];
    let long_stream = "s".repeat(257);
    let long_key = vec![1u8; 129];
    let cases: [(Option<&[u8]>, NewRecord<'_>); 4] = [
        (
            None,
            NewRecord {
                stream: "s",
                payload: &too_big,
            },
        ),
        (
            None,
            NewRecord {
                stream: &long_stream,
                payload: b"",
            },
        ),
        (
            Some(&long_key),
            NewRecord {
                stream: "s",
                payload: b"",
            },
        ),
        (
            None,
            NewRecord {
                stream: "",
                payload: b"",
            },
        ),
    ];
    for (key, record) in cases {
        let result = batch.add_command(key, &[], &[record], |_| Vec::new());
        assert!(
            matches!(
                result,
                Err(LogError::LimitExceeded { .. } | LogError::InvalidArgument(_))
            ),
            "{result:?}"
        );
    }
    // Nine records of the largest payload can never fit in one batch: an error, not BatchFull.
    let nine = vec![
        NewRecord {
            stream: "s",
            payload: &big
        };
        9
    ];
    assert!(matches!(
        batch.add_command(None, &[], &nine, |_| Vec::new()),
        Err(LogError::LimitExceeded { .. })
    ));
    // An oversized reply is refused before anything is added.
    let result = batch.add_command(
        Some(b"key"),
        &[],
        &[NewRecord {
            stream: "s",
            payload: b"",
        }],
        |_| vec![0u8; 64 * 1024 + 1],
    );
    assert!(matches!(result, Err(LogError::LimitExceeded { .. })));
    assert!(batch.is_empty());
    assert_eq!(batch.record_count(), 0);
}

#[test]
fn empty_batches_and_reply_only_commands_keep_the_log_consistent() {
    let dir = tempfile::tempdir().unwrap();
    let log = open(dir.path());
    let committed = log.commit(log.batch()).unwrap();
    assert_eq!(
        (committed.head, committed.commands, committed.records),
        (Head::GENESIS, 0, 0)
    );

    // A command that appends nothing (say, a stored rejection) still stores its reply.
    let mut batch = log.batch();
    assert_eq!(add(&mut batch, Some(b"only-reply"), &[], &[]).unwrap(), []);
    log.commit(batch).unwrap();
    assert_eq!(log.head(), Head::GENESIS);
    drop(log);

    let log = open(dir.path());
    assert_eq!(log.head(), Head::GENESIS);
    assert_eq!(
        log.reply_for(b"only-reply").unwrap(),
        Some(b"only-reply".to_vec())
    );
    assert!(log.verify(None, |_| {}).unwrap().is_ok());
    assert_eq!(commit_one(&log, None, &[("s", b"first")])[0].position, 1);
}

#[test]
fn records_large_enough_for_sled_blob_files_round_trip() {
    let dir = tempfile::tempdir().unwrap();
    let log = open(dir.path());
    let payloads: Vec<Vec<u8>> = (0..6u8)
        .map(|index| vec![index; RECORD_PAYLOAD_BYTES_MAX - index as usize])
        .collect();
    for pair in payloads.chunks(2) {
        commit_one(&log, None, &[("big", &pair[0]), ("big", &pair[1])]);
    }
    // sled 0.34.7 stores items over a quarter segment as separate files, which the log must
    // fsync itself on commit; make sure this test exercised that path.
    assert!(std::fs::read_dir(dir.path().join("blobs")).unwrap().count() > 0);
    let head = log.head();
    drop(log);
    let log = open(dir.path());
    assert_eq!(log.head(), head);
    let read: Vec<Vec<u8>> = log
        .read_stream("big", 1, 100)
        .unwrap()
        .into_iter()
        .map(|r| r.payload)
        .collect();
    assert_eq!(
        read.len(),
        1,
        "one page holds one half-MiB record and stops before the next"
    );
    let mut all = Vec::new();
    for position in 1..=6 {
        all.push(
            log.read_from(position, 1, usize::MAX)
                .unwrap()
                .remove(0)
                .payload,
        );
    }
    assert_eq!(all, payloads);
    assert!(log.verify(None, |_| {}).unwrap().is_ok());
}
