"""A pending job's queue position on SQLite: oldest first, or in the fair claim's order
(fair_share explains the count), its statements run in one read transaction."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Mapping

from grpc_server.domain.jobs import Job
from grpc_server.store.fair_share import SQLITE_AHEAD_IN_KEY, SQLITE_KEYS, SQLITE_PROBE, SQLITE_QUEUED
from grpc_server.store.job_api_sql import oldest_first_position_sql


def oldest_first_position(conn: sqlite3.Connection, job: Job) -> int:
    """How many pending jobs a claim (oldest first) takes before this one."""
    count: int = conn.execute(
        oldest_first_position_sql("?1", "?2"), (job.created_at.timestamp(), job.id)
    ).fetchone()[0]
    return count


def fair_position(conn: sqlite3.Connection, job: Job, priorities: Mapping[str, int]) -> int:
    """How many pending jobs the fair claim takes before this one."""
    owner, created = job.owner_key_id or "", job.created_at.timestamp()
    mine = priorities.get(owner, 0)
    conn.execute("BEGIN")  # one snapshot for the statements below
    try:
        keys = conn.execute(SQLITE_KEYS, (json.dumps(dict(priorities)),)).fetchall()
        ahead: int = conn.execute(SQLITE_AHEAD_IN_KEY, (owner, created, job.id)).fetchone()[0]
        turn = next((running for key, _, running in keys if key == owner), 0) + ahead + 1
        position = ahead
        for key, priority, running in keys:
            if key == owner or priority < mine:
                continue
            if priority > mine:
                position += conn.execute(SQLITE_QUEUED, (key,)).fetchone()[0]
                continue
            place = turn - running  # the key's jobs with a turn before X's come first
            if place <= 0:
                continue
            probe = conn.execute(SQLITE_PROBE, (key, created, job.id, place)).fetchone()
            if probe is not None:  # those before its place-th job, and that one if older than X
                position += place - 1 + probe[0]
            else:  # it has fewer: all of them
                position += conn.execute(SQLITE_QUEUED, (key,)).fetchone()[0]
        return position
    finally:
        conn.execute("COMMIT")
