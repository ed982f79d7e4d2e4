// AudioWorklet: microphone samples -> 24 kHz PCM16 frames of a fixed length, plus their level.
// Runs on the audio thread. Posts {pcm: Int16Array (transferred), rms, peak} per frame.
// When muted the frame is silence (the model keeps hearing time pass, so a turn cut off by the
// mute button still ends), while rms/peak still describe the microphone for the meter.

const TARGET_RATE = 24000;

class CaptureProcessor extends AudioWorkletProcessor {
  constructor(options) {
    super();
    const frameMs = options.processorOptions?.frameMs ?? 20;
    this.frameLength = Math.round((TARGET_RATE * frameMs) / 1000);
    this.step = sampleRate / TARGET_RATE; // input samples per output sample
    this.position = 1; // next output sample, in [previous sample, ...block] coordinates
    this.previous = 0;
    this.muted = Boolean(options.processorOptions?.muted);
    this.running = true;
    this.#newFrame();
    this.port.onmessage = ({ data }) => {
      if (data.type === "mute") this.muted = Boolean(data.muted);
      else if (data.type === "stop") this.running = false;
    };
  }

  #newFrame() {
    this.frame = new Int16Array(this.frameLength);
    this.filled = 0;
    this.sumSquares = 0;
    this.peak = 0;
  }

  #push(value) {
    const clamped = value > 1 ? 1 : value < -1 ? -1 : value;
    this.sumSquares += clamped * clamped;
    const magnitude = clamped < 0 ? -clamped : clamped;
    if (magnitude > this.peak) this.peak = magnitude;
    if (!this.muted) this.frame[this.filled] = clamped < 0 ? clamped * 0x8000 : clamped * 0x7fff;
    if (++this.filled === this.frameLength) {
      const rms = Math.sqrt(this.sumSquares / this.frameLength);
      this.port.postMessage({ pcm: this.frame, rms, peak: this.peak }, [this.frame.buffer]);
      this.#newFrame();
    }
  }

  process(inputs) {
    if (!this.running) return false;
    const channels = inputs[0];
    if (!channels || channels.length === 0) return true; // not connected yet
    const block = channels[0];
    const count = channels.length;
    // Mix down to mono when the source has several channels.
    let mono = block;
    if (count > 1) {
      mono = new Float32Array(block.length);
      for (const channel of channels) {
        for (let i = 0; i < block.length; i++) mono[i] += channel[i] / count;
      }
    }
    if (this.step === 1) {
      for (let i = 0; i < mono.length; i++) this.#push(mono[i]);
      return true;
    }
    // Linear interpolation over [previous, ...mono] (only when the context is not at 24 kHz).
    const n = mono.length;
    let t = this.position;
    while (t <= n) {
      const i = Math.floor(t);
      const fraction = t - i;
      const a = i === 0 ? this.previous : mono[i - 1];
      const b = i < n ? mono[i] : a;
      this.#push(a + (b - a) * fraction);
      t += this.step;
    }
    this.position = t - n;
    this.previous = mono[n - 1];
    return true;
  }
}

registerProcessor("capture-processor", CaptureProcessor);
