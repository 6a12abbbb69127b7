"""The client's exceptions, one class per kind of refusal, from either transport.

gRPC: the status code and the google.rpc ErrorInfo reason (and BadRequest's field for
`param`). REST: the HTTP status and the error object (docs/rest-api.md §6).
"""

from __future__ import annotations

from typing import Any

import grpc
from google.rpc import error_details_pb2
from grpc_status import rpc_status


class AsyncGateError(Exception):
    """Any error the server answered (or a failure to reach it).

    `code` is the server's stable reason in lower case (`invalid_argument`,
    `job_not_found`, ...) when it gave one; `param` names the field at fault;
    `status` is the HTTP status (REST) or the one the bridge would have answered (gRPC)."""

    def __init__(self, message: str, *, code: str | None = None, param: str | None = None, status: int = 0):
        super().__init__(message)
        self.message = message
        self.code = code
        self.param = param
        self.status = status


class InvalidRequest(AsyncGateError):
    """The request was refused as it stands (a bad field, too large, an unknown key)."""


class Unauthenticated(AsyncGateError):
    """No virtual key where one is required, or a token that does not verify."""


class PermissionDenied(AsyncGateError):
    """The key may not do this (a model outside its allowed models, a bad file token)."""


class NotFound(AsyncGateError):
    """No such job: unknown, expired, deleted, or another key's."""


class Conflict(AsyncGateError):
    """The job's state forbids it (cancel of a finished job, retry of a completed one), or
    an idempotency key reused for a different request."""


class RateLimited(AsyncGateError):
    """Too many requests: try again later."""


class Unavailable(AsyncGateError):
    """The server or its store could not be reached; safe calls were already retried."""


_BY_HTTP_STATUS: dict[int, type[AsyncGateError]] = {
    400: InvalidRequest,
    401: Unauthenticated,
    403: PermissionDenied,
    404: NotFound,
    409: Conflict,
    413: InvalidRequest,
    429: RateLimited,
    502: Unavailable,
    503: Unavailable,
    504: Unavailable,
}

_C = grpc.StatusCode
# (code, reason) first, then code alone; the HTTP status is the bridge's (rest_bridge.errors).
_BY_GRPC_REASON: dict[tuple[grpc.StatusCode, str], int] = {
    (_C.RESOURCE_EXHAUSTED, "PAYLOAD_TOO_LARGE"): 413,
    (_C.RESOURCE_EXHAUSTED, "UPLOADS_BUSY"): 503,
    (_C.UNAVAILABLE, "STORE_FULL"): 507,
}
_BY_GRPC_CODE: dict[grpc.StatusCode, int] = {
    _C.INVALID_ARGUMENT: 400,
    _C.OUT_OF_RANGE: 400,
    _C.FAILED_PRECONDITION: 400,
    _C.UNAUTHENTICATED: 401,
    _C.PERMISSION_DENIED: 403,
    _C.NOT_FOUND: 404,
    _C.ALREADY_EXISTS: 409,
    _C.ABORTED: 409,
    _C.RESOURCE_EXHAUSTED: 429,
    _C.UNAVAILABLE: 503,
    _C.DEADLINE_EXCEEDED: 504,
}


def error_for_status(
    status: int, message: str, *, code: str | None = None, param: str | None = None
) -> AsyncGateError:
    cls = _BY_HTTP_STATUS.get(status, AsyncGateError)
    return cls(message, code=code, param=param, status=status)


def from_rest(status: int, body: Any) -> AsyncGateError:
    """The exception for a non-2xx REST answer (its body parsed as JSON, or None)."""
    inner = body.get("error") if isinstance(body, dict) else None
    if not isinstance(inner, dict):
        return error_for_status(status, f"HTTP {status}")
    message = str(inner.get("message") or f"HTTP {status}")
    code = inner.get("code")
    param = inner.get("param")
    return error_for_status(
        status,
        message,
        code=code if isinstance(code, str) else None,
        param=param if isinstance(param, str) else None,
    )


def from_grpc(error: grpc.aio.AioRpcError) -> AsyncGateError:
    """The exception for a failed gRPC call, from its code and google.rpc details."""
    reason = ""
    param: str | None = None
    status = rpc_status.from_call(error)  # type: ignore[arg-type]
    for detail in status.details if status is not None else ():
        if detail.Is(error_details_pb2.ErrorInfo.DESCRIPTOR):
            info = error_details_pb2.ErrorInfo()
            detail.Unpack(info)
            reason = info.reason
        elif detail.Is(error_details_pb2.BadRequest.DESCRIPTOR):
            bad = error_details_pb2.BadRequest()
            detail.Unpack(bad)
            if bad.field_violations:
                param = bad.field_violations[0].field
    code = error.code()
    http = _BY_GRPC_REASON.get((code, reason)) or _BY_GRPC_CODE.get(code, 500)
    return error_for_status(http, error.details() or code.name, code=reason.lower() or None, param=param)
