// Assistant audio out: feeds the playback worklet and knows, per item, how much was received
// and how much was actually played -- what a barge-in needs for conversation.item.truncate.

import { SAMPLE_RATE } from "./pcm.js";

export class Player extends EventTarget {
  /** Loads the worklet into `context` and starts an (idle) player on it. */
  static async create(context, options = {}) {
    await context.audioWorklet.addModule(new URL("./playback-worklet.js", import.meta.url));
    return new Player(context, options);
  }

  constructor(context, { prebufferMs = 60 } = {}) {
    super();
    this.context = context;
    this.node = new AudioWorkletNode(context, "playback-processor", {
      numberOfInputs: 0,
      numberOfOutputs: 1,
      outputChannelCount: [1],
      processorOptions: { prebufferMs },
    });
    this.node.connect(context.destination);
    this.items = new Map(); // itemId -> {received, played, cut}
    this.order = []; // item ids in the order their audio arrived
    this.samplesPlayed = 0;
    this.samplesReceived = 0;
    this.flushes = 0;
    this.underruns = 0;
    this.node.port.onmessage = ({ data }) => this.#progress(data);
  }

  /** Queue one delta of an item (an Int16Array of 24 kHz samples; its buffer is transferred). */
  enqueue(itemId, samples) {
    let item = this.items.get(itemId);
    if (!item) {
      item = { received: 0, played: 0, cut: false };
      this.items.set(itemId, item);
      this.order.push(itemId);
    }
    if (item.cut) return; // interrupted: what is still in flight is never played
    item.received += samples.length;
    this.samplesReceived += samples.length;
    this.node.port.postMessage({ type: "push", itemId, pcm: samples }, [samples.buffer]);
  }

  /** All of the item's audio has arrived: running dry after it is the end, not a gap. */
  end(itemId) {
    this.node.port.postMessage({ type: "end", itemId });
  }

  /** Audio received but not yet played (as far as the last report from the audio thread says). */
  get pendingSamples() {
    let pending = 0;
    for (const item of this.items.values()) {
      if (!item.cut) pending += Math.max(0, item.received - item.played);
    }
    return pending;
  }

  get isPlaying() {
    return this.pendingSamples > 0;
  }

  /**
   * Barge-in: stop at once and forget what is queued. Returns the item that was cut
   * ({itemId, received, played, heard} in samples; `heard` excludes the output device's
   * latency) or null when nothing was left to play.
   */
  interrupt() {
    const itemId = this.order.find((id) => {
      const item = this.items.get(id);
      return !item.cut && item.played < item.received;
    });
    if (itemId === undefined) return null;
    this.node.port.postMessage({ type: "flush" });
    this.flushes++;
    for (const item of this.items.values()) item.cut = item.cut || item.played < item.received;
    const item = this.items.get(itemId);
    const latency = (this.context.outputLatency || 0) + (this.context.baseLatency || 0);
    const heard = Math.max(0, item.played - Math.round(latency * SAMPLE_RATE));
    return { itemId, received: item.received, played: item.played, heard };
  }

  close() {
    this.node.port.onmessage = null;
    this.node.disconnect();
  }

  #progress(data) {
    const item = data.itemId !== null ? this.items.get(data.itemId) : undefined;
    if (item) item.played = Math.max(item.played, data.itemPlayed);
    this.samplesPlayed = data.total;
    this.underruns = data.underruns;
    this.dispatchEvent(new CustomEvent(data.type, { detail: data }));
  }
}
