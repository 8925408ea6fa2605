//! Where the process's logs go: stderr, through a writer that never fails.
//!
//! A log line that cannot be written (stderr on a full disk, a closed pipe) must not take the
//! process down. tracing-subscriber reports a failed write with `eprintln!`, which panics when
//! stderr itself fails; on a thread of sled's that panic left the log's flush waiting forever
//! (a full disk then hung the writer instead of answering `unavailable`). So the writer handed
//! to the subscriber swallows its errors: a lost log line is the lesser harm, and the next
//! line is tried again once space returns.

use std::io::{self, Write};

use tracing_subscriber::fmt::MakeWriter;

/// Makes a [`Lossy`] stderr for every log event.
#[derive(Debug, Clone, Copy, Default)]
pub struct LossyStderr;

impl<'a> MakeWriter<'a> for LossyStderr {
    type Writer = Lossy<io::StderrLock<'static>>;

    fn make_writer(&'a self) -> Self::Writer {
        Lossy(io::stderr().lock())
    }
}

/// A writer whose every write reports the whole buffer written: bytes the inner writer could
/// not take are dropped, in one attempt, never retried.
#[derive(Debug)]
pub struct Lossy<W>(pub W);

impl<W: Write> Write for Lossy<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let _ = self.0.write_all(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        let _ = self.0.flush();
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Fails every write and flush, as stderr on a full disk does.
    struct FullDisk;

    impl Write for FullDisk {
        fn write(&mut self, _: &[u8]) -> io::Result<usize> {
            Err(io::Error::from_raw_os_error(28)) // ENOSPC
        }

        fn flush(&mut self) -> io::Result<()> {
            Err(io::Error::from_raw_os_error(28))
        }
    }

    #[test]
    fn a_failing_stream_reports_the_whole_line_written() {
        let mut writer = Lossy(FullDisk);
        assert_eq!(writer.write(b"parlor: log line\n").ok(), Some(17));
        assert!(writer.flush().is_ok());
        assert!(writeln!(writer, "another line").is_ok());
    }

    #[test]
    fn a_working_stream_gets_every_byte() {
        let mut writer = Lossy(Vec::new());
        assert!(writer.write_all(b"one line\n").is_ok());
        assert_eq!(writer.0, b"one line\n");
    }
}
