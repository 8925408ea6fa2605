//! The room membership set that the timeline and files read models keep for their access
//! checks: one `m/<room><user>` key per member, maintained from the domain's one definition of
//! how events change membership (`Event::membership_change`).

use domain::{Event, MembershipChange, RoomId, UserId};

use crate::error::ProjectionError;
use crate::store::{Changes, Key};

/// The key that says `user` is a member of `room`.
pub(crate) fn member_key(room: &RoomId, user: &UserId) -> Vec<u8> {
    Key::new(b"m/").uuid(&room.0).text(user.as_str()).build()
}

/// Keeps the membership set level with `event`: joins put a key, a departure removes it, every
/// other event changes nothing.
pub(crate) fn track_membership(
    changes: &mut Changes<'_>,
    event: &Event,
) -> Result<(), ProjectionError> {
    match event.membership_change() {
        Some(MembershipChange::Joined { room_id, users }) => {
            for user in users {
                changes.put(member_key(&room_id, user), &())?;
            }
        }
        Some(MembershipChange::Left { room_id, user }) => {
            changes.remove(member_key(&room_id, user))
        }
        None => {}
    }
    Ok(())
}
