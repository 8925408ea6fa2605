//! Files (protocol.md §3, R-F1, R-F2): `POST /v1/files` streams the raw body into the blob store
//! and registers the file with the writer; `GET /v1/files/{file_id}` and `…/preview` stream the
//! bytes or the thumbnail back to a caller the files projector allows.
//!
//! An upload is never held in memory whole: the body flows chunk by chunk into the store, which
//! hashes it and enforces the size limit as it goes. A declared `Content-Length` over the limit is
//! refused before a byte of the body is read.

use std::io;
use std::sync::Arc;

use axum::body::Body;
use axum::extract::State;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::Response;
use blobs::{BlobError, BlobReader, ContentHash};
use domain::{FileId, UserId};
use futures::StreamExt;
use percent_encoding::{percent_decode_str, utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};
use protocol::Reply;
use serde::{Deserialize, Serialize};
use serde_json::json;

use crate::commands::{header_text, send_command, Envelope};
use crate::error::{json_response, ApiError};
use crate::extract::{Authenticated, PathText, QueryParams};
use crate::limits::{self, QuotaCharge, UploadSlots};
use crate::state::{AppState, SharedState};
use crate::thumbnail::{is_previewable, make_thumbnail, THUMBNAIL_NAME};
use crate::{metrics as gateway_metrics, queries};

/// The actor of `file.register` commands: the gateway registers uploads as a service.
pub(crate) const GATEWAY_ACTOR: &str = "service:gateway";

/// The content type of an upload that declares none.
pub(crate) const DEFAULT_CONTENT_TYPE: &str = "application/octet-stream";

/// Characters left as they are in an RFC 5987 `filename*` value (its `attr-char`); every other
/// byte of the UTF-8 name is percent-encoded.
const ATTR_CHAR_UNRESERVED: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'!')
    .remove(b'#')
    .remove(b'$')
    .remove(b'&')
    .remove(b'+')
    .remove(b'-')
    .remove(b'.')
    .remove(b'^')
    .remove(b'_')
    .remove(b'`')
    .remove(b'|')
    .remove(b'~');

/// The 201 answer to an upload.
#[derive(Serialize)]
struct Uploaded<'a> {
    file_id: String,
    name: &'a str,
    size: u64,
    content_type: &'a str,
    sha256: String,
    position: u64,
}

/// How often, in bytes received, an upload checks the disk's free space again (H-L3): the
/// reserve can shrink by at most this much between two checks of one upload.
pub(crate) const DISK_CHECK_INTERVAL_BYTES: u64 = 8 * 1024 * 1024;

/// How long a client whose uploads are all running is told to wait (`Retry-After`).
const UPLOAD_SLOT_RETRY_AFTER: std::time::Duration = std::time::Duration::from_secs(1);

/// Why an upload's own stream stopped it (H-L3); carried through the blob store as the source
/// of its `BlobError::Source`.
#[derive(Debug, thiserror::Error)]
enum UploadRefusal {
    #[error(transparent)]
    Quota(#[from] crate::limits::QuotaExceeded),
    #[error(transparent)]
    Storage(#[from] crate::limits::InsufficientStorage),
}

/// `POST /v1/files`.
pub(crate) async fn upload(
    State(state): State<SharedState>,
    Authenticated(caller): Authenticated,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    let uploader = UserId::parse(&caller.subject)
        .map_err(|_| ApiError::forbidden("only users upload files"))?;
    // H-L3: held for the whole upload, given back however it ends.
    let _slot =
        UploadSlots::try_acquire(&state.upload_slots, uploader.as_str()).ok_or_else(|| {
            ApiError::rate_limited(
                "too many uploads at once; wait for one to finish",
                UPLOAD_SLOT_RETRY_AFTER,
            )
        })?;
    let bytes_max = state.limits.upload_bytes_max;
    let too_large = || {
        ApiError::too_large(
            "file_too_large",
            format!("files are limited to {bytes_max} bytes"),
        )
    };
    // Answered from the declared length alone, before reading the body.
    let declared = match header_text(&headers, header::CONTENT_LENGTH.as_str())? {
        Some(text) => Some(
            text.parse::<u64>()
                .map_err(|_| ApiError::invalid("Content-Length: must be an integer"))?,
        ),
        None => None,
    };
    if declared.is_some_and(|length| length > bytes_max) {
        return Err(too_large());
    }
    let name = file_name(&headers)?;
    let content_type = content_type(&headers)?;
    let now = state.clock.now();
    let day = limits::utc_day(now.millis());
    state
        .upload_quota
        .check(uploader.as_str(), day, declared.unwrap_or(0))
        .map_err(|error| ApiError::quota_exceeded(error.to_string()))?;
    state
        .disk_reserve
        .check_async(declared.unwrap_or(0))
        .await
        .map_err(|error| ApiError::insufficient_storage(error.to_string()))?;

    let charge = QuotaCharge::new(&state.upload_quota, uploader.as_str(), day);
    let content = {
        let charge = Arc::clone(&charge);
        let reserve = state.disk_reserve.clone();
        let mut received: u64 = 0;
        body.into_data_stream().then(move |chunk| {
            let charge = Arc::clone(&charge);
            let reserve = reserve.clone();
            let before = received;
            let length = chunk.as_ref().map_or(0, |bytes| bytes.len() as u64);
            received = received.saturating_add(length);
            let checkpoint_passed =
                before / DISK_CHECK_INTERVAL_BYTES != received / DISK_CHECK_INTERVAL_BYTES;
            async move {
                let bytes = chunk.map_err(io::Error::other)?;
                gateway_metrics::upload_bytes(bytes.len());
                charge
                    .add(length)
                    .map_err(|error| io::Error::other(UploadRefusal::from(error)))?;
                if checkpoint_passed {
                    // Room for the next stretch, so the reserve holds until the next check.
                    reserve
                        .check_async(DISK_CHECK_INTERVAL_BYTES)
                        .await
                        .map_err(|error| io::Error::other(UploadRefusal::from(error)))?;
                }
                Ok(bytes)
            }
        })
    };
    let stored = state
        .blobs
        .put(Box::pin(content), bytes_max)
        .await
        .map_err(|error| match error {
            BlobError::TooLarge { .. } => too_large(),
            BlobError::Source(error) => source_error(&state, &error),
            other => store_failure(other, "cannot store the file"),
        })?;
    let file_id = FileId(uuid::Uuid::new_v4());
    // Held before it is registered: from now on an upload never attached is collected (H-L3).
    state
        .blobs
        .hold_unattached(file_id.0, stored.hash, now.millis())
        .await
        .map_err(|error| match error {
            BlobError::Collected(_) => ApiError::unavailable(error.to_string()),
            other => store_failure(other, "cannot store the file"),
        })?;
    charge.keep();
    if is_previewable(&content_type) {
        make_thumbnail(&state, stored.hash).await;
    }

    let sha256 = stored.hash.to_hex();
    let data = serde_json::value::to_raw_value(&json!({
        "file_id": file_id.to_string(),
        "uploader": uploader.as_str(),
        "name": name,
        "size": stored.size,
        "content_type": content_type,
        "sha256": sha256,
    }))
    .map_err(|error| ApiError::internal(format!("cannot encode file.register: {error}")))?;
    let envelope = Envelope {
        command_id: uuid::Uuid::new_v4().to_string(),
        actor: GATEWAY_ACTOR,
        client: "desktop",
        correlation_id: None,
        data: &data,
    };
    let answer = send_command(&state, "file.register", &envelope).await?;
    match answer.reply {
        Reply::Ok { position, .. } => {
            let body = serde_json::to_vec(&Uploaded {
                file_id: file_id.to_string(),
                name: &name,
                size: stored.size,
                content_type: &content_type,
                sha256,
                position,
            })
            .map_err(|error| ApiError::internal(error.to_string()))?;
            Ok(json_response(StatusCode::CREATED, body))
        }
        Reply::Err { code, message } => Err(ApiError::new(
            StatusCode::from_u16(protocol::http_status(code))
                .unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
            code.as_str(),
            message,
        )),
    }
}

/// The answer to an upload whose content stream failed: a limit of H-L3 that the stream itself
/// enforced, a body that stopped sending (H-L5), or a client that went away.
fn source_error(state: &AppState, error: &io::Error) -> ApiError {
    match error
        .get_ref()
        .and_then(|inner| inner.downcast_ref::<UploadRefusal>())
    {
        Some(UploadRefusal::Quota(refusal)) => ApiError::quota_exceeded(refusal.to_string()),
        Some(UploadRefusal::Storage(refusal)) => {
            ApiError::insufficient_storage(refusal.to_string())
        }
        None if error
            .get_ref()
            .is_some_and(|inner| crate::serve::is_body_timeout(inner)) =>
        {
            ApiError::body_timeout(state.limits.body_progress_timeout)
        }
        None => ApiError::invalid(format!("the upload was interrupted: {error}")),
    }
}

/// `X-File-Name`, percent-decoded: 1–255 characters of UTF-8 without control characters.
fn file_name(headers: &HeaderMap) -> Result<String, ApiError> {
    let chars_max = domain::limits::FILE_NAME_CHARS_MAX;
    let encoded = header_text(headers, "x-file-name")?
        .ok_or_else(|| ApiError::invalid("X-File-Name: missing (the percent-encoded file name)"))?;
    let name = percent_decode_str(encoded)
        .decode_utf8()
        .map_err(|_| ApiError::invalid("X-File-Name: must be percent-encoded UTF-8"))?;
    let count = name.chars().count();
    if count == 0 || count > chars_max {
        return Err(ApiError::invalid(format!(
            "X-File-Name: must be 1 to {chars_max} characters"
        )));
    }
    if name.chars().any(char::is_control) {
        return Err(ApiError::invalid(
            "X-File-Name: must not contain control characters",
        ));
    }
    Ok(name.into_owned())
}

/// `Content-Type`, or [`DEFAULT_CONTENT_TYPE`]: at most 255 characters.
fn content_type(headers: &HeaderMap) -> Result<String, ApiError> {
    let chars_max = domain::limits::CONTENT_TYPE_CHARS_MAX;
    let text = header_text(headers, header::CONTENT_TYPE.as_str())?.unwrap_or(DEFAULT_CONTENT_TYPE);
    if text.len() > chars_max {
        return Err(ApiError::invalid(format!(
            "Content-Type: at most {chars_max} characters"
        )));
    }
    Ok(text.to_owned())
}

/// What the files projector says about a file the caller may download.
#[derive(Debug, Deserialize)]
struct FileData {
    name: String,
    content_type: String,
    sha256: String,
}

/// A downloadable file.
struct FileInfo {
    name: String,
    content_type: String,
    hash: ContentHash,
}

/// Asks the files projector whether the caller may download `file` (`not_found` if not).
async fn file_info(
    state: &AppState,
    caller: &crate::auth::Caller,
    file: &str,
    min_position: Option<u64>,
) -> Result<FileInfo, ApiError> {
    let file_id = FileId::parse(file).map_err(|_| ApiError::invalid("file_id: must be a UUID"))?;
    let op = protocol::query::FilesQuery::File { file_id };
    let answer = queries::ask(state, caller, min_position, op).await?;
    let data: FileData = serde_json::from_str(answer.data.get()).map_err(|error| {
        ApiError::bad_reply(format!(
            "the files projector sent a malformed file: {error}"
        ))
    })?;
    let hash = ContentHash::from_hex(&data.sha256)
        .ok_or_else(|| ApiError::bad_reply("the files projector sent a malformed sha256"))?;
    Ok(FileInfo {
        name: data.name,
        content_type: data.content_type,
        hash,
    })
}

/// A streamed response of `reader`'s bytes.
fn stream_response(reader: BlobReader, content_type: &str) -> Response {
    let mut response = Response::new(Body::from_stream(reader.stream));
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_str(content_type)
            .unwrap_or(HeaderValue::from_static(DEFAULT_CONTENT_TYPE)),
    );
    headers.insert(header::CONTENT_LENGTH, HeaderValue::from(reader.size));
    // The declared type is the uploader's word: browsers must not second-guess it into HTML.
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    response
}

/// `Content-Disposition: attachment; filename*=UTF-8''<percent-encoded name>` (RFC 6266).
fn content_disposition(name: &str) -> HeaderValue {
    let encoded = utf8_percent_encode(name, ATTR_CHAR_UNRESERVED);
    HeaderValue::from_str(&format!("attachment; filename*=UTF-8''{encoded}"))
        .unwrap_or(HeaderValue::from_static("attachment"))
}

/// `GET /v1/files/{file_id}`.
pub(crate) async fn download(
    State(state): State<SharedState>,
    Authenticated(caller): Authenticated,
    PathText(file): PathText,
    query: QueryParams,
) -> Result<Response, ApiError> {
    let info = file_info(&state, &caller, &file, query.min_position()?).await?;
    let reader = state
        .blobs
        .open(info.hash)
        .await
        .map_err(storage_error)?
        .ok_or_else(|| ApiError::not_found("the file's bytes are not stored here"))?;
    let mut response = stream_response(reader, &info.content_type);
    response
        .headers_mut()
        .insert(header::CONTENT_DISPOSITION, content_disposition(&info.name));
    Ok(response)
}

/// `GET /v1/files/{file_id}/preview`.
pub(crate) async fn preview(
    State(state): State<SharedState>,
    Authenticated(caller): Authenticated,
    PathText(file): PathText,
    query: QueryParams,
) -> Result<Response, ApiError> {
    let info = file_info(&state, &caller, &file, query.min_position()?).await?;
    let reader = state
        .blobs
        .open_derived(info.hash, THUMBNAIL_NAME)
        .await
        .map_err(storage_error)?
        .ok_or_else(|| ApiError::not_found("this file has no preview"))?;
    Ok(stream_response(reader, "image/png"))
}

fn storage_error(error: BlobError) -> ApiError {
    store_failure(error, "cannot read the stored file")
}

/// A blob store that is full (507) or not answering (503, worth a retry: the NATS object store
/// while NATS is away) is told apart from the gateway failing (500).
fn store_failure(error: BlobError, what: &str) -> ApiError {
    tracing::error!(%error, "{what}");
    match &error {
        BlobError::Io(io) if io.kind() == io::ErrorKind::StorageFull => {
            ApiError::insufficient_storage("the file store is full")
        }
        BlobError::Io(io) if io.kind() == io::ErrorKind::TimedOut => ApiError::unavailable(
            format!("{what}: the file store is not answering; try again"),
        ),
        _ => ApiError::internal(what),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_names_are_percent_encoded_in_content_disposition() {
        assert_eq!(
            content_disposition("report final.pdf"),
            "attachment; filename*=UTF-8''report%20final.pdf"
        );
        assert_eq!(
            content_disposition("résumé \"v2\";.txt"),
            "attachment; filename*=UTF-8''r%C3%A9sum%C3%A9%20%22v2%22%3B.txt"
        );
    }

    #[test]
    fn file_names_are_checked() {
        let headers = |value: &'static str| {
            let mut headers = HeaderMap::new();
            headers.insert("x-file-name", HeaderValue::from_static(value));
            headers
        };
        assert_eq!(
            file_name(&headers("a%20b.txt")).ok(),
            Some("a b.txt".into())
        );
        assert_eq!(file_name(&headers("%C3%A9.txt")).ok(), Some("é.txt".into()));
        assert!(file_name(&headers("%FF")).is_err());
        assert!(file_name(&headers("a%0Ab")).is_err());
        assert!(file_name(&HeaderMap::new()).is_err());
        let long = "a".repeat(256);
        let mut too_long = HeaderMap::new();
        too_long.insert(
            "x-file-name",
            HeaderValue::from_str(&long).unwrap_or(HeaderValue::from_static("")),
        );
        assert!(file_name(&too_long).is_err());
    }
}
