"""Assembles the server: store, providers, dispatcher, sweeper, gRPC services.

    server = AsyncGateServer(config)
    port = await server.start()
    ...
    await server.stop()      # NOT_SERVING, stop claiming, finish or release jobs, close

Health (`grpc.health.v1`) reports SERVING while the store can read and write; a monitor
flips it to NOT_SERVING as soon as the store reports a failure (unreachable, or its disk
full), and back once a ping succeeds again.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from datetime import timedelta

import aiohttp
from grpc import aio
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

from asyncgate.v1 import job_service_pb2
from grpc_server.capabilities import Capabilities, load_secret
from grpc_server.config import ServerConfig, check_config
from grpc_server.dispatch.sweeper import OrphanSweep, StagingSweep, run_sweeper
from grpc_server.dispatch.worker import Dispatcher
from grpc_server.image_work import ImageWork
from grpc_server.job_api import JobApi, utcnow
from grpc_server.keyring import KeyRing
from grpc_server.metrics_endpoint import ServerMetrics
from grpc_server.observed_store import observed
from grpc_server.providers.factory import build_registry
from grpc_server.providers.registry import ProviderRegistry
from grpc_server.registration import serve
from grpc_server.service import JobServicer
from grpc_server.staging import remove_stale_staging, stale_staging_age
from grpc_server.store.base import JobStore, StoreUnavailable
from grpc_server.store.factory import make_store, prepare_store
from grpc_server.telemetry import server_interceptors
from grpc_server.tokens import TokenVerifier
from grpc_server.webhooks.admin import WebhookAdmin
from grpc_server.webhooks.deliverer import BATCH, Deliverer
from grpc_server.webhooks.sender import WebhookSender

log = logging.getLogger("asyncgate.server")

SERVICE_NAME = job_service_pb2.DESCRIPTOR.services_by_name["JobService"].full_name
HEALTH_CHECK_INTERVAL = 2.0


class AsyncGateServer:
    def __init__(self, config: ServerConfig, store: JobStore | None = None) -> None:
        check_config(config)  # a configuration built in code is held to the same rules as a file
        self.config = config
        self.store: JobStore = store or make_store(config)
        self._server = aio.server(
            interceptors=server_interceptors(),  # traces continue from the caller, when tracing is on
            options=[
                ("grpc.max_receive_message_length", config.max_message_bytes),
                ("grpc.so_reuseport", 0),
                # Thousands of waiters and watchers hold calls open: without these, calls the
                # server has not picked up yet past grpc's default limit are cancelled.
                ("grpc.server.max_pending_requests", 100_000),
                ("grpc.server.max_pending_requests_hard_limit", 100_000),
            ],
        )
        self._health = health.aio.HealthServicer()  # type: ignore[attr-defined]  # untyped package
        self._stop_background = asyncio.Event()
        self._background: list[asyncio.Task[None]] = []
        self._registry: ProviderRegistry | None = None
        self._image_work = ImageWork(config.image_pixel_budget)
        self.dispatcher: Dispatcher | None = None
        self._webhook_session: aiohttp.ClientSession | None = None
        self.port = 0
        self.metrics = ServerMetrics(config, utcnow)

    async def start(self) -> int:
        config = self.config
        await prepare_store(self.store, config)
        self.store = observed(self.store)  # every store operation timed, jobs counted
        # Before serving: what killed processes left in staging (only stale directories; see staging).
        await asyncio.to_thread(remove_stale_staging, config.staging_dir, stale_staging_age(config))
        # Each provider gets a connection pool of its own, sized by its max_concurrency.
        self._registry = registry = build_registry(config)
        self.dispatcher = Dispatcher(config, self.store, registry, utcnow)
        await self.store.subscribe(self.dispatcher.on_store_event)
        keyring = KeyRing(
            config.virtual_keys,
            require_key=config.require_virtual_key,
            tokens=TokenVerifier(config.auth),
        )
        api = JobApi(
            config,
            self.store,
            registry,
            keyring,
            Capabilities(load_secret(config.url_signing_secret, config.data_dir)),
            self._image_work,
            on_submit=self.dispatcher.wake,
        )
        webhooks = WebhookAdmin(self.store, config.webhooks, keyring, utcnow)
        serve(
            JobServicer(api, webhooks),
            self._server,
            job_service_pb2.DESCRIPTOR.services_by_name["JobService"],
        )
        health_pb2_grpc.add_HealthServicer_to_server(self._health, self._server)
        reflection.enable_server_reflection(
            (
                SERVICE_NAME,
                health_pb2.DESCRIPTOR.services_by_name["Health"].full_name,
                reflection.SERVICE_NAME,
            ),
            self._server,
        )
        self.port = self._server.add_insecure_port(f"{config.host}:{config.port}")
        await self._server.start()
        await self._set_serving(True)
        orphan_interval = timedelta(seconds=config.blobs.orphan_sweep_interval_seconds)
        self._background = [
            asyncio.create_task(self.dispatcher.run(), name="dispatcher"),
            asyncio.create_task(
                run_sweeper(
                    self.store,
                    config.dispatcher,
                    utcnow,
                    self._stop_background,
                    StagingSweep(config.staging_dir, stale_staging_age(config)),
                    OrphanSweep(orphan_interval, utcnow() + orphan_interval),
                ),
                name="sweeper",
            ),
            asyncio.create_task(self._monitor_store(), name="store-monitor"),
        ]
        if config.webhooks:
            self._background.append(await self._start_webhooks())
        await self.metrics.start(self.store, self.dispatcher)
        log.info("asyncgate gRPC server listening on %s:%d", config.host, self.port)
        return self.port

    async def _start_webhooks(self) -> asyncio.Task[None]:
        """The delivery loop of the outbox, on a session of its own (never following redirects)."""
        self._webhook_session = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=BATCH))
        deliverer = Deliverer(self.store, self.config.webhooks, WebhookSender(self._webhook_session), utcnow)
        await self.store.subscribe(deliverer.on_store_event)
        return asyncio.create_task(deliverer.run(), name="webhooks")

    async def _set_serving(self, serving: bool) -> None:
        status = (
            health_pb2.HealthCheckResponse.SERVING if serving else health_pb2.HealthCheckResponse.NOT_SERVING
        )
        for name in ("", SERVICE_NAME):
            await self._health.set(name, status)
        self.metrics.serving = serving

    async def _monitor_store(self) -> None:
        """SERVING while the store can read and write. A failure any operation meets is reported
        by the store at once (watch_health) and turns health NOT_SERVING without waiting for the
        next check; pings every HEALTH_CHECK_INTERVAL (or as soon as an operation succeeds again)
        decide when it is SERVING again, so it comes back by itself when the fault is gone."""
        reported: list[StoreUnavailable | None] = []
        news = asyncio.Event()

        def on_store_health(problem: StoreUnavailable | None) -> None:
            reported.append(problem)
            news.set()

        self.store.watch_health(on_store_health)
        serving = True
        while not self._stop_background.is_set():
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(HEALTH_CHECK_INTERVAL):
                    await news.wait()
            if self._stop_background.is_set():
                return
            news.clear()
            failures = [p for p in reported if p is not None]
            reported.clear()
            problem: StoreUnavailable | None = failures[-1] if failures else None
            if problem is None:  # the interval passed, or an operation succeeded again: check
                try:
                    await self.store.ping()
                except StoreUnavailable as exc:
                    problem = exc
            if (problem is None) != serving:
                serving = problem is None
                if serving:
                    log.warning("store usable again: health SERVING")
                else:
                    log.warning("store failing (%s): health NOT_SERVING", problem)
                await self._set_serving(serving)

    async def stop(self, grace: float | None = None) -> None:
        """Graceful shutdown: NOT_SERVING, stop claiming, finish or release running jobs."""
        grace = self.config.dispatcher.shutdown_grace_seconds if grace is None else grace
        await self._health.enter_graceful_shutdown()
        self._stop_background.set()
        server_stopped = asyncio.create_task(self._server.stop(grace))
        if self.dispatcher is not None:
            await self.dispatcher.stop(grace)
        for task in self._background:
            task.cancel()
        await asyncio.gather(*self._background, return_exceptions=True)
        await server_stopped
        await self.metrics.stop()
        if self._webhook_session is not None:
            await self._webhook_session.close()
        if self._registry is not None:
            await self._registry.close()
        await self.store.close()
        self._image_work.close()

    async def wait_for_termination(self) -> None:
        await self._server.wait_for_termination()
