//! The `moderation` read model: the queue of reported messages (R-P1), newest first, readable by
//! moderators only (`reports`, docs/queries.md).
//!
//! Store catalogue (`<data_dir>/projections/moderation/`, one fjall keyspace):
//!
//! | key | value | what |
//! |---|---|---|
//! | `r/<position>` | [`ReportRecord`] | a report, by log position |

use std::path::Path;

use domain::{Event, MessageId, ReportId, ReportReason, RoomId, Timestamp, UserId};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use crate::envelope::EventEnvelope;
use crate::error::{ProjectionError, QueryError};
use crate::query::{encode_cursor, QueryRequest};
use crate::runtime::{unapplied, OpenFor, Projector};
use crate::store::{store_path, Direction, Dump, Key, Store};
use protocol::query::{Cursor, ModerationQuery, PageLimit};

/// The model's name.
pub const NAME: &str = "moderation";

/// A report in the queue.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReportRecord {
    /// The report.
    pub report_id: ReportId,
    /// The room of the message.
    pub room_id: RoomId,
    /// The reported message.
    pub message_id: MessageId,
    /// Who reported it.
    pub reporter: UserId,
    /// Why.
    pub reason: ReportReason,
    /// Free text.
    pub details: Option<String>,
    /// When.
    pub reported_at: Timestamp,
}

/// The `moderation` read model.
#[derive(Debug)]
pub struct Moderation {
    store: Store,
}

impl Moderation {
    /// Opens the model under a data directory (`<data_dir>/projections/moderation/`).
    /// A swap a crash interrupted is finished or undone first ([`crate::swap::recover`]).
    pub fn open(data_dir: &Path) -> Result<Moderation, ProjectionError> {
        let path = store_path(data_dir, NAME);
        crate::swap::recover(&path)?;
        Moderation::open_path(&path)
    }

    /// Opens the model in the directory `path`, to serve.
    pub fn open_path(path: &Path) -> Result<Moderation, ProjectionError> {
        Moderation::open_path_for(path, OpenFor::Serving)
    }

    /// Opens the model in the directory `path` for `purpose` (a rebuild writes in bulk:
    /// [`Store::open_for`]).
    pub fn open_path_for(path: &Path, purpose: OpenFor) -> Result<Moderation, ProjectionError> {
        Ok(Moderation {
            store: Store::open_for(path, purpose)?,
        })
    }

    /// A model in a temporary store (tests, rebuild comparisons).
    pub fn temporary() -> Result<Moderation, ProjectionError> {
        Ok(Moderation {
            store: Store::temporary()?,
        })
    }

    fn reports(
        &self,
        moderator: bool,
        limit: PageLimit,
        cursor: Option<&Cursor>,
    ) -> Result<Value, QueryError> {
        if !moderator {
            return Err(QueryError::Forbidden(
                "the moderation queue is for moderators".into(),
            ));
        }
        let limit = limit.items();
        let after = match cursor.map(Cursor::bytes).transpose()? {
            Some(cursor) => {
                let bytes: [u8; 8] = cursor
                    .as_slice()
                    .try_into()
                    .map_err(|_| QueryError::Invalid("cursor: malformed".into()))?;
                Some(report_key(u64::from_be_bytes(bytes)))
            }
            None => None,
        };
        let mut reports = Vec::new();
        let mut last_position = 0u64;
        let mut next_cursor = None;
        for entry in self
            .store
            .scan::<ReportRecord>(b"r/", after.as_deref(), Direction::Backward)
        {
            let (key, report) = entry?;
            if reports.len() == limit {
                next_cursor = Some(encode_cursor(&last_position.to_be_bytes()));
                break;
            }
            last_position = key
                .get(2..10)
                .and_then(|bytes| <[u8; 8]>::try_from(bytes).ok())
                .map_or(0, u64::from_be_bytes);
            reports.push(json!({
                "report_id": report.report_id,
                "room_id": report.room_id,
                "message_id": report.message_id,
                "reporter": report.reporter,
                "reason": report.reason,
                "details": report.details,
                "reported_at": report.reported_at,
            }));
        }
        Ok(json!({"reports": reports, "next_cursor": next_cursor}))
    }
}

fn report_key(position: u64) -> Vec<u8> {
    Key::new(b"r/").number(position).build()
}

impl Projector for Moderation {
    fn name(&self) -> &'static str {
        NAME
    }

    fn position(&self) -> u64 {
        self.store.checkpoint()
    }

    fn apply(&mut self, batch: &[EventEnvelope]) -> Result<(), ProjectionError> {
        let fresh = unapplied(batch, self.store.checkpoint())?;
        let Some(last) = fresh.last() else {
            return Ok(());
        };
        let mut changes = self.store.changes()?;
        for envelope in fresh {
            if let Event::MessageReported {
                report_id,
                room_id,
                message_id,
                reporter,
                reason,
                details,
                reported_at,
            } = &envelope.event
            {
                changes.put(
                    report_key(envelope.position),
                    &ReportRecord {
                        report_id: *report_id,
                        room_id: *room_id,
                        message_id: *message_id,
                        reporter: reporter.clone(),
                        reason: *reason,
                        details: details.clone(),
                        reported_at: *reported_at,
                    },
                )?;
            }
        }
        changes.commit(last.position)
    }

    type Query = ModerationQuery;

    fn query(
        &self,
        request: &QueryRequest<ModerationQuery>,
        _now: Timestamp,
    ) -> Result<Value, QueryError> {
        match &request.op {
            ModerationQuery::Reports { limit, cursor } => {
                self.reports(request.moderator, *limit, cursor.as_ref())
            }
        }
    }

    fn dump(&self) -> Result<Dump, ProjectionError> {
        self.store.dump(&[])
    }

    fn flush(&self) -> Result<(), ProjectionError> {
        self.store.flush()
    }
}
