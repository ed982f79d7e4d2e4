"""G.711 μ-law (``audio/pcmu``): 8-bit companded samples at 8 kHz, the phone network's audio.

``audioop`` did this until Python 3.13 removed it, and numpy is not a dependency, so the codec is
two lookup tables built once from the ITU-T G.711 formulas (Sun's reference code): decoding
is one table read per byte, encoding one read per sample. ``encode(decode(x)) == x`` for every
byte except 0x7F, the "negative zero", which decodes to 0 like 0xFF does.
"""

from __future__ import annotations

import sys
from array import array
from functools import cache

__all__ = ["decode", "encode"]

_BIAS = 0x84
_BIAS_14 = 0x21  # the same bias on the 14-bit scale the encoder works on
_CLIP_14 = 8_159


def _decode_byte(byte: int) -> int:
    byte = ~byte & 0xFF
    magnitude = (((byte & 0x0F) << 3) + _BIAS) << ((byte & 0x70) >> 4)
    return _BIAS - magnitude if byte & 0x80 else magnitude - _BIAS


def _encode_sample(sample: int) -> int:
    """Sun's reference ``linear2ulaw``: 14-bit magnitude, bias 33, segment from the top bit."""
    value = sample >> 2
    mask = 0x7F if value < 0 else 0xFF
    magnitude = min(-value if value < 0 else value, _CLIP_14) + _BIAS_14
    segment = max(0, magnitude.bit_length() - 6)
    if segment > 7:
        return 0x7F ^ mask
    return ((segment << 4) | ((magnitude >> (segment + 1)) & 0x0F)) ^ mask


_DECODE = array("h", (_decode_byte(b) for b in range(256)))


@cache
def _encode_table() -> bytes:
    """Indexed by the sample as an unsigned 16-bit number (what an array("H") view of PCM16
    holds); built on first use (60 ms), since only μ-law sessions need it."""
    return bytes(_encode_sample(s - 65536 if s >= 32768 else s) for s in range(65536))


def decode(ulaw: bytes) -> bytes:
    """μ-law bytes → PCM16 little-endian, one sample per byte (same rate, 8 kHz)."""
    samples = array("h", map(_DECODE.__getitem__, ulaw))
    if sys.byteorder == "big":
        samples.byteswap()
    return samples.tobytes()


def encode(pcm: bytes) -> bytes:
    """PCM16 little-endian → μ-law bytes (an odd trailing byte is dropped)."""
    samples = array("H")
    samples.frombytes(pcm[: len(pcm) & ~1])
    if sys.byteorder == "big":
        samples.byteswap()
    return bytes(map(_encode_table().__getitem__, samples))
