"""JobChanges: waiters woken by store events, and reads shared between them without ever
handing a waiter a state older than the event that woke it."""

from __future__ import annotations

import asyncio

from grpc_server.store.base import StoreEvent
from grpc_server.watch import JobChanges


async def test_an_event_wakes_the_waiters_of_its_job_only() -> None:
    changes = JobChanges()
    with changes.watching("a") as a, changes.watching("b") as b:
        changes.on_event(StoreEvent("completed", "a"))
        assert a.is_set() and not b.is_set()
        changes.on_event(StoreEvent("submitted", ""))  # events may have been lost: everyone re-reads
        assert b.is_set()
    assert changes.watched == 0


async def test_concurrent_reads_share_one_load_until_the_next_event() -> None:
    changes = JobChanges()
    loads = 0
    release = asyncio.Event()

    async def load() -> int:
        nonlocal loads
        loads += 1
        number = loads
        await release.wait()
        return number

    with changes.watching("a"):
        first = [asyncio.create_task(changes.read("a", load)) for _ in range(100)]
        await asyncio.sleep(0)
        changes.on_event(StoreEvent("completed", "a"))  # a read begun before this is not shared on
        after_event = asyncio.create_task(changes.read("a", load))
        await asyncio.sleep(0)
        release.set()
        assert set(await asyncio.gather(*first)) == {1} and await after_event == 2
        assert loads == 2
