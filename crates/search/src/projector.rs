//! [`SearchProjector`]: the search read model behind [`projections::Projector`], a tantivy index
//! under `<data_dir>/projections/search/` whose checkpoint is the payload of its own commits.
//!
//! Atomicity: the position applied so far travels in the commit payload
//! (`prepare_commit().set_payload(…)`), and the room and user documents changed since the last
//! commit are written into that same commit. So after any crash the index, the rooms and the
//! checkpoint agree, and the runner resumes from the checkpoint + 1, applying nothing twice.
//!
//! Visibility: a message is found as soon as it is applied. What the index has not committed
//! yet is held in memory ([`Recent`]) and searched beside the committed index, so queries,
//! `min_position` ones included, never wait for or force a commit (docs/speed-work.md).
//!
//! Commit cadence: applied events are buffered in the `IndexWriter` and committed (then the
//! reader reloaded, [`ReloadPolicy::Manual`]) once [`SearchOptions::commit_interval`] has passed
//! since the last commit, by a small committer thread that checks every [`COMMITTER_TICK`] (a
//! batch never waits for a commit: see [`Shared::apply`]). The cadence bounds what a restart applies again and what
//! is held in memory, not what queries see. While the model is catching up (batches of at least
//! [`BULK_BATCH_EVENTS_MIN`] events: the runner's `log.read` pages, or a backlog of live events)
//! it commits every [`SearchOptions::bulk_commit_interval`] instead, for fewer, larger segments.
//!
//! [`Projector::position`] is the *applied* position, not the committed one: the runner takes it
//! as the base of its gap check, and a position behind what it has handed over would make every
//! live event after a buffered one look like a gap (a needless `log.read`). The durable
//! checkpoint is [`SearchProjector::committed_position`].

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc;
use std::sync::{
    Arc, Mutex, MutexGuard, PoisonError, RwLock, RwLockReadGuard, RwLockWriteGuard, TryLockError,
    Weak,
};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use domain::{Event, MessageId, RoomId, Timestamp, UserId};
use projections::{unapplied, Dump, EventEnvelope, ProjectionError, Projector, QueryError};
use protocol::query::{QueryRequest, SearchQuery};
use serde_json::{json, Value};
use tantivy::collector::DocSetCollector;
use tantivy::directory::MmapDirectory;
use tantivy::merge_policy::{LogMergePolicy, NoMergePolicy};
use tantivy::query::TermQuery;
use tantivy::schema::{IndexRecordOption, Value as _};
use tantivy::tokenizer::TextAnalyzer;
use tantivy::{
    DocAddress, Index, IndexReader, IndexSettings, IndexWriter, ReloadPolicy, Searcher,
    TantivyDocument, Warmer,
};
use tracing::{debug, warn};

use crate::model::{Model, RoomRecord};
use crate::newest::SegmentCache;
use crate::recent::Recent;
use crate::schema::{
    Fields, MessageDoc, MessageMeta, StoredRoom, StoredUser, DOC_MESSAGE, DOC_ROOM, DOC_USER,
    PREFIX_TOKENIZER,
};
use crate::text::PrefixTokenizer;

/// The model's name: its query subject, queue group and directory.
pub const NAME: &str = "search";

/// The live commit cadence (what queries see does not wait for it: see the module docs).
pub const COMMIT_INTERVAL_LIVE: Duration = Duration::from_millis(150);

/// The live commit cadence while catching up.
pub const COMMIT_INTERVAL_BULK: Duration = Duration::from_secs(1);

/// The rebuild commit cadence: rare commits make few, large segments.
pub const COMMIT_INTERVAL_REBUILD: Duration = Duration::from_secs(60);

/// A batch this large means the model is catching up (the runner applies a `log.read` page, or
/// a backlog of live events, as one batch), so commits follow the bulk cadence.
pub const BULK_BATCH_EVENTS_MIN: usize = 500;

/// The indexing memory of a live writer (allocated as documents arrive, not up front).
pub const WRITER_HEAP_BYTES_LIVE: usize = 64 * 1024 * 1024;

/// The indexing memory of a rebuilding writer: larger segments, fewer merges.
pub const WRITER_HEAP_BYTES_REBUILD: usize = 512 * 1024 * 1024;

/// Messages added or edited since the last commit, at most: they are held in memory until the
/// commit ([`Recent`]), so this many forces a commit.
pub const PENDING_MESSAGES_MAX: usize = 250_000;

/// The most documents a merge makes a segment of ([`SearchProjector::merge_segments`], and
/// about what background merges reach).
pub const SEGMENT_DOCS_MAX: u32 = 1_000_000;

/// Attempts of [`SearchProjector::merge_segments`] while background merges end.
const MERGE_ATTEMPTS_MAX: u32 = 600;

/// The pause between two of those attempts.
const MERGE_RETRY_PAUSE: Duration = Duration::from_millis(100);

/// Index changes queued while a commit holds the writer, at most: past this a batch waits for
/// the commit, so a slow commit slows the model down rather than filling memory.
pub const BACKLOG_CHANGES_MAX: usize = 100_000;

/// How often the committer thread looks for a commit that is due.
pub const COMMITTER_TICK: Duration = Duration::from_millis(25);

/// The version of the index's layout, recorded in every commit's payload: 2 since the room is
/// a fast column as well (for [`crate::newest`]). An index of another layout is not read
/// ([`ProjectionError::Layout`]); served, it is rebuilt from the log.
const PAYLOAD_FORMAT: u64 = 2;

/// How a [`SearchProjector`] writes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SearchOptions {
    /// The least time between two commits while events keep coming.
    pub commit_interval: Duration,
    /// The least time between two commits while catching up (batches of at least
    /// [`BULK_BATCH_EVENTS_MIN`] events).
    pub bulk_commit_interval: Duration,
    /// The writer's indexing memory, over all its threads.
    pub writer_heap_bytes: usize,
    /// Indexing threads.
    pub indexing_threads: usize,
    /// Messages added since the last commit before a commit is forced.
    pub pending_messages_max: usize,
    /// Whether segments are merged in the background while indexing (tantivy's log merge
    /// policy). A rebuild does not, and merges once at the end
    /// ([`SearchProjector::merge_segments`]).
    pub merge_while_indexing: bool,
    /// Whether queries search what is applied but not committed yet ([`Recent`] then holds
    /// each such message's body and words). A rebuilding instance answers no query before it
    /// is committed and swapped in, so it keeps only what an edit needs (room, author, time):
    /// holding the bodies cost a rebuild about a tenth of its speed (docs/speed-work.md).
    pub search_uncommitted: bool,
    /// The most documents merges make a segment of ([`SEGMENT_DOCS_MAX`]).
    pub segment_docs_max: u32,
}

impl SearchOptions {
    /// Following the log live: commits every [`COMMIT_INTERVAL_LIVE`] ([`COMMIT_INTERVAL_BULK`]
    /// while catching up), one indexing thread.
    pub fn live() -> SearchOptions {
        SearchOptions {
            commit_interval: COMMIT_INTERVAL_LIVE,
            bulk_commit_interval: COMMIT_INTERVAL_BULK,
            writer_heap_bytes: WRITER_HEAP_BYTES_LIVE,
            indexing_threads: 1,
            pending_messages_max: PENDING_MESSAGES_MAX,
            merge_while_indexing: true,
            search_uncommitted: true,
            segment_docs_max: SEGMENT_DOCS_MAX,
        }
    }

    /// Rebuilding from the log (`parlor replay search`): a large writer heap, two indexing
    /// threads, a commit every [`COMMIT_INTERVAL_REBUILD`] or [`PENDING_MESSAGES_MAX`] messages
    /// (and on [`Projector::flush`]), no background merging (call
    /// [`SearchProjector::merge_segments`] at the end).
    pub fn rebuild() -> SearchOptions {
        SearchOptions {
            commit_interval: COMMIT_INTERVAL_REBUILD,
            bulk_commit_interval: COMMIT_INTERVAL_REBUILD,
            writer_heap_bytes: WRITER_HEAP_BYTES_REBUILD,
            indexing_threads: 2,
            pending_messages_max: PENDING_MESSAGES_MAX,
            merge_while_indexing: false,
            search_uncommitted: false,
            segment_docs_max: SEGMENT_DOCS_MAX,
        }
    }
}

impl Default for SearchOptions {
    fn default() -> SearchOptions {
        SearchOptions::live()
    }
}

/// The search read model (docs/queries.md op `search`; R-Q1).
pub struct SearchProjector {
    shared: Arc<Shared>,
    /// Dropped to stop the committer thread.
    stop: Option<mpsc::Sender<()>>,
    committer: Option<JoinHandle<()>>,
}

impl std::fmt::Debug for SearchProjector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SearchProjector")
            .field("applied", &self.shared.applied.load(Ordering::SeqCst))
            .field("committed", &self.shared.committed.load(Ordering::SeqCst))
            .field("options", &self.shared.options)
            .finish_non_exhaustive()
    }
}

/// What the projector, its queries and its committer thread share.
pub(crate) struct Shared {
    pub(crate) reader: IndexReader,
    pub(crate) fields: Fields,
    /// Each segment's order of messages by time, made when a reload shows it (the reader's
    /// warmer, which holds it weakly).
    pub(crate) segments: Arc<SegmentCache>,
    options: SearchOptions,
    writing: Mutex<Writing>,
    pub(crate) model: RwLock<Model>,
    /// The messages applied but not committed yet, and the committed documents they made
    /// stale: queries search them beside the reader's searcher, taken under this lock.
    pub(crate) recent: RwLock<Recent>,
    /// The index changes of applied events the writer has not taken yet: a batch applied while
    /// a commit holds the writer queues here (see [`Shared::apply`]). Pushed to under the
    /// model's lock, with the model and `applied`, so that a commit that empties it under that
    /// lock has the writer, the model and `applied` agree.
    backlog: Mutex<Vec<IndexChange>>,
    /// The position of the last applied event.
    applied: AtomicU64,
    /// The position in the last commit's payload: what a restart resumes from.
    committed: AtomicU64,
    /// Whether the last batch was large: the model is catching up.
    bulk: AtomicBool,
    /// Set when applying or committing failed: the writer's buffer may then hold half a batch,
    /// so nothing more is committed; reopening resumes from the last good commit.
    failure: Mutex<Option<String>>,
    /// Commits made since opening (tests count them).
    commits: AtomicU64,
}

/// The writer, applied to but not committed yet ([`Recent`] holds what it has not committed).
struct Writing {
    writer: IndexWriter,
    last_commit: Instant,
}

/// One change to the index, in the order of the events.
enum IndexChange {
    Add(TantivyDocument),
    Delete(tantivy::Term),
}

impl SearchProjector {
    /// Opens (or creates) the index under `<data_dir>/projections/search/` for following the log.
    pub fn open(data_dir: &Path) -> Result<SearchProjector, ProjectionError> {
        SearchProjector::open_with(data_dir, SearchOptions::live())
    }

    /// Opens (or creates) the index under `<data_dir>/projections/search/` with `options`,
    /// after finishing or undoing a swap a crash interrupted ([`projections::swap::recover`]).
    ///
    /// An index of an earlier layout is deleted and the model starts at position 0 and catches
    /// up from the log, as every served model does ([`projections::store::open_served`]).
    pub fn open_with(
        data_dir: &Path,
        options: SearchOptions,
    ) -> Result<SearchProjector, ProjectionError> {
        projections::store::open_served(data_dir, NAME, |path| {
            SearchProjector::open_path(path, options.clone())
        })
    }

    /// Opens (or creates) the index in the directory `path`.
    ///
    /// Fails with [`ProjectionError::Store`] when another writer holds the index (tantivy locks
    /// its directory) and with [`ProjectionError::Layout`] when it is of another layout (its
    /// payload's format or its schema).
    pub fn open_path(
        path: &Path,
        options: SearchOptions,
    ) -> Result<SearchProjector, ProjectionError> {
        std::fs::create_dir_all(path).map_err(|error| {
            ProjectionError::Store(format!("creating {}: {error}", path.display()))
        })?;
        let directory = MmapDirectory::open(path).map_err(store_error)?;
        let (schema, fields) = Fields::schema();
        let index = if Index::exists(&directory).map_err(store_error)? {
            let index = Index::open(directory).map_err(store_error)?;
            let format = payload_format(&index)?;
            if index.schema() != schema || format.is_some_and(|format| format != PAYLOAD_FORMAT) {
                return Err(ProjectionError::Layout {
                    model: NAME,
                    found: format.unwrap_or(0).try_into().unwrap_or(u32::MAX),
                    expected: PAYLOAD_FORMAT as u32,
                });
            }
            index
        } else {
            Index::create(directory, schema, IndexSettings::default()).map_err(store_error)?
        };
        SearchProjector::from_index(index, fields, options)
    }

    /// An index in a temporary directory deleted when the projector is dropped (tests, rebuilds
    /// compared and thrown away).
    pub fn temporary(options: SearchOptions) -> Result<SearchProjector, ProjectionError> {
        let (schema, fields) = Fields::schema();
        let index = Index::create_from_tempdir(schema).map_err(store_error)?;
        SearchProjector::from_index(index, fields, options)
    }

    fn from_index(
        index: Index,
        fields: Fields,
        options: SearchOptions,
    ) -> Result<SearchProjector, ProjectionError> {
        index.tokenizers().register(
            PREFIX_TOKENIZER,
            TextAnalyzer::from(PrefixTokenizer::default()),
        );
        let committed = read_checkpoint(&index)?;
        let search_uncommitted = options.search_uncommitted;
        let writer: IndexWriter = index
            .writer_with_num_threads(options.indexing_threads.max(1), options.writer_heap_bytes)
            .map_err(store_error)?;
        if options.merge_while_indexing {
            writer.set_merge_policy(live_merge_policy(options.segment_docs_max));
        } else {
            writer.set_merge_policy(Box::new(NoMergePolicy));
        }
        let segments = Arc::new(SegmentCache::default());
        let warmer: Weak<dyn Warmer> = Arc::downgrade(&segments) as Weak<dyn Warmer>;
        let reader = index
            .reader_builder()
            .reload_policy(ReloadPolicy::Manual)
            .warmers(vec![warmer])
            .try_into()
            .map_err(store_error)?;
        let model = load_model(&reader.searcher(), &fields)?;
        let shared = Arc::new(Shared {
            reader,
            fields,
            segments,
            options,
            writing: Mutex::new(Writing {
                writer,
                last_commit: Instant::now(),
            }),
            backlog: Mutex::new(Vec::new()),
            model: RwLock::new(model),
            recent: RwLock::new(Recent::new(search_uncommitted)),
            applied: AtomicU64::new(committed),
            committed: AtomicU64::new(committed),
            bulk: AtomicBool::new(false),
            failure: Mutex::new(None),
            commits: AtomicU64::new(0),
        });
        let (stop, stopped) = mpsc::channel::<()>();
        let committer = {
            let shared = Arc::clone(&shared);
            std::thread::Builder::new()
                .name("search-committer".into())
                .spawn(move || committer(&shared, &stopped))
                .map_err(|error| {
                    ProjectionError::Task(format!("spawning the committer: {error}"))
                })?
        };
        Ok(SearchProjector {
            shared,
            stop: Some(stop),
            committer: Some(committer),
        })
    }

    /// The position of the last commit (the checkpoint a restart resumes from): everything up
    /// to it is searchable.
    pub fn committed_position(&self) -> u64 {
        self.shared.committed.load(Ordering::SeqCst)
    }

    /// The options the projector was opened with.
    pub fn options(&self) -> &SearchOptions {
        &self.shared.options
    }

    /// Commits everything applied so far (and reloads the reader) now.
    pub fn commit(&self) -> Result<(), ProjectionError> {
        self.shared.commit_now()
    }

    /// How many commits this instance has made since it was opened.
    pub fn commit_count(&self) -> u64 {
        self.shared.commits.load(Ordering::SeqCst)
    }

    /// The index's searchable segments (each query pays a little per segment).
    pub fn segment_count(&self) -> usize {
        self.shared.reader.searcher().segment_readers().len()
    }

    /// Commits, then merges the segments, oldest first, into as few as hold at most
    /// [`SearchOptions::segment_docs_max`] documents each, and waits for it (after a rebuild). Applying waits
    /// meanwhile; queries do not. The merges keep the last commit's payload, so the checkpoint
    /// is unchanged.
    ///
    /// Why not one segment: a query walks the newest documents first ([`crate::newest`]), and
    /// reaching the end of a long posting list costs a walk of its skip list from the start; in
    /// segments bounded and ordered by time, a page is usually found in the newest, small one,
    /// and the older ones are never opened.
    pub fn merge_segments(&self) -> Result<(), ProjectionError> {
        let mut writing = lock(&self.shared.writing)?;
        self.shared.commit_locked(&mut writing)?;
        // No new background merge may take a segment meanwhile; one already running makes the
        // merge fail, so it is tried again once that one has had time to end.
        writing.writer.set_merge_policy(Box::new(NoMergePolicy));
        let mut attempt = 0;
        let merged = loop {
            attempt += 1;
            let groups = self.merge_groups()?;
            if groups.is_empty() {
                break Ok(());
            }
            let outcome = groups
                .into_iter()
                .try_for_each(|group| writing.writer.merge(&group).wait().map(drop));
            match outcome {
                Ok(()) => break Ok(()),
                Err(_) if attempt < MERGE_ATTEMPTS_MAX => {
                    std::thread::sleep(MERGE_RETRY_PAUSE);
                    self.shared.reader.reload().map_err(store_error)?;
                }
                Err(error) => break Err(store_error(error)),
            }
        };
        if self.shared.options.merge_while_indexing {
            writing
                .writer
                .set_merge_policy(live_merge_policy(self.shared.options.segment_docs_max));
        }
        merged?;
        self.shared.reader.reload().map_err(store_error)
    }

    /// The searchable segments oldest first, in runs of neighbours whose documents add up to
    /// at most [`SearchOptions::segment_docs_max`]: what [`SearchProjector::merge_segments`] merges (runs of
    /// one segment are left alone).
    fn merge_groups(&self) -> Result<Vec<Vec<tantivy::index::SegmentId>>, ProjectionError> {
        self.shared.reader.reload().map_err(store_error)?;
        let searcher = self.shared.reader.searcher();
        let mut segments: Vec<(u64, u32, tantivy::index::SegmentId)> = Vec::new();
        for segment in searcher.segment_readers() {
            let oldest = segment
                .fast_fields()
                .u64("position")
                .map_err(store_error)?
                .min_value();
            segments.push((oldest, segment.num_docs(), segment.segment_id()));
        }
        segments.sort_unstable();
        let mut groups: Vec<Vec<tantivy::index::SegmentId>> = Vec::new();
        let mut current: Vec<tantivy::index::SegmentId> = Vec::new();
        let mut docs = 0u32;
        for (_, segment_docs, id) in segments {
            if !current.is_empty()
                && docs.saturating_add(segment_docs) > self.shared.options.segment_docs_max
            {
                groups.push(std::mem::take(&mut current));
                docs = 0;
            }
            current.push(id);
            docs = docs.saturating_add(segment_docs);
        }
        groups.push(current);
        groups.retain(|group| group.len() > 1);
        Ok(groups)
    }
}

/// The background merges while following the log: tantivy's log merge policy, but no segment
/// above an eighth of `segment_docs_max` is merged again, so merged segments stay near that
/// size and ordered by time (see [`SearchProjector::merge_segments`]).
fn live_merge_policy(segment_docs_max: u32) -> Box<LogMergePolicy> {
    let mut policy = LogMergePolicy::default();
    policy.set_max_docs_before_merge(segment_docs_max as usize / 8);
    Box::new(policy)
}

impl Drop for SearchProjector {
    fn drop(&mut self) {
        // Closing the channel stops the committer; what was not committed is discarded with
        // the writer and applied again from the checkpoint on the next start.
        drop(self.stop.take());
        if let Some(committer) = self.committer.take() {
            let _ = committer.join();
        }
    }
}

impl Projector for SearchProjector {
    fn name(&self) -> &'static str {
        NAME
    }

    fn position(&self) -> u64 {
        self.shared.applied.load(Ordering::SeqCst)
    }

    fn apply(&mut self, batch: &[EventEnvelope]) -> Result<(), ProjectionError> {
        self.shared.apply(batch)
    }

    type Query = SearchQuery;

    /// Answers from the committed index and what was applied since ([`Recent`]): everything
    /// applied is found, so `min_position` needs no commit.
    fn query(
        &self,
        request: &QueryRequest<SearchQuery>,
        _now: Timestamp,
    ) -> Result<Value, QueryError> {
        crate::query::search(&self.shared, request)
    }

    fn dump(&self) -> Result<Dump, ProjectionError> {
        self.shared.commit_now()?;
        self.shared.dump()
    }

    fn flush(&self) -> Result<(), ProjectionError> {
        self.shared.commit_now()
    }

    fn finish_rebuild(&self) -> Result<(), ProjectionError> {
        // Commits, then few segments, bounded and ordered by time.
        self.merge_segments()
    }
}

impl Shared {
    /// Applies `batch` to the model and to what queries see at once, then hands its index
    /// changes to the writer — or, while a commit holds the writer, leaves them queued for the
    /// commit or the next batch to hand over: a batch never waits for a commit (one took 150 ms
    /// at 5,000 messages/s and held every search answer back that long, docs/speed-work.md).
    fn apply(&self, batch: &[EventEnvelope]) -> Result<(), ProjectionError> {
        self.refuse_after_failure()?;
        let fresh = unapplied(batch, self.applied.load(Ordering::SeqCst))?;
        let Some(last) = fresh.last() else {
            return Ok(());
        };
        let (held, queued) = {
            let mut model = write(&self.model)?;
            let mut recent = write(&self.recent)?;
            let mut backlog = lock(&self.backlog)?;
            let applied = fresh.iter().try_for_each(|envelope| {
                self.apply_event(&mut model, &mut recent, &mut backlog, envelope)
            });
            if let Err(error) = applied {
                *lock(&self.failure)? = Some(error.to_string());
                return Err(error);
            }
            self.applied.store(last.position, Ordering::SeqCst);
            (recent.len(), backlog.len())
        };
        self.bulk
            .store(fresh.len() >= BULK_BATCH_EVENTS_MIN, Ordering::SeqCst);
        let mut writing = match self.writing.try_lock() {
            Ok(writing) => writing,
            Err(TryLockError::WouldBlock) if queued < BACKLOG_CHANGES_MAX => return Ok(()),
            Err(TryLockError::WouldBlock) => lock(&self.writing)?,
            Err(TryLockError::Poisoned(error)) => return Err(poisoned(error)),
        };
        self.hand_over_backlog(&mut writing)?;
        // Commits on the cadence are the committer thread's, so that a batch never waits for
        // one; only the bound on what is held in memory makes a batch commit.
        if held >= self.options.pending_messages_max {
            self.commit_locked(&mut writing)?;
        }
        Ok(())
    }

    /// The error of an earlier failed write, if any.
    fn refuse_after_failure(&self) -> Result<(), ProjectionError> {
        match &*lock(&self.failure)? {
            Some(failure) => Err(ProjectionError::Store(format!(
                "an earlier write failed ({failure}); reopen the index"
            ))),
            None => Ok(()),
        }
    }

    /// Gives the writer the queued index changes, in order.
    fn hand_over_backlog(&self, writing: &mut Writing) -> Result<(), ProjectionError> {
        let changes = std::mem::take(&mut *lock(&self.backlog)?);
        for change in changes {
            let added = match change {
                IndexChange::Add(document) => writing.writer.add_document(document).map(drop),
                IndexChange::Delete(term) => {
                    writing.writer.delete_term(term);
                    Ok(())
                }
            };
            if let Err(error) = added {
                let error = store_error(error);
                *lock(&self.failure)? = Some(error.to_string());
                return Err(error);
            }
        }
        Ok(())
    }

    fn apply_event(
        &self,
        model: &mut Model,
        recent: &mut Recent,
        changes: &mut Vec<IndexChange>,
        envelope: &EventEnvelope,
    ) -> Result<(), ProjectionError> {
        let position = envelope.position;
        model.apply(&envelope.event);
        match &envelope.event {
            Event::MessageSent {
                room_id,
                message_id,
                author,
                body,
                sent_at,
                ..
            }
            | Event::AutoReplySent {
                room_id,
                message_id,
                author,
                body,
                sent_at,
                ..
            } => {
                let meta = MessageMeta {
                    room_id: *room_id,
                    author: author.clone(),
                    sent_at: *sent_at,
                    position,
                };
                self.add_message(recent, changes, *message_id, meta, body, position);
            }
            Event::MessageEdited {
                message_id, body, ..
            } => {
                // The latest body replaces the document (R-M3); room, author and time stay.
                // An earlier body may be committed, or be committed before this edit is.
                match self.message_meta(recent, message_id)? {
                    Some(meta) => {
                        recent.mark_stale(&meta, position);
                        changes.push(IndexChange::Delete(self.fields.message_term(message_id)));
                        self.add_message(recent, changes, *message_id, meta, body, position);
                    }
                    None => {
                        warn!(%message_id, position = envelope.position, "edit of a message search does not hold")
                    }
                }
            }
            Event::MessageDeleted { message_id, .. } => {
                // Deleted messages are not found (R-M4): nor is the committed document until
                // the commit applies the delete.
                if let Some(meta) = self.message_meta(recent, message_id)? {
                    recent.mark_stale(&meta, position);
                }
                recent.remove(message_id);
                changes.push(IndexChange::Delete(self.fields.message_term(message_id)));
            }
            _ => {}
        }
        Ok(())
    }

    fn add_message(
        &self,
        recent: &mut Recent,
        changes: &mut Vec<IndexChange>,
        message_id: MessageId,
        meta: MessageMeta,
        body: &str,
        position: u64,
    ) {
        let message = MessageDoc {
            message_id,
            meta,
            body: body.to_owned(),
        };
        changes.push(IndexChange::Add(self.fields.message_document(&message)));
        recent.put(message, position);
    }

    /// Room, author, time and position of a live message: from the messages applied since the
    /// last commit, else from the committed index.
    fn message_meta(
        &self,
        recent: &Recent,
        message_id: &MessageId,
    ) -> Result<Option<MessageMeta>, ProjectionError> {
        if let Some(meta) = recent.meta(message_id) {
            return Ok(Some(meta.clone()));
        }
        let searcher = self.reader.searcher();
        let query = TermQuery::new(
            self.fields.message_term(message_id),
            IndexRecordOption::Basic,
        );
        let found = searcher
            .search(&query, &DocSetCollector)
            .map_err(store_error)?;
        match found.into_iter().next() {
            Some(address) => Ok(Some(read_message(&searcher, &self.fields, address)?.meta)),
            None => Ok(None),
        }
    }

    /// Commits now if anything was applied since the last commit.
    fn commit_now(&self) -> Result<(), ProjectionError> {
        let mut writing = lock(&self.writing)?;
        self.commit_locked(&mut writing)
    }

    /// Commits everything applied so far. The writer takes the backlog, and the rooms and
    /// users changed since the last commit, under the model's lock, so the commit is the model
    /// at one position; the commit itself runs without that lock, and batches applied
    /// meanwhile queue in the backlog.
    fn commit_locked(&self, writing: &mut Writing) -> Result<(), ProjectionError> {
        self.refuse_after_failure()?;
        let checkpoint = {
            let mut model = write(&self.model)?;
            let checkpoint = self.applied.load(Ordering::SeqCst);
            if checkpoint == self.committed.load(Ordering::SeqCst) {
                writing.last_commit = Instant::now();
                return Ok(());
            }
            self.hand_over_backlog(writing)?;
            self.hand_over_records(writing, &mut model)
                .map(|()| checkpoint)
        };
        let result = checkpoint
            .and_then(|checkpoint| self.write_commit(writing, checkpoint).map(|()| checkpoint));
        match result {
            Ok(checkpoint) => {
                self.committed.store(checkpoint, Ordering::SeqCst);
                self.commits.fetch_add(1, Ordering::SeqCst);
                writing.last_commit = Instant::now();
                // After the reload (in `write_commit`): a query in between finds these
                // messages in both parts, with the same keys, and keeps one of each.
                write(&self.recent)?.forget_up_to(checkpoint);
                // What was applied during the commit goes to the writer now.
                self.hand_over_backlog(writing)
            }
            Err(error) => {
                *lock(&self.failure)? = Some(error.to_string());
                Err(error)
            }
        }
    }

    /// Puts the room and user records changed since the last commit into the writer.
    fn hand_over_records(
        &self,
        writing: &mut Writing,
        model: &mut Model,
    ) -> Result<(), ProjectionError> {
        let (rooms, users) = model.take_dirty();
        for room_id in rooms {
            let Some(room) = model.room(&room_id) else {
                continue;
            };
            let stored = StoredRoom {
                room_id,
                room: room.clone(),
            };
            let json = to_json(&stored)?;
            writing
                .writer
                .delete_term(self.fields.room_record_term(&room_id));
            writing
                .writer
                .add_document(self.fields.room_document(&room_id, &json))
                .map_err(store_error)?;
        }
        for user_id in users {
            let Some(display_name) = model.display_name(&user_id) else {
                continue;
            };
            let stored = StoredUser {
                user_id: user_id.clone(),
                display_name: display_name.to_owned(),
            };
            let json = to_json(&stored)?;
            writing
                .writer
                .delete_term(self.fields.user_record_term(&user_id));
            writing
                .writer
                .add_document(self.fields.user_document(&user_id, &json))
                .map_err(store_error)?;
        }
        Ok(())
    }

    fn write_commit(&self, writing: &mut Writing, checkpoint: u64) -> Result<(), ProjectionError> {
        let started = Instant::now();
        let mut prepared = writing.writer.prepare_commit().map_err(store_error)?;
        let prepared_at = started.elapsed();
        prepared.set_payload(&checkpoint_payload(checkpoint));
        prepared.commit().map_err(store_error)?;
        let committed_at = started.elapsed();
        self.reader.reload().map_err(store_error)?;
        debug!(
            prepare_ms = prepared_at.as_secs_f64() * 1e3,
            commit_ms = (committed_at - prepared_at).as_secs_f64() * 1e3,
            reload_ms = (started.elapsed() - committed_at).as_secs_f64() * 1e3,
            "search: committed"
        );
        Ok(())
    }

    /// Commits when the interval has passed (the committer thread's tick).
    fn commit_if_due(&self) -> Result<(), ProjectionError> {
        let mut writing = lock(&self.writing)?;
        if lock(&self.failure)?.is_some()
            || self.applied.load(Ordering::SeqCst) == self.committed.load(Ordering::SeqCst)
            || !self.is_due(&writing)
        {
            return Ok(());
        }
        self.commit_locked(&mut writing)
    }

    /// Whether the commit interval (bulk or live) has passed since the last commit.
    fn is_due(&self, writing: &Writing) -> bool {
        let interval = if self.bulk.load(Ordering::SeqCst) {
            self.options.bulk_commit_interval
        } else {
            self.options.commit_interval
        };
        writing.last_commit.elapsed() >= interval
    }

    /// The whole committed model: every live message, every room and user, the checkpoint.
    fn dump(&self) -> Result<Dump, ProjectionError> {
        let searcher = self.reader.searcher();
        let query = TermQuery::new(
            self.fields.doc_type_term(DOC_MESSAGE),
            IndexRecordOption::Basic,
        );
        let addresses = searcher
            .search(&query, &DocSetCollector)
            .map_err(store_error)?;
        let mut entries: BTreeMap<Vec<u8>, Vec<u8>> = BTreeMap::new();
        for address in addresses {
            let message = read_message(&searcher, &self.fields, address)?;
            let value = json!({
                "room_id": message.meta.room_id.to_string(),
                "author": message.meta.author.as_str(),
                "sent_at": message.meta.sent_at.millis(),
                "position": message.meta.position,
                "body": message.body,
            });
            let key = format!("m/{}", message.message_id).into_bytes();
            if entries.insert(key, to_json(&value)?.into_bytes()).is_some() {
                return Err(ProjectionError::Store(format!(
                    "message {} is indexed twice",
                    message.message_id
                )));
            }
        }
        let model = read(&self.model)?;
        for (room_id, room) in model.rooms_sorted() {
            entries.insert(
                format!("r/{room_id}").into_bytes(),
                to_json(room)?.into_bytes(),
            );
        }
        for (user_id, display_name) in model.users_sorted() {
            entries.insert(
                format!("u/{user_id}").into_bytes(),
                to_json(display_name)?.into_bytes(),
            );
        }
        entries.insert(
            b"\xffcheckpoint".to_vec(),
            self.committed.load(Ordering::SeqCst).to_be_bytes().to_vec(),
        );
        Ok(entries.into_iter().collect())
    }
}

/// The committer thread: commits what is due every [`COMMITTER_TICK`] until its channel closes.
fn committer(shared: &Shared, stopped: &mpsc::Receiver<()>) {
    loop {
        match stopped.recv_timeout(COMMITTER_TICK) {
            Err(mpsc::RecvTimeoutError::Timeout) => {}
            Ok(()) | Err(mpsc::RecvTimeoutError::Disconnected) => return,
        }
        if let Err(error) = shared.commit_if_due() {
            // The failure is recorded in the writer state; the next apply reports it.
            warn!(%error, "search: commit failed");
        }
    }
}

/// Reads a message document.
pub(crate) fn read_message(
    searcher: &Searcher,
    fields: &Fields,
    address: DocAddress,
) -> Result<MessageDoc, ProjectionError> {
    let document: TantivyDocument = searcher.doc(address).map_err(store_error)?;
    let text = |field, name: &str| {
        document
            .get_first(field)
            .and_then(|value| value.as_str().map(str::to_owned))
            .ok_or_else(|| ProjectionError::Store(format!("a message document lacks {name}")))
    };
    let message_id = text(fields.message_id, "message_id")?;
    let room_id = text(fields.room_id, "room_id")?;
    let author = text(fields.author, "author")?;
    let body = text(fields.body, "body")?;
    let sent_at = document
        .get_first(fields.sent_at)
        .and_then(|value| value.as_i64())
        .ok_or_else(|| ProjectionError::Store("a message document lacks sent_at".into()))?;
    let position = document
        .get_first(fields.position)
        .and_then(|value| value.as_u64())
        .ok_or_else(|| ProjectionError::Store("a message document lacks position".into()))?;
    let corrupt = |what: &str| ProjectionError::Store(format!("a message document's {what}"));
    Ok(MessageDoc {
        message_id: MessageId::parse(&message_id).map_err(|_| corrupt("message_id"))?,
        meta: MessageMeta {
            room_id: RoomId::parse(&room_id).map_err(|_| corrupt("room_id"))?,
            author: UserId::parse(&author).map_err(|_| corrupt("author"))?,
            sent_at: Timestamp::from_millis(sent_at),
            position,
        },
        body,
    })
}

/// The rooms and users of the last commit.
fn load_model(searcher: &Searcher, fields: &Fields) -> Result<Model, ProjectionError> {
    let records = |doc_type: &str| -> Result<Vec<String>, ProjectionError> {
        let query = TermQuery::new(fields.doc_type_term(doc_type), IndexRecordOption::Basic);
        let addresses = searcher
            .search(&query, &DocSetCollector)
            .map_err(store_error)?;
        addresses
            .into_iter()
            .map(|address| {
                let document: TantivyDocument = searcher.doc(address).map_err(store_error)?;
                document
                    .get_first(fields.record)
                    .and_then(|value| value.as_str().map(str::to_owned))
                    .ok_or_else(|| ProjectionError::Store("a record document lacks record".into()))
            })
            .collect()
    };
    let mut rooms: Vec<(RoomId, RoomRecord)> = Vec::new();
    for json in records(DOC_ROOM)? {
        let stored: StoredRoom = from_json(&json)?;
        rooms.push((stored.room_id, stored.room));
    }
    let mut users: Vec<(UserId, String)> = Vec::new();
    for json in records(DOC_USER)? {
        let stored: StoredUser = from_json(&json)?;
        users.push((stored.user_id, stored.display_name));
    }
    Ok(Model::from_records(rooms, users))
}

/// The commit payload: `{"format": 1, "position": N}`.
fn checkpoint_payload(position: u64) -> String {
    json!({"format": PAYLOAD_FORMAT, "position": position}).to_string()
}

/// The layout recorded in the last commit's payload (None: nothing committed yet).
fn payload_format(index: &Index) -> Result<Option<u64>, ProjectionError> {
    let metas = index.load_metas().map_err(store_error)?;
    let Some(payload) = metas.payload else {
        return Ok(None);
    };
    let value: Value = from_json(&payload)?;
    Ok(Some(
        value.get("format").and_then(Value::as_u64).unwrap_or(0),
    ))
}

/// The position in the last commit's payload (0 for a new index).
fn read_checkpoint(index: &Index) -> Result<u64, ProjectionError> {
    let metas = index.load_metas().map_err(store_error)?;
    let Some(payload) = metas.payload else {
        return Ok(0);
    };
    let value: Value = from_json(&payload)?;
    if value.get("format").and_then(Value::as_u64) != Some(PAYLOAD_FORMAT) {
        return Err(ProjectionError::Store(format!(
            "unknown search checkpoint payload {payload:?}"
        )));
    }
    value
        .get("position")
        .and_then(Value::as_u64)
        .ok_or_else(|| ProjectionError::Store(format!("search checkpoint payload {payload:?}")))
}

fn to_json<T: serde::Serialize + ?Sized>(value: &T) -> Result<String, ProjectionError> {
    serde_json::to_string(value).map_err(|error| ProjectionError::Value {
        key: "search".into(),
        message: error.to_string(),
    })
}

fn from_json<T: serde::de::DeserializeOwned>(json: &str) -> Result<T, ProjectionError> {
    serde_json::from_str(json).map_err(|error| ProjectionError::Value {
        key: "search".into(),
        message: error.to_string(),
    })
}

/// A tantivy error as a store error.
pub(crate) fn store_error(error: impl std::fmt::Display) -> ProjectionError {
    ProjectionError::Store(format!("search index: {error}"))
}

fn poisoned<T>(_: PoisonError<T>) -> ProjectionError {
    ProjectionError::Task("the search model's lock was poisoned by a panic".into())
}

fn lock<T>(mutex: &Mutex<T>) -> Result<MutexGuard<'_, T>, ProjectionError> {
    mutex.lock().map_err(poisoned)
}

pub(crate) fn read<T>(lock: &RwLock<T>) -> Result<RwLockReadGuard<'_, T>, ProjectionError> {
    lock.read().map_err(poisoned)
}

fn write<T>(lock: &RwLock<T>) -> Result<RwLockWriteGuard<'_, T>, ProjectionError> {
    lock.write().map_err(poisoned)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use domain::CommandId;

    fn id(n: u64) -> String {
        format!("00000000-0000-4000-8000-{n:012}")
    }

    fn envelope(position: u64, event: Event) -> EventEnvelope {
        EventEnvelope {
            position,
            stream: format!("room-{}", id(100)),
            version: position,
            event_id: uuid::Uuid::parse_str(&id(position)).unwrap(),
            command_id: CommandId::parse(&id(position)).unwrap(),
            actor: "alice".into(),
            recorded_at: Timestamp::from_millis(1_000),
            event,
        }
    }

    fn sent(position: u64, body: &str) -> EventEnvelope {
        envelope(
            position,
            Event::MessageSent {
                room_id: RoomId::parse(&id(100)).unwrap(),
                message_id: MessageId::parse(&id(position)).unwrap(),
                author: UserId::parse("alice").unwrap(),
                body: body.into(),
                reply_to: None,
                attachments: vec![],
                sent_at: Timestamp::from_millis(1_000),
            },
        )
    }

    /// Whether the committed index holds a message with `word` in its body.
    fn committed_has(projector: &SearchProjector, word: &str) -> bool {
        let searcher = projector.shared.reader.searcher();
        let term = tantivy::Term::from_field_text(projector.shared.fields.body, word);
        let query = TermQuery::new(term, IndexRecordOption::Basic);
        !searcher
            .search(&query, &DocSetCollector)
            .unwrap()
            .is_empty()
    }

    /// A batch applied while a commit holds the writer does not wait for it: the model and
    /// what queries see take it at once, its index changes queue, and the commit (or the next
    /// batch) hands them to the writer; the commit's checkpoint never covers what it has not.
    #[test]
    fn a_batch_applied_during_a_commit_queues_its_index_changes() {
        let mut projector = SearchProjector::temporary(SearchOptions {
            commit_interval: Duration::from_secs(3600),
            bulk_commit_interval: Duration::from_secs(3600),
            ..SearchOptions::live()
        })
        .unwrap();
        projector.apply(&[sent(1, "before the commit")]).unwrap();
        {
            // As a commit does while it runs.
            let shared = Arc::clone(&projector.shared);
            let _commit = lock(&shared.writing).unwrap();
            projector.apply(&[sent(2, "during the commit")]).unwrap();
            assert_eq!(projector.position(), 2);
            assert_eq!(read(&projector.shared.recent).unwrap().len(), 2);
            assert_eq!(lock(&projector.shared.backlog).unwrap().len(), 1);
        }
        projector.shared.commit_now().unwrap();
        assert_eq!(projector.committed_position(), 2);
        assert!(lock(&projector.shared.backlog).unwrap().is_empty());
        assert_eq!(read(&projector.shared.recent).unwrap().len(), 0);
        assert!(committed_has(&projector, "during"));
        assert!(committed_has(&projector, "before"));

        // The next batch takes what queued while the writer was held, in order.
        {
            let shared = Arc::clone(&projector.shared);
            let _commit = lock(&shared.writing).unwrap();
            projector.apply(&[sent(3, "third")]).unwrap();
        }
        projector.apply(&[sent(4, "fourth")]).unwrap();
        assert!(lock(&projector.shared.backlog).unwrap().is_empty());
        projector.shared.commit_now().unwrap();
        assert_eq!(projector.committed_position(), 4);
        assert!(committed_has(&projector, "third") && committed_has(&projector, "fourth"));
    }
}
