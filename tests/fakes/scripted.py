"""What the fake provider servers share: a real aiohttp server on 127.0.0.1 (a free
port) for the length of an `async with`, that records every request and answers from a
queue of scripted responses.

A fake subclasses ScriptedServer and its `_handle` records a request its own way,
refuses what its provider would refuse (`_after_latency`), then lets `_scripted_answer`
take the next scripted response: `raw` and `error` kinds are answered as they are,
`hang` never is (on close the handler is cancelled, so the connection drops unanswered
and nothing is left running), and any other kind (`success`, or a fake's own such as
`content_filtered`) goes to the fake's success handler. With nothing queued, the answer
is a success. `latency` delays every answer; `max_in_flight` counts concurrency.
"""

from __future__ import annotations

import asyncio
import json
from collections import deque
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any, Generic, Self, TypeVar

from aiohttp import BodyPartReader, hdrs, web

RecordedT = TypeVar("RecordedT")
CHUNK_BYTES = 64 * 1024


@dataclass(frozen=True)
class ScriptedResponse:
    """One scripted answer; build it with the class methods (each fake adds its own)."""

    kind: str
    """`success`, `raw`, `error`, `hang`, or a fake's own success kind."""
    status: int = 200
    body: bytes = b""
    content_type: str = "application/json"
    headers: Mapping[str, str] = field(default_factory=dict)
    delay: float = 0.0
    stream_bytes: int = 0
    """For `stream`: how many bytes to write."""

    @classmethod
    def success(cls, delay: float = 0.0) -> Self:
        """The default success, after `delay` seconds."""
        return cls("success", delay=delay)

    @classmethod
    def raw(
        cls,
        status: int,
        body: bytes,
        content_type: str = "application/json",
        headers: Mapping[str, str] | None = None,
        delay: float = 0.0,
    ) -> Self:
        """Exactly these bytes, e.g. a malformed body or an HTML error page."""
        return cls("raw", status, body, content_type, dict(headers or {}), delay)

    @classmethod
    def json_body(cls, doc: Any, status: int = 200, headers: Mapping[str, str] | None = None) -> Self:
        """Any JSON document."""
        return cls.raw(status, json.dumps(doc).encode(), headers=headers)

    @classmethod
    def stream(cls, total_bytes: int, *, declare_length: bool = False, status: int = 200) -> Self:
        """A body of `total_bytes` written in CHUNK_BYTES pieces, chunked (or with its
        Content-Length when declare_length); the bytes actually written are counted in
        the server's `streamed_bytes`, so a test sees whether the client read them all."""
        headers = {"Content-Length": str(total_bytes)} if declare_length else {}
        return cls("stream", status, b"", headers=headers, delay=0.0, stream_bytes=total_bytes)

    @classmethod
    def hang(cls) -> Self:
        """Never answer; the connection drops when the fake closes."""
        return cls("hang")

    def response(self) -> web.Response:
        """The answer of a `raw` or `error` kind: its status, body and headers."""
        return web.Response(
            status=self.status, body=self.body, content_type=self.content_type, headers=self.headers
        )


class ScriptedServer(Generic[RecordedT]):
    """The server, the request log, the queue and the waits; see the module docstring."""

    client_max_size = 1024**3
    """The largest body aiohttp reads whole (multipart parts are streamed regardless)."""

    def __init__(self) -> None:
        self.latency = 0.0
        """Seconds to wait before every answer."""
        self.requests: list[RecordedT] = []
        self.max_in_flight = 0
        """The most requests handled at once so far."""
        self._in_flight = 0
        self._queue: deque[ScriptedResponse] = deque()
        self._waiting: set[asyncio.Task[Any]] = set()
        self._runner: web.AppRunner | None = None
        self._port: int | None = None
        self.streamed_bytes = 0
        """Bytes written by `stream` answers so far."""
        self.gate: asyncio.Event | None = None
        """When set to an Event, scripted answers wait for it (after their latency): a test
        holds every answer back until it has done what must happen while calls are in flight."""

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.close()

    async def start(self) -> None:
        app = web.Application(client_max_size=self.client_max_size)
        app.router.add_route("*", "/{tail:.*}", self._serve)
        # A bound on the graceful wait; hanging handlers are cancelled before it applies.
        self._runner = web.AppRunner(app, shutdown_timeout=5.0)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self._port = int(self._runner.addresses[0][1])

    async def close(self) -> None:
        for task in list(self._waiting):
            task.cancel()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    def _url(self, path: str = "") -> str:
        """`http://127.0.0.1:PORT` and path; RuntimeError before start()."""
        if self._port is None:
            raise RuntimeError(f"{type(self).__name__} is not started")
        return f"http://127.0.0.1:{self._port}{path}"

    def enqueue(self, *responses: ScriptedResponse) -> None:
        """Script the next answers to requests the fake does not refuse, in order."""
        self._queue.extend(responses)

    @property
    def queued(self) -> int:
        """Scripted answers not yet given."""
        return len(self._queue)

    async def _serve(self, request: web.Request) -> web.StreamResponse:
        self._in_flight += 1
        self.max_in_flight = max(self.max_in_flight, self._in_flight)
        try:
            return await self._handle(request)
        finally:
            self._in_flight -= 1

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        """Record the request and answer it: each fake's own."""
        raise NotImplementedError

    async def _after_latency(self, response: web.StreamResponse) -> web.StreamResponse:
        """A refusal of the fake's own, after the latency."""
        await self._wait(self.latency)
        return response

    async def _scripted_answer(
        self,
        success: Callable[[ScriptedResponse], Awaitable[web.StreamResponse]],
        request: web.Request | None = None,
    ) -> web.StreamResponse:
        """The next scripted answer (a success when none is queued), after its wait."""
        scripted = self._queue.popleft() if self._queue else ScriptedResponse.success()
        await self._wait(None if scripted.kind == "hang" else self.latency + scripted.delay)
        if self.gate is not None:
            await self.gate.wait()
        if scripted.kind in ("raw", "error"):
            return scripted.response()
        if scripted.kind == "stream":
            assert request is not None, "a stream answer needs the request"
            return await self._stream(request, scripted)
        return await success(scripted)

    async def _stream(self, request: web.Request, scripted: ScriptedResponse) -> web.StreamResponse:
        """Write the body chunk by chunk until done or the client goes away."""
        response = web.StreamResponse(status=scripted.status, headers=scripted.headers)
        response.content_type = scripted.content_type
        await response.prepare(request)
        chunk = b"7" * CHUNK_BYTES
        left = scripted.stream_bytes
        try:
            while left > 0:
                piece = chunk[: min(left, CHUNK_BYTES)]
                await response.write(piece)
                self.streamed_bytes += len(piece)
                left -= len(piece)
            await response.write_eof()
        except ConnectionError:
            pass  # the client closed the connection: what the cap is for
        return response

    async def _wait(self, seconds: float | None) -> None:
        """Sleep (forever when None); close() cancels the wait, dropping the connection unanswered."""
        task = asyncio.current_task()
        assert task is not None
        self._waiting.add(task)
        try:
            if seconds is None:
                await asyncio.get_running_loop().create_future()
            elif seconds > 0:
                await asyncio.sleep(seconds)
        finally:
            self._waiting.discard(task)


@dataclass(frozen=True)
class RecordedFile:
    """A file part of a multipart request."""

    name: str
    """The part name: `image`, `image[]` or `mask`."""
    filename: str
    content_type: str
    data: bytes
    """The part's bytes (empty where a fake was told not to keep them)."""
    size: int
    """The part's length in bytes."""


@dataclass(frozen=True)
class RecordedMultipartRequest:
    """A request to a fake of an API that takes multipart bodies (and JSON ones)."""

    method: str
    path: str
    headers: dict[str, str]
    """Lower-case names."""
    fields: dict[str, list[str]]
    """Text parts of a multipart body, by name, in order."""
    files: list[RecordedFile]
    body: bytes = b""
    """The raw body of a request that is not multipart."""
    received_at: float = 0.0
    """time.monotonic() when the request arrived, to check waits between retries."""

    def field(self, name: str) -> str | None:
        """The first value of a text part, or None when it was not sent."""
        values = self.fields.get(name)
        return values[0] if values else None

    def file(self, name: str) -> RecordedFile | None:
        """The first file part of that name, or None."""
        return next((f for f in self.files if f.name == name), None)


@dataclass
class MultipartBody:
    fields: dict[str, list[str]] = field(default_factory=dict)
    """Text parts, by name, in order."""
    files: list[RecordedFile] = field(default_factory=list)
    too_large: bool = False
    """Reading stopped at max_bytes."""


async def read_multipart(request: web.Request, max_bytes: int | None = None) -> MultipartBody:
    """The text and file parts of a multipart request; with max_bytes, reading stops (and
    too_large is set) once the parts add up to more."""
    body = MultipartBody()
    total = 0
    reader = await request.multipart()
    while (part := await reader.next()) is not None:
        if not isinstance(part, BodyPartReader):
            continue
        data = await part.read()
        total += len(data)
        if max_bytes is not None and total > max_bytes:
            body.too_large = True
            break
        name = part.name or ""
        if part.filename is None:
            body.fields.setdefault(name, []).append(data.decode(part.get_charset("utf-8")))
        else:
            content_type = part.headers.get(hdrs.CONTENT_TYPE, "")
            body.files.append(RecordedFile(name, part.filename, content_type, data, len(data)))
    return body
