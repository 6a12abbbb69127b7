"""The REST routes: HTTP in, proto out; proto in, HTTP out. No business rules."""

from __future__ import annotations

import grpc
from aiohttp import web
from grpc_health.v1 import health_pb2

from asyncgate.v1 import job_service_pb2 as pb
from rest_bridge.context import CONFIG as CONFIG
from rest_bridge.context import HEALTH as HEALTH
from rest_bridge.context import JOBS as JOBS
from rest_bridge.context import Handler, forwarded_metadata
from rest_bridge.errors import BridgeError
from rest_bridge.jobs_params import preferred_wait
from rest_bridge.jobs_routes import add_job_routes, job_answer, submitted, wait_for
from rest_bridge.operations import OPERATIONS, RestOperation


def poll(operation: RestOperation) -> Handler:
    async def get_job(request: web.Request) -> web.StreamResponse:
        config = request.app[CONFIG]
        wanted = operation.request_type
        response = await request.app[JOBS].GetJob(
            pb.GetJobRequest(id=request.match_info["job_id"], request_type=wanted),  # type: ignore[arg-type]
            metadata=forwarded_metadata(request),
            timeout=config.grpc_timeout_seconds,
        )
        wait = preferred_wait(request)
        job = await wait_for(request, response.job, wait)
        return await job_answer(request, job, wait, extended=False)

    return get_job


async def read_file(request: web.Request) -> web.StreamResponse:
    try:
        index = int(request.match_info["index"])
    except ValueError:
        raise BridgeError(404, "not found") from None
    stream = request.app[JOBS].ReadJobOutput(
        pb.ReadJobOutputRequest(
            job_id=request.match_info["job_id"], index=index, access_token=request.query.get("token", "")
        ),
        metadata=forwarded_metadata(request),
        timeout=request.app[CONFIG].grpc_timeout_seconds,
    )
    messages = aiter(stream)
    try:
        first = await anext(messages)  # errors surface here, before any byte is sent
    except StopAsyncIteration:
        raise BridgeError(404, "not found") from None  # an empty output: nothing to serve
    response = web.StreamResponse(
        headers={"Content-Type": first.content_type, "Cache-Control": "private, max-age=300"}
    )
    response.content_length = first.size_bytes
    await response.prepare(request)
    await response.write(first.chunk)
    async for message in messages:
        await response.write(message.chunk)
    await response.write_eof()
    return response


async def health(request: web.Request) -> web.StreamResponse:
    try:
        reply = await request.app[HEALTH].Check(health_pb2.HealthCheckRequest(service=""), timeout=2)
        serving = reply.status == health_pb2.HealthCheckResponse.SERVING
    except grpc.aio.AioRpcError:
        serving = False
    return web.json_response({"status": "ok" if serving else "unavailable"}, status=200 if serving else 503)


def add_routes(app: web.Application) -> None:
    for operation in OPERATIONS:
        app.router.add_post(operation.path, submitted(operation.submit), name=operation.name)
        app.router.add_get(
            f"{operation.path}/{{job_id}}", poll(operation), name=f"{operation.name}_poll", allow_head=False
        )
    app.router.add_get("/v1/async/files/{job_id}/{index}", read_file, allow_head=False)
    app.router.add_get("/health", health, allow_head=False)
    add_job_routes(app)
