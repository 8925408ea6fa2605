//! The checked-in `docs/asyncapi.yaml` is exactly what `protocol::asyncapi` renders now.
//! Regenerate with `protocol::asyncapi::WRITE_COMMAND`.

use std::path::PathBuf;

use protocol::asyncapi::{render_yaml, WRITE_COMMAND};

#[test]
fn checked_in_asyncapi_document_matches_the_code() {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../docs/asyncapi.yaml");
    let expected =
        render_yaml().unwrap_or_else(|why| panic!("the document cannot be built: {why}"));
    let checked_in = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        checked_in == expected,
        "docs/asyncapi.yaml has drifted from the code; regenerate with `{WRITE_COMMAND}`"
    );
}
