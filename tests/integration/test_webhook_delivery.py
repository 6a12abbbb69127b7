"""The delivery loop on a real store (SQLite and PostgreSQL) to real receivers on 127.0.0.1,
each delivery verified there with the standardwebhooks package: a job's end is delivered; a
failing receiver gets the event again under the same webhook-id; a 410 disables the endpoint
for every deliverer; two deliverers sharing PostgreSQL deliver every event of many jobs once."""

from __future__ import annotations

import asyncio
import json
from collections import Counter
from collections.abc import AsyncIterator, Callable
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

import aiohttp
import pytest

from grpc_server.config import WebhookEndpoint
from grpc_server.store.base import JobStore
from grpc_server.store.migrate import migrate
from grpc_server.store.outbox import DeliveryRecord
from grpc_server.store.sqlite import SQLiteStore
from grpc_server.webhooks.deliverer import Deliverer
from grpc_server.webhooks.outbox import EndpointPlan
from grpc_server.webhooks.sender import WebhookSender
from tests.integration.test_webhook_sender import SECRET, Answer, Receiver
from tests.pg import TEST_DATABASE_URL
from tests.store.conftest import fresh_schema, postgres_store
from tests.store.test_store_contract import ERROR, LEASE, T0, _create, _job, _result


def _now() -> datetime:
    return datetime.now(UTC)


async def until(condition: Callable[[], bool], what: str, limit: float = 30.0) -> None:
    """Wait for `condition`; fail naming `what` if it never holds (a hang guard, not a timing check)."""
    async with asyncio.timeout(limit):
        while not condition():
            await asyncio.sleep(0.02)
    assert condition(), what


async def settled(store: JobStore, endpoint: str = "orders") -> list[DeliveryRecord]:
    """The endpoint's log once no event is pending (the last attempt recorded)."""
    async with asyncio.timeout(30.0):
        while True:
            log = await store.list_webhook_deliveries(endpoint, 100)
            if all(d.state != "pending" for d in log):
                return log
            await asyncio.sleep(0.02)


@asynccontextmanager
async def _sqlite(tmp_path: Path) -> AsyncIterator[JobStore]:
    store = SQLiteStore(tmp_path / "store.sqlite3")
    await store.open()
    try:
        yield store
    finally:
        await store.close()


@pytest.fixture(params=["sqlite", "postgres"])
async def store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[JobStore]:
    if request.param == "sqlite":
        async with _sqlite(tmp_path) as sqlite:
            yield sqlite
        return
    async with fresh_schema() as schema:
        await migrate(TEST_DATABASE_URL, schema=schema)
        async with postgres_store(schema) as pg:
            yield pg


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    async with Receiver() as running:
        yield running


def _endpoint(receiver: Receiver, **settings: object) -> WebhookEndpoint:
    defaults: dict[str, object] = {"name": "orders", "url": receiver.url(), "secrets": (SECRET,)}
    return WebhookEndpoint(**{**defaults, **settings})  # type: ignore[arg-type]


@asynccontextmanager
async def delivering(store: JobStore, endpoint: WebhookEndpoint) -> AsyncIterator[Deliverer]:
    """A running delivery loop for `endpoint` on `store` (its plan installed)."""
    store.use_webhooks(EndpointPlan([endpoint]))
    async with aiohttp.ClientSession() as session:
        deliverer = Deliverer(store, [endpoint], WebhookSender(session), _now, poll_seconds=0.05)
        await store.subscribe(deliverer.on_store_event)
        task = asyncio.create_task(deliverer.run())
        try:
            yield deliverer
        finally:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)


async def _fail(store: JobStore, tmp_path: Path, webhook: str = "orders") -> str:
    job = await _create(store, tmp_path, replace(_job(), webhook=webhook))
    await store.claim_jobs("w1", 100, T0, T0 + LEASE)
    assert await store.fail_job(job.id, "w1", ERROR, _now())
    return job.id


async def test_a_completed_job_is_delivered_signed(
    store: JobStore, tmp_path: Path, receiver: Receiver
) -> None:
    async with delivering(store, _endpoint(receiver)):
        job = await _create(store, tmp_path, replace(_job(), webhook="orders"))
        await store.claim_jobs("w1", 1, T0, T0 + LEASE)
        assert await store.complete_job(job.id, "w1", _result(job, 1), [], _now())
        await until(lambda: len(receiver.received) == 1, "the event arrives")
        (logged,) = await settled(store)
    (got,) = receiver.received
    assert got.verified and got.headers["webhook-id"].startswith("msg_")
    event = json.loads(got.body)
    assert event["type"] == "async_job.completed" and event["data"]["id"] == job.id
    assert event["data"]["status"] == "completed" and event["data"]["webhook"] == "orders"
    assert logged.webhook_id == got.headers["webhook-id"] and logged.state == "delivered"
    assert [a.status for a in logged.attempts] == [200] and logged.next_attempt_at is None


async def test_a_failing_receiver_gets_the_event_again_under_the_same_id(
    store: JobStore, tmp_path: Path, receiver: Receiver
) -> None:
    receiver.answers.extend([Answer(503, b"busy"), Answer(204, b"")])
    async with delivering(store, _endpoint(receiver, retry_schedule_seconds=(0.2, 0.2))):
        await _fail(store, tmp_path)
        await until(lambda: len(receiver.received) == 2, "the retry arrives")
        (logged,) = await settled(store)
    first, second = receiver.received
    assert first.verified and second.verified and first.body == second.body
    assert first.headers["webhook-id"] == second.headers["webhook-id"]
    assert logged.state == "delivered" and [a.status for a in logged.attempts] == [503, 204]
    assert logged.attempts[0].excerpt == "busy"


async def test_a_410_disables_the_endpoint(store: JobStore, tmp_path: Path, receiver: Receiver) -> None:
    receiver.answers.append(Answer(410, b"gone"))
    async with delivering(store, _endpoint(receiver)):
        await _fail(store, tmp_path)
        await until(lambda: len(receiver.received) == 1, "the first event arrives")
        for _ in range(200):
            if await store.disabled_webhook_endpoints():
                break
            await asyncio.sleep(0.02)
        assert await store.disabled_webhook_endpoints() == {"orders"}
        second = await _fail(store, tmp_path)
        await asyncio.sleep(0.3)  # several polls: nothing may be sent
    assert len(receiver.received) == 1
    states = {d.job_id: d.state for d in await store.list_webhook_deliveries("orders", 10)}
    assert states[second] == "pending"  # kept, not sent: redeliverable once enabled again


async def test_two_deliverers_on_postgres_deliver_every_event_once(
    tmp_path: Path, receiver: Receiver
) -> None:
    endpoint = _endpoint(receiver, max_concurrency=4)
    async with fresh_schema() as schema:
        await migrate(TEST_DATABASE_URL, schema=schema)
        async with AsyncExitStack() as stack:
            first = await stack.enter_async_context(postgres_store(schema))
            second = await stack.enter_async_context(postgres_store(schema))
            await stack.enter_async_context(delivering(first, endpoint))
            await stack.enter_async_context(delivering(second, endpoint))
            job_ids = [await _fail(first if n % 2 else second, tmp_path) for n in range(60)]
            await until(lambda: len(receiver.received) >= 60, "every event arrives")
            await asyncio.sleep(0.3)  # a duplicate, if any, would arrive meanwhile
    ids = Counter(r.headers["webhook-id"] for r in receiver.received)
    assert len(ids) == 60 and set(ids.values()) == {1}
    assert all(r.verified for r in receiver.received)
    assert {json.loads(r.body)["data"]["id"] for r in receiver.received} == set(job_ids)
