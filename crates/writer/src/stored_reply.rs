//! The value the writer stores beside each accepted command id in the event log: who owns the id
//! (security.md H-I1) and the reply a resend gets, byte for byte (R-M7).
//!
//! Layout: [`OWNED_FORMAT`], then the owner's fingerprint ([`OWNER_FINGERPRINT_BYTES`]), then
//! the reply exactly as `protocol::encode_reply` wrote it in bincode (its own format byte
//! first). Values written before H-I1 are that bincode reply alone: they start with
//! `protocol::FORMAT_VERSION`, never with [`OWNED_FORMAT`], so the two read apart and an
//! existing data directory keeps working. Such a value has no owner: it is answered to whoever
//! resends the id, as it was before (docs/security.md, Decisions).
//!
//! The event log stores these bytes without looking at them, so its format, `audit verify`,
//! `log.read` and the hash chain (which covers records, not replies) are unchanged.

use std::fmt::{self, Write as _};

use domain::Command;
use sha2::{Digest, Sha256};

/// The first byte of a value that carries its owner.
pub(crate) const OWNED_FORMAT: u8 = 0xA1;

// A value without an owner starts with protocol's format byte; the two must never meet.
const _: () = assert!(OWNED_FORMAT != protocol::FORMAT_VERSION);

/// Bytes of an owner fingerprint: a sha256 prefix, long enough that two owners of one id never
/// collide by chance (2^-64 for a chosen pair, and an id has one owner).
pub(crate) const OWNER_FINGERPRINT_BYTES: usize = 16;

/// Separates the fields hashed into a fingerprint: neither command type names nor actors
/// (validated ids) contain a NUL byte, so the hashed text names exactly one (type, actor) pair.
const FIELD_SEPARATOR: u8 = 0;

/// Who a command id belongs to: the command type and the actor that first used it, hashed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Owner([u8; OWNER_FINGERPRINT_BYTES]);

impl Owner {
    /// The owner `command` claims: its type and its actor.
    pub(crate) fn of(command: &Command) -> Owner {
        let mut hasher = Sha256::new();
        hasher.update(b"parlor.command-owner.v1");
        hasher.update([FIELD_SEPARATOR]);
        hasher.update(command.action.type_name().as_bytes());
        hasher.update([FIELD_SEPARATOR]);
        // The actor's text as `Display` writes it, streamed into the hash: no `String` per
        // command on the commit path. Writing into a hasher cannot fail.
        let _ = write!(HashText(&mut hasher), "{}", command.actor);
        let digest = hasher.finalize();
        let mut fingerprint = [0; OWNER_FINGERPRINT_BYTES];
        fingerprint.copy_from_slice(&digest[..OWNER_FINGERPRINT_BYTES]);
        Owner(fingerprint)
    }
}

/// Feeds formatted text straight into a sha256.
struct HashText<'a>(&'a mut Sha256);

impl fmt::Write for HashText<'_> {
    fn write_str(&mut self, text: &str) -> fmt::Result {
        self.0.update(text.as_bytes());
        Ok(())
    }
}

/// The stored value for an accepted command: its owner, then its bincode reply.
pub(crate) fn encode(owner: Owner, reply_bincode: &[u8]) -> Vec<u8> {
    let mut value = Vec::with_capacity(1 + OWNER_FINGERPRINT_BYTES + reply_bincode.len());
    value.push(OWNED_FORMAT);
    value.extend_from_slice(&owner.0);
    value.extend_from_slice(reply_bincode);
    value
}

/// A stored value read back: the owner, when it was written with one, and the bincode reply.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Stored<'a> {
    /// `None` for a value written before H-I1.
    pub(crate) owner: Option<Owner>,
    /// The reply as first sent, in bincode.
    pub(crate) reply_bincode: &'a [u8],
}

impl Stored<'_> {
    /// Whether `claimant` may be answered with this reply: it owns the id, or nobody recorded
    /// an owner.
    pub(crate) fn answers(&self, claimant: Owner) -> bool {
        self.owner.is_none_or(|owner| owner == claimant)
    }
}

/// Splits a stored value into its owner and its reply. A value too short to hold an owner is
/// returned whole as a reply, which then fails to decode and is answered `unavailable`.
pub(crate) fn decode(value: &[u8]) -> Stored<'_> {
    match value.split_first() {
        Some((&OWNED_FORMAT, rest)) if rest.len() >= OWNER_FINGERPRINT_BYTES => {
            let (fingerprint, reply_bincode) = rest.split_at(OWNER_FINGERPRINT_BYTES);
            let mut owner = [0; OWNER_FINGERPRINT_BYTES];
            owner.copy_from_slice(fingerprint);
            Stored {
                owner: Some(Owner(owner)),
                reply_bincode,
            }
        }
        _ => Stored {
            owner: None,
            reply_bincode: value,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use domain::{Action, Actor, Client, CommandId, UserId};

    fn command(actor: &str, action: Action) -> Command {
        Command {
            command_id: CommandId(uuid::Uuid::nil()),
            actor: Actor::parse(actor).expect("actor"),
            client: Client::Desktop,
            action,
        }
    }

    fn block(user: &str) -> Action {
        Action::BlockUser {
            user_id: UserId::parse(user).expect("user"),
        }
    }

    #[test]
    fn a_value_round_trips_with_its_owner() {
        let owner = Owner::of(&command("alice", block("bob")));
        let value = encode(owner, &[protocol::FORMAT_VERSION, 7, 8]);
        let stored = decode(&value);
        assert_eq!(stored.owner, Some(owner));
        assert_eq!(stored.reply_bincode, &[protocol::FORMAT_VERSION, 7, 8]);
    }

    #[test]
    fn a_value_from_before_owners_is_the_reply_alone_and_answers_anyone() {
        let old = [protocol::FORMAT_VERSION, 0, 1, 2];
        let stored = decode(&old);
        assert_eq!(stored.owner, None);
        assert_eq!(stored.reply_bincode, &old);
        assert!(stored.answers(Owner::of(&command("mallory", block("bob")))));
    }

    #[test]
    fn the_owner_is_the_actor_and_the_type_not_the_payload() {
        let alice_blocks_bob = Owner::of(&command("alice", block("bob")));
        assert_eq!(
            alice_blocks_bob,
            Owner::of(&command("alice", block("carol")))
        );
        assert_ne!(
            alice_blocks_bob,
            Owner::of(&command("mallory", block("bob")))
        );
        let unblock = Action::UnblockUser {
            user_id: UserId::parse("bob").expect("user"),
        };
        assert_ne!(alice_blocks_bob, Owner::of(&command("alice", unblock)));
    }

    #[test]
    fn the_fingerprint_is_sha256_of_the_label_type_and_actor_text_as_stored_owners_were() {
        // Owners already stored in data directories were hashed from this exact text; the
        // fingerprint must never change (a resend would then be refused as another owner's).
        for actor in ["alice", "service:identity"] {
            let mut text = b"parlor.command-owner.v1\0user.block\0".to_vec();
            text.extend_from_slice(actor.as_bytes());
            let digest = Sha256::digest(&text);
            let expected: [u8; OWNER_FINGERPRINT_BYTES] = digest[..OWNER_FINGERPRINT_BYTES]
                .try_into()
                .expect("16 bytes");
            assert_eq!(Owner::of(&command(actor, block("bob"))), Owner(expected));
        }
    }
}
