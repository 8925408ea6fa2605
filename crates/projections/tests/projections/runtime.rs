//! The runtime over a real nats-server and in process: catch-up through `log.read`, live events
//! in both formats, gaps and a dropped last event closed, queries with `min_position`, `status`,
//! `projection_lagging`, presence heartbeats, and a writer that appears late.

use std::time::Duration;

use bus::{Bus, Headers};
use clock::Clock;
use domain::Action;
use projections::{Presence, Projector, Rooms, RunOptions, Runner, Timeline};
use protocol::Format;
use serde_json::{json, Value};
use testkit::NatsServer;
use tokio::sync::watch;

use crate::support::{rebuilt, wait_until, LogServer, Rng, World, PREFIX};
use crate::workload;

/// Options with short waits, so tests run quickly.
pub fn options() -> RunOptions {
    let mut options = RunOptions::new(PREFIX);
    options.idle_probe_interval = Duration::from_millis(100);
    options.min_position_wait_max = Duration::from_millis(300);
    options.log_read_timeout = Duration::from_secs(2);
    options
}

/// Asks a model over the bus; a runner spawned a moment ago may not have subscribed yet, so
/// "no responders" is retried for a while.
async fn query(bus: &Bus, model: &str, request: Value) -> Value {
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let reply = bus
            .request(
                &format!("{PREFIX}.query.{model}"),
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn over_nats_the_runner_catches_up_follows_live_and_closes_every_gap() {
    let server = NatsServer::start();
    let bus = Bus::connect(&server.url(), "projections-test")
        .await
        .unwrap();
    let log = LogServer::start(&bus).await;
    let mut world = World::new();
    let mut rng = Rng::new(0x5eed_0001);
    workload::run(&mut world, &mut rng, 150);
    let history = world.head();
    // History written before the projector starts: only log.read can deliver it.
    log.append(&world.log);

    let runner = Runner::new(
        Rooms::temporary().unwrap(),
        bus.clone(),
        Clock::system(),
        options(),
    );
    let position = runner.position();
    let model = runner.model();
    let (stop, stopped) = watch::channel(false);
    let task = tokio::spawn(runner.run(stopped));
    wait_until("the catch-up", Duration::from_secs(10), || {
        *position.borrow() == history
    })
    .await;

    // Live events, a third of them dropped and the very last one too (no later event reveals
    // that gap: the idle probe must), in JSON and bincode alike.
    let start = world.log.len();
    workload::run(&mut world, &mut rng, 150);
    let live = world.log[start..].to_vec();
    let last = world.head();
    for (index, record) in live.iter().enumerate() {
        log.append(std::slice::from_ref(record));
        if index % 3 == 2 || record.position == last {
            continue;
        }
        let format = if index % 2 == 0 {
            Format::Json
        } else {
            Format::Bincode
        };
        log.publish(record, format).await;
    }
    wait_until("convergence", Duration::from_secs(15), || {
        *position.borrow() == last
    })
    .await;
    let expected = rebuilt(Rooms::temporary().unwrap(), &world.log);
    assert_eq!(model.read(|m| m.digest()).unwrap(), expected.digest());

    // Queries over NATS, read-your-writes included.
    let request = json!({"op": "list", "caller": "alice", "min_position": last, "limit": 200});
    let reply = query(&bus, "rooms", request.clone()).await;
    assert_eq!(reply["ok"], true, "{reply}");
    assert_eq!(reply["position"], last);
    let now = Clock::system().now();
    let direct = crate::support::answer(&expected, request, now);
    assert_eq!(reply["data"], direct);
    assert_eq!(
        query(&bus, "rooms", json!({"op": "status"})).await,
        json!({"ok": true, "position": last, "data": {"name": "rooms", "position": last}})
    );
    // A position the log does not hold is refused at once (H-L1), not waited for.
    let beyond = query(
        &bus,
        "rooms",
        json!({"op": "list", "caller": "alice", "min_position": last + 100}),
    )
    .await;
    assert_eq!(beyond["ok"], false);
    assert_eq!(beyond["error"]["code"], "invalid_command", "{beyond}");
    // One the log holds but this projector has not been given is waited for, then lagging.
    workload::run(&mut world, &mut rng, 5);
    log.withhold(&world.log[last as usize..]);
    let lagging = query(
        &bus,
        "rooms",
        json!({"op": "list", "caller": "alice", "min_position": world.head()}),
    )
    .await;
    assert_eq!(lagging["ok"], false);
    assert_eq!(lagging["error"]["code"], "projection_lagging", "{lagging}");
    log.release(Format::Json).await;
    let reply = bus
        .request(
            &format!("{PREFIX}.query.rooms"),
            Headers::new(),
            "not json",
            Duration::from_secs(10),
        )
        .await
        .unwrap();
    let invalid: Value = serde_json::from_slice(&reply.payload).unwrap();
    assert_eq!(invalid["error"]["code"], "invalid_command");

    stop.send_replace(true);
    task.await.unwrap().unwrap();
    assert!(
        *log.reads.lock().unwrap() >= 2,
        "history and gaps came from log.read"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn in_process_a_late_writer_is_waited_for_and_presence_is_served() {
    let bus = Bus::in_process();
    let mut world = World::new();
    let (direct, _) = world.direct("alice", "bob", "hi");
    world.ok(
        "bob",
        Action::SetNotifications {
            frequency: domain::NotificationFrequency::Daily,
        },
    );
    let head = world.head();

    // No writer yet: the runner starts anyway, serves queries, and keeps probing.
    let mut opts = options();
    opts.log_read_format = Format::Json;
    // Presence is its own component: the runner fills the table the model reads.
    let presence = Presence::new();
    let runner = Runner::new(
        Rooms::temporary().unwrap().with_presence(presence.clone()),
        bus.clone(),
        Clock::system(),
        opts,
    )
    .with_presence(presence);
    let position = runner.position();
    let (stop, stopped) = watch::channel(false);
    let task = tokio::spawn(runner.run(stopped));
    // This one waits long for min_position: a query below waits for events still to come.
    let mut patient = options();
    patient.min_position_wait_max = Duration::from_secs(10);
    let timeline = Runner::new(
        Timeline::temporary().unwrap(),
        bus.clone(),
        Clock::system(),
        patient,
    );
    let timeline_position = timeline.position();
    let mut timeline_waiting = timeline.queries_waiting();
    let timeline_task = tokio::spawn(timeline.run(stop.subscribe()));
    let empty = query(&bus, "rooms", json!({"op": "list", "caller": "alice"})).await;
    assert_eq!(empty["data"]["rooms"], json!([]));

    let log = LogServer::start(&bus).await;
    log.append(&world.log);
    wait_until("the late catch-up", Duration::from_secs(10), || {
        *position.borrow() == head && *timeline_position.borrow() == head
    })
    .await;

    // A heartbeat is answered once recorded; the next read sees bob online.
    let now = Clock::system().now();
    let heartbeat = json!({"user_id": "bob", "at_ms": now.millis()}).to_string();
    let reply = bus
        .request(
            &format!("{PREFIX}.presence.heartbeat"),
            Headers::new(),
            heartbeat,
            Duration::from_secs(5),
        )
        .await
        .unwrap();
    let reply: Value = serde_json::from_slice(&reply.payload).unwrap();
    assert_eq!(reply["ok"], true);
    let room = query(
        &bus,
        "rooms",
        json!({"op": "get", "caller": "alice", "room_id": direct.to_string()}),
    )
    .await;
    assert_eq!(room["data"]["members"][1]["user_id"], "bob");
    assert_eq!(room["data"]["members"][1]["online"], true);
    assert_eq!(room["data"]["members"][0]["online"], false);

    // Read-your-writes: a query waiting for a position that arrives while it waits.
    let message = world.say("alice", direct, "are you there?");
    // Committed (the head has it) but not yet delivered to the projectors.
    log.withhold(&world.log[head as usize..]);
    let pending = {
        let bus = bus.clone();
        let min = world.head();
        tokio::spawn(async move {
            query(
                &bus,
                "timeline",
                json!({"op": "messages", "caller": "bob",
                "room_id": direct.to_string(), "min_position": min}),
            )
            .await
        })
    };
    // Delivered only once the query is waiting for it, so the answer comes from the wait.
    tokio::time::timeout(
        Duration::from_secs(10),
        timeline_waiting.wait_for(|waiting| *waiting >= 1),
    )
    .await
    .expect("the query waits for its position")
    .unwrap();
    log.release(Format::Bincode).await;
    let answered = pending.await.unwrap();
    assert_eq!(answered["ok"], true, "{answered}");
    assert_eq!(
        answered["data"]["messages"][0]["message_id"],
        message.to_string()
    );

    stop.send_replace(true);
    task.await.unwrap().unwrap();
    timeline_task.await.unwrap().unwrap();
}

/// Sends a command to the writer and returns its reply.
async fn command(bus: &Bus, command_type: &str, actor: &str, data: Value) -> Value {
    let payload = json!({"command_id": uuid::Uuid::new_v4(), "actor": actor, "data": data});
    let reply = bus
        .request(
            &format!("{PREFIX}.cmd.{command_type}"),
            Headers::new(),
            payload.to_string(),
            Duration::from_secs(10),
        )
        .await
        .unwrap();
    let reply: Value = serde_json::from_slice(&reply.payload).unwrap();
    assert_eq!(reply["ok"], true, "{command_type}: {reply}");
    reply
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_the_real_writer_a_command_is_visible_at_its_position() {
    let bus = Bus::in_process();
    let dir = testkit::TempDataDir::new();
    for format in [Format::Json, Format::Bincode] {
        let mut config = writer::WriterConfig::new(dir.join("writer"));
        config.event_format = format;
        let writer = writer::Writer::start(config, bus.clone(), Clock::system())
            .await
            .unwrap();
        let rooms = Runner::new(
            Rooms::open(dir.path()).unwrap(),
            bus.clone(),
            Clock::system(),
            options(),
        );
        let timeline = Runner::new(
            Timeline::open(dir.path()).unwrap(),
            bus.clone(),
            Clock::system(),
            options(),
        );
        let (stop, stopped) = watch::channel(false);
        let tasks = [
            tokio::spawn(rooms.run(stopped.clone())),
            tokio::spawn(timeline.run(stopped)),
        ];

        for (user, name) in [("alice", "Alice"), ("bob", "Bob")] {
            command(
                &bus,
                "user.register",
                "service:identity",
                json!({"user_id": user, "display_name": name, "kind": "client"}),
            )
            .await;
        }
        let body = format!("hello in {format:?}");
        let sent = command(
            &bus,
            "message.send",
            "alice",
            json!({"to": "bob", "body": body}),
        )
        .await;
        let position = sent["position"].as_u64().unwrap();
        let room_id = sent["result"]["room_id"].clone();

        let list = query(
            &bus,
            "rooms",
            json!({"op": "list", "caller": "bob", "min_position": position}),
        )
        .await;
        assert_eq!(list["ok"], true, "{list}");
        assert!(list["position"].as_u64().unwrap() >= position);
        let room = &list["data"]["rooms"][0];
        assert_eq!(room["room_id"], room_id);
        assert_eq!(room["name"], "Alice");
        assert_eq!(room["last_message"]["preview"], body.as_str());
        let messages = query(
            &bus,
            "timeline",
            json!({"op": "messages", "caller": "bob",
            "room_id": room_id, "min_position": position}),
        )
        .await;
        assert_eq!(messages["data"]["messages"][0]["body"], body.as_str());
        assert_eq!(
            messages["data"]["messages"][0]["message_id"],
            sent["result"]["message_id"]
        );

        stop.send_replace(true);
        for task in tasks {
            task.await.unwrap().unwrap();
        }
        writer.shutdown().await.unwrap();
    }
}

#[test]
fn a_read_ahead_replay_equals_a_plain_rebuild_and_reports_a_read_failure() {
    let mut world = World::new();
    let mut rng = Rng::new(0x5eed_0007);
    workload::run(&mut world, &mut rng, 120);
    let envelopes = world.envelopes();
    let head = world.head();
    let read = |from: u64| -> Result<Vec<projections::EventEnvelope>, String> {
        // Small uneven batches, so that several travel between the threads.
        let start = usize::try_from(from - 1).unwrap().min(envelopes.len());
        let end = (start + 17).min(envelopes.len());
        Ok(envelopes[start..end].to_vec())
    };
    let mut reported = Vec::new();
    let mut ahead = Rooms::temporary().unwrap();
    let position =
        projections::replay_read_ahead(&mut ahead, 1, head, read, |p| reported.push(p)).unwrap();
    assert_eq!(position, head);
    assert_eq!(reported.last(), Some(&head));
    assert!(reported.windows(2).all(|pair| pair[0] < pair[1]));
    let plain = rebuilt(Rooms::temporary().unwrap(), &world.log);
    assert_eq!(ahead.digest().unwrap(), plain.digest().unwrap());

    // A failed read ends the replay with that error, after what was applied before it.
    let failing = |from: u64| -> Result<Vec<projections::EventEnvelope>, String> {
        if from > 30 {
            return Err("the disk went away".into());
        }
        read(from)
    };
    let mut partial = Rooms::temporary().unwrap();
    let error = projections::replay_read_ahead(&mut partial, 1, head, failing, |_| {}).unwrap_err();
    assert!(error.to_string().contains("the disk went away"), "{error}");
    assert!(partial.position() >= 30 && partial.position() < head);
}

/// H-L1: a `min_position` beyond the log's head is refused at once, and one caller has at most
/// `MIN_POSITION_WAITS_PER_CALLER_MAX` reads waiting; another caller's reads go on meanwhile.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn h_l1_reads_beyond_the_head_are_refused_and_a_caller_has_few_waiting() {
    let bus = Bus::in_process();
    let log = LogServer::start(&bus).await;
    let mut world = World::new();
    let (direct, _) = world.direct("alice", "bob", "hi");
    log.append(&world.log);
    let head = world.head();
    let mut patient = options();
    patient.min_position_wait_max = Duration::from_secs(20);
    let runner = Runner::new(
        Timeline::temporary().unwrap(),
        bus.clone(),
        Clock::system(),
        patient,
    );
    let position = runner.position();
    let mut waiting = runner.queries_waiting();
    let (stop, stopped) = watch::channel(false);
    let task = tokio::spawn(runner.run(stopped));
    wait_until("the catch-up", Duration::from_secs(10), || {
        *position.borrow() == head
    })
    .await;
    let messages = |caller: &str, min_position: u64| {
        json!({"op": "messages", "caller": caller, "room_id": direct.to_string(),
               "min_position": min_position})
    };

    // Far beyond the head: refused at once, naming the parameter.
    let started = std::time::Instant::now();
    let beyond = query(&bus, "timeline", messages("alice", u64::MAX)).await;
    assert_eq!(beyond["error"]["code"], "invalid_command", "{beyond}");
    assert!(beyond["error"]["message"]
        .as_str()
        .unwrap()
        .contains("min_position"));
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "answered without waiting"
    );

    // Committed but not yet delivered: alice's reads wait, up to the cap; the next is refused.
    world.say("alice", direct, "are you there?");
    log.withhold(&world.log[head as usize..]);
    let target = world.head();
    let cap = projections::runtime::MIN_POSITION_WAITS_PER_CALLER_MAX;
    let mut pending = Vec::new();
    for _ in 0..cap {
        let bus = bus.clone();
        let request = messages("alice", target);
        pending.push(tokio::spawn(async move {
            query(&bus, "timeline", request).await
        }));
    }
    tokio::time::timeout(Duration::from_secs(10), waiting.wait_for(|n| *n >= cap))
        .await
        .expect("alice's reads wait")
        .unwrap();
    let refused = query(&bus, "timeline", messages("alice", target)).await;
    assert_eq!(refused["error"]["code"], "rate_limited", "{refused}");
    // Bob is not held up by alice's waiting reads: his read without a position is answered.
    let bobs = query(
        &bus,
        "timeline",
        json!({"op": "messages", "caller": "bob",
        "room_id": direct.to_string()}),
    )
    .await;
    assert_eq!(bobs["ok"], true, "{bobs}");

    // Delivered: every waiting read is answered, and alice may wait again.
    log.release(Format::Json).await;
    for answer in pending {
        let answer = answer.await.unwrap();
        assert_eq!(answer["ok"], true, "{answer}");
    }
    let again = query(&bus, "timeline", messages("alice", target)).await;
    assert_eq!(again["ok"], true, "{again}");

    stop.send_replace(true);
    task.await.unwrap().unwrap();
}
