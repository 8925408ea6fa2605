//! security.md H-N2 against the real writer: the events it publishes chain as a follower
//! checks them, so live events are taken without reading the log.

use bus::chain::chained_hash;
use protocol::{Format, RecordedEvent, Sha256, HEADER_CONTENT_TYPE};

use crate::harness::{System, REPLY_WAIT};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn h_n2_the_real_writers_live_events_chain_from_zero() {
    let system = System::start().await;
    let mut live = system.client.bus.subscribe("parlor.evt.>").await.unwrap();
    system.client.register(&["alice", "bob", "carol"]).await;
    let (_, room) = system.client.group_room("ops", 3, "chain").await;
    assert!(!room.is_empty());
    let head = system.client.whole_log().await.len() as u64;

    let mut previous = Sha256([0; 32]);
    for position in 1..=head {
        let message = tokio::time::timeout(REPLY_WAIT, live.next())
            .await
            .expect("a published event")
            .expect("the subscription is open");
        let format = Format::from_content_type(message.headers.get(HEADER_CONTENT_TYPE))
            .unwrap_or(Format::Json);
        let event = RecordedEvent::decode(&message.payload, format).unwrap();
        assert_eq!(event.position, position);
        assert_eq!(
            chained_hash(&previous, &event),
            Some(event.hash),
            "event {position} ({}) does not chain",
            event.type_name()
        );
        previous = event.hash;
    }
}
