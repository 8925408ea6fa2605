//! What the benchmarks send: protocol.md §1 JSON commands, the users and rooms set up before a
//! measurement, and the closed-loop driver shared by B1 and its peers.

use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use bytes::Bytes;
use futures::StreamExt;
use serde::Deserialize;
use uuid::Uuid;

use crate::stats::Latencies;
use crate::zipf::{Rng, Zipf};

/// The service actor that registers users (`user.register` is a service command).
pub const SERVICE_ACTOR: &str = "service:identity";

/// A message body of 194 characters without anything the contact-information detector would
/// refuse (no digits, no @, no links): about performance.md's 200-byte payloads.
pub const BODY: &str = "The quick brown fox jumps over the lazy dog while the whole team reviews \
the project plan together, and everyone agrees that the next milestone looks realistic for the \
work still ahead of us all";

/// Rooms each user creates during setup (the default daily limit is 50 new conversations).
pub const ROOMS_PER_USER: usize = 5;
/// How long one measured operation may take before it counts as failed.
pub const OP_WAIT_MAX: Duration = Duration::from_secs(30);
/// Setup commands in flight at once.
const SETUP_IN_FLIGHT: usize = 64;

/// The users and rooms a benchmark sends messages into, with the Zipf law over the rooms.
#[derive(Debug, Clone)]
pub struct Rooms {
    /// `(member who sends, room id)` per room; index = Zipf rank (0 is the hottest room).
    pub rooms: Vec<(String, String)>,
    /// How rooms are drawn.
    pub zipf: Arc<Zipf>,
}

impl Rooms {
    /// Draws a room: `(actor, room_id)`.
    pub fn pick(&self, rng: &mut Rng) -> (&str, &str) {
        let index = self.zipf.sample(rng);
        match self.rooms.get(index) {
            Some((actor, room)) => (actor, room),
            None => ("", ""),
        }
    }
}

/// Whether command ids are UUIDv4 (random) instead of UUIDv7 (time-ordered, as in protocol.md's
/// example). Set once at start-up from `--command-ids`.
static RANDOM_COMMAND_IDS: AtomicBool = AtomicBool::new(false);

/// Chooses the kind of command ids for the whole run.
pub fn use_random_command_ids(random: bool) {
    RANDOM_COMMAND_IDS.store(random, Ordering::Relaxed);
}

/// A fresh command id: UUIDv7 by default, UUIDv4 with `--command-ids v4`. The kind matters to
/// the writer: ids are idempotency keys in sled, where time-ordered keys land in few leaves.
pub fn command_id() -> Uuid {
    if RANDOM_COMMAND_IDS.load(Ordering::Relaxed) {
        Uuid::new_v4()
    } else {
        Uuid::now_v7()
    }
}

/// The user id of user `n`.
pub fn user_id(n: usize) -> String {
    format!("bench-user-{n}")
}

/// How many users `rooms` rooms need (each creates at most [`ROOMS_PER_USER`], and a room
/// needs a second member).
pub fn users_for(rooms: usize) -> usize {
    rooms.div_ceil(ROOMS_PER_USER).max(2)
}

/// A command envelope (protocol.md §1) as JSON bytes.
pub fn envelope(command_id: Uuid, actor: &str, data: serde_json::Value) -> Vec<u8> {
    serde_json::json!({
        "command_id": command_id,
        "actor": actor,
        "data": data,
    })
    .to_string()
    .into_bytes()
}

/// A `message.send` into `room_id` by `actor` with [`BODY`], with a fresh command id.
pub fn message_send(actor: &str, room_id: &str) -> Bytes {
    // Formatted by hand: this runs for every measured command, on the same cores as the server.
    let json = format!(
        r#"{{"command_id":"{}","actor":"{actor}","data":{{"room_id":"{room_id}","body":"{BODY}"}}}}"#,
        command_id()
    );
    Bytes::from(json)
}

/// A `message.send` into `room_id` by `actor` with `body`, with a fresh command id.
pub fn message_send_with_body(actor: &str, room_id: &str, body: &str) -> Bytes {
    let json = serde_json::json!({
        "command_id": command_id(),
        "actor": actor,
        "data": {"room_id": room_id, "body": body},
    });
    Bytes::from(json.to_string())
}

/// The part of a reply the benchmark checks.
#[derive(Debug, Deserialize)]
pub struct ReplyHead {
    /// Accepted or not.
    pub ok: bool,
    /// The rejection, when not ok.
    #[serde(default)]
    pub error: Option<serde_json::Value>,
    /// The result, when ok.
    #[serde(default)]
    pub result: Option<serde_json::Value>,
    /// The position of the command's last event, when ok.
    #[serde(default)]
    pub position: Option<u64>,
}

/// Fails unless `payload` is an accepted reply; returns it.
pub fn accepted(payload: &[u8]) -> anyhow::Result<ReplyHead> {
    let reply: ReplyHead = serde_json::from_slice(payload).context("reply is not JSON")?;
    if !reply.ok {
        bail!(
            "rejected: {}",
            reply.error.map(|e| e.to_string()).unwrap_or_default()
        );
    }
    Ok(reply)
}

/// Sends one command and requires acceptance.
pub async fn send(
    client: &async_nats::Client,
    command_type: &str,
    payload: Vec<u8>,
) -> anyhow::Result<ReplyHead> {
    let reply = client
        .request(format!("parlor.cmd.{command_type}"), Bytes::from(payload))
        .await
        .with_context(|| format!("{command_type}: no reply"))?;
    accepted(&reply.payload).with_context(|| command_type.to_owned())
}

/// Registers the users and creates `rooms` rooms of two members, over NATS, a few dozen
/// commands at a time. Room `i` is created by user `i / ROOMS_PER_USER`, who sends into it.
pub async fn set_up(client: &async_nats::Client, rooms: usize) -> anyhow::Result<Rooms> {
    let users = users_for(rooms);
    let registered = futures::stream::iter(0..users)
        .map(|n| {
            let payload = envelope(
                command_id(),
                SERVICE_ACTOR,
                serde_json::json!({
                    "user_id": user_id(n),
                    "display_name": format!("Bench user {n}"),
                    "kind": "freelancer",
                }),
            );
            send(client, "user.register", payload)
        })
        .buffer_unordered(SETUP_IN_FLIGHT)
        .collect::<Vec<_>>()
        .await;
    for result in registered {
        result.context("setting up users")?;
    }
    let created = futures::stream::iter(0..rooms)
        .map(|i| {
            let creator = user_id(i / ROOMS_PER_USER);
            let other = user_id((i / ROOMS_PER_USER + 1) % users);
            let payload = envelope(
                command_id(),
                &creator,
                serde_json::json!({"name": format!("room {i}"), "members": [other]}),
            );
            async move {
                let reply = send(client, "room.create", payload).await?;
                let room_id = reply
                    .result
                    .as_ref()
                    .and_then(|r| r.get("room_id"))
                    .and_then(|r| r.as_str())
                    .context("room.create: no result.room_id")?
                    .to_owned();
                anyhow::Ok((creator, room_id))
            }
        })
        .buffered(SETUP_IN_FLIGHT)
        .collect::<Vec<_>>()
        .await;
    let rooms_made = created
        .into_iter()
        .collect::<anyhow::Result<Vec<_>>>()
        .context("setting up rooms")?;
    Ok(Rooms {
        zipf: Arc::new(Zipf::new(rooms_made.len(), Zipf::EXPONENT)),
        rooms: rooms_made,
    })
}

/// How a closed loop ran.
#[derive(Debug, Clone)]
pub struct LoopResult {
    /// Latencies of the operations that started inside the measured window.
    pub latencies: Latencies,
    /// Operations completed successfully inside the window.
    pub completed: u64,
    /// Failed operations inside the window.
    pub errors: u64,
    /// The first failure, for the report.
    pub first_error: Option<String>,
    /// The measured window.
    pub window: Duration,
}

impl LoopResult {
    /// Successful operations per second of the window.
    pub fn throughput(&self) -> f64 {
        self.completed as f64 / self.window.as_secs_f64().max(1e-9)
    }
}

/// Runs `workers` tasks that each call `op(worker, rng)` back to back (a closed loop: each waits
/// for its answer before sending the next) for `warmup + duration`; only operations started
/// after the warm-up and finished before the end count.
pub async fn closed_loop<F, Fut>(
    workers: usize,
    warmup: Duration,
    duration: Duration,
    op: F,
) -> LoopResult
where
    F: Fn(usize, Rng) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = (Rng, anyhow::Result<()>)> + Send + 'static,
{
    let op = Arc::new(op);
    let measure_from = Instant::now() + warmup;
    let end = measure_from + duration;
    let mut tasks = tokio::task::JoinSet::new();
    for worker in 0..workers {
        let op = op.clone();
        tasks.spawn(async move {
            let mut rng = Rng::new(0xB1_0000 + worker as u64);
            let mut latencies = Latencies::new();
            let (mut completed, mut errors, mut first_error) = (0u64, 0u64, None);
            // Bounded: the loop ends at `end`; each operation has its own timeout.
            while Instant::now() < end {
                let started = Instant::now();
                let result = match tokio::time::timeout(OP_WAIT_MAX, op(worker, rng.clone())).await
                {
                    Ok((next_rng, result)) => {
                        rng = next_rng;
                        result
                    }
                    Err(_) => {
                        // The rng went with the abandoned operation: move on from another draw.
                        rng.next_u64();
                        Err(anyhow::anyhow!("no answer within {OP_WAIT_MAX:?}"))
                    }
                };
                let finished = Instant::now();
                if started < measure_from || finished > end {
                    continue;
                }
                match result {
                    Ok(()) => {
                        completed += 1;
                        latencies.record(finished - started);
                    }
                    Err(error) => {
                        errors += 1;
                        first_error.get_or_insert_with(|| format!("{error:#}"));
                    }
                }
            }
            (latencies, completed, errors, first_error)
        });
    }
    let mut result = LoopResult {
        latencies: Latencies::new(),
        completed: 0,
        errors: 0,
        first_error: None,
        window: duration,
    };
    while let Some(joined) = tasks.join_next().await {
        match joined {
            Ok((latencies, completed, errors, first_error)) => {
                result.latencies.merge(&latencies);
                result.completed += completed;
                result.errors += errors;
                if result.first_error.is_none() {
                    result.first_error = first_error;
                }
            }
            Err(join_error) => {
                result.errors += 1;
                result
                    .first_error
                    .get_or_insert_with(|| format!("a worker failed: {join_error}"));
            }
        }
    }
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn command_ids_of_both_kinds() {
        use_random_command_ids(true);
        assert_eq!(command_id().get_version_num(), 4);
        use_random_command_ids(false);
        assert_eq!(command_id().get_version_num(), 7);
    }

    #[test]
    fn message_send_is_a_valid_command() {
        let payload = message_send("bench-user-1", "0192f0c1-7a3e-7cc4-9a51-5c2d7e0f4b11");
        let decoded = protocol::decode_command("message.send", &payload, None);
        assert!(decoded.is_ok(), "{decoded:?}");
        assert_eq!(BODY.chars().count(), 194);
    }
}
