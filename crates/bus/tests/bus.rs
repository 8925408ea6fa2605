//! The bus behaviour suite, run against both implementations: in process, and NATS through a
//! real nats-server started by testkit. Waits are bounded and generous; nothing asserts timing.
#![allow(clippy::unwrap_used)]

use std::collections::BTreeSet;
use std::time::Duration;

use bus::{Bus, BusError, Headers, Message, Subscription, PAYLOAD_BYTES_MAX};
use futures::StreamExt;
use testkit::NatsServer;

/// How long a test waits for a message that must come.
const WAIT_MAX: Duration = Duration::from_secs(10);

/// One bus under test, plus what it needs to stay alive.
struct Fixture {
    bus: Bus,
    /// For NATS: the server, kept running for the test's length.
    server: Option<NatsServer>,
}

impl Fixture {
    fn in_process() -> Fixture {
        Fixture {
            bus: Bus::in_process(),
            server: None,
        }
    }

    async fn nats() -> Fixture {
        let server = NatsServer::start();
        let bus = Bus::connect(&server.url(), "bus-test").await.unwrap();
        Fixture {
            bus,
            server: Some(server),
        }
    }

    /// A second participant: a second connection to the same server, or a clone of the
    /// in-process bus. Using it checks that messages cross connections.
    async fn other(&self) -> Bus {
        match &self.server {
            Some(server) => Bus::connect(&server.url(), "bus-test-other").await.unwrap(),
            None => self.bus.clone(),
        }
    }
}

/// The next message, or a panic naming the subscription after [`WAIT_MAX`].
async fn next_within(subscription: &mut Subscription) -> Message {
    match tokio::time::timeout(WAIT_MAX, subscription.next()).await {
        Ok(Some(message)) => message,
        Ok(None) => panic!("subscription {} ended", subscription.subject()),
        Err(_) => panic!(
            "no message on {} within {WAIT_MAX:?}",
            subscription.subject()
        ),
    }
}

/// Reads messages until one has the payload `end`, returning the subjects before it.
async fn subjects_until_end(subscription: &mut Subscription) -> Vec<String> {
    let mut subjects = Vec::new();
    loop {
        let message = next_within(subscription).await;
        if message.payload == "end" {
            return subjects;
        }
        subjects.push(message.subject);
    }
}

// ---------------------------------------------------------------------------------------------
// The shared suite: each function is run once per implementation by the macro below.
// ---------------------------------------------------------------------------------------------

async fn pub_sub_with_wildcards(fixture: Fixture) {
    let bus = &fixture.bus;
    let mut exact = bus.subscribe("a.b.c").await.unwrap();
    let mut star_middle = bus.subscribe("a.*.c").await.unwrap();
    let mut star_first = bus.subscribe("*.b.c").await.unwrap();
    let mut tail = bus.subscribe("a.>").await.unwrap();

    let publisher = fixture.other().await;
    for subject in ["a.b.c", "a.x.c", "a.b", "a.b.c.d", "z.b.c", "q.r", "a"] {
        publisher
            .publish(subject, Headers::new(), "x")
            .await
            .unwrap();
    }
    // Every pattern matches `a.b.c`, so this marks the end for all of them.
    publisher
        .publish("a.b.c", Headers::new(), "end")
        .await
        .unwrap();

    assert_eq!(subjects_until_end(&mut exact).await, ["a.b.c"]);
    assert_eq!(
        subjects_until_end(&mut star_middle).await,
        ["a.b.c", "a.x.c"]
    );
    assert_eq!(
        subjects_until_end(&mut star_first).await,
        ["a.b.c", "z.b.c"]
    );
    assert_eq!(
        subjects_until_end(&mut tail).await,
        ["a.b.c", "a.x.c", "a.b", "a.b.c.d"]
    );
}

async fn subscription_is_a_stream(fixture: Fixture) {
    let bus = &fixture.bus;
    let subscription = bus.subscribe("stream.*").await.unwrap();
    for index in 0..3 {
        bus.publish(&format!("stream.{index}"), Headers::new(), "x")
            .await
            .unwrap();
    }
    let subjects: Vec<String> = tokio::time::timeout(
        WAIT_MAX,
        subscription
            .take(3)
            .map(|message| message.subject)
            .collect(),
    )
    .await
    .unwrap();
    assert_eq!(subjects, ["stream.0", "stream.1", "stream.2"]);
}

async fn queue_group_gives_each_message_to_one_member(fixture: Fixture) {
    let bus = &fixture.bus;
    let mut first = bus.queue_subscribe("jobs.*", "workers").await.unwrap();
    let mut second = bus.queue_subscribe("jobs.*", "workers").await.unwrap();
    let mut watcher = bus.subscribe("jobs.>").await.unwrap();

    let publisher = fixture.other().await;
    let total = 100;
    for index in 0..total {
        publisher
            .publish("jobs.run", Headers::new(), index.to_string())
            .await
            .unwrap();
    }

    // The plain subscription sees every message.
    for _ in 0..total {
        next_within(&mut watcher).await;
    }

    // The group's members see every message exactly once between them.
    let mut seen = BTreeSet::new();
    let (mut by_first, mut by_second) = (0, 0);
    while seen.len() < total {
        let message = tokio::select! {
            message = next_within(&mut first) => { by_first += 1; message }
            message = next_within(&mut second) => { by_second += 1; message }
        };
        let index: usize = std::str::from_utf8(&message.payload)
            .unwrap()
            .parse()
            .unwrap();
        assert!(seen.insert(index), "message {index} delivered twice");
    }
    assert_eq!(by_first + by_second, total);
    assert!(by_first > 0 && by_second > 0, "{by_first} / {by_second}");
}

async fn request_reply_round_trips_headers(fixture: Fixture) {
    let mut requests = fixture.bus.subscribe("svc.echo").await.unwrap();
    let responder = fixture.bus.clone();
    let serve = tokio::spawn(async move {
        let request = next_within(&mut requests).await;
        assert!(request.reply_to.is_some());
        let mut headers = request.headers.clone();
        headers.insert("Replied", "yes");
        let mut payload = request.payload.to_vec();
        payload.reverse();
        responder.respond(&request, headers, payload).await.unwrap();
    });

    let requester = fixture.other().await;
    let mut headers = Headers::new()
        .with("Parlor-Position", "42")
        .with("Content-Type", "application/x-bincode");
    headers.append("X-Many", "1");
    headers.append("X-Many", "2");
    let reply = requester
        .request("svc.echo", headers, "abc", WAIT_MAX)
        .await
        .unwrap();
    serve.await.unwrap();

    assert_eq!(reply.payload, "cba");
    assert_eq!(reply.headers.get("Parlor-Position"), Some("42"));
    assert_eq!(
        reply.headers.get("content-type"),
        Some("application/x-bincode")
    );
    assert_eq!(
        reply.headers.get_all("X-Many").collect::<Vec<_>>(),
        ["1", "2"]
    );
    assert_eq!(reply.headers.get("Replied"), Some("yes"));
    assert_eq!(reply.reply_to, None);
}

async fn request_reply_with_queue_group_responders(fixture: Fixture) {
    // Replicas answering as a queue group: every request gets exactly one answer.
    let mut tasks = Vec::new();
    for replica in 0..2 {
        let mut requests = fixture
            .bus
            .queue_subscribe("svc.query", "replicas")
            .await
            .unwrap();
        let responder = fixture.bus.clone();
        tasks.push(tokio::spawn(async move {
            while let Some(request) = requests.next().await {
                let body = format!("replica {replica}");
                responder
                    .respond(&request, Headers::new(), body)
                    .await
                    .unwrap();
            }
        }));
    }
    let requester = fixture.other().await;
    for _ in 0..20 {
        let reply = requester
            .request("svc.query", Headers::new(), "q", WAIT_MAX)
            .await
            .unwrap();
        assert!(reply.payload.starts_with(b"replica "));
    }
    for task in tasks {
        task.abort();
    }
}

async fn request_without_subscriber_fails_with_no_responders(fixture: Fixture) {
    let result = fixture
        .bus
        .request("nobody.home", Headers::new(), "?", WAIT_MAX)
        .await;
    assert_eq!(result.unwrap_err(), BusError::NoResponders);
}

async fn request_without_reply_times_out(fixture: Fixture) {
    let _silent = fixture.bus.subscribe("svc.silent").await.unwrap();
    let result = fixture
        .bus
        .request(
            "svc.silent",
            Headers::new(),
            "?",
            Duration::from_millis(200),
        )
        .await;
    assert_eq!(result.unwrap_err(), BusError::Timeout);
}

async fn dropping_a_subscription_unsubscribes(fixture: Fixture) {
    let bus = &fixture.bus;
    let plain = bus.subscribe("gone.plain").await.unwrap();
    let member = bus.queue_subscribe("gone.queue", "group").await.unwrap();
    let explicit = bus.subscribe("gone.explicit").await.unwrap();
    drop(plain);
    drop(member);
    explicit.unsubscribe().await.unwrap();
    // The flush orders the unsubscriptions before the requests below (NATS).
    bus.flush().await.unwrap();
    for subject in ["gone.plain", "gone.queue", "gone.explicit"] {
        let result = bus.request(subject, Headers::new(), "?", WAIT_MAX).await;
        assert_eq!(result.unwrap_err(), BusError::NoResponders, "{subject}");
    }
}

async fn payload_limit_is_enforced(fixture: Fixture) {
    let bus = &fixture.bus;
    let mut subscription = bus.subscribe("big").await.unwrap();

    // Exactly at the limit goes through.
    let largest = vec![7u8; PAYLOAD_BYTES_MAX];
    bus.publish("big", Headers::new(), largest).await.unwrap();
    assert_eq!(
        next_within(&mut subscription).await.payload.len(),
        PAYLOAD_BYTES_MAX
    );

    // One byte more is refused, for publish and request alike.
    let too_large = || bytes::Bytes::from(vec![7u8; PAYLOAD_BYTES_MAX + 1]);
    let expected = BusError::PayloadTooLarge {
        bytes: PAYLOAD_BYTES_MAX + 1,
        bytes_max: PAYLOAD_BYTES_MAX,
    };
    let published = bus.publish("big", Headers::new(), too_large()).await;
    assert_eq!(published.unwrap_err(), expected);
    let requested = bus
        .request("big", Headers::new(), too_large(), WAIT_MAX)
        .await;
    assert_eq!(requested.unwrap_err(), expected);

    // Headers count too, as in NATS.
    let headers = Headers::new().with("A", "b");
    let published = bus
        .publish("big", headers.clone(), vec![7u8; PAYLOAD_BYTES_MAX])
        .await;
    assert!(matches!(
        published.unwrap_err(),
        BusError::PayloadTooLarge { .. }
    ));
}

async fn invalid_subjects_and_headers_are_refused(fixture: Fixture) {
    let bus = &fixture.bus;
    for subject in ["", "a..b", "a.", "a b", "a.*", "a.>", "a\nb"] {
        let result = bus.publish(subject, Headers::new(), "x").await;
        assert!(
            matches!(result, Err(BusError::InvalidSubject { .. })),
            "publish {subject:?}: {result:?}"
        );
        let result = bus
            .request(subject, Headers::new(), "x", Duration::from_secs(1))
            .await;
        assert!(
            matches!(result, Err(BusError::InvalidSubject { .. })),
            "request {subject:?}: {result:?}"
        );
    }
    for subject in ["", "a..b", "a.>.b", "a.b*", "a b"] {
        let result = bus.subscribe(subject).await;
        assert!(
            matches!(result, Err(BusError::InvalidSubject { .. })),
            "subscribe {subject:?}"
        );
    }
    for group in ["", "a b", "g*"] {
        let result = bus.queue_subscribe("a.b", group).await;
        assert!(
            matches!(result, Err(BusError::InvalidSubject { .. })),
            "group {group:?}"
        );
    }
    for (name, value) in [
        ("", "v"),
        ("Bad:Name", "v"),
        ("Bad Name", "v"),
        ("N", "a\r\nb"),
    ] {
        let result = bus
            .publish("a.b", Headers::new().with(name, value), "x")
            .await;
        assert!(
            matches!(result, Err(BusError::InvalidHeader { .. })),
            "header {name:?}: {value:?}"
        );
    }
    let not_a_request = Message {
        subject: "a.b".into(),
        headers: Headers::new(),
        payload: "x".into(),
        reply_to: None,
    };
    let result = bus.respond(&not_a_request, Headers::new(), "x").await;
    assert_eq!(result.unwrap_err(), BusError::NoReplySubject);
}

async fn clones_share_the_connection(fixture: Fixture) {
    let clone = fixture.bus.clone();
    let mut subscription = fixture.bus.subscribe("shared.x").await.unwrap();
    clone
        .publish("shared.x", Headers::new(), "hi")
        .await
        .unwrap();
    assert_eq!(next_within(&mut subscription).await.payload, "hi");
    assert!(clone.is_connected());
    assert_eq!(*clone.reconnects().borrow(), 0);
}

/// Runs each suite function once in process and once over NATS.
macro_rules! both_implementations {
    ($($name:ident),* $(,)?) => {
        mod in_process {
            $(
                #[tokio::test]
                async fn $name() {
                    super::$name(super::Fixture::in_process()).await;
                }
            )*
        }
        mod nats {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    super::$name(super::Fixture::nats().await).await;
                }
            )*
        }
    };
}

both_implementations!(
    pub_sub_with_wildcards,
    subscription_is_a_stream,
    queue_group_gives_each_message_to_one_member,
    request_reply_round_trips_headers,
    request_reply_with_queue_group_responders,
    request_without_subscriber_fails_with_no_responders,
    request_without_reply_times_out,
    dropping_a_subscription_unsubscribes,
    payload_limit_is_enforced,
    invalid_subjects_and_headers_are_refused,
    clones_share_the_connection,
);

// ---------------------------------------------------------------------------------------------
// In process only: slow consumers.
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn in_process_full_channel_drops_and_counts() {
    let capacity = 4;
    let bus = Bus::in_process_with_capacity(capacity);
    let mut slow = bus.subscribe("evt.x").await.unwrap();
    let mut members = [
        bus.queue_subscribe("evt.x", "g").await.unwrap(),
        bus.queue_subscribe("evt.x", "g").await.unwrap(),
    ];
    // Publishing never waits, even with nobody reading.
    for index in 0..10 {
        bus.publish("evt.x", Headers::new(), index.to_string())
            .await
            .unwrap();
    }
    // The plain subscriber kept the first 4 and missed 6; the two group members hold 8
    // between them and the group missed 2.
    assert_eq!(bus.dropped(), 6 + 2);
    for expected in 0..capacity {
        let message = next_within(&mut slow).await;
        assert_eq!(message.payload, expected.to_string());
    }
    // The dropped messages are gone: the next one is a new one.
    bus.publish("evt.x", Headers::new(), "after").await.unwrap();
    assert_eq!(next_within(&mut slow).await.payload, "after");
    for member in &mut members {
        for _ in 0..capacity {
            next_within(member).await;
        }
    }
}

#[tokio::test]
async fn in_process_queue_group_round_robins() {
    let bus = Bus::in_process();
    let mut first = bus.queue_subscribe("rr", "g").await.unwrap();
    let mut second = bus.queue_subscribe("rr", "g").await.unwrap();
    for index in 0..4 {
        bus.publish("rr", Headers::new(), index.to_string())
            .await
            .unwrap();
    }
    assert_eq!(next_within(&mut first).await.payload, "0");
    assert_eq!(next_within(&mut second).await.payload, "1");
    assert_eq!(next_within(&mut first).await.payload, "2");
    assert_eq!(next_within(&mut second).await.payload, "3");
}

// ---------------------------------------------------------------------------------------------
// NATS only: reconnecting after the server restarts.
// ---------------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nats_reconnects_after_server_restart() {
    let mut server = NatsServer::start();
    let bus = Bus::connect(&server.url(), "reconnect-test").await.unwrap();
    let mut reconnects = bus.reconnects();
    assert_eq!(*reconnects.borrow_and_update(), 0);

    let mut events = bus.subscribe("restart.events").await.unwrap();
    let mut requests = bus.subscribe("restart.service").await.unwrap();
    bus.publish("restart.events", Headers::new(), "before")
        .await
        .unwrap();
    assert_eq!(next_within(&mut events).await.payload, "before");

    server.stop();
    let deadline = tokio::time::Instant::now() + WAIT_MAX;
    while bus.is_connected() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "never saw the disconnect"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // While the server is down, waiting for it is bounded.
    let flushed = bus.flush().await;
    assert!(
        matches!(
            flushed,
            Err(BusError::Disconnected | BusError::Transport(_))
        ),
        "{flushed:?}"
    );

    server.start_again();
    tokio::time::timeout(Duration::from_secs(30), reconnects.changed())
        .await
        .expect("no reconnect within 30 s")
        .unwrap();
    assert!(*reconnects.borrow() >= 1);
    assert!(bus.is_connected());

    // The same Bus and the same subscriptions work again.
    bus.publish("restart.events", Headers::new(), "after")
        .await
        .unwrap();
    assert_eq!(next_within(&mut events).await.payload, "after");

    let responder = bus.clone();
    let serve = tokio::spawn(async move {
        let request = next_within(&mut requests).await;
        responder
            .respond(&request, Headers::new(), "pong")
            .await
            .unwrap();
    });
    let other = Bus::connect(&server.url(), "reconnect-test-other")
        .await
        .unwrap();
    let reply = other
        .request("restart.service", Headers::new(), "ping", WAIT_MAX)
        .await
        .unwrap();
    assert_eq!(reply.payload, "pong");
    serve.await.unwrap();

    // New subscriptions work too.
    let mut fresh = bus.subscribe("restart.fresh").await.unwrap();
    other
        .publish("restart.fresh", Headers::new(), "new")
        .await
        .unwrap();
    assert_eq!(next_within(&mut fresh).await.payload, "new");
}

#[tokio::test]
async fn connecting_to_nothing_fails() {
    let port = testkit::free_port();
    let result = Bus::connect(&format!("nats://127.0.0.1:{port}"), "nobody").await;
    assert!(matches!(result, Err(BusError::Transport(_))), "{result:?}");
}
