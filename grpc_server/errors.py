"""Errors the server raises to callers, and their mapping to gRPC statuses.

    AsyncGateError                 base: a reason (stable, for ErrorInfo) and an HTTP status
    +-- InvalidArgument            400, names the offending field (BadRequest violation)
    |   +-- VirtualKeyNotFound     400, an unknown virtual key was presented
    +-- PayloadTooLarge            413, a file or body over its limit (names the field)
    +-- Unauthenticated            401, no virtual key where one is required
    +-- PermissionDenied           403, key may not use the model; altered capability
    +-- NotFound                   404, no such job, expired, or another key's job
    |   +-- OperationTypeMismatch  404, a readable job polled as another operation
    +-- Unavailable                503, the store cannot be reached; try again

The REST bridge maps these back to HTTP from the gRPC code and ErrorInfo reason.
"""

from __future__ import annotations

import grpc
from google.protobuf import any_pb2
from google.rpc import error_details_pb2, status_pb2
from grpc_status import rpc_status

ERROR_DOMAIN = "asyncgate"


class AsyncGateError(Exception):
    reason = "INTERNAL"
    http_status = 500
    grpc_code = grpc.StatusCode.INTERNAL

    def __init__(self, message: str, param: str = "") -> None:
        super().__init__(message)
        self.message = message
        self.param = param


class InvalidArgument(AsyncGateError):
    reason = "INVALID_ARGUMENT"
    http_status = 400
    grpc_code = grpc.StatusCode.INVALID_ARGUMENT


class VirtualKeyNotFound(InvalidArgument):
    reason = "VIRTUAL_KEY_NOT_FOUND"

    def __init__(self) -> None:
        super().__init__("virtual key not found")


class PayloadTooLarge(AsyncGateError):
    reason = "PAYLOAD_TOO_LARGE"
    http_status = 413
    grpc_code = grpc.StatusCode.RESOURCE_EXHAUSTED


class Unauthenticated(AsyncGateError):
    reason = "VIRTUAL_KEY_REQUIRED"
    http_status = 401
    grpc_code = grpc.StatusCode.UNAUTHENTICATED


class PermissionDenied(AsyncGateError):
    reason = "PERMISSION_DENIED"
    http_status = 403
    grpc_code = grpc.StatusCode.PERMISSION_DENIED


class NotFound(AsyncGateError):
    reason = "JOB_NOT_FOUND"
    http_status = 404
    grpc_code = grpc.StatusCode.NOT_FOUND


class OperationTypeMismatch(NotFound):
    reason = "OPERATION_TYPE_MISMATCH"

    def __init__(self) -> None:
        super().__init__("operation type mismatch")


class Unavailable(AsyncGateError):
    reason = "STORE_UNAVAILABLE"
    http_status = 503
    grpc_code = grpc.StatusCode.UNAVAILABLE


def _pack(message: object) -> any_pb2.Any:
    packed = any_pb2.Any()
    packed.Pack(message)  # type: ignore[arg-type]
    return packed


def to_rpc_status(error: AsyncGateError) -> grpc.Status:
    """The gRPC status for an error, with ErrorInfo and (for a field) BadRequest details."""
    details = [
        _pack(
            error_details_pb2.ErrorInfo(
                reason=error.reason,
                domain=ERROR_DOMAIN,
                metadata={"http_status": str(error.http_status)},
            )
        )
    ]
    if error.param:
        violation = error_details_pb2.BadRequest.FieldViolation(field=error.param, description=error.message)
        details.append(_pack(error_details_pb2.BadRequest(field_violations=[violation])))
    status = status_pb2.Status(code=error.grpc_code.value[0], message=error.message, details=details)
    return rpc_status.to_status(status)
