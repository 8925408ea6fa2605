//! security.md H-N1 over the NATS configuration deploy/ ships (deploy/nats-cluster): three real
//! nats-servers run those very files (ports and paths substituted, certificates made here),
//! the real parts connect as their own users over TLS, and every path the parts need works
//! while every publish or subscription outside a user's lines is refused by the server, routes
//! included.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use bus::{Bus, BusError, Headers, NatsAuth, NatsOptions, NatsTls};
use domain::command::COMMAND_TYPES;
use domain::services::DEFAULT_SERVICES;
use serde_json::{json, Value};
use testkit::{ClusterOptions, NatsCluster, NodeLayout};
use uuid::Uuid;

use crate::harness::{
    http_client, json_headers, log_file, read_logs, spawn_part_with_env, Parlor, REPLY_WAIT,
};

/// The configuration under test, as shipped.
const DEPLOY_DIR: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../deploy/nats-cluster");

/// Every user of deploy/nats-cluster/users.conf.
const USERS: [&str; 15] = [
    "writer",
    "projector-rooms",
    "projector-timeline",
    "projector-files",
    "projector-search",
    "projector-moderation",
    "projector-notifications",
    "gateway",
    "identity",
    "hiring",
    "contracts",
    "auditor",
    "operator",
    "notifier",
    // Not a user of the file: proves a name that is not there cannot log in.
    "nobody",
];

/// The read models, each run as its own process with its own user.
const PROJECTORS: [&str; 6] = [
    "rooms",
    "timeline",
    "files",
    "search",
    "moderation",
    "notifications",
];

/// How long the deployment may take to come up (eight processes on a loaded machine).
const DEPLOY_WAIT: Duration = Duration::from_secs(90);

/// How long to wait for the server's refusal of one operation to arrive.
const REFUSAL_WAIT: Duration = Duration::from_secs(10);

/// How long a one-shot command (`parlor audit verify`, `parlor replay`) may run.
const TOOL_WAIT: Duration = Duration::from_secs(60);

/// The route certificate's subject the configuration maps to its only route user.
const ROUTE_SUBJECT: [(&str, &str); 2] = [("O", "parlor"), ("CN", "parlor-route")];

/// A publish or a subscription.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Op {
    Publish,
    Subscribe,
}

/// What each user is refused beyond the commands (which [`commands_follow_the_service_table`]
/// covers for the gateway and the services): reading another's replies or every reply,
/// answering another's queries, forging events, progress or notifications.
const REFUSED: &[(&str, &[(Op, &str)])] = &[
    (
        "writer",
        &[
            (Op::Subscribe, "parlor.query.rooms"),
            (Op::Subscribe, "_INBOX.>"),
            (Op::Subscribe, "_INBOX_gateway.>"),
            (Op::Publish, "parlor.cmd.message.send"),
            (Op::Publish, "parlor.notify.alice"),
        ],
    ),
    (
        "projector-rooms",
        &[
            (Op::Subscribe, "parlor.query.timeline"),
            (Op::Subscribe, "parlor.cmd.>"),
            (Op::Subscribe, "_INBOX_projector_timeline.>"),
            (Op::Publish, "parlor.evt.message_sent"),
            (Op::Publish, "parlor.query.timeline"),
            (Op::Publish, "parlor.admin.replay.timeline.progress"),
        ],
    ),
    (
        "projector-timeline",
        &[
            (Op::Subscribe, "parlor.query.rooms"),
            (Op::Subscribe, "parlor.presence.heartbeat"),
            (Op::Publish, "parlor.notify.alice"),
        ],
    ),
    (
        "projector-files",
        &[
            (Op::Subscribe, "parlor.query.search"),
            (Op::Publish, "parlor.evt.file_registered"),
        ],
    ),
    (
        "projector-search",
        &[
            (Op::Subscribe, "parlor.query.files"),
            (Op::Publish, "parlor.log.read.x"),
        ],
    ),
    (
        "projector-moderation",
        &[
            (Op::Subscribe, "parlor.query.rooms"),
            (Op::Publish, "parlor.audit.head"),
        ],
    ),
    (
        "projector-notifications",
        &[
            (Op::Subscribe, "parlor.query.rooms"),
            (Op::Publish, "parlor.evt.message_sent"),
        ],
    ),
    (
        "gateway",
        &[
            (Op::Publish, "parlor.evt.message_sent"),
            (Op::Publish, "parlor.audit.head"),
            (Op::Publish, "parlor.notify.alice"),
            (Op::Publish, "parlor.query.notifications"),
            (Op::Publish, "parlor.admin.replay.rooms"),
            (Op::Publish, "$JS.API.STREAM.DELETE.OBJ_parlor-blobs"),
            (Op::Subscribe, "parlor.query.rooms"),
            (Op::Subscribe, "parlor.cmd.>"),
            (Op::Subscribe, "parlor.log.read"),
            (Op::Subscribe, "_INBOX.>"),
            (Op::Subscribe, "_INBOX_writer.>"),
            (Op::Publish, "_INBOX_writer.forged"),
        ],
    ),
    (
        "identity",
        &[
            (Op::Publish, "parlor.evt.user_registered"),
            (Op::Subscribe, "parlor.evt.>"),
            (Op::Subscribe, "_INBOX.>"),
            (Op::Subscribe, "_INBOX_hiring.>"),
        ],
    ),
    (
        "hiring",
        &[
            (Op::Publish, "parlor.log.read"),
            (Op::Subscribe, "_INBOX_identity.>"),
        ],
    ),
    (
        "contracts",
        &[
            (Op::Publish, "parlor.query.rooms"),
            (Op::Subscribe, "parlor.cmd.contract.start"),
        ],
    ),
    (
        "auditor",
        &[
            (Op::Publish, "parlor.cmd.message.send"),
            (Op::Publish, "parlor.audit.head"),
            (Op::Subscribe, "parlor.evt.>"),
        ],
    ),
    (
        "operator",
        &[
            (Op::Publish, "parlor.admin.replay.rooms.progress"),
            (Op::Publish, "parlor.cmd.message.send"),
            (Op::Subscribe, "parlor.cmd.>"),
        ],
    ),
    (
        "notifier",
        &[
            (Op::Publish, "parlor.notify.alice"),
            (Op::Subscribe, "parlor.evt.>"),
        ],
    ),
];

/// What each user may subscribe to: deploy/nats-cluster/users.conf's lists, checked to be
/// accepted even where the running parts below do not show it.
const SUBSCRIBED: &[(&str, &[&str])] = &[
    (
        "writer",
        &[
            "parlor.cmd.>",
            "parlor.log.read",
            "parlor.writer.ping",
            "parlor.wal_appended",
            "_INBOX_writer.>",
        ],
    ),
    (
        "projector-rooms",
        &[
            "parlor.evt.>",
            "parlor.query.rooms",
            "parlor.admin.replay.rooms",
            "parlor.presence.heartbeat",
            "_INBOX_projector_rooms.>",
        ],
    ),
    (
        "projector-notifications",
        &[
            "parlor.evt.>",
            "parlor.query.notifications",
            "parlor.admin.replay.notifications",
            "_INBOX_projector_notifications.>",
        ],
    ),
    ("gateway", &["parlor.evt.>", "_INBOX_gateway.>"]),
    ("auditor", &["parlor.audit.head", "_INBOX_auditor.>"]),
    (
        "operator",
        &["parlor.admin.replay.*.progress", "_INBOX_operator.>"],
    ),
    ("notifier", &["parlor.notify.>", "_INBOX_notifier.>"]),
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn h_n1_the_shipped_cluster_configuration_allows_each_part_exactly_its_subjects() {
    let deployment = Deployment::start().await;
    let urls = &deployment.urls;

    // Routes: a server whose certificate is of the right CA but not a route certificate is
    // refused; the three nodes are routed (every path below crosses nodes).
    deployment.impostor_route_is_refused();

    // Passwords: a wrong one and an unknown user are refused at connection.
    let mut wrong = deployment.options("gateway", &urls[0]);
    let wrong_password = deployment.dir.path().join("wrong-password");
    std::fs::write(&wrong_password, "not the password\n").unwrap();
    wrong.auth = NatsAuth::UserPasswordFile {
        user: "gateway".into(),
        password_file: wrong_password,
    };
    assert!(matches!(
        Bus::connect_with(&wrong).await,
        Err(BusError::Config(_))
    ));
    assert!(matches!(
        Bus::connect_with(&deployment.options("nobody", &urls[0])).await,
        Err(BusError::Config(_))
    ));

    // JetStream runs in the cluster and answers the gateway (the file bytes of
    // `--blob-store nats`); then the real parts, each as its own user, spread over the nodes.
    deployment.wait_for_jetstream().await;
    let mut parts = deployment.start_parts().await;

    // Services send their own commands, on other nodes than the writer's.
    let identity = deployment.connect("identity", &urls[1]).await;
    for user in ["alice", "bob", "carol"] {
        let reply = command(
            &identity,
            "service:identity",
            "user.register",
            json!({"user_id": user, "display_name": user.to_uppercase(), "kind": "freelancer"}),
        )
        .await;
        assert_eq!(reply["ok"], true, "{reply}");
    }
    let hiring = deployment.connect("hiring", &urls[2]).await;
    let reply = command(
        &hiring,
        "service:hiring",
        "room.open_interview",
        json!({"interview_id": "i-1", "title": "Interview", "client": "alice", "freelancer": "bob"}),
    )
    .await;
    assert_eq!(reply["ok"], true, "{reply}");
    let contracts = deployment.connect("contracts", &urls[1]).await;
    let contract = json!({"contract_id": "c-1", "title": "Contract", "client": "alice", "freelancer": "carol"});
    let reply = command(&contracts, "service:contracts", "contract.start", contract).await;
    assert_eq!(reply["ok"], true, "{reply}");
    let reply = command(
        &contracts,
        "service:contracts",
        "contract.end",
        json!({"contract_id": "c-1"}),
    )
    .await;
    assert_eq!(reply["ok"], true, "{reply}");

    // Users through the gateway: commands, an upload (the gateway's file.register), reads
    // answered by the projectors once they have the events, presence.
    let alice = parts.token("alice");
    let bob = parts.token("bob");
    let created = parts
        .http_ok(
            &alice,
            "room.create",
            json!({"name": "h-n1", "members": ["bob"]}),
        )
        .await;
    let room = created["result"]["room_id"].as_str().unwrap().to_owned();
    let sent = parts
        .http_ok(
            &alice,
            "message.send",
            json!({"room_id": room, "body": "over TLS, as the gateway"}),
        )
        .await;
    let at = sent["position"].as_u64().unwrap();
    let messages = parts
        .get(
            &bob,
            &format!("/v1/rooms/{room}/messages?min_position={at}"),
        )
        .await;
    assert_eq!(
        messages["messages"][0]["body"], "over TLS, as the gateway",
        "{messages}"
    );
    let rooms = parts
        .get(&bob, &format!("/v1/rooms?min_position={at}"))
        .await;
    assert!(
        rooms["rooms"]
            .as_array()
            .unwrap()
            .iter()
            .any(|entry| entry["room_id"] == room.as_str()),
        "{rooms}"
    );
    let alice_authorization = format!("Bearer {alice}");
    let upload = http_client::send(
        parts.addr,
        "POST",
        "/v1/files",
        &[
            ("Authorization", alice_authorization.as_str()),
            ("X-File-Name", "notes.txt"),
            ("Content-Type", "text/plain"),
        ],
        http_client::Body::Bytes(b"file bytes"),
    )
    .await;
    assert_eq!(upload.status, 201, "{}", upload.text());
    let uploaded = upload.json();
    let (file_id, at) = (
        uploaded["file_id"].as_str().unwrap(),
        uploaded["position"].as_u64().unwrap(),
    );
    // Once the files model has the registration: it says who may download.
    let download = http_client::send(
        parts.addr,
        "GET",
        &format!("/v1/files/{file_id}?min_position={at}"),
        &[("Authorization", alice_authorization.as_str())],
        http_client::Body::None,
    )
    .await;
    assert_eq!(
        (download.status, download.text()),
        (200, "file bytes".to_owned())
    );
    let heartbeat = http_client::send(
        parts.addr,
        "POST",
        "/v1/presence/heartbeat",
        &[("Authorization", alice_authorization.as_str())],
        http_client::Body::None,
    )
    .await;
    assert_eq!(heartbeat.status, 204, "{}", heartbeat.text());

    // The auditor verifies the live chain through log.read and hears the audit head.
    let auditor = deployment.connect("auditor", &urls[2]).await;
    let mut heads = auditor.subscribe("parlor.audit.head").await.unwrap();
    let head = tokio::time::timeout(Duration::from_secs(20), heads.next())
        .await
        .expect("the writer publishes its head every few seconds")
        .expect("the subscription is open");
    let head: Value = serde_json::from_slice(&head.payload).unwrap();
    assert!(head["position"].as_u64().unwrap() >= 1, "{head}");
    let verified = deployment
        .run_tool("auditor", &urls[2], &["audit", "verify"])
        .await;
    assert!(verified.contains("head "), "{verified}");

    // The operator rebuilds a read model live (admin.replay and its progress).
    let replayed = deployment
        .run_tool("operator", &urls[1], &["replay", "rooms"])
        .await;
    assert!(replayed.contains("rooms: rebuilt live"), "{replayed}");

    // Notification batches reach the notifier (published here as the notifications model).
    let notifier = deployment.connect("notifier", &urls[0]).await;
    let mut batches = notifier.subscribe("parlor.notify.>").await.unwrap();
    let notifications = deployment
        .connect("projector-notifications", &urls[2])
        .await;
    expect_delivery(&notifications, &mut batches, "parlor.notify.alice").await;

    // Each user's remaining subscriptions are accepted; then everything refused is refused.
    for (user, subjects) in SUBSCRIBED {
        let bus = deployment.connect(user, &urls[1]).await;
        let mut held = Vec::new();
        for subject in *subjects {
            held.push(bus.subscribe(subject).await.unwrap());
        }
        // The server answers in order: a refusal of any of them would come before this one's.
        refused(&bus, user, Op::Publish, "e2e.marker").await;
        let errors = bus.server_errors();
        assert_eq!(errors.len(), 1, "{user}: {errors:?}");
        drop(held);
    }
    for (user, operations) in REFUSED {
        let bus = deployment.connect(user, &urls[0]).await;
        for (op, subject) in *operations {
            refused(&bus, user, *op, subject).await;
        }
    }
    commands_follow_the_service_table(&deployment).await;

    // The parts never hit a refusal of their own: nothing in the configuration is missing.
    parts.assert_alive();
    let logs = parts.logs();
    assert!(
        !logs.to_lowercase().contains("permissions violation"),
        "a part was refused something it needs: {logs}"
    );
}

/// The gateway may send every user command and `file.register`, each service exactly its
/// commands of security.md H-I2's default table: every allowed type reaches the writer and
/// gets its answer, every other type is refused by the server.
async fn commands_follow_the_service_table(deployment: &Deployment) {
    let service_types: Vec<&str> = DEFAULT_SERVICES
        .iter()
        .flat_map(|(_, types)| types.iter().copied())
        .collect();
    let mut senders: Vec<(&str, Vec<&str>)> = DEFAULT_SERVICES
        .iter()
        .filter(|(name, _)| *name != "gateway")
        .map(|(name, types)| (*name, types.to_vec()))
        .collect();
    let gateway_types = COMMAND_TYPES
        .iter()
        .copied()
        .filter(|command_type| {
            !service_types.contains(command_type) || *command_type == "file.register"
        })
        .collect();
    senders.push(("gateway", gateway_types));
    for (user, allowed) in senders {
        let bus = deployment.connect(user, &deployment.urls[2]).await;
        for command_type in COMMAND_TYPES {
            let subject = format!("parlor.cmd.{command_type}");
            if allowed.contains(&command_type) {
                // An empty object is no command: the writer's `invalid_command` proves the way
                // there and back.
                let reply = bus
                    .request(&subject, json_headers(), "{}", REPLY_WAIT)
                    .await
                    .unwrap_or_else(|error| panic!("{user} → {subject}: {error}"));
                let reply: Value = serde_json::from_slice(&reply.payload).unwrap();
                assert_eq!(
                    reply["error"]["code"], "invalid_command",
                    "{user} → {subject}: {reply}"
                );
            } else {
                refused(&bus, user, Op::Publish, &subject).await;
            }
        }
    }
}

/// Sends a command as `actor` over `bus` and returns the JSON reply.
async fn command(bus: &Bus, actor: &str, command_type: &str, data: Value) -> Value {
    let envelope = json!({"command_id": Uuid::new_v4(), "actor": actor, "data": data});
    let reply = bus
        .request(
            &format!("parlor.cmd.{command_type}"),
            json_headers(),
            envelope.to_string(),
            REPLY_WAIT,
        )
        .await
        .unwrap_or_else(|error| panic!("{actor} {command_type}: {error}"));
    serde_json::from_slice(&reply.payload).unwrap()
}

/// Publishes on `subject` until `subscription` (of another connection, on another node)
/// delivers it: a subscription reaches the other nodes shortly after it is made.
async fn expect_delivery(publisher: &Bus, subscription: &mut bus::Subscription, subject: &str) {
    let deadline = Instant::now() + REFUSAL_WAIT;
    loop {
        publisher
            .publish(subject, Headers::new(), "{}")
            .await
            .unwrap();
        if let Ok(Some(message)) =
            tokio::time::timeout(Duration::from_millis(200), subscription.next()).await
        {
            assert_eq!(message.subject, subject);
            return;
        }
        assert!(
            Instant::now() < deadline,
            "nothing published on {subject} arrived"
        );
    }
}

/// Does `op` on `subject` and waits for the server's permissions violation naming it.
pub(crate) async fn refused(bus: &Bus, user: &str, op: Op, subject: &str) {
    let (kind, _held) = match op {
        Op::Publish => {
            bus.publish(subject, Headers::new(), "forged")
                .await
                .unwrap();
            ("publish", None)
        }
        Op::Subscribe => ("subscription", Some(bus.subscribe(subject).await.unwrap())),
    };
    let expected = format!("permissions violation for {kind} to \"{subject}\"").to_lowercase();
    let deadline = Instant::now() + REFUSAL_WAIT;
    loop {
        let errors = bus.server_errors();
        if errors
            .iter()
            .any(|error| error.to_lowercase().contains(&expected))
        {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{user}: {op:?} {subject} was not refused; the server said {errors:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The certificates of one node, as PEM text.
#[derive(Clone)]
struct NodeCertificates {
    ca: String,
    server: (String, String),
    route: (String, String),
}

/// A test certificate authority.
struct Authority {
    pem: String,
    certificate: rcgen::Certificate,
    key: rcgen::KeyPair,
}

impl Authority {
    fn new() -> Authority {
        let key = rcgen::KeyPair::generate().unwrap();
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        params.distinguished_name = rcgen::DistinguishedName::new();
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, "parlor e2e CA");
        params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        params.key_usages = vec![
            rcgen::KeyUsagePurpose::KeyCertSign,
            rcgen::KeyUsagePurpose::DigitalSignature,
        ];
        let certificate = params.self_signed(&key).unwrap();
        Authority {
            pem: certificate.pem(),
            certificate,
            key,
        }
    }

    /// A certificate for 127.0.0.1 and localhost with `subject` (pairs of `O`/`CN` and value,
    /// in order), good for both ends of a TLS connection (a route is both): PEM and key PEM.
    fn issue(&self, subject: &[(&str, &str)]) -> (String, String) {
        let key = rcgen::KeyPair::generate().unwrap();
        let mut params =
            rcgen::CertificateParams::new(vec!["localhost".to_owned(), "127.0.0.1".to_owned()])
                .unwrap();
        params.distinguished_name = rcgen::DistinguishedName::new();
        for (kind, value) in subject {
            let kind = match *kind {
                "O" => rcgen::DnType::OrganizationName,
                _ => rcgen::DnType::CommonName,
            };
            params.distinguished_name.push(kind, *value);
        }
        params.extended_key_usages = vec![
            rcgen::ExtendedKeyUsagePurpose::ServerAuth,
            rcgen::ExtendedKeyUsagePurpose::ClientAuth,
        ];
        let certificate = params
            .signed_by(&key, &self.certificate, &self.key)
            .unwrap();
        (certificate.pem(), key.serialize_pem())
    }
}

/// Which shipped configuration the nodes run.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Variant {
    /// nN.conf, cluster.conf and users.conf on the default nats-server (Debian's 2.9).
    Plain,
    /// The same with `include ./ha.conf` appended to nN.conf (README.md, "HA writers"), on
    /// nats-server 2.15 (`testkit::nats_server_215`, which fails loudly when it is missing).
    Ha,
}

/// The cluster on deploy/nats-cluster, with the users' password files and the CA.
pub(crate) struct Deployment {
    cluster: NatsCluster,
    pub(crate) urls: Vec<String>,
    authority: Authority,
    /// Password files, the CA's PEM, the parts' data directories.
    pub(crate) dir: tempfile::TempDir,
}

impl Deployment {
    async fn start() -> Deployment {
        Deployment::start_variant(Variant::Plain).await
    }

    pub(crate) async fn start_variant(variant: Variant) -> Deployment {
        let dir = tempfile::tempdir().unwrap();
        let authority = Authority::new();
        std::fs::write(dir.path().join("ca.pem"), &authority.pem).unwrap();
        let mut envs = Vec::new();
        std::fs::create_dir(dir.path().join("passwords")).unwrap();
        for user in USERS {
            let password = Uuid::new_v4().simple().to_string();
            std::fs::write(dir.path().join("passwords").join(user), &password).unwrap();
            if user != "nobody" {
                // nats-server reads a variable's value as configuration text: quoted, it is a
                // string whatever its characters (a bcrypt hash starts with `$`).
                envs.push((password_variable(user), format!("\"{password}\"")));
            }
        }
        let certificates: Vec<NodeCertificates> = (0..testkit::CLUSTER_NODES)
            .map(|node| NodeCertificates {
                ca: authority.pem.clone(),
                server: authority.issue(&[("CN", format!("n{}", node + 1).as_str())]),
                route: authority.issue(&ROUTE_SUBJECT),
            })
            .collect();
        let options = ClusterOptions {
            envs,
            files: Some(Box::new(move |node: &NodeLayout, all: &[NodeLayout]| {
                node_files(node, all, &certificates[node.index], variant)
            })),
            server_binary: (variant == Variant::Ha).then(testkit::nats_server_215),
            ..ClusterOptions::default()
        };
        let cluster = NatsCluster::try_start_with(options)
            .unwrap_or_else(|error| panic!("the shipped configuration does not start: {error}"));
        let urls = (0..testkit::CLUSTER_NODES)
            .map(|node| cluster.url(node))
            .collect();
        Deployment {
            cluster,
            urls,
            authority,
            dir,
        }
    }

    fn password_file(&self, user: &str) -> PathBuf {
        self.dir.path().join("passwords").join(user)
    }

    fn ca(&self) -> PathBuf {
        self.dir.path().join("ca.pem")
    }

    /// The connection options of `user`'s part: its password, TLS with the test CA, and the
    /// inbox prefix the configuration gives it (`_INBOX_<user>`, `-` as `_`, as parlor does).
    fn options(&self, user: &str, url: &str) -> NatsOptions {
        let mut options = NatsOptions::new(url, &format!("e2e-{user}"));
        options.auth = NatsAuth::UserPasswordFile {
            user: user.to_owned(),
            password_file: self.password_file(user),
        };
        options.tls = NatsTls {
            ca: Some(self.ca()),
            cert: None,
            key: None,
        };
        options.inbox_prefix = Some(format!("_INBOX_{}", user.replace('-', "_")));
        options
    }

    pub(crate) async fn connect(&self, user: &str, url: &str) -> Bus {
        Bus::connect_with(&self.options(user, url))
            .await
            .unwrap_or_else(|error| panic!("{user} cannot connect to {url}: {error}"))
    }

    /// The flags that make a parlor part connect as `user` (its inbox prefix is parlor's
    /// default for the part).
    pub(crate) fn part_flags(&self, user: &str, url: &str) -> Vec<String> {
        vec![
            "--nats-url".into(),
            url.into(),
            "--nats-user".into(),
            user.into(),
            "--nats-password-file".into(),
            self.password_file(user).display().to_string(),
            "--nats-tls-ca".into(),
            self.ca().display().to_string(),
        ]
    }

    /// Waits until JetStream answers the gateway's question about its object store's stream
    /// (the cluster has elected its meta leader): "no such stream" at first, or the stream.
    pub(crate) async fn wait_for_jetstream(&self) {
        let gateway = self.connect("gateway", &self.urls[2]).await;
        let deadline = Instant::now() + DEPLOY_WAIT;
        loop {
            let answer = gateway
                .request(
                    "$JS.API.STREAM.INFO.OBJ_parlor-blobs",
                    Headers::new(),
                    "",
                    Duration::from_secs(1),
                )
                .await;
            match answer {
                Ok(reply) => {
                    let reply: Value = serde_json::from_slice(&reply.payload).unwrap();
                    assert!(
                        reply["config"].is_object() || reply["error"]["err_code"] == 10059,
                        "{reply}"
                    );
                    return;
                }
                Err(error) => assert!(
                    Instant::now() < deadline,
                    "JetStream did not answer: {error}; {:?}",
                    gateway.server_errors()
                ),
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// The writer on node 1, every read model on nodes 2 and 3, the gateway on node 3; waits
    /// until the gateway's operator `/healthz` has every part up.
    async fn start_parts(&self) -> Parts {
        let data = |name: &str| {
            let path = self.dir.path().join("parts").join(name);
            std::fs::create_dir_all(&path).unwrap();
            path
        };
        let mut processes = Vec::new();
        let mut data_dirs = Vec::new();
        let mut spawn = |args: Vec<String>, dir: PathBuf, envs: &[(&str, &str)]| {
            let args: Vec<&str> = args.iter().map(String::as_str).collect();
            processes.push(spawn_part_with_env(&args, &dir, log_file(&dir), envs));
            data_dirs.push(dir);
        };
        let mut writer = vec!["writer".to_owned()];
        writer.extend(self.part_flags("writer", &self.urls[0]));
        spawn(writer, data("writer"), &[]);
        for (index, model) in PROJECTORS.iter().enumerate() {
            let mut args = vec!["projector".to_owned(), (*model).to_owned()];
            args.extend(self.part_flags(&format!("projector-{model}"), &self.urls[1 + index % 2]));
            spawn(args, data(model), &[]);
        }
        let free = || {
            std::net::TcpListener::bind("127.0.0.1:0")
                .unwrap()
                .local_addr()
                .unwrap()
        };
        let (addr, ops_addr) = (free(), free());
        let secret = format!("e2e secret {}", Uuid::new_v4());
        let mut gateway = vec!["gateway".to_owned()];
        gateway.extend(self.part_flags("gateway", &self.urls[2]));
        gateway.extend([
            "--http-addr".to_owned(),
            addr.to_string(),
            "--ops-addr".to_owned(),
            ops_addr.to_string(),
            "--jwt-secret".to_owned(),
            secret.clone(),
        ]);
        // The file bytes in the JetStream object store, as the deployment's gateway unit has
        // them (three copies): the gateway's JetStream permissions are then exercised by the
        // upload and download below. A parlor without `--blob-store` ignores the variables and
        // keeps the bytes in its data directory.
        spawn(
            gateway,
            data("gateway"),
            &[("PARLOR_BLOB_STORE", "nats"), ("PARLOR_BLOB_REPLICAS", "3")],
        );
        let mut parts = Parts {
            processes,
            data_dirs,
            addr,
            secret,
        };
        let deadline = Instant::now() + DEPLOY_WAIT;
        loop {
            parts.assert_alive();
            if tokio::net::TcpStream::connect(ops_addr).await.is_ok() {
                let health =
                    http_client::send(ops_addr, "GET", "/healthz", &[], http_client::Body::None)
                        .await;
                if health.status == 200 && health.json()["status"] == "ok" {
                    return parts;
                }
            }
            assert!(
                Instant::now() < deadline,
                "the parts did not come up over the shipped configuration: {}",
                parts.logs()
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// Runs `parlor <args> --nats-url <url>` as `user` (bounded) and returns its stdout;
    /// panics unless it succeeds.
    async fn run_tool(&self, user: &str, url: &str, args: &[&str]) -> String {
        let mut command = tokio::process::Command::new(env!("CARGO_BIN_EXE_parlor"));
        command
            .args(args)
            .args(self.part_flags(user, url))
            .env("PARLOR_LOG", "warn")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        let child = command.spawn().expect("spawn parlor");
        let output = tokio::time::timeout(TOOL_WAIT, child.wait_with_output())
            .await
            .unwrap_or_else(|_| panic!("parlor {args:?} did not finish within {TOOL_WAIT:?}"))
            .expect("parlor's output");
        let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
        assert!(
            output.status.success(),
            "parlor {args:?} as {user}: {}\n{stdout}\n{}",
            output.status,
            String::from_utf8_lossy(&output.stderr)
        );
        stdout
    }

    /// A fourth server with a certificate of the same CA whose subject is not the route
    /// subject tries to join through node 1's route port: it is refused.
    fn impostor_route_is_refused(&self) {
        let dir = self.dir.path().join("impostor");
        std::fs::create_dir_all(&dir).unwrap();
        let (cert, key) = self.authority.issue(&[("O", "parlor"), ("CN", "impostor")]);
        std::fs::write(dir.join("route.pem"), cert).unwrap();
        std::fs::write(dir.join("route-key.pem"), key).unwrap();
        std::fs::write(dir.join("ca.pem"), &self.authority.pem).unwrap();
        let config = format!(
            "server_name: impostor\nlisten: 127.0.0.1:-1\n\
             cluster {{\n  name: parlor\n  listen: 127.0.0.1:-1\n\
             tls {{ cert_file: \"{dir}/route.pem\", key_file: \"{dir}/route-key.pem\", \
             ca_file: \"{dir}/ca.pem\", timeout: 2 }}\n\
             routes: [ nats-route://127.0.0.1:{route} ]\n}}\n",
            dir = dir.display(),
            route = self.cluster.layout(0).route_port,
        );
        std::fs::write(dir.join("impostor.conf"), config).unwrap();
        let log = dir.join("impostor.log");
        let binary = std::env::var(testkit::NATS_SERVER_ENV)
            .unwrap_or_else(|_| "/usr/sbin/nats-server".to_owned());
        let mut child = Command::new(binary)
            .arg("-c")
            .arg(dir.join("impostor.conf"))
            .arg("-l")
            .arg(&log)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn the impostor nats-server");
        let deadline = Instant::now() + REFUSAL_WAIT;
        let refused = loop {
            let text = std::fs::read_to_string(&log).unwrap_or_default();
            if text.contains("Authorization Violation") {
                break Ok(());
            }
            if Instant::now() >= deadline {
                break Err(text);
            }
            std::thread::sleep(Duration::from_millis(50));
        };
        let _ = child.kill();
        let _ = testkit::reap_within(&mut child, testkit::STOP_WAIT_MAX);
        if let Err(text) = refused {
            panic!(
                "the impostor's route was not refused: {text}\nnode 1: {}",
                self.cluster.log_tail(0)
            );
        }
    }
}

/// `NATS_PASSWORD_<USER>`, the variable users.conf reads `user`'s password from.
fn password_variable(user: &str) -> String {
    format!("NATS_PASSWORD_{}", user.replace('-', "_").to_uppercase())
}

/// Writes one node's files: its `n<i>.conf` and users.conf as shipped, cluster.conf with this
/// machine's ports and paths in place of the production ones, and its certificates; for
/// [`Variant::Ha`] also ha.conf (its store directory substituted) and the line README.md says
/// to append to `n<i>.conf`.
fn node_files(
    node: &NodeLayout,
    all: &[NodeLayout],
    certificates: &NodeCertificates,
    variant: Variant,
) -> std::io::Result<PathBuf> {
    let certs = node.dir.join("certs");
    std::fs::create_dir_all(&certs)?;
    std::fs::write(certs.join("ca.pem"), &certificates.ca)?;
    std::fs::write(certs.join("server.pem"), &certificates.server.0)?;
    std::fs::write(certs.join("server-key.pem"), &certificates.server.1)?;
    std::fs::write(certs.join("route.pem"), &certificates.route.0)?;
    std::fs::write(certs.join("route-key.pem"), &certificates.route.1)?;
    let shipped = Path::new(DEPLOY_DIR);
    let mut cluster = std::fs::read_to_string(shipped.join("cluster.conf"))?;
    let mut swaps = vec![
        (
            "0.0.0.0:4222".to_owned(),
            format!("127.0.0.1:{}", node.client_port),
        ),
        (
            "127.0.0.1:8222".to_owned(),
            format!("127.0.0.1:{}", node.monitor_port),
        ),
        (
            "0.0.0.0:6222".to_owned(),
            format!("127.0.0.1:{}", node.route_port),
        ),
        (
            "/etc/nats-server/certs/".to_owned(),
            format!("{}/", certs.display()),
        ),
        (
            "/var/lib/nats-server/jetstream".to_owned(),
            node.dir.join("jetstream").display().to_string(),
        ),
    ];
    for other in all {
        swaps.push((
            format!("nats-route://m{}:6222", other.index + 1),
            format!("nats-route://127.0.0.1:{}", other.route_port),
        ));
    }
    for (production, here) in swaps {
        if !cluster.contains(&production) {
            return Err(std::io::Error::other(format!(
                "deploy/nats-cluster/cluster.conf no longer has {production:?}: update this test"
            )));
        }
        cluster = cluster.replace(&production, &here);
    }
    std::fs::copy(shipped.join("users.conf"), node.dir.join("users.conf"))?;
    let name = format!("n{}.conf", node.index + 1);
    let mut node_conf = std::fs::read_to_string(shipped.join(&name))?;
    if variant == Variant::Ha {
        let ha = std::fs::read_to_string(shipped.join("ha.conf"))?;
        // ha.conf's jetstream block replaces cluster.conf's whole (nats-server does not merge
        // blocks): it must repeat every setting of it, or HA nodes would lose one silently.
        let shipped_cluster = std::fs::read_to_string(shipped.join("cluster.conf"))?;
        let (plain, high) = (
            jetstream_settings(&shipped_cluster),
            jetstream_settings(&ha),
        );
        if let Some(lost) = plain.iter().find(|setting| !high.contains(setting)) {
            return Err(std::io::Error::other(format!(
                "deploy/nats-cluster/ha.conf's jetstream block lacks cluster.conf's {lost:?}"
            )));
        }
        let store = "/var/lib/nats-server/jetstream";
        if !ha.contains(store) {
            return Err(std::io::Error::other(format!(
                "deploy/nats-cluster/ha.conf no longer has {store:?}: update this test"
            )));
        }
        let here = node.dir.join("jetstream").display().to_string();
        std::fs::write(node.dir.join("ha.conf"), ha.replace(store, &here))?;
        if !node_conf.ends_with('\n') {
            node_conf.push('\n');
        }
        node_conf.push_str("include ./ha.conf\n");
    }
    std::fs::write(node.dir.join("cluster.conf"), cluster)?;
    std::fs::write(node.dir.join(&name), node_conf)?;
    Ok(node.dir.join(name))
}

/// The settings of the `jetstream {…}` block of a configuration file, one trimmed line each
/// (comments and blank lines left out).
fn jetstream_settings(config: &str) -> Vec<String> {
    config
        .lines()
        .map(str::trim)
        .skip_while(|line| !line.starts_with("jetstream {"))
        .skip(1)
        .take_while(|line| *line != "}")
        .filter(|line| !line.is_empty() && !line.starts_with('#'))
        .map(str::to_owned)
        .collect()
}

/// The running parts and the gateway's address.
struct Parts {
    processes: Vec<Parlor>,
    data_dirs: Vec<PathBuf>,
    addr: std::net::SocketAddr,
    secret: String,
}

impl Parts {
    fn assert_alive(&mut self) {
        for (process, dir) in self.processes.iter_mut().zip(&self.data_dirs) {
            if let Ok(Some(status)) = process.child.try_wait() {
                panic!(
                    "the part in {} exited with {status}: {}",
                    dir.display(),
                    read_logs(dir)
                );
            }
        }
    }

    fn logs(&self) -> String {
        self.data_dirs
            .iter()
            .map(|dir| format!("--- {}\n{}", dir.display(), read_logs(dir)))
            .collect()
    }

    fn token(&self, user: &str) -> String {
        gateway::auth::mint_token(
            self.secret.as_bytes(),
            user,
            None,
            Duration::from_secs(3600),
        )
        .unwrap()
    }

    /// `POST /v1/commands/<type>`, which must be accepted: the §1 reply.
    async fn http_ok(&self, token: &str, command_type: &str, data: Value) -> Value {
        let body = data.to_string();
        let authorization = format!("Bearer {token}");
        let response = http_client::send(
            self.addr,
            "POST",
            &format!("/v1/commands/{command_type}"),
            &[
                ("Authorization", authorization.as_str()),
                ("Content-Type", "application/json"),
            ],
            http_client::Body::Bytes(body.as_bytes()),
        )
        .await;
        let reply = response.json();
        assert_eq!(response.status, 200, "{command_type} {data} → {reply}");
        reply
    }

    /// `GET path` as the token's user, which must answer 200: the JSON body.
    async fn get(&self, token: &str, path: &str) -> Value {
        let authorization = format!("Bearer {token}");
        let response = http_client::send(
            self.addr,
            "GET",
            path,
            &[("Authorization", authorization.as_str())],
            http_client::Body::None,
        )
        .await;
        assert_eq!(response.status, 200, "GET {path} → {}", response.text());
        response.json()
    }
}
