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
use protocol::query::{
    check_files_filter, check_search_text, FilesQuery, ItemType, MalformedReply, ModelQuery,
    ModerationQuery, PageLimit, QueryErrorCode, QueryReply, QueryRequest, RoomView, RoomsQuery,
    SearchQuery, TimelineQuery, SEARCH_QUERY_CHARS_MAX,
};
use serde_json::value::RawValue;

use crate::auth::Caller;
use crate::error::{json_response, ApiError};
use crate::extract::{Authenticated, PathText, QueryParams};
use crate::state::{AppState, SharedState};

/// The response header carrying the read model's applied position.
pub(crate) const POSITION_HEADER: &str = "parlor-position";

/// A projector's successful answer.
#[derive(Debug)]
pub(crate) struct Answer {
    /// The projector's applied position when it answered.
    pub(crate) position: u64,
    /// The reply's `data`, unparsed.
    pub(crate) data: Box<RawValue>,
}

/// Asks the projector of the model `Q` belongs to for `op`, as `caller`, once it has applied
/// `min_position` (docs/queries.md; the request is `protocol::query`'s, so the model, the
/// operation and its parameters are checked by the compiler).
pub(crate) async fn ask<Q: ModelQuery>(
    state: &AppState,
    caller: &Caller,
    min_position: Option<u64>,
    op: Q,
) -> Result<Answer, ApiError> {
    let model = Q::MODEL.name();
    let request = QueryRequest {
        caller: Some(caller.subject.clone()),
        moderator: caller.is_moderator(),
        min_position,
        op,
    };
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
    match QueryReply::<Box<RawValue>>::from_json(&reply.payload) {
        Ok(QueryReply::Answer { position, data }) => Ok(Answer { position, data }),
        Ok(QueryReply::Refused(refusal)) => Err(projector_error(refusal.code, refusal.message)),
        Err(MalformedReply::NotJson(error)) => Err(ApiError::bad_reply(format!(
            "{part} sent a malformed reply: {error}"
        ))),
        Err(error) => Err(ApiError::bad_reply(format!("{part} sent {error}"))),
    }
}

/// How long a caller refused for too many waiting reads is told to wait (`Retry-After`).
const READ_RETRY_AFTER: std::time::Duration = std::time::Duration::from_secs(1);

/// The HTTP form of a projector's refusal.
fn projector_error(code: QueryErrorCode, message: String) -> ApiError {
    match code {
        QueryErrorCode::NotFound => ApiError::not_found(message),
        // An older spelling of "nothing you may see" (R-R6).
        QueryErrorCode::Other(code) if code == "not_member" => ApiError::not_found(message),
        QueryErrorCode::InvalidCommand => ApiError::invalid(message),
        QueryErrorCode::Forbidden => ApiError::forbidden(message),
        QueryErrorCode::ProjectionLagging | QueryErrorCode::Unavailable => ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            code.as_str().to_owned(),
            message,
        ),
        // H-L1: too many of the caller's reads wait for `min_position`. Every `rate_limited`
        // carries `Retry-After` (protocol.md §1); a waiting read ends within seconds.
        QueryErrorCode::RateLimited => ApiError::rate_limited(message, READ_RETRY_AFTER),
        QueryErrorCode::Other(code) => {
            ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, code, message)
        }
    }
}

impl IntoResponse for Answer {
    fn into_response(self) -> Response {
        let mut response = json_response(StatusCode::OK, String::from(Box::<str>::from(self.data)));
        response
            .headers_mut()
            .insert(POSITION_HEADER, HeaderValue::from(self.position));
        response
    }
}

/// Parses a room id from the path.
pub(crate) fn room_id(text: &str) -> Result<RoomId, ApiError> {
    RoomId::parse(text).map_err(|_| ApiError::invalid("room_id: must be a UUID"))
}

/// The `q` of a read, if given, after `check` (the contract's bound for it).
fn checked_text<'a>(
    query: &'a QueryParams,
    name: &str,
    check: fn(&str) -> Result<(), protocol::query::InvalidQuery>,
) -> Result<Option<&'a str>, ApiError> {
    let text = query.text(name)?;
    if let Some(text) = text {
        check(text).map_err(|error| ApiError::invalid(error.0))?;
    }
    Ok(text)
}

/// The bounds of `GET /v1/search?q=`: at most [`SEARCH_QUERY_CHARS_MAX`] characters (docs/api.md),
/// and the contract's bound in bytes, so that the projector is never asked what it refuses.
fn check_search_parameter(q: &str) -> Result<(), protocol::query::InvalidQuery> {
    if q.chars().count() > SEARCH_QUERY_CHARS_MAX {
        return Err(protocol::query::InvalidQuery(format!(
            "q: at most {SEARCH_QUERY_CHARS_MAX} characters"
        )));
    }
    check_search_text(q)
}

/// A parameter naming one of `names`, read by `from_name`.
fn choice<T: Copy>(
    query: &QueryParams,
    name: &str,
    names: &[&'static str],
    from_name: fn(&str) -> Option<T>,
) -> Result<Option<T>, ApiError> {
    Ok(query.choice(name, names)?.and_then(from_name))
}

/// `GET /v1/rooms?view=&limit=&cursor=&min_position=`.
pub(crate) async fn list_rooms(
    State(state): State<SharedState>,
    Authenticated(caller): Authenticated,
    query: QueryParams,
) -> Result<Answer, ApiError> {
    let views = RoomView::ALL.map(RoomView::name);
    let op = RoomsQuery::List {
        view: choice(&query, "view", &views, RoomView::from_name)?.unwrap_or(RoomView::Inbox),
        limit: query.limit(PageLimit::list_default())?,
        cursor: query.cursor()?,
    };
    ask(&state, &caller, query.min_position()?, op).await
}

/// `GET /v1/rooms/{room_id}`.
pub(crate) async fn get_room(
    State(state): State<SharedState>,
    Authenticated(caller): Authenticated,
    PathText(room): PathText,
    query: QueryParams,
) -> Result<Answer, ApiError> {
    let op = RoomsQuery::Get {
        room_id: room_id(&room)?,
    };
    ask(&state, &caller, query.min_position()?, op).await
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
    let op = TimelineQuery::Messages {
        room_id,
        before,
        limit: query.limit(PageLimit::list_default())?,
        cursor: query.cursor()?,
    };
    ask(&state, &caller, query.min_position()?, op).await
}

/// `GET /v1/rooms/{room_id}/files?q=&type=file|link&limit=&cursor=&min_position=`.
pub(crate) async fn room_files(
    State(state): State<SharedState>,
    Authenticated(caller): Authenticated,
    PathText(room): PathText,
    query: QueryParams,
) -> Result<Answer, ApiError> {
    let room_id = room_id(&room)?;
    let types = ItemType::ALL.map(ItemType::name);
    let op = FilesQuery::List {
        room_id,
        q: checked_text(&query, "q", check_files_filter)?.map(str::to_owned),
        item_type: choice(&query, "type", &types, ItemType::from_name)?,
        limit: query.limit(PageLimit::list_default())?,
        cursor: query.cursor()?,
    };
    ask(&state, &caller, query.min_position()?, op).await
}

/// `GET /v1/search?q=&room_id=&limit=&cursor=&min_position=`.
pub(crate) async fn search(
    State(state): State<SharedState>,
    Authenticated(caller): Authenticated,
    query: QueryParams,
) -> Result<Answer, ApiError> {
    let text = checked_text(&query, "q", check_search_parameter)?
        .filter(|text| !text.trim().is_empty())
        .ok_or_else(|| ApiError::invalid("q: missing (the text to search for)"))?;
    let op = SearchQuery::Search {
        q: text.to_owned(),
        room_id: query.text("room_id")?.map(room_id).transpose()?,
        limit: query.limit(PageLimit::search_default())?,
        cursor: query.cursor()?,
    };
    ask(&state, &caller, query.min_position()?, op).await
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
    let op = ModerationQuery::Reports {
        limit: query.limit(PageLimit::list_default())?,
        cursor: query.cursor()?,
    };
    ask(&state, &caller, query.min_position()?, op).await
}
