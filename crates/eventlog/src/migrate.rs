//! Migration of a format-1 log directory to format 2, in place: `EventLog::migrate` (wired as
//! `parlor migrate`).
//!
//! The format-2 copy is built beside the original (`<log>.format2-migrating`) by importing
//! every record's exact stored bytes and every stored reply, then verified: its whole chain
//! must recompute to the original's head, and every reply must read back equal. Only then is
//! the original renamed to `<log>.format1` (kept, for the operator to delete) and the copy
//! renamed into its place. A crash before the first rename leaves the original in place and a
//! stale copy, which the next `migrate` throws away; a crash between the renames leaves only
//! the two siblings, and the next `migrate` verifies the copy again and finishes. While a copy
//! exists, `EventLog::open` refuses the directory, so a writer can never start on an empty log
//! where the original used to be.

use std::ffi::OsString;
use std::fs::File;
use std::path::{Path, PathBuf};

use crate::error::LogError;
use crate::keys::{self, META_KEY};
use crate::log::{decode_meta_of, EventLog};
use crate::record::Head;

/// Suffix of the format-2 copy a migration builds beside the log directory.
const MIGRATING_SUFFIX: &str = ".format2-migrating";

/// Suffix the original format-1 directory is kept under once migrated.
const ORIGINAL_SUFFIX: &str = ".format1";

/// What `EventLog::migrate` did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Migration {
    /// The directory was in format 2 already (or empty); nothing changed.
    AlreadyCurrent {
        /// Its head.
        head: Head,
    },
    /// The directory was migrated; the original is kept at `original`.
    Migrated {
        /// The head, the same before and after.
        head: Head,
        /// Records copied.
        records: u64,
        /// Idempotency replies copied.
        replies: u64,
        /// Where the format-1 original now is.
        original: PathBuf,
    },
}

fn sibling(dir: &Path, suffix: &str) -> PathBuf {
    let mut name = OsString::from(dir.as_os_str());
    name.push(suffix);
    PathBuf::from(name)
}

/// Refuses to open `dir` while a migration's copy lies beside it.
pub(crate) fn refuse_interrupted_migration(dir: &Path) -> Result<(), LogError> {
    let copy = sibling(dir, MIGRATING_SUFFIX);
    if copy.exists() {
        return Err(LogError::NeedsMigration {
            reason: format!(
                "a migration to format 2 has not finished ({} exists)",
                copy.display()
            ),
        });
    }
    Ok(())
}

/// Whether the tree holds any key of format 1.
pub(crate) fn holds_format1(tree: &sled::Tree) -> Result<bool, LogError> {
    for prefix in [
        keys::FORMAT1_RECORD_PREFIX,
        keys::FORMAT1_STREAM_PREFIX,
        keys::FORMAT1_REPLY_PREFIX,
    ] {
        if tree.scan_prefix([prefix]).next().transpose()?.is_some() {
            return Ok(true);
        }
    }
    Ok(false)
}

/// A format-1 log opened for reading.
struct Format1 {
    // Kept so the tree's database stays open while it is read.
    _db: sled::Db,
    tree: sled::Tree,
    head: Head,
}

impl Format1 {
    /// Opens `dir` if it holds a format-1 log; `None` if it is in format 2 or empty.
    fn open(dir: &Path) -> Result<Option<Format1>, LogError> {
        let db = crate::log::open_sled(dir)?;
        let tree = db.open_tree(keys::TREE)?;
        let meta = tree.get(META_KEY)?;
        let head = match meta.as_deref() {
            Some([keys::FORMAT1_VERSION, ..]) => {
                decode_meta_of(keys::FORMAT1_VERSION, &meta.clone().unwrap_or_default())
                    .ok_or_else(|| LogError::Corrupt {
                        position: 0,
                        reason: "format-1 meta head is malformed".to_owned(),
                    })?
            }
            None if holds_format1(&tree)? => {
                return Err(LogError::Corrupt {
                    position: 0,
                    reason: "format-1 log without its meta head".to_owned(),
                })
            }
            _ => return Ok(None),
        };
        Ok(Some(Format1 {
            _db: db,
            tree,
            head,
        }))
    }

    /// Every record's stored bytes in position order; a gap or a bad key is an error item.
    fn records(&self) -> impl Iterator<Item = Result<Vec<u8>, LogError>> + '_ {
        let mut expected = 1u64;
        self.tree
            .range(keys::format1_record_key(1)..=keys::format1_record_key(self.head.position))
            .map(move |entry| {
                let (key, value) = entry?;
                if keys::parse_format1_record_key(&key) != Some(expected) {
                    return Err(LogError::Corrupt {
                        position: expected,
                        reason: "format-1 record is missing".to_owned(),
                    });
                }
                expected += 1;
                Ok(value.to_vec())
            })
    }

    /// Every stored reply as (idempotency key, reply).
    fn replies(&self) -> impl Iterator<Item = Result<(Vec<u8>, Vec<u8>), LogError>> + '_ {
        self.tree
            .scan_prefix([keys::FORMAT1_REPLY_PREFIX])
            .map(|entry| {
                let (key, value) = entry?;
                match (key.split_first(), value.split_first()) {
                    (Some((_, key)), Some((&keys::FORMAT1_VERSION, reply))) => {
                        Ok((key.to_vec(), reply.to_vec()))
                    }
                    _ => Err(LogError::Corrupt {
                        position: 0,
                        reason: "format-1 reply has an unknown format".to_owned(),
                    }),
                }
            })
    }
}

impl EventLog {
    /// Migrates the log in `dir` from format 1 to format 2 in place (see the module
    /// documentation of `migrate.rs` for the steps and what a crash leaves), calling
    /// `progress(done, total)` as records are copied. The log must not be open anywhere.
    pub fn migrate(dir: &Path, mut progress: impl FnMut(u64, u64)) -> Result<Migration, LogError> {
        let copy = sibling(dir, MIGRATING_SUFFIX);
        let original = sibling(dir, ORIGINAL_SUFFIX);
        if !dir.exists() {
            if copy.exists() && original.exists() {
                // Stopped between the two renames: the copy was verified, check it again.
                let expected = Format1::open(&original)?
                    .ok_or_else(|| LogError::NeedsMigration {
                        reason: format!("{} is not a format-1 log", original.display()),
                    })?
                    .head;
                let (records, replies) = verified_copy(&copy, expected)?;
                rename_synced(&copy, dir)?;
                return Ok(Migration::Migrated {
                    head: expected,
                    records,
                    replies,
                    original,
                });
            }
            return Err(LogError::InvalidArgument(
                "the log directory does not exist",
            ));
        }
        let Some(old) = Format1::open(dir)? else {
            if copy.exists() {
                return Err(LogError::NeedsMigration {
                    reason: format!(
                        "{} is in format 2 but {} exists beside it; remove one by hand",
                        dir.display(),
                        copy.display()
                    ),
                });
            }
            let log = EventLog::open(dir)?;
            return Ok(Migration::AlreadyCurrent { head: log.head() });
        };
        if original.exists() {
            return Err(LogError::NeedsMigration {
                reason: format!(
                    "{} exists already; move it away so the original can be kept there",
                    original.display()
                ),
            });
        }
        if copy.exists() {
            // A copy a crash left unfinished: the original is intact, start again.
            std::fs::remove_dir_all(&copy)?;
        }
        let head = old.head;
        let outcome = (|| {
            let new = EventLog::open(&copy)?;
            let mut copied = 0u64;
            let mut failure = None;
            let records = old.records().map_while(|record| match record {
                Ok(bytes) => {
                    copied += 1;
                    if copied.is_multiple_of(4096) || copied == head.position {
                        progress(copied, head.position);
                    }
                    Some(bytes)
                }
                Err(error) => {
                    failure = Some(error);
                    None
                }
            });
            let imported = new.import_raw(records)?;
            if let Some(error) = failure {
                return Err(error);
            }
            if imported != head {
                return Err(LogError::Corrupt {
                    position: imported.position,
                    reason: format!("migrated log ends at {imported}, the original at {head}"),
                });
            }
            // Streamed like the records: 10M replies would not fit in memory at once.
            let mut failure = None;
            let replies = old.replies().map_while(|reply| match reply {
                Ok(reply) => Some(reply),
                Err(error) => {
                    failure = Some(error);
                    None
                }
            });
            new.import_replies(replies)?;
            if let Some(error) = failure {
                return Err(error);
            }
            Ok::<_, LogError>(())
        })();
        if let Err(error) = outcome {
            let _ = std::fs::remove_dir_all(&copy);
            return Err(error);
        }
        let (records, replies) = verified_copy(&copy, head)?;
        // Every reply of the original must read back equal from the copy.
        {
            let new = EventLog::open(&copy)?;
            for reply in old.replies() {
                let (key, reply) = reply?;
                if new.reply_for(&key)?.as_deref() != Some(reply.as_slice()) {
                    return Err(LogError::Corrupt {
                        position: 0,
                        reason: format!(
                            "migrated reply for key {} differs from the original",
                            hex::encode(&key)
                        ),
                    });
                }
            }
        }
        drop(old);
        rename_synced(dir, &original)?;
        rename_synced(&copy, dir)?;
        Ok(Migration::Migrated {
            head,
            records,
            replies,
            original,
        })
    }
}

/// Verifies the format-2 copy in `copy` up to `expected` and returns its records and replies.
fn verified_copy(copy: &Path, expected: Head) -> Result<(u64, u64), LogError> {
    let log = EventLog::open(copy)?;
    let report = log
        .verify(Some(expected), |_| {})?
        .map_err(LogError::from)?;
    if report.head != expected {
        return Err(LogError::Corrupt {
            position: report.head.position,
            reason: format!(
                "migrated log verifies to {} but the original's head is {expected}",
                report.head
            ),
        });
    }
    let replies = log.reply_index_memory().1 as u64;
    Ok((report.events, replies))
}

/// Renames `from` to `to` and makes the rename durable (fsyncs the parent directory).
fn rename_synced(from: &Path, to: &Path) -> Result<(), LogError> {
    std::fs::rename(from, to)?;
    if let Some(parent) = to.parent().filter(|parent| !parent.as_os_str().is_empty()) {
        File::open(parent)?.sync_all()?;
    }
    Ok(())
}
