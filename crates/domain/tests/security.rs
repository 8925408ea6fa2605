//! One test per rule of security.md that the pure domain enforces, named after its id (the rest
//! of security.md is the gateway's and the read side's business).

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use domain::contact::ContactKind;
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

// H-C1: the detector reads text as a person does. Each test below is one family of tricks that
// hides a detail from a program reading the raw text while a person still reads it; each text
// is one the detector missed before the normalisation (security.md's review reproduced them).

/// The detected kind and the original text it points at.
fn found(text: &str) -> Option<(ContactKind, &str)> {
    domain::contact::find_contact_info(text).map(|m| (m.kind, &text[m.start..m.end]))
}

#[track_caller]
fn assert_found(text: &str, kind: ContactKind) {
    let got = found(text);
    assert_eq!(got.map(|(k, _)| k), Some(kind), "{text:?}: {got:?}");
}

#[test]
fn h_c1_zero_width_and_format_characters_inside_an_email_are_read_through() {
    for text in [
        "alice\u{200B}@gmail.com",         // zero-width space
        "alice@gm\u{200D}ail.com",         // zero-width joiner
        "alice@gmail\u{200C}.com",         // zero-width non-joiner
        "ali\u{AD}ce.wong@yahoo.com",      // soft hyphen
        "alice@gmail\u{2060}.com",         // word joiner
        "alice@gm\u{202A}ail.com\u{202C}", // bidi embedding
        "alice@gmail.co\u{FE0F}m",         // variation selector
        "\u{FEFF}alice@\u{FEFF}gmail.com", // byte order mark
    ] {
        assert_found(text, ContactKind::Email);
    }
    // The match points into the original text, invisible characters included.
    assert_eq!(
        found("write to alice\u{200B}@gmail.com today"),
        Some((ContactKind::Email, "alice\u{200B}@gmail.com"))
    );
}

#[test]
fn h_c1_unicode_dashes_spaces_and_full_width_digits_in_a_phone_number_are_read_through() {
    for text in [
        "call me: +1\u{2011}415\u{2011}555\u{2011}0134", // non-breaking hyphens
        "my number is 555\u{2011}123\u{2011}4567",
        "phone 020\u{2012}7946\u{2012}0958",      // figure dash
        "ring me at 0770\u{2212}090\u{2212}0123", // minus sign
        "mobile: +49\u{3000}30\u{3000}1234\u{3000}5678", // ideographic space
        "call ＋１ ４１５ ５５５ ０１３４",       // full-width
        "my number ０７７００ ９００１２３",
        "phone 𝟓𝟓𝟓 𝟏𝟐𝟑 𝟒𝟓𝟔𝟕", // mathematical bold digits
    ] {
        assert_found(text, ContactKind::Phone);
    }
}

#[test]
fn h_c1_dot_like_characters_are_read_as_dots() {
    for (text, kind) in [
        ("alice@gmail\u{B7}com", ContactKind::Email), // middle dot
        ("alice@gmail\u{3002}com", ContactKind::Email), // ideographic full stop
        ("alice@gmail\u{FF61}com", ContactKind::Email), // halfwidth ideographic full stop
        ("alice@gmail\u{2219}com", ContactKind::Email), // bullet operator
        ("john at gmail \u{2022} com", ContactKind::Email), // bullet
        ("wa\u{B7}me/15551234567", ContactKind::Messenger),
    ] {
        assert_found(text, kind);
    }
}

#[test]
fn h_c1_confusable_letters_are_read_as_their_latin_skeleton() {
    // Cyrillic а, е, о, ѕ; Greek ο, ν, ι; full-width and mathematical letters.
    for (text, kind) in [
        ("\u{430}lice@gm\u{430}il.com", ContactKind::Email),
        (
            "my email is p\u{435}t\u{435}r.n\u{43E}vak@yah\u{43E}\u{43E}.com",
            ContactKind::Email,
        ),
        ("j\u{3BF}hn.smith@icl\u{3BF}ud.com", ContactKind::Email),
        ("ｊｏｈｎ＠ｇｍａｉｌ．ｃｏｍ", ContactKind::Email),
        ("𝐚𝐥𝐢𝐜𝐞@𝐠𝐦𝐚𝐢𝐥.𝐜𝐨𝐦", ContactKind::Email),
        ("name at gm\u{430}il d\u{43E}t com", ContactKind::Email),
        ("my \u{455}kype: john.smith84", ContactKind::Messenger),
        // A wholly Cyrillic look-alike of a Latin word is read as the Latin word.
        (
            "\u{440}\u{430}\u{443}\u{440}\u{430}\u{4CF}.me/johnsmith",
            ContactKind::Payment,
        ),
        ("t\u{435}l\u{435}gram: @jsmith_92", ContactKind::Messenger),
        ("𝐭𝐞𝐥𝐞𝐠𝐫𝐚𝐦: @john_smith", ContactKind::Messenger),
        ("my \u{3BD}\u{3B9}ber: john_smith84", ContactKind::Messenger),
        ("p\u{430}yp\u{430}l.me/johnsmith", ContactKind::Payment),
    ] {
        assert_found(text, kind);
    }
    assert_eq!(
        found("mail \u{430}lice@gm\u{430}il.com, thanks"),
        Some((ContactKind::Email, "\u{430}lice@gm\u{430}il.com"))
    );
}

#[test]
fn h_c1_spaced_out_letters_are_joined() {
    for (text, kind) in [
        ("a l i c e @ g m a i l . c o m", ContactKind::Email),
        (
            "write me: j o h n . s m i t h @ o u t l o o k . c o m",
            ContactKind::Email,
        ),
        ("my mail is m a r i a 9 2 @ gmail . com", ContactKind::Email),
        ("s k y p e: j o h n . s m i t h 8 4", ContactKind::Messenger),
        ("a.l.i.c.e@gmail.com", ContactKind::Email),
        ("a\u{200B} l i c e @ g m a i l . c o m", ContactKind::Email),
    ] {
        assert_found(text, kind);
    }
    // The match covers the spaced-out address in the original text.
    assert_eq!(
        found("ok: a l i c e @ g m a i l . c o m !"),
        Some((ContactKind::Email, "a l i c e @ g m a i l . c o m"))
    );
    // Joining alone is no evidence: ordinary single letters stay ordinary (H-C3's corpus holds
    // more).
    for text in [
        "I am a b c",
        "Grades A B C D F",
        "the keys W A S D move",
        "U.S.A. dates",
    ] {
        assert_eq!(found(text), None, "{text:?}");
    }
}

#[test]
fn h_c1_digits_of_any_script_count_as_digits() {
    for (text, kind) in [
        ("call me \u{661}\u{664}\u{661}\u{665} \u{665}\u{665}\u{665} \u{660}\u{661}\u{663}\u{664}", ContactKind::Phone), // Arabic-Indic
        ("my number is ۰۹۱۲ ۳۴۵ ۶۷۸۹", ContactKind::Phone), // Extended Arabic-Indic (Persian)
        ("फ़ोन करें ९८७६५ ४३२१०", ContactKind::Phone),        // Devanagari
        ("ফোন ০১৭১২ ৩৪৫৬৭৮", ContactKind::Phone),           // Bengali
        ("โทร ๐๘๑ ๒๓๔ ๕๖๗๘", ContactKind::Phone),            // Thai
        ("card ٤١١١ ١١١١ ١١١١ ١١١١", ContactKind::CardNumber),
        ("my phone ٥٥٥-१२३-4567", ContactKind::Phone),       // mixed scripts
    ] {
        assert_found(text, kind);
    }
    // Dates, prices and versions in other scripts stay what they are.
    for text in [
        "الاجتماع يوم ٢٧/١١/٢٠٢٦ الساعة ١٤:٣٠",
        "कीमत ₹२५,००० है",
        "Versions ۱.۲.۳ and ۱.۲.۴ are on the server",
    ] {
        assert_eq!(found(text), None, "{text:?}");
    }
}

/// H-C1 through `decide`: a tricked message outside a contract room is refused like a plain
/// one, and so are H-C2's other texts; inside an active contract's room it is allowed.
#[test]
fn h_c1_decide_refuses_tricked_details_in_every_checked_text() {
    let mut w = World::new();
    let tricked = [
        "alice\u{200B}@gmail.com",
        "call +1\u{2011}415\u{2011}555\u{2011}0134",
        "\u{430}lice@gm\u{430}il.com",
        "a l i c e @ g m a i l . c o m",
        "call me \u{661}\u{664}\u{661}\u{665} \u{665}\u{665}\u{665} \u{660}\u{661}\u{663}\u{664}",
    ];
    let group = w.group("alice", &["bob"]);
    let contract = w.contract("c-h-c1");
    for (index, text) in tricked.into_iter().enumerate() {
        // message.send, in a room and to a user, and message.edit.
        assert_eq!(
            w.code("alice", support::send(group, text)),
            ErrorCode::ContactInfoOutsideContract,
            "{text:?}"
        );
        assert_eq!(
            w.code("alice", support::send_to("carol", text)),
            ErrorCode::ContactInfoOutsideContract,
            "{text:?}"
        );
        let message = w.say("alice", group, "draft");
        assert_eq!(
            w.code(
                "alice",
                Action::EditMessage {
                    room_id: group,
                    message_id: message,
                    body: text.into(),
                }
            ),
            ErrorCode::ContactInfoOutsideContract,
            "{text:?}"
        );
        // Room names, new and renamed.
        assert_eq!(
            w.code(
                "alice",
                Action::CreateRoom {
                    name: text.into(),
                    members: vec![user("bob")],
                }
            ),
            ErrorCode::ContactInfoOutsideContract,
            "{text:?}"
        );
        assert_eq!(
            w.code(
                "alice",
                Action::RenameRoom {
                    room_id: group,
                    name: text.into(),
                }
            ),
            ErrorCode::ContactInfoOutsideContract,
            "{text:?}"
        );
        // Out-of-office messages.
        assert_eq!(
            w.code(
                "alice",
                Action::SetOutOfOffice {
                    message: text.into(),
                    from: domain::Timestamp::from_millis(T0),
                    until: domain::Timestamp::from_millis(T0 + 24 * HOUR),
                }
            ),
            ErrorCode::ContactInfoOutsideContract,
            "{text:?}"
        );
        // File names, when attached outside a contract room.
        let file_id = domain::FileId(uuid::Uuid::from_u128(0xF11E_3000 + index as u128));
        w.service_ok(Action::RegisterFile {
            file_id,
            uploader: user("alice"),
            name: format!("{text}.pdf"),
            size: 10,
            content_type: "application/pdf".into(),
            sha256: "ab".repeat(32),
        });
        assert_eq!(
            w.code(
                "alice",
                send_with(group, "", vec![domain::AttachmentRef::File(file_id)])
            ),
            ErrorCode::ContactInfoOutsideContract,
            "{text:?}"
        );
        // Inside an active contract's room the same text and file are allowed (R-C1).
        assert!(
            w.run("alice", support::send(contract, text)).is_ok(),
            "{text:?}"
        );
        assert!(w
            .run(
                "alice",
                send_with(contract, "", vec![domain::AttachmentRef::File(file_id)])
            )
            .is_ok());
    }
}

// --- H-L3 and the smaller findings of the hostile review (ids, oracles) ---

/// Decides `action` by `actor` with a command id the caller chose, folding it in when accepted.
fn run_with_command_id(
    w: &mut World,
    actor: &str,
    command_id: domain::CommandId,
    action: Action,
) -> Result<Vec<domain::Event>, domain::Rejection> {
    let command = domain::Command {
        command_id,
        actor: domain::Actor::User(user(actor)),
        client: w.client,
        action,
    };
    let events = domain::decide(&w.state, &command, domain::Timestamp::from_millis(w.now))?;
    for event in &events {
        domain::evolve(&mut w.state, event);
    }
    Ok(events)
}

fn send_with_id(room: domain::RoomId, message_id: uuid::Uuid, body: &str) -> Action {
    Action::SendMessage {
        target: domain::MessageTarget::Room(room),
        message_id: Some(domain::MessageId(message_id)),
        body: body.into(),
        reply_to: None,
        attachments: vec![],
    }
}

#[test]
fn h_l3_a_file_can_be_attached_only_within_its_grace_after_registration() {
    assert_eq!(
        domain::limits::FILE_ATTACH_GRACE_MS,
        24 * HOUR,
        "the grace security.md names"
    );
    let mut w = World::new();
    let room = w.group("alice", &["bob"]);
    let fresh = w.upload("alice", 10);
    let late = w.upload("alice", 10);
    let just_in_time = w.upload("alice", 10);
    let file = |id| vec![domain::AttachmentRef::File(id)];

    // Within the grace a file is attached as before.
    w.advance(HOUR);
    w.ok("alice", send_with(room, "", file(fresh)));
    w.advance(domain::limits::FILE_ATTACH_GRACE_MS - HOUR - 1);
    w.ok("alice", send_with(room, "", file(just_in_time)));

    // From the grace on, its bytes may be gone: refused as a file that is not there, with a
    // message saying what to do, and nothing is recorded.
    w.advance(1);
    let before = w.state.clone();
    let rejection = w
        .run("alice", send_with(room, "here it is", file(late)))
        .unwrap_err();
    assert_eq!(rejection.code, ErrorCode::NotFound);
    assert!(
        rejection.message.contains("upload it again"),
        "{}",
        rejection.message
    );
    assert_eq!(w.state, before);
    assert!(!w.state.files[&late].attached);

    // A new upload of the same bytes starts a new grace.
    let again = w.upload("alice", 10);
    w.ok("alice", send_with(room, "here it is", file(again)));
}

#[test]
fn h_l3_the_registration_time_survives_a_fold_of_the_log() {
    let mut w = World::new();
    let room = w.group("alice", &["bob"]);
    let file = w.upload("alice", 10);
    // The state folded from the log alone (as after a restart) knows the registration time.
    let mut folded = domain::State::new(domain::Config::default());
    for event in &w.log {
        domain::evolve(&mut folded, event);
    }
    assert_eq!(folded, w.state);
    w.state = folded;
    w.advance(domain::limits::FILE_ATTACH_GRACE_MS);
    let code = w.code(
        "alice",
        send_with(room, "", vec![domain::AttachmentRef::File(file)]),
    );
    assert_eq!(code, ErrorCode::NotFound);
}

#[test]
fn h_misc_a_message_id_never_takes_a_call_id_and_a_call_never_a_message_id() {
    let mut w = World::new();
    let room = w.group("alice", &["bob"]);

    // A client-chosen message id equal to an active call's id is refused: otherwise the
    // timeline would find the message under the call's id and the call would never end.
    let events = w.ok(
        "alice",
        Action::StartCall {
            room_id: room,
            media: domain::CallMedia::Audio,
        },
    );
    let domain::Event::CallStarted { call_id, .. } = events[0] else {
        panic!("a call_started event: {events:?}");
    };
    let code = w.code("bob", send_with_id(room, call_id.0, "mine now"));
    assert_eq!(code, ErrorCode::DuplicateMessageId);
    w.ok(
        "bob",
        Action::EndCall {
            room_id: room,
            call_id,
        },
    );
    // Ended calls keep their ids too.
    let code = w.code("bob", send_with_id(room, call_id.0, "mine now"));
    assert_eq!(code, ErrorCode::DuplicateMessageId);

    // The other way round: a message takes the id a command id will give its call, then the
    // call is started with that command id; refused, and the room has no call.
    let crafted = domain::CommandId(uuid::Uuid::from_u128(0xCA11));
    let call_id_to_be = crafted.derive("call");
    w.ok("bob", send_with_id(room, call_id_to_be, "squatting"));
    let rejection = run_with_command_id(
        &mut w,
        "bob",
        crafted,
        Action::StartCall {
            room_id: room,
            media: domain::CallMedia::Video,
        },
    )
    .unwrap_err();
    assert_eq!(rejection.code, ErrorCode::InvalidCommand);
    assert!(
        rejection.message.contains("command_id"),
        "{}",
        rejection.message
    );
    assert!(w.state.rooms[&room].active_call.is_none());
}

#[test]
fn h_misc_a_derived_message_id_already_taken_is_refused_not_overwritten() {
    let mut w = World::new();
    let room = w.group("alice", &["bob"]);
    let crafted = domain::CommandId(uuid::Uuid::from_u128(0xBEEF));
    // Bob takes the id this command id would give a message, and the id of the automatic
    // reply it would get from an away carol.
    w.ok(
        "bob",
        send_with_id(room, crafted.derive("message"), "first"),
    );
    let rejection =
        run_with_command_id(&mut w, "alice", crafted, send(room, "second")).unwrap_err();
    assert_eq!(rejection.code, ErrorCode::InvalidCommand);
    let first = w
        .state
        .messages
        .get(&domain::MessageId(crafted.derive("message")))
        .expect("the first message");
    assert_eq!(w.state.user_id(first.author), Some(&user("bob")));

    w.ok(
        "alice",
        Action::AddMember {
            room_id: room,
            user_id: user("carol"),
        },
    );
    w.ok(
        "carol",
        Action::SetOutOfOffice {
            message: "Away".into(),
            from: domain::Timestamp::from_millis(w.now),
            until: domain::Timestamp::from_millis(w.now + HOUR),
        },
    );
    let other = domain::CommandId(uuid::Uuid::from_u128(0xF00D));
    // In a room of his own: here carol's automatic reply would answer him first.
    let elsewhere = w.group("bob", &["dave"]);
    w.ok(
        "bob",
        send_with_id(elsewhere, other.derive("auto-reply\ncarol"), "squat"),
    );
    let rejection = run_with_command_id(&mut w, "alice", other, send(room, "hi")).unwrap_err();
    assert_eq!(rejection.code, ErrorCode::InvalidCommand);
}

#[test]
fn h_misc_a_refused_send_reveals_nothing_of_message_ids_in_other_rooms() {
    let mut w = World::new();
    let private = w.group("alice", &["bob"]);
    let secret = w.say("alice", private, "in a room carol is not in");
    let own = w.group("carol", &["dave"]);
    let unknown_file = domain::FileId(uuid::Uuid::from_u128(0xDEAD));
    let fresh = domain::MessageId(uuid::Uuid::from_u128(0x1234_5678));

    // Every refusal a probe can provoke without sending a message answers the same whether the
    // message id exists (in a room carol cannot see) or not.
    type Probe = Box<dyn Fn(domain::MessageId) -> Action>;
    let probes: Vec<(&str, Probe)> = vec![
        (
            "an unknown file",
            Box::new(move |id| Action::SendMessage {
                target: domain::MessageTarget::Room(own),
                message_id: Some(id),
                body: "probe".into(),
                reply_to: None,
                attachments: vec![domain::AttachmentRef::File(unknown_file)],
            }),
        ),
        (
            "an unknown reply_to",
            Box::new(move |id| Action::SendMessage {
                target: domain::MessageTarget::Room(own),
                message_id: Some(id),
                body: "probe".into(),
                reply_to: Some(domain::MessageId(uuid::Uuid::from_u128(0xDEAD))),
                attachments: vec![],
            }),
        ),
        (
            "contact details",
            Box::new(move |id| Action::SendMessage {
                target: domain::MessageTarget::Room(own),
                message_id: Some(id),
                body: "mail me at carol@example.com".into(),
                reply_to: None,
                attachments: vec![],
            }),
        ),
        (
            "an empty message",
            Box::new(move |id| Action::SendMessage {
                target: domain::MessageTarget::Room(own),
                message_id: Some(id),
                body: " ".into(),
                reply_to: None,
                attachments: vec![],
            }),
        ),
        (
            "a room carol is not in",
            Box::new(move |id| Action::SendMessage {
                target: domain::MessageTarget::Room(private),
                message_id: Some(id),
                body: "probe".into(),
                reply_to: None,
                attachments: vec![],
            }),
        ),
    ];
    for (what, probe) in probes {
        let existing = w.run("carol", probe(secret)).unwrap_err();
        let absent = w.run("carol", probe(fresh)).unwrap_err();
        assert_eq!(
            (existing.code, &existing.message),
            (absent.code, &absent.message),
            "{what}"
        );
        assert_ne!(existing.code, ErrorCode::DuplicateMessageId, "{what}");
    }
    // Only a message that would be sent learns that the id is taken (and R-M7 ids are UUIDs
    // their clients draw at random).
    assert_eq!(
        w.code("carol", send_with_id(own, secret.0, "probe")),
        ErrorCode::DuplicateMessageId
    );
}

#[test]
fn h_misc_room_ids_of_different_kinds_never_collide() {
    // The namespaces of interview and contract rooms (ids.rs); as command ids they once made
    // `room.create` give the room of interview "room" or contract "room".
    let interview_namespace = uuid::Uuid::from_u128(0x6c1f_3e2a_9b4d_4c8e_a1f0_d2e3_b4c5_0002);
    let contract_namespace = uuid::Uuid::from_u128(0x6c1f_3e2a_9b4d_4c8e_a1f0_d2e3_b4c5_0003);
    let mut w = World::new();
    let create = || Action::CreateRoom {
        name: "Crafted".into(),
        members: vec![user("bob")],
    };
    let mut groups = Vec::new();
    for namespace in [interview_namespace, contract_namespace] {
        let events =
            run_with_command_id(&mut w, "dave", domain::CommandId(namespace), create()).unwrap();
        groups.push(events[0].room_id().unwrap());
    }
    let interview = w.interview("room");
    let contract = w.contract("room");
    assert!(!groups.contains(&interview) && !groups.contains(&contract));
    // Each room is what its creation made it: the groups are dave's, untouched.
    for group in &groups {
        assert_eq!(w.state.rooms[group].kind, domain::RoomKind::Group);
        assert!(w.state.rooms[group].members.contains(&user("dave")));
    }
    assert_eq!(w.state.rooms[&interview].kind, domain::RoomKind::Interview);
    assert_eq!(w.state.rooms[&contract].kind, domain::RoomKind::Contract);
}

#[test]
fn h_misc_a_creation_whose_room_id_exists_is_refused_and_never_replaces_the_room() {
    // A log written before the namespaces differed can hold a group room with the id of
    // interview "room" (made with the interview namespace as command id): fold one in.
    let mut w = World::new();
    let taken = domain::RoomId::for_interview(&domain::InterviewId::parse("room").unwrap());
    let contract_taken = domain::RoomId::for_contract(&domain::ContractId::parse("room").unwrap());
    for room_id in [taken, contract_taken] {
        domain::evolve(
            &mut w.state,
            &domain::Event::GroupRoomCreated {
                room_id,
                name: "Crafted".into(),
                creator: user("dave"),
                members: vec![user("dave"), user("bob")],
                created_at: domain::Timestamp::from_millis(w.now),
            },
        );
    }

    // The hiring and contracts services are refused with a clear reason, not given dave's room.
    let before = w.state.clone();
    let code = w.service_code(Action::OpenInterview {
        interview_id: domain::InterviewId::parse("room").unwrap(),
        title: "Interview".into(),
        client: user("alice"),
        freelancer: user("bob"),
    });
    assert_eq!(code, ErrorCode::InvalidCommand);
    let code = w.service_code(Action::StartContract {
        contract_id: domain::ContractId::parse("room").unwrap(),
        title: "Contract".into(),
        client: user("alice"),
        freelancer: user("bob"),
        room_id: None,
    });
    assert_eq!(code, ErrorCode::InvalidCommand);
    assert_eq!(w.state, before);

    // And an event creating an existing room (only an old log holds one) keeps the first room.
    domain::evolve(
        &mut w.state,
        &domain::Event::InterviewRoomOpened {
            room_id: taken,
            interview_id: domain::InterviewId::parse("room").unwrap(),
            title: "Interview".into(),
            client: user("alice"),
            freelancer: user("bob"),
            opened_at: domain::Timestamp::from_millis(w.now),
        },
    );
    assert_eq!(w.state.rooms[&taken], before.rooms[&taken]);
    assert!(w.state.interviews.is_empty());
}
