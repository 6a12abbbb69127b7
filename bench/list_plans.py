"""ListJobs on PostgreSQL with many jobs: the plan of each filter, and what the indexes that
serve them (migration 0006) cost the writes.

    python -m bench.list_plans [--jobs 100000] [--owners 20] [--rounds 10] [--plans-only]

Plans: each query as the store builds it (grpc_server.store.job_api_sql.list_sql), run under
EXPLAIN (ANALYZE, BUFFERS) on a fresh database of `jobs` jobs spread over `owners` virtual
keys, five statuses, four types and labels (a common one, `team`, and a rare one, `run`, that
a few jobs of a batch share); each summarized as the indexes it used, the rows it read from
jobs, the rows it returned and its time (best of 3). For comparison, the forms it replaced:
the owner's index with a filter (the 0006 index dropped inside a rolled-back transaction), the
label as a JSON filter, and a GIN index (jsonb_path_ops) with a containment query.

Writes (bench.list_writes): the CPU time per job of inserting, claiming, renewing, completing
and deleting jobs on a database at 0005 against one at 0006 (and, on PostgreSQL, one at 0005
with the GIN index), all holding the same `jobs` jobs, in alternating rounds.
"""

from __future__ import annotations

import argparse
import asyncio
import json
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg

from bench import list_writes, pg
from grpc_server.domain.jobs import JobStatus, RequestType
from grpc_server.jobs_list import Cursor, ListQuery
from grpc_server.store.job_api_sql import list_sql
from grpc_server.store.migrate import migrate
from grpc_server.store.pg_jobs import POSTGRES_DIALECT

T0 = datetime(2026, 12, 1, tzinfo=UTC)
OWNER = "vk-7"

# Deterministic spread (hashint4 of the row number): owners uniform; statuses 70% completed,
# 8% failed, 4% cancelled, 15% pending, 3% processing; types 40/30/20/10; three jobs in four
# with labels: team (7 values) and run (one value per 200 consecutive jobs: ~10 per owner).
_FILL = """
INSERT INTO jobs (id, request_type, status, model, owner_key_id, params, inputs, ttl_seconds,
                  created_at, labels, change_seq)
SELECT md5(i::text),
       CASE WHEN t < 40 THEN 'image_generation' WHEN t < 70 THEN 'embedding'
            WHEN t < 90 THEN 'image_edit' ELSE 'image_variation' END,
       CASE WHEN s < 70 THEN 'completed' WHEN s < 78 THEN 'failed' WHEN s < 82 THEN 'cancelled'
            WHEN s < 97 THEN 'pending' ELSE 'processing' END,
       'local/hashing', 'vk-' || (abs(hashint4(i)) % $2), '{"model": "local/hashing"}', '[]', 3600,
       $3::timestamptz + i * interval '1 second',
       CASE WHEN i % 4 = 0 THEN '{}' ELSE json_build_object(
           'team', 't' || (abs(hashint4(i * 7)) % 7), 'run', 'r' || (i / 200))::text END,
       1
FROM generate_series(1, $1) AS i,
     LATERAL (SELECT abs(hashint4(i * 3 + 1)) % 100 AS t, abs(hashint4(i * 3 + 2)) % 100 AS s) AS spread
"""


def queries(jobs: int) -> dict[str, ListQuery]:
    mid = T0 + timedelta(seconds=jobs // 2)
    rare_run = f"r{jobs // 400}"  # a batch in the middle: ~10 of the owner's jobs
    return {
        "first page": ListQuery(owner_key_id=OWNER),
        "a later page (keyset)": ListQuery(owner_key_id=OWNER, after=Cursor(mid, "m")),
        "failed": ListQuery(owner_key_id=OWNER, statuses=(JobStatus.FAILED,)),
        "failed, a later page": ListQuery(
            owner_key_id=OWNER, statuses=(JobStatus.FAILED,), after=Cursor(mid, "m")
        ),
        "pending or processing": ListQuery(
            owner_key_id=OWNER, statuses=(JobStatus.PENDING, JobStatus.PROCESSING)
        ),
        "type embedding": ListQuery(owner_key_id=OWNER, request_type=RequestType.EMBEDDING),
        "type and status": ListQuery(
            owner_key_id=OWNER, request_type=RequestType.IMAGE_EDIT, statuses=(JobStatus.CANCELLED,)
        ),
        "created within an hour": ListQuery(
            owner_key_id=OWNER, created_after=mid, created_before=mid + timedelta(hours=1)
        ),
        "type within an hour": ListQuery(
            owner_key_id=OWNER,
            request_type=RequestType.EMBEDDING,
            created_after=mid,
            created_before=mid + timedelta(hours=1),
        ),
        "label team=t3 (common)": ListQuery(owner_key_id=OWNER, labels={"team": "t3"}),
        "label team=t3, a later page": ListQuery(
            owner_key_id=OWNER, labels={"team": "t3"}, after=Cursor(mid, "m")
        ),
        f"label run={rare_run} (rare)": ListQuery(owner_key_id=OWNER, labels={"run": rare_run}),
        f"labels team=t3 and run={rare_run}": ListQuery(
            owner_key_id=OWNER, labels={"team": "t3", "run": rare_run}
        ),
        "label team=t3 and failed": ListQuery(
            owner_key_id=OWNER, labels={"team": "t3"}, statuses=(JobStatus.FAILED,)
        ),
    }


@dataclass(frozen=True)
class Summary:
    indexes: list[str]
    jobs_rows_read: int
    returned: int
    buffers: int
    ms: float

    def line(self) -> str:
        return (
            f"indexes {', '.join(self.indexes) or '(none)'}; jobs rows read {self.jobs_rows_read},"
            f" returned {self.returned}; {self.buffers} buffers; {self.ms:.3f} ms"
        )


def _nodes(node: dict[str, Any]) -> Iterator[dict[str, Any]]:
    yield node
    for child in node.get("Plans", []):
        yield from _nodes(child)


def summarize(plan: dict[str, Any], ms: float) -> Summary:
    nodes = list(_nodes(plan["Plan"]))
    read = sum(
        (
            n.get("Actual Rows", 0)
            + n.get("Rows Removed by Filter", 0)
            + n.get("Rows Removed by Index Recheck", 0)
        )
        * n.get("Actual Loops", 1)
        for n in nodes
        if n.get("Relation Name") == "jobs" and n["Node Type"] != "Bitmap Index Scan"
    )
    indexes = sorted({n["Index Name"] for n in nodes if "Index Name" in n})
    top = plan["Plan"]
    return Summary(
        indexes,
        int(read),
        int(top["Actual Rows"]),
        int(top.get("Shared Hit Blocks", 0) + top.get("Shared Read Blocks", 0)),
        ms,
    )


async def explain(conn: asyncpg.Connection, sql: str, args: list[object]) -> tuple[str, Summary]:
    """The text plan and its summary; the time is the best of 3 runs."""
    times, plan = [], None
    for _ in range(3):
        document = await conn.fetchval(f"EXPLAIN (ANALYZE, BUFFERS, FORMAT JSON) {sql}", *args)
        plan = json.loads(document)[0]
        times.append(plan["Execution Time"])
    assert plan is not None
    text = await conn.fetch(f"EXPLAIN (ANALYZE, BUFFERS, COSTS OFF, TIMING OFF) {sql}", *args)
    return "\n".join(r[0] for r in text), summarize(plan, min(times))


async def fill(conn: asyncpg.Connection, jobs: int, owners: int) -> None:
    await conn.execute(_FILL, jobs, owners, T0)
    await conn.execute("VACUUM ANALYZE jobs")
    if await conn.fetchval("SELECT to_regclass('job_labels') IS NOT NULL"):
        await conn.execute("VACUUM ANALYZE job_labels")


async def show_plans(dsn: str, jobs: int, owners: int) -> None:
    conn = await asyncpg.connect(dsn)
    try:
        await fill(conn, jobs, owners)
        mine = await conn.fetchval("SELECT count(*) FROM jobs WHERE owner_key_id = $1", OWNER)
        print(f"## Plans: {jobs} jobs over {owners} virtual keys ({mine} of {OWNER})\n")
        summaries: dict[str, Summary] = {}
        for name, query in queries(jobs).items():
            sql, args = list_sql(query, POSTGRES_DIALECT)
            text, summary = await explain(conn, sql, args)
            summaries[name] = summary
            print(f"-- {name}\n{sql}\n{text}\n")
        print("## For comparison: the forms 0006 replaced\n")
        for name, (sql, args, setup) in _references(jobs).items():
            undone = conn.transaction()  # the setup (an index made or dropped) is rolled back
            await undone.start()
            try:
                for statement in setup:
                    await conn.execute(statement)
                text, summary = await explain(conn, sql, args)
            finally:
                await undone.rollback()
            summaries[f"before: {name}"] = summary
            print(f"-- {name}\n{sql}\n{text}\n")
        print("## Summary\n")
        for name, summary in summaries.items():
            print(f"{name}: {summary.line()}")
    finally:
        await conn.close()


def _references(jobs: int) -> dict[str, tuple[str, list[object], list[str]]]:
    rare_run = f"r{jobs // 400}"
    owner_scan = (
        "SELECT * FROM jobs WHERE owner_key_id = $1 AND {} ORDER BY created_at DESC, id DESC LIMIT 21"
    )
    json_filter = owner_scan.format("(labels::jsonb ->> $2::text) = $3")
    containment = owner_scan.format("labels <> '{}' AND labels::jsonb @> $2::jsonb")
    gin = [
        "CREATE INDEX jobs_labels_gin ON jobs USING gin ((labels::jsonb) jsonb_path_ops)"
        " WHERE labels <> '{}'",
        "ANALYZE jobs",
    ]
    no_index = ["DROP INDEX jobs_by_owner_type_status"]
    return {
        "failed, by jobs_by_owner and a filter": (owner_scan.format("status = 'failed'"), [OWNER], no_index),
        "type embedding, by jobs_by_owner and a filter": (
            owner_scan.format("request_type = 'embedding'"),
            [OWNER],
            no_index,
        ),
        "label team=t3 as a JSON filter": (json_filter, [OWNER, "team", "t3"], []),
        f"label run={rare_run} as a JSON filter": (json_filter, [OWNER, "run", rare_run], []),
        "label team=t3, GIN containment": (containment, [OWNER, '{"team": "t3"}'], gin),
        f"label run={rare_run}, GIN containment": (containment, [OWNER, json.dumps({"run": rare_run})], gin),
    }


async def main(jobs: int, owners: int, rounds: int, plans_only: bool) -> None:
    async with pg.fresh_database() as dsn:
        await migrate(dsn)
        await show_plans(dsn, jobs, owners)
    if plans_only:
        return
    per_round = 2000
    print("\n" + list_writes.report("PostgreSQL", await list_writes.pg_costs(jobs, rounds, per_round)))
    print("\n" + list_writes.report("SQLite", await list_writes.sqlite_costs(jobs, rounds, per_round)))


if __name__ == "__main__":
    parser = argparse.ArgumentParser(prog="python -m bench.list_plans", description=__doc__)
    parser.add_argument("--jobs", type=int, default=100_000)
    parser.add_argument("--owners", type=int, default=20)
    parser.add_argument("--rounds", type=int, default=10, help="alternating rounds of the write costs")
    parser.add_argument("--plans-only", action="store_true", help="skip the write costs")
    args = parser.parse_args()
    asyncio.run(main(args.jobs, args.owners, args.rounds, args.plans_only))
