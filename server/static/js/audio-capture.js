// The microphone: getUserMedia -> capture worklet -> 24 kHz PCM16 frames, with a level for the
// meter and a mute switch (muted frames are silence, so the model still hears time pass).

const CONSTRAINTS = {
  audio: {
    channelCount: 1,
    echoCancellation: true, // the assistant's voice from the speakers must not barge in on itself
    noiseSuppression: true,
    autoGainControl: true,
  },
};

/** Why the microphone could not start, in words a caller can act on. */
export function explainMicError(error) {
  switch (error?.name) {
    case "NotAllowedError":
    case "SecurityError":
      return "Microphone access is blocked. Allow it in your browser's site settings and call again, or type your messages.";
    case "NotFoundError":
    case "OverconstrainedError":
      return "No microphone was found. Connect one and call again, or type your messages.";
    case "NotReadableError":
    case "AbortError":
      return "The microphone is in use by another app or could not be opened. You can type your messages.";
    case "InsecureContext":
      return "The microphone needs a secure (https) page. You can type your messages.";
    default:
      return `The microphone could not start (${error?.message || error}). You can type your messages.`;
  }
}

export class Microphone extends EventTarget {
  /**
   * `onFrame({pcm, rms, peak})` is called for every frame (pcm: Int16Array, 24 kHz mono).
   * Events: "ended" when the device goes away during the call.
   */
  constructor(context, { frameMs = 20, muted = false, onFrame = () => {} } = {}) {
    super();
    this.context = context;
    this.frameMs = frameMs;
    this.muted = muted;
    this.onFrame = onFrame;
    this.stream = null;
    this.node = null;
    this.ownContext = null;
  }

  async start() {
    if (!navigator.mediaDevices?.getUserMedia) {
      const error = new Error("getUserMedia is unavailable");
      error.name = window.isSecureContext ? "NotFoundError" : "InsecureContext";
      throw error;
    }
    this.stream = await navigator.mediaDevices.getUserMedia(CONSTRAINTS);
    const [track] = this.stream.getAudioTracks();
    track.addEventListener("ended", () => this.dispatchEvent(new CustomEvent("ended")));

    let context = this.context;
    let source;
    try {
      source = context.createMediaStreamSource(this.stream);
    } catch {
      // Some browsers cannot connect a microphone to a context at another rate (the shared one
      // runs at 24 kHz): give the microphone its own context; the worklet resamples.
      this.ownContext = context = new AudioContext();
      source = context.createMediaStreamSource(this.stream);
    }
    await context.audioWorklet.addModule(new URL("./capture-worklet.js", import.meta.url));
    this.node = new AudioWorkletNode(context, "capture-processor", {
      numberOfInputs: 1,
      numberOfOutputs: 1, // connected to the destination (silent) so the graph pulls it
      outputChannelCount: [1],
      processorOptions: { frameMs: this.frameMs, muted: this.muted },
    });
    this.node.port.onmessage = ({ data }) => this.onFrame(data);
    source.connect(this.node);
    this.node.connect(context.destination);
    if (context.state !== "running") await context.resume();
    this.source = source;
  }

  setMuted(muted) {
    this.muted = muted;
    this.node?.port.postMessage({ type: "mute", muted });
  }

  get label() {
    return this.stream?.getAudioTracks()[0]?.label || "";
  }

  stop() {
    if (this.node) {
      this.node.port.postMessage({ type: "stop" });
      this.node.port.onmessage = null;
      this.node.disconnect();
      this.node = null;
    }
    this.source?.disconnect();
    this.stream?.getTracks().forEach((track) => track.stop());
    this.stream = null;
    if (this.ownContext) this.ownContext.close().catch(() => {});
    this.ownContext = null;
  }
}
