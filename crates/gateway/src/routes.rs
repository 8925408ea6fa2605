//! The public address's endpoints (protocol.md §3, docs/api.md), each added with its OpenAPI
//! operation (`openapi::operations`): the router and the document are built by the same calls,
//! so a route cannot be served undocumented. `POST /v1/commands/{command_type}` is one route
//! and one documented operation per command type (`/v1/commands/message.send`, …), each with
//! its own body schema.

use aide::axum::routing::{get_with, post_with};
use aide::axum::ApiRouter;
use aide::openapi::{OpenApi, Operation};
use aide::transform::TransformOperation;
use axum::routing::post;
use axum::Router;
use domain::command::COMMAND_TYPES;

use crate::openapi::{self, operations};
use crate::state::SharedState;
use crate::{asyncapi, commands, events, files, health, queries, web};

/// Every public route, documented into `api`.
pub(crate) fn documented(api: &mut OpenApi) -> Router<SharedState> {
    openapi::begin();
    let mut routes = ApiRouter::new()
        .api_route("/healthz", get_with(health::liveness, operations::liveness))
        .api_route(
            "/v1/rooms",
            get_with(queries::list_rooms, operations::list_rooms),
        )
        .api_route(
            "/v1/rooms/{room_id}",
            get_with(queries::get_room, operations::get_room),
        )
        .api_route(
            "/v1/rooms/{room_id}/messages",
            get_with(queries::messages, operations::messages),
        )
        .api_route(
            "/v1/rooms/{room_id}/files",
            get_with(queries::room_files, operations::room_files),
        )
        .api_route("/v1/search", get_with(queries::search, operations::search))
        .api_route(
            "/v1/moderation/reports",
            get_with(queries::reports, operations::reports),
        )
        .route("/v1/commands/{command_type}", post(commands::post_command))
        .api_route("/v1/files", post_with(files::upload, operations::upload))
        .api_route(
            "/v1/files/{file_id}",
            get_with(files::download, operations::download),
        )
        .api_route(
            "/v1/files/{file_id}/preview",
            get_with(files::preview, operations::preview),
        )
        .api_route("/v1/events", get_with(events::events, operations::events))
        .api_route(
            "/v1/presence/heartbeat",
            post_with(health::heartbeat, operations::heartbeat),
        )
        .api_route(
            "/openapi.json",
            get_with(openapi::serve, operations::openapi),
        )
        .api_route(
            "/asyncapi.json",
            get_with(asyncapi::serve, operations::asyncapi),
        )
        .api_route("/docs", get_with(openapi::viewer::page, operations::viewer))
        .api_route(
            "/docs/{name}",
            get_with(openapi::viewer::file, operations::viewer_asset),
        )
        .merge(web::routes());
    for command_type in COMMAND_TYPES {
        let mut operation = Operation::default();
        let _ = operations::command(command_type)(TransformOperation::new(&mut operation));
        routes = routes.api_route_docs(
            &format!("/v1/commands/{command_type}"),
            aide::axum::routing::ApiMethodDocs::new("post", operation),
        );
    }
    routes.finish_api_with(api, openapi::finish)
}
