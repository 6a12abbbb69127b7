"""Fair share: key A submits a backlog, then key B a few jobs; at which claim does each of B's
jobs start, with fair share and without (dispatcher.fair_share)?

The store's own claim statement on both stores, driven as the dispatcher drives it: `slots`
jobs run at once; the first claim fills them, then each job that ends frees its slot and the
next claim takes one job. A job's "claims before" is the number of jobs claimed before it.
The jobs are never run (no provider): what is measured is the order the claim query gives, and
its time per statement with A's backlog in the queue.
"""

from __future__ import annotations

import asyncio
import statistics
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from bench import pg
from grpc_server.domain.jobs import (
    ImageEditParams,
    InputFile,
    Job,
    JobError,
    JobStatus,
    RequestType,
    new_job_id,
)
from grpc_server.store.admission import KeyPolicy
from grpc_server.store.base import JobStore, StagedFile
from grpc_server.store.migrate import migrate
from grpc_server.store.postgres import PostgresStore
from grpc_server.store.sqlite import SQLiteStore

BACKLOG_JOBS = 5000
SMALL_JOBS = 10
SLOTS = 16
ENDED = JobError(status_code=500, message="bench: ended", type="api_error")
_FILES = [StagedFile(InputFile("image", 0, "a.png", "image/png", 3, 1, 1), b"png")]


def _job(owner: str, created_at: datetime) -> Job:
    params = ImageEditParams(model="local/pillow", prompt="p")
    return Job(new_job_id(), RequestType.IMAGE_EDIT, JobStatus.PENDING, params, created_at, 3600, owner)


async def _submit(store: JobStore, owner: str, count: int, start: datetime) -> set[str]:
    jobs = [_job(owner, start + timedelta(microseconds=i)) for i in range(count)]
    for i in range(0, count, 500):  # in bursts, as clients would send them
        await asyncio.gather(*(store.create_job(job, _FILES) for job in jobs[i : i + 500]))
    return {job.id for job in jobs}


async def _order(store: JobStore, small: set[str]) -> tuple[list[int], list[float]]:
    """Claims before each of `small`'s jobs, and the milliseconds of every claim statement
    until every job has been claimed."""
    now = datetime.now(UTC)
    lease = now + timedelta(hours=1)
    running: list[str] = []
    before: list[int] = []
    statement_ms: list[float] = []
    claimed = 0
    while True:  # until the queue is empty, so both modes time the same statements
        if running:  # the oldest running job ends: its slot is free
            await store.fail_job(running.pop(0), "bench", ENDED, now)
        started = time.perf_counter()
        jobs = await store.claim_jobs("bench", SLOTS - len(running), now, lease)
        statement_ms.append((time.perf_counter() - started) * 1000)
        if not jobs:
            break
        for job in jobs:
            if job.id in small:
                before.append(claimed)
            claimed += 1
            running.append(job.id)
    return before, statement_ms


async def _measure(store: JobStore, fair: bool, backlog: int) -> dict[str, Any]:
    store.use_key_policy(KeyPolicy(fair_share=fair))
    start = datetime.now(UTC)
    await _submit(store, "key-a", backlog, start)
    small = await _submit(store, "key-b", SMALL_JOBS, start + timedelta(seconds=1))
    before, statement_ms = await _order(store, small)
    return {
        "claims_before_each_b_job": before,
        "claim_statements": len(statement_ms),
        "claim_ms": {
            "p50": round(statistics.median(statement_ms), 3),
            "mean": round(statistics.fmean(statement_ms), 3),
        },
    }


@asynccontextmanager
async def _sqlite(workdir: Path, name: str) -> AsyncIterator[JobStore]:
    store = SQLiteStore(workdir / f"{name}.sqlite3")
    await store.open()
    try:
        yield store
    finally:
        await store.close()


@asynccontextmanager
async def _postgres(admin_url: str) -> AsyncIterator[JobStore]:
    async with pg.fresh_database(admin_url) as dsn:
        await migrate(dsn)
        store = PostgresStore(dsn)
        await store.open()
        try:
            yield store
        finally:
            await store.close()


async def fairness_measurement(
    workdir: Path, database_url: str, backlog: int = BACKLOG_JOBS
) -> dict[str, Any]:
    result: dict[str, Any] = {"backlog_jobs": backlog, "small_jobs": SMALL_JOBS, "slots": SLOTS}
    for mode, fair in (("fair_share", True), ("oldest_first", False)):
        async with _sqlite(workdir, f"fairness-{mode}") as store:
            result.setdefault("sqlite", {})[mode] = await _measure(store, fair, backlog)
    if (problem := await pg.unreachable(database_url)) is not None:
        result["postgres"] = {"skipped": problem}
        return result
    for mode, fair in (("fair_share", True), ("oldest_first", False)):
        async with _postgres(database_url) as store:
            result.setdefault("postgres", {})[mode] = await _measure(store, fair, backlog)
    return result


def fairness_lines(report: dict[str, Any]) -> list[str]:
    lines = [
        f"Fair share: key A submits {report['backlog_jobs']:,} jobs, then key B {report['small_jobs']};"
        f" {report['slots']} slots, each ended job frees one; claims before each of B's jobs",
        f"  {'':<24}{'first B':>9}{'last B':>9}{'claim p50 ms':>14}{'claim mean ms':>15}",
    ]
    for backend in ("sqlite", "postgres"):
        modes = report.get(backend, {})
        if "skipped" in modes:
            lines.append(f"  {backend:<24}skipped: {modes['skipped']}")
            continue
        for mode, fig in modes.items():
            before = fig["claims_before_each_b_job"]
            lines.append(
                f"  {backend + ' ' + mode:<24}{before[0]:>9}{before[-1]:>9}"
                f"{fig['claim_ms']['p50']:>14.3f}{fig['claim_ms']['mean']:>15.3f}"
            )
    return [*lines, ""]
