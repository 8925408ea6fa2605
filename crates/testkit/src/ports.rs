//! Loopback ports a test server owns for its whole life, also while it is stopped.
//!
//! A server restarted "on its old port" needs that port to stay its own while it is down.
//! A port from [`crate::free_port`] (the kernel's choice for port 0) is in the ephemeral range,
//! where the kernel hands it to the next `bind(0)` or outgoing connection of any process as soon
//! as it is free. A [`ReservedPort`] avoids that three ways:
//!
//! 1. It is chosen below the ephemeral range (`/proc/sys/net/ipv4/ip_local_port_range`), so
//!    the kernel never gives it to anybody who did not ask for exactly that number.
//! 2. A process-wide registry makes sure no two reservations of this process share a port.
//! 3. While its server is down the reservation holds a listener bound on the port, so another
//!    process (say another test binary that picks the same number) finds it taken. The holder
//!    closes every connection it accepts at once, so a client trying a stopped server fails
//!    fast and moves on, as it would with a refused connection, instead of waiting for a
//!    greeting that never comes.
//!
//! What remains is the moment between dropping that listener and the restarted server binding
//! the port: only a process that picks this exact number within those milliseconds can take it.

use std::collections::HashSet;
use std::io;
use std::net::{Ipv4Addr, TcpListener};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::thread::{self, JoinHandle};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// How often a holder looks for connections to close and for its stop flag.
const HOLDER_POLL: Duration = Duration::from_millis(10);

/// The lowest port handed out: above the well-known and most registered service ports.
const RESERVED_PORT_LOWEST: u16 = 10_000;

/// The ephemeral range's usual start on Linux, when `/proc` cannot be read.
const EPHEMERAL_LOWEST_DEFAULT: u16 = 32_768;

/// How many candidate ports [`ReservedPort::new`] tries before giving up.
const RESERVE_ATTEMPTS_MAX: u32 = 200;

/// The ports this process has reserved and not yet released.
fn registry() -> &'static Mutex<HashSet<u16>> {
    static PORTS: OnceLock<Mutex<HashSet<u16>>> = OnceLock::new();
    PORTS.get_or_init(|| Mutex::new(HashSet::new()))
}

/// The first port of the kernel's ephemeral range.
fn ephemeral_lowest() -> u16 {
    std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|text| text.split_whitespace().next()?.parse().ok())
        .unwrap_or(EPHEMERAL_LOWEST_DEFAULT)
}

/// A cheap pseudo-random number (no dependency needed): a xorshift over the clock and pid.
fn next_random(state: &mut u64) -> u64 {
    *state ^= *state << 13;
    *state ^= *state >> 7;
    *state ^= *state << 17;
    *state
}

/// A listener on a reserved port, run by a thread that closes each connection it accepts.
#[derive(Debug)]
struct Holder {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Holder {
    fn start(listener: TcpListener) -> io::Result<Holder> {
        listener.set_nonblocking(true)?;
        let stop = Arc::new(AtomicBool::new(false));
        let stop_seen = Arc::clone(&stop);
        let thread = thread::Builder::new()
            .name("testkit-port-holder".into())
            .spawn(move || {
                while !stop_seen.load(Ordering::Relaxed) {
                    match listener.accept() {
                        // Dropping the stream closes it: the client fails at once.
                        Ok((stream, _)) => drop(stream),
                        Err(_) => thread::sleep(HOLDER_POLL),
                    }
                }
            })?;
        Ok(Holder {
            stop,
            thread: Some(thread),
        })
    }
}

impl Drop for Holder {
    fn drop(&mut self) {
        // The thread exits within one poll and drops the listener, freeing the port.
        self.stop.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// A loopback port owned until dropped; see the module documentation.
#[derive(Debug)]
pub struct ReservedPort {
    port: u16,
    /// Holds the port while the owner's server is down; `None` while the server has it.
    holder: Option<Holder>,
}

impl ReservedPort {
    /// Reserves a port below the ephemeral range that nobody listens on, holding it.
    pub fn new() -> io::Result<ReservedPort> {
        let lowest = RESERVED_PORT_LOWEST;
        let highest = ephemeral_lowest().saturating_sub(1).max(lowest + 1);
        let span = u64::from(highest - lowest) + 1;
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|since| since.as_nanos() as u64)
            .unwrap_or(0);
        let mut state = nanos ^ (u64::from(std::process::id()) << 32) | 1;
        let mut registry = registry()
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        for _ in 0..RESERVE_ATTEMPTS_MAX {
            let offset = u16::try_from(next_random(&mut state) % span).unwrap_or(0);
            let port = lowest.saturating_add(offset);
            if registry.contains(&port) {
                continue;
            }
            if let Ok(listener) = TcpListener::bind((Ipv4Addr::LOCALHOST, port)) {
                registry.insert(port);
                return Ok(ReservedPort {
                    port,
                    holder: Some(Holder::start(listener)?),
                });
            }
        }
        Err(io::Error::new(
            io::ErrorKind::AddrInUse,
            format!("no free loopback port between {lowest} and {highest} after {RESERVE_ATTEMPTS_MAX} tries"),
        ))
    }

    /// The port number.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Lets go of the port so that the owner's server can bind it; call right before spawning.
    pub fn hand_to_server(&mut self) {
        self.holder = None;
    }

    /// Takes the port back after the owner's server has exited. Fails when another process
    /// bound it in between (then the owner cannot restart on it either).
    pub fn take_back(&mut self) -> io::Result<()> {
        if self.holder.is_none() {
            let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, self.port))?;
            self.holder = Some(Holder::start(listener)?);
        }
        Ok(())
    }
}

impl Drop for ReservedPort {
    fn drop(&mut self) {
        // Free the port before it leaves the registry, so this process cannot hand it out
        // while it is still bound.
        self.holder = None;
        let mut registry = registry()
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        registry.remove(&self.port);
    }
}
