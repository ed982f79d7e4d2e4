// AudioWorklet: a gap-free queue of assistant audio (PCM16, 24 kHz) that can be flushed at once.
// Runs on the audio thread.
//   in:  {type: "push", itemId, pcm: Int16Array}   audio for an item, in arrival order
//        {type: "end", itemId}                     all of that item's audio has arrived
//        {type: "flush"}                           drop everything queued (barge-in)
//   out: {type: "progress" | "flushed", itemId, itemPlayed, total, queued, underruns, dropped}
// `itemPlayed` counts the item's 24 kHz samples handed to the output so far: the page turns it
// into `audio_end_ms` for conversation.item.truncate. Playback starts once `prebufferMs` of audio
// is queued (or the item is complete, or that long has passed), so network jitter is absorbed
// before the first sample instead of becoming a gap in the middle of a word.

const SOURCE_RATE = 24000;
const REPORT_EVERY = 4; // render quanta between progress reports while playing (~21 ms)

class PlaybackProcessor extends AudioWorkletProcessor {
  constructor(options) {
    super();
    const prebufferMs = options.processorOptions?.prebufferMs ?? 60;
    this.step = SOURCE_RATE / sampleRate; // source samples per output sample (1 at 24 kHz)
    this.prebuffer = Math.round((SOURCE_RATE * prebufferMs) / 1000);
    this.queue = []; // {itemId, samples: Float32Array, offset}
    this.queued = 0; // source samples waiting
    this.playing = false;
    this.waited = 0; // source-sample time spent waiting for the prebuffer
    this.phase = 0;
    this.total = 0;
    this.itemId = null;
    this.itemPlayed = 0;
    this.complete = new Set(); // items whose audio has all arrived
    this.underruns = 0;
    this.quanta = 0;
    this.port.onmessage = ({ data }) => this.#message(data);
  }

  #message(data) {
    if (data.type === "push") {
      const pcm = data.pcm;
      const samples = new Float32Array(pcm.length);
      for (let i = 0; i < pcm.length; i++) samples[i] = pcm[i] / 32768;
      if (samples.length > 0) {
        this.queue.push({ itemId: data.itemId, samples, offset: 0 });
        this.queued += samples.length;
      }
    } else if (data.type === "end") {
      this.complete.add(data.itemId);
    } else if (data.type === "flush") {
      const dropped = this.queued;
      this.queue = [];
      this.queued = 0;
      this.playing = false;
      this.waited = 0;
      this.phase = 0;
      this.#report("flushed", dropped);
    }
  }

  #report(type, dropped = 0) {
    this.port.postMessage({
      type,
      itemId: this.itemId,
      itemPlayed: this.itemPlayed,
      total: this.total,
      queued: this.queued,
      underruns: this.underruns,
      dropped,
    });
  }

  #startPlaying(frames) {
    if (this.playing || this.queued === 0) return;
    this.waited += frames * this.step;
    const last = this.queue[this.queue.length - 1];
    if (this.queued >= this.prebuffer || this.waited >= this.prebuffer || this.complete.has(last.itemId)) {
      this.playing = true;
      this.waited = 0;
    }
  }

  process(_inputs, outputs) {
    const output = outputs[0];
    const out = output[0];
    if (!out) return true;
    out.fill(0);
    this.#startPlaying(out.length);
    if (!this.playing) return true;

    let i = 0;
    while (i < out.length && this.queue.length > 0) {
      const chunk = this.queue[0];
      if (chunk.itemId !== this.itemId) {
        if (this.itemId !== null) this.#report("progress"); // the previous item's final count
        this.itemId = chunk.itemId;
        this.itemPlayed = 0;
      }
      out[i++] = chunk.samples[chunk.offset];
      this.phase += this.step;
      while (this.phase >= 1 && this.queue.length > 0) {
        this.phase -= 1;
        const current = this.queue[0];
        current.offset++;
        this.queued--;
        this.total++;
        this.itemPlayed++;
        if (current.offset >= current.samples.length) this.queue.shift();
      }
    }
    for (let c = 1; c < output.length; c++) output[c].set(out);

    if (this.queue.length === 0) {
      // Ran dry: a gap if the item is still arriving, else simply the end of the reply.
      if (!this.complete.has(this.itemId)) this.underruns++;
      this.playing = false;
      this.phase = 0;
      this.#report("progress");
    } else if (++this.quanta % REPORT_EVERY === 0) {
      this.#report("progress");
    }
    return true;
  }
}

registerProcessor("playback-processor", PlaybackProcessor);
