"""Polls of ended jobs answered from the server's kept answers (grpc_server.ended_jobs), on real
servers: the answer is the job's, yet a delete is 404 and a retry pending at once, the job is
404 at its expiry, another key still cannot see it, and every poll is counted; on SQLite without
a store read, on PostgreSQL with one (a delete or retry through another replica is seen at once,
with no event awaited)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import grpc
import pytest

from asyncgate.v1 import embedding_pb2 as emb_pb
from asyncgate.v1 import job_pb2 as job_pb
from asyncgate.v1 import job_service_pb2 as pb
from grpc_server.config import DispatcherSettings
from grpc_server.metrics import REGISTRY
from tests.conftest import KEY_A, KEY_B, Stack, StackFactory
from tests.grpc_details import error_details
from tests.pg import fresh_database

A = (("x-bf-vk", KEY_A.value),)
B = (("x-bf-vk", KEY_B.value),)
VK_A, VK_B = {"x-bf-vk": KEY_A.value}, {"x-bf-vk": KEY_B.value}
EMBEDDINGS = "/v1/async/embeddings"
LIVENESS_SECONDS = 30
ACCEPT_ONLY = DispatcherSettings(concurrency=0, poll_interval_seconds=0.2)
NO_SWEEPS = DispatcherSettings(poll_interval_seconds=0.1, sweep_interval_seconds=3600)
"""The sweeper never runs by itself: a job past its expiry is still stored."""


def polls(source: str) -> float:
    """asyncgate_job_polls_total{source} of this process (every server in it)."""
    return REGISTRY.get_sample_value("asyncgate_job_polls_total", {"source": source}) or 0.0


class Polls:
    """The poll counters' movement since it was made: (cache, store)."""

    def __init__(self) -> None:
        self.cache, self.store = polls("cache"), polls("store")

    def moved(self) -> tuple[float, float]:
        return polls("cache") - self.cache, polls("store") - self.store


def _embedding(**options: Any) -> pb.CreateEmbeddingJobRequest:
    return pb.CreateEmbeddingJobRequest(
        request=emb_pb.EmbeddingRequest(model="local/hashing", input=emb_pb.EmbeddingInput(text="hello")),
        options=pb.JobOptions(**options),
    )


async def _get(stack: Stack, job_id: str, metadata: Any = A, **fields: Any) -> job_pb.Job:
    return (await stack.stub.GetJob(pb.GetJobRequest(id=job_id, **fields), metadata=metadata)).job


async def _refused(call: Any) -> tuple[grpc.StatusCode, str]:
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await call
    return caught.value.code(), error_details(caught.value)[0]


async def _completed(stack: Stack, **options: Any) -> job_pb.Job:
    job = (await stack.stub.CreateEmbeddingJob(_embedding(**options), metadata=A)).job
    done = await stack.stub.WaitJob(pb.WaitJobRequest(id=job.id), metadata=A, timeout=LIVENESS_SECONDS)
    assert done.job.status == job_pb.JOB_STATUS_COMPLETED
    return done.job


async def _rest_status(stack: Stack, job_id: str, headers: dict[str, str] = VK_A) -> int:
    async with stack.http.get(f"{EMBEDDINGS}/{job_id}", headers=headers) as response:
        await response.read()
        return response.status


async def test_an_ended_job_is_answered_from_the_cache_and_a_delete_is_404_at_once(stack: Stack) -> None:
    job = await _completed(stack)
    counted = Polls()
    first = await _get(stack, job.id)
    assert first.status == job_pb.JOB_STATUS_COMPLETED and first.embedding_result.count == 1
    assert counted.moved() == (0, 1)  # read once...
    assert await _get(stack, job.id) == first
    assert await _get(stack, job.id, request_type=job_pb.REQUEST_TYPE_EMBEDDING) == first
    assert await _rest_status(stack, job.id) == 200
    assert counted.moved() == (3, 1)  # ...then answered without a read, the REST poll too
    # The caller's right, and the operation asked for, are checked on every poll.
    assert await _refused(stack.stub.GetJob(pb.GetJobRequest(id=job.id), metadata=B)) == (
        grpc.StatusCode.NOT_FOUND,
        "JOB_NOT_FOUND",
    )
    assert await _rest_status(stack, job.id, VK_B) == 404
    assert await _rest_status(stack, job.id, {}) == 404  # keyless: not the key's job
    wrong_type = pb.GetJobRequest(id=job.id, request_type=job_pb.REQUEST_TYPE_IMAGE_GENERATION)
    assert await _refused(stack.stub.GetJob(wrong_type, metadata=A)) == (
        grpc.StatusCode.NOT_FOUND,
        "OPERATION_TYPE_MISMATCH",
    )
    assert counted.moved() == (7, 1)  # refusals answered from the cache too
    await stack.stub.DeleteJob(pb.DeleteJobRequest(id=job.id), metadata=A)
    assert await _refused(stack.stub.GetJob(pb.GetJobRequest(id=job.id), metadata=A)) == (
        grpc.StatusCode.NOT_FOUND,
        "JOB_NOT_FOUND",
    )
    assert await _rest_status(stack, job.id) == 404


async def test_a_retried_job_is_pending_at_once(make_stack: StackFactory) -> None:
    stack = await make_stack(dispatcher=ACCEPT_ONLY)
    job = (await stack.stub.CreateEmbeddingJob(_embedding(), metadata=A)).job
    await stack.stub.CancelJob(pb.CancelJobRequest(id=job.id), metadata=A)
    cancelled = await _get(stack, job.id)
    counted = Polls()
    assert await _get(stack, job.id) == cancelled and cancelled.status == job_pb.JOB_STATUS_CANCELLED
    assert counted.moved() == (1, 0)  # kept
    await stack.stub.RetryJob(pb.RetryJobRequest(id=job.id), metadata=A)
    retried = await _get(stack, job.id)
    assert (
        retried.status == job_pb.JOB_STATUS_PENDING and retried.change_number == cancelled.change_number + 1
    )
    assert retried.queue_position == 0 and not retried.HasField("error")
    async with stack.http.get(f"{EMBEDDINGS}/{job.id}", headers=VK_A) as response:
        assert response.status == 202 and (await response.json())["status"] == "pending"
    assert counted.moved() == (1, 2)


async def test_an_ended_job_is_404_at_its_expiry(make_stack: StackFactory) -> None:
    stack = await make_stack(dispatcher=NO_SWEEPS)
    job = await _completed(stack, result_ttl_seconds=1)
    assert (await _get(stack, job.id)).status == job_pb.JOB_STATUS_COMPLETED  # now kept
    expires_at = job.expire_time.ToDatetime(UTC)
    counted = Polls()
    while datetime.now(UTC) < expires_at:
        assert (await _get(stack, job.id)).status == job_pb.JOB_STATUS_COMPLETED
        await asyncio.sleep(0.05)
    assert await _refused(stack.stub.GetJob(pb.GetJobRequest(id=job.id), metadata=A)) == (
        grpc.StatusCode.NOT_FOUND,
        "JOB_NOT_FOUND",
    )
    assert await _rest_status(stack, job.id) == 404
    cache, store = counted.moved()
    assert cache >= 3 and store == 0  # the clock decided, not a read: the job is still stored
    assert stack.stored_jobs() == 1


@pytest.fixture
async def dsn() -> AsyncIterator[str]:
    """A fresh PostgreSQL database. Ask for it before make_stack: the servers stop first."""
    async with fresh_database() as url:
        yield url


async def _cancelled(stack: Stack) -> job_pb.Job:
    job = (await stack.stub.CreateEmbeddingJob(_embedding(), metadata=A)).job
    return (await stack.stub.CancelJob(pb.CancelJobRequest(id=job.id), metadata=A)).job


async def test_on_postgresql_a_delete_or_retry_through_another_replica_is_seen_at_once(
    dsn: str, make_stack: StackFactory
) -> None:
    a = await make_stack(database_url=dsn, dispatcher=ACCEPT_ONLY)
    b = await make_stack(database_url=dsn, dispatcher=ACCEPT_ONLY)
    deleted, retried = await _cancelled(a), await _cancelled(a)
    counted = Polls()
    for job in (deleted, retried):
        for _ in range(2):
            assert await _get(a, job.id) == job
            assert await _rest_status(a, job.id) == 200
        assert await _rest_status(a, job.id, VK_B) == 404
    assert counted.moved() == (0, 10)  # every poll read the job: another replica may change it

    await b.stub.DeleteJob(pb.DeleteJobRequest(id=deleted.id), metadata=A)
    assert await _refused(a.stub.GetJob(pb.GetJobRequest(id=deleted.id), metadata=A)) == (
        grpc.StatusCode.NOT_FOUND,
        "JOB_NOT_FOUND",
    )
    assert await _rest_status(a, deleted.id) == 404

    await b.stub.RetryJob(pb.RetryJobRequest(id=retried.id), metadata=A)
    again = await _get(a, retried.id)
    assert again.status == job_pb.JOB_STATUS_PENDING and again.change_number == retried.change_number + 1
    assert await _rest_status(a, retried.id) == 202
