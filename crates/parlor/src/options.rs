//! Command-line options. Every flag also reads `PARLOR_<FLAG>` from the environment.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

/// Parlor: the messaging backend of the marketplace.
#[derive(Debug, Parser)]
#[command(
    name = "parlor",
    version,
    about = "Parlor: the marketplace's event-sourced messaging backend, and its operator tools.",
    long_about = "Parlor: the marketplace's event-sourced messaging backend, and its operator \
                  tools.\n\n\
                  `parlor up` runs everything in one process (writer, read models, HTTP gateway); \
                  `writer`, `projector` and `gateway` run the same parts as separate services \
                  over NATS. The other subcommands inspect, repair and audit a system. Every \
                  flag also reads an environment variable PARLOR_<FLAG>, e.g. PARLOR_DATA_DIR.",
    after_help = "Examples:\n  \
                  parlor up                                    # embedded defaults, http://127.0.0.1:8787\n  \
                  parlor up --nats-url nats://127.0.0.1:4222   # other services send commands over NATS\n  \
                  parlor status --nats-url nats://127.0.0.1:4222\n  \
                  parlor token alice                           # a development token for alice\n\n\
                  `parlor <command> --help` says more about each command."
)]
pub struct Cli {
    /// Log format.
    #[arg(long, global = true, env = "PARLOR_LOG_FORMAT", default_value = "text")]
    pub log_format: LogFormat,
    /// What to run.
    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run everything in one process with embedded defaults (in-process bus unless --nats-url).
    #[command(
        long_about = "Run everything in one process: the writer (event log under --data-dir), \
                      every read model and the HTTP gateway (--http-addr), with the operator \
                      /healthz and /metrics on --ops-addr. Without --nats-url the parts talk \
                      over an in-process bus and no other service can reach them; with it, \
                      other services send commands over NATS (docs/protocol.md). Without a JWT \
                      secret, one is created in the data directory on first start.",
        after_help = "Examples:\n  \
                      parlor up\n  \
                      parlor up --data-dir /var/lib/parlor --nats-url nats://127.0.0.1:4222 \\\n      \
                      --http-addr 0.0.0.0:8787 --jwt-secret-file /etc/parlor/jwt-secret"
    )]
    Up(CommonOptions),
    /// Run the writer alone over NATS (with --ha, one of several: a leader and standbys).
    #[command(
        long_about = "Run the writer alone over NATS: it decides every command \
                     (<prefix>.cmd.<type>) against the rules, appends the events to the log \
                     under --data-dir, and publishes them on <prefix>.evt.<type>. Without --ha, \
                     run exactly one per system; with --ha, run any number: one leads by a lease \
                     in a JetStream key-value bucket and replicates each batch through a \
                     JetStream stream before answering, the others follow as warm standbys \
                     (needs nats-server 2.10 or later; docs/operations.md).",
        after_help = "Examples:\n  \
                      parlor writer --nats-url nats://127.0.0.1:4222 --data-dir /var/lib/parlor \\\n      \
                      --services /etc/parlor/services.toml\n  \
                      parlor writer --ha --nats-url nats://n1:4222,nats://n2:4222,nats://n3:4222 \\\n      \
                      --data-dir /var/lib/parlor"
    )]
    Writer {
        /// Shared service options.
        #[command(flatten)]
        common: CommonOptions,
        /// High availability through JetStream.
        #[command(flatten)]
        ha: HaOptions,
    },
    /// Run one read model alone over NATS.
    #[command(
        long_about = "Run one read model alone over NATS: it follows <prefix>.evt.>, catches up \
                      through <prefix>.log.read, keeps its store under --data-dir, and answers \
                      <prefix>.query.<name>.",
        after_help = "Example:\n  \
                      parlor projector rooms --nats-url nats://127.0.0.1:4222 --data-dir /var/lib/parlor-rooms"
    )]
    Projector {
        /// The read model: rooms, timeline, files, search, moderation or notifications.
        name: String,
        /// Shared service options.
        #[command(flatten)]
        common: CommonOptions,
    },
    /// Run the HTTP gateway alone over NATS.
    #[command(
        long_about = "Run the HTTP gateway alone over NATS: the HTTP API of docs/api.md on \
                      --http-addr, sending commands to the writer and queries to the read \
                      models; uploaded files are kept under --data-dir.",
        after_help = "Example:\n  \
                      parlor gateway --nats-url nats://127.0.0.1:4222 --data-dir /var/lib/parlor-gateway \\\n      \
                      --jwt-secret-file /etc/parlor/jwt-secret --http-addr 0.0.0.0:8787"
    )]
    Gateway(CommonOptions),
    /// Show each part of a running system: health, position and lag behind the writer's head.
    #[command(
        long_about = "Show each part of a running system with its health, the log position it \
                      has reached and its lag behind the writer's head, as a table. It asks over \
                      NATS (<prefix>.writer.ping, and {\"op\": \"status\"} on \
                      <prefix>.query.<model>), so it sees parts on every machine; `parlor up` \
                      without --nats-url cannot be reached (use its operator /healthz). Exits \
                      non-zero when a part does not answer within 2 s.",
        after_help = "Example:\n  \
                      parlor status --nats-url nats://127.0.0.1:4222"
    )]
    Status {
        /// The NATS server of the running system.
        #[arg(long, env = "PARLOR_NATS_URL")]
        nats_url: String,
        /// The running system's subject prefix.
        #[arg(long, env = "PARLOR_SUBJECT_PREFIX", default_value = "parlor")]
        subject_prefix: String,
    },
    /// Print a development token for a user (HS256, signed with the data directory's secret).
    #[command(after_help = "Examples:\n  \
                            parlor token alice\n  \
                            parlor token mod-1 --moderator\n  \
                            parlor token service:identity --service --data-dir /var/lib/parlor")]
    Token {
        /// The token's subject: a user id, or `service:<name>` with --service.
        subject: String,
        /// A moderator's token.
        #[arg(long)]
        moderator: bool,
        /// A service's token (`service:<name>` subjects), for driving service commands over HTTP.
        #[arg(long)]
        service: bool,
        /// Hours until it expires.
        #[arg(long, default_value_t = 24)]
        ttl_hours: u64,
        /// The data directory holding `jwt-secret`.
        #[arg(long, env = "PARLOR_DATA_DIR", default_value = "./parlor-data")]
        data_dir: PathBuf,
        /// The secret, instead of the data directory's.
        #[arg(long, env = "PARLOR_JWT_SECRET", hide_env_values = true)]
        jwt_secret: Option<String>,
        /// The secret file, issuer, audience and longest lifetime the gateway checks.
        #[command(flatten)]
        jwt: JwtOptions,
    },
    /// Rebuild read models from the log, with progress, then swap: in the running projectors
    /// while they keep serving (--nats-url), or in a stopped data directory (without it).
    #[command(after_help = "Examples:\n  \
                            parlor replay all --data-dir /var/lib/parlor           # stopped\n  \
                            parlor replay rooms --nats-url nats://127.0.0.1:4222   # live, then swap")]
    Replay {
        /// A read model's name, or `all`.
        name: String,
        /// Start at this position (continuing a copy of the current model); 1 rebuilds from
        /// scratch. Stopped data directories only.
        #[arg(long, env = "PARLOR_FROM", default_value_t = 1)]
        from: u64,
        /// The data directory (without --nats-url).
        #[arg(long, env = "PARLOR_DATA_DIR", default_value = "./parlor-data")]
        data_dir: PathBuf,
        /// Rebuild live: ask the running projectors over this NATS server (`parlor up` without
        /// --nats-url cannot be reached from outside).
        #[arg(long, env = "PARLOR_NATS_URL")]
        nats_url: Option<String>,
        /// First token of every subject (live mode).
        #[arg(long, env = "PARLOR_SUBJECT_PREFIX", default_value = "parlor")]
        subject_prefix: String,
        /// Credentials, TLS and inbox prefix for NATS (live mode; the inbox prefix defaults
        /// to `_INBOX_operator`, the operator's user of deploy/nats-cluster).
        #[command(flatten)]
        nats: NatsConnectOptions,
    },
    /// Audit the log of a stopped data directory (`verify` also checks a running system).
    #[command(
        subcommand,
        after_help = "Examples:\n  \
                      parlor audit verify --data-dir /var/lib/parlor\n  \
                      parlor audit verify --nats-url nats://127.0.0.1:4222 --expect-head 1042:<hash>\n  \
                      parlor audit room <room_id> --at 2026-11-27T10:00:00Z --data-dir /var/lib/parlor\n  \
                      parlor audit export --data-dir /var/lib/parlor > log.jsonl"
    )]
    Audit(AuditCommand),
    /// Print the JSON Schemas of the contract: with no name, list the names; with a name, print
    /// that schema; with --write DIR, write every schema to DIR/<name>.json.
    #[command(after_help = "Examples:\n  \
                            parlor schema command.message.send\n  \
                            parlor schema --write docs/schemas   (regenerates the checked-in files)")]
    Schema {
        /// A schema's name (`command.message.send`, `event.message_sent`, `Reply`, …).
        #[arg(conflicts_with = "write")]
        name: Option<String>,
        /// Write every schema into this directory (created if absent).
        #[arg(long, value_name = "DIR")]
        write: Option<PathBuf>,
    },
    /// Print the AsyncAPI 3 document of the NATS contract (every subject, its payload schema and
    /// its reply) as YAML, or as JSON with --json; with --write FILE, write it to FILE.
    #[command(after_help = "Examples:\n  \
                            parlor asyncapi --json > asyncapi.json\n  \
                            parlor asyncapi --write docs/asyncapi.yaml   (regenerates the checked-in file)")]
    Asyncapi {
        /// Print JSON (the document the gateway serves at GET /asyncapi.json) instead of YAML.
        #[arg(long, conflicts_with = "write")]
        json: bool,
        /// Write the YAML document to this file.
        #[arg(long, value_name = "FILE")]
        write: Option<PathBuf>,
    },
    /// Convert a stopped data directory's event log to the current format (format 1 → 2) in
    /// place, keeping the original as `log.format1` until the copy verifies to the same head.
    #[command(after_help = "Example:\n  parlor migrate --data-dir /var/lib/parlor")]
    Migrate {
        /// The data directory (the writer must be stopped).
        #[arg(long, env = "PARLOR_DATA_DIR", default_value = "./parlor-data")]
        data_dir: PathBuf,
    },
}

/// `parlor audit …`: every subcommand reads a stopped data directory; `verify` can also read a
/// running system over NATS.
#[derive(Debug, Subcommand)]
pub enum AuditCommand {
    /// Recompute the hash chain and every record's checks; ends with `head <position> <hash>`.
    ///
    /// Of a stopped data directory (`--data-dir`), or of a running system through its writer's
    /// `log.read` (`--nats-url`), up to the head the writer reports when verification starts.
    // Exactly one of `--data-dir` and `--nats-url`, resolved with the environment by
    // `VerifySource::resolve`.
    #[command(group(
        clap::ArgGroup::new("source")
            .multiple(false)
            .args(["data_dir", "nats_url"])
    ))]
    #[command(after_help = "Examples:\n  \
                            parlor audit verify --data-dir /var/lib/parlor\n  \
                            parlor audit verify --nats-url nats://127.0.0.1:4222 --expect-head 1042:<hash>")]
    Verify {
        /// The data directory of a stopped system [env: PARLOR_DATA_DIR].
        #[arg(long)]
        data_dir: Option<PathBuf>,
        /// The NATS server of a running system, whose writer serves `log.read`
        /// [env: PARLOR_NATS_URL].
        #[arg(long)]
        nats_url: Option<String>,
        /// The running system's subject prefix (with --nats-url).
        #[arg(long, env = "PARLOR_SUBJECT_PREFIX", default_value = "parlor")]
        subject_prefix: String,
        /// An anchored head: `<hash>` (the head must be it) or `<position>:<hash>` (the record
        /// at that position must have that hash), to catch a truncated tail.
        #[arg(long, env = "PARLOR_EXPECT_HEAD")]
        expect_head: Option<String>,
        /// Credentials, TLS and inbox prefix for NATS (with --nats-url; the inbox prefix
        /// defaults to `_INBOX_auditor`, the auditor's user of deploy/nats-cluster).
        #[command(flatten)]
        nats: NatsConnectOptions,
    },
    /// A room's full history as of a moment: members, messages with edits, deletions,
    /// reports, calls.
    #[command(after_help = "Examples:\n  \
                            parlor audit room <room_id> --data-dir /var/lib/parlor\n  \
                            parlor audit room <room_id> --at 2026-11-27T10:00:00Z --json --data-dir /var/lib/parlor")]
    Room {
        /// The room.
        room_id: String,
        /// The moment (RFC 3339); the whole history when absent.
        #[arg(long)]
        at: Option<String>,
        /// JSON instead of text.
        #[arg(long)]
        json: bool,
        /// The data directory.
        #[arg(long, env = "PARLOR_DATA_DIR", default_value = "./parlor-data")]
        data_dir: PathBuf,
    },
    /// Everything a user did, in order.
    #[command(after_help = "Example:\n  \
                            parlor audit user alice --from 2026-11-01T00:00:00Z --data-dir /var/lib/parlor")]
    User {
        /// The user.
        user_id: String,
        /// From this moment (RFC 3339).
        #[arg(long)]
        from: Option<String>,
        /// Until this moment (RFC 3339).
        #[arg(long)]
        until: Option<String>,
        /// The data directory.
        #[arg(long, env = "PARLOR_DATA_DIR", default_value = "./parlor-data")]
        data_dir: PathBuf,
    },
    /// The log as JSON lines on stdout, one RecordedEvent with its stored bytes per line.
    #[command(after_help = "Example:\n  \
                            parlor audit export --data-dir /var/lib/parlor > log.jsonl")]
    Export {
        /// The first position.
        #[arg(long, default_value_t = 1)]
        from: u64,
        /// Stop before the first event recorded after this moment (RFC 3339).
        #[arg(long)]
        until_time: Option<String>,
        /// The data directory.
        #[arg(long, env = "PARLOR_DATA_DIR", default_value = "./parlor-data")]
        data_dir: PathBuf,
    },
    /// Read an export (FILE, or stdin) into an empty data directory, bit for bit.
    #[command(after_help = "Example:\n  \
                            parlor audit import log.jsonl --data-dir /var/lib/parlor-copy")]
    Import {
        /// The export; stdin when absent.
        file: Option<PathBuf>,
        /// The data directory.
        #[arg(long, env = "PARLOR_DATA_DIR", default_value = "./parlor-data")]
        data_dir: PathBuf,
    },
}

/// Where `parlor audit verify` reads the log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum VerifySource {
    /// A stopped system's data directory.
    DataDir(PathBuf),
    /// A running system's NATS server.
    Nats(String),
}

impl VerifySource {
    /// Picks the source from the flags, then the environment. A flag given on the command line
    /// wins over the other's environment variable: a shell that exports `PARLOR_NATS_URL` for
    /// the services can still verify a data directory (which is why these two flags resolve
    /// their `PARLOR_*` variables here rather than through clap, whose group would call that a
    /// conflict). Without a flag, exactly one of `PARLOR_DATA_DIR` and `PARLOR_NATS_URL` must be
    /// set. Errors are clap usage errors.
    pub fn resolve(
        data_dir: Option<PathBuf>,
        nats_url: Option<String>,
    ) -> Result<VerifySource, clap::Error> {
        use clap::error::ErrorKind;
        match (data_dir, nats_url) {
            (Some(data_dir), None) => Ok(VerifySource::DataDir(data_dir)),
            (None, Some(nats_url)) => Ok(VerifySource::Nats(nats_url)),
            (Some(_), Some(_)) => Err(usage_error(
                ErrorKind::ArgumentConflict,
                "the argument '--data-dir' cannot be used with '--nats-url'",
            )),
            (None, None) => {
                let data_dir = std::env::var_os("PARLOR_DATA_DIR").filter(|dir| !dir.is_empty());
                let nats_url = std::env::var("PARLOR_NATS_URL")
                    .ok()
                    .filter(|url| !url.is_empty());
                match (data_dir, nats_url) {
                    (Some(data_dir), None) => Ok(VerifySource::DataDir(data_dir.into())),
                    (None, Some(nats_url)) => Ok(VerifySource::Nats(nats_url)),
                    (Some(_), Some(_)) => Err(usage_error(
                        ErrorKind::ArgumentConflict,
                        "PARLOR_DATA_DIR and PARLOR_NATS_URL are both set: choose with \
                         --data-dir <DATA_DIR> or --nats-url <NATS_URL>",
                    )),
                    (None, None) => Err(usage_error(
                        ErrorKind::MissingRequiredArgument,
                        "give --data-dir <DATA_DIR> (a stopped system) or --nats-url <NATS_URL> \
                         (a running one)",
                    )),
                }
            }
        }
    }
}

/// A usage error of `parlor audit verify`, printed and exited with like clap's own.
fn usage_error(kind: clap::error::ErrorKind, message: &str) -> clap::Error {
    use clap::CommandFactory;
    let mut command = Cli::command();
    let verify = command
        .find_subcommand_mut("audit")
        .and_then(|audit| audit.find_subcommand_mut("verify"))
        .map(|verify| verify.clone().bin_name("parlor audit verify"));
    match verify {
        Some(mut verify) => verify.error(kind, message),
        None => command.error(kind, message),
    }
}

/// Options shared by the services.
#[derive(Debug, Clone, Args)]
pub struct CommonOptions {
    /// Where the log and the read models live.
    #[arg(long, env = "PARLOR_DATA_DIR", default_value = "./parlor-data")]
    pub data_dir: PathBuf,
    /// NATS server URL, or several comma-separated (`nats://a:4222,nats://b:4222`); without
    /// it `up` uses an in-process bus.
    #[arg(long, env = "PARLOR_NATS_URL")]
    pub nats_url: Option<String>,
    /// Credentials, TLS and inbox prefix for NATS (security.md H-N1).
    #[command(flatten)]
    pub nats: NatsConnectOptions,
    /// First token of every subject.
    #[arg(long, env = "PARLOR_SUBJECT_PREFIX", default_value = "parlor")]
    pub subject_prefix: String,
    /// New conversations per user per UTC day (R-R3).
    #[arg(long, env = "PARLOR_DAILY_CONVERSATION_LIMIT", default_value_t = domain::limits::DAILY_CONVERSATION_LIMIT_DEFAULT)]
    pub daily_conversation_limit: u32,
    /// Encoding of events published on <prefix>.evt.<type>.
    #[arg(long, env = "PARLOR_EVENT_FORMAT", default_value = "bincode")]
    pub event_format: EventFormat,
    /// Where the HTTP gateway listens.
    #[arg(long, env = "PARLOR_HTTP_ADDR", default_value = "127.0.0.1:8787")]
    pub http_addr: std::net::SocketAddr,
    /// The operator address: `/healthz` with each part's status and position, and `/metrics`
    /// (security.md H-I4). `off` serves neither; port 0 picks a free port.
    #[arg(long, env = "PARLOR_OPS_ADDR", default_value = "127.0.0.1:9797", value_parser = parse_ops_addr)]
    pub ops_addr: OpsAddress,
    /// HS256 secret for tokens (better: PARLOR_JWT_SECRET or --jwt-secret-file, which no
    /// process list shows); without any key, a random secret kept in the data directory.
    #[arg(long, env = "PARLOR_JWT_SECRET", hide_env_values = true)]
    pub jwt_secret: Option<String>,
    /// How tokens are checked (security.md H-I3).
    #[command(flatten)]
    pub jwt: JwtOptions,
    /// Commands the writer queues at most; beyond that it answers `unavailable` at once.
    #[arg(long, env = "PARLOR_COMMAND_QUEUE_MAX", default_value_t = writer::QUEUE_COMMANDS_MAX)]
    pub command_queue_max: usize,
    /// Development only: the clock can be moved through <prefix>.dev.clock.
    #[arg(long, env = "PARLOR_DEV_CLOCK")]
    pub dev_clock: bool,
    /// SSE streams (`GET /v1/events`) open at once in all; more are refused with 503.
    #[arg(long, env = "PARLOR_SSE_STREAMS_MAX", default_value_t = gateway::SSE_CLIENTS_MAX_DEFAULT)]
    pub sse_streams_max: usize,
    /// SSE streams one user may have open at once; more are refused with 429 (H-L4).
    #[arg(long, env = "PARLOR_SSE_STREAMS_PER_USER_MAX", default_value_t = gateway::SSE_STREAMS_PER_USER_MAX_DEFAULT)]
    pub sse_streams_per_user_max: usize,
    /// Gateway limits (security.md H-L2, H-L3, H-L5).
    #[command(flatten)]
    pub limits: LimitOptions,
    /// Where the gateway keeps file bytes.
    #[command(flatten)]
    pub blobs: BlobOptions,
    /// Which service may send which service command (TOML, `[services] name = ["type", …]`);
    /// replaces the default table (security.md H-I2). Read by the writer.
    #[arg(long, env = "PARLOR_SERVICES")]
    pub services: Option<PathBuf>,
}

/// Where the gateway keeps file bytes.
#[derive(Debug, Clone, Args)]
pub struct BlobOptions {
    /// `local`: in the data directory (one gateway); `nats`: in the NATS JetStream object store,
    /// shared by every gateway on the same NATS (needs --nats-url).
    #[arg(long, env = "PARLOR_BLOB_STORE", default_value = "local")]
    pub blob_store: BlobStoreKind,
    /// With `--blob-store nats`: copies JetStream keeps of the file bytes and their records
    /// (1 on a single server, 3 on a three-node cluster). Used when the buckets are created.
    #[arg(long, env = "PARLOR_BLOB_REPLICAS", default_value_t = 1, value_parser = clap::value_parser!(u64).range(1..=5))]
    pub blob_replicas: u64,
}

/// Where file bytes live.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum BlobStoreKind {
    /// `<data-dir>/blobs` on this machine.
    Local,
    /// The NATS JetStream object store `<subject prefix>-blobs`.
    Nats,
}

/// How a part authenticates to NATS and which reply subjects it uses (security.md H-N1).
#[derive(Debug, Clone, Args)]
pub struct NatsConnectOptions {
    /// A NATS `.creds` file (user JWT and NKey seed).
    #[arg(long, env = "PARLOR_NATS_CREDS", conflicts_with = "nats_user")]
    pub nats_creds: Option<PathBuf>,
    /// The NATS user name (with --nats-password-file).
    #[arg(long, env = "PARLOR_NATS_USER", requires = "nats_password_file")]
    pub nats_user: Option<String>,
    /// The file holding the NATS user's password (one line).
    #[arg(long, env = "PARLOR_NATS_PASSWORD_FILE", requires = "nats_user")]
    pub nats_password_file: Option<PathBuf>,
    /// PEM file of the CA that signed the NATS servers' certificates (turns TLS on).
    #[arg(long, env = "PARLOR_NATS_TLS_CA")]
    pub nats_tls_ca: Option<PathBuf>,
    /// PEM client certificate for mutual TLS (with --nats-tls-key).
    #[arg(long, env = "PARLOR_NATS_TLS_CERT", requires = "nats_tls_key")]
    pub nats_tls_cert: Option<PathBuf>,
    /// PEM private key of --nats-tls-cert.
    #[arg(long, env = "PARLOR_NATS_TLS_KEY", requires = "nats_tls_cert")]
    pub nats_tls_key: Option<PathBuf>,
    /// The prefix of this part's reply subjects; default `_INBOX_<part>` (`_INBOX_writer`,
    /// `_INBOX_gateway`, `_INBOX_projector_<name>`, `_INBOX_up`), so the server's permissions
    /// can give each user its own replies only.
    #[arg(long, env = "PARLOR_NATS_INBOX_PREFIX")]
    pub nats_inbox_prefix: Option<String>,
}

impl NatsConnectOptions {
    /// The bus options for `servers` as the part `part` (`writer`, `projector_rooms`, …).
    pub fn bus_options(&self, servers: &str, part: &str) -> bus::NatsOptions {
        let mut options = bus::NatsOptions::new(servers, &format!("parlor-{part}"));
        options.auth = match (&self.nats_creds, &self.nats_user, &self.nats_password_file) {
            (Some(creds), _, _) => bus::NatsAuth::CredsFile(creds.clone()),
            (None, Some(user), Some(password_file)) => bus::NatsAuth::UserPasswordFile {
                user: user.clone(),
                password_file: password_file.clone(),
            },
            _ => bus::NatsAuth::Anonymous,
        };
        options.tls = bus::NatsTls {
            ca: self.nats_tls_ca.clone(),
            cert: self.nats_tls_cert.clone(),
            key: self.nats_tls_key.clone(),
        };
        options.inbox_prefix = Some(
            self.nats_inbox_prefix
                .clone()
                .unwrap_or_else(|| default_inbox_prefix(part)),
        );
        options
    }
}

/// `_INBOX_<part>` with every character that may not appear in a subject token made `_`.
pub fn default_inbox_prefix(part: &str) -> String {
    let token: String = part
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect();
    format!("_INBOX_{token}")
}

/// The gateway's limits on what one caller may use (security.md H-L2, H-L3, H-L5).
#[derive(Debug, Clone, Args)]
pub struct LimitOptions {
    /// Commands per second each user token may send through the gateway (services and NATS
    /// are not limited).
    #[arg(long, env = "PARLOR_USER_COMMAND_RATE", default_value_t = gateway::limits::USER_COMMANDS_PER_SECOND_DEFAULT, value_parser = clap::value_parser!(u32).range(1..))]
    pub user_command_rate: u32,
    /// Commands a user token may send at once above the rate.
    #[arg(long, env = "PARLOR_USER_COMMAND_BURST", default_value_t = gateway::limits::USER_COMMAND_BURST_DEFAULT, value_parser = clap::value_parser!(u32).range(1..))]
    pub user_command_burst: u32,
    /// Bytes each user may upload per UTC day (default 10 GiB).
    #[arg(long, env = "PARLOR_UPLOAD_QUOTA_BYTES_PER_DAY", default_value_t = gateway::limits::UPLOAD_QUOTA_BYTES_PER_DAY_DEFAULT)]
    pub upload_quota_bytes_per_day: u64,
    /// Free bytes kept on the disks of the event log and the file bytes: uploads that would eat
    /// into them are refused (default 1 GiB).
    #[arg(long, env = "PARLOR_DISK_RESERVE_BYTES", default_value_t = gateway::limits::DISK_RESERVE_BYTES_DEFAULT)]
    pub disk_reserve_bytes: u64,
    /// Seconds an upload may stay unattached to any message before its bytes are deleted
    /// (default: the 24 h in which the writer lets a file be attached, plus 10 minutes). Shorter
    /// deletes the bytes of files that can still be attached: their messages then carry a file
    /// that downloads as 404.
    #[arg(long, env = "PARLOR_UNATTACHED_UPLOAD_GRACE_SECONDS", default_value_t = gateway::unattached::UNATTACHED_UPLOAD_GRACE_DEFAULT.as_secs(), value_parser = clap::value_parser!(u64).range(1..))]
    pub unattached_upload_grace_seconds: u64,
    /// Milliseconds a client has to send a request's headers before its connection is closed.
    #[arg(long, env = "PARLOR_HTTP_HEADER_TIMEOUT_MS", default_value_t = 10_000, value_parser = clap::value_parser!(u64).range(1..))]
    pub http_header_timeout_ms: u64,
    /// Milliseconds a request body may send nothing before the request fails (408) and its
    /// connection is closed.
    #[arg(long, env = "PARLOR_HTTP_BODY_TIMEOUT_MS", default_value_t = 30_000, value_parser = clap::value_parser!(u64).range(1..))]
    pub http_body_timeout_ms: u64,
    /// Open HTTP connections at most (SSE streams included); past it, new ones are closed.
    #[arg(long, env = "PARLOR_HTTP_CONNECTIONS_MAX", default_value_t = gateway::serve::CONNECTIONS_MAX_DEFAULT as u64, value_parser = clap::value_parser!(u64).range(1..))]
    pub http_connections_max: u64,
}

impl LimitOptions {
    /// Applies the limits to a gateway's configuration.
    pub fn apply(&self, config: &mut gateway::GatewayConfig) {
        use std::time::Duration;
        config.user_command_rate = gateway::CommandRate {
            interval: Duration::from_secs(1) / self.user_command_rate.max(1),
            burst: self.user_command_burst.max(1),
        };
        config.upload_quota_bytes_per_day = self.upload_quota_bytes_per_day;
        config.disk_reserve_bytes = self.disk_reserve_bytes;
        config.unattached_upload_grace = Duration::from_secs(self.unattached_upload_grace_seconds);
        // A quarter of the grace, at most the default: an upload outlives its grace by at most
        // that much.
        config.unattached_collect_interval =
            (config.unattached_upload_grace / 4).min(gateway::unattached::COLLECT_INTERVAL_DEFAULT);
        config.http = gateway::HttpLimits {
            header_read_timeout: Duration::from_millis(self.http_header_timeout_ms),
            body_progress_timeout: Duration::from_millis(self.http_body_timeout_ms),
            connections_max: usize::try_from(self.http_connections_max).unwrap_or(usize::MAX),
        };
    }
}

/// The operator address, or none (`off`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OpsAddress(pub Option<std::net::SocketAddr>);

/// Parses `--ops-addr`: `off`, or an address such as `127.0.0.1:9797`.
pub fn parse_ops_addr(text: &str) -> Result<OpsAddress, String> {
    if text.trim().eq_ignore_ascii_case("off") {
        return Ok(OpsAddress(None));
    }
    text.trim()
        .parse()
        .map(|addr| OpsAddress(Some(addr)))
        .map_err(|_| format!("{text:?}: give an address like 127.0.0.1:9797, or off"))
}

/// Token verification keys and checks (security.md H-I3), for the gateway and `parlor token`.
#[derive(Debug, Clone, Args)]
pub struct JwtOptions {
    /// A file holding the HS256 secret (its text, trimmed), instead of --jwt-secret.
    #[arg(long, env = "PARLOR_JWT_SECRET_FILE", conflicts_with = "jwt_secret")]
    pub jwt_secret_file: Option<PathBuf>,
    /// A file holding the previous HS256 secret, still accepted while tokens signed with it
    /// expire (a rotation).
    #[arg(long, env = "PARLOR_JWT_PREVIOUS_SECRET_FILE")]
    pub jwt_previous_secret_file: Option<PathBuf>,
    /// A JWKS file of Ed25519 public keys: EdDSA tokens are checked against them. Given alone
    /// (no secret), the gateway holds no signing secret and refuses HS256 tokens.
    #[arg(long, env = "PARLOR_JWT_JWKS")]
    pub jwt_jwks: Option<PathBuf>,
    /// When set, tokens must carry this `iss` (and `parlor token` writes it).
    #[arg(long, env = "PARLOR_JWT_ISSUER")]
    pub jwt_issuer: Option<String>,
    /// When set, tokens must carry this `aud` (and `parlor token` writes it).
    #[arg(long, env = "PARLOR_JWT_AUDIENCE")]
    pub jwt_audience: Option<String>,
    /// How far ahead a token's `exp` may be: a number with a unit, `s`, `m`, `h` or `d`.
    #[arg(long, env = "PARLOR_JWT_MAX_TTL", default_value = "24h", value_parser = parse_duration)]
    pub jwt_max_ttl: std::time::Duration,
}

impl JwtOptions {
    /// The checks these options ask for.
    pub fn policy(&self) -> gateway::auth::TokenPolicy {
        gateway::auth::TokenPolicy {
            max_ttl: self.jwt_max_ttl,
            issuer: self.jwt_issuer.clone(),
            audience: self.jwt_audience.clone(),
        }
    }
}

/// Parses a duration written as a whole number and a unit: `90s`, `30m`, `24h`, `7d`.
pub fn parse_duration(text: &str) -> Result<std::time::Duration, String> {
    const SECONDS_PER_UNIT: [(char, u64); 4] = [('s', 1), ('m', 60), ('h', 3_600), ('d', 86_400)];
    let text = text.trim();
    let unit = text.chars().last().unwrap_or(' ');
    let Some((_, seconds_per_unit)) = SECONDS_PER_UNIT.iter().find(|(name, _)| *name == unit)
    else {
        return Err(format!(
            "{text:?}: give a number and a unit (s, m, h or d), e.g. 24h"
        ));
    };
    let count: u64 = text[..text.len() - 1]
        .parse()
        .map_err(|_| format!("{text:?}: not a whole number before the unit"))?;
    count
        .checked_mul(*seconds_per_unit)
        .filter(|seconds| *seconds > 0)
        .map(std::time::Duration::from_secs)
        .ok_or_else(|| format!("{text:?}: must be more than zero and fit in 64 bits of seconds"))
}

/// Encoding of published events.
#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum EventFormat {
    /// The protocol crate's bincode.
    Bincode,
    /// JSON, for foreign consumers.
    Json,
}

impl From<EventFormat> for protocol::Format {
    fn from(format: EventFormat) -> protocol::Format {
        match format {
            EventFormat::Bincode => protocol::Format::Bincode,
            EventFormat::Json => protocol::Format::Json,
        }
    }
}

/// Log output format.
#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line.
    Json,
}

/// Structured logs to stderr (lossy: see [`crate::log_output`]); the level comes from
/// `PARLOR_LOG` (default `info`).
pub fn init_logging(format: &LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_env("PARLOR_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(crate::log_output::LossyStderr);
    match format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder.json().init(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_take_a_unit() {
        let hours = |count: u64| std::time::Duration::from_secs(count * 3_600);
        assert_eq!(parse_duration("24h"), Ok(hours(24)));
        assert_eq!(
            parse_duration("90s"),
            Ok(std::time::Duration::from_secs(90))
        );
        assert_eq!(
            parse_duration("30m"),
            Ok(std::time::Duration::from_secs(1_800))
        );
        assert_eq!(parse_duration("7d"), Ok(hours(7 * 24)));
        for bad in ["", "24", "h", "0h", "-1h", "1.5h", "99999999999999999999d"] {
            assert!(parse_duration(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn the_ops_address_can_be_off() {
        assert_eq!(parse_ops_addr("off"), Ok(OpsAddress(None)));
        let any_port = std::net::SocketAddr::from(([127, 0, 0, 1], 0));
        assert_eq!(
            parse_ops_addr("127.0.0.1:0"),
            Ok(OpsAddress(Some(any_port)))
        );
        assert!(parse_ops_addr("localhost").is_err());
    }
}

/// `parlor writer --ha`: several writers share one log through a JetStream stream and a lease
/// (needs nats-server >= 2.10 with JetStream, three servers for R3; docs/operations.md).
#[derive(Debug, Args)]
pub struct HaOptions {
    /// Run as one of several writers: lead while holding the lease, else follow as a standby.
    #[arg(long, env = "PARLOR_HA")]
    pub ha: bool,
    /// This writer's name in the lease and in writer.ping (default: host name and process id).
    #[arg(long, env = "PARLOR_HA_NAME")]
    pub ha_name: Option<String>,
    /// The lease's time to live in milliseconds: a dead leader is replaced about this long
    /// after its last renewal. 2 s keeps the takeover's p99 under the 3 s goal (measured: the
    /// worst of 15 was 2.47 s; with 3 s it was 4.05 s) while a leader still rides out a lease
    /// write stalled for about 1.6 s (docs/decisions.md).
    #[arg(long, env = "PARLOR_HA_LEASE_TTL_MS", default_value_t = 2000, value_parser = clap::value_parser!(u64).range(500..=60_000))]
    pub ha_lease_ttl_ms: u64,
    /// Replicas of the write-ahead log and the lease (3 on a three-server cluster).
    #[arg(long, env = "PARLOR_HA_REPLICAS", default_value_t = 3, value_parser = clap::value_parser!(u64).range(1..=5))]
    pub ha_replicas: u64,
}
