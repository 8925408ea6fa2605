//! The write-side state: exactly what `decide` needs to judge the next command, and nothing a
//! reader needs. Built only by `evolve`, one event at a time, so it can always be rebuilt from
//! the log (and snapshotted, since it is serde).

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};

use serde::{Deserialize, Serialize};

use crate::command::{NotificationFrequency, UserKind};
use crate::event::{Event, RoomKind};
use crate::ids::{CallId, ContractId, FileId, InterviewId, MessageId, RoomId, UserId};
use crate::limits::DAILY_CONVERSATION_LIMIT_DEFAULT;
use crate::message_table::Messages;
use crate::time::Timestamp;

/// Settings that shape the rules but are not facts of the log.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Config {
    /// New conversations a user may start per UTC day (R-R3).
    pub daily_conversation_limit: u32,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            daily_conversation_limit: DAILY_CONVERSATION_LIMIT_DEFAULT,
        }
    }
}

/// A registered user.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct UserState {
    /// The name others see.
    pub display_name: String,
    /// Client, freelancer or agency.
    pub kind: UserKind,
    /// Users this user blocks (R-B1).
    pub blocks: BTreeSet<UserId>,
    /// The current out-of-office setting, if any (R-A2).
    pub away: Option<AwayState>,
    /// "Online for messages" (R-A1); on by default.
    pub visible: bool,
    /// Notification setting (R-A3).
    pub frequency: NotificationFrequency,
    /// Conversations started on the UTC day `conversation_day` (R-R3).
    pub conversations_started: u32,
    /// The UTC day `conversations_started` counts.
    pub conversation_day: i64,
}

/// An out-of-office period and the rooms already answered in it (R-A2).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AwayState {
    /// The automatic reply's text.
    pub message: String,
    /// Start (inclusive).
    pub from: Timestamp,
    /// End (exclusive).
    pub until: Timestamp,
    /// Rooms that got their one automatic reply in this period.
    pub answered_rooms: BTreeSet<RoomId>,
}

impl AwayState {
    /// Whether `now` falls inside the away period.
    pub fn is_active(&self, now: Timestamp) -> bool {
        self.from <= now && now < self.until
    }
}

/// One member's own view of a room (R-S1..R-S4).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct MemberView {
    /// R-S1.
    pub favorite: bool,
    /// R-S2; cleared when a new message arrives.
    pub hidden: bool,
    /// R-S3; survives new messages.
    pub archived: bool,
    /// R-S4.
    pub read_up_to: Option<MessageId>,
}

/// A room.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RoomState {
    /// Decides what may be done in it.
    pub kind: RoomKind,
    /// Its name (for direct rooms, empty: readers show the other person's name).
    pub name: String,
    /// Current members.
    pub members: BTreeSet<UserId>,
    /// The contract whose room this is, if any (R-C2).
    pub contract: Option<ContractId>,
    /// The active call and when it started (R-K1).
    pub active_call: Option<(CallId, Timestamp)>,
    /// Members' own views, for those who changed something.
    pub views: BTreeMap<UserId, MemberView>,
}

/// A user interned in the state: an index into [`State::user_ids`]. Message rows hold this
/// instead of the id's text, so a row has a fixed size and no allocation of its own.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct UserRef(pub u32);

/// What the rules need to know of a message: a fixed-size row (32 bytes), since the state
/// holds one per message ever sent. Who reported it is kept beside it
/// ([`State::reporters`]), for the few messages that are reported.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct MessageState {
    /// Its room (R-M2: replies stay in the room).
    pub room_id: RoomId,
    /// Its author (R-M3, R-M4, R-P1), interned: [`State::user_id`] names them.
    pub author: UserRef,
    /// When it was sent: the edit and delete windows start here.
    pub sent_at: Timestamp,
    /// Whether it was deleted (R-M4).
    pub deleted: bool,
    /// Whether it carries an uploaded file (R-M6).
    pub carries_file: bool,
}

/// An uploaded file (R-F1).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileState {
    /// Only they may attach it.
    pub uploader: UserId,
    /// The file name.
    pub name: String,
    /// Bytes.
    pub size: u64,
    /// MIME type.
    pub content_type: String,
    /// Attached to a message already: a file is attached once.
    pub attached: bool,
    /// When it was registered: it can be attached within `FILE_ATTACH_GRACE_MS` of this (H-L3).
    pub registered_at: Timestamp,
}

/// A contract (R-C2).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ContractState {
    /// Its room.
    pub room_id: RoomId,
    /// Active between `contract.start` and `contract.end`.
    pub active: bool,
}

/// Everything `decide` consults.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct State {
    /// Rule settings.
    pub config: Config,
    /// Registered users.
    pub users: HashMap<UserId, UserState>,
    /// Rooms.
    pub rooms: HashMap<RoomId, RoomState>,
    /// Messages, automatic replies included, as compact rows (see `message_table`).
    pub messages: Messages,
    /// Who reported each reported message (one report per reporter, R-P1).
    pub reporters: HashMap<MessageId, BTreeSet<UserId>>,
    /// Interned users, by [`UserRef`] (authors of messages; whoever an event names).
    pub user_ids: Vec<UserId>,
    /// The [`UserRef`] of each interned user.
    pub user_refs: HashMap<UserId, UserRef>,
    /// Uploaded files.
    pub files: HashMap<FileId, FileState>,
    /// Contracts.
    pub contracts: HashMap<ContractId, ContractState>,
    /// Interview rooms by interview id.
    pub interviews: HashMap<InterviewId, RoomId>,
    /// Every call ever started. A call is an entry of its room's timeline beside the messages,
    /// found by its id like them, so a message may not take a call's id nor a call a message's.
    pub call_ids: HashSet<CallId>,
}

impl State {
    /// An empty state with these settings.
    pub fn new(config: Config) -> State {
        State {
            config,
            ..State::default()
        }
    }

    /// The user a [`UserRef`] stands for.
    pub fn user_id(&self, user: UserRef) -> Option<&UserId> {
        usize::try_from(user.0)
            .ok()
            .and_then(|index| self.user_ids.get(index))
    }

    /// Whether `user` wrote `message`.
    pub fn is_author(&self, message: &MessageState, user: &UserId) -> bool {
        self.user_id(message.author) == Some(user)
    }

    /// Whether `user` has reported the message `message_id`.
    pub fn has_reported(&self, message_id: &MessageId, user: &UserId) -> bool {
        self.reporters
            .get(message_id)
            .is_some_and(|reporters| reporters.contains(user))
    }

    /// The [`UserRef`] of `user`, interning them first when new.
    fn intern_user(&mut self, user: &UserId) -> UserRef {
        if let Some(&interned) = self.user_refs.get(user) {
            return interned;
        }
        // More than 4 billion users would wrap; a state that large does not fit in memory.
        let interned = UserRef(u32::try_from(self.user_ids.len()).unwrap_or(u32::MAX));
        self.user_ids.push(user.clone());
        self.user_refs.insert(user.clone(), interned);
        interned
    }

    /// Whether `blocker` blocks `blocked` (R-B1).
    pub fn blocks(&self, blocker: &UserId, blocked: &UserId) -> bool {
        self.users
            .get(blocker)
            .is_some_and(|user| user.blocks.contains(blocked))
    }

    /// Whether either user blocks the other (R-B2).
    pub fn blocked_either_way(&self, a: &UserId, b: &UserId) -> bool {
        self.blocks(a, b) || self.blocks(b, a)
    }

    /// Whether contact details may be sent in this room now: it is an active contract's (R-C1).
    pub fn allows_contact_info(&self, room: &RoomState) -> bool {
        room.contract
            .as_ref()
            .and_then(|id| self.contracts.get(id))
            .is_some_and(|contract| contract.active)
    }

    /// Conversations `user` has started on the UTC day of `now` (R-R3).
    pub fn conversations_started_on(&self, user: &UserId, now: Timestamp) -> u32 {
        self.users
            .get(user)
            .filter(|u| u.conversation_day == now.utc_day())
            .map_or(0, |u| u.conversations_started)
    }

    fn count_conversation(&mut self, user: &UserId, at: Timestamp) {
        if let Some(state) = self.users.get_mut(user) {
            let day = at.utc_day();
            if state.conversation_day != day {
                state.conversation_day = day;
                state.conversations_started = 0;
            }
            state.conversations_started = state.conversations_started.saturating_add(1);
        }
    }

    fn view_mut(&mut self, room_id: &RoomId, user: &UserId) -> Option<&mut MemberView> {
        let room = self.rooms.get_mut(room_id)?;
        Some(room.views.entry(user.clone()).or_default())
    }

    /// Whether `id` names a message (an automatic reply included) or a call: the two share the
    /// timeline's lookup, so an id taken by either is taken for both.
    pub fn message_or_call_id_taken(&self, id: &uuid::Uuid) -> bool {
        self.messages.contains(&MessageId(*id)) || self.call_ids.contains(&CallId(*id))
    }

    /// Creates a room; an id already taken keeps its room. `decide` refuses every creation whose
    /// id exists, so only a log written before it did (where a crafted command id could make a
    /// group room's id equal another kind's) holds such an event, and then the first room stays
    /// rather than being silently replaced. Returns whether the room was created.
    fn insert_room(
        &mut self,
        room_id: RoomId,
        kind: RoomKind,
        name: String,
        members: BTreeSet<UserId>,
    ) -> bool {
        if self.rooms.contains_key(&room_id) {
            return false;
        }
        self.rooms.insert(
            room_id,
            RoomState {
                kind,
                name,
                members,
                contract: None,
                active_call: None,
                views: BTreeMap::new(),
            },
        );
        true
    }

    fn record_message(
        &mut self,
        room_id: RoomId,
        message_id: MessageId,
        author: &UserId,
        sent_at: Timestamp,
        carries_file: bool,
    ) {
        let author = self.intern_user(author);
        self.messages.insert(
            message_id,
            MessageState {
                room_id,
                author,
                sent_at,
                deleted: false,
                carries_file,
            },
        );
        // A hidden room comes back into every member's main list with a new message (R-S2).
        if let Some(room) = self.rooms.get_mut(&room_id) {
            for view in room.views.values_mut() {
                view.hidden = false;
            }
        }
    }
}

/// Applies one event to the state. Total: an event that names something unknown changes nothing
/// (the log is the truth, and `decide` never emits such an event), which debug builds assert.
pub fn evolve(state: &mut State, event: &Event) {
    match event {
        Event::UserRegistered {
            user_id,
            display_name,
            kind,
        } => {
            debug_assert!(!state.users.contains_key(user_id));
            state.users.insert(
                user_id.clone(),
                UserState {
                    display_name: display_name.clone(),
                    kind: *kind,
                    blocks: BTreeSet::new(),
                    away: None,
                    visible: true,
                    frequency: NotificationFrequency::default(),
                    conversations_started: 0,
                    conversation_day: i64::MIN,
                },
            );
        }
        Event::UserDisplayNameChanged {
            user_id,
            display_name,
        } => {
            if let Some(user) = state.users.get_mut(user_id) {
                user.display_name = display_name.clone();
            }
        }
        Event::UserBlocked { blocker, blocked } => {
            if let Some(user) = state.users.get_mut(blocker) {
                user.blocks.insert(blocked.clone());
            }
        }
        Event::UserUnblocked { blocker, blocked } => {
            if let Some(user) = state.users.get_mut(blocker) {
                user.blocks.remove(blocked);
            }
        }
        Event::OutOfOfficeSet {
            user_id,
            message,
            from,
            until,
        } => {
            if let Some(user) = state.users.get_mut(user_id) {
                // A new setting is a new away period: every room may be answered once again.
                user.away = Some(AwayState {
                    message: message.clone(),
                    from: *from,
                    until: *until,
                    answered_rooms: BTreeSet::new(),
                });
            }
        }
        Event::OutOfOfficeCleared { user_id } => {
            if let Some(user) = state.users.get_mut(user_id) {
                user.away = None;
            }
        }
        Event::OnlineVisibilityChanged { user_id, visible } => {
            if let Some(user) = state.users.get_mut(user_id) {
                user.visible = *visible;
            }
        }
        Event::NotificationFrequencyChanged { user_id, frequency } => {
            if let Some(user) = state.users.get_mut(user_id) {
                user.frequency = *frequency;
            }
        }
        Event::DirectRoomOpened {
            room_id,
            initiator,
            recipient,
            opened_at,
        } => {
            let members = BTreeSet::from([initiator.clone(), recipient.clone()]);
            let _created = state.insert_room(*room_id, RoomKind::Direct, String::new(), members);
            state.count_conversation(initiator, *opened_at);
        }
        Event::GroupRoomCreated {
            room_id,
            name,
            creator,
            members,
            created_at,
        } => {
            let members = members.iter().cloned().collect();
            let _created = state.insert_room(*room_id, RoomKind::Group, name.clone(), members);
            state.count_conversation(creator, *created_at);
        }
        Event::InterviewRoomOpened {
            room_id,
            interview_id,
            title,
            client,
            freelancer,
            ..
        } => {
            let members = BTreeSet::from([client.clone(), freelancer.clone()]);
            if state.insert_room(*room_id, RoomKind::Interview, title.clone(), members) {
                state.interviews.insert(interview_id.clone(), *room_id);
            }
        }
        Event::ContractStarted {
            contract_id,
            room_id,
            room_created,
            title,
            client,
            freelancer,
            ..
        } => {
            if *room_created {
                // A contract taking over a room it did not create is what `room_id` given does
                // anyway, so a taken id simply becomes the contract's room.
                let _created =
                    state.insert_room(*room_id, RoomKind::Contract, title.clone(), BTreeSet::new());
            }
            if let Some(room) = state.rooms.get_mut(room_id) {
                room.kind = RoomKind::Contract;
                room.name = title.clone();
                room.contract = Some(contract_id.clone());
                room.members.insert(client.clone());
                room.members.insert(freelancer.clone());
            }
            state.contracts.insert(
                contract_id.clone(),
                ContractState {
                    room_id: *room_id,
                    active: true,
                },
            );
        }
        Event::ContractEnded { contract_id, .. } => {
            if let Some(contract) = state.contracts.get_mut(contract_id) {
                contract.active = false;
            }
        }
        Event::MemberAdded {
            room_id, user_id, ..
        } => {
            if let Some(room) = state.rooms.get_mut(room_id) {
                room.members.insert(user_id.clone());
            }
        }
        Event::MemberLeft {
            room_id, user_id, ..
        } => {
            if let Some(room) = state.rooms.get_mut(room_id) {
                room.members.remove(user_id);
                room.views.remove(user_id);
            }
        }
        Event::RoomRenamed { room_id, name, .. } => {
            if let Some(room) = state.rooms.get_mut(room_id) {
                room.name = name.clone();
            }
        }
        Event::RoomFavoriteChanged {
            room_id,
            user_id,
            on,
        } => {
            if let Some(view) = state.view_mut(room_id, user_id) {
                view.favorite = *on;
            }
        }
        Event::RoomHiddenChanged {
            room_id,
            user_id,
            on,
        } => {
            if let Some(view) = state.view_mut(room_id, user_id) {
                view.hidden = *on;
            }
        }
        Event::RoomArchivedChanged {
            room_id,
            user_id,
            on,
        } => {
            if let Some(view) = state.view_mut(room_id, user_id) {
                view.archived = *on;
            }
        }
        Event::RoomMarkedRead {
            room_id,
            user_id,
            message_id,
        } => {
            if let Some(view) = state.view_mut(room_id, user_id) {
                view.read_up_to = Some(*message_id);
            }
        }
        Event::MessageSent {
            room_id,
            message_id,
            author,
            attachments,
            sent_at,
            ..
        } => {
            let mut carries_file = false;
            for attachment in attachments {
                if let crate::event::Attachment::File { file_id, .. } = attachment {
                    carries_file = true;
                    if let Some(file) = state.files.get_mut(file_id) {
                        debug_assert!(!file.attached, "a file is attached once");
                        file.attached = true;
                    }
                }
            }
            state.record_message(*room_id, *message_id, author, *sent_at, carries_file);
        }
        Event::AutoReplySent {
            room_id,
            message_id,
            author,
            sent_at,
            ..
        } => {
            state.record_message(*room_id, *message_id, author, *sent_at, false);
            if let Some(away) = state.users.get_mut(author).and_then(|u| u.away.as_mut()) {
                away.answered_rooms.insert(*room_id);
            }
        }
        Event::MessageEdited { .. } => {
            // Only the read side and auditors care about bodies; the rules do not.
        }
        Event::MessageDeleted { message_id, .. } => {
            let known = state.messages.mark_deleted(message_id);
            debug_assert!(known, "only a sent message is deleted");
        }
        Event::MessageReported {
            message_id,
            reporter,
            ..
        } => {
            if state.messages.contains(message_id) {
                state
                    .reporters
                    .entry(*message_id)
                    .or_default()
                    .insert(reporter.clone());
            }
        }
        Event::CallStarted {
            room_id,
            call_id,
            started_at,
            ..
        } => {
            if let Some(room) = state.rooms.get_mut(room_id) {
                debug_assert!(room.active_call.is_none(), "one active call per room");
                room.active_call = Some((*call_id, *started_at));
            }
            state.call_ids.insert(*call_id);
        }
        Event::CallEnded { room_id, .. } => {
            if let Some(room) = state.rooms.get_mut(room_id) {
                room.active_call = None;
            }
        }
        Event::FileRegistered {
            file_id,
            uploader,
            name,
            size,
            content_type,
            registered_at,
            ..
        } => {
            state.files.insert(
                *file_id,
                FileState {
                    uploader: uploader.clone(),
                    name: name.clone(),
                    size: *size,
                    content_type: content_type.clone(),
                    attached: false,
                    registered_at: *registered_at,
                },
            );
        }
    }
}
