//! One `nats-server` child process: spawning it with its arguments, waiting (bounded) until it
//! serves clients, and killing and reaping it (bounded). [`crate::NatsServer`] and each node of
//! [`crate::NatsCluster`] run on this.

use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use crate::ports::ReservedPort;

/// How long a start waits for the server to greet clients (and, with a monitoring port, to
/// report itself healthy).
pub const START_WAIT_MAX: Duration = Duration::from_secs(10);

/// How long a stop waits for the killed server to be reaped.
pub const STOP_WAIT_MAX: Duration = Duration::from_secs(10);

/// How many bytes of the server's log a panic message quotes (the end of the log).
const LOG_TAIL_BYTES_MAX: u64 = 4096;

/// How long one readiness probe waits for an answer.
const PROBE_WAIT_MAX: Duration = Duration::from_millis(500);

/// The pause between two readiness probes.
const PROBE_PAUSE: Duration = Duration::from_millis(20);

/// The environment variable that overrides where the `nats-server` binary is found.
pub const NATS_SERVER_ENV: &str = "NATS_SERVER_BIN";

/// A `nats-server` that may be running or stopped, with its directory (log, stderr, store).
#[derive(Debug)]
pub(crate) struct ServerProcess {
    binary: PathBuf,
    dir: PathBuf,
    child: Option<Child>,
}

impl ServerProcess {
    /// A stopped server whose files live in `dir` (which must exist).
    pub(crate) fn new(dir: &Path) -> io::Result<ServerProcess> {
        ServerProcess::with_binary(dir, None)
    }

    /// Like [`ServerProcess::new`], running `binary` when given instead of the one found.
    pub(crate) fn with_binary(dir: &Path, binary: Option<&Path>) -> io::Result<ServerProcess> {
        let binary = match binary {
            Some(binary) => binary.to_path_buf(),
            None => find_nats_server()?,
        };
        Ok(ServerProcess {
            binary,
            dir: dir.to_path_buf(),
            child: None,
        })
    }

    /// The server's log file (its `-l` option), kept across restarts.
    pub(crate) fn log_path(&self) -> PathBuf {
        self.dir.join("nats-server.log")
    }

    /// Where the server's stderr goes (errors before its log is open, such as a bad config).
    fn stderr_path(&self) -> PathBuf {
        self.dir.join("nats-server.stderr")
    }

    /// The end of the log and of stderr, or notes saying why they cannot be read.
    pub(crate) fn log_tail(&self) -> String {
        let log = read_tail(&self.log_path()).unwrap_or_else(|error| format!("(no log: {error})"));
        let stderr = read_tail(&self.stderr_path()).unwrap_or_default();
        if stderr.is_empty() {
            log
        } else {
            format!("{log}\nstderr:\n{stderr}")
        }
    }

    /// Whether the process is running.
    pub(crate) fn is_running(&mut self) -> bool {
        match self.child.as_mut() {
            Some(child) => matches!(child.try_wait(), Ok(None)),
            None => false,
        }
    }

    /// Hands `client` (and `others`) to the server, spawns it with `args` plus `-l LOG` and
    /// `envs`, and waits until it greets on `client` and, when `monitor` is given, until its
    /// `/healthz` there says ok (which in a cluster means JetStream has found its meta leader).
    /// With `wait_ready` false it returns once the process runs (a cluster starts all its nodes
    /// before any can be healthy, then calls [`ServerProcess::wait_until_ready`] on each).
    /// On failure the ports are taken back.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn spawn_and_wait(
        &mut self,
        wait_ready: bool,
        args: &[String],
        envs: &[(String, String)],
        client: &mut ReservedPort,
        monitor: Option<&mut ReservedPort>,
        others: &mut [&mut ReservedPort],
    ) -> io::Result<()> {
        self.kill_and_reap()?;
        let stderr = File::options()
            .create(true)
            .append(true)
            .open(self.stderr_path())?;
        client.hand_to_server();
        let monitor_port = monitor.as_ref().map(|port| port.port());
        let mut monitor = monitor;
        if let Some(port) = monitor.as_mut() {
            port.hand_to_server();
        }
        for port in others.iter_mut() {
            port.hand_to_server();
        }
        let spawned = Command::new(&self.binary)
            .args(args)
            .arg("-l")
            .arg(self.log_path())
            .envs(envs.iter().map(|(name, value)| (name, value)))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::from(stderr))
            .spawn()
            .map_err(|error| {
                io::Error::new(
                    error.kind(),
                    format!("cannot run {}: {error}", self.binary.display()),
                )
            });
        let ready = spawned.and_then(|child| {
            self.child = Some(child);
            self.wait_until_ready(client.port(), monitor_port, wait_ready)
        });
        if ready.is_err() {
            let _ = self.kill_and_reap();
            let _ = client.take_back();
            if let Some(port) = monitor {
                let _ = port.take_back();
            }
            for port in others.iter_mut() {
                let _ = port.take_back();
            }
        }
        ready
    }

    /// Polls until the server greets on `client_port` (and is healthy on `monitor_port`), the
    /// process exits, or [`START_WAIT_MAX`] passes.
    pub(crate) fn wait_until_ready(
        &mut self,
        client_port: u16,
        monitor_port: Option<u16>,
        wait_ready: bool,
    ) -> io::Result<()> {
        let client = SocketAddr::from((Ipv4Addr::LOCALHOST, client_port));
        let deadline = Instant::now() + START_WAIT_MAX;
        loop {
            if let Some(child) = self.child.as_mut() {
                if let Some(status) = child.try_wait()? {
                    self.child = None;
                    return Err(io::Error::other(format!(
                        "nats-server on port {client_port} exited with {status}; log tail:\n{}",
                        self.log_tail(),
                    )));
                }
            }
            let healthy = monitor_port
                .is_none_or(|port| says_healthy(&SocketAddr::from((Ipv4Addr::LOCALHOST, port))));
            if !wait_ready || (greets_with_info(&client) && healthy) {
                return Ok(());
            }
            if Instant::now() >= deadline {
                return Err(io::Error::new(
                    io::ErrorKind::TimedOut,
                    format!(
                        "nats-server on port {client_port} was not ready within {START_WAIT_MAX:?}; log tail:\n{}",
                        self.log_tail()
                    ),
                ));
            }
            thread::sleep(PROBE_PAUSE);
        }
    }

    /// Kills the child (SIGKILL) if there is one and reaps it within [`STOP_WAIT_MAX`].
    pub(crate) fn kill_and_reap(&mut self) -> io::Result<()> {
        let Some(mut child) = self.child.take() else {
            return Ok(());
        };
        // Killing an already exited child fails harmlessly; reaping below still runs.
        let _ = child.kill();
        match reap_within(&mut child, STOP_WAIT_MAX)? {
            Some(_) => Ok(()),
            None => {
                let pid = child.id();
                self.child = Some(child);
                Err(io::Error::new(
                    io::ErrorKind::TimedOut,
                    format!("nats-server (pid {pid}) did not exit within {STOP_WAIT_MAX:?}"),
                ))
            }
        }
    }
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        // Never panic in drop (it may run while a failed test unwinds): report and go on.
        if let Err(error) = self.kill_and_reap() {
            eprintln!("testkit: {error}");
        }
    }
}

/// Waits at most `wait_max` for `child` to exit: its status, or `None` when it is still running.
/// Use this instead of `Child::wait`, which can block a test forever.
pub fn reap_within(child: &mut Child, wait_max: Duration) -> io::Result<Option<ExitStatus>> {
    let deadline = Instant::now() + wait_max;
    loop {
        if let Some(status) = child.try_wait()? {
            return Ok(Some(status));
        }
        if Instant::now() >= deadline {
            return Ok(None);
        }
        thread::sleep(PROBE_PAUSE);
    }
}

/// Whether a NATS server at `address` accepts a connection and sends its `INFO` greeting.
///
/// A bare TCP connect is not enough: a connect to a loopback port can succeed before the
/// server listens (a self-connect, or the listener a [`ReservedPort`] held a moment ago), and
/// a server still starting may accept and then reset. Only a greeting means the next client
/// will be served.
fn greets_with_info(address: &SocketAddr) -> bool {
    let Ok(mut stream) = TcpStream::connect_timeout(address, PROBE_WAIT_MAX) else {
        return false;
    };
    if stream.set_read_timeout(Some(PROBE_WAIT_MAX)).is_err() {
        return false;
    }
    let mut greeting = [0_u8; 5];
    let greeted = stream.read_exact(&mut greeting).is_ok() && &greeting == b"INFO ";
    // Say goodbye politely so the server log stays free of protocol errors.
    if greeted {
        let _ = stream.write_all(b"CONNECT {}\r\n");
    }
    greeted
}

/// Whether the monitoring endpoint at `address` answers `GET /healthz` with 200 (in a
/// JetStream cluster: the node is current with the meta leader).
fn says_healthy(address: &SocketAddr) -> bool {
    let Ok(mut stream) = TcpStream::connect_timeout(address, PROBE_WAIT_MAX) else {
        return false;
    };
    if stream.set_read_timeout(Some(PROBE_WAIT_MAX)).is_err()
        || stream
            .write_all(b"GET /healthz HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n")
            .is_err()
    {
        return false;
    }
    let mut answer = Vec::new();
    let _ = stream.take(4096).read_to_end(&mut answer);
    answer.starts_with(b"HTTP/1.0 200") || answer.starts_with(b"HTTP/1.1 200")
}

/// Finds the `nats-server` binary: `$NATS_SERVER_BIN`, then each directory of `$PATH`, then
/// `/usr/sbin/nats-server` (where Debian installs it, often not on a normal user's PATH).
fn find_nats_server() -> io::Result<PathBuf> {
    if let Some(path) = std::env::var_os(NATS_SERVER_ENV) {
        let path = PathBuf::from(path);
        if path.is_file() {
            return Ok(path);
        }
        return Err(io::Error::new(
            io::ErrorKind::NotFound,
            format!("{NATS_SERVER_ENV}={} is not a file", path.display()),
        ));
    }
    let on_path = std::env::var_os("PATH")
        .map(|paths| {
            std::env::split_paths(&paths)
                .map(|dir| dir.join("nats-server"))
                .collect::<Vec<_>>()
        })
        .unwrap_or_default();
    on_path
        .into_iter()
        .chain([PathBuf::from("/usr/sbin/nats-server")])
        .find(|path| path.is_file())
        .ok_or_else(|| {
            io::Error::new(
                io::ErrorKind::NotFound,
                "nats-server not found on PATH nor at /usr/sbin/nats-server; \
                 install it with `apt-get install nats-server` \
                 (or set NATS_SERVER_BIN to its path)",
            )
        })
}

/// Reads at most [`LOG_TAIL_BYTES_MAX`] bytes from the end of a file, lossily as UTF-8.
fn read_tail(path: &Path) -> io::Result<String> {
    let mut file = File::open(path)?;
    let length = file.metadata()?.len();
    file.seek(SeekFrom::Start(length.saturating_sub(LOG_TAIL_BYTES_MAX)))?;
    let mut bytes = Vec::new();
    file.take(LOG_TAIL_BYTES_MAX).read_to_end(&mut bytes)?;
    Ok(String::from_utf8_lossy(&bytes).into_owned())
}
