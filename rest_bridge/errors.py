"""Errors as the REST API answers them (CONTRACT section 6).

    BridgeError       an HTTP error raised by the bridge itself while reading a request
    from_rpc_error()  a gRPC status (with google.rpc details) -> the same shape

Both end up in `error_response`, which writes the error object JSON.
"""

from __future__ import annotations

import uuid
from typing import Any

import grpc
from aiohttp import web
from google.rpc import error_details_pb2
from grpc_status import rpc_status

ERROR_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    405: "invalid_request_error",
    413: "request_too_large",
    503: "service_unavailable",
    504: "timeout_error",
}

_CODE_TO_HTTP = {
    grpc.StatusCode.INVALID_ARGUMENT: 400,
    grpc.StatusCode.OUT_OF_RANGE: 400,
    grpc.StatusCode.FAILED_PRECONDITION: 400,
    grpc.StatusCode.UNAUTHENTICATED: 401,
    grpc.StatusCode.PERMISSION_DENIED: 403,
    grpc.StatusCode.NOT_FOUND: 404,
    grpc.StatusCode.RESOURCE_EXHAUSTED: 413,
    grpc.StatusCode.UNAVAILABLE: 503,
    grpc.StatusCode.DEADLINE_EXCEEDED: 504,
}


class BridgeError(Exception):
    def __init__(self, status: int, message: str, param: str = "", code: str = "") -> None:
        super().__init__(message)
        self.status, self.message, self.param, self.code = status, message, param, code


def from_rpc_error(error: grpc.aio.AioRpcError) -> BridgeError:
    """Map a gRPC failure to HTTP using the server's ErrorInfo, else its code."""
    status = _CODE_TO_HTTP.get(error.code(), 500)
    param = code = ""
    rich = rpc_status.from_call(error)  # type: ignore[arg-type]
    for detail in rich.details if rich is not None else ():
        if detail.Is(error_details_pb2.ErrorInfo.DESCRIPTOR):
            info = error_details_pb2.ErrorInfo()
            detail.Unpack(info)
            code = info.reason.lower()
            status = int(info.metadata.get("http_status", status))
        elif detail.Is(error_details_pb2.BadRequest.DESCRIPTOR):
            bad = error_details_pb2.BadRequest()
            detail.Unpack(bad)
            if bad.field_violations:
                param = bad.field_violations[0].field
    message = error.details() or error.code().name.lower()
    if error.code() == grpc.StatusCode.UNAVAILABLE and not code:
        message = "the asyncgate server is unavailable; try again"
    return BridgeError(status, message, param, code)


def error_body(
    status: int, message: str, *, param: str = "", code: str = "", request_type: str = ""
) -> dict[str, Any]:
    event_id = str(uuid.uuid4())
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
        error.status, error.message, param=error.param, code=error.code, request_type=request_type
    )
    return web.json_response(body, status=error.status)
