//! Helpers shared by the integration tests.

use std::collections::BTreeMap;
use std::path::Path;

use eventlog::{Appended, EventLog, ExpectedVersion, Hash, Head, NewRecord, Record};
use sha2::{Digest, Sha256};

/// Opens the log in `dir`, panicking with the error on failure.
pub fn open(dir: &Path) -> EventLog {
    EventLog::open(dir).unwrap()
}

/// Commits one command (no expectations) in its own batch and returns where its records went.
pub fn commit_one(log: &EventLog, key: Option<&[u8]>, records: &[(&str, &[u8])]) -> Vec<Appended> {
    let mut batch = log.batch();
    let appended = add(&mut batch, key, &[], records).unwrap();
    log.commit(batch).unwrap();
    appended
}

/// Adds a command whose reply is its key followed by the appended positions.
pub fn add(
    batch: &mut eventlog::Batch,
    key: Option<&[u8]>,
    expected: &[(&str, ExpectedVersion)],
    records: &[(&str, &[u8])],
) -> Result<Vec<Appended>, eventlog::AddRejected> {
    let new: Vec<NewRecord<'_>> = records
        .iter()
        .map(|&(stream, payload)| NewRecord { stream, payload })
        .collect();
    batch
        .add_command(key, expected, &new, |appended| reply_bytes(key, appended))
        .unwrap()
}

/// The reply `add` stores: the key, then each position as text.
pub fn reply_bytes(key: Option<&[u8]>, appended: &[Appended]) -> Vec<u8> {
    let mut reply = key.unwrap_or_default().to_vec();
    for record in appended {
        reply.extend_from_slice(format!(" {}", record.position).as_bytes());
    }
    reply
}

/// Every record from position 1 to the head, read page by page.
pub fn read_all(log: &EventLog) -> Vec<Record> {
    let mut records = Vec::new();
    loop {
        let next = records.len() as u64 + 1;
        let page = log.read_from(next, usize::MAX, usize::MAX).unwrap();
        if page.is_empty() {
            return records;
        }
        records.extend(page);
    }
}

/// Every record's stored bytes from position 1 to the head.
pub fn export_all(log: &EventLog) -> Vec<Vec<u8>> {
    let mut raw = Vec::new();
    loop {
        let page = log
            .read_raw_from(raw.len() as u64 + 1, usize::MAX, usize::MAX)
            .unwrap();
        if page.is_empty() {
            return raw;
        }
        raw.extend(page);
    }
}

/// The stored bytes of a record, built here from the documented format rather than by the
/// crate, so a change to the format fails this test.
pub fn documented_record_bytes(previous: &Hash, record: &Record) -> Vec<u8> {
    let mut bytes = vec![1u8];
    bytes.extend_from_slice(&record.position.to_be_bytes());
    bytes.extend_from_slice(&(record.stream.len() as u16).to_be_bytes());
    bytes.extend_from_slice(record.stream.as_bytes());
    bytes.extend_from_slice(&record.version.to_be_bytes());
    bytes.extend_from_slice(&(record.payload.len() as u32).to_be_bytes());
    bytes.extend_from_slice(&record.payload);
    let hash: [u8; 32] = Sha256::new()
        .chain_update(previous.0)
        .chain_update(&bytes)
        .finalize()
        .into();
    bytes.extend_from_slice(&hash);
    bytes
}

/// Recomputes the chain over `records` from the documented format; returns the head.
pub fn recomputed_head(records: &[Record]) -> Head {
    let mut head = Head::GENESIS;
    for record in records {
        let bytes = documented_record_bytes(&head.hash, record);
        let hash = Hash(bytes[bytes.len() - 32..].try_into().unwrap());
        assert_eq!(hash, record.hash, "hash of position {}", record.position);
        head = Head {
            position: record.position,
            hash,
        };
    }
    head
}

/// Rewrites the stored records of the closed log in `dir` (position → stored bytes); see
/// `eventlog::tamper::edit_records`.
pub fn tamper(dir: &Path, change: impl FnOnce(&mut BTreeMap<u64, Vec<u8>>)) {
    eventlog::tamper::edit_records(dir, change).unwrap();
}

/// A small deterministic pseudo-random generator (xorshift64*), so failures replay from a seed.
pub struct Xorshift(pub u64);

impl Xorshift {
    /// The next value.
    pub fn next(&mut self) -> u64 {
        let mut x = self.0.max(1);
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// A value in `low..=high`.
    pub fn between(&mut self, low: u64, high: u64) -> u64 {
        low + self.next() % (high - low + 1)
    }
}
