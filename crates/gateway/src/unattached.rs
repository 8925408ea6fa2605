//! Deletes uploads never attached to a message within their grace period, bytes included
//! (security.md H-L3).
//!
//! Every stored upload is held in the blob store ([`blobs::BlobStore::hold_unattached`]) before
//! its `file.register` is sent. This task follows the log (a [`LogFollower`] on the gateway's
//! event hub) and releases the hold of every file a `message_sent` attaches; the position it has
//! applied is stored beside the holds, so after a restart it reads the log from there and misses
//! no attachment made while it was down. Periodically, while level with the log, it asks the
//! store to collect the holds older than the grace period: their blobs go unless another
//! upload or an attached file uses the same content.
//!
//! A store that has never recorded a position starts at the log's head: uploads from before this
//! task existed hold nothing and are never collected.

use std::time::{Duration, Instant};

use blobs::BlobError;
use bus::{FollowOptions, LogFollower, LogReader};
use domain::{Attachment, Event};

use crate::state::SharedState;

/// Time the bytes of an unattached upload are kept beyond the domain's grace
/// (`domain::limits::FILE_ATTACH_GRACE_MS`, counted from the file's registration by the writer's
/// clock): the gateway counts from the upload (a little earlier), its clock may differ from the
/// writer's, and an attachment the writer accepted at the last moment reaches this task's log
/// follower a little later. Within this margin the writer stops accepting the file before its
/// bytes can go.
pub const UNATTACHED_UPLOAD_GRACE_MARGIN: Duration = Duration::from_secs(10 * 60);

/// How long an upload may stay unattached before its bytes are deleted (H-L3): the domain's
/// grace for attaching a file plus [`UNATTACHED_UPLOAD_GRACE_MARGIN`]. A shorter grace (the
/// `--unattached-upload-grace-seconds` flag) deletes bytes of files the writer would still let
/// be attached (security.md, Decisions).
pub const UNATTACHED_UPLOAD_GRACE_DEFAULT: Duration =
    Duration::from_millis(domain::limits::FILE_ATTACH_GRACE_MS.unsigned_abs())
        .saturating_add(UNATTACHED_UPLOAD_GRACE_MARGIN);

/// How often unattached uploads past their grace are looked for: an upload outlives its grace
/// by at most this much. A collection lists the records of unattached uploads only.
pub const COLLECT_INTERVAL_DEFAULT: Duration = Duration::from_secs(60);

/// How often the applied position is written while attachments are applied.
const POSITION_WRITE_INTERVAL: Duration = Duration::from_secs(1);

/// The pause after a failure (the log unreadable, the store failing) before trying again.
const RETRY_PAUSE: Duration = Duration::from_secs(1);

/// Quiet time after which the follower reads the log for a dropped last event.
const IDLE_PROBE_INTERVAL: Duration = Duration::from_secs(15);

/// Runs until the gateway shuts down: uploads unattached for `grace` are collected, looked for
/// every `interval`.
pub(crate) async fn run(state: SharedState, grace: Duration, interval: Duration) {
    let mut options = FollowOptions::new(state.subjects.prefix());
    options.timeout = state.limits.query_timeout;
    options.idle_probe_interval = IDLE_PROBE_INTERVAL;
    let Some(cursor) = retry_until_shutdown(&state, || start_position(&state, &options)).await
    else {
        return;
    };
    let mut follower = LogFollower::from_hub(&state.bus, &options, cursor, &state.events);
    let mut written = cursor;
    let mut written_at = Instant::now();
    let mut collect = tokio::time::interval(interval);
    collect.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            () = state.shutdown.cancelled() => break,
            batch = follower.next() => match batch {
                Ok(events) => {
                    for event in events {
                        if let Err(error) = apply(&state, &event.event).await {
                            tracing::warn!(%error, position = event.position, "cannot record an attachment; retrying");
                            follower.reset(event.position.saturating_sub(1));
                            pause(&state).await;
                            break;
                        }
                    }
                    if follower.cursor() != written && written_at.elapsed() >= POSITION_WRITE_INTERVAL {
                        written = write_position(&state, follower.cursor()).await.unwrap_or(written);
                        written_at = Instant::now();
                    }
                }
                Err(error) => tracing::debug!(%error, "following the log for attachments"),
            },
            _ = collect.tick() => {
                // Only level with the log: an attachment not applied yet must not look absent.
                if !follower.is_live() {
                    continue;
                }
                if follower.cursor() != written {
                    written = write_position(&state, follower.cursor()).await.unwrap_or(written);
                    written_at = Instant::now();
                }
                let uploaded_before = state.clock.now().millis().saturating_sub(
                    i64::try_from(grace.as_millis()).unwrap_or(i64::MAX),
                );
                match state.blobs.collect_unattached(uploaded_before).await {
                    Ok(collected) if collected.uploads_dropped > 0 => {
                        tracing::info!(?collected, "collected uploads never attached");
                        crate::metrics::unattached_collected(collected.bytes_deleted);
                    }
                    Ok(_) => {}
                    Err(error) => tracing::warn!(%error, "cannot collect unattached uploads"),
                }
            }
        }
    }
    if follower.cursor() != written {
        let _ = write_position(&state, follower.cursor()).await;
    }
}

/// Releases the hold of every file `event` attaches.
async fn apply(state: &SharedState, event: &Event) -> Result<(), BlobError> {
    if let Event::MessageSent { attachments, .. } = event {
        for attachment in attachments {
            if let Attachment::File { file_id, .. } = attachment {
                state.blobs.attached(file_id.0).await?;
            }
        }
    }
    Ok(())
}

/// The stored position, or the log's head when none is stored yet (then stored).
async fn start_position(state: &SharedState, options: &FollowOptions) -> Result<u64, String> {
    if let Some(position) = state
        .blobs
        .attachments_position()
        .await
        .map_err(|error| error.to_string())?
    {
        return Ok(position);
    }
    let head = LogReader::new(&state.bus, options)
        .read(1, 1)
        .await
        .map_err(|error| error.to_string())?
        .head;
    state
        .blobs
        .set_attachments_position(head)
        .await
        .map_err(|error| error.to_string())?;
    Ok(head)
}

/// Retries `attempt` after each failure until it succeeds or the gateway shuts down.
async fn retry_until_shutdown<T, F, Fut>(state: &SharedState, mut attempt: F) -> Option<T>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, String>>,
{
    loop {
        match attempt().await {
            Ok(value) => return Some(value),
            Err(error) => {
                tracing::warn!(%error, "cannot start following attachments; retrying");
                if state.shutdown.is_cancelled() {
                    return None;
                }
                pause(state).await;
            }
        }
    }
}

async fn pause(state: &SharedState) {
    tokio::select! {
        () = state.shutdown.cancelled() => {}
        () = tokio::time::sleep(RETRY_PAUSE) => {}
    }
}

/// Stores the applied position; the position now stored, or `None` if it could not be.
async fn write_position(state: &SharedState, position: u64) -> Option<u64> {
    match state.blobs.set_attachments_position(position).await {
        Ok(()) => Some(position),
        Err(error) => {
            tracing::warn!(%error, "cannot store the attachments position");
            None
        }
    }
}
