"""A virtual key's limits, checked by create_job in the transaction that would insert the job:
refused before any job exists, counted in the store (so across replicas), on both stores."""

from __future__ import annotations

import asyncio
from contextlib import AsyncExitStack
from dataclasses import replace
from datetime import timedelta

import pytest

from grpc_server.domain.errors import RateLimited, TooManyJobsInFlight
from grpc_server.domain.jobs import InputFile, Job
from grpc_server.store.admission import IN_FLIGHT_RETRY_AFTER_SECONDS, AdmissionLimits, KeyPolicy
from grpc_server.store.base import JobStore, StagedFile
from grpc_server.store.migrate import migrate
from tests.pg import TEST_DATABASE_URL
from tests.store.conftest import postgres_store
from tests.store.test_store_contract import ERROR, LEASE, T0, _job

LIMITED = "vk-a"  # the owner of the contract suite's jobs


def _files() -> list[StagedFile]:
    return [StagedFile(InputFile("image", 0, "a.png", "image/png", 3, 1, 1), b"png")]


def _limit(store: JobStore, *, in_flight: int | None = None, per_minute: int | None = None) -> None:
    store.use_key_policy(KeyPolicy(limits={LIMITED: AdmissionLimits(in_flight, per_minute)}))


def _other_key(job: Job) -> Job:
    return replace(job, owner_key_id="vk-b")


async def test_a_key_at_max_jobs_in_flight_is_refused_until_one_ends(store: JobStore) -> None:
    _limit(store, in_flight=2)
    first, second = _job(T0), _job(T0 + timedelta(seconds=1))
    for job in (first, second):
        await store.create_job(job, _files())
    refused = _job(T0 + timedelta(seconds=2))
    with pytest.raises(TooManyJobsInFlight) as caught:
        await store.create_job(refused, _files())
    assert caught.value.retry_after_seconds == IN_FLIGHT_RETRY_AFTER_SECONDS
    assert await store.get_job(refused.id) is None  # refused before any job exists
    await store.create_job(_other_key(_job(T0 + timedelta(seconds=9))), _files())  # not counted
    [claimed] = await store.claim_jobs("w", 1, T0, T0 + LEASE)
    with pytest.raises(TooManyJobsInFlight):  # processing still counts
        await store.create_job(_job(T0 + timedelta(seconds=3)), _files())
    assert await store.fail_job(claimed.id, "w", ERROR, T0)
    admitted = _job(T0 + timedelta(seconds=4))
    await store.create_job(admitted, _files())
    assert await store.get_job(admitted.id) is not None


async def test_submits_per_minute_slide_with_the_window_and_say_when(store: JobStore) -> None:
    _limit(store, per_minute=2)
    await store.create_job(_job(T0), _files())
    await store.create_job(_job(T0 + timedelta(seconds=10)), _files())
    refused = _job(T0 + timedelta(seconds=20))
    with pytest.raises(RateLimited) as caught:
        await store.create_job(refused, _files())
    assert type(caught.value) is RateLimited
    assert caught.value.retry_after_seconds == 40  # when the job of T0 leaves the minute
    assert await store.get_job(refused.id) is None
    await store.create_job(_job(T0 + timedelta(seconds=61)), _files())  # T0's has left it
    with pytest.raises(RateLimited) as again:
        await store.create_job(_job(T0 + timedelta(seconds=62)), _files())
    assert again.value.retry_after_seconds == 8  # T0 + 10 s leaves at T0 + 70 s


async def test_a_key_without_limits_is_not_limited(store: JobStore) -> None:
    _limit(store, in_flight=1, per_minute=1)
    for i in range(5):
        await store.create_job(_other_key(_job(T0 + timedelta(milliseconds=i))), _files())
    assert len(await store.claim_jobs("w", 10, T0, T0 + LEASE)) == 5


async def test_concurrent_submits_never_exceed_max_jobs_in_flight(store: JobStore) -> None:
    _limit(store, in_flight=3)
    jobs = [_job(T0 + timedelta(milliseconds=i)) for i in range(12)]
    outcomes = await asyncio.gather(*(store.create_job(j, _files()) for j in jobs), return_exceptions=True)
    assert sum(o is None for o in outcomes) == 3
    assert all(isinstance(o, TooManyJobsInFlight) for o in outcomes if o is not None)
    assert len(await store.claim_jobs("w", 20, T0, T0 + LEASE)) == 3


async def test_replicas_submitting_at_once_never_exceed_max_jobs_in_flight(pg_schema: str) -> None:
    """Two PostgreSQL replicas (each its own pool) race 40 submits of one key with a limit of 5."""
    await migrate(TEST_DATABASE_URL, schema=pg_schema)
    async with AsyncExitStack() as stack:
        replicas = [await stack.enter_async_context(postgres_store(pg_schema, max_size=4)) for _ in range(2)]
        for replica in replicas:
            _limit(replica, in_flight=5, per_minute=8)
        jobs = [_job(T0 + timedelta(milliseconds=i)) for i in range(40)]
        outcomes = await asyncio.gather(
            *(replicas[i % 2].create_job(job, _files()) for i, job in enumerate(jobs)),
            return_exceptions=True,
        )
        assert sum(o is None for o in outcomes) == 5
        assert all(isinstance(o, TooManyJobsInFlight) for o in outcomes if o is not None)
        claimed = await replicas[0].claim_jobs("w", 50, T0, T0 + LEASE)
        assert len(claimed) == 5
        for job in claimed:  # all ended: the in-flight count is free, the minute's is not
            assert await replicas[0].fail_job(job.id, "w", ERROR, T0)
        later = [_job(T0 + timedelta(seconds=1, milliseconds=i)) for i in range(10)]
        outcomes = await asyncio.gather(
            *(replicas[i % 2].create_job(job, _files()) for i, job in enumerate(later)),
            return_exceptions=True,
        )
        assert sum(o is None for o in outcomes) == 3  # 8 per minute, 5 used
        assert all(type(o) is RateLimited for o in outcomes if o is not None)
