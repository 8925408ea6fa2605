//! Chaos under load (issue 15): a three-node NATS cluster, the writer on node 1, two replicas
//! of every projector and two gateways spread over nodes 2 and 3, and 100 senders posting
//! through the gateways (each retrying with its `Idempotency-Key` until answered). Each round
//! kills and restarts one NATS node, SIGKILLs and restarts one projector replica, then one
//! gateway, while a reader per gateway keeps reading.
//!
//! Afterwards: every acknowledged command is in the log exactly once (read from the stopped
//! writer's data directory, hash chain verified) and every acknowledged message is visible
//! through both gateways; each projector replica equals a rebuild from the log (`parlor replay
//! all` on the writer's directory, compared by `Projector::digest`); reads failed only within
//! a bounded window, the longest of which is printed per fault kind.
//!
//! `PARLOR_CHAOS_ROUNDS` sets the rounds (CI: 5; `just chaos 20` by hand).

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use testkit::{CommandWithin, NatsCluster};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use uuid::Uuid;

use crate::deployment::{Deployment, Placement, MODELS};
use crate::harness::Client;

const SENDERS: usize = 100;
/// Pause between two commands of one sender: 100 senders at most 10 commands/s each, under the
/// gateway's per-user rate (20/s).
const SEND_PAUSE: Duration = Duration::from_millis(100);
/// Pause between two reads of a reader.
const READ_PAUSE: Duration = Duration::from_millis(50);
/// One HTTP exchange may take this long before it counts as failed (and is retried).
const EXCHANGE_WAIT: Duration = Duration::from_secs(5);
/// How long a fault lasts before the part or node is started again.
const FAULT_TIME: Duration = Duration::from_secs(2);
/// How long the deployment may take to be healthy again after a fault.
const RECOVERY_WAIT: Duration = Duration::from_secs(60);
/// How long a replica may take to reach the head after the load stops (the notifications model
/// of a 100-member room falls behind under the full load in a debug build).
const CATCH_UP_WAIT: Duration = Duration::from_secs(300);
/// A pause after the deployment is healthy again, before the next fault.
const SETTLE_TIME: Duration = Duration::from_millis(500);
/// The longest read outage accepted on a gateway that was not itself killed.
const READ_OUTAGE_MAX: Duration = Duration::from_secs(30);

/// One HTTP exchange that fails instead of panicking: `(status, body)`.
async fn exchange(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> Result<(u16, Vec<u8>), String> {
    let attempt = async {
        let mut stream = tokio::net::TcpStream::connect(addr)
            .await
            .map_err(|error| format!("connect: {error}"))?;
        let mut head = format!(
            "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nContent-Length: {}\r\n",
            body.len()
        );
        for (name, value) in headers {
            head.push_str(&format!("{name}: {value}\r\n"));
        }
        head.push_str("\r\n");
        stream
            .write_all(head.as_bytes())
            .await
            .map_err(|error| format!("write: {error}"))?;
        stream
            .write_all(body)
            .await
            .map_err(|error| format!("write: {error}"))?;
        let mut answer = Vec::new();
        stream
            .read_to_end(&mut answer)
            .await
            .map_err(|error| format!("read: {error}"))?;
        parse_response(&answer)
    };
    tokio::time::timeout(EXCHANGE_WAIT, attempt)
        .await
        .unwrap_or_else(|_| Err(format!("no answer within {EXCHANGE_WAIT:?}")))
}

/// The status and (de-chunked) body of a whole HTTP/1.1 response.
fn parse_response(answer: &[u8]) -> Result<(u16, Vec<u8>), String> {
    let end = answer
        .windows(4)
        .position(|window| window == b"\r\n\r\n")
        .ok_or("no complete head")?;
    let head = String::from_utf8_lossy(&answer[..end]).to_ascii_lowercase();
    let status = head
        .lines()
        .next()
        .and_then(|line| line.split_whitespace().nth(1))
        .and_then(|code| code.parse().ok())
        .ok_or("no status")?;
    let mut body = answer[end + 4..].to_vec();
    if head.contains("transfer-encoding: chunked") {
        let mut plain = Vec::new();
        let mut rest = &body[..];
        loop {
            let line_end = rest
                .windows(2)
                .position(|window| window == b"\r\n")
                .ok_or("a cut chunk")?;
            let size = usize::from_str_radix(String::from_utf8_lossy(&rest[..line_end]).trim(), 16)
                .map_err(|_| "a bad chunk size")?;
            if size == 0 {
                break;
            }
            let start = line_end + 2;
            let chunk = rest.get(start..start + size).ok_or("a cut chunk")?;
            plain.extend_from_slice(chunk);
            rest = rest.get(start + size + 2..).unwrap_or_default();
        }
        body = plain;
    }
    Ok((status, body))
}

/// Sends one `message.send` through `addr` until answered, always with the same
/// `Idempotency-Key`; the §1 reply.
async fn send_until_answered(
    addr: SocketAddr,
    token: &str,
    command_id: Uuid,
    data: &Value,
    stop_retrying: &AtomicBool,
) -> Option<Value> {
    let authorization = format!("Bearer {token}");
    let key = command_id.to_string();
    let body = serde_json::to_vec(data).unwrap();
    loop {
        let answer = exchange(
            addr,
            "POST",
            "/v1/commands/message.send",
            &[
                ("Authorization", authorization.as_str()),
                ("Content-Type", "application/json"),
                ("Idempotency-Key", key.as_str()),
            ],
            &body,
        )
        .await;
        match answer {
            Ok((200, body)) => return Some(serde_json::from_slice(&body).unwrap()),
            // Unavailable, timed out, rate limited, or the gateway is down: the same key again.
            Ok((status, _)) if status >= 500 || status == 429 || status == 408 => {}
            Ok((status, body)) => panic!(
                "message.send answered {status}: {}",
                String::from_utf8_lossy(&body)
            ),
            Err(_) => {}
        }
        if stop_retrying.load(Ordering::Relaxed) {
            return None;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// What each gateway's reader saw: the time of each read and whether it was answered.
type ReadLog = Arc<Mutex<Vec<(Instant, bool)>>>;

/// The kinds of fault, in the order a round injects them.
const FAULT_KINDS: [&str; 3] = ["nats node", "projector replica", "gateway"];

/// One injected fault: its kind, when it began, and the gateway it took down, if any.
struct Fault {
    kind: &'static str,
    at: Instant,
    gateway_down: Option<usize>,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chaos_under_load_loses_and_duplicates_nothing() {
    let rounds: usize = std::env::var("PARLOR_CHAOS_ROUNDS")
        .ok()
        .and_then(|text| text.parse().ok())
        .unwrap_or(5);
    let mut cluster = tokio::task::block_in_place(NatsCluster::start_cluster);
    let (node1, node2, node3) = (cluster.url(0), cluster.url(1), cluster.url(2));
    let mut system = Deployment::start(&Placement {
        writer: node1.clone(),
        projector_replicas: vec![node2.clone(), node3.clone()],
        gateways: vec![node2.clone(), node3.clone()],
        // Each bucket survives the loss of one node.
        blob_replicas: 3,
    })
    .await;
    let client = Client::connect(&node1).await;
    let (users, room) = client.group_room("sender", SENDERS, "Load").await;
    let tokens: Vec<String> = users.iter().map(|user| system.token(user)).collect();
    let addrs: Vec<SocketAddr> = system.gateways.iter().map(|part| part.addr).collect();

    // 100 senders, half through each gateway.
    let stop = Arc::new(AtomicBool::new(false));
    let acknowledged: Arc<Mutex<HashMap<Uuid, Value>>> = Arc::default();
    let mut senders = Vec::new();
    for (index, token) in tokens.iter().enumerate() {
        let (stop, acknowledged, room, token) = (
            stop.clone(),
            acknowledged.clone(),
            room.clone(),
            token.clone(),
        );
        let addr = addrs[index % addrs.len()];
        senders.push(tokio::spawn(async move {
            let mut sent = 0u64;
            while !stop.load(Ordering::Relaxed) {
                let command_id = Uuid::new_v4();
                let data = json!({"room_id": room, "body": format!("sender{index} #{sent}")});
                if let Some(reply) =
                    send_until_answered(addr, &token, command_id, &data, &stop).await
                {
                    assert_eq!(reply["ok"], true, "{reply}");
                    acknowledged.lock().unwrap().insert(command_id, reply);
                }
                sent += 1;
                tokio::time::sleep(SEND_PAUSE).await;
            }
        }));
    }
    // A reader per gateway.
    let read_logs: Vec<ReadLog> = addrs.iter().map(|_| ReadLog::default()).collect();
    let mut readers = Vec::new();
    for (addr, log) in addrs.iter().zip(&read_logs) {
        let (addr, log, stop) = (*addr, log.clone(), stop.clone());
        let authorization = format!("Bearer {}", tokens[0]);
        let path = format!("/v1/rooms/{room}/messages?limit=5");
        readers.push(tokio::spawn(async move {
            while !stop.load(Ordering::Relaxed) {
                let answer = exchange(
                    addr,
                    "GET",
                    &path,
                    &[("Authorization", authorization.as_str())],
                    b"",
                )
                .await;
                let ok = matches!(answer, Ok((200, _)));
                log.lock().unwrap().push((Instant::now(), ok));
                tokio::time::sleep(READ_PAUSE).await;
            }
        }));
    }

    let started = Instant::now();
    let mut faults = Vec::new();
    for round in 0..rounds {
        // A NATS node, in turn.
        let node = round % 3;
        faults.push(Fault {
            kind: FAULT_KINDS[0],
            at: Instant::now(),
            gateway_down: None,
        });
        tokio::task::block_in_place(|| cluster.stop(node));
        tokio::time::sleep(FAULT_TIME).await;
        tokio::task::block_in_place(|| cluster.start(node));
        recover(&system).await;

        // A projector replica (SIGKILL), each model and replica in turn.
        let (replica, model) = (round % 2, round % MODELS.len());
        faults.push(Fault {
            kind: FAULT_KINDS[1],
            at: Instant::now(),
            gateway_down: None,
        });
        system.kill_projector(replica, model);
        tokio::time::sleep(FAULT_TIME).await;
        system.start_projector(replica, model);
        recover(&system).await;

        // A gateway (SIGKILL).
        let gateway = round % 2;
        faults.push(Fault {
            kind: FAULT_KINDS[2],
            at: Instant::now(),
            gateway_down: Some(gateway),
        });
        system.kill_gateway(gateway);
        tokio::time::sleep(FAULT_TIME).await;
        system.start_gateway(gateway);
        recover(&system).await;
        println!(
            "chaos round {round}: NATS node {}, {} replica {replica}, gateway {gateway}; {} acknowledged so far",
            node + 1,
            MODELS[model],
            acknowledged.lock().unwrap().len()
        );
    }
    let ended = Instant::now();
    tokio::time::sleep(Duration::from_millis(500)).await;
    stop.store(true, Ordering::Relaxed);
    for task in senders.into_iter().chain(readers) {
        tokio::time::timeout(Duration::from_secs(30), task)
            .await
            .expect("a sender or reader stopped in time")
            .unwrap();
    }
    let acknowledged = acknowledged.lock().unwrap().clone();
    assert!(acknowledged.len() > SENDERS, "the load made progress");
    let head = acknowledged
        .values()
        .filter_map(|reply| reply["position"].as_u64())
        .max()
        .unwrap();

    // Every acknowledged message visible through both gateways, once.
    for (index, addr) in addrs.iter().enumerate() {
        let ids = timeline_ids(*addr, &tokens[0], &room, head).await;
        let mut unique = ids.clone();
        unique.sort();
        unique.dedup();
        assert_eq!(
            unique.len(),
            ids.len(),
            "a message twice through gateway {index}"
        );
        for reply in acknowledged.values() {
            let id = reply["result"]["message_id"].as_str().unwrap().to_owned();
            assert!(
                unique.binary_search(&id).is_ok(),
                "acknowledged message {id} not visible through gateway {index}"
            );
        }
    }

    // Read outages, per fault kind, on gateways that were not themselves down.
    let mut longest: HashMap<&str, Duration> = HashMap::new();
    for (index, fault) in faults.iter().enumerate() {
        let until = faults.get(index + 1).map_or(ended, |next| next.at);
        for (gateway, log) in read_logs.iter().enumerate() {
            if fault.gateway_down == Some(gateway) {
                continue;
            }
            let outage = longest_outage(&log.lock().unwrap(), fault.at, until);
            let entry = longest.entry(fault.kind).or_default();
            *entry = (*entry).max(outage);
        }
    }
    for kind in FAULT_KINDS {
        let outage = longest.get(kind).copied().unwrap_or_default();
        assert!(
            outage < READ_OUTAGE_MAX,
            "reads failed for {outage:?} after a {kind} fault"
        );
    }

    // Each replica level with the head, then stopped: with one replica of a model stopped, a
    // query waiting for the head reaches the other; then the first runs alone.
    for (model, name) in MODELS.iter().enumerate() {
        assert!(
            system.projectors[0][model].terminate().success(),
            "a projector stopped cleanly"
        );
        wait_for_position(&client, name, head).await;
        assert!(
            system.projectors[1][model].terminate().success(),
            "a projector stopped cleanly"
        );
        system.start_projector(0, model);
        wait_for_position(&client, name, head).await;
        assert!(
            system.projectors[0][model].terminate().success(),
            "a projector stopped cleanly"
        );
    }
    for gateway in system.gateways.iter_mut() {
        gateway.parlor.kill();
    }
    assert!(
        system.writer.terminate().success(),
        "the writer stopped cleanly"
    );
    let writer_dir = system.root.path().join("writer");
    let commands = check_log(&writer_dir, &acknowledged);

    // Each replica equals a rebuild from the log.
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_parlor"))
        .args(["replay", "all", "--data-dir"])
        .arg(&writer_dir)
        .output_within(crate::harness::COMMAND_WAIT)
        .expect("run parlor replay all");
    assert!(
        output.status.success(),
        "parlor replay all: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    for model in MODELS {
        let rebuilt = digest(model, &writer_dir);
        for replica in 0..system.projectors.len() {
            let dir = system.root.path().join(format!("projectors-{replica}"));
            assert_eq!(
                digest(model, &dir),
                rebuilt,
                "{model} replica {replica} equals a rebuild from the log"
            );
        }
    }
    drop(cluster);

    let outage = |kind: &str| longest.get(kind).copied().unwrap_or_default();
    println!(
        "chaos: {rounds} rounds in {:?}; {} commands acknowledged, {commands} in the log, lost 0, duplicated 0; longest read outage: NATS node {:?}, projector replica {:?}, gateway {:?} (on the other gateway); {} replicas equal a rebuild",
        ended - started,
        acknowledged.len(),
        outage(FAULT_KINDS[0]),
        outage(FAULT_KINDS[1]),
        outage(FAULT_KINDS[2]),
        MODELS.len() * 2,
    );
}

/// Waits until a replica of `model` answers a status query at `head` or later (the query waits
/// for the position, `projection_lagging` after 5 s, and is asked again).
async fn wait_for_position(client: &Client, model: &str, head: u64) {
    let deadline = Instant::now() + CATCH_UP_WAIT;
    let request = json!({"op": "status", "min_position": head}).to_string();
    loop {
        let reply = client
            .bus
            .request(
                &format!("parlor.query.{model}"),
                crate::harness::json_headers(),
                request.clone(),
                Duration::from_secs(10),
            )
            .await;
        let position = reply.ok().and_then(|reply| {
            let value: Value = serde_json::from_slice(&reply.payload).ok()?;
            value
                .pointer("/data/position")
                .or_else(|| value.get("position"))
                .and_then(Value::as_u64)
        });
        if position.is_some_and(|position| position >= head) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "no {model} replica reached position {head} within {CATCH_UP_WAIT:?} (last: {position:?})"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Waits until both gateways report every part up again.
async fn recover(system: &Deployment) {
    for index in 0..system.gateways.len() {
        system.wait_until_healthy(index, RECOVERY_WAIT).await;
    }
    tokio::time::sleep(SETTLE_TIME).await;
}

/// The longest run of failed reads that began in `[from, until)`: from its first failure to
/// the next answered read (or its last failure, when none followed).
fn longest_outage(log: &[(Instant, bool)], from: Instant, until: Instant) -> Duration {
    let mut longest = Duration::ZERO;
    let mut failing_since: Option<Instant> = None;
    for &(at, ok) in log.iter().filter(|(at, _)| *at >= from) {
        match (ok, failing_since) {
            (false, None) if at < until => failing_since = Some(at),
            (true, Some(since)) => {
                longest = longest.max(at - since);
                failing_since = None;
            }
            _ => {}
        }
        if failing_since.is_none() && at >= until {
            break;
        }
    }
    if let (Some(since), Some((last, _))) = (failing_since, log.last()) {
        longest = longest.max(*last - since);
    }
    longest
}

/// Every message id of the room's timeline read through `addr` at `head`, page by page.
async fn timeline_ids(addr: SocketAddr, token: &str, room: &str, head: u64) -> Vec<String> {
    let authorization = format!("Bearer {token}");
    let mut ids = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let mut path = format!("/v1/rooms/{room}/messages?limit=200&min_position={head}");
        if let Some(cursor) = &cursor {
            path.push_str(&format!("&cursor={}", percent_encode(cursor)));
        }
        let (status, body) = exchange(
            addr,
            "GET",
            &path,
            &[("Authorization", authorization.as_str())],
            b"",
        )
        .await
        .unwrap_or_else(|error| panic!("GET {path}: {error}"));
        let page: Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(status, 200, "GET {path}: {page}");
        for message in page["messages"].as_array().unwrap() {
            ids.push(message["message_id"].as_str().unwrap().to_owned());
        }
        match page["next_cursor"].as_str() {
            Some(next) => cursor = Some(next.to_owned()),
            None => return ids,
        }
    }
}

fn percent_encode(text: &str) -> String {
    text.bytes()
        .map(|byte| {
            if byte.is_ascii_alphanumeric() || b"-_.~".contains(&byte) {
                (byte as char).to_string()
            } else {
                format!("%{byte:02X}")
            }
        })
        .collect()
}

/// Checks the stopped writer's log: the chain verifies, positions are gapless, and every
/// acknowledged command's events are there exactly once; returns the commands in the log.
fn check_log(writer_dir: &Path, acknowledged: &HashMap<Uuid, Value>) -> usize {
    let log = eventlog::EventLog::open(&writer_dir.join("log")).unwrap();
    let report = log
        .verify(None, |_| {})
        .unwrap()
        .expect("the hash chain verifies");
    let head = log.head().position;
    assert_eq!(report.head.position, head);
    let mut per_command: HashMap<Uuid, Vec<u64>> = HashMap::new();
    let mut expected = 1;
    while expected <= head {
        for record in log.read_from(expected, 10_000, usize::MAX).unwrap() {
            assert_eq!(record.position, expected, "positions are gapless");
            let stored = protocol::decode_stored(&record.payload).unwrap();
            per_command
                .entry(stored.command_id.0)
                .or_default()
                .push(record.position);
            expected += 1;
        }
    }
    for (command_id, reply) in acknowledged {
        let positions = per_command
            .get(command_id)
            .unwrap_or_else(|| panic!("acknowledged command {command_id} lost"));
        let replied: Vec<u64> = reply["events"]
            .as_array()
            .unwrap()
            .iter()
            .map(|event| event["position"].as_u64().unwrap())
            .collect();
        assert_eq!(
            positions, &replied,
            "command {command_id}: exactly its acknowledged events, once"
        );
    }
    per_command.len()
}

/// A stopped read model's digest and position, opened from `data_dir`.
fn digest(model: &str, data_dir: &Path) -> (String, u64) {
    fn of(projector: &impl projections::Projector) -> (String, u64) {
        (projector.digest().unwrap(), projector.position())
    }
    match model {
        "rooms" => of(&projections::Rooms::open(data_dir).unwrap()),
        "timeline" => of(&projections::Timeline::open(data_dir).unwrap()),
        "files" => of(&projections::Files::open(data_dir).unwrap()),
        "moderation" => of(&projections::Moderation::open(data_dir).unwrap()),
        "notifications" => of(&projections::Notifications::open(data_dir).unwrap()),
        "search" => of(&search::SearchProjector::open(data_dir).unwrap()),
        other => panic!("no read model {other}"),
    }
}
