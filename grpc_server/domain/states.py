"""The job state machine: pending -> processing -> completed | failed.

processing -> pending is the way back to the queue when a lease is released
(graceful shutdown) or expires (the worker died). Terminal states are final.
The store guards the same moves again with compare-and-set writes.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime

from grpc_server.domain.jobs import Job, JobStatus
from grpc_server.domain.ttl import expiry

ALLOWED: dict[JobStatus, frozenset[JobStatus]] = {
    JobStatus.PENDING: frozenset({JobStatus.PROCESSING, JobStatus.FAILED}),
    JobStatus.PROCESSING: frozenset({JobStatus.PENDING, JobStatus.COMPLETED, JobStatus.FAILED}),
    JobStatus.COMPLETED: frozenset(),
    JobStatus.FAILED: frozenset(),
}


class IllegalTransition(Exception):
    def __init__(self, job_id: str, current: JobStatus, to: JobStatus) -> None:
        super().__init__(f"job {job_id}: illegal transition {current} -> {to}")
        self.current, self.to = current, to


def can_transition(current: JobStatus, to: JobStatus) -> bool:
    return to in ALLOWED[current]


def sources_of(to: JobStatus) -> frozenset[JobStatus]:
    """The statuses a job may move to `to` from: what a store's compare-and-set checks."""
    return frozenset(current for current, targets in ALLOWED.items() if to in targets)


def transition(job: Job, to: JobStatus, now: datetime) -> Job:
    """Move a job to `to`; terminal moves stamp completed_at and expires_at."""
    if not can_transition(job.status, to):
        raise IllegalTransition(job.id, job.status, to)
    if to in (JobStatus.COMPLETED, JobStatus.FAILED):
        return replace(job, status=to, completed_at=now, expires_at=expiry(now, job.ttl_seconds))
    return replace(job, status=to)
