#!/usr/bin/env python3
"""Abuse runs against a real `parlor up` (docs/reliability.md, "Abuse runs").

Starts `parlor up` on a free port with a fresh data directory, registers a well-behaved user and
an attacker, then tries each abuse while the well-behaved user reads their room list, and prints
what both saw. Standard library only; run once by hand:

    python3 tests/abuse/abuse_runs.py /path/to/parlor

The figures are observations on whatever machine runs it, not benchmarks.
"""

import http.client
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid

# The abuses and their sizes.
IDLE_CONNECTIONS = 300
SLOW_HEADER_CONNECTIONS = 300
# Past the gateway's default connection cap (1,024).
CAP_CONNECTIONS = 1_100
FLOOD_SECONDS = 10
FLOOD_THREADS = 8
SSE_STREAMS = 9
HUGE_MIN_POSITION_READS = 200
HUGE_MIN_POSITION_THREADS = 50
ROOM_LIST_SAMPLES = 40


def free_port():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class Parlor:
    """A `parlor up` process on a free port."""

    def __init__(self, binary):
        self.binary = binary
        self.data_dir = tempfile.mkdtemp(prefix="parlor-abuse-")
        self.port = free_port()
        self.log = open(os.path.join(self.data_dir, "..", f"parlor-abuse-{self.port}.log"), "w")
        self.process = subprocess.Popen(
            [
                binary,
                "up",
                "--data-dir",
                self.data_dir,
                "--http-addr",
                f"127.0.0.1:{self.port}",
                "--ops-addr",
                f"127.0.0.1:{free_port()}",
            ]
            if self.supports_ops_addr()
            else [
                binary,
                "up",
                "--data-dir",
                self.data_dir,
                "--http-addr",
                f"127.0.0.1:{self.port}",
            ],
            stdout=self.log,
            stderr=subprocess.STDOUT,
        )
        deadline = time.time() + 120
        while time.time() < deadline:
            try:
                status, _ = self.request("GET", "/healthz")
                if status == 200:
                    return
            except OSError:
                pass
            time.sleep(0.5)
        raise RuntimeError("parlor up did not become healthy")

    def supports_ops_addr(self):
        help_text = subprocess.run(
            [self.binary, "up", "--help"], capture_output=True, text=True
        ).stdout
        return "--ops-addr" in help_text

    def token(self, subject, service=False):
        arguments = [self.binary, "token", "--data-dir", self.data_dir, subject]
        if service:
            arguments.append("--service")
        return subprocess.run(arguments, capture_output=True, text=True, check=True).stdout.strip()

    def request(self, method, path, token=None, body=None, timeout=30):
        connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout)
        headers = {}
        if token:
            headers["Authorization"] = f"Bearer {token}"
        if body is not None:
            headers["Content-Type"] = "application/json"
            body = json.dumps(body)
        try:
            connection.request(method, path, body=body, headers=headers)
            response = connection.getresponse()
            return response.status, response.read()
        finally:
            connection.close()

    def command(self, token, command_type, data):
        return self.request("POST", f"/v1/commands/{command_type}", token, data)

    def stop(self):
        self.process.terminate()
        try:
            self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.process.kill()
        shutil.rmtree(self.data_dir, ignore_errors=True)


def room_list_latencies(parlor, token, samples=ROOM_LIST_SAMPLES, pause=0.05):
    """Milliseconds of `samples` room-list reads, one after another; and their statuses."""
    latencies, statuses = [], {}
    for _ in range(samples):
        started = time.perf_counter()
        try:
            status, _ = parlor.request("GET", "/v1/rooms", token)
        except OSError as error:
            status = type(error).__name__
        latencies.append((time.perf_counter() - started) * 1000)
        statuses[status] = statuses.get(status, 0) + 1
        time.sleep(pause)
    return latencies, statuses


def summary(latencies):
    ordered = sorted(latencies)
    p95 = ordered[min(len(ordered) - 1, int(len(ordered) * 0.95))]
    return f"median {statistics.median(ordered):.1f} ms, p95 {p95:.1f} ms, max {ordered[-1]:.1f} ms"


def report(title, lines):
    print(f"\n## {title}")
    for line in lines:
        print(f"- {line}")
    sys.stdout.flush()


def idle_connections(parlor, victim):
    """300 connections that never send a request, reopened as the gateway closes them."""
    stop = threading.Event()
    opened = [0]
    closed_by_server = [0]

    def hold():
        while not stop.is_set():
            try:
                sock = socket.create_connection(("127.0.0.1", parlor.port), timeout=5)
            except OSError:
                time.sleep(0.1)
                continue
            opened[0] += 1
            sock.settimeout(1)
            while not stop.is_set():
                try:
                    if sock.recv(1) == b"":
                        closed_by_server[0] += 1
                        break
                except socket.timeout:
                    continue
                except OSError:
                    closed_by_server[0] += 1
                    break
            sock.close()

    threads = [threading.Thread(target=hold, daemon=True) for _ in range(IDLE_CONNECTIONS)]
    for thread in threads:
        thread.start()
    time.sleep(2)
    during, statuses = room_list_latencies(parlor, victim, samples=ROOM_LIST_SAMPLES, pause=0.5)
    stop.set()
    for thread in threads:
        thread.join(timeout=5)
    return during, statuses, opened[0], closed_by_server[0]


def slow_headers(parlor, victim):
    """SLOW_HEADER_CONNECTIONS connections each sending its request line a byte a second."""
    stop = threading.Event()
    closed_after = []
    lock = threading.Lock()
    request = b"GET /v1/rooms HTTP/1.1\r\nHost: x\r\nX-Padding: " + b"a" * 200

    def trickle():
        try:
            sock = socket.create_connection(("127.0.0.1", parlor.port), timeout=5)
        except OSError:
            return
        started = time.time()
        for byte in request:
            if stop.is_set():
                break
            try:
                sock.sendall(bytes([byte]))
                sock.settimeout(1)
                if sock.recv(1) == b"":
                    break
            except socket.timeout:
                continue
            except OSError:
                break
        with lock:
            closed_after.append(time.time() - started)
        sock.close()

    threads = [threading.Thread(target=trickle, daemon=True) for _ in range(SLOW_HEADER_CONNECTIONS)]
    for thread in threads:
        thread.start()
    time.sleep(1)
    during, statuses = room_list_latencies(parlor, victim, samples=20, pause=0.5)
    for thread in threads:
        thread.join(timeout=30)
    stop.set()
    return during, statuses, sorted(closed_after)


def connection_cap(parlor, victim):
    """CAP_CONNECTIONS idle connections at once, more than the gateway's cap."""
    sockets = []
    for _ in range(CAP_CONNECTIONS):
        try:
            sockets.append(socket.create_connection(("127.0.0.1", parlor.port), timeout=5))
        except OSError:
            break
    time.sleep(1)
    during, statuses = room_list_latencies(parlor, victim, samples=10, pause=0.2)
    # After the header timeout the idle ones are closed and the victim is served again.
    time.sleep(11)
    after, after_statuses = room_list_latencies(parlor, victim, samples=10, pause=0.2)
    for sock in sockets:
        sock.close()
    return len(sockets), during, statuses, after, after_statuses


def command_flood(parlor, attacker, victim, room_id):
    """The attacker sends commands as fast as FLOOD_THREADS connections allow."""
    stop = threading.Event()
    counts = {}
    lock = threading.Lock()

    def flood():
        while not stop.is_set():
            try:
                status, _ = parlor.command(attacker, "user.set_online_visibility", {"visible": True})
            except OSError as error:
                status = type(error).__name__
            with lock:
                counts[status] = counts.get(status, 0) + 1

    threads = [threading.Thread(target=flood, daemon=True) for _ in range(FLOOD_THREADS)]
    started = time.time()
    for thread in threads:
        thread.start()
    victim_commands = []
    victim_statuses = {}
    while time.time() - started < FLOOD_SECONDS:
        sent = time.perf_counter()
        status, _ = parlor.command(victim, "message.send", {"room_id": room_id, "body": "still here"})
        victim_commands.append((time.perf_counter() - sent) * 1000)
        victim_statuses[status] = victim_statuses.get(status, 0) + 1
        time.sleep(0.2)
    stop.set()
    for thread in threads:
        thread.join(timeout=30)
    return counts, time.time() - started, victim_commands, victim_statuses


def sse_streams(parlor, attacker, victim):
    """The attacker opens SSE_STREAMS streams; then the victim opens one."""
    connections, statuses = [], []
    for _ in range(SSE_STREAMS):
        connection = http.client.HTTPConnection("127.0.0.1", parlor.port, timeout=10)
        connection.request("GET", "/v1/events", headers={"Authorization": f"Bearer {attacker}"})
        response = connection.getresponse()
        statuses.append(response.status)
        if response.status != 200:
            response.read()
        connections.append(connection)
    victim_connection = http.client.HTTPConnection("127.0.0.1", parlor.port, timeout=10)
    victim_connection.request("GET", "/v1/events", headers={"Authorization": f"Bearer {victim}"})
    victim_status = victim_connection.getresponse().status
    latencies, _ = room_list_latencies(parlor, victim, samples=20)
    for connection in connections + [victim_connection]:
        connection.close()
    return statuses, victim_status, latencies


def huge_min_position(parlor, attacker, victim):
    """HUGE_MIN_POSITION_READS reads beyond the head, HUGE_MIN_POSITION_THREADS at once."""
    counts = {}
    lock = threading.Lock()
    remaining = [HUGE_MIN_POSITION_READS]
    slowest = [0.0]

    def read():
        while True:
            with lock:
                if remaining[0] == 0:
                    return
                remaining[0] -= 1
            started = time.perf_counter()
            try:
                status, _ = parlor.request(
                    "GET", "/v1/rooms?min_position=18446744073709551615", attacker
                )
            except OSError as error:
                status = type(error).__name__
            elapsed = (time.perf_counter() - started) * 1000
            with lock:
                counts[status] = counts.get(status, 0) + 1
                slowest[0] = max(slowest[0], elapsed)

    threads = [
        threading.Thread(target=read, daemon=True) for _ in range(HUGE_MIN_POSITION_THREADS)
    ]
    started = time.time()
    for thread in threads:
        thread.start()
    latencies, statuses = room_list_latencies(parlor, victim, samples=20, pause=0.02)
    for thread in threads:
        thread.join(timeout=60)
    return counts, time.time() - started, slowest[0], latencies, statuses


def main():
    binary = sys.argv[1] if len(sys.argv) > 1 else "target/debug/parlor"
    parlor = Parlor(binary)
    try:
        identity = parlor.token("service:identity", service=True)
        for user in ("alice", "bob", "mallory"):
            status, body = parlor.command(
                identity,
                "user.register",
                {"user_id": user, "display_name": user.title(), "kind": "freelancer"},
            )
            assert status == 200, body
        alice, bob, mallory = (parlor.token(user) for user in ("alice", "bob", "mallory"))
        status, body = parlor.command(alice, "room.create", {"name": "Work", "members": ["bob"]})
        assert status == 200, body
        room_id = json.loads(body)["result"]["room_id"]
        for number in range(20):
            parlor.command(alice, "message.send", {"room_id": room_id, "body": f"hello {number}"})

        baseline, statuses = room_list_latencies(parlor, bob)
        report(
            "Baseline",
            [f"bob's room list, {ROOM_LIST_SAMPLES} reads: {summary(baseline)}; statuses {statuses}"],
        )

        during, statuses, opened, closed = idle_connections(parlor, bob)
        report(
            f"{IDLE_CONNECTIONS} idle connections",
            [
                f"connections opened over the phase: {opened}; closed by the gateway: {closed}",
                f"bob's room list during, {len(during)} reads: {summary(during)}; statuses {statuses}",
            ],
        )

        during, statuses, closed_after = slow_headers(parlor, bob)
        report(
            f"{SLOW_HEADER_CONNECTIONS} connections trickling their headers a byte a second",
            [
                f"closed by the gateway after {closed_after[0]:.1f}–{closed_after[-1]:.1f} s ({len(closed_after)} connections)",
                f"bob's room list during, {len(during)} reads: {summary(during)}; statuses {statuses}",
            ],
        )

        opened, during, statuses, after, after_statuses = connection_cap(parlor, bob)
        report(
            f"{CAP_CONNECTIONS} idle connections (over the cap of 1,024)",
            [
                f"connections opened: {opened}",
                f"bob's room list while they are open: statuses {statuses}"
                + (f"; {summary([l for l in during])}" if during else ""),
                f"bob's room list 12 s later: {summary(after)}; statuses {after_statuses}",
            ],
        )

        counts, seconds, victim, victim_statuses = command_flood(parlor, mallory, alice, room_id)
        total = sum(counts.values())
        report(
            "Command flood",
            [
                f"mallory sent {total} commands in {seconds:.1f} s over {FLOOD_THREADS} connections: {counts}",
                f"alice's message.send meanwhile, {len(victim)}: {summary(victim)}; statuses {victim_statuses}",
            ],
        )

        statuses, victim_status, latencies = sse_streams(parlor, mallory, bob)
        report(
            f"{SSE_STREAMS} SSE streams",
            [
                f"mallory's streams answered {statuses}",
                f"bob's own stream meanwhile: {victim_status}; bob's room list: {summary(latencies)}",
            ],
        )

        counts, seconds, slowest, latencies, statuses = huge_min_position(parlor, mallory, bob)
        report(
            f"{HUGE_MIN_POSITION_READS} reads with min_position = u64::MAX",
            [
                f"mallory's reads ({HUGE_MIN_POSITION_THREADS} at once) answered {counts} in {seconds:.1f} s, slowest {slowest:.0f} ms",
                f"bob's room list meanwhile, {len(latencies)} reads: {summary(latencies)}; statuses {statuses}",
            ],
        )

        after, statuses = room_list_latencies(parlor, bob)
        report("After", [f"bob's room list: {summary(after)}; statuses {statuses}"])
    finally:
        parlor.stop()


if __name__ == "__main__":
    main()
