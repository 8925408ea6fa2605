//! Newest-first matching that stops early: the `want` newest message documents that match every
//! query word in the caller's rooms, found without visiting every match.
//!
//! Why: collecting every match and keeping the newest (tantivy's `TopDocs`) costs what all the
//! matches cost, and a one-word query for a user in 50 rooms matches about a hundred times more
//! at 10M events than at 100k (docs/benchmarks.md, B8). Messages are indexed in log order, so a
//! segment's documents are nearly sorted by time already: this walks each segment backwards in
//! windows of documents that grow fourfold, and stops once nothing before a window can beat the
//! newest `want` found so far.
//!
//! Exactness never rests on that order. [`SegmentOrder`] keeps, for each block of
//! [`BLOCK_DOCS`] documents, the largest sort key of its messages, split into *runs* of blocks
//! whose maxima never decrease; so the largest key anywhere before a point of a run is one
//! lookup — a bound that holds whatever the order (a merge concatenates older segments in any
//! order, an edit re-adds an old message at the end). A window is searched only while its bound
//! can beat what has been found, and the windows of all segments and runs are taken largest
//! bound first.
//!
//! The room filter is a fast-field check of each candidate's room (its ordinal among the
//! caller's rooms), not a set of posting lists read up front (`TermSetQuery` fills a bit set
//! of every message in the caller's rooms before the first match), so a query costs what the
//! windows it visits hold. When the caller's rooms hold fewer postings than the rarest word,
//! their posting lists join the intersection and lead it.
//!
//! The order of each segment and its opened fast columns are made once, when a reload first
//! shows the segment (the [`SegmentCache`] is the reader's [`Warmer`]), and dropped with the
//! last searcher using it.

use std::cmp::Reverse;
use std::collections::{BTreeSet, BinaryHeap, HashMap, HashSet};
use std::io;
use std::ops::Range;
use std::sync::{Arc, PoisonError, RwLock};

use domain::RoomId;
use tantivy::columnar::{Column, StrColumn};
use tantivy::index::SegmentId;
use tantivy::postings::{SegmentPostings, TermInfo};
use tantivy::query::{intersect_scorers, Scorer};
use tantivy::schema::{Field, IndexRecordOption};
use tantivy::{
    DocAddress, DocId, DocSet, InvertedIndexReader, Score, Searcher, SearcherGeneration,
    SegmentReader, Term, Warmer, TERMINATED,
};

use crate::schema::Fields;
use crate::text::is_short;

/// The sort key of a message: `(sent_at in ms, position of its message_sent)`, larger is newer.
pub(crate) type SortKey = (i64, u64);

/// Documents per block of [`SegmentOrder`]: the grain of the bounds and of the windows.
pub(crate) const BLOCK_DOCS: u32 = 1024;

/// Blocks in a run's first window; each next window of the run is [`WINDOW_GROWTH`] times
/// larger, so a query that must see everything opens O(log n) windows per run.
const FIRST_WINDOW_BLOCKS: u32 = 4;

/// How much larger each next window of a run is than the last.
const WINDOW_GROWTH: u32 = 4;

/// The most posting lists a union steps through together ([`AnyOf`]); more (a short prefix
/// of a long word with many completions) are read into a bit set of the window
/// ([`WindowBits`]).
const STEPPED_UNION_PARTS_MAX: usize = 16;

/// One query word as the index matches it: a short word is an indexed prefix term, a longer
/// one every whole word in `[word, word with its last byte incremented)` (see [`crate::text`]).
pub(crate) enum WordTerms {
    /// The one term.
    Exact(Term),
    /// The term-dictionary range of the words it begins.
    Prefix {
        /// The word itself, the range's first key.
        from: Vec<u8>,
        /// The word with its last byte incremented, the range's end (excluded).
        to: Vec<u8>,
    },
}

impl WordTerms {
    /// How `word` (lowered, see [`crate::text::query_words`]) is matched in `body`.
    pub(crate) fn of(body: Field, word: &str) -> WordTerms {
        if is_short(word) {
            return WordTerms::Exact(Term::from_field_text(body, word));
        }
        // UTF-8 has no 0xff byte, so the increment never carries; the bound need not be UTF-8.
        let mut to = word.as_bytes().to_vec();
        if let Some(last) = to.last_mut() {
            *last = last.saturating_add(1);
        }
        WordTerms::Prefix {
            from: word.as_bytes().to_vec(),
            to,
        }
    }

    /// This word's terms in one segment's body index (none: no document there matches).
    fn term_infos(&self, body: &InvertedIndexReader) -> io::Result<Vec<TermInfo>> {
        match self {
            WordTerms::Exact(term) => Ok(body.get_term_info(term)?.into_iter().collect()),
            WordTerms::Prefix { from, to } => {
                let mut stream = body.terms().range().ge(from).lt(to).into_stream()?;
                let mut infos = Vec::new();
                while stream.advance() {
                    infos.push(stream.value().clone());
                }
                Ok(infos)
            }
        }
    }
}

/// What one query asks of the index.
pub(crate) struct Request<'a> {
    /// The caller's rooms (at least one).
    pub(crate) rooms: &'a BTreeSet<RoomId>,
    /// Every word must match (at least one).
    pub(crate) words: &'a [WordTerms],
    /// How many of the newest matches to return.
    pub(crate) want: usize,
    /// Only keys below this one (the page cursor).
    pub(crate) below: Option<SortKey>,
}

/// The `request.want` newest matches, newest first.
pub(crate) fn newest(
    searcher: &Searcher,
    fields: &Fields,
    segments: &SegmentCache,
    request: &Request<'_>,
) -> tantivy::Result<Vec<(SortKey, DocAddress)>> {
    let mut found = Found::new(request.want, request.below);
    if request.want == 0 || request.words.is_empty() || request.rooms.is_empty() {
        return Ok(Vec::new());
    }
    let readers = searcher.segment_readers();
    let room_names: Vec<String> = request.rooms.iter().map(ToString::to_string).collect();
    // Only the cached facts are read up front: a segment's terms are looked up when its
    // first window comes due, so a page found in the newest segments never opens the rest.
    let mut facts_of = Vec::with_capacity(readers.len());
    let mut frontier = BinaryHeap::new();
    for (segment, reader) in readers.iter().enumerate() {
        let facts = segments.of(reader)?;
        let order = &facts.order;
        for (run, blocks) in order.runs.iter().enumerate() {
            let end = order.end_before(blocks, request.below, reader.max_doc());
            if let Some(bound) = order.bound_before(blocks, end) {
                frontier.push(Window {
                    bound,
                    segment,
                    run,
                    end,
                    blocks: FIRST_WINDOW_BLOCKS,
                });
            }
        }
        facts_of.push(facts);
    }
    let mut opened: Vec<Opened<'_>> = readers.iter().map(|_| Opened::NotYet).collect();
    while let Some(window) = frontier.pop() {
        if !found.could_take(window.bound) {
            break;
        }
        if let Opened::NotYet = opened[window.segment] {
            let reader = &readers[window.segment];
            let facts = Arc::clone(&facts_of[window.segment]);
            opened[window.segment] = match SegmentSearch::open(
                window.segment as u32,
                reader,
                facts,
                fields,
                &room_names,
                request,
            )? {
                Some(segment) => Opened::Searching(Box::new(segment)),
                None => Opened::Nothing,
            };
        }
        let Opened::Searching(segment) = &opened[window.segment] else {
            continue;
        };
        let blocks = &facts_of[window.segment].order.runs[window.run];
        let run_start = blocks.start * BLOCK_DOCS;
        let start = window
            .end
            .saturating_sub(window.blocks.saturating_mul(BLOCK_DOCS))
            .max(run_start)
            / BLOCK_DOCS
            * BLOCK_DOCS;
        segment.collect(start..window.end, &mut found)?;
        if start > run_start {
            if let Some(bound) = facts_of[window.segment].order.bound_before(blocks, start) {
                frontier.push(Window {
                    bound,
                    end: start,
                    blocks: window.blocks.saturating_mul(WINDOW_GROWTH),
                    ..window
                });
            }
        }
    }
    Ok(found.newest_first())
}

/// A segment's part of a query, looked up when its first window comes due.
enum Opened<'a> {
    NotYet,
    /// Nothing in it can match (a word or every one of the caller's rooms is missing there).
    Nothing,
    Searching(Box<SegmentSearch<'a>>),
}

/// A range of documents still to search: `[run start, end)` of one run, of which the next
/// window is the last `blocks` blocks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
struct Window {
    /// No message before `end` in the run has a larger key (the heap's order: largest first).
    bound: SortKey,
    segment: usize,
    run: usize,
    end: DocId,
    blocks: u32,
}

/// The newest matches found so far: a min-heap of at most `want`.
struct Found {
    want: usize,
    below: Option<SortKey>,
    heap: BinaryHeap<Reverse<(SortKey, DocAddress)>>,
}

impl Found {
    fn new(want: usize, below: Option<SortKey>) -> Found {
        Found {
            want,
            below,
            heap: BinaryHeap::with_capacity(want + 1),
        }
    }

    /// Whether a match with `key` would be kept.
    fn could_take(&self, key: SortKey) -> bool {
        self.heap.len() < self.want
            || self
                .heap
                .peek()
                .is_some_and(|Reverse((least, _))| key > *least)
    }

    fn offer(&mut self, key: SortKey, address: DocAddress) {
        if self.below.is_some_and(|below| key >= below) || !self.could_take(key) {
            return;
        }
        self.heap.push(Reverse((key, address)));
        if self.heap.len() > self.want {
            self.heap.pop();
        }
    }

    fn newest_first(self) -> Vec<(SortKey, DocAddress)> {
        // `into_sorted_vec` of `Reverse` is largest key first.
        self.heap
            .into_sorted_vec()
            .into_iter()
            .map(|Reverse(entry)| entry)
            .collect()
    }
}

/// One segment's part of a query: the words' and rooms' terms there and the columns a candidate
/// is checked and ranked by.
struct SegmentSearch<'a> {
    ord: u32,
    reader: &'a SegmentReader,
    body: Arc<InvertedIndexReader>,
    /// Each word's terms here (none empty).
    words: Vec<Vec<TermInfo>>,
    rooms_index: Arc<InvertedIndexReader>,
    /// The caller's rooms' terms here, when they lead the intersection.
    room_terms: Option<Vec<TermInfo>>,
    /// The caller's rooms' ordinals in the room column, sorted.
    caller_rooms: Vec<u64>,
    room_ords: Column<u64>,
    facts: Arc<SegmentFacts>,
}

impl<'a> SegmentSearch<'a> {
    /// `None` when nothing in the segment can match: a word or every room is missing there.
    fn open(
        ord: u32,
        reader: &'a SegmentReader,
        facts: Arc<SegmentFacts>,
        fields: &Fields,
        room_names: &[String],
        request: &Request<'_>,
    ) -> tantivy::Result<Option<SegmentSearch<'a>>> {
        let Some(rooms_column) = facts.columns.rooms.clone() else {
            return Ok(None);
        };
        let mut caller_rooms = Vec::with_capacity(room_names.len());
        for room in room_names {
            if let Some(ord) = rooms_column.dictionary().term_ord(room.as_bytes())? {
                caller_rooms.push(ord);
            }
        }
        if caller_rooms.is_empty() {
            return Ok(None);
        }
        caller_rooms.sort_unstable();
        let body = reader.inverted_index(fields.body)?;
        let mut words = Vec::with_capacity(request.words.len());
        for word in request.words {
            let infos = word.term_infos(&body)?;
            if infos.is_empty() {
                return Ok(None);
            }
            words.push(infos);
        }
        let rooms_index = reader.inverted_index(fields.room_id)?;
        let rarest_word: u64 = words
            .iter()
            .map(|infos| infos.iter().map(|info| u64::from(info.doc_freq)).sum())
            .min()
            .unwrap_or(0);
        let mut room_terms = Vec::with_capacity(room_names.len());
        for room in room_names {
            if let Some(info) =
                rooms_index.get_term_info(&Term::from_field_text(fields.room_id, room))?
            {
                room_terms.push(info);
            }
        }
        let room_postings: u64 = room_terms.iter().map(|info| u64::from(info.doc_freq)).sum();
        Ok(Some(SegmentSearch {
            ord,
            reader,
            body,
            words,
            rooms_index,
            room_terms: (room_postings < rarest_word).then_some(room_terms),
            caller_rooms,
            room_ords: rooms_column.ords().clone(),
            facts,
        }))
    }

    /// Offers every live match in `docs` to `found`.
    fn collect(&self, docs: Range<DocId>, found: &mut Found) -> tantivy::Result<()> {
        let mut parts: Vec<Box<dyn Scorer>> = Vec::with_capacity(self.words.len() + 1);
        for infos in &self.words {
            parts.push(self.union(&self.body, infos, &docs)?);
        }
        if let Some(room_terms) = &self.room_terms {
            parts.push(self.union(&self.rooms_index, room_terms, &docs)?);
        }
        let mut matches = intersect_scorers(parts, self.reader.max_doc());
        let alive = self.reader.alive_bitset();
        let mut doc = matches.doc();
        while doc < docs.end {
            if alive.is_none_or(|alive| alive.is_alive(doc)) && self.in_caller_rooms(doc) {
                if let (Some(sent_at), Some(position)) = (
                    self.facts.columns.sent_at.first(doc),
                    self.facts.columns.position.first(doc),
                ) {
                    found.offer((sent_at, position), DocAddress::new(self.ord, doc));
                }
            }
            doc = matches.advance();
        }
        Ok(())
    }

    fn in_caller_rooms(&self, doc: DocId) -> bool {
        self.room_ords
            .first(doc)
            .is_some_and(|ord| self.caller_rooms.binary_search(&ord).is_ok())
    }

    /// The documents of `docs` holding any of `terms`.
    fn union(
        &self,
        index: &InvertedIndexReader,
        terms: &[TermInfo],
        docs: &Range<DocId>,
    ) -> io::Result<Box<dyn Scorer>> {
        let mut postings = Vec::with_capacity(terms.len());
        for info in terms {
            let inner = index.read_postings_from_terminfo(info, IndexRecordOption::Basic)?;
            postings.push(Within::new(inner, docs));
        }
        Ok(match postings.len() {
            1 => Box::new(postings.remove(0)),
            parts if parts <= STEPPED_UNION_PARTS_MAX => Box::new(AnyOf::new(postings)),
            _ => Box::new(WindowBits::new(postings, docs)),
        })
    }
}

/// The union of many posting lists over one window, read into a bit set of the window's
/// documents first: for a long word's many completions, where [`AnyOf`] would look at every
/// part for every document.
struct WindowBits {
    start: DocId,
    bits: Vec<u64>,
    doc: DocId,
    cost: u32,
}

impl WindowBits {
    fn new(parts: Vec<Within>, docs: &Range<DocId>) -> WindowBits {
        let length = docs.end.saturating_sub(docs.start) as usize;
        let mut bits = vec![0u64; length.div_ceil(64)];
        let mut cost = 0u32;
        for mut part in parts {
            cost = cost.saturating_add(part.size_hint());
            let mut doc = part.doc();
            while doc != TERMINATED {
                let offset = (doc - docs.start) as usize;
                bits[offset / 64] |= 1 << (offset % 64);
                doc = part.advance();
            }
        }
        let mut union = WindowBits {
            start: docs.start,
            bits,
            doc: TERMINATED,
            cost,
        };
        union.doc = union.first_from(docs.start);
        union
    }

    /// The first document of the set at or after `target`.
    fn first_from(&self, target: DocId) -> DocId {
        let offset = target.saturating_sub(self.start) as usize;
        let mut word = offset / 64;
        let Some(&first) = self.bits.get(word) else {
            return TERMINATED;
        };
        let mut bits = first & (u64::MAX << (offset % 64));
        loop {
            if bits != 0 {
                return self.start + (word * 64) as DocId + bits.trailing_zeros();
            }
            word += 1;
            match self.bits.get(word) {
                Some(&next) => bits = next,
                None => return TERMINATED,
            }
        }
    }
}

impl DocSet for WindowBits {
    fn advance(&mut self) -> DocId {
        if self.doc != TERMINATED {
            self.doc = self.first_from(self.doc + 1);
        }
        self.doc
    }

    fn seek(&mut self, target: DocId) -> DocId {
        if self.doc != TERMINATED && target > self.doc {
            self.doc = self.first_from(target);
        }
        self.doc
    }

    fn doc(&self) -> DocId {
        self.doc
    }

    fn size_hint(&self) -> u32 {
        self.cost
    }
}

impl Scorer for WindowBits {
    fn score(&mut self) -> Score {
        1.0
    }
}

/// The union of a few windows' posting lists (a long word's completions, the caller's rooms):
/// each step looks at every part, which is cheap for the handful a query has. (tantivy's own
/// union cannot be built outside the crate.)
struct AnyOf {
    parts: Vec<Within>,
    doc: DocId,
}

impl AnyOf {
    fn new(parts: Vec<Within>) -> AnyOf {
        let doc = parts.iter().map(DocSet::doc).min().unwrap_or(TERMINATED);
        AnyOf { parts, doc }
    }

    fn settle(&mut self) -> DocId {
        self.doc = self
            .parts
            .iter()
            .map(DocSet::doc)
            .min()
            .unwrap_or(TERMINATED);
        self.doc
    }
}

impl DocSet for AnyOf {
    fn advance(&mut self) -> DocId {
        let current = self.doc;
        for part in &mut self.parts {
            if part.doc() == current {
                part.advance();
            }
        }
        self.settle()
    }

    fn seek(&mut self, target: DocId) -> DocId {
        for part in &mut self.parts {
            if part.doc() < target {
                part.seek(target);
            }
        }
        self.settle()
    }

    fn doc(&self) -> DocId {
        self.doc
    }

    fn size_hint(&self) -> u32 {
        self.parts
            .iter()
            .map(DocSet::size_hint)
            .fold(0, u32::saturating_add)
    }
}

impl Scorer for AnyOf {
    fn score(&mut self) -> Score {
        1.0
    }
}

/// A posting list cut to a range of documents: it starts at the range's first document at or
/// after its start and ends before its end, so nothing (an intersection looking for its first
/// common document, a union filling its buffer) reads past a window.
struct Within {
    inner: SegmentPostings,
    end: DocId,
    done: bool,
}

impl Within {
    fn new(mut inner: SegmentPostings, docs: &Range<DocId>) -> Within {
        if inner.doc() < docs.start {
            inner.seek(docs.start);
        }
        let done = inner.doc() >= docs.end;
        Within {
            inner,
            end: docs.end,
            done,
        }
    }

    fn settle(&mut self, doc: DocId) -> DocId {
        if doc >= self.end {
            self.done = true;
            TERMINATED
        } else {
            doc
        }
    }
}

impl DocSet for Within {
    fn advance(&mut self) -> DocId {
        if self.done {
            return TERMINATED;
        }
        let doc = self.inner.advance();
        self.settle(doc)
    }

    fn seek(&mut self, target: DocId) -> DocId {
        if target <= self.doc() {
            return self.doc();
        }
        if self.done || target >= self.end {
            self.done = true;
            return TERMINATED;
        }
        let doc = self.inner.seek(target);
        self.settle(doc)
    }

    fn doc(&self) -> DocId {
        if self.done {
            TERMINATED
        } else {
            self.inner.doc()
        }
    }

    fn size_hint(&self) -> u32 {
        self.inner.size_hint()
    }
}

impl Scorer for Within {
    fn score(&mut self) -> Score {
        1.0
    }
}

/// One segment's messages by sort key, block by block: what bounds the windows.
#[derive(Debug, Default)]
pub(crate) struct SegmentOrder {
    /// For each block, the largest key of the messages from its run's first block to it (None:
    /// no message so far in the run). Never decreasing within a run.
    run_max: Vec<Option<SortKey>>,
    /// For each block, the smallest key of its messages (None: it holds none).
    block_min: Vec<Option<SortKey>>,
    /// The runs, as ranges of blocks, in document order, covering every block.
    runs: Vec<Range<u32>>,
}

impl SegmentOrder {
    /// Reads the keys of every document of a segment, a block at a time.
    fn of(columns: &Columns, max_doc: DocId) -> SegmentOrder {
        let (sent_at, position) = (&columns.sent_at, &columns.position);
        let mut order = SegmentOrder::default();
        let mut docs: Vec<DocId> = Vec::with_capacity(BLOCK_DOCS as usize);
        let mut times = vec![None; BLOCK_DOCS as usize];
        let mut positions = vec![None; BLOCK_DOCS as usize];
        for start in (0..max_doc).step_by(BLOCK_DOCS as usize) {
            docs.clear();
            docs.extend(start..max_doc.min(start + BLOCK_DOCS));
            let count = docs.len();
            sent_at.first_vals(&docs, &mut times[..count]);
            position.first_vals(&docs, &mut positions[..count]);
            let keys = times[..count]
                .iter()
                .zip(&positions[..count])
                .filter_map(|(&time, &position)| Some((time?, position?)));
            let (min, max) = keys.fold(
                (None, None),
                |(min, max): (Option<SortKey>, Option<SortKey>), key| {
                    (
                        Some(min.map_or(key, |min| min.min(key))),
                        Some(max.map_or(key, |max| max.max(key))),
                    )
                },
            );
            order.push_block(max, min);
        }
        order
    }

    /// The order of documents whose keys (None: not a message) are `keys`, in document order.
    #[cfg(test)]
    fn from_keys(keys: impl Iterator<Item = Option<SortKey>>) -> SegmentOrder {
        let mut order = SegmentOrder::default();
        let mut keys = keys.peekable();
        let mut block: Vec<SortKey> = Vec::with_capacity(BLOCK_DOCS as usize);
        while keys.peek().is_some() {
            block.clear();
            block.extend(keys.by_ref().take(BLOCK_DOCS as usize).flatten());
            order.push_block(block.iter().max().copied(), block.iter().min().copied());
        }
        order
    }

    fn push_block(&mut self, max: Option<SortKey>, min: Option<SortKey>) {
        let index = self.run_max.len() as u32;
        let before = self.run_max.last().copied().flatten();
        let starts_run = match (before, max) {
            _ if self.runs.is_empty() => true,
            (Some(before), Some(max)) => max < before,
            _ => false,
        };
        if starts_run {
            self.runs.push(index..index + 1);
            self.run_max.push(max);
        } else {
            if let Some(run) = self.runs.last_mut() {
                run.end = index + 1;
            }
            self.run_max.push(before.max(max));
        }
        self.block_min.push(min);
    }

    /// The largest key of the messages of `blocks` before document `end` (a block boundary or
    /// the segment's end), or None when there are none.
    fn bound_before(&self, blocks: &Range<u32>, end: DocId) -> Option<SortKey> {
        let last = end.checked_sub(1)? / BLOCK_DOCS;
        if last < blocks.start {
            return None;
        }
        self.run_max[last.min(blocks.end - 1) as usize]
    }

    /// Where the search of `blocks` starts (from it backwards): the run's end, less its last
    /// blocks whose every message sorts at or above `below` (a later page's cursor).
    fn end_before(&self, blocks: &Range<u32>, below: Option<SortKey>, max_doc: DocId) -> DocId {
        let mut end = blocks.end;
        if let Some(below) = below {
            while end > blocks.start
                && self.block_min[(end - 1) as usize].is_none_or(|min| min >= below)
            {
                end -= 1;
            }
        }
        (end * BLOCK_DOCS).min(max_doc)
    }
}

/// A segment's fast columns that queries read, opened once: opening a column decodes its
/// codec's header (for a large segment, thousands of blocks' parameters), which per query cost
/// more than the search itself.
pub(crate) struct Columns {
    /// `sent_at` of each message document.
    pub(crate) sent_at: Column<i64>,
    /// `position` of each message document.
    pub(crate) position: Column<u64>,
    /// `room_id` of each message document (None: a segment written before the column).
    pub(crate) rooms: Option<StrColumn>,
}

impl Columns {
    fn open(segment: &SegmentReader) -> tantivy::Result<Columns> {
        let fast = segment.fast_fields();
        Ok(Columns {
            sent_at: fast.i64("sent_at")?,
            position: fast.u64("position")?,
            rooms: fast.str("room_id")?,
        })
    }
}

/// What a query needs of a segment besides its terms, made once per segment.
pub(crate) struct SegmentFacts {
    pub(crate) columns: Columns,
    pub(crate) order: SegmentOrder,
}

/// Each segment's [`SegmentFacts`], made when a reload first shows the segment: the index
/// reader's [`Warmer`], so queries find them ready.
#[derive(Default)]
pub(crate) struct SegmentCache {
    segments: RwLock<HashMap<SegmentId, Arc<SegmentFacts>>>,
}

impl SegmentCache {
    /// The facts of `segment`, made now if no warming has (opening the reader warms its first
    /// searcher too, so this is a fallback).
    fn of(&self, segment: &SegmentReader) -> tantivy::Result<Arc<SegmentFacts>> {
        let id = segment.segment_id();
        if let Some(facts) = self
            .segments
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .get(&id)
        {
            return Ok(Arc::clone(facts));
        }
        let columns = Columns::open(segment)?;
        let order = SegmentOrder::of(&columns, segment.max_doc());
        let facts = Arc::new(SegmentFacts { columns, order });
        self.segments
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(id, Arc::clone(&facts));
        Ok(facts)
    }
}

impl Warmer for SegmentCache {
    fn warm(&self, searcher: &Searcher) -> tantivy::Result<()> {
        for segment in searcher.segment_readers() {
            self.of(segment)?;
        }
        Ok(())
    }

    fn garbage_collect(&self, live_generations: &[&SearcherGeneration]) {
        let live: HashSet<SegmentId> = live_generations
            .iter()
            .flat_map(|generation| generation.segments().keys().copied())
            .collect();
        self.segments
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .retain(|id, _| live.contains(id));
    }
}

#[cfg(test)]
mod against_a_scan;

#[cfg(test)]
mod tests {
    use super::*;

    fn order(keys: &[Option<i64>]) -> SegmentOrder {
        SegmentOrder::from_keys(keys.iter().map(|key| key.map(|at| (at, at as u64))))
    }

    #[test]
    fn blocks_whose_maxima_fall_start_a_run() {
        let block = BLOCK_DOCS as usize;
        // Three blocks rising, then a block of older keys (a merged older segment), then one
        // holding no message at all, which continues the run it follows.
        let mut keys = Vec::new();
        for base in [100, 200, 300, 10] {
            keys.extend((0..block).map(|doc| Some(base + doc as i64 % 50)));
        }
        keys.extend((0..block).map(|_| None));
        let order = order(&keys);
        assert_eq!(order.runs, vec![0..3, 3..5]);
        assert_eq!(order.run_max[2], Some((349, 349)));
        assert_eq!(order.run_max[4], Some((59, 59)));
        let run = order.runs[0].clone();
        assert_eq!(order.bound_before(&run, 3 * BLOCK_DOCS), Some((349, 349)));
        assert_eq!(order.bound_before(&run, BLOCK_DOCS), Some((149, 149)));
        assert_eq!(order.bound_before(&run, 0), None);
        // The cursor skips the run's last blocks that are all at or above it.
        assert_eq!(
            order.end_before(&run, Some((300, 300)), u32::MAX),
            2 * BLOCK_DOCS
        );
        assert_eq!(
            order.end_before(&run, Some((301, 301)), u32::MAX),
            3 * BLOCK_DOCS
        );
    }

    #[test]
    fn an_old_message_at_the_end_keeps_the_bound_of_the_newer_before_it() {
        // An edit re-adds an old message after newer ones: the block's maximum stays the newer.
        let mut keys: Vec<Option<i64>> = (100..100 + i64::from(BLOCK_DOCS)).map(Some).collect();
        keys.push(Some(5));
        let order = order(&keys);
        assert_eq!(
            order.runs.len(),
            2,
            "the lone old message's block falls below"
        );
        assert_eq!(order.run_max[1], Some((5, 5)));
        assert_eq!(order.runs[1], 1..2);
    }
}
