"""Per-key limits checked in the transaction that inserts the job, so they hold across replicas.

Only a job whose key has a limit pays for the check. The caller (create_job) first serializes
the key's submits: PostgreSQL takes a transaction-scoped advisory lock on the key id (released
by the commit or rollback), SQLite's single writer does so by itself. Under that lock:

- in flight: the key's pending and processing jobs, counted up to the limit (two partial
  indexes by owner, jobs_owner_queue and jobs_owner_running);
- per minute: the limit-th most recent of the key's jobs created within the last 60 seconds
  (jobs_by_owner); if there is one, the key is at its limit until that job leaves the minute,
  which is the Retry-After.

Both use the job's own created_at as "now". A job deleted within the minute no longer counts.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from grpc_server.domain.errors import RateLimited, TooManyJobsInFlight
from grpc_server.domain.jobs import JobStatus

WINDOW = timedelta(seconds=60)
IN_FLIGHT_RETRY_AFTER_SECONDS = 5
"""The Retry-After of a key at max_jobs_in_flight: when one of its jobs ends is not known."""
ADVISORY_LOCK_CLASS = 0x6167_6164  # "agad": the first key of pg_advisory_xact_lock(int, int)
"""Admission locks use the two-integer key space (apart from the migration's bigint lock)."""


@dataclass(frozen=True)
class AdmissionLimits:
    """A virtual key's limits, given to create_job with the key's job."""

    max_jobs_in_flight: int | None = None
    submits_per_minute: int | None = None

    @property
    def any(self) -> bool:
        return self.max_jobs_in_flight is not None or self.submits_per_minute is not None


@dataclass(frozen=True)
class KeyPolicy:
    """What a store knows of the virtual keys (JobStore.use_key_policy): their limits, checked
    by create_job, and their priorities and whether claims take turns, used by claim_jobs."""

    limits: Mapping[str, AdmissionLimits] = field(default_factory=dict)
    """Key id -> its limits; a key without any is not listed."""
    priorities: Mapping[str, int] = field(default_factory=dict)
    """Key id -> its priority; a key not listed (and keyless jobs) has 0."""
    fair_share: bool = True

    def limits_of(self, owner_key_id: str | None) -> AdmissionLimits | None:
        return self.limits.get(owner_key_id) if owner_key_id is not None else None


def in_flight_sql(p: list[str]) -> str:
    """Parameters: key id, limit. The key's pending + processing jobs, counted up to the limit."""
    return (
        f"SELECT (SELECT count(*) FROM (SELECT 1 FROM jobs WHERE status = '{JobStatus.PENDING}'"
        f" AND COALESCE(owner_key_id, '') = {p[0]} LIMIT {p[1]}) AS queued)"
        f" + (SELECT count(*) FROM (SELECT 1 FROM jobs WHERE status = '{JobStatus.PROCESSING}'"
        f" AND COALESCE(owner_key_id, '') = {p[0]} LIMIT {p[1]}) AS running)"
    )


def window_sql(p: list[str]) -> str:
    """Parameters: key id, start of the minute, limit - 1. The created_at of the limit-th most
    recent job of the key within the minute; no row while the key is under its limit."""
    return (
        f"SELECT created_at FROM jobs WHERE owner_key_id = {p[0]} AND created_at > {p[1]}"
        f" ORDER BY created_at DESC, id DESC LIMIT 1 OFFSET {p[2]}"
    )


def refuse_in_flight(count: int, limit: int) -> None:
    if count >= limit:
        raise TooManyJobsInFlight(
            f"this virtual key has {limit} jobs pending or processing (max_jobs_in_flight);"
            " try again when one has ended",
            IN_FLIGHT_RETRY_AFTER_SECONDS,
        )


def refuse_rate(oldest_counted: datetime | None, now: datetime, limit: int) -> None:
    if oldest_counted is not None:
        wait = (oldest_counted + WINDOW - now).total_seconds()
        raise RateLimited(
            f"this virtual key has submitted {limit} jobs in the last minute (submits_per_minute)",
            max(1, math.ceil(wait)),
        )
