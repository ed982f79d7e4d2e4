// The call's WebSocket: URL, sending events (always "type" first), receiving and dispatching them,
// and explaining in words why a connection closed.

const PATH = "/v1/realtime";
let counter = 0;

/** ws(s)://host/v1/realtime, passing ?token= through from the page's own URL. */
export function realtimeUrl(location = window.location) {
  const scheme = location.protocol === "https:" ? "wss:" : "ws:";
  const url = new URL(`${scheme}//${location.host}${PATH}`);
  const token = new URLSearchParams(location.search).get("token");
  if (token) url.searchParams.set("token", token);
  return url.toString();
}

const CLOSE_REASONS = {
  1000: "The call ended.",
  1001: "The server is restarting. Please call again in a moment.",
  1006: "The connection dropped (network problem, or the server stopped).",
  1008: "The server refused something this page sent and ended the call.",
  1009: "The server ended the call: the audio sent was too large.",
  1011: "The connection to the voice assistant was lost or it is unavailable. Please call again.",
  1012: "The server is restarting. Please call again in a moment.",
  1013: "The line is busy: too many calls right now. Please try again in a moment.",
};

// Close reasons the server gives, made specific (the code alone is too vague for these).
const REASON_TEXT = [
  [1000, /idle/i, "The call was closed after a long time without any sound or message."],
  [1000, /maximum call length/i, "The call reached its maximum length and was closed."],
  [1008, /token/i, "This page needs a valid access link (with ?token=…) to call. Ask for a new link."],
  [1008, /origin/i, "Calls are not accepted from this web address."],
  [1008, /too many events/i, "The page sent more than the server accepts and the call was closed."],
  [1013, /too many calls from/i, "Too many calls are open from your network right now. End one, then call again."],
  [1013, /too many new calls/i, "Too many calls were started from your network in the last minute. Please wait a minute, then call again."],
  [1013, /daily budget/i, "The host cannot take calls for the rest of today. Please call the restaurant, or try again tomorrow."],
];

/** A sentence for a close code, made specific by the server's reason when it gave one. */
export function explainClose(code, reason = "") {
  for (const [known, pattern, text] of REASON_TEXT) {
    if (code === known && pattern.test(reason)) return text;
  }
  return CLOSE_REASONS[code] ?? `The connection closed unexpectedly (code ${code}).`;
}

/**
 * One connection. Events arrive as DOM events named after their type
 * (`socket.addEventListener("reservation.confirmed", e => e.detail)`), plus "message" for every
 * event, "open" and "close" (detail: {code, reason, wasClean, byUs, explanation}).
 */
export class RealtimeSocket extends EventTarget {
  constructor(url) {
    super();
    this.url = url;
    this.ws = null;
    this.closedByUs = false;
  }

  get isOpen() {
    return this.ws !== null && this.ws.readyState === WebSocket.OPEN;
  }

  /** Bytes queued in the browser but not yet sent (to drop audio rather than fall behind). */
  get buffered() {
    return this.ws ? this.ws.bufferedAmount : 0;
  }

  /** Resolves when open; rejects if the socket closes first (then "close" is dispatched too). */
  connect() {
    return new Promise((resolve, reject) => {
      let ws;
      try {
        ws = new WebSocket(this.url);
      } catch (error) {
        reject(error);
        return;
      }
      this.ws = ws;
      ws.addEventListener("open", () => {
        this.dispatchEvent(new CustomEvent("open"));
        resolve();
      });
      ws.addEventListener("message", (message) => this.#receive(message.data));
      ws.addEventListener("close", (event) => {
        const detail = {
          code: event.code,
          reason: event.reason,
          wasClean: event.wasClean,
          byUs: this.closedByUs,
          explanation: explainClose(event.code, event.reason),
        };
        this.ws = null;
        this.dispatchEvent(new CustomEvent("close", { detail }));
        reject(new Error(detail.explanation));
      });
    });
  }

  /** Send a client event; "type" goes first (the server peeks at it). Returns its event_id. */
  send(type, fields = {}) {
    if (!this.isOpen) return null;
    const eventId = `page_${(++counter).toString(36)}`;
    this.ws.send(JSON.stringify({ type, event_id: eventId, ...fields }));
    return eventId;
  }

  /** The hot path: one audio chunk, built as a string with no object in between. */
  sendAudio(base64) {
    if (!this.isOpen) return false;
    this.ws.send(`{"type":"input_audio_buffer.append","audio":"${base64}"}`);
    return true;
  }

  close(code = 1000, reason = "caller hung up") {
    if (!this.ws) return;
    this.closedByUs = true;
    this.ws.close(code, reason);
  }

  #receive(data) {
    if (typeof data !== "string") return;
    let event;
    try {
      event = JSON.parse(data);
    } catch {
      return; // not ours to judge; the server only sends JSON
    }
    if (!event || typeof event.type !== "string") return;
    this.dispatchEvent(new CustomEvent("message", { detail: event }));
    this.dispatchEvent(new CustomEvent(event.type, { detail: event }));
  }
}
