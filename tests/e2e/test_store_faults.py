"""Local faults on a real server: a full data disk turns gRPC health NOT_SERVING as soon as a
request meets it and SERVING again by itself once space is freed; staging directories a
killed process left behind are gone before the server serves."""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from asyncgate.v1 import image_common_pb2 as common_pb
from asyncgate.v1 import image_edit_pb2 as edit_pb
from asyncgate.v1 import job_service_pb2 as pb
from grpc_server import server as server_module
from grpc_server.config import ApiKey, ProviderSettings
from grpc_server.domain.jobs import Job
from grpc_server.staging import stale_staging_age
from tests.conftest import KEY_A, Stack, StackFactory, fast_config
from tests.fakes.openai_server import FakeOpenAI
from tests.grpc_details import error_details
from tests.images import subject_on_background
from tests.store.tiny_disk import fill, tiny_disk

WAIT_SECONDS = 30.0
"""A bound on waiting for what must happen: a hang fails the test, it never times it."""
SERVING = health_pb2.HealthCheckResponse.SERVING
NOT_SERVING = health_pb2.HealthCheckResponse.NOT_SERVING
AUTH = (("authorization", f"Bearer {KEY_A.value}"),)


FIRST_DATA_DIR = "data0"
"""Where make_stack puts the data of the first server it starts."""
YEARS = 10 * 365 * 24 * 3600.0


@pytest.fixture
def disk(tmp_path: Path) -> Iterator[Path]:
    """The first server's data directory, on a tiny disk of its own."""
    with tiny_disk(tmp_path / FIRST_DATA_DIR) as mounted:
        yield mounted


def _edit() -> pb.CreateImageEditJobRequest:
    image = common_pb.InputImage(data=subject_on_background(), filename="a.png", content_type="image/png")
    request = edit_pb.ImageEditRequest(
        model="local/pillow", type=edit_pb.EDIT_TYPE_BACKGROUND_REMOVAL, images=[image]
    )
    return pb.CreateImageEditJobRequest(request=request)


async def _health(stack: Stack) -> int:
    response = await health_pb2_grpc.HealthStub(stack.channel).Check(
        health_pb2.HealthCheckRequest(service="")
    )
    status: int = response.status
    return status


async def _until_health(stack: Stack, wanted: int) -> None:
    async with asyncio.timeout(WAIT_SECONDS):
        while await _health(stack) != wanted:
            await asyncio.sleep(0.02)


async def _submit_until_refused(stack: Stack) -> grpc.aio.AioRpcError:
    for _ in range(100):  # the first few may still fit in what SQLite had reserved
        try:
            await stack.stub.CreateImageEditJob(_edit(), metadata=AUTH)
        except grpc.aio.AioRpcError as refused:
            return refused
    raise AssertionError("a full disk never refused a submit")


async def test_a_request_that_meets_a_full_disk_turns_health_at_once(
    disk: Path, make_stack: StackFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    # No periodic check in this test: only the store's own report can change health.
    monkeypatch.setattr(server_module, "HEALTH_CHECK_INTERVAL", 3600.0)
    stack = await make_stack()
    assert await _health(stack) == SERVING
    filler = fill(disk)
    refused = await _submit_until_refused(stack)
    assert refused.code() == grpc.StatusCode.UNAVAILABLE and error_details(refused)[0] == "STORE_FULL"
    assert str(disk) not in (refused.details() or "")
    await _until_health(stack, NOT_SERVING)

    filler.unlink()
    await stack.stub.CreateImageEditJob(_edit(), metadata=AUTH)  # succeeds: the store says so
    await _until_health(stack, SERVING)


async def test_health_follows_the_disk_with_no_request_at_all(
    disk: Path, make_stack: StackFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(server_module, "HEALTH_CHECK_INTERVAL", 0.05)
    stack = await make_stack()
    assert await _health(stack) == SERVING
    filler = fill(disk)
    await _until_health(stack, NOT_SERVING)  # the ping found it cannot write
    filler.unlink()
    await _until_health(stack, SERVING)  # and back, by itself
    created = await stack.stub.CreateImageEditJob(_edit(), metadata=AUTH)
    assert created.job.id


def _leftover(root: Path, name: str, age_seconds: float) -> Path:
    directory = root / name
    directory.mkdir(parents=True)
    (directory / "image-0").write_bytes(os.urandom(100_000))
    then = time.time() - age_seconds
    os.utime(directory / "image-0", (then, then))
    os.utime(directory, (then, then))
    return directory


async def test_staging_left_by_a_killed_process_is_removed_before_serving(
    make_stack: StackFactory, tmp_path: Path
) -> None:
    staging = tmp_path / FIRST_DATA_DIR / "staging"
    left = [_leftover(staging, "upload-k1ll3d", YEARS), _leftover(staging, "job-1234-abcd", YEARS)]
    live = _leftover(staging, "upload-live", 1)  # another process's upload in progress
    stack = await make_stack()
    assert stack.server.config.staging_dir == staging
    assert stale_staging_age(stack.server.config) < YEARS
    assert not any(d.exists() for d in left)
    assert live.exists()


async def test_a_full_disk_at_submit_is_reported_as_store_full(disk: Path, make_stack: StackFactory) -> None:
    stack = await make_stack()
    fill(disk)
    refused = await _submit_until_refused(stack)
    assert refused.code() == grpc.StatusCode.UNAVAILABLE
    assert error_details(refused)[0] == "STORE_FULL"
    assert "full" in (refused.details() or "") and str(disk) not in (refused.details() or "")


async def _jobs(stack: Stack, ids: list[str]) -> list[Job | None]:
    return [await stack.server.store.get_job(job_id) for job_id in ids]


async def test_jobs_that_meet_a_full_disk_while_running_complete_once_space_returns(
    disk: Path, make_stack: StackFactory
) -> None:
    async with FakeOpenAI(api_key="sk-test") as fake:
        fake.gate = asyncio.Event()  # every answer is held until the disk is full
        stack = await make_stack(
            providers={"openai": ProviderSettings(keys=(ApiKey("sk-test"),), base_url=fake.base_url)},
            dispatcher=replace(fast_config(disk).dispatcher, max_job_attempts=1),
        )
        request = _edit()
        request.request.model, request.request.prompt = "openai/gpt-image-1", "make it blue"
        ids = [(await stack.stub.CreateImageEditJob(request, metadata=AUTH)).job.id for _ in range(4)]
        async with asyncio.timeout(WAIT_SECONDS):
            while len(fake.requests) < len(ids):
                await asyncio.sleep(0.02)
        filler = fill(disk)
        fake.gate.set()  # the answers come back and meet the full disk
        # An outcome write failed (the store said so; a first one may still fit in what SQLite
        # had already reserved): those jobs keep their answers and wait for space.
        await _until_health(stack, NOT_SERVING)
        filler.unlink()
        async with asyncio.timeout(WAIT_SECONDS):
            while not all(job and job.is_terminal for job in await _jobs(stack, ids)):
                await asyncio.sleep(0.05)
        jobs = await _jobs(stack, ids)
    # One attempt allowed, yet none failed: a local fault spends none, and no provider call
    # was made twice (the answer already paid for was kept and written once space returned).
    assert [job.status.value if job else None for job in jobs] == ["completed"] * len(ids)
    assert len(fake.requests) == len(ids)
