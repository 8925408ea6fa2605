//! The system under test: a nats-server on a free loopback port (testkit) and the real
//! `parlor` binary as child processes (`writer`, `up`, `projector`, `gateway`) on temporary
//! data directories.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};

use crate::procfs;

/// The environment variable naming the `parlor` binary to benchmark.
pub const PARLOR_BIN_ENV: &str = "PARLOR_BIN";

/// Overrides the log filter of the `parlor` processes a workload starts (`warn` without it):
/// `PARLOR_BENCH_PARLOR_LOG=warn,search=debug` to see what a model logs while measured.
pub const PARLOR_LOG_ENV: &str = "PARLOR_BENCH_PARLOR_LOG";

/// The log filter of the `parlor` processes a workload starts ([`PARLOR_LOG_ENV`]).
pub fn parlor_log_filter() -> String {
    std::env::var(PARLOR_LOG_ENV).unwrap_or_else(|_| "warn".to_owned())
}
/// How long a started writer may take to answer `parlor.writer.ping` (a big log may be folded
/// first; B6 measures that separately with its own bound).
pub const WRITER_READY_WAIT: Duration = Duration::from_secs(120);
/// How long a writer may take to exit after SIGTERM (it writes a state snapshot).
pub const WRITER_STOP_WAIT: Duration = Duration::from_secs(600);
/// Pause between readiness probes.
const PROBE_PAUSE: Duration = Duration::from_millis(10);
/// How long one probe waits for its reply.
const PROBE_WAIT: Duration = Duration::from_millis(500);

/// How long a SIGKILLed child may take to be reaped.
const KILL_REAP_WAIT: Duration = Duration::from_secs(10);

/// Finds the `parlor` binary: `$PARLOR_BIN`, else `parlor` beside this executable (both are in
/// the same target directory after `cargo build --release -p parlor -p bench`).
pub fn find_parlor_binary() -> anyhow::Result<PathBuf> {
    if let Some(path) = std::env::var_os(PARLOR_BIN_ENV) {
        let path = PathBuf::from(path);
        if path.is_file() {
            return Ok(path);
        }
        bail!("{PARLOR_BIN_ENV}={} is not a file", path.display());
    }
    let exe = std::env::current_exe().context("locating parlor-bench itself")?;
    let beside = exe.with_file_name("parlor");
    if beside.is_file() {
        return Ok(beside);
    }
    bail!(
        "the parlor binary is not at {} — build both with `cargo build --release -p parlor -p bench` \
         (or `just bench …`), or set {PARLOR_BIN_ENV} to its path",
        beside.display()
    )
}

/// A running `parlor` service (`writer` unless spawned with [`Parlor::spawn_service`]).
/// Dropping it kills (SIGKILL) and reaps it.
#[derive(Debug)]
pub struct Parlor {
    child: Child,
    started: Instant,
    log_path: PathBuf,
    /// What it runs, for messages (`parlor writer`, `parlor projector search`).
    what: String,
}

impl Parlor {
    /// Spawns `parlor writer --nats-url <url> --data-dir <data_dir>`; its stderr is appended
    /// to `<data_dir>/parlor-bench-writer.log` (deleted with the data directory).
    pub fn spawn(binary: &Path, nats_url: &str, data_dir: &Path) -> anyhow::Result<Parlor> {
        Parlor::spawn_service(binary, &["writer"], nats_url, data_dir, &[])
    }

    /// Spawns `parlor <subcommand…> --nats-url <url> --data-dir <data_dir> <extra…>`; its
    /// stderr is appended to `<data_dir>/parlor-bench-<subcommand>.log`.
    pub fn spawn_service(
        binary: &Path,
        subcommand: &[&str],
        nats_url: &str,
        data_dir: &Path,
        extra: &[&str],
    ) -> anyhow::Result<Parlor> {
        std::fs::create_dir_all(data_dir)?;
        let what = format!("parlor {}", subcommand.join(" "));
        let log_path = data_dir.join(format!("parlor-bench-{}.log", subcommand.join("-")));
        let stderr = File::options()
            .create(true)
            .append(true)
            .open(&log_path)
            .with_context(|| format!("creating {}", log_path.display()))?;
        let started = Instant::now();
        let child = Command::new(binary)
            .args(subcommand)
            .arg("--nats-url")
            .arg(nats_url)
            .arg("--data-dir")
            .arg(data_dir)
            .args(extra)
            .env("PARLOR_LOG", parlor_log_filter())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::from(stderr))
            .spawn()
            .with_context(|| format!("running {}", binary.display()))?;
        Ok(Parlor {
            child,
            started,
            log_path,
            what,
        })
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// When it was spawned.
    pub fn started(&self) -> Instant {
        self.started
    }

    /// Fails with the end of its log if the process has exited.
    pub fn check_alive(&mut self) -> anyhow::Result<()> {
        if let Some(status) = self.child.try_wait()? {
            bail!(
                "{} exited with {status}; its log ends:\n{}",
                self.what,
                self.log_tail()
            );
        }
        Ok(())
    }

    /// The last lines of its stderr log.
    pub fn log_tail(&self) -> String {
        let text = std::fs::read_to_string(&self.log_path).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(20)..].join("\n")
    }

    /// Waits until it answers `parlor.writer.ping`, at most `wait`.
    pub async fn wait_ready(
        &mut self,
        client: &async_nats::Client,
        wait: Duration,
    ) -> anyhow::Result<Duration> {
        let deadline = Instant::now() + wait;
        loop {
            self.check_alive()?;
            let ping = client.request("parlor.writer.ping", "{}".into());
            if let Ok(Ok(_)) = tokio::time::timeout(PROBE_WAIT, ping).await {
                return Ok(self.started.elapsed());
            }
            if Instant::now() >= deadline {
                bail!(
                    "{} did not answer within {wait:?}; its log ends:\n{}",
                    self.what,
                    self.log_tail()
                );
            }
            tokio::time::sleep(PROBE_PAUSE).await;
        }
    }

    /// CPU time used so far.
    pub fn cpu_time(&self) -> Duration {
        procfs::cpu_time(self.pid()).unwrap_or_default()
    }

    /// VmRSS and VmHWM now.
    pub fn memory(&self) -> procfs::Memory {
        procfs::memory(self.pid()).unwrap_or_default()
    }

    /// SIGKILL (a crash: no shutdown work at all) and reap; returns when the signal was sent,
    /// before reaping, so that the caller's clock starts at the death, not at the reaping.
    pub fn kill(&mut self) -> anyhow::Result<Instant> {
        self.child
            .kill()
            .with_context(|| format!("SIGKILL to {}", self.what))?;
        let killed_at = Instant::now();
        testkit::reap_within(&mut self.child, KILL_REAP_WAIT)
            .with_context(|| format!("reaping {}", self.what))?;
        Ok(killed_at)
    }

    /// SIGTERM (a clean shutdown: finish the batch, write the snapshot), then waits for the
    /// exit, at most [`WRITER_STOP_WAIT`]; SIGKILL after that.
    pub async fn terminate(mut self) -> anyhow::Result<ExitStatus> {
        let pid = self.pid().to_string();
        // `kill` the command: sending a signal from Rust needs libc and `unsafe`.
        let sent = Command::new("kill")
            .args(["-TERM", &pid])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .context("running kill -TERM")?;
        if !sent.success() {
            bail!("kill -TERM {pid} failed");
        }
        let deadline = Instant::now() + WRITER_STOP_WAIT;
        loop {
            if let Some(status) = self.child.try_wait()? {
                return Ok(status);
            }
            if Instant::now() >= deadline {
                let _ = self.child.kill();
                let _ = testkit::reap_within(&mut self.child, KILL_REAP_WAIT);
                bail!(
                    "{} did not exit within {WRITER_STOP_WAIT:?} of SIGTERM",
                    self.what
                );
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

impl Drop for Parlor {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = testkit::reap_within(&mut self.child, KILL_REAP_WAIT);
        }
    }
}

/// A nats-server on a free loopback port, and the pid found for it (for its CPU time).
pub struct Nats {
    /// The server (killed when dropped).
    pub server: testkit::NatsServer,
    /// Its process id, when /proc shows it.
    pub pid: Option<u32>,
}

impl Nats {
    /// Starts a server with JetStream (file store in its own temporary directory).
    pub fn start() -> anyhow::Result<Nats> {
        let server = testkit::NatsServer::try_start().context("starting nats-server")?;
        let port = server.port().to_string();
        let pid = procfs::find_by_arguments(&["nats-server", "-p", &port])
            .into_iter()
            .next();
        Ok(Nats { server, pid })
    }

    /// The client URL.
    pub fn url(&self) -> String {
        self.server.url()
    }

    /// Its CPU time so far (zero when unknown).
    pub fn cpu_time(&self) -> Duration {
        self.pid.and_then(procfs::cpu_time).unwrap_or_default()
    }

    /// A client connection.
    pub async fn connect(&self, name: &str) -> anyhow::Result<async_nats::Client> {
        async_nats::ConnectOptions::new()
            .name(name)
            .request_timeout(Some(Duration::from_secs(30)))
            .connect(self.url())
            .await
            .with_context(|| format!("connecting to {}", self.url()))
    }
}

/// `binary --version`, as `v2.15.1`.
pub fn nats_server_version(binary: &Path) -> anyhow::Result<String> {
    let output = Command::new(binary)
        .arg("--version")
        .output()
        .with_context(|| format!("running {} --version", binary.display()))?;
    Ok(String::from_utf8_lossy(&output.stdout)
        .trim()
        .trim_start_matches("nats-server: ")
        .to_owned())
}

/// A nats-server of our own with JetStream fsyncing every write before acknowledging it
/// (`sync_interval: always`, nats-server ≥ 2.10), on a free loopback port, in a temporary
/// directory. Dropping it kills and reaps it.
pub struct SyncingNats {
    child: Child,
    port: u16,
    /// `nats-server --version`.
    pub version: String,
    // Last: deleted after the child is gone.
    _dir: tempfile::TempDir,
}

impl SyncingNats {
    /// How long it may take to accept connections.
    const START_WAIT: Duration = Duration::from_secs(10);

    /// Starts `binary` with a configuration file and waits until its port accepts connections.
    pub fn start(binary: &Path) -> anyhow::Result<SyncingNats> {
        let version = nats_server_version(binary)?;
        let dir = tempfile::Builder::new()
            .prefix("parlor-bench-jetstream-")
            .tempdir()?;
        let port = testkit::try_free_port()?;
        let config = dir.path().join("nats.conf");
        std::fs::write(
            &config,
            format!(
                "listen: \"127.0.0.1:{port}\"\njetstream {{\n  store_dir: \"{}\"\n  sync_interval: always\n}}\n",
                dir.path().join("jetstream").display()
            ),
        )?;
        let log = File::create(dir.path().join("nats-server.log"))?;
        let child = Command::new(binary)
            .arg("-c")
            .arg(&config)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::from(log))
            .spawn()
            .with_context(|| format!("running {}", binary.display()))?;
        let mut server = SyncingNats {
            child,
            port,
            version,
            _dir: dir,
        };
        let deadline = Instant::now() + Self::START_WAIT;
        let address = std::net::SocketAddr::from(([127, 0, 0, 1], port));
        loop {
            if let Some(status) = server.child.try_wait()? {
                bail!("{} exited with {status} at start-up", binary.display());
            }
            if std::net::TcpStream::connect_timeout(&address, Duration::from_millis(200)).is_ok() {
                return Ok(server);
            }
            if Instant::now() >= deadline {
                bail!(
                    "{} did not listen within {:?}",
                    binary.display(),
                    Self::START_WAIT
                );
            }
            std::thread::sleep(PROBE_PAUSE);
        }
    }

    /// The client URL.
    pub fn url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.port)
    }

    /// Its process id.
    pub fn pid(&self) -> Option<u32> {
        Some(self.child.id())
    }
}

impl Drop for SyncingNats {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = testkit::reap_within(&mut self.child, KILL_REAP_WAIT);
    }
}
