"""A provider that takes requests and never answers, and records when a client hangs up.

A real TCP server on 127.0.0.1 (a free port) speaking just enough HTTP/1.1: it reads each
request (headers, and a body by Content-Length), records it, then sends nothing and waits for
the client to close the connection, which it counts in `disconnects` and signals through
`disconnected`. Configure it as any OpenAI-compatible provider's base_url: a job sent to it
stays in flight until something aborts the call.
"""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass
from types import TracebackType
from typing import Self


@dataclass(frozen=True)
class HeldRequest:
    method: str
    path: str
    body: bytes


class HangingProvider:
    def __init__(self) -> None:
        self.requests: list[HeldRequest] = []
        self.disconnects = 0
        self.received = asyncio.Event()
        """Set at each request received (clear it to wait for the next)."""
        self.disconnected = asyncio.Event()
        """Set when a client closes a connection whose request was never answered."""
        self._server: asyncio.Server | None = None
        self._handlers: set[asyncio.Task[None]] = set()

    @property
    def base_url(self) -> str:
        assert self._server is not None, "not started"
        port = self._server.sockets[0].getsockname()[1]
        return f"http://127.0.0.1:{port}/v1"

    async def __aenter__(self) -> Self:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        assert self._server is not None
        self._server.close()
        for task in list(self._handlers):
            task.cancel()
        await asyncio.gather(*self._handlers, return_exceptions=True)
        await self._server.wait_closed()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._handlers.add(task)
        try:
            head = await reader.readuntil(b"\r\n\r\n")
            lines = head.decode("latin-1").split("\r\n")
            method, path, _ = lines[0].split(" ", 2)
            length = 0
            for line in lines[1:]:
                name, _, value = line.partition(":")
                if name.strip().lower() == "content-length":
                    length = int(value.strip())
            body = await reader.readexactly(length) if length else b""
            self.requests.append(HeldRequest(method, path, body))
            self.received.set()
            while await reader.read(65536):  # no answer: read until the client hangs up
                pass
            self.disconnects += 1
            self.disconnected.set()
        except (asyncio.IncompleteReadError, ConnectionError):
            self.disconnects += 1
            self.disconnected.set()
        finally:
            self._handlers.discard(task)
            with contextlib.suppress(ConnectionError):
                writer.close()
