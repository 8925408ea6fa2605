//! `parlor audit …`: wiring from the command line to the `audit` and `eventlog` crates.

use std::io::{BufReader, Write};
use std::path::Path;

use anyhow::{bail, Context};
use domain::{RoomId, Timestamp};
use eventlog::{Corruption, EventLog, Hash, Head, VerifyReport};

use crate::options::AuditCommand;

/// Runs one audit subcommand, printing to stdout.
pub fn run(command: AuditCommand) -> anyhow::Result<()> {
    match command {
        AuditCommand::Verify { .. } => {
            // main.rs resolves where verify reads (a directory or NATS) and calls `verify` or
            // `audit_live::verify` itself; nothing routes a verify here.
            bail!("audit verify is dispatched by main")
        }
        AuditCommand::Room {
            room_id,
            at,
            json,
            data_dir,
        } => {
            let room_id = RoomId::parse(&room_id).map_err(|e| anyhow::anyhow!("room_id {e}"))?;
            let at = at.as_deref().map(parse_time).transpose()?;
            let log = open(&data_dir)?;
            let history = audit::room_history(&log, room_id, at)?;
            let mut out = std::io::stdout().lock();
            if json {
                serde_json::to_writer_pretty(&mut out, &history)?;
                writeln!(out)?;
            } else {
                write!(out, "{}", history.to_text())?;
            }
            Ok(())
        }
        AuditCommand::User {
            user_id,
            from,
            until,
            data_dir,
        } => {
            let from = from.as_deref().map(parse_time).transpose()?;
            let until = until.as_deref().map(parse_time).transpose()?;
            let log = open(&data_dir)?;
            let mut out = std::io::stdout().lock();
            for action in audit::user_activity(&log, &user_id, from, until)? {
                serde_json::to_writer(&mut out, &action)?;
                writeln!(out)?;
            }
            Ok(())
        }
        AuditCommand::Export {
            from,
            until_time,
            data_dir,
        } => {
            let until = until_time.as_deref().map(parse_time).transpose()?;
            let log = open(&data_dir)?;
            let mut out = std::io::BufWriter::new(std::io::stdout().lock());
            audit::export(&log, from, until, &mut out)?;
            Ok(())
        }
        AuditCommand::Import { file, data_dir } => {
            let log_dir = data_dir.join("log");
            std::fs::create_dir_all(&data_dir)
                .with_context(|| format!("creating {}", data_dir.display()))?;
            let log = EventLog::open(&log_dir)
                .with_context(|| format!("opening {}", log_dir.display()))?;
            let head = match file {
                Some(path) => {
                    let file = std::fs::File::open(&path)
                        .with_context(|| format!("opening {}", path.display()))?;
                    audit::import(&log, BufReader::new(file))?
                }
                None => audit::import(&log, std::io::stdin().lock())?,
            };
            println!("imported; head {} {}", head.position, head.hash);
            Ok(())
        }
    }
}

fn open(data_dir: &Path) -> anyhow::Result<EventLog> {
    let log_dir = data_dir.join("log");
    if !log_dir.exists() {
        bail!(
            "no event log in {} (expected {})",
            data_dir.display(),
            log_dir.display()
        );
    }
    EventLog::open(&log_dir)
        .with_context(|| format!("opening the event log in {}", log_dir.display()))
}

fn parse_time(text: &str) -> anyhow::Result<Timestamp> {
    Timestamp::parse_rfc3339(text).with_context(|| format!("{text:?} is not an RFC 3339 time"))
}

/// `audit verify`: recomputes the chain; prints the count, and ends with `head <position> <hash>`.
pub(crate) fn verify(data_dir: &Path, expect_head: Option<&str>) -> anyhow::Result<()> {
    let expected = ExpectedHead::parse(expect_head)?;
    let log = match open(data_dir) {
        Ok(log) => log,
        Err(error) => {
            // A log whose last record disagrees with its head record fails to open: that is a
            // verification failure at that position, not a usage error.
            if let Some(eventlog::LogError::Corrupt { position, reason }) =
                error.downcast_ref::<eventlog::LogError>()
            {
                bail!("verify failed at position {position}: {reason}");
            }
            return Err(error);
        }
    };
    let started = std::time::Instant::now();
    let verdict = log.verify(expected.anchor, |_| {})?;
    print_verdict(verdict, &expected, started)
}

/// What `--expect-head` asks of the verified log.
pub(crate) struct ExpectedHead {
    /// `<position>:<hash>`: the record at that position must have that hash.
    pub anchor: Option<Head>,
    /// `<hash>`: the verified head must have that hash.
    pub head_hash: Option<Hash>,
}

impl ExpectedHead {
    /// Parses `--expect-head`.
    pub(crate) fn parse(expect_head: Option<&str>) -> anyhow::Result<ExpectedHead> {
        let (anchor, head_hash) = match expect_head {
            None => (None, None),
            Some(text) if text.contains(':') => {
                let head: Head = text
                    .parse()
                    .map_err(|e| anyhow::anyhow!("--expect-head: {e}"))?;
                (Some(head), None)
            }
            Some(text) => {
                let hash =
                    Hash::from_hex(text).map_err(|e| anyhow::anyhow!("--expect-head: {e}"))?;
                (None, Some(hash))
            }
        };
        Ok(ExpectedHead { anchor, head_hash })
    }
}

/// Prints a verification's outcome the same way for a stopped and a running system: on
/// success the event and stream counts, the speed, and last `head <position> <hash>`; on
/// failure an error naming the first bad position (and so a non-zero exit).
pub(crate) fn print_verdict(
    verdict: Result<VerifyReport, Corruption>,
    expected: &ExpectedHead,
    started: std::time::Instant,
) -> anyhow::Result<()> {
    let report = match verdict {
        Ok(report) => report,
        Err(corruption) => bail!(
            "verify failed at position {}: {}",
            corruption.position,
            corruption.reason
        ),
    };
    if let Some(expected) = expected.head_hash {
        if report.head.hash != expected {
            bail!(
                "verify failed at position {}: head hash {} is not the expected {} (truncated or altered tail)",
                report.head.position,
                report.head.hash,
                expected
            );
        }
    }
    let seconds = started.elapsed().as_secs_f64();
    println!("events {}", report.events);
    println!("streams {}", report.streams);
    println!(
        "verified in {seconds:.3} s ({:.0} events/s)",
        report.events as f64 / seconds.max(1e-9)
    );
    println!("head {} {}", report.head.position, report.head.hash);
    Ok(())
}
