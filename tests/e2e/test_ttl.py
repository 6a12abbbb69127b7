"""Result lifetime through the REST bridge: the clock starts at completion, expiry is
enforced on read, and the sweeper removes expired jobs and their images."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

import pytest

from grpc_server.config import DispatcherSettings
from grpc_server.dispatch.sweeper import sweep_once
from tests.conftest import Stack, StackFactory
from tests.rest import EDITS, edit_form, submit, wait_terminal

DEFAULT, MAXIMUM = 1800, 86400


def _parse(stamp: str) -> datetime:
    return datetime.fromisoformat(stamp.replace("Z", "+00:00"))


@pytest.fixture
async def ttl_stack(make_stack: StackFactory) -> Stack:
    return await make_stack(default_ttl_seconds=DEFAULT, max_ttl_seconds=MAXIMUM)


@pytest.mark.parametrize(
    ("header", "ttl"),
    [
        (None, DEFAULT),
        ("", DEFAULT),
        ("abc", DEFAULT),
        ("5.5", DEFAULT),
        ("-5", DEFAULT),
        ("0", 3600),
        ("+5", 5),
        ("120", 120),
        ("999999999", MAXIMUM),
    ],
)
async def test_expires_at_is_completed_at_plus_ttl(ttl_stack: Stack, header: str | None, ttl: int) -> None:
    headers = {} if header is None else {"x-bf-async-job-result-ttl": header}
    _, accepted = await submit(ttl_stack.http, edit_form(), headers)
    job = await wait_terminal(ttl_stack.http, accepted["id"])
    assert (_parse(job["expires_at"]) - _parse(job["completed_at"])).total_seconds() == pytest.approx(
        ttl, abs=0.01
    )


async def test_an_expired_job_is_404_at_once_and_swept_later(make_stack: StackFactory) -> None:
    # A sweeper that never runs by itself: the 404 must come from the read path.
    stack = await make_stack(
        dispatcher=DispatcherSettings(poll_interval_seconds=0.1, sweep_interval_seconds=3600)
    )
    _, accepted = await submit(stack.http, edit_form(), {"x-bf-async-job-result-ttl": "1"})
    job = await wait_terminal(stack.http, accepted["id"])
    url = job["result"]["data"][0]["url"]
    expires_at = _parse(job["expires_at"])
    while datetime.now(UTC) < expires_at:
        await asyncio.sleep(0.05)
    async with stack.http.get(f"{EDITS}/{accepted['id']}") as response:
        assert response.status == 404
    async with stack.http.get(url) as response:
        assert response.status == 404
    assert stack.stored_jobs() == 1  # still there: nothing has swept it yet

    _, deleted = await sweep_once(stack.server.store, stack.server.config.dispatcher, datetime.now(UTC))
    assert deleted == 1
    assert stack.stored_jobs() == 0  # and its blobs with it (stored_jobs checks for orphans)
