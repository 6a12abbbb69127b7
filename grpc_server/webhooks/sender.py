"""One delivery attempt: POST a signed event to an endpoint, return what happened.

Like the provider calls (grpc_server/providers/http.py): a redirect is never followed (a 3xx
is a failed attempt, and the other host receives nothing), the answer is read only up to
READ_CAP bytes and kept as a short excerpt, and the whole attempt is bounded by the
endpoint's timeout_seconds. Deliveries to one endpoint are limited to its max_concurrency
at once (a semaphore per endpoint name); the wait for a turn is not part of the attempt.
Nothing is raised for a failed delivery: the attempt record says how it failed, for
schedule.decide and the delivery log.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from urllib.parse import urljoin, urlsplit

import aiohttp

from grpc_server.config import WebhookEndpoint
from grpc_server.webhooks.schedule import retry_after_seconds
from grpc_server.webhooks.signing import signed_headers

READ_CAP = 64 * 1024
"""Bytes of an answer read at most; the rest is never read (the connection is closed)."""
EXCERPT_CHARS = 1000
"""Characters of the answer (or of the error) kept in the attempt record."""
TIMEOUT = "timeout"
CONNECTION_ERROR = "connection_error"


@dataclass(frozen=True)
class Attempt:
    """The record of one delivery attempt."""

    started_at: datetime
    status: int | None
    """The HTTP status answered; None when no answer came (see error)."""
    error: str | None
    """Why no answer came: "timeout" or "connection_error"; None when one did."""
    duration_seconds: float
    excerpt: str
    """The start of the answer's body, or what went wrong; never more than EXCERPT_CHARS."""
    retry_after: float | None = None
    """The answer's Retry-After, in seconds from when the answer came."""

    @property
    def outcome(self) -> int | str:
        """The status or the error class, as schedule.decide takes it."""
        return self.status if self.status is not None else (self.error or CONNECTION_ERROR)

    @property
    def delivered(self) -> bool:
        return self.status is not None and 200 <= self.status < 300


def _utcnow() -> datetime:
    return datetime.now(UTC)


class WebhookSender:
    """Sends events over one aiohttp session (made with the caller's connector and limits)."""

    def __init__(self, session: aiohttp.ClientSession, clock: Callable[[], datetime] = _utcnow) -> None:
        self._session = session
        self._clock = clock
        self._turns: dict[str, asyncio.Semaphore] = {}

    def _turn(self, endpoint: WebhookEndpoint) -> asyncio.Semaphore:
        if endpoint.name not in self._turns:
            self._turns[endpoint.name] = asyncio.Semaphore(endpoint.max_concurrency)
        return self._turns[endpoint.name]

    async def send(self, endpoint: WebhookEndpoint, webhook_id: str, body: bytes) -> Attempt:
        """POST `body` (an events.event_body) to the endpoint, signed with all its secrets at
        the current time; the same webhook_id on every attempt of one event."""
        async with self._turn(endpoint):
            started_at = self._clock()
            headers = signed_headers(endpoint.secrets, webhook_id, int(started_at.timestamp()), body)
            began = time.monotonic()
            try:
                async with asyncio.timeout(endpoint.timeout_seconds):
                    status, excerpt, retry_after = await self._post(endpoint.url, headers, body)
            except TimeoutError:
                return Attempt(
                    started_at,
                    None,
                    TIMEOUT,
                    time.monotonic() - began,
                    f"no answer within {endpoint.timeout_seconds:g} s",
                )
            except aiohttp.ClientError as problem:
                what = f"{type(problem).__name__}: {problem}"[:EXCERPT_CHARS]
                return Attempt(started_at, None, CONNECTION_ERROR, time.monotonic() - began, what)
            seconds = retry_after_seconds(retry_after, self._clock())
            return Attempt(started_at, status, None, time.monotonic() - began, excerpt, seconds)

    async def _post(self, url: str, headers: dict[str, str], body: bytes) -> tuple[int, str, str | None]:
        async with self._session.post(url, data=body, headers=headers, allow_redirects=False) as response:
            retry_after = response.headers.get("Retry-After")
            if 300 <= response.status < 400:
                response.close()  # not followed: the event goes only to the configured URL
                target = _where(url, response.headers.get("Location"))
                return response.status, f"redirect to {target}, not followed", retry_after
            return response.status, await _excerpt(response), retry_after


async def _excerpt(response: aiohttp.ClientResponse) -> str:
    """The start of the body: at most READ_CAP bytes read, EXCERPT_CHARS characters kept."""
    read = bytearray()
    async for chunk in response.content.iter_chunked(16 * 1024):
        read += chunk
        if len(read) >= READ_CAP:
            response.close()
            break
    return bytes(read[:READ_CAP]).decode("utf-8", errors="replace")[:EXCERPT_CHARS]


def _where(url: str, location: str | None) -> str:
    """Where a redirect pointed, without its query (tokens live there)."""
    if not location:
        return "(no Location)"
    try:
        parts = urlsplit(urljoin(url, location))
        return f"{parts.scheme}://{parts.netloc.rpartition('@')[2]}{parts.path}"[:200]
    except ValueError:
        return "(an invalid Location)"
