"""A job accepted is never lost: real server processes killed and restarted on one SQLite file.

The provider is the fake OpenAI server running in the test process; each job gets a
unique prompt, so the fake's recorded requests tell which job reached the provider and
how often. Where the tests read the store directly, it is the file a stopped process
left behind: the state a restart will start from.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import sqlite3
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import aiohttp
import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from grpc_server.config import ServerConfig
from tests.fakes.openai_server import EDITS_PATH, FakeOpenAI
from tests.images import decode
from tests.processes import (
    AsyncGateProcess,
    GrpcServerProcess,
    RestBridgeProcess,
    ServerProcess,
    ServiceProcess,
    TomlTable,
)
from tests.rest import edit_form, submit, wait_terminal

pytestmark = pytest.mark.slow

MODEL = "openai/gpt-image-1"
FAST = 0.2
"""Provider latency once a test wants jobs to finish."""


@pytest.fixture
async def fake() -> AsyncIterator[FakeOpenAI]:
    async with FakeOpenAI(api_key="sk-test") as fake:
        yield fake


def server_config(fake: FakeOpenAI, **dispatcher: int | float) -> TomlTable:
    """Fast leases and sweeps, so a crashed run's jobs come back within seconds."""
    return {
        "providers": {"openai": {"api_key": "sk-test", "base_url": fake.base_url}},
        "dispatcher": {
            "lease_seconds": 2,
            "sweep_interval_seconds": 0.5,
            "poll_interval_seconds": 0.2,
            **dispatcher,
        },
        "retry": {"base_delay_seconds": 0.05},
    }


async def submit_jobs(base_url: str, count: int) -> dict[str, str]:
    """Submit `count` OpenAI edits through REST; {job id: its unique prompt}."""
    jobs: dict[str, str] = {}
    async with aiohttp.ClientSession(base_url) as http:
        for i in range(count):
            prompt = f"durability job {i}"
            status, body = await submit(http, edit_form({"model": MODEL, "prompt": prompt}))
            assert status == 202, body
            jobs[body["id"]] = prompt
    return jobs


def provider_calls(fake: FakeOpenAI, prompt: str) -> int:
    """How many times the job with this prompt was sent to the provider."""
    return sum(1 for r in fake.requests if r.path == EDITS_PATH and r.field("prompt") == prompt)


async def wait_until(condition: Callable[[], bool], proc: ServiceProcess, what: str) -> None:
    """Poll a condition (bounded by the test timeout); fail at once, with the log, if the process dies."""
    while not condition():
        assert proc.running, proc.fail(f"{proc.name} exited while waiting for {what}")
        await asyncio.sleep(0.05)


def stored(data_dir: Path) -> dict[str, tuple[str, int]]:
    """{job id: (status, attempts)} as a stopped server left its SQLite file."""
    path = ServerConfig(data_dir=data_dir).database_path
    with contextlib.closing(sqlite3.connect(path)) as conn:
        rows = conn.execute("SELECT id, status, attempts FROM jobs").fetchall()
    return {job_id: (status, attempts) for job_id, status, attempts in rows}


async def assert_all_completed(proc: AsyncGateProcess, jobs: dict[str, str]) -> None:
    """Poll every job through REST until terminal: each completed with one decodable image."""
    async with aiohttp.ClientSession(proc.base_url) as http:
        for job_id in jobs:
            try:
                job: dict[str, Any] = await wait_terminal(http, job_id)
            except AssertionError as exc:  # e.g. a 404: the job was lost
                raise AssertionError(proc.fail(f"job {job_id}: {exc}")) from exc
            assert job["status"] == "completed", proc.fail(f"job {job_id}: {job}")
            [item] = job["result"]["data"]  # completed once: a single result image
            async with http.get(item["url"]) as response:
                assert response.status == 200, proc.fail(f"job {job_id}: result image {response.status}")
                image = decode(await response.read())
            assert image.size == (64, 64)  # the fake echoes the input image


async def one_running_job(base_url: str, fake: FakeOpenAI, proc: ServiceProcess) -> tuple[str, str]:
    """Submit one job and wait until it reaches the provider: (job id, prompt)."""
    [(job_id, prompt)] = (await submit_jobs(base_url, 1)).items()
    await wait_until(lambda: provider_calls(fake, prompt) > 0, proc, "the job to run")
    return job_id, prompt


async def sigterm_mid_job(
    tmp_path: Path, config: TomlTable, data_dir: Path, fake: FakeOpenAI
) -> tuple[str, str, AsyncGateProcess]:
    """Start a server, SIGTERM it once its one job reaches the provider, and see it exit cleanly:
    (job id, prompt, the stopped process)."""
    async with AsyncGateProcess(tmp_path, config, data_dir, "first") as first:
        job_id, prompt = await one_running_job(first.base_url, fake, first)
        first.kill(signal.SIGTERM)
        assert await first.wait() == 0, first.fail("SIGTERM did not exit cleanly")
    return job_id, prompt, first


async def restart_until_completed(
    tmp_path: Path, config: TomlTable, data_dir: Path, fake: FakeOpenAI, jobs: dict[str, str], name: str
) -> None:
    """With a fast provider, a new server on the same data completes every job (assert_all_completed)."""
    fake.latency = FAST
    async with AsyncGateProcess(tmp_path, config, data_dir, name) as restarted:
        await assert_all_completed(restarted, jobs)


@pytest.mark.timeout(60)
async def test_sigkill_mid_job_then_restart_completes_every_job(tmp_path: Path, fake: FakeOpenAI) -> None:
    data_dir = tmp_path / "data"
    config = server_config(fake)
    fake.latency = 3  # long enough that the kill lands while the provider calls are in flight
    async with AsyncGateProcess(tmp_path, config, data_dir, "first") as first:
        jobs = await submit_jobs(first.base_url, 5)
        await wait_until(
            lambda: all(provider_calls(fake, p) for p in jobs.values()), first, "every job to run"
        )
        first.kill(signal.SIGKILL)
        assert await first.wait() == -signal.SIGKILL

    at_kill = stored(data_dir)
    assert set(at_kill) == set(jobs), at_kill  # every accepted job was on disk
    interrupted = [job_id for job_id in jobs if at_kill[job_id][0] == "processing"]
    assert interrupted, f"the kill interrupted no running job, so this tested nothing: {at_kill}"

    await restart_until_completed(tmp_path, config, data_dir, fake, jobs, "second")

    # At-least-once: each interrupted job was sent again by the second process.
    for job_id in interrupted:
        assert provider_calls(fake, jobs[job_id]) >= 2, job_id
    assert {status for status, _ in stored(data_dir).values()} == {"completed"}


@pytest.mark.timeout(60)
async def test_pending_jobs_survive_a_sigkill(tmp_path: Path, fake: FakeOpenAI) -> None:
    data_dir = tmp_path / "data"
    async with AsyncGateProcess(
        tmp_path, server_config(fake, concurrency=0), data_dir, "accept-only"
    ) as first:
        jobs = await submit_jobs(first.base_url, 4)
        first.kill(signal.SIGKILL)
        await first.wait()
    assert fake.requests == []  # an accept-only server ran nothing
    assert {status for status, _ in stored(data_dir).values()} == {"pending"}

    async with AsyncGateProcess(tmp_path, server_config(fake, concurrency=4), data_dir, "runner") as second:
        await assert_all_completed(second, jobs)
    assert all(provider_calls(fake, prompt) == 1 for prompt in jobs.values())


@pytest.mark.timeout(60)
async def test_sigterm_lets_a_running_job_finish_within_the_grace(tmp_path: Path, fake: FakeOpenAI) -> None:
    data_dir = tmp_path / "data"
    config = server_config(fake, shutdown_grace_seconds=5)
    fake.latency = 1
    job_id, prompt, first = await sigterm_mid_job(tmp_path, config, data_dir, fake)

    # Finished before the process exited, from the one provider call made.
    assert stored(data_dir)[job_id][0] == "completed", first.fail(f"stored: {stored(data_dir)}")
    await restart_until_completed(tmp_path, config, data_dir, fake, {job_id: prompt}, "second")
    assert provider_calls(fake, prompt) == 1


@pytest.mark.timeout(60)
async def test_sigterm_releases_a_job_that_outlasts_the_grace(tmp_path: Path, fake: FakeOpenAI) -> None:
    data_dir = tmp_path / "data"
    config = server_config(fake, shutdown_grace_seconds=0.5)
    fake.latency = 30
    job_id, prompt, first = await sigterm_mid_job(tmp_path, config, data_dir, fake)

    # Handed back to the queue, not failed nor left leased; the release returns the attempt.
    assert stored(data_dir)[job_id] == ("pending", 0), first.fail(f"stored: {stored(data_dir)}")
    await restart_until_completed(tmp_path, config, data_dir, fake, {job_id: prompt}, "second")
    assert provider_calls(fake, prompt) == 2


async def next_health(call: Any) -> int:
    """The next status of a health Watch stream."""
    try:
        reply = await anext(aiter(call), None)  # the call keeps one iterator: each anext is the next message
    except grpc.aio.AioRpcError as exc:
        raise AssertionError(f"the health watch failed: {exc.code()}") from exc
    assert reply is not None, "the health watch ended"
    status: int = reply.status
    return status


async def sigterm_seen_as_not_serving(server: ServerProcess) -> None:
    """SIGTERM the server: a health Watch opened before (so kept through the grace) turns NOT_SERVING."""
    async with grpc.aio.insecure_channel(server.grpc_target) as channel:
        watch = health_pb2_grpc.HealthStub(channel).Watch(health_pb2.HealthCheckRequest(service=""))
        assert await next_health(watch) == health_pb2.HealthCheckResponse.SERVING
        server.kill(signal.SIGTERM)
        status = await next_health(watch)
        assert status == health_pb2.HealthCheckResponse.NOT_SERVING, server.fail(f"health {status}")
        watch.cancel()


@pytest.mark.timeout(60)
async def test_grpc_health_is_not_serving_while_asyncgate_finishes_a_job(
    tmp_path: Path, fake: FakeOpenAI
) -> None:
    config = server_config(fake, shutdown_grace_seconds=30)
    fake.latency = 30  # the job outlives the checks: the server stays in its grace period throughout
    async with AsyncGateProcess(tmp_path, config, tmp_path / "data") as server:
        await one_running_job(server.base_url, fake, server)
        await sigterm_seen_as_not_serving(server)
        assert server.running, server.fail("the server should still be finishing its job")


@pytest.mark.timeout(60)
async def test_bridge_health_is_503_while_the_grpc_server_finishes_a_job(
    tmp_path: Path, fake: FakeOpenAI
) -> None:
    # Separate processes: `python -m asyncgate` closes its own bridge before the server's grace period.
    data_dir = tmp_path / "data"
    config = server_config(fake, shutdown_grace_seconds=30)
    fake.latency = 30
    async with (
        GrpcServerProcess(tmp_path, config, data_dir) as server,
        RestBridgeProcess(tmp_path, server.grpc_target) as bridge,
        aiohttp.ClientSession(bridge.base_url) as http,
    ):
        job_id, prompt = await one_running_job(bridge.base_url, fake, server)
        await sigterm_seen_as_not_serving(server)
        async with http.get("/health") as response:
            assert response.status == 503, server.fail(await response.text())
        assert server.running, server.fail("the server should still be finishing its job")
        server.kill(signal.SIGKILL)  # mid-grace: the job must still not be lost
        await server.wait()

    await restart_until_completed(tmp_path, config, data_dir, fake, {job_id: prompt}, "restarted")
