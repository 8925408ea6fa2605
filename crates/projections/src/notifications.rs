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
//! Store catalogue (`<data_dir>/projections/notifications/`, one fjall keyspace):
//!
//! | key | value | what |
//! |---|---|---|
//! | `u/<user>\0` | [`SettingsRecord`] | frequency and blocks |
//! | `m/<room><user>\0` | [`MemberRecord`] | membership and the member's archive flag |
//! | `r/<room>` | `u64` | the room's message sequence: messages posted so far |
//! | `p/<room><sequence>` | [`PostRecord`] | a room's message, once, with who it notifies |
//! | `k/<message>` | [`MessageRecord`] | where a message is (its position and room sequence) |
//! | `w/<user>\0<room>` | `u64` | the user's items in the room are derived from this sequence on (volatile) |
//! | `n/<user>\0<position>` | [`ItemRecord`] | a waiting item held on its own (volatile) |
//! | `q/<user>\0` | [`PendingRecord`] | when the user's batch is due (volatile) |
//! | `d/<due><user>\0` | [`DueRecord`] | users by due time (volatile) |
//! | `s/<user>\0` | [`SentRecord`] | what was sent so far (volatile) |
//! | `v/layout` | `u32` | [`LAYOUT_VERSION`], written when the store is created |
//!
//! A message costs O(1) keys whatever the room's size (`r/`, `p/`, `k/`): a member's waiting
//! items in a room are not written one by one but derived when the batch is sent, from the
//! room's posts from the member's `w/` sequence on, less the member's own, deleted ones and
//! those of authors the member blocks. A `w/` marker (and the `q/` and `d/` of a due time, which
//! depends only on the oldest waiting item) is written only when a member goes from nothing
//! waiting in the room to something. What the derivation assumes — a member, not archived, not
//! `off`, the same blocks — holds while the marker exists: the events that end it (leaving,
//! archiving, `off`, a block or unblock) first turn the derived items into `n/` items held on
//! their own, as layout 1 kept every item, so they keep layout 1's meaning (an item made
//! stays made; edits and deletions reach the items of current members). A member who leaves a
//! room loses what waited for them there (H-V1: nothing of a room reaches a non-member).
//!
//! Volatile records depend on when batches were sent, not only on the log, so the dump (and
//! digest) leaves them out; each post's recipient count and hash record that the same items
//! were made.
//!
//! What every message and every tick read — members, room sequences, settings (`m/`, `r/`,
//! `u/`) and the schedule (`w/`, `q/`, `d/`, `s/`) — is also held in memory, loaded from the
//! store at the first apply or tick and changed only together with it, so a message and a tick
//! read no store record but the posts they send; the store stays the source (what a restart
//! loads and the dump compares). A batch and its tick are one commit
//! ([`Projector::apply_and_due`]), and a `w/`, `q/` or `d/` record made and taken within one
//! commit (an `immediate` recipient's, most often) is never written at all.

use std::collections::{BTreeMap, HashMap, HashSet};
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
use crate::query::QueryRequest;
use crate::runtime::{OpenFor, Outgoing, Projector};
use crate::store::{millis_from_ordered, Changes, Direction, Dump, Key, Store};
use crate::text::preview;
use protocol::query::NotificationsQuery;

/// The model's name.
pub const NAME: &str = "notifications";

/// The version of the key layout above. Layout 1 (before `v/layout` existed) wrote an item, a
/// hash chain and a pending check per recipient per message (`g/`, `n/`); its `k/` records decode
/// differently, so a store of another layout is refused ([`ProjectionError::Layout`]) rather than
/// read, and rebuilt from the log when served ([`Notifications::open`]).
pub const LAYOUT_VERSION: u32 = 2;

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
    /// Whether the user may have items held on their own (`n/`); when not, sending skips
    /// looking for them (a scan per user per tick, most of a tick's cost for `immediate` users).
    pub held: bool,
}

/// A user whose batch falls due at the time in its `d/` key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DueRecord {
    /// The user.
    pub user_id: UserId,
    /// [`PendingRecord::held`], here so that sending need not read the `q/` record.
    pub held: bool,
}

/// What was sent to a user so far.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SentRecord {
    /// The position of the newest item sent (or dropped as late).
    pub position: u64,
    /// Notifications published.
    pub notifications: u64,
}

/// Where a message is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct MessageRecord {
    /// Its position in the log: the last part of its `n/` items' keys.
    pub position: u64,
    /// Its place in its room's sequence: the last part of its `p/` key.
    pub sequence: u64,
}

/// A room's message, kept once whoever it notifies.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PostRecord {
    /// Its position in the log (items are sent in log order, across rooms).
    pub position: u64,
    /// What its items show (the preview of its latest body).
    pub item: ItemRecord,
    /// Deleted messages are never sent, whoever still has an item of them.
    pub deleted: bool,
    /// Members it made an item for when it was sent.
    pub recipients: u32,
    /// sha256 of those members' ids, each ended by a 0 byte, in key order: with the count, what
    /// the dump compares so that a rebuild is seen to make the same items.
    pub recipients_hash: [u8; 32],
}

/// The `notifications` read model.
#[derive(Debug)]
pub struct Notifications {
    store: Store,
    /// The records applying and sending read all the time, read from memory; `None` until
    /// loaded, and again after a failed apply or tick (whose changes were dropped, so the store
    /// is the one to believe).
    memory: Option<Memory>,
}

/// The store's records that every message and every tick read, held in memory beside it and
/// changed only together with it (each change goes into the same [`Changes`]), so the store
/// stays the source: what a restart loads, what the dump compares.
#[derive(Debug, Default)]
struct Memory {
    audience: Audience,
    schedule: Schedule,
}

impl Memory {
    fn load(store: &Store) -> Result<Memory, ProjectionError> {
        Ok(Memory {
            audience: Audience::load(store)?,
            schedule: Schedule::load(store)?,
        })
    }
}

/// Who a message notifies: each room's members (`m/`) and message sequence (`r/`), each user's
/// settings (`u/`). A message reads all of them (a scan of the room's members and a read of
/// each member's settings, from fjall once the memtable holding them has gone out in an image,
/// which in a served model is every tick that sends something); from memory they cost no
/// store read.
#[derive(Debug, Default)]
struct Audience {
    /// `m/`: each room's members, sorted by user id (the keys' order).
    members: HashMap<RoomId, Vec<MemberRecord>>,
    /// `r/`: each room's message sequence.
    sequences: HashMap<RoomId, u64>,
    /// `u/`: each user's settings; a user without one has the default.
    settings: HashMap<UserId, SettingsRecord>,
}

impl Audience {
    /// Reads the records from the store.
    fn load(store: &Store) -> Result<Audience, ProjectionError> {
        let mut audience = Audience::default();
        for entry in store.scan::<MemberRecord>(b"m/", None, Direction::Forward) {
            let (key, member) = entry?;
            // Keys are in order, so each room's members come sorted.
            audience
                .members
                .entry(room_of_key(&key)?)
                .or_default()
                .push(member);
        }
        for entry in store.scan::<u64>(b"r/", None, Direction::Forward) {
            let (key, sequence) = entry?;
            audience.sequences.insert(room_of_key(&key)?, sequence);
        }
        for entry in store.scan::<SettingsRecord>(b"u/", None, Direction::Forward) {
            let (key, settings) = entry?;
            audience.settings.insert(user_of_key(&key)?, settings);
        }
        Ok(audience)
    }

    fn members(&self, room: &RoomId) -> &[MemberRecord] {
        self.members.get(room).map_or(&[], Vec::as_slice)
    }

    fn member(&self, room: &RoomId, user: &UserId) -> Option<&MemberRecord> {
        let members = self.members(room);
        members
            .binary_search_by(|member| member.user_id.cmp(user))
            .ok()
            .and_then(|index| members.get(index))
    }

    /// Writes `member` (new or changed) into `room`.
    fn put_member(
        &mut self,
        changes: &mut Changes<'_>,
        room: &RoomId,
        member: MemberRecord,
    ) -> Result<(), ProjectionError> {
        changes.put(member_key(room, &member.user_id), &member)?;
        let members = self.members.entry(*room).or_default();
        match members.binary_search_by(|known| known.user_id.cmp(&member.user_id)) {
            Ok(index) => {
                if let Some(known) = members.get_mut(index) {
                    *known = member;
                }
            }
            Err(index) => members.insert(index, member),
        }
        Ok(())
    }

    fn remove_member(&mut self, changes: &mut Changes<'_>, room: &RoomId, user: &UserId) {
        changes.remove(member_key(room, user));
        if let Some(members) = self.members.get_mut(room) {
            members.retain(|member| member.user_id != *user);
            if members.is_empty() {
                self.members.remove(room);
            }
        }
    }

    fn sequence(&self, room: &RoomId) -> u64 {
        self.sequences.get(room).copied().unwrap_or(0)
    }

    fn set_sequence(
        &mut self,
        changes: &mut Changes<'_>,
        room: &RoomId,
        sequence: u64,
    ) -> Result<(), ProjectionError> {
        changes.put(room_key(room), &sequence)?;
        self.sequences.insert(*room, sequence);
        Ok(())
    }

    fn settings(&self, user: &UserId) -> Option<&SettingsRecord> {
        self.settings.get(user)
    }

    fn update_settings(
        &mut self,
        changes: &mut Changes<'_>,
        user: &UserId,
        change: impl FnOnce(&mut SettingsRecord),
    ) -> Result<(), ProjectionError> {
        let settings = self.settings.entry(user.clone()).or_default();
        change(settings);
        changes.put(settings_key(user), settings)
    }
}

/// What sending reads at every tick — who is due when (`d/`, `q/`) and where each user's derived
/// items start (`w/`) — held in memory beside the store. These records are written and removed
/// all the time (an `immediate` recipient gets a marker and a due time per message and loses
/// them at the next tick), so the store's ranges of them are mostly tombstones: scanning `d/`
/// each tick and each due user's `w/` cost most of a served model's time (a profile of
/// `apply_rate … notifications 0 1`: 58 % in fjall iterators skipping them). Every change goes
/// to the store too, in the [`Changes`] of the same commit ([`Schedule::write`]), so the store
/// (and what a restart loads) stays the source; the maps are its copy, loaded once.
///
/// A record made and gone again before the commit (an `immediate` recipient's marker and due
/// time, made by a message and taken by the tick that the runtime runs with the same commit,
/// [`Projector::apply_and_due`]) is never written: the store neither had it nor has it. That
/// spares three writes and three tombstones per such message in the memtable and in the image
/// each tick flushes.
#[derive(Debug, Default)]
struct Schedule {
    /// `w/`: per user, the rooms with a marker and the sequence it holds (in key order).
    markers: HashMap<UserId, BTreeMap<RoomId, u64>>,
    /// `q/`: each user's due time.
    pending: HashMap<UserId, PendingRecord>,
    /// `d/`: the due queue under its store keys, so it is walked in the store's order.
    due: BTreeMap<Vec<u8>, DueRecord>,
    /// `s/`: what was sent to each user (read and written for every user a tick sends to).
    sent: HashMap<UserId, SentRecord>,
    /// The `w/`, `q/` and `d/` keys the store holds (as of the last commit).
    stored: HashSet<Vec<u8>>,
    /// Changes to `w/`, `q/` and `d/` since the last commit: a record to put, or `None` to
    /// remove one the store holds.
    unwritten: BTreeMap<Vec<u8>, Option<Volatile>>,
}

/// A `w/`, `q/` or `d/` record waiting for the next commit.
#[derive(Debug, Clone)]
enum Volatile {
    Marker(u64),
    Pending(PendingRecord),
    Due(DueRecord),
}

impl Schedule {
    /// Reads the records from the store.
    fn load(store: &Store) -> Result<Schedule, ProjectionError> {
        let mut schedule = Schedule::default();
        for entry in store.scan::<u64>(b"w/", None, Direction::Forward) {
            let (key, since) = entry?;
            let (user, room) = user_and_room_of_marker_key(&key)?;
            schedule.stored.insert(key);
            schedule
                .markers
                .entry(user)
                .or_default()
                .insert(room, since);
        }
        for entry in store.scan::<PendingRecord>(b"q/", None, Direction::Forward) {
            let (key, pending) = entry?;
            schedule.pending.insert(user_of_key(&key)?, pending);
            schedule.stored.insert(key);
        }
        for entry in store.scan::<DueRecord>(b"d/", None, Direction::Forward) {
            let (key, due) = entry?;
            schedule.stored.insert(key.clone());
            schedule.due.insert(key, due);
        }
        for entry in store.scan::<SentRecord>(b"s/", None, Direction::Forward) {
            let (key, sent) = entry?;
            schedule.sent.insert(user_of_key(&key)?, sent);
        }
        Ok(schedule)
    }

    /// Notes a record to put at the next commit.
    fn put(&mut self, key: Vec<u8>, record: Volatile) {
        self.unwritten.insert(key, Some(record));
    }

    /// Notes a record to remove at the next commit; one the store never had is just forgotten.
    fn remove(&mut self, key: Vec<u8>) {
        if self.stored.contains(&key) {
            self.unwritten.insert(key, None);
        } else {
            self.unwritten.remove(&key);
        }
    }

    /// Writes the changes noted since the last commit into `changes`, which must be committed
    /// next (or the schedule dropped and loaded again).
    fn write(&mut self, changes: &mut Changes<'_>) -> Result<(), ProjectionError> {
        for (key, record) in std::mem::take(&mut self.unwritten) {
            match record {
                None => {
                    self.stored.remove(&key);
                    changes.remove(key);
                }
                Some(record) => {
                    self.stored.insert(key.clone());
                    match record {
                        Volatile::Marker(since) => changes.put(key, &since)?,
                        Volatile::Pending(pending) => changes.put(key, &pending)?,
                        Volatile::Due(due) => changes.put(key, &due)?,
                    }
                }
            }
        }
        Ok(())
    }

    fn sent(&self, user: &UserId) -> SentRecord {
        self.sent.get(user).copied().unwrap_or_default()
    }

    fn set_sent(
        &mut self,
        changes: &mut Changes<'_>,
        user: &UserId,
        sent: SentRecord,
    ) -> Result<(), ProjectionError> {
        changes.put(sent_key(user), &sent)?;
        self.sent.insert(user.clone(), sent);
        Ok(())
    }

    /// The sequence of `user`'s marker in `room`, if they have one.
    fn marker(&self, user: &UserId, room: &RoomId) -> Option<u64> {
        self.markers.get(user)?.get(room).copied()
    }

    /// The rooms `user` has a marker in, with its sequence, in key order.
    fn marked_rooms(&self, user: &UserId) -> Vec<(RoomId, u64)> {
        self.markers.get(user).map_or_else(Vec::new, |rooms| {
            rooms.iter().map(|(room, since)| (*room, *since)).collect()
        })
    }

    fn set_marker(&mut self, user: &UserId, room: &RoomId, since: u64) {
        self.put(marker_key(user, room), Volatile::Marker(since));
        self.markers
            .entry(user.clone())
            .or_default()
            .insert(*room, since);
    }

    fn remove_marker(&mut self, user: &UserId, room: &RoomId) {
        self.remove(marker_key(user, room));
        if let Some(rooms) = self.markers.get_mut(user) {
            rooms.remove(room);
            if rooms.is_empty() {
                self.markers.remove(user);
            }
        }
    }

    fn pending(&self, user: &UserId) -> Option<PendingRecord> {
        self.pending.get(user).copied()
    }

    /// Sets when `user`'s batch is due, replacing the earlier due time.
    fn schedule(&mut self, user: &UserId, due: Timestamp, oldest_sent_at: Timestamp, held: bool) {
        if let Some(old) = self.pending(user) {
            self.remove_due(due_key(old.due, user));
        }
        let pending = PendingRecord {
            due,
            oldest_sent_at,
            held,
        };
        self.put(pending_key(user), Volatile::Pending(pending));
        self.pending.insert(user.clone(), pending);
        let record = DueRecord {
            user_id: user.clone(),
            held,
        };
        let key = due_key(due, user);
        self.put(key.clone(), Volatile::Due(record.clone()));
        self.due.insert(key, record);
    }

    /// Forgets `user`'s due time (its `d/` entry is removed by whoever took it from the queue).
    fn remove_pending(&mut self, user: &UserId) {
        self.remove(pending_key(user));
        self.pending.remove(user);
    }

    fn remove_due(&mut self, key: Vec<u8>) {
        self.due.remove(&key);
        self.remove(key);
    }

    /// The first `limit` entries of the due queue due at `now`, in key (due) order.
    fn due_at(&self, now: Timestamp, limit: usize) -> Vec<(Vec<u8>, DueRecord)> {
        self.due
            .iter()
            .take(limit)
            .take_while(|(key, _)| {
                key.get(2..10)
                    .and_then(|bytes| <[u8; 8]>::try_from(bytes).ok())
                    .map(|bytes| millis_from_ordered(u64::from_be_bytes(bytes)))
                    .is_some_and(|due| due <= now)
            })
            .map(|(key, due)| (key.clone(), due.clone()))
            .collect()
    }
}

/// The loaded memory in `slot`, loading it from `store` first if it is not.
fn loaded<'a>(
    store: &Store,
    slot: &'a mut Option<Memory>,
) -> Result<&'a mut Memory, ProjectionError> {
    if slot.is_none() {
        *slot = Some(Memory::load(store)?);
    }
    Ok(slot.get_or_insert_with(Memory::default))
}

impl Notifications {
    /// Opens the model under a data directory (`<data_dir>/projections/notifications/`).
    /// A swap a crash interrupted is finished or undone first ([`crate::swap::recover`]).
    ///
    /// A store of an earlier key layout ([`ProjectionError::Layout`]) is deleted and the model
    /// starts afresh at position 0: a read model is derived from the log, so an upgrade
    /// rebuilds it as it catches up instead of refusing to start. (Items the old store had
    /// made and not yet sent are made again, and the late grace drops the old ones.)
    pub fn open(data_dir: &Path) -> Result<Notifications, ProjectionError> {
        crate::store::open_served(data_dir, NAME, Notifications::open_path)
    }

    /// Opens the model in the directory `path`, to serve.
    pub fn open_path(path: &Path) -> Result<Notifications, ProjectionError> {
        Notifications::open_path_for(path, OpenFor::Serving)
    }

    /// Opens the model in the directory `path` for `purpose` (a rebuild writes in bulk:
    /// [`Store::open_for`]).
    ///
    /// Fails with [`ProjectionError::Layout`] for a store of another key layout.
    pub fn open_path_for(path: &Path, purpose: OpenFor) -> Result<Notifications, ProjectionError> {
        Ok(Notifications {
            store: crate::store::checked_layout(
                Store::open_for(path, purpose)?,
                NAME,
                LAYOUT_VERSION,
            )?,
            memory: None,
        })
    }

    /// A model in a temporary store (tests, rebuild comparisons).
    pub fn temporary() -> Result<Notifications, ProjectionError> {
        Ok(Notifications {
            store: crate::store::checked_layout(Store::temporary()?, NAME, LAYOUT_VERSION)?,
            memory: None,
        })
    }

    /// The items waiting for `user`, oldest first (for tests and operators).
    pub fn pending(&self, user: &UserId) -> Result<Vec<ItemRecord>, ProjectionError> {
        let settings = self
            .store
            .get::<SettingsRecord>(&settings_key(user))?
            .unwrap_or_default();
        let loaded;
        let memory = match &self.memory {
            Some(memory) => memory,
            None => {
                loaded = Memory::load(&self.store)?;
                &loaded
            }
        };
        let (waiting, _, _) = waiting(
            &self.store.changes()?,
            memory,
            user,
            &settings.blocks,
            usize::MAX,
            true,
        )?;
        Ok(waiting.into_iter().map(|waiting| waiting.item).collect())
    }

    /// Sends every batch due at `now`: one atomic write removes the batches and records them
    /// as sent, a flush makes that durable, and only then are they returned for publishing.
    /// The schedule is forgotten (to be loaded again) when this fails: its changes were not.
    fn send_due(&mut self, now: Timestamp) -> Result<Vec<Outgoing>, ProjectionError> {
        let sent = self.try_send_due(now);
        if sent.is_err() {
            self.memory = None;
        }
        sent
    }

    fn try_send_due(&mut self, now: Timestamp) -> Result<Vec<Outgoing>, ProjectionError> {
        self.try_apply_and_send_due(&[], now)
    }

    /// Applies the part of `batch` not yet applied and sends every batch due at `now`, in one
    /// commit: a marker and due time made and taken in it are never written. The sent batches'
    /// records are flushed before they are returned for publishing.
    fn try_apply_and_send_due(
        &mut self,
        batch: &[EventEnvelope],
        now: Timestamp,
    ) -> Result<Vec<Outgoing>, ProjectionError> {
        let fresh = crate::unapplied(batch, self.store.checkpoint())?;
        let Notifications { store, memory } = self;
        let memory = loaded(store, memory)?;
        let due_users = memory.schedule.due_at(now, DUE_USERS_PER_TICK_MAX);
        if fresh.is_empty() && due_users.is_empty() {
            return Ok(Vec::new());
        }
        let mut changes = store.changes()?;
        for envelope in fresh {
            apply_event(&mut changes, memory, envelope)?;
        }
        // Looked for again: the batch may have made some due at once (`immediate`).
        let due_users = if fresh.is_empty() {
            due_users
        } else {
            memory.schedule.due_at(now, DUE_USERS_PER_TICK_MAX)
        };
        let mut outgoing = Vec::new();
        for (due_key, due) in due_users {
            memory.schedule.remove_due(due_key);
            send_user(
                memory,
                &mut changes,
                &due.user_id,
                due.held,
                now,
                &mut outgoing,
            )?;
        }
        memory.schedule.write(&mut changes)?;
        let checkpoint = fresh
            .last()
            .map_or_else(|| store.checkpoint(), |last| last.position);
        changes.commit(checkpoint)?;
        if !outgoing.is_empty() {
            store.flush()?;
        }
        Ok(outgoing)
    }
}

/// The first `limit` items waiting for `user`, in log order: those held on their own and
/// those derived from the rooms the user has a `w/` marker in (held ones are looked for
/// only if `held`). With them, each such room, how many derived items it had before the cut
/// to `limit`, and whether those were all; and how many held items were found before it.
fn waiting(
    changes: &Changes<'_>,
    memory: &Memory,
    user: &UserId,
    blocks: &[UserId],
    limit: usize,
    held: bool,
) -> Result<(Vec<Waiting>, Vec<MarkedRoom>, usize), ProjectionError> {
    let mut waiting = Vec::new();
    if held {
        // Read through the changes, which may hold items the same commit made. Items held on
        // their own are rare (the events that make them are), so collecting them is.
        for (key, item) in changes
            .scan::<ItemRecord>(&items_prefix(user), None)?
            .into_iter()
            .take(limit)
        {
            waiting.push(Waiting {
                position: position_of_item_key(&key),
                held: Held::Alone(key),
                item,
            });
        }
    }
    let mut rooms = Vec::new();
    for (room, since) in memory.schedule.marked_rooms(user) {
        // Point reads up to the room's sequence rather than a range scan: the posts a tick
        // sends are recent, so mostly in the memtable, which a stored range walk would not
        // spare.
        let last = memory.audience.sequence(&room);
        let mut derived = 0;
        for sequence in since..=last {
            let Some(post) = changes.get::<PostRecord>(&post_key(&room, sequence))? else {
                continue;
            };
            if !derives_item(&post, user, blocks) {
                continue;
            }
            if derived == limit {
                break;
            }
            derived += 1;
            waiting.push(Waiting {
                position: post.position,
                held: Held::Derived { room, sequence },
                item: post.item,
            });
        }
        rooms.push(MarkedRoom {
            room,
            derived,
            all: derived < limit,
        });
    }
    let alone = waiting
        .iter()
        .filter(|waiting| matches!(waiting.held, Held::Alone(_)))
        .count();
    // Positions are unique (one event each): the order is the log's.
    waiting.sort_unstable_by_key(|waiting| waiting.position);
    waiting.truncate(limit);
    Ok((waiting, rooms, alone))
}

/// Sends `user`'s batch (one notification per item for `immediate`), at most
/// [`BATCH_ITEMS_MAX`] items; the rest is due again at once.
fn send_user(
    memory: &mut Memory,
    changes: &mut Changes<'_>,
    user: &UserId,
    held: bool,
    now: Timestamp,
    outgoing: &mut Vec<Outgoing>,
) -> Result<(), ProjectionError> {
    let settings = memory.audience.settings(user).cloned().unwrap_or_default();
    let limit = BATCH_ITEMS_MAX + 1;
    let (mut waiting, rooms, alone) =
        waiting(changes, memory, user, &settings.blocks, limit, held)?;
    let schedule = &mut memory.schedule;
    let mut alone_sent = 0;
    let rest = if waiting.len() > BATCH_ITEMS_MAX {
        waiting.pop()
    } else {
        None
    };
    let mut sent = schedule.sent(user);
    let period = period_ms(settings.frequency);
    // Per room with a marker: derived items sent, and the sequence after the last of them.
    let mut sent_up_to: Vec<(RoomId, usize, u64)> = Vec::new();
    let mut items = Vec::new();
    for Waiting {
        position,
        held,
        item,
    } in waiting
    {
        sent.position = sent.position.max(position);
        let deleted = match held {
            Held::Alone(key) => {
                alone_sent += 1;
                changes.remove(key);
                // Members who left the room keep their items, so deletion is checked here
                // too.
                is_deleted(changes, &item.room_id, &item.message_id)?
            }
            Held::Derived { room, sequence } => {
                let next = sequence.saturating_add(1);
                match sent_up_to.iter_mut().find(|(sent, _, _)| *sent == room) {
                    Some((_, count, up_to)) => {
                        *count += 1;
                        *up_to = (*up_to).max(next);
                    }
                    None => sent_up_to.push((room, 1, next)),
                }
                // Derived items are never of deleted posts.
                false
            }
        };
        let timely = period.is_some_and(|period| {
            now.millis_since(item.sent_at) <= period.saturating_add(LATE_GRACE_MS)
        });
        if timely && !deleted {
            items.push(item);
        }
    }
    for marked in rooms {
        let (count, next) = sent_up_to
            .iter()
            .find(|(sent, _, _)| *sent == marked.room)
            .map_or((0, None), |(_, count, next)| (*count, Some(*next)));
        // A room is done when all its derived items were sent; otherwise its marker moves
        // past what was (the rest stays derived, for the next batch).
        if marked.all && count == marked.derived {
            schedule.remove_marker(user, &marked.room);
        } else if let Some(next) = next {
            schedule.set_marker(user, &marked.room, next);
        }
    }
    match rest {
        // More than one batch waits: the rest is due at once, at the next tick.
        // Held items stay flagged while any may be left.
        Some(next) => {
            let held_left = alone > alone_sent || alone == limit;
            schedule.schedule(user, now, next.item.sent_at, held_left);
        }
        None => schedule.remove_pending(user),
    }
    if items.is_empty() {
        return schedule.set_sent(changes, user, sent);
    }
    let batches: Vec<Vec<ItemRecord>> = if settings.frequency == NotificationFrequency::Immediate {
        items.into_iter().map(|item| vec![item]).collect()
    } else {
        vec![items]
    };
    for batch in batches {
        sent.notifications = sent.notifications.saturating_add(1);
        outgoing.push(notification(user, settings.frequency, &batch));
    }
    schedule.set_sent(changes, user, sent)
}

/// Where a waiting item is kept.
#[derive(Debug)]
enum Held {
    /// On its own, under this `n/` key.
    Alone(Vec<u8>),
    /// Derived from the room's post with this sequence.
    Derived {
        /// The room.
        room: RoomId,
        /// The post's place in the room's sequence.
        sequence: u64,
    },
}

/// A room a user has a `w/` marker in, as [`Notifications::waiting`] found it.
#[derive(Debug)]
struct MarkedRoom {
    /// The room.
    room: RoomId,
    /// Derived items found (at most the limit asked for).
    derived: usize,
    /// Whether they are all the room's derived items.
    all: bool,
}

/// One item waiting for a user.
#[derive(Debug)]
struct Waiting {
    /// The message's position in the log.
    position: u64,
    /// Where the item is kept.
    held: Held,
    /// The item.
    item: ItemRecord,
}

/// Whether `post` makes an item for `user`, a member of its room with a marker (so not
/// archived, not `off`, and with the blocks the marker was made with): not their own, not
/// deleted, not from an author they block.
fn derives_item(post: &PostRecord, user: &UserId, blocks: &[UserId]) -> bool {
    !post.deleted && post.item.author != *user && blocks.binary_search(&post.item.author).is_err()
}

/// Whether a message is deleted (false for one never seen).
fn is_deleted(
    changes: &Changes<'_>,
    room: &RoomId,
    message: &MessageId,
) -> Result<bool, ProjectionError> {
    let Some(record) = changes.get::<MessageRecord>(&message_key(message))? else {
        return Ok(false);
    };
    Ok(changes
        .get::<PostRecord>(&post_key(room, record.sequence))?
        .is_some_and(|post| post.deleted))
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
        let Notifications { store, memory } = self;
        let applied = loaded(store, memory).and_then(|loaded| {
            let fresh = crate::unapplied(batch, store.checkpoint())?;
            let Some(last) = fresh.last() else {
                return Ok(());
            };
            let mut changes = store.changes()?;
            for envelope in fresh {
                apply_event(&mut changes, loaded, envelope)?;
            }
            loaded.schedule.write(&mut changes)?;
            changes.commit(last.position)
        });
        if applied.is_err() {
            // The batch's changes were dropped, but not what it did to the memory.
            *memory = None;
        }
        applied
    }

    fn apply_and_due(
        &mut self,
        batch: &[EventEnvelope],
        now: Timestamp,
    ) -> Result<Vec<Outgoing>, ProjectionError> {
        let sent = self.try_apply_and_send_due(batch, now);
        if sent.is_err() {
            self.memory = None;
        }
        sent
    }

    type Query = NotificationsQuery;

    fn query(
        &self,
        request: &QueryRequest<NotificationsQuery>,
        _now: Timestamp,
    ) -> Result<Value, QueryError> {
        // No operation of this model exists: a request never reaches here.
        match request.op {}
    }

    fn dump(&self) -> Result<Dump, ProjectionError> {
        self.store.dump(&[b"n/", b"q/", b"d/", b"s/", b"w/"])
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

fn room_key(room: &RoomId) -> Vec<u8> {
    Key::new(b"r/").uuid(&room.0).build()
}

fn posts_prefix(room: &RoomId) -> Vec<u8> {
    Key::new(b"p/").uuid(&room.0).build()
}

fn post_key(room: &RoomId, sequence: u64) -> Vec<u8> {
    Key::new(b"p/").uuid(&room.0).number(sequence).build()
}

fn marker_key(user: &UserId, room: &RoomId) -> Vec<u8> {
    Key::new(b"w/").text(user.as_str()).uuid(&room.0).build()
}

fn members_prefix(room: &RoomId) -> Vec<u8> {
    Key::new(b"m/").uuid(&room.0).build()
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

/// The position that ends an `n/` key; 0 for a short key.
fn position_of_item_key(key: &[u8]) -> u64 {
    key.len()
        .checked_sub(8)
        .and_then(|start| key.get(start..))
        .and_then(|bytes| <[u8; 8]>::try_from(bytes).ok())
        .map_or(0, u64::from_be_bytes)
}

/// The user and the room a `w/` key names (`w/<user>\0<room>`).
fn user_and_room_of_marker_key(key: &[u8]) -> Result<(UserId, RoomId), ProjectionError> {
    let room = key
        .len()
        .checked_sub(16)
        .and_then(|start| key.get(start..))
        .and_then(|bytes| uuid::Uuid::from_slice(bytes).ok())
        .map(RoomId);
    let user = key
        .len()
        .checked_sub(17)
        .and_then(|end| key.get(2..end))
        .and_then(user_of_text);
    match (user, room) {
        (Some(user), Some(room)) => Ok((user, room)),
        _ => Err(ProjectionError::Value {
            key: hex::encode(key),
            message: "a marker key without a user and a room".to_owned(),
        }),
    }
}

/// The user a key of a user's record names (`q/<user>\0`, `s/<user>\0`, `u/<user>\0`).
fn user_of_key(key: &[u8]) -> Result<UserId, ProjectionError> {
    key.len()
        .checked_sub(1)
        .and_then(|end| key.get(2..end))
        .and_then(user_of_text)
        .ok_or_else(|| ProjectionError::Value {
            key: hex::encode(key),
            message: "a key without a user".to_owned(),
        })
}

/// The room a key of a room's record names (`m/<room><user>\0`, `r/<room>`).
fn room_of_key(key: &[u8]) -> Result<RoomId, ProjectionError> {
    key.get(2..18)
        .and_then(|bytes| uuid::Uuid::from_slice(bytes).ok())
        .map(RoomId)
        .ok_or_else(|| ProjectionError::Value {
            key: hex::encode(key),
            message: "a key without a room".to_owned(),
        })
}

fn user_of_text(bytes: &[u8]) -> Option<UserId> {
    std::str::from_utf8(bytes)
        .ok()
        .and_then(|text| UserId::parse(text).ok())
}

fn apply_event(
    changes: &mut Changes<'_>,
    memory: &mut Memory,
    envelope: &EventEnvelope,
) -> Result<(), ProjectionError> {
    let position = envelope.position;
    match envelope.event.membership_change() {
        Some(MembershipChange::Joined { room_id, users }) => {
            for user in users {
                if memory.audience.member(&room_id, user).is_none() {
                    memory.audience.put_member(
                        changes,
                        &room_id,
                        MemberRecord {
                            user_id: user.clone(),
                            archived: false,
                        },
                    )?;
                }
            }
        }
        Some(MembershipChange::Left { room_id, user }) => {
            // H-V1: nothing of a room goes to someone who is no longer its member, so what
            // waited for them there is dropped, derived or held.
            drop_items(changes, &mut memory.schedule, user, &room_id)?;
            memory.audience.remove_member(changes, &room_id, user);
        }
        None => {}
    }
    match &envelope.event {
        Event::UserBlocked { blocker, blocked } => {
            // Derived items assume the blocks they were made with.
            hold_all_items(changes, memory, blocker)?;
            memory
                .audience
                .update_settings(changes, blocker, |settings| {
                    if let Err(index) = settings.blocks.binary_search(blocked) {
                        settings.blocks.insert(index, blocked.clone());
                    }
                })
        }
        Event::UserUnblocked { blocker, blocked } => {
            hold_all_items(changes, memory, blocker)?;
            memory
                .audience
                .update_settings(changes, blocker, |settings| {
                    settings.blocks.retain(|user| user != blocked);
                })
        }
        Event::NotificationFrequencyChanged { user_id, frequency } => {
            if *frequency == NotificationFrequency::Off {
                // `off` makes nothing new, but what waits stays (to be dropped when due).
                hold_all_items(changes, memory, user_id)?;
            }
            memory
                .audience
                .update_settings(changes, user_id, |settings| settings.frequency = *frequency)?;
            let schedule = &mut memory.schedule;
            // Waiting items keep their age; only the period to wait for them changes. `off`
            // makes them due at once, to be dropped.
            if let Some(pending) = schedule.pending(user_id) {
                let due = pending
                    .oldest_sent_at
                    .plus_millis(period_ms(*frequency).unwrap_or(0));
                schedule.schedule(user_id, due, pending.oldest_sent_at, pending.held);
            }
            Ok(())
        }
        Event::RoomArchivedChanged {
            room_id,
            user_id,
            on,
        } => {
            match memory.audience.member(room_id, user_id).cloned() {
                Some(mut member) => {
                    if *on {
                        // An archived room makes nothing new; what was made stays.
                        hold_items(changes, memory, user_id, room_id)?;
                    }
                    member.archived = *on;
                    memory.audience.put_member(changes, room_id, member)
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
            memory,
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
            memory,
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
            // A waiting item shows the latest body: derived ones read it from the post. An
            // edit to an empty body (a message that carries a file) previews as empty rather
            // than keep the earlier body (H-V1); this model keeps no attachment names.
            update_post(changes, room_id, message_id, |post| {
                post.item.preview = preview(body, &[]);
            })?;
            update_items(changes, room_id, message_id, |key, item, changes| {
                item.preview = preview(body, &[]);
                changes.put(key, item)
            })
        }
        Event::MessageDeleted {
            room_id,
            message_id,
            ..
        } => {
            // A deleted message is not news any more, and its body must not go out (R-M4).
            update_post(changes, room_id, message_id, |post| post.deleted = true)?;
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

/// Posts `item` once in its room and marks every member who wants it (R-A3) and had nothing
/// waiting in the room: O(1) writes per message, plus one per member going from nothing
/// waiting to something.
fn notify(
    changes: &mut Changes<'_>,
    memory: &mut Memory,
    position: u64,
    item: ItemRecord,
) -> Result<(), ProjectionError> {
    let room = item.room_id;
    let Memory { audience, schedule } = memory;
    let sequence = audience.sequence(&room).saturating_add(1);
    audience.set_sequence(changes, &room, sequence)?;
    let mut recipients = 0u32;
    let mut hasher = Sha256::new();
    for member in audience.members(&room) {
        let user = &member.user_id;
        if *user == item.author || member.archived {
            continue;
        }
        let settings = audience.settings(user);
        let frequency = settings.map_or_else(NotificationFrequency::default, |settings| {
            settings.frequency
        });
        let Some(period) = period_ms(frequency) else {
            continue;
        };
        if settings.is_some_and(|settings| settings.blocks.binary_search(&item.author).is_ok()) {
            continue;
        }
        recipients = recipients.saturating_add(1);
        hasher.update(user.as_str().as_bytes());
        hasher.update([0]);
        if schedule.marker(user, &room).is_some() {
            // Something already waits in the room, so the user's batch is already due at a
            // time this (newer) item does not change.
            continue;
        }
        schedule.set_marker(user, &room, sequence);
        if schedule.pending(user).is_none() {
            schedule.schedule(
                user,
                item.sent_at.plus_millis(period),
                item.sent_at,
                // Items are held only while something waits, so nothing is held yet.
                false,
            );
        }
    }
    changes.put(
        message_key(&item.message_id),
        &MessageRecord { position, sequence },
    )?;
    changes.put(
        post_key(&room, sequence),
        &PostRecord {
            position,
            item,
            deleted: false,
            recipients,
            recipients_hash: hasher.finalize().into(),
        },
    )
}

/// Turns `user`'s items derived from `room` into items held on their own (`n/`), before an
/// event that ends what the derivation assumes. Costs one write per item waiting there, on
/// rare events (leaving, archiving, blocking, `off`).
fn hold_items(
    changes: &mut Changes<'_>,
    memory: &mut Memory,
    user: &UserId,
    room: &RoomId,
) -> Result<(), ProjectionError> {
    let Memory { audience, schedule } = memory;
    let Some(since) = schedule.marker(user, room) else {
        return Ok(());
    };
    let blocks = audience
        .settings(user)
        .map_or(&[][..], |settings| settings.blocks.as_slice());
    let after = post_key(room, since.saturating_sub(1));
    let mut any = false;
    for (_, post) in changes.scan::<PostRecord>(&posts_prefix(room), Some(&after))? {
        if derives_item(&post, user, blocks) {
            changes.put(item_key(user, post.position), &post.item)?;
            any = true;
        }
    }
    schedule.remove_marker(user, room);
    // A marker means something waits, so the user has a due time: flag it as holding items.
    match schedule.pending(user) {
        Some(pending) if any && !pending.held => {
            schedule.schedule(user, pending.due, pending.oldest_sent_at, true);
            Ok(())
        }
        _ => Ok(()),
    }
}

/// Forgets what waits for `user` in `room` (they left it): the derived items (the marker) and
/// the items held on their own. The due time stays; a batch that finds nothing sends nothing.
fn drop_items(
    changes: &mut Changes<'_>,
    schedule: &mut Schedule,
    user: &UserId,
    room: &RoomId,
) -> Result<(), ProjectionError> {
    schedule.remove_marker(user, room);
    for (key, item) in changes.scan::<ItemRecord>(&items_prefix(user), None)? {
        if item.room_id == *room {
            changes.remove(key);
        }
    }
    Ok(())
}

/// [`hold_items`] in every room `user` has a marker in.
fn hold_all_items(
    changes: &mut Changes<'_>,
    memory: &mut Memory,
    user: &UserId,
) -> Result<(), ProjectionError> {
    for (room, _) in memory.schedule.marked_rooms(user) {
        hold_items(changes, memory, user, &room)?;
    }
    Ok(())
}

/// Runs `change` on a message's post, if it has one.
fn update_post(
    changes: &mut Changes<'_>,
    room_id: &RoomId,
    message_id: &MessageId,
    change: impl FnOnce(&mut PostRecord),
) -> Result<(), ProjectionError> {
    let Some(MessageRecord { sequence, .. }) =
        changes.get::<MessageRecord>(&message_key(message_id))?
    else {
        return Ok(());
    };
    let key = post_key(room_id, sequence);
    let Some(mut post) = changes.get::<PostRecord>(&key)? else {
        return Ok(());
    };
    change(&mut post);
    changes.put(key, &post)
}

/// Runs `change` on every item of a message held on its own by a current member (an edit or
/// deletion: rare, so reading each member's is fine).
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
    let members = changes.scan::<MemberRecord>(&members_prefix(room_id), None)?;
    for (_, member) in members {
        let key = item_key(&member.user_id, position);
        if let Some(mut item) = changes.get::<ItemRecord>(&key)? {
            change(key, &mut item, changes)?;
        }
    }
    Ok(())
}
