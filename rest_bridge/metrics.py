"""The bridge's Prometheus metrics: HTTP requests by route and status, served at `/metrics`.

    app = web.Application(middlewares=[count_requests, ...])   # outermost: sees final statuses
    add_metrics_route(app)

The route label is the route's pattern (`/v1/async/jobs/{job_id}`), never the raw path, so
ids do not multiply the series; a request no route matched is `unmatched`. A process that
also runs the server (`python -m asyncgate`) adds the server's metrics with
add_metrics_source(), so one scrape of the bridge shows both.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Awaitable, Callable

from aiohttp import web
from aiohttp.typedefs import Handler
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Histogram, generate_latest

REGISTRY = CollectorRegistry(auto_describe=True)

HTTP_REQUESTS = Histogram(
    "asyncgate_http_request_seconds",
    "REST bridge requests and their duration until the answer's headers, by method, route and status.",
    ["method", "route", "status"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300),
    registry=REGISTRY,
)
HTTP_REQUEST_BYTES = Counter(
    "asyncgate_http_request_body_bytes",
    "Bytes of request bodies the bridge read (uploads), by route.",
    ["route"],
    registry=REGISTRY,
)

MetricsSource = Callable[[], Awaitable[bytes]]
METRICS_SOURCES = web.AppKey("metrics_sources", list[MetricsSource])


def _route(request: web.Request) -> str:
    resource = request.match_info.route.resource
    return resource.canonical if resource is not None else "unmatched"


@functools.cache
def _requests(method: str, route: str, status: int) -> Histogram:
    """HTTP_REQUESTS' child for these labels, looked up once: labels() costs several times what
    observe() does."""
    return HTTP_REQUESTS.labels(method, route, str(status))


@web.middleware
async def count_requests(request: web.Request, handler: Handler) -> web.StreamResponse:
    started = time.perf_counter()
    status = 500  # an exception nothing turned into an answer
    try:
        response = await handler(request)
        status = response.status
        return response
    except web.HTTPException as exc:
        status = exc.status
        raise
    finally:
        route = _route(request)
        _requests(request.method, route, status).observe(time.perf_counter() - started)
        if request.body_exists:
            HTTP_REQUEST_BYTES.labels(route).inc(request.content.total_bytes)


def add_metrics_source(app: web.Application, source: MetricsSource) -> None:
    """Append another registry's text (the in-process server's) to this app's /metrics."""
    app[METRICS_SOURCES].append(source)


def add_metrics_route(app: web.Application) -> None:
    app[METRICS_SOURCES] = []

    async def metrics(request: web.Request) -> web.StreamResponse:
        body = generate_latest(REGISTRY)
        for source in request.app[METRICS_SOURCES]:
            body += await source()
        return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})

    app.router.add_get("/metrics", metrics, allow_head=False)
