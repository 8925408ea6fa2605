//! One test per rule of security.md that the pure domain enforces, named after its id (the rest
//! of security.md is the gateway's and the read side's business).

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use domain::{Action, ErrorCode};
use support::*;

fn block(w: &mut World, blocker: &str, blocked: &str) {
    w.ok(
        blocker,
        Action::BlockUser {
            user_id: user(blocked),
        },
    );
}

#[test]
fn h_b1_a_blocked_user_cannot_put_the_blocker_into_a_room() {
    let mut w = World::new();
    // Rooms they share before the block, and rooms services open, stay as they are (R-B3).
    let shared = w.group("dave", &["alice", "carol"]);
    block(&mut w, "alice", "dave");

    // A new group naming the blocker is refused, whoever else it names, and says no more.
    let rejection = w
        .run(
            "dave",
            Action::CreateRoom {
                name: "Around the block".into(),
                members: vec![user("carol"), user("alice")],
            },
        )
        .unwrap_err();
    assert_eq!(rejection.code, ErrorCode::Blocked);
    assert!(
        !rejection.message.contains("alice"),
        "{}",
        rejection.message
    );

    // Adding the blocker to a group of the blocked user's is refused too.
    let own = w.group("dave", &["carol"]);
    assert_eq!(
        w.code(
            "dave",
            Action::AddMember {
                room_id: own,
                user_id: user("alice"),
            }
        ),
        ErrorCode::Blocked
    );
    // Someone else may still add her, and a room she is already in is not touched.
    w.ok(
        "carol",
        Action::AddMember {
            room_id: own,
            user_id: user("alice"),
        },
    );
    assert!(w
        .run(
            "dave",
            Action::AddMember {
                room_id: shared,
                user_id: user("alice"),
            }
        )
        .unwrap()
        .is_empty());
    assert!(w.run("dave", send(shared, "still here")).is_ok());

    // The blocker may put the blocked user into a room (the block is hers to lift).
    assert!(w
        .run(
            "alice",
            Action::CreateRoom {
                name: "Her call".into(),
                members: vec![user("dave")],
            },
        )
        .is_ok());

    // Once unblocked, nothing is refused.
    w.ok(
        "alice",
        Action::UnblockUser {
            user_id: user("dave"),
        },
    );
    assert!(w
        .run(
            "dave",
            Action::CreateRoom {
                name: "Friends again".into(),
                members: vec![user("alice")],
            },
        )
        .is_ok());
}

#[test]
fn h_b2_a_closed_direct_room_refuses_edits_and_deletions_both_ways() {
    for blocker in ["alice", "bob"] {
        let mut w = World::new();
        let (direct, from_alice) = w.direct("alice", "bob", "hi bob");
        let from_bob = w.say("bob", direct, "hi alice");
        let other = if blocker == "alice" { "bob" } else { "alice" };
        block(&mut w, blocker, other);
        for (author, message_id) in [("alice", from_alice), ("bob", from_bob)] {
            assert_eq!(
                w.code(
                    author,
                    Action::EditMessage {
                        room_id: direct,
                        message_id,
                        body: "edited".into(),
                    }
                ),
                ErrorCode::Blocked,
                "{author} edits while {blocker} blocks"
            );
            assert_eq!(
                w.code(
                    author,
                    Action::DeleteMessage {
                        room_id: direct,
                        message_id,
                    }
                ),
                ErrorCode::Blocked,
                "{author} deletes while {blocker} blocks"
            );
        }
        // In a group they share, editing goes on (R-B3).
        let group = w.group("carol", &["alice", "bob"]);
        let in_group = w.say(other, group, "in the group");
        assert!(w
            .run(
                other,
                Action::EditMessage {
                    room_id: group,
                    message_id: in_group,
                    body: "edited in the group".into(),
                }
            )
            .is_ok());
    }
}

#[test]
fn h_c2_room_names_and_file_names_are_checked_like_messages() {
    let mut w = World::new();
    let contact = "ask john.smith@gmail.com";
    // A group room's name, new or renamed: never a contract room, and every member reads it.
    assert_eq!(
        w.code(
            "alice",
            Action::CreateRoom {
                name: contact.into(),
                members: vec![user("bob")],
            }
        ),
        ErrorCode::ContactInfoOutsideContract
    );
    let group = w.group("alice", &["bob"]);
    assert_eq!(
        w.code(
            "alice",
            Action::RenameRoom {
                room_id: group,
                name: contact.into(),
            }
        ),
        ErrorCode::ContactInfoOutsideContract
    );

    // A file whose name carries a phone number: refused outside an active contract's room…
    let named = |w: &mut World, file: u128| {
        let file_id = domain::FileId(uuid::Uuid::from_u128(file));
        w.service_ok(Action::RegisterFile {
            file_id,
            uploader: user("alice"),
            name: "call me on +1 415 555 0134.pdf".into(),
            size: 10,
            content_type: "application/pdf".into(),
            sha256: "ab".repeat(32),
        });
        file_id
    };
    let file = named(&mut w, 0xF11E_1001);
    assert_eq!(
        w.code(
            "alice",
            send_with(group, "", vec![domain::AttachmentRef::File(file)])
        ),
        ErrorCode::ContactInfoOutsideContract
    );
    // …and allowed inside one, like a message body.
    let contract = w.contract("c-77");
    assert!(w
        .run(
            "alice",
            send_with(contract, "", vec![domain::AttachmentRef::File(file)])
        )
        .is_ok());
}

/// security.md's review: names shown in lists refuse control and bidirectional formatting
/// characters (`invoice\u{202E}fdp.exe` displays as `invoiceexe.pdf`).
#[test]
fn file_and_room_names_refuse_control_and_bidi_characters() {
    let mut w = World::new();
    for (index, name) in ["invoice\u{202E}fdp.exe", "a\u{0007}b.txt", "x\u{2067}y.png"]
        .into_iter()
        .enumerate()
    {
        assert_eq!(
            w.service_code(Action::RegisterFile {
                file_id: domain::FileId(uuid::Uuid::from_u128(0xF11E_2000 + index as u128)),
                uploader: user("alice"),
                name: name.into(),
                size: 10,
                content_type: "application/octet-stream".into(),
                sha256: "ab".repeat(32),
            }),
            ErrorCode::InvalidCommand,
            "{name:?}"
        );
        assert_eq!(
            w.code(
                "alice",
                Action::CreateRoom {
                    name: name.into(),
                    members: vec![user("bob")],
                }
            ),
            ErrorCode::InvalidCommand,
            "{name:?}"
        );
    }
    // Ordinary names of any script pass.
    assert!(w
        .run(
            "alice",
            Action::CreateRoom {
                name: "Проект — デザイン 2026".into(),
                members: vec![user("bob")],
            }
        )
        .is_ok());
}
