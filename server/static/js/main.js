// Wires the page together: buttons and the message box drive the call; the call's events drive
// the transcript, the reservation panel and the status line.

import { Call } from "./call.js";
import { ReservationPanel } from "./reservation-card.js";
import { Transcript } from "./transcript.js";
import { CallControls, resetStats, showStats } from "./ui.js";

const controls = new CallControls();
const transcript = new Transcript(document.getElementById("transcript"));
const reservation = new ReservationPanel(document.getElementById("reservation"));
const form = document.getElementById("composer");
const input = document.getElementById("message");

let call = null;
let muted = false;

function startCall() {
  controls.clearAlert();
  resetStats();
  call = new Call({ muted });
  call.addEventListener("state", ({ detail }) => onState(detail));
  call.addEventListener("server-event", ({ detail }) => onServerEvent(detail));
  call.addEventListener("problem", ({ detail }) => controls.showAlert(detail.message, detail.kind));
  call.addEventListener("level", ({ detail }) => controls.setLevel(detail.rms));
  call.addEventListener("interrupted", ({ detail }) => transcript.assistantInterrupted(detail.itemId));
  call.addEventListener("mic", ({ detail }) => {
    controls.setMic(detail.state);
    if (detail.message) controls.showAlert(detail.message, "warning");
  });
  call.start().catch((error) => controls.showAlert(`The call could not start: ${error.message}`));
}

function onState({ state, detail }) {
  controls.setState(state, state === "dropped" ? "" : detail);
  if (state === "connected") {
    transcript.note("Call started. Speak, or type below.");
    input.focus();
  } else if (state === "ended") {
    transcript.note("Call ended.");
  } else if (state === "dropped") {
    transcript.note("The call was disconnected.");
    controls.showAlert(`${detail} Press “Call again” to start a new call (the host will not remember this one).`);
    document.getElementById("reconnect").focus();
  }
}

function onServerEvent(event) {
  switch (event.type) {
    case "response.output_audio_transcript.delta":
    case "response.output_text.delta":
      transcript.assistantDelta(event.item_id, event.delta ?? "");
      break;
    case "response.output_audio_transcript.done":
      transcript.assistantDone(event.item_id, event.transcript);
      break;
    case "response.output_text.done":
      transcript.assistantDone(event.item_id, event.text);
      break;
    case "input_audio_buffer.speech_started":
      transcript.userSpeaking(event.item_id);
      break;
    case "input_audio_buffer.speech_stopped":
    case "input_audio_buffer.committed":
      transcript.userSpoke(event.item_id);
      break;
    case "conversation.item.input_audio_transcription.completed":
      transcript.userTranscription(event.item_id, event.transcript);
      break;
    case "reservation.confirmed":
      reservation.show("confirmed", event);
      break;
    case "reservation.requested":
      reservation.show("requested", event);
      break;
    case "reservation.found":
      reservation.show("found", event);
      break;
    case "reservation.changed":
      reservation.show("changed", event);
      break;
    case "reservation.cancelled":
      reservation.show("cancelled", event);
      break;
    case "reservation.not_found":
      reservation.notFound(event);
      break;
    case "reservation.failed":
      reservation.failed(event);
      break;
    case "availability.checked":
      reservation.availability(event);
      break;
    case "response.done":
      if (event.response?.status === "cancelled") {
        for (const item of event.response.output ?? []) {
          if (item.type === "message") transcript.assistantInterrupted(item.id);
        }
      }
      break;
    case "session.stats":
      showStats(event);
      break;
    case "session.reconnected":
      // Planned renewals are invisible; a recovered drop is worth a line in the transcript.
      if (event.reason !== "model_session_limit") {
        transcript.note("The line to the host dropped for a moment and was restored.");
      }
      break;
    case "error":
      controls.showAlert(event.error?.message || "The server reported an error.");
      break;
    default:
      break;
  }
}

document.getElementById("call").addEventListener("click", (event) => {
  if (event.currentTarget.dataset.action === "end") call?.hangUp();
  else startCall();
});

document.getElementById("reconnect").addEventListener("click", startCall);

document.getElementById("mute").addEventListener("click", () => {
  muted = !muted;
  controls.setMuted(muted);
  call?.setMuted(muted);
});

form.addEventListener("submit", (event) => {
  event.preventDefault();
  const text = input.value.trim();
  if (!text || !call?.sendText(text)) return;
  transcript.userTyped(text);
  input.value = "";
});

window.addEventListener("pagehide", () => call?.hangUp());
