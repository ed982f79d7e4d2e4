// Counters the browser tests read as `window.voiceTest`. Plain numbers and small records,
// updated by the call as it goes; nothing here changes how the page behaves.

const MAX_EVENTS = 2000;

export const voiceTest = {
  state: "idle", // idle | connecting | connected | ended | dropped
  muted: false,
  micLevel: 0, // RMS of the last microphone frame, 0..1 (measured even while muted)
  framesSent: 0, // input_audio_buffer.append events sent
  bytesSent: 0, // PCM bytes in them
  framesDropped: 0, // frames not sent because the socket was backed up
  audioDeltasReceived: 0,
  audioDeltasDropped: 0, // deltas of an interrupted response, arriving after the barge-in
  samplesReceived: 0, // 24 kHz samples of assistant audio queued for playback
  samplesPlayed: 0, // ... and handed to the speakers
  playing: false, // assistant audio queued or playing right now
  playbackFlushes: 0,
  playbackUnderruns: 0, // times playback ran dry before an item's audio was complete
  truncatesSent: 0,
  lastTruncate: null, // the conversation.item.truncate event as sent
  lastInterruption: null, // {itemId, receivedMs, playedMs, heardMs, reason}
  responses: 0, // response.done events
  events: [], // types of every server event received, in order (last MAX_EVENTS)
  sent: [], // types of every event sent except audio appends
  last: {}, // the last event of each type, except audio deltas
  errors: [], // error codes received
  close: null, // {code, reason, explanation}
};

export function recordReceived(event) {
  voiceTest.events.push(event.type);
  if (voiceTest.events.length > MAX_EVENTS) voiceTest.events.splice(0, MAX_EVENTS / 10);
  if (event.type !== "response.output_audio.delta") voiceTest.last[event.type] = event;
  if (event.type === "error") voiceTest.errors.push(event.error?.code ?? "unknown");
}

export function recordSent(type, fields) {
  voiceTest.sent.push(type);
  if (type === "conversation.item.truncate") {
    voiceTest.truncatesSent++;
    voiceTest.lastTruncate = { type, ...fields };
  }
}

window.voiceTest = voiceTest;
