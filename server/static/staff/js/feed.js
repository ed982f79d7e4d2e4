// The live feed: server-sent events read through fetch (EventSource cannot send the staff
// token as a header). It reconnects by itself with backoff and sends Last-Event-ID, so a
// dropped connection or a server restart loses nothing: the server replays what was missed.
//
// Events: "ready" {today, resumed}, "change" (a history entry), "state" {state}, "auth" {status}.

import { authHeaders } from "./api.js";

const URL_PATH = "/api/reservations/events";
const FIRST_DELAY_MS = 250;
const MAX_DELAY_MS = 4000;

export class LiveFeed extends EventTarget {
  constructor() {
    super();
    this.lastEventId = null;
    this.connects = 0;
    this.stopped = true;
    this.controller = null;
  }

  start() {
    if (!this.stopped) return;
    this.stopped = false;
    this.#loop();
  }

  stop() {
    this.stopped = true;
    this.controller?.abort();
  }

  async #loop() {
    let delay = FIRST_DELAY_MS;
    while (!this.stopped) {
      this.#emit("state", { state: this.connects ? "reconnecting" : "connecting" });
      this.controller = new AbortController();
      try {
        const headers = { ...authHeaders(), Accept: "text/event-stream" };
        if (this.lastEventId !== null) headers["Last-Event-ID"] = this.lastEventId;
        const response = await fetch(URL_PATH, {
          headers, cache: "no-store", signal: this.controller.signal,
        });
        if (response.status === 401 || response.status === 403) {
          this.stopped = true;
          this.#emit("auth", { status: response.status });
          return;
        }
        if (response.ok && response.body) {
          this.connects += 1;
          if (await this.#read(response.body)) delay = FIRST_DELAY_MS;
        }
      } catch {
        // a network error or a server going away: try again below
      }
      if (this.stopped) return;
      this.#emit("state", { state: "offline" });
      await new Promise((resolve) => setTimeout(resolve, delay));
      delay = Math.min(delay * 2, MAX_DELAY_MS);
    }
  }

  /** Reads one response until it ends; true if it got as far as "ready". */
  async #read(body) {
    const reader = body.pipeThrough(new TextDecoderStream()).getReader();
    let buffer = "";
    let ready = false;
    for (;;) {
      const { value, done } = await reader.read();
      if (done) return ready;
      buffer += value.replaceAll("\r\n", "\n");
      let end;
      while ((end = buffer.indexOf("\n\n")) >= 0) {
        const block = buffer.slice(0, end);
        buffer = buffer.slice(end + 2);
        const event = parseBlock(block);
        if (!event) continue;
        if (event.id !== null) this.lastEventId = event.id;
        if (event.type === "ready") {
          ready = true;
          this.#emit("state", { state: "live" });
        }
        this.#emit(event.type, event.data);
      }
    }
  }

  #emit(type, detail) {
    this.dispatchEvent(new CustomEvent(type, { detail }));
  }
}

/** One SSE block -> {type, id, data}; comments (keep-alives) -> null. */
export function parseBlock(block) {
  let type = "message";
  let id = null;
  const data = [];
  for (const line of block.split("\n")) {
    if (!line || line.startsWith(":")) continue;
    const colon = line.indexOf(":");
    const field = colon < 0 ? line : line.slice(0, colon);
    const value = colon < 0 ? "" : line.slice(colon + 1).replace(/^ /, "");
    if (field === "event") type = value;
    else if (field === "id") id = value;
    else if (field === "data") data.push(value);
  }
  if (!data.length) return null;
  return { type, id, data: JSON.parse(data.join("\n")) };
}
