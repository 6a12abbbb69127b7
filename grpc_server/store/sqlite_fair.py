"""The SQLite store's fair-share claim (see fair_share): the claim order selected, then those
jobs moved to processing, in one transaction of the single writer."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Mapping

from grpc_server.domain.jobs import Job, JobStatus
from grpc_server.store.fair_share import SQLITE_ORDER
from grpc_server.store.guards import moving_to
from grpc_server.store.sqlite_jobs import job_from_sqlite
from grpc_server.store.sqlite_wal import Transaction

_CLAIMABLE = moving_to(JobStatus.PROCESSING)


def fair_claim(
    conn: sqlite3.Connection,
    worker: str,
    limit: int,
    lease_until: float | None,
    priorities: Mapping[str, int],
) -> list[Job]:
    """Up to `limit` pending jobs, keys taking turns, claimed under a lease; in claim order."""
    with Transaction(conn):
        ids = [row[0] for row in conn.execute(SQLITE_ORDER, (limit, json.dumps(dict(priorities))))]
        rows = conn.execute(
            f"UPDATE jobs SET status = '{JobStatus.PROCESSING}', lease_owner = ?, lease_until = ?,"
            " attempts = attempts + 1, change_seq = change_seq + 1"
            f" WHERE id IN (SELECT value FROM json_each(?)) AND {_CLAIMABLE} RETURNING *",
            (worker, lease_until, json.dumps(ids)),
        ).fetchall()
    turn = {job_id: i for i, job_id in enumerate(ids)}
    return sorted((job_from_sqlite(r) for r in rows), key=lambda job: turn[job.id])
