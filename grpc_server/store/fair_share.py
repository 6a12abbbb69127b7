"""Fair-share claims: keys take turns, higher priority first, oldest first within a key.

A job's turn is its place in its key's queue plus the key's jobs already running (on every
replica), so a key with many jobs running yields to one with none, and one claim of many jobs
interleaves the keys: with keys A (100 pending) and B (3), the order is A1 B1 A2 B2 A3 B3 A4...
Claims then go by (priority of the key desc, turn, created_at, id). Keyless jobs are the key ''.

Served by indexes, whatever the backlog: the keys with pending jobs are found by a loose scan of
jobs_owner_queue (one index probe per key), each key contributes at most `limit` candidates
from the same index, its running jobs are counted in jobs_owner_running. Nothing is read per
pending job beyond those candidates.

PostgreSQL locks each key's candidates with FOR UPDATE SKIP LOCKED, so concurrent claimers on
other replicas pass over each other's rows as with the plain claim (a key's rows another
claimer holds are skipped, the next ones taken); candidates not claimed are unlocked when the
statement ends. SQLite's single writer runs the select and the update in one transaction.
"""

from __future__ import annotations

from grpc_server.domain.jobs import JobStatus

_PENDING = f"status = '{JobStatus.PENDING}'"
_RUNNING = f"status = '{JobStatus.PROCESSING}'"
_OWNER = "COALESCE(owner_key_id, '')"

_OWNERS = (
    # The distinct keys with pending jobs, smallest first: one index probe each.
    "owners(owner) AS ("
    f" SELECT (SELECT {_OWNER} FROM jobs WHERE {_PENDING} ORDER BY {_OWNER} LIMIT 1)"
    " UNION ALL"
    f" SELECT (SELECT {_OWNER} FROM jobs WHERE {_PENDING} AND {_OWNER} > owners.owner"
    f" ORDER BY {_OWNER} LIMIT 1) FROM owners WHERE owners.owner IS NOT NULL"
    ")"
)

FAIR_ORDER_TAIL = "created_at, id"
ORDER = f"priority DESC, turn, {FAIR_ORDER_TAIL}"
"""The claim order of the candidates."""


def _running(owner: str) -> str:
    return f"(SELECT count(*) FROM jobs WHERE {_RUNNING} AND {_OWNER} = {owner})"


POSTGRES_CANDIDATES = (
    # $3: the claim's limit; $4, $5: the keys' ids and priorities (others: 0).
    f"WITH RECURSIVE {_OWNERS}, candidates AS MATERIALIZED ("
    " SELECT c.id, c.created_at, COALESCE(p.priority, 0) AS priority,"
    f" {_running('o.owner')} + row_number() OVER (PARTITION BY o.owner ORDER BY c.created_at, c.id)"
    " AS turn"
    " FROM owners o CROSS JOIN LATERAL ("
    f"  SELECT id, created_at FROM jobs WHERE {_PENDING} AND {_OWNER} = o.owner"
    "  ORDER BY created_at, id LIMIT $3 FOR UPDATE SKIP LOCKED"
    " ) c"
    " LEFT JOIN unnest($4::text[], $5::int[]) AS p(owner, priority) ON p.owner = o.owner"
    " WHERE o.owner IS NOT NULL"
    f"), next AS MATERIALIZED (SELECT id, priority, turn, created_at FROM candidates ORDER BY {ORDER}"
    " LIMIT $3)"
)
"""The CTEs `candidates` (locked) and `next` (the ones to claim, with their order)."""

SQLITE_ORDER = (
    # ?1: the claim's limit; ?2: a JSON object {key id: priority} (others: 0).
    f"WITH RECURSIVE {_OWNERS}, candidates AS ("
    " SELECT j.id, j.created_at, COALESCE(p.value, 0) AS priority,"
    f" {_running('o.owner')} + row_number() OVER (PARTITION BY o.owner ORDER BY j.created_at, j.id)"
    " AS turn"
    " FROM owners o JOIN jobs j ON j.id IN ("
    f"  SELECT id FROM jobs WHERE {_PENDING} AND {_OWNER} = o.owner ORDER BY created_at, id LIMIT ?1"
    " )"
    " LEFT JOIN json_each(?2) AS p ON p.key = o.owner"
    " WHERE o.owner IS NOT NULL"
    f") SELECT id FROM candidates ORDER BY {ORDER} LIMIT ?1"
)
"""The ids to claim, in claim order."""
