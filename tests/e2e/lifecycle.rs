//! Lifecycle: SIGTERM finishes cleanly (exit 0); a restart finds the state as it was.

use serde_json::json;

use crate::harness::{Client, Parlor, System};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_exits_cleanly_and_a_restart_keeps_the_state() {
    let mut system = System::start().await;
    let c = system.client.clone();
    c.register(&["alice", "bob"]).await;
    let sent = c
        .ok(
            "alice",
            "message.send",
            json!({"to": "bob", "body": "before restart"}),
        )
        .await;
    let message = sent["result"]["message_id"].as_str().unwrap().to_owned();
    let room = sent["result"]["room_id"].as_str().unwrap().to_owned();
    let status = system.parlor.terminate();
    assert!(status.success(), "exit status {status}");
    assert!(
        system.data.path().join("writer-state.snapshot").exists(),
        "a snapshot at shutdown"
    );

    system.parlor = Parlor::start_writer(&system.nats.url(), system.data.path(), &[]);
    let c = Client::connect(&system.nats.url()).await;
    c.wait_for_writer().await;
    // The state survived: the message can still be edited by its author, not by others.
    let edit = json!({"room_id": room, "message_id": message, "body": "after restart"});
    assert_eq!(
        c.code("bob", "message.edit", edit.clone()).await,
        "not_author"
    );
    c.ok("alice", "message.edit", edit).await;
    let log = c.whole_log().await;
    assert_eq!(log.len(), 2 + 1 + 1 + 1);
}
