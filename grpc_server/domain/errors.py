"""Errors the server refuses callers with: pure values, no transport.

    AsyncGateError                 base: a stable reason (for ErrorInfo), a message, the field
    +-- InvalidArgument            the request breaks a rule; names the offending field
    |   +-- VirtualKeyNotFound     an unknown virtual key was presented
    +-- PayloadTooLarge            a file, body or input over its limit (names the field)
    +-- Unauthenticated            no virtual key where one is required
    |   +-- InvalidToken           a bearer JWT that does not verify (or names no known key)
    +-- PermissionDenied           the key may not use the model; an altered capability
    +-- NotFound                   no such job, expired, or another key's job
    |   +-- OperationTypeMismatch  a readable job asked for as another operation
    +-- Busy                       a shared budget is exhausted right now; try again
    +-- IdleTimeout                the caller stopped sending mid-request
    +-- Unavailable                the store cannot be reached; try again
    |   +-- StorageFull            the store cannot write (disk full); try again later
    +-- Conflict                   the job's state does not allow the request
    |   +-- JobFinished            cancel of a job that has already ended
    |   +-- JobNotRetryable        retry of a job that is not failed or cancelled
    +-- IdempotencyKeyReused       a request id already names another request's job
    +-- RateLimited                the key's submits_per_minute is used up; retry after a delay
        +-- TooManyJobsInFlight    the key has max_jobs_in_flight jobs pending or processing

Each boundary maps these once: grpc_server.errors to gRPC statuses with google.rpc
details, the REST bridge from those to HTTP.
"""

from __future__ import annotations


class AsyncGateError(Exception):
    reason = "INTERNAL"

    def __init__(self, message: str, param: str = "") -> None:
        super().__init__(message)
        self.message = message
        self.param = param


class InvalidArgument(AsyncGateError):
    reason = "INVALID_ARGUMENT"


class VirtualKeyNotFound(InvalidArgument):
    reason = "VIRTUAL_KEY_NOT_FOUND"

    def __init__(self) -> None:
        super().__init__("virtual key not found")


class PayloadTooLarge(AsyncGateError):
    reason = "PAYLOAD_TOO_LARGE"


class Unauthenticated(AsyncGateError):
    reason = "VIRTUAL_KEY_REQUIRED"


class InvalidToken(Unauthenticated):
    reason = "INVALID_TOKEN"


class PermissionDenied(AsyncGateError):
    reason = "PERMISSION_DENIED"


class NotFound(AsyncGateError):
    reason = "JOB_NOT_FOUND"


class OperationTypeMismatch(NotFound):
    reason = "OPERATION_TYPE_MISMATCH"

    def __init__(self) -> None:
        super().__init__("operation type mismatch")


class Busy(AsyncGateError):
    reason = "UPLOADS_BUSY"


class IdleTimeout(AsyncGateError):
    reason = "UPLOAD_IDLE"


class Unavailable(AsyncGateError):
    reason = "STORE_UNAVAILABLE"


class StorageFull(Unavailable):
    reason = "STORE_FULL"


class Conflict(AsyncGateError):
    """The job's state does not allow the request (cancel of a finished job, retry of one that
    has not failed): ABORTED, which the REST bridge answers 409."""

    reason = "JOB_CONFLICT"


class JobFinished(Conflict):
    reason = "JOB_FINISHED"

    def __init__(self, status: str) -> None:
        super().__init__(f"the job has already ended ({status}): it cannot be cancelled")


class JobNotRetryable(Conflict):
    reason = "JOB_NOT_RETRYABLE"

    def __init__(self, status: str) -> None:
        super().__init__(f"only a failed or cancelled job can be retried; this one is {status}")


class IdempotencyKeyReused(AsyncGateError):
    """The request id names a job that another request made: ALREADY_EXISTS (REST 409)."""

    reason = "IDEMPOTENCY_KEY_REUSED"

    def __init__(self, param: str) -> None:
        super().__init__(
            "this idempotency key was used for a different request within the last 24 hours", param
        )


class RateLimited(AsyncGateError):
    """A virtual key's limit refuses the submit before any job exists: RESOURCE_EXHAUSTED with
    RetryInfo (REST 429 with Retry-After)."""

    reason = "RATE_LIMITED"

    def __init__(self, message: str, retry_after_seconds: int) -> None:
        super().__init__(message)
        self.retry_after_seconds = retry_after_seconds


class TooManyJobsInFlight(RateLimited):
    reason = "TOO_MANY_JOBS_IN_FLIGHT"
