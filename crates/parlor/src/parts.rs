//! Wiring of the services: which parts run in this process, started in order (writer, then the
//! read models, then the HTTP gateway) and stopped in reverse order. No logic of the parts
//! lives here.

use std::path::Path;
use std::sync::Arc;

use anyhow::{bail, Context};
use bus::{Bus, EventHub};
use clock::Clock;
use projections::{
    store_path, Files, LiveRebuild, Moderation, Notifications, OpenFor, OpenModel, Presence,
    ProjectionError, Projector, Rooms, RunOptions, Runner, Timeline,
};
use protocol::ReadModel;
use search::{SearchOptions, SearchProjector};
use tokio::sync::watch;
use tokio::task::JoinSet;
use tracing::info;

/// The read models `names` stand for (every one for `None`), or why one names none.
pub fn read_models(names: Option<&[String]>) -> anyhow::Result<Vec<ReadModel>> {
    let Some(names) = names else {
        return Ok(ReadModel::ALL.to_vec());
    };
    names
        .iter()
        .map(|name| match ReadModel::from_name(name) {
            Some(model) => Ok(model),
            None => bail!(
                "no read model named {name:?} (known: {})",
                ReadModel::names()
            ),
        })
        .collect()
}

/// Read models running in this process.
pub struct RunningProjectors {
    stop: watch::Sender<bool>,
    tasks: JoinSet<anyhow::Result<()>>,
    /// Each model's applied position, by name, for `/healthz`.
    pub positions: Vec<(&'static str, watch::Receiver<u64>)>,
}

/// What every read model of this process is started with.
struct Starter<'a> {
    data_dir: &'a Path,
    bus: &'a Bus,
    clock: &'a Clock,
    prefix: &'a str,
    hub: &'a EventHub,
    stop: watch::Receiver<bool>,
    running: RunningProjectors,
}

impl Starter<'_> {
    /// Starts a runner for `model`, with live rebuilds (`<prefix>.admin.replay.<name>`) that
    /// open fresh instances through `open`, filling `presence` from heartbeats when given.
    fn start<P: Projector>(&mut self, model: P, open: OpenModel<P>, presence: Option<Presence>) {
        let name = model.name();
        let rebuild = LiveRebuild {
            directory: store_path(self.data_dir, name),
            open,
        };
        let options = RunOptions::new(self.prefix);
        let mut runner = Runner::new(model, self.bus.clone(), self.clock.clone(), options)
            .with_hub(self.hub.clone())
            .with_live_rebuild(rebuild);
        if let Some(presence) = presence {
            runner = runner.with_presence(presence);
        }
        self.running.positions.push((name, runner.position()));
        let stop = self.stop.clone();
        self.running
            .tasks
            .spawn(async move { runner.run(stop).await.context("read model stopped") });
    }
}

/// Opens the search index for `purpose`: bulk settings while rebuilding, live ones to serve.
fn open_search(path: &Path, purpose: OpenFor) -> Result<SearchProjector, ProjectionError> {
    let options = match purpose {
        OpenFor::Serving => SearchOptions::live(),
        OpenFor::Rebuilding => SearchOptions::rebuild(),
    };
    SearchProjector::open_path(path, options)
}

/// The live events of this process, received and decoded once for every part that follows the
/// log (each read model and the gateway's event streams).
pub async fn start_hub(bus: &Bus, prefix: &str) -> anyhow::Result<EventHub> {
    EventHub::start(bus, &format!("{prefix}.evt.>"))
        .await
        .context("subscribing to the events")
}

/// Opens (recovering an interrupted swap first) and starts the named read models (all of them
/// for `None`), taking their live events from `hub`.
pub fn start_projectors(
    names: Option<&[String]>,
    data_dir: &Path,
    bus: &Bus,
    clock: &Clock,
    prefix: &str,
    hub: &EventHub,
) -> anyhow::Result<RunningProjectors> {
    let (stop, stopped) = watch::channel(false);
    let mut starter = Starter {
        data_dir,
        bus,
        clock,
        prefix,
        hub,
        stop: stopped,
        running: RunningProjectors {
            stop,
            tasks: JoinSet::new(),
            positions: Vec::new(),
        },
    };
    for model in read_models(names)? {
        let dir = data_dir;
        match model {
            ReadModel::Rooms => {
                // One heartbeat table per replica: filled by the runner, read by every instance
                // of the model, a live rebuild's included, so a swap keeps who is online.
                let presence = Presence::new();
                let table = presence.clone();
                let open: OpenModel<Rooms> = Arc::new(move |path, purpose| {
                    Rooms::open_path_for(path, purpose)
                        .map(|rooms| rooms.with_presence(table.clone()))
                });
                let rooms = Rooms::open(dir)?.with_presence(presence.clone());
                starter.start(rooms, open, Some(presence));
            }
            ReadModel::Timeline => starter.start(
                Timeline::open(dir)?,
                Arc::new(Timeline::open_path_for),
                None,
            ),
            ReadModel::Search => {
                starter.start(SearchProjector::open(dir)?, Arc::new(open_search), None)
            }
            ReadModel::Files => {
                starter.start(Files::open(dir)?, Arc::new(Files::open_path_for), None)
            }
            ReadModel::Moderation => starter.start(
                Moderation::open(dir)?,
                Arc::new(Moderation::open_path_for),
                None,
            ),
            ReadModel::Notifications => starter.start(
                Notifications::open(dir)?,
                Arc::new(Notifications::open_path_for),
                None,
            ),
        }
        let name = model.name();
        info!(name, "read model started");
    }
    Ok(starter.running)
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

/// The NATS object store of file bytes shared by the gateways (`--blob-store nats`), over the
/// process's own NATS connection.
pub async fn open_nats_blob_store(
    bus: &Bus,
    common: &crate::options::CommonOptions,
) -> anyhow::Result<Arc<dyn blobs::BlobStore>> {
    let Some(client) = bus.nats_client() else {
        bail!("--blob-store nats keeps file bytes in NATS: give --nats-url (or PARLOR_NATS_URL)");
    };
    let replicas = usize::try_from(common.blobs.blob_replicas).unwrap_or(1);
    let config = blobs::NatsBlobStoreConfig::for_subject_prefix(&common.subject_prefix, replicas);
    // A JetStream cluster that has just formed (or lost a server) answers "timed out" until it
    // has elected its leaders: the gateway keeps trying for a while rather than exit (seen in
    // CI's chaos test); what still fails after that is reported with its cause.
    let started = std::time::Instant::now();
    let store = loop {
        match blobs::NatsBlobStore::open(client.clone(), &config).await {
            Ok(store) => break store,
            Err(error) if started.elapsed() < BLOB_STORE_OPEN_WAIT_MAX => {
                tracing::warn!(%error, bucket = %config.bucket, "cannot open the NATS object store yet; trying again");
                tokio::time::sleep(BLOB_STORE_OPEN_RETRY_PAUSE).await;
            }
            Err(error) => {
                return Err(anyhow::Error::new(error)
                    .context(format!("opening the NATS object store {}", config.bucket)))
            }
        }
    };
    Ok(Arc::new(store))
}

/// How long a gateway keeps trying to open the NATS object store when it starts.
const BLOB_STORE_OPEN_WAIT_MAX: std::time::Duration = std::time::Duration::from_secs(20);

/// The pause between two tries to open the NATS object store.
const BLOB_STORE_OPEN_RETRY_PAUSE: std::time::Duration = std::time::Duration::from_millis(500);
