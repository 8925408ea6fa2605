//! The internal query contract (docs/queries.md), the one home of what the gateway and the
//! projectors say to each other on `<prefix>.query.<model>`: the read models by name
//! ([`ReadModel`]), the request envelope ([`QueryRequest`]), each model's operations and their
//! parameters ([`RoomsQuery`], [`TimelineQuery`], [`FilesQuery`], [`SearchQuery`],
//! [`ModerationQuery`], [`NotificationsQuery`]), the reply envelope ([`QueryReply`]) and the
//! limits both sides apply. Adding a model is one variant of [`ReadModel`] and one operation
//! type; adding a parameter is one field: the compiler then points at every place that builds or
//! reads it.
//!
//! The wire format is JSON only and exactly what it was before these types existed (golden
//! strings in `tests/protocol/queries.rs`): a request is one flat object `{"op", "caller",
//! "moderator", "min_position", …params}` with its keys in sorted order (serde_json's `Map` is
//! sorted; the workspace must not turn on serde_json's `preserve_order`), absent optional
//! parameters sent as `null`. Reading is strict and names the field at fault
//! (`invalid_command`); unknown fields are ignored, so an older peer's extra field harms nothing.

use domain::{FileId, MessageId, RoomId, UserId};
use serde::de::DeserializeOwned;
use serde::ser::{Error as _, SerializeMap};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::{Map, Value};
use uuid::Uuid;

/// A read model: its query subject is `<prefix>.query.<name>`, its queue group
/// `parlor-<name>`, its directory `<data_dir>/projections/<name>/`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ReadModel {
    /// The room list of each user.
    Rooms,
    /// Each room's messages.
    Timeline,
    /// Each room's files and links.
    Files,
    /// Full-text search over messages and rooms.
    Search,
    /// The moderators' queue of reports.
    Moderation,
    /// Batched notifications of unread messages.
    Notifications,
}

impl ReadModel {
    /// Every read model, in the order a process starts them.
    pub const ALL: [ReadModel; 6] = [
        ReadModel::Rooms,
        ReadModel::Timeline,
        ReadModel::Files,
        ReadModel::Search,
        ReadModel::Moderation,
        ReadModel::Notifications,
    ];

    /// The models the gateway queries (notifications answers no HTTP endpoint).
    pub const QUERIED_BY_THE_GATEWAY: [ReadModel; 5] = [
        ReadModel::Rooms,
        ReadModel::Timeline,
        ReadModel::Files,
        ReadModel::Search,
        ReadModel::Moderation,
    ];

    /// The names of [`ReadModel::ALL`], in the same order.
    pub const ALL_NAMES: [&'static str; 6] = [
        ReadModel::Rooms.name(),
        ReadModel::Timeline.name(),
        ReadModel::Files.name(),
        ReadModel::Search.name(),
        ReadModel::Moderation.name(),
        ReadModel::Notifications.name(),
    ];

    /// Its name (`rooms`, `timeline`, …).
    pub const fn name(self) -> &'static str {
        match self {
            ReadModel::Rooms => "rooms",
            ReadModel::Timeline => "timeline",
            ReadModel::Files => "files",
            ReadModel::Search => "search",
            ReadModel::Moderation => "moderation",
            ReadModel::Notifications => "notifications",
        }
    }

    /// The model called `name`, if any.
    pub fn from_name(name: &str) -> Option<ReadModel> {
        ReadModel::ALL
            .into_iter()
            .find(|model| model.name() == name)
    }

    /// Every name, comma-separated, for messages.
    pub fn names() -> String {
        ReadModel::ALL.map(ReadModel::name).join(", ")
    }
}

impl std::fmt::Display for ReadModel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// The largest query request accepted, in bytes. Requests are a handful of parameters.
pub const QUERY_REQUEST_BYTES_MAX: usize = 64 * 1024;

/// Items in a page when the request names no `limit` (protocol.md §3).
pub const PAGE_ITEMS_DEFAULT: usize = 50;

/// The most items in a page; a larger `limit` is lowered to this (by a projector) or refused
/// (by the gateway's HTTP parameters).
pub const PAGE_ITEMS_MAX: usize = 200;

/// Search results when `/v1/search` names no `limit` (protocol.md §3).
pub const SEARCH_RESULTS_DEFAULT: usize = 20;

/// The longest search text `q` on the bus, in bytes (UTF-8).
pub const SEARCH_QUERY_BYTES_MAX: usize = 1_000;

/// The longest search text of `GET /v1/search?q=`, in characters (docs/api.md). The gateway
/// checks [`SEARCH_QUERY_BYTES_MAX`] as well, so that it never forwards a text of 256
/// characters the projector would refuse for its bytes.
pub const SEARCH_QUERY_CHARS_MAX: usize = 256;

/// The most words in a search text: each is one more term to intersect.
pub const SEARCH_QUERY_WORDS_MAX: usize = 16;

/// The longest file-name filter `q` of the files panel, in characters (a file name's own bound).
pub const FILES_QUERY_CHARS_MAX: usize = domain::limits::FILE_NAME_CHARS_MAX;

/// The most words in a file-name filter.
pub const FILES_QUERY_WORDS_MAX: usize = 16;

/// The most message (or call) ids one timeline `by_id` names: a page.
pub const MESSAGE_IDS_MAX: usize = PAGE_ITEMS_MAX;

/// The longest `cursor`, in bytes. Cursors are opaque tokens the projectors make (hex of a few
/// bytes); anything longer is not one of theirs.
pub const CURSOR_BYTES_MAX: usize = 1024;

/// A query that is not valid, with a message naming the field (`limit: must be at least 1`):
/// answered `invalid_command`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct InvalidQuery(pub String);

impl InvalidQuery {
    fn new(message: impl Into<String>) -> InvalidQuery {
        InvalidQuery(message.into())
    }
}

/// A request on `<prefix>.query.<model>`: the envelope the gateway fills in and the operation
/// `op` (a model's operation type, or [`Operation`] of one when `status` may be asked too).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueryRequest<Q> {
    /// The authenticated user the gateway asks for, if any (never taken from a client). Kept as
    /// sent: only the operations that read a user's view need it to be a user id
    /// ([`QueryRequest::caller_user`]); a moderator's token need not name a registered user.
    pub caller: Option<String>,
    /// Whether the caller's token carries the moderator role.
    pub moderator: bool,
    /// Answer only once this position is applied (read-your-writes).
    pub min_position: Option<u64>,
    /// The operation and its parameters.
    pub op: Q,
}

impl<Q> QueryRequest<Q> {
    /// The caller as a user id; `invalid_command` when absent or malformed.
    pub fn caller_user(&self) -> Result<UserId, InvalidQuery> {
        let caller = self
            .caller
            .as_deref()
            .ok_or_else(|| InvalidQuery::new("caller: missing"))?;
        UserId::parse(caller).map_err(|error| InvalidQuery(format!("caller: {error}")))
    }
}

/// What a projector may be asked: `status` (any model, answered by the runtime) or one of the
/// model's own operations.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Operation<Q> {
    /// `{"op": "status"}` → `{"name", "position"}` (for `/healthz`).
    Status,
    /// An operation of the model.
    Model(Q),
}

impl<Q: ModelQuery> QueryRequest<Operation<Q>> {
    /// Decodes a JSON request of at most [`QUERY_REQUEST_BYTES_MAX`] bytes for the model `Q`.
    pub fn parse(bytes: &[u8]) -> Result<QueryRequest<Operation<Q>>, InvalidQuery> {
        if bytes.len() > QUERY_REQUEST_BYTES_MAX {
            return Err(InvalidQuery(format!(
                "the request is over {QUERY_REQUEST_BYTES_MAX} bytes"
            )));
        }
        let value: Value = serde_json::from_slice(bytes)
            .map_err(|error| InvalidQuery(format!("the request is not JSON: {error}")))?;
        QueryRequest::from_value(value)
    }

    /// Reads a request from a JSON value (an object).
    pub fn from_value(value: Value) -> Result<QueryRequest<Operation<Q>>, InvalidQuery> {
        let Value::Object(mut params) = value else {
            return Err(InvalidQuery::new("the request is not a JSON object"));
        };
        let op = match params.remove("op") {
            Some(Value::String(op)) => op,
            _ => return Err(InvalidQuery::new("op: missing or not a string")),
        };
        let caller = match params.remove("caller") {
            None | Some(Value::Null) => None,
            Some(Value::String(caller)) => Some(caller),
            Some(_) => return Err(InvalidQuery::new("caller: not a string")),
        };
        let moderator = match params.remove("moderator") {
            None | Some(Value::Null) => false,
            Some(Value::Bool(moderator)) => moderator,
            Some(_) => return Err(InvalidQuery::new("moderator: not a boolean")),
        };
        let min_position = number(params.remove("min_position"), "min_position")?;
        let params = Params(params);
        let op = if op == "status" {
            Operation::Status
        } else {
            Operation::Model(Q::parse(&op, &params)?)
        };
        Ok(QueryRequest {
            caller,
            moderator,
            min_position,
            op,
        })
    }

    /// The request of a model operation, or `None` for `status`.
    pub fn into_model(self) -> Option<QueryRequest<Q>> {
        match self.op {
            Operation::Status => None,
            Operation::Model(op) => Some(QueryRequest {
                caller: self.caller,
                moderator: self.moderator,
                min_position: self.min_position,
                op,
            }),
        }
    }
}

/// The flat object of docs/queries.md: the operation's own object (`{"op", …params}`, its
/// absent parameters as `null`) with the envelope's fields added, keys in sorted order.
impl<Q: Serialize> Serialize for QueryRequest<Q> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut object = match serde_json::to_value(&self.op).map_err(S::Error::custom)? {
            Value::Object(object) => object,
            _ => return Err(S::Error::custom("a query operation is not a JSON object")),
        };
        object.insert("caller".into(), self.caller.clone().into());
        object.insert("moderator".into(), self.moderator.into());
        object.insert("min_position".into(), self.min_position.into());
        object.serialize(serializer)
    }
}

/// The operations of one read model: what its projector answers besides `status`.
pub trait ModelQuery: Serialize + Sized + Send + Sync + 'static {
    /// The model these operations are asked of (`<prefix>.query.<name>`).
    const MODEL: ReadModel;

    /// Reads the operation `op` and its parameters; an unknown `op` is
    /// `op: unknown operation "…"`.
    fn parse(op: &str, params: &Params) -> Result<Self, InvalidQuery>;

    /// The operation's name, as sent in `op` (for messages).
    fn op(&self) -> &'static str;
}

/// The lists of `GET /v1/rooms?view=`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum RoomView {
    /// Neither hidden nor archived (the default).
    Inbox,
    /// Favorites (R-S1).
    Favorites,
    /// Hidden until a new message (R-S2).
    Hidden,
    /// Archived (R-S3).
    Archived,
    /// With unread messages (R-S4).
    Unread,
}

impl RoomView {
    /// Every view, in the order messages list them.
    pub const ALL: [RoomView; 5] = [
        RoomView::Inbox,
        RoomView::Favorites,
        RoomView::Hidden,
        RoomView::Archived,
        RoomView::Unread,
    ];

    /// Its name (`inbox`, …).
    pub const fn name(self) -> &'static str {
        match self {
            RoomView::Inbox => "inbox",
            RoomView::Favorites => "favorites",
            RoomView::Hidden => "hidden",
            RoomView::Archived => "archived",
            RoomView::Unread => "unread",
        }
    }

    /// The view called `name`, if any.
    pub fn from_name(name: &str) -> Option<RoomView> {
        RoomView::ALL.into_iter().find(|view| view.name() == name)
    }
}

/// The item types of the files panel (`GET /v1/rooms/{room_id}/files?type=`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum ItemType {
    /// Uploaded files.
    File,
    /// Links.
    Link,
}

impl ItemType {
    /// Every type.
    pub const ALL: [ItemType; 2] = [ItemType::File, ItemType::Link];

    /// Its name (`file`, `link`).
    pub const fn name(self) -> &'static str {
        match self {
            ItemType::File => "file",
            ItemType::Link => "link",
        }
    }

    /// The type called `name`, if any.
    pub fn from_name(name: &str) -> Option<ItemType> {
        ItemType::ALL.into_iter().find(|item| item.name() == name)
    }
}

/// A page size: 1 to [`PAGE_ITEMS_MAX`]. Read from a request, a larger `limit` is lowered to
/// the maximum and an absent one is the operation's default.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, schemars::JsonSchema,
)]
#[serde(transparent)]
pub struct PageLimit(#[schemars(range(min = 1, max = 200))] u32);

impl PageLimit {
    /// `items` as a page size, if it is 1 to [`PAGE_ITEMS_MAX`].
    pub fn new(items: usize) -> Option<PageLimit> {
        (1..=PAGE_ITEMS_MAX)
            .contains(&items)
            .then(|| u32::try_from(items).ok().map(PageLimit))
            .flatten()
    }

    /// The default page of lists ([`PAGE_ITEMS_DEFAULT`]).
    pub fn list_default() -> PageLimit {
        PageLimit::new(PAGE_ITEMS_DEFAULT).unwrap_or(PageLimit(1))
    }

    /// The default page of search ([`SEARCH_RESULTS_DEFAULT`]).
    pub fn search_default() -> PageLimit {
        PageLimit::new(SEARCH_RESULTS_DEFAULT).unwrap_or(PageLimit(1))
    }

    /// The number of items.
    pub fn items(self) -> usize {
        self.0 as usize
    }
}

/// The opaque `next_cursor` of the page before, as text: the hex of a few bytes only the model
/// that made it reads ([`Cursor::bytes`]). At most [`CURSOR_BYTES_MAX`] bytes.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, schemars::JsonSchema)]
#[serde(transparent)]
pub struct Cursor(#[schemars(length(max = 1024))] String);

impl Cursor {
    /// A cursor as a client sent it back, unread; `invalid_command` when it is too long.
    pub fn new(text: &str) -> Result<Cursor, InvalidQuery> {
        if text.len() > CURSOR_BYTES_MAX {
            return Err(InvalidQuery(format!(
                "cursor: longer than {CURSOR_BYTES_MAX} bytes"
            )));
        }
        Ok(Cursor(text.to_owned()))
    }

    /// The cursor of a page that ends at `bytes` (a model's key suffix, say).
    pub fn from_bytes(bytes: &[u8]) -> Cursor {
        Cursor(hex::encode(bytes))
    }

    /// The cursor as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The bytes the model put in it; `cursor: malformed` when it is not hex.
    pub fn bytes(&self) -> Result<Vec<u8>, InvalidQuery> {
        hex::decode(&self.0).map_err(|_| InvalidQuery::new("cursor: malformed"))
    }
}

/// The operations of the `rooms` model.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, schemars::JsonSchema)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum RoomsQuery {
    /// The caller's rooms in one view, newest activity first: `{"rooms": [Room], "next_cursor"}`.
    List {
        /// Which rooms (`inbox` when absent).
        view: RoomView,
        /// The page size.
        limit: PageLimit,
        /// The page after this one's end.
        cursor: Option<Cursor>,
    },
    /// One of the caller's rooms: Room.
    Get {
        /// The room.
        room_id: RoomId,
    },
    /// The caller's rooms now: `{"room_ids": [...]}` (for event streams and downloads).
    MemberRooms,
}

impl ModelQuery for RoomsQuery {
    const MODEL: ReadModel = ReadModel::Rooms;

    fn parse(op: &str, params: &Params) -> Result<RoomsQuery, InvalidQuery> {
        match op {
            "list" => Ok(RoomsQuery::List {
                view: params.room_view("view")?,
                limit: params.limit(PageLimit::list_default())?,
                cursor: params.cursor()?,
            }),
            "get" => Ok(RoomsQuery::Get {
                room_id: params.room_id("room_id")?,
            }),
            "member_rooms" => Ok(RoomsQuery::MemberRooms),
            op => Err(unknown_op(op)),
        }
    }

    fn op(&self) -> &'static str {
        match self {
            RoomsQuery::List { .. } => "list",
            RoomsQuery::Get { .. } => "get",
            RoomsQuery::MemberRooms => "member_rooms",
        }
    }
}

/// The operations of the `timeline` model.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, schemars::JsonSchema)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum TimelineQuery {
    /// A room's messages, newest first: `{"messages": [Message], "next_cursor"}`.
    Messages {
        /// The room.
        room_id: RoomId,
        /// Only messages older than this one.
        before: Option<MessageId>,
        /// The page size.
        limit: PageLimit,
        /// The page after this one's end.
        cursor: Option<Cursor>,
    },
    /// Named messages of a room as they are now, in the order asked: `{"messages": [Message]}`
    /// (the gateway's event streams render each change with it, H-V2).
    ById {
        /// The room.
        room_id: RoomId,
        /// Message or call ids, at most [`MESSAGE_IDS_MAX`].
        message_ids: Vec<Uuid>,
    },
}

impl ModelQuery for TimelineQuery {
    const MODEL: ReadModel = ReadModel::Timeline;

    fn parse(op: &str, params: &Params) -> Result<TimelineQuery, InvalidQuery> {
        match op {
            "messages" => Ok(TimelineQuery::Messages {
                room_id: params.room_id("room_id")?,
                before: params.message_id("before")?,
                limit: params.limit(PageLimit::list_default())?,
                cursor: params.cursor()?,
            }),
            "by_id" => Ok(TimelineQuery::ById {
                room_id: params.room_id("room_id")?,
                message_ids: params.message_ids("message_ids")?,
            }),
            op => Err(unknown_op(op)),
        }
    }

    fn op(&self) -> &'static str {
        match self {
            TimelineQuery::Messages { .. } => "messages",
            TimelineQuery::ById { .. } => "by_id",
        }
    }
}

/// The operations of the `files` model.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, schemars::JsonSchema)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum FilesQuery {
    /// A room's files and links, newest first: `{"items": [Item], "next_cursor"}`.
    List {
        /// The room.
        room_id: RoomId,
        /// A file-name filter (at most [`FILES_QUERY_CHARS_MAX`] characters; blank: none).
        q: Option<String>,
        /// Only files or only links.
        #[serde(rename = "type")]
        item_type: Option<ItemType>,
        /// The page size.
        limit: PageLimit,
        /// The page after this one's end.
        cursor: Option<Cursor>,
    },
    /// A file the caller may download: `{file_id, name, size, content_type, sha256,
    /// has_preview, uploader}`.
    File {
        /// The file.
        file_id: FileId,
    },
}

impl ModelQuery for FilesQuery {
    const MODEL: ReadModel = ReadModel::Files;

    fn parse(op: &str, params: &Params) -> Result<FilesQuery, InvalidQuery> {
        match op {
            "list" => Ok(FilesQuery::List {
                room_id: params.room_id("room_id")?,
                item_type: params.item_type("type")?,
                q: params.files_filter("q")?,
                limit: params.limit(PageLimit::list_default())?,
                cursor: params.cursor()?,
            }),
            "file" => Ok(FilesQuery::File {
                file_id: params.file_id("file_id")?,
            }),
            op => Err(unknown_op(op)),
        }
    }

    fn op(&self) -> &'static str {
        match self {
            FilesQuery::List { .. } => "list",
            FilesQuery::File { .. } => "file",
        }
    }
}

/// Checks a files-panel filter's length: at most [`FILES_QUERY_CHARS_MAX`] characters.
pub fn check_files_filter(q: &str) -> Result<(), InvalidQuery> {
    if q.chars().count() > FILES_QUERY_CHARS_MAX {
        return Err(InvalidQuery(format!(
            "q: at most {FILES_QUERY_CHARS_MAX} characters"
        )));
    }
    Ok(())
}

/// Checks a search text's length: at most [`SEARCH_QUERY_BYTES_MAX`] bytes.
pub fn check_search_text(q: &str) -> Result<(), InvalidQuery> {
    if q.len() > SEARCH_QUERY_BYTES_MAX {
        return Err(InvalidQuery(format!(
            "q: longer than {SEARCH_QUERY_BYTES_MAX} bytes"
        )));
    }
    Ok(())
}

/// The operations of the `search` model.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, schemars::JsonSchema)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum SearchQuery {
    /// Rooms and messages matching `q`: `{"rooms": [...], "messages": [...], "next_cursor"}`.
    Search {
        /// The text (at most [`SEARCH_QUERY_BYTES_MAX`] bytes and [`SEARCH_QUERY_WORDS_MAX`]
        /// words, which the model counts).
        q: String,
        /// Only in this room (one of the caller's).
        room_id: Option<RoomId>,
        /// The page size ([`SEARCH_RESULTS_DEFAULT`] when absent).
        limit: PageLimit,
        /// The page after this one's end.
        cursor: Option<Cursor>,
    },
}

impl ModelQuery for SearchQuery {
    const MODEL: ReadModel = ReadModel::Search;

    fn parse(op: &str, params: &Params) -> Result<SearchQuery, InvalidQuery> {
        match op {
            "search" => {
                let q = params
                    .text("q")?
                    .ok_or_else(|| InvalidQuery::new("q: missing"))?;
                check_search_text(q)?;
                Ok(SearchQuery::Search {
                    q: q.to_owned(),
                    limit: params.limit(PageLimit::search_default())?,
                    cursor: params.cursor()?,
                    room_id: params.optional_room_id("room_id")?,
                })
            }
            op => Err(unknown_op(op)),
        }
    }

    fn op(&self) -> &'static str {
        match self {
            SearchQuery::Search { .. } => "search",
        }
    }
}

/// The operations of the `moderation` model.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, schemars::JsonSchema)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum ModerationQuery {
    /// The reports, newest first: `{"reports": [...], "next_cursor"}` (moderators only).
    Reports {
        /// The page size.
        limit: PageLimit,
        /// The page after this one's end.
        cursor: Option<Cursor>,
    },
}

impl ModelQuery for ModerationQuery {
    const MODEL: ReadModel = ReadModel::Moderation;

    fn parse(op: &str, params: &Params) -> Result<ModerationQuery, InvalidQuery> {
        match op {
            "reports" => Ok(ModerationQuery::Reports {
                limit: params.limit(PageLimit::list_default())?,
                cursor: params.cursor()?,
            }),
            op => Err(unknown_op(op)),
        }
    }

    fn op(&self) -> &'static str {
        match self {
            ModerationQuery::Reports { .. } => "reports",
        }
    }
}

/// The operations of the `notifications` model: none (it answers `status` only and publishes
/// on `<prefix>.notify.<user_id>` instead).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub enum NotificationsQuery {}

impl ModelQuery for NotificationsQuery {
    const MODEL: ReadModel = ReadModel::Notifications;

    fn parse(op: &str, _params: &Params) -> Result<NotificationsQuery, InvalidQuery> {
        Err(unknown_op(op))
    }

    fn op(&self) -> &'static str {
        match *self {}
    }
}

/// The answer to an operation the model does not have.
pub fn unknown_op(op: &str) -> InvalidQuery {
    InvalidQuery(format!("op: unknown operation {op:?}"))
}

/// A request's parameters (every field but the envelope's), read field by field with messages
/// that name the field.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Params(Map<String, Value>);

impl Params {
    /// A text parameter; `None` when absent or null.
    pub fn text(&self, name: &str) -> Result<Option<&str>, InvalidQuery> {
        match self.0.get(name) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(text)) => Ok(Some(text)),
            Some(_) => Err(InvalidQuery(format!("{name}: not a string"))),
        }
    }

    /// A required room id.
    pub fn room_id(&self, name: &str) -> Result<RoomId, InvalidQuery> {
        self.optional_room_id(name)?
            .ok_or_else(|| InvalidQuery(format!("{name}: missing")))
    }

    /// An optional room id.
    pub fn optional_room_id(&self, name: &str) -> Result<Option<RoomId>, InvalidQuery> {
        self.text(name)?
            .map(|text| {
                RoomId::parse(text).map_err(|error| InvalidQuery(format!("{name}: {error}")))
            })
            .transpose()
    }

    /// An optional message id.
    pub fn message_id(&self, name: &str) -> Result<Option<MessageId>, InvalidQuery> {
        self.text(name)?
            .map(|text| {
                MessageId::parse(text).map_err(|error| InvalidQuery(format!("{name}: {error}")))
            })
            .transpose()
    }

    /// A required file id.
    pub fn file_id(&self, name: &str) -> Result<FileId, InvalidQuery> {
        let text = self
            .text(name)?
            .ok_or_else(|| InvalidQuery(format!("{name}: missing")))?;
        FileId::parse(text).map_err(|error| InvalidQuery(format!("{name}: {error}")))
    }

    /// An array of at most [`MESSAGE_IDS_MAX`] UUIDs.
    pub fn message_ids(&self, name: &str) -> Result<Vec<Uuid>, InvalidQuery> {
        let Some(Value::Array(ids)) = self.0.get(name) else {
            return Err(InvalidQuery(format!("{name}: missing or not an array")));
        };
        if ids.len() > MESSAGE_IDS_MAX {
            return Err(InvalidQuery(format!("{name}: at most {MESSAGE_IDS_MAX}")));
        }
        ids.iter()
            .map(|id| {
                id.as_str()
                    .and_then(|text| Uuid::parse_str(text).ok())
                    .ok_or_else(|| InvalidQuery(format!("{name}: each must be a UUID")))
            })
            .collect()
    }

    /// The room list view; `inbox` when absent.
    pub fn room_view(&self, name: &str) -> Result<RoomView, InvalidQuery> {
        match self.text(name)? {
            None => Ok(RoomView::Inbox),
            Some(text) => RoomView::from_name(text).ok_or_else(|| {
                InvalidQuery(format!(
                    "{name}: {text:?} is not inbox, favorites, hidden, archived or unread"
                ))
            }),
        }
    }

    /// The files panel's item type; `None` (both) when absent.
    pub fn item_type(&self, name: &str) -> Result<Option<ItemType>, InvalidQuery> {
        self.text(name)?
            .map(|text| {
                ItemType::from_name(text)
                    .ok_or_else(|| InvalidQuery(format!("{name}: {text:?} is not file or link")))
            })
            .transpose()
    }

    /// The files panel's name filter, its length checked ([`check_files_filter`]).
    pub fn files_filter(&self, name: &str) -> Result<Option<String>, InvalidQuery> {
        let text = self.text(name)?;
        if let Some(text) = text {
            check_files_filter(text)?;
        }
        Ok(text.map(str::to_owned))
    }

    /// The page size: `limit` (a positive integer, lowered to [`PAGE_ITEMS_MAX`]) or `default`.
    pub fn limit(&self, default: PageLimit) -> Result<PageLimit, InvalidQuery> {
        match number(self.0.get("limit").cloned(), "limit")? {
            None => Ok(default),
            Some(0) => Err(InvalidQuery::new("limit: must be at least 1")),
            Some(limit) => Ok(PageLimit(
                u32::try_from(limit.min(PAGE_ITEMS_MAX as u64)).unwrap_or(1),
            )),
        }
    }

    /// The `cursor`, checked to be a cursor a model made (hex, at most [`CURSOR_BYTES_MAX`]).
    pub fn cursor(&self) -> Result<Option<Cursor>, InvalidQuery> {
        let Some(text) = self.text("cursor")? else {
            return Ok(None);
        };
        let cursor = Cursor::new(text).map_err(|_| InvalidQuery::new("cursor: malformed"))?;
        cursor.bytes()?;
        Ok(Some(cursor))
    }
}

/// A non-negative integer parameter, given as a JSON number or a decimal string.
fn number(value: Option<Value>, name: &str) -> Result<Option<u64>, InvalidQuery> {
    let invalid = || InvalidQuery(format!("{name}: not a non-negative integer"));
    match value {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Number(number)) => number.as_u64().map(Some).ok_or_else(invalid),
        Some(Value::String(text)) => text.trim().parse().map(Some).map_err(|_| invalid()),
        Some(_) => Err(invalid()),
    }
}

/// The code of a projector's refusal (docs/queries.md).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum QueryErrorCode {
    /// `not_found`: missing, or not the caller's to see (R-R6: the same answer).
    NotFound,
    /// `invalid_command`: a parameter is missing, malformed or unknown.
    InvalidCommand,
    /// `forbidden`: the caller lacks a role.
    Forbidden,
    /// `projection_lagging`: `min_position` not applied within the wait.
    ProjectionLagging,
    /// `rate_limited`: too many of the caller's reads wait for `min_position` (H-L1).
    RateLimited,
    /// `unavailable`: the model cannot answer right now; retry.
    Unavailable,
    /// A code this build does not know (from a newer peer), as sent.
    Other(String),
}

impl QueryErrorCode {
    /// The code as sent.
    pub fn as_str(&self) -> &str {
        match self {
            QueryErrorCode::NotFound => "not_found",
            QueryErrorCode::InvalidCommand => "invalid_command",
            QueryErrorCode::Forbidden => "forbidden",
            QueryErrorCode::ProjectionLagging => "projection_lagging",
            QueryErrorCode::RateLimited => "rate_limited",
            QueryErrorCode::Unavailable => "unavailable",
            QueryErrorCode::Other(code) => code,
        }
    }

    /// The code `text` names.
    pub fn from_code(text: &str) -> QueryErrorCode {
        match text {
            "not_found" => QueryErrorCode::NotFound,
            "invalid_command" => QueryErrorCode::InvalidCommand,
            "forbidden" => QueryErrorCode::Forbidden,
            "projection_lagging" => QueryErrorCode::ProjectionLagging,
            "rate_limited" => QueryErrorCode::RateLimited,
            "unavailable" => QueryErrorCode::Unavailable,
            other => QueryErrorCode::Other(other.to_owned()),
        }
    }
}

/// Compares with the code as text (`code == "not_found"`).
impl PartialEq<&str> for QueryErrorCode {
    fn eq(&self, other: &&str) -> bool {
        self.as_str() == *other
    }
}

impl Serialize for QueryErrorCode {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for QueryErrorCode {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<QueryErrorCode, D::Error> {
        let text = String::deserialize(deserializer)?;
        Ok(QueryErrorCode::from_code(&text))
    }
}

/// A projector's refusal: `{"code", "message"}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct QueryRefusal {
    /// What kind of refusal.
    pub code: QueryErrorCode,
    /// Why, for people.
    #[serde(default)]
    pub message: String,
}

/// A projector's reply: `{"ok": true, "position": P, "data": D}` or
/// `{"ok": false, "error": QueryRefusal}`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum QueryReply<D> {
    /// The answer, at the projector's applied position `position`.
    Answer {
        /// The position the model had applied when it answered.
        position: u64,
        /// The operation's data (protocol.md §3 shapes).
        data: D,
    },
    /// The refusal.
    Refused(QueryRefusal),
}

/// Keys in sorted order, as the replies were written before this type existed.
impl<D: Serialize> Serialize for QueryReply<D> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(Some(3))?;
        match self {
            QueryReply::Answer { position, data } => {
                map.serialize_entry("data", data)?;
                map.serialize_entry("ok", &true)?;
                map.serialize_entry("position", position)?;
            }
            QueryReply::Refused(refusal) => {
                map.serialize_entry("error", refusal)?;
                map.serialize_entry("ok", &false)?;
            }
        }
        map.end()
    }
}

/// Why a reply could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MalformedReply {
    /// Not JSON of the reply's shape.
    #[error("{0}")]
    NotJson(String),
    /// `"ok": true` without `data`.
    #[error("a reply without data")]
    NoData,
    /// `"ok": true` without `position`.
    #[error("a reply without a position")]
    NoPosition,
    /// `"ok": false` without `error`.
    #[error("a refusal without an error")]
    NoError,
}

impl<D: DeserializeOwned> QueryReply<D> {
    /// Reads a JSON reply.
    pub fn from_json(bytes: &[u8]) -> Result<QueryReply<D>, MalformedReply> {
        #[derive(Deserialize)]
        struct Wire<D> {
            ok: bool,
            #[serde(default)]
            position: Option<u64>,
            #[serde(default = "none")]
            data: Option<D>,
            #[serde(default)]
            error: Option<QueryRefusal>,
        }
        fn none<D>() -> Option<D> {
            None
        }
        let wire: Wire<D> = serde_json::from_slice(bytes)
            .map_err(|error| MalformedReply::NotJson(error.to_string()))?;
        if wire.ok {
            let data = wire.data.ok_or(MalformedReply::NoData)?;
            let position = wire.position.ok_or(MalformedReply::NoPosition)?;
            return Ok(QueryReply::Answer { position, data });
        }
        wire.error
            .map(QueryReply::Refused)
            .ok_or(MalformedReply::NoError)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_model_is_found_by_its_name() {
        for model in ReadModel::ALL {
            assert_eq!(ReadModel::from_name(model.name()), Some(model));
        }
        assert_eq!(ReadModel::from_name("nope"), None);
        assert_eq!(ReadModel::ALL.map(ReadModel::name), ReadModel::ALL_NAMES);
        assert_eq!(
            ReadModel::names(),
            "rooms, timeline, files, search, moderation, notifications"
        );
    }
}
