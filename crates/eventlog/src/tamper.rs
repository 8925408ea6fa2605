//! Test support, behind the `tamper` feature: damage a closed log's stored bytes on purpose, so
//! tests of `audit verify` (and of anything else that must catch tampering) can run against real
//! files. Never compiled into a service.

use std::path::Path;
use std::time::{Duration, Instant};

use crate::error::LogError;
use crate::keys::{self, META_KEY};
use crate::log::encode_meta;
use crate::record::{Hash, Head, HASH_BYTES};

fn with_tree<T>(
    dir: &Path,
    change: impl FnOnce(&sled::Tree) -> Result<T, LogError>,
) -> Result<T, LogError> {
    // sled releases its lock shortly after a handle is dropped (spacejam/sled#1234).
    let started = Instant::now();
    let db = loop {
        match sled::open(dir) {
            Ok(db) => break db,
            Err(_) if started.elapsed() < Duration::from_secs(3) => {
                std::thread::sleep(Duration::from_millis(10))
            }
            Err(error) => return Err(error.into()),
        }
    };
    let tree = db.open_tree(keys::TREE)?;
    let result = change(&tree)?;
    db.flush()?;
    Ok(result)
}

/// Flips one bit of the stored record at `position`, `offset` bytes from its start.
pub fn flip_byte(dir: &Path, position: u64, offset: usize) -> Result<(), LogError> {
    with_tree(dir, |tree| {
        let key = keys::record_key(position);
        let mut bytes = tree
            .get(key)?
            .map(|v| v.to_vec())
            .ok_or(LogError::InvalidArgument("no such record"))?;
        let index = offset.min(bytes.len().saturating_sub(1));
        bytes[index] ^= 0x01;
        tree.insert(key, bytes)?;
        Ok(())
    })
}

/// Removes the stored record at `position` (its index entries stay, as a careless hand would).
pub fn delete_record(dir: &Path, position: u64) -> Result<(), LogError> {
    with_tree(dir, |tree| {
        tree.remove(keys::record_key(position))?;
        Ok(())
    })
}

/// Cuts the log after `keep` and rewrites the head record to match, as an attacker who wants
/// the cut to go unnoticed would: only an anchored head can catch it.
pub fn truncate_tail(dir: &Path, keep: u64) -> Result<(), LogError> {
    with_tree(dir, |tree| {
        let kept = tree
            .get(keys::record_key(keep))?
            .ok_or(LogError::InvalidArgument("no such record"))?;
        let mut hash = [0u8; HASH_BYTES];
        hash.copy_from_slice(&kept[kept.len() - HASH_BYTES..]);
        let mut position = keep + 1;
        while tree.remove(keys::record_key(position))?.is_some() {
            position += 1;
        }
        tree.insert(
            META_KEY,
            encode_meta(&Head {
                position: keep,
                hash: Hash(hash),
            })
            .to_vec(),
        )?;
        Ok(())
    })
}
