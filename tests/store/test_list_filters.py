"""ListJobs filters on both stores: each filter (status, type, labels, creation range, and their
combinations) returns exactly the caller's matching jobs, newest first, each once, when paged
three at a time while new jobs keep arriving; jobs share creation instants, so pages also split
ties (ordered by id)."""

from __future__ import annotations

import random
from dataclasses import replace
from datetime import timedelta

import pytest

from grpc_server.domain.jobs import (
    EmbeddingParams,
    ImageEditParams,
    ImageGenerationParams,
    ImageVariationParams,
    Job,
    JobParams,
    JobStatus,
    RequestType,
    cancelled_error,
    new_job_id,
)
from grpc_server.jobs_list import Cursor, ListQuery
from grpc_server.store.base import JobStore
from tests.store.test_fair_share import _files
from tests.store.test_store_contract import ERROR, LEASE, T0, _result

PARAMS: dict[RequestType, JobParams] = {
    RequestType.IMAGE_EDIT: ImageEditParams(model="local/pillow", prompt="p"),
    RequestType.IMAGE_GENERATION: ImageGenerationParams(model="local/pillow", prompt="p"),
    RequestType.EMBEDDING: EmbeddingParams(model="local/hashing", input="x"),
    RequestType.IMAGE_VARIATION: ImageVariationParams(model="local/pillow"),
}
PAGE = 3


def _new(spread: random.Random, owner: str | None, created_offset: timedelta) -> Job:
    request_type = spread.choice(sorted(RequestType))
    labels = {
        key: spread.choice(values) for key, values in (("team", "xy"), ("env", "pd")) if spread.random() < 0.7
    }
    return replace(
        Job(new_job_id(), request_type, JobStatus.PENDING, PARAMS[request_type], T0 + created_offset, 3600),
        owner_key_id=owner,
        labels=labels,
    )


async def _fill(store: JobStore) -> list[Job]:
    """70 jobs of three callers over 25 instants, in every status; as the store now has them."""
    spread = random.Random(20261204)
    jobs = [
        _new(
            spread,
            spread.choice(["vk-a", "vk-a", "vk-a", "vk-b", None]),
            timedelta(seconds=spread.randrange(25)),
        )
        for _ in range(70)
    ]
    for job in jobs:
        await store.create_job(job, _files())
    for job in jobs[::7]:
        await store.cancel_job(job.id, cancelled_error(job, "ev"), T0)
    for job in jobs[3::8]:
        await store.fail_job(job.id, None, ERROR, T0)  # pending ones only
    claimed = await store.claim_jobs("w", 30, T0, T0 + LEASE)
    for n, job in enumerate(claimed):
        if n % 3 == 0:
            await store.complete_job(job.id, "w", _result(job, 0), [], T0)
        elif n % 3 == 1:
            await store.fail_job(job.id, "w", ERROR, T0)
    now = [await store.get_job(job.id) for job in jobs]
    assert all(job is not None for job in now)
    made = [job for job in now if job is not None]
    assert {job.status for job in made} == set(JobStatus)
    return made


def _matches(job: Job, query: ListQuery) -> bool:
    return (
        (query.owner_key_id is None or job.owner_key_id == query.owner_key_id)
        and (not query.statuses or job.status in query.statuses)
        and (query.request_type is None or job.request_type == query.request_type)
        and all(job.labels.get(k) == v for k, v in query.labels.items())
        and (query.created_after is None or job.created_at >= query.created_after)
        and (query.created_before is None or job.created_at < query.created_before)
    )


async def _paged(store: JobStore, query: ListQuery, arrivals: random.Random, arrived: list[Job]) -> list[str]:
    """Every page of the listing, a new job (of any kind, often matching) arriving after each
    (and added to `arrived`)."""
    seen: list[str] = []
    after: Cursor | None = None
    while True:
        page = await store.list_jobs(replace(query, page_size=PAGE, after=after))
        seen += [job.id for job in page[:PAGE]]
        if len(page) <= PAGE:
            return seen
        after = Cursor(page[PAGE - 1].created_at, page[PAGE - 1].id)
        newer = timedelta(hours=1, seconds=len(arrived))
        arrived.append(_new(arrivals, query.owner_key_id or "vk-a", newer))
        await store.create_job(arrived[-1], _files())


QUERIES = {
    "all": ListQuery(),
    "pending": ListQuery(statuses=(JobStatus.PENDING,)),
    "processing": ListQuery(statuses=(JobStatus.PROCESSING,)),
    "completed": ListQuery(statuses=(JobStatus.COMPLETED,)),
    "failed": ListQuery(statuses=(JobStatus.FAILED,)),
    "cancelled": ListQuery(statuses=(JobStatus.CANCELLED,)),
    "failed or cancelled": ListQuery(statuses=(JobStatus.FAILED, JobStatus.CANCELLED)),
    "every status": ListQuery(statuses=tuple(JobStatus)),
    "embedding": ListQuery(request_type=RequestType.EMBEDDING),
    "image edit": ListQuery(request_type=RequestType.IMAGE_EDIT),
    "generation, pending or completed": ListQuery(
        request_type=RequestType.IMAGE_GENERATION, statuses=(JobStatus.PENDING, JobStatus.COMPLETED)
    ),
    "created in [5 s, 15 s)": ListQuery(
        created_after=T0 + timedelta(seconds=5), created_before=T0 + timedelta(seconds=15)
    ),
    "failed, created before 12 s": ListQuery(
        statuses=(JobStatus.FAILED,), created_before=T0 + timedelta(seconds=12)
    ),
    "variation, created from 10 s": ListQuery(
        request_type=RequestType.IMAGE_VARIATION, created_after=T0 + timedelta(seconds=10)
    ),
    "team=x": ListQuery(labels={"team": "x"}),
    "team=y and env=p": ListQuery(labels={"team": "y", "env": "p"}),
    "env=d, completed or failed": ListQuery(
        labels={"env": "d"}, statuses=(JobStatus.COMPLETED, JobStatus.FAILED)
    ),
    "team=x, embedding": ListQuery(labels={"team": "x"}, request_type=RequestType.EMBEDDING),
    "team=x, created in [3 s, 20 s)": ListQuery(
        labels={"team": "x"},
        created_after=T0 + timedelta(seconds=3),
        created_before=T0 + timedelta(seconds=20),
    ),
    "a label no job has": ListQuery(labels={"team": "z"}),
}


@pytest.mark.parametrize("owner", ["vk-a", None], ids=["a caller", "an admin (every owner)"])
async def test_each_filter_pages_exactly_the_matching_jobs_while_jobs_arrive(
    store: JobStore, owner: str | None
) -> None:
    made = await _fill(store)
    arrivals, arrived = random.Random(7), list[Job]()
    for name, query in QUERIES.items():
        query = replace(query, owner_key_id=owner)
        expected = [
            job.id
            for job in sorted(made + arrived, key=lambda j: (j.created_at, j.id), reverse=True)
            if _matches(job, query)
        ]
        assert expected or name == "a label no job has"
        assert await _paged(store, query, arrivals, arrived) == expected, name
    assert len(arrived) > len(QUERIES)  # most listings took several pages
