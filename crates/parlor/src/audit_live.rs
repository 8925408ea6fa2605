//! `parlor audit verify --nats-url`: verifies a running system's hash chain through its writer's
//! `parlor.log.read`, asking for each event's stored record bytes (`raw`), with the same checks
//! (`eventlog::ChainVerifier`) and the same output as the stopped mode. The pages come from a
//! log-only [`bus::LogFollower`], which reads the next page while one is verified.

use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use bus::{Bus, FollowOptions, LogFollower};
use eventlog::{ChainVerifier, Corruption, VerifyReport};
use protocol::{Format, LOG_READ_EVENTS_MAX};

use crate::audit::{print_verdict, ExpectedHead};

/// How long one `log.read` page may take to arrive: a full page is 1 MiB read from sled, so a
/// slower answer means the writer is gone or stuck, not busy.
const PAGE_TIMEOUT: Duration = Duration::from_secs(30);

/// Verifies the log of the system behind `nats` (servers, credentials, TLS) from position 1 up
/// to the head its writer reports with the first page (events appended meanwhile are beyond it
/// and left out), prints the outcome like the stopped mode, and fails naming the first bad
/// position.
pub async fn verify(
    nats: &bus::NatsOptions,
    subject_prefix: &str,
    expect_head: Option<&str>,
) -> anyhow::Result<()> {
    let expected = ExpectedHead::parse(expect_head)?;
    let bus = Bus::connect_with(nats)
        .await
        .with_context(|| format!("connecting to NATS at {}", nats.servers_text()))?;
    let started = Instant::now();
    let verdict = verify_pages(&bus, subject_prefix, &expected).await?;
    print_verdict(verdict, &expected, started)
}

/// Pages through `log.read` with `raw` (bincode: no base64, no JSON of the events), feeding
/// every record to a [`ChainVerifier`]. The outer error is for the transport (no writer, a
/// timeout, an unreadable reply); the inner result is the verdict on the log.
async fn verify_pages(
    bus: &Bus,
    subject_prefix: &str,
    expected: &ExpectedHead,
) -> anyhow::Result<Result<VerifyReport, Corruption>> {
    let mut options = FollowOptions::new(subject_prefix);
    options.format = Format::Bincode;
    options.timeout = PAGE_TIMEOUT;
    options.page_events = LOG_READ_EVENTS_MAX;
    options.raw = true;
    let mut chain = ChainVerifier::new(expected.anchor);
    let mut pages = LogFollower::log_only(bus, &options, chain.next_position() - 1);
    // The head to verify up to: the one the writer reports with the first page.
    let mut target = None;
    loop {
        let from = chain.next_position();
        if target.is_some_and(|target| from > target) {
            break;
        }
        let page = match pages.read_page().await {
            Ok(page) => page,
            // Nothing at `from` although the head announced is beyond it: the log the writer
            // serves ends early. `expect_end` below names the first missing position.
            Err(bus::FollowError::Missing { head, .. }) => {
                target.get_or_insert(head);
                break;
            }
            Err(error) => {
                return Err(error)
                    .with_context(|| format!("asking {subject_prefix}.log.read for the log"))
            }
        };
        let target = *target.get_or_insert(page.head);
        if page.events.is_empty() {
            break;
        }
        for event in page.events {
            if event.position > target {
                break;
            }
            let Some(raw) = event.raw.as_deref() else {
                bail!(
                    "the writer's log.read reply has no record bytes at position {} \
                     (a writer too old for \"raw\": true cannot be verified live; stop it and \
                     use --data-dir)",
                    event.position
                );
            };
            if let Err(corruption) = chain.push(event.position, raw) {
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
        }
    }
    let target = target.unwrap_or(0);
    let verdict = chain
        .expect_end(target)
        .and_then(|()| chain.check_anchor())
        .map(|()| chain.report());
    Ok(verdict)
}
