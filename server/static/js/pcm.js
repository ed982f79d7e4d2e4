// PCM16 <-> base64, the wire format of the Realtime API: 24 kHz mono, little-endian.
// (Typed arrays use the platform's byte order, which is little-endian on every browser platform.)

export const SAMPLE_RATE = 24000;
export const BYTES_PER_MS = 48; // 24 000 samples/s x 2 bytes / 1000

const CHUNK = 0x8000; // String.fromCharCode's argument list must stay small

/** Bytes (a Uint8Array, or an Int16Array's bytes) -> base64. */
export function toBase64(view) {
  const bytes = view instanceof Uint8Array
    ? view
    : new Uint8Array(view.buffer, view.byteOffset, view.byteLength);
  let binary = "";
  for (let i = 0; i < bytes.length; i += CHUNK) {
    binary += String.fromCharCode.apply(null, bytes.subarray(i, i + CHUNK));
  }
  return btoa(binary);
}

/** base64 -> Int16Array of samples (an odd trailing byte is dropped). */
export function fromBase64(text) {
  const binary = atob(text);
  const samples = new Int16Array(binary.length >> 1);
  const bytes = new Uint8Array(samples.buffer);
  for (let i = 0; i < bytes.length; i++) bytes[i] = binary.charCodeAt(i);
  return samples;
}

/** Samples at 24 kHz -> whole milliseconds, rounded down (never more than was heard). */
export function samplesToMs(samples) {
  return Math.floor((samples * 1000) / SAMPLE_RATE);
}
