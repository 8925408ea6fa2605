//! Test support: a real `nats-server` on a free loopback port, free ports and temporary data dirs.
//!
//! This crate is only ever a dev-dependency. Its functions panic with a message that says what
//! to do instead of returning errors, because a test cannot do anything better with a missing
//! binary than stop and explain. Everything here waits for a bounded time and touches only
//! 127.0.0.1.

use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

/// How long `start` and `start_again` wait for the server to greet clients.
pub const START_WAIT_MAX: Duration = Duration::from_secs(10);

/// How long `stop` waits for the killed server to be reaped.
pub const STOP_WAIT_MAX: Duration = Duration::from_secs(10);

/// How many free ports `start` tries before giving up: another process may take the port
/// between [`free_port`] choosing it and the server binding it.
pub const START_ATTEMPTS_MAX: u32 = 3;

/// How many bytes of the server's log a panic message quotes (the end of the log).
const LOG_TAIL_BYTES_MAX: u64 = 4096;

/// How long one readiness probe waits for the server's `INFO` greeting.
const PROBE_WAIT_MAX: Duration = Duration::from_millis(500);

/// Whether a NATS server at `address` accepts a connection and sends its `INFO` greeting.
///
/// A bare TCP connect is not enough: a connect to a loopback port in the ephemeral range can
/// succeed before the server listens (a self-connect), and a server still starting may accept
/// and then reset. Only a greeting means the next client will be served.
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

/// The pause between two readiness probes.
const PROBE_PAUSE: Duration = Duration::from_millis(20);

/// The environment variable that overrides where the `nats-server` binary is found.
pub const NATS_SERVER_ENV: &str = "NATS_SERVER_BIN";

/// Returns a TCP port on 127.0.0.1 that was free a moment ago.
///
/// It binds port 0 (the kernel picks an unused port), reads the port and closes the listener.
/// There is a small race: another process may bind the same port before the caller does.
/// Callers that start a server on it should retry with a new port when binding fails, as
/// [`NatsServer::start`] does.
///
/// # Panics
/// When no loopback port can be bound at all.
pub fn free_port() -> u16 {
    match try_free_port() {
        Ok(port) => port,
        Err(error) => panic!("testkit: cannot bind a free port on 127.0.0.1: {error}"),
    }
}

/// Like [`free_port`], returning the IO error instead of panicking.
pub fn try_free_port() -> io::Result<u16> {
    let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))?;
    Ok(listener.local_addr()?.port())
}

/// A temporary directory deleted (with everything in it) when dropped.
#[derive(Debug)]
pub struct TempDataDir {
    dir: tempfile::TempDir,
}

impl TempDataDir {
    /// Creates a new empty directory under the system temporary directory.
    ///
    /// # Panics
    /// When the directory cannot be created.
    pub fn new() -> TempDataDir {
        match tempfile::Builder::new().prefix("parlor-test-").tempdir() {
            Ok(dir) => TempDataDir { dir },
            Err(error) => panic!("testkit: cannot create a temporary directory: {error}"),
        }
    }

    /// The directory's path.
    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// A path inside the directory (not created).
    pub fn join(&self, name: impl AsRef<Path>) -> PathBuf {
        self.dir.path().join(name)
    }
}

impl Default for TempDataDir {
    fn default() -> Self {
        TempDataDir::new()
    }
}

impl AsRef<Path> for TempDataDir {
    fn as_ref(&self) -> &Path {
        self.path()
    }
}

/// A real `nats-server` process with JetStream, listening on 127.0.0.1 on its own port, with
/// its store and log in its own temporary directory. Dropping it kills and reaps the process
/// and deletes the directory.
///
/// If the test process itself is killed (SIGKILL), `Drop` does not run and the server is left
/// behind; nothing portable without `unsafe` can tie the child's life to ours.
#[derive(Debug)]
pub struct NatsServer {
    binary: PathBuf,
    port: u16,
    child: Option<Child>,
    // Declared last so it is deleted after the child is gone (fields drop in order, after
    // `Drop::drop` has killed the child anyway).
    dir: TempDataDir,
}

impl NatsServer {
    /// Starts a server on a free port and waits until it greets clients with `INFO`.
    ///
    /// # Panics
    /// When `nats-server` is not installed (the message says `apt-get install nats-server`),
    /// or when it does not start within [`START_WAIT_MAX`] after [`START_ATTEMPTS_MAX`]
    /// attempts (the message quotes the end of its log).
    pub fn start() -> NatsServer {
        match NatsServer::try_start() {
            Ok(server) => server,
            Err(error) => panic!("testkit: {error}"),
        }
    }

    /// Like [`NatsServer::start`], returning the error instead of panicking.
    pub fn try_start() -> io::Result<NatsServer> {
        let binary = find_nats_server()?;
        let mut last_error = None;
        for attempt in 1..=START_ATTEMPTS_MAX {
            let mut server = NatsServer {
                binary: binary.clone(),
                port: try_free_port()?,
                child: None,
                dir: TempDataDir::new(),
            };
            match server.spawn_and_wait() {
                Ok(()) => return Ok(server),
                Err(error) => {
                    // Most likely the port was taken between choosing and binding it.
                    eprintln!("testkit: nats-server start attempt {attempt} failed: {error}");
                    last_error = Some(error);
                }
            }
        }
        Err(last_error.unwrap_or_else(|| io::Error::other("nats-server did not start")))
    }

    /// The client URL, `nats://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.port)
    }

    /// The client port.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The server's log file (its `-l` option), kept across restarts, for debugging.
    pub fn log_path(&self) -> PathBuf {
        self.dir.join("nats-server.log")
    }

    /// The last few kilobytes of the server's log, or a note saying why it cannot be read.
    pub fn log_tail(&self) -> String {
        read_tail(&self.log_path()).unwrap_or_else(|error| format!("(no log: {error})"))
    }

    /// The JetStream store directory (its `-sd` option), kept across restarts.
    pub fn store_dir(&self) -> PathBuf {
        self.dir.join("jetstream")
    }

    /// Whether the process is running (it has not exited and has not been stopped).
    pub fn is_running(&mut self) -> bool {
        match self.child.as_mut() {
            Some(child) => matches!(child.try_wait(), Ok(None)),
            None => false,
        }
    }

    /// Kills the server (SIGKILL, like a crash) and reaps it. The port and the store directory
    /// are kept for [`NatsServer::start_again`]. Does nothing when it is not running.
    ///
    /// # Panics
    /// When the process cannot be reaped within [`STOP_WAIT_MAX`].
    pub fn stop(&mut self) {
        if let Err(error) = self.kill_and_reap() {
            panic!("testkit: cannot stop nats-server: {error}");
        }
    }

    /// Starts the server again on the same port with the same store directory, after
    /// [`NatsServer::stop`], and waits until it greets clients with `INFO`. Does nothing when it
    /// is already running.
    ///
    /// # Panics
    /// When it does not start within [`START_WAIT_MAX`] (for example because another process
    /// took the port meanwhile; the message quotes the end of its log).
    pub fn start_again(&mut self) {
        if self.is_running() {
            return;
        }
        if let Err(error) = self.spawn_and_wait() {
            panic!("testkit: cannot start nats-server again: {error}");
        }
    }

    /// Spawns the process and waits until its port accepts connections.
    fn spawn_and_wait(&mut self) -> io::Result<()> {
        self.kill_and_reap()?;
        // Errors before the log file is opened (bad flags) go to stderr, so keep that too.
        let stderr = File::options()
            .create(true)
            .append(true)
            .open(self.dir.join("nats-server.stderr"))?;
        let child = Command::new(&self.binary)
            .arg("-a")
            .arg("127.0.0.1")
            .arg("-p")
            .arg(self.port.to_string())
            .arg("-js")
            .arg("-sd")
            .arg(self.store_dir())
            .arg("-l")
            .arg(self.log_path())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::from(stderr))
            .spawn()
            .map_err(|error| {
                io::Error::new(
                    error.kind(),
                    format!("cannot run {}: {error}", self.binary.display()),
                )
            })?;
        self.child = Some(child);
        self.wait_until_ready()
    }

    /// Polls the port until it accepts a TCP connection, the process exits, or
    /// [`START_WAIT_MAX`] passes.
    fn wait_until_ready(&mut self) -> io::Result<()> {
        let address = SocketAddr::from((Ipv4Addr::LOCALHOST, self.port));
        let deadline = Instant::now() + START_WAIT_MAX;
        loop {
            if let Some(child) = self.child.as_mut() {
                if let Some(status) = child.try_wait()? {
                    self.child = None;
                    return Err(io::Error::other(format!(
                        "nats-server on port {} exited with {status}; log tail:\n{}\nstderr tail:\n{}",
                        self.port,
                        self.log_tail(),
                        read_tail(&self.dir.join("nats-server.stderr")).unwrap_or_default(),
                    )));
                }
            }
            if greets_with_info(&address) {
                return Ok(());
            }
            if Instant::now() >= deadline {
                let _ = self.kill_and_reap();
                return Err(io::Error::new(
                    io::ErrorKind::TimedOut,
                    format!(
                        "nats-server did not accept connections on port {} within {:?}; log tail:\n{}",
                        self.port,
                        START_WAIT_MAX,
                        self.log_tail()
                    ),
                ));
            }
            thread::sleep(PROBE_PAUSE);
        }
    }

    /// Kills the child if there is one and waits (bounded) until it has exited.
    fn kill_and_reap(&mut self) -> io::Result<()> {
        let Some(mut child) = self.child.take() else {
            return Ok(());
        };
        // Killing an already exited child fails harmlessly; reaping below still runs.
        let _ = child.kill();
        let deadline = Instant::now() + STOP_WAIT_MAX;
        loop {
            if child.try_wait()?.is_some() {
                return Ok(());
            }
            if Instant::now() >= deadline {
                let pid = child.id();
                self.child = Some(child);
                return Err(io::Error::new(
                    io::ErrorKind::TimedOut,
                    format!("nats-server (pid {pid}) did not exit within {STOP_WAIT_MAX:?}"),
                ));
            }
            thread::sleep(PROBE_PAUSE);
        }
    }
}

impl Drop for NatsServer {
    fn drop(&mut self) {
        // Never panic in drop (it may run while a failed test unwinds): report and go on.
        if let Err(error) = self.kill_and_reap() {
            eprintln!("testkit: {error}");
        }
    }
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
