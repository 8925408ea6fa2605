//! How the log sits in sled. Chunks of up to 64 KiB fill leaves of about 1 MiB; at sled's
//! default segment size every consolidated leaf went to a blob file of its own, which each
//! commit then had to fdatasync with its directory. The log's segment size keeps them inline,
//! and a log created with another segment size still opens with its own.

use std::path::Path;

use crate::common::{add, open};

/// Commits `batches` batches of 40 commands with a 1 KiB record each (about 40 KiB per chunk,
/// as a busy writer's group commit makes), starting at command `first`.
fn commit_busy_batches(log: &eventlog::EventLog, first: u64, batches: u64) {
    let payload = vec![b'x'; 1024];
    for batch_number in 0..batches {
        let mut batch = log.batch();
        for command in 0..40 {
            let key = format!("k{}", first + batch_number * 40 + command);
            let stream = format!("room-{}", command % 7);
            add(
                &mut batch,
                Some(key.as_bytes()),
                &[],
                &[(&stream, &payload)],
            )
            .unwrap();
        }
        log.commit(batch).unwrap();
    }
}

fn blob_files(log_dir: &Path) -> usize {
    std::fs::read_dir(log_dir.join("blobs")).map_or(0, |entries| entries.count())
}

#[test]
fn chunks_never_become_blob_files() {
    let dir = tempfile::tempdir().unwrap();
    let log_dir = dir.path().join("log");
    let log = open(&log_dir);
    // 400 chunks of ~40 KiB: leaves of 16 chunks, each consolidated many times.
    commit_busy_batches(&log, 0, 400);
    assert_eq!(blob_files(&log_dir), 0, "sled wrote chunks to blob files");
    drop(log);
    let log = open(&log_dir);
    assert_eq!(log.head().position, 400 * 40);
}

#[test]
fn a_log_created_with_another_segment_size_opens_with_its_own() {
    let dir = tempfile::tempdir().unwrap();
    let log_dir = dir.path().join("log");
    // An empty sled database with sled's default segment (512 KiB), as logs were created
    // before the log chose its own.
    drop(sled::Config::new().path(&log_dir).open().unwrap());
    let log = open(&log_dir);
    commit_busy_batches(&log, 0, 20);
    let head = log.head();
    drop(log);
    assert_eq!(open(&log_dir).head(), head);
    let conf = std::fs::read(log_dir.join("conf")).unwrap();
    assert!(String::from_utf8_lossy(&conf).contains("segment_size: 524288"));
}
