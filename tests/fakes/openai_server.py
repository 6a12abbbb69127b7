"""A fake of OpenAI's images API: a real aiohttp server on 127.0.0.1, for any test.

    async with FakeOpenAI(api_key="sk-test") as fake:
        fake.enqueue(FakeResponse.error(429, headers={"Retry-After": "1"}), FakeResponse.success())
        ...  # point a client (or a server subprocess) at fake.base_url
        assert fake.requests[0].fields["model"] == ["gpt-image-1"]

`POST /v1/images/edits` records the request, checks the bearer key (401 with
OpenAI's error body if wrong), then answers with the next scripted response, or
with a success when none is queued: `n` PNGs, each the first input image
re-encoded (resized to `size` when that is `WxH`). Every other path answers 404
like OpenAI. Every request is recorded, whatever the answer.

`FakeResponse.hang()` never answers; on close the handler is cancelled, so the
connection drops unanswered and nothing is left running.
"""

from __future__ import annotations

import asyncio
import base64
import io
import json
import re
import time
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any, Literal, Self

from aiohttp import BodyPartReader, hdrs, web
from PIL import Image

EDITS_PATH = "/v1/images/edits"
_SIZE = re.compile(r"(\d+)x(\d+)")


@dataclass(frozen=True)
class RecordedFile:
    name: str
    """The part name: `image`, `image[]` or `mask`."""
    filename: str
    content_type: str
    data: bytes
    """The part's bytes (empty when the fake was made with keep_file_data=False)."""
    size: int


@dataclass(frozen=True)
class RecordedRequest:
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


@dataclass(frozen=True)
class FakeResponse:
    """One scripted answer; build it with the class methods."""

    kind: Literal["success", "error", "raw", "hang"]
    status: int = 200
    body: bytes = b""
    content_type: str = "application/json"
    headers: Mapping[str, str] = field(default_factory=dict)
    delay: float = 0.0

    @classmethod
    def success(cls, delay: float = 0.0) -> FakeResponse:
        """The default success, after `delay` seconds."""
        return cls("success", delay=delay)

    @classmethod
    def error(
        cls,
        status: int,
        message: str = "The server had an error while processing your request.",
        type: str = "server_error",
        code: str | int | None = None,
        param: str | None = None,
        headers: Mapping[str, str] | None = None,
        delay: float = 0.0,
    ) -> FakeResponse:
        """OpenAI's error JSON `{"error": {message, type, param, code}}`."""
        body = _error_body(message, type, code, param)
        return cls("error", status, body, headers=dict(headers or {}), delay=delay)

    @classmethod
    def raw(
        cls,
        status: int,
        body: bytes,
        content_type: str = "application/json",
        headers: Mapping[str, str] | None = None,
        delay: float = 0.0,
    ) -> FakeResponse:
        """Exactly these bytes, e.g. a malformed body or an HTML error page."""
        return cls("raw", status, body, content_type, dict(headers or {}), delay)

    @classmethod
    def json_body(cls, doc: Any, status: int = 200, headers: Mapping[str, str] | None = None) -> FakeResponse:
        """Any JSON document, e.g. a success that carries URLs."""
        return cls.raw(status, json.dumps(doc).encode(), headers=headers)

    @classmethod
    def hang(cls) -> FakeResponse:
        """Never answer; the connection drops when the fake closes."""
        return cls("hang")


class FakeOpenAI:
    """OpenAI's images API on 127.0.0.1 (a free port), for the length of an `async with`."""

    def __init__(self, api_key: str | None = "sk-test", *, keep_file_data: bool = True) -> None:
        self.api_key = api_key
        """The key to expect as `Authorization: Bearer`; None accepts any request."""
        self.keep_file_data = keep_file_data
        self.latency = 0.0
        """Seconds to wait before every answer."""
        self.requests: list[RecordedRequest] = []
        self._queue: deque[FakeResponse] = deque()
        self._waiting: set[asyncio.Task[Any]] = set()
        self._runner: web.AppRunner | None = None
        self._port: int | None = None

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.close()

    async def start(self) -> None:
        app = web.Application(client_max_size=1024**3)
        app.router.add_route("*", "/{tail:.*}", self._handle)
        # A bound on the graceful wait; hanging handlers are cancelled before it applies.
        self._runner = web.AppRunner(app, shutdown_timeout=5.0)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self._port = int(self._runner.addresses[0][1])

    async def close(self) -> None:
        for task in self._waiting:
            task.cancel()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    @property
    def base_url(self) -> str:
        """The API root to configure a client with, e.g. `http://127.0.0.1:PORT/v1`."""
        if self._port is None:
            raise RuntimeError("FakeOpenAI is not started")
        return f"http://127.0.0.1:{self._port}/v1"

    def enqueue(self, *responses: FakeResponse) -> None:
        """Script the next answers to authenticated edits, in order."""
        self._queue.extend(responses)

    @property
    def queued(self) -> int:
        """Scripted answers not yet given."""
        return len(self._queue)

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        recorded, first_image = await self._record(request)
        self.requests.append(recorded)
        if request.method != "POST" or request.path != EDITS_PATH:
            await self._wait(self.latency)
            message = f"Invalid URL ({request.method} {request.path})"
            return _error_response(404, message, "invalid_request_error", None, None)
        if (denied := self._check_key(request)) is not None:
            await self._wait(self.latency)
            return denied
        scripted = self._queue.popleft() if self._queue else FakeResponse.success()
        await self._wait(None if scripted.kind == "hang" else self.latency + scripted.delay)
        if scripted.kind == "success":
            return await _success(recorded, first_image)
        return web.Response(
            status=scripted.status,
            body=scripted.body,
            content_type=scripted.content_type,
            headers=scripted.headers,
        )

    async def _record(self, request: web.Request) -> tuple[RecordedRequest, bytes | None]:
        arrived = time.monotonic()
        fields: dict[str, list[str]] = {}
        files: list[RecordedFile] = []
        body = b""
        first_image: bytes | None = None
        if request.content_type.startswith("multipart/"):
            reader = await request.multipart()
            while (part := await reader.next()) is not None:
                if not isinstance(part, BodyPartReader):
                    continue
                name = part.name or ""
                if part.filename is None:
                    fields.setdefault(name, []).append(await part.text())
                    continue
                data = await part.read()
                if first_image is None and name in ("image", "image[]"):
                    first_image = data
                content_type = part.headers.get(hdrs.CONTENT_TYPE, "")
                kept = data if self.keep_file_data else b""
                files.append(RecordedFile(name, part.filename, content_type, kept, len(data)))
        else:
            body = await request.read()
        headers = {k.lower(): v for k, v in request.headers.items()}
        recorded = RecordedRequest(
            request.method, request.path, headers, fields, files, body, received_at=arrived
        )
        return recorded, first_image

    def _check_key(self, request: web.Request) -> web.Response | None:
        if self.api_key is None:
            return None
        auth = request.headers.get(hdrs.AUTHORIZATION, "")
        if auth == f"Bearer {self.api_key}":
            return None
        presented = auth.removeprefix("Bearer ")
        if not presented:
            message = (
                "You didn't provide an API key. You need to provide your API key in an Authorization header."
            )
            return _error_response(401, message, "invalid_request_error", None, None)
        # OpenAI masks the key it quotes back.
        masked = f"{presented[:3]}{'*' * max(len(presented) - 7, 0)}{presented[-4:]}"
        message = f"Incorrect API key provided: {masked}. You can find your API key at https://platform.openai.com/account/api-keys."
        return _error_response(401, message, "invalid_request_error", "invalid_api_key", None)

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


async def _success(request: RecordedRequest, first_image: bytes | None) -> web.Response:
    if first_image is None:
        return _missing("image")
    if not request.field("prompt"):
        return _missing("prompt")
    n_text = request.field("n") or "1"
    if not n_text.isdigit() or not 1 <= int(n_text) <= 10:
        message = f"Invalid 'n': expected an integer between 1 and 10, got {n_text!r}."
        return _error_response(400, message, "invalid_request_error", "invalid_value", "n")
    try:
        png, width, height = await asyncio.to_thread(_reencode, first_image, request.field("size"))
    except OSError:
        message = "Invalid image file or mode for image 1, please check your image file."
        return _error_response(400, message, "invalid_request_error", "invalid_image_file", "image")
    b64 = base64.b64encode(png).decode()
    doc = {
        "created": int(time.time()),
        "data": [{"b64_json": b64} for _ in range(int(n_text))],
        "usage": {"input_tokens": 10, "output_tokens": 20, "total_tokens": 30},
        "background": request.field("background") or "opaque",
        "size": f"{width}x{height}",
        "output_format": "png",
        "quality": request.field("quality") or "medium",
    }
    return web.json_response(doc)


def _reencode(image: bytes, size: str | None) -> tuple[bytes, int, int]:
    """The image as PNG, resized when size is `WxH`."""
    with Image.open(io.BytesIO(image)) as opened:
        img = opened.convert("RGBA")
    if size and (match := _SIZE.fullmatch(size)):
        img = img.resize((int(match[1]), int(match[2])))
    out = io.BytesIO()
    img.save(out, "PNG")
    return out.getvalue(), img.width, img.height


def _missing(param: str) -> web.Response:
    message = f"Missing required parameter: '{param}'."
    return _error_response(400, message, "invalid_request_error", "missing_required_parameter", param)


def _error_body(message: str, type: str, code: str | int | None, param: str | None) -> bytes:
    return json.dumps({"error": {"message": message, "type": type, "param": param, "code": code}}).encode()


def _error_response(
    status: int, message: str, type: str, code: str | int | None, param: str | None
) -> web.Response:
    body = _error_body(message, type, code, param)
    return web.Response(status=status, body=body, content_type="application/json")
