"""Slow, idle, numerous and broken clients against the real bridge served by BridgeRunner
(and the real gRPC server behind it), over raw sockets. Outcomes only: the answer's status
and that the connection closes; no test measures how long anything took."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import sqlite3
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import pytest

from grpc_server.config import DispatcherSettings
from grpc_server.server import AsyncGateServer
from rest_bridge.app import create_app
from rest_bridge.config import BridgeConfig
from rest_bridge.serving import BridgeRunner, start_bridge
from tests.conftest import fast_config as server_fast_config

GENERATIONS = "/v1/async/images/generations"
EDITS = "/v1/async/images/edits"


@dataclass
class Guarded:
    server: AsyncGateServer
    runner: BridgeRunner
    port: int

    async def connect(self) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        return await asyncio.open_connection("127.0.0.1", self.port)

    def stored_jobs(self) -> int:
        with contextlib.closing(sqlite3.connect(self.server.config.database_path)) as conn:
            count: int = conn.execute("SELECT COUNT(*) FROM jobs").fetchone()[0]
        return count

    def staged_files(self) -> list[Path]:
        root = self.server.config.staging_dir
        return [p for p in root.rglob("*") if p.is_file()] if root.exists() else []


GuardedFactory = Callable[[BridgeConfig], Awaitable[Guarded]]


@pytest.fixture
async def guarded(tmp_path: Path) -> AsyncIterator[GuardedFactory]:
    cleanups: list[Callable[[], Awaitable[None]]] = []

    async def start(config: BridgeConfig) -> Guarded:
        server = AsyncGateServer(
            server_fast_config(
                tmp_path / f"data{len(cleanups)}", dispatcher=DispatcherSettings(concurrency=0)
            )
        )
        port = await server.start()
        cleanups.append(lambda: server.stop(grace=0))
        config = replace(config, grpc_target=f"127.0.0.1:{port}", port=0)
        runner = await start_bridge(create_app(config), config)
        cleanups.append(runner.cleanup)
        return Guarded(server, runner, runner.addresses[0][1])

    yield start
    for cleanup in reversed(cleanups):
        await cleanup()


async def read_answer(reader: asyncio.StreamReader) -> tuple[int, dict[str, str], dict[str, Any]]:
    """One HTTP answer with a Content-Length: status, headers (lower-case), JSON body."""
    status_line = await reader.readline()
    assert status_line.startswith((b"HTTP/1.1 ", b"HTTP/1.0 ")), status_line
    headers: dict[str, str] = {}
    while (line := await reader.readline()) not in (b"\r\n", b""):
        name, _, value = line.decode().partition(":")
        headers[name.strip().lower()] = value.strip()
    body = await reader.readexactly(int(headers["content-length"]))
    return int(status_line.split()[1]), headers, json.loads(body)


async def closed(reader: asyncio.StreamReader) -> bool:
    """True once the server has closed the connection (whatever it still sends is dropped)."""
    try:
        while await reader.read(65536):
            pass
    except ConnectionResetError:
        pass
    return True


def request_head(path: str, headers: dict[str, str], method: str = "POST") -> bytes:
    lines = [f"{method} {path} HTTP/1.1", "Host: 127.0.0.1", *(f"{k}: {v}" for k, v in headers.items())]
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


async def test_headers_dripped_one_byte_a_second_get_408_and_a_closed_connection(
    guarded: GuardedFactory,
) -> None:
    bridge = await guarded(BridgeConfig(header_timeout_seconds=1.5))
    reader, writer = await bridge.connect()
    head = request_head(GENERATIONS, {"Content-Type": "application/json", "Content-Length": "2"})

    async def drip() -> None:
        for byte in head:
            writer.write(bytes([byte]))
            await writer.drain()
            await asyncio.sleep(1)

    dripping = asyncio.create_task(drip())
    try:
        status, headers, body = await read_answer(reader)
    finally:
        dripping.cancel()
    assert status == 408 and headers["connection"] == "close"
    assert body["status_code"] == 408 and "headers" in body["error"]["message"]
    assert await closed(reader)
    assert not dripping.done() or dripping.cancelled()  # the server gave up before the head was whole
    writer.close()


async def test_a_connection_that_sends_nothing_is_closed(guarded: GuardedFactory) -> None:
    bridge = await guarded(BridgeConfig(header_timeout_seconds=0.5))
    reader, writer = await bridge.connect()
    status, _, _ = await read_answer(reader)
    assert status == 408
    assert await closed(reader)
    writer.close()


async def test_a_stalled_json_body_is_408_and_the_connection_closes(guarded: GuardedFactory) -> None:
    bridge = await guarded(BridgeConfig(body_idle_timeout_seconds=0.5))
    reader, writer = await bridge.connect()
    writer.write(request_head(GENERATIONS, {"Content-Type": "application/json", "Content-Length": "1000"}))
    writer.write(b'{"model": "local/placeholder", ')  # then nothing more
    await writer.drain()
    status, headers, body = await read_answer(reader)
    assert status == 408 and headers["connection"] == "close", body
    assert body["error"]["message"].startswith("no body data arrived")
    assert body["extra_fields"] == {"request_type": "image_generation"}
    assert await closed(reader)
    writer.close()
    assert bridge.stored_jobs() == 0


async def test_a_chunked_upload_that_stops_midway_is_408_and_leaves_nothing(
    guarded: GuardedFactory,
) -> None:
    """The streaming path (no Content-Length): the gRPC upload is cancelled, nothing stays."""
    bridge = await guarded(BridgeConfig(body_idle_timeout_seconds=0.5))
    reader, writer = await bridge.connect()
    head = request_head(
        EDITS, {"Content-Type": "multipart/form-data; boundary=XYZ", "Transfer-Encoding": "chunked"}
    )
    part = (
        b'--XYZ\r\nContent-Disposition: form-data; name="model"\r\n\r\nlocal/pillow\r\n'
        b'--XYZ\r\nContent-Disposition: form-data; name="image"; filename="a.png"\r\n'
        b"Content-Type: image/png\r\n\r\n" + b"\x89PNG" + b"\x00" * 300_000
    )
    writer.write(head + f"{len(part):x}\r\n".encode() + part + b"\r\n")  # the final chunk never comes
    await writer.drain()
    status, headers, body = await read_answer(reader)
    assert status == 408 and headers["connection"] == "close", body
    assert body["extra_fields"] == {"request_type": "image_edit"}
    assert await closed(reader)
    writer.close()
    while bridge.staged_files():  # the server discards the upload as it sees the cancellation
        await asyncio.sleep(0.01)
    assert bridge.stored_jobs() == 0


async def test_a_body_slower_than_the_minimum_rate_is_408(guarded: GuardedFactory) -> None:
    """Never idle long enough for the idle timeout, but far below the minimum rate."""
    bridge = await guarded(
        BridgeConfig(body_idle_timeout_seconds=30, min_body_rate_bytes=1000, min_body_rate_grace_seconds=0.5)
    )
    reader, writer = await bridge.connect()
    writer.write(request_head(GENERATIONS, {"Content-Type": "application/json", "Content-Length": "100000"}))

    async def drip() -> None:
        while True:
            writer.write(b" ")
            await writer.drain()
            await asyncio.sleep(0.05)

    dripping = asyncio.create_task(drip())
    try:
        status, _, body = await read_answer(reader)
    finally:
        dripping.cancel()
    assert status == 408, body
    assert "slower than 1000 bytes per second" in body["error"]["message"]
    writer.close()


async def _health_on(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> int:
    writer.write(request_head("/health", {}, method="GET"))
    await writer.drain()
    status, _, _ = await read_answer(reader)
    return status


async def test_connections_past_the_cap_get_503_and_are_closed(guarded: GuardedFactory) -> None:
    bridge = await guarded(BridgeConfig(max_connections=3))
    held = [await bridge.connect() for _ in range(3)]
    for reader, writer in held:  # each answered: each is open and counted
        assert await _health_on(reader, writer) == 200
    reader, writer = await bridge.connect()
    writer.write(request_head("/health", {}, method="GET"))
    status, headers, body = await read_answer(reader)
    assert status == 503 and headers["connection"] == "close"
    assert "max_connections" in body["error"]["message"]
    assert await closed(reader)
    writer.close()
    held[0][1].close()  # one leaves: a newcomer gets in (once the server has seen it go)
    while True:
        reader, writer = await bridge.connect()
        writer.write(request_head("/health", {}, method="GET"))
        status, _, _ = await read_answer(reader)
        writer.close()
        if status == 200:
            break
        await asyncio.sleep(0.01)
    for _, other in held[1:]:
        other.close()


async def test_a_whole_request_through_the_guarded_runner_is_served(guarded: GuardedFactory) -> None:
    bridge = await guarded(BridgeConfig())
    reader, writer = await bridge.connect()
    body = json.dumps({"model": "local/placeholder", "prompt": "a fox"}).encode()
    writer.write(
        request_head(GENERATIONS, {"Content-Type": "application/json", "Content-Length": str(len(body))})
        + body
    )
    status, _, accepted = await read_answer(reader)
    assert status == 202 and accepted["status"] == "pending"
    assert await _health_on(reader, writer) == 200  # the same connection is kept alive
    writer.close()


async def test_a_malformed_request_is_400_and_one_info_line(
    guarded: GuardedFactory, caplog: pytest.LogCaptureFixture
) -> None:
    bridge = await guarded(BridgeConfig())
    caplog.set_level(logging.INFO)
    reader, writer = await bridge.connect()
    writer.write(b"POST /v1/async/embeddings HTTP/1.1\r\nHost: x\r\nContent-Length: nope\r\n\r\n")
    await writer.drain()
    status, _, body = await read_answer(reader)
    assert status == 400, body  # answered as HTTP/1.0 (no version was parsed): it closes
    assert body["error"]["message"].startswith("malformed HTTP request")
    assert await closed(reader)
    writer.close()
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING], caplog.text
    assert [r for r in caplog.records if r.levelno == logging.INFO and "malformed request" in r.message]


@pytest.mark.parametrize(
    ("path", "content_type"),
    [(GENERATIONS, "application/json"), (EDITS, "multipart/form-data; boundary=XYZ")],
)
async def test_a_client_leaving_mid_body_is_one_info_line(
    guarded: GuardedFactory, caplog: pytest.LogCaptureFixture, path: str, content_type: str
) -> None:
    bridge = await guarded(BridgeConfig())
    caplog.set_level(logging.INFO)
    _, writer = await bridge.connect()
    writer.write(request_head(path, {"Content-Type": content_type, "Content-Length": "100000"}))
    writer.write(b'--XYZ\r\nContent-Disposition: form-data; name="model"\r\n\r\nlocal/pil')
    await writer.drain()
    writer.close()
    while not [r for r in caplog.records if "client disconnected" in r.message]:
        await asyncio.sleep(0.01)
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING], caplog.text
