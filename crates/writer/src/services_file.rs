//! The operator's service table (`--services FILE`, security.md H-I2): a TOML file that replaces
//! the default table of which service may send which service command. The only user of `toml`.
//!
//! ```toml
//! # service name (without "service:") = the service commands it may send
//! [services]
//! identity = ["user.register"]
//! hiring = ["room.open_interview"]
//! contracts = ["contract.start", "contract.end"]
//! gateway = ["file.register"]
//! ```
//!
//! The file replaces the defaults rather than adding to them, so it alone says who may send
//! what; a service it leaves out may send nothing. A bad file stops the writer at start-up with
//! a message naming the line or the entry: a typo must never silently grant or deny.

use std::collections::BTreeMap;
use std::io::Read;
use std::path::{Path, PathBuf};

use domain::{ServiceTable, ServiceTableError};
use serde::Deserialize;

/// The largest services file read, in bytes: a table of a few services, not a file to slurp.
pub const SERVICES_FILE_BYTES_MAX: u64 = 64 * 1024;

/// Why the services file could not be used.
#[derive(Debug, thiserror::Error)]
pub enum ServicesFileError {
    /// The file could not be read.
    #[error("services file {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// What went wrong.
        source: std::io::Error,
    },
    /// The file is over [`SERVICES_FILE_BYTES_MAX`].
    #[error("services file {path}: larger than {SERVICES_FILE_BYTES_MAX} bytes")]
    TooLarge {
        /// The file.
        path: PathBuf,
    },
    /// The file is not TOML of the expected shape.
    #[error("services file {path}: {message}")]
    Syntax {
        /// The file.
        path: PathBuf,
        /// The parser's message, with the line.
        message: String,
    },
    /// An entry names an unknown service or command.
    #[error("services file {path}: {source}")]
    Entry {
        /// The file.
        path: PathBuf,
        /// The bad entry.
        source: ServiceTableError,
    },
}

/// The file's shape: one table, `services`, of name → command types. Unknown keys are refused,
/// so a misspelt `[service]` is an error rather than an empty table.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ServicesFile {
    services: BTreeMap<String, Vec<String>>,
}

/// Parses a services file's text (`path` only names it in errors).
pub fn parse_services(text: &str, path: &Path) -> Result<ServiceTable, ServicesFileError> {
    let file: ServicesFile = toml::from_str(text).map_err(|error| ServicesFileError::Syntax {
        path: path.to_owned(),
        message: error.to_string().trim_end().to_owned(),
    })?;
    ServiceTable::new(file.services).map_err(|source| ServicesFileError::Entry {
        path: path.to_owned(),
        source,
    })
}

/// Reads and parses the services file at `path`.
pub fn read_services(path: &Path) -> Result<ServiceTable, ServicesFileError> {
    let read_error = |source| ServicesFileError::Read {
        path: path.to_owned(),
        source,
    };
    let mut text = String::new();
    std::fs::File::open(path)
        .map_err(read_error)?
        .take(SERVICES_FILE_BYTES_MAX + 1)
        .read_to_string(&mut text)
        .map_err(read_error)?;
    if text.len() as u64 > SERVICES_FILE_BYTES_MAX {
        return Err(ServicesFileError::TooLarge {
            path: path.to_owned(),
        });
    }
    parse_services(&text, path)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<ServiceTable, ServicesFileError> {
        parse_services(text, Path::new("services.toml"))
    }

    #[test]
    fn h_i2_a_file_replaces_the_table() {
        let table = parse("[services]\nbench = [\"user.register\", \"file.register\"]\n")
            .expect("a valid file");
        assert_eq!(table.services().collect::<Vec<_>>(), ["bench"]);
        assert_eq!(
            table.commands_of("bench").collect::<Vec<_>>(),
            ["file.register", "user.register"]
        );
        assert_eq!(table.commands_of("identity").count(), 0);
    }

    #[test]
    fn h_i2_a_bad_file_is_refused_with_a_reason() {
        for (text, expected) in [
            ("[services\n", "services.toml"),
            ("[service]\nbench = [\"user.register\"]\n", "unknown field"),
            ("[services]\nbench = \"user.register\"\n", "services.toml"),
            (
                "[services]\nbench = [\"user.levitate\"]\n",
                "not a command type",
            ),
            ("[services]\nbench = [\"message.send\"]\n", "user command"),
            (
                "[services]\n\"a b\" = [\"user.register\"]\n",
                "not a valid service name",
            ),
        ] {
            let error = parse(text).expect_err(text).to_string();
            assert!(error.contains(expected), "{text:?}: {error}");
        }
    }

    #[test]
    fn a_missing_file_names_its_path() {
        let error = read_services(Path::new("/nonexistent/services.toml"))
            .expect_err("no such file")
            .to_string();
        assert!(error.contains("/nonexistent/services.toml"), "{error}");
    }
}
