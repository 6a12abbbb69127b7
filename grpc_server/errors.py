"""The gRPC boundary's one error map: whatever a handler raises becomes a status here.

- A domain error (grpc_server.domain.errors) -> its gRPC code, with google.rpc ErrorInfo
  (domain "asyncgate", the error's stable reason) and, when it names a field, BadRequest.
- A key's limit (RateLimited) -> RESOURCE_EXHAUSTED with google.rpc RetryInfo (the delay).
- The store being unreachable -> UNAVAILABLE (STORE_UNAVAILABLE); full -> STORE_FULL.
- Anything else -> INTERNAL with a generic message and an event id; the exception and its
  traceback go to the log under that id, never to the caller.

`maps_errors` applies this to every method of a servicer class, so no RPC is left out.
The REST bridge decides HTTP statuses from the code and reason (rest_bridge.errors).
"""

from __future__ import annotations

import functools
import inspect
import logging
import uuid
from collections.abc import AsyncIterator, Callable
from typing import Any, NoReturn, TypeVar

import grpc
from google.protobuf import any_pb2, duration_pb2
from google.rpc import error_details_pb2, status_pb2
from grpc_status import rpc_status

from grpc_server.domain.errors import (
    AsyncGateError,
    Busy,
    Conflict,
    IdempotencyKeyReused,
    IdleTimeout,
    InvalidArgument,
    NotFound,
    PayloadTooLarge,
    PermissionDenied,
    RateLimited,
    StorageFull,
    Unauthenticated,
    Unavailable,
)
from grpc_server.registration import Malformed
from grpc_server.store.base import StoreFull, StoreUnavailable

ERROR_DOMAIN = "asyncgate"
log = logging.getLogger("asyncgate.errors")

# Most specific first: the first class an error is an instance of decides its code.
_CODES: tuple[tuple[type[AsyncGateError], grpc.StatusCode], ...] = (
    (InvalidArgument, grpc.StatusCode.INVALID_ARGUMENT),
    (PayloadTooLarge, grpc.StatusCode.RESOURCE_EXHAUSTED),
    (Busy, grpc.StatusCode.RESOURCE_EXHAUSTED),
    (RateLimited, grpc.StatusCode.RESOURCE_EXHAUSTED),
    (Unauthenticated, grpc.StatusCode.UNAUTHENTICATED),
    (PermissionDenied, grpc.StatusCode.PERMISSION_DENIED),
    (NotFound, grpc.StatusCode.NOT_FOUND),
    (IdleTimeout, grpc.StatusCode.DEADLINE_EXCEEDED),
    # 409 over REST: the codes google/rpc/code.proto maps to it.
    (Conflict, grpc.StatusCode.ABORTED),
    (IdempotencyKeyReused, grpc.StatusCode.ALREADY_EXISTS),
    (Unavailable, grpc.StatusCode.UNAVAILABLE),
)


def grpc_code(error: AsyncGateError) -> grpc.StatusCode:
    for cls, code in _CODES:
        if isinstance(error, cls):
            return code
    return grpc.StatusCode.INTERNAL


def _pack(message: object) -> any_pb2.Any:
    packed = any_pb2.Any()
    packed.Pack(message)  # type: ignore[arg-type]
    return packed


def to_rpc_status(error: AsyncGateError) -> grpc.Status:
    """The gRPC status for a domain error, with ErrorInfo, (for a field) BadRequest and (for a
    limit) RetryInfo."""
    details = [_pack(error_details_pb2.ErrorInfo(reason=error.reason, domain=ERROR_DOMAIN))]
    if isinstance(error, RateLimited):
        delay = duration_pb2.Duration(seconds=error.retry_after_seconds)
        details.append(_pack(error_details_pb2.RetryInfo(retry_delay=delay)))
    if error.param:
        violation = error_details_pb2.BadRequest.FieldViolation(field=error.param, description=error.message)
        details.append(_pack(error_details_pb2.BadRequest(field_violations=[violation])))
    status = status_pb2.Status(code=grpc_code(error).value[0], message=error.message, details=details)
    return rpc_status.to_status(status)


def as_domain_error(exc: Exception) -> AsyncGateError:
    """Any exception a handler let through, as the error the caller is told."""
    if isinstance(exc, AsyncGateError):
        return exc
    if isinstance(exc, StoreFull):
        return StorageFull(f"{exc}; try again later")
    if isinstance(exc, StoreUnavailable):
        return Unavailable("the job store is unavailable; try again")
    event_id = str(uuid.uuid4())
    log.error("internal error (event_id=%s)", event_id, exc_info=exc)
    error = AsyncGateError(f"internal error (event_id={event_id})")
    return error


async def abort(context: grpc.aio.ServicerContext[Any, Any], error: AsyncGateError) -> NoReturn:
    """End the call with the error's status and google.rpc details."""
    await context.abort_with_status(to_rpc_status(error))  # type: ignore[attr-defined]  # not in grpc-stubs
    raise AssertionError("unreachable: abort_with_status raises")


F = TypeVar("F", bound=Callable[..., Any])


def refuse_malformed(request: object) -> None:
    """A request that did not parse (grpc_server.registration) is the caller's bad input."""
    if isinstance(request, Malformed):
        raise InvalidArgument(f"the {request.message_type} message cannot be parsed: {request.reason}")


def _unary(method: F) -> F:
    @functools.wraps(method)
    async def wrapper(self: Any, request: Any, context: grpc.aio.ServicerContext[Any, Any]) -> Any:
        try:
            refuse_malformed(request)
            return await method(self, request, context)
        except grpc.aio.AbortError:
            raise
        except Exception as exc:
            await abort(context, as_domain_error(exc))

    return wrapper  # type: ignore[return-value]


def _streaming(method: F) -> F:
    @functools.wraps(method)
    async def wrapper(
        self: Any, request: Any, context: grpc.aio.ServicerContext[Any, Any]
    ) -> AsyncIterator[Any]:
        try:
            refuse_malformed(request)
            async for message in method(self, request, context):
                yield message
        except grpc.aio.AbortError:
            raise
        except Exception as exc:
            await abort(context, as_domain_error(exc))

    return wrapper  # type: ignore[return-value]


C = TypeVar("C", bound=type)


def maps_errors(cls: C) -> C:
    """Wrap every public RPC method of a servicer class (CamelCase names) in the error map."""
    for name, method in list(vars(cls).items()):
        if not name[:1].isupper() or not callable(method):
            continue
        wrapped = _streaming(method) if inspect.isasyncgenfunction(method) else _unary(method)
        setattr(cls, name, wrapped)
    return cls
