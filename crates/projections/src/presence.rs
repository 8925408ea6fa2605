//! Presence (R-A1): the volatile table of last heartbeats a rooms replica keeps in memory. It is
//! not an event, not in the log, not in any store or digest; each replica fills its own from
//! `<prefix>.presence.heartbeat` (`{"user_id", "at_ms"}`), and a restart forgets it (users send
//! a heartbeat every few seconds anyway).

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};

use domain::{Timestamp, UserId};
use serde_json::Value;

/// A user with a heartbeat younger than this is active (R-A1: "in the last 60 s").
pub const ONLINE_WINDOW_MS: i64 = 60_000;

/// The most users the table holds. When it is full, heartbeats older than the online window
/// are forgotten first (they no longer count); a heartbeat that still finds no room is ignored.
pub const PRESENCE_USERS_MAX: usize = 1_000_000;

/// The shared table of last heartbeats. Clones share it.
#[derive(Debug, Clone, Default)]
pub struct Presence {
    last_seen_ms: Arc<Mutex<HashMap<UserId, i64>>>,
}

impl Presence {
    /// An empty table.
    pub fn new() -> Presence {
        Presence::default()
    }

    /// Records a heartbeat of `user` at `at`; an older heartbeat than the one known is ignored.
    pub fn heartbeat(&self, user: &UserId, at: Timestamp) {
        let mut table = self
            .last_seen_ms
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if table.len() >= PRESENCE_USERS_MAX && !table.contains_key(user) {
            let horizon = at.millis().saturating_sub(ONLINE_WINDOW_MS);
            table.retain(|_, seen| *seen >= horizon);
            if table.len() >= PRESENCE_USERS_MAX {
                return;
            }
        }
        let seen = table.entry(user.clone()).or_insert(i64::MIN);
        *seen = (*seen).max(at.millis());
    }

    /// Whether `user` sent a heartbeat within [`ONLINE_WINDOW_MS`] before `now`. A heartbeat
    /// stamped slightly after `now` (clocks of two services) counts as active.
    pub fn is_active(&self, user: &UserId, now: Timestamp) -> bool {
        let table = self
            .last_seen_ms
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        table
            .get(user)
            .is_some_and(|seen| now.millis().saturating_sub(*seen) < ONLINE_WINDOW_MS)
    }

    /// Reads a heartbeat message `{"user_id", "at_ms"}`; `at_ms` defaults to `now`.
    pub fn parse_heartbeat(payload: &[u8], now: Timestamp) -> Option<(UserId, Timestamp)> {
        let value: Value = serde_json::from_slice(payload).ok()?;
        let user = UserId::parse(value.get("user_id")?.as_str()?).ok()?;
        let at = match value.get("at_ms") {
            None | Some(Value::Null) => now,
            Some(at) => Timestamp::from_millis(at.as_i64()?),
        };
        Some((user, at))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn heartbeats_count_for_sixty_seconds() {
        let presence = Presence::new();
        let Ok(alice) = UserId::parse("alice") else {
            unreachable!()
        };
        let t = Timestamp::from_millis(1_000_000);
        assert!(!presence.is_active(&alice, t));
        presence.heartbeat(&alice, t);
        assert!(presence.is_active(&alice, t.plus_millis(ONLINE_WINDOW_MS - 1)));
        assert!(!presence.is_active(&alice, t.plus_millis(ONLINE_WINDOW_MS)));
        presence.heartbeat(&alice, t.plus_millis(-5));
        assert!(!presence.is_active(&alice, t.plus_millis(ONLINE_WINDOW_MS)));
        assert_eq!(
            Presence::parse_heartbeat(br#"{"user_id":"alice","at_ms":5}"#, t),
            Some((alice, Timestamp::from_millis(5)))
        );
    }
}
