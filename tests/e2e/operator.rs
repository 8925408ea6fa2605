//! The operator's view of the binary: `parlor status` over NATS against a running system and
//! against none, start-up mistakes answered with the flag to fix, and help that gives examples.

use std::io::Read;
use std::process::{Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use serde_json::json;
use testkit::NatsServer;

use crate::harness::{start_up_http, Client};

/// How long a one-shot command (or a start-up that must fail) may take.
const EXIT_WAIT: Duration = Duration::from_secs(30);

/// Runs `parlor <args>` to its end (bounded), returning its exit status, stdout and stderr.
fn run_parlor(args: &[&str]) -> (ExitStatus, String, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_parlor"))
        .args(args)
        .env("PARLOR_LOG", "error")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn parlor");
    // Drained while it runs, so a full pipe cannot stall it.
    let mut stdout = child.stdout.take().expect("stdout");
    let mut stderr = child.stderr.take().expect("stderr");
    let out = std::thread::spawn(move || {
        let mut text = String::new();
        let _ = stdout.read_to_string(&mut text);
        text
    });
    let err = std::thread::spawn(move || {
        let mut text = String::new();
        let _ = stderr.read_to_string(&mut text);
        text
    });
    let deadline = Instant::now() + EXIT_WAIT;
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait") {
            break status;
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("parlor {args:?} did not exit within {EXIT_WAIT:?}");
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    (
        status,
        out.join().expect("stdout reader"),
        err.join().expect("stderr reader"),
    )
}

/// The cells of the table's row for `part`.
fn row<'a>(table: &'a str, part: &str) -> Vec<&'a str> {
    table
        .lines()
        .map(|line| line.split_whitespace().collect::<Vec<_>>())
        .find(|cells| cells.first() == Some(&part))
        .unwrap_or_else(|| panic!("no row for {part} in:\n{table}"))
}

const PARTS: [&str; 7] = [
    "writer",
    "rooms",
    "timeline",
    "search",
    "files",
    "moderation",
    "notifications",
];

#[tokio::test]
async fn status_shows_each_part_of_a_running_system_with_position_and_lag() {
    let system = start_up_http(&[]).await;
    let nats_url = system._nats.url();
    let client = Client::connect(&nats_url).await;
    let reply = client
        .send(
            "service:identity",
            "user.register",
            json!({"user_id": "olga", "display_name": "Olga", "kind": "client"}),
        )
        .await;
    assert_eq!(reply["ok"], true, "{reply}");
    let committed = reply["position"].as_u64().expect("a position");

    let (status, table, stderr) = run_parlor(&["status", "--nats-url", &nats_url]);
    assert!(status.success(), "{status}: {stderr}\n{table}");
    assert_eq!(
        row(&table, "PART"),
        ["PART", "STATUS", "POSITION", "LAG", "NOTE"]
    );
    let writer = row(&table, "writer");
    assert_eq!(writer[1], "up", "{table}");
    let head: u64 = writer[2].parse().expect("the writer's head");
    assert!(head >= committed, "{table}");
    for part in &PARTS[1..] {
        let cells = row(&table, part);
        assert_eq!(cells[1], "up", "{table}");
        let position: u64 = cells[2].parse().expect("a position");
        let lag: u64 = cells[3].parse().expect("a lag");
        // Each part was asked at once, so the lag is the head minus the position (or 0 when
        // the model answered after a later head).
        assert_eq!(lag, head.saturating_sub(position), "{table}");
    }
}

#[tokio::test]
async fn status_names_the_parts_that_do_not_answer_and_fails() {
    let nats = NatsServer::start();
    let (status, table, stderr) = run_parlor(&["status", "--nats-url", &nats.url()]);
    assert!(!status.success(), "{table}");
    for part in PARTS {
        assert_eq!(row(&table, part)[1], "down", "{table}");
        assert!(stderr.contains(part), "{stderr}");
    }
    assert!(stderr.contains("--subject-prefix"), "{stderr}");
}

/// A loopback URL where no NATS server listens.
fn unreachable_nats_url() -> String {
    format!("nats://127.0.0.1:{}", testkit::free_port())
}

#[test]
fn status_without_nats_names_the_flag() {
    let url = unreachable_nats_url();
    let (status, _, stderr) = run_parlor(&["status", "--nats-url", &url]);
    assert!(!status.success());
    assert!(
        stderr.contains("--nats-url") && stderr.contains(&url),
        "{stderr}"
    );
}

/// `parlor up` on a fresh data directory with `args`, which must fail at start-up; its stderr.
fn up_fails(args: &[&str]) -> String {
    let data = tempfile::tempdir().expect("a temporary directory");
    let data_dir = data.path().join("data");
    let mut all = vec!["up", "--data-dir", data_dir.to_str().expect("a UTF-8 path")];
    // Any free port and no operator address, unless the test gives its own.
    for (flag, value) in [("--http-addr", "127.0.0.1:0"), ("--ops-addr", "off")] {
        if !args.contains(&flag) {
            all.extend([flag, value]);
        }
    }
    all.extend_from_slice(args);
    let (status, _, stderr) = run_parlor(&all);
    assert!(!status.success(), "parlor up {args:?} started: {stderr}");
    stderr
}

/// The line `parlor: …` the binary ends a failure with.
fn failure_line(stderr: &str) -> &str {
    stderr
        .lines()
        .find(|line| line.starts_with("parlor: "))
        .unwrap_or_else(|| panic!("no `parlor:` line in {stderr}"))
}

#[test]
fn start_up_errors_name_the_flag_to_fix() {
    let files = tempfile::tempdir().expect("a temporary directory");

    // A data directory that cannot be created (its parent is a file).
    let not_a_directory = files.path().join("a-file");
    std::fs::write(&not_a_directory, "x").expect("write");
    let inside_a_file = not_a_directory.join("data");
    let (status, _, stderr) = run_parlor(&[
        "up",
        "--data-dir",
        inside_a_file.to_str().expect("a UTF-8 path"),
        "--ops-addr",
        "off",
    ]);
    assert!(!status.success());
    assert!(
        failure_line(&stderr).starts_with("parlor: --data-dir "),
        "{stderr}"
    );

    // The HTTP port is taken, then the operator port.
    let taken = std::net::TcpListener::bind("127.0.0.1:0").expect("a port");
    let taken_addr = taken.local_addr().expect("its address").to_string();
    let stderr = up_fails(&["--http-addr", &taken_addr]);
    let line = failure_line(&stderr);
    assert!(
        line.starts_with(&format!("parlor: --http-addr {taken_addr}")),
        "{stderr}"
    );
    let stderr = up_fails(&["--ops-addr", &taken_addr]);
    assert!(
        failure_line(&stderr).starts_with(&format!("parlor: --ops-addr {taken_addr}")),
        "{stderr}"
    );

    // A services file that is not the expected TOML.
    let services = files.path().join("services.toml");
    std::fs::write(&services, "[services]\nidentity = \"user.register\"\n").expect("write");
    let services_arg = services.to_str().expect("a UTF-8 path");
    let stderr = up_fails(&["--services", services_arg]);
    assert!(
        failure_line(&stderr).starts_with(&format!("parlor: --services {services_arg}")),
        "{stderr}"
    );

    // A secret file that is missing, then one that is empty.
    let missing = files.path().join("no-such-secret");
    let missing_arg = missing.to_str().expect("a UTF-8 path");
    let stderr = up_fails(&["--jwt-secret-file", missing_arg]);
    assert!(
        failure_line(&stderr).starts_with(&format!("parlor: --jwt-secret-file {missing_arg}")),
        "{stderr}"
    );
    let empty = files.path().join("empty-secret");
    std::fs::write(&empty, "\n").expect("write");
    let empty_arg = empty.to_str().expect("a UTF-8 path");
    let stderr = up_fails(&["--jwt-secret-file", empty_arg]);
    assert!(
        failure_line(&stderr).starts_with("parlor: --jwt-secret"),
        "{stderr}"
    );

    // A --nats-url that is not a URL (a server that is not there yet is waited for, issue 15).
    let url = "nats://127.0.0.1:not-a-port".to_owned();
    let stderr = up_fails(&["--nats-url", &url]);
    assert!(
        failure_line(&stderr).starts_with(&format!("parlor: --nats-url {url}")),
        "{stderr}"
    );
}

#[test]
fn help_says_what_each_command_does_with_an_example() {
    let (status, top, _) = run_parlor(&["--help"]);
    assert!(status.success());
    assert!(
        top.contains("Examples:") && top.contains("parlor up"),
        "{top}"
    );
    // Every subcommand the help lists, so a new one cannot come without an example.
    let commands = listed_commands(&top);
    for expected in ["up", "status", "audit", "schema", "asyncapi", "migrate"] {
        assert!(commands.contains(&expected.to_owned()), "{commands:?}");
    }
    let (_, audit, _) = run_parlor(&["audit", "--help"]);
    let audit_commands = listed_commands(&audit);
    assert!(audit_commands.len() >= 5, "{audit_commands:?}");
    let every = commands.iter().map(|command| vec![command.as_str()]).chain(
        audit_commands
            .iter()
            .map(|command| vec!["audit", command.as_str()]),
    );
    for command in every {
        let name = command.join(" ");
        let mut args = command.clone();
        args.push("--help");
        let (status, help, stderr) = run_parlor(&args);
        assert!(status.success(), "{name}: {stderr}");
        assert!(
            help.contains("Example") && help.contains(&format!("parlor {name}")),
            "parlor {name} --help gives no example:\n{help}"
        );
        // The summary line says what it does, before the usage.
        let summary = help.lines().next().unwrap_or("");
        assert!(
            summary.split_whitespace().count() >= 4,
            "{name}: {summary:?}"
        );
    }
}

/// The subcommands a help text lists under `Commands:` (without `help`).
fn listed_commands(help: &str) -> Vec<String> {
    help.lines()
        .skip_while(|line| line.trim() != "Commands:")
        .skip(1)
        .take_while(|line| line.starts_with("  "))
        .filter_map(|line| line.split_whitespace().next())
        .filter(|command| *command != "help")
        .map(str::to_owned)
        .collect()
}

#[test]
fn asyncapi_prints_the_document_as_json_and_yaml() {
    let (status, json, stderr) = run_parlor(&["asyncapi", "--json"]);
    assert!(status.success(), "{stderr}");
    let printed: serde_json::Value = serde_json::from_str(&json).expect("JSON");
    assert_eq!(Ok(printed), protocol::asyncapi::document());
    let (status, yaml, stderr) = run_parlor(&["asyncapi"]);
    assert!(status.success(), "{stderr}");
    assert_eq!(Ok(yaml), protocol::asyncapi::render_yaml());
}
