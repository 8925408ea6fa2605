//! The one definition of "a command → its stored records and its reply": the writer's committer,
//! the benchmark generator and the read-side test supports all go through [`decide_command`]
//! and [`Outcome`], so the event ids, the stored bytes and the reply shape cannot drift apart.
//!
//! Pure: no IO, no clock (the caller passes `now`), no log. Positions and versions are the log's
//! business; [`Outcome::reply`] takes them as the log assigned them.

use domain::{command_result, decide, Command, CommandId, CommandResult, Event, State, Timestamp};
use serde::Serialize;
use uuid::Uuid;

use crate::codec::{self, CodecError};
use crate::record::{StoredEvent, CURRENT_SCHEMA_VERSION, STORED_EVENT_BYTES_MAX};
use crate::reply::{EventRef, Reply};

/// What an accepted command writes and returns, before the log has placed it.
#[derive(Debug, Clone, PartialEq)]
pub struct Outcome {
    /// The command's id: the idempotency key and the seed of its event ids.
    pub command_id: CommandId,
    /// Who sent it, as text (`alice`, `service:hiring`).
    pub actor: String,
    /// The writer's clock when it was decided.
    pub recorded_at: Timestamp,
    /// The events, in order (none for a no-op).
    pub events: Vec<Event>,
    /// The ids the command returns.
    pub result: CommandResult,
}

/// One encoded record of an outcome: the stream it is appended to and its stored bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EncodedRecord {
    /// The stream (`room-<uuid>`, …).
    pub stream: String,
    /// The stored event's bytes ([`crate::encode_stored`]'s layout).
    pub bytes: Vec<u8>,
}

/// Decides `command` against `state` at `now`: the events and result of an accepted command, or
/// the domain's rejection. The state is not changed; fold [`Outcome::events`] in once they are
/// durable (or at once, where nothing is durable).
pub fn decide_command(
    state: &State,
    command: &Command,
    now: Timestamp,
) -> Result<Outcome, domain::Rejection> {
    let events = decide(state, command, now)?;
    let result = command_result(state, command, &events);
    Ok(Outcome {
        command_id: command.command_id,
        actor: command.actor.to_string(),
        recorded_at: now,
        events,
        result,
    })
}

/// The id of the `index`-th event (from 0) of the command `command_id`: derived, so a retried
/// command would produce the same ids.
pub fn event_id(command_id: CommandId, index: usize) -> Uuid {
    // `CommandId::derive("event\n{index}")`, with the purpose written on the stack: this runs
    // once per event on the committer's path, and a `format!` would allocate each time.
    let mut purpose = [0u8; EVENT_PURPOSE_BYTES_MAX];
    purpose[..EVENT_PURPOSE_PREFIX.len()].copy_from_slice(EVENT_PURPOSE_PREFIX);
    let mut digits = [0u8; USIZE_DIGITS_MAX];
    let mut rest = index;
    let mut count = 0;
    loop {
        // `rest % 10` is below 10, so the cast cannot truncate.
        digits[count] = b'0' + (rest % 10) as u8;
        rest /= 10;
        count += 1;
        if rest == 0 {
            break;
        }
    }
    let end = EVENT_PURPOSE_PREFIX.len() + count;
    for (to, from) in purpose[EVENT_PURPOSE_PREFIX.len()..end]
        .iter_mut()
        .zip(digits[..count].iter().rev())
    {
        *to = *from;
    }
    Uuid::new_v5(&command_id.0, &purpose[..end])
}

/// The text every event id's purpose starts with, before the event's index.
const EVENT_PURPOSE_PREFIX: &[u8] = b"event\n";
/// Decimal digits of the largest `usize`.
const USIZE_DIGITS_MAX: usize = 20;
/// The longest purpose: the prefix and the digits.
const EVENT_PURPOSE_BYTES_MAX: usize = EVENT_PURPOSE_PREFIX.len() + USIZE_DIGITS_MAX;

/// [`StoredEvent`]'s serialised layout, borrowing the actor and the event so that encoding does
/// not clone them. Field for field the same as `StoredEvent` (a test holds the bytes equal).
#[derive(Serialize)]
struct StoredEventRef<'a> {
    schema_version: u16,
    event_id: Uuid,
    command_id: CommandId,
    actor: &'a str,
    recorded_at: Timestamp,
    event: &'a Event,
}

impl Outcome {
    /// The stored events, with their derived ids, cloning the events.
    pub fn stored_events(&self) -> Vec<StoredEvent> {
        self.clone().into_stored_events()
    }

    /// The stored events, with their derived ids.
    pub fn into_stored_events(self) -> Vec<StoredEvent> {
        let Outcome {
            command_id,
            actor,
            recorded_at,
            events,
            ..
        } = self;
        events
            .into_iter()
            .enumerate()
            .map(|(index, event)| StoredEvent {
                schema_version: CURRENT_SCHEMA_VERSION,
                event_id: event_id(command_id, index),
                command_id,
                actor: actor.clone(),
                recorded_at,
                event,
            })
            .collect()
    }

    /// Each event's stream and stored bytes, in order. An event over
    /// [`STORED_EVENT_BYTES_MAX`] is refused ([`CodecError::TooLarge`]): it is the command's
    /// problem, and the caller refuses the command alone.
    pub fn encode_records(&self) -> Result<Vec<EncodedRecord>, CodecError> {
        self.events
            .iter()
            .enumerate()
            .map(|(index, event)| {
                let bytes = codec::encode(&StoredEventRef {
                    schema_version: CURRENT_SCHEMA_VERSION,
                    event_id: event_id(self.command_id, index),
                    command_id: self.command_id,
                    actor: &self.actor,
                    recorded_at: self.recorded_at,
                    event,
                })?;
                if u64::try_from(bytes.len()).map_or(true, |len| len > STORED_EVENT_BYTES_MAX) {
                    return Err(CodecError::TooLarge {
                        limit: STORED_EVENT_BYTES_MAX,
                    });
                }
                Ok(EncodedRecord {
                    stream: event.stream(),
                    bytes,
                })
            })
            .collect()
    }

    /// The reply once the log has appended the events: `appended` gives each event's
    /// (position, stream, version) in order; `head_before` is the head before the command, the
    /// reply's position for a no-op.
    pub fn reply<'a>(
        &self,
        head_before: u64,
        appended: impl IntoIterator<Item = (u64, &'a str, u64)>,
    ) -> Reply {
        let events: Vec<EventRef> = appended
            .into_iter()
            .zip(&self.events)
            .map(|((position, stream, version), event)| EventRef {
                position,
                stream: stream.to_owned(),
                version,
                type_name: event.type_name().to_owned(),
            })
            .collect();
        let position = events.last().map_or(head_before, |last| last.position);
        Reply::accepted(position, events, &self.result)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;
    use crate::record::encode_stored;
    use domain::{Action, Actor, Client, Config, UserId, UserKind};

    fn register(id: u128, user: &str) -> Command {
        Command {
            command_id: CommandId(Uuid::from_u128(id)),
            actor: Actor::parse("service:test").unwrap(),
            client: Client::Desktop,
            action: Action::RegisterUser {
                user_id: UserId::parse(user).unwrap(),
                display_name: user.into(),
                kind: UserKind::Freelancer,
            },
        }
    }

    #[test]
    fn encoded_records_are_the_bytes_of_encode_stored() {
        let state = State::new(Config::default());
        let outcome =
            decide_command(&state, &register(7, "alice"), Timestamp::from_millis(1_000)).unwrap();
        assert!(!outcome.events.is_empty());
        let encoded = outcome.encode_records().unwrap();
        let stored = outcome.stored_events();
        assert_eq!(encoded.len(), stored.len());
        for ((record, stored), event) in encoded.iter().zip(&stored).zip(&outcome.events) {
            assert_eq!(record.bytes, encode_stored(stored).unwrap());
            assert_eq!(record.stream, event.stream());
        }
        assert_eq!(
            stored[0].event_id,
            CommandId(Uuid::from_u128(7)).derive("event\n0")
        );
    }

    #[test]
    fn event_ids_are_the_command_ids_derivation_for_every_index() {
        let command_id = CommandId(Uuid::from_u128(0x1234));
        for index in (0..=1_100).chain([usize::MAX / 7, usize::MAX]) {
            assert_eq!(
                event_id(command_id, index),
                command_id.derive(&format!("event\n{index}")),
                "{index}"
            );
        }
    }

    #[test]
    fn reply_lists_the_appended_events_and_a_no_op_answers_the_head() {
        let state = State::new(Config::default());
        let outcome =
            decide_command(&state, &register(8, "bob"), Timestamp::from_millis(5)).unwrap();
        let stream = outcome.events[0].stream();
        let reply = outcome.reply(41, [(42, stream.as_str(), 1)]);
        let Reply::Ok {
            position, events, ..
        } = reply
        else {
            panic!("expected an accepted reply");
        };
        assert_eq!(position, 42);
        assert_eq!(
            events,
            vec![EventRef::new(42, stream, 1, outcome.events[0].type_name())]
        );
        let no_op = Outcome {
            events: vec![],
            ..outcome
        };
        let Reply::Ok {
            position, events, ..
        } = no_op.reply(41, [])
        else {
            panic!("expected an accepted reply");
        };
        assert_eq!((position, events.len()), (41, 0));
    }

    #[test]
    fn an_event_over_the_stored_bound_is_refused_not_truncated() {
        // The domain's bounds keep real events far below the bound; this one is made by hand.
        let outcome = Outcome {
            command_id: CommandId(Uuid::from_u128(9)),
            actor: "service:test".into(),
            recorded_at: Timestamp::from_millis(1),
            events: vec![Event::UserRegistered {
                user_id: UserId::parse("alice").unwrap(),
                display_name: "x".repeat(STORED_EVENT_BYTES_MAX as usize),
                kind: UserKind::Freelancer,
            }],
            result: CommandResult::None,
        };
        assert!(matches!(
            outcome.encode_records(),
            Err(CodecError::TooLarge { .. })
        ));
    }
}
