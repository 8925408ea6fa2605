//! The values of log format 2: chunks of records and sections of replies.
//!
//! ```text
//! chunk         = LOG_FORMAT_VERSION (1 byte) ‖ { record length (u32 BE) ‖ record bytes }*
//! reply section = LOG_FORMAT_VERSION (1 byte) ‖ { key length (u16 BE) ‖ key
//!                                                 ‖ reply length (u32 BE) ‖ reply }*
//! ```
//! A chunk holds consecutive records, the first at the position in its key; the record bytes are
//! exactly the stored bytes of `record.rs` (the hash chain does not know about chunks). The
//! length before each record keeps one damaged record from shifting its neighbours, so damage
//! is reported at the position where it is. A value grows to at most `CHUNK_BYTES_MAX`; it is
//! larger only when it holds one record (or reply) that is larger on its own.

use crate::keys::LOG_FORMAT_VERSION;
use crate::limits::CHUNK_BYTES_MAX;

/// Bytes a chunk spends on one record besides its bytes.
pub(crate) const CHUNK_RECORD_OVERHEAD_BYTES: usize = 4;

/// Builds values no larger than `CHUNK_BYTES_MAX` (unless one entry alone is larger): the
/// chunks of a batch's records, or its reply sections.
#[derive(Debug, Default)]
pub(crate) struct ValueBuilder {
    /// Number of the first reply section built (sections are numbered on from it).
    section_base: u64,
    done: Vec<(u64, Vec<u8>)>,
    current: Vec<u8>,
    current_first: u64,
    current_entries: usize,
}

impl ValueBuilder {
    /// A builder of reply sections numbered from `section_base`.
    pub(crate) fn sections_from(section_base: u64) -> ValueBuilder {
        ValueBuilder {
            section_base,
            ..ValueBuilder::default()
        }
    }

    /// Adds an entry of `length` bytes, starting a new value first if it would not fit. A new
    /// value is named `position` (chunks) or the next section number (`None`); `write` appends
    /// the entry to the value.
    fn add(&mut self, position: Option<u64>, length: usize, write: impl FnOnce(&mut Vec<u8>)) {
        if self.current_entries > 0 && self.current.len() + length > CHUNK_BYTES_MAX {
            let full = std::mem::take(&mut self.current);
            self.done.push((self.current_first, full));
            self.current_entries = 0;
        }
        if self.current_entries == 0 {
            self.current.reserve(CHUNK_BYTES_MAX.min(1 + length));
            self.current.push(LOG_FORMAT_VERSION);
            self.current_first = position.unwrap_or(self.section_base + self.done.len() as u64);
        }
        write(&mut self.current);
        self.current_entries += 1;
    }

    /// Adds a record (its stored bytes) at `position` to a chunk.
    pub(crate) fn add_record(&mut self, position: u64, bytes: &[u8]) {
        let length = u32::try_from(bytes.len()).unwrap_or(u32::MAX);
        self.add(
            Some(position),
            CHUNK_RECORD_OVERHEAD_BYTES + bytes.len(),
            |value| {
                value.extend_from_slice(&length.to_be_bytes());
                value.extend_from_slice(bytes);
            },
        );
    }

    /// Adds a reply to a section and returns the section's number.
    pub(crate) fn add_reply(&mut self, key: &[u8], reply: &[u8]) -> u64 {
        let key_length = u16::try_from(key.len()).unwrap_or(u16::MAX);
        let reply_length = u32::try_from(reply.len()).unwrap_or(u32::MAX);
        self.add(None, 6 + key.len() + reply.len(), |value| {
            value.extend_from_slice(&key_length.to_be_bytes());
            value.extend_from_slice(key);
            value.extend_from_slice(&reply_length.to_be_bytes());
            value.extend_from_slice(reply);
        });
        self.current_first
    }

    /// Every value built, each with its first position (chunks) or number (sections).
    pub(crate) fn finish(mut self) -> Vec<(u64, Vec<u8>)> {
        if self.current_entries > 0 {
            self.done.push((self.current_first, self.current));
        }
        self.done
    }
}

/// A chunk's records, or the records before the first broken one and what is broken.
pub(crate) type SplitChunk<'a> = Result<Vec<&'a [u8]>, (Vec<&'a [u8]>, String)>;

/// A reply section's `(key, reply)` entries.
pub(crate) type SectionEntries<'a> = Vec<(&'a [u8], &'a [u8])>;

/// Splits a chunk into its records' bytes. An error names the index of the first record whose
/// framing is broken (the records before it are returned in `Err`'s first field).
pub(crate) fn split_chunk(value: &[u8]) -> SplitChunk<'_> {
    let mut records = Vec::new();
    let Some((&format, mut rest)) = value.split_first() else {
        return Err((records, "chunk is empty".to_owned()));
    };
    if format != LOG_FORMAT_VERSION {
        return Err((records, format!("chunk has unknown format {format}")));
    }
    if rest.is_empty() {
        return Err((records, "chunk holds no record".to_owned()));
    }
    while !rest.is_empty() {
        let Some((length, after)) = rest.split_first_chunk::<4>() else {
            return Err((records, "chunk ends inside a record length".to_owned()));
        };
        let length = usize::try_from(u32::from_be_bytes(*length)).unwrap_or(usize::MAX);
        let Some((record, after)) = after.split_at_checked(length) else {
            return Err((
                records,
                format!("chunk ends inside a record said to be {length} bytes"),
            ));
        };
        records.push(record);
        rest = after;
    }
    Ok(records)
}

/// Splits a reply section into its `(key, reply)` entries.
pub(crate) fn split_section(value: &[u8]) -> Result<SectionEntries<'_>, String> {
    let Some((&format, mut rest)) = value.split_first() else {
        return Err("reply section is empty".to_owned());
    };
    if format != LOG_FORMAT_VERSION {
        return Err(format!("reply section has unknown format {format}"));
    }
    let mut entries = Vec::new();
    while !rest.is_empty() {
        let malformed = || "reply section is cut inside an entry".to_owned();
        let (key_length, after) = rest.split_first_chunk::<2>().ok_or_else(malformed)?;
        let (key, after) = after
            .split_at_checked(usize::from(u16::from_be_bytes(*key_length)))
            .ok_or_else(malformed)?;
        let (reply_length, after) = after.split_first_chunk::<4>().ok_or_else(malformed)?;
        let reply_length = usize::try_from(u32::from_be_bytes(*reply_length)).unwrap_or(usize::MAX);
        let (reply, after) = after.split_at_checked(reply_length).ok_or_else(malformed)?;
        entries.push((key, reply));
        rest = after;
    }
    Ok(entries)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn chunks_split_at_the_limit_and_round_trip() {
        let mut builder = ValueBuilder::default();
        let record = vec![7u8; 1000];
        for position in 1..=200u64 {
            builder.add_record(position, &record);
        }
        let big = vec![9u8; CHUNK_BYTES_MAX * 2];
        builder.add_record(201, &big);
        builder.add_record(202, &record);
        let values = builder.finish();
        let mut next = 1u64;
        for (first, value) in &values {
            assert_eq!(*first, next);
            let records = split_chunk(value).unwrap();
            assert!(value.len() <= CHUNK_BYTES_MAX || records.len() == 1);
            next += records.len() as u64;
        }
        assert_eq!(next, 203);
        // 65 records of 1,004 bytes fill a chunk: 4 chunks, the big record alone, the last one.
        assert_eq!(values.len(), 6);
    }

    #[test]
    fn sections_round_trip_and_number_on() {
        let mut builder = ValueBuilder::sections_from(10);
        let reply = vec![b'r'; 30_000];
        let placed: Vec<u64> = (0..5u8)
            .map(|key| builder.add_reply(&[key], &reply))
            .collect();
        assert_eq!(placed, vec![10, 10, 11, 11, 12]);
        let values = builder.finish();
        let numbers: Vec<u64> = values.iter().map(|(number, _)| *number).collect();
        assert_eq!(numbers, vec![10, 11, 12]);
        let entries: Vec<_> = values
            .iter()
            .flat_map(|(_, value)| split_section(value).unwrap())
            .map(|(key, reply)| (key.to_vec(), reply.len()))
            .collect();
        assert_eq!(entries.len(), 5);
        assert_eq!(entries[4], (vec![4], 30_000));
    }

    #[test]
    fn damaged_values_are_errors() {
        assert!(split_chunk(b"").is_err());
        assert!(split_chunk(&[LOG_FORMAT_VERSION]).is_err());
        assert!(split_chunk(&[1, 0, 0, 0, 1, 5]).is_err());
        let (before, _) =
            split_chunk(&[LOG_FORMAT_VERSION, 0, 0, 0, 1, 5, 0, 0, 0, 9]).unwrap_err();
        assert_eq!(before, vec![&[5u8][..]]);
        assert!(split_section(&[LOG_FORMAT_VERSION, 0, 3, 1]).is_err());
    }
}
