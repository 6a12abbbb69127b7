"""Errors of the OpenAI-compatible routes, as OpenAI writes them.

    {"error": {"message": ..., "type": ..., "param": ... | null, "code": ... | null,
               "event_id": ...}}

with the HTTP status the OpenAI SDKs turn into their exception classes (400
BadRequestError, 401 AuthenticationError, 403 PermissionDeniedError, 404 NotFoundError,
429 RateLimitError, 5xx InternalServerError). A refusal at submit takes its status from
the bridge's one table (rest_bridge.errors); a job that failed takes its own status_code.
`event_id` is asyncgate's addition: the id to quote when reporting a 500.

Once a job exists, every answer names it in `x-asyncgate-job-id`, and an error then also
says `x-should-retry: false`: the SDKs would otherwise retry a 5xx or a 429 by sending the
request again, which makes a second job (and the first one's failure already came after
the server's own retries and fallbacks).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import grpc
from aiohttp import web

from asyncgate.v1 import job_pb2 as job_pb
from rest_bridge.errors import ERROR_TYPES, BridgeError, from_rpc_error
from rest_bridge.middleware import CLOSE_AFTER

JOB_ID_HEADER = "x-asyncgate-job-id"
SHOULD_RETRY_HEADER = "x-should-retry"
"""Read by the OpenAI SDKs (Python, Node) before their own retry rules."""


@dataclass(frozen=True)
class OpenAIError:
    status: int
    message: str
    type: str
    param: str = ""
    code: str = ""
    event_id: str = ""
    retry_after: int | None = None
    """Seconds, from the server's RetryInfo (a key's limit): sent as Retry-After."""

    def body(self) -> dict[str, Any]:
        return {
            "error": {
                "message": self.message,
                "type": self.type,
                "param": self.param or None,
                "code": self.code or None,
                "event_id": self.event_id,
            }
        }


def from_bridge_error(error: BridgeError) -> OpenAIError:
    return OpenAIError(
        status=error.status,
        message=error.message,
        type=ERROR_TYPES.get(error.status, "server_error"),
        param=error.param,
        code=error.code,
        event_id=error.event_id,
        retry_after=error.retry_after,
    )


def from_failure(error: BridgeError | grpc.aio.AioRpcError) -> OpenAIError:
    """A refusal by the bridge, or a failed gRPC call (through the bridge's one table)."""
    return from_bridge_error(from_rpc_error(error) if isinstance(error, grpc.aio.AioRpcError) else error)


def from_failed_job(job: job_pb.Job) -> OpenAIError:
    """A failed job's error, under the job's status_code (500 when it has none)."""
    failure = job.error
    status = job.status_code if 400 <= job.status_code <= 599 else 500
    return OpenAIError(
        status=status,
        message=failure.error.message or "the job failed",
        type=failure.error.type or failure.type or ERROR_TYPES.get(status, "server_error"),
        param=failure.error.param,
        code=failure.error.code,
        event_id=failure.event_id,
    )


def error_response(error: OpenAIError, job_id: str = "", retry: bool = True) -> web.Response:
    """The error answer. With a job id, the header names it; `retry=False` asks the SDKs
    not to send the request again."""
    response = web.json_response(error.body(), status=error.status)
    if job_id:
        response.headers[JOB_ID_HEADER] = job_id
    if not retry:
        response.headers[SHOULD_RETRY_HEADER] = "false"
    if error.retry_after is not None:
        response.headers["Retry-After"] = str(error.retry_after)
    if error.status in CLOSE_AFTER:
        response.force_close()  # the unread rest of the body is not worth reading
    return response
