// A Parlor integration in TypeScript: a service on NATS, a frontend over HTTP and SSE.
//
// The story (docs/protocol.md): as the identity service, register two users with
// `parlor.cmd.user.register`; as the first user, send the second a message with
// `parlor.cmd.message.send`; see it committed on `parlor.evt.>`; read the room over HTTP with
// `min_position` (read-your-writes) and see the message arrive on the second user's
// `GET /v1/events` stream. Every step checks what it got; the script exits non-zero, naming the
// step, when one does not hold.
//
// Configuration (environment):
//   PARLOR_NATS_URL         the NATS server Parlor runs on (default nats://127.0.0.1:4222)
//   PARLOR_HTTP_URL         the gateway (default http://127.0.0.1:8787)
//   PARLOR_JWT_SECRET_FILE  the gateway's HS256 secret (`parlor up --jwt-secret-file`), with
//                           which this script mints user tokens as a real login service would
//   PARLOR_SUBJECT_PREFIX   first token of every subject (default parlor)
// Parlor must publish events as JSON: `parlor up --event-format json`.

import { createHmac, randomUUID } from "node:crypto";
import { readFileSync } from "node:fs";
import { connect, type Msg, type NatsConnection } from "nats";

import { readServerSentEvents, type ServerSentEvent } from "./sse.js";

// Every wait on the network is bounded: a step that hangs fails instead.
const STEP_TIMEOUT_MS = 10_000;

class StepFailed extends Error {}

function check(condition: boolean, step: string, detail: string): asserts condition {
  if (!condition) throw new StepFailed(`${step}: ${detail}`);
}

/** An HS256 JWT with `sub` and `exp`, the claims the gateway requires (docs/api.md). */
function mintToken(secret: Buffer, subject: string, ttlSeconds = 600): string {
  const segment = (value: object) => Buffer.from(JSON.stringify(value)).toString("base64url");
  const header = segment({ alg: "HS256", typ: "JWT" });
  const claims = segment({ sub: subject, exp: Math.floor(Date.now() / 1000) + ttlSeconds });
  const signature = createHmac("sha256", secret).update(`${header}.${claims}`).digest("base64url");
  return `${header}.${claims}.${signature}`;
}

interface CommandReply {
  ok: boolean;
  position: number;
  result?: Record<string, string>;
  error?: { code: string; message: string };
}

/** Publishes one command (protocol.md §1) and returns its reply, checked to be `ok`. */
async function sendCommand(
  nc: NatsConnection,
  prefix: string,
  type: string,
  actor: string,
  data: object,
): Promise<CommandReply> {
  const envelope = { command_id: randomUUID(), actor, data };
  const reply = await nc.request(`${prefix}.cmd.${type}`, JSON.stringify(envelope), {
    timeout: STEP_TIMEOUT_MS,
  });
  const answer = reply.json<CommandReply>();
  check(answer.ok === true, type, `refused: ${JSON.stringify(answer)}`);
  return answer;
}

/** Resolves with the first event of `subscription` that `matches`, or fails after the timeout. */
function firstMatching<T>(
  source: AsyncIterable<T>,
  matches: (item: T) => boolean,
  step: string,
): Promise<T> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(
      () => reject(new StepFailed(`${step}: nothing matching within ${STEP_TIMEOUT_MS} ms`)),
      STEP_TIMEOUT_MS,
    );
    (async () => {
      for await (const item of source) {
        if (matches(item)) return item;
      }
      throw new StepFailed(`${step}: the stream ended first`);
    })().then(
      (item) => {
        clearTimeout(timer);
        resolve(item);
      },
      (error) => {
        clearTimeout(timer);
        reject(error);
      },
    );
  });
}

async function story(natsUrl: string, httpUrl: string, secret: Buffer, prefix: string) {
  const nc = await connect({ servers: natsUrl, timeout: STEP_TIMEOUT_MS, reconnect: false });
  const abortStream = new AbortController();
  try {
    // Follow the log before writing, so the message's event cannot be missed.
    const events = nc.subscribe(`${prefix}.evt.>`);
    await nc.flush();

    const suffix = randomUUID().slice(0, 8);
    const alice = `alice-ts-${suffix}`;
    const bob = `bob-ts-${suffix}`;
    let registered: CommandReply | undefined;
    for (const [userId, name, kind] of [
      [alice, "Alice", "client"],
      [bob, "Bob", "freelancer"],
    ]) {
      registered = await sendCommand(nc, prefix, "user.register", "service:identity", {
        user_id: userId,
        display_name: name,
        kind,
      });
    }
    check(registered !== undefined, "user.register", "no reply");
    console.log(`registered ${alice} and ${bob} as service:identity`);

    // Bob's live stream, resumed from just after his registration (`Last-Event-ID`), so the
    // message is on it however soon it is sent.
    const bobToken = mintToken(secret, bob);
    const stream = await fetch(`${httpUrl}/v1/events`, {
      headers: {
        Authorization: `Bearer ${bobToken}`,
        "Last-Event-ID": String(registered.position),
      },
      signal: abortStream.signal,
    });
    check(stream.status === 200, "GET /v1/events", `status ${stream.status}`);
    check(
      (stream.headers.get("content-type") ?? "").startsWith("text/event-stream"),
      "GET /v1/events",
      `content type ${stream.headers.get("content-type")}`,
    );
    check(stream.body !== null, "GET /v1/events", "no body");
    const sse = readServerSentEvents(stream.body);

    const body = `Hello Bob, from TypeScript (${suffix})`;
    const sent = await sendCommand(nc, prefix, "message.send", alice, { to: bob, body });
    const roomId = sent.result?.room_id ?? "";
    const messageId = sent.result?.message_id ?? "";
    console.log(`sent message ${messageId} in room ${roomId} at position ${sent.position}`);

    // The event of that message on evt.>, with its position in the headers.
    const committed = await firstMatching<Msg>(
      events,
      (msg) =>
        msg.subject === `${prefix}.evt.message_sent` && msg.json<any>().data?.message_id === messageId,
      "evt.>",
    );
    const event = committed.json<any>();
    check(
      committed.headers?.get("Parlor-Position") === String(event.position),
      "evt.>",
      `header Parlor-Position ${committed.headers?.get("Parlor-Position")}, event ${event.position}`,
    );
    check(event.data.body === body, "evt.>", `body ${JSON.stringify(event.data.body)}`);
    console.log(`saw message_sent at position ${event.position} on ${committed.subject}`);

    // The room over HTTP as Bob, once the timeline has applied the command's position.
    const read = await fetch(
      `${httpUrl}/v1/rooms/${roomId}/messages?min_position=${sent.position}`,
      { headers: { Authorization: `Bearer ${bobToken}` }, signal: AbortSignal.timeout(STEP_TIMEOUT_MS) },
    );
    const page = (await read.json()) as { messages: { message_id: string; body: string | null }[] };
    check(read.status === 200, "GET messages", `status ${read.status}: ${JSON.stringify(page)}`);
    const found = page.messages.find((message) => message.message_id === messageId);
    check(found?.body === body, "GET messages", `message not in ${JSON.stringify(page)}`);
    console.log(`read the room over HTTP as ${bob}: ${JSON.stringify(found.body)}`);

    // The same message on Bob's SSE stream, in the shape of the reads, its id a log position.
    const live = await firstMatching<ServerSentEvent>(
      sse,
      (item) => item.event === "message" && JSON.parse(item.data).message_id === messageId,
      "GET /v1/events",
    );
    check(JSON.parse(live.data).body === body, "GET /v1/events", `data ${live.data}`);
    console.log(`saw the message on ${bob}'s event stream (event "message")`);
  } finally {
    abortStream.abort();
    await nc.close();
  }
}

async function main(): Promise<number> {
  const natsUrl = process.env.PARLOR_NATS_URL ?? "nats://127.0.0.1:4222";
  const httpUrl = (process.env.PARLOR_HTTP_URL ?? "http://127.0.0.1:8787").replace(/\/$/, "");
  const prefix = process.env.PARLOR_SUBJECT_PREFIX ?? "parlor";
  const secretFile = process.env.PARLOR_JWT_SECRET_FILE;
  if (!secretFile) {
    console.error("set PARLOR_JWT_SECRET_FILE to the gateway's secret file");
    return 2;
  }
  const secret = Buffer.from(readFileSync(secretFile, "utf8").trim());
  try {
    await story(natsUrl, httpUrl, secret, prefix);
  } catch (error) {
    console.error(`FAILED ${error instanceof Error ? error.message : String(error)}`);
    return 1;
  }
  console.log("typescript example: all steps passed");
  return 0;
}

process.exitCode = await main();
