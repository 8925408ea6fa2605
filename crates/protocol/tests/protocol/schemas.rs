//! The checked-in `docs/schemas/` files are exactly what `protocol::schema` renders now: one file
//! per published name and no other. Regenerate with `protocol::schema::WRITE_COMMAND`.

use std::collections::BTreeSet;
use std::path::PathBuf;

use protocol::schema::{published, render_text, WRITE_COMMAND};

fn schemas_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../docs/schemas")
}

#[test]
fn checked_in_schemas_match_the_code() {
    let dir = schemas_dir();
    let mut stale = Vec::new();
    for entry in published() {
        let path = dir.join(format!("{}.json", entry.name));
        let expected = render_text(&entry.name).unwrap_or_default();
        match std::fs::read_to_string(&path) {
            Ok(text) if text == expected => {}
            Ok(_) => stale.push(format!("{} differs", path.display())),
            Err(error) => stale.push(format!("{}: {error}", path.display())),
        }
    }
    let names: BTreeSet<String> = published()
        .into_iter()
        .map(|entry| format!("{}.json", entry.name))
        .collect();
    let listing = std::fs::read_dir(&dir)
        .map(|entries| entries.filter_map(Result::ok).collect::<Vec<_>>())
        .unwrap_or_default();
    for file in listing {
        let name = file.file_name().to_string_lossy().into_owned();
        if name.ends_with(".json") && !names.contains(&name) {
            stale.push(format!("{name} is not a published schema"));
        }
    }
    assert!(
        stale.is_empty(),
        "docs/schemas/ has drifted from the code; regenerate with `{WRITE_COMMAND}`:\n{}",
        stale.join("\n")
    );
}
