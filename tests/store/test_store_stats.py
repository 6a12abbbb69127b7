"""stats(): the queue as the metrics endpoint reports it, the same on both stores."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

from grpc_server.domain.jobs import JobError
from grpc_server.store.base import JobStore
from tests.store.test_store_contract import LEASE, T0, _create, _job


async def test_an_empty_store_has_no_queue(store: JobStore) -> None:
    stats = await store.stats(T0)
    assert (stats.pending, stats.processing, stats.expired_leases) == (0, 0, 0)
    assert stats.oldest_pending_age_seconds == 0 and stats.oldest_processing_age_seconds == 0


async def test_counts_and_ages_of_pending_and_processing_jobs(store: JobStore, tmp_path: Path) -> None:
    await _create(store, tmp_path, _job(T0))
    await _create(store, tmp_path, _job(T0 + timedelta(seconds=10)))
    await _create(store, tmp_path, _job(T0 + timedelta(seconds=20)))
    [claimed] = await store.claim_jobs(
        "w1", 1, T0 + timedelta(seconds=30), T0 + timedelta(seconds=30) + LEASE
    )
    assert claimed.created_at == T0  # oldest first

    now = T0 + timedelta(seconds=40)  # the lease (30 s + 30 s) still runs
    stats = await store.stats(now)
    assert (stats.pending, stats.processing, stats.expired_leases) == (2, 1, 0)
    assert stats.oldest_pending_age_seconds == 30  # the job created at T0 + 10 s
    assert stats.oldest_processing_age_seconds == 40

    later = await store.stats(T0 + timedelta(seconds=61))  # past the lease: the worker is gone
    assert later.expired_leases == 1 and later.processing == 1


async def test_finished_jobs_leave_the_queue(store: JobStore, tmp_path: Path) -> None:
    job = await _create(store, tmp_path, _job(T0))
    await store.claim_jobs("w1", 1, T0, T0 + LEASE)
    await store.fail_job(job.id, "w1", JobError(status_code=502, message="no"), T0 + timedelta(seconds=1))
    stats = await store.stats(T0 + timedelta(seconds=2))
    assert (stats.pending, stats.processing, stats.oldest_processing_age_seconds) == (0, 0, 0)
