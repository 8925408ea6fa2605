//! The `rooms` read model: each user's room list (protocol.md §3 Room) with their own view of
//! every room — favorite, hidden, archived, unread (R-S1..R-S4) — and the rooms' names, members,
//! last message and contract; queries `list`, `get` and `member_rooms` (docs/queries.md).
//! Presence (R-A1) comes from the volatile [`Presence`] table, away periods (R-A2) from the log,
//! both judged at the query's `now`, so nothing here changes with time alone.
//!
//! Store catalogue (`<data_dir>/projections/rooms/`, one fjall keyspace):
//!
//! | key | value | what |
//! |---|---|---|
//! | `u/<user>\0` | [`UserRecord`] | display name, visibility, away period |
//! | `r/<room>` | [`RoomRecord`] | kind, name, contract, last message, last activity, message sequence |
//! | `m/<room><user>\0` | [`ViewRecord`] | a member's own view; present exactly for members |
//! | `s/<user>\0<room>` | `()` | a user's room set; present exactly for members |
//! | `g/<message>` | [`MessageIndex`] | where a message is (its room and sequence) |
//! | `p/<room><chunk>` | `Vec<`[`PostRecord`]`>` | a room's messages in order, [`POSTS_PER_CHUNK`] a key (chunk *c* holds sequences *c*·64 + 1 …), for a marker's own count |
//! | `d/<room><sequence>` | `()` | a room's deleted messages, for unread counts |
//! | `v/layout` | `u32` | [`LAYOUT_VERSION`], written when the store is created |
//!
//! A message costs O(1) keys whatever the room's size: its room record, its post and index
//! records and its author's view (`r/`, `p/`, `g/`, `m/`). Those are held decoded in memory
//! between images (`Rooms::held`) and put into the store's image with its checkpoint
//! ([`crate::store::Changes::commit_holding`]), encoded once per image, not once per message: a
//! room changed by ten thousand messages between two images is written once, and its posts go
//! out sixty-four to a key. A crash loses them with the store's memtable, and both are caught
//! up from the last image's checkpoint. Nothing per member is written, so what a member sees
//! that depends on later messages is derived when asked:
//! - unread (R-S4) = room sequence − the marker's sequence − the member's own live messages after
//!   the marker (kept in the view: only the member's own messages and deletions change it)
//!   − the room's deleted messages after the marker (counted from `d/`, which only deletions
//!   write; skipped when the room's last deletion is at or before the marker);
//! - hidden (R-S2) = hidden at the room sequence the room still has (every new message ends it);
//! - a user's rooms newest first: the user's room set (`s/`, written only on membership
//!   changes) sorted by each room's last activity when the list is asked for. The cursor is the
//!   place in that order (the bitwise complement of the ordered time, then the room id).

use std::collections::HashMap;
use std::path::Path;
use std::sync::{PoisonError, RwLock};

use domain::{ContractId, Event, MembershipChange, MessageId, RoomId, RoomKind, Timestamp, UserId};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use crate::envelope::EventEnvelope;
use crate::error::{ProjectionError, QueryError};
use crate::presence::Presence;
use crate::query::{encode_cursor, QueryRequest};
use crate::runtime::{OpenFor, Projector};
use crate::store::{ordered_millis, Changes, Direction, Dump, HeldRecords, Key, Store};
use crate::text::preview;
use protocol::query::{Cursor, PageLimit, RoomView, RoomsQuery};

/// The model's name.
pub const NAME: &str = "rooms";

/// The version of the key layout above. Layout 1 (before `v/layout` existed) wrote a view and
/// two activity keys per member per message; its views decode as this layout's without an error
/// but mean something else, so a store of another layout is refused
/// ([`ProjectionError::Layout`]) rather than read. Layout 2 had one `p/` key per message.
pub const LAYOUT_VERSION: u32 = 3;

/// A room's posts per `p/` record: few enough that a chunk (about a kilobyte) is cheap to
/// encode again at each image while a room is busy, many enough that the posts of a rebuild
/// are a small share of its keys.
pub const POSTS_PER_CHUNK: u64 = 64;

/// About what a held message costs in an image (its `g/` key and value, its share of a `p/`
/// chunk besides the author): what counts towards the image's size limit.
const HELD_MESSAGE_BYTES: usize = 48;

/// The most room ids `member_rooms` returns (about 400 KiB of JSON, well inside a message).
pub const MEMBER_ROOMS_MAX: usize = 10_000;

/// A registered user as room lists show them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UserRecord {
    /// The name others see.
    pub display_name: String,
    /// "Online for messages" (R-A1); on by default.
    pub visible: bool,
    /// The out-of-office period, if one is set (R-A2).
    pub away: Option<AwayRecord>,
}

/// An out-of-office period (R-A2).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AwayRecord {
    /// The away message.
    pub message: String,
    /// Start (inclusive).
    pub from: Timestamp,
    /// End (exclusive).
    pub until: Timestamp,
}

/// A room, the same for every member.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RoomRecord {
    /// The room.
    pub room_id: RoomId,
    /// Its kind (an interview room becomes a contract room on `contract_started`).
    pub kind: RoomKind,
    /// Its name (empty for direct rooms, which show the other person's display name).
    pub name: String,
    /// The contract whose room it is.
    pub contract: Option<ContractRecord>,
    /// The newest message.
    pub last_message: Option<LastMessage>,
    /// When the room was created or last got a message: the list's order.
    pub last_activity_at: Timestamp,
    /// Messages and automatic replies so far: the sequence of the newest (0: none yet).
    pub message_sequence: u64,
    /// The sequence of the newest message deleted (0: none), so that a marker at or after it
    /// needs no look at `d/`.
    pub deleted_sequence_max: u64,
}

/// A room's contract (R-C2).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ContractRecord {
    /// The contract.
    pub contract_id: ContractId,
    /// Between `contract_started` and `contract_ended`.
    pub active: bool,
}

/// The newest message of a room, as the list previews it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LastMessage {
    /// The message.
    pub message_id: MessageId,
    /// Its author.
    pub author: UserId,
    /// The start of its latest body; empty once deleted.
    pub preview: String,
    /// What an empty body previews as: the first attachment's name or URL.
    pub attachment_label: String,
    /// When it was sent.
    pub sent_at: Timestamp,
    /// Whether it was deleted (R-M4).
    pub deleted: bool,
}

/// One member's own view of a room (R-S1..R-S4).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ViewRecord {
    /// The member.
    pub user_id: UserId,
    /// R-S1.
    pub favorite: bool,
    /// R-S2: the room's message sequence when the member hid it; hidden while the room is
    /// still at it (every new message ends it). `None`: not hidden.
    pub hidden_at_sequence: Option<u64>,
    /// R-S3; kept when messages arrive.
    pub archived: bool,
    /// The sequence of the message the member read up to (0: none).
    pub read_sequence: u64,
    /// The member's own messages after the marker that are not deleted: what R-S4 leaves out of
    /// the room's count besides deleted messages.
    pub own_after_read: u64,
}

impl ViewRecord {
    /// R-S2: hidden until a message arrives after hiding.
    fn hidden(&self, room: &RoomRecord) -> bool {
        self.hidden_at_sequence == Some(room.message_sequence)
    }
}

/// Where a message is.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MessageIndex {
    /// Its room.
    pub room_id: RoomId,
    /// Its place among the room's messages (from 1).
    pub sequence: u64,
}

/// A message as unread counts need it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PostRecord {
    /// Its author (an automatic reply's is the away member).
    pub author: UserId,
    /// Deleted messages are not unread.
    pub deleted: bool,
}

/// The `rooms` read model.
#[derive(Debug)]
pub struct Rooms {
    store: Store,
    presence: Presence,
    /// The records messages change, held decoded since the last image: room records, views,
    /// post chunks and message index entries. Every message changes its room's record and its
    /// author's view and adds a post and an index entry, so they are kept here and encoded once
    /// per image ([`Changes::commit_holding`]) rather than once per message. Applying has the
    /// model to itself (`&mut`); queries read rooms and views under the read lock.
    held: RwLock<Held>,
    /// Why an apply failed part way, if one did: `held` may then hold part of a batch, so the
    /// model refuses all further work until reopened (which resumes from the last image).
    broken: Option<String>,
}

/// Records held decoded in memory until the next image (see [`Rooms::held`]). A view is held
/// only while it exists in the store too: membership (`m/`, `s/`) is written through the
/// store, so scans of a room's members see it; only the view's contents are held. Queries read
/// rooms and views; posts and the message index only applying reads.
#[derive(Debug, Default)]
struct Held {
    rooms: HashMap<RoomId, RoomRecord>,
    views: HashMap<RoomId, HashMap<UserId, ViewRecord>>,
    /// Post chunks changed since the last image, by room and chunk number.
    posts: HashMap<RoomId, HashMap<u64, Vec<PostRecord>>>,
    /// Messages sent since the last image.
    messages: HashMap<MessageId, MessageIndex>,
    /// About what the held posts and messages encode to (rooms and views are bounded by the
    /// number of rooms and members, not by the messages, and left out).
    bytes: usize,
}

impl Held {
    fn view(&self, room: &RoomId, user: &UserId) -> Option<&ViewRecord> {
        self.views.get(room).and_then(|views| views.get(user))
    }

    /// Puts every held record into an image (or a dump).
    fn put_into(&self, image: &mut HeldRecords) -> Result<(), ProjectionError> {
        for (room_id, room) in &self.rooms {
            image.put(room_key(room_id), room)?;
        }
        for (room_id, views) in &self.views {
            for (user, view) in views {
                image.put(view_key(room_id, user), view)?;
            }
        }
        for (room_id, chunks) in &self.posts {
            for (chunk, posts) in chunks {
                image.put(post_key(room_id, *chunk), posts)?;
            }
        }
        for (message_id, index) in &self.messages {
            image.put(message_key(message_id), index)?;
        }
        Ok(())
    }

    /// Puts every held record into an image and forgets them: the store has them now.
    fn hand_over(&mut self, image: &mut HeldRecords) -> Result<(), ProjectionError> {
        self.put_into(image)?;
        self.rooms.clear();
        self.views.clear();
        self.posts.clear();
        self.messages.clear();
        self.bytes = 0;
        Ok(())
    }
}

impl Rooms {
    /// Opens the model under a data directory (`<data_dir>/projections/rooms/`).
    /// A swap a crash interrupted is finished or undone first ([`crate::swap::recover`]).
    ///
    /// A store of an earlier key layout ([`ProjectionError::Layout`]) is deleted and the model
    /// starts afresh at position 0: a read model is derived from the log, so an upgrade
    /// rebuilds it as it catches up instead of refusing to start.
    pub fn open(data_dir: &Path) -> Result<Rooms, ProjectionError> {
        crate::store::open_served(data_dir, NAME, Rooms::open_path)
    }

    /// Opens the model in the directory `path`, to serve.
    pub fn open_path(path: &Path) -> Result<Rooms, ProjectionError> {
        Rooms::open_path_for(path, OpenFor::Serving)
    }

    /// Opens the model in the directory `path` for `purpose` (a rebuild writes in bulk:
    /// [`Store::open_for`]).
    ///
    /// Fails with [`ProjectionError::Layout`] for a store of another key layout.
    pub fn open_path_for(path: &Path, purpose: OpenFor) -> Result<Rooms, ProjectionError> {
        Ok(Rooms {
            store: crate::store::checked_layout(
                Store::open_for(path, purpose)?,
                NAME,
                LAYOUT_VERSION,
            )?,
            presence: Presence::new(),
            held: RwLock::default(),
            broken: None,
        })
    }

    /// A model in a temporary store (tests, rebuild comparisons).
    pub fn temporary() -> Result<Rooms, ProjectionError> {
        Ok(Rooms {
            store: crate::store::checked_layout(Store::temporary()?, NAME, LAYOUT_VERSION)?,
            presence: Presence::new(),
            held: RwLock::default(),
            broken: None,
        })
    }

    /// Uses `presence` as the heartbeat table: the one the rooms runner fills
    /// (`Runner::with_presence`), handed to every instance of the model, a live rebuild's too.
    #[must_use]
    pub fn with_presence(mut self, presence: Presence) -> Rooms {
        self.presence = presence;
        self
    }

    /// The heartbeat table.
    pub fn presence_table(&self) -> &Presence {
        &self.presence
    }

    /// The held records, for a query; fails when an apply failed part way.
    fn held(&self) -> Result<std::sync::RwLockReadGuard<'_, Held>, QueryError> {
        if let Some(why) = &self.broken {
            return Err(QueryError::Unavailable(broken_message(why)));
        }
        Ok(self.held.read().unwrap_or_else(PoisonError::into_inner))
    }

    /// A room's record: the held one, else the store's.
    fn room_record(&self, held: &Held, room: &RoomId) -> Result<Option<RoomRecord>, QueryError> {
        match held.rooms.get(room) {
            Some(record) => Ok(Some(record.clone())),
            None => Ok(self.store.get::<RoomRecord>(&room_key(room))?),
        }
    }

    /// A member's view: the held one, else the store's (absent: not a member).
    fn view_record(
        &self,
        held: &Held,
        room: &RoomId,
        user: &UserId,
    ) -> Result<Option<ViewRecord>, QueryError> {
        match held.view(room, user) {
            Some(view) => Ok(Some(view.clone())),
            None => Ok(self.store.get::<ViewRecord>(&view_key(room, user))?),
        }
    }

    fn list(
        &self,
        user: &UserId,
        view: RoomView,
        limit: PageLimit,
        cursor: Option<&Cursor>,
        now: Timestamp,
    ) -> Result<Value, QueryError> {
        let limit = limit.items();
        let after = cursor.map(Cursor::bytes).transpose()?;
        let mut rooms = Vec::new();
        let mut last_place: Vec<u8> = Vec::new();
        let mut next_cursor = None;
        let held = self.held()?;
        for (place, room) in self.rooms_by_activity(&held, user)? {
            // The cursor is the place of the last room of the page before (exclusive).
            if after.as_ref().is_some_and(|after| place <= *after) {
                continue;
            }
            let Some(member_view) = self.view_record(&held, &room.room_id, user)? else {
                continue;
            };
            let standing = self.standing(&room, &member_view)?;
            if !admits(view, &member_view, &standing) {
                continue;
            }
            if rooms.len() == limit {
                next_cursor = Some(encode_cursor(&last_place));
                break;
            }
            rooms.push(self.room_json(&room, &member_view, &standing, user, now)?);
            last_place = place;
        }
        Ok(json!({"rooms": rooms, "next_cursor": next_cursor}))
    }

    /// `user`'s rooms newest activity first, each with its place in that order (what a cursor
    /// holds): the room set read and sorted now, since no key per member follows each message.
    fn rooms_by_activity(
        &self,
        held: &Held,
        user: &UserId,
    ) -> Result<Vec<(Vec<u8>, RoomRecord)>, QueryError> {
        let prefix = room_set_prefix(user);
        let mut rooms = Vec::new();
        for entry in self.store.scan::<()>(&prefix, None, Direction::Forward) {
            let (key, ()) = entry?;
            let Some(room_id) = room_of_set_suffix(&key[prefix.len()..]) else {
                continue;
            };
            let Some(room) = self.room_record(held, &room_id)? else {
                continue;
            };
            rooms.push((activity_place(room.last_activity_at, &room_id), room));
        }
        rooms.sort_unstable_by(|a, b| a.0.cmp(&b.0));
        Ok(rooms)
    }

    /// What a member's view shows that later messages change (R-S2, R-S4), derived from the
    /// room's sequences and the view.
    fn standing(&self, room: &RoomRecord, view: &ViewRecord) -> Result<Standing, QueryError> {
        let deleted_after = if room.deleted_sequence_max <= view.read_sequence {
            0
        } else {
            let prefix = Key::new(b"d/").uuid(&room.room_id.0).build();
            let after = deleted_key(&room.room_id, view.read_sequence);
            let mut count = 0u64;
            for entry in self
                .store
                .scan::<()>(&prefix, Some(&after), Direction::Forward)
            {
                entry?;
                count += 1;
            }
            count
        };
        let unread = room
            .message_sequence
            .checked_sub(view.read_sequence)
            .and_then(|after| after.checked_sub(view.own_after_read))
            .and_then(|after| after.checked_sub(deleted_after));
        // The three parts are disjoint subsets of the messages after the marker, so the
        // difference is never negative; if it were, the model would be corrupt.
        let unread = unread.ok_or_else(|| {
            QueryError::Unavailable(format!(
                "room {}: unread count below zero (sequence {}, marker {}, own {}, deleted {})",
                room.room_id,
                room.message_sequence,
                view.read_sequence,
                view.own_after_read,
                deleted_after
            ))
        })?;
        Ok(Standing {
            hidden: view.hidden(room),
            unread,
        })
    }

    fn get(&self, user: &UserId, room_id: &RoomId, now: Timestamp) -> Result<Value, QueryError> {
        // A non-member learns nothing, not even that the room exists (R-R6).
        let held = self.held()?;
        let member_view = self
            .view_record(&held, room_id, user)?
            .ok_or(QueryError::NotFound)?;
        let room = self
            .room_record(&held, room_id)?
            .ok_or(QueryError::NotFound)?;
        let standing = self.standing(&room, &member_view)?;
        self.room_json(&room, &member_view, &standing, user, now)
    }

    fn member_rooms(&self, user: &UserId) -> Result<Value, QueryError> {
        let room_ids: Vec<String> = self
            .rooms_by_activity(&*self.held()?, user)?
            .into_iter()
            .take(MEMBER_ROOMS_MAX)
            .map(|(_, room)| room.room_id.to_string())
            .collect();
        Ok(json!({"room_ids": room_ids}))
    }

    /// The Room of protocol.md §3 as `user` sees it at `now`.
    fn room_json(
        &self,
        room: &RoomRecord,
        member_view: &ViewRecord,
        standing: &Standing,
        user: &UserId,
        now: Timestamp,
    ) -> Result<Value, QueryError> {
        let mut members = Vec::new();
        let mut other_name = None;
        for entry in self.store.scan::<ViewRecord>(
            &Key::new(b"m/").uuid(&room.room_id.0).build(),
            None,
            Direction::Forward,
        ) {
            let (_, view) = entry?;
            let record = self.store.get::<UserRecord>(&user_key(&view.user_id))?;
            let display_name = record
                .as_ref()
                .map_or_else(|| view.user_id.to_string(), |r| r.display_name.clone());
            if &view.user_id != user && other_name.is_none() {
                other_name = Some(display_name.clone());
            }
            let online = record.as_ref().is_some_and(|r| r.visible)
                && self.presence.is_active(&view.user_id, now);
            let away = record
                .as_ref()
                .and_then(|r| r.away.as_ref())
                .filter(|away| away.from <= now && now < away.until)
                .map(|away| json!({"message": away.message, "until": away.until}));
            members.push(json!({
                "user_id": view.user_id,
                "display_name": display_name,
                "online": online,
                "away": away,
            }));
        }
        let name = match room.kind {
            RoomKind::Direct => other_name.unwrap_or_default(),
            _ => room.name.clone(),
        };
        let last_message = room.last_message.as_ref().map(|last| {
            json!({
                "message_id": last.message_id,
                "author": last.author,
                "preview": if last.deleted { None } else { Some(&last.preview) },
                "sent_at": last.sent_at,
                "deleted": last.deleted,
            })
        });
        let contract = room.contract.as_ref().map(
            |contract| json!({"contract_id": contract.contract_id, "active": contract.active}),
        );
        Ok(json!({
            "room_id": room.room_id,
            "kind": room.kind.as_str(),
            "name": name,
            "members": members,
            "last_message": last_message,
            "last_activity_at": room.last_activity_at,
            "unread": standing.unread,
            "favorite": member_view.favorite,
            "hidden": standing.hidden,
            "archived": member_view.archived,
            "contract": contract,
        }))
    }
}

/// A member's view of a room as far as later messages change it, derived at query time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Standing {
    /// R-S2.
    hidden: bool,
    /// R-S4.
    unread: u64,
}

/// Whether a room of a member's `view` (with its `standing`) is in the list `list` (R-S1..R-S4).
fn admits(list: RoomView, view: &ViewRecord, standing: &Standing) -> bool {
    match list {
        RoomView::Inbox => !standing.hidden && !view.archived,
        RoomView::Favorites => view.favorite,
        RoomView::Hidden => standing.hidden,
        RoomView::Archived => view.archived,
        RoomView::Unread => standing.unread > 0,
    }
}

impl Projector for Rooms {
    fn name(&self) -> &'static str {
        NAME
    }

    fn position(&self) -> u64 {
        self.store.checkpoint()
    }

    fn apply(&mut self, batch: &[EventEnvelope]) -> Result<(), ProjectionError> {
        if let Some(why) = &self.broken {
            return Err(ProjectionError::Store(broken_message(why)));
        }
        let fresh = crate::unapplied(batch, self.store.checkpoint())?;
        let Some(last) = fresh.last() else {
            return Ok(());
        };
        let held = self.held.get_mut().unwrap_or_else(PoisonError::into_inner);
        let mut apply = Apply {
            changes: self.store.changes()?,
            held,
        };
        let applied = fresh
            .iter()
            .try_for_each(|envelope| apply_event(&mut apply, envelope))
            .and_then(|()| {
                let Apply { changes, held } = apply;
                changes.commit_holding(last.position, held.bytes, |image| held.hand_over(image))
            });
        // The held records were changed in place, so a batch that failed part way cannot be
        // taken back as the store's changes are: refuse everything until reopened.
        if let Err(error) = &applied {
            self.broken = Some(error.to_string());
        }
        applied
    }

    type Query = RoomsQuery;

    fn query(
        &self,
        request: &QueryRequest<RoomsQuery>,
        now: Timestamp,
    ) -> Result<Value, QueryError> {
        let user = request.caller_user()?;
        match &request.op {
            RoomsQuery::List {
                view,
                limit,
                cursor,
            } => self.list(&user, *view, *limit, cursor.as_ref(), now),
            RoomsQuery::Get { room_id } => self.get(&user, room_id, now),
            RoomsQuery::MemberRooms => self.member_rooms(&user),
        }
    }

    fn dump(&self) -> Result<Dump, ProjectionError> {
        let held = self.held.read().unwrap_or_else(PoisonError::into_inner);
        self.store.dump_holding(&[], |image| held.put_into(image))
    }

    fn flush(&self) -> Result<(), ProjectionError> {
        if let Some(why) = &self.broken {
            return Err(ProjectionError::Store(broken_message(why)));
        }
        let mut held = self.held.write().unwrap_or_else(PoisonError::into_inner);
        self.store.flush_holding(|image| held.hand_over(image))
    }
}

fn broken_message(why: &str) -> String {
    format!("applying to the rooms model failed ({why}); it must be reopened")
}

fn user_key(user: &UserId) -> Vec<u8> {
    Key::new(b"u/").text(user.as_str()).build()
}

fn room_key(room: &RoomId) -> Vec<u8> {
    Key::new(b"r/").uuid(&room.0).build()
}

fn view_key(room: &RoomId, user: &UserId) -> Vec<u8> {
    Key::new(b"m/").uuid(&room.0).text(user.as_str()).build()
}

fn room_set_prefix(user: &UserId) -> Vec<u8> {
    Key::new(b"s/").text(user.as_str()).build()
}

fn room_set_key(user: &UserId, room: &RoomId) -> Vec<u8> {
    Key::new(b"s/").text(user.as_str()).uuid(&room.0).build()
}

/// A room's place in a user's list: ascending places are newest activity first (the
/// complement of the ordered time), rooms of the same time by id. The same bytes the list's
/// cursors have always held.
fn activity_place(activity: Timestamp, room: &RoomId) -> Vec<u8> {
    Key::new(b"")
        .number(!ordered_millis(activity))
        .uuid(&room.0)
        .build()
}

fn message_key(message: &MessageId) -> Vec<u8> {
    Key::new(b"g/").uuid(&message.0).build()
}

fn post_key(room: &RoomId, chunk: u64) -> Vec<u8> {
    Key::new(b"p/").uuid(&room.0).number(chunk).build()
}

fn deleted_key(room: &RoomId, sequence: u64) -> Vec<u8> {
    Key::new(b"d/").uuid(&room.0).number(sequence).build()
}

/// The room of a room set key's suffix (its 16 bytes of room id).
fn room_of_set_suffix(suffix: &[u8]) -> Option<RoomId> {
    let bytes: [u8; 16] = suffix.try_into().ok()?;
    Some(RoomId(uuid::Uuid::from_bytes(bytes)))
}

/// One batch being applied: the store's changes, and the held records (changed in place).
struct Apply<'store, 'held> {
    changes: Changes<'store>,
    held: &'held mut Held,
}

impl Apply<'_, '_> {
    /// A room's record to change, held from now on (read from the store if not yet held).
    fn room(&mut self, room: &RoomId) -> Result<Option<&mut RoomRecord>, ProjectionError> {
        if !self.held.rooms.contains_key(room) {
            let Some(record) = self.changes.get::<RoomRecord>(&room_key(room))? else {
                return Ok(None);
            };
            self.held.rooms.insert(*room, record);
        }
        Ok(self.held.rooms.get_mut(room))
    }

    /// A member's view to change, held from now on; `None` for a non-member.
    fn view(
        &mut self,
        room: &RoomId,
        user: &UserId,
    ) -> Result<Option<&mut ViewRecord>, ProjectionError> {
        if self.held.view(room, user).is_none() {
            let Some(view) = self.changes.get::<ViewRecord>(&view_key(room, user))? else {
                return Ok(None);
            };
            self.held
                .views
                .entry(*room)
                .or_default()
                .insert(user.clone(), view);
        }
        Ok(self
            .held
            .views
            .get_mut(room)
            .and_then(|views| views.get_mut(user)))
    }

    /// Chunk `chunk` of a room's posts to change, held from now on (empty if it has none yet).
    fn chunk(
        &mut self,
        room: &RoomId,
        chunk: u64,
    ) -> Result<&mut Vec<PostRecord>, ProjectionError> {
        match self.held.posts.entry(*room).or_default().entry(chunk) {
            std::collections::hash_map::Entry::Occupied(held) => Ok(held.into_mut()),
            std::collections::hash_map::Entry::Vacant(vacant) => {
                let posts = self
                    .changes
                    .get::<Vec<PostRecord>>(&post_key(room, chunk))?
                    .unwrap_or_default();
                Ok(vacant.insert(posts))
            }
        }
    }

    /// Where a message is: held, else the store's `g/` record.
    fn message_index(&self, message: &MessageId) -> Result<Option<MessageIndex>, ProjectionError> {
        match self.held.messages.get(message) {
            Some(index) => Ok(Some(index.clone())),
            None => self.changes.get::<MessageIndex>(&message_key(message)),
        }
    }

    /// Calls `each` with every post of a room after the sequence `after` up to `last` (the
    /// room's sequence), held or stored, and the post's sequence.
    fn posts_after(
        &self,
        room: &RoomId,
        after: u64,
        last: u64,
        mut each: impl FnMut(u64, &PostRecord),
    ) -> Result<(), ProjectionError> {
        if last <= after {
            return Ok(());
        }
        let held = self.held.posts.get(room);
        for chunk in after / POSTS_PER_CHUNK..=(last - 1) / POSTS_PER_CHUNK {
            let stored;
            let posts = match held.and_then(|chunks| chunks.get(&chunk)) {
                Some(posts) => posts,
                None => {
                    stored = self
                        .changes
                        .get::<Vec<PostRecord>>(&post_key(room, chunk))?
                        .unwrap_or_default();
                    &stored
                }
            };
            for (offset, post) in (0u64..).zip(posts) {
                let sequence = chunk * POSTS_PER_CHUNK + offset + 1;
                if sequence > after {
                    each(sequence, post);
                }
            }
        }
        Ok(())
    }
}

fn apply_event(apply: &mut Apply<'_, '_>, envelope: &EventEnvelope) -> Result<(), ProjectionError> {
    apply_record_change(apply, envelope)?;
    // Who joins or leaves: the domain's one definition, once the room's record exists (the
    // event may be what creates it).
    match envelope.event.membership_change() {
        Some(MembershipChange::Joined { room_id, users }) => {
            if apply.room(&room_id)?.is_none() {
                return Ok(());
            }
            for user in users {
                add_member(apply, &room_id, user)?;
            }
            Ok(())
        }
        Some(MembershipChange::Left { room_id, user }) => remove_member(apply, &room_id, user),
        None => Ok(()),
    }
}

/// What an event changes besides membership.
fn apply_record_change(
    apply: &mut Apply<'_, '_>,
    envelope: &EventEnvelope,
) -> Result<(), ProjectionError> {
    match &envelope.event {
        Event::UserRegistered {
            user_id,
            display_name,
            ..
        } => apply.changes.put(
            user_key(user_id),
            &UserRecord {
                display_name: display_name.clone(),
                visible: true,
                away: None,
            },
        ),
        Event::UserDisplayNameChanged {
            user_id,
            display_name,
        } => update_user(apply, user_id, |user| {
            user.display_name.clone_from(display_name);
        }),
        Event::OutOfOfficeSet {
            user_id,
            message,
            from,
            until,
        } => update_user(apply, user_id, |user| {
            user.away = Some(AwayRecord {
                message: message.clone(),
                from: *from,
                until: *until,
            });
        }),
        Event::OutOfOfficeCleared { user_id } => {
            update_user(apply, user_id, |user| user.away = None)
        }
        Event::OnlineVisibilityChanged { user_id, visible } => {
            update_user(apply, user_id, |user| user.visible = *visible)
        }
        Event::DirectRoomOpened {
            room_id, opened_at, ..
        } => create_room(apply, *room_id, RoomKind::Direct, String::new(), *opened_at),
        Event::GroupRoomCreated {
            room_id,
            name,
            created_at,
            ..
        } => create_room(apply, *room_id, RoomKind::Group, name.clone(), *created_at),
        Event::InterviewRoomOpened {
            room_id,
            title,
            opened_at,
            ..
        } => create_room(
            apply,
            *room_id,
            RoomKind::Interview,
            title.clone(),
            *opened_at,
        ),
        Event::ContractStarted {
            contract_id,
            room_id,
            room_created,
            title,
            started_at,
            ..
        } => {
            if *room_created {
                create_room(
                    apply,
                    *room_id,
                    RoomKind::Contract,
                    title.clone(),
                    *started_at,
                )?;
            }
            let Some(room) = apply.room(room_id)? else {
                return Ok(());
            };
            // An existing room (an interview, say) becomes the contract's room, keeping its
            // history and members (R-C2).
            room.kind = RoomKind::Contract;
            room.name.clone_from(title);
            room.contract = Some(ContractRecord {
                contract_id: contract_id.clone(),
                active: true,
            });
            Ok(())
        }
        Event::ContractEnded { room_id, .. } => update_room(apply, room_id, |room| {
            if let Some(contract) = room.contract.as_mut() {
                contract.active = false;
            }
        }),
        Event::RoomRenamed { room_id, name, .. } => {
            update_room(apply, room_id, |room| room.name.clone_from(name))
        }
        Event::RoomFavoriteChanged {
            room_id,
            user_id,
            on,
        } => update_view(apply, room_id, user_id, |view| view.favorite = *on),
        Event::RoomHiddenChanged {
            room_id,
            user_id,
            on,
        } => {
            let Some(sequence) = apply.room(room_id)?.map(|room| room.message_sequence) else {
                return Ok(());
            };
            update_view(apply, room_id, user_id, |view| {
                view.hidden_at_sequence = on.then_some(sequence);
            })
        }
        Event::RoomArchivedChanged {
            room_id,
            user_id,
            on,
        } => update_view(apply, room_id, user_id, |view| view.archived = *on),
        Event::RoomMarkedRead {
            room_id,
            user_id,
            message_id,
        } => mark_read(apply, room_id, user_id, message_id),
        Event::MessageSent {
            room_id,
            message_id,
            author,
            body,
            attachments,
            sent_at,
            ..
        } => post(
            apply,
            room_id,
            LastMessage {
                message_id: *message_id,
                author: author.clone(),
                preview: preview(body, attachments),
                attachment_label: preview("", attachments),
                sent_at: *sent_at,
                deleted: false,
            },
        ),
        Event::AutoReplySent {
            room_id,
            message_id,
            author,
            body,
            sent_at,
            ..
        } => post(
            apply,
            room_id,
            LastMessage {
                message_id: *message_id,
                author: author.clone(),
                preview: preview(body, &[]),
                attachment_label: String::new(),
                sent_at: *sent_at,
                deleted: false,
            },
        ),
        Event::MessageEdited {
            room_id,
            message_id,
            body,
            ..
        } => update_room(apply, room_id, |room| {
            if let Some(last) = room.last_message.as_mut() {
                if last.message_id == *message_id && !last.deleted {
                    last.preview = if body.is_empty() {
                        last.attachment_label.clone()
                    } else {
                        preview(body, &[])
                    };
                }
            }
        }),
        Event::MessageDeleted {
            room_id,
            message_id,
            ..
        } => delete_message(apply, room_id, message_id),
        Event::MemberAdded { .. }
        | Event::MemberLeft { .. }
        | Event::UserBlocked { .. }
        | Event::UserUnblocked { .. }
        | Event::NotificationFrequencyChanged { .. }
        | Event::MessageReported { .. }
        | Event::CallStarted { .. }
        | Event::CallEnded { .. }
        | Event::FileRegistered { .. } => Ok(()),
    }
}

fn update_user(
    apply: &mut Apply<'_, '_>,
    user: &UserId,
    change: impl FnOnce(&mut UserRecord),
) -> Result<(), ProjectionError> {
    let key = user_key(user);
    let Some(mut record) = apply.changes.get::<UserRecord>(&key)? else {
        return Ok(());
    };
    change(&mut record);
    apply.changes.put(key, &record)
}

fn update_room(
    apply: &mut Apply<'_, '_>,
    room: &RoomId,
    change: impl FnOnce(&mut RoomRecord),
) -> Result<(), ProjectionError> {
    if let Some(record) = apply.room(room)? {
        change(record);
    }
    Ok(())
}

fn update_view(
    apply: &mut Apply<'_, '_>,
    room: &RoomId,
    user: &UserId,
    change: impl FnOnce(&mut ViewRecord),
) -> Result<(), ProjectionError> {
    if let Some(view) = apply.view(room, user)? {
        change(view);
    }
    Ok(())
}

fn create_room(
    apply: &mut Apply<'_, '_>,
    room_id: RoomId,
    kind: RoomKind,
    name: String,
    created_at: Timestamp,
) -> Result<(), ProjectionError> {
    let room = RoomRecord {
        room_id,
        kind,
        name,
        contract: None,
        last_message: None,
        last_activity_at: created_at,
        message_sequence: 0,
        deleted_sequence_max: 0,
    };
    apply.held.rooms.insert(room_id, room);
    Ok(())
}

/// Makes `user` a member with a fresh view; a member already is left alone (R-R4 no-op).
/// The room's whole history counts as unread for a new member, as R-S4 defines it (no marker):
/// the view counts the member's own live messages in it (someone who left may come back).
fn add_member(
    apply: &mut Apply<'_, '_>,
    room_id: &RoomId,
    user: &UserId,
) -> Result<(), ProjectionError> {
    let key = view_key(room_id, user);
    if apply.changes.contains(&key)? {
        return Ok(());
    }
    let own_after_read = count_own_after(apply, room_id, user, 0)?;
    // Written through the store (not held), so that the store knows every member.
    apply.changes.put(
        key,
        &ViewRecord {
            user_id: user.clone(),
            favorite: false,
            hidden_at_sequence: None,
            archived: false,
            read_sequence: 0,
            own_after_read,
        },
    )?;
    apply.changes.put(room_set_key(user, room_id), &())
}

fn remove_member(
    apply: &mut Apply<'_, '_>,
    room_id: &RoomId,
    user: &UserId,
) -> Result<(), ProjectionError> {
    if apply.room(room_id)?.is_none() {
        return Ok(());
    }
    // A held view must go too, or the next image would put it back.
    if let Some(views) = apply.held.views.get_mut(room_id) {
        views.remove(user);
    }
    apply.changes.remove(view_key(room_id, user));
    apply.changes.remove(room_set_key(user, room_id));
    Ok(())
}

/// `user`'s own messages after the sequence `after`, not deleted: what R-S4 leaves out of the
/// room's count besides deleted messages. A walk over the room's posts after the marker, so
/// only marking read and joining pay it, never a new message.
fn count_own_after(
    apply: &mut Apply<'_, '_>,
    room: &RoomId,
    user: &UserId,
    after: u64,
) -> Result<u64, ProjectionError> {
    let Some(last) = apply.room(room)?.map(|room| room.message_sequence) else {
        return Ok(0);
    };
    let mut count = 0u64;
    apply.posts_after(room, after, last, |_, post| {
        if !post.deleted && &post.author == user {
            count += 1;
        }
    })?;
    Ok(count)
}

/// A new message (or automatic reply) in a room: the room's sequence, last message and
/// activity, and its author's own count. The others' unread counts and hidden views follow
/// from the sequence when asked (R-S2, R-S4; archived views stay archived, R-S3), so nothing
/// per member is written.
fn post(
    apply: &mut Apply<'_, '_>,
    room_id: &RoomId,
    last: LastMessage,
) -> Result<(), ProjectionError> {
    let Some(room) = apply.room(room_id)? else {
        return Ok(());
    };
    room.message_sequence += 1;
    let sequence = room.message_sequence;
    room.last_activity_at = last.sent_at;
    let chunk = (sequence - 1) / POSTS_PER_CHUNK;
    let posts = if (sequence - 1) % POSTS_PER_CHUNK == 0 {
        // The first post of a chunk: nothing to read.
        apply
            .held
            .posts
            .entry(*room_id)
            .or_default()
            .entry(chunk)
            .or_default()
    } else {
        apply.chunk(room_id, chunk)?
    };
    posts.push(PostRecord {
        author: last.author.clone(),
        deleted: false,
    });
    // A chunk holds the sequences from its first on, without a gap.
    debug_assert_eq!(
        posts.len() as u64,
        (sequence - 1) % POSTS_PER_CHUNK + 1,
        "room {room_id}: chunk {chunk} out of step with the sequence {sequence}"
    );
    apply.held.messages.insert(
        last.message_id,
        MessageIndex {
            room_id: *room_id,
            sequence,
        },
    );
    apply.held.bytes += HELD_MESSAGE_BYTES + last.author.as_str().len();
    // The author's own message is after their marker (it is the newest): not unread for them.
    update_view(apply, room_id, &last.author, |view| {
        view.own_after_read += 1;
    })?;
    if let Some(room) = apply.room(room_id)? {
        room.last_message = Some(last);
    }
    Ok(())
}

/// A deleted message stops counting as unread (R-S4) for everyone whose marker is before it:
/// one `d/` key for the room's count, and the author's own count if it was after their marker.
fn delete_message(
    apply: &mut Apply<'_, '_>,
    room_id: &RoomId,
    message_id: &MessageId,
) -> Result<(), ProjectionError> {
    let Some(index) = apply.message_index(message_id)? else {
        return Ok(());
    };
    if index.room_id != *room_id {
        return Ok(());
    }
    let chunk = (index.sequence - 1) / POSTS_PER_CHUNK;
    let offset = usize::try_from((index.sequence - 1) % POSTS_PER_CHUNK).unwrap_or(usize::MAX);
    let Some(post) = apply.chunk(room_id, chunk)?.get_mut(offset) else {
        return Ok(());
    };
    if post.deleted {
        return Ok(());
    }
    post.deleted = true;
    let author = post.author.clone();
    apply
        .changes
        .put(deleted_key(room_id, index.sequence), &())?;
    update_view(apply, room_id, &author, |view| {
        if view.read_sequence < index.sequence {
            view.own_after_read = view.own_after_read.saturating_sub(1);
        }
    })?;
    update_room(apply, room_id, |room| {
        room.deleted_sequence_max = room.deleted_sequence_max.max(index.sequence);
        if let Some(last) = room.last_message.as_mut() {
            if last.message_id == *message_id {
                // The tombstone keeps nothing of the body (R-M4).
                last.deleted = true;
                last.preview.clear();
                last.attachment_label.clear();
            }
        }
    })
}

fn mark_read(
    apply: &mut Apply<'_, '_>,
    room_id: &RoomId,
    user: &UserId,
    message_id: &MessageId,
) -> Result<(), ProjectionError> {
    let Some(index) = apply.message_index(message_id)? else {
        return Ok(());
    };
    if index.room_id != *room_id {
        return Ok(());
    }
    if apply.view(room_id, user)?.is_none() {
        return Ok(());
    }
    let own_after_read = count_own_after(apply, room_id, user, index.sequence)?;
    if let Some(view) = apply.view(room_id, user)? {
        view.read_sequence = index.sequence;
        view.own_after_read = own_after_read;
    }
    Ok(())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use domain::{CommandId, UserKind};
    use uuid::Uuid;

    /// A log of users, rooms, messages, read markers, deletions, hides, and members leaving and
    /// coming back, spread over a few busy rooms (so chunks of posts fill and images fall in
    /// the middle of rooms' histories).
    fn workload(events: usize) -> Vec<EventEnvelope> {
        let users: Vec<UserId> = (0..12)
            .map(|index| UserId::parse(&format!("u{index}")).unwrap())
            .collect();
        let rooms: Vec<RoomId> = (0..4)
            .map(|index| RoomId(Uuid::from_u128(0x77 + index)))
            .collect();
        let members = |room: usize| -> Vec<UserId> {
            (0..4)
                .map(|k| users[(room * 3 + k) % users.len()].clone())
                .collect()
        };
        let mut log: Vec<EventEnvelope> = Vec::new();
        let push = |log: &mut Vec<EventEnvelope>, event: Event| {
            let position = log.len() as u64 + 1;
            log.push(EventEnvelope {
                position,
                stream: "s".into(),
                version: position,
                event_id: Uuid::from_u128(u128::from(position)),
                command_id: CommandId(Uuid::from_u128(u128::from(position) << 64)),
                actor: "u0".into(),
                recorded_at: Timestamp::from_millis(position as i64),
                event,
            });
        };
        for user in &users {
            push(
                &mut log,
                Event::UserRegistered {
                    user_id: user.clone(),
                    display_name: format!("User {user}"),
                    kind: UserKind::Freelancer,
                },
            );
        }
        for (index, room) in rooms.iter().enumerate() {
            push(
                &mut log,
                Event::GroupRoomCreated {
                    room_id: *room,
                    name: format!("room {index}"),
                    creator: members(index)[0].clone(),
                    members: members(index),
                    created_at: Timestamp::from_millis(index as i64),
                },
            );
        }
        let mut state = 0x2545_f491_4f6c_dd1d_u64;
        let mut next = move |n: usize| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            (state % n as u64) as usize
        };
        let mut sent: Vec<Vec<MessageId>> = vec![Vec::new(); rooms.len()];
        let mut outside: Vec<Option<UserId>> = vec![None; rooms.len()];
        while log.len() < events {
            let index = next(rooms.len());
            let room_id = rooms[index];
            let author = members(index)[next(3) + 1].clone();
            let event = match next(20) {
                0 if !sent[index].is_empty() => Event::MessageDeleted {
                    room_id,
                    message_id: sent[index][sent[index].len() - 1 - next(sent[index].len().min(5))],
                    deleted_at: Timestamp::from_millis(log.len() as i64),
                },
                1..=3 if !sent[index].is_empty() => Event::RoomMarkedRead {
                    room_id,
                    user_id: members(index)[next(4)].clone(),
                    message_id: sent[index][next(sent[index].len())],
                },
                4 => Event::RoomHiddenChanged {
                    room_id,
                    user_id: members(index)[next(4)].clone(),
                    on: true,
                },
                5 => match outside[index].take() {
                    None => {
                        let user = members(index)[3].clone();
                        outside[index] = Some(user.clone());
                        Event::MemberLeft {
                            room_id,
                            user_id: user,
                            left_at: Timestamp::from_millis(log.len() as i64),
                        }
                    }
                    Some(user) => Event::MemberAdded {
                        room_id,
                        user_id: user,
                        added_by: members(index)[0].clone(),
                        added_at: Timestamp::from_millis(log.len() as i64),
                    },
                },
                _ => {
                    let message_id = MessageId(Uuid::from_u128((log.len() as u128) << 32 | 0xabc));
                    sent[index].push(message_id);
                    Event::MessageSent {
                        room_id,
                        message_id,
                        author,
                        body: format!("message {}", log.len()),
                        reply_to: None,
                        attachments: Vec::new(),
                        sent_at: Timestamp::from_millis(log.len() as i64),
                    }
                }
            };
            push(&mut log, event);
        }
        log
    }

    fn apply_in_batches(model: &mut Rooms, events: &[EventEnvelope]) {
        for batch in events.chunks(7) {
            model.apply(batch).unwrap();
        }
    }

    #[test]
    fn a_model_dropped_between_images_of_held_records_resumes_and_catches_up_equal() {
        let log = workload(1_500);
        let expected = {
            let mut live = Rooms::temporary().unwrap();
            apply_in_batches(&mut live, &log);
            live.dump().unwrap()
        };
        let directory =
            std::env::temp_dir().join(format!("rooms-held-images-{}", std::process::id()));
        drop(std::fs::remove_dir_all(&directory));
        // Images every few batches, triggered by the held records' size as much as by the
        // memtable's; the model is dropped (as a crash drops its memory) with held records
        // and memtable changes after the last image.
        let (imaged_up_to, crashed_at) = (1_100, 1_234);
        {
            let mut model = Rooms::open_path(&directory).unwrap();
            model.store.set_image_limit(2_000);
            apply_in_batches(&mut model, &log[..imaged_up_to]);
            // No image after this (one may still be in writing), so the crash certainly loses
            // held records and memtable changes.
            model.store.set_image_limit(usize::MAX);
            apply_in_batches(&mut model, &log[imaged_up_to..crashed_at]);
            assert_eq!(model.position(), crashed_at as u64);
            // The dump of a model holding records is the model: what a rebuild gives.
            let mut rebuilt = Rooms::temporary().unwrap();
            apply_in_batches(&mut rebuilt, &log[..crashed_at]);
            assert_eq!(model.dump().unwrap(), rebuilt.dump().unwrap());
        }
        let mut reopened = Rooms::open_path(&directory).unwrap();
        reopened.store.set_image_limit(2_000);
        let resumed = reopened.position();
        assert!(
            resumed > 0 && resumed <= imaged_up_to as u64,
            "resumed at {resumed}"
        );
        assert_eq!(reopened.store.imaged_checkpoint().unwrap(), resumed);
        apply_in_batches(&mut reopened, &log[resumed as usize..]);
        assert_eq!(reopened.dump().unwrap(), expected);
        // And a flushed model reopens as the same model.
        reopened.flush().unwrap();
        drop(reopened);
        let reopened = Rooms::open_path(&directory).unwrap();
        assert_eq!(reopened.position(), log.len() as u64);
        assert_eq!(reopened.dump().unwrap(), expected);
        drop(reopened);
        std::fs::remove_dir_all(&directory).unwrap();
    }
}
