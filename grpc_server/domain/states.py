"""The job state machine: pending -> processing -> completed | failed | cancelled.

processing -> pending is the way back to the queue when a lease is released
(graceful shutdown) or expires (the worker died). A caller may cancel a job that has
not ended (pending or processing -> cancelled). Terminal states are final but for a
retry: a failed or cancelled job may be run again (-> pending) from its stored inputs;
a completed one never. The store guards the same moves again with compare-and-set writes.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime

from grpc_server.domain.jobs import TERMINAL_STATUSES, Job, JobStatus
from grpc_server.domain.ttl import expiry

ALLOWED: dict[JobStatus, frozenset[JobStatus]] = {
    JobStatus.PENDING: frozenset({JobStatus.PROCESSING, JobStatus.FAILED, JobStatus.CANCELLED}),
    JobStatus.PROCESSING: frozenset(
        {JobStatus.PENDING, JobStatus.COMPLETED, JobStatus.FAILED, JobStatus.CANCELLED}
    ),
    JobStatus.COMPLETED: frozenset(),
    JobStatus.FAILED: frozenset({JobStatus.PENDING}),  # retry
    JobStatus.CANCELLED: frozenset({JobStatus.PENDING}),  # retry
}
RETRYABLE = frozenset({JobStatus.FAILED, JobStatus.CANCELLED})
"""The statuses a retry starts from."""


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
    if to in TERMINAL_STATUSES:
        return replace(job, status=to, completed_at=now, expires_at=expiry(now, job.ttl_seconds))
    if job.is_terminal:  # a retry: the last run's outcome goes
        return replace(
            job, status=to, completed_at=None, expires_at=None, status_code=0, result=None, error=None
        )
    return replace(job, status=to)
