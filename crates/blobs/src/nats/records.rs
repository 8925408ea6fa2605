//! Small keyed records on a JetStream stream in the key-value layout (stream `KV_<bucket>`,
//! subjects `$KV.<bucket>.<key>`, one message kept per key), so that `nats kv` can read them.
//!
//! async-nats' own key-value API is not used: opening a bucket asks for the account's
//! information, whose reply from nats-server 2.9 it cannot decode (it expects 2.10's fields).
//! Only 2.9 features are used here: direct get (also with a wildcard `next_by_subj` to list),
//! rollups, and `Nats-Expected-Last-Subject-Sequence` for compare-and-set.

use async_nats::jetstream::{self, context::PublishErrorKind, stream::DirectGetErrorKind};
use async_nats::HeaderMap;
use bytes::Bytes;

use super::{bounded, nats_failed};
use crate::BlobError;

/// A record's value and its revision (the stream sequence of its message).
pub(crate) struct Record {
    pub(crate) value: Bytes,
    pub(crate) revision: u64,
}

/// One bucket of records.
pub(crate) struct Records {
    bucket: String,
    jetstream: jetstream::Context,
    stream: jetstream::stream::Stream,
}

impl Records {
    /// Opens the bucket, creating its stream when it does not exist.
    pub(crate) async fn open(
        jetstream: jetstream::Context,
        bucket: String,
        replicas: usize,
    ) -> Result<Records, BlobError> {
        let doing = format!("opening the bucket {bucket}");
        let config = jetstream::stream::Config {
            name: format!("KV_{bucket}"),
            description: Some("Parlor's blob records (crates/blobs)".to_owned()),
            subjects: vec![format!("$KV.{bucket}.>")],
            max_messages_per_subject: 1,
            num_replicas: replicas,
            allow_rollup: true,
            deny_delete: true,
            allow_direct: true,
            ..Default::default()
        };
        let stream = match jetstream.get_or_create_stream(config).await {
            Ok(stream) => stream,
            Err(error) => return Err(nats_failed(&doing, error)),
        };
        Ok(Records {
            bucket,
            jetstream,
            stream,
        })
    }

    fn subject(&self, key: &str) -> String {
        format!("$KV.{}.{key}", self.bucket)
    }

    pub(crate) async fn get(&self, key: &str) -> Result<Option<Record>, BlobError> {
        match self
            .stream
            .direct_get_last_for_subject(self.subject(key))
            .await
        {
            Ok(message) => Ok(Some(Record {
                value: message.payload,
                revision: message.sequence,
            })),
            Err(error) if error.kind() == DirectGetErrorKind::NotFound => Ok(None),
            Err(error) => Err(nats_failed(&format!("reading {key}"), error)),
        }
    }

    /// Writes `value` under `key` whatever was there.
    pub(crate) async fn put(&self, key: &str, value: Bytes) -> Result<(), BlobError> {
        self.publish(key, value, None).await.map(|_| ())
    }

    /// Writes `value` under `key` only if `key` holds nothing; false when it does.
    pub(crate) async fn create(&self, key: &str, value: Bytes) -> Result<bool, BlobError> {
        self.publish(key, value, Some(0)).await
    }

    /// Writes `value` under `key` only if its revision is still `revision`; false otherwise.
    pub(crate) async fn update(
        &self,
        key: &str,
        value: Bytes,
        revision: u64,
    ) -> Result<bool, BlobError> {
        self.publish(key, value, Some(revision)).await
    }

    /// Publishes a record; false when `expected` (the key's last revision, 0 for none) no
    /// longer holds.
    async fn publish(
        &self,
        key: &str,
        value: Bytes,
        expected: Option<u64>,
    ) -> Result<bool, BlobError> {
        let doing = format!("writing {key}");
        let mut headers = HeaderMap::new();
        headers.insert("Nats-Rollup", "sub");
        if let Some(revision) = expected {
            headers.insert(
                "Nats-Expected-Last-Subject-Sequence",
                revision.to_string().as_str(),
            );
        }
        let ack = bounded(&doing, async {
            self.jetstream
                .publish_with_headers(self.subject(key), headers, value)
                .await
                .map_err(|error| nats_failed(&doing, error))
        })
        .await?;
        match ack.await {
            Ok(_) => Ok(true),
            Err(error) if error.kind() == PublishErrorKind::WrongLastSequence => Ok(false),
            Err(error) => Err(nats_failed(&doing, error)),
        }
    }

    /// Removes `key` and its value.
    pub(crate) async fn purge(&self, key: &str) -> Result<(), BlobError> {
        self.stream
            .purge()
            .filter(self.subject(key))
            .await
            .map(|_| ())
            .map_err(|error| nats_failed(&format!("removing {key}"), error))
    }

    /// Every record whose key starts with `prefix.` (a whole token), with its key.
    pub(crate) async fn list(&self, prefix: &str) -> Result<Vec<(String, Record)>, BlobError> {
        let doing = format!("listing {prefix}.*");
        let filter = self.subject(&format!("{prefix}.>"));
        let subject_start = self.subject("").len();
        let mut found = Vec::new();
        let mut next = 1;
        loop {
            let message = bounded(&doing, async {
                match self
                    .stream
                    .direct_get_next_for_subject(filter.clone(), Some(next))
                    .await
                {
                    Ok(message) => Ok(Some(message)),
                    Err(error) if error.kind() == DirectGetErrorKind::NotFound => Ok(None),
                    Err(error) => Err(nats_failed(&doing, error)),
                }
            })
            .await?;
            let Some(message) = message else {
                return Ok(found);
            };
            next = message.sequence.saturating_add(1);
            let key = message
                .subject
                .as_str()
                .get(subject_start..)
                .unwrap_or_default()
                .to_owned();
            found.push((
                key,
                Record {
                    value: message.payload,
                    revision: message.sequence,
                },
            ));
        }
    }
}
