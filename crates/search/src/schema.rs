//! The index's schema and its three kinds of document.
//!
//! | `doc_type` | fields | what |
//! |---|---|---|
//! | `message` | `message_id`, `room_id`, `author`, `sent_at`, `position`, `body` | a live message (its latest body) |
//! | `room` | `record_key` = `r:<room>`, `record` (JSON [`RoomRecord`]) | a room: kind, name, members |
//! | `user` | `record_key` = `u:<user>`, `record` (JSON display name) | a user's display name |
//!
//! `body` is indexed with [`crate::text::PrefixTokenizer`] (every word whole and its prefixes
//! of one to three characters; doc ids only: no frequencies, positions or norms, since results
//! are ordered by time, not relevance).
//! `room_id` is a raw `STRING` term and a fast column: the permission filter checks a
//! candidate's room in the column, or intersects the caller's rooms' posting lists when they
//! are the rarer (see [`crate::newest`]). `sent_at` and `position` are fast fields: the sort
//! key, newest first.

use domain::{MessageId, RoomId, Timestamp, UserId};
use tantivy::schema::{
    Field, IndexRecordOption, NumericOptions, Schema, TextFieldIndexing, TextOptions, FAST, STORED,
    STRING,
};
use tantivy::{TantivyDocument, Term};

use crate::model::RoomRecord;

/// The name the body tokenizer is registered under.
pub const PREFIX_TOKENIZER: &str = "parlor_prefix";

/// `doc_type` of a message document.
pub const DOC_MESSAGE: &str = "message";
/// `doc_type` of a room document.
pub const DOC_ROOM: &str = "room";
/// `doc_type` of a user document.
pub const DOC_USER: &str = "user";

/// The fields of the schema.
#[derive(Debug, Clone, Copy)]
pub struct Fields {
    /// `message`, `room` or `user`.
    pub doc_type: Field,
    /// A message's id (raw term; stored).
    pub message_id: Field,
    /// A message's room (raw term and fast column: the permission filter, see
    /// [`crate::newest`]; stored).
    pub room_id: Field,
    /// A message's author (stored only).
    pub author: Field,
    /// When a message was sent, in milliseconds (fast, stored).
    pub sent_at: Field,
    /// The log position of the `message_sent` (fast, stored): breaks ties of `sent_at`.
    pub position: Field,
    /// A message's latest body (indexed by words and short prefixes; stored).
    pub body: Field,
    /// A room or user document's key (raw term), for replacing it.
    pub record_key: Field,
    /// A room or user document's JSON (stored only).
    pub record: Field,
}

impl Fields {
    /// The schema and its fields.
    pub fn schema() -> (Schema, Fields) {
        let mut builder = Schema::builder();
        let body_indexing = TextFieldIndexing::default()
            .set_tokenizer(PREFIX_TOKENIZER)
            .set_index_option(IndexRecordOption::Basic)
            .set_fieldnorms(false);
        let body_options = TextOptions::default()
            .set_indexing_options(body_indexing)
            .set_stored();
        let fast_stored = NumericOptions::default().set_fast().set_stored();
        let fields = Fields {
            doc_type: builder.add_text_field("doc_type", STRING),
            message_id: builder.add_text_field("message_id", STRING | STORED),
            room_id: builder.add_text_field("room_id", STRING | STORED | FAST),
            author: builder.add_text_field("author", STORED),
            sent_at: builder.add_i64_field("sent_at", fast_stored.clone()),
            position: builder.add_u64_field("position", fast_stored),
            body: builder.add_text_field("body", body_options),
            record_key: builder.add_text_field("record_key", STRING),
            record: builder.add_text_field("record", STORED),
        };
        (builder.build(), fields)
    }

    /// The term naming documents of one type.
    pub fn doc_type_term(&self, doc_type: &str) -> Term {
        Term::from_field_text(self.doc_type, doc_type)
    }

    /// The term naming one message's document.
    pub fn message_term(&self, message_id: &MessageId) -> Term {
        Term::from_field_text(self.message_id, &message_id.to_string())
    }

    /// The term of one room in the permission filter.
    pub fn room_term(&self, room_id: &RoomId) -> Term {
        Term::from_field_text(self.room_id, &room_id.to_string())
    }

    /// The term naming a room's record document.
    pub fn room_record_term(&self, room_id: &RoomId) -> Term {
        Term::from_field_text(self.record_key, &format!("r:{room_id}"))
    }

    /// The term naming a user's record document.
    pub fn user_record_term(&self, user_id: &UserId) -> Term {
        Term::from_field_text(self.record_key, &format!("u:{user_id}"))
    }

    /// A message's document.
    pub fn message_document(&self, message: &MessageDoc) -> TantivyDocument {
        let mut document = TantivyDocument::new();
        document.add_text(self.doc_type, DOC_MESSAGE);
        document.add_text(self.message_id, message.message_id.to_string());
        document.add_text(self.room_id, message.meta.room_id.to_string());
        document.add_text(self.author, message.meta.author.as_str());
        document.add_i64(self.sent_at, message.meta.sent_at.millis());
        document.add_u64(self.position, message.meta.position);
        document.add_text(self.body, &message.body);
        document
    }

    /// A room's record document.
    pub fn room_document(&self, room_id: &RoomId, json: &str) -> TantivyDocument {
        let mut document = TantivyDocument::new();
        document.add_text(self.doc_type, DOC_ROOM);
        document.add_text(self.record_key, format!("r:{room_id}"));
        document.add_text(self.record, json);
        document
    }

    /// A user's record document.
    pub fn user_document(&self, user_id: &UserId, json: &str) -> TantivyDocument {
        let mut document = TantivyDocument::new();
        document.add_text(self.doc_type, DOC_USER);
        document.add_text(self.record_key, format!("u:{user_id}"));
        document.add_text(self.record, json);
        document
    }
}

/// What a message document holds besides its body: what an edit carries over.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MessageMeta {
    /// The room.
    pub room_id: RoomId,
    /// The author.
    pub author: UserId,
    /// When it was sent.
    pub sent_at: Timestamp,
    /// The log position of its `message_sent` (or `auto_reply_sent`).
    pub position: u64,
}

/// A message document, decoded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MessageDoc {
    /// The message.
    pub message_id: MessageId,
    /// Room, author, time, position.
    pub meta: MessageMeta,
    /// The latest body.
    pub body: String,
}

/// A room's record as stored: the room and its JSON.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct StoredRoom {
    /// The room.
    pub room_id: RoomId,
    /// Kind, name, members, last activity.
    pub room: RoomRecord,
}

/// A user's record as stored.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct StoredUser {
    /// The user.
    pub user_id: UserId,
    /// The display name.
    pub display_name: String,
}
