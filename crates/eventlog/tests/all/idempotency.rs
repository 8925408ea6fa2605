//! Idempotency keys: stored replies, duplicates in a batch, after commit, after reopen.

use eventlog::{AddRejected, Appended, ExpectedVersion, LogError, NewRecord};

use crate::common::{add, commit_one, open, read_all};

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

#[test]
fn a_batch_remembers_keys_it_found_unused_and_still_refuses_used_ones() {
    let dir = tempfile::tempdir().unwrap();
    let log = open(dir.path());
    commit_one(&log, Some(b"used"), &[("room", b"first")]);
    let stored = log.reply_for(b"used").unwrap().unwrap();

    let mut batch = log.batch();
    // A committed key: its stored reply, through the batch as through the log.
    assert_eq!(
        batch.committed_reply_for(b"used").unwrap(),
        Some(stored.clone())
    );
    // An unused key: none; adding it then appends (the batch skips its second lookup).
    assert_eq!(batch.committed_reply_for(b"fresh").unwrap(), None);
    let appended = add(&mut batch, Some(b"fresh"), &[], &[("room", b"second")]).unwrap();
    assert_eq!(appended[0].position, 2);
    // The used key is still refused by add_command after the batch looked it up.
    let again = add(&mut batch, Some(b"used"), &[], &[("room", b"again")]);
    assert_eq!(again, Err(AddRejected::AlreadyRecorded { reply: stored }));
    // A key pending in this batch is not a committed one: the batch method looks at the log only.
    assert_eq!(batch.committed_reply_for(b"fresh").unwrap(), None);
    log.commit(batch).unwrap();

    assert!(log.reply_for(b"fresh").unwrap().is_some());
    assert_eq!(
        read_all(&log)
            .iter()
            .map(|record| record.payload.as_slice())
            .collect::<Vec<_>>(),
        [b"first".as_slice(), b"second"]
    );
}

#[test]
fn a_remembered_unused_key_does_not_outlive_its_batch() {
    let dir = tempfile::tempdir().unwrap();
    let log = open(dir.path());

    let mut stale = log.batch();
    assert_eq!(stale.committed_reply_for(b"key").unwrap(), None);
    // Another batch uses the key and commits first: the remembered answer is out of date, and the
    // stale batch can no longer look up or add anything.
    commit_one(&log, Some(b"key"), &[("room", b"winner")]);
    assert!(matches!(
        stale.committed_reply_for(b"key"),
        Err(LogError::StaleBatch { .. })
    ));
    assert!(matches!(
        stale.add_command(Some(b"key"), &[], &[], |_| b"loser".to_vec()),
        Err(LogError::StaleBatch { .. })
    ));
    assert!(matches!(
        log.commit(stale),
        Err(LogError::StaleBatch { .. })
    ));
    assert_eq!(read_all(&log).len(), 1);
}
