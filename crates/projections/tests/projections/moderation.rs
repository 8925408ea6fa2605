//! The moderation read model: the reports queue (R-P1), newest first, moderators only.

use domain::{Action, ReportReason};
use projections::{Moderation, QueryError};
use serde_json::{json, Value};

use crate::support::{answer, ask, rebuilt, World, MINUTE};

#[test]
fn r_p1_reports_queue_is_newest_first_and_for_moderators_only() {
    let mut world = World::new();
    let group = world.group("alice", "Team", &["bob", "carol"]);
    let message = world.say("alice", group, "pay me on paypal");
    world.ok(
        "bob",
        Action::ReportMessage {
            room_id: group,
            message_id: message,
            reason: ReportReason::PaymentOutsidePlatform,
            details: Some("asks for paypal".into()),
        },
    );
    world.advance(MINUTE);
    world.ok(
        "carol",
        Action::ReportMessage {
            room_id: group,
            message_id: message,
            reason: ReportReason::Other,
            details: None,
        },
    );
    let model = rebuilt(Moderation::temporary().unwrap(), &world.log);
    let at = world.now();
    assert!(matches!(
        ask(&model, json!({"op": "reports", "caller": "bob"}), at),
        Err(QueryError::Forbidden(_))
    ));
    let all = answer(
        &model,
        json!({"op": "reports", "caller": "mod-1", "moderator": true}),
        at,
    );
    let reports = all["reports"].as_array().unwrap();
    assert_eq!(reports.len(), 2);
    assert_eq!(all["next_cursor"], Value::Null);
    assert_eq!(reports[0]["reporter"], "carol");
    assert_eq!(reports[0]["reason"], "other");
    assert_eq!(reports[0]["details"], Value::Null);
    assert_eq!(reports[1]["reporter"], "bob");
    assert_eq!(reports[1]["reason"], "payment_outside_platform");
    assert_eq!(reports[1]["details"], "asks for paypal");
    assert_eq!(reports[1]["room_id"], group.to_string());
    assert_eq!(reports[1]["message_id"], message.to_string());
    assert_eq!(reports[1]["reported_at"], "2026-11-27T10:00:00.000Z");
    assert!(reports[1]["report_id"].is_string());

    let first = answer(
        &model,
        json!({"op": "reports", "moderator": true, "limit": 1}),
        at,
    );
    assert_eq!(first["reports"][0]["reporter"], "carol");
    let second = answer(
        &model,
        json!({"op": "reports", "moderator": true, "limit": 1, "cursor": first["next_cursor"]}),
        at,
    );
    assert_eq!(second["reports"][0]["reporter"], "bob");
    assert_eq!(second["next_cursor"], Value::Null);
}
