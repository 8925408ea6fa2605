//! The data directory is private (security.md H-I4): created 0700, and every file and
//! directory this process creates is owner-only, whichever part creates it (sled, tantivy, the
//! blob store, snapshots, index runs). The only user of `rustix`.
//!
//! The parts create their files through libraries that do not take a mode (sled, tantivy), so
//! the process's umask is the one place that covers them all: set once at start-up to 0o077,
//! new files are 0600 and new directories 0700. An existing data directory that others can
//! read is not changed behind the operator's back (a backup group, say): it is reported.

use std::path::Path;

use anyhow::Context;
use rustix::fs::Mode;

/// The bits cleared from every new file's and directory's mode: group and others get nothing.
const PRIVATE_UMASK: u32 = 0o077;

/// The mode of a new data directory.
const DATA_DIR_MODE: u32 = 0o700;

/// Makes every file and directory this process creates from now on owner-only.
pub fn restrict_new_files() {
    rustix::process::umask(Mode::from_raw_mode(PRIVATE_UMASK));
}

/// Creates the data directory (and missing parents) 0700, or warns when an existing one is
/// open to others.
pub fn create_data_dir(path: &Path) -> anyhow::Result<()> {
    use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
    if !path.exists() {
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(DATA_DIR_MODE)
            .create(path)
            .with_context(|| format!("creating the data directory {}", path.display()))?;
    }
    let mode = std::fs::metadata(path)
        .with_context(|| format!("reading the data directory {}", path.display()))?
        .permissions()
        .mode();
    if mode & PRIVATE_UMASK != 0 {
        tracing::warn!(
            data_dir = %path.display(),
            mode = format!("{:o}", mode & 0o777),
            "the data directory is open to other users; chmod 700 it (security.md H-I4)"
        );
    }
    Ok(())
}
