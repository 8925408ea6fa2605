//! The `search` operation (docs/queries.md; protocol.md §3 `GET /v1/search`): the caller's
//! matching rooms and messages, newest first, with `<mark>` snippets (R-Q1).
//!
//! Parameters (`protocol::query::SearchQuery`, read and checked there but for the word count,
//! which is this model's tokenizer's): `q` (required; at most [`QUERY_BYTES_MAX`] bytes and
//! [`QUERY_WORDS_MAX`] words),
//! `room_id` (optional: one of the caller's rooms, else `not_found`, R-R6), `limit` (default
//! [`SEARCH_PAGE_ITEMS_DEFAULT`], at most 200) and `cursor`. Every query word must match (AND),
//! as the prefix of a word: a message by its latest body, a room by its own name or another
//! member's display name. Rooms are listed on the first page only (most recently active first,
//! at most `limit`); messages page on with the cursor, which is the `(sent_at, position)` of
//! the last message shown.

use std::collections::{BTreeSet, HashSet};

use domain::RoomId;
use projections::query::encode_cursor;
use projections::QueryError;
use protocol::query::{Cursor, QueryRequest, SearchQuery};
use serde_json::{json, Value};
use tantivy::DocAddress;

use crate::newest::{newest, Request, SortKey, WordTerms};
use crate::projector::{read, read_message, store_error, Shared};
use crate::schema::MessageDoc;
use crate::text::{query_words, snippet};

/// Messages in a page when the request names no `limit` (protocol.md §3: 20 on search).
pub const SEARCH_PAGE_ITEMS_DEFAULT: usize = protocol::query::SEARCH_RESULTS_DEFAULT;

/// The longest `q` accepted, in bytes (`protocol::query`, checked when a request is read).
pub const QUERY_BYTES_MAX: usize = protocol::query::SEARCH_QUERY_BYTES_MAX;

/// The most words in `q`: each is one more term to intersect (`protocol::query`).
pub const QUERY_WORDS_MAX: usize = protocol::query::SEARCH_QUERY_WORDS_MAX;

/// Answers `search` for `request.caller`.
pub(crate) fn search(
    shared: &Shared,
    request: &QueryRequest<SearchQuery>,
) -> Result<Value, QueryError> {
    let caller = request.caller_user()?;
    let SearchQuery::Search {
        q: text,
        room_id: only,
        limit,
        cursor,
    } = &request.op;
    let words = query_words(text);
    if words.len() > QUERY_WORDS_MAX {
        return Err(QueryError::Invalid(format!(
            "q: more than {QUERY_WORDS_MAX} words"
        )));
    }
    let limit = limit.items();
    let cursor = cursor
        .as_ref()
        .map(Cursor::bytes)
        .transpose()?
        .map(|bytes| decode_cursor(&bytes))
        .transpose()?;
    let only = *only;

    // The caller's rooms now, and the rooms that match, from the model in memory.
    let (rooms, room_hits) = {
        let model = read(&shared.model)?;
        if let Some(only) = &only {
            if !model.is_member(&caller, only) {
                return Err(QueryError::NotFound);
            }
        }
        let rooms: BTreeSet<RoomId> = match &only {
            Some(only) => BTreeSet::from([*only]),
            None => model.rooms_of(&caller).cloned().unwrap_or_default(),
        };
        let room_hits = if cursor.is_none() && !words.is_empty() {
            model.matching_rooms(&caller, only.as_ref(), &words, limit)
        } else {
            Vec::new()
        };
        (rooms, room_hits)
    };

    let (messages, next_cursor) = if words.is_empty() || rooms.is_empty() {
        (Vec::new(), None)
    } else {
        search_messages(shared, &rooms, &words, limit, cursor)?
    };
    let rooms: Vec<Value> = room_hits
        .into_iter()
        .map(|hit| {
            json!({
                "room_id": hit.room_id.to_string(),
                "name": hit.name,
                "kind": hit.kind.as_str(),
            })
        })
        .collect();
    Ok(json!({
        "rooms": rooms,
        "messages": messages,
        "next_cursor": next_cursor,
    }))
}

/// One page of matching messages in `rooms`, newest first, and the cursor of the next page.
fn search_messages(
    shared: &Shared,
    rooms: &BTreeSet<RoomId>,
    words: &[String],
    limit: usize,
    cursor: Option<SortKey>,
) -> Result<(Vec<Value>, Option<String>), QueryError> {
    let fields = shared.fields;
    let terms: Vec<WordTerms> = words
        .iter()
        .map(|word| WordTerms::of(fields.body, word))
        .collect();
    // The permission filter is the caller's rooms now (R-Q1, R-R4, R-R6); one more than a page
    // tells whether there is a next one. The two parts are taken together (see
    // [`crate::recent`]): the committed index and what was applied since.
    let want = limit + 1;
    let (searcher, recent, stale) = {
        let held = read(&shared.recent)?;
        let searcher = shared.reader.searcher();
        let recent = held.newest(rooms, words, want, cursor);
        (searcher, recent, held.stale_keys())
    };
    // Stale documents, and documents also found in the recent part (a commit just reloaded),
    // may take places in the committed part's answer: ask for that many more.
    let request = Request {
        rooms,
        words: &terms,
        want: want + stale.len() + recent.len(),
        below: cursor,
    };
    let committed = newest(&searcher, &fields, &shared.segments, &request).map_err(store_error)?;
    let mut found: Vec<(SortKey, Found)> = recent
        .into_iter()
        .map(|(key, message)| (key, Found::Recent(message)))
        .collect();
    let recent_keys: HashSet<SortKey> = found.iter().map(|(key, _)| *key).collect();
    found.extend(
        committed
            .into_iter()
            .filter(|(key, _)| !stale.contains(key) && !recent_keys.contains(key))
            .map(|(key, address)| (key, Found::Committed(address))),
    );
    found.sort_unstable_by_key(|(key, _)| std::cmp::Reverse(*key));
    let more = found.len() > limit;
    let mut messages = Vec::with_capacity(limit.min(found.len()));
    let mut last = None;
    for (key, found) in found.into_iter().take(limit) {
        let message = match found {
            Found::Recent(message) => message,
            Found::Committed(address) => read_message(&searcher, &fields, address)?,
        };
        messages.push(json!({
            "room_id": message.meta.room_id.to_string(),
            "message_id": message.message_id.to_string(),
            "author": message.meta.author.as_str(),
            "sent_at": message.meta.sent_at.to_rfc3339(),
            "snippet": snippet(&message.body, words),
        }));
        last = Some(key);
    }
    let next_cursor = match (more, last) {
        (true, Some(key)) => Some(encode_cursor(&encode_key(key))),
        _ => None,
    };
    Ok((messages, next_cursor))
}

/// A message found in one of the two parts.
enum Found {
    /// Applied since the last commit.
    Recent(MessageDoc),
    /// In the committed index.
    Committed(DocAddress),
}

/// A sort key as cursor bytes: `sent_at` then `position`, big-endian.
fn encode_key((sent_at, position): SortKey) -> [u8; 16] {
    let mut bytes = [0u8; 16];
    bytes[..8].copy_from_slice(&sent_at.to_be_bytes());
    bytes[8..].copy_from_slice(&position.to_be_bytes());
    bytes
}

fn decode_cursor(bytes: &[u8]) -> Result<SortKey, QueryError> {
    let malformed = || QueryError::Invalid("cursor: malformed".into());
    let sent_at: [u8; 8] = bytes
        .get(..8)
        .and_then(|part| part.try_into().ok())
        .ok_or_else(malformed)?;
    let position: [u8; 8] = bytes
        .get(8..)
        .and_then(|part| part.try_into().ok())
        .ok_or_else(malformed)?;
    Ok((i64::from_be_bytes(sent_at), u64::from_be_bytes(position)))
}
