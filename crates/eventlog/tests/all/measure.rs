//! Disk bytes per event and append throughput (ignored; run with `--ignored --nocapture`).
//! Informational only: nothing here asserts a speed.

use std::path::Path;
use std::time::Instant;

use eventlog::NewRecord;

use crate::common::open;

fn disk_bytes(dir: &Path) -> (u64, u64) {
    use std::os::unix::fs::MetadataExt;
    let mut apparent = 0;
    let mut allocated = 0;
    for entry in std::fs::read_dir(dir).unwrap() {
        let entry = entry.unwrap();
        let metadata = entry.metadata().unwrap();
        if metadata.is_dir() {
            let (a, b) = disk_bytes(&entry.path());
            apparent += a;
            allocated += b;
        } else {
            apparent += metadata.len();
            allocated += metadata.blocks() * 512;
        }
    }
    (apparent, allocated)
}

#[test]
#[ignore = "measurement; run explicitly"]
fn disk_bytes_per_event_and_append_throughput() {
    let payload = vec![b'p'; 200];
    for (events, commands_per_batch) in [(100_000u64, 1000u64), (100_000, 100), (2_000, 1)] {
        let dir = tempfile::tempdir().unwrap();
        let log = open(dir.path());
        let started = Instant::now();
        let mut written = 0u64;
        while written < events {
            let mut batch = log.batch();
            for _ in 0..commands_per_batch.min(events - written) {
                // A realistic command: a 16-byte command id, one event, a small reply.
                let key = written.to_be_bytes().repeat(2);
                let stream = format!("room-{}", written % 1000);
                let record = [NewRecord {
                    stream: &stream,
                    payload: &payload,
                }];
                batch
                    .add_command(Some(&key), &[], &record, |appended| {
                        format!("ok {}", appended[0].position).into_bytes()
                    })
                    .unwrap()
                    .unwrap();
                written += 1;
            }
            log.commit(batch).unwrap();
        }
        let elapsed = started.elapsed();
        let sled_size = log.size_on_disk().unwrap();
        drop(log);
        let (apparent, allocated) = disk_bytes(dir.path());
        println!(
            "{events} events of 200 B, {commands_per_batch} commands/batch: {:.0} events/s, \
             {:.0} B/event apparent, {:.0} B/event allocated (sled reports {sled_size} B)",
            events as f64 / elapsed.as_secs_f64(),
            apparent as f64 / events as f64,
            allocated as f64 / events as f64,
        );
    }
}
