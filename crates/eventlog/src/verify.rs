//! Verification of the hash chain: [`ChainVerifier`], fed stored record bytes in position
//! order from anywhere (the log on disk, or `parlor.log.read` replies of a running writer), and
//! `EventLog::verify`, which feeds it the whole log and also cross-checks the in-memory stream
//! index and the meta head. Both report the first bad position.

use std::collections::HashMap;

use crate::chunk;
use crate::error::{Corruption, LogError};
use crate::keys::{self, META_KEY};
use crate::log::{check_at, decode_meta, EventLog};
use crate::record::{Hash, Head, RecordView};

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

/// Recomputes the hash chain over stored records fed in position order from position 1, and
/// stops at the first bad one: a record whose bytes fail their checks (format, length, UTF-8,
/// hash against its predecessor), a position that is not the next one (a gap, a duplicate or a
/// reordering), or a stream version that does not follow the stream's previous one.
///
/// It needs no storage, so the same checks run over a stopped data directory
/// (`EventLog::verify`) and over a running system's `log.read` replies. A chain alone cannot
/// tell a truncated tail from a complete log: give an anchor (a `position:hash` recorded
/// elsewhere earlier) and call [`ChainVerifier::check_anchor`] at the end.
#[derive(Debug, Clone)]
pub struct ChainVerifier {
    /// Each stream's last version seen.
    versions: HashMap<String, u64>,
    /// The last verified record, `Head::GENESIS` before the first.
    head: Head,
    /// The anchored head to check at the end, if any.
    anchor: Option<Head>,
    /// The hash the chain computed at the anchor's position, once passed.
    anchor_hash: Option<Hash>,
}

impl ChainVerifier {
    /// A verifier at the start of the log, checking `anchor` at the end when given.
    pub fn new(anchor: Option<Head>) -> ChainVerifier {
        ChainVerifier {
            versions: HashMap::new(),
            head: Head::GENESIS,
            anchor,
            anchor_hash: None,
        }
    }

    /// The position the next record must have.
    pub fn next_position(&self) -> u64 {
        self.head.position.saturating_add(1)
    }

    /// The last verified position and its recomputed hash.
    pub fn head(&self) -> Head {
        self.head
    }

    /// Checks `bytes`, found at `position` (its storage key, or the position it was served
    /// with), as the next record of the chain. After an error the verifier is unchanged, and
    /// the error names the first bad position.
    pub fn push(&mut self, position: u64, bytes: &[u8]) -> Result<(), Corruption> {
        self.push_view(position, bytes).map(|_| ())
    }

    /// [`ChainVerifier::push`], returning the decoded record for further checks.
    pub(crate) fn push_view<'a>(
        &mut self,
        position: u64,
        bytes: &'a [u8],
    ) -> Result<RecordView<'a>, Corruption> {
        let expected = self.next_position();
        if position > expected {
            return Err(corruption(expected, "record is missing"));
        }
        if position < expected {
            return Err(corruption(
                expected,
                format!("record {position} arrives where {expected} comes next (out of order)"),
            ));
        }
        let view = check_at(expected, &self.head.hash, bytes).map_err(|error| match error {
            LogError::Corrupt { position, reason } => corruption(position, reason),
            other => corruption(expected, other.to_string()),
        })?;
        let stream_version = self.versions.get(view.stream).copied().unwrap_or(0);
        if view.version != stream_version.saturating_add(1) {
            return Err(corruption(
                expected,
                format!(
                    "stream {} jumps from version {stream_version} to {}",
                    view.stream, view.version
                ),
            ));
        }
        match self.versions.get_mut(view.stream) {
            Some(version) => *version = view.version,
            None => {
                self.versions.insert(view.stream.to_owned(), view.version);
            }
        }
        if self
            .anchor
            .is_some_and(|anchor| anchor.position == expected)
        {
            self.anchor_hash = Some(view.hash);
        }
        self.head = Head {
            position: expected,
            hash: view.hash,
        };
        Ok(view)
    }

    /// Checks that the chain reached `position`: records up to it were all fed.
    pub fn expect_end(&self, position: u64) -> Result<(), Corruption> {
        if self.head.position < position {
            return Err(corruption(self.next_position(), "record is missing"));
        }
        Ok(())
    }

    /// Checks the anchor given to [`ChainVerifier::new`] against what was verified: the chain
    /// must reach the anchor's position (else the tail is truncated) with the anchor's hash.
    pub fn check_anchor(&self) -> Result<(), Corruption> {
        let Some(anchor) = self.anchor else {
            return Ok(());
        };
        if anchor.position > self.head.position {
            return Err(corruption(
                self.next_position(),
                format!(
                    "log ends at {} but the anchor {anchor} is past it: records are missing",
                    self.head.position
                ),
            ));
        }
        let found = if anchor.position == 0 {
            Hash::ZERO
        } else {
            self.anchor_hash.unwrap_or(Hash::ZERO)
        };
        if found != anchor.hash {
            return Err(corruption(
                anchor.position,
                format!("hash is {found} but the anchor says {}", anchor.hash),
            ));
        }
        Ok(())
    }

    /// What was verified: the count, the recomputed head and the number of streams.
    pub fn report(&self) -> VerifyReport {
        VerifyReport {
            events: self.head.position,
            head: self.head,
            streams: self.versions.len() as u64,
        }
    }
}

impl EventLog {
    /// Recomputes the chain from position 1 to the head and checks, for every record: it is
    /// stored at its own position (its chunk's first position plus its place in the chunk)
    /// with no gap, its shape and hash are valid, its stream version follows the stream's
    /// previous one, and the in-memory stream index (built at open and by every commit) points
    /// at it. Then checks that the index has no extra entries, that the meta head equals the
    /// last record, and that nothing is stored past it. `progress` is called with each
    /// verified position.
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

        // The reply index is checked on a second thread while this one recomputes the chain:
        // they read different keys, and each is a large share of the work.
        let (walked, reply_fault) = std::thread::scope(|scope| {
            let replies = scope.spawn(|| check_reply_index(self));
            let walked = walk_chain(tree, anchor, head.position, &mut progress);
            // A panic in the checker is a bug: it goes on as a panic here.
            let reply_fault = replies
                .join()
                .unwrap_or_else(|panic| std::panic::resume_unwind(panic));
            (walked, reply_fault)
        });
        let (chain, stream_positions, chain_break) = walked?;
        let reply_fault = reply_fault?;
        let chain_break = match chain_break {
            Some(corruption) => Some(corruption),
            None => chain.expect_end(head.position).err(),
        };
        // The index is judged only over the records the chain vouched for; an index fault at an
        // earlier position than the chain's first fault is the first bad position.
        let verified = chain.head().position;
        let index_fault = {
            let index = self.index();
            check_stream_index(&index.streams, &stream_positions, verified)
        };
        if let Some(index_fault) = index_fault {
            if chain_break
                .as_ref()
                .is_none_or(|chain_fault| index_fault.position < chain_fault.position)
            {
                return Ok(Err(index_fault));
            }
        }
        if let Some(chain_fault) = chain_break {
            return Ok(Err(chain_fault));
        }
        let computed = chain.head().hash;
        if computed != head.hash {
            return Ok(Err(corruption(
                head.position,
                format!(
                    "head hash is {} but the chain computes {computed}",
                    head.hash
                ),
            )));
        }

        // The tail, under the writer lock so no write is half applied: meta must equal the
        // head, and no chunk may start past it.
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
                .range(keys::chunk_key(state.head.position.saturating_add(1))..)
                .next()
                .transpose()?;
            if let Some((key, _)) = beyond {
                if key.first() == Some(&keys::CHUNK_PREFIX) {
                    return Ok(Err(corruption(
                        state.head.position + 1,
                        "record stored past the head",
                    )));
                }
            }
        }

        if let Some(fault) = reply_fault {
            return Ok(Err(fault));
        }
        if let Err(corruption) = chain.check_anchor() {
            return Ok(Err(corruption));
        }
        Ok(Ok(chain.report()))
    }
}

/// Checks the in-memory idempotency index against the reply sections stored: every stored
/// key leads to its section, and the index holds no other key. Replies are not part of the
/// chain, so a fault here is not tied to a position (0).
fn check_reply_index(log: &EventLog) -> Result<Option<Corruption>, LogError> {
    let tree = &log.inner.tree;
    let mut stored = 0usize;
    let index = log.index();
    for entry in tree.scan_prefix([keys::REPLY_SECTION_PREFIX]) {
        let (key, value) = entry?;
        let Some(number) = keys::parse_reply_section_key(&key) else {
            return Ok(Some(corruption(0, "malformed reply section key")));
        };
        if number >= index.next_section {
            // Written by a commit that began after the verification's snapshot of the index.
            continue;
        }
        let entries = match chunk::split_section(&value) {
            Ok(entries) => entries,
            Err(reason) => {
                return Ok(Some(corruption(
                    0,
                    format!("reply section {number}: {reason}"),
                )))
            }
        };
        for (key, _) in entries {
            if !index
                .replies
                .candidates(key)
                .any(|section| section == number)
            {
                return Ok(Some(corruption(
                    0,
                    format!(
                        "reply of key {} in section {number} is not indexed",
                        hex::encode(key)
                    ),
                )));
            }
            stored += 1;
        }
    }
    if stored != index.replies.len() {
        return Ok(Some(corruption(
            0,
            format!(
                "the reply index holds {} keys but {stored} replies are stored",
                index.replies.len()
            ),
        )));
    }
    Ok(None)
}

/// Each stream's record positions by version, as the chain found them.
type StreamPositions = HashMap<String, Vec<u64>>;

/// Recomputes the chain over the records at positions 1 ..= `head`, chunk by chunk: the
/// verifier where it stopped, each stream's record positions by version (versions are
/// consecutive from 1, which the chain checks), and the first fault, if any.
fn walk_chain(
    tree: &sled::Tree,
    anchor: Option<Head>,
    head: u64,
    progress: &mut impl FnMut(u64),
) -> Result<(ChainVerifier, StreamPositions, Option<Corruption>), LogError> {
    let mut chain = ChainVerifier::new(anchor);
    let mut stream_positions = StreamPositions::new();
    if head == 0 {
        return Ok((chain, stream_positions, None));
    }
    let range = keys::chunk_key(1)..=keys::chunk_key(head);
    for entry in tree.range(range) {
        let (key, value) = entry?;
        let Some(start) = keys::parse_chunk_key(&key) else {
            let fault = corruption(chain.next_position(), "malformed chunk key");
            return Ok((chain, stream_positions, Some(fault)));
        };
        let (records, framing_fault) = match chunk::split_chunk(&value) {
            Ok(records) => (records, None),
            Err((whole, reason)) => {
                let position = start + whole.len() as u64;
                (whole, Some(corruption(position, reason)))
            }
        };
        for (offset, bytes) in records.iter().enumerate() {
            let position = start + offset as u64;
            if position > head {
                break;
            }
            let view = match chain.push_view(position, bytes) {
                Ok(view) => view,
                Err(fault) => return Ok((chain, stream_positions, Some(fault))),
            };
            match stream_positions.get_mut(view.stream) {
                Some(positions) => positions.push(view.position),
                None => {
                    stream_positions.insert(view.stream.to_owned(), vec![view.position]);
                }
            }
            progress(view.position);
        }
        if let Some(fault) = framing_fault {
            // Every record before the break was verified, so the break is the first bad one.
            return Ok((chain, stream_positions, Some(fault)));
        }
    }
    Ok((chain, stream_positions, None))
}

/// Checks the stream index against the records at positions 1 ..= `verified`, whose positions
/// by stream and version are `stream_positions`: every record has exactly its entry, and no
/// entry points anywhere else. Returns the fault at the lowest position, if any. Entries that
/// point past `verified` are left alone (appended after the verification began, or beyond a
/// chain fault, which is reported on its own).
fn check_stream_index(
    index: &HashMap<String, Vec<u64>>,
    stream_positions: &StreamPositions,
    verified: u64,
) -> Option<Corruption> {
    let mut first: Option<Corruption> = None;
    let mut note = |fault: Corruption| {
        if first
            .as_ref()
            .is_none_or(|seen| fault.position < seen.position)
        {
            first = Some(fault);
        }
    };
    let slots = usize::try_from(verified).unwrap_or(usize::MAX);
    let mut indexed = vec![false; slots.saturating_add(1)];
    for (stream, entries) in index {
        let positions = stream_positions.get(stream);
        for (slot, &position) in entries.iter().enumerate() {
            let version = slot as u64 + 1;
            let record = positions.and_then(|positions| positions.get(slot)).copied();
            match record {
                Some(record) if record == position => {
                    if let Some(slot) = usize::try_from(position)
                        .ok()
                        .and_then(|slot| indexed.get_mut(slot))
                    {
                        *slot = true;
                    }
                }
                Some(record) => note(corruption(
                    record,
                    format!("stream index for {stream} version {version} points at {position}"),
                )),
                None if position > verified => {}
                None => note(corruption(
                    position,
                    format!("stream index has {stream} version {version} but no such record"),
                )),
            }
        }
    }
    if let Some(missing) = indexed.iter().skip(1).position(|indexed| !indexed) {
        note(corruption(
            missing as u64 + 1,
            "record has no stream index entry",
        ));
    }
    first
}
