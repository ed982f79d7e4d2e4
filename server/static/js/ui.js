// The call's controls and status: connection pill, call/mute/reconnect buttons, microphone
// meter, the alert line and the compact session figures. DOM only; no protocol here.

const $ = (id) => document.getElementById(id);

const STATE_TEXT = {
  idle: "Not connected",
  connecting: "Connecting…",
  connected: "Connected",
  ended: "Call ended",
  dropped: "Disconnected",
};

export class CallControls {
  constructor() {
    this.pill = $("connection");
    this.pillText = $("connection-text");
    this.callButton = $("call");
    this.callLabel = $("call-label");
    this.muteButton = $("mute");
    this.muteLabel = $("mute-label");
    this.reconnect = $("reconnect");
    this.meter = $("mic-meter");
    this.meterFill = this.meter.querySelector(".meter-fill");
    this.micState = $("mic-state");
    this.input = $("message");
    this.send = $("send");
    this.alert = $("alert");
    this.alertText = $("alert-text");
    $("alert-close").addEventListener("click", () => this.clearAlert());
    this.level = 0;
    this.shownLevel = -1;
    this.micOn = false;
  }

  setState(state, detail = "") {
    this.pill.dataset.state = state;
    this.pillText.textContent = detail ? `${STATE_TEXT[state]} — ${detail}` : STATE_TEXT[state];
    const inCall = state === "connecting" || state === "connected";
    this.callButton.dataset.action = inCall ? "end" : "start";
    this.callLabel.textContent = inCall ? "End call" : "Start call";
    this.callButton.classList.toggle("btn-danger", inCall);
    this.callButton.classList.toggle("btn-primary", !inCall);
    this.callButton.disabled = false;
    this.reconnect.hidden = state !== "dropped";
    this.callButton.hidden = state === "dropped";
    const canType = state === "connected";
    this.input.disabled = !canType;
    this.send.disabled = !canType;
    if (!inCall) this.setMic("off");
  }

  setMuted(muted) {
    this.muteButton.setAttribute("aria-pressed", String(muted));
    this.muteLabel.textContent = muted ? "Unmute microphone" : "Mute microphone";
    this.meter.classList.toggle("is-muted", muted);
    if (this.micOn) this.setMic(muted ? "muted" : "live");
  }

  /** "off" (no call or no microphone), "live", "muted", "blocked" */
  setMic(state) {
    this.micOn = state === "live" || state === "muted";
    this.micState.textContent = { off: "off", live: "live", muted: "muted", blocked: "unavailable" }[state];
    this.micState.dataset.state = state;
    if (!this.micOn) this.setLevel(0);
  }

  /** RMS 0..1 -> a -60..0 dBFS bar; drawn on the next animation frame. */
  setLevel(rms) {
    const db = 20 * Math.log10(Math.max(rms, 1e-6));
    this.level = Math.round(Math.min(100, Math.max(0, ((db + 60) / 60) * 100)));
    if (!this.frame) this.frame = requestAnimationFrame(() => this.#drawLevel());
  }

  #drawLevel() {
    this.frame = 0;
    if (this.level === this.shownLevel) return;
    this.shownLevel = this.level;
    this.meterFill.style.transform = `scaleX(${this.level / 100})`;
    this.meter.setAttribute("aria-valuenow", String(this.level));
    this.meter.setAttribute("aria-valuetext", this.level < 5 ? "silent" : `${this.level} percent`);
  }

  showAlert(message, kind = "error") {
    this.alert.dataset.kind = kind;
    this.alertText.textContent = message;
    this.alert.hidden = false;
  }

  clearAlert() {
    this.alert.hidden = true;
    this.alertText.textContent = "";
  }
}

const number = new Intl.NumberFormat();

/** session.stats -> "reply time", "replies", "tokens". */
export function showStats(event) {
  const latency = event.reply_latency_ms ?? {};
  $("stat-latency").textContent = latency.count
    ? `${number.format(Math.round(latency.last))} ms (median ${number.format(Math.round(latency.p50))})`
    : "—";
  $("stat-replies").textContent = number.format(event.responses ?? 0);
  const usage = event.usage ?? {};
  $("stat-tokens").textContent = usage.total_tokens
    ? `${number.format(usage.total_tokens)} (${number.format(usage.input_tokens ?? 0)} in, ${number.format(usage.output_tokens ?? 0)} out)`
    : "—";
}

export function resetStats() {
  for (const id of ["stat-latency", "stat-replies", "stat-tokens"]) $(id).textContent = "—";
}
