"""The PostgreSQL store's job API writes and reads (mixed into PostgresStore): cancel, retry,
delete, queue position, request ids. Each write is one guarded statement that publishes its
event in the same transaction (pg_events), so other replicas hear only what committed."""

from __future__ import annotations

from contextlib import AbstractAsyncContextManager
from datetime import datetime, timedelta

import asyncpg

from grpc_server.domain.jobs import IDEMPOTENCY_WINDOW_SECONDS, Job, JobError, JobStatus
from grpc_server.jobs_list import ListQuery
from grpc_server.store.admission import (
    ADVISORY_LOCK_CLASS,
    WINDOW,
    AdmissionLimits,
    KeyPolicy,
    in_flight_sql,
    refuse_in_flight,
    refuse_rate,
    window_sql,
)
from grpc_server.store.blobs_beside import BlobsBeside
from grpc_server.store.codec import error_json, job_from_row
from grpc_server.store.fair_share import POSTGRES_POSITION
from grpc_server.store.job_api_sql import CANCELLABLE, RETRYABLE_GUARD, list_sql, oldest_first_position_sql
from grpc_server.store.pg_blobs import Connection
from grpc_server.store.pg_outbox import write_event
from grpc_server.webhooks.outbox import WebhookPlan


class _PostgresDialect:
    def param(self, n: int) -> str:
        return f"${n}"

    def time(self, value: datetime) -> object:
        return value

    @property
    def limits_each_arm(self) -> bool:
        return True


POSTGRES_DIALECT = _PostgresDialect()


def job_from_record(record: asyncpg.Record) -> Job:
    return job_from_row(dict(record), record["created_at"], record["completed_at"], record["expires_at"])


async def check_limits(conn: Connection, job: Job, limits: AdmissionLimits) -> None:
    """In create_job's transaction: the key's submits serialized by an advisory lock held until
    the commit (each statement after it sees every earlier submit committed), then its counts;
    RateLimited / TooManyJobsInFlight when it is at a limit."""
    key = job.owner_key_id or ""
    await conn.execute("SELECT pg_advisory_xact_lock($1, hashtext($2))", ADVISORY_LOCK_CLASS, key)
    if (in_flight := limits.max_jobs_in_flight) is not None:
        refuse_in_flight(await conn.fetchval(in_flight_sql(["$1", "$2"]), key, in_flight), in_flight)
    if (per_minute := limits.submits_per_minute) is not None:
        counted = await conn.fetchval(
            window_sql(["$1", "$2", "$3"]), key, job.created_at - WINDOW, per_minute - 1
        )
        refuse_rate(counted, job.created_at, per_minute)


class PostgresJobApi:
    _webhook_plan: WebhookPlan | None = None
    _beside: BlobsBeside | None = None
    _policy: KeyPolicy

    def _connection(self) -> AbstractAsyncContextManager[Connection]:
        raise NotImplementedError

    def _notify(self, kind: str) -> str:
        raise NotImplementedError

    def _published(self, kind: str, write: str) -> str:
        """`write` (... RETURNING *) that publishes `kind` for its row and returns the row."""
        return f"WITH written AS ({write}) SELECT *, {self._notify(repr(kind))} AS _event FROM written"

    async def cancel_job(self, job_id: str, error: JobError, now: datetime) -> Job | None:
        async with self._connection() as conn, conn.transaction():
            record = await conn.fetchrow(
                self._published(
                    "cancelled",
                    f"UPDATE jobs SET status = '{JobStatus.CANCELLED}', status_code = $2, error = $3,"
                    " completed_at = $4, expires_at = $4::timestamptz + ttl_seconds * interval '1 second',"
                    " lease_owner = NULL, lease_until = NULL, change_seq = change_seq + 1"
                    f" WHERE id = $1 AND {CANCELLABLE} RETURNING *",
                ),
                job_id,
                error.status_code,
                error_json(error),
                now,
            )
            if record is not None:
                await write_event(conn, self._webhook_plan, job_from_record(record), now)
        return None if record is None else job_from_record(record)

    async def retry_job(self, job_id: str) -> Job | None:
        async with self._connection() as conn, conn.transaction():
            record = await conn.fetchrow(
                self._published(
                    "requeued",
                    f"UPDATE jobs SET status = '{JobStatus.PENDING}', status_code = 0, result = NULL,"
                    " error = NULL, completed_at = NULL, expires_at = NULL, change_seq = change_seq + 1,"
                    " outputs_token = NULL"  # outputs in a blob store: left to the orphan sweep
                    f" WHERE id = $1 AND {RETRYABLE_GUARD} RETURNING *",
                ),
                job_id,
            )
            if record is not None:
                await conn.execute("DELETE FROM blob_chunks WHERE job_id = $1 AND kind = 'output'", job_id)
        return None if record is None else job_from_record(record)

    async def delete_job(self, job_id: str) -> bool:
        async with self._connection() as conn, conn.transaction():
            await conn.execute("DELETE FROM blob_chunks WHERE job_id = $1", job_id)
            deleted = await conn.fetchval(
                f"WITH gone AS (DELETE FROM jobs WHERE id = $1 RETURNING id)"
                f" SELECT id, {self._notify(repr('deleted'))} FROM gone",
                job_id,
            )
        if deleted is not None and self._beside is not None:  # after the row: its URLs already answer 404
            await self._beside.forget(job_id)
        return deleted is not None

    async def queue_position(self, job: Job) -> int:
        policy = self._policy
        async with self._connection() as conn:
            if policy.fair_share:  # the claim's order (fair_share explains the count)
                owner = job.owner_key_id or ""
                count: int = await conn.fetchval(
                    POSTGRES_POSITION,
                    owner,
                    job.created_at,
                    job.id,
                    policy.priorities.get(owner, 0),
                    list(policy.priorities),
                    list(policy.priorities.values()),
                )
            else:
                count = await conn.fetchval(oldest_first_position_sql("$1", "$2"), job.created_at, job.id)
        return count

    async def job_by_request_id(self, owner_key_id: str | None, key: str) -> Job | None:
        async with self._connection() as conn:
            record = await conn.fetchrow(
                "SELECT * FROM jobs WHERE COALESCE(owner_key_id, '') = $1 AND idempotency_key = $2",
                owner_key_id or "",
                key,
            )
        return None if record is None else job_from_record(record)

    async def list_jobs(self, query: ListQuery) -> list[Job]:
        sql, args = list_sql(query, POSTGRES_DIALECT)
        async with self._connection() as conn:
            records = await conn.fetch(sql, *args)
        return [job_from_record(r) for r in records]

    async def forget_stale_request_id(self, owner_key_id: str | None, key: str, now: datetime) -> bool:
        async with self._connection() as conn:
            freed = await conn.fetchval(
                "UPDATE jobs SET idempotency_key = NULL WHERE COALESCE(owner_key_id, '') = $1"
                " AND idempotency_key = $2 AND created_at <= $3 RETURNING id",
                owner_key_id or "",
                key,
                now - timedelta(seconds=IDEMPOTENCY_WINDOW_SECONDS),
            )
        return freed is not None
