"""The SQLite store's job API writes and reads: cancel, retry, delete, queue position
(sqlite_position), request ids, listing. Plain functions run on the store's writer (or reader)
thread, each one transaction."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from datetime import UTC, datetime
from typing import TypeVar

from grpc_server.domain.jobs import IDEMPOTENCY_WINDOW_SECONDS, Job, JobError, JobStatus
from grpc_server.jobs_list import ListQuery
from grpc_server.store.admission import KeyPolicy
from grpc_server.store.base import EventKind
from grpc_server.store.blobs_beside import BlobsBeside
from grpc_server.store.codec import error_json, job_from_row
from grpc_server.store.job_api_sql import CANCELLABLE, RETRYABLE_GUARD, list_sql
from grpc_server.store.sqlite_batch import timestamp
from grpc_server.store.sqlite_outbox import write_event
from grpc_server.store.sqlite_position import fair_position, oldest_first_position
from grpc_server.store.sqlite_wal import Transaction
from grpc_server.webhooks.outbox import WebhookPlan

T = TypeVar("T")


class _SQLiteDialect:
    def param(self, n: int) -> str:
        return f"?{n}"

    def time(self, value: datetime) -> object:
        return value.timestamp()

    @property
    def limits_each_arm(self) -> bool:
        return False


SQLITE_DIALECT = _SQLiteDialect()


def cancel(
    conn: sqlite3.Connection, job_id: str, error: JobError, now: datetime, plan: WebhookPlan | None = None
) -> sqlite3.Row | None:
    """pending | processing -> cancelled (the lease cleared: no worker can write an outcome
    after this), with its webhook event; the row as it now is, or None when the job had
    already ended or is gone."""
    with Transaction(conn):
        row: sqlite3.Row | None = conn.execute(
            f"UPDATE jobs SET status = '{JobStatus.CANCELLED}', status_code = ?, error = ?,"
            " completed_at = ?, expires_at = ? + ttl_seconds, lease_owner = NULL, lease_until = NULL,"
            f" change_seq = change_seq + 1 WHERE id = ? AND {CANCELLABLE} RETURNING *",
            (error.status_code, error_json(error), timestamp(now), timestamp(now), job_id),
        ).fetchone()
        if row is not None:
            write_event(conn, plan, job_from_sqlite(row), now)
        return row


def retry(conn: sqlite3.Connection, job_id: str) -> sqlite3.Row | None:
    """failed | cancelled -> pending, the last outcome (and any output) dropped, the inputs kept."""
    with Transaction(conn):
        row: sqlite3.Row | None = conn.execute(
            f"UPDATE jobs SET status = '{JobStatus.PENDING}', status_code = 0, result = NULL,"
            " error = NULL, completed_at = NULL, expires_at = NULL, change_seq = change_seq + 1,"
            " outputs_token = NULL"  # outputs in a blob store: left to the orphan sweep
            f" WHERE id = ? AND {RETRYABLE_GUARD} RETURNING *",
            (job_id,),
        ).fetchone()
        if row is not None:
            conn.execute("DELETE FROM blob_chunks WHERE job_id = ? AND kind = 'output'", (job_id,))
        return row


def delete(conn: sqlite3.Connection, job_id: str) -> bool:
    """The job and its blobs (by the cascade), at once."""
    return conn.execute("DELETE FROM jobs WHERE id = ?", (job_id,)).rowcount == 1


def by_request_id(conn: sqlite3.Connection, owner_key_id: str | None, key: str) -> sqlite3.Row | None:
    row: sqlite3.Row | None = conn.execute(
        "SELECT * FROM jobs WHERE COALESCE(owner_key_id, '') = ? AND idempotency_key = ?",
        (owner_key_id or "", key),
    ).fetchone()
    return row


def forget_stale_request_id(
    conn: sqlite3.Connection, owner_key_id: str | None, key: str, now: datetime
) -> bool:
    """Free a request id whose job is older than the window; True when one was freed."""
    return (
        conn.execute(
            "UPDATE jobs SET idempotency_key = NULL WHERE COALESCE(owner_key_id, '') = ?"
            " AND idempotency_key = ? AND created_at <= ?",
            (owner_key_id or "", key, now.timestamp() - IDEMPOTENCY_WINDOW_SECONDS),
        ).rowcount
        == 1
    )


class SQLiteJobApi:
    """The job API's methods of SQLiteStore (mixed in): each a function above on a store thread."""

    _webhook_plan: WebhookPlan | None = None
    _beside: BlobsBeside | None = None
    _policy: KeyPolicy

    async def _write(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        raise NotImplementedError

    async def _read(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        raise NotImplementedError

    def _publish(self, kind: EventKind, job_id: str) -> None:
        raise NotImplementedError

    async def cancel_job(self, job_id: str, error: JobError, now: datetime) -> Job | None:
        row = await self._write(lambda c: cancel(c, job_id, error, now, self._webhook_plan))
        if row is None:
            return None
        self._publish("cancelled", job_id)
        return job_from_sqlite(row)

    async def retry_job(self, job_id: str) -> Job | None:
        row = await self._write(lambda c: retry(c, job_id))
        if row is None:
            return None
        self._publish("requeued", job_id)
        return job_from_sqlite(row)

    async def delete_job(self, job_id: str) -> bool:
        deleted = await self._write(lambda c: delete(c, job_id))
        if deleted:
            self._publish("deleted", job_id)
            if self._beside is not None:  # after the row: its URLs already answer 404
                await self._beside.forget(job_id)
        return deleted

    async def queue_position(self, job: Job) -> int:
        policy = self._policy
        if policy.fair_share:
            return await self._read(lambda c: fair_position(c, job, policy.priorities))
        return await self._read(lambda c: oldest_first_position(c, job))

    async def job_by_request_id(self, owner_key_id: str | None, key: str) -> Job | None:
        row = await self._read(lambda c: by_request_id(c, owner_key_id, key))
        return None if row is None else job_from_sqlite(row)

    async def list_jobs(self, query: ListQuery) -> list[Job]:
        sql, args = list_sql(query, SQLITE_DIALECT)
        rows = await self._read(lambda c: c.execute(sql, args).fetchall())
        return [job_from_sqlite(r) for r in rows]

    async def forget_stale_request_id(self, owner_key_id: str | None, key: str, now: datetime) -> bool:
        return await self._write(lambda c: forget_stale_request_id(c, owner_key_id, key, now))


def _dt(value: float | None) -> datetime | None:
    return None if value is None else datetime.fromtimestamp(value, UTC)


def job_from_sqlite(row: sqlite3.Row) -> Job:
    created_at = _dt(row["created_at"])
    assert created_at is not None
    return job_from_row(dict(row), created_at, _dt(row["completed_at"]), _dt(row["expires_at"]))
