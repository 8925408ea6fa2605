//! What the search model has applied but the index has not committed yet, searched in memory
//! beside the committed index so that a message is found as soon as it is applied.
//!
//! tantivy shows a document only after a commit (segment files written and synced, `meta.json`
//! replaced) and a reload; doing that per read made search's visibility the commit cadence plus
//! a commit (~60 ms at 2,000 messages/s, docs/speed-work.md), and every commit is a segment to
//! merge again. So the index commits on its own cadence for durability and segment size, and
//! queries read two parts taken together under one lock ([`Recent`] and the reader's searcher):
//! - the committed index, minus the documents made stale since (messages edited or deleted
//!   after the commit: tantivy applies deletes only at the next commit);
//! - the messages added or edited since the commit, matched here with the same definition of a
//!   word as the index ([`crate::text`]), so an answer is the same before and after a commit.
//!
//! Everything here carries the position of the event that put it. A commit covers the events up
//! to its checkpoint; batches applied while it runs are not in it and stay here. After a
//! commit the reader is reloaded *before* what it covers is forgotten here: a query between the
//! two sees a message in both parts with the same sort key and the same body, and the merge
//! keeps one.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};

use domain::{MessageId, RoomId};

use crate::newest::SortKey;
use crate::schema::{MessageDoc, MessageMeta};
use crate::text::{all_match, body_words, BODY_WORDS_SEPARATOR};

/// A message held, and its body's words as the index has them: lowered once here, not once per
/// query (tokenizing every held body per query took 12 % of `parlor up` under B3).
#[derive(Debug)]
struct Held {
    message: MessageDoc,
    /// [`body_words`] of the body.
    words: String,
    /// The position of the event that put this body.
    position: u64,
}

impl Held {
    fn matches(&self, query: &[String]) -> bool {
        all_match(query, self.words.split(BODY_WORDS_SEPARATOR))
    }
}

/// The uncommitted messages and the committed documents they made stale.
#[derive(Debug, Default)]
pub(crate) struct Recent {
    /// Whether bodies are held and searched (`SearchOptions::search_uncommitted`); without
    /// them only room, author and time are kept, and [`Recent::newest`] finds nothing.
    bodies: bool,
    /// Live messages added or edited since the last commit, with their latest body.
    messages: HashMap<MessageId, Held>,
    /// The same messages by room, by sort key: a query walks only the caller's rooms, newest
    /// first.
    by_room: HashMap<RoomId, BTreeMap<SortKey, MessageId>>,
    /// Sort keys of index documents made stale by an edit or a deletion, and that event's
    /// position: until a commit covers it, the committed document (if any) is not the message.
    stale: HashMap<SortKey, u64>,
}

impl Recent {
    /// Empty; holding bodies for queries or not (see [`Recent::bodies`]).
    pub(crate) fn new(bodies: bool) -> Recent {
        Recent {
            bodies,
            ..Recent::default()
        }
    }

    /// Holds `message`'s latest body (a new message, or an edit of one), put by the event at
    /// `position`.
    pub(crate) fn put(&mut self, mut message: MessageDoc, position: u64) {
        let words = if self.bodies {
            self.by_room
                .entry(message.meta.room_id)
                .or_default()
                .insert(sort_key(&message.meta), message.message_id);
            body_words(&message.body)
        } else {
            message.body = String::new();
            String::new()
        };
        self.messages.insert(
            message.message_id,
            Held {
                message,
                words,
                position,
            },
        );
    }

    /// Forgets a message held here (deleted); returns whether it was held.
    pub(crate) fn remove(&mut self, message_id: &MessageId) -> bool {
        let Some(Held { message, .. }) = self.messages.remove(message_id) else {
            return false;
        };
        if let Some(room) = self.by_room.get_mut(&message.meta.room_id) {
            room.remove(&sort_key(&message.meta));
            if room.is_empty() {
                self.by_room.remove(&message.meta.room_id);
            }
        }
        true
    }

    /// Marks the index document of a message as stale: the event at `position` edited or
    /// deleted it.
    pub(crate) fn mark_stale(&mut self, meta: &MessageMeta, position: u64) {
        self.stale.insert(sort_key(meta), position);
    }

    /// Room, author, time and position of a message held here.
    pub(crate) fn meta(&self, message_id: &MessageId) -> Option<&MessageMeta> {
        self.messages.get(message_id).map(|held| &held.message.meta)
    }

    /// Messages held (the commit trigger counts them).
    pub(crate) fn len(&self) -> usize {
        self.messages.len()
    }

    /// Forgets what the events up to `checkpoint` put here: a commit has them now.
    pub(crate) fn forget_up_to(&mut self, checkpoint: u64) {
        let committed: Vec<MessageId> = self
            .messages
            .iter()
            .filter(|(_, held)| held.position <= checkpoint)
            .map(|(message_id, _)| *message_id)
            .collect();
        for message_id in &committed {
            self.remove(message_id);
        }
        self.stale.retain(|_, position| *position > checkpoint);
    }

    /// The sort keys of stale index documents (a query filters them out).
    pub(crate) fn stale_keys(&self) -> HashSet<SortKey> {
        self.stale.keys().copied().collect()
    }

    /// The `want` newest messages held here in `rooms` whose body matches every word of
    /// `words` (lowered query words), with keys below `below`, newest first.
    pub(crate) fn newest(
        &self,
        rooms: &BTreeSet<RoomId>,
        words: &[String],
        want: usize,
        below: Option<SortKey>,
    ) -> Vec<(SortKey, MessageDoc)> {
        let mut found: Vec<(SortKey, MessageDoc)> = Vec::new();
        if !self.bodies || want == 0 || words.is_empty() {
            return found;
        }
        for room in rooms {
            let Some(messages) = self.by_room.get(room) else {
                continue;
            };
            let newer_than_cursor = match below {
                Some(below) => messages.range(..below),
                None => messages.range(..),
            };
            let mut in_room = 0;
            for (key, message_id) in newer_than_cursor.rev() {
                if in_room == want {
                    break;
                }
                let Some(held) = self.messages.get(message_id) else {
                    continue;
                };
                if held.matches(words) {
                    found.push((*key, held.message.clone()));
                    in_room += 1;
                }
            }
        }
        found.sort_unstable_by_key(|(key, _)| std::cmp::Reverse(*key));
        found.truncate(want);
        found
    }
}

/// A message's sort key, as the index stores it.
pub(crate) fn sort_key(meta: &MessageMeta) -> SortKey {
    (meta.sent_at.millis(), meta.position)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use domain::{Timestamp, UserId};

    fn id(n: u64) -> String {
        format!("00000000-0000-4000-8000-{n:012}")
    }

    fn message(room: RoomId, position: u64, body: &str) -> MessageDoc {
        MessageDoc {
            message_id: MessageId::parse(&id(position)).unwrap(),
            meta: MessageMeta {
                room_id: room,
                author: UserId::parse("alice").unwrap(),
                sent_at: Timestamp::from_millis(1_000 + i64::try_from(position).unwrap()),
                position,
            },
            body: body.to_owned(),
        }
    }

    #[test]
    fn newest_matching_messages_of_the_callers_rooms_below_the_cursor() {
        let (mine, other) = (
            RoomId::parse(&id(100)).unwrap(),
            RoomId::parse(&id(101)).unwrap(),
        );
        let mut recent = Recent::new(true);
        let messages: Vec<MessageDoc> = (1..=6)
            .map(|position| {
                let room = if position == 5 { other } else { mine };
                let body = if position == 3 {
                    "nothing"
                } else {
                    "Roadmap review"
                };
                message(room, position, body)
            })
            .collect();
        for message in &messages {
            recent.put(message.clone(), message.meta.position);
        }
        let rooms = BTreeSet::from([mine]);
        let words = vec!["roadm".to_owned(), "re".to_owned()];
        let positions = |found: Vec<(SortKey, MessageDoc)>| -> Vec<u64> {
            found.into_iter().map(|(key, _)| key.1).collect()
        };
        assert_eq!(
            positions(recent.newest(&rooms, &words, 10, None)),
            [6, 4, 2, 1]
        );
        assert_eq!(positions(recent.newest(&rooms, &words, 2, None)), [6, 4]);
        let cursor = Some(sort_key(&messages[3].meta));
        assert_eq!(positions(recent.newest(&rooms, &words, 10, cursor)), [2, 1]);

        assert!(recent.remove(&messages[5].message_id));
        assert!(!recent.remove(&messages[5].message_id));
        assert_eq!(
            positions(recent.newest(&rooms, &words, 10, None)),
            [4, 2, 1]
        );

        // A commit up to 2 covers messages 1 and 2 and the edit of 1 at 2, not the later
        // deletion of 4 (at 7) or what came after.
        recent.mark_stale(&messages[0].meta, 2);
        recent.mark_stale(&messages[3].meta, 7);
        recent.remove(&messages[3].message_id);
        recent.forget_up_to(2);
        assert_eq!(
            positions(recent.newest(&rooms, &words, 10, None)),
            Vec::<u64>::new()
        );
        assert_eq!(recent.len(), 2);
        assert_eq!(
            recent.stale_keys(),
            HashSet::from([sort_key(&messages[3].meta)])
        );
        recent.forget_up_to(7);
        assert_eq!(recent.len(), 0);
        assert!(recent.stale_keys().is_empty());
    }
}
