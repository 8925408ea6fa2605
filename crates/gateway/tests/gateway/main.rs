//! The gateway over real HTTP, with small fake parts behind it on the bus (the writer and the
//! projectors are other crates' work; the end-to-end tests in the workspace's tests/ wire the
//! real ones). One test binary, one module per concern.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod http;
mod support;

/// 401s, and the two endpoints that need no token.
mod auth;
/// `POST /v1/commands/{type}`: the envelope, service commands, status mapping.
mod commands;
/// The SSE stream: replay, live, resume, gaps, filtering.
mod events;
/// Uploads, thumbnails, downloads.
mod files;
/// `/healthz` (public and operator), `/metrics`, presence heartbeats.
mod health;
/// What one caller may use: command rates, uploads, disk reserve, timeouts, connection cap.
mod limits;
/// One gateway on a real nats-server.
mod nats;
/// The OpenAPI document, its viewer, and that every documented operation is routed.
mod openapi;
/// The reads: parameters, mapping of projector answers, `min_position`.
mod queries;
/// What a token must be: lifetime, nbf, issuer, audience, rotation, JWKS (security.md H-I3).
mod tokens;

/// `GET /asyncapi.json`: the NATS contract's AsyncAPI document, served and listed.
mod asyncapi;
