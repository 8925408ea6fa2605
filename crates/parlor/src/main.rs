//! `parlor`: runs Parlor's services (`up`, `writer`) and, later, its operator tools. Wiring
//! only: every piece of logic lives in a library crate.

mod audit;
mod options;

use std::process::ExitCode;

use anyhow::Context;
use bus::Bus;
use clap::Parser;
use clock::Clock;
use options::{Cli, Command, CommonOptions};
use tracing::{error, info};
use writer::{Writer, WriterConfig};

fn main() -> ExitCode {
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
            error!("{failure:#}");
            eprintln!("parlor: {failure:#}");
            ExitCode::FAILURE
        }
    }
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Audit(command) => tokio::task::spawn_blocking(move || audit::run(command)).await?,
        Command::Up(common) => {
            let bus = connect(&common, "parlor-up").await?;
            serve_writer(&common, bus).await
        }
        Command::Writer(common) => {
            if common.nats_url.is_none() {
                anyhow::bail!("parlor writer runs over NATS: give --nats-url (or PARLOR_NATS_URL)");
            }
            let bus = connect(&common, "parlor-writer").await?;
            serve_writer(&common, bus).await
        }
    }
}

/// The bus: NATS when a URL is given, else in process.
async fn connect(common: &CommonOptions, name: &str) -> anyhow::Result<Bus> {
    match &common.nats_url {
        Some(url) => Bus::connect(url, name)
            .await
            .with_context(|| format!("connecting to NATS at {url}")),
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

async fn serve_writer(common: &CommonOptions, bus: Bus) -> anyhow::Result<()> {
    std::fs::create_dir_all(&common.data_dir)
        .with_context(|| format!("creating the data directory {}", common.data_dir.display()))?;
    let mut config = WriterConfig::new(&common.data_dir);
    config.subject_prefix = common.subject_prefix.clone();
    config.daily_conversation_limit = common.daily_conversation_limit;
    config.event_format = common.event_format.into();
    let mut writer = Writer::start(config, bus, clock_for(common)).await?;
    info!(data_dir = %common.data_dir.display(), "parlor is up");
    tokio::select! {
        signal = shutdown_signal() => {
            info!(signal, "shutting down: finishing the batch in flight");
            writer.shutdown().await?;
            info!("stopped cleanly");
            Ok(())
        }
        failed = writer.failed() => {
            failed?;
            anyhow::bail!("the writer stopped unexpectedly")
        }
    }
}

/// Waits for SIGINT or SIGTERM and names it.
async fn shutdown_signal() -> &'static str {
    use tokio::signal::unix::{signal, SignalKind};
    let mut terminate = match signal(SignalKind::terminate()) {
        Ok(stream) => stream,
        Err(_) => {
            let _ = tokio::signal::ctrl_c().await;
            return "SIGINT";
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => "SIGINT",
        _ = terminate.recv() => "SIGTERM",
    }
}
