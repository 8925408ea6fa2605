//! The log follower over a real nats-server: a gap in live events closed from the log, a
//! duplicate skipped, a dropped last event found by the idle probe, a hub receiver that lags
//! caught up, and events appended while NATS was down recovered after the reconnect.
#![allow(clippy::unwrap_used)]

use std::sync::{Arc, Mutex};
use std::time::Duration;

use bus::chain::chained_hash;
use bus::{Bus, EventHub, FollowOptions, Headers, LogFollower};
use domain::{CommandId, Event, Timestamp, UserId, UserKind};
use protocol::{
    Format, LogReadReply, LogReadRequest, RecordedEvent, Sha256, HEADER_CONTENT_TYPE,
    HEADER_POSITION, HEADER_STREAM, HEADER_VERSION,
};
use testkit::NatsServer;
use tokio::task::JoinHandle;

const PREFIX: &str = "parlor";

/// How long a test waits for events that must come.
const WAIT_MAX: Duration = Duration::from_secs(20);

/// A probe interval long enough never to fire in a test: only gaps and reconnects read the log.
const NEVER: Duration = Duration::from_secs(3600);

fn event(position: u64) -> RecordedEvent {
    RecordedEvent {
        position,
        stream: format!("user-u{position}"),
        version: 1,
        event_id: uuid::Uuid::from_u128(u128::from(position)),
        command_id: CommandId(uuid::Uuid::from_u128(u128::from(position) + 1_000_000)),
        actor: "service:test".into(),
        recorded_at: Timestamp::from_millis(0),
        event: Event::UserRegistered {
            user_id: UserId::parse(&format!("u{position}")).unwrap(),
            display_name: format!("User {position}"),
            kind: UserKind::Client,
        },
        hash: Sha256([0; 32]),
        raw: None,
    }
}

/// A stand-in for the writer: answers `log.read` from a vector and publishes on request.
struct FakeLog {
    bus: Bus,
    events: Arc<Mutex<Vec<RecordedEvent>>>,
    reads: Arc<Mutex<u64>>,
    task: JoinHandle<()>,
}

impl FakeLog {
    async fn start(bus: &Bus) -> FakeLog {
        let mut requests = bus
            .queue_subscribe(&format!("{PREFIX}.log.read"), "fake-log")
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
                let _ = server
                    .respond(&request, headers, reply.encode(format).unwrap())
                    .await;
            }
        });
        FakeLog {
            bus: bus.clone(),
            events,
            reads,
            task,
        }
    }

    /// Appends the next `count` events without publishing them; returns the new head.
    fn append(&self, count: u64) -> Vec<RecordedEvent> {
        let mut log = self.events.lock().unwrap();
        let mut added = Vec::new();
        for _ in 0..count {
            let mut next = event(log.len() as u64 + 1);
            // Chained as the writer's log chains them, so that live events are taken.
            let previous = log.last().map_or(Sha256([0; 32]), |last| last.hash);
            next.hash = chained_hash(&previous, &next).unwrap();
            log.push(next.clone());
            added.push(next);
        }
        added
    }

    async fn publish(&self, record: &RecordedEvent) {
        let format = Format::Bincode;
        let headers = Headers::new()
            .with(HEADER_POSITION, record.position.to_string())
            .with(HEADER_STREAM, record.stream.clone())
            .with(HEADER_VERSION, record.version.to_string())
            .with(HEADER_CONTENT_TYPE, format.content_type());
        self.bus
            .publish(
                &format!("{PREFIX}.evt.{}", record.type_name()),
                headers,
                record.encode(format).unwrap(),
            )
            .await
            .unwrap();
    }

    fn reads(&self) -> u64 {
        *self.reads.lock().unwrap()
    }
}

impl Drop for FakeLog {
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn options(idle_probe_interval: Duration) -> FollowOptions {
    let mut options = FollowOptions::new(PREFIX);
    options.idle_probe_interval = idle_probe_interval;
    options.timeout = Duration::from_secs(2);
    options.page_events = 7;
    options
}

/// Takes events from `follower` until its cursor reaches `until`, checking that each position
/// comes exactly once and in order.
async fn collect(follower: &mut LogFollower, until: u64, seen: &mut Vec<u64>) {
    let deadline = tokio::time::Instant::now() + WAIT_MAX;
    while follower.cursor() < until {
        let batch = tokio::time::timeout_at(deadline, follower.next())
            .await
            .unwrap_or_else(|_| panic!("stuck at {} waiting for {until}", follower.cursor()));
        match batch {
            Ok(events) => seen.extend(events.iter().map(|event| event.position)),
            Err(error) => eprintln!("passing failure: {error}"),
        }
    }
    assert_eq!(follower.cursor(), until);
}

fn assert_exactly_once(seen: &[u64], head: u64) {
    let expected: Vec<u64> = (1..=head).collect();
    assert_eq!(seen, expected.as_slice());
}

async fn connect(server: &NatsServer, name: &str) -> Bus {
    Bus::connect(&server.url(), name).await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_gap_in_live_events_is_closed_from_the_log_and_a_duplicate_skipped() {
    let server = NatsServer::start();
    let writer = connect(&server, "fake-writer").await;
    let log = FakeLog::start(&writer).await;
    log.append(20);
    let bus = connect(&server, "follower").await;
    let mut follower = LogFollower::subscribe(&bus, &options(NEVER), 0)
        .await
        .unwrap();
    let mut seen = Vec::new();
    collect(&mut follower, 20, &mut seen).await;
    assert!(follower.is_live());

    // 21 and 22 published twice, 23..=25 dropped, 26 published: only the log can fill the gap.
    let fresh = log.append(6);
    for record in &fresh[..2] {
        log.publish(record).await;
        log.publish(record).await;
    }
    log.publish(&fresh[5]).await;
    writer.flush().await.unwrap();
    collect(&mut follower, 26, &mut seen).await;
    assert_exactly_once(&seen, 26);

    // An old event again changes nothing; the next one continues the cursor.
    let next = log.append(1);
    log.publish(&fresh[0]).await;
    log.publish(&next[0]).await;
    collect(&mut follower, 27, &mut seen).await;
    assert_exactly_once(&seen, 27);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dropped_last_event_is_found_by_the_idle_probe() {
    let server = NatsServer::start();
    let writer = connect(&server, "fake-writer").await;
    let log = FakeLog::start(&writer).await;
    let bus = connect(&server, "follower").await;
    let mut follower = LogFollower::subscribe(&bus, &options(Duration::from_millis(100)), 0)
        .await
        .unwrap();
    let mut seen = Vec::new();
    let first = log.append(3);
    for record in &first {
        log.publish(record).await;
    }
    collect(&mut follower, 3, &mut seen).await;
    // Appended, never published: no later event reveals it.
    log.append(1);
    let reads_before = log.reads();
    collect(&mut follower, 4, &mut seen).await;
    assert!(log.reads() > reads_before, "found through log.read");
    assert_exactly_once(&seen, 4);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_follower_that_lags_behind_its_hub_reads_the_log_instead() {
    let server = NatsServer::start();
    let writer = connect(&server, "fake-writer").await;
    let log = FakeLog::start(&writer).await;
    let bus = connect(&server, "followers").await;
    let hub = EventHub::start_with_capacity(&bus, &format!("{PREFIX}.evt.>"), 4)
        .await
        .unwrap();
    let mut fast = LogFollower::from_hub(&bus, &options(NEVER), 0, &hub);
    let mut slow = LogFollower::from_hub(&bus, &options(NEVER), 0, &hub);
    let mut fast_seen = Vec::new();
    let mut slow_seen = Vec::new();
    // Both level and live first.
    let first = log.append(1);
    log.publish(&first[0]).await;
    collect(&mut fast, 1, &mut fast_seen).await;
    collect(&mut slow, 1, &mut slow_seen).await;
    // The fast follower reads along while the slow one reads nothing, as 59 events go by a
    // buffer of 4 (the publisher waits for the fast one, so that it never lags).
    let (taken, mut taken_receiver) = tokio::sync::watch::channel(1u64);
    let reads_live = log.reads();
    let fast_task = tokio::spawn(async move {
        while fast.cursor() < 60 {
            let events = fast.next().await.unwrap();
            fast_seen.extend(events.iter().map(|event| event.position));
            let _ = taken.send(fast.cursor());
        }
        fast_seen
    });
    for record in log.append(59) {
        log.publish(&record).await;
        let position = record.position;
        tokio::time::timeout(
            WAIT_MAX,
            taken_receiver.wait_for(|taken| *taken >= position),
        )
        .await
        .unwrap()
        .unwrap();
    }
    let fast_seen = fast_task.await.unwrap();
    assert_eq!(
        log.reads(),
        reads_live,
        "the live follower took every event from the hub"
    );
    let reads_before = log.reads();
    collect(&mut slow, 60, &mut slow_seen).await;
    assert!(
        log.reads() > reads_before,
        "the lagging follower read the log"
    );
    assert_exactly_once(&fast_seen, 60);
    assert_exactly_once(&slow_seen, 60);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_appended_while_nats_was_down_are_read_after_the_reconnect() {
    let mut server = NatsServer::start();
    let writer = connect(&server, "fake-writer").await;
    let log = FakeLog::start(&writer).await;
    let bus = connect(&server, "follower").await;
    let mut follower = LogFollower::subscribe(&bus, &options(NEVER), 0)
        .await
        .unwrap();
    let mut seen = Vec::new();
    for record in log.append(5) {
        log.publish(&record).await;
    }
    collect(&mut follower, 5, &mut seen).await;

    server.stop();
    // Committed while the bus is down: never published, and no later event will come.
    log.append(4);
    server.start_again();
    collect(&mut follower, 9, &mut seen).await;
    assert_exactly_once(&seen, 9);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_log_only_follower_pages_from_its_cursor_to_the_head() {
    let server = NatsServer::start();
    let writer = connect(&server, "fake-writer").await;
    let log = FakeLog::start(&writer).await;
    log.append(30);
    let bus = connect(&server, "reader").await;
    let mut follower = LogFollower::log_only(&bus, &options(NEVER), 10);
    let mut seen = Vec::new();
    loop {
        let page = follower.read_page().await.unwrap();
        assert_eq!(page.head, 30);
        if page.events.is_empty() {
            break;
        }
        seen.extend(page.events.iter().map(|event| event.position));
    }
    assert_eq!(seen, (11..=30).collect::<Vec<_>>());
    assert_eq!(follower.cursor(), 30);
}

/// Takes events from `follower` until its cursor reaches `until` and returns them.
async fn take_until(follower: &mut LogFollower, until: u64) -> Vec<Arc<RecordedEvent>> {
    let deadline = tokio::time::Instant::now() + WAIT_MAX;
    let mut taken = Vec::new();
    while follower.cursor() < until {
        match tokio::time::timeout_at(deadline, follower.next()).await {
            Ok(Ok(events)) => taken.extend(events),
            Ok(Err(error)) => eprintln!("passing failure: {error}"),
            Err(_) => panic!("stuck at {} waiting for {until}", follower.cursor()),
        }
    }
    taken
}

/// security.md H-N2: whoever may publish on `evt.>` can put an event at the next position,
/// but not one whose hash chains from the last applied one. A made-up event and a real event
/// replayed at the next position are both taken for a gap; the real event there is applied,
/// through a subscription and through a hub alike.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn h_n2_a_forged_live_event_at_the_next_position_changes_nothing() {
    let server = NatsServer::start();
    let writer = connect(&server, "fake-writer").await;
    let log = FakeLog::start(&writer).await;
    let first = log.append(3);
    let bus = connect(&server, "follower").await;
    let hub = EventHub::start(&bus, &options(NEVER).events_subject())
        .await
        .unwrap();
    let mut subscribed = LogFollower::subscribe(&bus, &options(NEVER), 0)
        .await
        .unwrap();
    let mut from_hub = LogFollower::from_hub(&bus, &options(NEVER), 0, &hub);
    for follower in [&mut subscribed, &mut from_hub] {
        take_until(follower, 3).await;
        assert!(follower.is_live());
    }

    // A made-up event and a replay of event 3 as 4, published before the real 4 exists.
    let mut forged = event(4);
    forged.actor = "mallory".into();
    forged.hash = first[2].hash;
    let mut replayed = first[2].clone();
    replayed.position = 4;
    replayed.version = 2;
    let reads_before = log.reads();
    log.publish(&forged).await;
    log.publish(&replayed).await;
    let real = log.append(2);
    log.publish(&real[0]).await;
    log.publish(&real[1]).await;
    writer.flush().await.unwrap();

    for follower in [&mut subscribed, &mut from_hub] {
        let taken = take_until(follower, 5).await;
        let positions: Vec<u64> = taken.iter().map(|event| event.position).collect();
        assert_eq!(positions, [4, 5]);
        assert_eq!(*taken[0], real[0], "the real event 4 is the one applied");
        assert_eq!(taken[0].actor, "service:test");
        assert_eq!(*taken[1], real[1]);
    }
    assert!(
        log.reads() > reads_before,
        "the forged events were taken for a gap and the log was read"
    );

    // The chain goes on live from the real events: 6 arrives without a read.
    let next = log.append(1);
    let reads_live = log.reads();
    log.publish(&next[0]).await;
    for follower in [&mut subscribed, &mut from_hub] {
        let taken = take_until(follower, 6).await;
        assert_eq!(*taken[0], next[0]);
    }
    assert_eq!(
        log.reads(),
        reads_live,
        "a chained live event needs no log.read"
    );
}
