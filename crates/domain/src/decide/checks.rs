//! What the aggregates share besides the context: checks of user-written text (lengths, names
//! shown to others, R-C1's contact details), the `blocked` refusal, and per-user flag changes.

use crate::contact::find_contact_info;
use crate::event::Event;
use crate::rejection::{ErrorCode, Rejection};

/// Trims `text` and checks it has `min..=max` characters.
pub(super) fn bounded_text(
    field: &str,
    text: &str,
    min: usize,
    max: usize,
) -> Result<String, Rejection> {
    let text = text.trim();
    let chars = text.chars().count();
    if chars < min || chars > max {
        return Err(Rejection::invalid(format!(
            "{field}: must be {min} to {max} characters"
        )));
    }
    Ok(text.to_owned())
}

/// A name shown to others in lists (a file's, a group room's): [`bounded_text`], refusing
/// control characters and bidirectional formatting characters, with which `invoice`, U+202E,
/// `fdp.exe` shows as `invoiceexe.pdf` (security.md's review).
pub(super) fn display_name(field: &str, text: &str, max: usize) -> Result<String, Rejection> {
    let text = bounded_text(field, text, 1, max)?;
    // Marks (LRM, RLM, ALM), embeddings and overrides (LRE…RLO), isolates (LRI…PDI).
    let bidi = |c: char| {
        matches!(c, '\u{200E}' | '\u{200F}' | '\u{061C}')
            || ('\u{202A}'..='\u{202E}').contains(&c)
            || ('\u{2066}'..='\u{2069}').contains(&c)
    };
    let hostile = |c: char| c.is_control() || bidi(c);
    if text.chars().any(hostile) {
        return Err(Rejection::invalid(format!(
            "{field}: must not contain control or bidirectional formatting characters"
        )));
    }
    Ok(text)
}

/// R-C1: contact or payment details are refused outside an active contract's room.
pub(super) fn refuse_contact_info(text: &str) -> Result<(), Rejection> {
    match find_contact_info(text) {
        Some(_) => Err(Rejection::new(
            ErrorCode::ContactInfoOutsideContract,
            "contact and payment details can be shared only in an active contract's room",
        )),
        None => Ok(()),
    }
}

pub(super) fn blocked() -> Rejection {
    Rejection::new(ErrorCode::Blocked, "you cannot message this user")
}

/// The events for setting a per-user flag: none when it already has that value.
pub(super) fn flag_change(
    current: bool,
    wanted: bool,
    event: impl FnOnce() -> Event,
) -> Vec<Event> {
    if current == wanted {
        vec![]
    } else {
        vec![event()]
    }
}
