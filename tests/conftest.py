"""Fixtures that run the real parts: a grpc.aio server on a free port with a real
SQLite file, and the real aiohttp bridge in front of it."""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import aiohttp
import grpc
import pytest

from asyncgate.v1 import job_service_pb2_grpc as pb_grpc
from grpc_server.config import DispatcherSettings, RetrySettings, ServerConfig, VirtualKey
from grpc_server.server import AsyncGateServer
from rest_bridge.app import create_app
from rest_bridge.config import BridgeConfig
from rest_bridge.serving import start_bridge
from tests.s3_server import s3_server  # noqa: F401  (a session fixture: a real S3 server)

if TYPE_CHECKING:
    from asyncgate.v1.job_service_pb2_grpc import JobServiceAsyncStub

KEY_A = VirtualKey(id="vk-team-a", value="sk-bf-team-a-secret")
KEY_B = VirtualKey(id="vk-team-b", value="sk-bf-team-b-secret")


def fast_config(data_dir: Path, **overrides: Any) -> ServerConfig:
    """Fast timings so that tests do not wait on production defaults."""
    config = ServerConfig(
        port=0,
        data_dir=data_dir,
        virtual_keys=(KEY_A, KEY_B),
        retry=RetrySettings(
            max_attempts=3, base_delay_seconds=0.01, max_delay_seconds=5, attempt_timeout_seconds=10
        ),
        dispatcher=DispatcherSettings(
            concurrency=4,
            lease_seconds=3,
            poll_interval_seconds=0.2,
            sweep_interval_seconds=0.3,
            shutdown_grace_seconds=2,
        ),
    )
    return replace(config, **overrides)


@dataclass
class Stack:
    server: AsyncGateServer
    grpc_target: str
    base_url: str
    http: aiohttp.ClientSession
    channel: grpc.aio.Channel

    def stored_jobs(self) -> int:
        """Jobs in the SQLite file, read through a separate connection; with none, no job file may
        be stored either (in the file, or in the blob directory beside it)."""
        with contextlib.closing(sqlite3.connect(self.server.config.database_path)) as conn:
            count: int = conn.execute("SELECT COUNT(*) FROM jobs").fetchone()[0]
            blobs: int = conn.execute("SELECT COUNT(*) FROM blob_chunks").fetchone()[0]
        assert count or not blobs, "blobs stored without a job"
        assert count or not self.blob_files(), "files stored without a job"
        return count

    def blob_files(self) -> list[Path]:
        """The files of the default blob store (a directory under data_dir), temporary ones aside."""
        root = self.server.config.data_dir / "blobs"
        return (
            [p for p in root.rglob("*") if p.is_file() and ".partial" not in p.parts] if root.exists() else []
        )

    def staged_files(self) -> list[Path]:
        root = self.server.config.staging_dir
        return [p for p in root.rglob("*") if p.is_file()] if root.exists() else []

    async def no_staged_files(self) -> None:
        """Wait until the staging area is empty. A refusal the bridge answers mid-upload
        cancels the gRPC call; the server then discards the staged files as it sees the
        cancellation, a moment after the client has its answer."""
        while self.staged_files():
            await asyncio.sleep(0.01)

    @property
    def stub(self) -> JobServiceAsyncStub:
        return pb_grpc.JobServiceStub(self.channel)


StackFactory = Callable[..., Awaitable[Stack]]


@pytest.fixture
async def make_stack(tmp_path: Path) -> AsyncIterator[StackFactory]:
    """Start server + bridge with config overrides; everything is torn down after the test."""
    cleanups: list[Callable[[], Awaitable[None]]] = []

    async def start(bridge: BridgeConfig | None = None, **overrides: Any) -> Stack:
        server = AsyncGateServer(fast_config(tmp_path / f"data{len(cleanups)}", **overrides))
        port = await server.start()
        cleanups.append(lambda: server.stop(grace=1.0))
        target = f"127.0.0.1:{port}"
        bridge_config = replace(bridge or BridgeConfig(), grpc_target=target, port=0)
        runner = await start_bridge(create_app(bridge_config), bridge_config)
        http_port = runner.addresses[0][1]
        base_url = f"http://127.0.0.1:{http_port}"
        cleanups.append(runner.cleanup)
        http = aiohttp.ClientSession(base_url)
        cleanups.append(http.close)
        channel = grpc.aio.insecure_channel(target)
        cleanups.append(lambda: channel.close(grace=None))
        return Stack(server, target, base_url, http, channel)

    yield start
    for cleanup in reversed(cleanups):
        await cleanup()


@pytest.fixture
async def stack(make_stack: StackFactory) -> Stack:
    return await make_stack()
