//! The notifications read model under the runtime, driven by a development clock (R-A3):
//! immediate notifications, batches due by the clock, `off`, blocks, archived rooms, pending
//! items surviving a restart, each batch published at most once, and every tick's batches equal
//! to a brute-force expectation from the log after random workloads.

use std::time::Duration;

use bus::{Bus, Subscription};
use clock::Clock;
use domain::{Action, AttachmentRef, NotificationFrequency};
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn h_v1_queued_items_show_no_earlier_body_and_nothing_of_a_room_left() {
    let clock = Clock::development();
    let bus = Bus::in_process();
    let mut inbox = bus.subscribe(&format!("{PREFIX}.notify.>")).await.unwrap();
    let log = LogServer::start(&bus).await;
    let dir = TempDataDir::new();
    let mut world = World::with_clock(clock.clone());
    for member in ["bob", "carol"] {
        world.ok(
            member,
            Action::SetNotifications {
                frequency: NotificationFrequency::Hourly,
            },
        );
    }
    let team = world.group("alice", "Team", &["bob", "carol"]);
    let other = world.group("alice", "Other", &["carol"]);
    let plan = world.upload("alice", "plan.pdf", "application/pdf");
    let with_file = world.send(
        "alice",
        team,
        "the old words",
        None,
        vec![AttachmentRef::File(plan)],
    );
    // Edited to no body at all: the file alone remains, never the earlier text.
    world.ok(
        "alice",
        Action::EditMessage {
            room_id: team,
            message_id: with_file,
            body: String::new(),
        },
    );
    world.say("alice", team, "for members only");
    world.say("alice", other, "still a member here");
    // carol leaves the team room while its items wait for her, held on their own (a block
    // turns every derived item into a held one first).
    world.ok(
        "carol",
        Action::BlockUser {
            user_id: user("dave"),
        },
    );
    world.ok("carol", Action::LeaveRoom { room_id: team });

    let (stop, position, task) = start(&dir, &bus, &clock);
    log.commit(&world.log, Format::Json, |_| true).await;
    wait_until("the events", Duration::from_secs(10), || {
        *position.borrow() == world.head()
    })
    .await;
    clock.advance(61 * MINUTE).unwrap();
    let mut batches = [
        next_notification(&mut inbox).await,
        next_notification(&mut inbox).await,
    ];
    assert_quiet(&mut inbox).await;
    batches.sort_by_key(|batch| batch["user_id"].as_str().unwrap_or_default().to_owned());
    assert_eq!(
        item(&batches[0]),
        (
            "bob".to_owned(),
            vec![String::new(), "for members only".to_owned()]
        )
    );
    assert_eq!(
        item(&batches[1]),
        ("carol".to_owned(), vec!["still a member here".to_owned()])
    );
    stop.send_replace(true);
    task.await.unwrap().unwrap();
}

/// The notifications R-A3 asks for, recomputed from the log with no cleverness at all: every
/// member's waiting items held one by one in memory, batches made when due exactly as the
/// module's docs say. The model keeps far less (a message once per room); this is what it
/// must publish.
mod expected {
    use std::collections::{BTreeMap, BTreeSet, HashMap};

    use domain::{
        Event, MembershipChange, MessageId, NotificationFrequency, RoomId, Timestamp, UserId,
    };
    use projections::notifications::{
        frequency_name, period_ms, BATCH_ITEMS_MAX, DUE_USERS_PER_TICK_MAX, LATE_GRACE_MS,
    };
    use projections::text::preview;
    use projections::EventEnvelope;
    use serde_json::{json, Value};

    #[derive(Debug, Clone)]
    struct Item {
        room_id: RoomId,
        message_id: MessageId,
        author: UserId,
        preview: String,
        sent_at: Timestamp,
    }

    #[derive(Debug, Default)]
    pub struct Expected {
        /// Room → member → archived.
        members: HashMap<RoomId, BTreeMap<UserId, bool>>,
        frequency: HashMap<UserId, NotificationFrequency>,
        blocks: HashMap<UserId, BTreeSet<UserId>>,
        deleted: BTreeSet<MessageId>,
        /// User → position → item.
        waiting: BTreeMap<UserId, BTreeMap<u64, Item>>,
        /// User → (due, oldest sent_at).
        pending: BTreeMap<UserId, (Timestamp, Timestamp)>,
    }

    impl Expected {
        fn period(&self, user: &UserId) -> Option<i64> {
            period_ms(self.frequency.get(user).copied().unwrap_or_default())
        }

        pub fn apply(&mut self, envelope: &EventEnvelope) {
            match envelope.event.membership_change() {
                Some(MembershipChange::Joined { room_id, users }) => {
                    let members = self.members.entry(room_id).or_default();
                    for user in users {
                        members.entry(user.clone()).or_insert(false);
                    }
                }
                Some(MembershipChange::Left { room_id, user }) => {
                    if let Some(members) = self.members.get_mut(&room_id) {
                        members.remove(user);
                    }
                    // H-V1: what waited for them in the room is dropped.
                    if let Some(waiting) = self.waiting.get_mut(user) {
                        waiting.retain(|_, item| item.room_id != room_id);
                    }
                }
                None => {}
            }
            match &envelope.event {
                Event::UserBlocked { blocker, blocked } => {
                    self.blocks
                        .entry(blocker.clone())
                        .or_default()
                        .insert(blocked.clone());
                }
                Event::UserUnblocked { blocker, blocked } => {
                    self.blocks
                        .entry(blocker.clone())
                        .or_default()
                        .remove(blocked);
                }
                Event::NotificationFrequencyChanged { user_id, frequency } => {
                    self.frequency.insert(user_id.clone(), *frequency);
                    if let Some((due, oldest)) = self.pending.get_mut(user_id) {
                        *due = oldest.plus_millis(period_ms(*frequency).unwrap_or(0));
                    }
                }
                Event::RoomArchivedChanged {
                    room_id,
                    user_id,
                    on,
                } => {
                    if let Some(archived) = self
                        .members
                        .get_mut(room_id)
                        .and_then(|members| members.get_mut(user_id))
                    {
                        *archived = *on;
                    }
                }
                Event::MessageSent {
                    room_id,
                    message_id,
                    author,
                    body,
                    attachments,
                    sent_at,
                    ..
                } => self.notify(
                    envelope.position,
                    *room_id,
                    *message_id,
                    author,
                    preview(body, attachments),
                    *sent_at,
                ),
                Event::AutoReplySent {
                    room_id,
                    message_id,
                    author,
                    body,
                    sent_at,
                    ..
                } => self.notify(
                    envelope.position,
                    *room_id,
                    *message_id,
                    author,
                    preview(body, &[]),
                    *sent_at,
                ),
                Event::MessageEdited {
                    room_id,
                    message_id,
                    body,
                    ..
                } => {
                    // Members who left hold nothing of the room; an empty body previews as
                    // empty, never as the earlier body.
                    for member in self.current_members(*room_id) {
                        for item in self.waiting.entry(member).or_default().values_mut() {
                            if item.message_id == *message_id {
                                item.preview = preview(body, &[]);
                            }
                        }
                    }
                }
                Event::MessageDeleted {
                    room_id,
                    message_id,
                    ..
                } => {
                    self.deleted.insert(*message_id);
                    for member in self.current_members(*room_id) {
                        self.waiting
                            .entry(member)
                            .or_default()
                            .retain(|_, item| item.message_id != *message_id);
                    }
                }
                _ => {}
            }
        }

        fn current_members(&self, room: RoomId) -> Vec<UserId> {
            self.members
                .get(&room)
                .map(|members| members.keys().cloned().collect())
                .unwrap_or_default()
        }

        fn notify(
            &mut self,
            position: u64,
            room_id: RoomId,
            message_id: MessageId,
            author: &UserId,
            preview: String,
            sent_at: Timestamp,
        ) {
            let members: Vec<(UserId, bool)> = self
                .members
                .get(&room_id)
                .map(|members| members.iter().map(|(u, a)| (u.clone(), *a)).collect())
                .unwrap_or_default();
            for (user, archived) in members {
                let blocked = self.blocks.get(&user).is_some_and(|b| b.contains(author));
                let Some(period) = self.period(&user) else {
                    continue;
                };
                if user == *author || archived || blocked {
                    continue;
                }
                self.waiting.entry(user.clone()).or_default().insert(
                    position,
                    Item {
                        room_id,
                        message_id,
                        author: author.clone(),
                        preview: preview.clone(),
                        sent_at,
                    },
                );
                self.pending
                    .entry(user)
                    .or_insert((sent_at.plus_millis(period), sent_at));
            }
        }

        /// The notifications published by a tick at `now`, in order.
        pub fn due(&mut self, now: Timestamp) -> Vec<(String, Value)> {
            let mut due: Vec<(Timestamp, UserId)> = self
                .pending
                .iter()
                .filter(|(_, (due, _))| *due <= now)
                .map(|(user, (due, _))| (*due, user.clone()))
                .collect();
            due.sort();
            due.truncate(DUE_USERS_PER_TICK_MAX);
            let mut out = Vec::new();
            for (_, user) in due {
                let frequency = self.frequency.get(&user).copied().unwrap_or_default();
                let period = period_ms(frequency);
                let waiting = self.waiting.entry(user.clone()).or_default();
                let taken: Vec<u64> = waiting.keys().copied().take(BATCH_ITEMS_MAX).collect();
                let mut items = Vec::new();
                for position in taken {
                    let item = waiting.remove(&position).unwrap();
                    let timely = period.is_some_and(|period| {
                        now.millis_since(item.sent_at) <= period + LATE_GRACE_MS
                    });
                    if timely && !self.deleted.contains(&item.message_id) {
                        items.push(item);
                    }
                }
                match waiting.values().next() {
                    Some(next) => {
                        self.pending.insert(user.clone(), (now, next.sent_at));
                    }
                    None => {
                        self.pending.remove(&user);
                    }
                }
                if items.is_empty() {
                    continue;
                }
                let batches: Vec<Vec<Item>> = if frequency == NotificationFrequency::Immediate {
                    items.into_iter().map(|item| vec![item]).collect()
                } else {
                    vec![items]
                };
                for batch in batches {
                    let items: Vec<Value> = batch
                        .iter()
                        .map(|item| {
                            json!({
                                "room_id": item.room_id,
                                "message_id": item.message_id,
                                "author": item.author,
                                "preview": item.preview,
                                "sent_at": item.sent_at,
                            })
                        })
                        .collect();
                    out.push((
                        format!("notify.{user}"),
                        json!({
                            "user_id": user,
                            "frequency": frequency_name(frequency),
                            "items": items,
                        }),
                    ));
                }
            }
            out
        }

        /// The previews waiting for `user`, oldest first.
        pub fn waiting(&self, user: &UserId) -> Vec<(MessageId, String)> {
            self.waiting
                .get(user)
                .map(|items| {
                    items
                        .values()
                        .map(|item| (item.message_id, item.preview.clone()))
                        .collect()
                })
                .unwrap_or_default()
        }
    }
}

/// Applies the part of `world`'s log after `applied` to `model` and `expected` in batches of
/// random sizes, with a tick after each at a time a little after the last event or much later
/// (late batches are dropped); asserts each tick publishes what is expected. Returns the
/// notifications published and the most items in one.
fn drive(
    world: &World,
    rng: &mut crate::support::Rng,
    model: &mut Notifications,
    expected: &mut expected::Expected,
    applied: &mut usize,
    now: &mut domain::Timestamp,
) -> (usize, usize) {
    use projections::{EventEnvelope, Projector};

    let (mut published, mut largest) = (0, 0);
    let envelopes: Vec<EventEnvelope> = world.envelopes();
    while *applied < envelopes.len() {
        let take = (1 + rng.below(40) as usize).min(envelopes.len() - *applied);
        let batch = &envelopes[*applied..*applied + take];
        for envelope in batch {
            expected.apply(envelope);
        }
        *applied += take;
        let last = batch.last().unwrap().recorded_at;
        let extra = [0, MINUTE, 20 * MINUTE, 2 * crate::support::HOUR][rng.below(4) as usize];
        if last.plus_millis(extra) > *now {
            *now = last.plus_millis(extra);
        }
        // Half the batches the runtime's way (applied and ticked in one commit, which never
        // writes what the tick takes at once), half applied and ticked apart.
        let (p, l) = if rng.below(2) == 0 {
            compare(
                model.apply_and_due(batch, *now).unwrap(),
                expected,
                *now,
                *applied,
            )
        } else {
            model.apply(batch).unwrap();
            tick(model, expected, *now, *applied)
        };
        published += p;
        largest = largest.max(l);
    }
    (published, largest)
}

/// One tick at `now` on both; asserts they publish the same.
fn tick(
    model: &mut Notifications,
    expected: &mut expected::Expected,
    now: domain::Timestamp,
    applied: usize,
) -> (usize, usize) {
    use projections::Projector;

    compare(model.due(now).unwrap(), expected, now, applied)
}

/// Asserts that `outgoing` is what `expected` publishes at `now`.
fn compare(
    outgoing: Vec<projections::Outgoing>,
    expected: &mut expected::Expected,
    now: domain::Timestamp,
    applied: usize,
) -> (usize, usize) {
    let got: Vec<(String, Value)> = outgoing
        .into_iter()
        .map(|out| (out.subject, serde_json::from_slice(&out.payload).unwrap()))
        .collect();
    let want = expected.due(now);
    assert_eq!(got, want, "at position {applied}");
    let largest = got
        .iter()
        .map(|(_, body)| body["items"].as_array().unwrap().len())
        .max()
        .unwrap_or(0);
    (got.len(), largest)
}

fn assert_waiting(model: &Notifications, expected: &expected::Expected, what: &str) {
    for member in ["alice", "bob", "carol", "dave", "zoe"] {
        let got: Vec<_> = model
            .pending(&user(member))
            .unwrap()
            .into_iter()
            .map(|item| (item.message_id, item.preview))
            .collect();
        assert_eq!(got, expected.waiting(&user(member)), "{what}: {member}");
    }
}

#[test]
fn r_a3_batches_equal_a_brute_force_expectation_from_the_log_after_random_workloads() {
    use projections::Projector;

    let (mut published, mut largest) = (0, 0);
    for seed in [3, 2_027, 77_777, 424_242] {
        let mut world = World::new();
        let mut rng = crate::support::Rng::new(seed);
        let dir = TempDataDir::new();
        let path = dir.path().join("notifications");
        let mut model = Notifications::open_path(&path).unwrap();
        let mut expected = expected::Expected::default();
        let (mut applied, mut now) = (0, world.now());
        for _ in 0..6 {
            crate::workload::run(&mut world, &mut rng, 300);
            let (p, l) = drive(
                &world,
                &mut rng,
                &mut model,
                &mut expected,
                &mut applied,
                &mut now,
            );
            published += p;
            largest = largest.max(l);
            assert_waiting(&model, &expected, &format!("seed {seed}"));
            // A clean stop and a start: what the model holds in memory is loaded again from
            // the store, so the store must hold the same (the next round's ticks compare).
            model.flush().unwrap();
            drop(model);
            model = Notifications::open_path(&path).unwrap();
            assert_waiting(&model, &expected, &format!("seed {seed}, reopened"));
        }
        // What was made depends on the log alone: a rebuild that sent nothing dumps the same.
        let rebuilt = crate::support::rebuilt(Notifications::temporary().unwrap(), &world.log);
        assert_eq!(
            rebuilt.dump().unwrap(),
            model.dump().unwrap(),
            "seed {seed}"
        );
    }
    assert!(published > 100, "only {published} notifications published");
    assert!(largest > 1, "no batch of more than one item");

    // More than a batch waits in several rooms, with edits, deletions, a block and a leave
    // between: batches of at most BATCH_ITEMS_MAX, the rest due at the next tick.
    let mut world = World::new();
    let mut rng = crate::support::Rng::new(5);
    let mut model = Notifications::temporary().unwrap();
    let mut expected = expected::Expected::default();
    let (mut applied, mut now) = (0, world.now());
    world.ok(
        "bob",
        Action::SetNotifications {
            frequency: NotificationFrequency::Daily,
        },
    );
    let team = world.group("alice", "Team", &["bob", "carol"]);
    let side = world.group("carol", "Side", &["bob", "alice"]);
    for index in 0..130 {
        let id = world.say("alice", team, &format!("team {index}"));
        world.say("carol", side, &format!("side {index}"));
        if index % 9 == 0 {
            world.ok(
                "alice",
                Action::EditMessage {
                    room_id: team,
                    message_id: id,
                    body: format!("edited {index}"),
                },
            );
        }
        if index % 13 == 0 {
            world.ok(
                "alice",
                Action::DeleteMessage {
                    room_id: team,
                    message_id: id,
                },
            );
        }
        if index == 60 {
            world.ok(
                "bob",
                Action::BlockUser {
                    user_id: user("carol"),
                },
            );
        }
        if index == 90 {
            world.ok(
                "bob",
                Action::UnblockUser {
                    user_id: user("carol"),
                },
            );
            world.ok("bob", Action::LeaveRoom { room_id: side });
        }
    }
    drive(
        &world,
        &mut rng,
        &mut model,
        &mut expected,
        &mut applied,
        &mut now,
    );
    assert_waiting(&model, &expected, "many");
    let mut sizes = Vec::new();
    // A day after the first message: due, and still within the late grace.
    let day = world.now().plus_millis(24 * crate::support::HOUR);
    for minutes in 0..4 {
        let at = day.plus_millis(minutes * MINUTE);
        sizes.push(tick(&mut model, &mut expected, at, applied).1);
    }
    assert_eq!(
        sizes[0],
        projections::notifications::BATCH_ITEMS_MAX,
        "{sizes:?}"
    );
    assert!(sizes[1] > 0, "the rest is sent at the next tick: {sizes:?}");
    assert_waiting(&model, &expected, "many, sent");
}

#[test]
fn a_store_of_the_earlier_layout_is_refused_and_rebuilt_afresh_when_served() {
    use projections::Projector;

    let dir = TempDataDir::new();
    let path = dir.path().join("notifications");
    {
        // What a build before the layout mark left: events applied, no `v/layout`.
        let store = projections::Store::open(&path).unwrap();
        let mut changes = store.changes().unwrap();
        changes.put(b"g/bob\0".to_vec(), &1u32).unwrap();
        changes.commit(5).unwrap();
        store.flush().unwrap();
    }
    let refused = Notifications::open_path(&path).unwrap_err();
    assert_eq!(
        refused,
        projections::ProjectionError::Layout {
            model: "notifications",
            found: 0,
            expected: projections::notifications::LAYOUT_VERSION,
        }
    );

    // Opened as a service opens it (under a data directory), it starts afresh instead.
    let data_dir = TempDataDir::new();
    let served = projections::store_path(data_dir.path(), "notifications");
    std::fs::create_dir_all(served.parent().unwrap()).unwrap();
    std::fs::rename(&path, &served).unwrap();
    let afresh = Notifications::open(data_dir.path()).unwrap();
    assert_eq!(
        afresh.position(),
        0,
        "an earlier layout is rebuilt from the log"
    );
    drop(afresh);

    // A store of this layout reopens with what waits.
    let path = dir.path().join("notifications-new");
    let mut world = World::new();
    world.direct("alice", "bob", "hi");
    {
        let mut model = Notifications::open_path(&path).unwrap();
        projections::rebuild(&mut model, world.envelopes()).unwrap();
        model.flush().unwrap();
    }
    let reopened = Notifications::open_path(&path).unwrap();
    assert_eq!(reopened.position(), world.head());
    let waiting: Vec<String> = reopened
        .pending(&user("bob"))
        .unwrap()
        .into_iter()
        .map(|item| item.preview)
        .collect();
    assert_eq!(waiting, ["hi"]);
}
