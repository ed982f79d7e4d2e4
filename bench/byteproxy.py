"""The floor for any Python relay: a uvloop TCP proxy that forwards bytes without looking at them.

`python -m bench.byteproxy --upstream PORT` listens on a free loopback port, prints
"byte proxy listening on http://127.0.0.1:PORT/" and, for each connection, opens one to the
upstream port and copies bytes both ways inside the transports' callbacks (no tasks, no
parsing, no framing). The WebSocket handshake and frames pass through untouched, so the load
generator talks to the echo model through it exactly as through the relay.

Its CPU per message is what the machine charges for one wake-up, one read and one write on
loopback TCP from Python: the relay can approach it but not beat it. The relay bench runs it
beside the relay in the same run, so the relay's CPU can be quoted as a ratio to this floor,
which holds across machines better than microseconds do.
"""

from __future__ import annotations

import argparse
import asyncio
import socket

import uvloop


class _Side(asyncio.Protocol):
    """One socket of a proxied pair; holds bytes until the other side is connected."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.peer: _Side | None = None
        self.held: list[bytes] = []

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        sock = transport.get_extra_info("socket")
        if sock is not None:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def data_received(self, data: bytes) -> None:
        peer = self.peer
        if peer is None or peer.transport is None:
            self.held.append(data)
        else:
            peer.transport.write(data)

    def connection_lost(self, exc: Exception | None) -> None:
        if self.peer is not None and self.peer.transport is not None:
            self.peer.transport.close()

    def join(self, peer: _Side) -> None:
        self.peer = peer
        assert peer.transport is not None
        for data in self.held:
            peer.transport.write(data)
        self.held.clear()


class _Front(_Side):
    def __init__(self, upstream: int):
        super().__init__()
        self.upstream = upstream

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(transport)
        self.opening = asyncio.get_running_loop().create_task(self._open_back())

    async def _open_back(self) -> None:
        loop = asyncio.get_running_loop()
        try:
            async with asyncio.timeout(10):
                _, back = await loop.create_connection(_Side, "127.0.0.1", self.upstream)
        except (OSError, TimeoutError):
            if self.transport is not None:
                self.transport.close()
            return
        back.join(self)
        self.join(back)


async def serve(upstream: int) -> None:
    loop = asyncio.get_running_loop()
    server = await loop.create_server(lambda: _Front(upstream), "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    print(f"byte proxy listening on http://127.0.0.1:{port}/", flush=True)
    async with server:
        await server.serve_forever()


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.byteproxy", description=__doc__)
    parser.add_argument("--upstream", type=int, required=True, help="port on 127.0.0.1")
    uvloop.run(serve(parser.parse_args().upstream))


if __name__ == "__main__":
    main()
