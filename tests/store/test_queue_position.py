"""A pending job's queue position on both stores: the number of pending jobs the claim takes
before it, in the fair claim's order (keys taking turns, a key's running jobs counting against
its turn, higher priority first, keyless jobs as one key) or oldest first when fair share is
off; checked against the claims themselves, one job at a time."""

from __future__ import annotations

import random
from dataclasses import replace
from datetime import timedelta

from grpc_server.domain.jobs import Job, JobStatus, cancelled_error
from grpc_server.store.admission import KeyPolicy
from grpc_server.store.base import JobStore
from tests.store.test_fair_share import _backlog, _claim_one_by_one, _files
from tests.store.test_store_contract import LEASE, T0, _job


async def _positions(store: JobStore, jobs: list[Job]) -> dict[str, int]:
    positions = {job.id: await store.queue_position(job) for job in jobs}
    assert all(type(p) is int for p in positions.values())  # a Decimal would not fit the proto
    return positions


async def _claim_checking_positions(store: JobStore, pending: list[Job]) -> None:
    """Claim every pending job one at a time: each claim takes the job at position 0, and every
    other job moves up by one."""
    positions = await _positions(store, pending)
    assert sorted(positions.values()) == list(range(len(pending)))
    left = {job.id: job for job in pending}
    for step in range(len(pending)):
        (claimed,) = await store.claim_jobs("w", 1, T0, T0 + LEASE)
        assert positions[claimed.id] == step
        del left[claimed.id]
        now = await _positions(store, list(left.values()))
        assert now == {job_id: positions[job_id] - step - 1 for job_id in left}


async def test_a_small_key_behind_a_backlog_is_near_the_front(store: JobStore) -> None:
    a = await _backlog(store, "vk-a", 50, 0)
    b = await _backlog(store, "vk-b", 3, 1000)
    positions = await _positions(store, a + b)
    assert [positions[job.id] for job in b] == [1, 3, 5]  # A1 B1 A2 B2 A3 B3 A4 ...
    assert [positions[job.id] for job in a[:5]] == [0, 2, 4, 6, 7]
    assert positions[a[-1].id] == 52
    await _claim_checking_positions(store, a + b)


async def test_positions_follow_priorities_running_jobs_keyless_jobs_and_ties(store: JobStore) -> None:
    store.use_key_policy(KeyPolicy(priorities={"vk-c": 3}))
    spread = random.Random(12)
    jobs = [
        # Times within 8 ms: many jobs share an instant, ordered by id within their key's turn.
        replace(
            _job(T0 + timedelta(milliseconds=spread.randrange(8))),
            owner_key_id=spread.choice([None, None, "vk-a", "vk-a", "vk-a", "vk-b", "vk-c"]),
        )
        for _ in range(40)
    ]
    for job in jobs:
        await store.create_job(job, _files())
    running = {job.id for job in await store.claim_jobs("w", 7, T0, T0 + LEASE)}  # turns now differ
    pending = [job for job in jobs if job.id not in running]
    await _claim_checking_positions(store, pending)


async def test_a_key_of_higher_priority_is_counted_whole(store: JobStore) -> None:
    store.use_key_policy(KeyPolicy(priorities={"vk-b": 5}))
    a = await _backlog(store, "vk-a", 5, 0)
    b = await _backlog(store, "vk-b", 4, 1000)
    positions = await _positions(store, a + b)
    assert [positions[job.id] for job in b + a] == list(range(9))


async def test_without_fair_share_positions_are_oldest_first(store: JobStore) -> None:
    store.use_key_policy(KeyPolicy(fair_share=False))
    a = await _backlog(store, "vk-a", 50, 0)
    b = await _backlog(store, "vk-b", 3, 1000)
    positions = await _positions(store, a + b)
    assert [positions[job.id] for job in b] == [50, 51, 52]
    claimed = await _claim_one_by_one(store, 53)
    assert [positions[job.id] for job in claimed] == list(range(53))


async def test_a_job_that_left_the_queue_is_not_counted(store: JobStore) -> None:
    a = await _backlog(store, "vk-a", 3, 0)
    b = await _backlog(store, "vk-b", 2, 1000)
    await store.cancel_job(a[0].id, cancelled_error(a[0], "ev"), T0)
    positions = await _positions(store, a[1:] + b)
    # A2 and B1 both have turn 1 now; A2 is older.
    assert [positions[job.id] for job in [a[1], b[0], a[2], b[1]]] == [0, 1, 2, 3]
    assert (await store.get_job(a[0].id)).status == JobStatus.CANCELLED  # type: ignore[union-attr]
