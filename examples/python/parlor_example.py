"""A Parlor integration in Python: a service on NATS and a frontend over HTTP.

The story (docs/protocol.md): as the identity service, register two users with
`parlor.cmd.user.register`; as the first user, send the second a message with
`parlor.cmd.message.send`; see it committed on `parlor.evt.>`; read the room over HTTP with
`min_position` (read-your-writes) as the second user. Every step checks what it got and the
script exits non-zero, naming the step, when one does not hold.

Configuration (environment):
  PARLOR_NATS_URL         the NATS server Parlor runs on (default nats://127.0.0.1:4222)
  PARLOR_HTTP_URL         the gateway (default http://127.0.0.1:8787)
  PARLOR_JWT_SECRET_FILE  the gateway's HS256 secret (`parlor up --jwt-secret-file`), with which
                          this script mints user tokens as a real login service would
  PARLOR_SUBJECT_PREFIX   first token of every subject (default parlor)
Parlor must publish events as JSON: `parlor up --event-format json`.
"""

import asyncio
import base64
import hashlib
import hmac
import json
import os
import sys
import time
import urllib.error
import urllib.request
import uuid

import nats

# Every wait on the network is bounded: a step that hangs fails instead.
STEP_TIMEOUT_SECONDS = 10


class StepFailed(Exception):
    """A step of the story did not see what it expected."""


def check(condition, step, detail):
    if not condition:
        raise StepFailed(f"{step}: {detail}")


def mint_token(secret: bytes, subject: str, ttl_seconds: int = 600) -> str:
    """An HS256 JWT with `sub` and `exp`, the claims the gateway requires (docs/api.md)."""

    def segment(value) -> str:
        raw = json.dumps(value, separators=(",", ":")).encode()
        return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()

    header = segment({"alg": "HS256", "typ": "JWT"})
    claims = segment({"sub": subject, "exp": int(time.time()) + ttl_seconds})
    signing_input = f"{header}.{claims}".encode()
    signature = hmac.new(secret, signing_input, hashlib.sha256).digest()
    return f"{header}.{claims}.{base64.urlsafe_b64encode(signature).rstrip(b'=').decode()}"


async def send_command(nc, prefix, command_type, actor, data):
    """Publishes one command (protocol.md §1) and returns its reply, checked to be `ok`."""
    envelope = {"command_id": str(uuid.uuid4()), "actor": actor, "data": data}
    reply = await nc.request(
        f"{prefix}.cmd.{command_type}",
        json.dumps(envelope).encode(),
        timeout=STEP_TIMEOUT_SECONDS,
        headers={"Content-Type": "application/json"},
    )
    answer = json.loads(reply.data)
    check(answer.get("ok") is True, command_type, f"refused: {answer}")
    return answer


def http_get(base_url, path, token):
    request = urllib.request.Request(base_url + path, headers={"Authorization": f"Bearer {token}"})
    try:
        with urllib.request.urlopen(request, timeout=STEP_TIMEOUT_SECONDS) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read() or b"null")


async def story(nats_url, http_url, secret, prefix):
    async def on_error(error):
        # One line per connection error, instead of nats-py's default traceback.
        print(f"nats: {type(error).__name__}: {error}", file=sys.stderr)

    nc = await nats.connect(
        nats_url,
        connect_timeout=STEP_TIMEOUT_SECONDS,
        allow_reconnect=False,
        max_reconnect_attempts=1,
        error_cb=on_error,
    )
    try:
        # Follow the log before writing, so the message's event cannot be missed.
        events = asyncio.Queue()

        async def on_event(msg):
            await events.put(msg)

        await nc.subscribe(f"{prefix}.evt.>", cb=on_event)
        await nc.flush(timeout=STEP_TIMEOUT_SECONDS)

        # Unique ids: the example may run again against the same data directory.
        suffix = uuid.uuid4().hex[:8]
        alice, bob = f"alice-py-{suffix}", f"bob-py-{suffix}"
        for user_id, name, kind in [(alice, "Alice", "client"), (bob, "Bob", "freelancer")]:
            await send_command(
                nc,
                prefix,
                "user.register",
                "service:identity",
                {"user_id": user_id, "display_name": name, "kind": kind},
            )
        print(f"registered {alice} and {bob} as service:identity")

        body = f"Hello Bob, from Python ({suffix})"
        sent = await send_command(nc, prefix, "message.send", alice, {"to": bob, "body": body})
        room_id = sent["result"]["room_id"]
        message_id = sent["result"]["message_id"]
        position = sent["position"]
        print(f"sent message {message_id} in room {room_id} at position {position}")

        # The event of that message on evt.>, with its position in the headers.
        deadline = time.monotonic() + STEP_TIMEOUT_SECONDS
        while True:
            remaining = deadline - time.monotonic()
            check(remaining > 0, "evt.>", f"no message_sent for {message_id} within the timeout")
            try:
                msg = await asyncio.wait_for(events.get(), timeout=remaining)
            except asyncio.TimeoutError:
                continue
            if msg.subject != f"{prefix}.evt.message_sent":
                continue
            event = json.loads(msg.data)
            if event.get("data", {}).get("message_id") != message_id:
                continue
            headers = msg.headers or {}
            check(
                headers.get("Parlor-Position") == str(event["position"]),
                "evt.>",
                f"header Parlor-Position {headers.get('Parlor-Position')} but event {event['position']}",
            )
            check(event["data"].get("body") == body, "evt.>", f"body {event['data'].get('body')!r}")
            print(f"saw message_sent at position {event['position']} on {msg.subject}")
            break

        # The room over HTTP as Bob, once the timeline has applied the command's position.
        bob_token = mint_token(secret, bob)
        status, page = http_get(
            http_url, f"/v1/rooms/{room_id}/messages?min_position={position}", bob_token
        )
        check(status == 200, "GET messages", f"status {status}: {page}")
        bodies = {message["message_id"]: message["body"] for message in page["messages"]}
        check(bodies.get(message_id) == body, "GET messages", f"message not in {page}")
        print(f"read the room over HTTP as {bob}: {bodies[message_id]!r}")
    finally:
        await nc.close()


def main():
    nats_url = os.environ.get("PARLOR_NATS_URL", "nats://127.0.0.1:4222")
    http_url = os.environ.get("PARLOR_HTTP_URL", "http://127.0.0.1:8787").rstrip("/")
    prefix = os.environ.get("PARLOR_SUBJECT_PREFIX", "parlor")
    secret_file = os.environ.get("PARLOR_JWT_SECRET_FILE")
    if not secret_file:
        print("set PARLOR_JWT_SECRET_FILE to the gateway's secret file", file=sys.stderr)
        return 2
    with open(secret_file, "rb") as file:
        secret = file.read().strip()
    try:
        asyncio.run(story(nats_url, http_url, secret, prefix))
    except StepFailed as failure:
        print(f"FAILED {failure}", file=sys.stderr)
        return 1
    except (OSError, asyncio.TimeoutError, nats.errors.Error) as error:
        print(f"FAILED: {type(error).__name__}: {error}", file=sys.stderr)
        return 1
    print("python example: all steps passed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
