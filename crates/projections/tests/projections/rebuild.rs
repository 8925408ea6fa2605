//! Rebuild equality and convergence, for every read model: a model built live from a random
//! workload equals the one rebuilt from the log alone; a model whose live events are dropped
//! converges to it; a projector killed mid-stream resumes from its store, applying nothing twice.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use bus::Bus;
use clock::Clock;
use domain::{Attachment, Event};
use projections::{
    EventEnvelope, Files, Moderation, Notifications, OpenFor, ProjectionError, Projector, Rooms,
    Runner, Timeline,
};
use protocol::{Format, RecordedEvent};
use testkit::TempDataDir;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::runtime::options;
use crate::support::{rebuilt, wait_until, LogServer, Rng, World};
use crate::workload;

/// A random world of `steps` commands from `seed`.
fn random_world(seed: u64, steps: usize) -> World {
    let mut world = World::new();
    let mut rng = Rng::new(seed);
    let accepted = workload::run(&mut world, &mut rng, steps);
    eprintln!(
        "seed {seed:#x}: {accepted} of {steps} commands accepted, {} events",
        world.head()
    );
    world
}

/// Names the first entry where two dumps differ, for a readable failure.
fn first_difference<P: Projector>(a: &P, b: &P) -> String {
    let (a, b) = (a.dump().unwrap(), b.dump().unwrap());
    let (a, b): (BTreeMap<_, _>, BTreeMap<_, _>) =
        (a.into_iter().collect(), b.into_iter().collect());
    for (key, value) in &a {
        if b.get(key) != Some(value) {
            return format!("key {} differs", String::from_utf8_lossy(key));
        }
    }
    for key in b.keys() {
        if !a.contains_key(key) {
            return format!("key {} only in the second", String::from_utf8_lossy(key));
        }
    }
    "no difference".into()
}

/// Applies `log` in random small batches, each twice, with due-time ticks between them (as the
/// runner does), and compares with a rebuild from the log alone, both into a store that serves
/// and into one opened for rebuilding (which holds its changes and writes them in bulk).
fn live_equals_rebuilt<P: Projector>(
    fresh: impl Fn() -> P,
    rebuilding: P,
    log: &[RecordedEvent],
    rng: &mut Rng,
) {
    let envelopes: Vec<EventEnvelope> = log.iter().cloned().map(EventEnvelope::from).collect();
    let mut live = fresh();
    // A batch that would skip events is refused.
    assert!(matches!(
        live.apply(&envelopes[1..2]),
        Err(ProjectionError::Gap {
            expected: 1,
            got: 2
        })
    ));
    let mut index = 0;
    while index < envelopes.len() {
        let end = (index + 1 + rng.below(6) as usize).min(envelopes.len());
        let batch = &envelopes[index..end];
        live.apply(batch).unwrap();
        let once = live.digest().unwrap();
        // Applying again (a whole batch, or one overlapping the checkpoint) changes nothing.
        live.apply(batch).unwrap();
        live.apply(&envelopes[index.saturating_sub(3)..end])
            .unwrap();
        assert_eq!(
            live.digest().unwrap(),
            once,
            "{}: applied twice",
            live.name()
        );
        live.due(batch[batch.len() - 1].recorded_at).unwrap();
        index = end;
    }
    let rebuilt = rebuilt(fresh(), log);
    assert_eq!(live.position(), log.len() as u64);
    assert_eq!(rebuilt.position(), log.len() as u64);
    assert_eq!(
        live.digest().unwrap(),
        rebuilt.digest().unwrap(),
        "{}: {}",
        live.name(),
        first_difference(&live, &rebuilt)
    );
    let bulk = crate::support::rebuilt(rebuilding, log);
    assert_eq!(bulk.position(), log.len() as u64);
    assert_eq!(
        live.digest().unwrap(),
        bulk.digest().unwrap(),
        "{} rebuilt in bulk: {}",
        live.name(),
        first_difference(&live, &bulk)
    );
}

#[test]
fn every_model_rebuilt_from_the_log_alone_equals_the_one_built_live() {
    let seed = 0x5eed_0002;
    let world = random_world(seed, 400);
    let mut counts: BTreeMap<&str, usize> = BTreeMap::new();
    for record in &world.log {
        *counts.entry(record.type_name()).or_default() += 1;
    }
    eprintln!("{counts:?}");
    for kind in [
        "message_sent",
        "message_edited",
        "message_deleted",
        "room_marked_read",
        "member_added",
        "message_reported",
        "call_ended",
        "file_registered",
    ] {
        assert!(
            counts.get(kind).copied().unwrap_or(0) > 0,
            "the workload has no {kind}"
        );
    }
    // The files model needs messages with files and links, some of them deleted.
    let mut with_attachments = std::collections::BTreeSet::new();
    let (mut files, mut deleted) = (0, 0);
    for record in &world.log {
        match &record.event {
            Event::MessageSent {
                message_id,
                attachments,
                ..
            } if !attachments.is_empty() => {
                with_attachments.insert(*message_id);
                files += attachments
                    .iter()
                    .filter(|a| matches!(a, Attachment::File { .. }))
                    .count();
            }
            Event::MessageDeleted { message_id, .. } if with_attachments.contains(message_id) => {
                deleted += 1;
            }
            _ => {}
        }
    }
    eprintln!(
        "{} messages with attachments ({files} files), {deleted} of them deleted",
        with_attachments.len()
    );
    assert!(files > 0 && with_attachments.len() > files && deleted > 0);
    let mut rng = Rng::new(seed);
    let dir = TempDataDir::new();
    let bulk = |name: &str| dir.path().join(name);
    let log = &world.log;
    let rebuilding = OpenFor::Rebuilding;
    live_equals_rebuilt(
        || Rooms::temporary().unwrap(),
        Rooms::open_path_for(&bulk("rooms"), rebuilding).unwrap(),
        log,
        &mut rng,
    );
    live_equals_rebuilt(
        || Timeline::temporary().unwrap(),
        Timeline::open_path_for(&bulk("timeline"), rebuilding).unwrap(),
        log,
        &mut rng,
    );
    live_equals_rebuilt(
        || Files::temporary().unwrap(),
        Files::open_path_for(&bulk("files"), rebuilding).unwrap(),
        log,
        &mut rng,
    );
    live_equals_rebuilt(
        || Moderation::temporary().unwrap(),
        Moderation::open_path_for(&bulk("moderation"), rebuilding).unwrap(),
        log,
        &mut rng,
    );
    live_equals_rebuilt(
        || Notifications::temporary().unwrap(),
        Notifications::open_path_for(&bulk("notifications"), rebuilding).unwrap(),
        log,
        &mut rng,
    );
}

type Digest = Box<dyn Fn() -> String + Send + Sync>;

/// One model running under its own runner.
struct Running {
    position: watch::Receiver<u64>,
    digest: Digest,
    /// Writes the model's image now (what its store does every few seconds by itself).
    image: Box<dyn Fn() + Send + Sync>,
    task: JoinHandle<Result<(), ProjectionError>>,
}

fn spawn<P: Projector>(model: P, bus: &Bus, stop: &watch::Sender<bool>) -> Running {
    let runner = Runner::new(model, bus.clone(), Clock::system(), options());
    let position = runner.position();
    let shared = runner.model();
    let imaged = shared.clone();
    let digest: Digest = Box::new(move || shared.read(|m| m.digest().unwrap()).unwrap());
    Running {
        position,
        digest,
        image: Box::new(move || imaged.read(|m| m.flush().unwrap()).unwrap()),
        task: tokio::spawn(runner.run(stop.subscribe())),
    }
}

/// The five models under `dir`, reopened as soon as the previous handles have let go.
async fn open_all(dir: &TempDataDir, bus: &Bus, stop: &watch::Sender<bool>) -> Vec<Running> {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let opened = (|| {
            Ok::<_, ProjectionError>(vec![
                spawn(Rooms::open(dir.path())?, bus, stop),
                spawn(Timeline::open(dir.path())?, bus, stop),
                spawn(Files::open(dir.path())?, bus, stop),
                spawn(Moderation::open(dir.path())?, bus, stop),
                spawn(Notifications::open(dir.path())?, bus, stop),
            ])
        })();
        match opened {
            Ok(running) => return running,
            // A killed runner's last blocking write may still hold a store for a moment.
            Err(error) if Instant::now() < deadline => {
                eprintln!("reopening: {error}");
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            Err(error) => panic!("cannot reopen the stores: {error}"),
        }
    }
}

fn expected_digests(log: &[RecordedEvent]) -> Vec<String> {
    vec![
        rebuilt(Rooms::temporary().unwrap(), log).digest().unwrap(),
        rebuilt(Timeline::temporary().unwrap(), log)
            .digest()
            .unwrap(),
        rebuilt(Files::temporary().unwrap(), log).digest().unwrap(),
        rebuilt(Moderation::temporary().unwrap(), log)
            .digest()
            .unwrap(),
        rebuilt(Notifications::temporary().unwrap(), log)
            .digest()
            .unwrap(),
    ]
}

async fn wait_for_all(running: &[Running], head: u64) {
    wait_until("every model at the head", Duration::from_secs(20), || {
        running.iter().all(|r| *r.position.borrow() == head)
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_model_converges_when_live_events_are_dropped() {
    let bus = Bus::in_process();
    let log = LogServer::start(&bus).await;
    let world = random_world(0x5eed_0003, 300);
    let (stop, _) = watch::channel(false);
    let running = vec![
        spawn(Rooms::temporary().unwrap(), &bus, &stop),
        spawn(Timeline::temporary().unwrap(), &bus, &stop),
        spawn(Files::temporary().unwrap(), &bus, &stop),
        spawn(Moderation::temporary().unwrap(), &bus, &stop),
        spawn(Notifications::temporary().unwrap(), &bus, &stop),
    ];
    let mut rng = Rng::new(0x5eed_0004);
    let head = world.head();
    let mut published = 0;
    for record in &world.log {
        log.append(std::slice::from_ref(record));
        // About a third dropped, and never the last: only log.read can deliver those.
        if rng.chance(65) && record.position != head {
            let format = if rng.chance(50) {
                Format::Json
            } else {
                Format::Bincode
            };
            log.publish(record, format).await;
            published += 1;
        }
    }
    eprintln!("published {published} of {head} events");
    wait_for_all(&running, head).await;
    let digests: Vec<String> = running.iter().map(|r| (r.digest)()).collect();
    assert_eq!(digests, expected_digests(&world.log));
    stop.send_replace(true);
    for r in running {
        r.task.await.unwrap().unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_model_killed_mid_stream_resumes_from_its_store_without_applying_twice() {
    let bus = Bus::in_process();
    let log = LogServer::start(&bus).await;
    let world = random_world(0x5eed_0005, 300);
    let dir = TempDataDir::new();
    let head = world.head() as usize;
    let (first, second) = (head * 2 / 5, head * 7 / 10);

    let (stop, _) = watch::channel(false);
    let running = open_all(&dir, &bus, &stop).await;
    log.commit(&world.log[..first], Format::Bincode, |_| true)
        .await;
    wait_for_all(&running, first as u64).await;
    for r in &running {
        (r.image)();
    }
    // Kill every runner while events are arriving, one by one: abort, no stop, no flush; what
    // each applied after its image is only in memory and lost.
    let log = std::sync::Arc::new(log);
    let arriving = {
        let (log, records) = (
            std::sync::Arc::clone(&log),
            world.log[first..second].to_vec(),
        );
        tokio::spawn(async move {
            for record in &records {
                log.commit(std::slice::from_ref(record), Format::Bincode, |_| true)
                    .await;
                tokio::time::sleep(Duration::from_millis(2)).await;
            }
        })
    };
    wait_until("some live events applied", Duration::from_secs(20), || {
        *running[0].position.borrow() >= first as u64 + 5
    })
    .await;
    let reached: Vec<u64> = running.iter().map(|r| *r.position.borrow()).collect();
    for r in running {
        r.task.abort();
        let _ = r.task.await;
    }
    arriving.await.unwrap();
    eprintln!("killed at {reached:?} (of {second} published)");

    let running = open_all(&dir, &bus, &stop).await;
    for r in &running {
        let resumed = *r.position.borrow();
        assert!(
            (first as u64..=second as u64).contains(&resumed),
            "resumes from the stored checkpoint"
        );
    }
    // The rest, partly live (with drops), partly only in the log.
    let mut rng = Rng::new(0x5eed_0006);
    log.commit(&world.log[second..], Format::Json, |_| rng.chance(50))
        .await;
    wait_for_all(&running, head as u64).await;
    let expected = expected_digests(&world.log);
    let digests: Vec<String> = running.iter().map(|r| (r.digest)()).collect();
    assert_eq!(digests, expected);
    stop.send_replace(true);
    for r in running {
        r.task.await.unwrap().unwrap();
    }

    // Nothing is applied twice: the whole log again, on the stored models, changes nothing.
    let all: Vec<EventEnvelope> = world.envelopes();
    let mut rooms = Rooms::open(dir.path()).unwrap();
    projections::rebuild(&mut rooms, all.clone()).unwrap();
    let mut timeline = Timeline::open(dir.path()).unwrap();
    projections::rebuild(&mut timeline, all.clone()).unwrap();
    let mut files = Files::open(dir.path()).unwrap();
    projections::rebuild(&mut files, all.clone()).unwrap();
    let mut moderation = Moderation::open(dir.path()).unwrap();
    projections::rebuild(&mut moderation, all.clone()).unwrap();
    let mut notifications = Notifications::open(dir.path()).unwrap();
    projections::rebuild(&mut notifications, all).unwrap();
    assert_eq!(
        [
            rooms.digest().unwrap(),
            timeline.digest().unwrap(),
            files.digest().unwrap(),
            moderation.digest().unwrap(),
            notifications.digest().unwrap()
        ]
        .to_vec(),
        expected
    );
    assert_eq!(rooms.position(), head as u64);
}
