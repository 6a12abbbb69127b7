"""The job API over gRPC on real servers: cancel (pending, running: the provider's connection is
closed), retry, delete, wait, watch, list, request ids, on SQLite and across two replicas on
PostgreSQL. The provider that never answers is a real TCP server (tests/fakes/hanging_provider)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import grpc
import pytest
from google.protobuf.duration_pb2 import Duration

from asyncgate.v1 import embedding_pb2 as emb_pb
from asyncgate.v1 import image_generation_pb2 as gen_pb
from asyncgate.v1 import job_pb2 as job_pb
from asyncgate.v1 import job_service_pb2 as pb
from grpc_server.config import ApiKey, DispatcherSettings, ProviderSettings
from tests.conftest import KEY_A, KEY_B, Stack, StackFactory
from tests.fakes.hanging_provider import HangingProvider
from tests.grpc_details import error_details
from tests.pg import fresh_database

A = (("x-bf-vk", KEY_A.value),)
B = (("x-bf-vk", KEY_B.value),)
LIVENESS_SECONDS = 30
"""A bound on waits for something that must happen, so that a bug fails instead of hanging."""


def _generation(model: str = "openai/gpt-image-1", prompt: str = "a lighthouse", **options: Any) -> Any:
    return pb.CreateImageGenerationJobRequest(
        request=gen_pb.ImageGenerationRequest(model=model, prompt=prompt), options=pb.JobOptions(**options)
    )


def _embedding(text: str = "hello", **options: Any) -> Any:
    return pb.CreateEmbeddingJobRequest(
        request=emb_pb.EmbeddingRequest(model="local/hashing", input=emb_pb.EmbeddingInput(text=text)),
        options=pb.JobOptions(**options),
    )


def _hanging(provider: HangingProvider) -> dict[str, Any]:
    return {"providers": {"openai": ProviderSettings(keys=(ApiKey("sk-test"),), base_url=provider.base_url)}}


def _accept_only(**overrides: Any) -> dict[str, Any]:
    """A server that accepts jobs and never runs them (its dispatcher claims nothing)."""
    return {"dispatcher": DispatcherSettings(concurrency=0, poll_interval_seconds=0.2), **overrides}


async def _get(stack: Stack, job_id: str, metadata: Any = A) -> job_pb.Job:
    return (await stack.stub.GetJob(pb.GetJobRequest(id=job_id), metadata=metadata)).job


async def _refused(call: Any) -> tuple[grpc.StatusCode, str]:
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await call
    return caught.value.code(), error_details(caught.value)[0]


@pytest.fixture
async def hanging() -> AsyncIterator[HangingProvider]:
    async with HangingProvider() as provider:
        yield provider


async def test_a_cancelled_pending_job_never_reaches_a_provider(
    make_stack: StackFactory, hanging: HangingProvider
) -> None:
    stack = await make_stack(**_accept_only(**_hanging(hanging)))
    job = (await stack.stub.CreateImageGenerationJob(_generation(), metadata=A)).job
    assert (await _get(stack, job.id)).queue_position == 0
    cancelled = (await stack.stub.CancelJob(pb.CancelJobRequest(id=job.id), metadata=A)).job
    assert cancelled.status == job_pb.JOB_STATUS_CANCELLED and cancelled.status_code == 499
    assert cancelled.error.error.code == "cancelled" and cancelled.HasField("complete_time")
    assert cancelled.HasField("expire_time") and not cancelled.HasField("queue_position")
    assert await _refused(stack.stub.CancelJob(pb.CancelJobRequest(id=job.id), metadata=A)) == (
        grpc.StatusCode.ABORTED,
        "JOB_FINISHED",
    )
    assert await _refused(stack.stub.CancelJob(pb.CancelJobRequest(id=job.id), metadata=B)) == (
        grpc.StatusCode.NOT_FOUND,
        "JOB_NOT_FOUND",
    )
    assert hanging.requests == []


async def _cancel_while_running(accepting: Stack, running: Stack, hanging: HangingProvider) -> None:
    """Submit on `accepting`, let `running` take it to the provider, cancel on `accepting`."""
    job = (await accepting.stub.CreateImageGenerationJob(_generation(), metadata=A)).job
    async with asyncio.timeout(LIVENESS_SECONDS):
        await hanging.received.wait()
    assert (await _get(running, job.id)).status == job_pb.JOB_STATUS_PROCESSING
    cancelled = (await accepting.stub.CancelJob(pb.CancelJobRequest(id=job.id), metadata=A)).job
    assert cancelled.status == job_pb.JOB_STATUS_CANCELLED and cancelled.attempt == 1
    async with asyncio.timeout(LIVENESS_SECONDS):
        await hanging.disconnected.wait()  # the provider call was aborted: its connection closed
    assert len(hanging.requests) == 1 and hanging.disconnects == 1
    assert running.server.dispatcher is not None
    async with asyncio.timeout(LIVENESS_SECONDS):
        while running.server.dispatcher.running:  # the run ended without writing an outcome
            await asyncio.sleep(0.01)
    after = await _get(accepting, job.id)
    assert after.status == job_pb.JOB_STATUS_CANCELLED and after.error.error.code == "cancelled"
    assert len(hanging.requests) == 1  # no retry, no fallback after the cancel


async def test_cancelling_a_running_job_closes_the_provider_connection(
    make_stack: StackFactory, hanging: HangingProvider
) -> None:
    stack = await make_stack(**_hanging(hanging))
    await _cancel_while_running(stack, stack, hanging)


@pytest.fixture
async def dsn() -> AsyncIterator[str]:
    """A fresh PostgreSQL database. Ask for it before make_stack: the servers stop first."""
    async with fresh_database() as url:
        yield url


async def _replicas(make_stack: StackFactory, dsn: str, **overrides: Any) -> tuple[Stack, Stack]:
    """Two servers on one PostgreSQL database: A accepts only, B runs jobs."""
    a = await make_stack(**_accept_only(database_url=dsn, **overrides))
    b = await make_stack(database_url=dsn, **overrides)
    return a, b


async def test_a_cancel_on_one_replica_aborts_the_call_on_another(
    dsn: str, make_stack: StackFactory, hanging: HangingProvider
) -> None:
    a, b = await _replicas(make_stack, dsn, **_hanging(hanging))
    await _cancel_while_running(a, b, hanging)


async def test_retry_delete_and_wait(make_stack: StackFactory) -> None:
    stack = await make_stack()
    done = await stack.stub.WaitJob(
        pb.WaitJobRequest(id=(await stack.stub.CreateEmbeddingJob(_embedding(), metadata=A)).job.id),
        metadata=A,
        timeout=LIVENESS_SECONDS,
    )
    assert done.job.status == job_pb.JOB_STATUS_COMPLETED
    assert await _refused(stack.stub.RetryJob(pb.RetryJobRequest(id=done.job.id), metadata=A)) == (
        grpc.StatusCode.ABORTED,
        "JOB_NOT_RETRYABLE",
    )
    token = done.job.embedding_result.vectors.access_token
    await stack.stub.DeleteJob(pb.DeleteJobRequest(id=done.job.id), metadata=A)
    gone = await _refused(stack.stub.GetJob(pb.GetJobRequest(id=done.job.id), metadata=A))
    assert gone == (grpc.StatusCode.NOT_FOUND, "JOB_NOT_FOUND")
    read = stack.stub.ReadJobOutput(pb.ReadJobOutputRequest(job_id=done.job.id, access_token=token))
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        [m async for m in read]
    assert caught.value.code() == grpc.StatusCode.NOT_FOUND


async def test_a_retried_job_runs_again_from_its_stored_inputs(dsn: str, make_stack: StackFactory) -> None:
    accept_only = await make_stack(**_accept_only(database_url=dsn))
    job = (await accept_only.stub.CreateEmbeddingJob(_embedding(labels={"team": "a"}), metadata=A)).job
    await accept_only.stub.CancelJob(pb.CancelJobRequest(id=job.id), metadata=A)
    retried = (await accept_only.stub.RetryJob(pb.RetryJobRequest(id=job.id), metadata=A)).job
    assert retried.id == job.id and retried.status == job_pb.JOB_STATUS_PENDING
    assert not retried.HasField("error") and retried.status_code == 0 and retried.queue_position == 0
    assert retried.change_number == 3  # created, cancelled, retried
    runner = await make_stack(database_url=dsn)
    again = (
        await runner.stub.WaitJob(pb.WaitJobRequest(id=job.id), metadata=A, timeout=LIVENESS_SECONDS)
    ).job
    assert again.status == job_pb.JOB_STATUS_COMPLETED and again.embedding_result.count == 1
    assert again.attempt == 1 and dict(again.labels) == {"team": "a"}


async def test_wait_ends_at_its_timeout_with_the_job_as_it_is(make_stack: StackFactory) -> None:
    stack = await make_stack(**_accept_only())
    job = (await stack.stub.CreateEmbeddingJob(_embedding(), metadata=A)).job
    waited = await stack.stub.WaitJob(
        pb.WaitJobRequest(id=job.id, timeout=Duration(nanos=200_000_000)), metadata=A
    )
    assert waited.job.status == job_pb.JOB_STATUS_PENDING


async def test_a_completion_on_another_replica_ends_a_wait_and_a_watch(
    dsn: str, make_stack: StackFactory
) -> None:
    a, b = await _replicas(make_stack, dsn)
    assert b.server.dispatcher is not None
    job = (await a.stub.CreateEmbeddingJob(_embedding(), metadata=A)).job
    waited = await a.stub.WaitJob(pb.WaitJobRequest(id=job.id), metadata=A, timeout=LIVENESS_SECONDS)
    assert waited.job.status == job_pb.JOB_STATUS_COMPLETED
    watched = [m.job async for m in a.stub.WatchJob(pb.WatchJobRequest(id=job.id), metadata=A, timeout=30)]
    # Terminal already: one event, then the end.
    assert [j.status for j in watched] == [job_pb.JOB_STATUS_COMPLETED]
    assert watched[0].change_number == 3  # created, claimed, completed


async def test_watch_streams_each_change_and_resumes(
    make_stack: StackFactory, hanging: HangingProvider
) -> None:
    stack = await make_stack(**_hanging(hanging))
    job = (await stack.stub.CreateImageGenerationJob(_generation(), metadata=A)).job
    stream = stack.stub.WatchJob(pb.WatchJobRequest(id=job.id), metadata=A, timeout=LIVENESS_SECONDS)
    seen: list[tuple[int, int]] = []
    async for message in stream:
        seen.append((message.job.status, message.job.change_number))
        if message.job.status == job_pb.JOB_STATUS_PROCESSING:
            await stack.stub.CancelJob(pb.CancelJobRequest(id=job.id), metadata=A)
    statuses = [s for s, _ in seen]
    assert statuses[-1] == job_pb.JOB_STATUS_CANCELLED and job_pb.JOB_STATUS_PROCESSING in statuses
    numbers = [n for _, n in seen]
    assert numbers == sorted(set(numbers)) and numbers[-1] == 3
    resumed = [
        m.job.change_number
        async for m in stack.stub.WatchJob(pb.WatchJobRequest(id=job.id, after_change_number=3), metadata=A)
    ]
    assert resumed == [3]  # already terminal: its terminal event


async def test_list_shows_only_the_callers_jobs_page_by_page(make_stack: StackFactory) -> None:
    stack = await make_stack(**_accept_only())
    mine = [
        (await stack.stub.CreateEmbeddingJob(_embedding(str(i), labels={"n": str(i % 2)}), metadata=A)).job.id
        for i in range(5)
    ]
    await stack.stub.CreateEmbeddingJob(_embedding(), metadata=B)
    await stack.stub.CreateEmbeddingJob(_embedding())
    assert (await _refused(stack.stub.ListJobs(pb.ListJobsRequest())))[0] == grpc.StatusCode.UNAUTHENTICATED
    listed: list[str] = []
    token = ""
    while True:
        page = await stack.stub.ListJobs(pb.ListJobsRequest(page_size=2, page_token=token), metadata=A)
        listed += [j.id for j in page.jobs]
        token = page.next_page_token
        if not token:
            break
    assert listed == list(reversed(mine))
    odd = await stack.stub.ListJobs(pb.ListJobsRequest(labels={"n": "1"}), metadata=A)
    assert [j.id for j in odd.jobs] == [mine[3], mine[1]]
    code, field = error_details(
        await _error(stack.stub.ListJobs(pb.ListJobsRequest(page_size=101), metadata=A))
    )
    assert (code, field) == ("INVALID_ARGUMENT", "page_size")


async def _error(call: Any) -> grpc.aio.AioRpcError:
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await call
    return caught.value


async def test_a_request_id_makes_one_job(make_stack: StackFactory) -> None:
    stack = await make_stack(**_accept_only())
    call = stack.stub.CreateEmbeddingJob(_embedding(request_id="req-1"), metadata=A)
    first = (await call).job
    again_call = stack.stub.CreateEmbeddingJob(_embedding(request_id="req-1"), metadata=A)
    again = (await again_call).job
    assert again.id == first.id
    assert ("idempotent-replayed", "true") in tuple(await again_call.trailing_metadata() or ())
    assert ("idempotent-replayed", "true") not in tuple(await call.trailing_metadata() or ())
    other_caller = (await stack.stub.CreateEmbeddingJob(_embedding(request_id="req-1"), metadata=B)).job
    assert other_caller.id != first.id
    assert await _refused(
        stack.stub.CreateEmbeddingJob(_embedding("other text", request_id="req-1"), metadata=A)
    ) == (grpc.StatusCode.ALREADY_EXISTS, "IDEMPOTENCY_KEY_REUSED")
    assert error_details(
        await _error(stack.stub.CreateEmbeddingJob(_embedding(request_id="\x01"), metadata=A))
    ) == ("INVALID_ARGUMENT", "request_id")
    assert error_details(
        await _error(stack.stub.CreateEmbeddingJob(_embedding(labels={"Bad": "x"}), metadata=A))
    ) == ("INVALID_ARGUMENT", "labels")


async def test_identical_concurrent_submits_through_two_replicas_make_one_job(
    dsn: str, make_stack: StackFactory
) -> None:
    a, b = await _replicas(make_stack, dsn)
    calls = [
        (a if i % 2 else b).stub.CreateEmbeddingJob(_embedding(request_id="same"), metadata=A)
        for i in range(20)
    ]
    jobs = await asyncio.gather(*calls)
    assert len({response.job.id for response in jobs}) == 1
    listed = await a.stub.ListJobs(pb.ListJobsRequest(), metadata=A)
    assert [j.id for j in listed.jobs] == [jobs[0].job.id]
