// One call: the socket, the microphone and the speaker, and the few protocol rules the page owns
// -- greeting, typed turns, one response at a time, and barge-in (flush + truncate).
//
// Events: "state" {state, detail}, "server-event" (every event from the server, after the call
// has acted on it), "problem" {message, kind}, "mic" {state, message?}, "level" {rms},
// "interrupted" {itemId}.

import { explainMicError, Microphone } from "./audio-capture.js";
import { Player } from "./audio-playback.js";
import { fromBase64, SAMPLE_RATE, samplesToMs, toBase64 } from "./pcm.js";
import { RealtimeSocket, realtimeUrl } from "./realtime.js";
import { recordReceived, recordSent, voiceTest } from "./test-hooks.js";

const FRAME_MS = 20; // microphone chunk: 480 samples, 960 bytes
const MAX_BUFFERED_BYTES = 256 * 1024; // ~4 s of audio stuck in the socket: drop, don't lag
// Errors that are expected races, not news for the caller: a cancel that arrived just after the
// response finished, and our response.create meeting one the server started (we retry it).
const QUIET_ERRORS = new Set(["response_cancel_not_active"]);
const BUSY = "conversation_already_has_active_response";

export class Call extends EventTarget {
  constructor({ muted = false, greet = true } = {}) {
    super();
    this.muted = muted;
    voiceTest.muted = muted;
    this.greet = greet;
    this.state = "idle";
    this.context = null;
    this.socket = null;
    this.player = null;
    this.mic = null;
    this.activeResponse = null; // id of the response in progress, from response.created
    this.requested = false; // our response.create is on its way (no response.created yet)
    this.createEventId = null; // event_id of our last response.create
    this.retryCreate = false; // it was refused as busy: send again after response.done
    this.cancelNext = false; // we cancelled a response whose id we had not seen yet
    this.interruptedResponses = new Set(); // their remaining audio deltas are dropped
    this.staleItems = new Set(); // items of a model session the server has since replaced
  }

  get connected() {
    return this.state === "connected";
  }

  /** Must run inside the click that starts the call (browsers only start audio on a gesture). */
  async start() {
    this.#setState("connecting");
    try {
      this.context = new AudioContext({ sampleRate: SAMPLE_RATE, latencyHint: "interactive" });
    } catch {
      this.context = new AudioContext({ latencyHint: "interactive" }); // the worklets resample
    }
    const resumed = this.context.resume().catch(() => {});
    const socket = new RealtimeSocket(realtimeUrl());
    this.socket = socket;
    socket.addEventListener("message", (e) => this.#receive(e.detail));
    socket.addEventListener("close", (e) => this.#closed(e.detail));
    const context = this.context;
    try {
      const player = await Player.create(context);
      if (this.context !== context) return; // hung up meanwhile
      this.player = player;
      this.#watchPlayback(player);
    } catch (error) {
      if (this.context !== context) return;
      this.#problem(`Audio playback could not start (${error.message}); replies will be text only.`);
    }
    const micReady = this.#startMic();
    try {
      await socket.connect();
    } catch {
      // Usually #closed has explained it already; a URL the browser refuses never opens at all.
      if (this.state === "connecting" && socket === this.socket) {
        this.#teardown();
        this.#setState("dropped", "Could not reach the server. Check your connection and try again.");
      }
      return;
    }
    if (socket !== this.socket) return; // hung up while connecting
    this.#setState("connected");
    if (this.greet) this.#requestResponse();
    await Promise.all([micReady, resumed]);
  }

  hangUp() {
    if (this.state !== "connecting" && this.state !== "connected") return;
    this.socket?.close(1000, "caller hung up");
    this.#teardown();
    this.#setState("ended");
  }

  setMuted(muted) {
    this.muted = muted;
    voiceTest.muted = muted;
    this.mic?.setMuted(muted);
  }

  /** A typed turn: interrupt whatever the assistant is saying, add the message, ask for a reply. */
  sendText(text) {
    if (!this.connected) return false;
    const busy = this.activeResponse !== null || this.requested;
    if (busy || this.player?.isPlaying) this.#bargeIn("typed");
    if (busy) {
      this.cancelNext = this.activeResponse === null; // cancels the one we asked for
      this.#send("response.cancel");
    }
    this.#send("conversation.item.create", {
      item: { type: "message", role: "user", content: [{ type: "input_text", text }] },
    });
    this.#requestResponse();
    return true;
  }

  #watchPlayback(player) {
    let counted = 0;
    const update = () => {
      voiceTest.samplesPlayed += player.samplesPlayed - counted;
      counted = player.samplesPlayed;
      voiceTest.playbackUnderruns = player.underruns;
      voiceTest.playing = player.isPlaying;
    };
    player.addEventListener("progress", update);
    player.addEventListener("flushed", update);
  }

  // --- microphone ------------------------------------------------------------------------

  async #startMic() {
    const mic = new Microphone(this.context, {
      frameMs: FRAME_MS,
      muted: this.muted,
      onFrame: (frame) => this.#frame(frame),
    });
    mic.addEventListener("ended", () => {
      this.dispatchEvent(new CustomEvent("mic", {
        detail: { state: "blocked", message: "The microphone was disconnected. You can type your messages." },
      }));
    });
    try {
      await mic.start();
    } catch (error) {
      mic.stop();
      if (this.state === "connecting" || this.state === "connected") {
        this.dispatchEvent(new CustomEvent("mic", {
          detail: { state: "blocked", message: explainMicError(error) },
        }));
      }
      return;
    }
    if (this.state !== "connecting" && this.state !== "connected") {
      mic.stop(); // the call ended while the browser was asking for the microphone
      return;
    }
    this.mic = mic;
    this.dispatchEvent(new CustomEvent("mic", { detail: { state: this.muted ? "muted" : "live" } }));
  }

  #frame({ pcm, rms }) {
    voiceTest.micLevel = rms;
    this.dispatchEvent(new CustomEvent("level", { detail: { rms } }));
    const socket = this.socket;
    if (!socket?.isOpen) return;
    if (socket.buffered > MAX_BUFFERED_BYTES) {
      voiceTest.framesDropped++;
      return;
    }
    if (socket.sendAudio(toBase64(pcm))) {
      voiceTest.framesSent++;
      voiceTest.bytesSent += pcm.byteLength;
    }
  }

  // --- events from the server ------------------------------------------------------------

  #receive(event) {
    recordReceived(event);
    switch (event.type) {
      case "response.created":
        this.activeResponse = event.response?.id ?? null;
        this.requested = false;
        if (this.cancelNext) this.interruptedResponses.add(this.activeResponse);
        this.cancelNext = false;
        break;
      case "response.done":
        this.#responseDone(event);
        break;
      case "response.output_audio.delta":
        this.#audio(event);
        return; // too frequent to hand to every listener
      case "response.output_audio.done":
        this.player?.end(event.item_id);
        break;
      case "input_audio_buffer.speech_started":
        this.#bargeIn("speech");
        break;
      case "session.reconnected":
        // A fresh model session (history replayed as text): what was in progress is gone, and
        // the old items are unknown to it, so they can be flushed but never truncated.
        for (const itemId of this.player?.items.keys() ?? []) this.staleItems.add(itemId);
        this.activeResponse = null;
        this.requested = false;
        this.retryCreate = false;
        break;
      case "error":
        if (this.#quietError(event.error ?? {})) return;
        break;
      default:
        break;
    }
    this.dispatchEvent(new CustomEvent("server-event", { detail: event }));
  }

  #responseDone(event) {
    voiceTest.responses++;
    const response = event.response ?? {};
    if (response.id === this.activeResponse) this.activeResponse = null;
    if (response.status === "failed") {
      const error = response.status_details?.error;
      this.#problem(`The assistant could not answer${error?.message ? `: ${error.message}` : "."}`);
    }
    if (this.retryCreate && this.activeResponse === null) {
      this.retryCreate = false;
      this.#requestResponse();
    }
  }

  #audio(event) {
    if (this.interruptedResponses.has(event.response_id) || !this.player) {
      voiceTest.audioDeltasDropped++;
      return;
    }
    const samples = fromBase64(event.delta ?? "");
    voiceTest.audioDeltasReceived++;
    voiceTest.samplesReceived += samples.length;
    this.player.enqueue(event.item_id, samples);
    voiceTest.playing = this.player.isPlaying;
  }

  #quietError(error) {
    if (QUIET_ERRORS.has(error.code)) return true;
    if (error.code === BUSY && error.event_id && error.event_id === this.createEventId) {
      this.requested = false;
      this.retryCreate = true; // the server's own response goes first; ours follows it
      return true;
    }
    return false;
  }

  // --- barge-in --------------------------------------------------------------------------

  /**
   * The caller cut in (by voice, or by typing): stop playback at once and tell the model how
   * much of its reply was heard, so it forgets the rest. Deltas still in flight are dropped.
   */
  #bargeIn(reason) {
    if (this.activeResponse) this.interruptedResponses.add(this.activeResponse);
    const cut = this.player?.interrupt();
    if (!cut) return;
    voiceTest.playbackFlushes++;
    voiceTest.playing = false;
    this.dispatchEvent(new CustomEvent("interrupted", { detail: { itemId: cut.itemId, reason } }));
    if (this.staleItems.has(cut.itemId)) return;
    const fields = {
      item_id: cut.itemId,
      content_index: 0,
      audio_end_ms: Math.min(samplesToMs(cut.heard), samplesToMs(cut.received)),
    };
    this.#send("conversation.item.truncate", fields);
    voiceTest.lastInterruption = {
      reason,
      itemId: cut.itemId,
      receivedMs: samplesToMs(cut.received),
      playedMs: samplesToMs(cut.played),
      heardMs: fields.audio_end_ms,
    };
  }

  // --- sending ---------------------------------------------------------------------------

  #send(type, fields = {}) {
    const eventId = this.socket?.send(type, fields) ?? null;
    if (eventId) recordSent(type, fields);
    return eventId;
  }

  #requestResponse() {
    const eventId = this.#send("response.create");
    if (!eventId) return;
    this.createEventId = eventId;
    this.requested = true;
  }

  // --- ending ----------------------------------------------------------------------------

  #closed({ code, reason, byUs, explanation }) {
    voiceTest.close = { code, reason, explanation };
    if (byUs || this.state === "ended" || this.state === "idle") return;
    const neverOpened = this.state === "connecting";
    this.#teardown();
    this.#setState("dropped", neverOpened && code === 1006
      ? "Could not reach the server. Check your connection and try again."
      : explanation);
  }

  #teardown() {
    this.mic?.stop();
    this.mic = null;
    this.player?.close();
    this.player = null;
    this.context?.close().catch(() => {});
    this.context = null;
    this.socket = null;
    this.activeResponse = null;
    this.requested = false;
    this.retryCreate = false;
  }

  #problem(message, kind = "error") {
    this.dispatchEvent(new CustomEvent("problem", { detail: { message, kind } }));
  }

  #setState(state, detail = "") {
    this.state = state;
    voiceTest.state = state;
    this.dispatchEvent(new CustomEvent("state", { detail: { state, detail } }));
  }
}
