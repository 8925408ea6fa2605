//! `GET /v1/events`: the caller's live changes as Server-Sent Events (protocol.md §3).
//!
//! The gateway's [`EventHub`] (its own, or the one `parlor up` shares between every part of the
//! process) receives each event of `<prefix>.evt.>` once, decoded. Each stream follows the log
//! with a [`LogFollower`] on that hub, whose cursor is the last position the stream looked at:
//!
//! 1. The follower joins the hub first, so that nothing published afterwards can slip by; then
//!    the stream asks the rooms projector for the caller's rooms (`member_rooms`, at least at
//!    `Last-Event-ID`).
//! 2. The follower reads the log (`<prefix>.log.read`) from the cursor + 1 to the head: from
//!    `Last-Event-ID` + 1 when resuming, else from the position the room set was taken at.
//! 3. It then follows the hub, skipping duplicates and filling every gap (a dropped bus
//!    message, a lagging hub receiver, a reconnect) from the log, and reads the log after
//!    [`IDLE_PROBE_INTERVAL`] of quiet, for a dropped last event. So every position is looked at
//!    exactly once, in order: no gaps, no duplicates. When the log cannot be read the stream
//!    ends (the client resumes with `Last-Event-ID`).
//!
//! What the caller sees: events of rooms they are in (their per-user view changes and the
//! reports they filed only; other members' stars, hides, read markers and reports are theirs
//! alone), their own user events and the files they uploaded. The room set follows the
//! membership events in the stream itself, which are exactly ordered with everything else; a
//! re-query would answer at the projector's position, which may be behind the event.
//!
//! Everything is bounded: the hub's broadcast buffer (a receiver that falls behind catches up
//! from the log), each stream's buffer, and the wait for a slow client, which is disconnected
//! rather than buffered without bound (it reconnects with `Last-Event-ID`).

use std::collections::HashSet;
use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use bus::{EventHub, FollowError, FollowOptions, LogFollower};
use domain::{Event, MembershipChange, RoomId};
use protocol::RecordedEvent;
use serde::Deserialize;
use tokio::sync::mpsc::error::SendTimeoutError;
use tokio::sync::{mpsc, OwnedSemaphorePermit};

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

/// How often an idle stream sends a comment, so that proxies keep the connection open.
pub(crate) const KEEP_ALIVE_INTERVAL: Duration = Duration::from_secs(15);

/// Quiet time after which a stream reads the log for a dropped last event. Longer than a
/// projector's: every open stream probes on its own, and a client can wait this long.
pub(crate) const IDLE_PROBE_INTERVAL: Duration = Duration::from_secs(15);

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

/// The `data` of a `member_rooms` answer.
#[derive(Deserialize)]
struct MemberRooms {
    room_ids: Vec<String>,
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
    let permit = Arc::clone(&state.sse_permits)
        .try_acquire_owned()
        .map_err(|_| ApiError::unavailable("too many event streams are open; retry later"))?;
    // Joined before the room set is read: whatever is published from now on reaches us.
    let mut follower = LogFollower::from_hub(&state.bus, &follow_options(&state), 0, &state.events);
    let min_position = last_event_id.filter(|position| *position > 0);
    let answer = queries::ask(
        &state,
        "rooms",
        "member_rooms",
        &caller,
        min_position,
        serde_json::Map::new(),
    )
    .await?;
    let member_rooms: MemberRooms = serde_json::from_str(answer.data.get()).map_err(|error| {
        ApiError::bad_reply(format!("the rooms projector sent malformed rooms: {error}"))
    })?;
    let rooms = member_rooms
        .room_ids
        .iter()
        .filter_map(|room| RoomId::parse(room).ok())
        .collect();
    let cursor = match last_event_id {
        Some(position) => position,
        None => answer.position.ok_or_else(|| {
            ApiError::bad_reply("the rooms projector sent no position with the rooms")
        })?,
    };
    follower.reset(cursor);
    let (sender, receiver) = mpsc::channel(STREAM_EVENTS_MAX);
    let stream = Stream {
        state: Arc::clone(&state),
        caller: caller.subject,
        rooms,
        cursor,
        sender,
    };
    tokio::spawn(stream.run(follower, permit));
    let events = futures::stream::unfold(receiver, |mut receiver| async move {
        receiver
            .recv()
            .await
            .map(|event| (Ok::<_, Infallible>(event), receiver))
    });
    Ok(Sse::new(events)
        .keep_alive(KeepAlive::new().interval(KEEP_ALIVE_INTERVAL))
        .into_response())
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
}

/// One stream: what its follower yields, filtered for the caller and sent on.
struct Stream {
    state: SharedState,
    caller: String,
    rooms: HashSet<RoomId>,
    /// The last position looked at.
    cursor: u64,
    sender: mpsc::Sender<SseEvent>,
}

impl Stream {
    async fn run(mut self, mut follower: LogFollower, _permit: OwnedSemaphorePermit) {
        gateway_metrics::sse_clients(1.0);
        let end = self.follow(&mut follower).await;
        gateway_metrics::sse_clients(-1.0);
        gateway_metrics::sse_ended(match &end {
            End::Shutdown => "shutdown",
            End::ClientGone => "client_gone",
            End::SlowClient => "slow_client",
            End::LogUnavailable(_) => "log_unavailable",
            End::Gap { .. } => "gap",
        });
        match end {
            End::Shutdown | End::ClientGone => {
                tracing::debug!(caller = %self.caller, %end, "event stream ended");
            }
            _ => {
                tracing::warn!(caller = %self.caller, cursor = self.cursor, %end, "event stream ended")
            }
        }
    }

    async fn follow(&mut self, follower: &mut LogFollower) -> End {
        loop {
            let events = tokio::select! {
                () = self.state.shutdown.cancelled() => return End::Shutdown,
                () = self.sender.closed() => return End::ClientGone,
                events = follower.next() => events,
            };
            let events = match events {
                Ok(events) => events,
                Err(FollowError::Closed) => return End::Shutdown,
                Err(FollowError::Missing { expected, head }) => return End::Gap { expected, head },
                Err(error @ FollowError::LogRead { .. }) => {
                    return End::LogUnavailable(error.to_string())
                }
            };
            for event in &events {
                if let Err(end) = self.process(event).await {
                    return end;
                }
            }
        }
    }

    /// Looks at the next event: moves the cursor, and sends it if it concerns the caller.
    async fn process(&mut self, event: &RecordedEvent) -> Result<(), End> {
        self.cursor = event.position;
        if !concerns(&self.caller, &mut self.rooms, &event.event) {
            return Ok(());
        }
        let data = match serde_json::to_string(event) {
            Ok(data) => data,
            Err(error) => {
                tracing::error!(position = event.position, %error, "cannot encode an event");
                return Ok(());
            }
        };
        let sse = SseEvent::default()
            .id(event.position.to_string())
            .event(event.type_name())
            .data(data);
        match self
            .sender
            .send_timeout(sse, self.state.limits.sse_send_wait_max)
            .await
        {
            Ok(()) => Ok(()),
            Err(SendTimeoutError::Timeout(_)) => Err(End::SlowClient),
            Err(SendTimeoutError::Closed(_)) => Err(End::ClientGone),
        }
    }
}

/// Whether `event` concerns `caller`, whose rooms are `rooms`; updates `rooms` for membership
/// events about the caller (a room joined counts from its joining event on, a room left up to
/// and including its leaving event).
pub(crate) fn concerns(caller: &str, rooms: &mut HashSet<RoomId>, event: &Event) -> bool {
    let is_caller = |user: &domain::UserId| user.as_str() == caller;
    match event.membership_change() {
        Some(MembershipChange::Joined { room_id, users }) => {
            if users.into_iter().any(is_caller) {
                rooms.insert(room_id);
            }
            return rooms.contains(&room_id);
        }
        Some(MembershipChange::Left { room_id, user }) => {
            let member = rooms.contains(&room_id);
            if is_caller(user) {
                rooms.remove(&room_id);
            }
            return member;
        }
        None => {}
    }
    match event {
        Event::UserRegistered { user_id, .. }
        | Event::UserDisplayNameChanged { user_id, .. }
        | Event::OutOfOfficeSet { user_id, .. }
        | Event::OutOfOfficeCleared { user_id }
        | Event::OnlineVisibilityChanged { user_id, .. }
        | Event::NotificationFrequencyChanged { user_id, .. } => is_caller(user_id),
        // A block is its author's business alone (R-B2: the blocked user is told nothing).
        Event::UserBlocked { blocker, .. } | Event::UserUnblocked { blocker, .. } => {
            is_caller(blocker)
        }
        Event::FileRegistered { uploader, .. } => is_caller(uploader),
        // Membership events were answered above, from `membership_change`.
        Event::DirectRoomOpened { .. }
        | Event::GroupRoomCreated { .. }
        | Event::InterviewRoomOpened { .. }
        | Event::ContractStarted { .. }
        | Event::MemberAdded { .. }
        | Event::MemberLeft { .. } => false,
        // Per-user views (R-S1–R-S4) affect only their user's view.
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
        } => is_caller(user_id) && rooms.contains(room_id),
        // Reports go to moderators (R-P1); the reporter alone sees their own.
        Event::MessageReported {
            room_id, reporter, ..
        } => is_caller(reporter) && rooms.contains(room_id),
        Event::ContractEnded { room_id, .. }
        | Event::RoomRenamed { room_id, .. }
        | Event::MessageSent { room_id, .. }
        | Event::AutoReplySent { room_id, .. }
        | Event::MessageEdited { room_id, .. }
        | Event::MessageDeleted { room_id, .. }
        | Event::CallStarted { room_id, .. }
        | Event::CallEnded { room_id, .. } => rooms.contains(room_id),
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

    fn sent(room_id: RoomId) -> Event {
        Event::MessageSent {
            room_id,
            message_id: MessageId(uuid::Uuid::from_u128(99)),
            author: user("bob"),
            body: "hi".into(),
            reply_to: None,
            attachments: Vec::new(),
            sent_at: Timestamp::from_millis(0),
        }
    }

    #[test]
    fn room_events_follow_membership() {
        let mut rooms = HashSet::from([room(1)]);
        assert!(concerns("alice", &mut rooms, &sent(room(1))));
        assert!(!concerns("alice", &mut rooms, &sent(room(2))));
        let added = Event::MemberAdded {
            room_id: room(2),
            user_id: user("alice"),
            added_by: user("bob"),
            added_at: Timestamp::from_millis(0),
        };
        assert!(concerns("alice", &mut rooms, &added));
        assert!(concerns("alice", &mut rooms, &sent(room(2))));
        let left = Event::MemberLeft {
            room_id: room(2),
            user_id: user("alice"),
            left_at: Timestamp::from_millis(0),
        };
        assert!(
            concerns("alice", &mut rooms, &left),
            "the leaving itself is shown"
        );
        assert!(!concerns("alice", &mut rooms, &sent(room(2))));
        let someone_else_added = Event::MemberAdded {
            room_id: room(3),
            user_id: user("carol"),
            added_by: user("bob"),
            added_at: Timestamp::from_millis(0),
        };
        assert!(!concerns("alice", &mut rooms, &someone_else_added));
    }

    #[test]
    fn new_rooms_of_the_caller_join_the_set() {
        let mut rooms = HashSet::new();
        let opened = Event::DirectRoomOpened {
            room_id: room(5),
            initiator: user("bob"),
            recipient: user("alice"),
            opened_at: Timestamp::from_millis(0),
        };
        assert!(concerns("alice", &mut rooms, &opened));
        assert!(rooms.contains(&room(5)));
        let group = Event::GroupRoomCreated {
            room_id: room(6),
            name: "g".into(),
            creator: user("bob"),
            members: vec![user("bob"), user("carol")],
            created_at: Timestamp::from_millis(0),
        };
        assert!(!concerns("alice", &mut rooms, &group));
        assert!(!rooms.contains(&room(6)));
    }

    #[test]
    fn other_members_views_blocks_and_reports_stay_private() {
        let mut rooms = HashSet::from([room(1)]);
        let favorite = |user_id| Event::RoomFavoriteChanged {
            room_id: room(1),
            user_id,
            on: true,
        };
        assert!(concerns("alice", &mut rooms, &favorite(user("alice"))));
        assert!(!concerns("alice", &mut rooms, &favorite(user("bob"))));
        let blocked = Event::UserBlocked {
            blocker: user("bob"),
            blocked: user("alice"),
        };
        assert!(!concerns("alice", &mut rooms, &blocked));
        assert!(concerns("bob", &mut rooms, &blocked));
        let registered = Event::UserRegistered {
            user_id: user("bob"),
            display_name: "Bob".into(),
            kind: domain::UserKind::Client,
        };
        assert!(!concerns("alice", &mut rooms, &registered));
    }
}
