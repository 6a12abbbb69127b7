"""The queue as the store sees it, for the metrics endpoint: read at scrape time from the
shared store, so every replica reports the same numbers whichever one is scraped.

Only pending and processing jobs are counted (both are indexed by status); finished jobs
are counted as they end (asyncgate_jobs_ended_total), never by scanning the table.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TypeAlias

import asyncpg
from asyncpg.pool import PoolConnectionProxy

from grpc_server.domain.jobs import JobStatus

Connection: TypeAlias = "PoolConnectionProxy[asyncpg.Record]"  # a pooled PostgreSQL connection


@dataclass(frozen=True)
class StoreStats:
    pending: int
    """Jobs waiting to be claimed."""
    processing: int
    """Jobs claimed by a worker (on any replica)."""
    oldest_pending_age_seconds: float
    """How long the oldest pending job has waited since it was submitted; 0 with none."""
    oldest_processing_age_seconds: float
    """Age (since submission) of the oldest job being processed; 0 with none."""
    expired_leases: int
    """Processing jobs whose lease has run out: their worker died or hangs (the reaper requeues them)."""


_ACTIVE = f"status IN ('{JobStatus.PENDING}', '{JobStatus.PROCESSING}')"


def _age(now: datetime, oldest: datetime | None) -> float:
    return 0.0 if oldest is None else max(0.0, (now - oldest).total_seconds())


def sqlite_stats(conn: sqlite3.Connection, now: datetime) -> StoreStats:
    """From the SQLite store's reader connection (times are epoch seconds there)."""
    rows = conn.execute(
        "SELECT status, COUNT(*), MIN(created_at), SUM(lease_until < ?)"
        f" FROM jobs WHERE {_ACTIVE} GROUP BY status",
        (now.timestamp(),),
    ).fetchall()
    found: dict[str, tuple[int, datetime | None, int]] = {}
    for status, count, oldest, expired in rows:
        since = None if oldest is None else datetime.fromtimestamp(oldest, UTC)
        found[str(status)] = (int(count), since, int(expired or 0))
    return _stats(now, found)


async def postgres_stats(conn: Connection, now: datetime) -> StoreStats:
    """From a pooled PostgreSQL connection."""
    records = await conn.fetch(
        "SELECT status, COUNT(*) AS n, MIN(created_at) AS oldest,"
        " COUNT(*) FILTER (WHERE lease_until < $1) AS expired"
        f" FROM jobs WHERE {_ACTIVE} GROUP BY status",
        now,
    )
    found = {str(r["status"]): (int(r["n"]), r["oldest"], int(r["expired"])) for r in records}
    return _stats(now, found)


def _stats(now: datetime, found: dict[str, tuple[int, datetime | None, int]]) -> StoreStats:
    pending = found.get(JobStatus.PENDING, (0, None, 0))
    processing = found.get(JobStatus.PROCESSING, (0, None, 0))
    return StoreStats(
        pending=pending[0],
        processing=processing[0],
        oldest_pending_age_seconds=_age(now, pending[1]),
        oldest_processing_age_seconds=_age(now, processing[1]),
        expired_leases=processing[2],
    )
