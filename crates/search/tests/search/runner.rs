//! The search model under the real projection runtime, on the in-process bus, fed by a small
//! stand-in for the writer's `log.read` and live `evt.>` publication: history comes through
//! `log.read`, live events are applied without a `log.read` each (the applied position is what
//! the runner checks gaps against), and `min_position` answers see the write.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use bus::{Bus, Headers};
use clock::Clock;
use projections::{RunOptions, Runner};
use protocol::{
    Format, LogReadReply, LogReadRequest, RecordedEvent, HEADER_CONTENT_TYPE, HEADER_POSITION,
    HEADER_STREAM, HEADER_VERSION,
};
use search::{SearchOptions, SearchProjector};
use serde_json::{json, Value};
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::support::World;

const PREFIX: &str = "parlor";

/// Answers `parlor.log.read` from a list of records and counts the requests.
struct LogServer {
    events: Arc<Mutex<Vec<RecordedEvent>>>,
    reads: Arc<Mutex<u64>>,
    bus: Bus,
    task: JoinHandle<()>,
}

impl LogServer {
    async fn start(bus: &Bus) -> LogServer {
        let mut requests = bus
            .queue_subscribe(&format!("{PREFIX}.log.read"), "test-log")
            .await
            .unwrap();
        let events: Arc<Mutex<Vec<RecordedEvent>>> = Arc::default();
        let reads: Arc<Mutex<u64>> = Arc::default();
        let (served, counter, server) = (Arc::clone(&events), Arc::clone(&reads), bus.clone());
        let task = tokio::spawn(async move {
            while let Some(request) = requests.next().await {
                let format = Format::from_content_type(request.headers.get(HEADER_CONTENT_TYPE))
                    .unwrap_or(Format::Json);
                let read = LogReadRequest::decode(&request.payload, format).unwrap();
                let reply = {
                    let log = served.lock().unwrap();
                    let start = usize::try_from(read.from - 1).unwrap().min(log.len());
                    let end = start.saturating_add(read.max as usize).min(log.len());
                    LogReadReply {
                        events: log[start..end].to_vec(),
                        head: log.len() as u64,
                    }
                };
                *counter.lock().unwrap() += 1;
                let headers = Headers::new().with(HEADER_CONTENT_TYPE, format.content_type());
                let payload = reply.encode(format).unwrap();
                let _ = server.respond(&request, headers, payload).await;
            }
        });
        LogServer {
            events,
            reads,
            bus: bus.clone(),
            task,
        }
    }

    /// Appends records to the log and publishes them as the writer does.
    async fn commit(&self, records: &[RecordedEvent]) {
        self.events.lock().unwrap().extend_from_slice(records);
        for record in records {
            let format = Format::Bincode;
            let headers = Headers::new()
                .with(HEADER_POSITION, record.position.to_string())
                .with(HEADER_STREAM, record.stream.clone())
                .with(HEADER_VERSION, record.version.to_string())
                .with(HEADER_CONTENT_TYPE, format.content_type());
            let subject = format!("{PREFIX}.evt.{}", record.type_name());
            self.bus
                .publish(&subject, headers, record.encode(format).unwrap())
                .await
                .unwrap();
        }
    }

    fn reads(&self) -> u64 {
        *self.reads.lock().unwrap()
    }
}

impl Drop for LogServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Asks the search model over the bus (retrying while the runner has not subscribed yet).
async fn query(bus: &Bus, request: Value) -> Value {
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let reply = bus
            .request(
                &format!("{PREFIX}.query.search"),
                Headers::new(),
                request.to_string(),
                Duration::from_secs(10),
            )
            .await;
        match reply {
            Ok(reply) => return serde_json::from_slice(&reply.payload).unwrap(),
            Err(bus::BusError::NoResponders) if std::time::Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            Err(error) => panic!("query {request}: {error}"),
        }
    }
}

/// Stops a runner and checks that it stopped without an error.
async fn stopped_cleanly(
    stop: &watch::Sender<bool>,
    task: JoinHandle<Result<(), projections::ProjectionError>>,
) {
    stop.send(true).unwrap();
    tokio::time::timeout(Duration::from_secs(10), task)
        .await
        .unwrap()
        .unwrap()
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_runner_catches_up_follows_live_and_reads_its_writes() {
    let bus = Bus::in_process();
    let log = LogServer::start(&bus).await;
    let mut world = World::new();
    let room = world.group("alice", "Planning", &["bob"]);
    world.say("alice", room, "history before the start");
    log.commit(&world.log).await;
    let history = world.head();

    let mut options = RunOptions::new(PREFIX);
    // Long: a probe now and then would blur the count of reads below.
    options.idle_probe_interval = Duration::from_secs(60);
    let model = SearchProjector::temporary(SearchOptions::live()).unwrap();
    let runner = Runner::new(model, bus.clone(), Clock::system(), options);
    let (stop, stopped) = watch::channel(false);
    let task = tokio::spawn(runner.run(stopped));

    let answer = query(
        &bus,
        json!({"op": "search", "caller": "bob", "q": "history", "min_position": history}),
    )
    .await;
    assert_eq!(answer["ok"], true, "{answer}");
    assert_eq!(answer["data"]["messages"].as_array().unwrap().len(), 1);
    let reads_after_catch_up = log.reads();
    assert!(reads_after_catch_up >= 1);

    // Live events, one command at a time, each read back at once with min_position.
    for index in 0..20 {
        let before = world.head();
        world.say("bob", room, &format!("live message {index}"));
        let records: Vec<RecordedEvent> = world.log[usize::try_from(before).unwrap()..].to_vec();
        log.commit(&records).await;
        let answer = query(
            &bus,
            json!({
                "op": "search", "caller": "alice", "q": format!("live {index}"),
                "min_position": world.head(), "limit": 1,
            }),
        )
        .await;
        assert_eq!(answer["ok"], true, "{answer}");
        let snippet = answer["data"]["messages"][0]["snippet"].as_str().unwrap();
        assert!(
            snippet.contains(&format!("<mark>{index}</mark>")),
            "{snippet}"
        );
        assert!(answer["position"].as_u64().unwrap() >= world.head());
    }
    // Buffered (not yet committed) events did not make the runner think it had a gap.
    assert_eq!(
        log.reads(),
        reads_after_catch_up,
        "live events needed log.read"
    );

    // A non-member learns nothing, not even that the room exists.
    let answer = query(
        &bus,
        json!({"op": "search", "caller": "carol", "q": "live", "room_id": room.to_string()}),
    )
    .await;
    assert_eq!(answer["ok"], false);
    assert_eq!(answer["error"]["code"], "not_found");

    stopped_cleanly(&stop, task).await;
}

/// A query with `min_position` is answered once the position is applied: what the index has
/// not committed is searched in memory, so the query neither waits for a commit nor makes one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_query_with_min_position_is_answered_without_a_commit() {
    let bus = Bus::in_process();
    let log = LogServer::start(&bus).await;
    let mut world = World::new();
    let room = world.group("alice", "Planning", &["bob"]);
    log.commit(&world.log).await;

    // No scheduled commit within the test.
    let mut search_options = SearchOptions::live();
    search_options.commit_interval = Duration::from_secs(3600);
    search_options.bulk_commit_interval = Duration::from_secs(3600);
    let model = SearchProjector::temporary(search_options).unwrap();
    let runner = Runner::new(model, bus.clone(), Clock::system(), RunOptions::new(PREFIX));
    let shared = runner.model();
    let (stop, stopped) = watch::channel(false);
    let task = tokio::spawn(runner.run(stopped));

    let before = world.head();
    world.say("alice", room, "the first of two");
    log.commit(&world.log[usize::try_from(before).unwrap()..])
        .await;
    let first = world.head();
    let answer = query(
        &bus,
        json!({"op": "search", "caller": "bob", "q": "first", "min_position": first}),
    )
    .await;
    assert_eq!(answer["ok"], true, "{answer}");
    assert_eq!(answer["data"]["messages"].as_array().unwrap().len(), 1);
    assert!(answer["position"].as_u64().unwrap() >= first);
    let committed = shared.read(|model| model.committed_position()).unwrap();
    assert!(
        committed < first,
        "the query made a commit (at {committed})"
    );

    stopped_cleanly(&stop, task).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_live_rebuild_uses_the_bulk_settings_and_swaps_in_an_equal_index() {
    use projections::live_rebuild::request_rebuild;
    use projections::{store_path, LiveRebuild, OpenFor, OpenModel, Projector as _};

    let bus = Bus::in_process();
    let log = LogServer::start(&bus).await;
    let mut world = World::new();
    let room = world.group("alice", "Planning", &["bob"]);
    for index in 0..300 {
        world.say("alice", room, &format!("history message {index}"));
    }
    log.commit(&world.log).await;
    let dir = testkit::TempDataDir::new();
    let opened: Arc<Mutex<Vec<OpenFor>>> = Arc::default();
    let open: OpenModel<SearchProjector> = {
        let opened = Arc::clone(&opened);
        Arc::new(move |path, purpose| {
            opened.lock().unwrap().push(purpose);
            let options = match purpose {
                OpenFor::Serving => SearchOptions::live(),
                OpenFor::Rebuilding => SearchOptions::rebuild(),
            };
            SearchProjector::open_path(path, options)
        })
    };
    let runner = Runner::new(
        SearchProjector::open(dir.path()).unwrap(),
        bus.clone(),
        Clock::system(),
        RunOptions::new(PREFIX),
    )
    .with_live_rebuild(LiveRebuild {
        directory: store_path(dir.path(), "search"),
        open,
    });
    let position = runner.position();
    let model = runner.model();
    let (stop, stopped) = watch::channel(false);
    let task = tokio::spawn(runner.run(stopped));
    let history = world.head();
    let caught_up = query(
        &bus,
        json!({"op": "search", "caller": "bob", "q": "history", "min_position": history}),
    )
    .await;
    assert_eq!(caught_up["ok"], true, "{caught_up}");

    let mut rebuild = request_rebuild(&bus, PREFIX, "search", Duration::from_secs(10))
        .await
        .unwrap();
    // Live messages while it rebuilds.
    for index in 0..20 {
        let before = usize::try_from(world.head()).unwrap();
        world.say("bob", room, &format!("during the rebuild {index}"));
        log.commit(&world.log[before..]).await;
    }
    let done = tokio::time::timeout(Duration::from_secs(120), async {
        loop {
            let report = rebuild.next(Duration::from_secs(30)).await.unwrap();
            if report.done {
                return report;
            }
        }
    })
    .await
    .unwrap();
    assert!(done.position >= history);
    assert_eq!(
        *opened.lock().unwrap(),
        [OpenFor::Rebuilding, OpenFor::Serving],
        "built with the bulk settings, reopened with the live ones"
    );
    let before = usize::try_from(world.head()).unwrap();
    world.say("alice", room, "after the swap");
    log.commit(&world.log[before..]).await;
    let head = world.head();
    let answer = query(
        &bus,
        json!({"op": "search", "caller": "bob", "q": "after swap", "min_position": head}),
    )
    .await;
    assert_eq!(
        answer["data"]["messages"].as_array().unwrap().len(),
        1,
        "{answer}"
    );
    assert_eq!(*position.borrow(), head);
    let expected = crate::support::model_of(&world);
    assert_eq!(
        model.read(|m| m.digest().unwrap()).unwrap(),
        expected.digest().unwrap(),
        "the swapped-in index equals a rebuild of the whole log"
    );
    stop.send(true).unwrap();
    tokio::time::timeout(Duration::from_secs(10), task)
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert!(!dir.path().join("projections/search.rebuild").exists());
}
