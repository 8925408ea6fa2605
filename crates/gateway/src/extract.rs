//! Request extractors whose rejections are the gateway's JSON errors, never axum's plain text:
//! the bearer token ([`Authenticated`]), query parameters ([`QueryParams`]) and a single path
//! parameter ([`PathText`]).

use axum::extract::{FromRequestParts, Path, Query};
use axum::http::header::AUTHORIZATION;
use axum::http::request::Parts;

use protocol::query::{Cursor, PageLimit};

use crate::auth::{AuthError, Caller};
use crate::error::ApiError;
use crate::state::SharedState;

/// The most items a list returns (protocol.md §3; `protocol::query`).
pub(crate) const LIST_LIMIT_MAX: usize = protocol::query::PAGE_ITEMS_MAX;

/// The caller named by a valid `Authorization: Bearer <JWT>` header; 401 otherwise.
#[derive(Debug, Clone)]
pub(crate) struct Authenticated(pub(crate) Caller);

impl FromRequestParts<SharedState> for Authenticated {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &SharedState,
    ) -> Result<Authenticated, ApiError> {
        let unauthorized = |error: AuthError| ApiError::unauthorized(error.to_string());
        let header = parts
            .headers
            .get(AUTHORIZATION)
            .ok_or_else(|| unauthorized(AuthError::MissingToken))?;
        let text = header.to_str().map_err(|_| {
            unauthorized(AuthError::Malformed(
                "the Authorization header is not ASCII".into(),
            ))
        })?;
        let token = match text.trim().split_once(' ') {
            Some((scheme, token)) if scheme.eq_ignore_ascii_case("bearer") => token.trim(),
            _ => return Err(unauthorized(AuthError::MissingToken)),
        };
        state
            .verifier
            .verify(token)
            .map(Authenticated)
            .map_err(unauthorized)
    }
}

/// The query string as name/value pairs, with typed, checked accessors. A parameter given
/// empty (`?cursor=`) is treated as absent; unknown parameters are ignored.
#[derive(Debug, Clone, Default)]
pub(crate) struct QueryParams(Vec<(String, String)>);

impl<S: Send + Sync> FromRequestParts<S> for QueryParams {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<QueryParams, ApiError> {
        Query::<Vec<(String, String)>>::try_from_uri(&parts.uri)
            .map(|Query(pairs)| QueryParams(pairs))
            .map_err(|rejection| ApiError::invalid(rejection.body_text()))
    }
}

impl QueryParams {
    /// The value of `name`; an error if it is given twice.
    pub(crate) fn text(&self, name: &str) -> Result<Option<&str>, ApiError> {
        let mut values = self
            .0
            .iter()
            .filter(|(key, value)| key == name && !value.is_empty())
            .map(|(_, value)| value.as_str());
        let first = values.next();
        if values.next().is_some() {
            return Err(ApiError::invalid(format!("{name}: given more than once")));
        }
        Ok(first)
    }

    /// `limit`: 1 to [`LIST_LIMIT_MAX`], `default` when absent.
    pub(crate) fn limit(&self, default: PageLimit) -> Result<PageLimit, ApiError> {
        let Some(text) = self.text("limit")? else {
            return Ok(default);
        };
        text.parse::<usize>()
            .ok()
            .and_then(PageLimit::new)
            .ok_or_else(|| {
                ApiError::invalid(format!(
                    "limit: must be an integer from 1 to {LIST_LIMIT_MAX}"
                ))
            })
    }

    /// `min_position`: a log position to wait for (read-your-writes).
    pub(crate) fn min_position(&self) -> Result<Option<u64>, ApiError> {
        self.text("min_position")?
            .map(|text| {
                text.parse::<u64>()
                    .map_err(|_| ApiError::invalid("min_position: must be a non-negative integer"))
            })
            .transpose()
    }

    /// `cursor`: the `next_cursor` of the page before, passed through unread (at most
    /// `protocol::query::CURSOR_BYTES_MAX` bytes).
    pub(crate) fn cursor(&self) -> Result<Option<Cursor>, ApiError> {
        self.text("cursor")?
            .map(|text| Cursor::new(text).map_err(|error| ApiError::invalid(error.0)))
            .transpose()
    }

    /// A parameter whose value must be one of `allowed`.
    pub(crate) fn choice(
        &self,
        name: &str,
        allowed: &[&'static str],
    ) -> Result<Option<&'static str>, ApiError> {
        let Some(text) = self.text(name)? else {
            return Ok(None);
        };
        allowed
            .iter()
            .find(|choice| **choice == text)
            .copied()
            .map(Some)
            .ok_or_else(|| {
                ApiError::invalid(format!("{name}: must be one of {}", allowed.join(", ")))
            })
    }
}

/// The value of a route's single path parameter (`{room_id}`, `{file_id}`, `{command_type}`).
#[derive(Debug, Clone)]
pub(crate) struct PathText(pub(crate) String);

impl<S: Send + Sync> FromRequestParts<S> for PathText {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<PathText, ApiError> {
        Path::<String>::from_request_parts(parts, state)
            .await
            .map(|Path(text)| PathText(text))
            .map_err(|rejection| ApiError::invalid(rejection.body_text()))
    }
}
