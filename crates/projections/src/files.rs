//! The `files` read model: each room's "Files and links" listing (R-F2, protocol.md §3 Item) —
//! every file and link of its non-deleted messages (R-M4), newest first, filtered by type and
//! searched by name — and who may download a file (`file`, docs/queries.md). Only members list a
//! room (R-R6), and they list its whole history, from before they joined too (R-R4).
//!
//! Store catalogue (`<data_dir>/projections/files/`, one fjall keyspace):
//!
//! | key | value | what |
//! |---|---|---|
//! | `m/<room><user>\0` | `()` | membership |
//! | `i/<room><type><!position><index>` | [`ItemRecord`] | a file (`f`) or link (`l`) of a message |
//! | `g/<message>` | [`MessageLocator`] | where a message with attachments is, to drop its items |
//! | `a/<file><room><position>` | `()` | a non-deleted message the file is attached to |
//! | `f/<file>` | [`FileRecord`] | a registered file, for downloads |
//!
//! Item keys hold the bitwise complement of the log position, so an ascending scan walks a room
//! newest first; `<index>` (one byte) is the attachment's place in its message, so a message's
//! items keep the order they were attached in. Files and links have their own key ranges, so a
//! `type` filter scans only its own items; an unfiltered page merges the two ranges.
//!
//! Search (`q`): case-insensitive; an item matches when the whole query is a substring of its
//! name, or when every term of the query is the prefix of a word of the name (`final rep` finds
//! `Final_Report.pdf`). A link's name is its URL. One query scans at most
//! [`ITEMS_SCANNED_PER_QUERY_MAX`] items: a page may then hold fewer than `limit` items (even
//! none) with a `next_cursor` to go on from.

use std::path::Path;

use domain::{Attachment, Event, FileId, MessageId, RoomId, Timestamp, UserId};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use crate::envelope::EventEnvelope;
use crate::error::{ProjectionError, QueryError};
use crate::membership::{member_key, track_membership};
use crate::query::{encode_cursor, QueryRequest};
use crate::runtime::{OpenFor, Projector};
use crate::store::{store_path, Changes, Direction, Dump, Key, Store};
use crate::text::has_preview;
use protocol::query::{Cursor, FilesQuery, ItemType, PageLimit};

/// The model's name.
pub const NAME: &str = "files";

/// The most items one `list` query reads from the store. Without `q` every item read is shown,
/// so this only bounds a search (or a page of rare matches): a room's whole listing is never
/// walked in one query, however large the room.
pub const ITEMS_SCANNED_PER_QUERY_MAX: usize = 10_000;

/// The longest `q`, in characters: the gateway's bound too (a file name's longest;
/// `protocol::query`, which checks it when a request is read).
pub const QUERY_CHARS_MAX: usize = protocol::query::FILES_QUERY_CHARS_MAX;

/// The most terms (words) in `q`, so matching one item stays cheap (`protocol::query`).
pub const QUERY_TERMS_MAX: usize = protocol::query::FILES_QUERY_WORDS_MAX;

/// The most rooms a `file` query checks the caller's membership of. The domain attaches a file
/// once (R-F1), so one is the norm; the bound keeps a malformed log from making a query long.
pub const FILE_ATTACHMENTS_CHECKED_MAX: usize = 100;

/// The key byte of file items.
const FILE_TYPE: u8 = b'f';

/// The key byte of link items.
const LINK_TYPE: u8 = b'l';

/// The length of a cursor: an item key's suffix after the type byte (position and index).
const CURSOR_BYTES: usize = 9;

/// One file or link of a message, as the listing shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ItemRecord {
    /// The message it is attached to.
    pub message_id: MessageId,
    /// The message's author.
    pub author: UserId,
    /// When the message was sent.
    pub sent_at: Timestamp,
    /// The file or link, as `message_sent` recorded it.
    pub attachment: Attachment,
}

/// Where a message with attachments is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct MessageLocator {
    /// Its room.
    pub room_id: RoomId,
    /// Its log position.
    pub position: u64,
}

/// A registered file (`file_registered`), attached or not.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileRecord {
    /// Who uploaded it: they may always download it.
    pub uploader: UserId,
    /// Its name as uploaded.
    pub name: String,
    /// Bytes.
    pub size: u64,
    /// MIME type.
    pub content_type: String,
    /// The content's sha256 (64 lowercase hex characters): the blob to serve.
    pub sha256: String,
}

/// The `files` read model.
#[derive(Debug)]
pub struct Files {
    store: Store,
}

impl Files {
    /// Opens the model under a data directory (`<data_dir>/projections/files/`).
    /// A swap a crash interrupted is finished or undone first ([`crate::swap::recover`]).
    pub fn open(data_dir: &Path) -> Result<Files, ProjectionError> {
        let path = store_path(data_dir, NAME);
        crate::swap::recover(&path)?;
        Files::open_path(&path)
    }

    /// Opens the model in the directory `path`, to serve.
    pub fn open_path(path: &Path) -> Result<Files, ProjectionError> {
        Files::open_path_for(path, OpenFor::Serving)
    }

    /// Opens the model in the directory `path` for `purpose` (a rebuild writes in bulk:
    /// [`Store::open_for`]).
    pub fn open_path_for(path: &Path, purpose: OpenFor) -> Result<Files, ProjectionError> {
        Ok(Files {
            store: Store::open_for(path, purpose)?,
        })
    }

    /// A model in a temporary store (tests, rebuild comparisons).
    pub fn temporary() -> Result<Files, ProjectionError> {
        Ok(Files {
            store: Store::temporary()?,
        })
    }

    fn list(
        &self,
        user: &UserId,
        room_id: RoomId,
        q: Option<&str>,
        item_type: Option<ItemType>,
        limit: PageLimit,
        cursor: Option<&Cursor>,
    ) -> Result<Value, QueryError> {
        let item_type = item_type.map(|item_type| match item_type {
            ItemType::File => FILE_TYPE,
            ItemType::Link => LINK_TYPE,
        });
        let search = match q {
            Some(q) => NameQuery::parse(q)?,
            None => None,
        };
        let limit = limit.items();
        let cursor = cursor.map(Cursor::bytes).transpose()?;
        if cursor
            .as_ref()
            .is_some_and(|cursor| cursor.len() != CURSOR_BYTES)
        {
            return Err(QueryError::Invalid("cursor: malformed".into()));
        }
        // A non-member learns nothing, not even that the room exists (R-R6).
        if !self.store.contains(&member_key(&room_id, user))? {
            return Err(QueryError::NotFound);
        }
        let mut items = Vec::new();
        let mut last_suffix: Vec<u8> = Vec::new();
        let mut next_cursor = None;
        // `scanned`: the items looked at before this one.
        for (scanned, entry) in self
            .items(&room_id, item_type, cursor.as_deref())
            .enumerate()
        {
            let (suffix, record) = entry?;
            if scanned == ITEMS_SCANNED_PER_QUERY_MAX {
                // Items remain unread: the next page goes on after the last one looked at.
                next_cursor = Some(encode_cursor(&last_suffix));
                break;
            }
            let admitted = search
                .as_ref()
                .is_none_or(|search| search.matches(item_name(&record.attachment)));
            if admitted && items.len() == limit {
                next_cursor = Some(encode_cursor(&last_suffix));
                break;
            }
            last_suffix = suffix;
            if admitted {
                items.push(item_json(&record));
            }
        }
        Ok(json!({"items": items, "next_cursor": next_cursor}))
    }

    /// A room's items of one type (or of both, merged), newest first, after the cursor `after`
    /// (a key suffix past the type byte), as `(suffix, record)`.
    fn items<'a>(
        &'a self,
        room_id: &RoomId,
        item_type: Option<u8>,
        after: Option<&[u8]>,
    ) -> ItemScan<'a> {
        match item_type {
            Some(item_type) => self.range(room_id, item_type, after),
            None => merge(
                self.range(room_id, FILE_TYPE, after),
                self.range(room_id, LINK_TYPE, after),
            ),
        }
    }

    /// The items of one type of a room, newest first, after the suffix `after`.
    fn range<'a>(&'a self, room_id: &RoomId, item_type: u8, after: Option<&[u8]>) -> ItemScan<'a> {
        let prefix = item_prefix(room_id, item_type);
        let after = after.map(|suffix| [prefix.as_slice(), suffix].concat());
        let start = prefix.len();
        Box::new(
            self.store
                .scan::<ItemRecord>(&prefix, after.as_deref(), Direction::Forward)
                .map(move |entry| {
                    entry.map(|(key, record)| {
                        (key.get(start..).unwrap_or_default().to_vec(), record)
                    })
                }),
        )
    }

    fn file(&self, user: &UserId, file_id: FileId) -> Result<Value, QueryError> {
        let file = self
            .store
            .get::<FileRecord>(&file_key(&file_id))?
            .ok_or(QueryError::NotFound)?;
        if file.uploader != *user && !self.attached_in_room_of(&file_id, user)? {
            return Err(QueryError::NotFound);
        }
        Ok(json!({
            "file_id": file_id,
            "name": file.name,
            "size": file.size,
            "content_type": file.content_type,
            "sha256": file.sha256,
            "has_preview": has_preview(&file.content_type),
            "uploader": file.uploader,
        }))
    }

    /// Whether the file is attached to a non-deleted message of a room `user` is a member of.
    fn attached_in_room_of(&self, file_id: &FileId, user: &UserId) -> Result<bool, QueryError> {
        let prefix = Key::new(b"a/").uuid(&file_id.0).build();
        for entry in self
            .store
            .scan::<()>(&prefix, None, Direction::Forward)
            .take(FILE_ATTACHMENTS_CHECKED_MAX)
        {
            let (key, ()) = entry?;
            let Some(room_id) = room_of_attachment_suffix(&key[prefix.len()..]) else {
                continue;
            };
            if self.store.contains(&member_key(&room_id, user))? {
                return Ok(true);
            }
        }
        Ok(false)
    }
}

/// Items read from the store in key order, as `(key suffix past the type byte, record)`.
type ItemScan<'a> = Box<dyn Iterator<Item = Result<(Vec<u8>, ItemRecord), ProjectionError>> + 'a>;

/// Two item scans merged into one in suffix order (newest first). A suffix (position, index) is
/// in one range only, since a message's attachment has one type.
fn merge<'a>(first: ItemScan<'a>, second: ItemScan<'a>) -> ItemScan<'a> {
    let (mut first, mut second) = (first.peekable(), second.peekable());
    Box::new(std::iter::from_fn(move || {
        let take_first = match (first.peek(), second.peek()) {
            (None, _) => false,
            (Some(_), None) => true,
            // An error goes out first, to be reported rather than skipped.
            (Some(Err(_)), _) => true,
            (Some(Ok(_)), Some(Err(_))) => false,
            (Some(Ok((a, _))), Some(Ok((b, _)))) => a <= b,
        };
        if take_first {
            first.next()
        } else {
            second.next()
        }
    }))
}

/// A parsed `q`: case-insensitive; the whole query as a substring of a name, or each term as
/// the prefix of one of its words.
#[derive(Debug, Clone, PartialEq, Eq)]
struct NameQuery {
    /// The query, trimmed and lowercased.
    whole: String,
    /// Its words, lowercased.
    terms: Vec<String>,
}

impl NameQuery {
    /// `None` for a blank query (no filter); `invalid_command` beyond [`QUERY_CHARS_MAX`] or
    /// [`QUERY_TERMS_MAX`].
    fn parse(q: &str) -> Result<Option<NameQuery>, QueryError> {
        protocol::query::check_files_filter(q)?;
        let whole = q.trim().to_lowercase();
        if whole.is_empty() {
            return Ok(None);
        }
        let terms: Vec<String> = words(&whole).map(str::to_owned).collect();
        if terms.len() > QUERY_TERMS_MAX {
            return Err(QueryError::Invalid(format!(
                "q: at most {QUERY_TERMS_MAX} words"
            )));
        }
        Ok(Some(NameQuery { whole, terms }))
    }

    fn matches(&self, name: &str) -> bool {
        let name = name.to_lowercase();
        if name.contains(&self.whole) {
            return true;
        }
        // Terms in any order and apart (`report final` finds `final_report_v2.pdf`); a query of
        // punctuation only has no terms and matches by substring alone.
        !self.terms.is_empty()
            && self
                .terms
                .iter()
                .all(|term| words(&name).any(|word| word.starts_with(term.as_str())))
    }
}

/// The words of a text: runs of letters and digits (so `_`, `-`, `.`, `/` separate them).
fn words(text: &str) -> impl Iterator<Item = &str> {
    text.split(|c: char| !c.is_alphanumeric())
        .filter(|word| !word.is_empty())
}

/// What the listing shows and searches as an item's name: a file's name, a link's URL.
fn item_name(attachment: &Attachment) -> &str {
    match attachment {
        Attachment::File { name, .. } => name,
        Attachment::Link { url, .. } => url,
    }
}

/// The Item of protocol.md §3.
fn item_json(record: &ItemRecord) -> Value {
    match &record.attachment {
        Attachment::File {
            file_id,
            name,
            size,
            content_type,
        } => json!({
            "type": "file",
            "name": name,
            "message_id": record.message_id,
            "author": record.author,
            "sent_at": record.sent_at,
            "file_id": file_id,
            "size": size,
            "content_type": content_type,
            "preview_url": has_preview(content_type)
                .then(|| format!("/v1/files/{file_id}/preview")),
        }),
        Attachment::Link { url, provider } => json!({
            "type": "link",
            "name": url,
            "message_id": record.message_id,
            "author": record.author,
            "sent_at": record.sent_at,
            "url": url,
            "provider": provider,
        }),
    }
}

impl Projector for Files {
    fn name(&self) -> &'static str {
        NAME
    }

    fn position(&self) -> u64 {
        self.store.checkpoint()
    }

    fn apply(&mut self, batch: &[EventEnvelope]) -> Result<(), ProjectionError> {
        self.store.apply_fresh(batch, apply_event)
    }

    type Query = FilesQuery;

    fn query(
        &self,
        request: &QueryRequest<FilesQuery>,
        _now: Timestamp,
    ) -> Result<Value, QueryError> {
        let user = request.caller_user()?;
        match &request.op {
            FilesQuery::List {
                room_id,
                q,
                item_type,
                limit,
                cursor,
            } => self.list(
                &user,
                *room_id,
                q.as_deref(),
                *item_type,
                *limit,
                cursor.as_ref(),
            ),
            FilesQuery::File { file_id } => self.file(&user, *file_id),
        }
    }

    fn dump(&self) -> Result<Dump, ProjectionError> {
        self.store.dump(&[])
    }

    fn flush(&self) -> Result<(), ProjectionError> {
        self.store.flush()
    }
}

fn item_prefix(room: &RoomId, item_type: u8) -> Vec<u8> {
    Key::new(b"i/").uuid(&room.0).bytes(&[item_type]).build()
}

/// The items of one message of one type: the prefix of their keys.
fn message_items_prefix(room: &RoomId, item_type: u8, position: u64) -> Vec<u8> {
    // The complement makes later positions sort first.
    Key::new(b"i/")
        .uuid(&room.0)
        .bytes(&[item_type])
        .number(!position)
        .build()
}

fn item_key(room: &RoomId, item_type: u8, position: u64, index: u8) -> Vec<u8> {
    Key::new(b"i/")
        .uuid(&room.0)
        .bytes(&[item_type])
        .number(!position)
        .bytes(&[index])
        .build()
}

fn locator_key(message: &MessageId) -> Vec<u8> {
    Key::new(b"g/").uuid(&message.0).build()
}

fn attachment_key(file: &FileId, room: &RoomId, position: u64) -> Vec<u8> {
    Key::new(b"a/")
        .uuid(&file.0)
        .uuid(&room.0)
        .number(position)
        .build()
}

fn file_key(file: &FileId) -> Vec<u8> {
    Key::new(b"f/").uuid(&file.0).build()
}

/// The room of an attachment key's suffix past the file (16 bytes of room, 8 of position).
fn room_of_attachment_suffix(suffix: &[u8]) -> Option<RoomId> {
    let bytes: [u8; 16] = suffix.get(..16)?.try_into().ok()?;
    Some(RoomId(uuid::Uuid::from_bytes(bytes)))
}

fn apply_event(changes: &mut Changes<'_>, envelope: &EventEnvelope) -> Result<(), ProjectionError> {
    let position = envelope.position;
    track_membership(changes, &envelope.event)?;
    match &envelope.event {
        Event::MessageSent {
            room_id,
            message_id,
            author,
            attachments,
            sent_at,
            ..
        } => insert_items(
            changes,
            room_id,
            position,
            message_id,
            author,
            *sent_at,
            attachments,
        ),
        Event::MessageDeleted { message_id, .. } => remove_items(changes, message_id),
        Event::FileRegistered {
            file_id,
            uploader,
            name,
            size,
            content_type,
            sha256,
            ..
        } => changes.put(
            file_key(file_id),
            &FileRecord {
                uploader: uploader.clone(),
                name: name.clone(),
                size: *size,
                content_type: content_type.clone(),
                sha256: sha256.clone(),
            },
        ),
        // Edits change bodies only; automatic replies carry no attachments (R-A2).
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
        | Event::AutoReplySent { .. }
        | Event::MessageEdited { .. }
        | Event::MessageReported { .. }
        | Event::CallStarted { .. }
        | Event::CallEnded { .. }
        // Membership: kept by `track_membership` above.
        | Event::DirectRoomOpened { .. }
        | Event::GroupRoomCreated { .. }
        | Event::InterviewRoomOpened { .. }
        | Event::ContractStarted { .. }
        | Event::MemberAdded { .. }
        | Event::MemberLeft { .. } => Ok(()),
    }
}

/// A message's files and links become items of its room; its files become downloadable there.
fn insert_items(
    changes: &mut Changes<'_>,
    room_id: &RoomId,
    position: u64,
    message_id: &MessageId,
    author: &UserId,
    sent_at: Timestamp,
    attachments: &[Attachment],
) -> Result<(), ProjectionError> {
    if attachments.is_empty() {
        return Ok(());
    }
    changes.put(
        locator_key(message_id),
        &MessageLocator {
            room_id: *room_id,
            position,
        },
    )?;
    for (index, attachment) in attachments.iter().enumerate() {
        // The domain allows ten attachments per message; a byte holds far more, and an index
        // beyond it (a malformed log) is not worth losing the rest of the message for.
        let Ok(index) = u8::try_from(index) else {
            break;
        };
        let item_type = match attachment {
            Attachment::File { file_id, .. } => {
                changes.put(attachment_key(file_id, room_id, position), &())?;
                FILE_TYPE
            }
            Attachment::Link { .. } => LINK_TYPE,
        };
        changes.put(
            item_key(room_id, item_type, position, index),
            &ItemRecord {
                message_id: *message_id,
                author: author.clone(),
                sent_at,
                attachment: attachment.clone(),
            },
        )?;
    }
    Ok(())
}

/// A deleted message's files and links leave the listing, and its files stop being
/// downloadable through its room (R-M4); deleting it again changes nothing.
fn remove_items(changes: &mut Changes<'_>, message_id: &MessageId) -> Result<(), ProjectionError> {
    let key = locator_key(message_id);
    let Some(locator) = changes.get::<MessageLocator>(&key)? else {
        return Ok(());
    };
    changes.remove(key);
    for item_type in [FILE_TYPE, LINK_TYPE] {
        let prefix = message_items_prefix(&locator.room_id, item_type, locator.position);
        for (key, item) in changes.scan::<ItemRecord>(&prefix, None)? {
            if let Attachment::File { file_id, .. } = &item.attachment {
                changes.remove(attachment_key(file_id, &locator.room_id, locator.position));
            }
            changes.remove(key);
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn query(q: &str) -> NameQuery {
        match NameQuery::parse(q) {
            Ok(Some(query)) => query,
            other => panic!("{q:?} parsed as {other:?}"),
        }
    }

    #[test]
    fn names_match_by_substring_or_word_prefixes_in_any_case() {
        assert!(query("REPORT").matches("Final_Report_v2.pdf"));
        assert!(query("port").matches("Final_Report_v2.pdf"));
        assert!(query("final rep").matches("Final_Report_v2.pdf"));
        assert!(query("rep fin").matches("Final_Report_v2.pdf"));
        assert!(query("_v2.").matches("Final_Report_v2.pdf"));
        assert!(!query("final port").matches("Final_Report_v2.pdf"));
        assert!(!query("budget").matches("Final_Report_v2.pdf"));
        assert!(query("ÉTÉ").matches("photos d'été.zip"));
        assert!(query("dropbox abc").matches("https://www.dropbox.com/s/abc/file.pdf"));
        assert!(!query("..").matches("a.b"));
    }

    #[test]
    fn blank_and_oversized_queries() {
        assert_eq!(NameQuery::parse("  "), Ok(None));
        assert!(NameQuery::parse(&"a".repeat(QUERY_CHARS_MAX + 1)).is_err());
        assert!(NameQuery::parse(&"a ".repeat(QUERY_TERMS_MAX + 1)).is_err());
        assert!(NameQuery::parse(&"a ".repeat(QUERY_TERMS_MAX)).is_ok());
    }
}
