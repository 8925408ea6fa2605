"""Fixtures of the contract tests: the command schemas of docs/schemas/, and a NATS client of the
real writer that `tests/contract/run` started (`PARLOR_NATS_URL`, `PARLOR_SUBJECT_PREFIX`)."""

import asyncio
import json
import os
import pathlib
import uuid

import nats
import pytest

REPOSITORY = pathlib.Path(__file__).resolve().parents[2]
SCHEMAS = REPOSITORY / "docs" / "schemas"
# Every wait on the writer is bounded.
REPLY_TIMEOUT_SECONDS = 10


def command_types():
    """The command types with a published schema (`command.<type>.json`), sorted."""
    prefix, suffix = "command.", ".json"
    return sorted(path.name[len(prefix) : -len(suffix)] for path in SCHEMAS.glob("command.*.json"))


def load_schema(name):
    with open(SCHEMAS / f"{name}.json", encoding="utf-8") as file:
        return json.load(file)


class Writer:
    """Sends raw command payloads to the real writer over NATS, one at a time, and returns its
    JSON reply. Hypothesis drives it synchronously, so it owns an event loop."""

    def __init__(self, url, prefix):
        self.prefix = prefix
        self.loop = asyncio.new_event_loop()
        self.nc = self.loop.run_until_complete(
            nats.connect(url, allow_reconnect=False, max_reconnect_attempts=1)
        )
        self.sent = 0

    def send(self, command_type, payload):
        """Publishes `payload` (a JSON value, or bytes sent as they are) on `cmd.<type>`."""
        body = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
        reply = self.loop.run_until_complete(
            self.nc.request(
                f"{self.prefix}.cmd.{command_type}",
                body,
                timeout=REPLY_TIMEOUT_SECONDS,
                headers={"Content-Type": "application/json"},
            )
        )
        self.sent += 1
        return json.loads(reply.data)

    def register(self, user_id, kind="client"):
        """Registers `user_id` as the identity service, so commands by it can pass the rules."""
        reply = self.send(
            "user.register",
            {
                "command_id": str(uuid.uuid4()),
                "actor": "service:identity",
                "data": {"user_id": user_id, "display_name": user_id, "kind": kind},
            },
        )
        assert reply["ok"], reply

    def close(self):
        self.loop.run_until_complete(self.nc.close())
        self.loop.close()


@pytest.fixture(scope="session")
def writer():
    url = os.environ.get("PARLOR_NATS_URL")
    if not url:
        pytest.fail("PARLOR_NATS_URL is not set: run tests/contract/run, which starts Parlor")
    client = Writer(url, os.environ.get("PARLOR_SUBJECT_PREFIX", "parlor"))
    yield client
    print(f"\ncontract tests sent {client.sent} commands to the writer")
    client.close()
