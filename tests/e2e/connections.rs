//! Connecting to NATS: a part started before any server answers waits for one (logging each
//! try) instead of exiting, and takes a list of servers.

use std::time::{Duration, Instant};

use testkit::NatsServer;

use crate::harness::{read_logs, spawn_part, Client, START_WAIT};

/// The warning a part logs for each failed first connection.
const RETRY_LOG_LINE: &str = "cannot connect to NATS yet";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn up_started_before_nats_connects_once_nats_is_up() {
    // Two servers of a list, neither running yet: their ports are reserved, not listening.
    let mut first = NatsServer::reserve();
    let second = NatsServer::reserve();
    let data = tempfile::tempdir().unwrap();
    let servers = format!("{},{}", second.url(), first.url());
    let mut parlor = spawn_part(
        &[
            "up",
            "--nats-url",
            &servers,
            "--dev-clock",
            "--http-addr",
            "127.0.0.1:0",
            "--ops-addr",
            "off",
        ],
        data.path(),
    );

    // It keeps trying (and says so) instead of exiting.
    let deadline = Instant::now() + START_WAIT;
    while read_logs(data.path()).matches(RETRY_LOG_LINE).count() < 2 {
        parlor.assert_alive();
        assert!(
            Instant::now() < deadline,
            "no retries logged: {}",
            read_logs(data.path())
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    parlor.assert_alive();

    // One server of the list comes up: the part connects and serves.
    first.start_again();
    let client = Client::connect(&first.url()).await;
    client.wait_for_writer().await;
    client.register(&["alice"]).await;
    let log = client.whole_log().await;
    assert_eq!(log.len(), 1, "{log:?}");
    assert_eq!(log[0]["type"], "user_registered");
    parlor.assert_alive();
}
