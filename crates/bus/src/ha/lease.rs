//! The leader lease: one key in a JetStream key-value bucket whose entries expire after the
//! lease's time to live (the bucket's `max_age`). A contender takes the lease by creating the
//! key (which succeeds only while nobody holds it) and keeps it by compare-and-set updates on
//! the revision it last wrote; the revision of the create is the leader's epoch, larger than
//! every earlier epoch because a stream's sequences only grow.
//!
//! The lease alone is not what keeps a deposed leader from writing (a paused process cannot
//! see its lease run out); that is the write-ahead log's expected sequence. The lease decides
//! who should lead; [`Held::is_valid`] tells a leader when to stop acting on it, counted from
//! the moment before its last successful renewal was *sent*, so it ends before the server's
//! expiry of that write.

use std::time::{Duration, Instant};

use async_nats::jetstream::kv;
use bytes::Bytes;

use super::{context, HaError};
use crate::Bus;

/// Where the lease lives and how long it lasts.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LeaseOptions {
    /// The key-value bucket (`parlor_writer_lease`).
    pub bucket: String,
    /// The key in it (`leader`).
    pub key: String,
    /// How long a lease lasts after its last renewal (the bucket's `max_age`).
    pub ttl: Duration,
    /// Replicas of the bucket (3 in a three-server cluster; 1 on a single server).
    pub replicas: usize,
}

impl LeaseOptions {
    /// The lease of writers under `subject_prefix`: bucket `<prefix>_writer_lease`, key
    /// `leader`, time to live `ttl`, three replicas.
    pub fn new(subject_prefix: &str, ttl: Duration) -> LeaseOptions {
        LeaseOptions {
            bucket: format!("{}_writer_lease", subject_prefix.replace('.', "_")),
            key: "leader".to_owned(),
            ttl,
            replicas: 3,
        }
    }

    /// How often a leader renews: three times per time to live, so two renewals may fail (a
    /// server restarting, a slow ack) before the lease runs out.
    pub fn renew_every(&self) -> Duration {
        self.ttl / 3
    }

    /// How often a standby tries to take the lease: ten times per time to live. A takeover
    /// waits for the dead leader's lease to run out and then for a standby's next try, so this
    /// adds up to ttl/10 to it (ttl/3 before). A try while the lease is held is a create that
    /// the bucket's leader server refuses without storing anything, so the extra tries cost a
    /// small request each, not a write.
    pub fn contend_every(&self) -> Duration {
        self.ttl / 10
    }
}

/// The lease bucket, as one contender sees it.
#[derive(Clone, Debug)]
pub struct Lease {
    store: kv::Store,
    options: LeaseOptions,
}

/// A lease this contender holds.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Held {
    /// The revision that created the lease: the leader's epoch.
    pub epoch: u64,
    /// Who holds it (the value of the key).
    pub holder: String,
    /// The revision of the last write, which the next renewal must follow.
    revision: u64,
    /// When to stop acting on it unless renewed.
    valid_until: Instant,
}

impl Held {
    /// Whether the lease still stands as far as this holder can tell (see the module's note).
    pub fn is_valid(&self) -> bool {
        Instant::now() < self.valid_until
    }

    /// When it ends unless renewed.
    pub fn valid_until(&self) -> Instant {
        self.valid_until
    }
}

impl Lease {
    /// Creates the bucket if it does not exist (or uses the existing one) on a NATS bus.
    pub async fn open(bus: &Bus, options: LeaseOptions) -> Result<Lease, HaError> {
        let context = context(bus)?;
        let config = kv::Config {
            bucket: options.bucket.clone(),
            description: "the Parlor writer's leader lease".to_owned(),
            history: 1,
            max_age: options.ttl,
            num_replicas: options.replicas,
            storage: async_nats::jetstream::stream::StorageType::File,
            ..kv::Config::default()
        };
        let store = match context.create_key_value(config).await {
            Ok(store) => store,
            // Another contender made it first, perhaps with other settings: use theirs.
            Err(created) => context
                .get_key_value(options.bucket.clone())
                .await
                .map_err(|got| HaError::JetStream(format!("{created}; then {got}")))?,
        };
        Ok(Lease { store, options })
    }

    /// Takes the lease for `holder` if nobody holds it; `None` while somebody does.
    pub async fn try_acquire(&self, holder: &str) -> Result<Option<Held>, HaError> {
        let sent = Instant::now();
        let value = Bytes::copy_from_slice(holder.as_bytes());
        match self.store.create(&self.options.key, value).await {
            Ok(revision) => Ok(Some(Held {
                epoch: revision,
                holder: holder.to_owned(),
                revision,
                valid_until: self.valid_from(sent),
            })),
            Err(error) if error.kind() == kv::CreateErrorKind::AlreadyExists => Ok(None),
            Err(error) => Err(HaError::from_display(error)),
        }
    }

    /// Renews `held`: `Ok(true)` when renewed, `Ok(false)` when the lease is no longer this
    /// holder's (it expired, or somebody else took it); an error when the renewal could not be
    /// made, in which case the caller tries again while `held.is_valid()`.
    pub async fn renew(&self, held: &mut Held) -> Result<bool, HaError> {
        let sent = Instant::now();
        let value = Bytes::copy_from_slice(held.holder.as_bytes());
        match self
            .store
            .update(&self.options.key, value, held.revision)
            .await
        {
            Ok(revision) => {
                held.revision = revision;
                held.valid_until = self.valid_from(sent);
                Ok(true)
            }
            Err(error) if error.kind() == kv::UpdateErrorKind::WrongLastRevision => Ok(false),
            Err(error) => Err(HaError::from_display(error)),
        }
    }

    /// Gives the lease up at once (a clean shutdown), so a standby need not wait for it to
    /// expire. Only the holder's own revision is deleted; a lease already taken over stays.
    pub async fn release(&self, held: Held) -> Result<(), HaError> {
        self.store
            .delete_expect_revision(&self.options.key, Some(held.revision))
            .await
            .map_err(HaError::from_display)
    }

    /// Who holds the lease now and since which epoch-or-renewal revision, if anybody.
    pub async fn holder(&self) -> Result<Option<(String, u64)>, HaError> {
        let entry = self
            .store
            .entry(self.options.key.clone())
            .await
            .map_err(HaError::from_display)?;
        Ok(entry.and_then(|entry| match entry.operation {
            kv::Operation::Put => Some((
                String::from_utf8_lossy(&entry.value).into_owned(),
                entry.revision,
            )),
            kv::Operation::Delete | kv::Operation::Purge => None,
        }))
    }

    /// The lease's settings.
    pub fn options(&self) -> &LeaseOptions {
        &self.options
    }

    /// When a lease written at `sent` stops being safe to act on: a fifth of the time to live
    /// before the server's expiry, for the clocks of the two machines running at different
    /// rates and the scheduling delay of the holder's check.
    fn valid_from(&self, sent: Instant) -> Instant {
        sent + self.options.ttl - self.options.ttl / 5
    }
}
