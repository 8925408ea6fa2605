//! The reference web client (issue 18): its files under `crates/gateway/web/` are embedded in the
//! binary at compile time and served at `GET /` and `GET /assets/{name}`, without a token, so
//! `parlor up` alone lets a person try Parlor in a browser.
//!
//! The client has no build step: what is in `web/` is what the browser gets. Its file names
//! carry no content hash, so every answer says `Cache-Control: no-cache` with an `ETag` (a hash
//! of the bytes, computed at compile time): a browser revalidates each load and gets a 304 while
//! the binary is the same, and never runs a stale script after an upgrade.

use aide::axum::routing::get_with;
use aide::axum::ApiRouter;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};

use crate::error::ApiError;
use crate::extract::PathText;
use crate::openapi::operations;

/// One embedded file (of the client, or of the API documents' viewer, `openapi::viewer`).
pub(crate) struct Asset {
    /// The name under `/assets/` (`index.html` is also served at `/`).
    pub(crate) name: &'static str,
    pub(crate) content_type: &'static str,
    pub(crate) bytes: &'static [u8],
    /// `"<hash of bytes>"`, quoted as an entity tag is.
    pub(crate) entity_tag: &'static str,
    /// Its `Content-Security-Policy`.
    pub(crate) policy: &'static str,
}

/// Declares an embedded asset; the entity tag is computed from its bytes at compile time. The
/// long form names the file (relative to the invoking source file) and the policy.
macro_rules! asset {
    ($name:literal, $content_type:literal) => {
        $crate::web::asset!(
            $name,
            concat!("../web/", $name),
            $content_type,
            CONTENT_SECURITY_POLICY
        )
    };
    ($name:literal, $file:expr, $content_type:literal, $policy:expr) => {{
        const BYTES: &[u8] = include_bytes!($file);
        const TAG: [u8; 18] = $crate::web::entity_tag(BYTES);
        const TAG_STR: &str = match std::str::from_utf8(&TAG) {
            Ok(tag) => tag,
            Err(_) => panic!("an entity tag is ASCII"),
        };
        $crate::web::Asset {
            name: $name,
            content_type: $content_type,
            bytes: BYTES,
            entity_tag: TAG_STR,
            policy: $policy,
        }
    }};
}
pub(crate) use asset;

/// Every file of the client. A name not listed here is a 404, so no path can reach anything else.
const ASSETS: &[Asset] = &[
    asset!("index.html", "text/html; charset=utf-8"),
    asset!("app.js", "text/javascript; charset=utf-8"),
    asset!("api.js", "text/javascript; charset=utf-8"),
    asset!("sentences.js", "text/javascript; charset=utf-8"),
    asset!("style.css", "text/css; charset=utf-8"),
];

/// The page may load its own scripts, styles and images (previews are fetched with the token
/// and shown from `blob:` URLs) and talk to its own origin; nothing inline, nothing foreign.
const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; script-src 'self'; style-src 'self'; \
     img-src 'self' blob:; connect-src 'self'; base-uri 'none'; form-action 'none'; \
     frame-ancestors 'none'";

/// `GET /` and `GET /assets/{name}`, generic over the state so it merges into any router.
pub(crate) fn routes<S: Clone + Send + Sync + 'static>() -> ApiRouter<S> {
    ApiRouter::new()
        .api_route(
            "/",
            get_with(
                index,
                operations::web_client("The web client's page", false),
            ),
        )
        .api_route(
            "/assets/{name}",
            get_with(
                asset_file,
                operations::web_client("A file of the web client", true),
            ),
        )
}

async fn index(headers: HeaderMap) -> Response {
    // `index.html` is always in the table.
    match find("index.html") {
        Some(found) => answer(found, &headers),
        None => ApiError::not_found("no such file").into_response(),
    }
}

async fn asset_file(PathText(name): PathText, headers: HeaderMap) -> Response {
    match find(&name) {
        Some(found) => answer(found, &headers),
        None => ApiError::not_found("no such file").into_response(),
    }
}

fn find(name: &str) -> Option<&'static Asset> {
    ASSETS.iter().find(|asset| asset.name == name)
}

/// `asset`, or 304 when `request`'s `If-None-Match` names its entity tag.
pub(crate) fn answer(asset: &'static Asset, request: &HeaderMap) -> Response {
    let revalidated = request
        .get_all(header::IF_NONE_MATCH)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(','))
        .any(|tag| {
            let tag = tag.trim();
            tag == "*" || tag.trim_start_matches("W/") == asset.entity_tag
        });
    let mut response = if revalidated {
        StatusCode::NOT_MODIFIED.into_response()
    } else {
        let mut response = asset.bytes.into_response();
        response.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static(asset.content_type),
        );
        response
    };
    let headers = response.headers_mut();
    headers.insert(header::ETAG, HeaderValue::from_static(asset.entity_tag));
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(asset.policy),
    );
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    response
}

/// `"` + 16 hex digits of the 64-bit FNV-1a hash of `bytes` + `"`. A cache validator, not a
/// security check: it only has to change when the file does.
pub(crate) const fn entity_tag(bytes: &[u8]) -> [u8; 18] {
    const OFFSET_BASIS: u64 = 0xcbf2_9ce4_8422_2325;
    const PRIME: u64 = 0x0000_0100_0000_01b3;
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut hash = OFFSET_BASIS;
    let mut index = 0;
    while index < bytes.len() {
        hash ^= bytes[index] as u64;
        hash = hash.wrapping_mul(PRIME);
        index += 1;
    }
    let mut tag = [b'"'; 18];
    let mut digit = 0;
    while digit < 16 {
        tag[1 + digit] = HEX[((hash >> (60 - 4 * digit)) & 0xf) as usize];
        digit += 1;
    }
    tag
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::body::Body;
    use axum::http::Request;
    use tower::ServiceExt;

    async fn get_path(path: &str, if_none_match: Option<&str>) -> Response {
        let mut request = Request::get(path);
        if let Some(tag) = if_none_match {
            request = request.header(header::IF_NONE_MATCH, tag);
        }
        routes::<()>()
            .oneshot(request.body(Body::empty()).expect("request"))
            .await
            .expect("infallible")
    }

    async fn body_text(response: Response) -> String {
        let bytes = axum::body::to_bytes(response.into_body(), 1 << 20)
            .await
            .expect("body");
        String::from_utf8(bytes.to_vec()).expect("utf-8")
    }

    #[tokio::test]
    async fn the_client_page_is_served_at_the_root_without_a_token() {
        let response = get_path("/", None).await;
        assert_eq!(response.status(), StatusCode::OK);
        assert_eq!(
            response.headers()[header::CONTENT_TYPE],
            "text/html; charset=utf-8"
        );
        assert_eq!(response.headers()[header::CACHE_CONTROL], "no-cache");
        assert!(response.headers().contains_key(header::ETAG));
        assert!(response
            .headers()
            .contains_key(header::CONTENT_SECURITY_POLICY));
        let page = body_text(response).await;
        assert!(page.contains("data-testid=\"sign-in\""), "{page}");
        assert!(page.contains("/assets/app.js"), "{page}");
    }

    #[tokio::test]
    async fn each_asset_has_its_content_type() {
        for (path, content_type) in [
            ("/assets/app.js", "text/javascript; charset=utf-8"),
            ("/assets/api.js", "text/javascript; charset=utf-8"),
            ("/assets/sentences.js", "text/javascript; charset=utf-8"),
            ("/assets/style.css", "text/css; charset=utf-8"),
        ] {
            let response = get_path(path, None).await;
            assert_eq!(response.status(), StatusCode::OK, "{path}");
            assert_eq!(
                response.headers()[header::CONTENT_TYPE],
                content_type,
                "{path}"
            );
            assert_eq!(
                response.headers()[header::X_CONTENT_TYPE_OPTIONS],
                "nosniff"
            );
            assert!(!body_text(response).await.is_empty(), "{path}");
        }
    }

    #[tokio::test]
    async fn a_current_entity_tag_is_answered_not_modified_and_an_old_one_gets_the_file() {
        let first = get_path("/assets/app.js", None).await;
        let tag = first.headers()[header::ETAG]
            .to_str()
            .expect("ascii")
            .to_owned();
        let again = get_path("/assets/app.js", Some(&tag)).await;
        assert_eq!(again.status(), StatusCode::NOT_MODIFIED);
        assert!(body_text(again).await.is_empty());
        let stale = get_path("/assets/app.js", Some("\"0000000000000000\"")).await;
        assert_eq!(stale.status(), StatusCode::OK);
    }

    #[tokio::test]
    async fn an_unknown_or_escaping_asset_name_is_a_json_404() {
        for path in [
            "/assets/nope.js",
            "/assets/..%2FCargo.toml",
            "/assets/%2e%2e%2fsrc%2flib.rs",
        ] {
            let response = get_path(path, None).await;
            assert_eq!(response.status(), StatusCode::NOT_FOUND, "{path}");
            assert!(body_text(response).await.contains("not_found"), "{path}");
        }
    }

    #[test]
    fn entity_tags_differ_when_the_bytes_do() {
        assert_ne!(entity_tag(b"a"), entity_tag(b"b"));
        assert_eq!(entity_tag(b"a"), entity_tag(b"a"));
    }
}
