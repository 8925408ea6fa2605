//! The disk's fsync latency: a loop of 4 KiB `pwrite` + `fdatasync` on a file in the data
//! directory's filesystem, the cost every durable command pays at least once per batch.

use std::fs::File;
use std::io::Write;
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::time::{Duration, Instant};

use crate::stats::Latencies;

/// Bytes per write.
pub const WRITE_BYTES: usize = 4096;
/// The probe rewrites blocks within this many bytes of file (so it stays small).
const FILE_BYTES: u64 = 1024 * 1024;
/// At most this many iterations, whatever the duration.
const ITERATIONS_MAX: u64 = 1_000_000;

/// What the probe measured.
#[derive(Debug, Clone)]
pub struct FsyncReport {
    /// Latency of one write + fdatasync.
    pub latencies: Latencies,
    /// Wall time of the loop.
    pub elapsed: Duration,
}

impl FsyncReport {
    /// Writes + fdatasyncs per second.
    pub fn per_second(&self) -> f64 {
        self.latencies.count() as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }

    /// One line: rate, p50, p99, max.
    pub fn line(&self) -> String {
        format!(
            "disk fsync (4 KiB write + fdatasync): {:.0}/s, p50 {:.3} ms, p99 {:.3} ms, max {:.1} ms",
            self.per_second(),
            self.latencies.quantile_ms(0.5),
            self.latencies.quantile_ms(0.99),
            self.latencies.max_ms()
        )
    }
}

/// Runs the loop for `duration` in a temporary file under `dir`, then deletes the file.
pub fn measure(dir: &Path, duration: Duration) -> anyhow::Result<FsyncReport> {
    let mut file: File = tempfile::Builder::new()
        .prefix("parlor-bench-fsync-")
        .tempfile_in(dir)?
        .into_file();
    let block = [0x5Au8; WRITE_BYTES];
    // Allocate the blocks first so the loop measures overwrites, like a log's steady state.
    for _ in 0..FILE_BYTES / WRITE_BYTES as u64 {
        file.write_all(&block)?;
    }
    file.sync_all()?;
    let mut latencies = Latencies::new();
    let started = Instant::now();
    let mut offset = 0u64;
    for _ in 0..ITERATIONS_MAX {
        if started.elapsed() >= duration {
            break;
        }
        let t0 = Instant::now();
        file.write_all_at(&block, offset)?;
        file.sync_data()?;
        latencies.record(t0.elapsed());
        offset = (offset + WRITE_BYTES as u64) % FILE_BYTES;
    }
    Ok(FsyncReport {
        latencies,
        elapsed: started.elapsed(),
    })
}
