//! `parlor`: runs Parlor's services (`up`, `writer`) and, later, its operator tools. Wiring
//! only: every piece of logic lives in a library crate.

mod audit;
mod audit_live;
mod log_output;
mod migrate;
mod options;
mod parts;
mod private_files;
mod replay;
mod schema_files;
mod startup;
mod status;

use std::process::ExitCode;

use anyhow::Context;
use bus::Bus;
use clap::Parser;
use clock::Clock;
use options::{Cli, Command, CommonOptions};
use tracing::{error, info};
use writer::{Writer, WriterConfig};

/// mimalloc instead of glibc's malloc: a rebuild or a busy `parlor up` makes and frees millions
/// of small vectors (keys, values, decoded events), and glibc's free lists (`malloc_consolidate`,
/// `unlink_chunk`) were a fifth of a timeline rebuild's samples (docs/speed-work.md).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    // Before any thread or file exists: everything this process creates is owner-only.
    private_files::restrict_new_files();
    let cli = Cli::parse();
    options::init_logging(&cli.log_format);
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(io_error) => {
            eprintln!("parlor: cannot start the async runtime: {io_error}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(cli)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(failure) => {
            let line = startup::describe(&failure);
            error!("{line}");
            eprintln!("parlor: {line}");
            ExitCode::FAILURE
        }
    }
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Audit(options::AuditCommand::Verify {
            data_dir,
            nats_url,
            subject_prefix,
            expect_head,
            nats,
        }) => match options::VerifySource::resolve(data_dir, nats_url) {
            Ok(options::VerifySource::Nats(nats_url)) => {
                let nats = nats.bus_options(&nats_url, "auditor");
                audit_live::verify(&nats, &subject_prefix, expect_head.as_deref()).await
            }
            Ok(options::VerifySource::DataDir(data_dir)) => {
                tokio::task::spawn_blocking(move || {
                    audit::verify(&data_dir, expect_head.as_deref())
                })
                .await?
            }
            Err(usage) => usage.exit(),
        },
        Command::Audit(command) => tokio::task::spawn_blocking(move || audit::run(command)).await?,
        Command::Status {
            nats_url,
            subject_prefix,
        } => status::run(&nats_url, &subject_prefix).await,
        Command::Schema { name, write } => schema_files::run(name.as_deref(), write.as_deref()),
        Command::Asyncapi { json, write } => schema_files::asyncapi(json, write.as_deref()),
        Command::Migrate { data_dir } => {
            tokio::task::spawn_blocking(move || migrate::run(&data_dir)).await?
        }
        Command::Up(common) => {
            let bus = connect(&common, "up").await?;
            serve(&common, bus, true, None, true).await
        }
        Command::Gateway(common) => {
            if common.nats_url.is_none() {
                anyhow::bail!(
                    "parlor gateway runs over NATS: give --nats-url (or PARLOR_NATS_URL)"
                );
            }
            let bus = connect(&common, "gateway").await?;
            serve(&common, bus, false, Some(Vec::new()), true).await
        }
        Command::Token {
            subject,
            moderator,
            service,
            ttl_hours,
            data_dir,
            jwt_secret,
            jwt,
        } => {
            let secret = match (jwt_secret, &jwt.jwt_secret_file) {
                (Some(secret), _) => secret,
                (None, Some(file)) => gateway::auth::read_secret_file(file)
                    .with_context(|| format!("--jwt-secret-file {}", file.display()))?,
                (None, None) => {
                    gateway::auth::load_or_create_secret(&data_dir).with_context(|| {
                        format!("--data-dir {}: reading its JWT secret", data_dir.display())
                    })?
                }
            };
            let role = match (moderator, service) {
                (true, true) => anyhow::bail!("a token is for a moderator or a service, not both"),
                (true, false) => Some(gateway::auth::Role::Moderator),
                (false, true) => Some(gateway::auth::Role::Service),
                (false, false) => None,
            };
            let ttl = std::time::Duration::from_secs(ttl_hours.saturating_mul(3600));
            let token = gateway::auth::mint_token_for(
                secret.as_bytes(),
                &subject,
                role,
                ttl,
                &jwt.policy(),
            )
            .context("--ttl-hours must not exceed --jwt-max-ttl (default 24h)")?;
            println!("{token}");
            Ok(())
        }
        Command::Projector { name, common } => {
            if common.nats_url.is_none() {
                anyhow::bail!(
                    "parlor projector runs over NATS: give --nats-url (or PARLOR_NATS_URL)"
                );
            }
            let bus = connect(&common, &format!("projector_{name}")).await?;
            serve(&common, bus, false, Some(vec![name]), false).await
        }
        Command::Replay {
            name,
            from,
            nats_url: Some(url),
            subject_prefix,
            nats,
            ..
        } => {
            let nats = nats.bus_options(&url, "operator");
            replay::run_live(&name, from, &nats, &subject_prefix).await
        }
        Command::Replay {
            name,
            from,
            data_dir,
            nats_url: None,
            ..
        } => tokio::task::spawn_blocking(move || replay::run(&name, from, &data_dir)).await?,
        Command::Writer { common, ha } => {
            if common.nats_url.is_none() {
                anyhow::bail!("parlor writer runs over NATS: give --nats-url (or PARLOR_NATS_URL)");
            }
            let bus = connect(&common, "writer").await?;
            if ha.ha {
                return serve_ha(&common, &ha, bus).await;
            }
            serve(&common, bus, true, Some(Vec::new()), false).await
        }
    }
}

/// The bus: NATS when a URL is given (waiting for a server to answer, then reconnecting
/// forever), else in process. `part` names the connection and its default inbox prefix.
async fn connect(common: &CommonOptions, part: &str) -> anyhow::Result<Bus> {
    match &common.nats_url {
        Some(url) => Bus::connect_retrying(&common.nats.bus_options(url, part))
            .await
            .with_context(|| format!("--nats-url {url}: cannot connect to NATS")),
        None => Ok(Bus::in_process()),
    }
}

fn clock_for(common: &CommonOptions) -> Clock {
    if common.dev_clock {
        Clock::development()
    } else {
        Clock::system()
    }
}

/// Runs the writer (when `with_writer`) and the named read models (all for `None`) until a
/// signal, then stops them in reverse order: the writer finishes its batch first.
async fn serve(
    common: &CommonOptions,
    bus: Bus,
    with_writer: bool,
    projector_names: Option<Vec<String>>,
    with_gateway: bool,
) -> anyhow::Result<()> {
    let mut signals = ShutdownSignals::install()?;
    private_files::create_data_dir(&common.data_dir)
        .with_context(|| format!("--data-dir {}", common.data_dir.display()))?;
    let clock = clock_for(common);
    let (stop_dev_clock, dev_clock_stopped) = tokio::sync::watch::channel(false);
    // The writer loads its state (snapshot + tail, or the whole log) while the read models open
    // their stores and answer queries from them: on a large log the load takes seconds, and
    // until it is done the models' followers retry `log.read` quietly (projections' runtime).
    // Aborted if this function returns early, so no writer serves in a process that gave up.
    let mut writer_starting = None;
    if with_writer {
        let config = writer_config(common)?;
        let starting = tokio::spawn(Writer::start(config, bus.clone(), clock.clone()));
        writer_starting = Some(AbortOnDrop(starting));
    } else if clock.is_adjustable() {
        // Without a writer here, this process follows parlor.dev.clock itself.
        let subscription = bus
            .subscribe(&format!("{}.dev.clock", common.subject_prefix))
            .await?;
        tokio::spawn(clock::serve_dev_clock(
            subscription,
            bus.clone(),
            clock.clone(),
            dev_clock_stopped,
        ));
    }
    let with_projectors = !matches!(projector_names.as_deref(), Some([]));
    // One subscription to the events for the whole process, decoded once.
    let hub = if with_projectors || with_gateway {
        Some(parts::start_hub(&bus, &common.subject_prefix).await?)
    } else {
        None
    };
    let mut projectors = match (projector_names.as_deref(), &hub) {
        (Some([]), _) | (_, None) => None,
        (names, Some(hub)) => Some(
            parts::start_projectors(
                names,
                &common.data_dir,
                &bus,
                &clock,
                &common.subject_prefix,
                hub,
            )
            .with_context(|| {
                format!(
                    "--data-dir {}: cannot open the read models",
                    common.data_dir.display()
                )
            })?,
        ),
    };
    let mut writer = None;
    if let Some(mut starting) = writer_starting {
        let started = (&mut starting.0)
            .await
            .map_err(|error| anyhow::anyhow!("the writer's start-up task failed: {error}"))?;
        writer = Some(started.with_context(|| {
            format!(
                "--data-dir {}: cannot start the writer on its event log",
                common.data_dir.display()
            )
        })?);
    }
    let (stop_gateway, gateway_stopped) = tokio::sync::watch::channel(false);
    let mut gateway_task = None;
    if with_gateway {
        let jwt = &common.jwt;
        let public_keys = match &jwt.jwt_jwks {
            Some(path) => gateway::jwks::read_jwks(path)
                .with_context(|| format!("--jwt-jwks {}", path.display()))?,
            None => Vec::new(),
        };
        // A secret from the flag, the environment or a file; with public keys and none of
        // these, no secret at all (HS256 refused); otherwise the development secret.
        let secret = match (&common.jwt_secret, &jwt.jwt_secret_file) {
            (Some(secret), _) => secret.clone(),
            (None, Some(file)) => gateway::auth::read_secret_file(file)
                .with_context(|| format!("--jwt-secret-file {}", file.display()))?,
            (None, None) if !public_keys.is_empty() => String::new(),
            (None, None) => {
                gateway::auth::load_or_create_secret(&common.data_dir).with_context(|| {
                    format!(
                        "--data-dir {}: cannot keep the development JWT secret there (or give \
                         --jwt-secret-file)",
                        common.data_dir.display()
                    )
                })?
            }
        };
        let mut config =
            gateway::GatewayConfig::new(common.http_addr, secret, common.data_dir.clone());
        config.jwt_previous_secret = match &jwt.jwt_previous_secret_file {
            Some(file) => Some(
                gateway::auth::read_secret_file(file)
                    .with_context(|| format!("--jwt-previous-secret-file {}", file.display()))?,
            ),
            None => None,
        };
        config.jwt_public_keys = public_keys;
        config.jwt_policy = jwt.policy();
        config.subject_prefix = common.subject_prefix.clone();
        config.events = hub.clone();
        config.sse_clients_max = common.sse_streams_max;
        config.sse_streams_per_user_max = common.sse_streams_per_user_max;
        common.limits.apply(&mut config);
        if with_writer {
            // H-L3: the log is on this machine; keep its disk's reserve too.
            config.event_log_dir = Some(WriterConfig::new(&common.data_dir).log_dir());
        }
        config.ops_addr = common.ops_addr.0;
        let bound = match common.blobs.blob_store {
            options::BlobStoreKind::Local => {
                gateway::Gateway::bind(config, bus.clone(), clock.clone())
                    .await
                    .map_err(|error| startup::gateway_error(error, common))?
            }
            options::BlobStoreKind::Nats => {
                let store = parts::open_nats_blob_store(&bus, common).await?;
                gateway::Gateway::bind_with_blob_store(config, bus.clone(), clock.clone(), store)
                    .await
                    .map_err(|error| startup::gateway_error(error, common))?
            }
        };
        info!(http = %bound.local_addr(), ops = ?bound.ops_addr(), "HTTP gateway listening");
        let mut stopped = gateway_stopped;
        gateway_task = Some(tokio::spawn(bound.run(async move {
            let _ = stopped.wait_for(|stop| *stop).await.map(|_| ());
        })));
    }
    info!(data_dir = %common.data_dir.display(), "parlor is up");
    let outcome = tokio::select! {
        signal = signals.received() => {
            info!(signal, "shutting down: finishing the batch in flight");
            Ok(())
        }
        failed = async {
            match writer.as_mut() {
                Some(writer) => writer.failed().await.map_err(anyhow::Error::from),
                None => std::future::pending().await,
            }
        } => failed.and_then(|()| Err(anyhow::anyhow!("the writer stopped unexpectedly"))),
        failed = async {
            match projectors.as_mut() {
                Some(projectors) => projectors.failed().await,
                None => std::future::pending().await,
            }
        } => failed.and_then(|()| Err(anyhow::anyhow!("a read model stopped unexpectedly"))),
    };
    // Stop in reverse order of dependence: no new requests, then no new commands, then the models.
    let _ = stop_gateway.send(true);
    if let Some(task) = gateway_task {
        task.await??;
    }
    if let Some(writer) = writer {
        writer.shutdown().await?;
    }
    if let Some(projectors) = projectors {
        projectors.stop().await?;
    }
    let _ = stop_dev_clock.send(true);
    if outcome.is_ok() {
        info!("stopped cleanly");
    }
    outcome
}

/// The writer's settings from the options.
fn writer_config(common: &CommonOptions) -> anyhow::Result<WriterConfig> {
    let mut config = WriterConfig::new(&common.data_dir);
    config.subject_prefix = common.subject_prefix.clone();
    config.daily_conversation_limit = common.daily_conversation_limit;
    config.event_format = common.event_format.into();
    config.queue_commands_max = common.command_queue_max;
    if let Some(path) = &common.services {
        config.services = writer::read_services(path)
            .with_context(|| format!("--services {}", path.display()))?;
    }
    Ok(config)
}

/// `parlor writer --ha`: follows the write-ahead log, leads while holding the lease, until a
/// signal (which gives the lease up after the batch in flight).
async fn serve_ha(common: &CommonOptions, ha: &options::HaOptions, bus: Bus) -> anyhow::Result<()> {
    let mut signals = ShutdownSignals::install()?;
    private_files::create_data_dir(&common.data_dir)?;
    let config = writer_config(common)?;
    let name = match &ha.ha_name {
        Some(name) => name.clone(),
        None => format!("{}-{}", host_name(), std::process::id()),
    };
    let mut ha_config = writer::HaConfig::new(
        name,
        &common.subject_prefix,
        std::time::Duration::from_millis(ha.ha_lease_ttl_ms),
    );
    let replicas = usize::try_from(ha.ha_replicas).unwrap_or(3);
    ha_config.lease.replicas = replicas;
    ha_config.wal.replicas = replicas;
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let running = tokio::spawn(writer::run_ha(
        config,
        ha_config,
        bus,
        clock_for(common),
        stopped,
    ));
    tokio::pin!(running);
    info!(data_dir = %common.data_dir.display(), "parlor HA writer is up");
    tokio::select! {
        signal = signals.received() => {
            info!(signal, "shutting down: finishing the batch in flight");
            let _ = stop.send(true);
            running.await??;
            info!("stopped cleanly");
            Ok(())
        }
        ended = &mut running => {
            ended??;
            Err(anyhow::anyhow!("the HA writer stopped unexpectedly"))
        }
    }
}

/// This machine's name, for the default HA writer name.
fn host_name() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|name| name.trim().to_owned())
        .ok()
        .filter(|name| !name.is_empty())
        .unwrap_or_else(|| "writer".to_owned())
}

/// SIGINT and SIGTERM, listened for from the moment a service starts its parts: a signal that
/// arrives while they are still starting (a read model catching up, the gateway binding) stops
/// the process as cleanly as a later one, instead of by the default action, which kills it
/// without finishing the batch in flight. (The e2e read-side test once saw `parlor up` die
/// of SIGTERM itself, most likely so: the read models answer over NATS before the gateway is
/// bound and the process reaches its wait.)
struct ShutdownSignals {
    interrupt: tokio::signal::unix::Signal,
    terminate: tokio::signal::unix::Signal,
}

impl ShutdownSignals {
    /// Replaces the default action of both signals for the rest of the process.
    fn install() -> anyhow::Result<ShutdownSignals> {
        use tokio::signal::unix::{signal, SignalKind};
        Ok(ShutdownSignals {
            interrupt: signal(SignalKind::interrupt()).context("listening for SIGINT")?,
            terminate: signal(SignalKind::terminate()).context("listening for SIGTERM")?,
        })
    }

    /// Waits for either signal (one already received counts) and names it.
    async fn received(&mut self) -> &'static str {
        tokio::select! {
            _ = self.interrupt.recv() => "SIGINT",
            _ = self.terminate.recv() => "SIGTERM",
        }
    }
}

/// A task aborted when its handle is dropped (tokio's `JoinHandle` detaches instead).
struct AbortOnDrop<T>(tokio::task::JoinHandle<T>);

impl<T> Drop for AbortOnDrop<T> {
    fn drop(&mut self) {
        self.0.abort();
    }
}
