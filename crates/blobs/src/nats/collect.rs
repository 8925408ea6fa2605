//! Collecting unattached uploads in the NATS store (security.md H-L3), safe against other
//! gateways holding, attaching and collecting at the same time (the protocol is in `holds`).

use std::collections::BTreeMap;

use super::holds::Hold;
use super::NatsBlobStore;
use crate::{BlobError, Collected, ContentHash};

impl NatsBlobStore {
    pub(super) async fn collect(&self, uploaded_before_ms: i64) -> Result<Collected, BlobError> {
        let mut collected = Collected::default();
        for (hash, holds) in by_blob(self.holds.all().await?) {
            let expired: Vec<&String> = holds
                .iter()
                .filter(|(_, hold)| hold.uploaded_at_ms < uploaded_before_ms)
                .map(|(key, _)| key)
                .collect();
            if expired.is_empty() {
                continue;
            }
            if expired.len() == holds.len() && !self.holds.is_kept(hash).await? {
                collected.bytes_deleted = collected.bytes_deleted.saturating_add(
                    self.delete_if_still_unused(hash, uploaded_before_ms)
                        .await?,
                );
                if self.objects_gone(hash).await? {
                    collected.blobs_deleted += 1;
                }
            }
            // The bytes before the records, so that a failure in between retries the deletion.
            for key in expired {
                self.holds.drop_hold(key).await?;
                collected.uploads_dropped += 1;
            }
        }
        self.sweep_orphans_when_due().await;
        Ok(collected)
    }

    /// Dooms the blob, looks again, and deletes it if still nothing keeps it; the bytes freed.
    async fn delete_if_still_unused(
        &self,
        hash: ContentHash,
        uploaded_before_ms: i64,
    ) -> Result<u64, BlobError> {
        if !self.holds.doom(hash).await? {
            // Another gateway is collecting it.
            return Ok(0);
        }
        let outcome = async {
            let young_hold = self
                .holds
                .all()
                .await?
                .values()
                .any(|hold| hold.hash == hash && hold.uploaded_at_ms >= uploaded_before_ms);
            if young_hold || self.holds.is_kept(hash).await? {
                return Ok(0);
            }
            self.delete_blob(hash).await
        }
        .await;
        self.holds.undoom(hash).await?;
        outcome
    }

    async fn objects_gone(&self, hash: ContentHash) -> Result<bool, BlobError> {
        Ok(!self.objects.exists(&hash.to_hex()).await?)
    }
}

fn by_blob(holds: BTreeMap<String, Hold>) -> BTreeMap<ContentHash, Vec<(String, Hold)>> {
    let mut grouped: BTreeMap<ContentHash, Vec<(String, Hold)>> = BTreeMap::new();
    for (key, hold) in holds {
        grouped.entry(hold.hash).or_default().push((key, hold));
    }
    grouped
}
