//! Reads (protocol.md §3): each endpoint checks its parameters, then asks the projector that owns
//! the read model over the bus (docs/queries.md) and answers the reply's `data` as is.
//!
//! The caller always comes from the token, never from the client. `min_position` is passed
//! through: the projector waits for it up to 5 s and otherwise answers `projection_lagging`
//! (503). A room the caller is not in is `not_found` (404), exactly like a missing one (R-R6).
//! Every successful read carries the projector's applied position in a `Parlor-Position` header.

use axum::extract::State;
use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use bus::Headers;
use domain::{MessageId, RoomId};
use serde::Deserialize;
use serde_json::value::RawValue;
use serde_json::{json, Map, Value};

use crate::auth::Caller;
use crate::error::{json_response, ApiError};
use crate::extract::{Authenticated, PathText, QueryParams};
use crate::state::{AppState, SharedState};

/// The page size of lists when `limit` is absent (protocol.md §3; `protocol::query`).
pub(crate) const LIST_LIMIT_DEFAULT: u32 = protocol::query::PAGE_ITEMS_DEFAULT as u32;

/// The page size of `/v1/search` when `limit` is absent (protocol.md §3; `protocol::query`).
pub(crate) const SEARCH_LIMIT_DEFAULT: u32 = protocol::query::SEARCH_RESULTS_DEFAULT as u32;

/// The longest search text, in characters (`protocol::query`).
pub(crate) const SEARCH_QUERY_CHARS_MAX: usize = protocol::query::SEARCH_QUERY_CHARS_MAX;

/// The longest file-name filter of the files panel, in characters (a file name's own bound).
pub(crate) const FILES_QUERY_CHARS_MAX: usize = domain::limits::FILE_NAME_CHARS_MAX;

/// The response header carrying the read model's applied position.
pub(crate) const POSITION_HEADER: &str = "parlor-position";

/// The room list views of `GET /v1/rooms`.
const ROOM_VIEWS: [&str; 5] = ["inbox", "favorites", "hidden", "archived", "unread"];

/// The item types of `GET /v1/rooms/{room_id}/files`.
const ITEM_TYPES: [&str; 2] = ["file", "link"];

/// A projector's successful answer.
#[derive(Debug)]
pub(crate) struct Answer {
    /// The projector's applied position when it answered.
    pub(crate) position: Option<u64>,
    /// The reply's `data`, unparsed.
    pub(crate) data: Box<RawValue>,
}

/// A projector's reply (docs/queries.md).
#[derive(Deserialize)]
struct QueryReply {
    ok: bool,
    #[serde(default)]
    position: Option<u64>,
    #[serde(default)]
    data: Option<Box<RawValue>>,
    #[serde(default)]
    error: Option<ReplyError>,
}

#[derive(Deserialize)]
struct ReplyError {
    code: String,
    #[serde(default)]
    message: String,
}

/// Asks the projector of `model` for `op`, as `caller`, once it has applied `min_position`.
pub(crate) async fn ask(
    state: &AppState,
    model: &str,
    op: &str,
    caller: &Caller,
    min_position: Option<u64>,
    params: Map<String, Value>,
) -> Result<Answer, ApiError> {
    let mut request = params;
    request.insert("op".into(), op.into());
    request.insert("caller".into(), caller.subject.clone().into());
    request.insert("moderator".into(), caller.is_moderator().into());
    request.insert("min_position".into(), min_position.into());
    let payload = serde_json::to_vec(&request)
        .map_err(|error| ApiError::internal(format!("cannot encode a query: {error}")))?;
    let part = format!("the {model} projector");
    let reply = state
        .bus
        .request(
            &state.subjects.query(model),
            Headers::new().with("Content-Type", protocol::CONTENT_TYPE_JSON),
            payload,
            state.limits.query_timeout,
        )
        .await
        .map_err(|error| ApiError::from_bus(&error, &part))?;
    let reply: QueryReply = serde_json::from_slice(&reply.payload)
        .map_err(|error| ApiError::bad_reply(format!("{part} sent a malformed reply: {error}")))?;
    if reply.ok {
        let data = reply
            .data
            .ok_or_else(|| ApiError::bad_reply(format!("{part} sent a reply without data")))?;
        return Ok(Answer {
            position: reply.position,
            data,
        });
    }
    let error = reply
        .error
        .ok_or_else(|| ApiError::bad_reply(format!("{part} sent a refusal without an error")))?;
    Err(projector_error(error.code, error.message))
}

/// How long a caller refused for too many waiting reads is told to wait (`Retry-After`).
const READ_RETRY_AFTER: std::time::Duration = std::time::Duration::from_secs(1);

/// The HTTP form of a projector's refusal.
fn projector_error(code: String, message: String) -> ApiError {
    match code.as_str() {
        // Both spellings mean "nothing you may see" (R-R6).
        "not_found" | "not_member" => ApiError::not_found(message),
        "invalid_command" => ApiError::invalid(message),
        "forbidden" => ApiError::forbidden(message),
        "projection_lagging" | "unavailable" => {
            ApiError::new(StatusCode::SERVICE_UNAVAILABLE, code, message)
        }
        // H-L1: too many of the caller's reads wait for `min_position`. Every `rate_limited`
        // carries `Retry-After` (protocol.md §1); a waiting read ends within seconds.
        "rate_limited" => ApiError::rate_limited(message, READ_RETRY_AFTER),
        _ => ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, code, message),
    }
}

impl IntoResponse for Answer {
    fn into_response(self) -> Response {
        let mut response = json_response(StatusCode::OK, String::from(Box::<str>::from(self.data)));
        if let Some(position) = self.position {
            response
                .headers_mut()
                .insert(POSITION_HEADER, HeaderValue::from(position));
        }
        response
    }
}

/// Parses a room id from the path.
pub(crate) fn room_id(text: &str) -> Result<RoomId, ApiError> {
    RoomId::parse(text).map_err(|_| ApiError::invalid("room_id: must be a UUID"))
}

/// Builds a JSON object of parameters (`null` for absent ones, as the projectors expect).
fn params(value: Value) -> Map<String, Value> {
    match value {
        Value::Object(map) => map,
        _ => Map::new(),
    }
}

/// A text parameter of at most `chars_max` characters.
fn bounded_text<'a>(
    query: &'a QueryParams,
    name: &str,
    chars_max: usize,
) -> Result<Option<&'a str>, ApiError> {
    match query.text(name)? {
        Some(text) if text.chars().count() > chars_max => Err(ApiError::invalid(format!(
            "{name}: at most {chars_max} characters"
        ))),
        other => Ok(other),
    }
}

/// `GET /v1/rooms?view=&limit=&cursor=&min_position=`.
pub(crate) async fn list_rooms(
    State(state): State<SharedState>,
    Authenticated(caller): Authenticated,
    query: QueryParams,
) -> Result<Answer, ApiError> {
    let view = query.choice("view", &ROOM_VIEWS)?.unwrap_or("inbox");
    let limit = query.limit(LIST_LIMIT_DEFAULT)?;
    let cursor = query.cursor()?;
    let request = params(json!({"view": view, "limit": limit, "cursor": cursor}));
    ask(
        &state,
        "rooms",
        "list",
        &caller,
        query.min_position()?,
        request,
    )
    .await
}

/// `GET /v1/rooms/{room_id}`.
pub(crate) async fn get_room(
    State(state): State<SharedState>,
    Authenticated(caller): Authenticated,
    PathText(room): PathText,
    query: QueryParams,
) -> Result<Answer, ApiError> {
    let room_id = room_id(&room)?;
    let request = params(json!({"room_id": room_id.to_string()}));
    ask(
        &state,
        "rooms",
        "get",
        &caller,
        query.min_position()?,
        request,
    )
    .await
}

/// `GET /v1/rooms/{room_id}/messages?before=&limit=&cursor=&min_position=`.
pub(crate) async fn messages(
    State(state): State<SharedState>,
    Authenticated(caller): Authenticated,
    PathText(room): PathText,
    query: QueryParams,
) -> Result<Answer, ApiError> {
    let room_id = room_id(&room)?;
    let before = query
        .text("before")?
        .map(|text| {
            MessageId::parse(text)
                .map_err(|_| ApiError::invalid("before: must be a message id (a UUID)"))
        })
        .transpose()?;
    let request = params(json!({
        "room_id": room_id.to_string(),
        "before": before.map(|id| id.to_string()),
        "limit": query.limit(LIST_LIMIT_DEFAULT)?,
        "cursor": query.cursor()?,
    }));
    ask(
        &state,
        "timeline",
        "messages",
        &caller,
        query.min_position()?,
        request,
    )
    .await
}

/// `GET /v1/rooms/{room_id}/files?q=&type=file|link&limit=&cursor=&min_position=`.
pub(crate) async fn room_files(
    State(state): State<SharedState>,
    Authenticated(caller): Authenticated,
    PathText(room): PathText,
    query: QueryParams,
) -> Result<Answer, ApiError> {
    let room_id = room_id(&room)?;
    let request = params(json!({
        "room_id": room_id.to_string(),
        "q": bounded_text(&query, "q", FILES_QUERY_CHARS_MAX)?,
        "type": query.choice("type", &ITEM_TYPES)?,
        "limit": query.limit(LIST_LIMIT_DEFAULT)?,
        "cursor": query.cursor()?,
    }));
    ask(
        &state,
        "files",
        "list",
        &caller,
        query.min_position()?,
        request,
    )
    .await
}

/// `GET /v1/search?q=&room_id=&limit=&cursor=&min_position=`.
pub(crate) async fn search(
    State(state): State<SharedState>,
    Authenticated(caller): Authenticated,
    query: QueryParams,
) -> Result<Answer, ApiError> {
    let text = bounded_text(&query, "q", SEARCH_QUERY_CHARS_MAX)?
        .filter(|text| !text.trim().is_empty())
        .ok_or_else(|| ApiError::invalid("q: missing (the text to search for)"))?;
    let room = query.text("room_id")?.map(room_id).transpose()?;
    let request = params(json!({
        "q": text,
        "room_id": room.map(|id| id.to_string()),
        "limit": query.limit(SEARCH_LIMIT_DEFAULT)?,
        "cursor": query.cursor()?,
    }));
    ask(
        &state,
        "search",
        "search",
        &caller,
        query.min_position()?,
        request,
    )
    .await
}

/// `GET /v1/moderation/reports?limit=&cursor=&min_position=` (moderators only).
pub(crate) async fn reports(
    State(state): State<SharedState>,
    Authenticated(caller): Authenticated,
    query: QueryParams,
) -> Result<Answer, ApiError> {
    if !caller.is_moderator() {
        return Err(ApiError::forbidden(
            "only moderators may read the moderation queue",
        ));
    }
    let request = params(json!({
        "limit": query.limit(LIST_LIMIT_DEFAULT)?,
        "cursor": query.cursor()?,
    }));
    ask(
        &state,
        "moderation",
        "reports",
        &caller,
        query.min_position()?,
        request,
    )
    .await
}
