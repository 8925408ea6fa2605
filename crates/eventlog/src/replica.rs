//! A group-commit batch as the HA writer replicates it: the exact bytes of its records (which
//! carry positions, versions and the hash chain) and the replies of its commands, in one
//! self-describing value. The leader encodes a batch before committing it locally
//! ([`Batch::replicated`]); a standby applies the same value to its own log
//! ([`EventLog::apply_replicated`]), which writes it as one atomic, flushed write, so a standby's
//! log has the same positions, bytes and hash chain as the leader's, and the same replies.
//!
//! ```text
//! format (1 byte, 1) ‖ base position (u64 BE) ‖ record count (u32 BE)
//!   ‖ each record: length (u32 BE) ‖ bytes
//!   ‖ reply count (u32 BE) ‖ each reply: key length (u16 BE) ‖ key ‖ reply length (u32 BE) ‖ reply
//! ```
//! An entry with no records and no replies is valid: the HA leader appends one as the fence of
//! its epoch, and applying it changes nothing.

use crate::batch::Batch;
use crate::error::LogError;

/// The encoding's format byte.
const REPLICATED_FORMAT: u8 = 1;

/// One batch's records and replies, as replicated.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ReplicatedBatch {
    /// The head position the batch continues (its first record is at `base_position + 1`).
    pub base_position: u64,
    /// Each record's exact stored bytes, in position order.
    pub records: Vec<Vec<u8>>,
    /// Idempotency key → reply of the batch's commands that had a key.
    pub replies: Vec<(Vec<u8>, Vec<u8>)>,
}

impl ReplicatedBatch {
    /// The position of the batch's last record (its base when it has none).
    pub fn tip_position(&self) -> u64 {
        self.base_position + self.records.len() as u64
    }

    /// Whether it writes nothing (an epoch fence).
    pub fn is_empty(&self) -> bool {
        self.records.is_empty() && self.replies.is_empty()
    }

    /// The bytes that go over the wire.
    pub fn encode(&self) -> Vec<u8> {
        let size = 17
            + self.records.iter().map(|r| 4 + r.len()).sum::<usize>()
            + self
                .replies
                .iter()
                .map(|(k, r)| 6 + k.len() + r.len())
                .sum::<usize>();
        let mut out = Vec::with_capacity(size);
        out.push(REPLICATED_FORMAT);
        out.extend_from_slice(&self.base_position.to_be_bytes());
        out.extend_from_slice(&(self.records.len() as u32).to_be_bytes());
        for record in &self.records {
            out.extend_from_slice(&(record.len() as u32).to_be_bytes());
            out.extend_from_slice(record);
        }
        out.extend_from_slice(&(self.replies.len() as u32).to_be_bytes());
        for (key, reply) in &self.replies {
            out.extend_from_slice(&(key.len() as u16).to_be_bytes());
            out.extend_from_slice(key);
            out.extend_from_slice(&(reply.len() as u32).to_be_bytes());
            out.extend_from_slice(reply);
        }
        out
    }

    /// Reads what [`ReplicatedBatch::encode`] wrote; any other bytes are an `InvalidImport`
    /// naming what is wrong (never a panic). The records themselves are checked when applied.
    pub fn decode(bytes: &[u8]) -> Result<ReplicatedBatch, LogError> {
        let mut reader = Reader { bytes, at: 0 };
        let format = reader.take(1)?[0];
        if format != REPLICATED_FORMAT {
            return Err(invalid(
                0,
                format!("unknown replicated batch format {format}"),
            ));
        }
        let base_position = u64::from_be_bytes(reader.array()?);
        let count = u32::from_be_bytes(reader.array()?);
        // Each record takes at least its 4-byte length, so a count beyond that is a lie that
        // must not reserve memory.
        let mut records = Vec::with_capacity((count as usize).min(bytes.len() / 4));
        for _ in 0..count {
            let length = u32::from_be_bytes(reader.array()?) as usize;
            records.push(reader.take(length)?.to_vec());
        }
        let count = u32::from_be_bytes(reader.array()?);
        let mut replies = Vec::with_capacity((count as usize).min(bytes.len() / 6));
        for _ in 0..count {
            let key_length = u16::from_be_bytes(reader.array()?) as usize;
            let key = reader.take(key_length)?.to_vec();
            let reply_length = u32::from_be_bytes(reader.array()?) as usize;
            replies.push((key, reader.take(reply_length)?.to_vec()));
        }
        if reader.at != bytes.len() {
            return Err(invalid(
                base_position,
                format!(
                    "{} bytes after the replicated batch",
                    bytes.len() - reader.at
                ),
            ));
        }
        Ok(ReplicatedBatch {
            base_position,
            records,
            replies,
        })
    }
}

impl Batch {
    /// This batch as the HA writer replicates it (copies its records' bytes and replies).
    pub fn replicated(&self) -> ReplicatedBatch {
        ReplicatedBatch {
            base_position: self.base.position,
            records: self
                .records
                .iter()
                .map(|record| record.bytes.clone())
                .collect(),
            replies: self
                .replies
                .iter()
                .map(|(key, reply)| (key.clone(), reply.clone()))
                .collect(),
        }
    }
}

pub(crate) fn invalid(position: u64, reason: String) -> LogError {
    LogError::InvalidImport { position, reason }
}

/// Bounded reads over the encoded bytes.
struct Reader<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, length: usize) -> Result<&'a [u8], LogError> {
        let end = self
            .at
            .checked_add(length)
            .filter(|&end| end <= self.bytes.len());
        let Some(end) = end else {
            return Err(invalid(
                0,
                format!(
                    "replicated batch truncated: {length} bytes wanted at offset {} of {}",
                    self.at,
                    self.bytes.len()
                ),
            ));
        };
        let taken = &self.bytes[self.at..end];
        self.at = end;
        Ok(taken)
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N], LogError> {
        let mut array = [0u8; N];
        array.copy_from_slice(self.take(N)?);
        Ok(array)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn encoding_round_trips_and_bad_bytes_are_errors() {
        let batch = ReplicatedBatch {
            base_position: 41,
            records: vec![b"one".to_vec(), b"two!".to_vec()],
            replies: vec![(b"key".to_vec(), b"reply".to_vec())],
        };
        let bytes = batch.encode();
        assert_eq!(ReplicatedBatch::decode(&bytes).unwrap(), batch);
        assert_eq!(batch.tip_position(), 43);
        for cut in 0..bytes.len() {
            assert!(
                ReplicatedBatch::decode(&bytes[..cut]).is_err(),
                "cut at {cut}"
            );
        }
        let mut longer = bytes.clone();
        longer.push(0);
        assert!(ReplicatedBatch::decode(&longer).is_err());
        let mut lying = bytes;
        lying[9..13].copy_from_slice(&u32::MAX.to_be_bytes());
        assert!(ReplicatedBatch::decode(&lying).is_err());
    }
}
