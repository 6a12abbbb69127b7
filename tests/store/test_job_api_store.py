"""The store's part of the job API, on every backend: cancel and retry as compare-and-set moves,
delete with the blobs, the change number, the queue position, request ids unique per owner,
and keyset-paged listing."""

from __future__ import annotations

import asyncio
from dataclasses import replace
from datetime import timedelta
from pathlib import Path

import pytest

from grpc_server.domain.jobs import (
    CANCELLED_STATUS_CODE,
    IDEMPOTENCY_WINDOW_SECONDS,
    JobStatus,
    OutputBlob,
    RequestType,
    cancelled_error,
)
from grpc_server.jobs_list import Cursor, ListQuery
from grpc_server.store.base import DuplicateRequestId, JobStore, StoreEvent
from tests.store.test_store_contract import ERROR, LEASE, T0, _create, _job, _result


async def test_cancel_of_a_pending_job_is_final_and_never_claimed(store: JobStore, tmp_path: Path) -> None:
    job = await _create(store, tmp_path)
    cancelled = await store.cancel_job(job.id, cancelled_error(job, "ev"), T0)
    assert cancelled is not None and cancelled.status == JobStatus.CANCELLED
    assert cancelled.status_code == CANCELLED_STATUS_CODE and cancelled.error is not None
    assert cancelled.error.code == "cancelled"
    assert cancelled.completed_at == T0 and cancelled.expires_at == T0 + timedelta(seconds=job.ttl_seconds)
    assert cancelled.change_seq == 2
    assert await store.claim_jobs("w1", 10, T0, T0 + LEASE) == []
    assert await store.cancel_job(job.id, cancelled_error(job, "ev"), T0) is None  # ended already


async def test_no_outcome_overwrites_a_cancel_of_a_running_job(store: JobStore, tmp_path: Path) -> None:
    job = await _create(store, tmp_path)
    (claimed,) = await store.claim_jobs("w1", 1, T0, T0 + LEASE)
    assert claimed.change_seq == 2 and claimed.attempts == 1
    assert await store.cancel_job(job.id, cancelled_error(job, "ev"), T0) is not None
    assert not await store.complete_job(job.id, "w1", _result(job, 1), [OutputBlob(b"x", "image/png")], T0)
    assert not await store.fail_job(job.id, "w1", ERROR, T0)
    assert not await store.renew_lease(job.id, "w1", T0 + 2 * LEASE)  # the worker learns of it
    got = await store.get_job(job.id)
    assert got is not None and got.status == JobStatus.CANCELLED and got.result is None


async def test_a_cancel_racing_a_completion_ends_in_one_terminal_state(
    store: JobStore, tmp_path: Path
) -> None:
    for _ in range(5):
        job = await _create(store, tmp_path)
        await store.claim_jobs("w1", 10, T0, T0 + LEASE)
        completed, cancelled = await asyncio.gather(
            store.complete_job(job.id, "w1", _result(job, 0), [], T0),
            store.cancel_job(job.id, cancelled_error(job, "ev"), T0),
        )
        assert completed != (cancelled is not None)  # exactly one of them wrote
        got = await store.get_job(job.id)
        assert got is not None
        assert got.status == (JobStatus.COMPLETED if completed else JobStatus.CANCELLED)


async def test_retry_runs_a_failed_or_cancelled_job_again(store: JobStore, tmp_path: Path) -> None:
    job = await _create(store, tmp_path)
    await store.claim_jobs("w1", 1, T0, T0 + LEASE)
    assert await store.fail_job(job.id, "w1", ERROR, T0)
    retried = await store.retry_job(job.id)
    assert retried is not None and retried.status == JobStatus.PENDING
    assert (retried.error, retried.completed_at, retried.expires_at, retried.status_code) == (
        None,
        None,
        None,
        0,
    )
    assert retried.attempts == 1 and retried.change_seq == 4  # created, claimed, failed, retried
    assert await store.retry_job(job.id) is None  # pending: not retryable
    (again,) = await store.claim_jobs("w2", 1, T0, T0 + LEASE)
    assert again.id == job.id and again.attempts == 2  # a retry does not reset the count
    assert await store.cancel_job(job.id, cancelled_error(job, "ev"), T0) is not None
    assert (await store.retry_job(job.id)) is not None
    job2 = await _create(store, tmp_path)
    await store.claim_jobs("w1", 10, T0, T0 + LEASE)
    assert await store.complete_job(job2.id, "w1", _result(job2, 0), [], T0)
    assert await store.retry_job(job2.id) is None  # completed: never


async def test_delete_removes_the_job_and_its_blobs(store: JobStore, tmp_path: Path) -> None:
    job = await _create(store, tmp_path)
    await store.claim_jobs("w1", 1, T0, T0 + LEASE)
    assert await store.complete_job(job.id, "w1", _result(job, 1), [OutputBlob(b"img", "image/png")], T0)
    assert [c async for c in store.read_output(job.id, 0)] == [b"img"]
    assert await store.delete_job(job.id)
    assert await store.get_job(job.id) is None
    assert [c async for c in store.read_output(job.id, 0)] == []
    assert await store.export_inputs(job.id, tmp_path) == []
    assert not await store.delete_job(job.id)


async def test_cancel_retry_and_delete_publish_events(store: JobStore, tmp_path: Path) -> None:
    heard: list[StoreEvent] = []
    await store.subscribe(heard.append)
    job = await _create(store, tmp_path)
    await store.cancel_job(job.id, cancelled_error(job, "ev"), T0)
    await store.retry_job(job.id)
    await store.delete_job(job.id)
    expected = [StoreEvent(k, job.id) for k in ("submitted", "cancelled", "requeued", "deleted")]
    for _ in range(200):  # PostgreSQL delivers on its listening connection: wait for each
        if len(heard) >= len(expected):
            break
        await asyncio.sleep(0.01)
    assert heard == expected


async def test_queue_position_counts_the_pending_jobs_claimed_first(store: JobStore, tmp_path: Path) -> None:
    jobs = [await _create(store, tmp_path, _job(T0 + timedelta(seconds=i))) for i in range(4)]
    assert [await store.queue_position(j) for j in jobs] == [0, 1, 2, 3]
    await store.claim_jobs("w1", 1, T0, T0 + LEASE)
    await store.cancel_job(jobs[2].id, cancelled_error(jobs[2], "ev"), T0)
    assert await store.queue_position(jobs[1]) == 0 and await store.queue_position(jobs[3]) == 1


async def test_a_request_id_names_one_job_per_owner(store: JobStore, tmp_path: Path) -> None:
    first = replace(_job(), idempotency_key="k1", request_hash="h1", labels={"team": "a"})
    await _create(store, tmp_path, first)
    with pytest.raises(DuplicateRequestId):
        await _create(store, tmp_path, replace(_job(), idempotency_key="k1", request_hash="h2"))
    other_owner = replace(_job(), owner_key_id="vk-b", idempotency_key="k1")
    await _create(store, tmp_path, other_owner)  # another key's id space
    keyless = [replace(_job(), owner_key_id=None, idempotency_key="k1") for _ in range(2)]
    await _create(store, tmp_path, keyless[0])
    with pytest.raises(DuplicateRequestId):
        await _create(store, tmp_path, keyless[1])  # keyless callers share one space
    found = await store.job_by_request_id("vk-a", "k1")
    assert found is not None and (found.id, found.request_hash, found.labels) == (
        first.id,
        "h1",
        {"team": "a"},
    )
    assert (await store.job_by_request_id(None, "k1")).id == keyless[0].id  # type: ignore[union-attr]
    assert not await store.forget_stale_request_id("vk-a", "k1", T0)  # still inside the window
    later = T0 + timedelta(seconds=IDEMPOTENCY_WINDOW_SECONDS)
    assert await store.forget_stale_request_id("vk-a", "k1", later)
    await _create(store, tmp_path, replace(_job(), idempotency_key="k1"))  # the id is free again


async def test_listing_pages_by_creation_newest_first_with_filters(store: JobStore, tmp_path: Path) -> None:
    made = []
    for i in range(7):
        job = replace(_job(T0 + timedelta(seconds=i)), labels={"n": str(i % 2), "all": "x"})
        made.append(await _create(store, tmp_path, job))
    await _create(store, tmp_path, replace(_job(T0), owner_key_id="vk-b"))  # another caller's
    newest_first = [j.id for j in reversed(made)]
    seen: list[str] = []
    after: Cursor | None = None
    while True:
        page = await store.list_jobs(ListQuery(owner_key_id="vk-a", page_size=3, after=after))
        seen += [j.id for j in page[:3]]
        if len(page) <= 3:
            break
        after = Cursor(page[2].created_at, page[2].id)
        await _create(store, tmp_path, replace(_job(T0 + timedelta(hours=1))))  # arrives meanwhile
    assert seen == newest_first
    odd = await store.list_jobs(ListQuery(owner_key_id="vk-a", labels={"n": "1", "all": "x"}))
    assert [j.id for j in odd] == [made[i].id for i in (5, 3, 1)]
    ranged = await store.list_jobs(
        ListQuery(
            owner_key_id="vk-a",
            created_after=T0 + timedelta(seconds=2),
            created_before=T0 + timedelta(seconds=4),
        )
    )
    assert [j.id for j in ranged] == [made[3].id, made[2].id]
    await store.cancel_job(made[0].id, cancelled_error(made[0], "ev"), T0)
    cancelled = await store.list_jobs(ListQuery(owner_key_id="vk-a", statuses=(JobStatus.CANCELLED,)))
    assert [j.id for j in cancelled] == [made[0].id]
    assert await store.list_jobs(ListQuery(owner_key_id="vk-a", request_type=RequestType.EMBEDDING)) == []
