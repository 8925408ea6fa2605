//! Per-user limits at the gateway (security.md H-L2, H-L3): the command rate of user tokens, the
//! uploads a user runs at once, the bytes a user uploads per UTC day, and the free disk space
//! kept in reserve for the event log. Each check is a value the handlers turn into 429 or 507.
//!
//! Only `governor` (the command rate) and `fs4` (free space) are used here; the upload slots and
//! the daily quota are small maps whose size is bounded by what is in flight or used today.

use std::collections::HashMap;
use std::num::NonZeroU32;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use governor::clock::Clock as _;
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};

/// Commands per second a user token may send at the gateway (`--user-command-rate`).
pub const USER_COMMANDS_PER_SECOND_DEFAULT: u32 = 20;

/// Commands a user token may send in a burst above the rate (`--user-command-burst`).
pub const USER_COMMAND_BURST_DEFAULT: u32 = 100;

/// Uploads one user may run at once (H-L3).
pub const USER_UPLOADS_CONCURRENT_MAX_DEFAULT: usize = 4;

/// Bytes one user may upload per UTC day (`--upload-quota-bytes-per-day`, 10 GiB).
pub const UPLOAD_QUOTA_BYTES_PER_DAY_DEFAULT: u64 = 10 * 1024 * 1024 * 1024;

/// Free bytes kept on the disk of the event log (`--disk-reserve-bytes`, 1 GiB).
pub const DISK_RESERVE_BYTES_DEFAULT: u64 = 1024 * 1024 * 1024;

/// How often idle users' rate-limit state is dropped, so the key map holds only users active in
/// the last few seconds (a user's state is dropped once indistinguishable from a fresh one).
pub const RATE_LIMIT_SWEEP_INTERVAL: Duration = Duration::from_secs(10);

/// The milliseconds of a UTC day.
const DAY_MILLISECONDS: i64 = 24 * 60 * 60 * 1000;

/// How a user's command rate is limited: one command per `interval`, up to `burst` at once.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CommandRate {
    /// The time one command's allowance takes to come back (1 s / rate).
    pub interval: Duration,
    /// The most commands sent at once after a quiet spell.
    pub burst: u32,
}

impl CommandRate {
    /// `per_second` commands a second with bursts of `burst`; `None` when either is zero.
    pub fn per_second(per_second: u32, burst: u32) -> Option<CommandRate> {
        if per_second == 0 || burst == 0 {
            return None;
        }
        Some(CommandRate {
            interval: Duration::from_secs(1) / per_second,
            burst,
        })
    }
}

impl Default for CommandRate {
    fn default() -> CommandRate {
        CommandRate {
            interval: Duration::from_secs(1) / USER_COMMANDS_PER_SECOND_DEFAULT,
            burst: USER_COMMAND_BURST_DEFAULT,
        }
    }
}

/// Keyed GCRA (generic cell rate algorithm) limiter of commands per user id.
pub(crate) struct CommandRateLimiter {
    limiter: DefaultKeyedRateLimiter<String>,
}

impl std::fmt::Debug for CommandRateLimiter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CommandRateLimiter")
            .field("users", &self.limiter.len())
            .finish()
    }
}

impl CommandRateLimiter {
    /// A limiter of `rate`; `None` when the rate is unusable (a zero interval or burst).
    pub(crate) fn new(rate: CommandRate) -> Option<CommandRateLimiter> {
        let burst = NonZeroU32::new(rate.burst)?;
        let quota = Quota::with_period(rate.interval)?.allow_burst(burst);
        Some(CommandRateLimiter {
            limiter: RateLimiter::dashmap(quota),
        })
    }

    /// Takes one command of `user`'s allowance, or says how long until one is back.
    pub(crate) fn check(&self, user: &str) -> Result<(), Duration> {
        match self.limiter.check_key(&user.to_owned()) {
            Ok(()) => Ok(()),
            Err(not_until) => Err(not_until.wait_time_from(self.limiter.clock().now())),
        }
    }

    /// Drops the state of users whose allowance is full again (bounds the key map).
    pub(crate) fn sweep(&self) {
        self.limiter.retain_recent();
        self.limiter.shrink_to_fit();
    }

    /// Users with state now.
    #[cfg(test)]
    pub(crate) fn users(&self) -> usize {
        self.limiter.len()
    }
}

/// The uploads each user runs now, at most `per_user_max` each.
#[derive(Debug)]
pub(crate) struct UploadSlots {
    per_user_max: usize,
    running: Mutex<HashMap<String, usize>>,
}

/// One running upload; its slot is given back when dropped (whatever way the upload ends).
#[derive(Debug)]
pub(crate) struct UploadSlot {
    slots: Arc<UploadSlots>,
    user: String,
}

impl UploadSlots {
    /// Slots for `per_user_max` uploads per user at once.
    pub(crate) fn new(per_user_max: usize) -> Arc<UploadSlots> {
        Arc::new(UploadSlots {
            per_user_max,
            running: Mutex::new(HashMap::new()),
        })
    }

    fn running(&self) -> MutexGuard<'_, HashMap<String, usize>> {
        // A panic elsewhere while holding the lock leaves counts that are still usable.
        self.running
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// A slot for `user`, or `None` when they already run the most uploads allowed.
    pub(crate) fn try_acquire(slots: &Arc<UploadSlots>, user: &str) -> Option<UploadSlot> {
        let mut running = slots.running();
        let count = running.entry(user.to_owned()).or_insert(0);
        if *count >= slots.per_user_max {
            return None;
        }
        *count += 1;
        Some(UploadSlot {
            slots: Arc::clone(slots),
            user: user.to_owned(),
        })
    }
}

impl Drop for UploadSlot {
    fn drop(&mut self) {
        let mut running = self.slots.running();
        if let Some(count) = running.get_mut(&self.user) {
            *count = count.saturating_sub(1);
            if *count == 0 {
                // The map holds only users with uploads running: it never grows past them.
                running.remove(&self.user);
            }
        }
    }
}

/// Bytes uploaded per user in the current UTC day.
#[derive(Debug)]
pub(crate) struct UploadQuota {
    bytes_per_day: u64,
    used: Mutex<DayUsage>,
}

#[derive(Debug, Default)]
struct DayUsage {
    /// Days since the epoch (UTC) that `bytes` counts.
    day: i64,
    bytes: HashMap<String, u64>,
}

/// An upload would take its user past the daily quota.
#[derive(Debug, Clone, Copy, thiserror::Error)]
#[error("the daily upload quota of {bytes_per_day} bytes is used up")]
pub(crate) struct QuotaExceeded {
    /// The quota.
    pub(crate) bytes_per_day: u64,
}

impl UploadQuota {
    /// A quota of `bytes_per_day` per user.
    pub(crate) fn new(bytes_per_day: u64) -> Arc<UploadQuota> {
        Arc::new(UploadQuota {
            bytes_per_day,
            used: Mutex::new(DayUsage::default()),
        })
    }

    /// The counts, moved on to `day` if it is later than theirs.
    fn used(&self, day: i64) -> MutexGuard<'_, DayUsage> {
        let mut used = self
            .used
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if used.day < day {
            // A new day: yesterday's counts go, so the map holds only today's uploaders.
            used.day = day;
            used.bytes.clear();
        }
        used
    }

    /// Whether `user` may still upload `bytes` more today.
    pub(crate) fn check(&self, user: &str, day: i64, bytes: u64) -> Result<(), QuotaExceeded> {
        let used = self.used(day);
        if used.day != day {
            // A day already over: nothing counts against it any more.
            return Ok(());
        }
        let so_far = used.bytes.get(user).copied().unwrap_or(0);
        if so_far.saturating_add(bytes) > self.bytes_per_day {
            return Err(QuotaExceeded {
                bytes_per_day: self.bytes_per_day,
            });
        }
        Ok(())
    }

    /// Counts `bytes` more for `user` today, unless that passes the quota.
    fn charge(&self, user: &str, day: i64, bytes: u64) -> Result<(), QuotaExceeded> {
        let mut used = self.used(day);
        if used.day != day {
            // An upload begun before midnight: its day's counts are gone, and the new day's
            // are not its to eat into.
            return Ok(());
        }
        let so_far = used.bytes.entry(user.to_owned()).or_insert(0);
        let total = so_far.saturating_add(bytes);
        if total > self.bytes_per_day {
            return Err(QuotaExceeded {
                bytes_per_day: self.bytes_per_day,
            });
        }
        *so_far = total;
        Ok(())
    }

    /// Gives back `bytes` of `user` charged on `day` (an upload that failed keeps nothing).
    fn refund(&self, user: &str, day: i64, bytes: u64) {
        let mut used = self
            .used
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if used.day != day {
            return;
        }
        if let Some(so_far) = used.bytes.get_mut(user) {
            *so_far = so_far.saturating_sub(bytes);
            if *so_far == 0 {
                used.bytes.remove(user);
            }
        }
    }
}

/// The UTC day of a moment in milliseconds since the epoch.
pub(crate) fn utc_day(milliseconds: i64) -> i64 {
    milliseconds.div_euclid(DAY_MILLISECONDS)
}

/// What one upload has counted against its user's quota. Bytes are counted as they arrive, so
/// the quota holds for bodies without `Content-Length` too; if the upload does not complete,
/// dropping the charge gives them back.
#[derive(Debug)]
pub(crate) struct QuotaCharge {
    quota: Arc<UploadQuota>,
    user: String,
    day: i64,
    charged: AtomicU64,
    kept: AtomicBool,
}

impl QuotaCharge {
    /// A charge of `user`'s upload starting on `day`.
    pub(crate) fn new(quota: &Arc<UploadQuota>, user: &str, day: i64) -> Arc<QuotaCharge> {
        Arc::new(QuotaCharge {
            quota: Arc::clone(quota),
            user: user.to_owned(),
            day,
            charged: AtomicU64::new(0),
            kept: AtomicBool::new(false),
        })
    }

    /// Counts `bytes` more of this upload.
    pub(crate) fn add(&self, bytes: u64) -> Result<(), QuotaExceeded> {
        self.quota.charge(&self.user, self.day, bytes)?;
        self.charged.fetch_add(bytes, Ordering::Relaxed);
        Ok(())
    }

    /// The upload was stored: its bytes stay counted.
    pub(crate) fn keep(&self) {
        self.kept.store(true, Ordering::Relaxed);
    }
}

impl Drop for QuotaCharge {
    fn drop(&mut self) {
        if !self.kept.load(Ordering::Relaxed) {
            self.quota
                .refund(&self.user, self.day, self.charged.load(Ordering::Relaxed));
        }
    }
}

/// The free space kept on the disks that hold the event log and the file bytes.
#[derive(Debug, Clone)]
pub(crate) struct DiskReserve {
    /// Directories whose file systems are checked (the log's, the blobs').
    pub(crate) paths: Vec<PathBuf>,
    /// Bytes that must stay free on each.
    pub(crate) reserve_bytes: u64,
}

/// Storing more would take a disk under its reserve.
#[derive(Debug, Clone, thiserror::Error)]
#[error(
    "the server keeps {reserve_bytes} bytes free for its event log and has no room for this file"
)]
pub(crate) struct InsufficientStorage {
    /// The reserve.
    pub(crate) reserve_bytes: u64,
}

impl DiskReserve {
    /// Whether `bytes` more can be written and leave the reserve free on every disk. A disk whose
    /// free space cannot be read counts as full: refusing an upload loses nothing.
    pub(crate) fn check(&self, bytes: u64) -> Result<(), InsufficientStorage> {
        let needed = self.reserve_bytes.saturating_add(bytes);
        for path in &self.paths {
            let available = match fs4::available_space(path) {
                Ok(available) => available,
                Err(error) => {
                    tracing::warn!(path = %path.display(), %error, "cannot read the free space");
                    0
                }
            };
            if available < needed {
                return Err(InsufficientStorage {
                    reserve_bytes: self.reserve_bytes,
                });
            }
        }
        Ok(())
    }

    /// [`DiskReserve::check`] on a blocking thread (statvfs may block on a network file system).
    pub(crate) async fn check_async(&self, bytes: u64) -> Result<(), InsufficientStorage> {
        let reserve = self.clone();
        let reserve_bytes = self.reserve_bytes;
        tokio::task::spawn_blocking(move || reserve.check(bytes))
            .await
            .unwrap_or(Err(InsufficientStorage { reserve_bytes }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_user_gets_the_burst_then_waits_and_others_are_not_slowed() {
        let rate = CommandRate {
            interval: Duration::from_secs(3600),
            burst: 3,
        };
        let limiter = CommandRateLimiter::new(rate).expect("a usable rate");
        for _ in 0..3 {
            assert!(limiter.check("alice").is_ok());
        }
        let wait = limiter.check("alice").expect_err("over the burst");
        assert!(wait > Duration::from_secs(3000), "{wait:?}");
        assert!(limiter.check("bob").is_ok());
        assert_eq!(limiter.users(), 2);
    }

    #[test]
    fn zero_rates_are_refused() {
        assert_eq!(CommandRate::per_second(0, 10), None);
        assert_eq!(CommandRate::per_second(10, 0), None);
        assert_eq!(
            CommandRate::per_second(20, 100).map(|rate| rate.interval),
            Some(Duration::from_millis(50))
        );
    }

    #[test]
    fn upload_slots_are_per_user_and_given_back() {
        let slots = UploadSlots::new(2);
        let first = UploadSlots::try_acquire(&slots, "alice");
        let second = UploadSlots::try_acquire(&slots, "alice");
        assert!(first.is_some() && second.is_some());
        assert!(UploadSlots::try_acquire(&slots, "alice").is_none());
        assert!(UploadSlots::try_acquire(&slots, "bob").is_some());
        drop(first);
        assert!(UploadSlots::try_acquire(&slots, "alice").is_some());
        drop(second);
        assert!(slots.running().is_empty());
    }

    #[test]
    fn the_quota_counts_kept_uploads_per_day_and_refunds_failed_ones() {
        let quota = UploadQuota::new(100);
        let kept = QuotaCharge::new(&quota, "alice", 1);
        assert!(kept.add(60).is_ok());
        kept.keep();
        drop(kept);
        let failed = QuotaCharge::new(&quota, "alice", 1);
        assert!(failed.add(30).is_ok());
        assert!(failed.add(20).is_err());
        drop(failed);
        assert!(quota.check("alice", 1, 40).is_ok());
        assert!(quota.check("alice", 1, 41).is_err());
        assert!(quota.check("bob", 1, 100).is_ok());
        // The next day starts from nothing.
        assert!(quota.check("alice", 2, 100).is_ok());
        let today = QuotaCharge::new(&quota, "bob", 2);
        assert!(today.add(70).is_ok());
        today.keep();
        // An upload begun yesterday that goes on after midnight leaves today's counts alone.
        let late = QuotaCharge::new(&quota, "bob", 1);
        assert!(late.add(500).is_ok());
        late.keep();
        assert!(quota.check("bob", 2, 30).is_ok());
        assert!(quota.check("bob", 2, 31).is_err());
    }
}
