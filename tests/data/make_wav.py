"""Write the fake microphone's WAV: speech-like syllables with no pause long enough to end a turn.

Chromium plays it (looped) as the microphone when started with
``--use-fake-device-for-media-stream --use-file-for-fake-audio-capture=<this WAV>``. Each 200 ms
"syllable" is a voiced tone (varying pitch, three harmonics, rise-and-fall envelope) followed by
a 40 ms gap, so every 20 ms window but the gaps is far above the offline model's energy VAD
threshold (2 % of full scale) and no gap comes near its 500 ms silence hangover: once the page
unmutes, the model hears the caller start talking within a few windows and keep talking until
the page mutes again. Varying pitch also keeps noise suppression from treating it as a steady hum.

    python tests/data/make_wav.py [OUT.wav]    # default: tests/data/fake-mic.wav
"""

from __future__ import annotations

import math
import sys
import wave
from array import array
from pathlib import Path

RATE = 24_000
SYLLABLE_MS = 200
GAP_MS = 40
SYLLABLES = 10  # 2.4 s, then Chromium loops the file
PITCHES = (118, 142, 131, 165, 124, 151, 137, 173, 128, 146)
DEFAULT_PATH = Path(__file__).with_name("fake-mic.wav")


def samples() -> array:
    out = array("h")
    voiced = RATE * SYLLABLE_MS // 1000
    gap = RATE * GAP_MS // 1000
    for index in range(SYLLABLES):
        pitch = PITCHES[index % len(PITCHES)]
        for n in range(voiced):
            t = n / RATE
            envelope = math.sin(math.pi * n / voiced) ** 0.5
            glide = pitch * (1 + 0.08 * math.sin(2 * math.pi * 3 * t))  # a little intonation
            phase = 2 * math.pi * glide * t
            value = math.sin(phase) + 0.6 * math.sin(2 * phase) + 0.35 * math.sin(3 * phase)
            out.append(int(9000 * envelope * value))
        out.extend([0] * gap)
    return out


def write(path: Path = DEFAULT_PATH) -> Path:
    data = samples()
    if sys.byteorder == "big":
        data.byteswap()
    path.parent.mkdir(parents=True, exist_ok=True)
    with wave.open(str(path), "wb") as wav:
        wav.setnchannels(1)
        wav.setsampwidth(2)
        wav.setframerate(RATE)
        wav.writeframes(data.tobytes())
    return path


if __name__ == "__main__":
    print(write(Path(sys.argv[1]) if len(sys.argv) > 1 else DEFAULT_PATH))
