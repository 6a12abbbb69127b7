"""The REST routes: HTTP in, proto out; proto in, HTTP out. No business rules."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING

import grpc
from aiohttp import web
from grpc_health.v1 import health_pb2, health_pb2_grpc

from asyncgate.v1 import job_pb2 as job_pb
from asyncgate.v1 import job_service_pb2 as pb
from rest_bridge.config import BridgeConfig
from rest_bridge.envelope import TERMINAL, accepted, envelope
from rest_bridge.errors import BridgeError
from rest_bridge.json_body import embedding_request, image_generation_request, read_json_object
from rest_bridge.multipart import UnaryRequest, forward_form, open_form
from rest_bridge.origin import result_origin
from rest_bridge.ttl import TTL_HEADER, parse_ttl_header

if TYPE_CHECKING:  # the async stub type exists only in the generated .pyi
    from asyncgate.v1.job_service_pb2_grpc import JobServiceAsyncStub

CONFIG = web.AppKey("config", BridgeConfig)
JOBS: web.AppKey[JobServiceAsyncStub] = web.AppKey("jobs")
HEALTH = web.AppKey("health", health_pb2_grpc.HealthStub)  # untyped: grpcio-health ships no stubs

# Headers that may carry a virtual key; the server decides what they mean.
KEY_HEADERS = ("x-bf-vk", "authorization", "x-api-key", "x-goog-api-key")

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
Metadata = tuple[tuple[str, str], ...]


def forwarded_metadata(request: web.Request) -> Metadata:
    metadata = []
    for header in KEY_HEADERS:
        value = request.headers.get(header)
        if value is None:
            continue
        if not value.isascii() or not value.isprintable():
            raise BridgeError(400, f"invalid {header} header: only printable ASCII is allowed", header)
        metadata.append((header, value))
    return tuple(metadata)


async def _read_output(request: web.Request, job_id: str, stored: job_pb.StoredOutput) -> bytes:
    stream = request.app[JOBS].ReadJobOutput(
        pb.ReadJobOutputRequest(job_id=job_id, index=stored.index, access_token=stored.access_token),
        timeout=request.app[CONFIG].grpc_timeout_seconds,
    )
    return b"".join([message.chunk async for message in stream])


def base_url(request: web.Request) -> str:
    """Where result image URLs point (rest_bridge.origin: public URL, else an allowed Host)."""
    return result_origin(request, request.app[CONFIG])


async def submit_image_edit(request: web.Request) -> web.StreamResponse:
    config = request.app[CONFIG]
    metadata = forwarded_metadata(request)
    options = _ttl_options(request)
    reader = await open_form(request, config)
    if request.content_length is not None and request.content_length <= config.unary_max_body_bytes:
        unary = UnaryRequest()
        await forward_form(reader, config, unary.send, options)
        created = await request.app[JOBS].CreateImageEditJob(
            unary.build(), metadata=metadata, timeout=config.grpc_timeout_seconds
        )
        return web.json_response(accepted(created.job), status=202)
    call = request.app[JOBS].UploadImageEditJob(None, metadata=metadata, timeout=config.grpc_timeout_seconds)

    async def send(message: pb.UploadImageEditJobRequest) -> None:
        try:
            await call.write(message)
        except (asyncio.InvalidStateError, grpc.aio.AioRpcError):
            # The server ended the call while we still wrote: a refusal mid-upload that it
            # stopped reading (past grpc_server.service.REFUSED_UPLOAD_DRAIN_BYTES). The failed
            # write only says "Internal error from Core"; the call has the real status, unless
            # grpc.aio overwrote it with that (grpc/grpc#36066).
            await call
            raise

    try:
        await forward_form(reader, config, send, options)
        await call.done_writing()
        response: pb.UploadImageEditJobResponse = await call
    except BaseException:
        call.cancel()
        raise
    return web.json_response(accepted(response.job), status=202)


def _ttl_options(request: web.Request) -> pb.JobOptions:
    options = pb.JobOptions()
    if (ttl := parse_ttl_header(request.headers.get(TTL_HEADER))) is not None:
        options.result_ttl_seconds = ttl
    return options


async def submit_image_generation(request: web.Request) -> web.StreamResponse:
    config = request.app[CONFIG]
    metadata = forwarded_metadata(request)
    body = await read_json_object(request, config)
    create = pb.CreateImageGenerationJobRequest(
        request=image_generation_request(body), options=_ttl_options(request)
    )
    created = await request.app[JOBS].CreateImageGenerationJob(
        create, metadata=metadata, timeout=config.grpc_timeout_seconds
    )
    return web.json_response(accepted(created.job), status=202)


async def submit_embedding(request: web.Request) -> web.StreamResponse:
    config = request.app[CONFIG]
    metadata = forwarded_metadata(request)
    body = await read_json_object(request, config)
    create = pb.CreateEmbeddingJobRequest(request=embedding_request(body), options=_ttl_options(request))
    created = await request.app[JOBS].CreateEmbeddingJob(
        create, metadata=metadata, timeout=config.grpc_timeout_seconds
    )
    return web.json_response(accepted(created.job), status=202)


def poll(request_type: int, name: str) -> Handler:
    async def get_job(request: web.Request) -> web.StreamResponse:
        config = request.app[CONFIG]
        response = await request.app[JOBS].GetJob(
            pb.GetJobRequest(id=request.match_info["job_id"], request_type=request_type),  # type: ignore[arg-type]
            metadata=forwarded_metadata(request),
            timeout=config.grpc_timeout_seconds,
        )
        job = response.job
        body = await envelope(
            job, base_url(request), lambda job_id, stored: _read_output(request, job_id, stored)
        )
        return web.json_response(body, status=200 if job.status in TERMINAL else 202)

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
    app.router.add_post("/v1/async/images/edits", submit_image_edit)
    app.router.add_get(
        "/v1/async/images/edits/{job_id}",
        poll(job_pb.REQUEST_TYPE_IMAGE_EDIT, "image_edit"),
        allow_head=False,
    )
    app.router.add_post("/v1/async/images/generations", submit_image_generation)
    app.router.add_get(
        "/v1/async/images/generations/{job_id}",
        poll(job_pb.REQUEST_TYPE_IMAGE_GENERATION, "image_generation"),
        allow_head=False,
    )
    app.router.add_post("/v1/async/embeddings", submit_embedding)
    app.router.add_get(
        "/v1/async/embeddings/{job_id}", poll(job_pb.REQUEST_TYPE_EMBEDDING, "embedding"), allow_head=False
    )
    app.router.add_get("/v1/async/files/{job_id}/{index}", read_file, allow_head=False)
    app.router.add_get("/health", health, allow_head=False)
