"""What the list indexes of migration 0006 cost the writes, on a database at 0005 against one at
0006, both holding the same jobs, in alternating rounds. Run by bench.list_plans.

Per job: inserting it, without labels and with two (which the trigger copies into job_labels),
then moving it pending -> processing, renewing its lease, completing it and deleting it (three
in four of the deleted jobs have labels, which the delete trigger removes). The inserts go as
the stores write them: PostgreSQL one INSERT a job (a round's jobs pipelined in one
transaction); SQLite the group commit's batch insert (sqlite_batch.insert_jobs, 100 jobs a
batch, one small input file each). The updates and deletes are one statement a job.

The figure is CPU time per job of whoever does the work (the PostgreSQL backend, from
/proc/PID/schedstat; the SQLite process), which other work on the machine disturbs far less than elapsed
time; the median of the rounds and their minimum are both reported. A submit's commit (its
fsync) is outside the figure: the indexes do not change it.
"""

from __future__ import annotations

import json
import random
import sqlite3
import statistics
import tempfile
import time
from collections.abc import Awaitable, Callable, Sequence
from contextlib import closing
from datetime import UTC, datetime, timedelta
from pathlib import Path

import asyncpg

from bench import pg
from grpc_server.domain.jobs import EmbeddingParams, InputFile, Job, JobStatus, RequestType
from grpc_server.store.base import StagedFile
from grpc_server.store.migrate import migrate
from grpc_server.store.migrations import migrations
from grpc_server.store.sqlite_batch import NewJob, insert_jobs

MEASURED = "0006_list_indexes"
"""The migration whose write cost is measured: "0005" is every migration but this one."""
"""The schema the costs are compared against: before the list indexes."""
T0 = datetime(2027, 1, 1, tzinfo=UTC)
BATCH = 100
_FILES = [StagedFile(InputFile("image", 0, "a.png", "image/png", 3, 1, 1), b"png")]

_INSERT = (
    "INSERT INTO jobs (id, request_type, status, model, owner_key_id, params, inputs, ttl_seconds,"
    " created_at, labels) VALUES ($1, $2, 'pending', 'local/hashing', $3, '{}', '[]', 3600, $4, $5)"
)
_UPDATES = {
    # $2: the lease's end, the completion, the expiry (each job's created_at: the rows exist).
    "claim (pending -> processing)": "UPDATE jobs SET status = 'processing', lease_owner = 'w',"
    " lease_until = $2, attempts = attempts + 1, change_seq = change_seq + 1 WHERE id = $1",
    "lease renewal": "UPDATE jobs SET lease_until = $2 WHERE id = $1",
    "complete": "UPDATE jobs SET status = 'completed', completed_at = $2, expires_at = $2,"
    " change_seq = change_seq + 1 WHERE id = $1",
    "delete (expiry)": "DELETE FROM jobs WHERE id = $1 AND expires_at <= $2",
}
INSERTS = ("insert, no labels", "insert, two labels")
WRITES = (*INSERTS, *_UPDATES)


def new_jobs(tag: str, count: int, start: datetime, owners: int = 20) -> list[Job]:
    """`count` pending jobs, three in four with two labels."""
    spread = random.Random(tag)
    return [
        Job(
            f"{tag}-{i}",
            spread.choice(sorted(RequestType)),
            JobStatus.PENDING,
            EmbeddingParams(model="local/hashing"),
            start + timedelta(milliseconds=i),
            3600,
            f"vk-{spread.randrange(owners)}",
            labels={} if i % 4 == 0 else {"team": f"t{spread.randrange(7)}", "run": f"{tag}-{i // 200}"},
        )
        for i in range(count)
    ]


def _row(job: Job, created: object) -> tuple[object, ...]:
    return (job.id, job.request_type.value, job.owner_key_id, created, json.dumps(job.labels))


def _by_labels(jobs: list[Job]) -> list[list[Job]]:
    """The jobs without labels, and those with (one list for each of INSERTS)."""
    return [[j for j in jobs if not j.labels], [j for j in jobs if j.labels]]


Round = Callable[[int], Awaitable[dict[str, float]]]
"""The n-th round on one schema: write -> CPU microseconds per job."""
Costs = dict[str, dict[str, list[float]]]
"""Schema -> write -> CPU microseconds per job, one figure a round."""


async def alternate(rounds: int, sides: dict[str, Round]) -> Costs:
    """Every side once a round, in an order that turns round by round."""
    seen: Costs = {side: {name: [] for name in WRITES} for side in sides}
    names = list(sides)
    for n in range(rounds):
        for side in names[n % len(names) :] + names[: n % len(names)]:
            for name, us in (await sides[side](n)).items():
                seen[side][name].append(us)
    return seen


# PostgreSQL


def _cpu_ns(pid: int) -> int:
    """Nanoseconds the process has run on a CPU (schedstat: finer than /proc/PID/stat's ticks)."""
    return int(Path(f"/proc/{pid}/schedstat").read_text().split()[0])


async def _pg_round(conn: asyncpg.Connection, backend: int, jobs: list[Job]) -> dict[str, float]:
    async def cpu_us(sql: str, rows: Sequence[tuple[object, ...]]) -> float:
        started = _cpu_ns(backend)
        async with conn.transaction():
            await conn.executemany(sql, rows)
        return (_cpu_ns(backend) - started) / len(rows) / 1000

    took = {}
    for name, some in zip(INSERTS, _by_labels(jobs), strict=True):
        took[name] = await cpu_us(_INSERT, [_row(j, j.created_at) for j in some])
    for name, sql in _UPDATES.items():
        took[name] = await cpu_us(sql, [(j.id, j.created_at) for j in jobs])
    return took


async def _pg_prefill(conn: asyncpg.Connection, jobs: int) -> None:
    for n in range(0, jobs, 10_000):
        batch = new_jobs(f"fill{n}", min(10_000, jobs - n), T0 - timedelta(days=1) + timedelta(seconds=n))
        await conn.executemany(_INSERT, [_row(j, j.created_at) for j in batch])
    await conn.execute("UPDATE jobs SET status = 'completed' WHERE hashtext(id) % 5 <> 0")
    await conn.execute("VACUUM ANALYZE")


GIN = "CREATE INDEX jobs_labels_gin ON jobs USING gin ((labels::jsonb) jsonb_path_ops) WHERE labels <> '{}'"
"""The alternative considered for labels: a GIN index on the JSON, on the jobs table itself."""


async def pg_costs(prefill: int, rounds: int, per_round: int) -> Costs:
    async with (
        pg.fresh_database() as before_dsn,
        pg.fresh_database() as after_dsn,
        pg.fresh_database() as gin_dsn,
    ):
        conns = {
            "0005": await asyncpg.connect(before_dsn),
            "0006": await asyncpg.connect(after_dsn),
            "0005 + GIN": await asyncpg.connect(gin_dsn),
        }
        try:
            for name in ("0005", "0005 + GIN"):
                for m in migrations("postgres"):
                    if m.version != MEASURED:
                        await conns[name].execute(m.sql)
            await conns["0005 + GIN"].execute(GIN)
            await migrate(after_dsn)
            for conn in conns.values():
                await _pg_prefill(conn, prefill)

            async def side(conn: asyncpg.Connection) -> Round:
                backend = await conn.fetchval("SELECT pg_backend_pid()")
                return lambda n: _pg_round(
                    conn, backend, new_jobs(f"r{n}", per_round, T0 + timedelta(hours=n))
                )

            return await alternate(rounds, {name: await side(conn) for name, conn in conns.items()})
        finally:
            for conn in conns.values():
                await conn.close()


# SQLite


def _lite(sql: str) -> str:
    for n in range(5, 0, -1):
        sql = sql.replace(f"${n}", f"?{n}")
    return sql


def _inserts(conn: sqlite3.Connection, jobs: list[Job]) -> float:
    """CPU microseconds per job of inserting `jobs` in group-commit batches."""
    started = time.process_time()
    for i in range(0, len(jobs), BATCH):
        insert_jobs(conn, [NewJob(job, _FILES) for job in jobs[i : i + BATCH]])
    return (time.process_time() - started) / len(jobs) * 1e6


def _updates(conn: sqlite3.Connection, sql: str, rows: Sequence[tuple[object, ...]]) -> float:
    """CPU microseconds per row of `sql` run for each of `rows` in one transaction."""
    started = time.process_time()
    conn.execute("BEGIN IMMEDIATE")
    conn.executemany(_lite(sql), rows)
    conn.execute("COMMIT")
    return (time.process_time() - started) / len(rows) * 1e6


async def _sqlite_round(conn: sqlite3.Connection, jobs: list[Job]) -> dict[str, float]:
    took = {name: _inserts(conn, some) for name, some in zip(INSERTS, _by_labels(jobs), strict=True)}
    for name, sql in _UPDATES.items():
        took[name] = _updates(conn, sql, [(j.id, j.created_at.timestamp()) for j in jobs])
    return took


def _sqlite_file(path: Path, skipped: str | None, prefill: int) -> sqlite3.Connection:
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=NORMAL")
    for m in migrations("sqlite"):
        if m.version != skipped:
            conn.executescript(m.sql)
    conn.execute("PRAGMA foreign_keys=ON")
    for n in range(0, prefill, 10_000):
        batch = new_jobs(f"fill{n}", min(10_000, prefill - n), T0 - timedelta(days=1) + timedelta(seconds=n))
        insert_jobs(conn, [NewJob(j, []) for j in batch])
    conn.execute("UPDATE jobs SET status = 'completed' WHERE rowid % 5 <> 0")
    conn.execute("ANALYZE")
    return conn


async def sqlite_costs(prefill: int, rounds: int, per_round: int) -> Costs:
    with tempfile.TemporaryDirectory() as scratch:
        with (
            closing(_sqlite_file(Path(scratch, "before.sqlite3"), MEASURED, prefill)) as before,
            closing(_sqlite_file(Path(scratch, "after.sqlite3"), None, prefill)) as after,
        ):

            def side(conn: sqlite3.Connection) -> Round:
                return lambda n: _sqlite_round(conn, new_jobs(f"r{n}", per_round, T0 + timedelta(hours=n)))

            return await alternate(rounds, {"0005": side(before), "0006": side(after)})


def report(store: str, costs: Costs) -> str:
    """Each write's CPU time per job at 0005, and on every other schema with its ratio to it."""
    base, others = costs["0005"], [side for side in costs if side != "0005"]
    lines = [f"## Write costs, {store}: CPU microseconds per job, median (minimum) of the rounds", ""]
    for name, figures in base.items():
        median, least = statistics.median(figures), min(figures)
        line = f"{name}: 0005 {median:.1f} ({least:.1f})"
        for side in others:
            m, lo = statistics.median(costs[side][name]), min(costs[side][name])
            line += f"; {side} {m:.1f} ({lo:.1f}) = {m / median:.2f}x ({lo / least:.2f}x)"
        lines.append(line)
    return "\n".join(lines)
