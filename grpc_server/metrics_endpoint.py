"""The server's `/metrics` (Prometheus text format), on its own port (`metrics_port`).

A scrape renders the process's counters and histograms (grpc_server.metrics) plus gauges
read at that moment: the queue from the shared store (the same on every replica), and
this replica's running jobs. While the store cannot answer, asyncgate_store_up is 0 and
the store's gauges are left out rather than reported as zeros.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Gauge, generate_latest

from grpc_server.config import ServerConfig
from grpc_server.dispatch.worker import Dispatcher
from grpc_server.metrics import REGISTRY
from grpc_server.store.base import JobStore, StoreUnavailable


class ServerMetrics:
    """Renders the server's metrics; serves them when `metrics_port` is set."""

    def __init__(self, config: ServerConfig, clock: Callable[[], datetime]) -> None:
        self._config = config
        self._clock = clock
        self._store: JobStore | None = None
        self._dispatcher: Dispatcher | None = None
        self._runner: web.AppRunner | None = None
        self.port: int | None = None
        """The port `/metrics` is served on once started; None when metrics_port is unset."""
        self.serving = False
        """What gRPC health reports (the server sets it): SERVING or not."""

    async def start(self, store: JobStore, dispatcher: Dispatcher) -> None:
        self._store, self._dispatcher = store, dispatcher
        if self._config.metrics_port is None:
            return
        app = web.Application()
        app.router.add_get("/metrics", self._handle)
        self._runner = web.AppRunner(app, access_log=None, handle_signals=False)
        await self._runner.setup()
        await web.TCPSite(self._runner, self._config.host, self._config.metrics_port).start()
        self.port = self._runner.addresses[0][1]

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def _handle(self, _: web.Request) -> web.Response:
        return web.Response(body=await self.render(), headers={"Content-Type": CONTENT_TYPE_LATEST})

    async def render(self) -> bytes:
        """The text a scrape returns: counters and histograms, then gauges read now."""
        return generate_latest(REGISTRY) + generate_latest(await self._gauges())

    async def _gauges(self) -> CollectorRegistry:
        gauges = CollectorRegistry(auto_describe=True)
        running = Gauge("asyncgate_running_jobs", "Jobs running on this replica.", registry=gauges)
        slots = Gauge("asyncgate_worker_concurrency", "Jobs this replica runs at most.", registry=gauges)
        up = Gauge("asyncgate_store_up", "1 while the store answers, 0 when it cannot.", registry=gauges)
        health = Gauge("asyncgate_health_serving", "1 while gRPC health is SERVING, else 0.", registry=gauges)
        health.set(1 if self.serving else 0)
        slots.set(self._config.dispatcher.concurrency)
        if self._dispatcher is not None:
            running.set(self._dispatcher.running)
        if self._store is None:
            return gauges
        now = self._clock()
        try:
            stats = await self._store.stats(now)
        except StoreUnavailable:
            up.set(0)
            return gauges
        up.set(1)
        queue = Gauge(
            "asyncgate_queue_jobs",
            "Jobs by state in the shared store (all replicas).",
            ["state"],
            registry=gauges,
        )
        queue.labels("pending").set(stats.pending)
        queue.labels("processing").set(stats.processing)
        Gauge(
            "asyncgate_oldest_pending_job_age_seconds",
            "Seconds the oldest pending job has waited since it was submitted (0: none).",
            registry=gauges,
        ).set(stats.oldest_pending_age_seconds)
        Gauge(
            "asyncgate_oldest_processing_job_age_seconds",
            "Seconds since the oldest job being processed was submitted (0: none).",
            registry=gauges,
        ).set(stats.oldest_processing_age_seconds)
        Gauge(
            "asyncgate_expired_leases",
            "Processing jobs whose lease ran out (their worker died or hangs) not yet reaped.",
            registry=gauges,
        ).set(stats.expired_leases)
        return gauges
