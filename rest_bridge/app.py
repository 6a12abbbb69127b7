"""create_app(config): the aiohttp application of the REST bridge."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable

import grpc
from aiohttp import web
from grpc_health.v1 import health_pb2_grpc

from asyncgate.v1 import job_service_pb2_grpc as pb_grpc
from rest_bridge import disposition
from rest_bridge.config import BridgeConfig
from rest_bridge.errors import BridgeError, error_response
from rest_bridge.routes import CONFIG, HEALTH, JOBS, add_routes


@web.middleware
async def http_errors_as_json(
    request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
) -> web.StreamResponse:
    """Unknown paths (404) and wrong methods (405) answer the error object too."""
    try:
        return await handler(request)
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        response = error_response(BridgeError(exc.status, exc.reason.lower()))
        if allow := exc.headers.get("Allow"):
            response.headers["Allow"] = allow
        return response


def create_app(config: BridgeConfig) -> web.Application:
    disposition.install()  # aiohttp's multipart reader parses with the bridge's cache
    app = web.Application(middlewares=[http_errors_as_json])
    app[CONFIG] = config

    async def grpc_channel(app: web.Application) -> AsyncIterator[None]:
        channel = grpc.aio.insecure_channel(config.grpc_target)
        app[JOBS] = pb_grpc.JobServiceStub(channel)
        app[HEALTH] = health_pb2_grpc.HealthStub(channel)
        yield
        await channel.close(grace=None)

    app.cleanup_ctx.append(grpc_channel)
    add_routes(app)
    return app
