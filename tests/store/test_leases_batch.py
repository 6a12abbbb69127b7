"""Leases in bulk, for every backend: one claim takes many jobs, one renewal statement extends
every lease a worker still holds and names the ones it no longer does."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

from grpc_server.domain.jobs import (
    EmbeddingParams,
    EmbeddingResult,
    ExtraFields,
    Job,
    JobError,
    JobStatus,
    RequestType,
    new_job_id,
)
from grpc_server.store.base import JobStore

T0 = datetime(2026, 12, 4, 12, 0, tzinfo=UTC)
LEASE = timedelta(seconds=30)
ERROR = JobError(status_code=502, message="provider failed", type="api_error")
MANY = 1200
"""More ids than SQLite's old limit of 999 bound variables per statement."""


def _job(index: int) -> Job:
    params = EmbeddingParams(model="bench/embed", input=f"text {index}")
    return Job(
        new_job_id(), RequestType.EMBEDDING, JobStatus.PENDING, params, T0 + timedelta(milliseconds=index), 60
    )


async def _pending(store: JobStore, count: int) -> list[Job]:
    jobs = [_job(i) for i in range(count)]
    await asyncio.gather(*(store.create_job(job, []) for job in jobs))
    return jobs


async def test_one_claim_takes_many_jobs_oldest_first(store: JobStore) -> None:
    jobs = await _pending(store, MANY + 10)
    claimed = await store.claim_jobs("w1", MANY, T0, T0 + LEASE)
    assert sorted(j.id for j in claimed) == sorted(j.id for j in jobs[:MANY])
    assert all(j.status == JobStatus.PROCESSING and j.attempts == 1 for j in claimed)
    rest = await store.claim_jobs("w2", MANY, T0, T0 + LEASE)
    assert sorted(j.id for j in rest) == sorted(j.id for j in jobs[MANY:])


async def test_one_renewal_extends_every_lease_held(store: JobStore) -> None:
    jobs = await _pending(store, MANY)
    await store.claim_jobs("w1", MANY, T0, T0 + LEASE)
    ids = [j.id for j in jobs]
    assert await store.renew_leases("w1", ids, T0 + 2 * LEASE) == set(ids)
    # The reaper sees the new leases: none expired past the first, all past the second.
    assert (await store.reap_expired_leases(T0 + 1.5 * LEASE, 3, ERROR)).requeued == 0
    assert (await store.reap_expired_leases(T0 + 2.5 * LEASE, 3, ERROR)).requeued == MANY


async def test_renewal_names_only_the_leases_still_held(store: JobStore) -> None:
    completed, failed, released, other, reaped, held, never = await _pending(store, 7)
    await store.claim_jobs("w1", 6, T0, T0 + LEASE)  # `never` stays pending
    await store.requeue_job(other.id, "w1")
    await store.claim_jobs("w2", 1, T0, T0 + 3 * LEASE)  # `other`, now another worker's
    result = EmbeddingResult("embed", 0, 0, "float", ExtraFields("bench", "embed", "embedding"))
    assert await store.complete_job(completed.id, "w1", result, [], T0)
    assert await store.fail_job(failed.id, "w1", ERROR, T0)
    assert await store.release_job(released.id, "w1")
    # Only `reaped` expires: `other` holds a longer lease, `held` is renewed first.
    assert await store.renew_leases("w1", [held.id], T0 + 3 * LEASE) == {held.id}
    assert (await store.reap_expired_leases(T0 + 2 * LEASE, 3, ERROR)).requeued == 1
    ids = [j.id for j in (completed, failed, released, other, reaped, held, never)]

    assert await store.renew_leases("w1", ids, T0 + 4 * LEASE) == {held.id}
    assert await store.renew_leases("w1", [], T0 + 4 * LEASE) == set()
    # w2's lease was not extended by w1's renewal: it expires at 3 x LEASE, `held` at 4 x LEASE.
    assert (await store.reap_expired_leases(T0 + 3.5 * LEASE, 3, ERROR)).requeued == 1
    assert await store.renew_leases("w2", ids, T0 + 5 * LEASE) == set()
    assert await store.renew_leases("w1", ids, T0 + 5 * LEASE) == {held.id}


async def test_renewing_one_lease_agrees_with_the_batch(store: JobStore) -> None:
    job, taken = await _pending(store, 2)
    await store.claim_jobs("w1", 2, T0, T0 + LEASE)
    assert await store.renew_lease(job.id, "w1", T0 + 2 * LEASE)
    assert not await store.renew_lease(job.id, "w2", T0 + 2 * LEASE)
    await store.requeue_job(taken.id, "w1")
    assert not await store.renew_lease(taken.id, "w1", T0 + 2 * LEASE)
