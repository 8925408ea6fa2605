//! Presence (R-A1): the volatile table of last heartbeats a rooms replica keeps in memory, and
//! the small service that fills it ([`serve_heartbeats`], started by a runner given the table
//! with [`crate::Runner::with_presence`]). It is not an event, not in the log, not in any store
//! or digest, and not part of the [`crate::Projector`] trait: the rooms model only reads the
//! table it is given (`Rooms::with_presence`). Each replica fills its own from
//! `<prefix>.presence.heartbeat` (`{"user_id", "at_ms"}`), and a restart forgets it (users send
//! a heartbeat every few seconds anyway). Whoever wires the rooms runner hands the same table
//! to the model, to every instance a live rebuild opens, and to the runner, so a swap keeps it.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};

use bus::{Bus, Headers, Subscription};
use clock::Clock;
use domain::{Timestamp, UserId};
use protocol::{Format, HEADER_CONTENT_TYPE};
use serde_json::{json, Value};
use tokio::sync::watch;

use crate::error::QueryError;
use crate::query::encode_reply;
use crate::runtime::stopped;

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

/// Fills `presence` from `<prefix>.presence.heartbeat` (`subscription`) and answers each
/// heartbeat once it is recorded, so that the gateway's 204 means "reads see it" (protocol.md
/// §3): `{"ok": true, "position": P, "data": {}}` with the model's applied position, or
/// `invalid_command` for a malformed heartbeat. Runs until `stop` turns true.
pub(crate) async fn serve_heartbeats(
    mut subscription: Subscription,
    presence: Presence,
    bus: Bus,
    clock: Clock,
    position: watch::Receiver<u64>,
    mut stop: watch::Receiver<bool>,
) {
    loop {
        tokio::select! {
            () = stopped(&mut stop) => break,
            message = subscription.next() => {
                let Some(message) = message else { break };
                let result = match Presence::parse_heartbeat(&message.payload, clock.now()) {
                    Some((user, at)) => {
                        presence.heartbeat(&user, at);
                        Ok((*position.borrow(), json!({})))
                    }
                    None => Err(QueryError::Invalid(
                        "a heartbeat is {\"user_id\", \"at_ms\"}".into(),
                    )),
                };
                if message.reply_to.is_some() {
                    let headers =
                        Headers::new().with(HEADER_CONTENT_TYPE, Format::Json.content_type());
                    let _ = bus.respond(&message, headers, encode_reply(&result)).await;
                }
            }
        }
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
