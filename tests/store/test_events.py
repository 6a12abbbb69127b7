"""Store events (subscribe): what each write publishes, on every backend; across replicas,
never for a rolled-back write, and through a lost listener connection on PostgreSQL.

No test waits for "nothing to happen": events of one store arrive in commit order, so a
write that must publish nothing is followed by a marker write whose event must come next.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager, suppress
from datetime import timedelta
from pathlib import Path
from typing import Any

import asyncpg
import pytest

from grpc_server.domain.jobs import OutputBlob
from grpc_server.store import pg_events
from grpc_server.store.base import JobStore, StagedFile, StoreEvent
from grpc_server.store.migrate import migrate
from grpc_server.store.pg_events import event_channel, parse_event
from grpc_server.store.postgres import PostgresStore
from tests.pg import TEST_DATABASE_URL, server_address, with_address
from tests.store.conftest import fresh_schema, postgres_store
from tests.store.test_store_contract import ERROR, LEASE, T0, _create, _job, _result, _staged

WAIT_SECONDS = 30.0
"""A bound on waiting for an event that must come: a hang fails the test, it never times it."""
RECHECK = StoreEvent("submitted", "")


class Events:
    """A subscriber that queues what it is given."""

    def __init__(self) -> None:
        self.queue: asyncio.Queue[StoreEvent] = asyncio.Queue()

    def __call__(self, event: StoreEvent) -> None:
        self.queue.put_nowait(event)

    async def next(self) -> StoreEvent:
        async with asyncio.timeout(WAIT_SECONDS):
            return await self.queue.get()

    async def expect(self, *expected: StoreEvent) -> None:
        assert [await self.next() for _ in expected] == list(expected)


@pytest.fixture
async def events(store: JobStore) -> Events:
    subscriber = Events()
    await store.subscribe(subscriber)
    return subscriber


async def _marker(store: JobStore, tmp_path: Path, events: Events) -> None:
    """A write whose event must be the next one: proves nothing was published before it."""
    marker = await _create(store, tmp_path)
    await events.expect(StoreEvent("submitted", marker.id))


# Every backend.


async def test_a_submit_publishes_submitted(store: JobStore, events: Events, tmp_path: Path) -> None:
    job = await _create(store, tmp_path)
    await events.expect(StoreEvent("submitted", job.id))


async def test_a_completion_publishes_completed(store: JobStore, events: Events, tmp_path: Path) -> None:
    job = await _create(store, tmp_path)
    await store.claim_jobs("w1", 1, T0, T0 + LEASE)
    await store.renew_lease(job.id, "w1", T0 + 2 * LEASE)  # not an event
    assert not await store.complete_job(job.id, "intruder", _result(job, 0), [], T0)  # nor a lost CAS
    assert await store.complete_job(job.id, "w1", _result(job, 1), [OutputBlob(b"img", "image/png")], T0)
    await events.expect(
        StoreEvent("submitted", job.id), StoreEvent("claimed", job.id), StoreEvent("completed", job.id)
    )
    await _marker(store, tmp_path, events)


async def test_a_failure_publishes_failed(store: JobStore, events: Events, tmp_path: Path) -> None:
    running = await _create(store, tmp_path)
    pending = await _create(store, tmp_path, _job(T0 + timedelta(seconds=1)))
    await store.claim_jobs("w1", 1, T0, T0 + LEASE)
    assert await store.fail_job(running.id, "w1", ERROR, T0)
    assert await store.fail_job(pending.id, None, ERROR, T0)  # a pending job fails without a worker
    assert not await store.fail_job(pending.id, None, ERROR, T0)  # terminal is final: no event
    await events.expect(
        StoreEvent("submitted", running.id),
        StoreEvent("submitted", pending.id),
        StoreEvent("claimed", running.id),
        StoreEvent("failed", running.id),
        StoreEvent("failed", pending.id),
    )
    await _marker(store, tmp_path, events)


async def test_a_release_publishes_requeued(store: JobStore, events: Events, tmp_path: Path) -> None:
    job = await _create(store, tmp_path)
    await store.claim_jobs("w1", 1, T0, T0 + LEASE)
    assert not await store.release_job(job.id, "w2")
    assert await store.release_job(job.id, "w1")
    await events.expect(
        StoreEvent("submitted", job.id), StoreEvent("claimed", job.id), StoreEvent("requeued", job.id)
    )
    await _marker(store, tmp_path, events)


async def test_a_requeue_publishes_requeued(store: JobStore, events: Events, tmp_path: Path) -> None:
    job = await _create(store, tmp_path)
    await store.claim_jobs("w1", 1, T0, T0 + LEASE)
    assert not await store.requeue_job(job.id, "w2")  # a lost compare-and-set publishes nothing
    assert await store.requeue_job(job.id, "w1", refund_attempt=False)
    await events.expect(
        StoreEvent("submitted", job.id), StoreEvent("claimed", job.id), StoreEvent("requeued", job.id)
    )
    await _marker(store, tmp_path, events)


async def test_the_reaper_publishes_requeued_then_failed(
    store: JobStore, events: Events, tmp_path: Path
) -> None:
    job = await _create(store, tmp_path)
    other = await _create(store, tmp_path, _job(T0 + timedelta(seconds=1)))
    await store.claim_jobs("dead", 2, T0, T0 + LEASE)
    assert (await store.reap_expired_leases(T0, 2, ERROR)).requeued == 0  # leases still valid: no event
    assert (await store.reap_expired_leases(T0 + 2 * LEASE, 2, ERROR)).requeued == 2
    await events.expect(StoreEvent("submitted", job.id), StoreEvent("submitted", other.id))
    assert {await events.next(), await events.next()} == {
        StoreEvent("claimed", job.id),
        StoreEvent("claimed", other.id),
    }
    assert {await events.next(), await events.next()} == {
        StoreEvent("requeued", job.id),
        StoreEvent("requeued", other.id),
    }
    later = T0 + 2 * LEASE
    await store.claim_jobs("dead-again", 1, later, later + LEASE)  # `job`, the oldest, on its last attempt
    reaped = await store.reap_expired_leases(later + 2 * LEASE, 2, ERROR)
    assert (reaped.requeued, reaped.failed) == (0, 1)
    await events.expect(StoreEvent("claimed", job.id), StoreEvent("failed", job.id))
    await _marker(store, tmp_path, events)


async def test_a_rolled_back_submit_publishes_nothing(
    store: JobStore, events: Events, tmp_path: Path
) -> None:
    missing = StagedFile(_staged(tmp_path, 10).info, tmp_path / "does-not-exist")
    with pytest.raises(OSError):
        await store.create_job(_job(), [_staged(tmp_path, 10), missing])
    await _marker(store, tmp_path, events)


async def test_every_subscriber_hears_even_when_one_fails(
    store: JobStore, events: Events, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    def broken(event: StoreEvent) -> None:
        raise RuntimeError("subscriber bug")

    second = Events()
    await store.subscribe(broken)
    await store.subscribe(second)
    job = await _create(store, tmp_path)  # the write itself is not hurt
    await events.expect(StoreEvent("submitted", job.id))
    await second.expect(StoreEvent("submitted", job.id))
    assert "a store event subscriber failed" in caplog.text


# PostgreSQL only.


def test_payloads_and_channels() -> None:
    assert parse_event("completed:job-1") == StoreEvent("completed", "job-1")
    assert parse_event("requeued:a:b") == StoreEvent("requeued", "a:b")
    assert parse_event("exploded:job-1") is None and parse_event("submitted") is None
    assert event_channel(None) == "asyncgate_events"
    assert event_channel("t_x") == "asyncgate_events_t_x"
    long = event_channel("s" * 100)
    assert len(long) <= 63 and long != event_channel("s" * 99)


@pytest.fixture
async def migrated(pg_schema: str) -> str:
    await migrate(TEST_DATABASE_URL, schema=pg_schema)
    return pg_schema


@asynccontextmanager
async def _subscribed(
    schema: str, dsn: str = TEST_DATABASE_URL
) -> AsyncIterator[tuple[PostgresStore, Events]]:
    """A replica: its own store (pool and listener) on `schema`, with a subscriber."""
    store = PostgresStore(dsn, schema=schema, max_size=2)
    await store.open()
    try:
        events = Events()
        await store.subscribe(events)
        yield store, events
    finally:
        await store.close()


async def test_an_event_reaches_every_replica_of_its_schema_only(migrated: str, tmp_path: Path) -> None:
    async with (
        _subscribed(migrated) as (a, a_events),
        _subscribed(migrated) as (b, b_events),
        fresh_schema() as elsewhere,
    ):
        await migrate(TEST_DATABASE_URL, schema=elsewhere)
        async with _subscribed(elsewhere) as (c, c_events):
            job = await _create(a, tmp_path)
            await b.claim_jobs("w", 1, T0, T0 + LEASE)
            assert await b.complete_job(job.id, "w", _result(job, 0), [], T0)
            for events in (a_events, b_events):  # the writer hears its own events too
                await events.expect(
                    StoreEvent("submitted", job.id),
                    StoreEvent("claimed", job.id),
                    StoreEvent("completed", job.id),
                )
            await _marker(c, tmp_path, c_events)  # another schema heard nothing


async def test_a_rolled_back_write_is_heard_by_no_replica(migrated: str, tmp_path: Path) -> None:
    async with _subscribed(migrated) as (a, _), _subscribed(migrated) as (_, b_events):
        missing = StagedFile(_staged(tmp_path, 10).info, tmp_path / "does-not-exist")
        with pytest.raises(OSError):
            await a.create_job(_job(), [_staged(tmp_path, 10), missing])
        job = await _create(a, tmp_path)
        await b_events.expect(StoreEvent("submitted", job.id))


@pytest.fixture
async def admin() -> AsyncIterator[asyncpg.Connection]:
    """A connection opened before any test patches asyncpg.connect."""
    conn = await asyncpg.connect(TEST_DATABASE_URL)
    yield conn
    await conn.close()


async def _terminate(admin: asyncpg.Connection, pid: int | None) -> None:
    """Kill a backend, as a server restart or an administrator would."""
    assert pid is not None
    assert await admin.fetchval("SELECT pg_terminate_backend($1)", pid)


def _messages(caplog: pytest.LogCaptureFixture, prefix: str) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.getMessage().startswith(prefix)]


async def test_the_listener_survives_a_terminated_connection(
    migrated: str,
    tmp_path: Path,
    admin: asyncpg.Connection,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    attempts = 0
    fail_connects = asyncio.Event()  # set: the database refuses new connections (an outage)
    real_connect = asyncpg.connect

    async def flaky_connect(*args: Any, **kwargs: Any) -> asyncpg.Connection:
        nonlocal attempts
        attempts += 1
        if fail_connects.is_set():
            raise ConnectionRefusedError("the database is down")
        return await real_connect(*args, **kwargs)

    monkeypatch.setattr(pg_events, "RECONNECT_MIN_SECONDS", 0.01)
    monkeypatch.setattr(asyncpg, "connect", flaky_connect)
    async with _subscribed(migrated) as (listening, events), postgres_store(migrated) as writer:
        first_pid = listening.listener_pid
        fail_connects.set()
        attempts = 0
        with caplog.at_level(logging.WARNING, logger="asyncgate.store"):
            await _terminate(admin, first_pid)
            async with asyncio.timeout(WAIT_SECONDS):
                while attempts < 3:  # an outage of several failed reconnections
                    await asyncio.sleep(0.01)
            fail_connects.clear()
            await events.expect(RECHECK)  # listening again: re-check the queue
        assert _messages(caplog, "lost the store event connection") == [  # once per outage, not per attempt
            "lost the store event connection (the connection was closed);"
            " reconnecting, the safety poll covers meanwhile"
        ]
        assert listening.listener_pid not in (None, first_pid)

        job = await _create(writer, tmp_path)
        await events.expect(StoreEvent("submitted", job.id))

        # A second outage, healed at the first retry: recovers just the same.
        await _terminate(admin, listening.listener_pid)
        await events.expect(RECHECK)
        job = await _create(writer, tmp_path)
        await events.expect(StoreEvent("submitted", job.id))


class _Relay:
    """A TCP relay to PostgreSQL that can go silent: it stops forwarding without closing
    anything, as a network cut does when no FIN or RST ever arrives."""

    def __init__(self, host: str, port: int) -> None:
        self.target = (host, port)
        self.port = 0
        self.flowing = asyncio.Event()
        self.flowing.set()
        self.accepted = 0
        self._server: asyncio.Server | None = None
        self._writers: list[asyncio.StreamWriter] = []

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._relay, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]

    async def _relay(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.accepted += 1
        self._writers.append(writer)
        await self.flowing.wait()
        up_reader, up_writer = await asyncio.open_connection(*self.target)
        self._writers.append(up_writer)

        async def pipe(src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
            with suppress(OSError):
                while True:
                    await self.flowing.wait()
                    data = await src.read(65536)
                    if not data:
                        break
                    await self.flowing.wait()  # read while flowing, then cut: hold it back
                    dst.write(data)
                    await dst.drain()
            dst.close()

        await asyncio.gather(pipe(reader, up_writer), pipe(up_reader, writer))

    async def close(self) -> None:
        assert self._server is not None
        self.flowing.set()
        self._server.close()
        for writer in self._writers:
            writer.close()
        await self._server.wait_closed()


async def test_the_listener_finds_a_silent_network_cut(
    migrated: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    relay = _Relay(*server_address(TEST_DATABASE_URL))
    await relay.start()
    dsn = with_address(TEST_DATABASE_URL, "127.0.0.1", relay.port)
    monkeypatch.setattr(pg_events, "LISTEN_HEARTBEAT_SECONDS", 0.05)
    monkeypatch.setattr(pg_events, "CONNECT_TIMEOUT_SECONDS", 0.5)
    monkeypatch.setattr(pg_events, "RECONNECT_MIN_SECONDS", 0.01)
    try:
        async with _subscribed(migrated, dsn) as (_, events), postgres_store(migrated) as writer:
            job = await _create(writer, tmp_path)
            await events.expect(StoreEvent("submitted", job.id))
            accepted = relay.accepted
            with caplog.at_level(logging.WARNING, logger="asyncgate.store"):
                relay.flowing.clear()
                try:
                    async with asyncio.timeout(WAIT_SECONDS):
                        while relay.accepted < accepted + 2:  # heartbeat failed; reconnections time out
                            await asyncio.sleep(0.01)
                finally:
                    relay.flowing.set()  # even on failure: closing the stores needs the network
                await events.expect(RECHECK)
            assert _messages(caplog, "lost the store event connection") == [
                "lost the store event connection (no answer to a heartbeat);"
                " reconnecting, the safety poll covers meanwhile"
            ]
            job = await _create(writer, tmp_path)
            await events.expect(StoreEvent("submitted", job.id))
    finally:
        await relay.close()


async def test_a_store_subscribed_while_the_database_is_down_listens_once_it_is_up(
    migrated: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    refuse = True
    real_connect = asyncpg.connect

    async def connect(*args: Any, **kwargs: Any) -> asyncpg.Connection:
        if refuse:
            raise ConnectionRefusedError("the database is down")
        return await real_connect(*args, **kwargs)

    monkeypatch.setattr(pg_events, "RECONNECT_MIN_SECONDS", 0.01)
    monkeypatch.setattr(asyncpg, "connect", connect)
    async with postgres_store(migrated) as store:
        events = Events()
        with caplog.at_level(logging.WARNING, logger="asyncgate.store"):
            await store.subscribe(events)  # no error: events are best effort
        assert "cannot listen for store events" in caplog.text
        assert store.listener_pid is None
        refuse = False
        await events.expect(RECHECK)
        job = await _create(store, tmp_path)
        await events.expect(StoreEvent("submitted", job.id))
    assert store.listener_pid is None  # close() stopped it
