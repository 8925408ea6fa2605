//! `GET /docs`: the OpenAPI document in Redoc (2.5.4, MIT; docs/dependencies.md has its
//! sha256), bundled in the binary like the web client (`crate::web`), so nothing is fetched
//! from a CDN. One page and one script; the page has no inline script (Redoc's standalone
//! bundle renders the `<redoc spec-url>` element itself).

use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};

use crate::error::ApiError;
use crate::extract::PathText;
use crate::web::{answer, asset, Asset};

/// Redoc injects its styles at run time and runs its search index in a `blob:` worker; it
/// fetches only `/openapi.json`. Nothing else is allowed.
const VIEWER_POLICY: &str = "default-src 'none'; script-src 'self'; style-src 'self' \
     'unsafe-inline'; img-src 'self' data:; font-src 'self' data:; worker-src blob:; \
     connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

/// The viewer's page.
const PAGE: Asset = asset!(
    "index.html",
    "../../docs-viewer/index.html",
    "text/html; charset=utf-8",
    VIEWER_POLICY
);

/// The viewer's files under `/docs/`.
/// The script's entity tag is its version: hashing 1.1 MB at compile time (as `asset!` does)
/// trips the compiler's const-evaluation guard, and the file changes only with the version.
const FILES: &[Asset] = &[Asset {
    name: "redoc.standalone.js",
    content_type: "text/javascript; charset=utf-8",
    bytes: include_bytes!("../../docs-viewer/redoc.standalone.js"),
    entity_tag: "\"redoc-2.5.4\"",
    policy: VIEWER_POLICY,
}];

/// `GET /docs`.
pub(crate) async fn page(headers: HeaderMap) -> Response {
    answer(&PAGE, &headers)
}

/// `GET /docs/{name}`.
pub(crate) async fn file(PathText(name): PathText, headers: HeaderMap) -> Response {
    match FILES.iter().find(|file| file.name == name) {
        Some(found) => answer(found, &headers),
        None => ApiError::not_found("no such file").into_response(),
    }
}
