//! `parlor replay <model|all>`: rebuilds read models from the log into a fresh store beside
//! the old one, with a progress bar, then swaps the directories, so the old model stays whole
//! until the new one is complete ([`projections::swap`]).
//!
//! - With `--nats-url` ([`run_live`]): asks the running projectors to rebuild while they keep
//!   serving (`<prefix>.admin.replay.<model>`, [`projections::live_rebuild`]) and shows their
//!   progress.
//! - Without ([`run`]): rebuilds in a stopped data directory, reading the log directly.

use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use bus::Bus;
use eventlog::EventLog;
use indicatif::{ProgressBar, ProgressStyle};
use projections::live_rebuild::request_rebuild;
use projections::{
    store_path, swap, EventEnvelope, Files, Moderation, Notifications, OpenFor, Projector, Rooms,
    Timeline,
};
use protocol::{ReadModel, RecordedEvent};

/// Events per rebuild batch (one store write each).
const REPLAY_BATCH_EVENTS: usize = 10_000;

/// How long a projector may take to accept or refuse a live rebuild.
const LIVE_ANSWER_WAIT: Duration = Duration::from_secs(5);

/// How long a live rebuild may go without a progress message (projectors send one at least
/// every second, merges included) before it is given up as lost.
const LIVE_SILENCE_MAX: Duration = Duration::from_secs(30);

/// The models `name` stands for (`all`: every one), or why it names none.
fn model_names(name: &str) -> anyhow::Result<Vec<ReadModel>> {
    if name == "all" {
        return Ok(ReadModel::ALL.to_vec());
    }
    match ReadModel::from_name(name) {
        Some(known) => Ok(vec![known]),
        None => bail!(
            "no read model named {name:?} (known: {}, all)",
            ReadModel::names()
        ),
    }
}

/// A progress bar for `name` with events/s and ETA.
fn progress_bar(name: &str, length: u64) -> ProgressBar {
    let bar = ProgressBar::new(length);
    bar.set_style(
        ProgressStyle::with_template(
            "{prefix:>13} [{bar:40}] {pos}/{len} events {per_sec} ETA {eta} {msg}",
        )
        .unwrap_or_else(|_| ProgressStyle::default_bar())
        .progress_chars("=> "),
    );
    bar.set_prefix(name.to_owned());
    bar
}

/// Has the running projectors of `name` (or of every model for `all`, one after the other)
/// rebuild their model from the log while they keep serving, and follows each to its swap.
pub async fn run_live(
    name: &str,
    from: u64,
    nats: &bus::NatsOptions,
    prefix: &str,
) -> anyhow::Result<()> {
    if from > 1 {
        bail!(
            "--from {from}: a live replay rebuilds from position 1; continuing a model from a \
             later position needs a stopped data directory (leave out --nats-url)"
        );
    }
    let names = model_names(name)?;
    let bus = Bus::connect_with(nats)
        .await
        .with_context(|| format!("connecting to NATS at {}", nats.servers_text()))?;
    for model in names {
        let name = model.name();
        let mut watch = request_rebuild(&bus, prefix, name, LIVE_ANSWER_WAIT).await?;
        let bar = progress_bar(name, watch.position_at_start);
        bar.set_message("rebuilding");
        loop {
            let report = match watch.next(LIVE_SILENCE_MAX).await {
                Ok(report) => report,
                Err(error) => {
                    bar.abandon();
                    return Err(error.into());
                }
            };
            bar.set_length(report.head.max(report.position));
            bar.set_position(report.position);
            bar.set_message(report.phase.clone());
            if report.done {
                bar.finish();
                println!(
                    "{name}: rebuilt live to position {} in {:.1} s ({:.0} events/s); swapped in",
                    report.position,
                    report.elapsed_ms as f64 / 1000.0,
                    report.events_per_s
                );
                break;
            }
        }
    }
    Ok(())
}

/// Rebuilds `name` (or every model for `all`) from position `from` in a stopped data directory.
pub fn run(name: &str, from: u64, data_dir: &Path) -> anyhow::Result<()> {
    let log_dir = data_dir.join("log");
    if !log_dir.exists() {
        bail!("no event log in {}", data_dir.display());
    }
    let names = model_names(name)?;
    let log = EventLog::open(&log_dir).context("opening the event log (is the writer stopped?)")?;
    for model in names {
        let name = model.name();
        let current = store_path(data_dir, name);
        // A swap a crash interrupted is finished or undone before anything else.
        swap::recover(&current)?;
        let rebuilt = swap::rebuild_path(&current);
        if from > 1 {
            // Continue a copy of the current model, which must have applied `from - 1`.
            copy_dir(&current, &rebuilt)
                .with_context(|| format!("copying the {name} model to continue it from {from}"))?;
        }
        let started = Instant::now();
        let position = match model {
            ReadModel::Rooms => replay_into(
                &mut Rooms::open_path_for(&rebuilt, OpenFor::Rebuilding)?,
                &log,
                from,
                name,
            )?,
            ReadModel::Timeline => replay_into(
                &mut Timeline::open_path_for(&rebuilt, OpenFor::Rebuilding)?,
                &log,
                from,
                name,
            )?,
            // Bulk settings (a large writer heap, rare commits); `finish_rebuild` merges the
            // segments into one at the end.
            ReadModel::Search => replay_into(
                &mut search::SearchProjector::open_path(
                    &rebuilt,
                    search::SearchOptions::rebuild(),
                )?,
                &log,
                from,
                name,
            )?,
            ReadModel::Files => replay_into(
                &mut Files::open_path_for(&rebuilt, OpenFor::Rebuilding)?,
                &log,
                from,
                name,
            )?,
            ReadModel::Moderation => replay_into(
                &mut Moderation::open_path_for(&rebuilt, OpenFor::Rebuilding)?,
                &log,
                from,
                name,
            )?,
            ReadModel::Notifications => replay_into(
                &mut Notifications::open_path_for(&rebuilt, OpenFor::Rebuilding)?,
                &log,
                from,
                name,
            )?,
        };
        // Every handle on the rebuild is closed here (dropped with its match arm).
        swap::swap_in(&current)?;
        let seconds = started.elapsed().as_secs_f64();
        println!(
            "{name}: rebuilt to position {position} in {seconds:.1} s ({:.0} events/s)",
            position as f64 / seconds.max(1e-9)
        );
    }
    Ok(())
}

fn copy_dir(from: &Path, to: &Path) -> std::io::Result<()> {
    std::fs::create_dir_all(to)?;
    for entry in std::fs::read_dir(from)? {
        let entry = entry?;
        let target = to.join(entry.file_name());
        if entry.file_type()?.is_dir() {
            copy_dir(&entry.path(), &target)?;
        } else {
            std::fs::copy(entry.path(), target)?;
        }
    }
    Ok(())
}

/// Rebuilds `model` from `log` (from `from`) with a progress bar: the read-ahead replay of
/// [`projections::replay_read_ahead`], fed by [`read_batch`].
fn replay_into<P: Projector>(
    model: &mut P,
    log: &EventLog,
    from: u64,
    name: &str,
) -> anyhow::Result<u64> {
    let head = log.head().position;
    let bar = progress_bar(name, head);
    if from > 1 && model.position() + 1 < from {
        bail!(
            "the {name} model has applied position {}; it cannot continue from {from}",
            model.position()
        );
    }
    let read = |next: u64| read_batch(log, next).map_err(|error| format!("{error:#}"));
    let position = projections::replay_read_ahead(model, from, head, read, |position| {
        bar.set_position(position)
    })?;
    bar.finish();
    Ok(position)
}

/// Up to [`REPLAY_BATCH_EVENTS`] events from `from`, decoded.
fn read_batch(log: &EventLog, from: u64) -> anyhow::Result<Vec<EventEnvelope>> {
    let records = log.read_from(from, REPLAY_BATCH_EVENTS, usize::MAX)?;
    let mut batch = Vec::with_capacity(records.len());
    for record in records {
        let stored = protocol::decode_stored(&record.payload)
            .with_context(|| format!("event at position {} is unreadable", record.position))?;
        let recorded = RecordedEvent::from_stored(
            record.position,
            record.stream,
            record.version,
            record.hash.0,
            stored,
        );
        batch.push(EventEnvelope::from(recorded));
    }
    Ok(batch)
}
