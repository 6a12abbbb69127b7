"""create_app(config): the aiohttp application of the REST bridge.

Serve it with rest_bridge.serving.BridgeRunner (not a plain web.AppRunner): the runner adds
the connection-level protections (header and body timeouts, the connection cap, quiet logs
for malformed requests)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import grpc
from aiohttp import web
from grpc_health.v1 import health_pb2_grpc

from asyncgate.v1 import job_service_pb2_grpc as pb_grpc
from rest_bridge import disposition
from rest_bridge.config import BridgeConfig
from rest_bridge.console import add_console_routes
from rest_bridge.context import CONFIG, HEALTH, JOBS, ORIGINS, RENDERS
from rest_bridge.metrics import add_metrics_route, count_requests
from rest_bridge.middleware import error_objects
from rest_bridge.openai_compat import add_openai_routes
from rest_bridge.openapi import add_doc_routes
from rest_bridge.params import checked_params
from rest_bridge.render_cache import RenderCache
from rest_bridge.routes import add_routes
from rest_bridge.tracing import client_interceptors, trace_requests
from rest_bridge.webhook_routes import add_webhook_routes


def create_app(config: BridgeConfig) -> web.Application:
    disposition.install()  # aiohttp's multipart reader parses with the bridge's cache
    app = web.Application(middlewares=[trace_requests, count_requests, error_objects, checked_params])
    app[CONFIG] = config
    app[RENDERS] = RenderCache()
    app[ORIGINS] = {}

    async def grpc_channel(app: web.Application) -> AsyncIterator[None]:
        channel = grpc.aio.insecure_channel(config.grpc_target, interceptors=client_interceptors())
        app[JOBS] = pb_grpc.JobServiceStub(channel)
        app[HEALTH] = health_pb2_grpc.HealthStub(channel)
        yield
        await channel.close(grace=None)

    app.cleanup_ctx.append(grpc_channel)
    add_routes(app)
    add_openai_routes(app)  # /v1/images/..., /v1/embeddings: held until the job ends
    add_doc_routes(app)
    add_metrics_route(app)
    add_console_routes(app)  # /console: the web console (docs/clients.md)
    add_webhook_routes(app)  # /v1/async/webhooks/{name}/deliveries: admins only
    return app
