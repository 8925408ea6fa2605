//! `parlor replay <model|all>`: rebuilds read models from the log of a stopped data directory
//! into a fresh store beside the old one, with a progress bar, then swaps the directories, so
//! the old model stays whole until the new one is complete.

use std::path::Path;
use std::time::Instant;

use anyhow::{bail, Context};
use eventlog::EventLog;
use indicatif::{ProgressBar, ProgressStyle};
use projections::{
    store_path, EventEnvelope, Files, Moderation, Notifications, Projector, Rooms, Timeline,
};
use protocol::RecordedEvent;

use crate::parts::PROJECTOR_NAMES;

/// Events per rebuild batch (one store write each).
const REPLAY_BATCH_EVENTS: usize = 10_000;

/// Rebuilds `name` (or every model for `all`) from position `from`.
pub fn run(name: &str, from: u64, data_dir: &Path) -> anyhow::Result<()> {
    let log_dir = data_dir.join("log");
    if !log_dir.exists() {
        bail!("no event log in {}", data_dir.display());
    }
    let log = EventLog::open(&log_dir).context("opening the event log (is the writer stopped?)")?;
    let names: Vec<&str> = if name == "all" {
        PROJECTOR_NAMES.to_vec()
    } else {
        vec![name]
    };
    for name in names {
        let rebuilt = store_path(data_dir, &format!("{name}.rebuild"));
        if rebuilt.exists() {
            std::fs::remove_dir_all(&rebuilt)?;
        }
        if from > 1 {
            // Continue a copy of the current model, which must have applied `from - 1`.
            copy_dir(&store_path(data_dir, name), &rebuilt)
                .with_context(|| format!("copying the {name} model to continue it from {from}"))?;
        }
        let started = Instant::now();
        let position = match name {
            "rooms" => replay_into(&mut Rooms::open_path(&rebuilt)?, &log, from, name)?,
            "timeline" => replay_into(&mut Timeline::open_path(&rebuilt)?, &log, from, name)?,
            "search" => {
                // Bulk settings (a large writer heap, rare commits), then one merged segment.
                let options = search::SearchOptions::rebuild();
                let mut model = search::SearchProjector::open_path(&rebuilt, options)?;
                let position = replay_into(&mut model, &log, from, name)?;
                model.merge_segments()?;
                position
            }
            "files" => replay_into(&mut Files::open_path(&rebuilt)?, &log, from, name)?,
            "moderation" => replay_into(&mut Moderation::open_path(&rebuilt)?, &log, from, name)?,
            "notifications" => {
                replay_into(&mut Notifications::open_path(&rebuilt)?, &log, from, name)?
            }
            other => bail!(
                "no read model named {other:?} (known: {}, all)",
                PROJECTOR_NAMES.join(", ")
            ),
        };
        let current = store_path(data_dir, name);
        let retired = store_path(data_dir, &format!("{name}.old"));
        if retired.exists() {
            std::fs::remove_dir_all(&retired)?;
        }
        if current.exists() {
            std::fs::rename(&current, &retired)?;
        }
        std::fs::rename(&rebuilt, &current)?;
        if retired.exists() {
            std::fs::remove_dir_all(&retired)?;
        }
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

fn replay_into<P: Projector>(
    model: &mut P,
    log: &EventLog,
    from: u64,
    name: &str,
) -> anyhow::Result<u64> {
    let head = log.head().position;
    let bar = ProgressBar::new(head);
    bar.set_style(
        ProgressStyle::with_template(
            "{prefix:>13} [{bar:40}] {pos}/{len} events {per_sec} ETA {eta}",
        )
        .unwrap_or_else(|_| ProgressStyle::default_bar())
        .progress_chars("=> "),
    );
    bar.set_prefix(name.to_owned());
    if from > 1 && model.position() + 1 < from {
        bail!(
            "the {name} model has applied position {}; it cannot continue from {from}",
            model.position()
        );
    }
    let mut next = from.max(1);
    while next <= head {
        let records = log.read_from(next, REPLAY_BATCH_EVENTS, usize::MAX)?;
        if records.is_empty() {
            break;
        }
        let mut batch = Vec::with_capacity(records.len());
        for record in records {
            next = record.position + 1;
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
        model.apply(&batch)?;
        bar.set_position(model.position());
    }
    model.flush()?;
    bar.finish();
    Ok(model.position())
}
