"""Errors as the REST API answers them, and the one map from gRPC failures to HTTP.

    BridgeError       an HTTP error raised by the bridge itself while reading a request
    from_rpc_error()  a gRPC status (with google.rpc details) -> the same shape
    http_status()     (gRPC code, ErrorInfo reason) -> HTTP status: the one table

A RetryInfo detail (a key's limit) becomes the answer's Retry-After header.

Everything ends up in `error_response`, which writes the error object JSON. The HTTP status
is decided here alone, from the code and the reason the server puts in ErrorInfo; the
server's own idea of an HTTP status (if it sends one) is not read.
"""

from __future__ import annotations

import logging
import uuid
from typing import Any

import grpc
from aiohttp import web
from google.rpc import error_details_pb2
from grpc_status import rpc_status

log = logging.getLogger("rest_bridge.errors")

ERROR_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    405: "invalid_request_error",
    408: "timeout_error",
    409: "conflict_error",
    413: "request_too_large",
    429: "rate_limit_error",
    503: "service_unavailable",
    504: "timeout_error",
    507: "insufficient_storage",
}

_C = grpc.StatusCode
ANY_REASON = ""
"""A row for a code whatever its reason (or with none): used when no (code, reason) row fits."""

HTTP_STATUS: dict[tuple[grpc.StatusCode, str], int] = {
    # Reasons the server sends, each under the code(s) it sends it with.
    (_C.INVALID_ARGUMENT, "INVALID_ARGUMENT"): 400,
    (_C.INVALID_ARGUMENT, "VIRTUAL_KEY_NOT_FOUND"): 400,
    (_C.RESOURCE_EXHAUSTED, "PAYLOAD_TOO_LARGE"): 413,
    (_C.UNAUTHENTICATED, "VIRTUAL_KEY_REQUIRED"): 401,
    (_C.UNAUTHENTICATED, "INVALID_TOKEN"): 401,
    (_C.PERMISSION_DENIED, "PERMISSION_DENIED"): 403,
    (_C.NOT_FOUND, "JOB_NOT_FOUND"): 404,
    (_C.NOT_FOUND, "OPERATION_TYPE_MISMATCH"): 404,
    (_C.UNAVAILABLE, "STORE_UNAVAILABLE"): 503,
    (_C.UNAVAILABLE, "STORE_FULL"): 507,
    (_C.RESOURCE_EXHAUSTED, "UPLOADS_BUSY"): 503,
    # An upload stream the server ended because the client sent nothing for too long.
    (_C.DEADLINE_EXCEEDED, "UPLOAD_IDLE"): 408,
    (_C.ABORTED, "JOB_CONFLICT"): 409,
    (_C.ABORTED, "JOB_FINISHED"): 409,
    (_C.ABORTED, "JOB_NOT_RETRYABLE"): 409,
    (_C.ALREADY_EXISTS, "IDEMPOTENCY_KEY_REUSED"): 409,
    (_C.RESOURCE_EXHAUSTED, "RATE_LIMITED"): 429,
    (_C.RESOURCE_EXHAUSTED, "TOO_MANY_JOBS_IN_FLIGHT"): 429,
    # Any other reason (or none), by code alone.
    (_C.INVALID_ARGUMENT, ANY_REASON): 400,
    (_C.OUT_OF_RANGE, ANY_REASON): 400,
    (_C.FAILED_PRECONDITION, ANY_REASON): 400,
    (_C.UNAUTHENTICATED, ANY_REASON): 401,
    (_C.PERMISSION_DENIED, ANY_REASON): 403,
    (_C.NOT_FOUND, ANY_REASON): 404,
    (_C.ALREADY_EXISTS, ANY_REASON): 409,
    (_C.ABORTED, ANY_REASON): 409,
    (_C.RESOURCE_EXHAUSTED, ANY_REASON): 429,
    (_C.UNIMPLEMENTED, ANY_REASON): 501,
    (_C.UNAVAILABLE, ANY_REASON): 503,
    # The server dropped the call before answering it (grpc cancels calls left queued too long
    # under overload): a retry may succeed (a submit safely with an Idempotency-Key).
    (_C.CANCELLED, ANY_REASON): 503,
    (_C.DEADLINE_EXCEEDED, ANY_REASON): 504,
}
"""(gRPC code, ErrorInfo reason) -> HTTP status. A code missing here (INTERNAL, UNKNOWN,
DATA_LOSS, ...) is a 500 whose text is not shown to the client."""

GENERIC_500 = "internal error; quote the event_id when reporting it"


def http_status(code: grpc.StatusCode, reason: str) -> int:
    return HTTP_STATUS.get((code, reason)) or HTTP_STATUS.get((code, ANY_REASON)) or 500


class BridgeError(Exception):
    def __init__(
        self,
        status: int,
        message: str,
        param: str = "",
        code: str = "",
        event_id: str = "",
        retry_after: int | None = None,
    ) -> None:
        super().__init__(message)
        self.status, self.message, self.param, self.code = status, message, param, code
        self.event_id = event_id or str(uuid.uuid4())
        self.retry_after = retry_after
        """Seconds for the Retry-After header (from the server's google.rpc RetryInfo)."""


class BodyReadTimeout(BridgeError, TimeoutError):
    """The client sent the body too slowly or stopped sending it (408).

    Also a TimeoutError: aiohttp's read of the unread rest after the answer then treats
    it as the timeout it is instead of logging it as an unhandled exception."""

    def __init__(self, message: str) -> None:
        super().__init__(408, message)


def _details(error: grpc.aio.AioRpcError) -> tuple[str, str, int | None]:
    """The ErrorInfo reason, the first BadRequest field ("" if absent) and the RetryInfo delay in
    whole seconds, rounded up (None if absent) of a failed call."""
    reason = param = ""
    retry_after: int | None = None
    try:
        rich = rpc_status.from_call(error)  # type: ignore[arg-type]
    except ValueError:  # a status message that disagrees with its details: ignore the details
        rich = None
    for detail in rich.details if rich is not None else ():
        if detail.Is(error_details_pb2.ErrorInfo.DESCRIPTOR):
            info = error_details_pb2.ErrorInfo()
            detail.Unpack(info)
            reason = info.reason
        elif detail.Is(error_details_pb2.BadRequest.DESCRIPTOR):
            bad = error_details_pb2.BadRequest()
            detail.Unpack(bad)
            if bad.field_violations and not param:
                param = bad.field_violations[0].field
        elif detail.Is(error_details_pb2.RetryInfo.DESCRIPTOR):
            retry = error_details_pb2.RetryInfo()
            detail.Unpack(retry)
            delay = retry.retry_delay
            retry_after = max(0, delay.seconds + (1 if delay.nanos > 0 else 0))
    return reason, param, retry_after


def from_rpc_error(error: grpc.aio.AioRpcError) -> BridgeError:
    """A failed gRPC call -> the REST error: status from (code, reason), the server's message."""
    code = error.code()
    reason, param, retry_after = _details(error)
    status = http_status(code, reason)
    message = error.details() or code.name.lower()
    if status == 500:
        # INTERNAL, UNKNOWN, DATA_LOSS: the text may be an exception's; it goes to the log only.
        failure = BridgeError(500, GENERIC_500)
        log.error("gRPC call failed (event_id=%s): %s %s", failure.event_id, code.name, error.details())
        return failure
    if code in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.CANCELLED) and not reason:
        message = "the asyncgate server is unavailable; try again"
    return BridgeError(status, message, param, reason.lower(), retry_after=retry_after)


def error_body(
    status: int,
    message: str,
    *,
    param: str = "",
    code: str = "",
    request_type: str = "",
    event_id: str = "",
) -> dict[str, Any]:
    event_id = event_id or str(uuid.uuid4())
    kind = ERROR_TYPES.get(status, "server_error")
    inner: dict[str, Any] = {"type": kind, "message": message, "event_id": event_id}
    if code:
        inner["code"] = code
    if param:
        inner["param"] = param
    return {
        "event_id": event_id,
        "type": kind,
        "is_bifrost_error": status >= 500,
        "status_code": status,
        "error": inner,
        "extra_fields": {"request_type": request_type} if request_type else {},
    }


def error_response(error: BridgeError, request_type: str = "") -> web.Response:
    body = error_body(
        error.status,
        error.message,
        param=error.param,
        code=error.code,
        request_type=request_type,
        event_id=error.event_id,
    )
    response = web.json_response(body, status=error.status)
    if error.retry_after is not None:
        response.headers["Retry-After"] = str(error.retry_after)
    return response
