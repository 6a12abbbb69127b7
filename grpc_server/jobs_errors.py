"""gRPC codes for the job API's refusals that grpc_server.errors does not map yet.

Conflict (JobFinished, JobNotRetryable) is ABORTED and IdempotencyKeyReused ALREADY_EXISTS: the
codes whose canonical HTTP mapping (google/rpc/code.proto) is 409, as the REST API answers.
`maps_job_conflicts` (on each unary RPC of a servicer class) ends the call with that status and
the same ErrorInfo (and BadRequest for a field) as grpc_server.errors gives every other refusal.
Once grpc_server.errors._CODES has the two rows, this module can go.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import grpc
from google.rpc import status_pb2
from grpc_status import rpc_status

from grpc_server.domain.errors import AsyncGateError, Conflict, IdempotencyKeyReused
from grpc_server.errors import to_rpc_status

CODES: tuple[tuple[type[AsyncGateError], grpc.StatusCode], ...] = (
    (Conflict, grpc.StatusCode.ABORTED),
    (IdempotencyKeyReused, grpc.StatusCode.ALREADY_EXISTS),
)

R = TypeVar("R")
Method = Callable[[Any, Any, Any], Awaitable[R]]


def status_of(error: AsyncGateError, code: grpc.StatusCode) -> grpc.Status:
    """grpc_server.errors.to_rpc_status's status (message, details) with `code`."""
    status = status_pb2.Status()
    for key, value in to_rpc_status(error).trailing_metadata:
        if key == "grpc-status-details-bin":
            status.ParseFromString(value)
    status.code = code.value[0]
    return rpc_status.to_status(status)


def maps_job_conflicts(method: Method[R]) -> Method[R]:
    @functools.wraps(method)
    async def wrapper(self: Any, request: Any, context: grpc.aio.ServicerContext[Any, Any]) -> R:
        try:
            return await method(self, request, context)
        except (Conflict, IdempotencyKeyReused) as error:
            code = next(c for cls, c in CODES if isinstance(error, cls))
            await context.abort_with_status(status_of(error, code))  # type: ignore[attr-defined]
            raise AssertionError("unreachable: abort_with_status raises") from error

    return wrapper


C = TypeVar("C", bound=type)


def maps_job_conflicts_in(cls: C) -> C:
    """maps_job_conflicts on every unary RPC method (CamelCase) of a servicer class; apply it
    beneath grpc_server.errors.maps_errors, which then lets the abort through."""
    for name, method in list(vars(cls).items()):
        if name[:1].isupper() and callable(method) and not inspect.isasyncgenfunction(method):
            setattr(cls, name, maps_job_conflicts(method))
    return cls
