//! Continued batches: a batch decided while the one before it is not committed yet sees that
//! batch's versions and keys, commits only right after it, and never after a failed one.

use eventlog::{AddRejected, Appended, ExpectedVersion, FaultPlan, LogError};

use crate::common::{add, commit_one, open, read_all};

fn positions_and_versions(appended: &[Appended]) -> Vec<(u64, u64)> {
    appended.iter().map(|a| (a.position, a.version)).collect()
}

#[test]
fn a_continuation_sees_the_previous_batchs_versions_and_keys_and_commits_after_it() {
    let dir = tempfile::tempdir().unwrap();
    let log = open(dir.path());
    commit_one(&log, Some(b"old"), &[("room", b"zero")]);

    let mut first = log.batch();
    add(
        &mut first,
        Some(b"a"),
        &[],
        &[("room", b"one"), ("new", b"one")],
    )
    .unwrap();
    let mut second = first.continuation();
    assert_eq!(second.base(), first.tip());

    // Versions count the previous batch's records; positions follow its tip.
    let appended = add(
        &mut second,
        Some(b"b"),
        &[
            ("room", ExpectedVersion::Exactly(2)),
            ("new", ExpectedVersion::Exactly(1)),
        ],
        &[("room", b"two"), ("new", b"two"), ("other", b"one")],
    )
    .unwrap();
    assert_eq!(positions_and_versions(&appended), [(4, 3), (5, 2), (6, 1)]);
    // A stale expectation against the previous batch's streams is a conflict.
    assert!(matches!(
        add(
            &mut second,
            None,
            &[("new", ExpectedVersion::NoStream)],
            &[("new", b"x")]
        ),
        Err(AddRejected::VersionConflict { actual: 2, .. })
    ));
    // A key pending in the previous batch is already recorded, with that batch's reply, both
    // for the writer's lookup before deciding and for `add_command`.
    assert_eq!(
        second.committed_reply_for(b"a").unwrap(),
        Some(b"a 2 3".to_vec())
    );
    assert_eq!(
        add(&mut second, Some(b"a"), &[], &[("room", b"again")]),
        Err(AddRejected::AlreadyRecorded {
            reply: b"a 2 3".to_vec()
        })
    );
    // Committed keys are still found, and an unused one is unused.
    assert_eq!(
        second.committed_reply_for(b"old").unwrap(),
        Some(b"old 1".to_vec())
    );
    assert_eq!(second.committed_reply_for(b"unused").unwrap(), None);

    // The previous batch takes no more commands once continued.
    assert!(matches!(
        first.add_command(Some(b"late"), &[], &[], |_| Vec::new()),
        Err(LogError::InvalidArgument(_))
    ));

    let tip = second.tip();
    log.commit(first).unwrap();
    // Adding after the previous batch's commit still works, against the same view.
    add(&mut second, Some(b"c"), &[], &[("room", b"three")]).unwrap();
    assert_eq!(
        second.committed_reply_for(b"a").unwrap(),
        Some(b"a 2 3".to_vec())
    );
    assert_eq!(second.tip().position, tip.position + 1);
    let committed = log.commit(second).unwrap();
    assert_eq!(committed.head.position, 7);
    assert_eq!(log.stream_version("room").unwrap(), 4);
    assert_eq!(log.reply_for(b"b").unwrap(), Some(b"b 4 5 6".to_vec()));
    assert!(log.verify(None, |_| {}).unwrap().is_ok());
    drop(log);

    let log = open(dir.path());
    let payloads: Vec<Vec<u8>> = read_all(&log).into_iter().map(|r| r.payload).collect();
    assert_eq!(
        payloads,
        [
            &b"zero"[..],
            b"one",
            b"one",
            b"two",
            b"two",
            b"one",
            b"three"
        ]
    );
}

#[test]
fn a_continuation_of_a_failed_commit_fails_without_writing() {
    for plan in [
        FaultPlan::FailBeforeWrite,
        FaultPlan::FailFlush,
        FaultPlan::FailAfterFlush,
    ] {
        let dir = tempfile::tempdir().unwrap();
        let log = open(dir.path());
        commit_one(&log, Some(b"old"), &[("room", b"zero")]);
        let head = log.head();

        let mut first = log.batch();
        add(&mut first, Some(b"a"), &[], &[("room", b"one")]).unwrap();
        let mut second = first.continuation();
        add(&mut second, Some(b"b"), &[], &[("room", b"two")]).unwrap();

        log.inject_fault(plan).unwrap();
        assert!(
            matches!(log.commit(first), Err(LogError::Io(_))),
            "{plan:?}"
        );
        let refused = log.commit(second).unwrap_err();
        match plan {
            // The log is usable again, but the continuation was decided against a batch it
            // does not hold.
            FaultPlan::FailBeforeWrite | FaultPlan::FailFlush => {
                assert!(matches!(refused, LogError::StaleBatch { .. }), "{plan:?}");
            }
            // The log refuses every write until reopened.
            _ => assert!(matches!(refused, LogError::Poisoned), "{plan:?}: {refused}"),
        }
        assert_eq!(log.head(), head, "{plan:?}");
        assert_eq!(log.reply_for(b"b").unwrap(), None);
        drop(log);

        let log = open(dir.path());
        // Only the first batch can be there, and only when its flush had happened.
        let expected = if plan == FaultPlan::FailAfterFlush {
            2
        } else {
            1
        };
        assert_eq!(log.head().position, expected, "{plan:?}");
        assert_eq!(log.reply_for(b"b").unwrap(), None, "{plan:?}");
        assert!(log.verify(None, |_| {}).unwrap().is_ok());
    }
}

#[test]
fn a_continuation_of_an_empty_batch_is_a_batch_at_the_same_place() {
    let dir = tempfile::tempdir().unwrap();
    let log = open(dir.path());
    let mut first = log.batch();
    add(&mut first, Some(b"a"), &[], &[("room", b"one")]).unwrap();
    let mut empty = first.continuation();
    // The empty continuation is continued in turn (the writer does this when a batch decides
    // nothing to write): the third batch still sits right after the first.
    let mut third = empty.continuation();
    assert_eq!(third.base(), first.tip());
    assert_eq!(
        third.committed_reply_for(b"a").unwrap(),
        Some(b"a 1".to_vec())
    );
    add(&mut third, Some(b"c"), &[], &[("room", b"two")]).unwrap();
    log.commit(first).unwrap();
    assert_eq!(log.commit(empty).unwrap().commands, 0);
    log.commit(third).unwrap();
    assert_eq!(log.head().position, 2);
    assert_eq!(log.stream_version("room").unwrap(), 2);
}

#[test]
fn a_continuation_two_batches_ahead_is_stale_until_the_first_is_committed() {
    let dir = tempfile::tempdir().unwrap();
    let log = open(dir.path());
    let mut first = log.batch();
    add(&mut first, None, &[], &[("room", b"one")]).unwrap();
    let mut second = first.continuation();
    add(&mut second, None, &[], &[("room", b"two")]).unwrap();
    let mut third = second.continuation();
    // The first batch is not committed: the third cannot know its records are settled.
    assert!(matches!(
        third.committed_reply_for(b"x"),
        Err(LogError::StaleBatch { .. })
    ));
    log.commit(first).unwrap();
    add(&mut third, None, &[], &[("room", b"three")]).unwrap();
    log.commit(second).unwrap();
    log.commit(third).unwrap();
    assert_eq!(log.head().position, 3);
    assert_eq!(log.stream_version("room").unwrap(), 3);
}

#[test]
fn a_continuation_committed_before_its_previous_batch_is_stale() {
    let dir = tempfile::tempdir().unwrap();
    let log = open(dir.path());
    let mut first = log.batch();
    add(&mut first, Some(b"a"), &[], &[("room", b"one")]).unwrap();
    let mut second = first.continuation();
    add(&mut second, Some(b"b"), &[], &[("room", b"two")]).unwrap();
    assert!(matches!(
        log.commit(second),
        Err(LogError::StaleBatch { .. })
    ));
    assert_eq!(log.head().position, 0);
    log.commit(first).unwrap();
    assert_eq!(log.head().position, 1);
    assert_eq!(log.reply_for(b"b").unwrap(), None);
}
