"""Many jobs in flight against one slow provider, on SQLite and PostgreSQL: each job calls the
provider exactly once, however long it waits for one of the provider's slots, and never more
calls are in flight than the provider's max_concurrency (the wait itself: tests/unit/test_chain.py)."""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import AsyncIterator
from dataclasses import replace
from typing import Any

import pytest

from grpc_server.config import ApiKey, DispatcherSettings, ProviderSettings, RetrySettings
from tests.conftest import Stack, StackFactory
from tests.fakes.openai_server import FakeOpenAI
from tests.pg import fresh_database
from tests.rest import wait_terminal

EMBEDDINGS = "/v1/async/embeddings"
JOBS = 60
POOL = 5
LATENCY = 0.5
ATTEMPT_TIMEOUT = 2.0
"""Well under the JOBS / POOL x LATENCY = 6 s the last jobs wait in line for a slot."""


@pytest.fixture(params=["sqlite", "postgres"])
async def store_overrides(request: pytest.FixtureRequest) -> AsyncIterator[dict[str, Any]]:
    """The server settings that put its jobs in the store of the test's parameter."""
    if request.param == "sqlite":
        yield {}
        return
    async with fresh_database() as dsn:
        yield {"database_url": dsn, "url_signing_secret": "an-inflight-test-signing-secret-of-enough-bytes"}


async def _stack(make_stack: StackFactory, fake: FakeOpenAI, store: dict[str, Any], *, pool: int) -> Stack:
    provider = ProviderSettings(
        kind="openai-compatible",
        keys=(ApiKey("sk-test"),),
        base_url=fake.base_url,
        timeout_seconds=ATTEMPT_TIMEOUT,
        max_concurrency=pool,
    )
    dispatcher = replace(DispatcherSettings(), concurrency=JOBS + 4, poll_interval_seconds=0.2)
    retry = RetrySettings(max_attempts=3, base_delay_seconds=0.01, max_delay_seconds=1)
    return await make_stack(providers={"slow": provider}, dispatcher=dispatcher, retry=retry, **store)


async def _submit(stack: Stack, text: str) -> str:
    async with stack.http.post(EMBEDDINGS, json={"model": "slow/embed", "input": text}) as response:
        body = await response.json()
        assert response.status == 202, body
        return str(body["id"])


def _calls_by_text(fake: FakeOpenAI) -> Counter[str]:
    return Counter(str(r.json["input"]) for r in fake.requests if isinstance(r.json, dict))


async def test_jobs_far_above_the_pool_call_the_provider_once_each(
    make_stack: StackFactory, store_overrides: dict[str, Any]
) -> None:
    async with FakeOpenAI(api_key="sk-test") as fake:
        fake.latency = LATENCY
        stack = await _stack(make_stack, fake, store_overrides, pool=POOL)
        texts = [f"job number {i}" for i in range(JOBS)]
        ids = await asyncio.gather(*(_submit(stack, text) for text in texts))
        jobs = await asyncio.gather(*(wait_terminal(stack.http, i, path=EMBEDDINGS) for i in ids))
    assert [job["status"] for job in jobs] == ["completed"] * JOBS, [
        j for j in jobs if j["status"] != "completed"
    ]
    assert _calls_by_text(fake) == Counter(texts)  # every job exactly once, no retry after a wait
    assert len(fake.requests) == JOBS
    assert fake.max_in_flight == POOL  # the pool was full, and never more than max_concurrency
