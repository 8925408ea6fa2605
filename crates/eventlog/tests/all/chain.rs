//! `ChainVerifier` over the stored bytes of a real log on disk, fed as a running system's
//! `log.read` would feed it: it agrees with `EventLog::verify` on an intact log and names the
//! first bad position for a flipped byte, a missing record, a reordered pair and a wrong anchor.

use std::path::Path;

use eventlog::{ChainVerifier, Corruption, Hash, Head, VerifyReport};

use crate::common::{commit_one, export_all, open};

/// A log of 40 records over 4 streams on disk; returns the stored bytes of every record (in
/// position order, read back from the reopened log) and the heads after each record.
fn stored_records(dir: &Path) -> (Vec<Vec<u8>>, Vec<Head>) {
    let mut heads = vec![Head::GENESIS];
    {
        let log = open(dir);
        for index in 0..40u32 {
            let stream = format!("s{}", index % 4);
            commit_one(
                &log,
                None,
                &[(&stream, format!("payload {index}").as_bytes())],
            );
            heads.push(log.head());
        }
    }
    let log = open(dir);
    (export_all(&log), heads)
}

/// Feeds `(position, bytes)` in the order given, then checks the end and the anchor.
fn feed<'a>(
    anchor: Option<Head>,
    end: u64,
    records: impl IntoIterator<Item = (u64, &'a [u8])>,
) -> Result<VerifyReport, Corruption> {
    let mut chain = ChainVerifier::new(anchor);
    for (position, bytes) in records {
        chain.push(position, bytes)?;
    }
    chain.expect_end(end)?;
    chain.check_anchor()?;
    Ok(chain.report())
}

/// The records as a running writer serves them: each with the position it is served at.
fn served(raws: &[Vec<u8>]) -> Vec<(u64, &[u8])> {
    (1u64..).zip(raws.iter().map(Vec::as_slice)).collect()
}

#[test]
fn an_intact_chain_matches_the_stopped_verify() {
    let dir = tempfile::tempdir().unwrap();
    let (raws, heads) = stored_records(dir.path());
    let report = feed(Some(heads[25]), 40, served(&raws)).unwrap();
    let stopped = open(dir.path()).verify(None, |_| {}).unwrap().unwrap();
    assert_eq!(report, stopped);
    assert_eq!(
        (report.events, report.head, report.streams),
        (40, heads[40], 4)
    );
    // An empty log verifies to the genesis head.
    assert_eq!(feed(None, 0, []).unwrap().head, Head::GENESIS);
}

#[test]
fn a_flipped_byte_is_caught_at_its_position() {
    let dir = tempfile::tempdir().unwrap();
    let (mut raws, _) = stored_records(dir.path());
    // Every byte of record 13 (format byte, position, stream, version, payload, hash).
    let original = raws[12].clone();
    for index in 0..original.len() {
        raws[12] = original.clone();
        raws[12][index] ^= 0x20;
        let error = feed(None, 40, served(&raws)).unwrap_err();
        assert_eq!(error.position, 13, "byte {index}: {error}");
    }
}

#[test]
fn a_missing_record_is_caught_at_its_position() {
    let dir = tempfile::tempdir().unwrap();
    let (raws, _) = stored_records(dir.path());
    let mut records = served(&raws);
    records.remove(19); // position 20
    let error = feed(None, 40, records).unwrap_err();
    assert_eq!(error.position, 20, "{error}");
    assert!(error.reason.contains("missing"), "{error}");

    // The same bytes served under consecutive positions (a writer hiding the gap) fail the
    // record's own position check.
    let mut renumbered = raws.clone();
    renumbered.remove(19);
    let error = feed(None, 39, served(&renumbered)).unwrap_err();
    assert_eq!(error.position, 20, "{error}");

    // A log served only up to 30 of its 40 records ends early.
    let error = feed(None, 40, served(&raws[..30])).unwrap_err();
    assert_eq!(error.position, 31, "{error}");
}

#[test]
fn a_reordered_pair_is_caught_at_the_first_of_them() {
    let dir = tempfile::tempdir().unwrap();
    let (raws, _) = stored_records(dir.path());
    let mut records = served(&raws);
    records.swap(7, 8); // positions 8 and 9
    let error = feed(None, 40, records).unwrap_err();
    assert_eq!(error.position, 8, "{error}");

    // Swapped bytes served under the expected positions: caught by the records' own checks.
    let mut swapped = raws.clone();
    swapped.swap(7, 8);
    let error = feed(None, 40, served(&swapped)).unwrap_err();
    assert_eq!(error.position, 8, "{error}");
}

#[test]
fn a_wrong_or_unreached_anchor_is_caught() {
    let dir = tempfile::tempdir().unwrap();
    let (raws, heads) = stored_records(dir.path());
    let wrong = Head {
        position: 17,
        hash: heads[16].hash,
    };
    let error = feed(Some(wrong), 40, served(&raws)).unwrap_err();
    assert_eq!(error.position, 17, "{error}");
    let zero = Head {
        position: 40,
        hash: Hash::ZERO,
    };
    assert_eq!(
        feed(Some(zero), 40, served(&raws)).unwrap_err().position,
        40
    );

    // A truncated tail is a valid chain, but it does not reach the anchor.
    let truncated = &raws[..35];
    assert_eq!(feed(None, 35, served(truncated)).unwrap().head, heads[35]);
    let error = feed(Some(heads[40]), 35, served(truncated)).unwrap_err();
    assert_eq!(error.position, 36, "{error}");
    assert!(error.reason.contains("records are missing"), "{error}");
}

#[test]
fn a_failed_push_leaves_the_verifier_where_it_was() {
    let dir = tempfile::tempdir().unwrap();
    let (raws, heads) = stored_records(dir.path());
    let mut chain = ChainVerifier::new(None);
    for (position, bytes) in served(&raws[..10]) {
        chain.push(position, bytes).unwrap();
    }
    let mut flipped = raws[10].clone();
    flipped[3] ^= 1;
    assert_eq!(chain.push(11, &flipped).unwrap_err().position, 11);
    assert_eq!(chain.head(), heads[10]);
    assert_eq!(chain.next_position(), 11);
    chain.push(11, &raws[10]).unwrap();
    assert_eq!(chain.head(), heads[11]);
}
