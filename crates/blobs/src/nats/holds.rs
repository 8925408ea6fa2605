//! The records of the NATS blob store in its two key-value buckets (layout in the parent
//! module): unattached uploads and doomed blobs in `<bucket>-holds`, kept marks, derived names
//! and the attachments position in `<bucket>-marks`.
//!
//! Several gateways hold, attach and collect at once, so no process-wide lock can order them
//! as the local store's mutex does. Instead a collection *dooms* a blob (creates
//! `doomed.<hex>`, which only one collector can do), looks at its holds again, and only then
//! deletes it; an upload *holds* first and checks for a doom or a missing blob second. Whatever
//! the interleaving, either the collector sees the new hold and keeps the blob, or the upload
//! sees the doom (or the blob gone) and fails with `BlobError::Collected`, keeping nothing.
//! A doom older than [`DOOM_STALE_AFTER`] is a collector that died midway; it is ignored and
//! replaced.

use std::collections::BTreeMap;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use async_nats::jetstream;
use bytes::Bytes;

use super::records::Records;
use super::{nats_failed, NatsBlobStoreConfig};
use crate::{BlobError, ContentHash};

/// A doom this old belongs to a collector that stopped midway (a collection takes seconds).
pub const DOOM_STALE_AFTER: Duration = Duration::from_secs(10 * 60);

const HOLD_PREFIX: &str = "hold";
const DOOMED_PREFIX: &str = "doomed.";
const KEPT_PREFIX: &str = "kept.";
const DERIVED_PREFIX: &str = "derived.";
const POSITION_KEY: &str = "attachments-position";

/// How many times adding a derived name retries after another writer changed the list.
const DERIVED_NAME_RETRIES: usize = 8;

/// One unattached upload as recorded: `<sha256 hex> <uploaded at, ms since the epoch>`.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Hold {
    pub(crate) hash: ContentHash,
    pub(crate) uploaded_at_ms: i64,
}

impl Hold {
    fn encode(&self) -> Bytes {
        Bytes::from(format!("{} {}", self.hash.to_hex(), self.uploaded_at_ms))
    }

    fn decode(bytes: &[u8]) -> Option<Hold> {
        let text = std::str::from_utf8(bytes).ok()?;
        let (hash, at) = text.trim().split_once(' ')?;
        Some(Hold {
            hash: ContentHash::from_hex(hash)?,
            uploaded_at_ms: at.parse().ok()?,
        })
    }
}

/// The two key-value buckets.
pub(crate) struct Holds {
    holds: Records,
    marks: Records,
}

fn hold_key(file: uuid::Uuid) -> String {
    format!("{HOLD_PREFIX}.{}", file.simple())
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |since| {
            u64::try_from(since.as_millis()).unwrap_or(u64::MAX)
        })
}

impl Holds {
    pub(crate) async fn open(
        jetstream: jetstream::Context,
        config: &NatsBlobStoreConfig,
    ) -> Result<Holds, BlobError> {
        Ok(Holds {
            holds: Records::open(
                jetstream.clone(),
                format!("{}-holds", config.bucket),
                config.replicas,
            )
            .await?,
            marks: Records::open(
                jetstream,
                format!("{}-marks", config.bucket),
                config.replicas,
            )
            .await?,
        })
    }

    pub(crate) async fn hold(
        &self,
        file: uuid::Uuid,
        hash: ContentHash,
        uploaded_at_ms: i64,
    ) -> Result<(), BlobError> {
        let record = Hold {
            hash,
            uploaded_at_ms,
        };
        self.holds.put(&hold_key(file), record.encode()).await
    }

    pub(crate) async fn release(&self, file: uuid::Uuid) -> Result<(), BlobError> {
        self.holds.purge(&hold_key(file)).await
    }

    /// Every hold, by key; unreadable records are left alone (and logged).
    pub(crate) async fn all(&self) -> Result<BTreeMap<String, Hold>, BlobError> {
        let mut holds = BTreeMap::new();
        for (key, record) in self.holds.list(HOLD_PREFIX).await? {
            match Hold::decode(&record.value) {
                Some(hold) => {
                    holds.insert(key, hold);
                }
                None => {
                    tracing::warn!(%key, "an unreadable unattached upload record is left alone")
                }
            }
        }
        Ok(holds)
    }

    /// Drops the hold stored under `key` (a key from [`Holds::all`]).
    pub(crate) async fn drop_hold(&self, key: &str) -> Result<(), BlobError> {
        self.holds.purge(key).await
    }

    pub(crate) async fn attached(&self, file: uuid::Uuid) -> Result<(), BlobError> {
        let record = self.holds.get(&hold_key(file)).await?;
        let Some(hold) = record.and_then(|record| Hold::decode(&record.value)) else {
            // Not an upload of this store, or already handled.
            return Ok(());
        };
        // The mark first: a crash in between leaves a hold whose blob is kept, which a
        // collection then simply drops.
        self.marks.put(&kept_key(hold.hash), Bytes::new()).await?;
        self.release(file).await
    }

    pub(crate) async fn is_kept(&self, hash: ContentHash) -> Result<bool, BlobError> {
        Ok(self.marks.get(&kept_key(hash)).await?.is_some())
    }

    /// Whether a live collector has doomed the blob.
    pub(crate) async fn is_doomed(&self, hash: ContentHash) -> Result<bool, BlobError> {
        let record = self.holds.get(&doomed_key(hash)).await?;
        Ok(record.is_some_and(|record| !doom_is_stale(&record.value)))
    }

    /// Dooms the blob for this collector; false when a live collector has doomed it already.
    pub(crate) async fn doom(&self, hash: ContentHash) -> Result<bool, BlobError> {
        let key = doomed_key(hash);
        let stamp = || Bytes::from(now_ms().to_string());
        if self.holds.create(&key, stamp()).await? {
            return Ok(true);
        }
        match self.holds.get(&key).await? {
            Some(record) if !doom_is_stale(&record.value) => Ok(false),
            // Stale: take it over, unless another collector just did.
            Some(record) => self.holds.update(&key, stamp(), record.revision).await,
            // Lifted meanwhile.
            None => self.holds.create(&key, stamp()).await,
        }
    }

    pub(crate) async fn undoom(&self, hash: ContentHash) -> Result<(), BlobError> {
        self.holds.purge(&doomed_key(hash)).await
    }

    /// The names of the blob's derived objects.
    pub(crate) async fn derived_names(&self, hash: ContentHash) -> Result<Vec<String>, BlobError> {
        let record = self.marks.get(&derived_key(hash)).await?;
        Ok(record.map_or_else(Vec::new, |record| split_names(&record.value)))
    }

    /// Adds `name` to the blob's derived names (compare-and-set, retried on a conflict).
    pub(crate) async fn add_derived_name(
        &self,
        hash: ContentHash,
        name: &str,
    ) -> Result<(), BlobError> {
        let key = derived_key(hash);
        for _ in 0..DERIVED_NAME_RETRIES {
            let record = self.marks.get(&key).await?;
            let mut names = record
                .as_ref()
                .map_or_else(Vec::new, |record| split_names(&record.value));
            if names.iter().any(|known| known == name) {
                return Ok(());
            }
            names.push(name.to_owned());
            let value = Bytes::from(names.join("\n"));
            let written = match &record {
                Some(record) => self.marks.update(&key, value, record.revision).await?,
                None => self.marks.create(&key, value).await?,
            };
            if written {
                return Ok(());
            }
        }
        Err(nats_failed(
            "recording a derived name",
            format!("{key} kept changing under {DERIVED_NAME_RETRIES} tries"),
        ))
    }

    pub(crate) async fn forget_derived_names(&self, hash: ContentHash) -> Result<(), BlobError> {
        self.marks.purge(&derived_key(hash)).await
    }

    pub(crate) async fn attachments_position(&self) -> Result<Option<u64>, BlobError> {
        match self.marks.get(POSITION_KEY).await? {
            None => Ok(None),
            Some(record) => std::str::from_utf8(&record.value)
                .ok()
                .and_then(|text| text.trim().parse().ok())
                .map(Some)
                .ok_or_else(|| {
                    nats_failed(
                        "reading the attachments position",
                        format!("{POSITION_KEY} does not hold a log position"),
                    )
                }),
        }
    }

    pub(crate) async fn set_attachments_position(&self, position: u64) -> Result<(), BlobError> {
        self.marks
            .put(POSITION_KEY, Bytes::from(position.to_string()))
            .await
    }
}

fn kept_key(hash: ContentHash) -> String {
    format!("{KEPT_PREFIX}{}", hash.to_hex())
}

fn doomed_key(hash: ContentHash) -> String {
    format!("{DOOMED_PREFIX}{}", hash.to_hex())
}

fn derived_key(hash: ContentHash) -> String {
    format!("{DERIVED_PREFIX}{}", hash.to_hex())
}

fn doom_is_stale(value: &[u8]) -> bool {
    let stamped = std::str::from_utf8(value)
        .ok()
        .and_then(|text| text.trim().parse::<u64>().ok());
    match stamped {
        Some(at) => now_ms().saturating_sub(at) > DOOM_STALE_AFTER.as_millis() as u64,
        None => true,
    }
}

fn split_names(value: &[u8]) -> Vec<String> {
    String::from_utf8_lossy(value)
        .lines()
        .filter(|line| !line.is_empty())
        .map(str::to_owned)
        .collect()
}
