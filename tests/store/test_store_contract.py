"""The store protocol's promises, for every backend: atomic creation, leased claims,
compare-and-set outcomes, reaping, sweeping, chunked blobs."""

from __future__ import annotations

import asyncio
import os
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from grpc_server.domain.jobs import (
    PARAMS_BY_TYPE,
    ExtraFields,
    ImageEditParams,
    ImageResult,
    InputFile,
    Job,
    JobError,
    JobStatus,
    OutputBlob,
    RequestType,
    ResultImage,
    new_job_id,
)
from grpc_server.store.base import CHUNK_BYTES, JobStore, StagedFile

T0 = datetime(2026, 11, 21, 12, 0, tzinfo=UTC)
LEASE = timedelta(seconds=30)
ERROR = JobError(status_code=502, message="provider failed", type="api_error")


def _job(created_at: datetime = T0, ttl: int = 60) -> Job:
    return Job(
        new_job_id(),
        RequestType.IMAGE_EDIT,
        JobStatus.PENDING,
        ImageEditParams(model="local/pillow", prompt="p", fallbacks=("openai/x",), extra_params={"k": "v"}),
        created_at,
        ttl_seconds=ttl,
        owner_key_id="vk-a",
    )


def _staged(tmp_path: Path, size: int, role: str = "image", index: int = 0) -> StagedFile:
    path = tmp_path / f"{role}-{index}-{size}"
    path.write_bytes(os.urandom(size))
    info = InputFile(role, index, f"{role}.png", "image/png", size, 8, 8)  # type: ignore[arg-type]
    return StagedFile(info, path)


def _result(job: Job, count: int) -> ImageResult:
    images = tuple(ResultImage(stored_index=i, content_type="image/png", size_bytes=10) for i in range(count))
    return ImageResult(
        1, images, "url", ExtraFields("local", "pillow", "image_edit"), usage={"total_tokens": 3}
    )


async def _create(store: JobStore, tmp_path: Path, job: Job | None = None) -> Job:
    job = job or _job()
    staged = [_staged(tmp_path, 100)]
    await store.create_job(job, staged)
    return job


async def test_create_and_get_round_trip(store: JobStore, tmp_path: Path) -> None:
    job = _job()
    files = [
        _staged(tmp_path, 3 * CHUNK_BYTES + 5),
        _staged(tmp_path, 10, "image", 1),
        _staged(tmp_path, 7, "mask"),
    ]
    await store.create_job(job, files)
    got = await store.get_job(job.id)
    assert got is not None
    assert (got.id, got.status, got.params, got.owner_key_id, got.ttl_seconds) == (
        job.id,
        JobStatus.PENDING,
        job.params,
        "vk-a",
        60,
    )
    assert got.created_at == job.created_at
    assert [f.info for f in files] == list(got.inputs)
    exported = await store.export_inputs(job.id, tmp_path / "out")
    assert [e.path.read_bytes() for e in exported] == [f.path.read_bytes() for f in files]


@pytest.fixture(autouse=True)
def _out_dir(tmp_path: Path) -> None:
    (tmp_path / "out").mkdir()


async def test_unknown_job_is_none(store: JobStore) -> None:
    assert await store.get_job(new_job_id()) is None


async def test_a_failed_create_leaves_nothing(store: JobStore, tmp_path: Path) -> None:
    job = _job()
    missing = StagedFile(_staged(tmp_path, 10).info, tmp_path / "does-not-exist")
    with pytest.raises(OSError):
        await store.create_job(job, [_staged(tmp_path, 10), missing])
    assert await store.get_job(job.id) is None


async def test_claims_oldest_first_and_each_job_once(store: JobStore, tmp_path: Path) -> None:
    jobs = [await _create(store, tmp_path, _job(T0 + timedelta(seconds=i))) for i in range(5)]
    first = await store.claim_jobs("w1", 2, T0, T0 + LEASE)
    second = await store.claim_jobs("w2", 10, T0, T0 + LEASE)
    assert [j.id for j in first] == [j.id for j in jobs[:2]]
    assert {j.id for j in second} == {j.id for j in jobs[2:]}
    assert all(j.status == JobStatus.PROCESSING and j.attempts == 1 for j in first + second)
    assert await store.claim_jobs("w3", 10, T0, T0 + LEASE) == []


async def test_completion_is_a_compare_and_set_on_the_lease_holder(store: JobStore, tmp_path: Path) -> None:
    job = await _create(store, tmp_path)
    await store.claim_jobs("w1", 1, T0, T0 + LEASE)
    outputs = [OutputBlob(os.urandom(CHUNK_BYTES + 1), "image/png"), OutputBlob(b"tiny", "image/png")]
    assert not await store.complete_job(job.id, "intruder", _result(job, 2), outputs, T0)
    assert await store.complete_job(job.id, "w1", _result(job, 2), outputs, T0)
    assert not await store.complete_job(job.id, "w1", _result(job, 2), outputs, T0)  # not twice
    assert not await store.fail_job(job.id, "w1", ERROR, T0)  # terminal is final
    done = await store.get_job(job.id)
    assert done is not None and done.status == JobStatus.COMPLETED and done.status_code == 200
    assert done.completed_at == T0 and done.expires_at == T0 + timedelta(seconds=60)
    assert done.result == _result(job, 2)
    for index, output in enumerate(outputs):
        assert b"".join([c async for c in store.read_output(job.id, index)]) == output.data
    assert [c async for c in store.read_output(job.id, 2)] == []


async def test_failure_records_the_error(store: JobStore, tmp_path: Path) -> None:
    job = await _create(store, tmp_path)
    await store.claim_jobs("w1", 1, T0, T0 + LEASE)
    assert await store.fail_job(job.id, "w1", ERROR, T0)
    failed = await store.get_job(job.id)
    assert failed is not None and failed.status == JobStatus.FAILED
    assert failed.status_code == 502 and failed.error == ERROR


async def test_a_pending_job_can_fail_without_a_worker_but_not_a_running_one(
    store: JobStore, tmp_path: Path
) -> None:
    running = await _create(store, tmp_path)
    pending = await _create(store, tmp_path, _job(T0 + timedelta(seconds=1)))
    await store.claim_jobs("w1", 1, T0, T0 + LEASE)  # claims `running`, the oldest
    assert not await store.fail_job(running.id, None, ERROR, T0)
    assert await store.fail_job(pending.id, None, ERROR, T0)


async def test_renew_and_release_need_the_lease(store: JobStore, tmp_path: Path) -> None:
    job = await _create(store, tmp_path)
    await store.claim_jobs("w1", 1, T0, T0 + LEASE)
    assert await store.renew_lease(job.id, "w1", T0 + 2 * LEASE)
    assert not await store.renew_lease(job.id, "w2", T0 + 2 * LEASE)
    assert not await store.release_job(job.id, "w2")
    assert await store.release_job(job.id, "w1")
    released = await store.get_job(job.id)
    assert released is not None and released.status == JobStatus.PENDING
    assert released.attempts == 0  # a release is not the job's fault
    assert not await store.renew_lease(job.id, "w1", T0 + 2 * LEASE)


async def test_requeue_needs_the_lease_and_gives_the_attempt_back(store: JobStore, tmp_path: Path) -> None:
    job = await _create(store, tmp_path)
    await store.claim_jobs("w1", 1, T0, T0 + LEASE)
    assert not await store.requeue_job(job.id, "w2")
    assert await store.requeue_job(job.id, "w1")
    requeued = await store.get_job(job.id)
    assert requeued is not None and requeued.status == JobStatus.PENDING
    assert requeued.attempts == 0  # a local fault is not the job's
    assert not await store.renew_lease(job.id, "w1", T0 + 2 * LEASE)  # the lease is gone
    assert not await store.requeue_job(job.id, "w1")  # and not twice
    [again] = await store.claim_jobs("w2", 1, T0, T0 + LEASE)
    assert again.id == job.id and again.attempts == 1
    assert await store.requeue_job(job.id, "w2", refund_attempt=False)
    spent = await store.get_job(job.id)
    assert spent is not None and spent.status == JobStatus.PENDING and spent.attempts == 1
    [third] = await store.claim_jobs("w3", 1, T0, T0 + LEASE)
    assert third.attempts == 2


async def test_a_job_of_every_request_type_is_stored(store: JobStore) -> None:
    for request_type in RequestType:
        params = PARAMS_BY_TYPE[request_type](model="local/pillow")
        job = Job(new_job_id(), request_type, JobStatus.PENDING, params, T0, ttl_seconds=60)
        await store.create_job(job, [])
        stored = await store.get_job(job.id)
        assert stored is not None and (stored.request_type, stored.params) == (request_type, params)


async def test_reaper_requeues_expired_leases_and_fails_exhausted_jobs(
    store: JobStore, tmp_path: Path
) -> None:
    job = await _create(store, tmp_path)
    later = T0 + 2 * LEASE
    [_claimed] = await store.claim_jobs("dead", 1, T0, T0 + LEASE)
    assert (await store.reap_expired_leases(T0, 2, ERROR)).requeued == 0  # lease still valid
    reaped = await store.reap_expired_leases(later, 2, ERROR)
    assert (reaped.requeued, reaped.failed) == (1, 0)
    assert not await store.complete_job(job.id, "dead", _result(job, 0), [], later)  # the lease is gone
    [again] = await store.claim_jobs("dead-again", 1, later, later + LEASE)
    assert again.attempts == 2
    reaped = await store.reap_expired_leases(later + 2 * LEASE, 2, ERROR)
    assert (reaped.requeued, reaped.failed) == (0, 1)
    failed = await store.get_job(job.id)
    assert failed is not None and failed.status == JobStatus.FAILED and failed.error == ERROR
    assert failed.expires_at == later + 2 * LEASE + timedelta(seconds=60)


async def test_sweeper_deletes_only_expired_jobs_with_their_blobs(store: JobStore, tmp_path: Path) -> None:
    short = await _create(store, tmp_path, _job(ttl=10))
    long = await _create(store, tmp_path, _job(ttl=1000))
    pending = await _create(store, tmp_path, _job(created_at=T0 + timedelta(seconds=1)))  # claimed last
    await store.claim_jobs("w", 2, T0, T0 + LEASE)
    for job in (short, long):
        await store.complete_job(job.id, "w", _result(job, 1), [OutputBlob(b"img", "image/png")], T0)
    assert await store.delete_expired(T0 + timedelta(seconds=10), 100) == 1
    assert await store.get_job(short.id) is None
    assert [c async for c in store.read_output(short.id, 0)] == []
    assert await store.export_inputs(short.id, tmp_path / "out") == []
    assert await store.get_job(long.id) is not None and await store.get_job(pending.id) is not None


async def test_sweeper_works_in_bounded_batches(store: JobStore, tmp_path: Path) -> None:
    jobs = [await _create(store, tmp_path, _job(ttl=1)) for _ in range(5)]
    await store.claim_jobs("w", 5, T0, T0 + LEASE)
    for job in jobs:
        await store.fail_job(job.id, "w", ERROR, T0)
    assert await store.delete_expired(T0 + LEASE, 2) == 2
    assert await store.delete_expired(T0 + LEASE, 10) == 3
    assert await store.delete_expired(T0 + LEASE, 10) == 0


async def test_concurrent_creates_are_independent(store: JobStore, tmp_path: Path) -> None:
    """Creates that arrive together (and may share a transaction) fail or succeed alone."""
    good = [_job() for _ in range(5)]
    bad = _job()
    missing = StagedFile(_staged(tmp_path, 10).info, tmp_path / "vanished")
    results = await asyncio.gather(
        *[store.create_job(job, [_staged(tmp_path, 1000 + i)]) for i, job in enumerate(good)],
        store.create_job(bad, [missing]),
        return_exceptions=True,
    )
    assert results[:5] == [None] * 5
    assert isinstance(results[5], OSError)
    assert all([await store.get_job(job.id) is not None for job in good])
    assert await store.get_job(bad.id) is None
