//! `Command::output` and `Command::status` with a bound: a test that runs a child (the
//! `parlor` binary, a system tool) fails when the child hangs instead of hanging CI with it.

use std::io::{self, Read};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

use crate::process::reap_within;

/// How long a killed child may take to be reaped before it is reported and left.
const KILL_REAP_WAIT: Duration = Duration::from_secs(10);

/// Bounded runs of a [`Command`].
pub trait CommandWithin {
    /// Like [`Command::output`] (stdin is `/dev/null`, stdout and stderr captured), but a child
    /// still running after `wait_max` is killed and a [`io::ErrorKind::TimedOut`] error returned.
    fn output_within(&mut self, wait_max: Duration) -> io::Result<Output>;

    /// Like [`Command::status`] (stdio inherited), but a child still running after `wait_max`
    /// is killed and a [`io::ErrorKind::TimedOut`] error returned.
    fn status_within(&mut self, wait_max: Duration) -> io::Result<ExitStatus>;
}

impl CommandWithin for Command {
    fn output_within(&mut self, wait_max: Duration) -> io::Result<Output> {
        let deadline = Instant::now() + wait_max;
        let mut child = self
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()?;
        // Both pipes drained on their own threads, so a child writing much to one of them never
        // blocks on a full pipe while this waits on the other.
        let stdout = drain(child.stdout.take());
        let stderr = drain(child.stderr.take());
        let status = wait_until(&mut child, deadline, self)?;
        // A grandchild still holding a pipe open must not hang the test either.
        let left = deadline
            .saturating_duration_since(Instant::now())
            .max(Duration::from_secs(1));
        let timed_out = || {
            io::Error::new(
                io::ErrorKind::TimedOut,
                format!("{self:?}: its output did not end within {wait_max:?}"),
            )
        };
        let stdout = stdout.recv_timeout(left).map_err(|_| timed_out())??;
        let stderr = stderr.recv_timeout(left).map_err(|_| timed_out())??;
        Ok(Output {
            status,
            stdout,
            stderr,
        })
    }

    fn status_within(&mut self, wait_max: Duration) -> io::Result<ExitStatus> {
        let deadline = Instant::now() + wait_max;
        let mut child = self.spawn()?;
        wait_until(&mut child, deadline, self)
    }
}

/// Reads `pipe` to its end on a thread; the bytes arrive on the receiver.
fn drain(pipe: Option<impl Read + Send + 'static>) -> mpsc::Receiver<io::Result<Vec<u8>>> {
    let (sender, receiver) = mpsc::channel();
    thread::spawn(move || {
        let mut bytes = Vec::new();
        let read = match pipe {
            Some(mut pipe) => pipe.read_to_end(&mut bytes).map(|_| bytes),
            None => Ok(bytes),
        };
        // The receiver is gone only when the caller gave up already.
        let _ = sender.send(read);
    });
    receiver
}

/// The child's exit status, or (killed and reaped) a timeout error once `deadline` passes.
fn wait_until(child: &mut Child, deadline: Instant, command: &Command) -> io::Result<ExitStatus> {
    let left = deadline.saturating_duration_since(Instant::now());
    if let Some(status) = reap_within(child, left)? {
        return Ok(status);
    }
    let _ = child.kill();
    if reap_within(child, KILL_REAP_WAIT)?.is_none() {
        eprintln!("testkit: pid {} not reaped after SIGKILL", child.id());
    }
    Err(io::Error::new(
        io::ErrorKind::TimedOut,
        format!("{command:?} did not exit in time and was killed"),
    ))
}
