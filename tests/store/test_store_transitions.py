"""Every move a store makes is one the state table (grpc_server.domain.states) allows, and
every move the table allows is made by some store operation: each operation is tried on a
job in each state, on every backend, and the job's status read before and after."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import timedelta
from pathlib import Path

from grpc_server.domain.jobs import Job, JobStatus, cancelled_error
from grpc_server.domain.states import ALLOWED
from grpc_server.store.base import JobStore
from tests.store.test_store_contract import ERROR, LEASE, T0, _create, _result

LATER = T0 + 10 * LEASE
"""When every lease taken at T0 has expired."""

Operation = Callable[[JobStore, Job], Awaitable[object]]
OPERATIONS: dict[str, Operation] = {
    "claim": lambda s, j: s.claim_jobs("w1", 1000, T0, T0 + LEASE),
    "renew": lambda s, j: s.renew_lease(j.id, "w1", T0 + 2 * LEASE),
    "release": lambda s, j: s.release_job(j.id, "w1"),
    "requeue": lambda s, j: s.requeue_job(j.id, "w1"),
    "requeue spending the attempt": lambda s, j: s.requeue_job(j.id, "w1", refund_attempt=False),
    "complete": lambda s, j: s.complete_job(j.id, "w1", _result(j, 0), [], T0),
    "fail as the worker": lambda s, j: s.fail_job(j.id, "w1", ERROR, T0),
    "fail without a worker": lambda s, j: s.fail_job(j.id, None, ERROR, T0),
    "reap": lambda s, j: s.reap_expired_leases(LATER, 1000, ERROR),
    "reap out of attempts": lambda s, j: s.reap_expired_leases(LATER, 1, ERROR),
    "cancel": lambda s, j: s.cancel_job(j.id, cancelled_error(j, "ev"), T0),
    "retry": lambda s, j: s.retry_job(j.id),
}


async def _job_in(store: JobStore, tmp_path: Path, state: str, n: int) -> Job:
    """A new job brought to `state` by the store's own operations."""
    job = await _create(store, tmp_path)
    if state == "pending":
        return job
    holder = "w2" if state == "processing (another worker)" else "w1"
    claimed = await store.claim_jobs(holder, 1000, T0 + timedelta(microseconds=n), T0 + LEASE)
    assert job.id in {c.id for c in claimed}
    if state == "completed":
        assert await store.complete_job(job.id, holder, _result(job, 0), [], T0)
    elif state == "failed":
        assert await store.fail_job(job.id, holder, ERROR, T0)
    elif state == "cancelled":
        assert await store.cancel_job(job.id, cancelled_error(job, "ev"), T0) is not None
    return job


async def _status(store: JobStore, job: Job) -> JobStatus:
    current = await store.get_job(job.id)
    assert current is not None
    return current.status


async def test_every_move_a_store_makes_is_in_the_state_table(store: JobStore, tmp_path: Path) -> None:
    states = ["pending", "processing", "processing (another worker)", "completed", "failed", "cancelled"]
    made: set[tuple[JobStatus, JobStatus]] = set()
    n = 0
    for state in states:
        for name, operation in OPERATIONS.items():
            n += 1
            job = await _job_in(store, tmp_path, state, n)
            before = await _status(store, job)
            await operation(store, job)
            after = await _status(store, job)
            if after != before:
                assert after in ALLOWED[before], f"{name} moved a {state} job to {after}"
                made.add((before, after))
    allowed = {(current, to) for current, targets in ALLOWED.items() for to in targets}
    assert made == allowed  # and nothing the table allows is left unused
