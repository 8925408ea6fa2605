//! The `timeline` read model: each room's messages, newest first (protocol.md §3 Message), with
//! tombstones for deleted messages (R-M4), the latest body and `edited_at` of edited ones
//! (R-M3), replies showing their original (R-M2, a removed original as removed), attachments
//! (R-F1), automatic replies (R-A2) and one entry per call (R-K1). Only members read a room
//! (R-R6), and they read its whole history, from before they joined too (R-R4).
//!
//! Store catalogue (`<data_dir>/projections/timeline/`, one fjall keyspace):
//!
//! | key | value | what |
//! |---|---|---|
//! | `m/<room><user>\0` | `()` | membership |
//! | `e/<room><position>` | [`EntryRecord`] | a message, automatic reply or call, by log position |
//! | `x/<message or call id>` | [`Locator`] | where an entry is |

use std::path::Path;

use domain::{Attachment, CallId, CallMedia, Event, MessageId, RoomId, Timestamp, UserId};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use uuid::Uuid;

use crate::envelope::EventEnvelope;
use crate::error::{ProjectionError, QueryError};
use crate::membership::{member_key, track_membership};
use crate::query::{encode_cursor, QueryRequest};
use crate::runtime::{OpenFor, Projector};
use crate::store::{store_path, Changes, Direction, Dump, Key, Store};
use crate::text::{has_preview, preview};
use protocol::query::{Cursor, PageLimit, TimelineQuery};

/// The model's name.
pub const NAME: &str = "timeline";

/// What a timeline entry is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum EntryKind {
    /// A member's message.
    Text,
    /// An away member's automatic reply (R-A2).
    AutoReply,
    /// A call (R-K1).
    Call,
}

impl EntryKind {
    /// The protocol's spelling: `text`, `auto_reply`, `call`.
    pub fn as_str(self) -> &'static str {
        match self {
            EntryKind::Text => "text",
            EntryKind::AutoReply => "auto_reply",
            EntryKind::Call => "call",
        }
    }
}

/// One entry of a room's timeline.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EntryRecord {
    /// The message id (for a call: the call id).
    pub id: Uuid,
    /// The author (for a call: who started it).
    pub author: UserId,
    /// Message, automatic reply or call.
    pub kind: EntryKind,
    /// The latest body; emptied on deletion.
    pub body: String,
    /// Deleted (R-M4).
    pub deleted: bool,
    /// When it was sent (a call: started).
    pub sent_at: Timestamp,
    /// When it was last edited.
    pub edited_at: Option<Timestamp>,
    /// The message it answers.
    pub reply_to: Option<MessageId>,
    /// Files and links; emptied on deletion.
    pub attachments: Vec<Attachment>,
    /// The call, for call entries.
    pub call: Option<CallRecord>,
}

/// A call as its timeline entry shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CallRecord {
    /// The call.
    pub call_id: CallId,
    /// Audio or video.
    pub media: CallMedia,
    /// When it started.
    pub started_at: Timestamp,
    /// When it ended, once it has.
    pub ended_at: Option<Timestamp>,
    /// Its length, once it has ended.
    pub duration_ms: Option<i64>,
}

/// Where an entry is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Locator {
    /// Its room.
    pub room_id: RoomId,
    /// Its log position.
    pub position: u64,
}

/// The `timeline` read model.
#[derive(Debug)]
pub struct Timeline {
    store: Store,
}

impl Timeline {
    /// Opens the model under a data directory (`<data_dir>/projections/timeline/`).
    /// A swap a crash interrupted is finished or undone first ([`crate::swap::recover`]).
    pub fn open(data_dir: &Path) -> Result<Timeline, ProjectionError> {
        let path = store_path(data_dir, NAME);
        crate::swap::recover(&path)?;
        Timeline::open_path(&path)
    }

    /// Opens the model in the directory `path`, to serve.
    pub fn open_path(path: &Path) -> Result<Timeline, ProjectionError> {
        Timeline::open_path_for(path, OpenFor::Serving)
    }

    /// Opens the model in the directory `path` for `purpose` (a rebuild writes in bulk:
    /// [`Store::open_for`]).
    pub fn open_path_for(path: &Path, purpose: OpenFor) -> Result<Timeline, ProjectionError> {
        Ok(Timeline {
            store: Store::open_for(path, purpose)?,
        })
    }

    /// A model in a temporary store (tests, rebuild comparisons).
    pub fn temporary() -> Result<Timeline, ProjectionError> {
        Ok(Timeline {
            store: Store::temporary()?,
        })
    }

    fn messages(
        &self,
        user: &UserId,
        room_id: RoomId,
        before: Option<MessageId>,
        limit: PageLimit,
        cursor: Option<&Cursor>,
    ) -> Result<Value, QueryError> {
        if !self.store.contains(&member_key(&room_id, user))? {
            return Err(QueryError::NotFound);
        }
        let limit = limit.items();
        let mut upper: Option<u64> = None;
        if let Some(before) = before {
            let locator = self
                .store
                .get::<Locator>(&locator_key(&before.0))?
                .filter(|locator| locator.room_id == room_id)
                .ok_or_else(|| QueryError::Invalid("before: not a message of this room".into()))?;
            upper = Some(locator.position);
        }
        if let Some(cursor) = cursor.map(Cursor::bytes).transpose()? {
            let bytes: [u8; 8] = cursor
                .as_slice()
                .try_into()
                .map_err(|_| QueryError::Invalid("cursor: malformed".into()))?;
            let position = u64::from_be_bytes(bytes);
            upper = Some(upper.map_or(position, |upper| upper.min(position)));
        }
        let prefix = Key::new(b"e/").uuid(&room_id.0).build();
        let after = upper.map(|position| entry_key(&room_id, position));
        let mut messages = Vec::new();
        let mut last_position: u64 = 0;
        let mut next_cursor = None;
        for entry in self
            .store
            .scan::<EntryRecord>(&prefix, after.as_deref(), Direction::Backward)
        {
            let (key, record) = entry?;
            if messages.len() == limit {
                next_cursor = Some(encode_cursor(&last_position.to_be_bytes()));
                break;
            }
            last_position = position_of_entry_key(&key);
            messages.push(self.message_json(&room_id, &record)?);
        }
        Ok(json!({"messages": messages, "next_cursor": next_cursor}))
    }

    /// `by_id`: the named messages of a room as they are now (the gateway's event streams render
    /// each change this way, so a stream shows exactly what `messages` shows). Ids that are not
    /// entries of this room are left out; the rest come in the order asked.
    fn by_id(&self, user: &UserId, room_id: RoomId, ids: &[Uuid]) -> Result<Value, QueryError> {
        if !self.store.contains(&member_key(&room_id, user))? {
            return Err(QueryError::NotFound);
        }
        let mut messages = Vec::with_capacity(ids.len());
        for id in ids {
            let Some(locator) = self
                .store
                .get::<Locator>(&locator_key(id))?
                .filter(|locator| locator.room_id == room_id)
            else {
                continue;
            };
            if let Some(entry) = self
                .store
                .get::<EntryRecord>(&entry_key(&room_id, locator.position))?
            {
                messages.push(self.message_json(&room_id, &entry)?);
            }
        }
        Ok(json!({"messages": messages}))
    }

    /// The Message of protocol.md §3.
    fn message_json(&self, room_id: &RoomId, entry: &EntryRecord) -> Result<Value, QueryError> {
        let body = (!entry.deleted && entry.kind != EntryKind::Call).then_some(&entry.body);
        let attachments: Vec<Value> = if entry.deleted {
            Vec::new()
        } else {
            entry.attachments.iter().map(attachment_json).collect()
        };
        let reply_to = match entry.reply_to {
            Some(original) => Some(self.reply_json(&original)?),
            None => None,
        };
        let call = entry.call.as_ref().map(|call| {
            json!({
                "call_id": call.call_id,
                "media": call.media,
                "started_at": call.started_at,
                "ended_at": call.ended_at,
                "duration_ms": call.duration_ms,
            })
        });
        Ok(json!({
            "message_id": entry.id,
            "room_id": room_id,
            "author": entry.author,
            "kind": entry.kind.as_str(),
            "body": body,
            "deleted": entry.deleted,
            "sent_at": entry.sent_at,
            "edited_at": entry.edited_at,
            "reply_to": reply_to,
            "attachments": attachments,
            "call": call,
        }))
    }

    /// The original of a reply, as removed when deleted: its body never leaks (R-M2, R-M4).
    fn reply_json(&self, original: &MessageId) -> Result<Value, QueryError> {
        let entry = match self.store.get::<Locator>(&locator_key(&original.0))? {
            Some(locator) => self
                .store
                .get::<EntryRecord>(&entry_key(&locator.room_id, locator.position))?,
            None => None,
        };
        Ok(match entry {
            Some(entry) => json!({
                "message_id": original,
                "author": entry.author,
                "preview": (!entry.deleted).then(|| preview(&entry.body, &entry.attachments)),
                "deleted": entry.deleted,
            }),
            None => json!({
                "message_id": original,
                "author": null,
                "preview": null,
                "deleted": true,
            }),
        })
    }
}

fn attachment_json(attachment: &Attachment) -> Value {
    match attachment {
        Attachment::File {
            file_id,
            name,
            size,
            content_type,
        } => json!({
            "type": "file",
            "file_id": file_id,
            "name": name,
            "size": size,
            "content_type": content_type,
            "has_preview": has_preview(content_type),
        }),
        Attachment::Link { url, provider } => json!({
            "type": "link",
            "url": url,
            "provider": provider,
        }),
    }
}

impl Projector for Timeline {
    fn name(&self) -> &'static str {
        NAME
    }

    fn position(&self) -> u64 {
        self.store.checkpoint()
    }

    fn apply(&mut self, batch: &[EventEnvelope]) -> Result<(), ProjectionError> {
        self.store.apply_fresh(batch, apply_event)
    }

    type Query = TimelineQuery;

    fn query(
        &self,
        request: &QueryRequest<TimelineQuery>,
        _now: Timestamp,
    ) -> Result<Value, QueryError> {
        let user = request.caller_user()?;
        match &request.op {
            TimelineQuery::Messages {
                room_id,
                before,
                limit,
                cursor,
            } => self.messages(&user, *room_id, *before, *limit, cursor.as_ref()),
            TimelineQuery::ById {
                room_id,
                message_ids,
            } => self.by_id(&user, *room_id, message_ids),
        }
    }

    fn dump(&self) -> Result<Dump, ProjectionError> {
        self.store.dump(&[])
    }

    fn flush(&self) -> Result<(), ProjectionError> {
        self.store.flush()
    }
}

fn entry_key(room: &RoomId, position: u64) -> Vec<u8> {
    Key::new(b"e/").uuid(&room.0).number(position).build()
}

fn locator_key(id: &Uuid) -> Vec<u8> {
    Key::new(b"x/").uuid(id).build()
}

/// The position at the end of an entry key (`e/` + 16 bytes of room + 8 of position).
fn position_of_entry_key(key: &[u8]) -> u64 {
    key.len()
        .checked_sub(8)
        .and_then(|start| key.get(start..))
        .and_then(|bytes| <[u8; 8]>::try_from(bytes).ok())
        .map_or(0, u64::from_be_bytes)
}

fn apply_event(changes: &mut Changes<'_>, envelope: &EventEnvelope) -> Result<(), ProjectionError> {
    let position = envelope.position;
    track_membership(changes, &envelope.event)?;
    match &envelope.event {
        Event::MessageSent {
            room_id,
            message_id,
            author,
            body,
            reply_to,
            attachments,
            sent_at,
        } => insert_entry(
            changes,
            room_id,
            position,
            EntryRecord {
                id: message_id.0,
                author: author.clone(),
                kind: EntryKind::Text,
                body: body.clone(),
                deleted: false,
                sent_at: *sent_at,
                edited_at: None,
                reply_to: *reply_to,
                attachments: attachments.clone(),
                call: None,
            },
        ),
        Event::AutoReplySent {
            room_id,
            message_id,
            author,
            body,
            in_reply_to,
            sent_at,
        } => insert_entry(
            changes,
            room_id,
            position,
            EntryRecord {
                id: message_id.0,
                author: author.clone(),
                kind: EntryKind::AutoReply,
                body: body.clone(),
                deleted: false,
                sent_at: *sent_at,
                edited_at: None,
                reply_to: Some(*in_reply_to),
                attachments: Vec::new(),
                call: None,
            },
        ),
        Event::MessageEdited {
            message_id,
            body,
            edited_at,
            ..
        } => update_entry(changes, &message_id.0, |entry| {
            if !entry.deleted {
                entry.body.clone_from(body);
                entry.edited_at = Some(*edited_at);
            }
        }),
        Event::MessageDeleted { message_id, .. } => update_entry(changes, &message_id.0, |entry| {
            // Readers see a tombstone; the log alone keeps the original (R-M4).
            entry.deleted = true;
            entry.body.clear();
            entry.attachments.clear();
        }),
        Event::CallStarted {
            room_id,
            call_id,
            media,
            started_by,
            started_at,
        } => insert_entry(
            changes,
            room_id,
            position,
            EntryRecord {
                id: call_id.0,
                author: started_by.clone(),
                kind: EntryKind::Call,
                body: String::new(),
                deleted: false,
                sent_at: *started_at,
                edited_at: None,
                reply_to: None,
                attachments: Vec::new(),
                call: Some(CallRecord {
                    call_id: *call_id,
                    media: *media,
                    started_at: *started_at,
                    ended_at: None,
                    duration_ms: None,
                }),
            },
        ),
        Event::CallEnded {
            call_id,
            ended_at,
            duration_ms,
            ..
        } => update_entry(changes, &call_id.0, |entry| {
            if let Some(call) = entry.call.as_mut() {
                call.ended_at = Some(*ended_at);
                call.duration_ms = Some(*duration_ms);
            }
        }),
        Event::UserRegistered { .. }
        | Event::UserDisplayNameChanged { .. }
        | Event::UserBlocked { .. }
        | Event::UserUnblocked { .. }
        | Event::OutOfOfficeSet { .. }
        | Event::OutOfOfficeCleared { .. }
        | Event::OnlineVisibilityChanged { .. }
        | Event::NotificationFrequencyChanged { .. }
        | Event::ContractEnded { .. }
        | Event::RoomRenamed { .. }
        | Event::RoomFavoriteChanged { .. }
        | Event::RoomHiddenChanged { .. }
        | Event::RoomArchivedChanged { .. }
        | Event::RoomMarkedRead { .. }
        | Event::MessageReported { .. }
        | Event::FileRegistered { .. }
        // Membership: kept by `track_membership` above.
        | Event::DirectRoomOpened { .. }
        | Event::GroupRoomCreated { .. }
        | Event::InterviewRoomOpened { .. }
        | Event::ContractStarted { .. }
        | Event::MemberAdded { .. }
        | Event::MemberLeft { .. } => Ok(()),
    }
}

fn insert_entry(
    changes: &mut Changes<'_>,
    room_id: &RoomId,
    position: u64,
    entry: EntryRecord,
) -> Result<(), ProjectionError> {
    changes.put(
        locator_key(&entry.id),
        &Locator {
            room_id: *room_id,
            position,
        },
    )?;
    changes.put(entry_key(room_id, position), &entry)
}

fn update_entry(
    changes: &mut Changes<'_>,
    id: &Uuid,
    change: impl FnOnce(&mut EntryRecord),
) -> Result<(), ProjectionError> {
    let Some(locator) = changes.get::<Locator>(&locator_key(id))? else {
        return Ok(());
    };
    let key = entry_key(&locator.room_id, locator.position);
    let Some(mut entry) = changes.get::<EntryRecord>(&key)? else {
        return Ok(());
    };
    change(&mut entry);
    changes.put(key, &entry)
}
