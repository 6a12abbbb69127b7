"""A JobStore that times every operation and counts what happens to jobs, around any store.

The server wraps its store once (after opening it); the stores themselves know nothing of
metrics. Methods not named here (including ones added to the protocol later) are timed
generically by name: asyncgate_store_operation_seconds{method, outcome}.
"""

from __future__ import annotations

import functools
import inspect
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Sequence
from datetime import datetime
from typing import Any, ParamSpec, TypeVar

from asyncgate import otel
from grpc_server.domain.errors import RateLimited
from grpc_server.domain.jobs import Job, JobError, JobResult, OutputBlob
from grpc_server.metrics import (
    ADMISSION_REFUSALS,
    CLAIM_WAIT,
    INPUT_BYTES,
    JOBS_ENDED,
    JOBS_SUBMITTED,
    STORE_OPERATIONS,
)
from grpc_server.store.base import JobStore, ReapResult, StagedFile, StoreUnavailable
from grpc_server.telemetry import remember_submit

P = ParamSpec("P")
T = TypeVar("T")

_REMEMBERED_JOBS = 10_000
"""Operations of claimed jobs kept for labelling their end; a run abandoned without an
outcome (its lease lost) leaves its entry behind, so the oldest are dropped past this."""
UNKNOWN_OPERATION = "unknown"
"""The operation label of a job ended by a replica that did not claim it (the reaper's)."""


def _timed(method: str, call: Callable[P, Awaitable[T]]) -> Callable[P, Awaitable[T]]:
    # The histogram's children are looked up once: labels() costs more than observe().
    ok, unavailable, error = (STORE_OPERATIONS.labels(method, o) for o in ("ok", "unavailable", "error"))

    @functools.wraps(call)
    async def timed(*args: P.args, **kwargs: P.kwargs) -> T:
        if otel.enabled():
            return await _traced(method, call, *args, **kwargs)
        started = time.perf_counter()
        try:
            value = await call(*args, **kwargs)
        except StoreUnavailable:
            unavailable.observe(time.perf_counter() - started)
            raise
        except BaseException:
            error.observe(time.perf_counter() - started)
            raise
        ok.observe(time.perf_counter() - started)
        return value

    return timed


async def _traced(method: str, call: Callable[P, Awaitable[T]], *args: P.args, **kwargs: P.kwargs) -> T:
    """A timed call while tracing is on: also a span, when a trace is going on."""
    started = time.perf_counter()
    outcome = "error"
    with otel.span(f"store.{method}", only_in_trace=True) as span:
        try:
            value = await call(*args, **kwargs)
            outcome = "ok"
            return value
        except StoreUnavailable:
            outcome = "unavailable"
            raise
        finally:
            STORE_OPERATIONS.labels(method, outcome).observe(time.perf_counter() - started)
            if outcome != "ok":
                otel.set_error(span, outcome)


class ObservedStore:
    def __init__(self, inner: JobStore) -> None:
        self.inner = inner
        self.hears_every_write = inner.hears_every_write
        self._operations: OrderedDict[str, str] = OrderedDict()
        self._create = _timed("create_job", inner.create_job)
        self._claim = _timed("claim_jobs", inner.claim_jobs)
        self._complete = _timed("complete_job", inner.complete_job)
        self._fail = _timed("fail_job", inner.fail_job)
        self._requeue = _timed("requeue_job", inner.requeue_job)
        self._release = _timed("release_job", inner.release_job)
        self._reap = _timed("reap_expired_leases", inner.reap_expired_leases)

    def __getattr__(self, name: str) -> Any:
        # Only for names not found on this object: each coroutine method is wrapped once and kept
        # as an attribute, so later calls find it at once (a poll no longer builds a wrapper).
        attribute = getattr(self.inner, name)
        if inspect.iscoroutinefunction(attribute):
            timed = _timed(name, attribute)
            setattr(self, name, timed)
            return timed
        return attribute  # sync methods, and read_output's async generator (timed by its reader)

    async def create_job(self, job: Job, files: Sequence[StagedFile]) -> None:
        try:
            await self._create(job, files)
        except RateLimited as refused:
            ADMISSION_REFUSALS.labels(refused.reason.lower()).inc()
            raise
        JOBS_SUBMITTED.labels(job.request_type.value).inc()
        remember_submit(job.id)  # its run continues this request's trace
        INPUT_BYTES.labels(job.request_type.value).inc(sum(f.info.size_bytes for f in files))

    async def claim_jobs(self, worker: str, limit: int, now: datetime, lease_until: datetime) -> list[Job]:
        jobs = await self._claim(worker, limit, now, lease_until)
        for job in jobs:
            operation = job.request_type.value
            CLAIM_WAIT.labels(operation).observe(max(0.0, (now - job.created_at).total_seconds()))
            self._operations[job.id] = operation
            if len(self._operations) > _REMEMBERED_JOBS:
                self._operations.popitem(last=False)
        return jobs

    async def complete_job(
        self, job_id: str, worker: str, result: JobResult, outputs: Sequence[OutputBlob], now: datetime
    ) -> bool:
        written = await self._complete(job_id, worker, result, outputs, now)
        self._ended(job_id, "completed", written)
        return written

    async def fail_job(self, job_id: str, worker: str | None, error: JobError, now: datetime) -> bool:
        written = await self._fail(job_id, worker, error, now)
        self._ended(job_id, "failed", written)
        return written

    async def requeue_job(self, job_id: str, worker: str, *, refund_attempt: bool = True) -> bool:
        self._operations.pop(job_id, None)
        return await self._requeue(job_id, worker, refund_attempt=refund_attempt)

    async def release_job(self, job_id: str, worker: str) -> bool:
        self._operations.pop(job_id, None)
        return await self._release(job_id, worker)

    async def reap_expired_leases(self, now: datetime, max_attempts: int, exhausted: JobError) -> ReapResult:
        reaped = await self._reap(now, max_attempts, exhausted)
        if reaped.failed:
            JOBS_ENDED.labels(UNKNOWN_OPERATION, "failed").inc(reaped.failed)
        return reaped

    def _ended(self, job_id: str, outcome: str, written: bool) -> None:
        operation = self._operations.pop(job_id, UNKNOWN_OPERATION)
        if written:
            JOBS_ENDED.labels(operation, outcome).inc()


def observed(store: JobStore) -> JobStore:
    """`store`, timed and counted (a store already observed is returned as it is)."""
    return store if isinstance(store, ObservedStore) else ObservedStore(store)
