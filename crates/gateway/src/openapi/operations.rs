//! Each endpoint's OpenAPI operation: its parameters, headers, bodies, and every status with
//! the error codes it may carry (docs/api.md). The functions are the `*_with` transforms of the
//! routes in `crate::routes`; the statuses of a command's own codes come from
//! `protocol::http_status`, the one table of them.

use std::collections::BTreeMap;

use aide::generate::in_context;
use aide::openapi::{Operation, Parameter, ReferenceOr, Response};
use aide::transform::TransformOperation;
use domain::{Client, CommandId, ErrorCode, FileId, MessageId, RoomId};
use protocol::query::{ItemType, RoomView, PAGE_ITEMS_DEFAULT, PAGE_ITEMS_MAX};
use schemars::JsonSchema;
use serde_json::{json, Value};

use super::views;
use super::{ERROR_SCHEMA, SECURITY_SCHEME};

/// One documented answer: a status, the codes it carries (empty for success), and its body.
struct Answer {
    status: u16,
    description: String,
    content: Vec<(&'static str, Value)>,
    headers: Vec<(&'static str, Value)>,
}

impl Answer {
    /// An error status with its codes, each with why.
    fn error(status: u16, codes: &[(&str, &str)]) -> Answer {
        let description = codes
            .iter()
            .map(|(code, why)| format!("`{code}`: {why}"))
            .collect::<Vec<_>>()
            .join("; ");
        let mut answer = Answer {
            status,
            description,
            content: vec![("application/json", reference(ERROR_SCHEMA))],
            headers: Vec::new(),
        };
        // `rate_limited` always carries `Retry-After`; the other codes of the same status
        // (`quota_exceeded`, `daily_conversation_limit`) do not.
        if codes.iter().any(|(code, _)| *code == "rate_limited") {
            let always = codes.iter().all(|(code, _)| *code == "rate_limited");
            answer.headers.push(("Retry-After", retry_after(always)));
        }
        answer
    }
}

/// A `$ref` to a component schema.
fn reference(name: &str) -> Value {
    json!({ "$ref": format!("#/components/schemas/{name}") })
}

/// `Retry-After`, in whole seconds; `required` when every code of the status carries it.
fn retry_after(required: bool) -> Value {
    json!({
        "description": "Seconds to wait before trying again (with `rate_limited`).",
        "required": required,
        "schema": { "type": "integer", "minimum": 1 }
    })
}

/// `Parlor-Position`: the read model's applied position when it answered.
fn parlor_position() -> Value {
    json!({
        "description": "The log position the read model had applied when it answered: pass it \
                        as `min_position` or `Last-Event-ID` to see nothing older.",
        "required": true,
        "schema": { "type": "integer", "minimum": 0 }
    })
}

/// Adds `answers` to the operation.
fn answer(mut operation: TransformOperation<'_>, answers: Vec<Answer>) -> TransformOperation<'_> {
    let responses = operation
        .inner_mut()
        .responses
        .get_or_insert_with(Default::default);
    for answer in answers {
        let mut response = json!({ "description": answer.description });
        if !answer.content.is_empty() {
            let content: serde_json::Map<String, Value> = answer
                .content
                .into_iter()
                .map(|(media_type, schema)| (media_type.to_owned(), json!({ "schema": schema })))
                .collect();
            response["content"] = Value::Object(content);
        }
        if !answer.headers.is_empty() {
            let headers: serde_json::Map<String, Value> = answer
                .headers
                .into_iter()
                .map(|(name, header)| (name.to_owned(), header))
                .collect();
            response["headers"] = Value::Object(headers);
        }
        if let Some(response) = parsed::<Response>(response) {
            responses.responses.insert(
                aide::openapi::StatusCode::Code(answer.status),
                ReferenceOr::Item(response),
            );
        }
    }
    operation
}

/// Adds parameters (OpenAPI parameter objects as JSON).
fn parameters(mut operation: TransformOperation<'_>, list: Vec<Value>) -> TransformOperation<'_> {
    let inner: &mut Operation = operation.inner_mut();
    for parameter in list {
        if let Some(parameter) = parsed::<Parameter>(parameter) {
            inner.parameters.push(ReferenceOr::Item(parameter));
        }
    }
    operation
}

/// Reads an OpenAPI object written as JSON. These are the gateway's own constants; one that
/// does not read is a bug the document test catches (the part is missing), never a panic.
fn parsed<T: serde::de::DeserializeOwned>(value: Value) -> Option<T> {
    match serde_json::from_value(value) {
        Ok(parsed) => Some(parsed),
        Err(error) => {
            tracing::error!(%error, "an OpenAPI part of the gateway does not read");
            None
        }
    }
}

/// A query parameter.
fn query(name: &str, description: &str, schema: Value) -> Value {
    json!({ "in": "query", "name": name, "description": description, "required": false,
            "schema": schema })
}

/// A required query parameter.
fn required_query(name: &str, description: &str, schema: Value) -> Value {
    json!({ "in": "query", "name": name, "description": description, "required": true,
            "schema": schema })
}

/// A path parameter.
fn path(name: &str, description: &str, schema: Value) -> Value {
    json!({ "in": "path", "name": name, "description": description, "required": true,
            "schema": schema })
}

/// A request header.
fn header(name: &str, description: &str, required: bool, schema: Value) -> Value {
    json!({ "in": "header", "name": name, "description": description, "required": required,
            "schema": schema })
}

/// `min_position`, which every read takes.
fn min_position() -> Value {
    query(
        "min_position",
        "Answer once the read model has applied this log position (read-your-writes): at most \
         5 s, then 503 `projection_lagging`; beyond the log's head, 400.",
        json!({ "type": "integer", "minimum": 0 }),
    )
}

/// `limit` and `cursor` of a list, with its default page size.
fn page(default: usize) -> Vec<Value> {
    vec![
        query(
            "limit",
            "Items in the page.",
            json!({ "type": "integer", "minimum": 1, "maximum": PAGE_ITEMS_MAX,
                    "default": default }),
        ),
        query(
            "cursor",
            "The previous page's `next_cursor`.",
            json!({ "type": "string", "maxLength": protocol::query::CURSOR_BYTES_MAX }),
        ),
    ]
}

/// The component schema of `T`.
fn schema<T: JsonSchema>() -> Value {
    in_context(|context| context.schema.subschema_for::<T>().to_value())
}

/// The answers of a token-authenticated request that may fail anywhere behind the gateway.
fn common_errors() -> Vec<Answer> {
    vec![
        Answer::error(
            401,
            &[("unauthorized", "no valid `Authorization: Bearer` token")],
        ),
        Answer::error(
            500,
            &[("internal", "the gateway could not build its answer (a bug)")],
        ),
        Answer::error(
            502,
            &[(
                "unavailable",
                "a part behind the gateway answered something unreadable",
            )],
        ),
    ]
}

/// The answers every read has besides its body.
fn read_errors(not_found: bool) -> Vec<Answer> {
    let mut answers = common_errors();
    answers.push(Answer::error(
        400,
        &[(
            "invalid_command",
            "a bad parameter (named in the message), or `min_position` beyond the log's head",
        )],
    ));
    if not_found {
        answers.push(Answer::error(
            404,
            &[(
                "not_found",
                "no such room, or the caller is not a member (the same answer)",
            )],
        ));
    }
    answers.push(Answer::error(
        429,
        &[(
            "rate_limited",
            "the caller already has 8 reads waiting for `min_position`",
        )],
    ));
    answers.push(Answer::error(
        503,
        &[
            (
                "unavailable",
                "the read model is not running or did not answer in time",
            ),
            (
                "projection_lagging",
                "the read model has not reached `min_position` within 5 s",
            ),
        ],
    ));
    answers
}

/// A successful JSON read of `T` with `Parlor-Position`.
fn read_ok<T: JsonSchema>(description: &str) -> Answer {
    Answer {
        status: 200,
        description: description.to_owned(),
        content: vec![("application/json", schema::<T>())],
        headers: vec![("Parlor-Position", parlor_position())],
    }
}

/// Marks the operation as taking a bearer token.
fn authenticated(operation: TransformOperation<'_>) -> TransformOperation<'_> {
    operation.security_requirement(SECURITY_SCHEME)
}

/// Marks the operation as taking no token.
fn public(mut operation: TransformOperation<'_>) -> TransformOperation<'_> {
    operation.inner_mut().security = vec![Default::default()];
    operation
}

/// The `room_id` path parameter.
fn room_path() -> Value {
    path("room_id", "The room.", schema::<RoomId>())
}

/// `GET /v1/rooms`.
pub(crate) fn list_rooms(operation: TransformOperation<'_>) -> TransformOperation<'_> {
    let mut list = vec![
        query(
            "view",
            "Which rooms: `inbox` (neither hidden nor archived), `favorites`, `hidden`, \
             `archived` or `unread`.",
            schema::<RoomView>(),
        ),
        min_position(),
    ];
    list.extend(page(PAGE_ITEMS_DEFAULT));
    let operation = authenticated(operation)
        .id("listRooms")
        .tag("reads")
        .summary("The caller's rooms in one view, newest activity first");
    let mut answers = vec![read_ok::<views::RoomPage>("A page of rooms.")];
    answers.extend(read_errors(false));
    answer(parameters(operation, list), answers)
}

/// `GET /v1/rooms/{room_id}`.
pub(crate) fn get_room(operation: TransformOperation<'_>) -> TransformOperation<'_> {
    let operation = authenticated(operation)
        .id("getRoom")
        .tag("reads")
        .summary("One of the caller's rooms");
    let mut answers = vec![read_ok::<views::Room>("The room.")];
    answers.extend(read_errors(true));
    answer(
        parameters(operation, vec![room_path(), min_position()]),
        answers,
    )
}

/// `GET /v1/rooms/{room_id}/messages`.
pub(crate) fn messages(operation: TransformOperation<'_>) -> TransformOperation<'_> {
    let mut list = vec![
        room_path(),
        query(
            "before",
            "Only messages older than this one.",
            schema::<MessageId>(),
        ),
        min_position(),
    ];
    list.extend(page(PAGE_ITEMS_DEFAULT));
    let operation = authenticated(operation)
        .id("listMessages")
        .tag("reads")
        .summary("A room's messages, newest first");
    let mut answers = vec![read_ok::<views::MessagePage>("A page of messages.")];
    answers.extend(read_errors(true));
    answer(parameters(operation, list), answers)
}

/// `GET /v1/rooms/{room_id}/files`.
pub(crate) fn room_files(operation: TransformOperation<'_>) -> TransformOperation<'_> {
    let mut list = vec![
        room_path(),
        query(
            "q",
            "A file-name filter (words the name contains; blank: none).",
            json!({ "type": "string", "maxLength": protocol::query::FILES_QUERY_CHARS_MAX }),
        ),
        query("type", "Only files or only links.", schema::<ItemType>()),
        min_position(),
    ];
    list.extend(page(PAGE_ITEMS_DEFAULT));
    let operation = authenticated(operation)
        .id("listRoomFiles")
        .tag("reads")
        .summary("A room's files and links, newest first");
    let mut answers = vec![read_ok::<views::ItemPage>("A page of files and links.")];
    answers.extend(read_errors(true));
    answer(parameters(operation, list), answers)
}

/// `GET /v1/search`.
pub(crate) fn search(operation: TransformOperation<'_>) -> TransformOperation<'_> {
    let mut list = vec![
        required_query(
            "q",
            "The text: words every hit contains (not blank).",
            json!({ "type": "string", "minLength": 1,
                    "maxLength": protocol::query::SEARCH_QUERY_CHARS_MAX }),
        ),
        query(
            "room_id",
            "Only in this room (one of the caller's).",
            schema::<RoomId>(),
        ),
        min_position(),
    ];
    list.extend(page(protocol::query::SEARCH_RESULTS_DEFAULT));
    let operation = authenticated(operation)
        .id("search")
        .tag("reads")
        .summary("Rooms and messages of the caller's rooms matching a text");
    let mut answers = vec![read_ok::<views::SearchResults>(
        "Matching rooms and messages.",
    )];
    answers.extend(read_errors(false));
    answers.push(Answer::error(
        404,
        &[(
            "not_found",
            "`room_id` names no room of the caller (one that does not exist: the same answer)",
        )],
    ));
    answer(parameters(operation, list), answers)
}

/// `GET /v1/moderation/reports`.
pub(crate) fn reports(operation: TransformOperation<'_>) -> TransformOperation<'_> {
    let mut list = vec![min_position()];
    list.extend(page(PAGE_ITEMS_DEFAULT));
    let operation = authenticated(operation)
        .id("listReports")
        .tag("reads")
        .summary("The moderators' queue of reported messages (moderator tokens only)");
    let mut answers = vec![
        read_ok::<views::ReportPage>("A page of reports."),
        Answer::error(403, &[("forbidden", "the token has no moderator role")]),
    ];
    answers.extend(read_errors(false));
    answer(parameters(operation, list), answers)
}

/// The service commands: a user token gets 403.
const SERVICE_COMMANDS: [&str; 5] = [
    "user.register",
    "room.open_interview",
    "contract.start",
    "contract.end",
    "file.register",
];

/// `POST /v1/commands/<command_type>`, one operation per command type.
pub(crate) fn command(
    command_type: &'static str,
) -> impl FnOnce(TransformOperation<'_>) -> TransformOperation<'_> {
    move |operation| {
        let service = SERVICE_COMMANDS.contains(&command_type);
        let summary = if service {
            format!("Send `{command_type}` (a service command: a service token of that service)")
        } else {
            format!("Send `{command_type}`")
        };
        let operation = authenticated(operation)
            .id(&format!("command_{}", command_type.replace('.', "_")))
            .tag("commands")
            .summary(&summary)
            .description(
                "The command of protocol.md §1 with `actor` from the token, `command_id` from \
                 `Idempotency-Key` (a new one when absent), `client` from `X-Client`, and this \
                 body as its `data`. The answer is the writer's reply unchanged.",
            );
        let data = in_context(|context| {
            protocol::schema::command_data_schema(command_type, &mut context.schema)
        })
        .map_or_else(|| json!({ "type": "object" }), |schema| schema.to_value());
        let mut operation = parameters(operation, command_headers());
        let body = json!({
            "required": command_type != "user.clear_out_of_office",
            "content": { "application/json": { "schema": data } }
        });
        if let Some(body) = parsed(body) {
            operation.inner_mut().request_body = Some(ReferenceOr::Item(body));
        }
        answer(operation, command_answers())
    }
}

/// The headers of a command.
fn command_headers() -> Vec<Value> {
    vec![
        header(
            "Idempotency-Key",
            "The command id (R-M7): the same key from the same user for the same type answers \
             the first reply again and appends nothing. A new one when absent.",
            false,
            schema::<CommandId>(),
        ),
        header(
            "X-Client",
            "The frontend: `desktop` (default), `mobile_web` or `mobile_app`.",
            false,
            schema::<Client>(),
        ),
        header(
            "X-Correlation-Id",
            "The caller's id for tracing this request.",
            false,
            json!({ "type": "string",
                    "maxLength": protocol::CORRELATION_ID_CHARS_MAX }),
        ),
    ]
}

/// A command's answers: the reply, each error code at its §3 status, and the gateway's own.
fn command_answers() -> Vec<Answer> {
    let command_id = json!({
        "description": "The command id used (the `Idempotency-Key`, or the one made up).",
        "required": true,
        "schema": { "type": "string", "format": "uuid" }
    });
    let mut answers = vec![Answer {
        status: 200,
        description: "Accepted: the writer's reply (`ok: true`).".into(),
        content: vec![("application/json", schema::<protocol::Reply>())],
        headers: vec![("Parlor-Command-Id", command_id)],
    }];
    let mut by_status: BTreeMap<u16, Vec<(&str, &str)>> = BTreeMap::new();
    for code in ErrorCode::ALL {
        by_status
            .entry(protocol::http_status(code))
            .or_default()
            .push((
                code.as_str(),
                "the writer refused the command (protocol.md §1)",
            ));
    }
    let gateway: [(u16, &str, &str); 5] = [
        (
            401,
            "unauthorized",
            "no valid `Authorization: Bearer` token",
        ),
        (408, "request_timeout", "the body sent nothing for 30 s"),
        (413, "invalid_command", "the body is over 1 MiB"),
        (
            429,
            "rate_limited",
            "the user token is over its command rate",
        ),
        (
            502,
            "unavailable",
            "the writer answered something unreadable",
        ),
    ];
    for (status, code, why) in gateway {
        by_status.entry(status).or_default().push((code, why));
    }
    for (status, codes) in by_status {
        answers.push(Answer::error(status, &codes));
    }
    answers
}

/// `POST /v1/files`.
pub(crate) fn upload(mut operation: TransformOperation<'_>) -> TransformOperation<'_> {
    let body = json!({
        "required": true,
        "description": "The file's bytes, raw (not multipart); at most 1 GiB.",
        "content": { "*/*": { "schema": { "type": "string", "format": "binary" } } }
    });
    if let Some(body) = parsed(body) {
        operation.inner_mut().request_body = Some(ReferenceOr::Item(body));
    }
    let operation = authenticated(operation)
        .id("uploadFile")
        .tag("files")
        .summary("Upload a file, to attach to a message within 24 h");
    let list = vec![header(
        "X-File-Name",
        "The file's name, percent-encoded UTF-8: 1-255 characters once decoded, no control \
         characters.",
        true,
        json!({ "type": "string", "minLength": 1 }),
    )];
    let mut answers = vec![Answer {
        status: 201,
        description: "Stored, and its `file.register` committed.".into(),
        content: vec![("application/json", schema::<views::Uploaded>())],
        headers: Vec::new(),
    }];
    answers.extend(common_errors());
    answers.extend([
        Answer::error(
            400,
            &[("invalid_command", "a bad `X-File-Name` or `Content-Type`")],
        ),
        Answer::error(
            403,
            &[("forbidden", "a service token (an uploader is a user)")],
        ),
        Answer::error(
            408,
            &[("request_timeout", "the body sent nothing for 30 s")],
        ),
        Answer::error(413, &[("file_too_large", "over 1 GiB")]),
        Answer::error(
            429,
            &[
                ("rate_limited", "the user has 4 uploads running"),
                (
                    "quota_exceeded",
                    "the user's upload bytes of the UTC day are used up",
                ),
            ],
        ),
        Answer::error(
            503,
            &[("unavailable", "the writer is not running or did not answer")],
        ),
        Answer::error(
            507,
            &[(
                "insufficient_storage",
                "the upload would eat the disk reserve of the event log",
            )],
        ),
    ]);
    answer(parameters(operation, list), answers)
}

/// The errors of a download or preview.
fn download_errors() -> Vec<Answer> {
    let mut answers = read_errors(false);
    answers.push(Answer::error(
        404,
        &[(
            "not_found",
            "no such file, the caller may not see it, or it has no preview",
        )],
    ));
    answers
}

/// The `file_id` path parameter.
fn file_path() -> Value {
    path("file_id", "The file.", schema::<FileId>())
}

/// `GET /v1/files/{file_id}`.
pub(crate) fn download(operation: TransformOperation<'_>) -> TransformOperation<'_> {
    let operation = authenticated(operation)
        .id("downloadFile")
        .tag("files")
        .summary("A file's bytes (its uploader, or a member of a room where it is attached)");
    let disposition = json!({
        "description": "`attachment; filename*=UTF-8''<percent-encoded name>`",
        "required": true,
        "schema": { "type": "string" }
    });
    let mut answers = vec![Answer {
        status: 200,
        description: "The bytes, with the `Content-Type` they were uploaded with.".into(),
        content: vec![("*/*", json!({ "type": "string", "format": "binary" }))],
        headers: vec![("Content-Disposition", disposition)],
    }];
    answers.extend(download_errors());
    answer(
        parameters(operation, vec![file_path(), min_position()]),
        answers,
    )
}

/// `GET /v1/files/{file_id}/preview`.
pub(crate) fn preview(operation: TransformOperation<'_>) -> TransformOperation<'_> {
    let operation = authenticated(operation)
        .id("previewFile")
        .tag("files")
        .summary("A file's thumbnail (PNG, at most 256×256)");
    let mut answers = vec![Answer {
        status: 200,
        description: "The thumbnail.".into(),
        content: vec![("image/png", json!({ "type": "string", "format": "binary" }))],
        headers: Vec::new(),
    }];
    answers.extend(download_errors());
    answer(
        parameters(operation, vec![file_path(), min_position()]),
        answers,
    )
}

/// One server-sent event named `event` whose `data` is JSON of `schema`, as a JSON Schema of
/// the event (`{"event", "data", "id"}`, the form OpenAPI 3.2 gives `itemSchema`).
fn sse_event(event: &str, schema: Value) -> Value {
    json!({
        "type": "object",
        "properties": {
            "event": { "const": event },
            "data": {
                "type": "string",
                "contentMediaType": "application/json",
                "contentSchema": schema
            },
            "id": {
                "type": "string",
                "pattern": "^[0-9]+$",
                "description": "The log position of the latest change the event shows (when \
                                several share one, only the last carries it)."
            }
        },
        "required": ["event", "data"]
    })
}

/// `GET /v1/events`.
pub(crate) fn events(operation: TransformOperation<'_>) -> TransformOperation<'_> {
    let room = schema::<views::Room>();
    let message = schema::<views::Message>();
    let removed = schema::<views::RoomRemoved>();
    let operation = authenticated(operation)
        .id("events")
        .tag("events")
        .summary("Server-Sent Events of the caller's live changes")
        .description(
            "Events `room` (data: Room), `message` (data: Message), `message_deleted` (data: \
             the Message's tombstone) and `room_removed` (data: `{\"room_id\"}`); each `id` is \
             the log position of the latest change it shows. A comment line every 15 s keeps \
             an idle stream open. The response's schema describes one event (`event`, `data` \
             as JSON text with its `contentSchema`, `id`), as OpenAPI 3.2's `itemSchema` does.",
        );
    let list = vec![header(
        "Last-Event-ID",
        "Resume after this log position: the changes since are sent as the caller may see \
         them now.",
        false,
        json!({ "type": "string", "pattern": "^[0-9]+$" }),
    )];
    let event = json!({ "oneOf": [
        sse_event("room", room),
        sse_event("message", message.clone()),
        sse_event("message_deleted", message),
        sse_event("room_removed", removed),
    ] });
    let mut answers = vec![Answer {
        status: 200,
        description: "The stream, one event at a time.".into(),
        content: vec![("text/event-stream", event)],
        headers: Vec::new(),
    }];
    answers.extend(common_errors());
    answers.extend([
        Answer::error(
            400,
            &[(
                "invalid_command",
                "`Last-Event-ID` is not a position, or is beyond the log's head",
            )],
        ),
        Answer::error(429, &[("rate_limited", "the caller has 8 streams open")]),
        Answer::error(
            503,
            &[
                (
                    "unavailable",
                    "the rooms model is not running, or 1,024 streams are open",
                ),
                (
                    "projection_lagging",
                    "the rooms model has not reached the resume point in 5 s",
                ),
            ],
        ),
    ]);
    answer(parameters(operation, list), answers)
}

/// `POST /v1/presence/heartbeat`.
pub(crate) fn heartbeat(operation: TransformOperation<'_>) -> TransformOperation<'_> {
    let operation = authenticated(operation)
        .id("heartbeat")
        .tag("presence")
        .summary("The caller is online (R-A1); reads see it once this answers");
    let mut answers = vec![Answer {
        status: 204,
        description: "Recorded.".into(),
        content: Vec::new(),
        headers: Vec::new(),
    }];
    answers.extend(common_errors());
    answers.extend([
        Answer::error(403, &[("forbidden", "a service token")]),
        Answer::error(503, &[("unavailable", "no rooms model answered")]),
    ]);
    answer(operation, answers)
}

/// `GET /healthz`.
pub(crate) fn liveness(operation: TransformOperation<'_>) -> TransformOperation<'_> {
    let up = Answer {
        status: 200,
        description: "`{\"status\": \"up\"}`: the writer answers.".into(),
        content: vec![("application/json", schema::<views::Liveness>())],
        headers: Vec::new(),
    };
    let down = Answer {
        status: 503,
        description: "`{\"status\": \"down\"}`: it does not.".into(),
        content: vec![("application/json", schema::<views::Liveness>())],
        headers: Vec::new(),
    };
    let operation = public(operation)
        .id("healthz")
        .tag("health")
        .summary("Whether Parlor is up, nothing more (no token)");
    answer(operation, vec![up, down])
}

/// `GET /openapi.json`.
pub(crate) fn openapi(operation: TransformOperation<'_>) -> TransformOperation<'_> {
    let operation = public(operation)
        .id("openapi")
        .tag("documents")
        .summary("This document (no token)");
    let ok = Answer {
        status: 200,
        description: "The OpenAPI 3.1 document.".into(),
        content: vec![("application/json", json!({ "type": "object" }))],
        headers: Vec::new(),
    };
    answer(operation, vec![ok])
}

/// `GET /asyncapi.json`.
pub(crate) fn asyncapi(operation: TransformOperation<'_>) -> TransformOperation<'_> {
    let operation = public(operation)
        .id("asyncapi")
        .tag("documents")
        .summary("The AsyncAPI 3 document of the NATS contract (no token)")
        .description(
            "Every NATS subject of docs/protocol.md (commands, events, `log.read`, queries, \
             admin, dev clock, …) with its payload schema and reply: the JSON form of \
             docs/asyncapi.yaml, subjects under the default prefix `parlor`.",
        );
    let ok = Answer {
        status: 200,
        description: "The AsyncAPI 3 document.".into(),
        content: vec![("application/json", json!({ "type": "object" }))],
        headers: Vec::new(),
    };
    answer(operation, vec![ok])
}

/// `GET /docs`.
pub(crate) fn viewer(operation: TransformOperation<'_>) -> TransformOperation<'_> {
    let operation = public(operation)
        .id("docs")
        .tag("documents")
        .summary("This document in a browser (a bundled viewer, no token)");
    let ok = Answer {
        status: 200,
        description: "The viewer's page.".into(),
        content: vec![("text/html", json!({ "type": "string" }))],
        headers: Vec::new(),
    };
    answer(operation, vec![ok])
}

/// `GET /docs/{name}`: the viewer's script.
pub(crate) fn viewer_asset(operation: TransformOperation<'_>) -> TransformOperation<'_> {
    let operation = public(operation)
        .id("docsAsset")
        .tag("documents")
        .summary("The viewer's script (no token)");
    let list = vec![path("name", "The file.", json!({ "type": "string" }))];
    let ok = Answer {
        status: 200,
        description: "The file.".into(),
        content: vec![("text/javascript", json!({ "type": "string" }))],
        headers: Vec::new(),
    };
    let missing = Answer::error(404, &[("not_found", "no such file")]);
    answer(parameters(operation, list), vec![ok, missing])
}

/// `GET /` and `GET /assets/{name}`: the web client.
pub(crate) fn web_client(
    summary: &'static str,
    with_name: bool,
) -> impl FnOnce(TransformOperation<'_>) -> TransformOperation<'_> {
    move |operation| {
        let id = if with_name { "webAsset" } else { "webClient" };
        let operation = public(operation).id(id).tag("web client").summary(summary);
        let list = if with_name {
            vec![path("name", "The file.", json!({ "type": "string" }))]
        } else {
            Vec::new()
        };
        let media_types: &[&'static str] = if with_name {
            &["text/html", "text/javascript", "text/css"]
        } else {
            &["text/html"]
        };
        let ok = Answer {
            status: 200,
            description: "The file (HTML, JavaScript or CSS).".into(),
            content: media_types
                .iter()
                .map(|media_type| (*media_type, json!({ "type": "string" })))
                .collect(),
            headers: Vec::new(),
        };
        let mut answers = Vec::new();
        answers.push(ok);
        answers.push(Answer {
            status: 304,
            description: "Not modified (`If-None-Match` named its `ETag`).".into(),
            content: Vec::new(),
            headers: Vec::new(),
        });
        if with_name {
            answers.push(Answer::error(404, &[("not_found", "no such file")]));
        }
        answer(parameters(operation, list), answers)
    }
}
