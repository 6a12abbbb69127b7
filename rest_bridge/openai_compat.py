"""OpenAI's synchronous images and embeddings API on the bridge, each request a durable job.

    POST /v1/images/edits              multipart, as POST /v1/async/images/edits takes it
    POST /v1/images/generations        JSON, as POST /v1/async/images/generations
    POST /v1/embeddings                JSON, as POST /v1/async/embeddings
    GET  /v1/images/edits/{job_id}     (and generations, embeddings): the answer the POST
                                       gives, for a job submitted before

So the OpenAI SDKs work unchanged with `base_url=<bridge>/v1`. A POST is submitted by the
async route's own handler (the same parsing, the same gRPC calls, the same TTL header),
then held open until the job is terminal (openai_compat_wait) and answered with the job's
result as OpenAI writes it: `{"created", "data": [...]}` for images, the embeddings list
(base64 when asked, as the SDKs ask by default) for embeddings, the same object the async
poll holds under `result`. The job id travels in `x-asyncgate-job-id`, on errors too once
the job exists, so a client whose connection dropped can pick the answer up later.
Errors are OpenAI's error object (openai_compat_errors).
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from typing import Any

import grpc
from aiohttp import web

from asyncgate.v1 import job_pb2 as job_pb
from rest_bridge.context import Handler, base_url, read_output
from rest_bridge.envelope import embedding_result, image_result
from rest_bridge.errors import BridgeError
from rest_bridge.openai_compat_errors import (
    JOB_ID_HEADER,
    OpenAIError,
    error_response,
    from_failed_job,
    from_failure,
)
from rest_bridge.openai_compat_wait import WAIT_TIMEOUT_HEADER, wait_for_job, wait_timeout
from rest_bridge.operations import OPERATIONS as ASYNC_OPERATIONS

log = logging.getLogger("rest_bridge.openai_compat")


@dataclass(frozen=True)
class Operation:
    path: str
    """The OpenAI path (the async one is /v1/async + the rest)."""
    submit: Handler
    """The async route's submit handler: answers 202 with {"id", "status", "created_at"}."""
    request_type: int

    @property
    def async_path(self) -> str:
        return "/v1/async" + self.path.removeprefix("/v1")


OPERATIONS = tuple(
    Operation("/v1" + op.path.removeprefix("/v1/async"), op.submit, op.request_type)
    for op in ASYNC_OPERATIONS
)
"""Every async operation, at OpenAI's own path (/v1/async/images/edits -> /v1/images/edits)."""


def submitted_job_id(accepted: web.StreamResponse) -> str:
    """The new job's id, from the async submit's 202 answer."""
    body = accepted.body if isinstance(accepted, web.Response) else None
    if not isinstance(body, bytes):
        raise TypeError(f"the async submit answered {type(accepted).__name__}, not a JSON body")
    job_id: str = json.loads(body)["id"]
    return job_id


async def result_body(request: web.Request, job: job_pb.Job) -> dict[str, Any]:
    """A completed job's result as OpenAI answers it (the async poll's `result`)."""

    async def read(job_id: str, stored: job_pb.StoredOutput) -> bytes:
        return await read_output(request, job_id, stored)

    kind = job.WhichOneof("result")
    if kind == "image_result":
        return await image_result(job, base_url(request), read)
    if kind == "embedding_result":
        return await embedding_result(job, read)
    raise RuntimeError(f"completed job {job.id} has no result ({kind})")


def not_finished(operation: Operation, job: job_pb.Job, timeout: float) -> OpenAIError:
    return OpenAIError(
        status=504,
        type="timeout_error",
        code="job_not_finished",
        message=(
            f"job {job.id} has not finished within the {timeout:g} s of {WAIT_TIMEOUT_HEADER}; "
            f"GET {operation.path}/{job.id} answers once it has (GET {operation.async_path}/{job.id} "
            "polls it without waiting)"
        ),
    )


async def answer(
    request: web.Request, operation: Operation, job_id: str, timeout: float | None, submitted: bool
) -> web.StreamResponse:
    """Wait for the job and answer its result or its error. `submitted`: the job was made by
    this request, so any error names it and asks the SDK not to send the request again."""
    try:
        job = await wait_for_job(request, job_id, operation.request_type, timeout)
        if job is None:
            log.info("client disconnected while waiting for job %s; the job runs on", job_id)
            return web.Response(status=499)  # never reaches anyone; aiohttp drops it quietly
        if job.status == job_pb.JOB_STATUS_FAILED:
            return error_response(from_failed_job(job), job_id, retry=False)
        if job.status != job_pb.JOB_STATUS_COMPLETED:
            assert timeout is not None  # wait_for_job returns a running job only past a timeout
            return error_response(not_finished(operation, job, timeout), job_id, retry=False)
        body = await result_body(request, job)
    except (BridgeError, grpc.aio.AioRpcError) as error:
        if submitted:
            return error_response(from_failure(error), job_id, retry=False)
        return error_response(from_failure(error))
    response = web.json_response(body)
    response.headers[JOB_ID_HEADER] = job_id
    return response


def submit_and_wait(operation: Operation) -> Handler:
    async def handler(request: web.Request) -> web.StreamResponse:
        try:
            timeout = wait_timeout(request)  # refused before a job exists
            job_id = submitted_job_id(await operation.submit(request))
        except (BridgeError, grpc.aio.AioRpcError) as error:
            return error_response(from_failure(error))  # no job: the SDK may retry as it sees fit
        return await answer(request, operation, job_id, timeout, submitted=True)

    return handler


def pick_up(operation: Operation) -> Handler:
    async def handler(request: web.Request) -> web.StreamResponse:
        try:
            timeout = wait_timeout(request)
        except BridgeError as error:
            return error_response(from_failure(error))
        return await answer(request, operation, request.match_info["job_id"], timeout, submitted=False)

    return handler


def add_openai_routes(app: web.Application) -> None:
    for operation in OPERATIONS:
        app.router.add_post(operation.path, submit_and_wait(operation))
        app.router.add_get(f"{operation.path}/{{job_id}}", pick_up(operation), allow_head=False)
