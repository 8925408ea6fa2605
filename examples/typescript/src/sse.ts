// A reader of Server-Sent Events (the WHATWG format `GET /v1/events` speaks) over a fetch
// body: Node 20 has fetch but no EventSource, and fetch lets the client send headers such as
// `Authorization` and `Last-Event-ID`, which EventSource cannot.

/** One dispatched event: its `event` name ("message" when unnamed), `id` and `data`. */
export interface ServerSentEvent {
  event: string;
  id: string | undefined;
  data: string;
}

/** The events of `body`, in order, until the stream ends. Comment lines (keep-alives) are skipped. */
export async function* readServerSentEvents(
  body: ReadableStream<Uint8Array>,
): AsyncGenerator<ServerSentEvent> {
  const decoder = new TextDecoder();
  let buffered = "";
  let event = "";
  let id: string | undefined;
  let data: string[] = [];
  for await (const chunk of body) {
    buffered += decoder.decode(chunk, { stream: true });
    let newline: number;
    while ((newline = buffered.search(/\r\n|\r|\n/)) >= 0) {
      // A "\r" ending the buffer may be the first half of "\r\n": wait for the next chunk.
      if (buffered[newline] === "\r" && newline === buffered.length - 1) break;
      const line = buffered.slice(0, newline);
      const separator = buffered.startsWith("\r\n", newline) ? 2 : 1;
      buffered = buffered.slice(newline + separator);
      if (line === "") {
        // A blank line dispatches the event gathered so far, if it has data.
        if (data.length > 0) yield { event: event || "message", id, data: data.join("\n") };
        event = "";
        data = [];
        continue;
      }
      if (line.startsWith(":")) continue;
      const colon = line.indexOf(":");
      const field = colon < 0 ? line : line.slice(0, colon);
      let value = colon < 0 ? "" : line.slice(colon + 1);
      if (value.startsWith(" ")) value = value.slice(1);
      if (field === "event") event = value;
      else if (field === "data") data.push(value);
      else if (field === "id") id = value;
    }
  }
}
