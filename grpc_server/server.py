"""Assembles the server: store, providers, dispatcher, sweeper, gRPC services.

    server = AsyncGateServer(config)
    port = await server.start()
    ...
    await server.stop()      # NOT_SERVING, stop claiming, finish or release jobs, close

Health (`grpc.health.v1`) reports SERVING while the store answers; a monitor
flips it to NOT_SERVING when the store cannot be reached, and back.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

from grpc import aio
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

from asyncgate.v1 import job_service_pb2, job_service_pb2_grpc
from grpc_server.capabilities import Capabilities, load_secret
from grpc_server.config import ServerConfig, check_config
from grpc_server.dispatch.sweeper import run_sweeper
from grpc_server.dispatch.worker import Dispatcher
from grpc_server.image_work import ImageWork
from grpc_server.job_api import JobApi, utcnow
from grpc_server.keyring import KeyRing
from grpc_server.providers.factory import build_registry
from grpc_server.providers.registry import ProviderRegistry
from grpc_server.service import JobServicer
from grpc_server.store.base import JobStore, StoreUnavailable
from grpc_server.store.factory import make_store, prepare_store

log = logging.getLogger("asyncgate.server")

SERVICE_NAME = job_service_pb2.DESCRIPTOR.services_by_name["JobService"].full_name
HEALTH_CHECK_INTERVAL = 2.0


class AsyncGateServer:
    def __init__(self, config: ServerConfig, store: JobStore | None = None) -> None:
        check_config(config)  # a configuration built in code is held to the same rules as a file
        self.config = config
        self.store: JobStore = store or make_store(config)
        self._server = aio.server(
            options=[
                ("grpc.max_receive_message_length", config.max_message_bytes),
                ("grpc.so_reuseport", 0),
            ]
        )
        self._health = health.aio.HealthServicer()  # type: ignore[attr-defined]  # untyped package
        self._stop_background = asyncio.Event()
        self._background: list[asyncio.Task[None]] = []
        self._registry: ProviderRegistry | None = None
        self._image_work = ImageWork(config.image_pixel_budget)
        self.dispatcher: Dispatcher | None = None
        self.port = 0

    async def start(self) -> int:
        config = self.config
        await prepare_store(self.store, config)
        # Each provider gets a connection pool of its own, sized by its max_concurrency.
        self._registry = registry = build_registry(config)
        self.dispatcher = Dispatcher(config, self.store, registry, utcnow)
        await self.store.subscribe(self.dispatcher.on_store_event)
        api = JobApi(
            config,
            self.store,
            registry,
            KeyRing(config.virtual_keys, require_key=config.require_virtual_key),
            Capabilities(load_secret(config.url_signing_secret, config.data_dir)),
            self._image_work,
            on_submit=self.dispatcher.wake,
        )
        job_service_pb2_grpc.add_JobServiceServicer_to_server(JobServicer(api), self._server)
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
        self._background = [
            asyncio.create_task(self.dispatcher.run(), name="dispatcher"),
            asyncio.create_task(
                run_sweeper(self.store, config.dispatcher, utcnow, self._stop_background), name="sweeper"
            ),
            asyncio.create_task(self._monitor_store(), name="store-monitor"),
        ]
        log.info("asyncgate gRPC server listening on %s:%d", config.host, self.port)
        return self.port

    async def _set_serving(self, serving: bool) -> None:
        status = (
            health_pb2.HealthCheckResponse.SERVING if serving else health_pb2.HealthCheckResponse.NOT_SERVING
        )
        for name in ("", SERVICE_NAME):
            await self._health.set(name, status)

    async def _monitor_store(self) -> None:
        serving = True
        while not self._stop_background.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stop_background.wait(), HEALTH_CHECK_INTERVAL)
            if self._stop_background.is_set():
                return
            try:
                await self.store.ping()
                ok = True
            except StoreUnavailable:
                ok = False
            if ok != serving:
                serving = ok
                log.warning("store %s: health %s", "reachable" if ok else "unreachable", ok)
                await self._set_serving(ok)

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
        if self._registry is not None:
            await self._registry.close()
        await self.store.close()
        self._image_work.close()

    async def wait_for_termination(self) -> None:
        await self._server.wait_for_termination()
