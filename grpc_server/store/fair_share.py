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


# Queue positions: how many pending jobs the claim takes before a given pending job X.
#
# The claim order is a total order on the pending jobs, (priority of the key desc, turn,
# created_at, id), which claiming does not change while the claimed jobs run (a claimed job's
# key has one running job more and one queued job less: the others' turns stay). So X's
# position is, over the keys with pending jobs: every job of a key of higher priority; none of
# a lower one; of a key K of X's priority with r running jobs, its first t - r - 1 (X's turn t),
# and the (t - r)-th too if it is older than X; of X's own key, those older than X. Each term
# reads at most the jobs it counts, plus one, in jobs_owner_queue: the cost follows the
# position (as the oldest-first count does), never the whole backlog. Ignored, as by the claim
# of one replica: rows another replica's claim holds locked at that moment.


def _queue(owner: str) -> str:
    return f"FROM jobs WHERE {_PENDING} AND {_OWNER} = {owner}"


def _ahead_in_key(owner: str, created: str, job_id: str) -> str:
    """X's own key's pending jobs before X."""
    return f"SELECT count(*) {_queue(owner)} AND (created_at, id) < ({created}, {job_id})"


def _probe(owner: str, place: str, created: str, job_id: str) -> str:
    """1 if the key's place-th (1-based) pending job is older than X, 0 if not; no row if the
    key has fewer pending jobs."""
    return (
        f"SELECT CASE WHEN (created_at, id) < ({created}, {job_id}) THEN 1 ELSE 0 END {_queue(owner)}"
        f" ORDER BY created_at, id LIMIT 1 OFFSET {place} - 1"
    )


POSTGRES_POSITION = (
    # $1: X's key ('' keyless), $2, $3: its created_at and id, $4: its key's priority;
    # $5, $6: the keys' ids and priorities (others: 0).
    f"WITH RECURSIVE {_OWNERS}, keys AS MATERIALIZED ("
    f" SELECT o.owner, COALESCE(p.priority, 0) AS priority, {_running('o.owner')} AS running"
    " FROM owners o LEFT JOIN unnest($5::text[], $6::int[]) AS p(owner, priority) ON p.owner = o.owner"
    " WHERE o.owner IS NOT NULL"
    f"), mine AS MATERIALIZED (SELECT ({_ahead_in_key('$1', '$2', '$3')}) AS ahead,"
    " COALESCE((SELECT running FROM keys WHERE owner = $1), 0) AS running"
    "), others AS MATERIALIZED ("
    " SELECT k.owner, k.priority, mine.running + mine.ahead + 1 - k.running AS place"
    " FROM keys k CROSS JOIN mine WHERE k.owner <> $1"
    ") SELECT ((SELECT ahead FROM mine) + COALESCE(sum(CASE"
    f" WHEN priority > $4 THEN (SELECT count(*) {_queue('others.owner')})"
    " WHEN priority < $4 OR place <= 0 THEN 0"
    f" ELSE COALESCE(others.place - 1 + ({_probe('others.owner', 'others.place', '$2', '$3')}),"
    f" (SELECT count(*) {_queue('others.owner')}))"
    " END), 0))::bigint FROM others"  # sum() of bigints is numeric
)
"""X's position under fair share, in one statement (a snapshot)."""

SQLITE_KEYS = (
    # ?1: a JSON object {key id: priority} (others: 0).
    f"WITH RECURSIVE {_OWNERS}"
    f" SELECT o.owner, COALESCE(p.value, 0), {_running('o.owner')}"
    " FROM owners o LEFT JOIN json_each(?1) AS p ON p.key = o.owner WHERE o.owner IS NOT NULL"
)
"""The keys with pending jobs: (key, priority, running jobs)."""
SQLITE_AHEAD_IN_KEY = _ahead_in_key("?1", "?2", "?3")
SQLITE_PROBE = _probe("?1", "?4", "?2", "?3")
SQLITE_QUEUED = f"SELECT count(*) {_queue('?1')}"
"""SQLite cannot take LIMIT or OFFSET from an outer query: its store runs these per key."""
