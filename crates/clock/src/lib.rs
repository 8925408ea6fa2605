//! Parlor's clock. The domain never reads time; the services ask this clock and pass *now* in.
//!
//! In production it is the system's UTC clock. With `--dev-clock` it is the real clock plus an
//! offset that `parlor.dev.clock` requests move (`advance_ms`, `set_ms`), so tests and demos can
//! cross the one-hour edit window or a UTC midnight without waiting (protocol.md §4).

mod serve;

pub use serve::serve_dev_clock;

use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use domain::Timestamp;

/// A cheap-to-clone handle to one clock; clones share the offset.
#[derive(Clone, Debug, Default)]
pub struct Clock {
    inner: Arc<Inner>,
}

#[derive(Debug, Default)]
struct Inner {
    /// Whether the offset may be moved (the `--dev-clock` flag).
    adjustable: AtomicBool,
    /// Milliseconds added to the real clock.
    offset_ms: AtomicI64,
}

/// Why the clock refused to move.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClockError {
    /// The clock is the real one: it moves only with `--dev-clock`.
    NotAdjustable,
}

impl Clock {
    /// The system clock, which cannot be moved.
    pub fn system() -> Clock {
        Clock::default()
    }

    /// The development clock: real time plus an adjustable offset, initially zero.
    pub fn development() -> Clock {
        let clock = Clock::default();
        clock.inner.adjustable.store(true, Ordering::SeqCst);
        clock
    }

    /// Whether this is the development clock.
    pub fn is_adjustable(&self) -> bool {
        self.inner.adjustable.load(Ordering::SeqCst)
    }

    /// Now, in UTC with millisecond precision.
    pub fn now(&self) -> Timestamp {
        Timestamp::from_millis(
            real_now_ms().saturating_add(self.inner.offset_ms.load(Ordering::SeqCst)),
        )
    }

    /// Moves the clock forward (or back, for a negative `ms`) and returns the new now.
    pub fn advance(&self, ms: i64) -> Result<Timestamp, ClockError> {
        self.require_adjustable()?;
        // fetch_update cannot fail with a closure that always returns Some.
        let _ = self
            .inner
            .offset_ms
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |offset| {
                Some(offset.saturating_add(ms))
            });
        Ok(self.now())
    }

    /// Sets the clock to `time` (it keeps running from there) and returns the new now.
    pub fn set(&self, time: Timestamp) -> Result<Timestamp, ClockError> {
        self.require_adjustable()?;
        self.inner.offset_ms.store(
            time.millis().saturating_sub(real_now_ms()),
            Ordering::SeqCst,
        );
        Ok(self.now())
    }

    fn require_adjustable(&self) -> Result<(), ClockError> {
        if self.is_adjustable() {
            Ok(())
        } else {
            Err(ClockError::NotAdjustable)
        }
    }
}

/// Milliseconds since the Unix epoch by the system clock (0 if the clock is before 1970).
pub fn real_now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |elapsed| {
            i64::try_from(elapsed.as_millis()).unwrap_or(i64::MAX)
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_system_clock_cannot_be_moved() {
        assert_eq!(Clock::system().advance(1), Err(ClockError::NotAdjustable));
    }

    #[test]
    fn the_development_clock_moves_and_clones_share_it() {
        let clock = Clock::development();
        let copy = clock.clone();
        let before = clock.now();
        let after = copy.advance(3_600_000).unwrap_or(before);
        assert!(after.millis_since(before) >= 3_600_000);
        assert!(clock.now().millis_since(before) >= 3_600_000);
        let set = Timestamp::from_millis(1_000_000_000_000);
        let now = clock.set(set).unwrap_or(before);
        assert!(now.millis_since(set) >= 0 && now.millis_since(set) < 1_000);
    }
}
