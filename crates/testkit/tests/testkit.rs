//! Tests of the test support itself: the nats-server lifecycle, free ports, temporary dirs and
//! bounded runs of child commands.
#![allow(clippy::unwrap_used)]

use std::io::{BufRead, BufReader, Write};
use std::net::TcpStream;
use std::process::Command;
use std::time::Duration;

use testkit::{free_port, CommandWithin, NatsServer, TempDataDir};

/// Reads the `INFO {...}` line a NATS server sends first to every new client connection.
fn read_info_line(port: u16) -> String {
    let stream = TcpStream::connect(("127.0.0.1", port)).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let mut line = String::new();
    BufReader::new(&stream).read_line(&mut line).unwrap();
    // Say goodbye politely so the server log stays free of protocol errors.
    let _ = (&stream).write_all(b"CONNECT {}\r\n");
    line
}

#[test]
fn free_port_is_bindable() {
    let port = free_port();
    assert_ne!(port, 0);
    std::net::TcpListener::bind(("127.0.0.1", port)).unwrap();
}

#[test]
fn temp_data_dir_is_removed_on_drop() {
    let dir = TempDataDir::new();
    let path = dir.path().to_path_buf();
    std::fs::write(dir.join("file"), b"x").unwrap();
    assert!(path.is_dir());
    drop(dir);
    assert!(!path.exists());
}

#[test]
fn nats_server_starts_with_jetstream_and_speaks_nats() {
    let server = NatsServer::start();
    assert_eq!(server.url(), format!("nats://127.0.0.1:{}", server.port()));
    let info = read_info_line(server.port());
    assert!(info.starts_with("INFO "), "unexpected greeting: {info}");
    assert!(
        info.contains("\"jetstream\":true"),
        "JetStream is off: {info}"
    );
    assert!(server.log_path().is_file());
}

#[test]
fn nats_server_stops_and_starts_again_on_the_same_port() {
    let mut server = NatsServer::start();
    let port = server.port();
    assert!(server.is_running());

    server.stop();
    assert!(!server.is_running());
    // The port stays the server's own while it is down: nobody else can bind it.
    assert!(std::net::TcpListener::bind(("127.0.0.1", port)).is_err());

    server.start_again();
    assert!(server.is_running());
    assert_eq!(server.port(), port);
    assert!(read_info_line(port).starts_with("INFO "));
    assert!(server.store_dir().is_dir());
}

#[test]
fn dropping_the_server_frees_its_port() {
    let server = NatsServer::start();
    let port = server.port();
    drop(server);
    assert!(TcpStream::connect(("127.0.0.1", port)).is_err());
}

#[test]
fn a_reserved_server_starts_later_on_the_port_it_announced() {
    let mut server = NatsServer::reserve();
    let port = server.port();
    assert!(!server.is_running());
    assert!(std::net::TcpListener::bind(("127.0.0.1", port)).is_err());
    server.start_again();
    assert_eq!(server.port(), port);
    assert!(read_info_line(port).starts_with("INFO "));
}

#[test]
fn a_bounded_command_returns_its_output_or_is_killed() {
    let output = Command::new("sh")
        .args(["-c", "echo out; echo err >&2; exit 3"])
        .output_within(Duration::from_secs(30))
        .unwrap();
    assert_eq!(output.status.code(), Some(3));
    assert_eq!(output.stdout, b"out\n");
    assert_eq!(output.stderr, b"err\n");

    // A child that never ends is killed at the bound: an error, not a hung test.
    let hung = Command::new("sleep")
        .arg("600")
        .output_within(Duration::from_millis(200))
        .unwrap_err();
    assert_eq!(hung.kind(), std::io::ErrorKind::TimedOut, "{hung}");
    let hung = Command::new("sleep")
        .arg("600")
        .status_within(Duration::from_millis(200))
        .unwrap_err();
    assert_eq!(hung.kind(), std::io::ErrorKind::TimedOut, "{hung}");
}
