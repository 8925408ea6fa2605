//! `decide` for the file aggregate: the gateway registers an uploaded file (R-F1); attaching
//! it is `message.send`'s business.

use crate::event::Event;
use crate::ids::{FileId, UserId};
use crate::limits::{CONTENT_TYPE_CHARS_MAX, FILE_BYTES_MAX, FILE_NAME_CHARS_MAX};
use crate::rejection::{ErrorCode, Rejection};

use super::checks::{bounded_text, display_name};
use super::context::Context;

/// `file.register` (service): an uploaded file becomes known (R-F1).
pub(super) fn register_file(
    ctx: &Context<'_>,
    file_id: &FileId,
    uploader: &UserId,
    name: &str,
    size: &u64,
    content_type: &str,
    sha256: &str,
) -> Result<Vec<Event>, Rejection> {
    let (state, now) = (ctx.state, ctx.now);
    let name = display_name("name", name, FILE_NAME_CHARS_MAX)?;
    let content_type = bounded_text("content_type", content_type, 1, CONTENT_TYPE_CHARS_MAX)?;
    if !(sha256.len() == 64
        && sha256
            .bytes()
            .all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')))
    {
        return Err(Rejection::invalid(
            "sha256: must be 64 lowercase hex characters",
        ));
    }
    if *size > FILE_BYTES_MAX {
        return Err(Rejection::new(
            ErrorCode::FileTooLarge,
            "files can be at most 1 GiB",
        ));
    }
    ctx.known_user(uploader)?;
    if state.files.contains_key(file_id) {
        return Err(Rejection::invalid("file_id: already registered"));
    }
    Ok(vec![Event::FileRegistered {
        file_id: *file_id,
        uploader: uploader.clone(),
        name,
        size: *size,
        content_type,
        sha256: sha256.to_owned(),
        registered_at: now,
    }])
}
