//! `parlor audit verify --nats-url`: verifies a running system's hash chain through its writer's
//! `parlor.log.read`, asking for each event's stored record bytes (`raw`), with the same checks
//! (`eventlog::ChainVerifier`) and the same output as the stopped mode.

use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use bus::{Bus, Headers};
use eventlog::{ChainVerifier, Corruption, VerifyReport};
use protocol::{Format, LogReadReply, LogReadRequest, HEADER_CONTENT_TYPE, LOG_READ_EVENTS_MAX};

use crate::audit::{print_verdict, ExpectedHead};

/// How long one `log.read` page may take to arrive: a full page is 1 MiB read from sled, so a
/// slower answer means the writer is gone or stuck, not busy.
const PAGE_TIMEOUT: Duration = Duration::from_secs(30);

/// Verifies the log of the system behind `nats_url` from position 1 up to the head its writer
/// reports with the first page (events appended meanwhile are beyond it and left out), prints
/// the outcome like the stopped mode, and fails naming the first bad position.
pub async fn verify(
    nats_url: &str,
    subject_prefix: &str,
    expect_head: Option<&str>,
) -> anyhow::Result<()> {
    let expected = ExpectedHead::parse(expect_head)?;
    let bus = Bus::connect(nats_url, "parlor-audit-verify")
        .await
        .with_context(|| format!("connecting to NATS at {nats_url}"))?;
    let started = Instant::now();
    let verdict = verify_pages(&bus, subject_prefix, &expected).await?;
    print_verdict(verdict, &expected, started)
}

/// Pages through `log.read` with `raw`, feeding every record to a [`ChainVerifier`]. The outer
/// error is for the transport (no writer, a timeout, an unreadable reply); the inner result is
/// the verdict on the log.
async fn verify_pages(
    bus: &Bus,
    subject_prefix: &str,
    expected: &ExpectedHead,
) -> anyhow::Result<Result<VerifyReport, Corruption>> {
    let subject = format!("{subject_prefix}.log.read");
    let mut chain = ChainVerifier::new(expected.anchor);
    // The head to verify up to: the one the writer reports with the first page.
    let mut target = None;
    loop {
        let from = chain.next_position();
        if target.is_some_and(|target| from > target) {
            break;
        }
        let reply = read_page(bus, &subject, from).await?;
        let target = *target.get_or_insert(reply.head);
        let mut fed = false;
        for event in reply.events {
            if event.position > target {
                break;
            }
            let Some(raw) = event.raw else {
                bail!(
                    "the writer's log.read reply has no record bytes at position {} \
                     (a writer too old for \"raw\": true cannot be verified live; stop it and \
                     use --data-dir)",
                    event.position
                );
            };
            if let Err(corruption) = chain.push(event.position, &raw) {
                return Ok(Err(corruption));
            }
            // The hash the writer shows must be the one the chain computes from its bytes.
            let computed = chain.head().hash;
            if computed.0 != event.hash.0 {
                return Ok(Err(Corruption {
                    position: event.position,
                    reason: format!(
                        "the writer shows hash {} but the record's bytes chain to {computed}",
                        event.hash
                    ),
                }));
            }
            fed = true;
        }
        if !fed {
            // Nothing more at `from` although the head announced is beyond it: the log the
            // writer serves ends early. `expect_end` below names the first missing position.
            break;
        }
    }
    let target = target.unwrap_or(0);
    let verdict = chain
        .expect_end(target)
        .and_then(|()| chain.check_anchor())
        .map(|()| chain.report());
    Ok(verdict)
}

/// One `log.read` page from `from` with record bytes, in bincode (no base64, no JSON of the
/// events). A writer's error reply (JSON `{"error": …}`) becomes an error quoting it.
async fn read_page(bus: &Bus, subject: &str, from: u64) -> anyhow::Result<LogReadReply> {
    let request = LogReadRequest::new(from, LOG_READ_EVENTS_MAX)
        .map_err(|invalid| anyhow::anyhow!("log.read from {from}: {invalid}"))?
        .with_raw(true);
    let format = Format::Bincode;
    let payload = request.encode(format)?;
    let headers = Headers::new().with(HEADER_CONTENT_TYPE, format.content_type());
    let reply = bus
        .request(subject, headers, payload, PAGE_TIMEOUT)
        .await
        .with_context(|| format!("asking {subject} for the log from position {from}"))?;
    let reply_format =
        Format::from_content_type(reply.headers.get(HEADER_CONTENT_TYPE)).unwrap_or(format);
    LogReadReply::decode(&reply.payload, reply_format).map_err(|error| {
        let start: String = String::from_utf8_lossy(&reply.payload)
            .chars()
            .take(300)
            .collect();
        anyhow::anyhow!("{subject} from position {from}: {error}; the reply starts {start:?}")
    })
}
