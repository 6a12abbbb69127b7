"""The query plans of ListJobs on PostgreSQL with many jobs: each query as the store builds it
(grpc_server.store.job_api_sql.list_sql), run under EXPLAIN ANALYZE on a fresh database.

    python -m bench.list_plans [--jobs 100000] [--owners 50]

Jobs are spread over `owners` virtual keys, statuses and two labels; the plans show which
index serves each listing (jobs_by_owner for the caller's jobs, newest first)."""

from __future__ import annotations

import argparse
import asyncio
from datetime import UTC, datetime, timedelta

import asyncpg

from bench import pg
from grpc_server.domain.jobs import JobStatus, RequestType
from grpc_server.jobs_list import Cursor, ListQuery
from grpc_server.store.job_api_sql import list_sql
from grpc_server.store.migrate import migrate
from grpc_server.store.pg_jobs import POSTGRES_DIALECT

T0 = datetime(2026, 12, 1, tzinfo=UTC)

_FILL = """
INSERT INTO jobs (id, request_type, status, model, owner_key_id, params, inputs, ttl_seconds,
                  created_at, labels, change_seq)
SELECT md5(i::text), CASE WHEN i % 3 = 0 THEN 'embedding' ELSE 'image_generation' END,
       (ARRAY['pending', 'processing', 'completed', 'failed', 'cancelled'])[1 + i % 5],
       'local/hashing', 'vk-' || (i % $2), '{"model": "local/hashing"}', '[]', 3600,
       $3::timestamptz + i * interval '1 second',
       json_build_object('team', 't' || (i % 7), 'env', CASE WHEN i % 2 = 0 THEN 'prod' ELSE 'dev' END)::text,
       1
FROM generate_series(1, $1) AS i
"""


def queries() -> dict[str, ListQuery]:
    owner = "vk-7"
    return {
        "first page of one caller": ListQuery(owner_key_id=owner),
        "a later page (keyset)": ListQuery(owner_key_id=owner, after=Cursor(T0 + timedelta(hours=12), "m")),
        "one caller, failed only": ListQuery(owner_key_id=owner, statuses=(JobStatus.FAILED,)),
        "one caller, a label": ListQuery(owner_key_id=owner, labels={"team": "t3"}),
        "one caller, one type and a creation range": ListQuery(
            owner_key_id=owner,
            request_type=RequestType.EMBEDDING,
            created_after=T0 + timedelta(hours=2),
            created_before=T0 + timedelta(hours=3),
        ),
    }


async def main(jobs: int, owners: int) -> None:
    async with pg.fresh_database() as dsn:
        await migrate(dsn)
        conn = await asyncpg.connect(dsn)
        try:
            await conn.execute(_FILL, jobs, owners, T0)
            await conn.execute("ANALYZE jobs")
            print(f"{jobs} jobs over {owners} virtual keys\n")
            for name, query in queries().items():
                sql, args = list_sql(query, POSTGRES_DIALECT)
                plan = await conn.fetch(f"EXPLAIN (ANALYZE, COSTS OFF, BUFFERS OFF) {sql}", *args)
                print(f"-- {name}\n{sql}\n" + "\n".join(r[0] for r in plan) + "\n")
        finally:
            await conn.close()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(prog="python -m bench.list_plans", description=__doc__)
    parser.add_argument("--jobs", type=int, default=100_000)
    parser.add_argument("--owners", type=int, default=50)
    args = parser.parse_args()
    asyncio.run(main(args.jobs, args.owners))
