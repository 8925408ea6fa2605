//! What Linux's /proc says about a process: CPU time (user + system) and memory (VmRSS,
//! VmHWM), and finding a process by its command line.

use std::fs;
use std::path::Path;
use std::time::Duration;

/// Clock ticks per second of `utime`/`stime` in /proc/<pid>/stat. `USER_HZ` is 100 on every
/// Linux architecture Parlor runs on; reading `sysconf(_SC_CLK_TCK)` would need `unsafe`.
pub const CLOCK_TICKS_PER_SECOND: u64 = 100;

/// CPU time a process has used so far (user + system, its own threads, not its children).
pub fn cpu_time(pid: u32) -> Option<Duration> {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name (field 2) is in parentheses and may hold spaces: split after the last ')'.
    let after_name = &stat[stat.rfind(')')? + 1..];
    let fields: Vec<&str> = after_name.split_whitespace().collect();
    // After the name: field 3 (state) is index 0, so utime (14) is 11 and stime (15) is 12.
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    let ticks = utime + stime;
    Some(Duration::from_millis(ticks * 1000 / CLOCK_TICKS_PER_SECOND))
}

/// The sum of [`cpu_time`] over several processes (those that vanished count as zero).
pub fn cpu_time_of(pids: &[u32]) -> Duration {
    pids.iter().filter_map(|&pid| cpu_time(pid)).sum()
}

/// Memory figures of a process, in bytes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Memory {
    /// Resident set size now (VmRSS).
    pub rss_bytes: u64,
    /// Peak resident set size (VmHWM).
    pub peak_bytes: u64,
    /// Of VmRSS, anonymous memory (RssAnon): the heap, what the process itself holds.
    pub anonymous_bytes: u64,
    /// Of VmRSS, pages of files mapped into it (RssFile): tantivy's and sled's mapped files,
    /// which the kernel may drop and read again.
    pub file_bytes: u64,
}

/// VmRSS and VmHWM from /proc/<pid>/status.
pub fn memory(pid: u32) -> Option<Memory> {
    let status = fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let field = |name: &str| -> Option<u64> {
        let line = status.lines().find(|line| line.starts_with(name))?;
        let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
        Some(kib * 1024)
    };
    Some(Memory {
        rss_bytes: field("VmRSS:")?,
        peak_bytes: field("VmHWM:")?,
        anonymous_bytes: field("RssAnon:").unwrap_or(0),
        file_bytes: field("RssFile:").unwrap_or(0),
    })
}

/// The processes whose command line contains every one of `needles` as whole arguments.
pub fn find_by_arguments(needles: &[&str]) -> Vec<u32> {
    let Ok(entries) = fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .filter_map(|entry| entry.ok())
        .filter_map(|entry| entry.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| {
            let Ok(cmdline) = fs::read(format!("/proc/{pid}/cmdline")) else {
                return false;
            };
            let arguments: Vec<String> = cmdline
                .split(|&byte| byte == 0)
                .map(|argument| String::from_utf8_lossy(argument).into_owned())
                .collect();
            needles.iter().all(|needle| {
                arguments.iter().any(|argument| {
                    argument == needle
                        || Path::new(argument).file_name().and_then(|n| n.to_str()) == Some(needle)
                })
            })
        })
        .collect()
}

/// The processes whose command name (/proc/<pid>/comm) is exactly `name`.
pub fn find_by_name(name: &str) -> Vec<u32> {
    let Ok(entries) = fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .filter_map(|entry| entry.ok())
        .filter_map(|entry| entry.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| {
            fs::read_to_string(format!("/proc/{pid}/comm")).is_ok_and(|comm| comm.trim() == name)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_its_own_process() {
        let pid = std::process::id();
        // Burn a little CPU so the figure is likely non-zero; only check it parses.
        let mut x = 0u64;
        for i in 0..1_000_000u64 {
            x = x.wrapping_mul(31).wrapping_add(i);
        }
        assert!(x != 1);
        assert!(cpu_time(pid).is_some());
        let memory = memory(pid).expect("status readable");
        assert!(memory.rss_bytes > 0 && memory.peak_bytes >= memory.rss_bytes / 2);
        assert!(find_by_name("definitely-not-a-process-name").is_empty());
    }
}
