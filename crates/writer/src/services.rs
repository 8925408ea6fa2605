//! The writer's small services: the start-up ping, `log.read`, the head announcement and the
//! development clock.

use std::sync::Arc;

use bus::{Bus, Headers, Message, Subscription};
use domain::ErrorCode;
use eventlog::EventLog;

use crate::ha::ReadGate;
use crate::shared_log::SharedLog;
use protocol::{AuditHead, Format, LogReadReply, LogReadRequest, RecordedEvent, Sha256};
use tokio::sync::watch;
use tracing::{debug, warn};

use crate::{WriterConfig, WriterError};

/// The queue group every writer serves `log.read` in (a single writer, an HA leader and its
/// standbys alike), so that each read gets exactly one answer.
pub(crate) const LOG_READ_QUEUE_GROUP: &str = "parlor-writer";

/// Room left in a `log.read` reply for headers and framing under the 1 MiB message limit.
const READ_REPLY_MARGIN_BYTES: usize = 16 * 1024;

/// Runs `serve` for each message of `subscription` until stopped.
async fn serve_each<F, Fut>(
    mut subscription: Subscription,
    mut stopped: watch::Receiver<bool>,
    mut serve: F,
) -> Result<(), WriterError>
where
    F: FnMut(Message) -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    loop {
        tokio::select! {
            _ = crate::stop_requested(&mut stopped) => return Ok(()),
            message = subscription.next() => match message {
                Some(message) => serve(message).await,
                None => return Ok(()),
            },
        }
    }
}

/// Answers `<prefix>.writer.ping` so a second writer refuses to start: `{"head": N}`, and for
/// an HA leader also `"leader"` (its name) and `"epoch"` (its lease's epoch), as `leader`
/// gives them (a JSON fragment), while its gate opens (its lease stands). Standbys do not
/// serve pings: an answer always names the leader.
pub(crate) async fn serve_pings(
    subscription: Subscription,
    bus: Bus,
    log: SharedLog,
    leader: Option<(String, ReadGate)>,
    stopped: watch::Receiver<bool>,
) -> Result<(), WriterError> {
    let (leader, gate) = match leader {
        Some((fields, gate)) => (format!(",{fields}"), Some(Arc::new(gate))),
        None => (String::new(), None),
    };
    serve_each(subscription, stopped, |request| {
        let bus = bus.clone();
        let log = log.clone();
        let leader = leader.clone();
        let gate = gate.clone();
        async move {
            // A leader whose lease has run out says nothing rather than claim to lead: the
            // answer, if any, is then the newer leader's.
            if let Some(gate) = gate {
                if let Err(lapsed) = gate.open().await {
                    debug!(%lapsed, "a ping left unanswered");
                    return;
                }
            }
            let head = log.head().position;
            let payload = format!("{{\"head\":{head}{leader}}}");
            let headers = Headers::new().with("Content-Type", Format::Json.content_type());
            let _ = bus.respond(&request, headers, payload).await;
        }
    })
    .await
}

/// Serves `<prefix>.log.read`: `{"from", "max", "raw"}` → `{"events", "head"}`, at most
/// `max` events and less than 1 MiB per reply (record bytes included when `raw` asks for them),
/// none past the head the reply reports. An HA writer passes its `gate`: a read it does not
/// open is answered `unavailable` (see [`ReadGate`]).
pub(crate) async fn serve_log_reads(
    subscription: Subscription,
    bus: Bus,
    log: SharedLog,
    gate: Option<ReadGate>,
    stopped: watch::Receiver<bool>,
) -> Result<(), WriterError> {
    let gate = gate.map(Arc::new);
    serve_each(subscription, stopped, |request| {
        let bus = bus.clone();
        let log = log.clone();
        let gate = gate.clone();
        async move {
            let behind = match gate {
                Some(gate) => gate.open().await.err(),
                None => None,
            };
            let format = Format::from_content_type(request.headers.get("Content-Type"));
            // Errors are always JSON (`{"error": {code, message}}`, with a JSON Content-Type),
            // so a reader can tell them from a page whatever format it asked for.
            let (format, payload) = match behind {
                Some(behind) => {
                    debug!(%behind, "an HA writer answers a log.read unavailable");
                    (Format::Json, error_object(ErrorCode::Unavailable, &behind))
                }
                None => match format.map(|f| (f, LogReadRequest::decode(&request.payload, f))) {
                    Some((format, Ok(read))) => {
                        let page = tokio::task::spawn_blocking(move || {
                            let log = log
                                .get()
                                .map_err(|e| format!("the log is reopening: {e}"))?;
                            read_page(&log, read, format)
                        });
                        match page.await {
                            Ok(Ok(payload)) => (format, payload),
                            Ok(Err(message)) => {
                                (Format::Json, error_object(ErrorCode::Unavailable, &message))
                            }
                            Err(join_error) => (
                                Format::Json,
                                error_object(ErrorCode::Unavailable, &join_error.to_string()),
                            ),
                        }
                    }
                    Some((_, Err(invalid))) => (
                        Format::Json,
                        error_object(ErrorCode::InvalidCommand, &invalid.message),
                    ),
                    None => (
                        Format::Json,
                        error_object(
                            ErrorCode::InvalidCommand,
                            "Content-Type: use application/json or application/x-bincode",
                        ),
                    ),
                },
            };
            let headers = Headers::new().with("Content-Type", format.content_type());
            if let Err(bus_error) = bus.respond(&request, headers, payload).await {
                debug!(%bus_error, "could not deliver a log.read reply");
            }
        }
    })
    .await
}

/// Reads one page and encodes it, shrinking the page until it fits in a message. With
/// `read.raw`, every event also carries its stored record bytes, which count toward the bound.
fn read_page(log: &EventLog, read: LogReadRequest, format: Format) -> Result<Vec<u8>, String> {
    let head = log.head().position;
    let budget = bus::PAYLOAD_BYTES_MAX - READ_REPLY_MARGIN_BYTES;
    // A raw page holds every record twice (decoded, and as base64 or bytes): start from half
    // the stored bytes so that the shrinking below is the exception, not the rule.
    let stored_budget = if read.raw { budget / 2 } else { budget };
    let from = read.from.max(1);
    let mut records = log
        .read_from(from, read.max as usize, stored_budget)
        .map_err(|e| format!("reading the log: {e}"))?;
    // Records committed after `head` was taken would show events past the head the reply
    // reports; they come with the next read.
    let within_head = records.iter().take_while(|r| r.position <= head).count();
    records.truncate(within_head);
    let mut raws = if read.raw && !records.is_empty() {
        // The same records again, as stored: the count is fixed by the first read, so appends
        // in between cannot make the two lists differ.
        let raws = log
            .read_raw_from(from, records.len(), usize::MAX)
            .map_err(|e| format!("reading the log: {e}"))?;
        if raws.len() != records.len() {
            return Err(format!(
                "read {} records but {} stored byte strings from position {from}",
                records.len(),
                raws.len()
            ));
        }
        Some(raws.into_iter())
    } else {
        None
    };
    let mut events = Vec::with_capacity(records.len());
    for record in &records {
        let stored = protocol::decode_stored(&record.payload)
            .map_err(|e| format!("event at position {} is unreadable: {e}", record.position))?;
        let event = RecordedEvent::new(
            record.position,
            record.stream.clone(),
            record.version,
            record.hash.0,
            &stored,
        );
        events.push(match raws.as_mut().and_then(Iterator::next) {
            Some(raw) => event.with_raw(raw),
            None => event,
        });
    }
    loop {
        let reply = LogReadReply { events, head };
        let payload = reply
            .encode(format)
            .map_err(|e| format!("encoding a page: {e}"))?;
        if payload.len() <= budget || reply.events.len() <= 1 {
            return Ok(payload);
        }
        // Encoded events are larger than stored ones (JSON, hex hashes): halve and retry.
        let keep = reply.events.len() / 2;
        events = reply.events;
        events.truncate(keep);
    }
}

/// Publishes `{"position", "hash"}` on `<prefix>.audit.head` every `head_interval`. An HA
/// writer passes its `gate` and announces only when it opens, so that a standby announces the
/// head of the whole log at that moment, not a head it held before it caught up.
pub(crate) async fn announce_head(
    config: Arc<WriterConfig>,
    bus: Bus,
    log: SharedLog,
    gate: Option<ReadGate>,
    mut stopped: watch::Receiver<bool>,
) -> Result<(), WriterError> {
    let subject = config.subject("audit.head");
    let mut ticks = tokio::time::interval(config.head_interval);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = crate::stop_requested(&mut stopped) => return Ok(()),
            _ = ticks.tick() => {
                if let Some(gate) = &gate {
                    if let Err(behind) = gate.open().await {
                        debug!(%behind, "an HA writer skips announcing its head");
                        continue;
                    }
                }
                let head = log.head();
                let announcement = AuditHead { position: head.position, hash: Sha256(head.hash.0) };
                let headers = Headers::new().with("Content-Type", Format::Json.content_type());
                let payload = announcement.encode(Format::Json).unwrap_or_default();
                if let Err(bus_error) = bus.publish(&subject, headers, payload).await {
                    warn!(%bus_error, "could not announce the head");
                }
            }
        }
    }
}

/// `{"error": {"code", "message"}}`, the error shape of the writer's non-command services.
fn error_object(code: ErrorCode, message: &str) -> Vec<u8> {
    serde_json::to_vec(&serde_json::json!({"error": {"code": code.as_str(), "message": message}}))
        .unwrap_or_default()
}
