//! End-to-end tests: the real `parlor` binary against a real `nats-server`, driven the way
//! other services drive it (JSON over NATS request/reply).
//!
//! Modules:
//! - `harness`: starts nats-server and parlor, sends commands, reads the log.
//! - `commands`: every reachable error code, idempotent resends, validation of raw payloads.
//! - `events`: publication order and headers, `log.read` paging, the single-writer rule.
//! - `lifecycle`: clean shutdown and restart with the state intact.
//! - `crash`: SIGKILL under load; nothing acknowledged is lost or duplicated.
//! - `failover`: HA writers (`parlor writer --ha`) on a three-node nats-server 2.15 cluster:
//!   the leader killed under load, a paused leader resumed after a takeover, a standby behind,
//!   a standby serving reads while the leader is paused.
//! - `http`: the HTTP API of `parlor up` (frontends' view), access refusals, hostile input.
//! - `readside`: read models over NATS follow the log; a replay answers the same.
//! - `reliability`: a full disk, overload.
//! - `audit`: verify catches tampering; room history as of a moment; export → import.
//! - `views`: one view on every path (H-V1), the event stream as the caller's view (H-V2), its
//!   limits (H-L4).
//! - `limits`: the gateway's limits through `parlor up`'s flags (H-L2, H-L3, H-L5).
//! - `operator`: `parlor status` over NATS, start-up errors that name the flag, help examples.
//! - `chaos`: a three-node NATS cluster, replicas and two gateways under load while NATS nodes,
//!   projector replicas and gateways are killed and restarted; nothing lost or duplicated.
//! - `deployment`: a Parlor of separate processes (writer, projector replicas, gateways on the
//!   NATS object store), each on the NATS URL it is given.
//! - `replicas`: two gateways and two replicas of every projector serve the same users.
//! - `chain`: the real writer's live events chain as a follower checks them (H-N2).
//! - `connections`: a part started before NATS waits for it; a list of servers.
//! - `quickstart`: `parlor up` with no NATS serves the HTTP API, files on the local disk.
//! - `identity`: `parlor token` and the gateway's token checks; a private data directory; the
//!   public `/healthz` and the operator address.
//! - `permissions`: the NATS cluster configuration of deploy/nats-cluster (H-N1): each part's
//!   user may do exactly what the part needs, over TLS, with routes authenticated.
//! - `ha_permissions`: the same configuration with ha.conf on nats-server 2.15: HA writers as
//!   the `writer` user lead and fail over; that user is refused JetStream beyond its own lease
//!   and write-ahead log, and the other users those.

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod harness;

mod audit;
mod chain;
mod chaos;
mod commands;
mod connections;
mod crash;
mod deployment;
mod events;
mod failover;
mod ha_permissions;
mod http;
mod identity;
mod lifecycle;
mod limits;
mod operator;
mod permissions;
mod quickstart;
mod readside;
mod reliability;
mod replicas;
mod views;
