//! `audit export` / `audit import`: the log as JSON lines, one RecordedEvent (protocol.md §2) per
//! line plus its stored record bytes (`raw`, base64), and back. Import checks every record
//! against the chain, so an import into an empty data directory reproduces the head hash.

use std::io::{BufRead, Write};

use base64::Engine;
use domain::Timestamp;
use eventlog::{EventLog, Head};
use protocol::{Format, RecordedEvent};
use serde::Deserialize;

use crate::{decode, AuditError, SCAN_PAGE_EVENTS_MAX};

/// What import reads of a line: only the stored bytes matter; the rest is for people and tools.
#[derive(Deserialize)]
pub struct ExportLine {
    /// The record's position (checked against the bytes).
    pub position: u64,
    /// The stored record bytes, base64.
    pub raw: String,
}

/// Writes the log from position `from` as JSON lines to `out`, stopping before the first event
/// recorded after `until_time` (when given). Returns the number of lines.
pub fn export(
    log: &EventLog,
    from: u64,
    until_time: Option<Timestamp>,
    out: &mut impl Write,
) -> Result<u64, AuditError> {
    let head = log.head().position;
    let mut next = from.max(1);
    let mut lines = 0;
    while next <= head {
        let raws = log.read_raw_from(next, SCAN_PAGE_EVENTS_MAX, usize::MAX)?;
        let records = log.read_from(next, raws.len(), usize::MAX)?;
        if records.is_empty() || records.len() != raws.len() {
            break;
        }
        for (record, raw) in records.iter().zip(raws) {
            let stored = decode(record)?;
            if until_time.is_some_and(|until| stored.recorded_at > until) {
                return Ok(lines);
            }
            let recorded = RecordedEvent::from_stored(
                record.position,
                record.stream.clone(),
                record.version,
                record.hash.0,
                stored,
            );
            let json = recorded
                .encode(Format::Json)
                .map_err(|e| AuditError::Event {
                    position: record.position,
                    reason: e.to_string(),
                })?;
            let mut value: serde_json::Map<String, serde_json::Value> =
                serde_json::from_slice(&json).map_err(|e| AuditError::Event {
                    position: record.position,
                    reason: e.to_string(),
                })?;
            value.insert(
                "raw".into(),
                base64::engine::general_purpose::STANDARD
                    .encode(&raw)
                    .into(),
            );
            serde_json::to_writer(&mut *out, &value).map_err(std::io::Error::other)?;
            out.write_all(b"\n")?;
            lines += 1;
            next = record.position + 1;
        }
    }
    out.flush()?;
    Ok(lines)
}

/// Reads JSON lines produced by [`export`] and appends their stored bytes to `log`, which must
/// continue exactly where the export began (an empty log for an export from position 1).
pub fn import(log: &EventLog, input: impl BufRead) -> Result<Head, AuditError> {
    let mut chunk = Vec::with_capacity(SCAN_PAGE_EVENTS_MAX);
    let mut head = log.head();
    for (index, line) in input.lines().enumerate() {
        let number = index as u64 + 1;
        let line = line?;
        if line.trim().is_empty() {
            continue;
        }
        let parsed: ExportLine = serde_json::from_str(&line).map_err(|e| AuditError::Line {
            line: number,
            reason: e.to_string(),
        })?;
        let raw = base64::engine::general_purpose::STANDARD
            .decode(parsed.raw.as_bytes())
            .map_err(|e| AuditError::Line {
                line: number,
                reason: format!("raw: {e}"),
            })?;
        let expected = head.position + chunk.len() as u64 + 1;
        if parsed.position != expected {
            return Err(AuditError::Line {
                line: number,
                reason: format!("position {} where {expected} comes next", parsed.position),
            });
        }
        chunk.push(raw);
        if chunk.len() == SCAN_PAGE_EVENTS_MAX {
            head = log.import_raw(std::mem::take(&mut chunk))?;
        }
    }
    if !chunk.is_empty() {
        head = log.import_raw(chunk)?;
    }
    Ok(head)
}
