//! Wiring of the services: which parts run in this process, started in order (writer, then the
//! read models, then the HTTP gateway) and stopped in reverse order. No logic of the parts
//! lives here.

use std::path::Path;

use anyhow::{bail, Context};
use bus::Bus;
use clock::Clock;
use projections::{
    Files, Moderation, Notifications, Projector, Rooms, RunOptions, Runner, Timeline,
};
use tokio::sync::watch;
use tokio::task::JoinSet;
use tracing::info;

/// The read models a process can run, by name.
pub const PROJECTOR_NAMES: [&str; 6] = [
    "rooms",
    "timeline",
    "files",
    "search",
    "moderation",
    "notifications",
];

/// Read models running in this process.
pub struct RunningProjectors {
    stop: watch::Sender<bool>,
    tasks: JoinSet<anyhow::Result<()>>,
    /// Each model's applied position, by name, for `/healthz`.
    pub positions: Vec<(&'static str, watch::Receiver<u64>)>,
}

fn spawn<P: Projector>(
    model: P,
    bus: &Bus,
    clock: &Clock,
    prefix: &str,
    stop: &watch::Receiver<bool>,
    running: &mut RunningProjectors,
) {
    let runner = Runner::new(model, bus.clone(), clock.clone(), RunOptions::new(prefix));
    running
        .positions
        .push((runner_name::<P>(&runner), runner.position()));
    let stop = stop.clone();
    running
        .tasks
        .spawn(async move { runner.run(stop).await.context("read model stopped") });
}

fn runner_name<P: Projector>(runner: &Runner<P>) -> &'static str {
    runner
        .model()
        .read(|model| model.name())
        .unwrap_or("unknown")
}

/// Opens and starts the named read models (all of them for `None`).
pub fn start_projectors(
    names: Option<&[String]>,
    data_dir: &Path,
    bus: &Bus,
    clock: &Clock,
    prefix: &str,
) -> anyhow::Result<RunningProjectors> {
    let (stop, stopped) = watch::channel(false);
    let mut running = RunningProjectors {
        stop,
        tasks: JoinSet::new(),
        positions: Vec::new(),
    };
    let wanted: Vec<String> = match names {
        Some(names) => names.to_vec(),
        None => PROJECTOR_NAMES.iter().map(|n| (*n).to_owned()).collect(),
    };
    for name in &wanted {
        match name.as_str() {
            "rooms" => spawn(
                Rooms::open(data_dir)?,
                bus,
                clock,
                prefix,
                &stopped,
                &mut running,
            ),
            "timeline" => spawn(
                Timeline::open(data_dir)?,
                bus,
                clock,
                prefix,
                &stopped,
                &mut running,
            ),
            "search" => spawn(
                search::SearchProjector::open(data_dir)?,
                bus,
                clock,
                prefix,
                &stopped,
                &mut running,
            ),
            "files" => spawn(
                Files::open(data_dir)?,
                bus,
                clock,
                prefix,
                &stopped,
                &mut running,
            ),
            "moderation" => spawn(
                Moderation::open(data_dir)?,
                bus,
                clock,
                prefix,
                &stopped,
                &mut running,
            ),
            "notifications" => spawn(
                Notifications::open(data_dir)?,
                bus,
                clock,
                prefix,
                &stopped,
                &mut running,
            ),
            other => bail!(
                "no read model named {other:?} (known: {})",
                PROJECTOR_NAMES.join(", ")
            ),
        }
        info!(name, "read model started");
    }
    Ok(running)
}

impl RunningProjectors {
    /// Waits until one of the read models stops by itself (a failure) and returns its result.
    pub async fn failed(&mut self) -> anyhow::Result<()> {
        match self.tasks.join_next().await {
            Some(joined) => joined.context("read model task")?,
            None => std::future::pending().await,
        }
    }

    /// Stops every read model and waits for them (their stores are flushed).
    pub async fn stop(mut self) -> anyhow::Result<()> {
        let _ = self.stop.send(true);
        while let Some(joined) = self.tasks.join_next().await {
            joined.context("read model task")??;
        }
        Ok(())
    }
}
