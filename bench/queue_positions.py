"""The cost of a pending job's queue_position (computed on each poll of a pending job) under fair
share, against the oldest-first count it replaced, on both stores.

    python -m bench.queue_positions [--backlog 5000] [--calls 200] [--rounds 4]

Key A submits `backlog` jobs, then key B 10; A's 16 oldest are claimed (running). For a few
jobs, the store's queue_position is called `calls` times with fair share on and off, in
alternating rounds: the position each mode gives and the median time of a call (through the
store: a thread hop on SQLite, a pooled connection on PostgreSQL). On PostgreSQL the buffers
each statement touches are shown too (EXPLAIN ANALYZE).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import tempfile
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path

import asyncpg

from bench import pg
from grpc_server.domain.jobs import ImageEditParams, InputFile, Job, JobStatus, RequestType, new_job_id
from grpc_server.store.admission import KeyPolicy
from grpc_server.store.base import JobStore, StagedFile
from grpc_server.store.fair_share import POSTGRES_POSITION
from grpc_server.store.job_api_sql import oldest_first_position_sql
from grpc_server.store.migrate import migrate
from grpc_server.store.postgres import PostgresStore
from grpc_server.store.sqlite import SQLiteStore

SMALL = 10
RUNNING = 16
_FILES = [StagedFile(InputFile("image", 0, "a.png", "image/png", 3, 1, 1), b"png")]
FAIR, OLDEST_FIRST = KeyPolicy(fair_share=True), KeyPolicy(fair_share=False)


def _jobs(owner: str, count: int, start: datetime) -> list[Job]:
    params = ImageEditParams(model="local/pillow", prompt="p")
    return [
        Job(
            new_job_id(),
            RequestType.IMAGE_EDIT,
            JobStatus.PENDING,
            params,
            start + timedelta(microseconds=i),
            3600,
            owner,
        )
        for i in range(count)
    ]


async def _queue(store: JobStore, backlog: int) -> dict[str, Job]:
    """The queue of the module's docstring; the jobs whose positions are measured, by name."""
    start = datetime.now(UTC)
    a, b = _jobs("key-a", backlog, start), _jobs("key-b", SMALL, start + timedelta(seconds=1))
    for batch in (a[i : i + 500] for i in range(0, backlog, 500)):
        await asyncio.gather(*(store.create_job(job, _FILES) for job in batch))
    await asyncio.gather(*(store.create_job(job, _FILES) for job in b))
    store.use_key_policy(OLDEST_FIRST)
    await store.claim_jobs("bench", RUNNING, start, start + timedelta(hours=1))
    return {
        "B's first job": b[0],
        "B's last job": b[-1],
        "A's first pending job": a[RUNNING],
        "A's last job": a[-1],
    }


async def _timed(store: JobStore, job: Job, calls: int) -> tuple[int, list[float]]:
    took = []
    position = -1
    for _ in range(calls):
        started = time.perf_counter()
        position = await store.queue_position(job)
        took.append((time.perf_counter() - started) * 1000)
    return position, took


Result = dict[str, dict[str, tuple[int, float]]]
"""Job -> mode -> (position, median ms per call)."""


async def measure(store: JobStore, cases: dict[str, Job], calls: int, rounds: int) -> Result:
    result: Result = {}
    for name, job in cases.items():
        seen: dict[str, tuple[int, list[float]]] = {"fair": (0, []), "oldest first": (0, [])}
        for n in range(rounds):
            modes = [("fair", FAIR), ("oldest first", OLDEST_FIRST)]
            for mode, policy in modes if n % 2 == 0 else reversed(modes):
                store.use_key_policy(policy)
                position, took = await _timed(store, job, calls)
                seen[mode] = (position, seen[mode][1] + took)
        result[name] = {mode: (position, statistics.median(took)) for mode, (position, took) in seen.items()}
    return result


async def buffers(dsn: str, job: Job) -> dict[str, int]:
    """Shared buffers each mode's statement touches for `job` (PostgreSQL)."""
    statements = {
        "fair": (POSTGRES_POSITION, [job.owner_key_id or "", job.created_at, job.id, 0, [], []]),
        "oldest first": (oldest_first_position_sql("$1", "$2"), [job.created_at, job.id]),
    }
    conn = await asyncpg.connect(dsn)
    try:
        touched = {}
        for mode, (sql, args) in statements.items():
            plan = json.loads(await conn.fetchval(f"EXPLAIN (ANALYZE, BUFFERS, FORMAT JSON) {sql}", *args))[0]
            touched[mode] = plan["Plan"]["Shared Hit Blocks"] + plan["Plan"]["Shared Read Blocks"]
        return touched
    finally:
        await conn.close()


@asynccontextmanager
async def _postgres() -> AsyncIterator[tuple[PostgresStore, str]]:
    async with pg.fresh_database() as dsn:
        await migrate(dsn)
        store = PostgresStore(dsn)
        await store.open()
        try:
            yield store, dsn
        finally:
            await store.close()


def report(store: str, result: Result) -> str:
    lines = [f"## {store}: position, median ms per call (fair / oldest first)", ""]
    for name, modes in result.items():
        (fair_at, fair_ms), (old_at, old_ms) = modes["fair"], modes["oldest first"]
        times = f"{fair_ms:.3f} / {old_ms:.3f} ms ({fair_ms / old_ms:.2f}x)"
        lines.append(f"{name}: position {fair_at} / {old_at}; {times}")
    return "\n".join(lines)


async def main(backlog: int, calls: int, rounds: int) -> None:
    print(
        f"key A: {backlog} jobs ({RUNNING} running), then key B: {SMALL}; {calls} calls x {rounds} rounds\n"
    )
    with tempfile.TemporaryDirectory() as scratch:
        store = SQLiteStore(Path(scratch, "positions.sqlite3"))
        await store.open()
        try:
            cases = await _queue(store, backlog)
            print(report("SQLite", await measure(store, cases, calls, rounds)) + "\n")
        finally:
            await store.close()
    async with _postgres() as (pg_store, dsn):
        cases = await _queue(pg_store, backlog)
        print(report("PostgreSQL", await measure(pg_store, cases, calls, rounds)))
        for name, job in cases.items():
            print(f"{name}: buffers {await buffers(dsn, job)}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(prog="python -m bench.queue_positions", description=__doc__)
    parser.add_argument("--backlog", type=int, default=5000)
    parser.add_argument("--calls", type=int, default=200)
    parser.add_argument("--rounds", type=int, default=4)
    args = parser.parse_args()
    asyncio.run(main(args.backlog, args.calls, args.rounds))
