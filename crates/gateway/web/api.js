// Parlor's HTTP API as the client uses it (docs/api.md): the token, reads, commands, uploads,
// authenticated downloads, and the live event stream.
//
// The token lives in sessionStorage only: it is gone when the tab closes, and no other tab or
// later visit sees it. Every request sends it as `Authorization: Bearer`; the gateway takes it
// nowhere else, so the event stream is read with fetch() (EventSource cannot send headers) and
// the SSE framing, `id:` and `Last-Event-ID` are handled here.

const TOKEN_KEY = "parlor.token";
const RECONNECT_DELAY_MIN_MS = 500;
const RECONNECT_DELAY_MAX_MS = 15000;

/** A refusal from the API, with its code (never shown raw: see sentences.js). */
export class ApiFailure extends Error {
  constructor(code, message, status, retryAfterSeconds) {
    super(message || code);
    this.code = code;
    this.status = status;
    this.retryAfterSeconds = retryAfterSeconds;
  }
}

export function storedToken() {
  return sessionStorage.getItem(TOKEN_KEY);
}

export function storeToken(token) {
  sessionStorage.setItem(TOKEN_KEY, token);
}

export function forgetToken() {
  sessionStorage.removeItem(TOKEN_KEY);
}

/** The `sub` of a JWT, read without checking the signature (for display; the server checks). */
export function tokenSubject(token) {
  const parts = token.split(".");
  if (parts.length !== 3) return null;
  try {
    const base64 = parts[1].replace(/-/g, "+").replace(/_/g, "/");
    const json = atob(base64 + "=".repeat((4 - (base64.length % 4)) % 4));
    const claims = JSON.parse(json);
    return typeof claims.sub === "string" ? claims.sub : null;
  } catch {
    return null;
  }
}

/** The client kind sent as `X-Client`: archive is allowed from desktop and mobile web only. */
export function clientKind() {
  return window.matchMedia("(max-width: 767px)").matches ? "mobile_web" : "desktop";
}

function authHeaders(extra = {}) {
  return { Authorization: `Bearer ${storedToken() || ""}`, ...extra };
}

async function failureOf(response) {
  let code = "unavailable";
  let message = "";
  try {
    const body = await response.json();
    if (body && body.error && typeof body.error.code === "string") {
      code = body.error.code;
      message = body.error.message || "";
    }
  } catch {
    // Not JSON (a proxy's page, say): keep the general code.
  }
  const retryAfter = Number(response.headers.get("Retry-After"));
  return new ApiFailure(code, message, response.status, Number.isFinite(retryAfter) ? retryAfter : null);
}

async function send(path, init) {
  let response;
  try {
    response = await fetch(path, init);
  } catch (error) {
    throw new ApiFailure("network", String(error), 0, null);
  }
  if (!response.ok) throw await failureOf(response);
  return response;
}

/** GET a read endpoint; `params` drops empty values. Answers the parsed body. */
export async function read(path, params = {}) {
  return (await readAt(path, params)).body;
}

/**
 * GET a read endpoint; answers `{body, position}`, `position` being the read model's log
 * position (`Parlor-Position`): the stream resumed from there misses nothing after the read.
 */
export async function readAt(path, params = {}) {
  const query = new URLSearchParams();
  for (const [key, value] of Object.entries(params)) {
    if (value !== undefined && value !== null && value !== "") query.set(key, String(value));
  }
  const suffix = query.toString() ? `?${query}` : "";
  const response = await send(path + suffix, { headers: authHeaders() });
  const position = response.headers.get("Parlor-Position");
  return { body: await response.json(), position: position && /^\d+$/.test(position) ? position : null };
}

/**
 * POST a command (protocol.md §1); answers `{result, position}`: the reply's `result` (or {})
 * and the log position to pass as `min_position` to read one's own write.
 */
export async function command(type, data = {}) {
  const response = await send(`/v1/commands/${type}`, {
    method: "POST",
    headers: authHeaders({
      "Content-Type": "application/json",
      "Idempotency-Key": crypto.randomUUID(),
      "X-Client": clientKind(),
    }),
    body: JSON.stringify(data),
  });
  const reply = await response.json();
  if (reply && reply.ok === false && reply.error) {
    throw new ApiFailure(reply.error.code, reply.error.message, response.status, null);
  }
  return { result: (reply && reply.result) || {}, position: reply && reply.position };
}

/** Uploads one File as the raw body; answers `{file_id, name, size, content_type, …}`. */
export async function upload(file) {
  const response = await send("/v1/files", {
    method: "POST",
    headers: authHeaders({
      "Content-Type": file.type || "application/octet-stream",
      "X-File-Name": encodeURIComponent(file.name),
    }),
    body: file,
  });
  return response.json();
}

/** Fetches an authenticated file (a download or preview) as a `blob:` URL. */
export async function blobUrl(path) {
  const response = await send(path, { headers: authHeaders() });
  return URL.createObjectURL(await response.blob());
}

/** Tells the server this session is active (R-A1); failures are not worth a banner. */
export async function heartbeat() {
  try {
    await fetch("/v1/presence/heartbeat", { method: "POST", headers: authHeaders() });
  } catch {
    // Offline: the next beat tries again.
  }
}

/**
 * Follows `GET /v1/events` until `signal` aborts, from `startAfter` (the position of a read the
 * page shows, so nothing between that read and the stream is missed): calls `onEvent(type, data, id)` for each
 * event, `onState("live" | "reconnecting")` as the connection comes and goes, and reconnects
 * with `Last-Event-ID` set to the last id seen, so nothing in between is missed. `onFailure` gets
 * an ApiFailure the stream cannot get past by itself (an expired token).
 */
export async function followEvents({ signal, startAfter = null, onEvent, onState, onFailure }) {
  let lastEventId = startAfter;
  let delay = RECONNECT_DELAY_MIN_MS;
  while (!signal.aborted) {
    try {
      const headers = authHeaders({ Accept: "text/event-stream" });
      if (lastEventId !== null) headers["Last-Event-ID"] = lastEventId;
      const response = await fetch("/v1/events", { headers, signal, cache: "no-store" });
      if (!response.ok) {
        const failure = await failureOf(response);
        if (failure.status === 401) {
          onFailure(failure);
          return;
        }
        // A resume point the server no longer takes: start afresh rather than loop.
        if (failure.status === 400) lastEventId = null;
        if (failure.retryAfterSeconds) delay = Math.max(delay, failure.retryAfterSeconds * 1000);
        throw failure;
      }
      onState("live");
      delay = RECONNECT_DELAY_MIN_MS;
      for await (const event of serverSentEvents(response.body)) {
        if (event.id !== null) lastEventId = event.id;
        let data = null;
        try {
          data = JSON.parse(event.data);
        } catch {
          continue;
        }
        onEvent(event.type, data, event.id);
      }
    } catch (error) {
      if (signal.aborted) return;
    }
    if (signal.aborted) return;
    onState("reconnecting");
    await new Promise((resolve) => setTimeout(resolve, delay));
    delay = Math.min(delay * 2, RECONNECT_DELAY_MAX_MS);
  }
}

/** Parses an SSE byte stream (the WHATWG framing: fields, blank line ends an event). */
async function* serverSentEvents(body) {
  const reader = body.pipeThrough(new TextDecoderStream()).getReader();
  let buffer = "";
  let type = "";
  let data = [];
  let id = null;
  for (;;) {
    const { value, done } = await reader.read();
    if (done) return;
    buffer += value;
    let newline;
    while ((newline = buffer.search(/\r\n|\r|\n/)) >= 0) {
      const line = buffer.slice(0, newline);
      buffer = buffer.slice(newline + (buffer.startsWith("\r\n", newline) ? 2 : 1));
      if (line === "") {
        if (data.length > 0) yield { type: type || "message", data: data.join("\n"), id };
        type = "";
        data = [];
        id = null;
        continue;
      }
      if (line.startsWith(":")) continue;
      const colon = line.indexOf(":");
      const field = colon < 0 ? line : line.slice(0, colon);
      let fieldValue = colon < 0 ? "" : line.slice(colon + 1);
      if (fieldValue.startsWith(" ")) fieldValue = fieldValue.slice(1);
      if (field === "event") type = fieldValue;
      else if (field === "data") data.push(fieldValue);
      else if (field === "id") id = fieldValue;
    }
  }
}
