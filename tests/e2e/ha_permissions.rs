//! security.md H-N1 for HA writers (`parlor writer --ha`, issue 16): three nats-server 2.15
//! nodes run deploy/nats-cluster as shipped with ha.conf included (ports and paths substituted,
//! certificates made here), two HA writers connect as the `writer` user over TLS, and with only
//! that user's JetStream grants they elect a leader, answer commands, and fail over when the
//! leader is killed, hitting no refusal; while the `writer` user is refused every JetStream
//! operation beyond its own lease and write-ahead log, and the other users are refused both.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use bus::{Bus, Headers};
use serde_json::{json, Value};
use uuid::Uuid;

use crate::harness::{json_headers, log_file, read_logs, spawn_part_with_env, Parlor, REPLY_WAIT};
use crate::permissions::{refused, Deployment, Op, Variant};

/// The lease's time to live: a dead leader is replaced about this long after its last renewal.
const LEASE_TTL_MS: &str = "2000";

/// How long the writers may take to elect a leader (the first one creates the streams).
const LEADER_WAIT: Duration = Duration::from_secs(60);

/// What the `writer` user may not do with JetStream although it uses JetStream: another
/// stream, changing or reading its streams otherwise than the writer does, consumers, listing,
/// the gateway's file bytes; and, as without --ha, sending commands.
const WRITER_REFUSED: &[(Op, &str)] = &[
    (Op::Publish, "$JS.API.STREAM.CREATE.PARLOR_OTHER"),
    (Op::Publish, "$JS.API.STREAM.CREATE.KV_other"),
    (Op::Publish, "$JS.API.STREAM.DELETE.PARLOR_WAL"),
    (Op::Publish, "$JS.API.STREAM.PURGE.PARLOR_WAL"),
    (Op::Publish, "$JS.API.STREAM.UPDATE.PARLOR_WAL"),
    (Op::Publish, "$JS.API.STREAM.MSG.DELETE.PARLOR_WAL"),
    (Op::Publish, "$JS.API.STREAM.DELETE.KV_parlor_writer_lease"),
    (Op::Publish, "$JS.API.CONSUMER.CREATE.PARLOR_WAL"),
    (Op::Publish, "$JS.API.STREAM.LIST"),
    (Op::Publish, "$JS.API.STREAM.NAMES"),
    (Op::Publish, "$JS.API.STREAM.INFO.OBJ_parlor-blobs"),
    (Op::Publish, "$JS.API.DIRECT.GET.OBJ_parlor-blobs"),
    (Op::Publish, "$KV.parlor-blobs-holds.forged"),
    (Op::Publish, "$KV.parlor_writer_lease.other"),
    (Op::Publish, "parlor.wal_appended"),
    (Op::Publish, "parlor.cmd.message.send"),
    (Op::Subscribe, "parlor.wal"),
    (Op::Subscribe, "$JS.API.>"),
];

/// What the other users may not do with the writers' lease and log: take or drop the lease,
/// append to, read or purge the log, or hear its appends.
const OTHERS_REFUSED: &[(&str, &[(Op, &str)])] = &[
    (
        "gateway",
        &[
            (Op::Publish, "$KV.parlor_writer_lease.leader"),
            (Op::Publish, "$JS.API.STREAM.CREATE.KV_parlor_writer_lease"),
            (Op::Publish, "parlor.wal"),
            (Op::Publish, "$JS.API.STREAM.MSG.GET.PARLOR_WAL"),
            (Op::Publish, "$JS.API.STREAM.PURGE.PARLOR_WAL"),
            (Op::Subscribe, "parlor.wal"),
            (Op::Subscribe, "parlor.wal_appended"),
        ],
    ),
    (
        "projector-rooms",
        &[
            (Op::Publish, "parlor.wal"),
            (Op::Publish, "$JS.API.STREAM.INFO.PARLOR_WAL"),
            (Op::Subscribe, "parlor.wal"),
        ],
    ),
    (
        "operator",
        &[
            (Op::Publish, "$KV.parlor_writer_lease.leader"),
            (
                Op::Publish,
                "$JS.API.DIRECT.GET.KV_parlor_writer_lease.$KV.parlor_writer_lease.leader",
            ),
        ],
    ),
];

/// The description of the lease bucket the test makes before the writers start.
const PREMADE: &str = "the Parlor writer's leader lease, made before the writers";

/// A key-value bucket's stream configuration as async-nats makes the writers' lease bucket
/// (one value per key, entries gone after the lease's time to live, direct gets), with
/// `description`.
fn lease_bucket(description: &str) -> Value {
    let ttl_ms: u64 = LEASE_TTL_MS.parse().unwrap();
    json!({
        "name": "KV_parlor_writer_lease",
        "description": description,
        "subjects": ["$KV.parlor_writer_lease.>"],
        "retention": "limits",
        "max_msgs_per_subject": 1,
        "max_age": ttl_ms * 1_000_000,
        "storage": "file",
        "num_replicas": 3,
        "discard": "new",
        "allow_rollup_hdrs": true,
        "deny_delete": true,
        "allow_direct": true,
    })
}

/// One HA writer as the `writer` user: its name, data directory and process.
struct HaWriter {
    name: String,
    data: PathBuf,
    process: Parlor,
}

impl HaWriter {
    fn start(deployment: &Deployment, name: &str, node: usize) -> HaWriter {
        let data = deployment.dir.path().join("writers").join(name);
        std::fs::create_dir_all(&data).unwrap();
        // Its own node first, the others after: a list, as a deployment gives it.
        let mut urls = deployment.urls.clone();
        urls.rotate_left(node);
        let mut args: Vec<String> = ["writer", "--ha", "--ha-name", name, "--ha-lease-ttl-ms"]
            .iter()
            .map(|arg| (*arg).to_owned())
            .collect();
        args.push(LEASE_TTL_MS.to_owned());
        args.extend(deployment.part_flags("writer", &urls.join(",")));
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let process = spawn_part_with_env(&args, &data, log_file(&data), &[]);
        HaWriter {
            name: name.to_owned(),
            data,
            process,
        }
    }
}

/// The writers' logs, each under its name.
fn logs(writers: &[HaWriter]) -> String {
    writers
        .iter()
        .map(|writer| format!("--- {}\n{}", writer.name, read_logs(&writer.data)))
        .collect()
}

/// Waits (bounded) for a leader with an epoch above `after`.
async fn wait_for_leader(operator: &Bus, after: u64, writers: &mut [HaWriter]) -> (String, u64) {
    let deadline = Instant::now() + LEADER_WAIT;
    loop {
        if let Some((name, epoch)) = crate::harness::ha_leader(operator).await {
            if epoch > after {
                return (name, epoch);
            }
        }
        // A writer that exits by itself (not killed here: no exit code) fails the test now.
        let exited = writers
            .iter_mut()
            .find_map(|writer| match writer.process.child.try_wait() {
                Ok(Some(status)) if status.code().is_some() => {
                    Some(format!("{} exited with {status}", writer.name))
                }
                _ => None,
            });
        if let Some(exited) = exited {
            panic!("{exited}: {}", logs(writers));
        }
        assert!(
            Instant::now() < deadline,
            "no leader after epoch {after} within {LEADER_WAIT:?}: {}",
            logs(writers)
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Sends `user.register` for `user` with `command_id` as the identity service and returns the
/// reply, which must be a success.
async fn register(identity: &Bus, command_id: Uuid, user: &str) -> Value {
    let envelope = json!({
        "command_id": command_id,
        "actor": "service:identity",
        "data": {"user_id": user, "display_name": user.to_uppercase(), "kind": "freelancer"},
    });
    let reply = identity
        .request(
            "parlor.cmd.user.register",
            json_headers(),
            envelope.to_string(),
            REPLY_WAIT,
        )
        .await
        .unwrap_or_else(|error| panic!("user.register {user}: {error}"));
    let reply: Value = serde_json::from_slice(&reply.payload).unwrap();
    assert_eq!(reply["ok"], true, "user.register {user}: {reply}");
    reply
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn h_n1_ha_writers_on_the_shipped_configuration_fail_over_within_the_writers_grants() {
    let deployment = Deployment::start_variant(Variant::Ha).await;
    let urls = deployment.urls.clone();
    deployment.wait_for_jetstream().await;

    // The lease bucket made beforehand with other settings than the writers' (as an operator
    // or an earlier Parlor may have): each writer's create is then refused by JetStream and
    // it opens the bucket as it is, through the bucket's stream info; so every grant of the
    // writer's user is used below.
    let writer = deployment.connect("writer", &urls[0]).await;
    let made = writer
        .request(
            "$JS.API.STREAM.CREATE.KV_parlor_writer_lease",
            Headers::new(),
            lease_bucket(PREMADE).to_string(),
            REPLY_WAIT,
        )
        .await
        .expect("the writer's user may create its lease bucket");
    let made: Value = serde_json::from_slice(&made.payload).unwrap();
    assert!(made["config"].is_object(), "{made}");

    // Two HA writers as the `writer` user, on nodes 1 and 2; one leads.
    let mut writers = vec![
        HaWriter::start(&deployment, "wa", 0),
        HaWriter::start(&deployment, "wb", 1),
    ];
    let operator = deployment.connect("operator", &urls[2]).await;
    let (first, epoch) = wait_for_leader(&operator, 0, &mut writers).await;

    // Commands are answered (each batch in the write-ahead log first, then the local log).
    let identity = deployment.connect("identity", &urls[2]).await;
    let before_kill = Uuid::new_v4();
    let answered = register(&identity, before_kill, "alice").await;
    register(&identity, Uuid::new_v4(), "bob").await;

    // The leader killed: the standby takes the lease over, reads the log to its end, answers.
    let index = writers.iter().position(|w| w.name == first).unwrap();
    writers[index].process.kill();
    let (second, second_epoch) = wait_for_leader(&operator, epoch, &mut writers).await;
    assert_ne!(second, first, "the standby leads after the kill");
    let after = register(&identity, Uuid::new_v4(), "carol").await;
    let (answered_at, after_at) = (
        answered["events"][0]["position"].as_u64().unwrap(),
        after["events"][0]["position"].as_u64().unwrap(),
    );
    assert!(after_at > answered_at, "{answered} then {after}");
    // A command the killed leader answered is answered the same by the new one: its batch
    // reached the standby through the write-ahead log.
    let again = register(&identity, before_kill, "alice").await;
    assert_eq!(again["events"], answered["events"], "{again} vs {answered}");

    // The writers used the bucket as it was made.
    let bucket = writer
        .request(
            "$JS.API.STREAM.INFO.KV_parlor_writer_lease",
            Headers::new(),
            "",
            REPLY_WAIT,
        )
        .await
        .unwrap();
    let bucket: Value = serde_json::from_slice(&bucket.payload).unwrap();
    assert_eq!(bucket["config"]["description"], PREMADE, "{bucket}");

    // The write-ahead log is the R3 stream the writer's user may ask about, and it holds the
    // batches and the fences of both epochs.
    let info = writer
        .request(
            "$JS.API.STREAM.INFO.PARLOR_WAL",
            Headers::new(),
            "",
            REPLY_WAIT,
        )
        .await
        .expect("the writer's user may ask for its stream's info");
    let info: Value = serde_json::from_slice(&info.payload).unwrap();
    assert_eq!(info["config"]["num_replicas"], 3, "{info}");
    assert!(info["state"]["last_seq"].as_u64().unwrap() >= 5, "{info}");

    // The user may create its two streams, and JetStream does not check a stream's subjects
    // against its creator's permissions: once the writers made them, JetStream refuses to make
    // them again with other subjects (which could copy, say, the gateway's replies for
    // STREAM.MSG.GET to read).
    for (stream, own) in [
        ("PARLOR_WAL", "parlor.wal"),
        ("KV_parlor_writer_lease", "$KV.parlor_writer_lease.>"),
    ] {
        let widened = json!({
            "name": stream,
            "subjects": [own, "_INBOX_gateway.>"],
            "storage": "file",
            "num_replicas": 3,
        });
        let answer = writer
            .request(
                &format!("$JS.API.STREAM.CREATE.{stream}"),
                Headers::new(),
                widened.to_string(),
                REPLY_WAIT,
            )
            .await
            .expect("the writer's user may ask to create its streams");
        let answer: Value = serde_json::from_slice(&answer.payload).unwrap();
        assert!(answer["error"].is_object(), "{stream} widened: {answer}");
        let info = writer
            .request(
                &format!("$JS.API.STREAM.INFO.{stream}"),
                Headers::new(),
                "",
                REPLY_WAIT,
            )
            .await
            .unwrap();
        let info: Value = serde_json::from_slice(&info.payload).unwrap();
        assert_eq!(info["config"]["subjects"], json!([own]), "{info}");
    }

    // The writer's user is refused everything of JetStream beyond its lease and log; the other
    // users are refused those.
    for (op, subject) in WRITER_REFUSED {
        refused(&writer, "writer", *op, subject).await;
    }
    for (user, operations) in OTHERS_REFUSED {
        let bus = deployment.connect(user, &urls[1]).await;
        for (op, subject) in *operations {
            refused(&bus, user, *op, subject).await;
        }
    }

    // A clean stop gives the lease up (a delete on the lease key) and exits cleanly.
    let leading = writers.iter().position(|w| w.name == second).unwrap();
    assert!(
        writers[leading].process.terminate().success(),
        "{second} (epoch {second_epoch}) exits cleanly: {}",
        logs(&writers)
    );

    // The writers never hit a refusal: nothing they need is missing from users.conf.
    let text = logs(&writers);
    assert!(
        !text.to_lowercase().contains("permissions violation"),
        "an HA writer was refused something: {text}"
    );
    assert!(!text.contains("refused an operation"), "{text}");
}
