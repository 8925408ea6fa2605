//! `parlor migrate`: converts a stopped data directory's event log from format 1 to format 2
//! in place (`eventlog::EventLog::migrate`), with a progress bar, keeping the original as
//! `log.format1` until the operator removes it.

use std::path::Path;

use anyhow::Context;
use eventlog::{EventLog, Migration};
use indicatif::{ProgressBar, ProgressStyle};

/// Migrates `data_dir/log`; prints what was done and where the original is kept.
pub(crate) fn run(data_dir: &Path) -> anyhow::Result<()> {
    let log_dir = data_dir.join("log");
    let bar = ProgressBar::new(0);
    bar.set_style(
        ProgressStyle::with_template(
            "migrating {bar:40} {pos}/{len} records ({per_sec}, {eta} left)",
        )
        .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    let outcome = EventLog::migrate(&log_dir, |done, total| {
        bar.set_length(total);
        bar.set_position(done);
    })
    .with_context(|| format!("migrating the event log in {}", log_dir.display()))?;
    bar.finish_and_clear();
    match outcome {
        Migration::AlreadyCurrent { head } => {
            println!("the log is in format 2 already; head {head}");
        }
        Migration::Migrated {
            head,
            records,
            replies,
            original,
        } => {
            println!(
                "migrated {records} records and {replies} replies to format 2; the copy verifies to head {head}"
            );
            println!(
                "the format-1 original is kept at {}; remove it once you no longer need it",
                original.display()
            );
        }
    }
    Ok(())
}
