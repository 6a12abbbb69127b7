"""A REST client that hangs up mid-wait ends the server's wait at once: `Prefer: wait` on the
job paths, the poll paths and a submit, the event stream, and the OpenAI-compatible routes
that hold a request until its job ends. Each waits far longer than the test would (an hour),
on a job that never runs (accept-only server), so only the hang-up can end the server's
WaitJob or WatchJob before the test gives up; the server's asyncgate_job_waiters gauge says
when it has. The job itself runs on: still pending afterwards."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from urllib.parse import urlsplit

import pytest

from grpc_server.config import DispatcherSettings
from rest_bridge import jobs_routes
from rest_bridge.config import BridgeConfig
from tests.conftest import KEY_A, Stack, StackFactory
from tests.observability.scrape import scrape, value

HOUR = 3600
GIVE_UP_SECONDS = 60.0
"""Generous, and far below the hour every wait here asks for."""
VK = f"x-bf-vk: {KEY_A.value}\r\n"


@pytest.fixture
async def stack(make_stack: StackFactory) -> Stack:
    return await make_stack(
        BridgeConfig(max_wait_seconds=HOUR),
        dispatcher=DispatcherSettings(concurrency=0, poll_interval_seconds=0.2),
        max_wait_seconds=float(HOUR),
        metrics_port=0,
    )


async def _waiters(stack: Stack, kind: str) -> float:
    samples = await scrape(f"http://127.0.0.1:{stack.server.metrics.port}/metrics")
    return value(samples, "asyncgate_job_waiters", kind=kind)


async def _until(check: Callable[[float], bool], stack: Stack, kind: str) -> None:
    async with asyncio.timeout(GIVE_UP_SECONDS):
        while not check(await _waiters(stack, kind)):
            await asyncio.sleep(0.02)


async def _pending_job(stack: Stack) -> str:
    body = {"model": "local/hashing", "input": "never runs"}
    async with stack.http.post("/v1/async/embeddings", json=body, headers={"x-bf-vk": KEY_A.value}) as r:
        assert r.status == 202
        job_id: str = (await r.json())["id"]
    return job_id


def _get(path: str, headers: str = "") -> bytes:
    return f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n{VK}{headers}\r\n".encode()


def _post(path: str, body: dict[str, str], headers: str = "") -> bytes:
    data = json.dumps(body).encode()
    head = (
        f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n{VK}{headers}Content-Type: application/json\r\n"
        f"Content-Length: {len(data)}\r\n\r\n"
    )
    return head.encode() + data


WAIT = f"Prefer: wait={HOUR}\r\n"
EMBEDDING = {"model": "local/hashing", "input": "never runs either"}
REQUESTS: dict[str, tuple[str, Callable[[str], bytes]]] = {
    "job path, Prefer: wait": ("wait", lambda job: _get(f"/v1/async/jobs/{job}", WAIT)),
    "poll path, Prefer: wait": ("wait", lambda job: _get(f"/v1/async/embeddings/{job}", WAIT)),
    "submit, Prefer: wait": ("wait", lambda _: _post("/v1/async/embeddings", EMBEDDING, WAIT)),
    "event stream": ("watch", lambda job: _get(f"/v1/async/jobs/{job}/events")),
    "OpenAI-compatible submit": ("wait", lambda _: _post("/v1/embeddings", EMBEDDING)),
    "OpenAI-compatible pick-up": ("wait", lambda job: _get(f"/v1/embeddings/{job}")),
}


@pytest.mark.parametrize("name", list(REQUESTS))
async def test_a_client_that_hangs_up_ends_the_servers_wait(
    stack: Stack, name: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # No keep-alive comment within the test: its write would find the connection closed too.
    monkeypatch.setattr(jobs_routes, "KEEP_ALIVE_SECONDS", float(HOUR))
    kind, request = REQUESTS[name]
    job_id = await _pending_job(stack)
    before = await _waiters(stack, kind)
    url = urlsplit(stack.base_url)
    reader, writer = await asyncio.open_connection(url.hostname, url.port)
    writer.write(request(job_id))
    await writer.drain()
    await _until(lambda now: now == before + 1, stack, kind)  # the server waits for the client
    writer.close()  # the client hangs up
    await writer.wait_closed()
    await _until(lambda now: now == before, stack, kind)  # long before the hour is up
    async with stack.http.get(f"/v1/async/jobs/{job_id}", headers={"x-bf-vk": KEY_A.value}) as r:
        assert r.status == 202 and (await r.json())["status"] == "pending"  # the job runs on
    del reader
