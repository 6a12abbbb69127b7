"""The sender against real receivers on 127.0.0.1: each delivery is verified there with the
standardwebhooks package, as a user's receiver would, and each attempt's record checked."""

from __future__ import annotations

import asyncio
import base64
import socket
from collections import deque
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from types import TracebackType
from typing import Self

import aiohttp
import pytest
from aiohttp import web
from standardwebhooks import Webhook
from standardwebhooks.webhooks import WebhookVerificationError

from grpc_server.config import WebhookEndpoint
from grpc_server.webhooks.events import event_body, new_webhook_id
from grpc_server.webhooks.schedule import Delivered, DisableEndpoint, RetryAt, decide
from grpc_server.webhooks.sender import EXCERPT_CHARS, WebhookSender

SECRET = "whsec_" + base64.b64encode(b"s" * 32).decode()
OLD_SECRET = "whsec_" + base64.b64encode(b"o" * 32).decode()
NOW = datetime(2026, 12, 4, 16, 0, tzinfo=UTC)
ENVELOPE = {"id": "job_1", "status": "completed", "status_code": 200, "result": {"data": []}}


@dataclass(frozen=True)
class Answer:
    status: int = 200
    body: bytes = b"ok"
    headers: Mapping[str, str] = field(default_factory=dict)
    hold: bool = False
    """Answer only when the receiver is released (or never, if it is not)."""


@dataclass
class Received:
    headers: dict[str, str]
    body: bytes
    verified: bool


class Receiver:
    """A webhook receiver on a free port: verifies each delivery with `verify_with` (the
    standardwebhooks package; None: accept all), records it and answers from a queue (200
    when empty). A delivery that does not verify is answered 400."""

    def __init__(self, verify_with: str | None = SECRET) -> None:
        self.verify_with = verify_with
        self.answers: deque[Answer] = deque()
        self.received: list[Received] = []
        self.in_flight = 0
        self.most_in_flight = 0
        self.release = asyncio.Event()
        self._runner: web.AppRunner | None = None
        self.port = 0

    def url(self, path: str = "/hook") -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        body = await request.read()
        verified = True
        if self.verify_with is not None:
            try:
                Webhook(self.verify_with).verify(body, dict(request.headers))
            except WebhookVerificationError:
                verified = False
        self.received.append(Received(dict(request.headers), body, verified))
        answer = self.answers.popleft() if self.answers else Answer()
        if not verified:
            answer = Answer(400, b"bad signature")
        self.in_flight += 1
        self.most_in_flight = max(self.most_in_flight, self.in_flight)
        try:
            if answer.hold:
                await self.release.wait()
            return web.Response(status=answer.status, body=answer.body, headers=answer.headers)
        finally:
            self.in_flight -= 1

    async def __aenter__(self) -> Self:
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self._handle)
        self._runner = web.AppRunner(app, shutdown_timeout=1.0)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.port = int(self._runner.addresses[0][1])
        return self

    async def __aexit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        self.release.set()
        if self._runner is not None:
            await self._runner.cleanup()


def _endpoint(url: str, **settings: object) -> WebhookEndpoint:
    defaults: dict[str, object] = {"name": "orders", "url": url, "secrets": (SECRET,)}
    return WebhookEndpoint(**{**defaults, **settings})  # type: ignore[arg-type]


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as client:
        yield client


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    async with Receiver() as running:
        yield running


def _body() -> bytes:
    return event_body("async_job.completed", ENVELOPE, datetime.now(UTC))


async def test_a_delivery_arrives_signed_and_is_recorded(
    session: aiohttp.ClientSession, receiver: Receiver
) -> None:
    receiver.answers.append(Answer(200, b"thanks"))
    body, webhook_id = _body(), new_webhook_id()
    attempt = await WebhookSender(session).send(_endpoint(receiver.url()), webhook_id, body)
    [got] = receiver.received
    assert got.verified and got.body == body
    assert got.headers["webhook-id"] == webhook_id
    assert got.headers["Content-Type"] == "application/json"
    assert (attempt.status, attempt.error, attempt.excerpt) == (200, None, "thanks")
    assert attempt.delivered and attempt.duration_seconds >= 0
    assert decide(1, attempt.outcome, attempt.retry_after, NOW, 0.5) == Delivered()


async def test_a_failure_then_a_success_under_the_same_webhook_id(
    session: aiohttp.ClientSession, receiver: Receiver
) -> None:
    receiver.answers.extend([Answer(500, b"database down"), Answer(204, b"")])
    sender, endpoint = WebhookSender(session), _endpoint(receiver.url())
    body, webhook_id = _body(), new_webhook_id()
    first = await sender.send(endpoint, webhook_id, body)
    assert (first.status, first.excerpt, first.delivered) == (500, "database down", False)
    assert isinstance(decide(1, first.outcome, first.retry_after, NOW, 0.0), RetryAt)
    second = await sender.send(endpoint, webhook_id, body)
    assert second.delivered
    assert [r.headers["webhook-id"] for r in receiver.received] == [webhook_id, webhook_id]
    assert all(r.verified and r.body == body for r in receiver.received)


async def test_a_receiver_slower_than_the_timeout_is_a_timeout(
    session: aiohttp.ClientSession, receiver: Receiver
) -> None:
    receiver.answers.append(Answer(hold=True))
    attempt = await WebhookSender(session).send(
        _endpoint(receiver.url(), timeout_seconds=0.2), new_webhook_id(), _body()
    )
    assert (attempt.status, attempt.error) == (None, "timeout")
    assert attempt.outcome == "timeout" and "0.2 s" in attempt.excerpt
    assert len(receiver.received) == 1
    assert decide(1, attempt.outcome, None, NOW, 0.0) == RetryAt(NOW + timedelta(seconds=5))


async def test_410_disables_the_endpoint(session: aiohttp.ClientSession, receiver: Receiver) -> None:
    receiver.answers.append(Answer(410, b"gone"))
    attempt = await WebhookSender(session).send(_endpoint(receiver.url()), new_webhook_id(), _body())
    assert attempt.status == 410
    assert decide(1, attempt.outcome, attempt.retry_after, NOW, 0.0) == DisableEndpoint()


async def test_a_redirect_is_not_followed_and_the_other_server_receives_nothing(
    session: aiohttp.ClientSession, receiver: Receiver
) -> None:
    async with Receiver() as elsewhere:
        target = elsewhere.url("/steal?token=abc")
        for status in (301, 302, 307, 308):
            receiver.answers.append(Answer(status, b"moved", {"Location": target}))
            attempt = await WebhookSender(session).send(_endpoint(receiver.url()), new_webhook_id(), _body())
            assert attempt.status == status and not attempt.delivered
            assert attempt.excerpt == f"redirect to {elsewhere.url('/steal')}, not followed"
            assert isinstance(decide(1, attempt.outcome, None, NOW, 0.0), RetryAt)
        assert elsewhere.received == []
    assert len(receiver.received) == 4


async def test_a_receiver_holding_only_the_old_secret_verifies_during_a_rotation(
    session: aiohttp.ClientSession,
) -> None:
    async with Receiver(verify_with=OLD_SECRET) as old, Receiver(verify_with=SECRET) as new:
        sender = WebhookSender(session)
        for receiver in (old, new):
            endpoint = _endpoint(receiver.url(), secrets=(SECRET, OLD_SECRET))
            assert (await sender.send(endpoint, new_webhook_id(), _body())).delivered
            assert receiver.received[0].headers["webhook-signature"].count("v1,") == 2


async def test_a_receiver_with_another_secret_refuses_the_delivery(session: aiohttp.ClientSession) -> None:
    async with Receiver(verify_with=OLD_SECRET) as receiver:
        attempt = await WebhookSender(session).send(_endpoint(receiver.url()), new_webhook_id(), _body())
    assert (attempt.status, attempt.excerpt) == (400, "bad signature")
    assert not receiver.received[0].verified


async def test_nobody_listening_is_a_connection_error(session: aiohttp.ClientSession) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]  # closed again at once: nothing listens there
    attempt = await WebhookSender(session).send(
        _endpoint(f"http://127.0.0.1:{port}/hook"), new_webhook_id(), _body()
    )
    assert (attempt.status, attempt.error, attempt.outcome) == (None, "connection_error", "connection_error")
    assert attempt.excerpt.startswith("ClientConnectorError")
    assert isinstance(decide(1, attempt.outcome, None, NOW, 0.0), RetryAt)


async def test_a_large_answer_is_kept_as_a_short_excerpt(
    session: aiohttp.ClientSession, receiver: Receiver
) -> None:
    receiver.answers.append(Answer(500, b"e" * 1024 * 1024))
    attempt = await WebhookSender(session).send(_endpoint(receiver.url()), new_webhook_id(), _body())
    assert attempt.status == 500 and attempt.excerpt == "e" * EXCERPT_CHARS


@pytest.mark.parametrize("header", ["600", "Fri, 04 Dec 2026 16:10:00 GMT"])
async def test_a_retry_after_answer_is_honoured(
    session: aiohttp.ClientSession, receiver: Receiver, header: str
) -> None:
    receiver.answers.append(Answer(503, b"busy", {"Retry-After": header}))
    receiver.verify_with = None  # signed at a fixed past time, which standardwebhooks refuses as too old
    sender = WebhookSender(session, clock=lambda: NOW)
    attempt = await sender.send(_endpoint(receiver.url()), new_webhook_id(), _body())
    assert (attempt.status, attempt.retry_after) == (503, 600.0)
    assert decide(1, attempt.outcome, attempt.retry_after, NOW, 0.0) == RetryAt(NOW + timedelta(seconds=600))


async def test_deliveries_to_one_endpoint_wait_for_a_turn_and_other_endpoints_do_not(
    session: aiohttp.ClientSession,
) -> None:
    async with Receiver() as slow, Receiver() as quick:
        sender = WebhookSender(session)
        busy = _endpoint(slow.url(), name="busy", max_concurrency=2)
        slow.answers.extend(Answer(hold=True) for _ in range(5))
        held = [asyncio.create_task(sender.send(busy, new_webhook_id(), _body())) for _ in range(5)]
        while len(slow.received) < 2:
            await asyncio.sleep(0.01)
        other = await sender.send(_endpoint(quick.url(), name="other", max_concurrency=1), "msg_q", _body())
        assert other.delivered
        assert len(slow.received) == 2  # the other three wait for a turn
        slow.release.set()
        attempts = await asyncio.gather(*held)
    assert all(a.delivered for a in attempts)
    assert len(slow.received) == 5 and slow.most_in_flight == 2
