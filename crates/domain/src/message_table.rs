//! The messages the rules remember, in 32 bytes each: a table of fixed-size rows with no
//! per-message allocation and no hash-table slack for all but the newest messages.
//!
//! The write-side state holds one entry per message ever sent (R-M2 to R-M6 and R-P1 need
//! existence, room, author, deletion and the send time forever), so at ten million messages
//! its layout decides the writer's memory and its restart time. A `HashMap<MessageId, _>`
//! costs about 80 bytes a message there (a 48-byte entry, a control byte, and a table that
//! doubles, so up to half of it is empty), and a snapshot of it is rebuilt one insert at a time.
//!
//! Here the rows live in two places:
//! - `settled`: a vector sorted by message id, each row 32 bytes, found by binary search
//!   narrowed by a fence on the ids' first bits (about 16 rows per step of the fence, so a
//!   lookup touches a few cache lines whatever the table's size). It is
//!   loaded from a snapshot as it was written: no hashing, no inserts.
//! - `recent`: a hash map of the messages sent since the last merge, so a send costs a hash
//!   insert, not a shift of the vector.
//!
//! When `recent` reaches an eighth of `settled` (at least [`MERGE_ROWS_MIN`]), it is sorted and
//! merged into `settled` in place, from the back, so each row is moved a bounded number of
//! times (amortised O(1) per message) and memory never holds two copies of the table.
//!
//! Rooms are interned here (a row holds a `u32`), since a message's room is the one field the
//! rules compare with a room id. Which half holds a row is invisible outside: lookups, equality
//! and the serialised form depend only on the set of rows.

use std::collections::{HashMap, HashSet};
use std::fmt;
use std::sync::Arc;

use serde::de::{SeqAccess, Visitor};
use serde::ser::SerializeSeq;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::ids::{MessageId, RoomId};
use crate::state::{MessageState, UserRef};
use crate::time::Timestamp;

/// `recent` is merged into `settled` when it holds this many rows, or an eighth of `settled`
/// if that is more: small enough to keep the hash map's slack small, large enough that the
/// sort and the shift of the settled rows are paid rarely.
pub const MERGE_ROWS_MIN: usize = 16_384;

/// The low bits of `Row::room_and_flags` are the room's index; the top two are flags.
const ROOM_BITS: u32 = 30;
const ROOM_MASK: u32 = (1 << ROOM_BITS) - 1;
const DELETED_FLAG: u32 = 1 << 30;
const CARRIES_FILE_FLAG: u32 = 1 << 31;

/// Bytes of a row in the serialised form: id, room and flags, author, send time.
const ROW_BYTES: usize = 16 + 4 + 4 + 8;
/// Rows per serialised block: the snapshot is written and read in blocks of this many rows so
/// that neither side builds the whole table's bytes at once.
const BLOCK_ROWS: usize = 8_192;

/// One message as the rules need it (32 bytes: `sent_at` aligns the struct to 8).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Row {
    id: [u8; 16],
    /// The room's index in `Messages::rooms`, and the flags above `ROOM_BITS`.
    room_and_flags: u32,
    author: UserRef,
    sent_at: Timestamp,
}

/// What `recent` holds for a message (the row without its key).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Fields {
    room_and_flags: u32,
    author: UserRef,
    sent_at: Timestamp,
}

impl Row {
    fn fields(&self) -> Fields {
        Fields {
            room_and_flags: self.room_and_flags,
            author: self.author,
            sent_at: self.sent_at,
        }
    }

    fn with(id: [u8; 16], fields: Fields) -> Row {
        Row {
            id,
            room_and_flags: fields.room_and_flags,
            author: fields.author,
            sent_at: fields.sent_at,
        }
    }

    fn encode(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.id);
        out.extend_from_slice(&self.room_and_flags.to_le_bytes());
        out.extend_from_slice(&self.author.0.to_le_bytes());
        out.extend_from_slice(&self.sent_at.millis().to_le_bytes());
    }

    fn decode(bytes: &[u8; ROW_BYTES]) -> Row {
        let mut id = [0u8; 16];
        id.copy_from_slice(&bytes[..16]);
        let word = |at: usize| {
            u32::from_le_bytes([bytes[at], bytes[at + 1], bytes[at + 2], bytes[at + 3]])
        };
        let mut millis = [0u8; 8];
        millis.copy_from_slice(&bytes[24..32]);
        Row {
            id,
            room_and_flags: word(16),
            author: UserRef(word(20)),
            sent_at: Timestamp::from_millis(i64::from_le_bytes(millis)),
        }
    }
}

/// Every message's row, and the rooms they were sent in.
#[derive(Clone, Default)]
pub struct Messages {
    /// Rows merged so far, sorted by id. Shared, so that cloning the state for a snapshot
    /// copies a pointer, not the table: while a clone holds it, deletions of settled rows go to
    /// `deleted_while_shared` and merges wait.
    settled: Arc<Vec<Row>>,
    /// Settled rows deleted while `settled` was shared; applied to the rows at the next merge.
    deleted_while_shared: HashSet<MessageId>,
    /// `fence[p]` is the index of the first settled row whose id's first `fence_bits` bits are
    /// ≥ `p` (2^`fence_bits` + 1 entries; empty while `settled` is).
    fence: Vec<u32>,
    /// How many of an id's first bits the fence steps on: it grows with the table.
    fence_bits: u32,
    /// Rows since the last merge.
    recent: HashMap<MessageId, Fields>,
    /// Interned rooms, by index.
    rooms: Vec<RoomId>,
    room_indexes: HashMap<RoomId, u32>,
}

impl Messages {
    /// Messages remembered.
    pub fn len(&self) -> usize {
        self.settled.len() + self.recent.len()
    }

    /// Whether no message was ever sent.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Whether `id` names a message.
    pub fn contains(&self, id: &MessageId) -> bool {
        self.recent.contains_key(id) || self.settled_index(id).is_some()
    }

    /// The message `id`, if it was sent.
    pub fn get(&self, id: &MessageId) -> Option<MessageState> {
        let fields = match self.recent.get(id) {
            Some(fields) => *fields,
            None => self.settled_fields(self.settled_index(id)?),
        };
        Some(self.state_of(fields))
    }

    /// Notes a new message. The caller guarantees `id` is new (`decide` refuses a taken id).
    pub fn insert(&mut self, id: MessageId, message: MessageState) {
        debug_assert!(!self.contains(&id), "message ids are unique");
        let room = self.intern_room(message.room_id);
        let mut room_and_flags = room;
        if message.deleted {
            room_and_flags |= DELETED_FLAG;
        }
        if message.carries_file {
            room_and_flags |= CARRIES_FILE_FLAG;
        }
        self.recent.insert(
            id,
            Fields {
                room_and_flags,
                author: message.author,
                sent_at: message.sent_at,
            },
        );
        // While a snapshot shares the settled rows, the merge waits (it would copy them).
        if self.recent.len() >= MERGE_ROWS_MIN.max(self.settled.len() / 8)
            && Arc::get_mut(&mut self.settled).is_some()
        {
            self.merge();
        }
    }

    /// Marks `id` deleted; `false` if there is no such message.
    pub fn mark_deleted(&mut self, id: &MessageId) -> bool {
        if let Some(fields) = self.recent.get_mut(id) {
            fields.room_and_flags |= DELETED_FLAG;
            return true;
        }
        let Some(index) = self.settled_index(id) else {
            return false;
        };
        match Arc::get_mut(&mut self.settled) {
            Some(rows) => rows[index].room_and_flags |= DELETED_FLAG,
            None => {
                self.deleted_while_shared.insert(*id);
            }
        }
        true
    }

    /// Every message's id, ascending.
    pub fn ids(&self) -> impl Iterator<Item = MessageId> + '_ {
        self.sorted_rows()
            .map(|row| MessageId(uuid::Uuid::from_bytes(row.id)))
    }

    /// Every row, sorted by id (what equality and the serialised form see).
    fn sorted_rows(&self) -> impl Iterator<Item = Row> + '_ {
        let mut recent: Vec<Row> = self
            .recent
            .iter()
            .map(|(id, fields)| Row::with(*id.0.as_bytes(), *fields))
            .collect();
        recent.sort_unstable_by_key(|row| row.id);
        let settled = (0..self.settled.len())
            .map(|index| Row::with(self.settled[index].id, self.settled_fields(index)));
        MergeSorted::new(settled, recent.into_iter())
    }

    /// The fields of settled row `index`, with a deletion made while the rows were shared.
    fn settled_fields(&self, index: usize) -> Fields {
        let row = &self.settled[index];
        let mut fields = row.fields();
        if !self.deleted_while_shared.is_empty()
            && self
                .deleted_while_shared
                .contains(&MessageId(uuid::Uuid::from_bytes(row.id)))
        {
            fields.room_and_flags |= DELETED_FLAG;
        }
        fields
    }

    fn state_of(&self, fields: Fields) -> MessageState {
        let room_index = (fields.room_and_flags & ROOM_MASK) as usize;
        MessageState {
            // Every row's room was interned when the row was made.
            room_id: self.rooms[room_index],
            author: fields.author,
            sent_at: fields.sent_at,
            deleted: fields.room_and_flags & DELETED_FLAG != 0,
            carries_file: fields.room_and_flags & CARRIES_FILE_FLAG != 0,
        }
    }

    fn intern_room(&mut self, room: RoomId) -> u32 {
        if let Some(&index) = self.room_indexes.get(&room) {
            return index;
        }
        let index = u32::try_from(self.rooms.len()).unwrap_or(ROOM_MASK);
        // Over 2^30 rooms would not fit in memory anyway; the mask keeps the flags intact.
        let index = index.min(ROOM_MASK);
        self.rooms.push(room);
        self.room_indexes.insert(room, index);
        index
    }

    fn settled_index(&self, id: &MessageId) -> Option<usize> {
        if self.settled.is_empty() {
            return None;
        }
        let key = id.0.as_bytes();
        let prefix = fence_prefix(key, self.fence_bits);
        let start = self.fence[prefix] as usize;
        let end = self.fence[prefix + 1] as usize;
        self.settled[start..end]
            .binary_search_by(|row| row.id.cmp(key))
            .ok()
            .map(|offset| start + offset)
    }

    /// Sorts `recent` and merges it into `settled` in place: the vector grows once (realloc,
    /// which moves no bytes for a large allocation on Linux) and rows are placed from the back,
    /// so no second copy of the table is ever held.
    fn merge(&mut self) {
        let mut incoming: Vec<Row> = self
            .recent
            .drain()
            .map(|(id, fields)| Row::with(*id.0.as_bytes(), fields))
            .collect();
        incoming.sort_unstable_by_key(|row| row.id);
        let deleted: Vec<usize> = self
            .deleted_while_shared
            .iter()
            .filter_map(|id| self.settled_index(id))
            .collect();
        self.deleted_while_shared.clear();
        // Callers merge only when no clone shares the rows, so this copies nothing.
        let settled = Arc::make_mut(&mut self.settled);
        for index in deleted {
            settled[index].room_and_flags |= DELETED_FLAG;
        }
        let old = settled.len();
        settled.reserve_exact(incoming.len());
        // Fill the new tail with a placeholder, then merge from the back.
        let filler = Row::with(
            [0; 16],
            Fields {
                room_and_flags: 0,
                author: UserRef(0),
                sent_at: Timestamp::from_millis(0),
            },
        );
        settled.resize(old + incoming.len(), filler);
        let (mut left, mut right, mut out) = (old, incoming.len(), old + incoming.len());
        while right > 0 {
            out -= 1;
            if left > 0 && settled[left - 1].id > incoming[right - 1].id {
                left -= 1;
                settled[out] = settled[left];
            } else {
                right -= 1;
                settled[out] = incoming[right];
            }
        }
        self.recent.shrink_to(MERGE_ROWS_MIN);
        self.rebuild_fence();
    }

    fn rebuild_fence(&mut self) {
        self.fence_bits = fence_bits(self.settled.len());
        let steps = 1usize << self.fence_bits;
        self.fence.clear();
        self.fence.reserve_exact(steps + 1);
        let mut row = 0usize;
        for prefix in 0..=steps {
            while row < self.settled.len()
                && fence_prefix(&self.settled[row].id, self.fence_bits) < prefix
            {
                row += 1;
            }
            // Fewer than 2^32 rows: a table that large does not fit in memory.
            self.fence.push(u32::try_from(row).unwrap_or(u32::MAX));
        }
    }

    /// Builds the table from rows sorted by id (a snapshot's), with no merge left to do.
    fn from_sorted(rows: Vec<Row>, rooms: Vec<RoomId>) -> Messages {
        let room_indexes = rooms
            .iter()
            .enumerate()
            .map(|(index, room)| (*room, u32::try_from(index).unwrap_or(ROOM_MASK)))
            .collect();
        let mut messages = Messages {
            settled: Arc::new(rows),
            deleted_while_shared: HashSet::new(),
            fence: Vec::new(),
            fence_bits: 0,
            recent: HashMap::new(),
            rooms,
            room_indexes,
        };
        messages.rebuild_fence();
        messages
    }
}

/// Fence bits for `rows` settled rows: about 16 rows per step, from 2^8 to 2^22 steps (16 MiB
/// of fence at most; a lookup then reads one fence entry and a short run of rows).
fn fence_bits(rows: usize) -> u32 {
    (rows / 16)
        .max(1)
        .next_power_of_two()
        .trailing_zeros()
        .clamp(8, 22)
}

/// The first `bits` bits of an id, the fence step it falls in.
fn fence_prefix(id: &[u8; 16], bits: u32) -> usize {
    (u32::from_be_bytes([id[0], id[1], id[2], id[3]]) >> (32 - bits)) as usize
}

impl PartialEq for Messages {
    /// Equal when they hold the same messages, whichever half each is in and whatever order the
    /// rooms were interned in.
    fn eq(&self, other: &Messages) -> bool {
        self.len() == other.len()
            && self
                .sorted_rows()
                .zip(other.sorted_rows())
                .all(|(mine, theirs)| {
                    mine.id == theirs.id
                        && self.state_of(mine.fields()) == other.state_of(theirs.fields())
                })
    }
}

impl fmt::Debug for Messages {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Messages")
            .field("settled", &self.settled.len())
            .field("recent", &self.recent.len())
            .field("rooms", &self.rooms.len())
            .finish()
    }
}

/// Merges two iterators of rows sorted by id.
struct MergeSorted<A: Iterator<Item = Row>, B: Iterator<Item = Row>> {
    a: std::iter::Peekable<A>,
    b: std::iter::Peekable<B>,
}

impl<A: Iterator<Item = Row>, B: Iterator<Item = Row>> MergeSorted<A, B> {
    fn new(a: A, b: B) -> Self {
        MergeSorted {
            a: a.peekable(),
            b: b.peekable(),
        }
    }
}

impl<A: Iterator<Item = Row>, B: Iterator<Item = Row>> Iterator for MergeSorted<A, B> {
    type Item = Row;

    fn next(&mut self) -> Option<Row> {
        match (self.a.peek(), self.b.peek()) {
            (Some(a), Some(b)) if a.id <= b.id => self.a.next(),
            (Some(_), Some(_)) | (None, Some(_)) => self.b.next(),
            (Some(_), None) => self.a.next(),
            (None, None) => None,
        }
    }
}

/// The serialised form: the rooms, then the rows sorted by id in blocks of fixed-size
/// little-endian bytes (one `serialize_bytes` per block, so bincode copies each block once and
/// reading a snapshot borrows them straight from its bytes).
impl Serialize for Messages {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let blocks = self.len().div_ceil(BLOCK_ROWS);
        let mut seq = serializer.serialize_seq(Some(2 + blocks))?;
        seq.serialize_element(&self.rooms)?;
        seq.serialize_element(&(self.len() as u64))?;
        let mut block = Vec::with_capacity(BLOCK_ROWS * ROW_BYTES);
        let mut rows = self.sorted_rows().peekable();
        while rows.peek().is_some() {
            block.clear();
            for row in rows.by_ref().take(BLOCK_ROWS) {
                row.encode(&mut block);
            }
            seq.serialize_element(&ByteString(&block))?;
        }
        seq.end()
    }
}

/// Bytes serde writes as one byte string, not as a sequence of numbers.
struct ByteString<'a>(&'a [u8]);

impl Serialize for ByteString<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_bytes(self.0)
    }
}

impl<'de> Deserialize<'de> for Messages {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Messages, D::Error> {
        deserializer.deserialize_seq(MessagesVisitor)
    }
}

struct MessagesVisitor;

impl<'de> Visitor<'de> for MessagesVisitor {
    type Value = Messages;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("the rooms, the row count, then blocks of message rows")
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Messages, A::Error> {
        use serde::de::Error as _;
        let rooms: Vec<RoomId> = seq
            .next_element()?
            .ok_or_else(|| A::Error::custom("message table without its rooms"))?;
        let count: u64 = seq
            .next_element()?
            .ok_or_else(|| A::Error::custom("message table without its row count"))?;
        let count = usize::try_from(count).map_err(A::Error::custom)?;
        // Reserve no more than the bytes could hold: a damaged count must not allocate wildly.
        let mut rows = Vec::with_capacity(count.min(1 << 24));
        while let Some(block) = seq.next_element::<RowBlock>()? {
            for bytes in block.0.chunks_exact(ROW_BYTES) {
                let bytes: &[u8; ROW_BYTES] = bytes.try_into().map_err(A::Error::custom)?;
                let row = Row::decode(bytes);
                if (row.room_and_flags & ROOM_MASK) as usize >= rooms.len() {
                    return Err(A::Error::custom("a message row names a room not interned"));
                }
                if rows.last().is_some_and(|last: &Row| last.id >= row.id) {
                    return Err(A::Error::custom("message rows out of order"));
                }
                rows.push(row);
            }
            if block.0.len() % ROW_BYTES != 0 {
                return Err(A::Error::custom("a block of message rows ends mid-row"));
            }
        }
        if rows.len() != count {
            return Err(A::Error::custom(format!(
                "message table of {count} rows holds {}",
                rows.len()
            )));
        }
        Ok(Messages::from_sorted(rows, rooms))
    }
}

/// A block of rows as read: borrowed from the input where the format allows.
struct RowBlock<'de>(std::borrow::Cow<'de, [u8]>);

impl<'de> Deserialize<'de> for RowBlock<'de> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<RowBlock<'de>, D::Error> {
        struct BlockVisitor;
        impl<'de> Visitor<'de> for BlockVisitor {
            type Value = RowBlock<'de>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a block of message rows")
            }
            fn visit_borrowed_bytes<E>(self, bytes: &'de [u8]) -> Result<RowBlock<'de>, E> {
                Ok(RowBlock(std::borrow::Cow::Borrowed(bytes)))
            }
            fn visit_bytes<E>(self, bytes: &[u8]) -> Result<RowBlock<'de>, E> {
                Ok(RowBlock(std::borrow::Cow::Owned(bytes.to_vec())))
            }
            fn visit_byte_buf<E>(self, bytes: Vec<u8>) -> Result<RowBlock<'de>, E> {
                Ok(RowBlock(std::borrow::Cow::Owned(bytes)))
            }
            /// Formats without byte strings (JSON) write them as a sequence of numbers.
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<RowBlock<'de>, A::Error> {
                let mut bytes =
                    Vec::with_capacity(seq.size_hint().unwrap_or(0).min(BLOCK_ROWS * ROW_BYTES));
                while let Some(byte) = seq.next_element::<u8>()? {
                    bytes.push(byte);
                }
                Ok(RowBlock(std::borrow::Cow::Owned(bytes)))
            }
        }
        deserializer.deserialize_bytes(BlockVisitor)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use uuid::Uuid;

    /// A small deterministic generator (no `rand` in the domain's dependencies).
    struct Lcg(u64);

    impl Lcg {
        fn next(&mut self) -> u64 {
            self.0 = self
                .0
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1_442_695_040_888_963_407);
            self.0 ^ (self.0 >> 29)
        }
    }

    fn message(rng: &mut Lcg, rooms: &[RoomId]) -> MessageState {
        MessageState {
            room_id: rooms[(rng.next() % rooms.len() as u64) as usize],
            author: UserRef((rng.next() % 50) as u32),
            sent_at: Timestamp::from_millis((rng.next() % (1 << 40)) as i64),
            deleted: false,
            carries_file: rng.next().is_multiple_of(3),
        }
    }

    /// Random sends and deletions across several merges agree with a plain map, and the table
    /// survives a serialisation round trip equal to itself.
    #[test]
    fn the_table_agrees_with_a_map_across_merges() {
        let mut rng = Lcg(7);
        let rooms: Vec<RoomId> = (0..40)
            .map(|i| RoomId(Uuid::from_u128(u128::from(i as u64) * 0x9e37_79b9)))
            .collect();
        let mut table = Messages::default();
        let mut oracle: HashMap<MessageId, MessageState> = HashMap::new();
        let mut ids = Vec::new();
        for step in 0..(MERGE_ROWS_MIN * 3 + 1_000) {
            let id = MessageId(Uuid::from_u128(
                u128::from(rng.next()) << 64 | u128::from(rng.next()),
            ));
            let state = message(&mut rng, &rooms);
            table.insert(id, state);
            oracle.insert(id, state);
            ids.push(id);
            if step % 7 == 0 {
                let victim = ids[(rng.next() % ids.len() as u64) as usize];
                let known = table.mark_deleted(&victim);
                assert!(known);
                oracle.get_mut(&victim).unwrap().deleted = true;
            }
        }
        assert!(!table.settled.is_empty(), "the test must cross a merge");
        assert!(!table.recent.is_empty(), "and leave rows in both halves");
        assert_eq!(table.len(), oracle.len());
        for (id, state) in &oracle {
            assert_eq!(table.get(id), Some(*state));
        }
        for _ in 0..1_000 {
            let absent = MessageId(Uuid::from_u128(u128::from(rng.next())));
            assert!(!table.contains(&absent));
            assert!(!table.mark_deleted(&absent));
        }
        let json = serde_json::to_vec(&table).unwrap();
        let read: Messages = serde_json::from_slice(&json).unwrap();
        assert_eq!(read, table);
        assert!(read.recent.is_empty(), "a table read back is all settled");
        for (id, state) in &oracle {
            assert_eq!(read.get(id), Some(*state));
        }
    }

    /// Ids sharing their first bytes, and ids at both ends of the fence, are found.
    #[test]
    fn the_fence_finds_ids_at_its_edges() {
        let room = RoomId(Uuid::from_u128(1));
        let mut table = Messages::default();
        let edges = [
            0u128,
            1,
            u128::MAX,
            u128::MAX - 1,
            0xffff << 112,
            0x0001 << 112,
        ];
        let ids: Vec<MessageId> = edges
            .iter()
            .copied()
            .chain((0..(MERGE_ROWS_MIN - edges.len()) as u128).map(|i| (0xabcd << 112) | i))
            .map(|value| MessageId(Uuid::from_u128(value)))
            .collect();
        let row = MessageState {
            room_id: room,
            author: UserRef(3),
            sent_at: Timestamp::from_millis(5),
            deleted: false,
            carries_file: false,
        };
        for id in &ids {
            table.insert(*id, row);
        }
        assert!(table.recent.is_empty(), "one merge took every row");
        for id in &ids {
            assert_eq!(table.get(id), Some(row));
        }
        assert!(!table.contains(&MessageId(Uuid::from_u128(2))));
    }

    /// A clone (a snapshot being written) shares the settled rows: a deletion made meanwhile
    /// shows in the table and not in the clone, merges wait until the clone is gone, and then
    /// the deletion is in the rows.
    #[test]
    fn a_clone_shares_the_rows_and_sees_nothing_done_after_it() {
        let room = RoomId(Uuid::from_u128(5));
        let row = MessageState {
            room_id: room,
            author: UserRef(2),
            sent_at: Timestamp::from_millis(10),
            deleted: false,
            carries_file: false,
        };
        let id =
            |value: u128| MessageId(Uuid::from_u128(value.wrapping_mul(0x9e37_79b9_7f4a_7c15)));
        let mut table = Messages::default();
        for value in 0..MERGE_ROWS_MIN as u128 {
            table.insert(id(value), row);
        }
        assert!(table.recent.is_empty(), "all rows settled");
        let snapshot = table.clone();
        assert!(table.mark_deleted(&id(3)));
        assert!(table.get(&id(3)).is_some_and(|m| m.deleted));
        assert!(snapshot.get(&id(3)).is_some_and(|m| !m.deleted));
        for value in MERGE_ROWS_MIN as u128..(2 * MERGE_ROWS_MIN as u128 + 5) {
            table.insert(id(value), row);
        }
        assert!(table.recent.len() > MERGE_ROWS_MIN, "no merge while shared");
        assert_eq!(snapshot.len(), MERGE_ROWS_MIN);
        drop(snapshot);
        table.insert(id(1 << 100), row);
        assert!(table.recent.is_empty() && table.deleted_while_shared.is_empty());
        assert!(table.get(&id(3)).is_some_and(|m| m.deleted));
        assert!(table.get(&id(4)).is_some_and(|m| !m.deleted));
        assert_eq!(table.len(), 2 * MERGE_ROWS_MIN + 6);
    }

    /// Equality sees the messages, not which half holds them.
    #[test]
    fn equality_ignores_the_split() {
        let room = RoomId(Uuid::from_u128(9));
        let row = MessageState {
            room_id: room,
            author: UserRef(1),
            sent_at: Timestamp::from_millis(1),
            deleted: false,
            carries_file: true,
        };
        let mut merged = Messages::default();
        let mut other = Messages::default();
        for value in 0..(MERGE_ROWS_MIN as u128 + 10) {
            merged.insert(MessageId(Uuid::from_u128(value << 64)), row);
        }
        for value in (0..(MERGE_ROWS_MIN as u128 + 10)).rev() {
            other.insert(MessageId(Uuid::from_u128(value << 64)), row);
        }
        assert_eq!(merged, other);
        other.mark_deleted(&MessageId(Uuid::from_u128(0)));
        assert_ne!(merged, other);
    }
}
