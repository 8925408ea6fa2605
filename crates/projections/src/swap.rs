//! Putting a rebuilt read model in place of the current one, and finishing or undoing a swap
//! that a crash interrupted, so that whatever happens a model directory holds a model that
//! opens: the current one, or a complete rebuild — never a half-built one.
//!
//! Beside `<data_dir>/projections/<model>/` a rebuild is written into `<model>.rebuild/`; only
//! once it is complete, flushed and closed does [`swap_in`] run:
//!
//! 1. rename `<model>` → `<model>.old`;
//! 2. rename `<model>.rebuild` → `<model>`;
//! 3. delete `<model>.old`.
//!
//! The parent directory is synced after each rename, so the renames reach the disk in that
//! order. Since step 1 happens only for a complete rebuild, [`recover`] can tell every state a
//! crash leaves apart by which directories exist (see [`Recovery`]).

use std::path::{Path, PathBuf};

use tracing::{info, warn};

use crate::error::ProjectionError;

/// The directory a rebuild of the model at `current` is written into: `<model>.rebuild`.
pub fn rebuild_path(current: &Path) -> PathBuf {
    sibling(current, "rebuild")
}

/// Where the replaced model waits to be deleted during a swap: `<model>.old`.
pub fn retired_path(current: &Path) -> PathBuf {
    sibling(current, "old")
}

fn sibling(current: &Path, suffix: &str) -> PathBuf {
    let mut name = current.file_name().unwrap_or_default().to_os_string();
    name.push(".");
    name.push(suffix);
    current.with_file_name(name)
}

/// What [`recover`] found and did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Recovery {
    /// Nothing was left over.
    Clean,
    /// The model was in place; a leftover `.rebuild` (unfinished, or finished but never swapped
    /// in) and/or `.old` (a swap that ended before its last step) was deleted.
    RemovedLeftovers,
    /// A crash came between the two renames: the complete rebuild was moved into place.
    FinishedSwap,
    /// Only `.old` was left (the rebuild's rename never happened, or someone moved things by
    /// hand): it was put back.
    RestoredRetired,
    /// Only a `.rebuild` was left, with no model it could replace: it was deleted, and the
    /// model starts empty and catches up from the log.
    RemovedOrphanRebuild,
}

/// Finishes or undoes a swap a crash interrupted, for the model directory `current`. Call it
/// before opening the model (the models' `open(data_dir)` do).
pub fn recover(current: &Path) -> Result<Recovery, ProjectionError> {
    let rebuild = rebuild_path(current);
    let retired = retired_path(current);
    let recovery = if current.exists() {
        let mut removed = false;
        for leftover in [&rebuild, &retired] {
            if leftover.exists() {
                remove_dir(leftover)?;
                removed = true;
            }
        }
        if removed {
            Recovery::RemovedLeftovers
        } else {
            Recovery::Clean
        }
    } else if retired.exists() {
        if rebuild.exists() {
            // Step 1 ran, so the rebuild was complete: finish the swap.
            rename(&rebuild, current)?;
            remove_dir(&retired)?;
            Recovery::FinishedSwap
        } else {
            rename(&retired, current)?;
            Recovery::RestoredRetired
        }
    } else if rebuild.exists() {
        remove_dir(&rebuild)?;
        Recovery::RemovedOrphanRebuild
    } else {
        Recovery::Clean
    };
    if recovery != Recovery::Clean {
        info!(model = %current.display(), ?recovery, "recovered from an interrupted rebuild");
    }
    Ok(recovery)
}

/// Puts the complete, flushed and closed rebuild at `<current>.rebuild` in place of `current`
/// (which must be closed too: a store still open would go on writing by path into the new
/// directory). On failure the current model is left (or put back) in place.
pub fn swap_in(current: &Path) -> Result<(), ProjectionError> {
    let rebuild = rebuild_path(current);
    let retired = retired_path(current);
    if !rebuild.is_dir() {
        return Err(ProjectionError::Store(format!(
            "no rebuild at {} to swap in",
            rebuild.display()
        )));
    }
    if retired.exists() {
        remove_dir(&retired)?;
    }
    let had_current = current.exists();
    if had_current {
        rename(current, &retired)?;
    }
    if let Err(error) = rename(&rebuild, current) {
        if had_current {
            // Put the current model back; if even that fails, `recover` at the next start does.
            if let Err(undo) = rename(&retired, current) {
                warn!(model = %current.display(), %undo, "could not put the model back after a failed swap");
            }
        }
        return Err(error);
    }
    if had_current {
        if let Err(error) = remove_dir(&retired) {
            // The swap is done; the leftover is deleted by `recover` at the next start.
            warn!(model = %current.display(), %error, "could not delete the replaced model");
        }
    }
    Ok(())
}

/// Deletes `path` and everything under it (a leftover rebuild before a new one starts, say).
pub fn remove_dir(path: &Path) -> Result<(), ProjectionError> {
    match std::fs::remove_dir_all(path) {
        Ok(()) => Ok(()),
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(error) => Err(ProjectionError::Store(format!(
            "deleting {}: {error}",
            path.display()
        ))),
    }
}

/// Renames a directory and syncs the parent, so the rename is durable before the next step.
fn rename(from: &Path, to: &Path) -> Result<(), ProjectionError> {
    std::fs::rename(from, to).map_err(|error| {
        ProjectionError::Store(format!(
            "renaming {} to {}: {error}",
            from.display(),
            to.display()
        ))
    })?;
    if let Some(parent) = to.parent() {
        std::fs::File::open(parent)
            .and_then(|directory| directory.sync_all())
            .map_err(|error| {
                ProjectionError::Store(format!("syncing {}: {error}", parent.display()))
            })?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn model_dir(root: &Path, state: &str) -> PathBuf {
        std::fs::create_dir_all(root).unwrap_or_else(|error| panic!("{error}"));
        let path = root.join("rooms");
        for (suffix, present) in [
            ("", state.contains('c')),
            (".rebuild", state.contains('r')),
            (".old", state.contains('o')),
        ] {
            if present {
                let dir = root.join(format!("rooms{suffix}"));
                std::fs::create_dir_all(&dir).unwrap_or_else(|error| panic!("{error}"));
                std::fs::write(dir.join("which"), suffix).unwrap_or_else(|error| panic!("{error}"));
            }
        }
        path
    }

    fn which(path: &Path) -> String {
        std::fs::read_to_string(path.join("which")).unwrap_or_else(|error| panic!("{error}"))
    }

    #[test]
    fn every_state_a_crash_can_leave_recovers_to_a_whole_model() {
        let root = std::env::temp_dir().join(format!("parlor-swap-{}", uuid::Uuid::new_v4()));
        // (directories present, expected recovery, which directory ends up as the model)
        let cases = [
            ("c", Recovery::Clean, Some("")),
            ("cr", Recovery::RemovedLeftovers, Some("")),
            ("co", Recovery::RemovedLeftovers, Some("")),
            ("ro", Recovery::FinishedSwap, Some(".rebuild")),
            ("o", Recovery::RestoredRetired, Some(".old")),
            ("r", Recovery::RemovedOrphanRebuild, None),
            ("", Recovery::Clean, None),
        ];
        for (index, (state, expected, model)) in cases.into_iter().enumerate() {
            let case = root.join(index.to_string());
            let current = model_dir(&case, state);
            assert_eq!(recover(&current).ok(), Some(expected), "state {state:?}");
            match model {
                Some(from) => assert_eq!(which(&current), from, "state {state:?}"),
                None => assert!(!current.exists()),
            }
            assert!(!rebuild_path(&current).exists() && !retired_path(&current).exists());
        }
        let current = model_dir(&root.join("swap"), "cr");
        assert!(swap_in(&current).is_ok());
        assert_eq!(which(&current), ".rebuild");
        assert!(!rebuild_path(&current).exists() && !retired_path(&current).exists());
        // Nothing to swap in: an error, and the model stays.
        assert!(swap_in(&current).is_err());
        assert_eq!(which(&current), ".rebuild");
        let _ = std::fs::remove_dir_all(&root);
    }
}
