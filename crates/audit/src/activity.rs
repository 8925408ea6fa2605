//! `audit user`: everything a user did, in log order: the events of the commands they sent.

use domain::Timestamp;
use eventlog::EventLog;
use serde::Serialize;

use crate::{scan, AuditError};

/// One thing a user did.
#[derive(Debug, Clone, Serialize)]
pub struct UserAction {
    /// Log position.
    pub position: u64,
    /// When.
    pub recorded_at: Timestamp,
    /// The event type.
    #[serde(rename = "type")]
    pub type_name: String,
    /// The event's fields.
    pub data: serde_json::Value,
}

/// The events of commands `user` sent (as actor), recorded within `[from, until]`.
pub fn user_activity(
    log: &EventLog,
    user: &str,
    from: Option<Timestamp>,
    until: Option<Timestamp>,
) -> Result<Vec<UserAction>, AuditError> {
    let mut actions = Vec::new();
    scan(log, 1, |record, stored| {
        if until.is_some_and(|until| stored.recorded_at > until) {
            return Ok(false);
        }
        if stored.actor == user && from.is_none_or(|from| stored.recorded_at >= from) {
            let data = serde_json::to_value(&stored.event)
                .ok()
                .and_then(|value| value.as_object().and_then(|o| o.values().next().cloned()))
                .unwrap_or(serde_json::Value::Null);
            actions.push(UserAction {
                position: record.position,
                recorded_at: stored.recorded_at,
                type_name: stored.event.type_name().to_owned(),
                data,
            });
        }
        Ok(true)
    })?;
    Ok(actions)
}
