//! Idempotency keys: stored replies, duplicates in a batch, after commit, after reopen.

use eventlog::{AddRejected, Appended, ExpectedVersion, NewRecord};

use crate::common::{add, open, read_all};

#[test]
fn a_key_returns_its_stored_reply_and_appends_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let log = open(dir.path());

    let mut batch = log.batch();
    let mut seen_by_reply: Vec<Appended> = Vec::new();
    let records = [
        NewRecord {
            stream: "room",
            payload: b"hello",
        },
        NewRecord {
            stream: "user",
            payload: b"sent",
        },
    ];
    let appended = batch
        .add_command(Some(b"cmd-1"), &[], &records, |appended| {
            seen_by_reply = appended.to_vec();
            b"reply to cmd-1".to_vec()
        })
        .unwrap()
        .unwrap();
    // make_reply sees where the records will land, so the writer can put that in the reply.
    assert_eq!(seen_by_reply, appended);
    assert_eq!(
        appended.iter().map(|a| a.position).collect::<Vec<_>>(),
        [1, 2]
    );

    // The same key again in the same batch: the pending reply, and nothing added, even though
    // its expectation would now conflict.
    let again = batch
        .add_command(
            Some(b"cmd-1"),
            &[("room", ExpectedVersion::NoStream)],
            &records,
            |_| panic!("make_reply must not run for a duplicate"),
        )
        .unwrap();
    assert_eq!(
        again,
        Err(AddRejected::AlreadyRecorded {
            reply: b"reply to cmd-1".to_vec()
        })
    );
    assert_eq!((batch.len(), batch.record_count()), (1, 2));
    // Commands without a key are never deduplicated, and make_reply does not run for them.
    add(&mut batch, None, &[], &[("room", b"no key")]).unwrap();
    log.commit(batch).unwrap();
    assert_eq!(
        log.reply_for(b"cmd-1").unwrap(),
        Some(b"reply to cmd-1".to_vec())
    );
    assert_eq!(log.reply_for(b"cmd-2").unwrap(), None);

    // After the commit.
    let mut batch = log.batch();
    assert_eq!(
        add(&mut batch, Some(b"cmd-1"), &[], &[("room", b"retry")]),
        Err(AddRejected::AlreadyRecorded {
            reply: b"reply to cmd-1".to_vec()
        })
    );
    add(&mut batch, Some(b"cmd-2"), &[], &[("room", b"second")]).unwrap();
    log.commit(batch).unwrap();
    drop(log);

    // After reopening.
    let log = open(dir.path());
    let mut batch = log.batch();
    assert_eq!(
        add(&mut batch, Some(b"cmd-1"), &[], &[("room", b"retry")]),
        Err(AddRejected::AlreadyRecorded {
            reply: b"reply to cmd-1".to_vec()
        })
    );
    assert_eq!(
        add(&mut batch, Some(b"cmd-2"), &[], &[("room", b"retry")]),
        Err(AddRejected::AlreadyRecorded {
            reply: b"cmd-2 4".to_vec()
        })
    );
    assert!(batch.is_empty());
    log.commit(batch).unwrap();
    let payloads: Vec<Vec<u8>> = read_all(&log)
        .into_iter()
        .map(|record| record.payload)
        .collect();
    assert_eq!(payloads, [&b"hello"[..], b"sent", b"no key", b"second"]);
}
