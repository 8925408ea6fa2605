//! Publishes committed events on `<prefix>.evt.<type>`, in position order, by tailing the log:
//! what is published is read back from the log (and so checked), never taken from memory, and
//! no position can be skipped or repeated by construction. In bincode (the default) the stored
//! bytes are published as they are, framed by the log's fields, without decoding the event.

use std::sync::Arc;

use crate::shared_log::SharedLog;
use bus::{Bus, Headers};
use eventlog::Record;
use protocol::{Format, RecordedEvent};
use tokio::sync::watch;
use tracing::{error, warn};

use crate::{WriterConfig, WriterError};

/// Events read from the log per step.
const PUBLISH_PAGE_EVENTS_MAX: usize = 4_096;

/// Follows the committed head and publishes every event up to it. Ends when the committer
/// has ended and everything it committed is published.
pub(crate) async fn publish_committed(
    config: Arc<WriterConfig>,
    bus: Bus,
    log: SharedLog,
    mut committed: watch::Receiver<u64>,
) -> Result<(), WriterError> {
    // Events committed before this start were published by the previous run (or were lost with
    // it); consumers catch up on those through log.read.
    let mut published = *committed.borrow_and_update();
    loop {
        let head = *committed.borrow_and_update();
        while published < head {
            let from = published + 1;
            let reader = log.clone();
            let records = tokio::task::spawn_blocking(move || {
                reader
                    .get()?
                    .read_from(from, PUBLISH_PAGE_EVENTS_MAX, usize::MAX)
            })
            .await
            .map_err(|e| WriterError::Task(e.to_string()))?;
            let records = match records {
                Ok(records) if !records.is_empty() => records,
                Ok(_) => break,
                Err(log_error) => {
                    // Reading back what was just committed failed: stop publishing rather than
                    // skip; consumers notice the silence at the next event or reconnect.
                    error!(%log_error, from, "cannot read committed events back; publication paused");
                    break;
                }
            };
            for record in records {
                published = record.position;
                let Some((type_name, payload)) = published_form(config.event_format, &record)
                else {
                    continue;
                };
                let subject = config.subject(&format!("evt.{type_name}"));
                let headers = Headers::new()
                    .with(protocol::HEADER_POSITION, record.position.to_string())
                    .with(protocol::HEADER_STREAM, record.stream)
                    .with(protocol::HEADER_VERSION, record.version.to_string())
                    .with("Content-Type", config.event_format.content_type());
                if let Err(bus_error) = bus.publish(&subject, headers, payload).await {
                    // Core NATS may lose a message anyway; consumers close gaps via log.read.
                    warn!(%bus_error, position = published, "could not publish an event");
                }
            }
        }
        if committed.changed().await.is_err() {
            // The committer is done; publish whatever it committed last, then stop.
            if published >= *committed.borrow() {
                return Ok(());
            }
        }
    }
}

/// The type name and payload of the published form of `record`. In bincode the stored bytes are
/// spliced between the log's fields without decoding the event (the same bytes as decoding and
/// encoding, see [`protocol::recorded_bincode_from_stored`]); JSON needs the decoded event.
/// `None` (logged) when the record cannot be published.
fn published_form(format: Format, record: &Record) -> Option<(&'static str, Vec<u8>)> {
    let encoded = match format {
        Format::Bincode => protocol::recorded_bincode_from_stored(
            record.position,
            &record.stream,
            record.version,
            record.hash.0,
            &record.payload,
        ),
        Format::Json => protocol::decode_stored(&record.payload).and_then(|stored| {
            let recorded = RecordedEvent::from_stored(
                record.position,
                record.stream.clone(),
                record.version,
                record.hash.0,
                stored,
            );
            Ok((recorded.type_name(), recorded.encode(Format::Json)?))
        }),
    };
    match encoded {
        Ok(encoded) => Some(encoded),
        Err(codec_error) => {
            error!(%codec_error, position = record.position, "stored event unreadable; not published");
            None
        }
    }
}
