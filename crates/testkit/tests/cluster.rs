//! Tests of the three-node cluster: routes carry messages between nodes, JetStream replicates,
//! and the cluster keeps serving while one node is down and takes it back on its own ports.
#![allow(clippy::unwrap_used)]

use std::time::Duration;

use futures::StreamExt;
use testkit::{NatsCluster, CLUSTER_NODES};

/// How long any single network answer may take.
const ANSWER_WAIT: Duration = Duration::from_secs(10);

async fn connect(url: &str) -> async_nats::Client {
    tokio::time::timeout(ANSWER_WAIT, async_nats::connect(url))
        .await
        .expect("connect timed out")
        .expect("connect")
}

/// Subscribes on `receiver`, publishes on `sender` until the message arrives through the
/// routes (a new subscription reaches other nodes asynchronously, so the first publishes may
/// go nowhere), and returns the payload received.
async fn publish_across(
    sender: &async_nats::Client,
    receiver: &async_nats::Client,
    subject: &str,
) -> String {
    let mut subscription = receiver.subscribe(subject.to_owned()).await.unwrap();
    receiver.flush().await.unwrap();
    let deadline = tokio::time::Instant::now() + ANSWER_WAIT;
    loop {
        sender
            .publish(subject.to_owned(), "across".into())
            .await
            .unwrap();
        sender.flush().await.unwrap();
        match tokio::time::timeout(Duration::from_millis(200), subscription.next()).await {
            Ok(Some(message)) => return String::from_utf8(message.payload.to_vec()).unwrap(),
            Ok(None) => panic!("subscription closed"),
            Err(_) => assert!(
                tokio::time::Instant::now() < deadline,
                "no message across the routes within {ANSWER_WAIT:?}"
            ),
        }
    }
}

#[test]
fn urls_list_every_node() {
    let cluster = NatsCluster::start_cluster();
    let urls = cluster.urls();
    assert_eq!(urls.split(',').count(), CLUSTER_NODES);
    for node in 0..CLUSTER_NODES {
        assert!(urls.contains(&cluster.url(node)));
        assert!(cluster.layout(node).dir.join("jetstream").is_dir());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cluster_survives_one_node_down_and_takes_it_back_on_its_ports() {
    let mut cluster = NatsCluster::start_cluster();
    let first = connect(&cluster.url(0)).await;
    let second = connect(&cluster.url(1)).await;
    let third = connect(&cluster.url(2)).await;
    assert_eq!(publish_across(&first, &third, "before").await, "across");

    // A stream replicated on all three nodes, so JetStream needs a quorum of two.
    let jetstream = async_nats::jetstream::new(second.clone());
    tokio::time::timeout(
        ANSWER_WAIT,
        jetstream.create_stream(async_nats::jetstream::stream::Config {
            name: "replicated".to_owned(),
            subjects: vec!["replicated.>".to_owned()],
            num_replicas: 3,
            ..Default::default()
        }),
    )
    .await
    .unwrap()
    .unwrap();

    let port = cluster.layout(0).client_port;
    cluster.stop(0);
    assert!(!cluster.is_running(0));
    // The stopped node's port is still the cluster's: nobody else can bind it.
    assert!(std::net::TcpListener::bind(("127.0.0.1", port)).is_err());
    drop(first);

    // Clients on the other two nodes keep working, core NATS and JetStream alike.
    assert_eq!(publish_across(&second, &third, "during").await, "across");
    let ack = tokio::time::timeout(ANSWER_WAIT, async {
        // The stream's leader may have been on the stopped node: retry until re-elected.
        loop {
            if let Ok(pending) = jetstream.publish("replicated.one", "x".into()).await {
                if let Ok(ack) = pending.await {
                    return ack;
                }
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    })
    .await
    .expect("no JetStream ack with one node down");
    assert_eq!(ack.stream, "replicated");

    cluster.start(0);
    assert!(cluster.is_running(0));
    assert_eq!(cluster.layout(0).client_port, port);
    let again = connect(&cluster.url(0)).await;
    assert_eq!(publish_across(&third, &again, "after").await, "across");
}

/// The HA writer's cluster: nats-server 2.15 (key-value works, which Debian's 2.9 does not
/// give async-nats), every node configured to fsync each JetStream write.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ha_cluster_runs_2_15_with_key_value_and_sync_always() {
    let cluster = NatsCluster::start_cluster_with(testkit::ClusterOptions::ha());
    for node in 0..CLUSTER_NODES {
        let config = std::fs::read_to_string(cluster.layout(node).dir.join("node.conf")).unwrap();
        assert!(config.contains("sync_interval: always"), "{config}");
    }
    let client = connect(&cluster.url(0)).await;
    assert!(
        client.server_info().version.starts_with("2.15."),
        "server {}",
        client.server_info().version
    );
    let jetstream = async_nats::jetstream::new(client);
    let bucket = tokio::time::timeout(
        ANSWER_WAIT,
        jetstream.create_key_value(async_nats::jetstream::kv::Config {
            bucket: "probe".to_owned(),
            num_replicas: 3,
            ..Default::default()
        }),
    )
    .await
    .expect("bucket creation timed out")
    .unwrap();
    let revision = bucket.create("key", "one".into()).await.unwrap();
    assert!(
        bucket.create("key", "two".into()).await.is_err(),
        "a second create of the same key must fail"
    );
    let read = bucket.get("key").await.unwrap().unwrap();
    assert_eq!(&read[..], b"one");
    assert!(revision >= 1);
}
