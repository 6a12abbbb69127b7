"""A TCP proxy that can cut the connection, to take a dependency away from a server under test.

    async with TcpProxy("127.0.0.1", 5432) as proxy:     # listens on 127.0.0.1:<free port>
        ...  # point the client at proxy.port
        proxy.cut()       # every open connection is reset; new ones are accepted and reset at once
        proxy.restore()   # new connections are forwarded again

While cut, the proxy keeps its listening socket (so the port cannot be taken by anything
else) and resets whatever connects: clients see their connections fail at once, as when
the network or the server goes away, instead of waiting on a black hole. `cut(reset=False)`
closes them cleanly (FIN) instead. Bytes are forwarded unchanged both ways.
"""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass, field
from types import TracebackType
from typing import Self

BUFFER_BYTES = 64 * 1024


@dataclass(eq=False)
class _Link:
    """One client connection and its upstream connection, with the two pumps between them."""

    client: asyncio.StreamWriter
    upstream: asyncio.StreamWriter | None = None
    pumps: list[asyncio.Task[None]] = field(default_factory=list)

    def drop(self, reset: bool) -> None:
        for writer in (self.client, self.upstream):
            if writer is None:
                continue
            if reset:
                writer.transport.abort()  # RST: the peer's next read or write fails at once
            else:
                writer.close()
        for pump in self.pumps:
            pump.cancel()


class TcpProxy:
    def __init__(self, target_host: str, target_port: int, host: str = "127.0.0.1") -> None:
        self.target_host = target_host
        self.target_port = target_port
        self.host = host
        self.port = 0
        self.accepted = 0
        """Connections accepted so far (refused ones included)."""
        self.refused = 0
        """Connections accepted while cut, and reset at once."""
        self._cut = False
        self._reset = True
        self._links: set[_Link] = set()
        self._handlers: set[asyncio.Task[None]] = set()
        self._server: asyncio.Server | None = None

    @property
    def is_cut(self) -> bool:
        return self._cut

    @property
    def open_connections(self) -> int:
        """Client connections being forwarded right now."""
        return len(self._links)

    async def start(self) -> Self:
        self._server = await asyncio.start_server(self._handle, self.host, 0)
        self.port = int(self._server.sockets[0].getsockname()[1])
        return self

    async def close(self) -> None:
        """Stop listening and drop every connection."""
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None
        self._drop_all(reset=True)
        handlers = list(self._handlers)
        for task in handlers:
            task.cancel()
        await asyncio.gather(*handlers, return_exceptions=True)

    async def __aenter__(self) -> Self:
        return await self.start()

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.close()

    def cut(self, reset: bool = True) -> None:
        """Drop every open connection and refuse new ones (accepted, then dropped) until restore()."""
        self._cut = True
        self._reset = reset
        self._drop_all(reset)

    def restore(self) -> None:
        """Forward new connections again (connections dropped by cut() stay dropped)."""
        self._cut = False

    def _drop_all(self, reset: bool) -> None:
        for link in list(self._links):
            link.drop(reset)
        self._links.clear()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._handlers.add(task)
        self.accepted += 1
        link = _Link(writer)
        try:
            if self._cut:
                self.refused += 1
                link.drop(self._reset)
                return
            self._links.add(link)
            try:
                up_reader, up_writer = await asyncio.open_connection(self.target_host, self.target_port)
            except OSError:
                link.drop(reset=True)  # the target is down: the client sees its connection fail
                return
            link.upstream = up_writer
            if link not in self._links:  # cut while connecting upstream
                link.drop(self._reset)
                return
            link.pumps = [
                asyncio.create_task(_pump(reader, up_writer)),
                asyncio.create_task(_pump(up_reader, writer)),
            ]
            # Either direction ending (EOF or error) ends the connection both ways.
            await asyncio.wait(link.pumps, return_when=asyncio.FIRST_COMPLETED)
            link.drop(reset=False)
            await asyncio.gather(*link.pumps, return_exceptions=True)
        finally:
            self._links.discard(link)
            self._handlers.discard(task)


async def _pump(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    with contextlib.suppress(OSError):
        while data := await reader.read(BUFFER_BYTES):
            writer.write(data)
            await writer.drain()
