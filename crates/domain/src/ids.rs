//! Identifiers: validated user-style ids (R-U2), service names, and UUID ids for rooms, messages,
//! files, calls and reports, including the ids the domain derives from a command id.

use std::fmt;

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::limits::ID_BYTES_MAX;

/// Why a string is not a valid id. The text names the rule so a caller can fix the input.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IdError {
    /// Empty, longer than 64 bytes, or holding a byte outside `[A-Za-z0-9._:-]`.
    #[error("must be 1-64 characters of A-Z, a-z, 0-9, '.', '_', ':' or '-'")]
    Malformed,
    /// A user id may not start with `service:`, which names services.
    #[error("must not start with 'service:' (that prefix names services)")]
    ReservedPrefix,
    /// A service actor must be `service:<name>` with a valid name.
    #[error("must be 'service:<name>' with a name of A-Z, a-z, 0-9, '.', '_', ':' or '-'")]
    NotAService,
    /// Not a UUID in its canonical hyphenated form.
    #[error("must be a UUID")]
    NotAUuid,
}

pub(crate) const SERVICE_PREFIX: &str = "service:";

/// True when `text` is 1–64 bytes of `[A-Za-z0-9._:-]` (R-U2).
fn is_id_text(text: &str) -> bool {
    !text.is_empty()
        && text.len() <= ID_BYTES_MAX
        && text
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b':' | b'-'))
}

/// The JSON Schema of an R-U2 id: what [`is_id_text`] accepts, and not `service:…`. The prefix
/// is excluded with `not` rather than a look-ahead, which not every schema tool reads.
fn text_id_schema() -> schemars::Schema {
    schemars::json_schema!({
        "type": "string",
        "pattern": "^[A-Za-z0-9._:-]{1,64}$",
        "not": { "pattern": "^service:" }
    })
}

/// Declares a string id type validated per R-U2 (user, contract and interview ids share the form).
macro_rules! text_id {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        #[serde(try_from = "String", into = "String")]
        pub struct $name(String);

        impl $name {
            /// Validates `text` per R-U2.
            pub fn parse(text: &str) -> Result<Self, IdError> {
                if !is_id_text(text) {
                    return Err(IdError::Malformed);
                }
                if text.starts_with(SERVICE_PREFIX) {
                    return Err(IdError::ReservedPrefix);
                }
                Ok(Self(text.to_owned()))
            }

            /// The id as text.
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl schemars::JsonSchema for $name {
            fn schema_name() -> std::borrow::Cow<'static, str> {
                stringify!($name).into()
            }

            fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
                text_id_schema()
            }
        }

        impl TryFrom<String> for $name {
            type Error = IdError;
            fn try_from(text: String) -> Result<Self, IdError> {
                Self::parse(&text)
            }
        }

        impl From<$name> for String {
            fn from(id: $name) -> String {
                id.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{}({:?})", stringify!($name), self.0)
            }
        }
    };
}

text_id!(
    /// A user of the marketplace: an opaque id handed out by the identity service (R-U2).
    UserId
);
text_id!(
    /// A contract of the contracts service (same form as a user id).
    ContractId
);
text_id!(
    /// An interview of the hiring service (same form as a user id).
    InterviewId
);

/// Declares a UUID id type.
macro_rules! uuid_id {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        #[serde(transparent)]
        pub struct $name(pub Uuid);

        impl $name {
            /// Parses the canonical hyphenated (or simple) UUID text form.
            pub fn parse(text: &str) -> Result<Self, IdError> {
                Uuid::try_parse(text).map(Self).map_err(|_| IdError::NotAUuid)
            }
        }

        impl schemars::JsonSchema for $name {
            fn schema_name() -> std::borrow::Cow<'static, str> {
                stringify!($name).into()
            }

            fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
                schemars::json_schema!({ "type": "string", "format": "uuid" })
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                self.0.hyphenated().fmt(f)
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{}({})", stringify!($name), self.0.hyphenated())
            }
        }
    };
}

uuid_id!(
    /// The idempotency key of a command (R-M7); also the seed of every id the command derives.
    CommandId
);
uuid_id!(
    /// A room of any kind.
    RoomId
);
uuid_id!(
    /// A message, an automatic reply included.
    MessageId
);
uuid_id!(
    /// An uploaded file.
    FileId
);
uuid_id!(
    /// A call in a room.
    CallId
);
uuid_id!(
    /// A report of a message.
    ReportId
);

/// Namespace of the v5 UUIDs that name direct rooms. Fixed forever: changing it would give every
/// existing pair of users a second direct room.
const DIRECT_ROOM_NAMESPACE: Uuid = Uuid::from_u128(0x6c1f_3e2a_9b4d_4c8e_a1f0_d2e3_b4c5_0001);
/// Namespace of interview rooms, derived from the interview id so that reopening is idempotent.
const INTERVIEW_ROOM_NAMESPACE: Uuid = Uuid::from_u128(0x6c1f_3e2a_9b4d_4c8e_a1f0_d2e3_b4c5_0002);
/// Namespace of contract rooms, derived from the contract id.
const CONTRACT_ROOM_NAMESPACE: Uuid = Uuid::from_u128(0x6c1f_3e2a_9b4d_4c8e_a1f0_d2e3_b4c5_0003);
/// Namespace of group rooms, derived from the creating command's id. Group rooms were once
/// `v5(command id, "room")`: a client choosing one of the namespaces above as its command id got
/// a group room with the id of interview "room" or contract "room". Every kind of room now has a
/// namespace of its own, so ids of different kinds differ by construction (security.md).
const GROUP_ROOM_NAMESPACE: Uuid = Uuid::from_u128(0x6c1f_3e2a_9b4d_4c8e_a1f0_d2e3_b4c5_0004);

impl RoomId {
    /// The one direct room of an unordered pair of users (R-R1). Deriving the id from the pair,
    /// rather than generating one, makes two concurrent first messages land in the same room.
    pub fn direct(a: &UserId, b: &UserId) -> RoomId {
        let (low, high) = if a <= b { (a, b) } else { (b, a) };
        // '\n' cannot occur in a user id, so the joined name is unambiguous.
        let name = format!("{}\n{}", low.as_str(), high.as_str());
        RoomId(Uuid::new_v5(&DIRECT_ROOM_NAMESPACE, name.as_bytes()))
    }

    /// The room an interview opens.
    pub fn for_interview(interview: &InterviewId) -> RoomId {
        RoomId(Uuid::new_v5(
            &INTERVIEW_ROOM_NAMESPACE,
            interview.as_str().as_bytes(),
        ))
    }

    /// The group room `room.create` with this command id creates. Rooms created before this
    /// derivation keep their ids: the id is in their creation event, and the fold reads it from
    /// there, never derives it again.
    pub fn for_group(command: &CommandId) -> RoomId {
        RoomId(Uuid::new_v5(&GROUP_ROOM_NAMESPACE, command.0.as_bytes()))
    }

    /// The room a contract opens when it is not given an existing room.
    pub fn for_contract(contract: &ContractId) -> RoomId {
        RoomId(Uuid::new_v5(
            &CONTRACT_ROOM_NAMESPACE,
            contract.as_str().as_bytes(),
        ))
    }
}

impl CommandId {
    /// Derives an id for something this command creates. The domain never draws random numbers:
    /// every id a command creates is a v5 UUID of the command id and a purpose (rooms: of their
    /// kind's namespace and the command id, [`RoomId::for_group`]), so deciding the
    /// same command twice (a replay, a retried rejection) yields the same ids, and an accepted
    /// command id is unique for good (R-M7), so are the ids derived from it.
    pub fn derive(&self, purpose: &str) -> Uuid {
        Uuid::new_v5(&self.0, purpose.as_bytes())
    }
}

/// A service's name, as in `service:<name>`: who may send the service commands (S).
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct ServiceName(String);

impl ServiceName {
    /// The name without the `service:` prefix.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for ServiceName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ServiceName({:?})", self.0)
    }
}

/// Who sends a command: a user, or a service (`service:<name>`).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Actor {
    /// A person using a frontend.
    User(UserId),
    /// Another backend service (identity, hiring, contracts, the gateway's upload path).
    Service(ServiceName),
}

impl Actor {
    /// Parses an actor: `service:<name>` or a user id.
    pub fn parse(text: &str) -> Result<Actor, IdError> {
        match text.strip_prefix(SERVICE_PREFIX) {
            Some(name) => {
                if is_id_text(text) && !name.is_empty() {
                    Ok(Actor::Service(ServiceName(name.to_owned())))
                } else {
                    Err(IdError::NotAService)
                }
            }
            None => UserId::parse(text).map(Actor::User),
        }
    }

    /// The user behind the actor, if it is one.
    pub fn user(&self) -> Option<&UserId> {
        match self {
            Actor::User(user) => Some(user),
            Actor::Service(_) => None,
        }
    }
}

impl fmt::Display for Actor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Actor::User(user) => user.fmt(f),
            Actor::Service(name) => write!(f, "{SERVICE_PREFIX}{}", name.0),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn r_u2_user_ids_accept_the_allowed_alphabet_only() {
        for good in ["alice", "a", "A.b_c:d-9", &"x".repeat(64)] {
            assert!(UserId::parse(good).is_ok(), "{good}");
        }
        for bad in ["", "al ice", "ünï", "a/b", &"x".repeat(65), "a@b"] {
            assert_eq!(UserId::parse(bad), Err(IdError::Malformed), "{bad}");
        }
        assert_eq!(UserId::parse("service:x"), Err(IdError::ReservedPrefix));
    }

    #[test]
    fn actors_are_users_or_services() {
        assert_eq!(
            Actor::parse("bob").ok().and_then(|a| a.user().cloned()),
            UserId::parse("bob").ok()
        );
        assert!(matches!(
            Actor::parse("service:hiring"),
            Ok(Actor::Service(_))
        ));
        assert_eq!(Actor::parse("service:"), Err(IdError::NotAService));
        assert_eq!(Actor::parse("service:a b"), Err(IdError::NotAService));
        assert_eq!(
            Actor::parse("service:hiring").map(|a| a.to_string()),
            Ok("service:hiring".to_owned())
        );
    }

    #[test]
    fn r_r1_direct_room_id_ignores_the_order_of_the_pair() {
        let (a, b) = (
            UserId::parse("a").unwrap_or_else(|_| unreachable!()),
            UserId::parse("b").unwrap_or_else(|_| unreachable!()),
        );
        assert_eq!(RoomId::direct(&a, &b), RoomId::direct(&b, &a));
        assert_ne!(RoomId::direct(&a, &b), RoomId::direct(&a, &a));
    }
}
