"""The plan of each ListJobs filter uses the index made for it (migration 0006), with no sort and
no scan of the whole table: on PostgreSQL (EXPLAIN, without ANALYZE, after ANALYZE of a table of
24,000 jobs: few enough for ANALYZE to read every row, so the statistics and the plans are the
same at each run) and on SQLite (EXPLAIN QUERY PLAN after ANALYZE)."""

from __future__ import annotations

import json
import random
import re
import sqlite3
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import asyncpg

from grpc_server.domain.jobs import JobStatus, RequestType
from grpc_server.jobs_list import Cursor, ListQuery
from grpc_server.store.job_api_sql import list_sql
from grpc_server.store.migrate import migrate, migrate_sqlite
from grpc_server.store.pg_connect import quote_ident
from grpc_server.store.pg_jobs import POSTGRES_DIALECT
from grpc_server.store.sqlite_jobs import SQLITE_DIALECT
from tests.pg import TEST_DATABASE_URL
from tests.store.conftest import fresh_schema

JOBS = 24_000
OWNERS = 12
T0 = datetime(2026, 12, 1, tzinfo=UTC)
MID = T0 + timedelta(seconds=JOBS // 2)
OWNER = "vk-5"

BY_OWNER, BY_KIND, BY_LABEL = "jobs_by_owner", "jobs_by_owner_type_status", "job_labels"
LABEL_KEY = {"postgres": "job_labels_pkey", "sqlite": "l0 USING PRIMARY KEY"}
"""How each plan names job_labels' primary key (SQLite: the table itself, WITHOUT ROWID)."""
CASES: dict[str, tuple[ListQuery, str]] = {
    "first page": (ListQuery(), BY_OWNER),
    "a later page": (ListQuery(after=Cursor(MID, "m")), BY_OWNER),
    "created within an hour": (
        ListQuery(created_after=MID, created_before=MID + timedelta(hours=1)),
        BY_OWNER,
    ),
    "failed": (ListQuery(statuses=(JobStatus.FAILED,)), BY_KIND),
    "failed, a later page": (ListQuery(statuses=(JobStatus.FAILED,), after=Cursor(MID, "m")), BY_KIND),
    "pending or processing": (ListQuery(statuses=(JobStatus.PENDING, JobStatus.PROCESSING)), BY_KIND),
    "embedding": (ListQuery(request_type=RequestType.EMBEDDING), BY_KIND),
    "edit and cancelled": (
        ListQuery(request_type=RequestType.IMAGE_EDIT, statuses=(JobStatus.CANCELLED,)),
        BY_KIND,
    ),
    "embedding within an hour": (
        ListQuery(
            request_type=RequestType.EMBEDDING, created_after=MID, created_before=MID + timedelta(hours=1)
        ),
        BY_KIND,
    ),
    "a common label": (ListQuery(labels={"team": "t3"}), BY_LABEL),
    "a common label, a later page": (ListQuery(labels={"team": "t3"}, after=Cursor(MID, "m")), BY_LABEL),
    "a rare label": (ListQuery(labels={"run": "r120"}), BY_LABEL),
    "two labels": (ListQuery(labels={"team": "t3", "run": "r120"}), BY_LABEL),
    "a label and a status": (ListQuery(labels={"team": "t3"}, statuses=(JobStatus.COMPLETED,)), BY_LABEL),
}

# Owners uniform, statuses 70% completed (then failed, cancelled, pending, processing), types
# spread, three jobs in four labelled: team (7 values) and run (one per 100 consecutive jobs).
_PG_FILL = """
INSERT INTO jobs (id, request_type, status, model, owner_key_id, params, inputs, ttl_seconds,
                  created_at, labels)
SELECT md5(i::text),
       (ARRAY['image_generation', 'image_generation', 'embedding', 'embedding', 'image_edit',
              'image_variation'])[1 + abs(hashint4(i * 3 + 1)) % 6],
       (ARRAY['completed', 'completed', 'completed', 'completed', 'completed', 'completed', 'completed',
              'failed', 'cancelled', 'pending', 'pending', 'processing'])[1 + abs(hashint4(i * 3 + 2)) % 12],
       'm', 'vk-' || (abs(hashint4(i)) % $2), '{}', '[]', 3600, $3::timestamptz + i * interval '1 second',
       CASE WHEN i % 4 = 0 THEN '{}' ELSE json_build_object(
           'team', 't' || (abs(hashint4(i * 7)) % 7), 'run', 'r' || (i / 100))::text END
FROM generate_series(1, $1) AS i
"""


FEW = {"a rare label", "two labels"}
"""Filters matching a handful of the owner's jobs: PostgreSQL may take exactly those from the
index (a bitmap) and sort them rather than walk the index in order; either reads no other row."""

_PG_SORT = re.compile(r"^\s*(?:->\s+)?(?:Incremental )?Sort$", re.MULTILINE)
_PG_WHOLE = re.compile(r"^\s*(?:->\s+)?Seq Scan on .*$", re.MULTILINE)
_PG_JOBS_READ = re.compile(
    r"^\s*(?:->\s+)?(?:Bitmap Heap Scan on jobs|Index Scan using (?!jobs_pkey)\w+ on jobs).*$", re.MULTILINE
)
_SQLITE_UNWANTED = re.compile(r"USE TEMP B-TREE|SCAN (?:jobs|l\d)\b")


def _problems(plan: str, index: str, unwanted: list[re.Pattern[str]]) -> list[str]:
    """What is wrong with `plan`: the index unused, or a node of `unwanted`."""
    problems = [] if re.search(rf"\b{re.escape(index)}\b", plan) else [f"{index} unused"]
    return problems + [m.group(0).strip() for pattern in unwanted for m in pattern.finditer(plan)]


def _pg_unwanted(name: str, index: str) -> list[re.Pattern[str]]:
    if index == BY_LABEL:  # jobs are read by id only: the rows the label index named
        return [_PG_WHOLE, _PG_JOBS_READ] + ([] if name in FEW else [_PG_SORT])
    return [_PG_WHOLE, _PG_SORT]


async def test_postgres_plans_each_filter_with_its_index() -> None:
    async with fresh_schema() as schema:
        await migrate(TEST_DATABASE_URL, schema=schema)
        conn = await asyncpg.connect(TEST_DATABASE_URL, server_settings={"search_path": quote_ident(schema)})
        try:
            await conn.execute(_PG_FILL, JOBS, OWNERS, T0)
            await conn.execute("ANALYZE jobs; ANALYZE job_labels")
            wrong = {}
            for name, (query, index) in CASES.items():
                sql, args = list_sql(replace(query, owner_key_id=OWNER), POSTGRES_DIALECT)
                plan = "\n".join(r[0] for r in await conn.fetch(f"EXPLAIN (COSTS OFF) {sql}", *args))
                used = LABEL_KEY["postgres"] if index == BY_LABEL else index
                if problems := _problems(plan, used, _pg_unwanted(name, index)):
                    wrong[name] = (problems, plan)
        finally:
            await conn.close()
    assert wrong == {}


def test_sqlite_plans_each_filter_with_its_index(tmp_path: Path) -> None:
    conn = sqlite3.connect(tmp_path / "plans.sqlite3", isolation_level=None)
    try:
        migrate_sqlite(conn)
        spread = random.Random(3)
        statuses = ["completed"] * 7 + ["failed", "cancelled", "pending", "pending", "processing"]
        rows = [
            (
                f"{i:08d}",
                spread.choice(sorted(RequestType)).value,
                spread.choice(statuses),
                f"vk-{spread.randrange(OWNERS)}",
                T0.timestamp() + i,
                "{}"
                if i % 4 == 0
                else json.dumps({"team": f"t{spread.randrange(7)}", "run": f"r{i // 100}"}),
            )
            for i in range(JOBS)
        ]
        conn.execute("BEGIN")
        conn.executemany(
            "INSERT INTO jobs (id, request_type, status, model, owner_key_id, params, inputs, ttl_seconds,"
            " created_at, labels) VALUES (?, ?, ?, 'm', ?, '{}', '[]', 3600, ?, ?)",
            rows,
        )
        conn.execute("COMMIT")
        conn.execute("ANALYZE")
        wrong = {}
        for name, (query, index) in CASES.items():
            sql, args = list_sql(replace(query, owner_key_id=OWNER), SQLITE_DIALECT)
            plan = "\n".join(r[3] for r in conn.execute(f"EXPLAIN QUERY PLAN {sql}", args))
            used = LABEL_KEY["sqlite"] if index == BY_LABEL else index
            if problems := _problems(plan, used, [_SQLITE_UNWANTED]):
                wrong[name] = (problems, plan)
    finally:
        conn.close()
    assert wrong == {}
