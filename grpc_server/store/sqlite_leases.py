"""Lease statements of the SQLite store that take many jobs at once, run on its writer thread."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Collection

from grpc_server.domain.jobs import JobStatus
from grpc_server.store.guards import in_status

_RUNNING = in_status(JobStatus.PROCESSING)


def renew_leases(
    conn: sqlite3.Connection, worker: str, job_ids: Collection[str], lease_until: float | None
) -> set[str]:
    """Extend the lease of each of `job_ids` that `worker` still holds, in one UPDATE; the ids
    renewed. The ids go in as one JSON array (json_each), so no limit on bound variables applies."""
    if not job_ids:
        return set()
    rows = conn.execute(
        "UPDATE jobs SET lease_until = ? WHERE id IN (SELECT value FROM json_each(?))"
        f" AND {_RUNNING} AND lease_owner = ? RETURNING id",
        (lease_until, json.dumps(list(job_ids)), worker),
    ).fetchall()
    return {str(row[0]) for row in rows}
