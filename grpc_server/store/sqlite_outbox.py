"""The SQLite store's webhook outbox: rows written with a job's terminal state, claimed by the
single writer, their attempts recorded, listed and redelivered."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from datetime import UTC, datetime
from typing import TypeVar

from grpc_server.domain.jobs import Job
from grpc_server.store.outbox import (
    ATTEMPT_COLUMNS,
    DELIVERY_COLUMNS,
    AttemptOutcome,
    AttemptRecord,
    ClaimedDelivery,
    DeliveryRecord,
)
from grpc_server.store.sqlite_wal import Transaction
from grpc_server.webhooks.outbox import OutboxEvent, WebhookPlan

T = TypeVar("T")


def _dt(value: float | None) -> datetime | None:
    return None if value is None else datetime.fromtimestamp(value, UTC)


def write_event(conn: sqlite3.Connection, plan: WebhookPlan | None, job: Job, now: datetime) -> None:
    """Store the event `plan` makes of a job that just ended, in the caller's transaction (no
    plan: no endpoints are configured)."""
    event = None if plan is None else plan(job)
    if event is not None:
        insert_event(conn, event, now)


def insert_event(conn: sqlite3.Connection, event: OutboxEvent, now: datetime) -> None:
    conn.execute(
        "INSERT INTO webhook_outbox (webhook_id, endpoint, job_id, event_type, body, created_at,"
        " next_attempt_at) VALUES (?, ?, ?, ?, ?, ?, ?)",
        (
            event.webhook_id,
            event.endpoint,
            event.job_id,
            event.event_type,
            event.body,
            now.timestamp(),
            now.timestamp(),
        ),
    )


def claim(
    conn: sqlite3.Connection, worker: str, limit: int, now: datetime, lease_until: datetime
) -> list[ClaimedDelivery]:
    rows = conn.execute(
        "UPDATE webhook_outbox SET lease_owner = ?, lease_until = ? WHERE webhook_id IN ("
        " SELECT webhook_id FROM webhook_outbox WHERE state = 'pending' AND next_attempt_at <= ?"
        " AND (lease_until IS NULL OR lease_until < ?)"
        " AND endpoint NOT IN (SELECT name FROM webhook_endpoints_disabled)"
        " ORDER BY next_attempt_at LIMIT ?)"
        " RETURNING webhook_id, endpoint, job_id, event_type, body, attempts",
        (worker, lease_until.timestamp(), now.timestamp(), now.timestamp(), limit),
    ).fetchall()
    return [
        ClaimedDelivery(
            r["webhook_id"], r["endpoint"], r["job_id"], r["event_type"], bytes(r["body"]), r["attempts"]
        )
        for r in rows
    ]


def record(conn: sqlite3.Connection, webhook_id: str, worker: str, outcome: AttemptOutcome) -> bool:
    with Transaction(conn):
        row = conn.execute(
            "UPDATE webhook_outbox SET attempts = attempts + 1, state = ?, next_attempt_at = ?,"
            " last_status = ?, last_error = ?, lease_owner = NULL, lease_until = NULL"
            " WHERE webhook_id = ? AND lease_owner = ? AND state = 'pending' RETURNING attempts, endpoint",
            (
                outcome.state,
                None if outcome.next_attempt_at is None else outcome.next_attempt_at.timestamp(),
                outcome.status,
                outcome.error,
                webhook_id,
                worker,
            ),
        ).fetchone()
        if row is None:
            return False
        conn.execute(
            f"INSERT INTO webhook_attempts ({ATTEMPT_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?)",
            (
                webhook_id,
                row["attempts"],
                outcome.started_at.timestamp(),
                outcome.status,
                outcome.error,
                outcome.duration_seconds,
                outcome.excerpt,
            ),
        )
        if outcome.disable_endpoint:
            conn.execute(
                "INSERT INTO webhook_endpoints_disabled (name, disabled_at, reason) VALUES (?, ?, ?)"
                " ON CONFLICT (name) DO NOTHING",
                (row["endpoint"], outcome.started_at.timestamp(), f"answered {outcome.status}"),
            )
        return True


def deliveries(
    conn: sqlite3.Connection, endpoint: str, limit: int, webhook_id: str | None
) -> list[DeliveryRecord]:
    rows = conn.execute(
        f"SELECT {DELIVERY_COLUMNS} FROM webhook_outbox WHERE endpoint = ?1"
        " AND (?2 IS NULL OR webhook_id = ?2) ORDER BY created_at DESC, webhook_id DESC LIMIT ?3",
        (endpoint, webhook_id, limit),
    ).fetchall()
    found = []
    for r in rows:
        attempts = conn.execute(
            f"SELECT {ATTEMPT_COLUMNS} FROM webhook_attempts WHERE webhook_id = ? ORDER BY attempt",
            (r["webhook_id"],),
        ).fetchall()
        found.append(
            DeliveryRecord(
                r["webhook_id"],
                r["endpoint"],
                r["job_id"],
                r["event_type"],
                datetime.fromtimestamp(r["created_at"], UTC),
                r["state"],
                _dt(r["next_attempt_at"]),
                r["last_status"],
                r["last_error"],
                tuple(
                    AttemptRecord(
                        a["attempt"],
                        datetime.fromtimestamp(a["started_at"], UTC),
                        a["status"],
                        a["error"],
                        a["duration_seconds"],
                        a["excerpt"],
                    )
                    for a in attempts
                ),
            )
        )
    return found


def redeliver(conn: sqlite3.Connection, endpoint: str, webhook_id: str, now: datetime) -> bool:
    return (
        conn.execute(
            "UPDATE webhook_outbox SET state = 'pending', next_attempt_at = ?, lease_owner = NULL,"
            " lease_until = NULL WHERE endpoint = ? AND webhook_id = ?",
            (now.timestamp(), endpoint, webhook_id),
        ).rowcount
        == 1
    )


class SQLiteWebhooks:
    """The outbox methods of SQLiteStore (mixed in)."""

    _webhook_plan: WebhookPlan | None = None

    async def _write(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        raise NotImplementedError

    async def _read(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        raise NotImplementedError

    def use_webhooks(self, plan: WebhookPlan) -> None:
        self._webhook_plan = plan

    async def claim_webhooks(
        self, worker: str, limit: int, now: datetime, lease_until: datetime
    ) -> list[ClaimedDelivery]:
        return await self._write(lambda c: claim(c, worker, limit, now, lease_until))

    async def record_webhook_attempt(self, webhook_id: str, worker: str, outcome: AttemptOutcome) -> bool:
        return await self._write(lambda c: record(c, webhook_id, worker, outcome))

    async def disabled_webhook_endpoints(self) -> set[str]:
        rows = await self._read(lambda c: c.execute("SELECT name FROM webhook_endpoints_disabled").fetchall())
        return {r[0] for r in rows}

    async def list_webhook_deliveries(
        self, endpoint: str, limit: int, webhook_id: str | None = None
    ) -> list[DeliveryRecord]:
        return await self._read(lambda c: deliveries(c, endpoint, limit, webhook_id))

    async def redeliver_webhook(self, endpoint: str, webhook_id: str, now: datetime) -> bool:
        return await self._write(lambda c: redeliver(c, endpoint, webhook_id, now))

    async def delete_finished_webhooks(self, created_before: datetime, limit: int) -> int:
        def delete(conn: sqlite3.Connection) -> int:
            with Transaction(conn):
                return conn.execute(
                    "DELETE FROM webhook_outbox WHERE webhook_id IN (SELECT webhook_id FROM webhook_outbox"
                    " WHERE state <> 'pending' AND created_at < ? ORDER BY created_at LIMIT ?)",
                    (created_before.timestamp(), limit),
                ).rowcount

        return await self._write(delete)
