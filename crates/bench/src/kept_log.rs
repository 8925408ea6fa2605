//! Where a generated log lives: a temporary directory deleted at the end of the invocation, or
//! one kept with `--log-dir` beside a manifest of what it holds, so that a later invocation
//! reuses it instead of generating millions of events again (B4 and B5 share one; B6 has its
//! own).

use std::path::{Path, PathBuf};

use anyhow::{bail, Context};
use serde::de::DeserializeOwned;
use serde::Serialize;

/// A generated log's data directory.
#[derive(Debug)]
pub enum Place {
    /// Deleted when dropped.
    Temporary(tempfile::TempDir),
    /// Kept (`--log-dir`).
    Kept(PathBuf),
}

impl Place {
    /// The data directory (the log is its `log/`).
    pub fn path(&self) -> &Path {
        match self {
            Place::Temporary(dir) => dir.path(),
            Place::Kept(path) => path,
        }
    }

    /// Writes the manifest of a kept log, last, so that a manifest means the log is complete
    /// (a temporary one needs none).
    pub fn write_manifest<M: Serialize>(
        &self,
        file_name: &str,
        manifest: &M,
    ) -> anyhow::Result<()> {
        if let Place::Kept(path) = self {
            std::fs::write(path.join(file_name), serde_json::to_vec_pretty(manifest)?)
                .with_context(|| format!("writing the manifest in {}", path.display()))?;
        }
        Ok(())
    }
}

/// What `--log-dir` (or its absence) gives.
pub enum Found<M> {
    /// A complete log generated earlier, and its manifest.
    Reuse(PathBuf, M),
    /// An empty place to generate into.
    Generate(Place),
}

/// Looks in `log_dir` for a log with the manifest `file_name` (what `what` generated); without
/// `log_dir`, a temporary directory under `data_root` named with `prefix`. A `log_dir` holding
/// a log without that manifest is refused rather than written over.
pub fn find<M: DeserializeOwned>(
    log_dir: Option<&Path>,
    file_name: &str,
    what: &str,
    data_root: &Path,
    prefix: &str,
) -> anyhow::Result<Found<M>> {
    let Some(path) = log_dir else {
        return Ok(Found::Generate(Place::Temporary(
            tempfile::Builder::new()
                .prefix(prefix)
                .tempdir_in(data_root)?,
        )));
    };
    let manifest_path = path.join(file_name);
    if manifest_path.is_file() {
        let manifest = serde_json::from_slice(
            &std::fs::read(&manifest_path)
                .with_context(|| format!("reading {}", manifest_path.display()))?,
        )
        .with_context(|| format!("{} is not a manifest", manifest_path.display()))?;
        return Ok(Found::Reuse(path.to_path_buf(), manifest));
    }
    if path.join("log").exists() {
        bail!(
            "{} holds a log without {file_name}: not one {what} generated; give an empty or new \
             directory",
            path.display()
        );
    }
    std::fs::create_dir_all(path).with_context(|| format!("creating {}", path.display()))?;
    Ok(Found::Generate(Place::Kept(path.to_path_buf())))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn a_kept_log_is_found_again_by_its_manifest_and_a_stranger_is_refused() {
        let root = tempfile::tempdir().unwrap();
        let kept = root.path().join("kept");
        let Found::Generate(place) =
            find::<u64>(Some(&kept), "manifest.json", "test", root.path(), "t-").unwrap()
        else {
            panic!("an empty directory is a place to generate into");
        };
        assert_eq!(place.path(), kept.as_path());
        std::fs::create_dir_all(kept.join("log")).unwrap();
        place.write_manifest("manifest.json", &42u64).unwrap();
        match find::<u64>(Some(&kept), "manifest.json", "test", root.path(), "t-").unwrap() {
            Found::Reuse(path, manifest) => assert_eq!((path, manifest), (kept.clone(), 42)),
            Found::Generate(_) => panic!("the manifest was written"),
        }
        // Another kind's manifest name: the log there is not ours to write over.
        let refused = find::<u64>(Some(&kept), "other.json", "test", root.path(), "t-");
        assert!(refused.is_err());
        // Without --log-dir: a temporary directory, which writes no manifest.
        let Found::Generate(temporary) =
            find::<u64>(None, "manifest.json", "test", root.path(), "t-").unwrap()
        else {
            panic!("no --log-dir means generate");
        };
        temporary.write_manifest("manifest.json", &1u64).unwrap();
        assert!(!temporary.path().join("manifest.json").exists());
    }
}
