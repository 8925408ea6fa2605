//! Test support, behind the `tamper` feature: damage a closed log's stored bytes on purpose, so
//! tests of `audit verify` (and of anything else that must catch tampering) can run against real
//! files. Never compiled into a service.

use std::collections::BTreeMap;
use std::path::Path;

use crate::chunk::{self, ValueBuilder};
use crate::error::LogError;
use crate::keys::{self, META_KEY};
use crate::log::encode_meta;
use crate::record::{Hash, Head, HASH_BYTES};

/// Opens the closed log's sled database in `dir` as the log itself does (its segment size,
/// waiting while a dropped handle still holds the lock), to change its bytes directly.
pub fn open_db(dir: &Path) -> Result<sled::Db, LogError> {
    crate::log::open_sled(dir)
}

fn with_tree<T>(
    dir: &Path,
    change: impl FnOnce(&sled::Tree) -> Result<T, LogError>,
) -> Result<T, LogError> {
    let db = open_db(dir)?;
    let tree = db.open_tree(keys::TREE)?;
    let result = change(&tree)?;
    db.flush()?;
    Ok(result)
}

/// Rewrites the stored records of a closed log: `change` gets every record's stored bytes by
/// the position it is stored at and may change, remove, add or move them; the chunks are then
/// written again (a gap in the positions becomes a gap between chunks). Meta and replies stay.
pub fn edit_records(
    dir: &Path,
    change: impl FnOnce(&mut BTreeMap<u64, Vec<u8>>),
) -> Result<(), LogError> {
    with_tree(dir, |tree| {
        let mut records = BTreeMap::new();
        let mut old_keys = Vec::new();
        for entry in tree.scan_prefix([keys::CHUNK_PREFIX]) {
            let (key, value) = entry?;
            let start = keys::parse_chunk_key(&key)
                .ok_or(LogError::InvalidArgument("malformed chunk key"))?;
            let split = chunk::split_chunk(&value)
                .map_err(|_| LogError::InvalidArgument("chunk already damaged"))?;
            for (offset, bytes) in split.into_iter().enumerate() {
                records.insert(start + offset as u64, bytes.to_vec());
            }
            old_keys.push(key);
        }
        change(&mut records);
        for key in old_keys {
            tree.remove(key)?;
        }
        let mut builder = ValueBuilder::default();
        let mut previous: Option<u64> = None;
        for (&position, bytes) in &records {
            if previous.is_some_and(|previous| previous + 1 != position) {
                write_chunks(tree, std::mem::take(&mut builder))?;
            }
            builder.add_record(position, bytes);
            previous = Some(position);
        }
        write_chunks(tree, builder)
    })
}

/// Writes a chunk value stored as given (for damage no record edit can express).
pub fn put_raw_chunk(dir: &Path, first_position: u64, value: Vec<u8>) -> Result<(), LogError> {
    with_tree(dir, |tree| {
        tree.insert(keys::chunk_key(first_position), value)?;
        Ok(())
    })
}

/// Rewrites the meta head of a closed log.
pub fn set_meta_head(dir: &Path, head: Head) -> Result<(), LogError> {
    with_tree(dir, |tree| {
        tree.insert(META_KEY, &encode_meta(&head)[..])?;
        Ok(())
    })
}

fn write_chunks(tree: &sled::Tree, builder: ValueBuilder) -> Result<(), LogError> {
    for (first, value) in builder.finish() {
        tree.insert(keys::chunk_key(first), value)?;
    }
    Ok(())
}

/// Flips one bit of the stored record at `position`, `offset` bytes from its start.
pub fn flip_byte(dir: &Path, position: u64, offset: usize) -> Result<(), LogError> {
    let mut found = false;
    edit_records(dir, |records| {
        if let Some(bytes) = records.get_mut(&position) {
            let index = offset.min(bytes.len().saturating_sub(1));
            if let Some(byte) = bytes.get_mut(index) {
                *byte ^= 0x01;
                found = true;
            }
        }
    })?;
    if !found {
        return Err(LogError::InvalidArgument("no such record"));
    }
    Ok(())
}

/// Removes the stored record at `position`.
pub fn delete_record(dir: &Path, position: u64) -> Result<(), LogError> {
    edit_records(dir, |records| {
        records.remove(&position);
    })
}

/// Cuts the log after `keep` and rewrites the head record to match, as an attacker who wants
/// the cut to go unnoticed would: only an anchored head can catch it.
pub fn truncate_tail(dir: &Path, keep: u64) -> Result<(), LogError> {
    let mut kept_hash = None;
    edit_records(dir, |records| {
        records.retain(|&position, _| position <= keep);
        kept_hash = records.get(&keep).and_then(|kept| {
            let hash = kept.get(kept.len().checked_sub(HASH_BYTES)?..)?;
            Some(Hash(hash.try_into().ok()?))
        });
    })?;
    let hash = kept_hash.ok_or(LogError::InvalidArgument("no such record"))?;
    set_meta_head(
        dir,
        Head {
            position: keep,
            hash,
        },
    )
}
