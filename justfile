# Parlor's everyday commands. `just --list` shows them.

export CARGO_TARGET_DIR := env_var_or_default("CARGO_TARGET_DIR", "/var/tmp/parlor-target")

# Run everything in one process with embedded defaults.
up *ARGS:
    cargo run --release -p parlor -- up {{ARGS}}

# The whole test suite (starts its own nats-server).
test:
    cargo test --workspace

# The web client's browser tests (Debian's chromium; makes a venv on first use).
web-test *ARGS:
    tests/web/run {{ARGS}}

# The HTTP API fuzzed against its OpenAPI document (schemathesis; makes a venv on first use):
# `just api-fuzz`, or `PARLOR_FUZZ_EXAMPLES=200 just api-fuzz --seed 1`.
api-fuzz *ARGS:
    tests/api-fuzz/run {{ARGS}}

# Crash test with more cycles than CI runs.
crash cycles="20":
    PARLOR_CRASH_CYCLES={{cycles}} EVENTLOG_CRASH_CYCLES={{cycles}} cargo test --workspace crash -- --nocapture

# Chaos test (NATS cluster, replicas, two gateways under load) with more rounds than CI runs.
chaos rounds="20":
    PARLOR_CHAOS_ROUNDS={{rounds}} cargo test -p parlor --test e2e chaos -- --nocapture

# HA failover test with more leader kills than CI runs (needs tests/support/nats-server-215).
failover rounds="20":
    PARLOR_NATS_SERVER_215="$(tests/support/nats-server-215)" PARLOR_FAILOVER_ROUNDS={{rounds}} cargo test -p parlor --test e2e failover -- --nocapture

# Formatting and lints, as CI checks them.
lint:
    cargo fmt --all -- --check
    cargo clippy --workspace --all-targets -- -D warnings

# Benchmarks (release build): `just bench b1 --runs 3`; workloads b1, b2, b3, b4, b5, b6, b7, b1-ha, fsync, all.
bench *ARGS:
    cargo build --release -p parlor -p bench
    "$CARGO_TARGET_DIR/release/parlor-bench" {{ARGS}}

# B1 against HA writers on a three-node nats-server 2.15 cluster (installs 2.15 in a venv first):
# `just bench-ha --runs 3 --takeovers 5`.
bench-ha *ARGS:
    cargo build --release -p parlor -p bench
    PARLOR_NATS_SERVER_215="$(tests/support/nats-server-215)" "$CARGO_TARGET_DIR/release/parlor-bench" b1-ha {{ARGS}}
