//! The notifications read model under the runtime, driven by a development clock (R-A3):
//! immediate notifications, batches due by the clock, `off`, blocks, archived rooms, pending
//! items surviving a restart, and each batch published at most once.

use std::time::Duration;

use bus::{Bus, Subscription};
use clock::Clock;
use domain::{Action, NotificationFrequency};
use projections::{Notifications, Runner};
use protocol::Format;
use serde_json::Value;
use testkit::TempDataDir;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::runtime::options;
use crate::support::{user, wait_until, within, LogServer, World, MINUTE, PREFIX};

async fn next_notification(inbox: &mut Subscription) -> Value {
    let message = within("a notification", Duration::from_secs(10), inbox.next())
        .await
        .unwrap();
    serde_json::from_slice(&message.payload).unwrap()
}

/// Asserts that nothing is published for a while (several ticks of the runner).
async fn assert_quiet(inbox: &mut Subscription) {
    let extra = tokio::time::timeout(Duration::from_millis(600), inbox.next()).await;
    if let Ok(Some(message)) = extra {
        panic!(
            "unexpected notification: {}",
            String::from_utf8_lossy(&message.payload)
        );
    }
}

fn start(
    dir: &TempDataDir,
    bus: &Bus,
    clock: &Clock,
) -> (
    watch::Sender<bool>,
    watch::Receiver<u64>,
    JoinHandle<Result<(), projections::ProjectionError>>,
) {
    let model = Notifications::open(dir.path()).unwrap();
    let runner = Runner::new(model, bus.clone(), clock.clone(), options());
    let position = runner.position();
    let (stop, stopped) = watch::channel(false);
    (stop, position, tokio::spawn(runner.run(stopped)))
}

fn item(notification: &Value) -> (String, Vec<String>) {
    let previews = notification["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|item| item["preview"].as_str().unwrap().to_owned())
        .collect();
    (
        notification["user_id"].as_str().unwrap().to_owned(),
        previews,
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn r_a3_notifications_follow_each_setting_and_survive_a_restart() {
    let clock = Clock::development();
    let bus = Bus::in_process();
    let mut inbox = bus.subscribe(&format!("{PREFIX}.notify.>")).await.unwrap();
    let log = LogServer::start(&bus).await;
    let dir = TempDataDir::new();
    let mut world = World::with_clock(clock.clone());
    world.ok(
        "bob",
        Action::SetNotifications {
            frequency: NotificationFrequency::Hourly,
        },
    );
    world.ok(
        "carol",
        Action::SetNotifications {
            frequency: NotificationFrequency::Off,
        },
    );
    let team = world.group("alice", "Team", &["bob", "carol", "dave"]);
    let side = world.group("carol", "Side", &["alice", "dave"]);
    // After the rooms exist: alice could not put dave into one while he blocks her (H-B1).
    world.ok(
        "dave",
        Action::BlockUser {
            user_id: user("alice"),
        },
    );
    world.ok(
        "dave",
        Action::ArchiveRoom {
            room_id: side,
            on: true,
        },
    );
    world.say("alice", team, "first news");
    world.say("alice", team, "second news");
    let third = world.say("carol", team, "carol here");
    world.say("carol", side, "side note");

    let (stop, position, task) = start(&dir, &bus, &clock);
    log.commit(&world.log, Format::Bincode, |_| true).await;
    wait_until("the events", Duration::from_secs(10), || {
        *position.borrow() == world.head()
    })
    .await;

    // Immediate: one notification per message, at once. Carol is off, dave blocks alice and
    // archived "Side", bob waits for his hourly batch.
    let mut immediate = Vec::new();
    for _ in 0..3 {
        immediate.push(item(&next_notification(&mut inbox).await));
    }
    immediate.sort();
    assert_eq!(
        immediate,
        [
            ("alice".to_owned(), vec!["carol here".to_owned()]),
            ("alice".to_owned(), vec!["side note".to_owned()]),
            ("dave".to_owned(), vec!["carol here".to_owned()]),
        ]
    );
    assert_quiet(&mut inbox).await;

    // Restart: bob's items are in the store, and nothing already sent is sent again.
    stop.send_replace(true);
    task.await.unwrap().unwrap();
    let reopened = Notifications::open(dir.path()).unwrap();
    let pending: Vec<String> = reopened
        .pending(&user("bob"))
        .unwrap()
        .into_iter()
        .map(|item| item.preview)
        .collect();
    assert_eq!(pending, ["first news", "second news", "carol here"]);
    drop(reopened);
    let (stop, _, task) = start(&dir, &bus, &clock);
    assert_quiet(&mut inbox).await;

    // An hour later (by the dev clock) bob's batch is due: one message with all three.
    clock.advance(61 * MINUTE).unwrap();
    let batch = next_notification(&mut inbox).await;
    assert_eq!(batch["user_id"], "bob");
    assert_eq!(batch["frequency"], "hourly");
    assert_eq!(
        item(&batch).1,
        ["first news", "second news", "carol here"],
        "oldest first"
    );
    let last = &batch["items"][2];
    assert_eq!(last["room_id"], team.to_string());
    assert_eq!(last["message_id"], third.to_string());
    assert_eq!(last["author"], "carol");
    assert!(last["sent_at"].as_str().unwrap().ends_with('Z'));
    let mut keys: Vec<&str> = last
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    keys.sort_unstable();
    assert_eq!(
        keys,
        ["author", "message_id", "preview", "room_id", "sent_at"]
    );

    // At most once: later ticks send nothing more.
    clock.advance(3 * 60 * MINUTE).unwrap();
    assert_quiet(&mut inbox).await;
    stop.send_replace(true);
    task.await.unwrap().unwrap();
    let reopened = Notifications::open(dir.path()).unwrap();
    assert!(reopened.pending(&user("bob")).unwrap().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deleted_messages_are_not_notified_and_batches_use_the_setting_when_due() {
    let clock = Clock::development();
    let bus = Bus::in_process();
    let mut inbox = bus.subscribe(&format!("{PREFIX}.notify.>")).await.unwrap();
    let log = LogServer::start(&bus).await;
    let dir = TempDataDir::new();
    let mut world = World::with_clock(clock.clone());
    world.ok(
        "bob",
        Action::SetNotifications {
            frequency: NotificationFrequency::Daily,
        },
    );
    let team = world.group("alice", "Team", &["bob"]);
    let regret = world.say("alice", team, "secret to take back");
    world.say("alice", team, "kept");
    world.ok(
        "alice",
        Action::DeleteMessage {
            room_id: team,
            message_id: regret,
        },
    );
    // Switching to every 15 minutes makes the waiting batch due 15 minutes after its oldest item.
    world.ok(
        "bob",
        Action::SetNotifications {
            frequency: NotificationFrequency::Every15Minutes,
        },
    );

    let (stop, position, task) = start(&dir, &bus, &clock);
    log.commit(&world.log, Format::Json, |_| true).await;
    wait_until("the events", Duration::from_secs(10), || {
        *position.borrow() == world.head()
    })
    .await;
    assert_quiet(&mut inbox).await;
    clock.advance(16 * MINUTE).unwrap();
    let batch = next_notification(&mut inbox).await;
    assert_eq!(batch["frequency"], "every_15_minutes");
    assert_eq!(item(&batch), ("bob".to_owned(), vec!["kept".to_owned()]));
    assert_quiet(&mut inbox).await;
    stop.send_replace(true);
    task.await.unwrap().unwrap();
}
