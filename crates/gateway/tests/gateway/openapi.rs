//! The OpenAPI document (`GET /openapi.json`) and its viewer (`GET /docs`): the document is
//! OpenAPI 3.1, names every endpoint, header and error code of docs/api.md, and every
//! operation it names is a route the gateway serves.

use std::collections::BTreeSet;
use std::path::PathBuf;

use domain::command::COMMAND_TYPES;
use domain::ErrorCode;
use serde_json::Value;

use crate::http::{self, Body};
use crate::support::{token, TestGateway};

fn api_md() -> String {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../docs/api.md");
    std::fs::read_to_string(&path).unwrap_or_else(|error| panic!("{}: {error}", path.display()))
}

/// `(method, path)` of every endpoint docs/api.md names in backticks (`GET /v1/rooms`), with
/// `{type}` of the commands expanded to each command type.
fn endpoints_of_api_md() -> BTreeSet<(String, String)> {
    let text = api_md();
    let mut endpoints = BTreeSet::new();
    for piece in text.split('`').skip(1).step_by(2) {
        let Some((method, path)) = piece.split_once(' ') else {
            continue;
        };
        if !matches!(method, "GET" | "POST") || !path.starts_with('/') {
            continue;
        }
        let path = path.split(['?', ' ']).next().unwrap_or(path);
        let path = path.trim_end_matches('…').trim_end_matches('/');
        if path == "/v1/commands/{type}" || path == "/v1/commands" {
            for command_type in COMMAND_TYPES {
                endpoints.insert((method.to_owned(), format!("/v1/commands/{command_type}")));
            }
        } else if path.starts_with("/assets") {
            endpoints.insert((method.to_owned(), "/assets/{name}".to_owned()));
        } else if !path.is_empty() {
            endpoints.insert((method.to_owned(), path.to_owned()));
        } else {
            endpoints.insert((method.to_owned(), "/".to_owned()));
        }
    }
    endpoints
}

/// `(method, path)` of every operation of the document.
fn operations(document: &Value) -> BTreeSet<(String, String)> {
    let mut operations = BTreeSet::new();
    for (path, item) in document["paths"].as_object().expect("paths") {
        for method in ["get", "post", "put", "delete", "patch"] {
            if item.get(method).is_some() {
                operations.insert((method.to_ascii_uppercase(), path.clone()));
            }
        }
    }
    operations
}

#[test]
fn the_document_is_openapi_3_1_and_reads_as_one() {
    let document = gateway::openapi::document();
    assert!(
        document["openapi"]
            .as_str()
            .is_some_and(|v| v.starts_with("3.1.")),
        "{}",
        document["openapi"]
    );
    // aide's model borrows its `openapi` version for 'static: leak this one small text.
    let text: &'static str = Box::leak(document.to_string().into_boxed_str());
    let parsed: aide::openapi::OpenApi =
        serde_json::from_str(text).expect("reads as an OpenAPI document");
    assert_eq!(parsed.info.title, "Parlor HTTP API");
    // Every `$ref` points at a component that exists.
    let schemas = document["components"]["schemas"]
        .as_object()
        .expect("components");
    let text = document.to_string();
    for reference in text.split("\"$ref\":\"").skip(1) {
        let target = reference.split('"').next().unwrap_or_default();
        let name = target
            .strip_prefix("#/components/schemas/")
            .unwrap_or_else(|| panic!("a $ref outside components: {target}"));
        assert!(
            schemas.contains_key(name),
            "$ref to a missing schema {name}"
        );
    }
}

#[test]
fn every_endpoint_of_api_md_is_an_operation() {
    let documented = operations(&gateway::openapi::document());
    let mut endpoints = endpoints_of_api_md();
    assert!(endpoints.len() > 35, "api.md lists {endpoints:?}");
    // The operator address (`--ops-addr`) is another server with its own two endpoints, for
    // operators' networks; the document describes the public address.
    endpoints.remove(&("GET".to_owned(), "/metrics".to_owned()));
    let missing: Vec<_> = endpoints.difference(&documented).collect();
    assert!(missing.is_empty(), "not in the document: {missing:?}");
}

#[test]
fn every_header_and_error_code_of_api_md_appears() {
    let text = gateway::openapi::document().to_string();
    for header in [
        "Idempotency-Key",
        "X-Client",
        "X-Correlation-Id",
        "Last-Event-ID",
        "Parlor-Position",
        "Parlor-Command-Id",
        "Retry-After",
        "X-File-Name",
        "Content-Disposition",
    ] {
        assert!(text.contains(&format!("\"{header}\"")), "header {header}");
    }
    let api_md = api_md();
    let errors_table = api_md
        .split("## Errors")
        .nth(1)
        .and_then(|rest| rest.split("\n## ").next())
        .expect("an Errors section");
    let mut codes: BTreeSet<String> = errors_table
        .lines()
        .filter(|line| line.starts_with("| 4") || line.starts_with("| 5"))
        .flat_map(|line| {
            line.split('|')
                .nth(2)
                .unwrap_or_default()
                .split('`')
                .skip(1)
                .step_by(2)
                .map(str::to_owned)
                .collect::<Vec<_>>()
        })
        .collect();
    codes.extend(ErrorCode::ALL.iter().map(|code| code.as_str().to_owned()));
    assert!(codes.len() > 25, "{codes:?}");
    for code in &codes {
        assert!(
            text.contains(&format!("`{code}`")),
            "error code {code} has no status in the document"
        );
    }
    for code in gateway::openapi::GATEWAY_ERROR_CODES {
        assert!(
            api_md.contains(&format!("`{code}`")),
            "{code} is not in docs/api.md"
        );
    }
}

#[tokio::test]
async fn every_operation_is_served_and_the_document_and_viewer_are_too() {
    let gateway = TestGateway::start().await;
    let served = http::send(gateway.addr, "GET", "/openapi.json", &[], Body::None).await;
    assert_eq!(served.status, 200);
    assert_eq!(served.header("content-type"), Some("application/json"));
    assert_eq!(served.json(), gateway::openapi::document());

    let page = http::send(gateway.addr, "GET", "/docs", &[], Body::None).await;
    assert_eq!(page.status, 200);
    let html = String::from_utf8_lossy(&page.body).into_owned();
    assert!(
        html.contains("spec-url=\"/openapi.json\"") && html.contains("/docs/redoc.standalone.js")
    );
    let script = http::send(
        gateway.addr,
        "GET",
        "/docs/redoc.standalone.js",
        &[],
        Body::None,
    )
    .await;
    assert_eq!(script.status, 200);
    assert_eq!(
        script.header("content-type"),
        Some("text/javascript; charset=utf-8")
    );
    assert!(script.body.len() > 500_000);
    assert!(page
        .header("content-security-policy")
        .is_some_and(|policy| policy.contains("connect-src 'self'")));

    // Each operation's path, with its parameters filled in, reaches a handler: not the
    // fallback's 404 "no such endpoint" and not 405.
    let alice = token("alice");
    let authorization = format!("Bearer {alice}");
    for (method, path) in operations(&served.json()) {
        let concrete = path
            .replace("{room_id}", "0192f0c1-7a3e-7cc4-9a51-5c2d7e0f4b11")
            .replace("{file_id}", "0192f0c1-7a3e-7cc4-9a51-5c2d7e0f4b12")
            .replace("{name}", "nothing.js");
        let response = http::send(
            gateway.addr,
            &method,
            &concrete,
            &[("Authorization", authorization.as_str())],
            Body::None,
        )
        .await;
        let body = String::from_utf8_lossy(&response.body);
        assert_ne!(response.status, 405, "{method} {path}");
        assert!(
            !body.contains("no such endpoint"),
            "{method} {path} is not routed: {body}"
        );
    }
    gateway.stop().await;
}

/// The words between backticks in `text`.
fn backticked(text: &str) -> Vec<&str> {
    text.split('`').skip(1).step_by(2).collect()
}

/// The section of docs/api.md under `heading` (`## Reads`), up to the next `## `.
fn section<'a>(text: &'a str, heading: &str) -> &'a str {
    text.split(&format!("\n{heading}\n"))
        .nth(1)
        .and_then(|rest| rest.split("\n## ").next())
        .unwrap_or_else(|| panic!("docs/api.md has no {heading}"))
}

/// The operation at `method` `path`.
fn operation<'a>(document: &'a Value, method: &str, path: &str) -> &'a Value {
    let operation = &document["paths"][path][method.to_ascii_lowercase()];
    assert!(operation.is_object(), "no operation {method} {path}");
    operation
}

/// Follows a `$ref` into `components/schemas`.
fn resolved<'a>(document: &'a Value, schema: &'a Value) -> &'a Value {
    match schema["$ref"].as_str() {
        Some(target) => {
            let name = target.trim_start_matches("#/components/schemas/");
            &document["components"]["schemas"][name]
        }
        None => schema,
    }
}

/// Every string a schema allows as a `const` or `enum` value, through `$ref`s and `oneOf`s.
fn allowed_values(document: &Value, schema: &Value, into: &mut BTreeSet<String>) {
    let schema = resolved(document, schema);
    if let Some(value) = schema["const"].as_str() {
        into.insert(value.to_owned());
    }
    for value in schema["enum"].as_array().into_iter().flatten() {
        if let Some(value) = value.as_str() {
            into.insert(value.to_owned());
        }
    }
    for key in ["oneOf", "anyOf", "allOf"] {
        for part in schema[key].as_array().into_iter().flatten() {
            allowed_values(document, part, into);
        }
    }
}

/// The parameters of an operation (`in`, `name`) and every value their schemas enumerate.
fn parameters_of(
    document: &Value,
    operation: &Value,
) -> (BTreeSet<(String, String)>, BTreeSet<String>) {
    let mut names = BTreeSet::new();
    let mut values = BTreeSet::new();
    for parameter in operation["parameters"].as_array().into_iter().flatten() {
        names.insert((
            parameter["in"].as_str().unwrap_or_default().to_owned(),
            parameter["name"].as_str().unwrap_or_default().to_owned(),
        ));
        allowed_values(document, &parameter["schema"], &mut values);
    }
    (names, values)
}

/// Whether a backticked word is an error code (`not_found`; not `ok`, nor a header's name).
fn is_code(word: &str) -> bool {
    !word.is_empty() && word.chars().all(|c| c.is_ascii_lowercase() || c == '_') && word != "ok"
}

/// Whether the operation answers `status` with a response whose description names `code`.
fn answers_code(operation: &Value, status: u16, code: &str) -> bool {
    operation["responses"][status.to_string()]["description"]
        .as_str()
        .is_some_and(|description| description.contains(&format!("`{code}`")))
}

/// Every read of docs/api.md's Reads table takes the parameters its row names (each value a
/// parameter allows, like `view`'s `inbox`, among that parameter's values), its path
/// parameters, and `min_position`; its 200 carries `Parlor-Position`.
#[test]
fn every_parameter_of_api_md_is_in_its_operation() {
    let document = gateway::openapi::document();
    let api_md = api_md();
    let reads = section(&api_md, "## Reads");
    let mut rows = 0;
    for line in reads.lines().filter(|line| line.starts_with("| `GET ")) {
        let cells: Vec<&str> = line.split('|').collect();
        let endpoint = backticked(cells[1])[0];
        let (method, path) = endpoint.split_once(' ').expect("METHOD /path");
        let operation = operation(&document, method, path);
        let (names, values) = parameters_of(&document, operation);
        let named = |location: &str, name: &str| names.contains(&(location.into(), name.into()));
        for word in backticked(cells[2]) {
            assert!(
                named("query", word) || values.contains(word),
                "{endpoint}: `{word}` of docs/api.md is not among {names:?} nor their values"
            );
        }
        for piece in path.split('{').skip(1) {
            let name = piece.split('}').next().unwrap_or_default();
            assert!(named("path", name), "{endpoint}: path parameter {name}");
        }
        assert!(named("query", "min_position"), "{endpoint}: min_position");
        assert!(
            operation["responses"]["200"]["headers"]["Parlor-Position"].is_object(),
            "{endpoint}: Parlor-Position"
        );
        rows += 1;
    }
    assert_eq!(rows, 6, "the Reads table's rows");

    // The other endpoints' parameters and headers, as the sections of docs/api.md name them.
    let mut expected: Vec<(&str, String, &str, &str)> = vec![
        ("GET", "/v1/files/{file_id}".into(), "path", "file_id"),
        ("GET", "/v1/files/{file_id}".into(), "query", "min_position"),
        (
            "GET",
            "/v1/files/{file_id}/preview".into(),
            "path",
            "file_id",
        ),
        (
            "GET",
            "/v1/files/{file_id}/preview".into(),
            "query",
            "min_position",
        ),
        ("POST", "/v1/files".into(), "header", "X-File-Name"),
        ("GET", "/v1/events".into(), "header", "Last-Event-ID"),
    ];
    for command_type in COMMAND_TYPES {
        for header in ["Idempotency-Key", "X-Client", "X-Correlation-Id"] {
            expected.push((
                "POST",
                format!("/v1/commands/{command_type}"),
                "header",
                header,
            ));
        }
    }
    for (method, path, location, name) in expected {
        assert!(
            api_md.contains(name),
            "{name} is not in docs/api.md any more: update this test"
        );
        let (names, _) = parameters_of(&document, operation(&document, method, &path));
        assert!(
            names.contains(&(location.to_owned(), name.to_owned())),
            "{method} {path}: {location} parameter {name}"
        );
    }
    // The response headers.
    for command_type in COMMAND_TYPES {
        let operation = operation(&document, "POST", &format!("/v1/commands/{command_type}"));
        assert!(operation["responses"]["200"]["headers"]["Parlor-Command-Id"].is_object());
    }
    let download = operation(&document, "GET", "/v1/files/{file_id}");
    assert!(download["responses"]["200"]["headers"]["Content-Disposition"].is_object());
    for (path, item) in document["paths"].as_object().expect("paths") {
        for (method, operation) in item.as_object().expect("path item") {
            if answers_code(operation, 429, "rate_limited") {
                assert!(
                    operation["responses"]["429"]["headers"]["Retry-After"].is_object(),
                    "{method} {path}: 429 rate_limited without Retry-After"
                );
            }
        }
    }
}

/// Every status docs/api.md gives a code (`404 \`not_found\``, the Errors table's rows, the
/// commands' list of statuses) is answered with that code by the operations it is said of:
/// the commands' list by every command, the rest by at least one operation.
#[test]
fn every_status_and_code_of_api_md_is_in_the_document() {
    let document = gateway::openapi::document();
    let api_md = api_md();
    let mut pairs: BTreeSet<(u16, String)> = BTreeSet::new();
    // The Errors table: `| 413 | \`file_too_large\` / \`invalid_command\` | …`.
    for line in section(&api_md, "## Errors").lines() {
        let cells: Vec<&str> = line.split('|').map(str::trim).collect();
        if let Some(status) = cells.get(1).and_then(|cell| cell.parse::<u16>().ok()) {
            for code in backticked(cells[2]) {
                pairs.insert((status, code.to_owned()));
            }
        }
    }
    // Anywhere else: "… 404 `not_found` …".
    let pieces: Vec<&str> = api_md.split('`').collect();
    for (index, code) in pieces.iter().enumerate().skip(1).step_by(2) {
        let before = pieces[index - 1];
        let status = before
            .strip_suffix(' ')
            .and_then(|rest| rest.get(rest.len().saturating_sub(3)..))
            .and_then(|digits| digits.parse::<u16>().ok());
        if let (Some(status), true) = (status, is_code(code)) {
            pairs.insert((status, (*code).to_owned()));
        }
    }
    assert!(pairs.len() > 15, "{pairs:?}");
    // 405 answers a method no operation has, so no operation can list it: the document's
    // description says it instead.
    assert!(pairs.remove(&(405, "method_not_allowed".to_owned())));
    assert!(document["info"]["description"]
        .as_str()
        .is_some_and(|text| text.contains("405 `method_not_allowed`")));
    let operations: Vec<&Value> = document["paths"]
        .as_object()
        .expect("paths")
        .values()
        .flat_map(|item| item.as_object().expect("path item").values())
        .collect();
    for (status, code) in &pairs {
        assert!(
            operations
                .iter()
                .any(|operation| answers_code(operation, *status, code)),
            "no operation answers {status} `{code}` (docs/api.md)"
        );
    }

    // The commands' statuses: "Status: 200 `ok`; 400 `invalid_command`; …; 422 the other rule
    // rejections; …", answered by every command type.
    let commands = section(&api_md, "## Commands");
    let list = commands
        .split("Status: ")
        .nth(1)
        .and_then(|rest| rest.split(". When").next())
        .expect("the commands' statuses");
    let mut statuses = 0;
    for item in list.split(';') {
        let item = item.trim();
        let Some(status) = item.get(..3).and_then(|digits| digits.parse::<u16>().ok()) else {
            continue;
        };
        statuses += 1;
        for command_type in COMMAND_TYPES {
            let operation = operation(&document, "POST", &format!("/v1/commands/{command_type}"));
            assert!(
                operation["responses"][status.to_string()].is_object(),
                "{command_type}: no {status}"
            );
            for code in backticked(item).into_iter().filter(|code| is_code(code)) {
                assert!(
                    answers_code(operation, status, code),
                    "{command_type}: {status} `{code}` (docs/api.md, Commands)"
                );
            }
        }
    }
    assert!(statuses >= 9, "{list}");
    // The statuses of success that are not errors.
    for (method, path, status) in [
        ("POST", "/v1/files", "201"),
        ("POST", "/v1/presence/heartbeat", "204"),
        ("GET", "/healthz", "503"),
        ("GET", "/", "304"),
    ] {
        assert!(
            operation(&document, method, path)["responses"][status].is_object(),
            "{method} {path}: {status}"
        );
    }
}
