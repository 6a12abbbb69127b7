"""The bridge's one map from a failed gRPC call to the REST error: (code, reason) -> HTTP."""

from __future__ import annotations

import logging

import grpc
import pytest
from google.protobuf import any_pb2
from google.rpc import error_details_pb2, status_pb2

from rest_bridge.errors import GENERIC_500, from_rpc_error, http_status

C = grpc.StatusCode

REASONS = [
    (C.INVALID_ARGUMENT, "INVALID_ARGUMENT", 400),
    (C.INVALID_ARGUMENT, "VIRTUAL_KEY_NOT_FOUND", 400),
    (C.RESOURCE_EXHAUSTED, "PAYLOAD_TOO_LARGE", 413),
    (C.UNAUTHENTICATED, "VIRTUAL_KEY_REQUIRED", 401),
    (C.PERMISSION_DENIED, "PERMISSION_DENIED", 403),
    (C.NOT_FOUND, "JOB_NOT_FOUND", 404),
    (C.NOT_FOUND, "OPERATION_TYPE_MISMATCH", 404),
    (C.UNAVAILABLE, "STORE_UNAVAILABLE", 503),
    (C.UNAVAILABLE, "STORE_FULL", 507),
    (C.RESOURCE_EXHAUSTED, "UPLOADS_BUSY", 503),
    (C.DEADLINE_EXCEEDED, "UPLOAD_IDLE", 408),
    (C.RESOURCE_EXHAUSTED, "", 429),
    (C.RESOURCE_EXHAUSTED, "SOMETHING_NEW", 429),
    (C.UNAVAILABLE, "", 503),
    (C.DEADLINE_EXCEEDED, "", 504),
    (C.INTERNAL, "INTERNAL", 500),
    (C.UNKNOWN, "", 500),
]


@pytest.mark.parametrize(("code", "reason", "status"), REASONS)
def test_status_from_code_and_reason(code: grpc.StatusCode, reason: str, status: int) -> None:
    assert http_status(code, reason) == status


def _failed_call(
    code: grpc.StatusCode,
    message: str,
    reason: str = "",
    metadata: dict[str, str] | None = None,
    param: str = "",
) -> grpc.aio.AioRpcError:
    details = []
    if reason:
        info = any_pb2.Any()
        info.Pack(error_details_pb2.ErrorInfo(reason=reason, domain="asyncgate", metadata=metadata or {}))
        details.append(info)
    if param:
        bad = any_pb2.Any()
        violation = error_details_pb2.BadRequest.FieldViolation(field=param, description=message)
        bad.Pack(error_details_pb2.BadRequest(field_violations=[violation]))
        details.append(bad)
    status = status_pb2.Status(code=code.value[0], message=message, details=details)
    trailing = grpc.aio.Metadata(("grpc-status-details-bin", status.SerializeToString()))
    return grpc.aio.AioRpcError(code, grpc.aio.Metadata(), trailing, details=message, debug_error_string="")


def test_the_servers_http_status_metadata_is_not_read() -> None:
    call = _failed_call(C.NOT_FOUND, "job not found", "JOB_NOT_FOUND", {"http_status": "418"})
    error = from_rpc_error(call)
    assert (error.status, error.code, error.message) == (404, "job_not_found", "job not found")


def test_the_field_and_the_reason_reach_the_error_object() -> None:
    error = from_rpc_error(
        _failed_call(C.RESOURCE_EXHAUSTED, "image too big", "PAYLOAD_TOO_LARGE", param="image")
    )
    assert (error.status, error.param, error.code) == (413, "image", "payload_too_large")


def test_store_full_is_507_with_the_servers_message() -> None:
    error = from_rpc_error(_failed_call(C.UNAVAILABLE, "the store is full", "STORE_FULL"))
    assert (error.status, error.message) == (507, "the store is full")


def test_an_internal_failure_shows_no_exception_text_and_logs_it_with_the_event_id(
    caplog: pytest.LogCaptureFixture,
) -> None:
    secret = "Unexpected <class 'ValueError'>: /srv/data/secret-path"
    with caplog.at_level(logging.ERROR, "rest_bridge"):
        error = from_rpc_error(_failed_call(C.UNKNOWN, secret))
    assert (error.status, error.message) == (500, GENERIC_500)
    assert secret not in error.message
    assert any(error.event_id in r.getMessage() and secret in r.getMessage() for r in caplog.records)


def test_an_unreachable_server_says_so() -> None:
    error = from_rpc_error(
        grpc.aio.AioRpcError(
            C.UNAVAILABLE, grpc.aio.Metadata(), grpc.aio.Metadata(), "x", debug_error_string=""
        )
    )
    assert error.status == 503 and "unavailable" in error.message
