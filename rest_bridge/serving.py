"""Serving the bridge to clients that may be slow, idle, numerous or broken.

BridgeRunner is web.AppRunner with connection-level protections (aiohttp has none of these):

- header timeout: a request's line and headers must arrive within
  `header_timeout_seconds` of its first byte (or of the connection's opening); a client
  that drips them gets 408 and the connection closes.
- body timeouts: while a request's body is being read, no bytes for
  `body_idle_timeout_seconds`, or an average under `min_body_rate_bytes` per second once
  it has been arriving for `min_body_rate_grace_seconds`, fails the read with 408
  (BodyReadTimeout): the route stops, cancels its gRPC call, and the connection closes.
  Time the bridge itself stops reading (backpressure from the server) is not counted.
- connection cap: past `max_connections` open connections, a new one is answered 503 with
  the error object and `Connection: close`.
- file descriptors: when accept() fails for want of them, asyncio logs each failure (up to
  a hundred per loop turn) and pauses accepting for a second; here that becomes one
  WARNING per `accept_error_log_interval_seconds`, with the count.
- malformed HTTP (a bad request line, header or chunk) is answered 400 with the error
  object and logged as one INFO line, not an ERROR traceback.
- hang-ups: aiohttp's handler cancellation stays off (its default: a handler is not
  interrupted at whatever await it is in when its client leaves), but a route that only
  waits may ask to hear of its connection's loss at once (on_connection_lost; rest_bridge.hangup).
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Callable
from typing import Any

from aiohttp import web
from aiohttp.http_exceptions import HttpProcessingError
from aiohttp.streams import StreamReader
from aiohttp.web_protocol import RequestHandler
from aiohttp.web_request import BaseRequest

from rest_bridge.config import BridgeConfig
from rest_bridge.errors import BodyReadTimeout, BridgeError, error_body, error_response

log = logging.getLogger("rest_bridge")

_REASONS = {408: "Request Timeout", 503: "Service Unavailable"}


def canned_response(status: int, message: str) -> bytes:
    """A whole HTTP/1.1 answer with the error object, for places that have no request."""
    body = json.dumps(error_body(status, message)).encode()
    head = (
        f"HTTP/1.1 {status} {_REASONS[status]}\r\nContent-Type: application/json; charset=utf-8\r\n"
        f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n"
    )
    return head.encode() + body


class ConnectionCount:
    def __init__(self) -> None:
        self.open = 0


class _Refusal(asyncio.Protocol):
    """Answers one canned response, reads (and drops) what the client sends until it closes
    or a few seconds pass: closing with unread bytes would reset the connection and lose
    the answer."""

    LINGER_SECONDS = 2.0

    def __init__(self, answer: bytes) -> None:
        self._answer = answer

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        transport.write(self._answer)
        transport.write_eof()
        asyncio.get_running_loop().call_later(self.LINGER_SECONDS, transport.close)

    def data_received(self, data: bytes) -> None:
        pass

    def eof_received(self) -> bool:
        return False  # close


class GuardedRequestHandler(RequestHandler):
    """aiohttp's connection protocol with a header deadline and a body watch."""

    __slots__ = (
        "_body_started",
        "_body_timer",
        "_config",
        "_count",
        "_header_timer",
        "_last_read",
        "_on_lost",
        "_payload",
    )

    def __init__(self, manager: web.Server, *, config: BridgeConfig, count: ConnectionCount, **kwargs: Any):
        super().__init__(manager, **kwargs)
        self._config, self._count = config, count
        self._header_timer: asyncio.TimerHandle | None = None
        self._body_timer: asyncio.TimerHandle | None = None
        self._payload: StreamReader | None = None
        self._body_started = self._last_read = 0.0
        self._on_lost: list[Callable[[], None]] = []

    def on_connection_lost(self, callback: Callable[[], None]) -> Callable[[], None]:
        """Call `callback` (on the event loop) when the connection closes; returns what forgets
        it. rest_bridge.hangup builds on it: a handler waiting for a job stops when its
        client hangs up, though aiohttp's handler cancellation is off."""
        self._on_lost.append(callback)

        def forget() -> None:
            if callback in self._on_lost:
                self._on_lost.remove(callback)

        return forget

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._count.open += 1
        super().connection_made(transport)
        self._arm_header_timer()

    def connection_lost(self, exc: BaseException | None) -> None:
        self._count.open -= 1
        for timer in (self._header_timer, self._body_timer):
            if timer is not None:
                timer.cancel()
        self._header_timer = self._body_timer = None
        self._payload = None
        super().connection_lost(exc)
        callbacks, self._on_lost = self._on_lost, []
        for callback in callbacks:
            callback()

    def data_received(self, data: bytes) -> None:
        self._last_read = self._loop.time()
        # Bytes while aiohttp waits for a whole request: a request's head has begun.
        if self._header_timer is None and self._waiter is not None and not self._waiter.done():
            self._arm_header_timer()
        super().data_received(data)

    def _arm_header_timer(self) -> None:
        self._header_timer = self._loop.call_later(self._config.header_timeout_seconds, self._header_timeout)

    def _header_timeout(self) -> None:
        self._header_timer = None
        waiting = self._waiter is not None and not self._waiter.done()
        if not waiting or self.transport is None:
            return
        log.info("closed a connection whose request headers did not arrive in time")
        seconds = self._config.header_timeout_seconds
        self.transport.write(canned_response(408, f"the request headers did not arrive within {seconds} s"))
        self.force_close()

    def request_started(self, payload: StreamReader) -> None:
        """Called as aiohttp hands a whole request head to the application."""
        if self._header_timer is not None:
            self._header_timer.cancel()
            self._header_timer = None
        if self._body_timer is not None:
            self._body_timer.cancel()
            self._body_timer = None
        self._payload = None
        if not payload.is_eof():
            self._payload = payload
            self._body_started = self._last_read = self._loop.time()
            self._schedule_body_check()

    def _check_interval(self) -> float:
        config = self._config
        return min(config.body_idle_timeout_seconds, config.min_body_rate_grace_seconds) / 4

    def _schedule_body_check(self) -> None:
        self._body_timer = self._loop.call_later(self._check_interval(), self._check_body)

    def _check_body(self) -> None:
        self._body_timer = None
        payload, config = self._payload, self._config
        if payload is None or payload.is_eof() or payload.exception() is not None or self.transport is None:
            return
        now = self._loop.time()
        if self._reading_paused:  # the bridge is not reading (backpressure): not the client's doing
            self._body_started += self._check_interval()  # roughly: this interval does not count
            self._last_read = now
        elapsed = now - self._body_started
        if now - self._last_read >= config.body_idle_timeout_seconds:
            self._fail_body(f"no body data arrived for {config.body_idle_timeout_seconds} s")
        elif (
            config.min_body_rate_bytes
            and elapsed >= config.min_body_rate_grace_seconds
            and payload.total_bytes < config.min_body_rate_bytes * elapsed
        ):
            self._fail_body(f"the body arrived slower than {config.min_body_rate_bytes} bytes per second")
        else:
            self._schedule_body_check()

    def _fail_body(self, message: str) -> None:
        assert self._payload is not None
        log.info("stopped reading a request body: %s", message)
        self._payload.set_exception(BodyReadTimeout(message))
        self._payload = None

    def handle_error(
        self,
        request: BaseRequest,
        status: int = 500,
        exc: BaseException | None = None,
        message: str | None = None,
    ) -> web.StreamResponse:
        """aiohttp's answer to a request it could not parse (or a failure outside the app):
        the error object, and one INFO line instead of an ERROR traceback."""
        if not isinstance(exc, HttpProcessingError):
            return super().handle_error(request, status, exc, message)
        text = exc.message if isinstance(exc.message, str) else repr(exc.message)
        log.info("malformed request from %s: %s", request.remote, text.splitlines()[0] if text else "")
        if request.writer.output_size > 0:
            raise ConnectionError("the answer has begun; the connection is dropped")
        response = error_response(BridgeError(status, f"malformed HTTP request: {text}"))
        response.force_close()
        return response


class GuardedServer(web.Server):
    """aiohttp's protocol factory, handing out guarded protocols up to the connection cap."""

    def __init__(self, inner: web.Server, config: BridgeConfig, **kwargs: Any) -> None:
        super().__init__(
            inner.request_handler,
            request_factory=self._dispatch,
            handler_cancellation=inner.handler_cancellation,
            **kwargs,
        )
        self._make_request_for = inner.request_factory
        self._config = config
        self.count = ConnectionCount()
        self._refusal = canned_response(
            503, f"the bridge has {config.max_connections} open connections (max_connections); try again"
        )

    def _dispatch(
        self, message: Any, payload: StreamReader, protocol: RequestHandler, *args: Any
    ) -> BaseRequest:
        if isinstance(protocol, GuardedRequestHandler):
            protocol.request_started(payload)
        return self._make_request_for(message, payload, protocol, *args)

    def __call__(self) -> RequestHandler:
        if self.count.open >= self._config.max_connections:
            log.info("refused a connection: %d open (max_connections)", self.count.open)
            return _Refusal(self._refusal)  # type: ignore[return-value]  # asyncio needs a Protocol only
        return GuardedRequestHandler(
            self, loop=self._loop, config=self._config, count=self.count, **self._kwargs
        )


class AcceptErrorLog:
    """A loop exception handler that turns asyncio's per-failure accept() logs into one
    line per interval; everything else goes to the handler it replaced."""

    MESSAGE = "socket.accept() out of system resource"

    def __init__(self, loop: asyncio.AbstractEventLoop, interval: float) -> None:
        self._loop, self._interval = loop, interval
        self._previous = loop.get_exception_handler()
        self._suppressed = 0
        self._next_log = 0.0

    def __call__(self, loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
        if context.get("message") != self.MESSAGE:
            if self._previous is not None:
                self._previous(loop, context)
            else:
                loop.default_exception_handler(context)
            return
        self._suppressed += 1
        now = loop.time()
        if now >= self._next_log:
            log.warning(
                "cannot accept connections: %s (%d failed accepts since the last such line; "
                "accepting pauses and resumes by itself)",
                context.get("exception"),
                self._suppressed,
            )
            self._suppressed = 0
            self._next_log = now + self._interval

    def uninstall(self) -> None:
        if self._loop.get_exception_handler() is self:
            self._loop.set_exception_handler(self._previous)


class BridgeRunner(web.AppRunner):
    """web.AppRunner serving through GuardedServer; use it with web.TCPSite as usual."""

    __slots__ = ("_accept_log", "_config")

    def __init__(self, app: web.Application, config: BridgeConfig, **kwargs: Any) -> None:
        kwargs.setdefault("keepalive_timeout", config.keepalive_timeout_seconds)
        super().__init__(app, **kwargs)
        self._config = config
        self._accept_log: AcceptErrorLog | None = None

    async def _make_server(self) -> web.Server:
        inner = await super()._make_server()
        kwargs = {k: v for k, v in self._kwargs.items() if k != "handler_cancellation"}
        loop = asyncio.get_running_loop()
        self._accept_log = AcceptErrorLog(loop, self._config.accept_error_log_interval_seconds)
        loop.set_exception_handler(self._accept_log)
        return GuardedServer(inner, self._config, loop=loop, **kwargs)

    async def _cleanup_server(self) -> None:
        if self._accept_log is not None:
            self._accept_log.uninstall()
        await super()._cleanup_server()

    @property
    def open_connections(self) -> int:
        server = self.server
        return server.count.open if isinstance(server, GuardedServer) else 0


async def start_bridge(app: web.Application, config: BridgeConfig, **runner_kwargs: Any) -> BridgeRunner:
    """Set up the runner and listen on config.host:config.port; returns the runner (its
    .addresses has the bound port; cleanup() stops it)."""
    runner = BridgeRunner(app, config, **runner_kwargs)
    await runner.setup()
    await web.TCPSite(runner, config.host, config.port).start()
    return runner
