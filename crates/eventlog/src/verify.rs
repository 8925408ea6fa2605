//! `EventLog::verify`: recompute the whole hash chain and cross-check the stream index and the
//! meta head, reporting the first bad position.

use std::collections::HashMap;

use crate::error::{Corruption, LogError};
use crate::keys::{self, META_KEY};
use crate::log::{check_at, decode_meta, EventLog};
use crate::record::{Hash, Head};

/// What a successful `verify` covered.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct VerifyReport {
    /// Records checked (positions 1 ..= `head.position`).
    pub events: u64,
    /// The head the chain was recomputed up to; its hash is the recomputed one.
    pub head: Head,
    /// Distinct streams seen.
    pub streams: u64,
}

fn corruption(position: u64, reason: impl Into<String>) -> Corruption {
    Corruption {
        position,
        reason: reason.into(),
    }
}

impl EventLog {
    /// Recomputes the chain from position 1 to the head and checks, for every record: it is
    /// stored under its own position with no gap, its shape and hash are valid, its stream
    /// version follows the stream's previous one, and the stream index points at it. Then
    /// checks that the index has no extra entries and that the meta head equals the last
    /// record. `progress` is called with each verified position.
    ///
    /// A chain alone cannot detect a truncated tail (the shorter log is a valid chain too), so
    /// pass an `anchor` — a `position:hash` recorded elsewhere earlier — to check that the log
    /// still reaches it with the same hash.
    ///
    /// The outer `Result` is for storage failures; the inner one is the verdict.
    /// Appends may continue while this runs; it verifies up to the head at its start.
    pub fn verify(
        &self,
        anchor: Option<Head>,
        mut progress: impl FnMut(u64),
    ) -> Result<Result<VerifyReport, Corruption>, LogError> {
        let tree = &self.inner.tree;
        let head = self.lock_writer()?.head;

        let mut versions: HashMap<String, u64> = HashMap::new();
        let mut previous = Hash::ZERO;
        let mut expected = 1u64;
        let mut anchor_hash = None;
        let range = keys::record_key(1)..=keys::record_key(head.position);
        for entry in tree.range(range) {
            let (key, bytes) = entry?;
            match keys::parse_record_key(&key) {
                Some(position) if position == expected => {}
                Some(position) if position > expected => {
                    return Ok(Err(corruption(expected, "record is missing")));
                }
                _ => return Ok(Err(corruption(expected, "malformed record key"))),
            }
            let view = match check_at(expected, &previous, &bytes) {
                Ok(view) => view,
                Err(LogError::Corrupt { position, reason }) => {
                    return Ok(Err(corruption(position, reason)))
                }
                Err(other) => return Err(other),
            };
            let stream_version = versions.get(view.stream).copied().unwrap_or(0);
            if view.version != stream_version + 1 {
                return Ok(Err(corruption(
                    expected,
                    format!(
                        "stream {} jumps from version {stream_version} to {}",
                        view.stream, view.version
                    ),
                )));
            }
            let indexed = tree.get(keys::stream_key(view.stream, view.version))?;
            let indexed = indexed.as_deref().and_then(keys::parse_position_value);
            if indexed != Some(expected) {
                return Ok(Err(corruption(
                    expected,
                    format!(
                        "stream index for {} version {} points at {indexed:?}",
                        view.stream, view.version
                    ),
                )));
            }
            versions.insert(view.stream.to_owned(), view.version);
            if anchor.is_some_and(|anchor| anchor.position == expected) {
                anchor_hash = Some(view.hash);
            }
            previous = view.hash;
            progress(expected);
            expected += 1;
        }
        if expected <= head.position {
            return Ok(Err(corruption(expected, "record is missing")));
        }
        if previous != head.hash {
            return Ok(Err(corruption(
                head.position,
                format!(
                    "head hash is {} but the chain computes {previous}",
                    head.hash
                ),
            )));
        }

        // Every record has its index entry; an entry for a version beyond a stream's last
        // record points at nothing real.
        for entry in tree.scan_prefix([keys::STREAM_PREFIX]) {
            let (key, value) = entry?;
            let position = keys::parse_position_value(&value).unwrap_or(0);
            let Some((stream, version)) = keys::parse_stream_key(&key) else {
                return Ok(Err(corruption(position, "malformed stream index key")));
            };
            if position == 0 {
                return Ok(Err(corruption(
                    0,
                    format!("stream {stream} index value is malformed"),
                )));
            }
            if position > head.position {
                continue; // appended after this verify began
            }
            if version > versions.get(stream).copied().unwrap_or(0) {
                return Ok(Err(corruption(
                    position,
                    format!("stream index has {stream} version {version} but no such record"),
                )));
            }
        }

        // The tail, under the writer lock so no write is half applied: meta must equal the
        // head, and nothing may be stored past it.
        {
            let state = self.lock_writer()?;
            let meta = tree.get(META_KEY)?;
            let meta = meta.as_deref().map(decode_meta);
            let meta_ok = match meta {
                None => state.head == Head::GENESIS,
                Some(meta) => meta == Some(state.head),
            };
            if !meta_ok {
                return Ok(Err(corruption(
                    state.head.position,
                    format!(
                        "meta head {meta:?} differs from the log's head {}",
                        state.head
                    ),
                )));
            }
            let beyond = tree
                .range(keys::record_key(state.head.position.saturating_add(1))..)
                .next()
                .transpose()?;
            if let Some((key, _)) = beyond {
                if key.first() == Some(&keys::RECORD_PREFIX) {
                    return Ok(Err(corruption(
                        state.head.position + 1,
                        "record stored past the head",
                    )));
                }
            }
        }

        if let Some(anchor) = anchor {
            if anchor.position > head.position {
                return Ok(Err(corruption(
                    head.position + 1,
                    format!(
                        "log ends at {} but the anchor {anchor} is past it: records are missing",
                        head.position
                    ),
                )));
            }
            let found = if anchor.position == 0 {
                Hash::ZERO
            } else {
                anchor_hash.unwrap_or(Hash::ZERO)
            };
            if found != anchor.hash {
                return Ok(Err(corruption(
                    anchor.position,
                    format!("hash is {found} but the anchor says {}", anchor.hash),
                )));
            }
        }

        Ok(Ok(VerifyReport {
            events: head.position,
            head,
            streams: versions.len() as u64,
        }))
    }
}
