"""The server's side of tracing (asyncgate.otel; all no-ops while tracing is off).

A job is submitted in one request and run later by the dispatcher, possibly on another
replica. The submit's trace context is remembered in this process by job id, so a job run
here continues the trace of the request that submitted it: one trace from the HTTP client
to the provider. A job run by another replica starts a trace of its own (the context is not
stored with the job).
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Awaitable
from typing import TYPE_CHECKING, Any, TypeVar

from asyncgate import otel
from grpc_server.domain.jobs import Job

if TYPE_CHECKING:
    from opentelemetry.context import Context

T = TypeVar("T")

_REMEMBERED = 10_000
"""Submit contexts kept at most; the oldest go first (their jobs then start traces of their own)."""
_submits: OrderedDict[str, Context] = OrderedDict()


def server_interceptors() -> list[Any]:
    """The gRPC server's interceptors: one that continues the caller's trace, when tracing is on."""
    traces = otel.provider()
    if traces is None:
        return []
    from opentelemetry.instrumentation.grpc import aio_server_interceptor, filters

    not_health = filters.negate(filters.health_check())  # probes would each start a trace
    return [aio_server_interceptor(tracer_provider=traces, filter_=not_health)]  # type: ignore[no-untyped-call]


def remember_submit(job_id: str) -> None:
    """Called when a job is stored: its run will continue the current trace."""
    context = otel.current_context()
    if context is not None:
        _submits[job_id] = context
        if len(_submits) > _REMEMBERED:
            _submits.popitem(last=False)


async def job_run(job: Job, run: Awaitable[T]) -> T:
    """Await a job's run inside a span that continues its submit's trace (when known here)."""
    parent = _submits.pop(job.id, None)
    attributes = {"asyncgate.job_id": job.id, "asyncgate.operation": job.request_type.value}
    with otel.span("job.run", parent=parent, attributes=attributes):
        return await run
