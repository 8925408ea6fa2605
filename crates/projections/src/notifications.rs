//! The `notifications` read model: new messages waiting to be told to their recipients, batched
//! per each recipient's setting (R-A3) and published on `<prefix>.notify.<user_id>` as
//! `{"user_id", "frequency", "items": [{room_id, message_id, author, preview, sent_at}]}`.
//!
//! A message from someone else produces an item for every member but its author, unless the
//! member's setting is `off`, the member blocks the author, or the member archived the room.
//! A user's batch falls due one period after their oldest waiting item was sent (`immediate`:
//! at once, one notification per message; `every_15_minutes`, `hourly`, `daily`), judged by the
//! service's clock (the dev clock with `--dev-clock`). Waiting items are in the store, so they
//! survive restarts. A due batch is removed from the store, with a "sent up to" record, in one
//! atomic write that is flushed before the batch is published: a batch goes out at most once.
//! Items more than [`LATE_GRACE_MS`] past their batch's due time are dropped unsent, so that a
//! replica rebuilt from the log, or back after an outage, does not flood users with old news.
//!
//! Store catalogue (`<data_dir>/projections/notifications/`, one sled tree):
//!
//! | key | value | what |
//! |---|---|---|
//! | `u/<user>\0` | [`SettingsRecord`] | frequency and blocks |
//! | `m/<room><user>\0` | [`MemberRecord`] | membership and the member's archive flag |
//! | `k/<message>` | [`MessageRecord`] | the position of a message's items; whether deleted |
//! | `g/<user>\0` | [`GeneratedRecord`] | count and hash chain of every item ever made |
//! | `n/<user>\0<position>` | [`ItemRecord`] | a waiting item (volatile) |
//! | `q/<user>\0` | [`PendingRecord`] | when the user's batch is due (volatile) |
//! | `d/<due><user>\0` | `UserId` | users by due time (volatile) |
//! | `s/<user>\0` | [`SentRecord`] | what was sent so far (volatile) |
//!
//! Volatile records depend on when batches were sent, not only on the log, so the dump (and
//! digest) leaves them out; `g/` records that the same items were made.

use std::path::Path;

use domain::time::{DAY_MS, HOUR_MS};
use domain::{
    Event, MembershipChange, MessageId, NotificationFrequency, RoomId, Timestamp, UserId,
};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use sha2::{Digest as _, Sha256};

use crate::envelope::EventEnvelope;
use crate::error::{ProjectionError, QueryError};
use crate::query::{unknown_op, QueryRequest};
use crate::runtime::{OpenFor, Outgoing, Projector};
use crate::store::{millis_from_ordered, store_path, Changes, Direction, Dump, Key, Store};
use crate::text::preview;

/// The model's name.
pub const NAME: &str = "notifications";

/// The most items in one published batch (a few tens of KiB); more wait for the next tick.
pub const BATCH_ITEMS_MAX: usize = 100;

/// The most users whose batches are sent per tick; the rest wait for the next tick.
pub const DUE_USERS_PER_TICK_MAX: usize = 1_000;

/// How long after its due time an item is still worth sending.
pub const LATE_GRACE_MS: i64 = HOUR_MS;

/// The period of a setting in milliseconds, or `None` for `off`.
pub fn period_ms(frequency: NotificationFrequency) -> Option<i64> {
    match frequency {
        NotificationFrequency::Immediate => Some(0),
        NotificationFrequency::Every15Minutes => Some(15 * 60 * 1000),
        NotificationFrequency::Hourly => Some(HOUR_MS),
        NotificationFrequency::Daily => Some(DAY_MS),
        NotificationFrequency::Off => None,
    }
}

/// The protocol's spelling of a setting (`immediate`, `every_15_minutes`, …).
pub fn frequency_name(frequency: NotificationFrequency) -> &'static str {
    match frequency {
        NotificationFrequency::Immediate => "immediate",
        NotificationFrequency::Every15Minutes => "every_15_minutes",
        NotificationFrequency::Hourly => "hourly",
        NotificationFrequency::Daily => "daily",
        NotificationFrequency::Off => "off",
    }
}

/// A user's notification setting and blocks (R-A3, R-B1).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SettingsRecord {
    /// How often to notify (immediate by default).
    pub frequency: NotificationFrequency,
    /// Users this user blocks, sorted: no items from them.
    pub blocks: Vec<UserId>,
}

/// A member of a room.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MemberRecord {
    /// The member.
    pub user_id: UserId,
    /// Archived rooms notify nothing (R-A3).
    pub archived: bool,
}

/// One message waiting to be told to one user.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ItemRecord {
    /// The room.
    pub room_id: RoomId,
    /// The message.
    pub message_id: MessageId,
    /// Its author.
    pub author: UserId,
    /// The start of its latest body.
    pub preview: String,
    /// When it was sent.
    pub sent_at: Timestamp,
}

/// When a user's waiting items fall due.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct PendingRecord {
    /// The due time (the key of the `d/` entry).
    pub due: Timestamp,
    /// When the oldest waiting item was sent.
    pub oldest_sent_at: Timestamp,
}

/// What was sent to a user so far.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SentRecord {
    /// The position of the newest item sent (or dropped as late).
    pub position: u64,
    /// Notifications published.
    pub notifications: u64,
}

/// A message that made items.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct MessageRecord {
    /// Its position: the last part of its items' keys.
    pub position: u64,
    /// Deleted messages are never sent, whoever still has an item of them.
    pub deleted: bool,
}

/// Every item ever made for a user: a count and a hash chain, equal whenever the log is.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct GeneratedRecord {
    /// Items made.
    pub items: u64,
    /// sha256 of the previous hash, the item's position and message id.
    pub hash: [u8; 32],
}

/// The `notifications` read model.
#[derive(Debug)]
pub struct Notifications {
    store: Store,
}

impl Notifications {
    /// Opens the model under a data directory (`<data_dir>/projections/notifications/`).
    /// A swap a crash interrupted is finished or undone first ([`crate::swap::recover`]).
    pub fn open(data_dir: &Path) -> Result<Notifications, ProjectionError> {
        let path = store_path(data_dir, NAME);
        crate::swap::recover(&path)?;
        Notifications::open_path(&path)
    }

    /// Opens the model in the directory `path`, to serve.
    pub fn open_path(path: &Path) -> Result<Notifications, ProjectionError> {
        Notifications::open_path_for(path, OpenFor::Serving)
    }

    /// Opens the model in the directory `path` for `purpose` (a rebuild writes in bulk:
    /// [`Store::open_for`]).
    pub fn open_path_for(path: &Path, purpose: OpenFor) -> Result<Notifications, ProjectionError> {
        Ok(Notifications {
            store: Store::open_for(path, purpose)?,
        })
    }

    /// A model in a temporary store (tests, rebuild comparisons).
    pub fn temporary() -> Result<Notifications, ProjectionError> {
        Ok(Notifications {
            store: Store::temporary()?,
        })
    }

    /// The items waiting for `user`, oldest first (for tests and operators).
    pub fn pending(&self, user: &UserId) -> Result<Vec<ItemRecord>, ProjectionError> {
        self.store
            .scan::<ItemRecord>(&items_prefix(user), None, Direction::Forward)
            .map(|entry| entry.map(|(_, item)| item))
            .collect()
    }

    /// Sends every batch due at `now`: one atomic write removes the batches and records them
    /// as sent, a flush makes that durable, and only then are they returned for publishing.
    fn send_due(&mut self, now: Timestamp) -> Result<Vec<Outgoing>, ProjectionError> {
        let mut due_users = Vec::new();
        for entry in self
            .store
            .scan::<UserId>(b"d/", None, Direction::Forward)
            .take(DUE_USERS_PER_TICK_MAX)
        {
            let (key, user) = entry?;
            let due = key
                .get(2..10)
                .and_then(|bytes| <[u8; 8]>::try_from(bytes).ok())
                .map(|bytes| millis_from_ordered(u64::from_be_bytes(bytes)));
            match due {
                Some(due) if due <= now => due_users.push((key, user)),
                // Keys are in due order: the rest are later.
                _ => break,
            }
        }
        if due_users.is_empty() {
            return Ok(Vec::new());
        }
        let mut changes = self.store.changes()?;
        let mut outgoing = Vec::new();
        for (due_key, user) in due_users {
            changes.remove(due_key);
            self.send_user(&mut changes, &user, now, &mut outgoing)?;
        }
        changes.commit(self.store.checkpoint())?;
        if !outgoing.is_empty() {
            self.store.flush()?;
        }
        Ok(outgoing)
    }

    fn send_user(
        &self,
        changes: &mut Changes<'_>,
        user: &UserId,
        now: Timestamp,
        outgoing: &mut Vec<Outgoing>,
    ) -> Result<(), ProjectionError> {
        let settings = changes
            .get::<SettingsRecord>(&settings_key(user))?
            .unwrap_or_default();
        let mut waiting = Vec::with_capacity(BATCH_ITEMS_MAX + 1);
        for entry in self
            .store
            .scan::<ItemRecord>(&items_prefix(user), None, Direction::Forward)
            .take(BATCH_ITEMS_MAX + 1)
        {
            waiting.push(entry?);
        }
        let rest = if waiting.len() > BATCH_ITEMS_MAX {
            waiting.pop()
        } else {
            None
        };
        let mut sent = changes
            .get::<SentRecord>(&sent_key(user))?
            .unwrap_or_default();
        let period = period_ms(settings.frequency);
        let mut items = Vec::new();
        for (key, item) in waiting {
            sent.position = sent.position.max(position_of_item_key(&key));
            changes.remove(key);
            let timely = period.is_some_and(|period| {
                now.millis_since(item.sent_at) <= period.saturating_add(LATE_GRACE_MS)
            });
            // Members who left the room keep their items, so deletion is checked here too.
            let deleted = changes
                .get::<MessageRecord>(&message_key(&item.message_id))?
                .is_some_and(|message| message.deleted);
            if timely && !deleted {
                items.push(item);
            }
        }
        match rest {
            // More than one batch waits: the rest is due at once, at the next tick.
            Some((_, next)) => schedule(changes, user, now, next.sent_at)?,
            None => changes.remove(pending_key(user)),
        }
        if items.is_empty() {
            return changes.put(sent_key(user), &sent);
        }
        let batches: Vec<Vec<ItemRecord>> =
            if settings.frequency == NotificationFrequency::Immediate {
                items.into_iter().map(|item| vec![item]).collect()
            } else {
                vec![items]
            };
        for batch in batches {
            sent.notifications = sent.notifications.saturating_add(1);
            outgoing.push(notification(user, settings.frequency, &batch));
        }
        changes.put(sent_key(user), &sent)
    }
}

/// The published message of one batch.
fn notification(user: &UserId, frequency: NotificationFrequency, items: &[ItemRecord]) -> Outgoing {
    let items: Vec<Value> = items
        .iter()
        .map(|item| {
            json!({
                "room_id": item.room_id,
                "message_id": item.message_id,
                "author": item.author,
                "preview": item.preview,
                "sent_at": item.sent_at,
            })
        })
        .collect();
    let body = json!({
        "user_id": user,
        "frequency": frequency_name(frequency),
        "items": items,
    });
    Outgoing {
        subject: format!("notify.{user}"),
        payload: body.to_string().into_bytes(),
    }
}

impl Projector for Notifications {
    fn name(&self) -> &'static str {
        NAME
    }

    fn position(&self) -> u64 {
        self.store.checkpoint()
    }

    fn apply(&mut self, batch: &[EventEnvelope]) -> Result<(), ProjectionError> {
        self.store.apply_fresh(batch, apply_event)
    }

    fn query(&self, request: &QueryRequest, _now: Timestamp) -> Result<Value, QueryError> {
        Err(unknown_op(&request.op))
    }

    fn dump(&self) -> Result<Dump, ProjectionError> {
        self.store.dump(&[b"n/", b"q/", b"d/", b"s/"])
    }

    fn due(&mut self, now: Timestamp) -> Result<Vec<Outgoing>, ProjectionError> {
        self.send_due(now)
    }

    fn flush(&self) -> Result<(), ProjectionError> {
        self.store.flush()
    }
}

fn settings_key(user: &UserId) -> Vec<u8> {
    Key::new(b"u/").text(user.as_str()).build()
}

fn member_key(room: &RoomId, user: &UserId) -> Vec<u8> {
    Key::new(b"m/").uuid(&room.0).text(user.as_str()).build()
}

fn message_key(message: &MessageId) -> Vec<u8> {
    Key::new(b"k/").uuid(&message.0).build()
}

fn generated_key(user: &UserId) -> Vec<u8> {
    Key::new(b"g/").text(user.as_str()).build()
}

fn items_prefix(user: &UserId) -> Vec<u8> {
    Key::new(b"n/").text(user.as_str()).build()
}

fn item_key(user: &UserId, position: u64) -> Vec<u8> {
    Key::new(b"n/").text(user.as_str()).number(position).build()
}

fn pending_key(user: &UserId) -> Vec<u8> {
    Key::new(b"q/").text(user.as_str()).build()
}

fn due_key(due: Timestamp, user: &UserId) -> Vec<u8> {
    Key::new(b"d/").time(due).text(user.as_str()).build()
}

fn sent_key(user: &UserId) -> Vec<u8> {
    Key::new(b"s/").text(user.as_str()).build()
}

fn position_of_item_key(key: &[u8]) -> u64 {
    key.len()
        .checked_sub(8)
        .and_then(|start| key.get(start..))
        .and_then(|bytes| <[u8; 8]>::try_from(bytes).ok())
        .map_or(0, u64::from_be_bytes)
}

/// Sets when `user`'s batch is due, replacing the earlier due time.
fn schedule(
    changes: &mut Changes<'_>,
    user: &UserId,
    due: Timestamp,
    oldest_sent_at: Timestamp,
) -> Result<(), ProjectionError> {
    if let Some(old) = changes.get::<PendingRecord>(&pending_key(user))? {
        changes.remove(due_key(old.due, user));
    }
    changes.put(
        pending_key(user),
        &PendingRecord {
            due,
            oldest_sent_at,
        },
    )?;
    changes.put(due_key(due, user), user)
}

fn update_settings(
    changes: &mut Changes<'_>,
    user: &UserId,
    change: impl FnOnce(&mut SettingsRecord),
) -> Result<(), ProjectionError> {
    let key = settings_key(user);
    let mut settings = changes.get::<SettingsRecord>(&key)?.unwrap_or_default();
    change(&mut settings);
    changes.put(key, &settings)
}

fn add_member(
    changes: &mut Changes<'_>,
    room: &RoomId,
    user: &UserId,
) -> Result<(), ProjectionError> {
    let key = member_key(room, user);
    if changes.contains(&key)? {
        return Ok(());
    }
    changes.put(
        key,
        &MemberRecord {
            user_id: user.clone(),
            archived: false,
        },
    )
}

fn apply_event(changes: &mut Changes<'_>, envelope: &EventEnvelope) -> Result<(), ProjectionError> {
    let position = envelope.position;
    match envelope.event.membership_change() {
        Some(MembershipChange::Joined { room_id, users }) => {
            for user in users {
                add_member(changes, &room_id, user)?;
            }
        }
        Some(MembershipChange::Left { room_id, user }) => {
            changes.remove(member_key(&room_id, user));
        }
        None => {}
    }
    match &envelope.event {
        Event::UserBlocked { blocker, blocked } => update_settings(changes, blocker, |settings| {
            if let Err(index) = settings.blocks.binary_search(blocked) {
                settings.blocks.insert(index, blocked.clone());
            }
        }),
        Event::UserUnblocked { blocker, blocked } => {
            update_settings(changes, blocker, |settings| {
                settings.blocks.retain(|user| user != blocked);
            })
        }
        Event::NotificationFrequencyChanged { user_id, frequency } => {
            update_settings(changes, user_id, |settings| settings.frequency = *frequency)?;
            // Waiting items keep their age; only the period to wait for them changes. `off`
            // makes them due at once, to be dropped.
            if let Some(pending) = changes.get::<PendingRecord>(&pending_key(user_id))? {
                let due = pending
                    .oldest_sent_at
                    .plus_millis(period_ms(*frequency).unwrap_or(0));
                schedule(changes, user_id, due, pending.oldest_sent_at)?;
            }
            Ok(())
        }
        Event::RoomArchivedChanged {
            room_id,
            user_id,
            on,
        } => {
            let key = member_key(room_id, user_id);
            match changes.get::<MemberRecord>(&key)? {
                Some(mut member) => {
                    member.archived = *on;
                    changes.put(key, &member)
                }
                None => Ok(()),
            }
        }
        Event::MessageSent {
            room_id,
            message_id,
            author,
            body,
            attachments,
            sent_at,
            ..
        } => notify(
            changes,
            position,
            ItemRecord {
                room_id: *room_id,
                message_id: *message_id,
                author: author.clone(),
                preview: preview(body, attachments),
                sent_at: *sent_at,
            },
        ),
        Event::AutoReplySent {
            room_id,
            message_id,
            author,
            body,
            sent_at,
            ..
        } => notify(
            changes,
            position,
            ItemRecord {
                room_id: *room_id,
                message_id: *message_id,
                author: author.clone(),
                preview: preview(body, &[]),
                sent_at: *sent_at,
            },
        ),
        Event::MessageEdited {
            room_id,
            message_id,
            body,
            ..
        } => {
            // A waiting item shows the latest body.
            update_items(changes, room_id, message_id, |key, item, changes| {
                if !body.is_empty() {
                    item.preview = preview(body, &[]);
                }
                changes.put(key, item)
            })
        }
        Event::MessageDeleted {
            room_id,
            message_id,
            ..
        } => {
            // A deleted message is not news any more, and its body must not go out (R-M4).
            let key = message_key(message_id);
            if let Some(mut message) = changes.get::<MessageRecord>(&key)? {
                message.deleted = true;
                changes.put(key, &message)?;
            }
            update_items(changes, room_id, message_id, |key, _, changes| {
                changes.remove(key);
                Ok(())
            })
        }
        Event::UserRegistered { .. }
        | Event::UserDisplayNameChanged { .. }
        | Event::OutOfOfficeSet { .. }
        | Event::OutOfOfficeCleared { .. }
        | Event::OnlineVisibilityChanged { .. }
        | Event::ContractEnded { .. }
        | Event::RoomRenamed { .. }
        | Event::RoomFavoriteChanged { .. }
        | Event::RoomHiddenChanged { .. }
        | Event::RoomMarkedRead { .. }
        | Event::MessageReported { .. }
        | Event::CallStarted { .. }
        | Event::CallEnded { .. }
        | Event::FileRegistered { .. } => Ok(()),
        // Membership: kept above, from `membership_change`.
        Event::DirectRoomOpened { .. }
        | Event::GroupRoomCreated { .. }
        | Event::InterviewRoomOpened { .. }
        | Event::ContractStarted { .. }
        | Event::MemberAdded { .. }
        | Event::MemberLeft { .. } => Ok(()),
    }
}

/// Makes an item of `item` for every member who wants it (R-A3).
fn notify(
    changes: &mut Changes<'_>,
    position: u64,
    item: ItemRecord,
) -> Result<(), ProjectionError> {
    changes.put(
        message_key(&item.message_id),
        &MessageRecord {
            position,
            deleted: false,
        },
    )?;
    let members =
        changes.scan::<MemberRecord>(&Key::new(b"m/").uuid(&item.room_id.0).build(), None)?;
    for (_, member) in members {
        let user = &member.user_id;
        if *user == item.author || member.archived {
            continue;
        }
        let settings = changes
            .get::<SettingsRecord>(&settings_key(user))?
            .unwrap_or_default();
        let Some(period) = period_ms(settings.frequency) else {
            continue;
        };
        if settings.blocks.binary_search(&item.author).is_ok() {
            continue;
        }
        changes.put(item_key(user, position), &item)?;
        let mut generated = changes
            .get::<GeneratedRecord>(&generated_key(user))?
            .unwrap_or_default();
        let mut hasher = Sha256::new();
        hasher.update(generated.hash);
        hasher.update(position.to_be_bytes());
        hasher.update(item.message_id.0.as_bytes());
        generated.hash = hasher.finalize().into();
        generated.items = generated.items.saturating_add(1);
        changes.put(generated_key(user), &generated)?;
        if !changes.contains(&pending_key(user))? {
            schedule(
                changes,
                user,
                item.sent_at.plus_millis(period),
                item.sent_at,
            )?;
        }
    }
    Ok(())
}

/// Runs `change` on every waiting item of a message.
fn update_items(
    changes: &mut Changes<'_>,
    room_id: &RoomId,
    message_id: &MessageId,
    mut change: impl FnMut(Vec<u8>, &mut ItemRecord, &mut Changes<'_>) -> Result<(), ProjectionError>,
) -> Result<(), ProjectionError> {
    let Some(MessageRecord { position, .. }) =
        changes.get::<MessageRecord>(&message_key(message_id))?
    else {
        return Ok(());
    };
    let members = changes.scan::<MemberRecord>(&Key::new(b"m/").uuid(&room_id.0).build(), None)?;
    for (_, member) in members {
        let key = item_key(&member.user_id, position);
        if let Some(mut item) = changes.get::<ItemRecord>(&key)? {
            change(key, &mut item, changes)?;
        }
    }
    Ok(())
}
