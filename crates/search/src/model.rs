//! The part of the search model kept in memory: rooms (kind, name, members, last activity),
//! users' display names, and each user's rooms. Membership is never written into message
//! documents, because it changes: a query filters messages by the caller's rooms *now*, which
//! is how a new member finds the history from before they joined (R-R4) and a member who left
//! stops finding the room (R-Q1).
//!
//! The model is persisted as one document per room and per user in the same tantivy index as
//! the messages, rewritten in the commit that carries the checkpoint, and read back on open.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use domain::{Event, MembershipChange, RoomId, RoomKind, Timestamp, UserId};
use serde::{Deserialize, Serialize};

use crate::text::{all_match, name_words};

/// A room as search knows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RoomRecord {
    /// Direct, interview, contract or group.
    pub kind: RoomKind,
    /// The room's own name (empty for a direct room, which each member sees named after the
    /// other person).
    pub name: String,
    /// The members now.
    pub members: BTreeSet<UserId>,
    /// When the room was created or last got a message: the order of matching rooms.
    pub last_activity_at: Timestamp,
}

/// A room that matched a query, as the answer lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RoomHit {
    /// The room.
    pub room_id: RoomId,
    /// Its name as the caller sees it (for a direct room, the other person's display name).
    pub name: String,
    /// Its kind.
    pub kind: RoomKind,
    /// Its last activity.
    pub last_activity_at: Timestamp,
}

/// Rooms, users and memberships, with the changes not yet written to the index.
#[derive(Debug, Default)]
pub struct Model {
    rooms: HashMap<RoomId, RoomRecord>,
    /// The lowered words of each room's own name.
    room_words: HashMap<RoomId, Vec<String>>,
    /// Display names.
    users: HashMap<UserId, String>,
    /// The lowered words of each display name.
    user_words: HashMap<UserId, Vec<String>>,
    /// Each user's rooms now (derived from `rooms`).
    user_rooms: HashMap<UserId, BTreeSet<RoomId>>,
    /// Rooms changed since the last commit.
    dirty_rooms: BTreeSet<RoomId>,
    /// Users changed since the last commit.
    dirty_users: BTreeSet<UserId>,
}

impl Model {
    /// A model of the given rooms and users (as read back from the index).
    pub fn from_records(
        rooms: impl IntoIterator<Item = (RoomId, RoomRecord)>,
        users: impl IntoIterator<Item = (UserId, String)>,
    ) -> Model {
        let mut model = Model::default();
        for (room_id, record) in rooms {
            for member in &record.members {
                model
                    .user_rooms
                    .entry(member.clone())
                    .or_default()
                    .insert(room_id);
            }
            model.room_words.insert(room_id, name_words(&record.name));
            model.rooms.insert(room_id, record);
        }
        for (user_id, display_name) in users {
            model
                .user_words
                .insert(user_id.clone(), name_words(&display_name));
            model.users.insert(user_id, display_name);
        }
        model
    }

    /// The room, if known.
    pub fn room(&self, room_id: &RoomId) -> Option<&RoomRecord> {
        self.rooms.get(room_id)
    }

    /// A user's display name, if registered.
    pub fn display_name(&self, user_id: &UserId) -> Option<&str> {
        self.users.get(user_id).map(String::as_str)
    }

    /// The rooms `user` is a member of now.
    pub fn rooms_of(&self, user: &UserId) -> Option<&BTreeSet<RoomId>> {
        self.user_rooms.get(user)
    }

    /// Whether `user` is a member of `room_id` now.
    pub fn is_member(&self, user: &UserId, room_id: &RoomId) -> bool {
        self.user_rooms
            .get(user)
            .is_some_and(|rooms| rooms.contains(room_id))
    }

    /// Every room, ordered by id (for dumps).
    pub fn rooms_sorted(&self) -> BTreeMap<&RoomId, &RoomRecord> {
        self.rooms.iter().collect()
    }

    /// Every user's display name, ordered by id (for dumps).
    pub fn users_sorted(&self) -> BTreeMap<&UserId, &String> {
        self.users.iter().collect()
    }

    /// Takes the rooms and users changed since the last call, for the next commit.
    pub fn take_dirty(&mut self) -> (BTreeSet<RoomId>, BTreeSet<UserId>) {
        (
            std::mem::take(&mut self.dirty_rooms),
            std::mem::take(&mut self.dirty_users),
        )
    }

    /// Whether anything changed since the last [`Model::take_dirty`].
    pub fn is_dirty(&self) -> bool {
        !self.dirty_rooms.is_empty() || !self.dirty_users.is_empty()
    }

    /// The name `viewer` sees for a room: its own name, or for a direct room the other
    /// member's display name.
    pub fn name_for(&self, room: &RoomRecord, viewer: &UserId) -> String {
        if room.kind != RoomKind::Direct {
            return room.name.clone();
        }
        room.members
            .iter()
            .find(|member| *member != viewer)
            .map(|other| {
                self.display_name(other)
                    .map_or_else(|| other.to_string(), str::to_owned)
            })
            .unwrap_or_default()
    }

    /// The caller's rooms (or only `only`) whose name or another member's display name
    /// matches every query word, most recently active first, at most `limit`.
    pub fn matching_rooms(
        &self,
        caller: &UserId,
        only: Option<&RoomId>,
        query: &[String],
        limit: usize,
    ) -> Vec<RoomHit> {
        let Some(rooms) = self.user_rooms.get(caller) else {
            return Vec::new();
        };
        let mut hits: Vec<RoomHit> = rooms
            .iter()
            .filter(|room_id| only.is_none_or(|only| only == *room_id))
            .filter_map(|room_id| {
                let room = self.rooms.get(room_id)?;
                let own = self.room_words.get(room_id).into_iter().flatten();
                let others = room
                    .members
                    .iter()
                    .filter(|member| *member != caller)
                    .filter_map(|member| self.user_words.get(member))
                    .flatten();
                let words = own.chain(others).map(String::as_str);
                all_match(query, words).then(|| RoomHit {
                    room_id: *room_id,
                    name: self.name_for(room, caller),
                    kind: room.kind,
                    last_activity_at: room.last_activity_at,
                })
            })
            .collect();
        hits.sort_by(|a, b| {
            b.last_activity_at
                .cmp(&a.last_activity_at)
                .then(a.room_id.cmp(&b.room_id))
        });
        hits.truncate(limit);
        hits
    }

    /// Applies a room or user event; message events only move the room's last activity.
    pub fn apply(&mut self, event: &Event) {
        match event {
            Event::UserRegistered {
                user_id,
                display_name,
                ..
            }
            | Event::UserDisplayNameChanged {
                user_id,
                display_name,
            } => {
                self.user_words
                    .insert(user_id.clone(), name_words(display_name));
                self.users.insert(user_id.clone(), display_name.clone());
                self.dirty_users.insert(user_id.clone());
            }
            Event::DirectRoomOpened {
                room_id, opened_at, ..
            } => self.create(*room_id, RoomKind::Direct, String::new(), *opened_at),
            Event::GroupRoomCreated {
                room_id,
                name,
                created_at,
                ..
            } => self.create(*room_id, RoomKind::Group, name.clone(), *created_at),
            Event::InterviewRoomOpened {
                room_id,
                title,
                opened_at,
                ..
            } => self.create(*room_id, RoomKind::Interview, title.clone(), *opened_at),
            Event::ContractStarted {
                room_id,
                room_created,
                title,
                started_at,
                ..
            } => {
                if *room_created || !self.rooms.contains_key(room_id) {
                    self.create(*room_id, RoomKind::Contract, title.clone(), *started_at);
                } else {
                    // An existing room (an interview, say) becomes the contract's room, keeping
                    // its history and members, renamed to the title (R-C2).
                    self.update(room_id, |room| {
                        room.kind = RoomKind::Contract;
                        room.name.clone_from(title);
                    });
                    self.room_words.insert(*room_id, name_words(title));
                }
            }
            Event::RoomRenamed { room_id, name, .. } if self.rooms.contains_key(room_id) => {
                self.update(room_id, |room| room.name.clone_from(name));
                self.room_words.insert(*room_id, name_words(name));
            }
            Event::MessageSent {
                room_id, sent_at, ..
            }
            | Event::AutoReplySent {
                room_id, sent_at, ..
            } => self.touch(room_id, *sent_at),
            _ => {}
        }
        // Who joins or leaves: the domain's one definition, once the room exists (the event
        // may be what creates it).
        match event.membership_change() {
            Some(MembershipChange::Joined { room_id, users }) => {
                for user in users {
                    self.join(&room_id, user);
                }
            }
            Some(MembershipChange::Left { room_id, user }) => self.leave(&room_id, user),
            None => {}
        }
    }

    fn create(&mut self, room_id: RoomId, kind: RoomKind, name: String, at: Timestamp) {
        self.room_words.insert(room_id, name_words(&name));
        self.rooms.insert(
            room_id,
            RoomRecord {
                kind,
                name,
                members: BTreeSet::new(),
                last_activity_at: at,
            },
        );
        self.dirty_rooms.insert(room_id);
    }

    fn leave(&mut self, room_id: &RoomId, user_id: &UserId) {
        let mut left = false;
        self.update(room_id, |room| left = room.members.remove(user_id));
        if left {
            if let Some(rooms) = self.user_rooms.get_mut(user_id) {
                rooms.remove(room_id);
                if rooms.is_empty() {
                    self.user_rooms.remove(user_id);
                }
            }
        }
    }

    fn join(&mut self, room_id: &RoomId, user_id: &UserId) {
        let mut joined = false;
        self.update(room_id, |room| {
            joined = room.members.insert(user_id.clone())
        });
        if joined {
            self.user_rooms
                .entry(user_id.clone())
                .or_default()
                .insert(*room_id);
        }
    }

    fn touch(&mut self, room_id: &RoomId, at: Timestamp) {
        if self
            .rooms
            .get(room_id)
            .is_some_and(|room| room.last_activity_at < at)
        {
            self.update(room_id, |room| room.last_activity_at = at);
        }
    }

    /// Changes a known room and marks it for the next commit; an unknown room is left alone.
    fn update(&mut self, room_id: &RoomId, change: impl FnOnce(&mut RoomRecord)) {
        if let Some(room) = self.rooms.get_mut(room_id) {
            change(room);
            self.dirty_rooms.insert(*room_id);
        }
    }
}
