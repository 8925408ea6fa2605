//! A batch replicated as `ReplicatedBatch` and applied to another log gives that log the same
//! bytes, head and replies; what does not continue the head is refused and writes nothing.

use eventlog::{EventLog, ReplicatedBatch};

use crate::common::{add, export_all, open};

/// Commits a batch of two keyed commands on `leader` and returns it as replicated.
fn commit_replicated(leader: &EventLog, round: u32) -> ReplicatedBatch {
    let mut batch = leader.batch();
    let first = format!("a-{round}");
    let second = format!("b-{round}");
    add(
        &mut batch,
        Some(first.as_bytes()),
        &[],
        &[("room-1", b"hello"), ("user-1", b"x")],
    )
    .unwrap();
    add(
        &mut batch,
        Some(second.as_bytes()),
        &[],
        &[("room-1", b"again")],
    )
    .unwrap();
    let replicated = batch.replicated();
    leader.commit(batch).unwrap();
    ReplicatedBatch::decode(&replicated.encode()).unwrap()
}

#[test]
fn a_standby_applying_replicated_batches_has_the_leaders_bytes_head_and_replies() {
    let (leader_dir, standby_dir) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let leader = open(leader_dir.path());
    let standby = open(standby_dir.path());
    let mut entries = Vec::new();
    for round in 0..3 {
        entries.push(commit_replicated(&leader, round));
    }
    for entry in &entries {
        assert_eq!(
            standby.apply_replicated(entry).unwrap().position,
            entry.tip_position()
        );
    }
    // An epoch fence (no records) at the head changes nothing.
    let fence = ReplicatedBatch {
        base_position: standby.head().position,
        ..ReplicatedBatch::default()
    };
    assert_eq!(standby.apply_replicated(&fence).unwrap(), leader.head());
    assert_eq!(standby.head(), leader.head());
    assert_eq!(export_all(&standby), export_all(&leader));
    for round in 0..3 {
        let key = format!("b-{round}");
        assert_eq!(
            standby.reply_for(key.as_bytes()).unwrap(),
            leader.reply_for(key.as_bytes()).unwrap()
        );
        assert!(standby.reply_for(key.as_bytes()).unwrap().is_some());
    }
    // Applying an entry again (it no longer continues the head) is refused and writes nothing,
    // but the standby recognises it as held; an entry from the future is not held.
    let head = standby.head();
    assert!(standby.apply_replicated(&entries[2]).is_err());
    for entry in &entries {
        assert!(standby.holds_replicated(entry).unwrap());
    }
    // A gap: an entry that starts past the head is refused.
    let mut ahead = entries[2].clone();
    ahead.base_position = head.position + 1;
    assert!(standby.apply_replicated(&ahead).is_err());
    assert!(!standby.holds_replicated(&ahead).unwrap());
    // A fork: other bytes at a held position are an error, never "held".
    let mut forked = entries[1].clone();
    forked.records[0][20] ^= 1;
    assert!(standby.holds_replicated(&forked).is_err());
    // A record whose bytes were changed fails its chain check.
    let mut changed = commit_replicated(&leader, 9);
    let last = changed.records[0].len() - 1;
    changed.records[0][last] ^= 1;
    assert!(standby.apply_replicated(&changed).is_err());
    assert_eq!(standby.head(), head);
    drop(standby);
    assert_eq!(
        open(standby_dir.path()).head(),
        head,
        "nothing refused reached the disk"
    );
}
