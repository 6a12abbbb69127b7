"""The dispatcher's leases, with a real SQLite store and a real provider fake: one renewal
statement covers every running job, a lost lease cancels only its own job's run (which
writes nothing), and a stop hands running jobs back to the queue."""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
from collections.abc import AsyncIterator, Collection
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import pytest

from grpc_server.config import ApiKey, DispatcherSettings, ProviderSettings
from grpc_server.dispatch.worker import Dispatcher
from grpc_server.domain.jobs import EmbeddingParams, Job, JobStatus, RequestType, new_job_id
from grpc_server.providers.factory import build_registry
from grpc_server.store.sqlite import SQLiteStore
from tests.conftest import fast_config
from tests.fakes.openai_server import FakeOpenAI

LEASE_SECONDS = 0.6
"""Renewed every 0.2 s: many renewals while the provider takes its time."""


class RecordingStore(SQLiteStore):
    """The real SQLite store, recording the lease renewals it is asked for."""

    def __init__(self, path: Path) -> None:
        super().__init__(path)
        self.batches: list[set[str]] = []
        self.single_renewals = 0

    async def renew_leases(self, worker: str, job_ids: Collection[str], lease_until: datetime) -> set[str]:
        self.batches.append(set(job_ids))
        return await super().renew_leases(worker, job_ids, lease_until)

    async def renew_lease(self, job_id: str, worker: str, lease_until: datetime) -> bool:
        self.single_renewals += 1
        return await super().renew_lease(job_id, worker, lease_until)


@dataclass
class Running:
    store: RecordingStore
    dispatcher: Dispatcher
    fake: FakeOpenAI
    jobs: list[Job]

    async def statuses(self) -> list[JobStatus]:
        found = [await self.store.get_job(job.id) for job in self.jobs]
        return [job.status for job in found if job is not None]

    async def until(self, status: JobStatus, count: int) -> None:
        while (await self.statuses()).count(status) < count:
            await asyncio.sleep(0.02)

    def calls_by_text(self) -> list[str]:
        return sorted(str(r.json["input"]) for r in self.fake.requests if isinstance(r.json, dict))


def _job(index: int) -> Job:
    params = EmbeddingParams(model="slow/embed", input=f"job {index}")
    return Job(new_job_id(), RequestType.EMBEDDING, JobStatus.PENDING, params, datetime.now(UTC), 600)


@contextlib.asynccontextmanager
async def running(
    tmp_path: Path, count: int, latency: float, concurrency: int = 64
) -> AsyncIterator[Running]:
    """`count` jobs submitted, then a dispatcher running `concurrency` at once against a fake
    answering after `latency` seconds, its safety poll an hour away; stopped (grace 0) on exit."""
    async with FakeOpenAI(api_key="sk-test") as fake:
        fake.latency = latency
        provider = ProviderSettings(
            kind="openai-compatible", keys=(ApiKey("sk-test"),), base_url=fake.base_url
        )
        config = fast_config(
            tmp_path,
            providers={"slow": provider},
            dispatcher=DispatcherSettings(
                concurrency=64, lease_seconds=LEASE_SECONDS, poll_interval_seconds=0.2
            ),
        )
        store = RecordingStore(tmp_path / "jobs.sqlite3")
        await store.open()
        registry = build_registry(config)
        dispatcher = Dispatcher(config, store, registry, lambda: datetime.now(UTC))
        jobs = [_job(i) for i in range(count)]
        for job in jobs:
            await store.create_job(job, [])
        loop = asyncio.create_task(dispatcher.run())
        try:
            yield Running(store, dispatcher, fake, jobs)
        finally:
            await dispatcher.stop(0)
            loop.cancel()
            await asyncio.gather(loop, return_exceptions=True)
            await registry.close()
            await store.close()


def _steal(database: Path, job_id: str) -> None:
    """What another replica does after its reaper took the lease back: the job is its own now."""
    with contextlib.closing(sqlite3.connect(database)) as conn, conn:
        conn.execute("UPDATE jobs SET lease_owner = 'another-replica' WHERE id = ?", (job_id,))


def _owner(database: Path, job_id: str) -> tuple[str, str | None]:
    with contextlib.closing(sqlite3.connect(database)) as conn:
        status, owner = conn.execute(
            "SELECT status, lease_owner FROM jobs WHERE id = ?", (job_id,)
        ).fetchone()
    return str(status), owner


async def test_one_renewal_covers_every_running_job(tmp_path: Path) -> None:
    async with running(tmp_path, 30, latency=1.0) as run:
        await run.until(JobStatus.COMPLETED, 30)
        store = run.store
    ids = {job.id for job in run.jobs}
    assert store.single_renewals == 0  # no write per job
    assert store.batches and store.batches[0] == ids  # one claim took them all; one statement renews them
    assert all(batch <= ids for batch in store.batches)
    assert run.calls_by_text() == sorted(f"job {i}" for i in range(30))


async def test_a_lost_lease_cancels_only_that_job_and_writes_nothing(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    async with running(tmp_path, 5, latency=3.0) as run:
        while len(run.fake.requests) < 5:
            await asyncio.sleep(0.02)
        stolen = run.jobs[0]
        _steal(run.store.path, stolen.id)
        while run.dispatcher.running > 4:  # the next renewal finds the lease gone
            await asyncio.sleep(0.02)
        assert await run.statuses() == [JobStatus.PROCESSING] * 5  # before any provider answered
        await run.until(JobStatus.COMPLETED, 4)
        assert run.dispatcher.running == 0
        statuses = await run.statuses()
    assert statuses == [JobStatus.PROCESSING] + [JobStatus.COMPLETED] * 4
    assert _owner(run.store.path, stolen.id) == ("processing", "another-replica")  # nothing written
    assert f"job {stolen.id}: lease lost; abandoning this run" in caplog.text
    assert len(run.fake.requests) == 5


async def test_a_stop_hands_running_jobs_back_with_their_attempt(tmp_path: Path) -> None:
    async with running(tmp_path, 3, latency=30.0) as run:
        while len(run.fake.requests) < 3:
            await asyncio.sleep(0.02)
        await run.dispatcher.stop(0)
        found = [await run.store.get_job(job.id) for job in run.jobs]
    assert [(job.status, job.attempts) for job in found if job is not None] == [(JobStatus.PENDING, 0)] * 3


async def test_jobs_beyond_the_concurrency_start_as_others_finish_without_the_safety_poll(
    tmp_path: Path,
) -> None:
    """Concurrency 2, the safety poll an hour away: a finished job claims the next one, and a
    job submitted while every slot is busy is claimed when one frees."""
    async with running(tmp_path, 5, latency=0.3, concurrency=2) as run:
        await run.until(JobStatus.PROCESSING, 2)
        late = _job(5)
        await run.store.create_job(late, [])
        run.dispatcher.wake()  # what the submit does
        run.jobs.append(late)
        await run.until(JobStatus.COMPLETED, 6)
    assert run.calls_by_text() == sorted(f"job {i}" for i in range(6))
