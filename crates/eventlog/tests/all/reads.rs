//! Paging with `read_from` and `read_stream`, and reading while a writer commits.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use eventlog::limits::{READ_BYTES_MAX, READ_EVENTS_MAX};
use eventlog::{Record, RECORD_OVERHEAD_BYTES};

use crate::common::{add, commit_one, open, read_all};

fn stored_len(record: &Record) -> usize {
    RECORD_OVERHEAD_BYTES + record.stream.len() + record.payload.len()
}

#[test]
fn read_from_pages_by_events_and_by_bytes() {
    let dir = tempfile::tempdir().unwrap();
    let log = open(dir.path());
    let mut batch = log.batch();
    for index in 0..100u32 {
        let payload = vec![index as u8; 1000];
        add(&mut batch, None, &[], &[("s", &payload)]).unwrap();
    }
    log.commit(batch).unwrap();
    let one = RECORD_OVERHEAD_BYTES + 1 + 1000;

    let page = log.read_from(1, 10, usize::MAX).unwrap();
    assert_eq!(
        page.iter().map(|r| r.position).collect::<Vec<_>>(),
        (1..=10).collect::<Vec<_>>()
    );
    let page = log.read_from(11, 1000, 3 * one + 1).unwrap();
    assert_eq!(
        page.iter().map(|r| r.position).collect::<Vec<_>>(),
        [11, 12, 13]
    );
    // A byte budget below one record still returns one, so a reader always makes progress.
    assert_eq!(log.read_from(14, 1000, 1).unwrap().len(), 1);
    assert_eq!(log.read_from(0, 1, usize::MAX).unwrap()[0].position, 1);
    assert!(log.read_from(101, 10, usize::MAX).unwrap().is_empty());
    assert!(log.read_from(5, 0, usize::MAX).unwrap().is_empty());

    // Paging with a small budget visits every record once, in order.
    let mut next = 1;
    let mut pages = 0;
    loop {
        let page = log.read_from(next, 7, 5 * one).unwrap();
        if page.is_empty() {
            break;
        }
        assert!(page.len() <= 5);
        for record in &page {
            assert_eq!(record.position, next);
            assert_eq!(record.payload, vec![(next - 1) as u8; 1000]);
            next += 1;
        }
        pages += 1;
    }
    assert_eq!((next, pages), (101, 20));
    assert_eq!(log.raw_record(100).unwrap().unwrap().len(), one);
    assert_eq!(log.raw_record(101).unwrap(), None);
    assert_eq!(log.raw_record(0).unwrap(), None);
}

#[test]
fn read_pages_are_capped_at_the_named_limits() {
    let dir = tempfile::tempdir().unwrap();
    let log = open(dir.path());
    let mut written = 0;
    while written <= READ_EVENTS_MAX {
        let mut batch = log.batch();
        while written <= READ_EVENTS_MAX && add(&mut batch, None, &[], &[("small", b"x")]).is_ok() {
            written += 1;
        }
        log.commit(batch).unwrap();
    }
    assert_eq!(
        log.read_from(1, usize::MAX, usize::MAX).unwrap().len(),
        READ_EVENTS_MAX
    );

    let big = vec![1u8; 200 * 1024];
    let mut batch = log.batch();
    for _ in 0..8 {
        add(&mut batch, None, &[], &[("big", &big)]).unwrap();
    }
    log.commit(batch).unwrap();
    let first_big = READ_EVENTS_MAX as u64 + 2;
    let page = log.read_from(first_big, usize::MAX, usize::MAX).unwrap();
    let bytes: usize = page.iter().map(stored_len).sum();
    assert!(bytes <= READ_BYTES_MAX);
    assert!(
        bytes + stored_len(&page[0]) > READ_BYTES_MAX,
        "stopped only when the next would not fit"
    );
    assert!(page.len() < 8);

    let stream_page = log.read_stream("big", 1, usize::MAX).unwrap();
    assert_eq!(stream_page.len(), page.len());
    assert_eq!(
        log.read_stream("small", 1, usize::MAX).unwrap().len(),
        READ_EVENTS_MAX
    );
}

#[test]
fn read_stream_returns_one_streams_records_in_version_order() {
    let dir = tempfile::tempdir().unwrap();
    let log = open(dir.path());
    // "a" is a byte prefix of "ab": the index must keep them apart.
    for index in 0..10u8 {
        commit_one(
            &log,
            None,
            &[
                ("a", &[index]),
                ("ab", &[100 + index]),
                ("b", &[200 + index]),
            ],
        );
    }
    let a = log.read_stream("a", 1, usize::MAX).unwrap();
    assert_eq!(
        a.iter().map(|r| r.payload[0]).collect::<Vec<_>>(),
        (0..10).collect::<Vec<_>>()
    );
    assert_eq!(
        a.iter().map(|r| r.version).collect::<Vec<_>>(),
        (1..=10).collect::<Vec<_>>()
    );
    assert!(a.iter().all(|r| r.stream == "a"));
    assert_eq!(
        a.iter().map(|r| r.position).collect::<Vec<_>>(),
        (0..10).map(|i| 3 * i + 1).collect::<Vec<_>>()
    );

    let ab = log.read_stream("ab", 4, 3).unwrap();
    assert_eq!(
        ab.iter()
            .map(|r| (r.version, r.payload[0]))
            .collect::<Vec<_>>(),
        [(4, 103), (5, 104), (6, 105)]
    );
    assert_eq!(log.read_stream("b", 0, 1).unwrap()[0].version, 1);
    assert!(log.read_stream("b", 11, 10).unwrap().is_empty());
    assert!(log.read_stream("nothing", 1, 10).unwrap().is_empty());
    assert_eq!(log.stream_version("ab").unwrap(), 10);

    // The records are the same ones the global read returns.
    let all = read_all(&log);
    for record in log.read_stream("b", 1, 100).unwrap() {
        assert_eq!(all[record.position as usize - 1], record);
    }
}

#[test]
fn readers_share_the_log_while_the_writer_commits() {
    let dir = tempfile::tempdir().unwrap();
    let log = open(dir.path());
    let done = Arc::new(AtomicBool::new(false));
    let readers: Vec<_> = (0..3)
        .map(|_| {
            let log = log.clone();
            let done = Arc::clone(&done);
            std::thread::spawn(move || {
                let mut seen = 0u64;
                let mut last_head = 0;
                loop {
                    let finished = done.load(Ordering::Acquire);
                    let head = log.head();
                    assert!(head.position >= last_head, "the head never moves back");
                    last_head = head.position;
                    for record in log.read_from(seen + 1, 100, usize::MAX).unwrap() {
                        assert_eq!(record.position, seen + 1);
                        assert!(record.position <= log.head().position);
                        seen += 1;
                    }
                    if finished && seen == log.head().position {
                        return seen;
                    }
                }
            })
        })
        .collect();
    for round in 0..50u32 {
        let mut batch = log.batch();
        for command in 0..10u32 {
            let payload = format!("{round}/{command}");
            add(&mut batch, None, &[], &[("s", payload.as_bytes())]).unwrap();
        }
        log.commit(batch).unwrap();
    }
    done.store(true, Ordering::Release);
    for reader in readers {
        assert_eq!(reader.join().unwrap(), 500);
    }
}
