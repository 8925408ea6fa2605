//! Injected write and flush failures leave the log as it was.

use eventlog::{AddRejected, FaultPlan, LogError};

use crate::common::{add, commit_one, open, read_all};

#[test]
fn a_failed_commit_changes_nothing_and_the_next_commit_works() {
    for plan in [FaultPlan::FailBeforeWrite, FaultPlan::FailFlush] {
        for reopen_right_after_failure in [false, true] {
            let dir = tempfile::tempdir().unwrap();
            let mut log = open(dir.path());
            commit_one(&log, Some(b"first"), &[("room", b"one"), ("user", b"one")]);
            let head = log.head();

            log.inject_fault(plan).unwrap();
            let mut batch = log.batch();
            add(
                &mut batch,
                Some(b"failed"),
                &[],
                &[("room", b"lost"), ("new-stream", b"lost")],
            )
            .unwrap();
            let error = log.commit(batch).unwrap_err();
            assert!(matches!(error, LogError::Io(_)), "{plan:?}: {error}");

            assert_eq!(log.head(), head, "{plan:?}");
            assert_eq!(log.stream_version("room").unwrap(), 1);
            assert_eq!(log.stream_version("new-stream").unwrap(), 0);
            assert_eq!(log.reply_for(b"failed").unwrap(), None);
            assert!(log
                .read_from(head.position + 1, 10, usize::MAX)
                .unwrap()
                .is_empty());
            assert!(log.read_stream("new-stream", 1, 10).unwrap().is_empty());
            assert_eq!(log.raw_record(head.position + 1).unwrap(), None);
            assert!(log.verify(None, |_| {}).unwrap().is_ok());

            if reopen_right_after_failure {
                drop(log);
                log = open(dir.path());
                assert_eq!(log.head(), head);
            }
            // The retried command is not a duplicate: its key was never stored.
            let mut batch = log.batch();
            let appended = add(
                &mut batch,
                Some(b"failed"),
                &[],
                &[("room", b"two"), ("new-stream", b"two")],
            )
            .unwrap();
            assert_eq!(
                appended
                    .iter()
                    .map(|a| (a.position, a.version))
                    .collect::<Vec<_>>(),
                [(3, 2), (4, 1)]
            );
            log.commit(batch).unwrap();
            drop(log);

            let log = open(dir.path());
            let payloads: Vec<Vec<u8>> = read_all(&log)
                .into_iter()
                .map(|record| record.payload)
                .collect();
            assert_eq!(payloads, [&b"one"[..], b"one", b"two", b"two"], "{plan:?}");
            assert!(log.verify(None, |_| {}).unwrap().is_ok());
            let mut batch = log.batch();
            assert!(matches!(
                add(&mut batch, Some(b"failed"), &[], &[("room", b"again")]),
                Err(AddRejected::AlreadyRecorded { .. })
            ));
        }
    }
}

#[test]
fn a_failed_import_chunk_changes_nothing() {
    let source_dir = tempfile::tempdir().unwrap();
    let source = open(source_dir.path());
    for index in 0..10u8 {
        commit_one(&source, None, &[("s", &[index])]);
    }
    let exported = crate::common::export_all(&source);

    let dir = tempfile::tempdir().unwrap();
    let log = open(dir.path());
    log.inject_fault(FaultPlan::FailFlush).unwrap();
    assert!(matches!(
        log.import_raw(exported.clone()),
        Err(LogError::Io(_))
    ));
    assert_eq!(log.head().position, 0);
    assert_eq!(log.stream_version("s").unwrap(), 0);
    assert_eq!(log.import_raw(exported).unwrap(), source.head());
}

/// A crash right after a batch is durable but before the indexes and the head moved (the
/// fault `FailAfterFlush` stops exactly there): the log refuses writes, and a reopen rebuilds
/// every index entry of the batch from the chunks — nothing is lost because nothing derived
/// was ever needed on disk.
#[test]
fn a_failure_between_flush_and_indexing_loses_no_index_entry() {
    let dir = tempfile::tempdir().unwrap();
    let log = open(dir.path());
    commit_one(&log, Some(b"first"), &[("room", b"one")]);
    let head = log.head();

    log.inject_fault(FaultPlan::FailAfterFlush).unwrap();
    let mut batch = log.batch();
    add(
        &mut batch,
        Some(b"durable"),
        &[],
        &[("room", b"two"), ("new", b"one")],
    )
    .unwrap();
    add(&mut batch, Some(b"no-records"), &[], &[]).unwrap();
    let tip = batch.tip();
    assert!(matches!(log.commit(batch), Err(LogError::Io(_))));
    // Not acknowledged: readers still see the old head, and writes wait for a reopen.
    assert_eq!(log.head(), head);
    assert_eq!(log.reply_for(b"durable").unwrap(), None);
    assert!(matches!(
        log.inject_fault(FaultPlan::FailFlush),
        Err(LogError::Poisoned)
    ));
    drop(log);

    let log = open(dir.path());
    assert_eq!(log.head(), tip);
    assert_eq!(log.stream_version("room").unwrap(), 2);
    assert_eq!(log.stream_version("new").unwrap(), 1);
    assert_eq!(
        log.reply_for(b"durable").unwrap(),
        Some(b"durable 2 3".to_vec())
    );
    assert_eq!(
        log.reply_for(b"no-records").unwrap(),
        Some(b"no-records".to_vec())
    );
    assert_eq!(log.read_stream("room", 2, 10).unwrap()[0].payload, b"two");
    let mut batch = log.batch();
    assert!(matches!(
        add(&mut batch, Some(b"durable"), &[], &[("room", b"again")]),
        Err(AddRejected::AlreadyRecorded { .. })
    ));
    assert!(log.verify(None, |_| {}).unwrap().is_ok());
    assert_eq!(read_all(&log).len(), 3);
}
