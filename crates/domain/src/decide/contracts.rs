//! `decide` for the contract aggregate: a contract starts (in a new room or an existing one)
//! and ends; while it is active its room allows contact details (R-C2).

use crate::event::{Event, RoomKind};
use crate::ids::{ContractId, RoomId, UserId};
use crate::limits::TITLE_CHARS_MAX;
use crate::rejection::{ErrorCode, Rejection};

use super::checks::bounded_text;
use super::context::Context;

/// `contract.start` (service, R-C2).
pub(super) fn start_contract(
    ctx: &Context<'_>,
    contract_id: &ContractId,
    title: &str,
    client: &UserId,
    freelancer: &UserId,
    room_id: &Option<RoomId>,
) -> Result<Vec<Event>, Rejection> {
    let (state, now) = (ctx.state, ctx.now);
    let title = bounded_text("title", title, 1, TITLE_CHARS_MAX)?;
    ctx.known_user(client)?;
    ctx.known_user(freelancer)?;
    if client == freelancer {
        return Err(Rejection::invalid("freelancer: must differ from client"));
    }
    if let Some(contract) = state.contracts.get(contract_id) {
        if room_id.is_some_and(|id| id != contract.room_id) {
            return Err(Rejection::invalid(
                "room_id: the contract already has another room",
            ));
        }
        if contract.active {
            return Ok(vec![]); // Starting an active contract again is a no-op.
        }
        // A contract that ended can be restarted in its room.
        return Ok(vec![Event::ContractStarted {
            contract_id: contract_id.clone(),
            room_id: contract.room_id,
            room_created: false,
            title,
            client: client.clone(),
            freelancer: freelancer.clone(),
            started_at: now,
        }]);
    }
    let (room_id, room_created) = match room_id {
        None => {
            let room_id = RoomId::for_contract(contract_id);
            ctx.check_room_id_free(&room_id, "contract_id")?;
            (room_id, true)
        }
        Some(id) => {
            let room = state
                .rooms
                .get(id)
                .ok_or_else(|| Rejection::new(ErrorCode::NotFound, "room_id: no such room"))?;
            if room.kind == RoomKind::Direct {
                return Err(Rejection::new(
                    ErrorCode::Forbidden,
                    "a direct room cannot become a contract room",
                ));
            }
            if state.allows_contact_info(room) {
                return Err(Rejection::new(
                    ErrorCode::Forbidden,
                    "the room belongs to another active contract",
                ));
            }
            (*id, false)
        }
    };
    Ok(vec![Event::ContractStarted {
        contract_id: contract_id.clone(),
        room_id,
        room_created,
        title,
        client: client.clone(),
        freelancer: freelancer.clone(),
        started_at: now,
    }])
}

/// `contract.end` (service, R-C2).
pub(super) fn end_contract(
    ctx: &Context<'_>,
    contract_id: &ContractId,
) -> Result<Vec<Event>, Rejection> {
    let (state, now) = (ctx.state, ctx.now);
    let contract = state
        .contracts
        .get(contract_id)
        .ok_or_else(|| Rejection::new(ErrorCode::NotFound, "contract_id: no such contract"))?;
    Ok(if contract.active {
        vec![Event::ContractEnded {
            contract_id: contract_id.clone(),
            room_id: contract.room_id,
            ended_at: now,
        }]
    } else {
        vec![]
    })
}
