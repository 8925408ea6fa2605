//! `GET /asyncapi.json` over real HTTP: the AsyncAPI document of the NATS contract, public, as
//! JSON, exactly the one `protocol::asyncapi` builds (and docs/asyncapi.yaml holds), and listed
//! in the OpenAPI document beside `/openapi.json`.

use crate::http::{self, Body};
use crate::support::TestGateway;

#[tokio::test]
async fn the_asyncapi_document_is_served_without_a_token() {
    let gateway = TestGateway::start().await;
    let served = http::send(gateway.addr, "GET", "/asyncapi.json", &[], Body::None).await;
    assert_eq!(served.status, 200);
    assert_eq!(served.header("content-type"), Some("application/json"));
    let document = served.json();
    assert_eq!(document["asyncapi"], "3.0.0");
    assert_eq!(
        document["channels"]["cmd.message.send"]["address"],
        "parlor.cmd.message.send"
    );
    let expected = protocol::asyncapi::document().expect("the document builds");
    assert_eq!(document, expected);

    let other_method = http::send(gateway.addr, "POST", "/asyncapi.json", &[], Body::None).await;
    assert_eq!(other_method.status, 405);
    gateway.stop().await;
}

#[test]
fn the_openapi_document_lists_the_asyncapi_route() {
    let document = gateway::openapi::document();
    let operation = &document["paths"]["/asyncapi.json"]["get"];
    assert_eq!(operation["operationId"], "asyncapi");
    assert!(
        operation["responses"]["200"]["content"]["application/json"].is_object(),
        "{operation}"
    );
}
