"""A loopback TCP proxy whose link can be cut and restored: a database outage on demand.

The pool connects through it to the real PostgreSQL; `cut()` drops every open connection and
refuses new ones, `stall()` holds every byte (a hung server), `restore()` undoes both. Nothing
is mocked: asyncpg sees exactly what it would see if the server went away.
"""

from __future__ import annotations

import asyncio
import contextlib
from urllib.parse import parse_qs, urlsplit


async def _pump(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, proxy: CuttableProxy
) -> None:
    try:
        while data := await reader.read(65536):
            await proxy._flowing.wait()
            writer.write(data)
            await writer.drain()
    except (ConnectionError, OSError):
        pass
    finally:
        writer.close()


class CuttableProxy:
    def __init__(self, host: str, port: int, unix_path: str | None = None):
        self._tcp = (host, port)
        self._unix = unix_path
        self._target_path = ""
        self._user = "postgres"
        self._server: asyncio.Server | None = None
        self._links: set[asyncio.StreamWriter] = set()
        self._tasks: set[asyncio.Task[None]] = set()
        self.port = 0
        self.up = True
        self._flowing = asyncio.Event()
        self._flowing.set()
        self.refused = 0  # connections turned away while cut
        self._refusal = asyncio.Event()

    async def wait_refused(self, count: int) -> None:
        """Until `count` connections have been turned away (bound it with a timeout)."""
        while self.refused < count:
            self._refusal.clear()
            await self._refusal.wait()

    @classmethod
    def for_dsn(cls, target_dsn: str) -> CuttableProxy:
        """A proxy in front of the PostgreSQL server of `target_dsn` (TCP or Unix socket)."""
        parts = urlsplit(target_dsn)
        query = parse_qs(parts.query)
        unix = None
        if "host" in query and query["host"][0].startswith("/"):
            unix = f"{query['host'][0]}/.s.PGSQL.{parts.port or 5432}"
        proxy = cls(parts.hostname or "127.0.0.1", parts.port or 5432, unix)
        proxy._target_path = parts.path
        proxy._user = parts.username or "postgres"
        return proxy

    def dsn(self) -> str:
        """The target DSN, rerouted through this proxy."""
        return f"postgresql://{self._user}@127.0.0.1:{self.port}{self._target_path}"

    async def start(self) -> CuttableProxy:
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if not self.up:
            writer.close()
            self.refused += 1
            self._refusal.set()
            return
        try:
            if self._unix:
                up_reader, up_writer = await asyncio.open_unix_connection(self._unix)
            else:
                up_reader, up_writer = await asyncio.open_connection(*self._tcp)
        except OSError:
            writer.close()
            return
        self._links.update((writer, up_writer))
        for task in (
            asyncio.create_task(_pump(reader, up_writer, self)),
            asyncio.create_task(_pump(up_reader, writer, self)),
        ):
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    def cut(self) -> None:
        self.up = False
        for writer in self._links:
            writer.transport.abort()
        self._links.clear()

    def stall(self) -> None:
        """Keep connections open but hold every byte: a database that hangs."""
        self._flowing.clear()

    def restore(self) -> None:
        self.up = True
        self._flowing.set()

    async def close(self) -> None:
        self.cut()
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
        for task in list(self._tasks):
            task.cancel()
        with contextlib.suppress(BaseException):
            await asyncio.gather(*self._tasks, return_exceptions=True)
