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
