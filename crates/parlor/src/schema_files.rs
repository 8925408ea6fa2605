//! `parlor schema` and `parlor asyncapi`: list, print or write the contract's JSON Schemas
//! (`protocol::schema`) and its AsyncAPI document (`protocol::asyncapi`).

use std::collections::BTreeSet;
use std::io::Write as _;
use std::path::Path;

use anyhow::{bail, Context};
use protocol::schema::{published, render_text};

/// With `write`, writes every schema into that directory; else prints the schema `name`, or
/// every name when there is none.
pub fn run(name: Option<&str>, write: Option<&Path>) -> anyhow::Result<()> {
    if let Some(dir) = write {
        return write_all(dir);
    }
    let mut stdout = std::io::stdout().lock();
    match name {
        None => {
            for entry in published() {
                writeln!(stdout, "{}", entry.name)?;
            }
        }
        Some(name) => match render_text(name) {
            Some(text) => stdout.write_all(text.as_bytes())?,
            None => bail!("no schema is called '{name}'; `parlor schema` lists the names"),
        },
    }
    stdout.flush()?;
    Ok(())
}

/// Writes `<dir>/<name>.json` for every published schema and warns of other `.json` files
/// there (a schema that was renamed or removed: delete it by hand).
fn write_all(dir: &Path) -> anyhow::Result<()> {
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let mut written = BTreeSet::new();
    for entry in published() {
        let file = format!("{}.json", entry.name);
        let text = render_text(&entry.name)
            .with_context(|| format!("rendering the published schema {}", entry.name))?;
        let path = dir.join(&file);
        std::fs::write(&path, text).with_context(|| format!("writing {}", path.display()))?;
        written.insert(file);
    }
    for other in std::fs::read_dir(dir).with_context(|| format!("listing {}", dir.display()))? {
        let name = other?.file_name().to_string_lossy().into_owned();
        if name.ends_with(".json") && !written.contains(&name) {
            eprintln!(
                "parlor: {} is not a published schema (renamed or removed?)",
                dir.join(&name).display()
            );
        }
    }
    eprintln!(
        "parlor: wrote {} schemas to {}",
        written.len(),
        dir.display()
    );
    Ok(())
}

/// Prints the AsyncAPI document (YAML, or JSON with `json`), or writes the YAML to `write`.
pub fn asyncapi(json: bool, write: Option<&Path>) -> anyhow::Result<()> {
    let text = if json {
        let document = protocol::asyncapi::document().map_err(anyhow::Error::msg)?;
        format!("{document:#}\n")
    } else {
        protocol::asyncapi::render_yaml().map_err(anyhow::Error::msg)?
    };
    match write {
        Some(path) => {
            std::fs::write(path, text).with_context(|| format!("writing {}", path.display()))?;
            eprintln!("parlor: wrote the AsyncAPI document to {}", path.display());
        }
        None => {
            let mut stdout = std::io::stdout().lock();
            stdout.write_all(text.as_bytes())?;
            stdout.flush()?;
        }
    }
    Ok(())
}
