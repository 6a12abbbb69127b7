"""The bridge's side of tracing (asyncgate.otel; no-ops while tracing is off): a span for each
HTTP request, continuing the client's W3C traceparent, and gRPC client interceptors that
carry the trace to the server in the call's metadata."""

from __future__ import annotations

from typing import Any

from aiohttp import web
from aiohttp.typedefs import Handler

from asyncgate import otel


def client_interceptors() -> list[Any]:
    traces = otel.provider()
    if traces is None:
        return []
    from opentelemetry.instrumentation.grpc import aio_client_interceptors, filters

    not_health = filters.negate(filters.health_check())  # each /health would start a trace
    return list(aio_client_interceptors(tracer_provider=traces, filter_=not_health))  # type: ignore[no-untyped-call]


UNTRACED_ROUTES = frozenset({"/health", "/metrics"})
"""Probes and scrapes, which would each start a trace of their own."""


@web.middleware
async def trace_requests(request: web.Request, handler: Handler) -> web.StreamResponse:
    resource = request.match_info.route.resource
    route = resource.canonical if resource is not None else "unmatched"
    if not otel.enabled() or route in UNTRACED_ROUTES:
        return await handler(request)
    attributes = {"http.request.method": request.method, "http.route": route}
    with otel.span(
        f"{request.method} {route}",
        kind="server",
        parent=otel.extract(request.headers),
        attributes=attributes,
    ) as span:
        status = 500
        try:
            response = await handler(request)
            status = response.status
            return response
        except web.HTTPException as exc:
            status = exc.status
            raise
        finally:
            if span is not None:
                span.set_attribute("http.response.status_code", status)
                if status >= 500:
                    otel.set_error(span, f"HTTP {status}")
