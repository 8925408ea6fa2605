//! Raw export and import reproduce the head hash.

use eventlog::limits::BATCH_COMMANDS_MAX;
use eventlog::{EventLog, LogError};

use crate::common::{add, export_all, open, read_all, Xorshift};

fn build(log: &EventLog, records: usize) {
    let mut random = Xorshift(99);
    let mut written = 0;
    while written < records {
        let mut batch = log.batch();
        for _ in 0..500.min(records - written) {
            let stream = format!("room-{}", random.between(0, 30));
            let payload = vec![random.next() as u8; random.between(0, 300) as usize];
            add(&mut batch, None, &[], &[(&stream, &payload)]).unwrap();
            written += 1;
        }
        log.commit(batch).unwrap();
    }
}

#[test]
fn export_then_import_into_an_empty_log_reproduces_the_head_hash() {
    let source_dir = tempfile::tempdir().unwrap();
    let source = open(source_dir.path());
    // More than one import chunk, so chunking cannot change the outcome.
    let count = BATCH_COMMANDS_MAX + 1500;
    build(&source, count);
    let exported = export_all(&source);
    assert_eq!(exported.len(), count);
    assert_eq!(source.raw_record(77).unwrap().as_ref(), Some(&exported[76]));

    let target_dir = tempfile::tempdir().unwrap();
    let target = open(target_dir.path());
    let head = target.import_raw(exported.clone()).unwrap();
    assert_eq!(head, source.head());
    assert_eq!(target.head(), source.head());
    assert_eq!(export_all(&target), exported, "identical stored bytes");
    drop(target);

    let target = open(target_dir.path());
    assert_eq!(target.head(), source.head());
    assert_eq!(read_all(&target), read_all(&source));
    let report = target.verify(Some(source.head()), |_| {}).unwrap().unwrap();
    assert_eq!(report.events, count as u64);
    for stream in ["room-0", "room-17", "room-30"] {
        assert_eq!(
            target.stream_version(stream).unwrap(),
            source.stream_version(stream).unwrap()
        );
        assert_eq!(
            target.read_stream(stream, 2, 50).unwrap(),
            source.read_stream(stream, 2, 50).unwrap()
        );
    }
    // The imported log takes appends like any other.
    let mut batch = target.batch();
    let appended = add(&mut batch, None, &[], &[("room-0", b"after import")]).unwrap();
    assert_eq!(appended[0].position, count as u64 + 1);
    assert_eq!(
        appended[0].version,
        source.stream_version("room-0").unwrap() + 1
    );
    target.commit(batch).unwrap();
}

#[test]
fn import_refuses_records_that_do_not_chain_onto_the_head() {
    let source_dir = tempfile::tempdir().unwrap();
    let source = open(source_dir.path());
    build(&source, 100);
    let exported = export_all(&source);

    // A changed byte in record 60: the first 59 are imported, then the import stops there.
    let mut damaged = exported.clone();
    damaged[59][20] ^= 1;
    let target_dir = tempfile::tempdir().unwrap();
    let target = open(target_dir.path());
    assert!(matches!(
        target.import_raw(damaged),
        Err(LogError::InvalidImport { position: 60, .. })
    ));
    assert_eq!(target.head().position, 59);
    // It resumes from where it stopped.
    assert_eq!(
        target.import_raw(exported[59..].to_vec()).unwrap(),
        source.head()
    );

    // Skipping a record, reordering, or importing onto another history all fail to chain.
    for records in [
        vec![exported[0].clone(), exported[2].clone()],
        vec![exported[1].clone(), exported[0].clone()],
    ] {
        let dir = tempfile::tempdir().unwrap();
        let log = open(dir.path());
        assert!(matches!(
            log.import_raw(records),
            Err(LogError::InvalidImport { .. })
        ));
        assert!(log.head().position <= 1);
    }
    let dir = tempfile::tempdir().unwrap();
    let log = open(dir.path());
    crate::common::commit_one(&log, None, &[("other", b"history")]);
    assert!(matches!(
        log.import_raw(exported[1..].to_vec()),
        Err(LogError::InvalidImport { position: 2, .. })
    ));
    assert!(matches!(
        log.import_raw([vec![1, 2, 3]]),
        Err(LogError::InvalidImport { position: 2, .. })
    ));
}
