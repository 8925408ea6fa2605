//! `GET /v1/events`: the caller's live changes as Server-Sent Events (protocol.md §3), in the
//! shapes the HTTP reads answer — never log records (security.md H-V2).
//!
//! The log says *which* room or message changed at which position; the read models say what
//! the caller may see of it *now*. Each stream follows the log with a [`LogFollower`] on the
//! gateway's [`EventHub`] (joined before anything is read, so nothing published afterwards slips
//! by; gaps, lags and reconnects are closed through `<prefix>.log.read`), notes the changes that
//! concern the caller, and renders them by asking the read models exactly as the HTTP reads do
//! ([`queries::ask`], `min_position` = the last position noted): a room with the rooms model's
//! `get` (the Room of `GET /v1/rooms/{id}`), messages with the timeline's `by_id` (the Message of
//! `GET /v1/rooms/{id}/messages`). So a message edited since shows its latest body, one deleted
//! since is a tombstone, and a room the caller has left shows nothing at all: the read models
//! answer `not_found` for it, and the change is skipped. The SSE events:
//!
//! | event | data | when |
//! |---|---|---|
//! | `room` | Room | a room the caller is in was joined, renamed, got a member, lost one, got a message, or the caller's own view of it (favorite, hidden, archived, read) changed |
//! | `message` | Message | a message, automatic reply or call of the caller's rooms was sent or changed |
//! | `message_deleted` | Message (the tombstone: `body` null, `deleted` true, no attachments) | … and is deleted now |
//! | `room_removed` | `{"room_id"}` | the caller left the room or was removed from it |
//!
//! Changes are coalesced: what a stream notes within [`COALESCE_WINDOW`] (at most
//! [`CHANGES_PER_RENDER_MAX`] rooms and messages) costs one `get` per room and one `by_id` per
//! room with messages, whatever the number of events behind them. Each SSE event's `id` is the
//! position of the latest change it shows; events are sent in position order, and when several
//! share a position only the last carries the `id`, so a client that resumes with
//! `Last-Event-ID` is sent again whatever it had not received in full.
//!
//! Everything is bounded: per user at most [`crate::SSE_STREAMS_PER_USER_MAX_DEFAULT`] streams
//! (more: 429 `rate_limited`, H-L4), at most [`crate::SSE_CLIENTS_MAX_DEFAULT`] in all (503), the
//! hub's buffer, each stream's buffer, and the wait for a slow client, which is disconnected
//! rather than buffered without bound (it resumes with `Last-Event-ID`). A comment line every
//! [`KEEP_ALIVE_INTERVAL`] keeps idle connections open and finds dead clients (the write fails
//! and the stream ends).

use std::collections::{HashMap, HashSet};
use std::convert::Infallible;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use bus::{EventHub, FollowError, FollowOptions, LogFollower};
use domain::{Event, MembershipChange, RoomId};
use protocol::query::{ModelQuery, RoomsQuery, TimelineQuery};
use protocol::RecordedEvent;
use serde::Deserialize;
use serde_json::json;
use serde_json::value::RawValue;
use tokio::sync::mpsc::error::SendTimeoutError;
use tokio::sync::{mpsc, OwnedSemaphorePermit, Semaphore};
use uuid::Uuid;

use crate::auth::Caller;
use crate::commands::header_text;
use crate::error::ApiError;
use crate::extract::Authenticated;
use crate::metrics as gateway_metrics;
use crate::queries;
use crate::state::SharedState;

/// SSE events buffered per stream between the follower and the client's connection.
pub(crate) const STREAM_EVENTS_MAX: usize = 256;

/// Events asked for per `log.read` page when replaying.
pub(crate) const LOG_PAGE_EVENTS: u32 = 1000;

/// How often an idle stream sends a comment, so that proxies keep the connection open and a
/// dead client is found (H-L4).
pub const KEEP_ALIVE_INTERVAL: Duration = Duration::from_secs(15);

/// Quiet time after which a stream reads the log for a dropped last event. Longer than a
/// projector's: every open stream probes on its own, and a client can wait this long.
pub(crate) const IDLE_PROBE_INTERVAL: Duration = Duration::from_secs(15);

/// How long a stream gathers changes after the first before rendering them: a burst in a busy
/// room costs one query per room, not one per event.
pub(crate) const COALESCE_WINDOW: Duration = Duration::from_millis(50);

/// The most rooms and messages one rendering covers; more are rendered in several.
pub(crate) const CHANGES_PER_RENDER_MAX: usize = 256;

/// The most message ids one `by_id` query names (the timeline's page bound).
pub(crate) const MESSAGES_PER_QUERY_MAX: usize = protocol::query::MESSAGE_IDS_MAX;

/// How many times a rendering query is tried while its read model is busy or lagging.
pub(crate) const RENDER_ATTEMPTS_MAX: u32 = 3;

/// The pause between two tries of a rendering query.
pub(crate) const RENDER_RETRY_PAUSE: Duration = Duration::from_millis(200);

/// The `Retry-After` of a refused stream, in seconds: a slot frees when one of the user's
/// streams closes, which the client cannot know.
pub(crate) const STREAM_RETRY_AFTER_SECONDS: u32 = 5;

/// How a stream's follower reads the log.
fn follow_options(state: &SharedState) -> FollowOptions {
    let mut options = FollowOptions::new(state.subjects.prefix());
    options.timeout = state.limits.query_timeout;
    options.page_events = LOG_PAGE_EVENTS;
    options.idle_probe_interval = IDLE_PROBE_INTERVAL;
    options
}

/// Starts the gateway's own hub on `<prefix>.evt.>` (when `parlor up` shares none with it).
pub(crate) async fn start_hub(
    bus: &bus::Bus,
    subjects: &crate::state::Subjects,
) -> Result<EventHub, bus::BusError> {
    EventHub::start(bus, &subjects.events()).await
}

/// The open streams: at most `total` in all and `per_user` per user (H-L4).
#[derive(Debug)]
pub(crate) struct StreamSlots {
    total: Arc<Semaphore>,
    per_user: usize,
    /// Open streams per user; a user is in the map only while a stream of theirs is open, so
    /// it never holds more entries than `total`.
    open: Arc<Mutex<HashMap<String, usize>>>,
}

/// One open stream's slot, given back when dropped.
#[derive(Debug)]
pub(crate) struct StreamSlot {
    _total: OwnedSemaphorePermit,
    user: String,
    open: Arc<Mutex<HashMap<String, usize>>>,
}

impl Drop for StreamSlot {
    fn drop(&mut self) {
        let mut open = self
            .open
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if let Some(count) = open.get_mut(&self.user) {
            *count = count.saturating_sub(1);
            if *count == 0 {
                open.remove(&self.user);
            }
        }
    }
}

/// Why a stream could not get a slot.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum NoSlot {
    /// The user has `per_user` streams open already.
    UserLimit,
    /// `total` streams are open already.
    TotalLimit,
}

impl StreamSlots {
    /// Slots for `total` streams, at most `per_user` of one user.
    pub(crate) fn new(total: usize, per_user: usize) -> StreamSlots {
        StreamSlots {
            total: Arc::new(Semaphore::new(total)),
            per_user,
            open: Arc::default(),
        }
    }

    /// A slot for one more stream of `user`.
    pub(crate) fn take(&self, user: &str) -> Result<StreamSlot, NoSlot> {
        let mut open = self
            .open
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let count = open.get(user).copied().unwrap_or(0);
        if count >= self.per_user {
            return Err(NoSlot::UserLimit);
        }
        let permit = Arc::clone(&self.total)
            .try_acquire_owned()
            .map_err(|_| NoSlot::TotalLimit)?;
        open.insert(user.to_owned(), count + 1);
        Ok(StreamSlot {
            _total: permit,
            user: user.to_owned(),
            open: Arc::clone(&self.open),
        })
    }
}

/// The `data` of a `member_rooms` answer.
#[derive(Deserialize)]
struct MemberRooms {
    room_ids: Vec<String>,
}

/// The `data` of a timeline `by_id` answer, each Message kept as the read model wrote it.
#[derive(Deserialize)]
struct Messages {
    messages: Vec<Box<RawValue>>,
}

/// What a stream needs to know of a Message to name and place its SSE event.
#[derive(Deserialize)]
struct MessageFacts {
    message_id: Uuid,
    deleted: bool,
}

/// `GET /v1/events` (with `Last-Event-ID` to resume).
pub(crate) async fn events(
    State(state): State<SharedState>,
    Authenticated(caller): Authenticated,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let last_event_id = header_text(&headers, "last-event-id")?
        .map(|text| {
            text.parse::<u64>().map_err(|_| {
                ApiError::invalid("Last-Event-ID: must be a position (a non-negative integer)")
            })
        })
        .transpose()?;
    let slot = match state.sse_slots.take(&caller.subject) {
        Ok(slot) => slot,
        Err(NoSlot::UserLimit) => {
            return Ok(rate_limited(format!(
                "at most {} event streams per user are open at once",
                state.limits.sse_streams_per_user_max
            )))
        }
        Err(NoSlot::TotalLimit) => {
            return Err(ApiError::unavailable(
                "too many event streams are open; retry later",
            ))
        }
    };
    // Joined before the room set is read: whatever is published from now on reaches us.
    let mut follower = LogFollower::from_hub(&state.bus, &follow_options(&state), 0, &state.events);
    let min_position = last_event_id.filter(|position| *position > 0);
    let answer = queries::ask(&state, &caller, min_position, RoomsQuery::MemberRooms)
        .await
        .map_err(|error| match last_event_id {
            // The read model refuses a position beyond the log's head (H-L1): here it is the
            // header's (H-V2).
            Some(position) if error.status() == StatusCode::BAD_REQUEST => ApiError::invalid(
                format!("Last-Event-ID: {position} is beyond the log's head"),
            ),
            _ => error,
        })?;
    let member_rooms: MemberRooms = serde_json::from_str(answer.data.get()).map_err(|error| {
        ApiError::bad_reply(format!("the rooms projector sent malformed rooms: {error}"))
    })?;
    let rooms = member_rooms
        .room_ids
        .iter()
        .filter_map(|room| RoomId::parse(room).ok())
        .collect();
    let cursor = last_event_id.unwrap_or(answer.position);
    follower.reset(cursor);
    let (sender, receiver) = mpsc::channel(STREAM_EVENTS_MAX);
    let stream = Stream {
        state: Arc::clone(&state),
        caller,
        rooms,
        cursor,
        sender,
    };
    tokio::spawn(stream.run(follower, slot));
    let events = futures::stream::unfold(receiver, |mut receiver| async move {
        receiver
            .recv()
            .await
            .map(|event| (Ok::<_, Infallible>(event), receiver))
    });
    Ok(Sse::new(events)
        .keep_alive(KeepAlive::new().interval(state.limits.sse_keep_alive_interval))
        .into_response())
}

/// 429 `rate_limited` with `Retry-After` (protocol.md §1).
fn rate_limited(message: String) -> Response {
    let mut response =
        ApiError::new(StatusCode::TOO_MANY_REQUESTS, "rate_limited", message).into_response();
    response.headers_mut().insert(
        axum::http::header::RETRY_AFTER,
        HeaderValue::from(STREAM_RETRY_AFTER_SECONDS),
    );
    response
}

/// Why a stream ended.
#[derive(Debug, thiserror::Error)]
enum End {
    /// The gateway is shutting down.
    #[error("the gateway is shutting down")]
    Shutdown,
    /// The client closed the connection.
    #[error("the client went away")]
    ClientGone,
    /// The client did not take an event within the configured wait.
    #[error("the client is too slow to take events")]
    SlowClient,
    /// The log could not be read to replay or fill a gap.
    #[error("cannot read the log: {0}")]
    LogUnavailable(String),
    /// The log did not hold a position the stream needed.
    #[error("the log lacks position {expected} (its head is {head})")]
    Gap {
        /// The position after the cursor.
        expected: u64,
        /// The head the log reported.
        head: u64,
    },
    /// A read model could not render a change (the client resumes with `Last-Event-ID`).
    #[error("cannot render a change: {0}")]
    ReadModelUnavailable(String),
}

/// The changes a stream has noted and not yet rendered: each room and message once, with the
/// position of its latest change.
#[derive(Debug, Default)]
pub(crate) struct Changes {
    /// Rooms whose Room changed.
    pub(crate) rooms: HashMap<RoomId, u64>,
    /// Rooms the caller left.
    pub(crate) removed: HashMap<RoomId, u64>,
    /// Messages (and calls) that changed, by room.
    pub(crate) messages: HashMap<RoomId, HashMap<Uuid, u64>>,
    /// Distinct rooms and messages noted.
    items: usize,
}

impl Changes {
    fn room(&mut self, room: RoomId, position: u64) {
        if self.rooms.insert(room, position).is_none() {
            self.items += 1;
        }
    }

    fn removed(&mut self, room: RoomId, position: u64) {
        if self.removed.insert(room, position).is_none() {
            self.items += 1;
        }
    }

    fn message(&mut self, room: RoomId, message: Uuid, position: u64) {
        if self
            .messages
            .entry(room)
            .or_default()
            .insert(message, position)
            .is_none()
        {
            self.items += 1;
        }
    }

    /// Whether nothing is noted.
    pub(crate) fn is_empty(&self) -> bool {
        self.items == 0
    }

    /// Whether a rendering is due however little time has passed.
    fn is_full(&self) -> bool {
        self.items >= CHANGES_PER_RENDER_MAX
    }
}

/// Notes what `event` at `position` changes in `caller`'s view, and keeps `rooms` (the rooms the
/// caller is in, as far as the stream knows) up to date with membership events about them.
/// Changes of rooms outside `rooms` are not noted; what is noted is only rendered if the read
/// models still show it to the caller.
pub(crate) fn note(
    caller: &str,
    rooms: &mut HashSet<RoomId>,
    event: &Event,
    position: u64,
    changes: &mut Changes,
) {
    let is_caller = |user: &domain::UserId| user.as_str() == caller;
    match event.membership_change() {
        Some(MembershipChange::Joined { room_id, users }) => {
            if users.into_iter().any(is_caller) {
                rooms.insert(room_id);
            }
            if rooms.contains(&room_id) {
                changes.room(room_id, position);
            }
            return;
        }
        Some(MembershipChange::Left { room_id, user }) => {
            if is_caller(user) {
                rooms.remove(&room_id);
                changes.removed(room_id, position);
            } else if rooms.contains(&room_id) {
                changes.room(room_id, position);
            }
            return;
        }
        None => {}
    }
    match event {
        // The Room shows a message's effects (last message, unread, activity); the Message
        // itself is its own event.
        Event::MessageSent {
            room_id,
            message_id,
            ..
        }
        | Event::AutoReplySent {
            room_id,
            message_id,
            ..
        }
        | Event::MessageEdited {
            room_id,
            message_id,
            ..
        }
        | Event::MessageDeleted {
            room_id,
            message_id,
            ..
        } => {
            if rooms.contains(room_id) {
                changes.message(*room_id, message_id.0, position);
                changes.room(*room_id, position);
            }
        }
        // A call is a timeline entry under its call id; the Room does not show calls.
        Event::CallStarted {
            room_id, call_id, ..
        }
        | Event::CallEnded {
            room_id, call_id, ..
        } => {
            if rooms.contains(room_id) {
                changes.message(*room_id, call_id.0, position);
            }
        }
        Event::RoomRenamed { room_id, .. } | Event::ContractEnded { room_id, .. } => {
            if rooms.contains(room_id) {
                changes.room(*room_id, position);
            }
        }
        // A member's own view (R-S1–R-S4) is theirs alone.
        Event::RoomFavoriteChanged {
            room_id, user_id, ..
        }
        | Event::RoomHiddenChanged {
            room_id, user_id, ..
        }
        | Event::RoomArchivedChanged {
            room_id, user_id, ..
        }
        | Event::RoomMarkedRead {
            room_id, user_id, ..
        } => {
            if is_caller(user_id) && rooms.contains(room_id) {
                changes.room(*room_id, position);
            }
        }
        // No HTTP read shows these to the caller (blocks, settings, uploads, reports), or they
        // are presence-like facts of a user that rooms show when read (display names, away
        // periods, visibility): nothing is streamed (docs/security.md, Decisions).
        Event::UserRegistered { .. }
        | Event::UserDisplayNameChanged { .. }
        | Event::OutOfOfficeSet { .. }
        | Event::OutOfOfficeCleared { .. }
        | Event::OnlineVisibilityChanged { .. }
        | Event::NotificationFrequencyChanged { .. }
        | Event::UserBlocked { .. }
        | Event::UserUnblocked { .. }
        | Event::FileRegistered { .. }
        | Event::MessageReported { .. } => {}
        // Membership events were answered above, from `membership_change`.
        Event::DirectRoomOpened { .. }
        | Event::GroupRoomCreated { .. }
        | Event::InterviewRoomOpened { .. }
        | Event::ContractStarted { .. }
        | Event::MemberAdded { .. }
        | Event::MemberLeft { .. } => {}
    }
}

/// One SSE event to send: its position, its name and its data (JSON, as the reads answer it).
#[derive(Debug)]
struct Rendered {
    position: u64,
    /// Within a position: messages first, then the room they changed, then removals.
    rank: u8,
    name: &'static str,
    data: String,
}

/// One stream: the caller's changes, noted from the follower, rendered and sent on.
struct Stream {
    state: SharedState,
    caller: Caller,
    rooms: HashSet<RoomId>,
    /// The last position looked at.
    cursor: u64,
    sender: mpsc::Sender<SseEvent>,
}

impl Stream {
    async fn run(mut self, mut follower: LogFollower, _slot: StreamSlot) {
        gateway_metrics::sse_clients(1.0);
        let end = self.follow(&mut follower).await;
        gateway_metrics::sse_clients(-1.0);
        gateway_metrics::sse_ended(match &end {
            End::Shutdown => "shutdown",
            End::ClientGone => "client_gone",
            End::SlowClient => "slow_client",
            End::LogUnavailable(_) => "log_unavailable",
            End::Gap { .. } => "gap",
            End::ReadModelUnavailable(_) => "read_model_unavailable",
        });
        match end {
            End::Shutdown | End::ClientGone => {
                tracing::debug!(caller = %self.caller.subject, %end, "event stream ended");
            }
            _ => {
                tracing::warn!(caller = %self.caller.subject, cursor = self.cursor, %end, "event stream ended")
            }
        }
    }

    /// The next events of the follower, or why the stream ends.
    async fn next_events(
        &self,
        follower: &mut LogFollower,
    ) -> Result<Vec<Arc<RecordedEvent>>, End> {
        let events = tokio::select! {
            () = self.state.shutdown.cancelled() => return Err(End::Shutdown),
            () = self.sender.closed() => return Err(End::ClientGone),
            events = follower.next() => events,
        };
        events.map_err(|error| match error {
            FollowError::Closed => End::Shutdown,
            FollowError::Missing { expected, head } => End::Gap { expected, head },
            error @ FollowError::LogRead { .. } => End::LogUnavailable(error.to_string()),
        })
    }

    async fn follow(&mut self, follower: &mut LogFollower) -> End {
        let mut changes = Changes::default();
        loop {
            let events = match self.next_events(follower).await {
                Ok(events) => events,
                Err(end) => return end,
            };
            if let Err(end) = self.take(&events, &mut changes).await {
                return end;
            }
            if changes.is_empty() {
                continue;
            }
            // Gather what else comes within the window, then render it all at once.
            let window = tokio::time::sleep(COALESCE_WINDOW);
            tokio::pin!(window);
            while !changes.is_full() {
                let events = tokio::select! {
                    () = &mut window => break,
                    events = self.next_events(follower) => events,
                };
                let events = match events {
                    Ok(events) => events,
                    Err(end) => return end,
                };
                if let Err(end) = self.take(&events, &mut changes).await {
                    return end;
                }
            }
            if let Err(end) = self.render(std::mem::take(&mut changes)).await {
                return end;
            }
        }
    }

    /// Notes `events`, rendering whenever as many changes wait as one rendering covers.
    async fn take(
        &mut self,
        events: &[Arc<RecordedEvent>],
        changes: &mut Changes,
    ) -> Result<(), End> {
        for event in events {
            self.cursor = event.position;
            note(
                &self.caller.subject,
                &mut self.rooms,
                &event.event,
                event.position,
                changes,
            );
            if changes.is_full() {
                self.render(std::mem::take(changes)).await?;
            }
        }
        Ok(())
    }

    /// Renders `changes` as the caller may see them now and sends them, in position order.
    async fn render(&mut self, changes: Changes) -> Result<(), End> {
        let at = self.cursor;
        let mut rendered = Vec::new();
        for (room, messages) in &changes.messages {
            let ids: Vec<(&Uuid, &u64)> = messages.iter().collect();
            for chunk in ids.chunks(MESSAGES_PER_QUERY_MAX) {
                let op = TimelineQuery::ById {
                    room_id: *room,
                    message_ids: chunk.iter().map(|(id, _)| **id).collect(),
                };
                let Some(data) = self.ask(op, at).await? else {
                    break;
                };
                let answer: Messages = serde_json::from_str(data.get()).map_err(|error| {
                    End::ReadModelUnavailable(format!("malformed messages: {error}"))
                })?;
                for message in answer.messages {
                    let facts: MessageFacts =
                        serde_json::from_str(message.get()).map_err(|error| {
                            End::ReadModelUnavailable(format!("a malformed message: {error}"))
                        })?;
                    let Some(position) = messages.get(&facts.message_id) else {
                        continue;
                    };
                    rendered.push(Rendered {
                        position: *position,
                        rank: 0,
                        name: if facts.deleted {
                            "message_deleted"
                        } else {
                            "message"
                        },
                        data: String::from(Box::<str>::from(message)),
                    });
                }
            }
        }
        for (room, position) in &changes.rooms {
            let op = RoomsQuery::Get { room_id: *room };
            if let Some(data) = self.ask(op, at).await? {
                rendered.push(Rendered {
                    position: *position,
                    rank: 1,
                    name: "room",
                    data: String::from(Box::<str>::from(data)),
                });
            }
        }
        for (room, position) in &changes.removed {
            rendered.push(Rendered {
                position: *position,
                rank: 2,
                name: "room_removed",
                data: json!({"room_id": room}).to_string(),
            });
        }
        rendered.sort_by_key(|event| (event.position, event.rank));
        let count = rendered.len();
        for index in 0..count {
            let Some(event) = rendered.get(index) else {
                break;
            };
            let last_of_position = rendered
                .get(index + 1)
                .is_none_or(|next| next.position != event.position);
            let mut sse = SseEvent::default().event(event.name).data(&event.data);
            if last_of_position {
                sse = sse.id(event.position.to_string());
            }
            self.send(sse).await?;
        }
        Ok(())
    }

    /// Asks a read model as the caller, at least at `at`: the answer's data, or `None` when the
    /// caller may not see it (`not_found`). A busy or lagging model is asked again a few times.
    async fn ask<Q: ModelQuery + Clone>(
        &self,
        op: Q,
        at: u64,
    ) -> Result<Option<Box<RawValue>>, End> {
        let mut attempt = 1;
        loop {
            match queries::ask(&self.state, &self.caller, Some(at), op.clone()).await {
                Ok(answer) => return Ok(Some(answer.data)),
                Err(error) if error.status() == StatusCode::NOT_FOUND => return Ok(None),
                Err(error)
                    if attempt < RENDER_ATTEMPTS_MAX
                        && matches!(
                            error.status(),
                            StatusCode::SERVICE_UNAVAILABLE | StatusCode::TOO_MANY_REQUESTS
                        ) =>
                {
                    attempt += 1;
                    tokio::select! {
                        () = self.state.shutdown.cancelled() => return Err(End::Shutdown),
                        () = tokio::time::sleep(RENDER_RETRY_PAUSE) => {}
                    }
                }
                Err(error) => {
                    return Err(End::ReadModelUnavailable(format!(
                        "{} {}: {}",
                        Q::MODEL.name(),
                        op.op(),
                        error.message()
                    )))
                }
            }
        }
    }

    async fn send(&self, event: SseEvent) -> Result<(), End> {
        match self
            .sender
            .send_timeout(event, self.state.limits.sse_send_wait_max)
            .await
        {
            Ok(()) => Ok(()),
            Err(SendTimeoutError::Timeout(_)) => Err(End::SlowClient),
            Err(SendTimeoutError::Closed(_)) => Err(End::ClientGone),
        }
    }
}

#[cfg(test)]
mod tests {
    use domain::{MessageId, Timestamp, UserId};

    use super::*;

    fn user(text: &str) -> UserId {
        UserId::parse(text).unwrap_or_else(|_| unreachable!("a valid test id"))
    }

    fn room(n: u128) -> RoomId {
        RoomId(uuid::Uuid::from_u128(n))
    }

    fn message(n: u128) -> MessageId {
        MessageId(uuid::Uuid::from_u128(n))
    }

    fn sent(room_id: RoomId, n: u128) -> Event {
        Event::MessageSent {
            room_id,
            message_id: message(n),
            author: user("bob"),
            body: "hi".into(),
            reply_to: None,
            attachments: Vec::new(),
            sent_at: Timestamp::from_millis(0),
        }
    }

    /// Notes `events` (at positions 1, 2, …) for alice.
    fn noted(rooms: &mut HashSet<RoomId>, events: &[Event]) -> Changes {
        let mut changes = Changes::default();
        for (index, event) in events.iter().enumerate() {
            note("alice", rooms, event, index as u64 + 1, &mut changes);
        }
        changes
    }

    #[test]
    fn h_v2_messages_change_a_message_and_its_room_coalesced_to_the_latest_position() {
        let mut rooms = HashSet::from([room(1)]);
        let edited = Event::MessageEdited {
            room_id: room(1),
            message_id: message(7),
            body: "new".into(),
            edited_at: Timestamp::from_millis(1),
        };
        let changes = noted(
            &mut rooms,
            &[sent(room(1), 7), sent(room(2), 8), edited, sent(room(1), 9)],
        );
        assert_eq!(changes.rooms, HashMap::from([(room(1), 4)]));
        assert_eq!(
            changes.messages,
            HashMap::from([(
                room(1),
                HashMap::from([(message(7).0, 3), (message(9).0, 4)])
            )])
        );
        assert!(changes.removed.is_empty());
    }

    #[test]
    fn h_v2_membership_moves_the_room_set_and_a_leave_is_a_removal() {
        let mut rooms = HashSet::from([room(1)]);
        let added = Event::MemberAdded {
            room_id: room(2),
            user_id: user("alice"),
            added_by: user("bob"),
            added_at: Timestamp::from_millis(0),
        };
        let left = Event::MemberLeft {
            room_id: room(1),
            user_id: user("alice"),
            left_at: Timestamp::from_millis(0),
        };
        let someone_else_added = Event::MemberAdded {
            room_id: room(3),
            user_id: user("carol"),
            added_by: user("bob"),
            added_at: Timestamp::from_millis(0),
        };
        let changes = noted(
            &mut rooms,
            &[
                added,
                sent(room(2), 5),
                left,
                sent(room(1), 6),
                someone_else_added,
            ],
        );
        assert_eq!(rooms, HashSet::from([room(2)]));
        assert_eq!(changes.rooms, HashMap::from([(room(2), 2)]));
        assert_eq!(changes.removed, HashMap::from([(room(1), 3)]));
        assert!(
            !changes.messages.contains_key(&room(1)),
            "nothing after leaving"
        );
    }

    #[test]
    fn h_v2_other_members_views_blocks_settings_and_reports_are_not_streamed() {
        let mut rooms = HashSet::from([room(1)]);
        let favorite = |user_id| Event::RoomFavoriteChanged {
            room_id: room(1),
            user_id,
            on: true,
        };
        let changes = noted(
            &mut rooms,
            &[
                favorite(user("bob")),
                Event::UserBlocked {
                    blocker: user("bob"),
                    blocked: user("alice"),
                },
                Event::OnlineVisibilityChanged {
                    user_id: user("alice"),
                    visible: false,
                },
                Event::MessageReported {
                    report_id: domain::ReportId(uuid::Uuid::from_u128(3)),
                    room_id: room(1),
                    message_id: message(1),
                    reporter: user("alice"),
                    reason: domain::ReportReason::AbusiveLanguage,
                    details: None,
                    reported_at: Timestamp::from_millis(0),
                },
            ],
        );
        assert!(changes.is_empty(), "{changes:?}");
        let changes = noted(&mut rooms, &[favorite(user("alice"))]);
        assert_eq!(changes.rooms, HashMap::from([(room(1), 1)]));
    }

    /// One step of a random history: alice or bob joins or leaves a room, a message is sent or
    /// edited, or someone stars a room.
    #[derive(Debug, Clone)]
    enum Step {
        Join { alice: bool, room: u128 },
        Leave { alice: bool, room: u128 },
        Send { room: u128 },
        Edit { message: usize },
        Favorite { alice: bool, room: u128 },
    }

    fn step() -> impl proptest::strategy::Strategy<Value = Step> {
        use proptest::prelude::*;
        let room = 1u128..=3;
        prop_oneof![
            (any::<bool>(), room.clone()).prop_map(|(alice, room)| Step::Join { alice, room }),
            (any::<bool>(), room.clone()).prop_map(|(alice, room)| Step::Leave { alice, room }),
            room.clone().prop_map(|room| Step::Send { room }),
            room.clone().prop_map(|room| Step::Send { room }),
            (0usize..8).prop_map(|message| Step::Edit { message }),
            (any::<bool>(), room).prop_map(|(alice, room)| Step::Favorite { alice, room }),
        ]
    }

    /// The events of `steps` (alice starts in room 1) with alice's rooms after each.
    fn history(steps: &[Step]) -> (Vec<Event>, Vec<HashSet<RoomId>>) {
        let mut rooms = HashSet::from([room(1)]);
        let mut sent: Vec<(RoomId, MessageId)> = Vec::new();
        let mut events = Vec::new();
        let mut after = Vec::new();
        let who = |alice: bool| user(if alice { "alice" } else { "bob" });
        for (index, step) in steps.iter().enumerate() {
            let event = match step {
                Step::Join { alice, room: n } => {
                    if *alice {
                        rooms.insert(room(*n));
                    }
                    Event::MemberAdded {
                        room_id: room(*n),
                        user_id: who(*alice),
                        added_by: user("carol"),
                        added_at: Timestamp::from_millis(0),
                    }
                }
                Step::Leave { alice, room: n } => {
                    if *alice {
                        rooms.remove(&room(*n));
                    }
                    Event::MemberLeft {
                        room_id: room(*n),
                        user_id: who(*alice),
                        left_at: Timestamp::from_millis(0),
                    }
                }
                Step::Send { room: n } => {
                    let id = message(1_000 + index as u128);
                    sent.push((room(*n), id));
                    Event::MessageSent {
                        room_id: room(*n),
                        message_id: id,
                        author: user("carol"),
                        body: "hi".into(),
                        reply_to: None,
                        attachments: Vec::new(),
                        sent_at: Timestamp::from_millis(0),
                    }
                }
                Step::Edit { message: n } => match sent.get(*n) {
                    Some((room_id, message_id)) => Event::MessageEdited {
                        room_id: *room_id,
                        message_id: *message_id,
                        body: "edited".into(),
                        edited_at: Timestamp::from_millis(0),
                    },
                    None => Event::OnlineVisibilityChanged {
                        user_id: user("carol"),
                        visible: true,
                    },
                },
                Step::Favorite { alice, room: n } => Event::RoomFavoriteChanged {
                    room_id: room(*n),
                    user_id: who(*alice),
                    on: true,
                },
            };
            events.push(event);
            after.push(rooms.clone());
        }
        (events, after)
    }

    proptest::proptest! {
        /// Resuming at any position of any history, with the room set as the rooms model has
        /// it now (a resumed stream asks for it at or after the resume point): every message
        /// changed in a room alice stayed in is noted once, at its latest change, with its
        /// room; a room she left and is out of now is a removal at her last leave; and nothing
        /// is noted of a room she was out of at the change and is out of now (what the read
        /// models would refuse anyway).
        #[test]
        fn h_v2_a_resumed_stream_notes_the_latest_change_of_what_the_caller_may_see(
            steps in proptest::collection::vec(step(), 0..40),
            resume in 0usize..40,
        ) {
            let (events, after) = history(&steps);
            let resume = resume.min(events.len());
            let before: HashSet<RoomId> = match resume {
                0 => HashSet::from([room(1)]),
                k => after[k - 1].clone(),
            };
            let now = after.last().cloned().unwrap_or_else(|| before.clone());
            let mut rooms = now.clone();
            let mut changes = Changes::default();
            for (index, event) in events.iter().enumerate().skip(resume) {
                note("alice", &mut rooms, event, index as u64 + 1, &mut changes);
            }
            proptest::prop_assert_eq!(&rooms, &now);
            // alice's rooms at every position from the resume point on.
            let stayed = |room_id: &RoomId| {
                before.contains(room_id) && after[resume..].iter().all(|rooms| rooms.contains(room_id))
            };
            for (index, event) in events.iter().enumerate().skip(resume) {
                let position = index as u64 + 1;
                let (room_id, message_id) = match event {
                    Event::MessageSent { room_id, message_id, .. }
                    | Event::MessageEdited { room_id, message_id, .. } => (room_id, message_id),
                    _ => continue,
                };
                if !stayed(room_id) {
                    continue;
                }
                let noted = changes.messages.get(room_id).and_then(|messages| messages.get(&message_id.0));
                proptest::prop_assert!(noted.is_some_and(|at| *at >= position), "{:?} at {}", event, position);
                proptest::prop_assert!(changes.rooms.get(room_id).is_some_and(|at| *at >= position));
            }
            for (room_id, messages) in &changes.messages {
                for (id, at) in messages {
                    let changed: Vec<u64> = events
                        .iter()
                        .enumerate()
                        .skip(resume)
                        .filter_map(|(index, event)| match event {
                            Event::MessageSent { message_id, .. }
                            | Event::MessageEdited { message_id, .. }
                                if message_id.0 == *id =>
                            {
                                Some(index as u64 + 1)
                            }
                            _ => None,
                        })
                        .collect();
                    proptest::prop_assert!(changed.contains(at), "message {} noted at {}", id, at);
                    if stayed(room_id) {
                        proptest::prop_assert_eq!(Some(at), changed.iter().max());
                    }
                    let in_room_then = usize::try_from(*at).ok().and_then(|at| after.get(at - 1)).is_some_and(|rooms| rooms.contains(room_id));
                    // Members read a room's whole history (R-R4): a change from before she
                    // joined is hers to see if she is in the room now.
                    proptest::prop_assert!(
                        in_room_then || now.contains(room_id),
                        "noted a change of a room alice was out of then and now"
                    );
                }
            }
            for (room_id, at) in &changes.removed {
                let left_last = events.iter().enumerate().skip(resume).filter_map(|(index, event)| match event {
                    Event::MemberLeft { room_id: left, user_id, .. }
                        if left == room_id && user_id.as_str() == "alice" => Some(index as u64 + 1),
                    _ => None,
                }).max();
                proptest::prop_assert_eq!(Some(*at), left_last);
            }
            for room_id in before.difference(&now) {
                proptest::prop_assert!(changes.removed.contains_key(room_id), "no removal of {:?}", room_id);
            }
        }
    }

    #[test]
    fn h_l4_a_user_has_at_most_their_streams_and_all_users_the_total() {
        let slots = StreamSlots::new(3, 2);
        let first = slots.take("alice").expect("a first stream");
        let _second = slots.take("alice").expect("a second stream");
        assert_eq!(slots.take("alice").err(), Some(NoSlot::UserLimit));
        let _bob = slots.take("bob").expect("bob's stream");
        assert_eq!(slots.take("carol").err(), Some(NoSlot::TotalLimit));
        drop(first);
        let _again = slots
            .take("alice")
            .expect("a slot given back is free again");
        assert_eq!(slots.open.lock().map(|open| open.len()).unwrap_or(0), 2);
    }
}
