"""What every route reads from the application and the request: the gRPC stubs, the settings,
the caller's key headers as gRPC metadata, the job options of a submit."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from aiohttp import web
from grpc_health.v1 import health_pb2_grpc

from asyncgate.v1 import job_pb2 as job_pb
from asyncgate.v1 import job_service_pb2 as pb
from rest_bridge.config import CONFIG as CONFIG
from rest_bridge.envelope import accepted
from rest_bridge.errors import BridgeError
from rest_bridge.jobs_params import with_submit_headers
from rest_bridge.origin import result_origin
from rest_bridge.render_cache import RenderCache
from rest_bridge.ttl import TTL_HEADER, parse_ttl_header

if TYPE_CHECKING:  # the async stub type exists only in the generated .pyi
    from asyncgate.v1.job_service_pb2_grpc import JobServiceAsyncStub

JOBS: web.AppKey[JobServiceAsyncStub] = web.AppKey("jobs")
HEALTH = web.AppKey("health", health_pb2_grpc.HealthStub)  # untyped: grpcio-health ships no stubs
RENDERS = web.AppKey("renders", RenderCache)
ORIGINS = web.AppKey("origins", dict[tuple[str, str], str])
"""Result origins by (scheme, Host header): base_url's work, done once per Host (create_app
sets it to {})."""
MAX_ORIGINS = 64
"""Origins kept at most (Hosts are the client's to choose; past this, computed every time)."""

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


WEBHOOK_HEADER = "x-bf-async-webhook"


def job_options(request: web.Request) -> pb.JobOptions:
    """The options of a new job from the submit's headers: the result TTL, the idempotency key
    (`Idempotency-Key`), the labels (`x-asyncgate-labels`) and the webhook endpoint's name
    (`x-bf-async-webhook`)."""
    options = pb.JobOptions()
    if (ttl := parse_ttl_header(request.headers.get(TTL_HEADER))) is not None:
        options.result_ttl_seconds = ttl
    options.webhook = request.headers.get(WEBHOOK_HEADER, "").strip()  # checked by the server
    return with_submit_headers(options, request)


async def read_output(request: web.Request, job_id: str, stored: job_pb.StoredOutput) -> bytes:
    """A stored output's bytes (a b64_json image, an embedding's vectors), read from the server."""
    stream = request.app[JOBS].ReadJobOutput(
        pb.ReadJobOutputRequest(job_id=job_id, index=stored.index, access_token=stored.access_token),
        timeout=request.app[CONFIG].grpc_timeout_seconds,
    )
    return b"".join([message.chunk async for message in stream])


def base_url(request: web.Request) -> str:
    """Where result image URLs point (rest_bridge.origin: public URL, else an allowed Host). It
    depends on the request's scheme and Host alone (aiohttp builds request.url from them)."""
    origins = request.app[ORIGINS]
    key = (request.scheme, request.host)
    origin = origins.get(key)
    if origin is None:
        origin = result_origin(request, request.app[CONFIG])  # raises for a Host not allowed: never kept
        if len(origins) < MAX_ORIGINS:
            origins[key] = origin
    return origin


REPLAYED_HEADER = "Idempotent-Replayed"
REPLAYED_METADATA = ("idempotent-replayed", "true")
"""The server's trailing metadata on a create that returned the job an earlier request made."""


def accepted_response(job: job_pb.Job, replayed: bool = False) -> web.Response:
    response = web.json_response(accepted(job), status=202)
    if replayed:
        response.headers[REPLAYED_HEADER] = "true"
    return response


async def was_replayed(call: Any) -> bool:
    """Whether a finished create call returned an earlier request's job (an idempotency replay)."""
    return REPLAYED_METADATA in tuple(await call.trailing_metadata() or ())


async def created_response(call: Any) -> web.Response:
    """The 202 of a unary create call, marked Idempotent-Replayed when it was one."""
    reply = await call
    return accepted_response(reply.job, await was_replayed(call))
