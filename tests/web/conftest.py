"""Starts the real Parlor for the browser tests: a nats-server on a free port and `parlor up`
(the debug binary, `--dev-clock`) on a temporary data directory and a free HTTP port; registers
users through the HTTP API with a service token; opens Chromium (Debian's, not a download)."""

import json
import os
import shutil
import socket
import subprocess
import tempfile
import threading
import time
import urllib.error
import urllib.request
import uuid
from pathlib import Path

import pytest
from playwright.sync_api import expect, sync_playwright

REPOSITORY = Path(__file__).resolve().parents[2]
TARGET_DIR = Path(os.environ.get("CARGO_TARGET_DIR", REPOSITORY / "target"))
PARLOR = Path(os.environ.get("PARLOR_BINARY", TARGET_DIR / "debug" / "parlor"))
NATS_SERVER = os.environ.get("NATS_SERVER", shutil.which("nats-server") or "/usr/sbin/nats-server")
CHROMIUM = os.environ.get("CHROMIUM", shutil.which("chromium") or "/usr/bin/chromium")
STARTUP_WAIT_SECONDS = 60
DISK_RESERVE_BYTES = 16 * 1024 * 1024
REQUEST_TIMEOUT_SECONDS = 15
NATS_REPLY_TIMEOUT_SECONDS = 10
# Playwright waits this long for a selector: long enough for a loaded, shared machine.
EXPECT_TIMEOUT_MS = 15_000
expect.set_options(timeout=EXPECT_TIMEOUT_MS)


def free_port():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def wait_until_listening(port, process, what):
    deadline = time.monotonic() + STARTUP_WAIT_SECONDS
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"{what} exited with {process.returncode}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(f"{what} did not listen on {port}")


class Parlor:
    """The running system, as the tests reach it."""

    def __init__(self, base_url, data_dir, nats_port, ops_url):
        self.base_url = base_url
        # The operator address: each part's status and position (security.md H-I4).
        self.ops_url = ops_url
        self.data_dir = data_dir
        self.nats_port = nats_port

    def token(self, subject, *flags):
        output = subprocess.run(
            [str(PARLOR), "token", subject, "--data-dir", str(self.data_dir), *flags],
            check=True,
            capture_output=True,
            text=True,
        )
        return output.stdout.strip()

    def ops_health(self):
        """The operator address's `/healthz`: every part's status and position."""
        try:
            with urllib.request.urlopen(self.ops_url + "/healthz", timeout=10) as response:
                return response.read().decode()
        except urllib.error.HTTPError as error:
            return error.read().decode()
        except urllib.error.URLError:
            return "{}"

    def http(self, method, path, token=None, body=None):
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(self.base_url + path, data=data, method=method)
        if token:
            request.add_header("Authorization", f"Bearer {token}")
        if data is not None:
            request.add_header("Content-Type", "application/json")
        try:
            with urllib.request.urlopen(request, timeout=REQUEST_TIMEOUT_SECONDS) as response:
                return response.status, response.headers, response.read()
        except urllib.error.HTTPError as error:
            return error.code, error.headers, error.read()

    def command(self, token, command_type, data):
        status, _, body = self.http("POST", f"/v1/commands/{command_type}", token, data)
        reply = json.loads(body)
        assert status == 200 and reply["ok"], (command_type, status, reply)
        return reply.get("result") or {}

    def register(self, display_name):
        """A new user with a unique id (tests share one log); answers (user_id, token)."""
        user_id = f"{display_name.lower()}-{uuid.uuid4().hex[:8]}"
        service = self.token("service:identity", "--service")
        self.command(
            service,
            "user.register",
            {"user_id": user_id, "display_name": display_name, "kind": "client"},
        )
        return user_id, self.token(user_id)

    def advance_clock(self, milliseconds):
        """Moves the dev clock through `parlor.dev.clock` (protocol.md §4), speaking the NATS
        text protocol directly: one request does not need a client library."""
        payload = json.dumps({"advance_ms": milliseconds}).encode()
        headers = b"NATS/1.0\r\nContent-Type: application/json\r\n\r\n"
        inbox = f"_INBOX.webtests.{uuid.uuid4().hex}"
        with socket.create_connection(("127.0.0.1", self.nats_port), timeout=NATS_REPLY_TIMEOUT_SECONDS) as nats:
            stream = nats.makefile("rwb")
            stream.readline()  # INFO
            stream.write(b'CONNECT {"verbose":false,"pedantic":false,"headers":true,"no_responders":true}\r\n')
            stream.write(f"SUB {inbox} 1\r\n".encode())
            stream.write(
                f"HPUB parlor.dev.clock {inbox} {len(headers)} {len(headers) + len(payload)}\r\n".encode()
                + headers
                + payload
                + b"\r\n"
            )
            stream.flush()
            while True:
                line = stream.readline()
                if not line:
                    raise RuntimeError("NATS closed the connection")
                if line.startswith(b"PING"):
                    stream.write(b"PONG\r\n")
                    stream.flush()
                elif line.startswith(b"MSG ") or line.startswith(b"HMSG "):
                    size = int(line.split()[-1])
                    message = stream.read(size + 2)[:size]
                    if line.startswith(b"HMSG "):
                        header_size = int(line.split()[-2])
                        message = message[header_size:]
                    return json.loads(message)["now_ms"]
                elif line.startswith(b"-ERR"):
                    raise RuntimeError(line.decode())


class DroppingProxy:
    """A TCP proxy in front of the gateway that can drop every connection and refuse new ones
    for a while: a real dropped connection, which the browser's offline emulation does not
    cause for a stream already open."""

    RELAY_CHUNK_BYTES = 65536

    def __init__(self, target_port):
        self.target_port = target_port
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.lock = threading.Lock()
        self.open_sockets = set()
        self.refusing = False
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            with self.lock:
                if self.refusing:
                    client.close()
                    continue
            try:
                upstream = socket.create_connection(("127.0.0.1", self.target_port))
            except OSError:
                client.close()
                continue
            with self.lock:
                self.open_sockets.update((client, upstream))
            threading.Thread(target=self._relay, args=(client, upstream), daemon=True).start()
            threading.Thread(target=self._relay, args=(upstream, client), daemon=True).start()

    def _relay(self, source, destination):
        try:
            while chunk := source.recv(self.RELAY_CHUNK_BYTES):
                destination.sendall(chunk)
        except OSError:
            pass
        finally:
            for end in (source, destination):
                try:
                    end.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass

    def drop_and_refuse(self):
        with self.lock:
            self.refusing = True
            dropped, self.open_sockets = self.open_sockets, set()
        for connection in dropped:
            try:
                connection.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            connection.close()

    def accept_again(self):
        with self.lock:
            self.refusing = False

    def close(self):
        self.drop_and_refuse()
        self.listener.close()


@pytest.fixture
def dropping_proxy(parlor):
    proxy = DroppingProxy(int(parlor.base_url.rsplit(":", 1)[1]))
    yield proxy
    proxy.close()


@pytest.fixture(scope="session")
def parlor():
    assert PARLOR.exists(), f"build parlor first: {PARLOR}"
    workdir = Path(tempfile.mkdtemp(prefix="parlor-web-"))
    nats_port = free_port()
    http_port = free_port()
    ops_port = free_port()
    nats = subprocess.Popen(
        [NATS_SERVER, "-a", "127.0.0.1", "-p", str(nats_port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    log = open(workdir / "parlor.log", "wb")
    server = None
    try:
        wait_until_listening(nats_port, nats, "nats-server")
        server = subprocess.Popen(
            [
                str(PARLOR),
                "up",
                "--data-dir",
                str(workdir / "data"),
                "--http-addr",
                f"127.0.0.1:{http_port}",
                "--nats-url",
                f"nats://127.0.0.1:{nats_port}",
                "--dev-clock",
                # The operator address on a free port: a developer's own `parlor up` may hold
                # the default one.
                "--ops-addr",
                f"127.0.0.1:{ops_port}",
                # The default 1 GiB reserve refuses uploads (507) when the shared test machine's
                # disk runs low; these tests upload kilobytes.
                "--disk-reserve-bytes",
                str(DISK_RESERVE_BYTES),
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        wait_until_listening(http_port, server, "parlor up")
        system = Parlor(
            f"http://127.0.0.1:{http_port}",
            workdir / "data",
            nats_port,
            f"http://127.0.0.1:{ops_port}",
        )
        deadline = time.monotonic() + STARTUP_WAIT_SECONDS
        while json.loads(system.ops_health()).get("status") != "ok":
            assert time.monotonic() < deadline, "parlor did not become healthy"
            time.sleep(0.2)
        yield system
    finally:
        for process in (server, nats):
            if process is not None:
                process.terminate()
                try:
                    process.wait(timeout=15)
                except subprocess.TimeoutExpired:
                    process.kill()
        log.close()
        if os.environ.get("PARLOR_WEB_KEEP") is None:
            shutil.rmtree(workdir, ignore_errors=True)


@pytest.fixture(scope="session")
def browser():
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, headless=True)
        yield chromium
        chromium.close()


@pytest.fixture(scope="session")
def screenshots():
    directory = Path(os.environ.get("PARLOR_WEB_SCREENSHOTS") or tempfile.mkdtemp(prefix="parlor-web-shots-"))
    directory.mkdir(parents=True, exist_ok=True)
    print(f"screenshots in {directory}")
    return directory


@pytest.fixture
def open_client(browser, parlor):
    """Opens the client signed in with a token (through the URL fragment); closes it after."""
    contexts = []

    def open_as(token, width=1200, height=800, controlled_clock=False, base_url=None):
        context = browser.new_context(viewport={"width": width, "height": height})
        contexts.append(context)
        page = context.new_page()
        page.set_default_timeout(EXPECT_TIMEOUT_MS)
        # Confirmations are accepted; a prompt answers the next of `page.prompt_answers`.
        answers = []
        page.prompt_answers = answers
        page.on(
            "dialog",
            lambda dialog: dialog.accept(answers.pop(0)) if dialog.type == "prompt" and answers else dialog.accept(),
        )
        if controlled_clock:
            # The page's clock runs from now, and a test can move it (Playwright's clock API).
            page.clock.install()
        page.goto(f"{base_url or parlor.base_url}/#token={token}")
        page.get_by_test_id("room-list").wait_for()
        page.locator("#connection[data-state='live']").wait_for()
        return page

    yield open_as
    for context in contexts:
        context.close()
