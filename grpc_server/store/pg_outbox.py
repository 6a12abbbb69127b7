"""The PostgreSQL store's webhook outbox: rows written with a job's terminal state, claimed by
any replica (FOR UPDATE SKIP LOCKED, then leased: a deliverer that dies loses its rows when
the lease ends), their attempts recorded, listed and redelivered."""

from __future__ import annotations

from contextlib import AbstractAsyncContextManager
from datetime import datetime

import asyncpg

from grpc_server.domain.jobs import Job
from grpc_server.store.outbox import (
    ATTEMPT_COLUMNS,
    DELIVERY_COLUMNS,
    AttemptOutcome,
    AttemptRecord,
    ClaimedDelivery,
    DeliveryRecord,
)
from grpc_server.store.pg_blobs import Connection
from grpc_server.webhooks.outbox import WebhookPlan


async def write_event(conn: Connection, plan: WebhookPlan | None, job: Job, now: datetime) -> None:
    """Store the event `plan` makes of a job that just ended, in the caller's transaction (no
    plan: no endpoints are configured)."""
    event = None if plan is None else plan(job)
    if event is not None:
        await conn.execute(
            "INSERT INTO webhook_outbox (webhook_id, endpoint, job_id, event_type, body, created_at,"
            " next_attempt_at) VALUES ($1, $2, $3, $4, $5, $6, $6)",
            event.webhook_id,
            event.endpoint,
            event.job_id,
            event.event_type,
            event.body,
            now,
        )


def _attempt(a: asyncpg.Record) -> AttemptRecord:
    return AttemptRecord(
        a["attempt"], a["started_at"], a["status"], a["error"], a["duration_seconds"], a["excerpt"]
    )


class PostgresWebhooks:
    """The outbox methods of PostgresStore (mixed in)."""

    _webhook_plan: WebhookPlan | None = None

    def _connection(self) -> AbstractAsyncContextManager[Connection]:
        raise NotImplementedError

    def use_webhooks(self, plan: WebhookPlan) -> None:
        self._webhook_plan = plan

    async def claim_webhooks(
        self, worker: str, limit: int, now: datetime, lease_until: datetime
    ) -> list[ClaimedDelivery]:
        async with self._connection() as conn:
            records = await conn.fetch(
                "WITH due AS MATERIALIZED ("
                "  SELECT webhook_id FROM webhook_outbox WHERE state = 'pending' AND next_attempt_at <= $3"
                "  AND (lease_until IS NULL OR lease_until < $3)"
                "  AND endpoint NOT IN (SELECT name FROM webhook_endpoints_disabled)"
                "  ORDER BY next_attempt_at LIMIT $4 FOR UPDATE SKIP LOCKED"
                ") UPDATE webhook_outbox o SET lease_owner = $1, lease_until = $2 FROM due"
                " WHERE o.webhook_id = due.webhook_id"
                " RETURNING o.webhook_id, o.endpoint, o.job_id, o.event_type, o.body, o.attempts",
                worker,
                lease_until,
                now,
                limit,
            )
        return [
            ClaimedDelivery(
                r["webhook_id"], r["endpoint"], r["job_id"], r["event_type"], bytes(r["body"]), r["attempts"]
            )
            for r in records
        ]

    async def record_webhook_attempt(self, webhook_id: str, worker: str, outcome: AttemptOutcome) -> bool:
        async with self._connection() as conn, conn.transaction():
            row = await conn.fetchrow(
                "UPDATE webhook_outbox SET attempts = attempts + 1, state = $3, next_attempt_at = $4,"
                " last_status = $5, last_error = $6, lease_owner = NULL, lease_until = NULL"
                " WHERE webhook_id = $1 AND lease_owner = $2 AND state = 'pending'"
                " RETURNING attempts, endpoint",
                webhook_id,
                worker,
                outcome.state,
                outcome.next_attempt_at,
                outcome.status,
                outcome.error,
            )
            if row is None:
                return False
            await conn.execute(
                f"INSERT INTO webhook_attempts ({ATTEMPT_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7)",
                webhook_id,
                row["attempts"],
                outcome.started_at,
                outcome.status,
                outcome.error,
                outcome.duration_seconds,
                outcome.excerpt,
            )
            if outcome.disable_endpoint:
                await conn.execute(
                    "INSERT INTO webhook_endpoints_disabled (name, disabled_at, reason) VALUES ($1, $2, $3)"
                    " ON CONFLICT (name) DO NOTHING",
                    row["endpoint"],
                    outcome.started_at,
                    f"answered {outcome.status}",
                )
            return True

    async def disabled_webhook_endpoints(self) -> set[str]:
        async with self._connection() as conn:
            records = await conn.fetch("SELECT name FROM webhook_endpoints_disabled")
        return {r["name"] for r in records}

    async def list_webhook_deliveries(
        self, endpoint: str, limit: int, webhook_id: str | None = None
    ) -> list[DeliveryRecord]:
        async with self._connection() as conn, conn.transaction(isolation="repeatable_read", readonly=True):
            rows = await conn.fetch(
                f"SELECT {DELIVERY_COLUMNS} FROM webhook_outbox WHERE endpoint = $1"
                " AND ($3::text IS NULL OR webhook_id = $3)"
                " ORDER BY created_at DESC, webhook_id DESC LIMIT $2",
                endpoint,
                limit,
                webhook_id,
            )
            attempts = await conn.fetch(
                f"SELECT {ATTEMPT_COLUMNS} FROM webhook_attempts WHERE webhook_id = ANY($1::text[])"
                " ORDER BY webhook_id, attempt",
                [r["webhook_id"] for r in rows],
            )
        by_id: dict[str, list[AttemptRecord]] = {}
        for a in attempts:
            by_id.setdefault(a["webhook_id"], []).append(_attempt(a))
        return [
            DeliveryRecord(
                r["webhook_id"],
                r["endpoint"],
                r["job_id"],
                r["event_type"],
                r["created_at"],
                r["state"],
                r["next_attempt_at"],
                r["last_status"],
                r["last_error"],
                tuple(by_id.get(r["webhook_id"], ())),
            )
            for r in rows
        ]

    async def delete_finished_webhooks(self, created_before: datetime, limit: int) -> int:
        async with self._connection() as conn:
            deleted = await conn.fetch(
                "DELETE FROM webhook_outbox WHERE webhook_id IN (SELECT webhook_id FROM webhook_outbox"
                " WHERE state <> 'pending' AND created_at < $1 ORDER BY created_at LIMIT $2"
                " FOR UPDATE SKIP LOCKED) RETURNING webhook_id",
                created_before,
                limit,
            )
        return len(deleted)

    async def redeliver_webhook(self, endpoint: str, webhook_id: str, now: datetime) -> bool:
        async with self._connection() as conn:
            found = await conn.fetchval(
                "UPDATE webhook_outbox SET state = 'pending', next_attempt_at = $3, lease_owner = NULL,"
                " lease_until = NULL WHERE endpoint = $1 AND webhook_id = $2 RETURNING webhook_id",
                endpoint,
                webhook_id,
                now,
            )
        return found is not None
