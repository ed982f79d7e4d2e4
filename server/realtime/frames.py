"""WebSocket text frames on the audio path, split and built without websockets' generators.

`websockets` reads every frame through a chain of generator coroutines; under audio load that
parser was a third of the relay's CPU (py-spy, 10 calls). Nearly every frame of a call is one
unfragmented text frame, so this module handles exactly that case and stops at anything else --
control frames, fragments, RSV bits, a mask bit the role forbids, an oversized or invalid-UTF-8
payload -- which the caller feeds to `websockets` unchanged. The library keeps the protocol
(pings, closing, errors and their close codes); we only skip its slow path for plain text.

Sans-I/O: bytes in, messages out; bytes out for the socket. No state but the mask-key pool.
"""

from __future__ import annotations

import os
import struct

try:
    from websockets.speedups import apply_mask  # C; the pure-Python fallback is ~50x slower
except ImportError:  # pragma: no cover - websockets without its compiled extension
    from websockets.utils import apply_mask

TEXT_FIN = 0x81  # FIN set, no RSV bits, opcode 1 (text)
MASKED = 0x80
_LEN16 = struct.Struct("!H")
_LEN64 = struct.Struct("!Q")


def split_texts(
    data: bytes | bytearray, *, masked: bool, max_size: int | None
) -> tuple[list[str], int, bool]:
    """Complete unfragmented text frames at the start of `data`, unmasked and decoded.

    Returns `(texts, end, other)`: parsing stopped at offset `end`, either because the frame
    there is incomplete (`other` False: wait for more bytes) or because it is not a frame this
    module handles (`other` True: hand `data[end:]` to the full protocol implementation).
    `masked` is what the peer must do: clients mask, servers do not (RFC 6455 §5.1).
    """
    texts: list[str] = []
    want_mask = MASKED if masked else 0
    size = len(data)
    pos = 0
    while size - pos >= 2:
        first, second = data[pos], data[pos + 1]
        if first != TEXT_FIN or second & MASKED != want_mask:
            return texts, pos, True
        length = second & 0x7F
        start = pos + 2
        if length == 126:
            if size - start < 2:
                break
            (length,) = _LEN16.unpack_from(data, start)
            start += 2
        elif length == 127:
            if size - start < 8:
                break
            (length,) = _LEN64.unpack_from(data, start)
            start += 8
        if max_size is not None and length > max_size:
            return texts, pos, True
        key_at = start
        if masked:
            start += 4
        end = start + length
        if end > size:
            break
        payload = data[start:end]
        if masked:
            payload = apply_mask(payload, data[key_at:start])
        try:
            texts.append(payload.decode())
        except UnicodeDecodeError:
            return texts, pos, True
        pos = end
    return texts, pos, False


class TextStream:
    """`split_texts` over a byte stream: keeps an incomplete frame's start for the next read."""

    __slots__ = ("masked", "max_size", "partial")

    def __init__(self, *, masked: bool, max_size: int | None):
        self.masked, self.max_size = masked, max_size
        self.partial = b""

    def feed(self, data: bytes) -> tuple[list[str], bytes | None]:
        """The plain text frames' messages, and the bytes from the first other frame on."""
        if self.partial:
            data = self.partial + data
        texts, end, other = split_texts(data, masked=self.masked, max_size=self.max_size)
        if other:
            self.partial = b""
            return texts, data[end:]
        self.partial = data[end:]
        return texts, None


def text_frame(payload: bytes, mask_key: bytes | None = None) -> bytes:
    """One unfragmented text frame; masked (as a client must) when `mask_key` is given."""
    length = len(payload)
    mask_bit = MASKED if mask_key is not None else 0
    if length < 126:
        head = bytes((TEXT_FIN, mask_bit | length))
    elif length < 65536:
        head = bytes((TEXT_FIN, mask_bit | 126)) + _LEN16.pack(length)
    else:
        head = bytes((TEXT_FIN, mask_bit | 127)) + _LEN64.pack(length)
    if mask_key is None:
        return head + payload
    return head + mask_key + apply_mask(payload, mask_key)


class MaskKeys:
    """Unpredictable 4-byte masking keys, drawn from `os.urandom` a kilobyte at a time.

    RFC 6455 §5.3 wants each key unpredictable; one `getrandom` call per 256 frames instead of
    one per frame keeps that while taking a syscall off the audio path.
    """

    __slots__ = ("_pool", "_pos", "_size")

    def __init__(self, pool_bytes: int = 1024):
        self._size = pool_bytes
        self._pool = b""
        self._pos = 0

    def take(self) -> bytes:
        pos = self._pos
        if pos + 4 > len(self._pool):
            self._pool, pos = os.urandom(self._size), 0
        self._pos = pos + 4
        return self._pool[pos : pos + 4]
