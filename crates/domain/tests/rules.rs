//! One test per rule of rules.md, named after its id: given (commands already accepted, folded
//! into state) / when (one command) / then (the events, or the rejection's code).

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use domain::{
    Action, Actor, AttachmentRef, CallMedia, Client, ContractId, ErrorCode, Event, FileId,
    InterviewId, MessageId, MessageTarget, NotificationFrequency, ReportReason, RoomId, Timestamp,
    UserKind,
};
use support::*;
use uuid::Uuid;

// ---------------------------------------------------------------- users

#[test]
fn r_u1_commands_naming_unknown_users_fail_not_found_and_reregistering_renames() {
    let mut w = World::new();
    assert_eq!(w.code("alice", send_to("zoe", "hi")), ErrorCode::NotFound);
    assert_eq!(
        w.code(
            "alice",
            Action::BlockUser {
                user_id: user("zoe")
            }
        ),
        ErrorCode::NotFound
    );
    // An unregistered actor is refused too.
    assert_eq!(w.code("zoe", send_to("alice", "hi")), ErrorCode::NotFound);
    // Registering again updates the display name; the same name again is a no-op.
    let events = w.service_ok(Action::RegisterUser {
        user_id: user("alice"),
        display_name: "Alice Liddell".into(),
        kind: UserKind::Client,
    });
    assert_eq!(types(&events), ["user_display_name_changed"]);
    assert_eq!(w.state.users[&user("alice")].display_name, "Alice Liddell");
    let again = w.service_ok(Action::RegisterUser {
        user_id: user("alice"),
        display_name: "Alice Liddell".into(),
        kind: UserKind::Client,
    });
    assert!(again.is_empty());
    // Only services register users.
    let code = w.code(
        "alice",
        Action::RegisterUser {
            user_id: user("eve"),
            display_name: "Eve".into(),
            kind: UserKind::Client,
        },
    );
    assert_eq!(code, ErrorCode::Forbidden);
}

#[test]
fn r_u2_user_ids_are_validated_and_service_prefix_is_reserved() {
    for bad in ["", "has space", "x/y", "service:bob", &"a".repeat(65)] {
        assert!(
            domain::UserId::parse(bad).is_err(),
            "{bad:?} must be refused"
        );
    }
    assert!(domain::UserId::parse(&"a".repeat(64)).is_ok());
    assert!(ContractId::parse("contract:42").is_ok());
    assert!(InterviewId::parse("bad id").is_err());
}

// ---------------------------------------------------------------- rooms

#[test]
fn r_r1_first_message_opens_one_direct_room_per_pair() {
    let mut w = World::new();
    let events = w.ok("alice", send_to("bob", "hello"));
    assert_eq!(types(&events), ["direct_room_opened", "message_sent"]);
    let room = events[0].room_id().unwrap();
    assert_eq!(room, RoomId::direct(&user("bob"), &user("alice")));
    // The other direction lands in the same room and opens nothing.
    let reply = w.ok("bob", send_to("alice", "hi"));
    assert_eq!(types(&reply), ["message_sent"]);
    assert_eq!(sent(&reply).0, room);
    assert_eq!(
        w.code("alice", send_to("alice", "me")),
        ErrorCode::InvalidCommand
    );
}

#[test]
fn r_r2_group_rooms_need_a_name_and_another_member() {
    let mut w = World::new();
    let events = w.ok(
        "alice",
        Action::CreateRoom {
            name: " Launch ".into(),
            members: vec![user("bob"), user("bob")],
        },
    );
    match &events[..] {
        [Event::GroupRoomCreated {
            name,
            members,
            creator,
            ..
        }] => {
            assert_eq!(name, "Launch");
            assert_eq!(creator, &user("alice"));
            assert_eq!(members, &vec![user("alice"), user("bob")]);
        }
        other => panic!("{other:?}"),
    }
    let cases = [
        (String::new(), vec![user("bob")], ErrorCode::InvalidCommand),
        (
            "x".repeat(101),
            vec![user("bob")],
            ErrorCode::InvalidCommand,
        ),
        ("Solo".to_owned(), vec![], ErrorCode::InvalidCommand),
        (
            "Solo".to_owned(),
            vec![user("alice")],
            ErrorCode::InvalidCommand,
        ),
        ("Ghost".to_owned(), vec![user("zoe")], ErrorCode::NotFound),
    ];
    for (name, members, code) in cases {
        assert_eq!(
            w.code(
                "alice",
                Action::CreateRoom {
                    name: name.clone(),
                    members
                }
            ),
            code,
            "{name}"
        );
    }
    assert!(w
        .run(
            "alice",
            Action::CreateRoom {
                name: "x".repeat(100),
                members: vec![user("bob")]
            }
        )
        .is_ok());
}

#[test]
fn r_r3_daily_conversation_limit_counts_new_conversations_per_utc_day() {
    let mut w = World::with_config(domain::Config {
        daily_conversation_limit: 2,
    });
    for name in ["u1", "u2", "u3"] {
        w.register(name, UserKind::Freelancer);
    }
    // Late in the UTC day.
    w.now = T0 + 13 * HOUR + 59 * MINUTE; // 23:59
    w.direct("alice", "u1", "hi");
    w.group("alice", &["bob"]);
    assert_eq!(
        w.code("alice", send_to("u2", "hi")),
        ErrorCode::DailyConversationLimit
    );
    assert_eq!(
        w.code(
            "alice",
            Action::CreateRoom {
                name: "More".into(),
                members: vec![user("u3")]
            }
        ),
        ErrorCode::DailyConversationLimit
    );
    // Sending in existing rooms never counts.
    w.direct("alice", "u1", "still fine");
    w.direct("u1", "alice", "answer");
    // A new UTC day resets the count.
    w.advance(MINUTE);
    w.direct("alice", "u2", "new day");
    // The recipient of a first message is not charged.
    w.direct("u3", "bob", "hi");
    w.direct("u3", "carol", "hi");
    assert_eq!(
        w.code("u3", send_to("dave", "hi")),
        ErrorCode::DailyConversationLimit
    );
}

#[test]
fn r_r4_any_member_adds_registered_users_except_to_direct_rooms() {
    let mut w = World::new();
    let group = w.group("alice", &["bob"]);
    let events = w.ok(
        "bob",
        Action::AddMember {
            room_id: group,
            user_id: user("carol"),
        },
    );
    assert_eq!(types(&events), ["member_added"]);
    assert!(w.state.rooms[&group].members.contains(&user("carol")));
    // Adding an existing member: no-op success.
    assert!(w
        .ok(
            "alice",
            Action::AddMember {
                room_id: group,
                user_id: user("carol")
            }
        )
        .is_empty());
    assert_eq!(
        w.code(
            "alice",
            Action::AddMember {
                room_id: group,
                user_id: user("zoe")
            }
        ),
        ErrorCode::NotFound
    );
    let (direct, _) = w.direct("alice", "bob", "hi");
    assert_eq!(
        w.code(
            "alice",
            Action::AddMember {
                room_id: direct,
                user_id: user("carol")
            }
        ),
        ErrorCode::CannotAddToDirect
    );
    let interview = w.interview("int-1");
    assert!(!w
        .ok(
            "bob",
            Action::AddMember {
                room_id: interview,
                user_id: user("dave")
            }
        )
        .is_empty());
    let contract = w.contract("c-1");
    assert!(!w
        .ok(
            "alice",
            Action::AddMember {
                room_id: contract,
                user_id: user("dave")
            }
        )
        .is_empty());
    // A non-member cannot add anyone.
    assert_eq!(
        w.code(
            "dave",
            Action::AddMember {
                room_id: group,
                user_id: user("dave")
            }
        ),
        ErrorCode::NotMember
    );
}

#[test]
fn r_r5_only_group_rooms_can_be_left() {
    let mut w = World::new();
    let group = w.group("alice", &["bob"]);
    assert_eq!(
        types(&w.ok("bob", Action::LeaveRoom { room_id: group })),
        ["member_left"]
    );
    assert_eq!(w.code("bob", send(group, "back?")), ErrorCode::NotMember);
    let (direct, _) = w.direct("alice", "bob", "hi");
    let interview = w.interview("int-1");
    let contract = w.contract("c-1");
    for room in [direct, interview, contract] {
        assert_eq!(
            w.code("alice", Action::LeaveRoom { room_id: room }),
            ErrorCode::Forbidden
        );
    }
}

#[test]
fn r_r6_non_members_get_not_member_for_missing_and_foreign_rooms_alike() {
    let mut w = World::new();
    let group = w.group("alice", &["bob"]);
    let message = w.say("alice", group, "secret");
    let missing = RoomId(Uuid::from_u128(42));
    for room in [group, missing] {
        let actions = [
            send(room, "hi"),
            Action::EditMessage {
                room_id: room,
                message_id: message,
                body: "x".into(),
            },
            Action::DeleteMessage {
                room_id: room,
                message_id: message,
            },
            Action::ReportMessage {
                room_id: room,
                message_id: message,
                reason: ReportReason::Other,
                details: None,
            },
            Action::AddMember {
                room_id: room,
                user_id: user("carol"),
            },
            Action::LeaveRoom { room_id: room },
            Action::RenameRoom {
                room_id: room,
                name: "x".into(),
            },
            Action::FavoriteRoom {
                room_id: room,
                on: true,
            },
            Action::HideRoom {
                room_id: room,
                on: true,
            },
            Action::ArchiveRoom {
                room_id: room,
                on: true,
            },
            Action::MarkRead {
                room_id: room,
                message_id: message,
            },
            Action::StartCall {
                room_id: room,
                media: CallMedia::Audio,
            },
            Action::EndCall {
                room_id: room,
                call_id: domain::CallId(Uuid::from_u128(1)),
            },
        ];
        for action in actions {
            let name = action.type_name();
            let rejection = w.run("carol", action).expect_err(name);
            assert_eq!(rejection.code, ErrorCode::NotMember, "{name}");
            assert!(!rejection.message.contains("secret"));
        }
    }
}

#[test]
fn r_r7_only_group_rooms_are_renamed_by_members() {
    let mut w = World::new();
    let group = w.group("alice", &["bob"]);
    assert_eq!(
        types(&w.ok(
            "bob",
            Action::RenameRoom {
                room_id: group,
                name: "Renamed".into()
            }
        )),
        ["room_renamed"]
    );
    assert_eq!(w.state.rooms[&group].name, "Renamed");
    assert_eq!(
        w.code(
            "bob",
            Action::RenameRoom {
                room_id: group,
                name: " ".into()
            }
        ),
        ErrorCode::InvalidCommand
    );
    assert_eq!(
        w.code(
            "bob",
            Action::RenameRoom {
                room_id: group,
                name: "y".repeat(101)
            }
        ),
        ErrorCode::InvalidCommand
    );
    let (direct, _) = w.direct("alice", "bob", "hi");
    let interview = w.interview("int-1");
    let contract = w.contract("c-1");
    for room in [direct, interview, contract] {
        assert_eq!(
            w.code(
                "alice",
                Action::RenameRoom {
                    room_id: room,
                    name: "New".into()
                }
            ),
            ErrorCode::Forbidden
        );
    }
}

// ---------------------------------------------------------------- per-user room state

#[test]
fn r_s1_favorite_any_room_of_the_user() {
    let mut w = World::new();
    let (direct, _) = w.direct("alice", "bob", "hi");
    let events = w.ok(
        "alice",
        Action::FavoriteRoom {
            room_id: direct,
            on: true,
        },
    );
    assert_eq!(types(&events), ["room_favorite_changed"]);
    assert!(w
        .ok(
            "alice",
            Action::FavoriteRoom {
                room_id: direct,
                on: true
            }
        )
        .is_empty());
    assert!(!w.state.rooms[&direct]
        .views
        .get(&user("bob"))
        .is_some_and(|v| v.favorite));
    assert_eq!(
        types(&w.ok(
            "alice",
            Action::FavoriteRoom {
                room_id: direct,
                on: false
            }
        )),
        ["room_favorite_changed"]
    );
}

#[test]
fn r_s2_only_direct_and_interview_rooms_hide_and_new_messages_unhide() {
    let mut w = World::new();
    let (direct, _) = w.direct("alice", "bob", "hi");
    let interview = w.interview("int-1");
    for room in [direct, interview] {
        assert_eq!(
            types(&w.ok(
                "alice",
                Action::HideRoom {
                    room_id: room,
                    on: true
                }
            )),
            ["room_hidden_changed"]
        );
    }
    let group = w.group("alice", &["bob"]);
    let contract = w.contract("c-1");
    for room in [group, contract] {
        assert_eq!(
            w.code(
                "alice",
                Action::HideRoom {
                    room_id: room,
                    on: true
                }
            ),
            ErrorCode::CannotHideKind
        );
    }
    // A new message brings the hidden room back: hiding again is a change, not a no-op.
    w.say("bob", direct, "ping");
    assert!(!w.state.rooms[&direct].views[&user("alice")].hidden);
    assert_eq!(
        types(&w.ok(
            "alice",
            Action::HideRoom {
                room_id: direct,
                on: true
            }
        )),
        ["room_hidden_changed"]
    );
}

#[test]
fn r_s3_only_group_and_contract_rooms_archive_from_desktop_or_mobile_web() {
    let mut w = World::new();
    let group = w.group("alice", &["bob"]);
    let contract = w.contract("c-1");
    let (direct, _) = w.direct("alice", "bob", "hi");
    let interview = w.interview("int-1");
    for room in [direct, interview] {
        assert_eq!(
            w.code(
                "alice",
                Action::ArchiveRoom {
                    room_id: room,
                    on: true
                }
            ),
            ErrorCode::CannotArchiveKind
        );
    }
    w.client = Client::MobileApp;
    assert_eq!(
        w.code(
            "alice",
            Action::ArchiveRoom {
                room_id: group,
                on: true
            }
        ),
        ErrorCode::PlatformNotSupported
    );
    w.client = Client::MobileWeb;
    assert_eq!(
        types(&w.ok(
            "alice",
            Action::ArchiveRoom {
                room_id: group,
                on: true
            }
        )),
        ["room_archived_changed"]
    );
    w.client = Client::Desktop;
    assert_eq!(
        types(&w.ok(
            "alice",
            Action::ArchiveRoom {
                room_id: contract,
                on: true
            }
        )),
        ["room_archived_changed"]
    );
    // An archived room stays archived when messages arrive.
    w.say("bob", group, "news");
    assert!(w.state.rooms[&group].views[&user("alice")].archived);

    // Unarchiving follows the same two rules: the kind, then the client.
    let unarchive = |room_id| Action::ArchiveRoom { room_id, on: false };
    for room in [direct, interview] {
        assert_eq!(
            w.code("alice", unarchive(room)),
            ErrorCode::CannotArchiveKind
        );
    }
    w.client = Client::MobileApp;
    assert_eq!(
        w.code("alice", unarchive(group)),
        ErrorCode::PlatformNotSupported
    );
    assert!(w.state.rooms[&group].views[&user("alice")].archived);
    w.client = Client::MobileWeb;
    assert_eq!(
        types(&w.ok("alice", unarchive(group))),
        ["room_archived_changed"]
    );
    assert!(!w.state.rooms[&group].views[&user("alice")].archived);
}

#[test]
fn r_s4_mark_read_needs_a_message_of_the_room() {
    let mut w = World::new();
    let group = w.group("alice", &["bob"]);
    let other = w.group("alice", &["carol"]);
    let message = w.say("bob", group, "hello");
    let elsewhere = w.say("carol", other, "hello");
    assert_eq!(
        types(&w.ok(
            "alice",
            Action::MarkRead {
                room_id: group,
                message_id: message
            }
        )),
        ["room_marked_read"]
    );
    assert!(w
        .ok(
            "alice",
            Action::MarkRead {
                room_id: group,
                message_id: message
            }
        )
        .is_empty());
    assert_eq!(
        w.code(
            "alice",
            Action::MarkRead {
                room_id: group,
                message_id: elsewhere
            }
        ),
        ErrorCode::NotFound
    );
    assert_eq!(
        w.state.rooms[&group].views[&user("alice")].read_up_to,
        Some(message)
    );
}

// ---------------------------------------------------------------- messages

#[test]
fn r_m1_bodies_are_trimmed_bounded_and_not_empty() {
    let mut w = World::new();
    let group = w.group("alice", &["bob"]);
    let events = w.ok("alice", send(group, "  hello  "));
    assert!(matches!(&events[0], Event::MessageSent { body, .. } if body == "hello"));
    // 5,000 scalar values pass (multi-byte ones count once), 5,001 fail.
    assert!(w.run("alice", send(group, &"é".repeat(5_000))).is_ok());
    assert_eq!(
        w.code("alice", send(group, &"é".repeat(5_001))),
        ErrorCode::BodyTooLong
    );
    assert_eq!(
        w.code("alice", send(group, "   \n\t ")),
        ErrorCode::EmptyMessage
    );
    assert_eq!(w.code("carol", send(group, "hi")), ErrorCode::NotMember);
}

#[test]
fn r_m2_replies_name_a_message_of_the_same_room_even_a_deleted_one() {
    let mut w = World::new();
    let group = w.group("alice", &["bob"]);
    let other = w.group("alice", &["carol"]);
    let original = w.say("bob", group, "question");
    let elsewhere = w.say("alice", other, "other room");
    let reply = |to: MessageId| Action::SendMessage {
        target: MessageTarget::Room(group),
        message_id: None,
        body: "answer".into(),
        reply_to: Some(to),
        attachments: vec![],
    };
    let events = w.ok("alice", reply(original));
    assert!(matches!(&events[0], Event::MessageSent { reply_to: Some(id), .. } if *id == original));
    assert_eq!(w.code("alice", reply(elsewhere)), ErrorCode::NotFound);
    assert_eq!(
        w.code("alice", reply(MessageId(Uuid::from_u128(7)))),
        ErrorCode::NotFound
    );
    w.ok(
        "bob",
        Action::DeleteMessage {
            room_id: group,
            message_id: original,
        },
    );
    assert!(w.run("alice", reply(original)).is_ok());
}

#[test]
fn r_m3_edit_by_author_within_the_hour_and_exact_edges() {
    let mut w = World::new();
    let group = w.group("alice", &["bob"]);
    let message = w.say("alice", group, "draft");
    let edit = |body: &str| Action::EditMessage {
        room_id: group,
        message_id: message,
        body: body.into(),
    };
    assert_eq!(w.code("bob", edit("hijack")), ErrorCode::NotAuthor);
    assert_eq!(
        w.code("alice", edit(&"x".repeat(5_001))),
        ErrorCode::BodyTooLong
    );
    assert_eq!(w.code("alice", edit("   ")), ErrorCode::EmptyMessage);
    assert_eq!(
        w.code("alice", edit("mail me: alice@example.com")),
        ErrorCode::ContactInfoOutsideContract
    );
    w.advance(HOUR - 1); // 59:59.999
    let events = w.ok("alice", edit("final"));
    assert!(matches!(&events[0], Event::MessageEdited { body, .. } if body == "final"));
    w.advance(1); // 60:00.000
    assert_eq!(
        w.code("alice", edit("too late")),
        ErrorCode::EditWindowExpired
    );
    // A deleted message cannot be edited.
    let other = w.say("alice", group, "oops");
    w.ok(
        "alice",
        Action::DeleteMessage {
            room_id: group,
            message_id: other,
        },
    );
    let code = w.code(
        "alice",
        Action::EditMessage {
            room_id: group,
            message_id: other,
            body: "x".into(),
        },
    );
    assert_eq!(code, ErrorCode::AlreadyDeleted);
}

#[test]
fn r_m4_delete_by_author_within_the_hour_once() {
    let mut w = World::new();
    let group = w.group("alice", &["bob"]);
    let message = w.say("alice", group, "regret");
    let delete = Action::DeleteMessage {
        room_id: group,
        message_id: message,
    };
    assert_eq!(w.code("bob", delete.clone()), ErrorCode::NotAuthor);
    w.advance(HOUR - 1);
    assert_eq!(types(&w.ok("alice", delete.clone())), ["message_deleted"]);
    assert_eq!(w.code("alice", delete), ErrorCode::AlreadyDeleted);
    let late = w.say("alice", group, "kept");
    w.advance(HOUR);
    assert_eq!(
        w.code(
            "alice",
            Action::DeleteMessage {
                room_id: group,
                message_id: late
            }
        ),
        ErrorCode::DeleteWindowExpired
    );
}

#[test]
fn r_m5_after_one_hour_neither_edit_nor_delete() {
    let mut w = World::new();
    let group = w.group("alice", &["bob"]);
    let message = w.say("alice", group, "old");
    w.advance(2 * HOUR);
    let edit = Action::EditMessage {
        room_id: group,
        message_id: message,
        body: "new".into(),
    };
    assert_eq!(w.code("alice", edit), ErrorCode::EditWindowExpired);
    assert_eq!(
        w.code(
            "alice",
            Action::DeleteMessage {
                room_id: group,
                message_id: message
            }
        ),
        ErrorCode::DeleteWindowExpired
    );
}

#[test]
fn r_m6_messages_with_files_are_deleted_only_from_desktop_or_mobile_web() {
    let mut w = World::new();
    let group = w.group("alice", &["bob"]);
    let file = w.upload("alice", 10);
    let (_, with_file) = sent(&w.ok(
        "alice",
        send_with(group, "", vec![AttachmentRef::File(file)]),
    ));
    let with_link = sent(&w.ok(
        "alice",
        send_with(
            group,
            "",
            vec![AttachmentRef::Link("https://example.com/a".into())],
        ),
    ))
    .1;
    w.client = Client::MobileApp;
    assert_eq!(
        w.code(
            "alice",
            Action::DeleteMessage {
                room_id: group,
                message_id: with_file
            }
        ),
        ErrorCode::PlatformNotSupported
    );
    // Links are not files: deleting those works from any client.
    assert!(w
        .run(
            "alice",
            Action::DeleteMessage {
                room_id: group,
                message_id: with_link
            }
        )
        .is_ok());
    w.client = Client::MobileWeb;
    assert!(w
        .run(
            "alice",
            Action::DeleteMessage {
                room_id: group,
                message_id: with_file
            }
        )
        .is_ok());
}

#[test]
fn r_m7_a_message_id_is_used_once() {
    let mut w = World::new();
    let group = w.group("alice", &["bob"]);
    let id = MessageId(Uuid::from_u128(0xABC));
    let with_id = |room| Action::SendMessage {
        target: MessageTarget::Room(room),
        message_id: Some(id),
        body: "hi".into(),
        reply_to: None,
        attachments: vec![],
    };
    let events = w.ok("alice", with_id(group));
    assert_eq!(sent(&events).1, id);
    assert_eq!(w.code("bob", with_id(group)), ErrorCode::DuplicateMessageId);
    // The same command id decided twice derives the same ids (idempotent resend is the writer's).
    let state = w.state.clone();
    let command = w.command(Actor::User(user("alice")), send(group, "x"));
    let now = Timestamp::from_millis(w.now);
    assert_eq!(
        domain::decide(&state, &command, now),
        domain::decide(&state, &command, now)
    );
}

// ---------------------------------------------------------------- blocking

#[test]
fn r_b1_block_and_unblock_registered_users_but_not_yourself() {
    let mut w = World::new();
    assert_eq!(
        types(&w.ok(
            "alice",
            Action::BlockUser {
                user_id: user("bob")
            }
        )),
        ["user_blocked"]
    );
    assert!(w
        .ok(
            "alice",
            Action::BlockUser {
                user_id: user("bob")
            }
        )
        .is_empty());
    assert_eq!(
        w.code(
            "alice",
            Action::BlockUser {
                user_id: user("alice")
            }
        ),
        ErrorCode::InvalidCommand
    );
    assert_eq!(
        w.code(
            "alice",
            Action::BlockUser {
                user_id: user("zoe")
            }
        ),
        ErrorCode::NotFound
    );
    assert_eq!(
        types(&w.ok(
            "alice",
            Action::UnblockUser {
                user_id: user("bob")
            }
        )),
        ["user_unblocked"]
    );
    assert!(w
        .ok(
            "alice",
            Action::UnblockUser {
                user_id: user("bob")
            }
        )
        .is_empty());
}

#[test]
fn r_b2_blocks_stop_direct_messages_and_calls_both_ways() {
    let mut w = World::new();
    let (direct, _) = w.direct("alice", "bob", "hi");
    w.ok(
        "bob",
        Action::BlockUser {
            user_id: user("alice"),
        },
    );
    for (from, to) in [("alice", "bob"), ("bob", "alice")] {
        assert_eq!(w.code(from, send_to(to, "hey")), ErrorCode::Blocked);
        assert_eq!(w.code(from, send(direct, "hey")), ErrorCode::Blocked);
        assert_eq!(
            w.code(
                from,
                Action::StartCall {
                    room_id: direct,
                    media: CallMedia::Video
                }
            ),
            ErrorCode::Blocked
        );
    }
    // Starting a direct room with someone who blocks you is refused too.
    w.ok(
        "carol",
        Action::BlockUser {
            user_id: user("dave"),
        },
    );
    let rejection = w.run("dave", send_to("carol", "hello?")).unwrap_err();
    assert_eq!(rejection.code, ErrorCode::Blocked);
    assert!(
        !rejection.message.contains("carol"),
        "the blocked user is told nothing more"
    );
    w.ok(
        "bob",
        Action::UnblockUser {
            user_id: user("alice"),
        },
    );
    assert!(w.run("alice", send(direct, "friends again")).is_ok());
}

#[test]
fn r_b3_blocking_leaves_shared_rooms_alone() {
    let mut w = World::new();
    let group = w.group("alice", &["bob"]);
    let interview = w.interview("int-1");
    w.ok(
        "alice",
        Action::BlockUser {
            user_id: user("bob"),
        },
    );
    assert!(w.state.rooms[&group].members.contains(&user("bob")));
    assert!(w.run("bob", send(group, "still here")).is_ok());
    assert!(w.run("bob", send(interview, "still here")).is_ok());
    assert!(w
        .run(
            "bob",
            Action::StartCall {
                room_id: group,
                media: CallMedia::Audio
            }
        )
        .is_ok());
}

// ---------------------------------------------------------------- contact details

#[test]
fn r_c1_contact_details_only_in_an_active_contract_room() {
    let mut w = World::new();
    let group = w.group("alice", &["bob"]);
    let interview = w.interview("int-1");
    let contract = w.contract("c-1");
    let samples = [
        "write to bob@example.com",
        "bob [at] example [dot] com",
        "call me on +1 415 555 0134",
        "my whatsapp is 0 7 7 0 0 9 0 0 1 2 3",
        "pay me via paypal.me/bobsmith",
    ];
    for body in samples {
        assert_eq!(
            w.code("bob", send(group, body)),
            ErrorCode::ContactInfoOutsideContract,
            "{body}"
        );
        assert_eq!(
            w.code("bob", send(interview, body)),
            ErrorCode::ContactInfoOutsideContract,
            "{body}"
        );
        assert_eq!(
            w.code("bob", send_to("carol", body)),
            ErrorCode::ContactInfoOutsideContract,
            "{body}"
        );
        assert!(w.run("bob", send(contract, body)).is_ok(), "{body}");
    }
    // Link attachments are checked too, ordinary text is not refused.
    let link = send_with(
        group,
        "",
        vec![AttachmentRef::Link("https://wa.me/14155550134".into())],
    );
    assert_eq!(w.code("bob", link), ErrorCode::ContactInfoOutsideContract);
    assert!(w
        .run(
            "bob",
            send(
                group,
                "The budget is $1,500 for v2.1, due 2026-12-01 at 14:30"
            )
        )
        .is_ok());
}

#[test]
fn r_c2_contracts_open_or_convert_a_room_and_ending_closes_contact_sharing() {
    let mut w = World::new();
    let interview = w.interview("int-1");
    let before = w.say("alice", interview, "before the contract");
    let members_before = w.state.rooms[&interview].members.clone();
    let events = w.service_ok(Action::StartContract {
        contract_id: ContractId::parse("c-9").unwrap(),
        title: "Website".into(),
        client: user("alice"),
        freelancer: user("bob"),
        room_id: Some(interview),
    });
    assert!(
        matches!(&events[0], Event::ContractStarted { room_created: false, room_id, .. } if *room_id == interview)
    );
    assert_eq!(w.state.rooms[&interview].kind, domain::RoomKind::Contract);
    // The same room: its members and its history are kept.
    assert_eq!(w.state.rooms[&interview].members, members_before);
    assert!(w.state.rooms[&interview].members.contains(&user("alice")));
    assert!(w.state.rooms[&interview].members.contains(&user("bob")));
    assert!(
        w.run(
            "alice",
            Action::MarkRead {
                room_id: interview,
                message_id: before
            }
        )
        .is_ok(),
        "the message sent before the contract is still in the room"
    );
    assert!(w.run("bob", send(interview, "bob@example.com")).is_ok());
    let end = || Action::EndContract {
        contract_id: ContractId::parse("c-9").unwrap(),
    };
    assert_eq!(types(&w.service_ok(end())), ["contract_ended"]);
    assert!(w.service_ok(end()).is_empty());
    assert_eq!(
        w.code("bob", send(interview, "bob@example.com")),
        ErrorCode::ContactInfoOutsideContract
    );
    // A new contract gets its own room with both parties.
    let room = w.contract("c-10");
    assert_eq!(w.state.rooms[&room].members.len(), 2);
    assert_eq!(
        w.service_code(Action::EndContract {
            contract_id: ContractId::parse("nope").unwrap()
        }),
        ErrorCode::NotFound
    );
    // Direct rooms cannot become contract rooms; users cannot start contracts.
    let (direct, _) = w.direct("alice", "bob", "hi");
    let convert = Action::StartContract {
        contract_id: ContractId::parse("c-11").unwrap(),
        title: "t".into(),
        client: user("alice"),
        freelancer: user("bob"),
        room_id: Some(direct),
    };
    assert_eq!(w.service_code(convert.clone()), ErrorCode::Forbidden);
    assert_eq!(w.code("alice", convert), ErrorCode::Forbidden);
}

// ---------------------------------------------------------------- reports

#[test]
fn r_p1_members_report_others_messages_once() {
    let mut w = World::new();
    let group = w.group("alice", &["bob"]);
    let message = w.say("bob", group, "pay me outside");
    let own = w.say("alice", group, "mine");
    let report = |id, details: Option<String>| Action::ReportMessage {
        room_id: group,
        message_id: id,
        reason: ReportReason::PaymentOutsidePlatform,
        details,
    };
    assert_eq!(
        types(&w.ok("alice", report(message, Some("see above".into())))),
        ["message_reported"]
    );
    assert!(
        w.ok("alice", report(message, None)).is_empty(),
        "again: no-op success"
    );
    // Once, whatever the reason: another reason does not report it again.
    assert!(
        w.ok(
            "alice",
            Action::ReportMessage {
                room_id: group,
                message_id: message,
                reason: ReportReason::AbusiveLanguage,
                details: None,
            }
        )
        .is_empty(),
        "again with another reason: no-op success"
    );
    assert_eq!(
        w.code("alice", report(own, None)),
        ErrorCode::InvalidCommand
    );
    assert_eq!(
        w.code("bob", report(own, Some("x".repeat(1_001)))),
        ErrorCode::InvalidCommand
    );
    assert!(w.run("bob", report(own, Some("x".repeat(1_000)))).is_ok());
    assert_eq!(
        w.code("alice", report(MessageId(Uuid::from_u128(5)), None)),
        ErrorCode::NotFound
    );
}

// ---------------------------------------------------------------- files and links

#[test]
fn r_f1_files_are_attached_once_by_their_uploader_and_links_are_http() {
    let mut w = World::new();
    let group = w.group("alice", &["bob"]);
    let file = w.upload("alice", 1024);
    assert_eq!(
        w.code("bob", send_with(group, "", vec![AttachmentRef::File(file)])),
        ErrorCode::NotFound
    );
    let twice = send_with(
        group,
        "",
        vec![AttachmentRef::File(file), AttachmentRef::File(file)],
    );
    assert_eq!(w.code("alice", twice), ErrorCode::NotFound);
    let events = w.ok(
        "alice",
        send_with(group, "spec", vec![AttachmentRef::File(file)]),
    );
    assert!(
        matches!(&events[0], Event::MessageSent { attachments, .. } if matches!(&attachments[0], domain::Attachment::File { size: 1024, .. }))
    );
    assert_eq!(
        w.code(
            "alice",
            send_with(group, "", vec![AttachmentRef::File(file)])
        ),
        ErrorCode::NotFound
    );
    assert_eq!(
        w.code(
            "alice",
            send_with(
                group,
                "",
                vec![AttachmentRef::File(FileId(Uuid::from_u128(9)))]
            )
        ),
        ErrorCode::NotFound
    );
    // Files over 1 GiB are refused at registration.
    let too_big = Action::RegisterFile {
        file_id: FileId(Uuid::from_u128(77)),
        uploader: user("alice"),
        name: "huge.bin".into(),
        size: domain::limits::FILE_BYTES_MAX + 1,
        content_type: "application/octet-stream".into(),
        sha256: "0".repeat(64),
    };
    assert_eq!(w.service_code(too_big), ErrorCode::FileTooLarge);
    assert!(w.upload("alice", domain::limits::FILE_BYTES_MAX) != file);
    // Links: http(s) only, Dropbox recognised, at most 10 attachments.
    let events = w.ok(
        "alice",
        send_with(
            group,
            "",
            vec![
                AttachmentRef::Link("https://www.dropbox.com/s/abc/plan.pdf".into()),
                AttachmentRef::Link("http://example.com".into()),
            ],
        ),
    );
    match &events[0] {
        Event::MessageSent { attachments, .. } => {
            assert!(
                matches!(&attachments[0], domain::Attachment::Link { provider: Some(p), .. } if p == "dropbox")
            );
            assert!(matches!(
                &attachments[1],
                domain::Attachment::Link { provider: None, .. }
            ));
        }
        other => panic!("{other:?}"),
    }
    for bad in [
        "ftp://example.com/x",
        "javascript:alert(1)",
        "https://",
        "https://exa mple.com",
    ] {
        assert_eq!(
            w.code(
                "alice",
                send_with(group, "", vec![AttachmentRef::Link(bad.into())])
            ),
            ErrorCode::InvalidCommand,
            "{bad}"
        );
    }
    let eleven = (0..11)
        .map(|i| AttachmentRef::Link(format!("https://example.com/{i}")))
        .collect();
    assert_eq!(
        w.code("alice", send_with(group, "", eleven)),
        ErrorCode::InvalidCommand
    );
    let ten = (0..10)
        .map(|i| AttachmentRef::Link(format!("https://example.com/{i}")))
        .collect();
    assert!(w.run("alice", send_with(group, "", ten)).is_ok());
}

// ---------------------------------------------------------------- presence, away, notifications

#[test]
fn r_a1_online_visibility_toggles() {
    let mut w = World::new();
    assert!(
        w.ok("alice", Action::SetOnlineVisibility { visible: true })
            .is_empty(),
        "visible by default"
    );
    assert_eq!(
        types(&w.ok("alice", Action::SetOnlineVisibility { visible: false })),
        ["online_visibility_changed"]
    );
    assert!(!w.state.users[&user("alice")].visible);
}

#[test]
fn r_a2_away_users_answer_once_per_room_per_period() {
    let mut w = World::new();
    let set = |from: i64, until: i64| Action::SetOutOfOffice {
        message: "On holiday until Monday".into(),
        from: Timestamp::from_millis(from),
        until: Timestamp::from_millis(until),
    };
    assert_eq!(w.code("bob", set(T0, T0)), ErrorCode::InvalidCommand);
    assert_eq!(
        w.code("bob", set(T0 - 2 * HOUR, T0 - HOUR)),
        ErrorCode::InvalidCommand
    );
    assert_eq!(
        w.code(
            "bob",
            Action::SetOutOfOffice {
                message: "reach me at bob@example.com".into(),
                from: Timestamp::from_millis(T0),
                until: Timestamp::from_millis(T0 + HOUR)
            }
        ),
        ErrorCode::ContactInfoOutsideContract
    );
    w.ok("bob", set(T0 + HOUR, T0 + 3 * HOUR));
    // Before the period: no automatic reply.
    let (direct, _) = w.direct("alice", "bob", "are you there?");
    assert_eq!(
        w.log
            .iter()
            .filter(|e| e.type_name() == "auto_reply_sent")
            .count(),
        0
    );
    w.advance(HOUR);
    let events = w.ok("alice", send(direct, "hello?"));
    assert_eq!(types(&events), ["message_sent", "auto_reply_sent"]);
    assert!(
        matches!(&events[1], Event::AutoReplySent { author, body, .. } if author == &user("bob") && body.starts_with("On holiday"))
    );
    // Once per room per period; other rooms get their own; the away user's own messages don't.
    assert_eq!(
        types(&w.ok("alice", send(direct, "again"))),
        ["message_sent"]
    );
    let group = w.group("carol", &["bob", "alice"]);
    assert_eq!(
        types(&w.ok("carol", send(group, "team?"))),
        ["message_sent", "auto_reply_sent"]
    );
    assert_eq!(
        types(&w.ok("bob", send(group, "quick note"))),
        ["message_sent"]
    );
    // A new period answers again; after it ends, nothing.
    w.ok("bob", set(T0, T0 + 3 * HOUR));
    assert_eq!(
        types(&w.ok("alice", send(direct, "new period"))),
        ["message_sent", "auto_reply_sent"]
    );
    w.advance(2 * HOUR);
    w.ok("bob", set(T0, T0 + 4 * HOUR));
    w.advance(HOUR);
    assert_eq!(
        types(&w.ok("alice", send(direct, "back?"))),
        ["message_sent"]
    );
    w.ok("bob", Action::ClearOutOfOffice);
    assert!(w.state.users[&user("bob")].away.is_none());
}

#[test]
fn r_a3_notification_frequency_is_a_user_setting() {
    let mut w = World::new();
    assert!(w
        .ok(
            "alice",
            Action::SetNotifications {
                frequency: NotificationFrequency::Immediate
            }
        )
        .is_empty());
    let events = w.ok(
        "alice",
        Action::SetNotifications {
            frequency: NotificationFrequency::Hourly,
        },
    );
    assert_eq!(types(&events), ["notification_frequency_changed"]);
    assert_eq!(
        w.state.users[&user("alice")].frequency,
        NotificationFrequency::Hourly
    );
}

// ---------------------------------------------------------------- calls

#[test]
fn r_k1_one_active_call_per_room_ended_by_any_member() {
    let mut w = World::new();
    let group = w.group("alice", &["bob"]);
    let events = w.ok(
        "alice",
        Action::StartCall {
            room_id: group,
            media: CallMedia::Video,
        },
    );
    let call_id = match &events[0] {
        Event::CallStarted { call_id, .. } => *call_id,
        other => panic!("{other:?}"),
    };
    assert_eq!(
        w.code(
            "bob",
            Action::StartCall {
                room_id: group,
                media: CallMedia::Audio
            }
        ),
        ErrorCode::CallInProgress
    );
    w.advance(90_000);
    let wrong = Action::EndCall {
        room_id: group,
        call_id: domain::CallId(Uuid::from_u128(3)),
    };
    assert_eq!(w.code("bob", wrong), ErrorCode::NotFound);
    let events = w.ok(
        "bob",
        Action::EndCall {
            room_id: group,
            call_id,
        },
    );
    assert!(matches!(
        &events[0],
        Event::CallEnded {
            duration_ms: 90_000,
            ..
        }
    ));
    assert_eq!(
        w.code(
            "bob",
            Action::EndCall {
                room_id: group,
                call_id
            }
        ),
        ErrorCode::NotFound
    );
    assert!(w
        .run(
            "bob",
            Action::StartCall {
                room_id: group,
                media: CallMedia::Audio
            }
        )
        .is_ok());
}

// ---------------------------------------------------------------- bounds and actors

#[test]
fn bounds_fields_outside_their_bounds_are_invalid_commands() {
    let mut w = World::new();
    let group = w.group("alice", &["bob"]);
    let message = w.say("bob", group, "x");
    let cases: Vec<Action> = vec![
        Action::RenameRoom {
            room_id: group,
            name: String::new(),
        },
        Action::ReportMessage {
            room_id: group,
            message_id: message,
            reason: ReportReason::Other,
            details: Some("d".repeat(1_001)),
        },
        Action::SetOutOfOffice {
            message: "m".repeat(1_001),
            from: Timestamp::from_millis(T0),
            until: Timestamp::from_millis(T0 + HOUR),
        },
        Action::SetOutOfOffice {
            message: String::new(),
            from: Timestamp::from_millis(T0),
            until: Timestamp::from_millis(T0 + HOUR),
        },
        send_with(
            group,
            "",
            (0..11)
                .map(|_| AttachmentRef::Link("https://a.example".into()))
                .collect(),
        ),
    ];
    for action in cases {
        let name = action.type_name();
        assert_eq!(w.code("alice", action), ErrorCode::InvalidCommand, "{name}");
    }
}

#[test]
fn service_commands_are_for_services_and_user_commands_for_users() {
    let mut w = World::new();
    let open = Action::OpenInterview {
        interview_id: InterviewId::parse("int-7").unwrap(),
        title: "t".into(),
        client: user("alice"),
        freelancer: user("bob"),
    };
    assert_eq!(w.code("alice", open.clone()), ErrorCode::Forbidden);
    let room = w.service_ok(open.clone())[0].room_id().unwrap();
    // Opening the same interview again is a no-op that still names the room.
    assert!(w.service_ok(open.clone()).is_empty());
    let command = w.command(Actor::parse("service:x").unwrap(), open);
    assert_eq!(
        domain::command_result(&w.state, &command, &[]),
        domain::CommandResult::Room { room_id: room }
    );
    assert_eq!(w.service_code(send(room, "hi")), ErrorCode::Forbidden);
}
