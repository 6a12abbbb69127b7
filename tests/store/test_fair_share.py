"""Fair-share claims on both stores: keys take turns, a key's running jobs count against its
turn, higher priority first, keyless jobs are one key, oldest first within a key; and the
plain oldest-first claim when fair share is off."""

from __future__ import annotations

import asyncio
from dataclasses import replace
from datetime import timedelta

from grpc_server.domain.jobs import InputFile, Job
from grpc_server.store.admission import KeyPolicy
from grpc_server.store.base import JobStore, StagedFile
from grpc_server.store.migrate import migrate
from tests.pg import TEST_DATABASE_URL
from tests.store.conftest import postgres_store
from tests.store.test_store_contract import LEASE, T0, _job


def _files() -> list[StagedFile]:
    return [StagedFile(InputFile("image", 0, "a.png", "image/png", 3, 1, 1), b"png")]


async def _backlog(store: JobStore, owner: str | None, count: int, start_ms: int) -> list[Job]:
    jobs = [
        replace(_job(T0 + timedelta(milliseconds=start_ms + i)), owner_key_id=owner) for i in range(count)
    ]
    await asyncio.gather(*(store.create_job(job, _files()) for job in jobs))
    return jobs


async def _claim_one_by_one(store: JobStore, count: int) -> list[Job]:
    return [job for _ in range(count) for job in await store.claim_jobs("w", 1, T0, T0 + LEASE)]


async def test_a_small_key_is_served_among_the_first_claims_behind_a_backlog(store: JobStore) -> None:
    a = await _backlog(store, "vk-a", 100, 0)
    b = await _backlog(store, "vk-b", 3, 1000)
    claimed = [job.id for job in await store.claim_jobs("w", 10, T0, T0 + LEASE)]
    assert claimed[:6] == [a[0].id, b[0].id, a[1].id, b[1].id, a[2].id, b[2].id]
    assert claimed[6:] == [job.id for job in a[3:7]]  # oldest first within a key


async def test_claims_of_one_job_at_a_time_take_turns_too(store: JobStore) -> None:
    """A key's running jobs count against its turn, so single-slot claims alternate rather
    than serving the oldest backlog first."""
    a = await _backlog(store, "vk-a", 100, 0)
    b = await _backlog(store, "vk-b", 3, 1000)
    claimed = [job.id for job in await _claim_one_by_one(store, 6)]
    assert claimed == [a[0].id, b[0].id, a[1].id, b[1].id, a[2].id, b[2].id]


async def test_a_key_of_higher_priority_goes_first(store: JobStore) -> None:
    store.use_key_policy(KeyPolicy(priorities={"vk-b": 5}))
    a = await _backlog(store, "vk-a", 20, 0)
    b = await _backlog(store, "vk-b", 3, 1000)
    claimed = [job.id for job in await store.claim_jobs("w", 5, T0, T0 + LEASE)]
    assert claimed == [*(job.id for job in b), a[0].id, a[1].id]


async def test_keyless_jobs_take_turns_as_one_key(store: JobStore) -> None:
    keyless = await _backlog(store, None, 30, 0)
    b = await _backlog(store, "vk-b", 2, 1000)
    claimed = [job.id for job in await _claim_one_by_one(store, 4)]
    assert claimed == [keyless[0].id, b[0].id, keyless[1].id, b[1].id]


async def test_without_fair_share_claims_are_oldest_first(store: JobStore) -> None:
    store.use_key_policy(KeyPolicy(priorities={"vk-b": 5}, fair_share=False))
    a = await _backlog(store, "vk-a", 20, 0)
    await _backlog(store, "vk-b", 3, 1000)
    claimed = [job.id for job in await store.claim_jobs("w", 10, T0, T0 + LEASE)]
    assert claimed == [job.id for job in a[:10]]


async def test_replicas_claiming_at_once_take_disjoint_jobs_in_turns(pg_schema: str) -> None:
    await migrate(TEST_DATABASE_URL, schema=pg_schema)
    async with postgres_store(pg_schema) as one, postgres_store(pg_schema) as two:
        await _backlog(one, "vk-a", 60, 0)
        await _backlog(one, "vk-b", 60, 1000)
        batches = await asyncio.gather(
            *(replica.claim_jobs(f"w{i}", 7, T0, T0 + LEASE) for i in range(4) for replica in (one, two))
        )
        ids = [job.id for batch in batches for job in batch]
        assert len(ids) == len(set(ids)) == 56  # none twice, none held back by another's locks
        owners = [job.owner_key_id for batch in batches for job in batch]
        # In turns, not exactly even: each replica picks turns from a snapshot that does not see
        # the others' claims yet, and ties go to the older key (vk-a) in all of them, so the 8
        # claims of 7 lean the same way; measured up to 12 apart on a loaded CI machine. Oldest
        # first (no fair share) would give vk-a all 56.
        assert abs(owners.count("vk-a") - owners.count("vk-b")) <= 16
