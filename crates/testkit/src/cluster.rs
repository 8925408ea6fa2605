//! A three-node `nats-server` cluster on loopback: JetStream on, each node with its own store
//! directory, routes between all nodes, and single nodes stopped and started again.
//!
//! Every node owns three [`ReservedPort`]s (client, route, monitoring) for the cluster's whole
//! life: a stopped node's ports stay held by the cluster (see [`crate::ports`]), so
//! [`NatsCluster::start`] restarts it on the same ports with the same store, as a machine that
//! reboots would. Readiness means a node greets clients with `INFO` and its `/healthz` says ok,
//! which in a JetStream cluster means it is in contact with a meta leader.

use std::io;
use std::path::{Path, PathBuf};

use crate::ports::ReservedPort;
use crate::process::ServerProcess;
use crate::TempDataDir;

/// How many nodes a [`NatsCluster`] has: the smallest JetStream cluster that survives the loss
/// of one node.
pub const CLUSTER_NODES: usize = 3;

/// Where one node listens and keeps its files; what [`ClusterOptions`] templates from.
#[derive(Clone, Debug)]
pub struct NodeLayout {
    /// 0, 1 or 2.
    pub index: usize,
    /// The node's `server_name` (`n1`, `n2`, `n3`).
    pub name: String,
    /// The client port on 127.0.0.1.
    pub client_port: u16,
    /// The route (cluster) port on 127.0.0.1.
    pub route_port: u16,
    /// The HTTP monitoring port on 127.0.0.1.
    pub monitor_port: u16,
    /// The node's own directory (config, log, JetStream store).
    pub dir: PathBuf,
}

/// Extra configuration text for a node, made from its layout.
pub type NodeText = Box<dyn Fn(&NodeLayout) -> String + Send + Sync>;

/// Writes a node's whole configuration (one file or several with `include`) into its
/// directory and returns the file to start the node with; it is given the node and every node
/// of the cluster (for the routes).
pub type NodeFiles = Box<dyn Fn(&NodeLayout, &[NodeLayout]) -> io::Result<PathBuf> + Send + Sync>;

/// What a test adds to the cluster's plain configuration (TLS, users, route authorisation).
#[derive(Default)]
pub struct ClusterOptions {
    /// Top-level configuration appended to each node's file (e.g. `tls {…}`, `include …`).
    pub node_extra: Option<NodeText>,
    /// Configuration inside each node's `cluster {…}` block (e.g. `authorization {…}`, `tls {…}`).
    pub cluster_extra: Option<NodeText>,
    /// `user:password` put into the route URLs, for routes with authorisation.
    pub route_credentials: Option<String>,
    /// Environment variables for every node (nats-server resolves `$NAME` in its config from
    /// the environment when the config does not define it).
    pub envs: Vec<(String, String)>,
    /// A configuration of the test's own instead of the cluster's plain one (the extras above
    /// are then unused): it must listen on the layout's ports, client, route and monitoring.
    /// Readiness is then a client greeting only, because such a configuration may serve
    /// monitoring over HTTPS (which the probe does not speak): the test waits for its routes.
    pub files: Option<NodeFiles>,
    /// The `nats-server` binary every node runs; `None` finds it as [`crate::NatsServer`] does.
    pub server_binary: Option<PathBuf>,
    /// Configuration inside each node's `jetstream {…}` block (e.g. `sync_interval: always`).
    pub jetstream_extra: String,
}

impl ClusterOptions {
    /// What the HA writer's tests run: nats-server 2.15 (key-value needs at least 2.10;
    /// see [`crate::nats_server_215`]), every JetStream write fsynced before it is acknowledged
    /// (`sync_interval: always`: Jepsen showed the default lazy fsync loses acknowledged
    /// writes when nodes crash together), and messages up to 8 MiB so that one group-commit
    /// batch of the writer (at most 4 MiB) fits one message.
    ///
    /// # Panics
    /// When the 2.15 binary is missing; the message names the script that installs it.
    pub fn ha() -> ClusterOptions {
        ClusterOptions::ha_with(crate::nats_server_215())
    }

    /// [`ClusterOptions::ha`] on a nats-server binary of the caller's choosing (≥ 2.10): the
    /// benchmark harness resolves its own and reports a missing one as an error, not a panic.
    pub fn ha_with(server_binary: PathBuf) -> ClusterOptions {
        ClusterOptions {
            server_binary: Some(server_binary),
            jetstream_extra: "  sync_interval: always".to_owned(),
            node_extra: Some(Box::new(|_| "max_payload: 8MB".to_owned())),
            ..ClusterOptions::default()
        }
    }
}

impl std::fmt::Debug for ClusterOptions {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter
            .debug_struct("ClusterOptions")
            .field("node_extra", &self.node_extra.is_some())
            .field("cluster_extra", &self.cluster_extra.is_some())
            .field("route_credentials", &self.route_credentials.is_some())
            .field("envs", &self.envs.len())
            .field("files", &self.files.is_some())
            .field("server_binary", &self.server_binary)
            .field("jetstream_extra", &self.jetstream_extra)
            .finish()
    }
}

/// One node: its process and the ports it owns.
#[derive(Debug)]
struct Node {
    layout: NodeLayout,
    process: ServerProcess,
    client: ReservedPort,
    route: ReservedPort,
    monitor: ReservedPort,
}

/// A running three-node NATS cluster; dropping it kills every node and deletes their files.
#[derive(Debug)]
pub struct NatsCluster {
    nodes: Vec<Node>,
    options: ClusterOptions,
    // Declared last so it is deleted after the processes are gone (fields drop in order).
    dir: TempDataDir,
}

impl NatsCluster {
    /// Starts three routed nodes with JetStream and waits (bounded) until all are healthy.
    ///
    /// # Panics
    /// When `nats-server` is missing or a node is not ready within
    /// [`crate::START_WAIT_MAX`] (the message quotes the node's log).
    pub fn start_cluster() -> NatsCluster {
        NatsCluster::start_cluster_with(ClusterOptions::default())
    }

    /// Like [`NatsCluster::start_cluster`] with extra configuration.
    ///
    /// # Panics
    /// As [`NatsCluster::start_cluster`].
    pub fn start_cluster_with(options: ClusterOptions) -> NatsCluster {
        match NatsCluster::try_start_with(options) {
            Ok(cluster) => cluster,
            Err(error) => panic!("testkit: cannot start the NATS cluster: {error}"),
        }
    }

    /// Like [`NatsCluster::start_cluster_with`], returning the error instead of panicking.
    pub fn try_start_with(options: ClusterOptions) -> io::Result<NatsCluster> {
        let dir = TempDataDir::new();
        let mut nodes = Vec::with_capacity(CLUSTER_NODES);
        for index in 0..CLUSTER_NODES {
            let node_dir = dir.join(format!("n{}", index + 1));
            std::fs::create_dir_all(&node_dir)?;
            let client = ReservedPort::new()?;
            let route = ReservedPort::new()?;
            let monitor = ReservedPort::new()?;
            nodes.push(Node {
                layout: NodeLayout {
                    index,
                    name: format!("n{}", index + 1),
                    client_port: client.port(),
                    route_port: route.port(),
                    monitor_port: monitor.port(),
                    dir: node_dir.clone(),
                },
                process: ServerProcess::with_binary(&node_dir, options.server_binary.as_deref())?,
                client,
                route,
                monitor,
            });
        }
        let mut cluster = NatsCluster {
            nodes,
            options,
            dir,
        };
        // A JetStream node is healthy only once a meta leader is elected, which takes a quorum:
        // spawn all nodes first, then wait for each.
        for index in 0..CLUSTER_NODES {
            cluster.spawn(index, false)?;
        }
        let probe_health = cluster.options.files.is_none();
        for node in &mut cluster.nodes {
            node.process.wait_until_ready(
                node.layout.client_port,
                probe_health.then_some(node.layout.monitor_port),
                true,
            )?;
        }
        Ok(cluster)
    }

    /// The client URL of one node, `nats://127.0.0.1:PORT`.
    ///
    /// # Panics
    /// When `node` is not below [`CLUSTER_NODES`].
    pub fn url(&self, node: usize) -> String {
        format!("nats://127.0.0.1:{}", self.nodes[node].layout.client_port)
    }

    /// Every node's client URL, comma-separated (what `--nats-url` takes).
    pub fn urls(&self) -> String {
        (0..CLUSTER_NODES)
            .map(|node| self.url(node))
            .collect::<Vec<_>>()
            .join(",")
    }

    /// Where a node listens and keeps its files.
    ///
    /// # Panics
    /// When `node` is not below [`CLUSTER_NODES`].
    pub fn layout(&self, node: usize) -> &NodeLayout {
        &self.nodes[node].layout
    }

    /// The cluster's own directory (one sub-directory per node); a test may put shared files
    /// such as certificates here.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// The last few kilobytes of a node's log.
    pub fn log_tail(&self, node: usize) -> String {
        self.nodes[node].process.log_tail()
    }

    /// Whether a node's process runs.
    pub fn is_running(&mut self, node: usize) -> bool {
        self.nodes[node].process.is_running()
    }

    /// Kills one node (SIGKILL, like a crash) and reaps it; its ports stay held by the cluster
    /// and its store stays for [`NatsCluster::start`]. Does nothing when it is stopped.
    ///
    /// # Panics
    /// When it cannot be reaped within [`crate::STOP_WAIT_MAX`] or its ports cannot be held.
    pub fn stop(&mut self, node: usize) {
        let node = &mut self.nodes[node];
        let held = node.process.kill_and_reap().and_then(|()| {
            node.client.take_back()?;
            node.route.take_back()?;
            node.monitor.take_back()
        });
        if let Err(error) = held {
            panic!(
                "testkit: cannot stop NATS node {}: {error}",
                node.layout.name
            );
        }
    }

    /// Starts a stopped node again on its ports with its store and waits until it is healthy.
    /// Does nothing when it runs.
    ///
    /// # Panics
    /// When it is not ready within [`crate::START_WAIT_MAX`] (the message quotes its log).
    pub fn start(&mut self, node: usize) {
        if self.is_running(node) {
            return;
        }
        if let Err(error) = self.spawn(node, true) {
            panic!("testkit: cannot start NATS node {}: {error}", node + 1);
        }
    }

    /// Writes a node's configuration file and spawns it.
    fn spawn(&mut self, index: usize, wait_ready: bool) -> io::Result<()> {
        let path = match &self.options.files {
            Some(files) => {
                let all: Vec<NodeLayout> =
                    self.nodes.iter().map(|node| node.layout.clone()).collect();
                files(&all[index], &all)?
            }
            None => {
                let path = self.nodes[index].layout.dir.join("node.conf");
                std::fs::write(&path, self.config_text(index))?;
                path
            }
        };
        let node = &mut self.nodes[index];
        let args = ["-c".to_owned(), path.display().to_string()];
        if self.options.files.is_some() {
            // The monitoring port is handed over but not probed (it may be HTTPS).
            return node.process.spawn_and_wait(
                wait_ready,
                &args,
                &self.options.envs,
                &mut node.client,
                None,
                &mut [&mut node.route, &mut node.monitor],
            );
        }
        node.process.spawn_and_wait(
            wait_ready,
            &args,
            &self.options.envs,
            &mut node.client,
            Some(&mut node.monitor),
            &mut [&mut node.route],
        )
    }

    /// The configuration of one node: where it listens, its store, its routes, and the extras.
    fn config_text(&self, index: usize) -> String {
        let layout = &self.nodes[index].layout;
        let credentials = self
            .options
            .route_credentials
            .as_ref()
            .map(|credentials| format!("{credentials}@"))
            .unwrap_or_default();
        let routes = self
            .nodes
            .iter()
            .filter(|other| other.layout.index != index)
            .map(|other| {
                format!(
                    "    nats-route://{credentials}127.0.0.1:{}",
                    other.layout.route_port
                )
            })
            .collect::<Vec<_>>()
            .join("\n");
        let cluster_extra = self
            .options
            .cluster_extra
            .as_ref()
            .map(|text| text(layout))
            .unwrap_or_default();
        let node_extra = self
            .options
            .node_extra
            .as_ref()
            .map(|text| text(layout))
            .unwrap_or_default();
        format!(
            "server_name: {name}\n\
             listen: 127.0.0.1:{client}\n\
             http: 127.0.0.1:{monitor}\n\
             jetstream {{\n  store_dir: \"{store}\"\n{jetstream_extra}\n}}\n\
             cluster {{\n  name: parlor-test\n  listen: 127.0.0.1:{route}\n  routes: [\n{routes}\n  ]\n{cluster_extra}\n}}\n\
             {node_extra}\n",
            name = layout.name,
            client = layout.client_port,
            monitor = layout.monitor_port,
            store = layout.dir.join("jetstream").display(),
            route = layout.route_port,
            jetstream_extra = self.options.jetstream_extra,
        )
    }
}
