"""The two error maps agree: every refusal the server can send, as (gRPC code, reason), has its
own row in the bridge's table, so no server error reaches a REST client by a fallback guess."""

from __future__ import annotations

import grpc
import pytest

from grpc_server.domain import errors as domain
from grpc_server.errors import grpc_code
from rest_bridge.errors import HTTP_STATUS, http_status


def _all_errors(cls: type[domain.AsyncGateError]) -> list[type[domain.AsyncGateError]]:
    return [cls, *(sub for child in cls.__subclasses__() for sub in _all_errors(child))]


SERVER_ERRORS = [cls for cls in _all_errors(domain.AsyncGateError) if cls is not domain.AsyncGateError]


@pytest.mark.parametrize("cls", SERVER_ERRORS, ids=lambda cls: cls.__name__)
def test_every_server_refusal_has_its_own_row_in_the_bridge(cls: type[domain.AsyncGateError]) -> None:
    error = cls.__new__(cls)  # no message needed: the code and reason are the class's
    assert (grpc_code(error), cls.reason) in HTTP_STATUS


def test_the_statuses_clients_depend_on() -> None:
    status = {cls.__name__: HTTP_STATUS[(grpc_code(cls.__new__(cls)), cls.reason)] for cls in SERVER_ERRORS}
    assert status == {
        "InvalidArgument": 400,
        "VirtualKeyNotFound": 400,
        "PayloadTooLarge": 413,
        "Unauthenticated": 401,
        "InvalidToken": 401,
        "PermissionDenied": 403,
        "NotFound": 404,
        "OperationTypeMismatch": 404,
        "Busy": 503,
        "IdleTimeout": 408,
        "Unavailable": 503,
        "StorageFull": 507,
        "Conflict": 409,
        "JobFinished": 409,
        "JobNotRetryable": 409,
        "IdempotencyKeyReused": 409,
        "RateLimited": 429,
        "TooManyJobsInFlight": 429,
    }


def test_a_call_the_server_dropped_unanswered_is_a_503_to_retry() -> None:
    """grpc cancels calls left queued too long under overload: a retry may succeed; not a 500."""
    assert http_status(grpc.StatusCode.CANCELLED, "") == 503
    assert http_status(grpc.StatusCode.INTERNAL, "") == 500
