//! Test support: a real `nats-server` (one, or a three-node cluster) on loopback ports it owns,
//! free ports, temporary data dirs and bounded waits on child processes.
//!
//! This crate is only ever a dev-dependency. Its functions panic with a message that says what
//! to do instead of returning errors, because a test cannot do anything better with a missing
//! binary than stop and explain. Everything here waits for a bounded time and touches only
//! 127.0.0.1.

mod child;
mod cluster;
mod ports;
mod process;
mod rng;
mod server215;

use std::io;
use std::net::{Ipv4Addr, TcpListener};
use std::path::{Path, PathBuf};

pub use child::CommandWithin;
pub use cluster::{ClusterOptions, NatsCluster, NodeFiles, NodeLayout, NodeText, CLUSTER_NODES};
pub use ports::ReservedPort;
use process::ServerProcess;
pub use process::{reap_within, NATS_SERVER_ENV, START_WAIT_MAX, STOP_WAIT_MAX};
pub use rng::SeededRng;
pub use server215::{nats_server_215, NATS_SERVER_215_DEFAULT, NATS_SERVER_215_ENV};

/// How many ports `start` tries before giving up: another process may bind the port between
/// choosing it and the server binding it.
pub const START_ATTEMPTS_MAX: u32 = 3;

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
/// The port is a [`ReservedPort`]: it stays this server's own while it is stopped, so
/// [`NatsServer::start_again`] finds it free even while other tests run in parallel.
///
/// If the test process itself is killed (SIGKILL), `Drop` does not run and the server is left
/// behind; nothing portable without `unsafe` can tie the child's life to ours.
#[derive(Debug)]
pub struct NatsServer {
    process: ServerProcess,
    port: ReservedPort,
    // Declared last so it is deleted after the process is gone (fields drop in order).
    dir: TempDataDir,
}

impl NatsServer {
    /// Starts a server on a reserved port and waits until it greets clients with `INFO`.
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
        let mut last_error = None;
        for attempt in 1..=START_ATTEMPTS_MAX {
            let dir = TempDataDir::new();
            let mut server = NatsServer {
                process: ServerProcess::new(dir.path())?,
                port: ReservedPort::new()?,
                dir,
            };
            match server.spawn_and_wait() {
                Ok(()) => return Ok(server),
                Err(error) => {
                    // Most likely another process bound the port as we let go of it.
                    eprintln!("testkit: nats-server start attempt {attempt} failed: {error}");
                    last_error = Some(error);
                }
            }
        }
        Err(last_error.unwrap_or_else(|| io::Error::other("nats-server did not start")))
    }

    /// A server that is not running yet, with its port reserved: its [`NatsServer::url`] is
    /// known (and nobody else gets the port) before [`NatsServer::start_again`] starts it, so
    /// a test can start clients first.
    ///
    /// # Panics
    /// When `nats-server` is not installed or no port can be reserved.
    pub fn reserve() -> NatsServer {
        let dir = TempDataDir::new();
        let reserved = ServerProcess::new(dir.path()).and_then(|process| {
            Ok(NatsServer {
                process,
                port: ReservedPort::new()?,
                dir,
            })
        });
        match reserved {
            Ok(server) => server,
            Err(error) => panic!("testkit: {error}"),
        }
    }

    /// The client URL, `nats://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.port.port())
    }

    /// The client port.
    pub fn port(&self) -> u16 {
        self.port.port()
    }

    /// The server's log file (its `-l` option), kept across restarts, for debugging.
    pub fn log_path(&self) -> PathBuf {
        self.process.log_path()
    }

    /// The last few kilobytes of the server's log, or a note saying why it cannot be read.
    pub fn log_tail(&self) -> String {
        self.process.log_tail()
    }

    /// The JetStream store directory (its `-sd` option), kept across restarts.
    pub fn store_dir(&self) -> PathBuf {
        self.dir.join("jetstream")
    }

    /// Whether the process is running (it has not exited and has not been stopped).
    pub fn is_running(&mut self) -> bool {
        self.process.is_running()
    }

    /// Kills the server (SIGKILL, like a crash) and reaps it. The port (held for this server
    /// meanwhile) and the store directory are kept for [`NatsServer::start_again`]. Does nothing
    /// when it is not running.
    ///
    /// # Panics
    /// When the process cannot be reaped within [`STOP_WAIT_MAX`], or the port cannot be held.
    pub fn stop(&mut self) {
        if let Err(error) = self.process.kill_and_reap() {
            panic!("testkit: cannot stop nats-server: {error}");
        }
        if let Err(error) = self.port.take_back() {
            panic!(
                "testkit: cannot hold port {} after stopping: {error}",
                self.port()
            );
        }
    }

    /// Starts the server again on the same port with the same store directory, after
    /// [`NatsServer::stop`] (or for the first time after [`NatsServer::reserve`]), and waits until it greets clients with `INFO`. Does nothing when it
    /// is already running.
    ///
    /// # Panics
    /// When it does not start within [`START_WAIT_MAX`] (the message quotes its log).
    pub fn start_again(&mut self) {
        if self.is_running() {
            return;
        }
        if let Err(error) = self.spawn_and_wait() {
            panic!("testkit: cannot start nats-server again: {error}");
        }
    }

    /// Spawns the process and waits until it greets clients.
    fn spawn_and_wait(&mut self) -> io::Result<()> {
        let args = [
            "-a".to_owned(),
            "127.0.0.1".to_owned(),
            "-p".to_owned(),
            self.port.port().to_string(),
            "-js".to_owned(),
            "-sd".to_owned(),
            self.store_dir().display().to_string(),
        ];
        self.process
            .spawn_and_wait(true, &args, &[], &mut self.port, None, &mut [])
    }
}
