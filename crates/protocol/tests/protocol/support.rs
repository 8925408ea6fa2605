//! Fixtures shared by the test modules: fixed ids, envelope builders, proptest strategies.

use domain::{
    Action, Actor, AttachmentRef, CallId, CallMedia, Client, Command, CommandId, ContractId,
    FileId, InterviewId, MessageId, MessageTarget, NotificationFrequency, ReportReason, RoomId,
    Timestamp, UserId, UserKind,
};
use proptest::prelude::*;
use protocol::DecodedCommand;
use serde_json::{json, Value};
use uuid::Uuid;

pub const COMMAND: &str = "0192f0c1-7a3e-7cc4-9a51-5c2d7e0f4b10";
pub const ROOM: &str = "0192f0c1-7a3e-7cc4-9a51-5c2d7e0f4b11";
pub const MESSAGE: &str = "0192f0c1-7a3e-7cc4-9a51-5c2d7e0f4b12";
pub const FILE: &str = "0192f0c1-7a3e-7cc4-9a51-5c2d7e0f4b13";
pub const CALL: &str = "0192f0c1-7a3e-7cc4-9a51-5c2d7e0f4b14";
pub const OTHER_MESSAGE: &str = "0192f0c1-7a3e-7cc4-9a51-5c2d7e0f4b15";
pub const EVENT: &str = "0192f0c1-7a3e-7cc4-9a51-5c2d7e0f4b16";

pub fn uuid(text: &str) -> Uuid {
    Uuid::parse_str(text).expect("a test UUID")
}

pub fn user(text: &str) -> UserId {
    UserId::parse(text).expect("a test user id")
}

pub fn room() -> RoomId {
    RoomId(uuid(ROOM))
}

pub fn message() -> MessageId {
    MessageId(uuid(MESSAGE))
}

pub fn command_id() -> CommandId {
    CommandId(uuid(COMMAND))
}

pub fn at(text: &str) -> Timestamp {
    Timestamp::parse_rfc3339(text).expect("a test timestamp")
}

/// The envelope of §1 around `data`, from `alice` on the default client.
pub fn envelope(data: Value) -> Vec<u8> {
    json!({ "command_id": COMMAND, "actor": "alice", "data": data })
        .to_string()
        .into_bytes()
}

/// The command `alice` sends by `envelope(…)`.
pub fn alice_command(action: Action) -> DecodedCommand {
    DecodedCommand {
        command: Command {
            command_id: command_id(),
            actor: Actor::User(user("alice")),
            client: Client::Desktop,
            action,
        },
        correlation_id: None,
    }
}

// ---- proptest strategies ----

pub fn any_uuid() -> impl Strategy<Value = Uuid> {
    any::<u128>().prop_map(Uuid::from_u128)
}

pub fn any_user() -> impl Strategy<Value = UserId> {
    "[A-Za-z0-9._-][A-Za-z0-9._:-]{0,63}"
        .prop_filter("not a service name", |text| !text.starts_with("service:"))
        .prop_map(|text| user(&text))
}

pub fn any_text_id<T>(parse: fn(&str) -> Result<T, domain::IdError>) -> impl Strategy<Value = T>
where
    T: std::fmt::Debug,
{
    "[A-Za-z0-9._-]{1,64}".prop_map(move |text| parse(&text).expect("a valid id"))
}

/// Moments from year 1 to year 9999: the range RFC 3339 can write.
pub fn any_timestamp() -> impl Strategy<Value = Timestamp> {
    (-62_135_596_800_000i64..253_402_300_799_999).prop_map(Timestamp::from_millis)
}

/// Any text, control characters and non-ASCII included.
pub fn any_text() -> impl Strategy<Value = String> {
    proptest::collection::vec(any::<char>(), 0..24).prop_map(|chars| chars.into_iter().collect())
}

pub fn any_actor() -> impl Strategy<Value = Actor> {
    prop_oneof![
        any_user().prop_map(Actor::User),
        "[a-z0-9._-]{1,40}".prop_map(|name| {
            Actor::parse(&format!("service:{name}")).expect("a valid service actor")
        }),
    ]
}

pub fn any_client() -> impl Strategy<Value = Client> {
    prop_oneof![
        Just(Client::Desktop),
        Just(Client::MobileWeb),
        Just(Client::MobileApp)
    ]
}

pub fn any_frequency() -> impl Strategy<Value = NotificationFrequency> {
    prop_oneof![
        Just(NotificationFrequency::Immediate),
        Just(NotificationFrequency::Every15Minutes),
        Just(NotificationFrequency::Hourly),
        Just(NotificationFrequency::Daily),
        Just(NotificationFrequency::Off),
    ]
}

pub fn any_reason() -> impl Strategy<Value = ReportReason> {
    prop_oneof![
        Just(ReportReason::PaymentOutsidePlatform),
        Just(ReportReason::ContactInfoBeforeContract),
        Just(ReportReason::SuspiciousLink),
        Just(ReportReason::AbusiveLanguage),
        Just(ReportReason::Other),
    ]
}

fn any_room() -> impl Strategy<Value = RoomId> {
    any_uuid().prop_map(RoomId)
}

fn any_message() -> impl Strategy<Value = MessageId> {
    any_uuid().prop_map(MessageId)
}

fn any_attachment() -> impl Strategy<Value = AttachmentRef> {
    prop_oneof![
        any_uuid().prop_map(|id| AttachmentRef::File(FileId(id))),
        any_text().prop_map(AttachmentRef::Link),
    ]
}

/// Every action of §1, with arbitrary field values of the right types.
pub fn any_action() -> impl Strategy<Value = Action> {
    let users = || proptest::collection::vec(any_user(), 0..4);
    prop_oneof![
        (
            any_user(),
            any_text(),
            prop_oneof![
                Just(UserKind::Client),
                Just(UserKind::Freelancer),
                Just(UserKind::Agency)
            ]
        )
            .prop_map(|(user_id, display_name, kind)| Action::RegisterUser {
                user_id,
                display_name,
                kind
            }),
        any_user().prop_map(|user_id| Action::BlockUser { user_id }),
        any_user().prop_map(|user_id| Action::UnblockUser { user_id }),
        (any_text(), any_timestamp(), any_timestamp()).prop_map(|(message, from, until)| {
            Action::SetOutOfOffice {
                message,
                from,
                until,
            }
        }),
        Just(Action::ClearOutOfOffice),
        any::<bool>().prop_map(|visible| Action::SetOnlineVisibility { visible }),
        any_frequency().prop_map(|frequency| Action::SetNotifications { frequency }),
        (any_text(), users()).prop_map(|(name, members)| Action::CreateRoom { name, members }),
        (
            any_text_id(InterviewId::parse),
            any_text(),
            any_user(),
            any_user()
        )
            .prop_map(
                |(interview_id, title, client, freelancer)| Action::OpenInterview {
                    interview_id,
                    title,
                    client,
                    freelancer
                }
            ),
        (any_room(), any_user())
            .prop_map(|(room_id, user_id)| Action::AddMember { room_id, user_id }),
        any_room().prop_map(|room_id| Action::LeaveRoom { room_id }),
        (any_room(), any_text()).prop_map(|(room_id, name)| Action::RenameRoom { room_id, name }),
        (any_room(), any::<bool>()).prop_map(|(room_id, on)| Action::FavoriteRoom { room_id, on }),
        (any_room(), any::<bool>()).prop_map(|(room_id, on)| Action::HideRoom { room_id, on }),
        (any_room(), any::<bool>()).prop_map(|(room_id, on)| Action::ArchiveRoom { room_id, on }),
        (any_room(), any_message()).prop_map(|(room_id, message_id)| Action::MarkRead {
            room_id,
            message_id
        }),
        (
            any_text_id(ContractId::parse),
            any_text(),
            any_user(),
            any_user(),
            proptest::option::of(any_room())
        )
            .prop_map(|(contract_id, title, client, freelancer, room_id)| {
                Action::StartContract {
                    contract_id,
                    title,
                    client,
                    freelancer,
                    room_id,
                }
            }),
        any_text_id(ContractId::parse).prop_map(|contract_id| Action::EndContract { contract_id }),
        (
            prop_oneof![
                any_room().prop_map(MessageTarget::Room),
                any_user().prop_map(MessageTarget::User)
            ],
            proptest::option::of(any_message()),
            any_text(),
            proptest::option::of(any_message()),
            proptest::collection::vec(any_attachment(), 0..4),
        )
            .prop_map(|(target, message_id, body, reply_to, attachments)| {
                Action::SendMessage {
                    target,
                    message_id,
                    body,
                    reply_to,
                    attachments,
                }
            }),
        (any_room(), any_message(), any_text()).prop_map(|(room_id, message_id, body)| {
            Action::EditMessage {
                room_id,
                message_id,
                body,
            }
        }),
        (any_room(), any_message()).prop_map(|(room_id, message_id)| Action::DeleteMessage {
            room_id,
            message_id
        }),
        (
            any_room(),
            any_message(),
            any_reason(),
            proptest::option::of(any_text())
        )
            .prop_map(
                |(room_id, message_id, reason, details)| Action::ReportMessage {
                    room_id,
                    message_id,
                    reason,
                    details
                }
            ),
        (
            any_room(),
            prop_oneof![Just(CallMedia::Audio), Just(CallMedia::Video)]
        )
            .prop_map(|(room_id, media)| Action::StartCall { room_id, media }),
        (any_room(), any_uuid()).prop_map(|(room_id, call)| Action::EndCall {
            room_id,
            call_id: CallId(call)
        }),
        (
            any_uuid(),
            any_user(),
            any_text(),
            any::<u64>(),
            any_text(),
            any_text()
        )
            .prop_map(|(file, uploader, name, size, content_type, sha256)| {
                Action::RegisterFile {
                    file_id: FileId(file),
                    uploader,
                    name,
                    size,
                    content_type,
                    sha256,
                }
            }),
    ]
}

/// A whole decoded command: any envelope around any action.
pub fn any_decoded_command() -> impl Strategy<Value = DecodedCommand> {
    (
        any_uuid(),
        any_actor(),
        any_client(),
        proptest::option::of("[ -~]{0,128}"),
        any_action(),
    )
        .prop_map(
            |(command_id, actor, client, correlation_id, action)| DecodedCommand {
                command: Command {
                    command_id: CommandId(command_id),
                    actor,
                    client,
                    action,
                },
                correlation_id,
            },
        )
}
