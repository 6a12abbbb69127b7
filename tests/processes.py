"""Run asyncgate as real subprocesses, for tests that kill and restart it.

    async with AsyncGateProcess(tmp_path, config_toml, data_dir) as proc:
        async with aiohttp.ClientSession(proc.base_url) as http:
            ...
        proc.kill(signal.SIGKILL)
        await proc.wait()

Each process gets fresh free ports, logs (stdout and stderr) to a file in
tmp_path, and is SIGKILLed on exit of the `async with` if it is still running.
`proc.fail(...)`/`proc.log_tail()` put the end of that log into assertion
messages, since a subprocess's traceback is otherwise invisible.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from types import TracebackType
from typing import IO, Self

import aiohttp
import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

REPO_ROOT = Path(__file__).resolve().parents[1]
READY_TIMEOUT_SECONDS = 30.0
"""Diagnostic bound on startup (the test timeout is the real one): fail with the log, not a bare timeout."""
START_ATTEMPTS = 3
"""A free port can be taken between our probe and the child's bind; a start that dies is retried."""

TomlScalar = str | int | float | bool
TomlTable = Mapping[str, "TomlScalar | TomlTable"]


def free_port() -> int:
    """A port nothing listens on right now (the OS picks it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _toml_scalar(value: TomlScalar) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return json.dumps(value)  # a TOML basic string for anything a test writes
    return repr(value)


def toml_text(doc: TomlTable, prefix: str = "") -> str:
    """A TOML document from nested mappings of scalars (all a test config needs)."""
    lines: list[str] = []
    tables: list[tuple[str, TomlTable]] = []
    for key, value in doc.items():
        if isinstance(value, Mapping):
            tables.append((f"{prefix}{key}", value))
        else:
            lines.append(f"{key} = {_toml_scalar(value)}")
    text = "\n".join(lines) + ("\n" if lines else "")
    for name, table in tables:
        text += f"\n[{name}]\n" + toml_text(table, f"{name}.")
    return text


def _unused_name(tmp_path: Path, name: str) -> str:
    """`name`, or `name-2`, `name-3`...: a restarted service must not overwrite its predecessor's log."""
    candidate, n = name, 1
    while any(tmp_path.glob(f"{candidate}.*")):
        n += 1
        candidate = f"{name}-{n}"
    return candidate


class ServiceProcess:
    """One `python -m MODULE ARGS...` child; subclasses say how to tell it is ready."""

    module = ""

    def __init__(self, tmp_path: Path, name: str) -> None:
        self.tmp_path = tmp_path
        self.name = _unused_name(tmp_path, name)
        self.log_path = tmp_path / f"{self.name}.log"
        self.log_path.touch()  # reserves the name
        self.returncode: int | None = None
        self._proc: asyncio.subprocess.Process | None = None
        self._log: IO[bytes] | None = None
        self._starts = 0

    def args(self) -> Sequence[str]:
        """Command line flags after `-m MODULE`; called again (with new ports) on each start attempt."""
        raise NotImplementedError

    def choose_ports(self) -> None:
        """Pick fresh ports before each start attempt."""

    async def is_ready(self) -> bool:
        raise NotImplementedError

    async def start(self) -> Self:
        for _ in range(START_ATTEMPTS):
            self.choose_ports()
            await self._spawn()
            if await self._wait_ready():
                # Shown by pytest for a failing test, with where to read the whole log.
                print(f"{self.name}: pid {self.pid}, log {self.log_path}")
                return self
        raise AssertionError(f"{self.name} did not start (exit code {self.returncode})\n{self.log_tail()}")

    async def _spawn(self) -> None:
        self._starts += 1
        if self._starts > 1:  # keep the log of a failed start next to the new one
            self.log_path = self.tmp_path / f"{self.name}.{self._starts}.log"
        self._close_log()
        self._log = self.log_path.open("ab")
        # Unbuffered, so that a SIGKILL loses no log lines; the repo importable from any install.
        python_path = os.pathsep.join(p for p in (str(REPO_ROOT), os.environ.get("PYTHONPATH")) if p)
        env = {**os.environ, "PYTHONUNBUFFERED": "1", "PYTHONPATH": python_path}
        self.returncode = None
        self._proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            self.module,
            *self.args(),
            stdin=asyncio.subprocess.DEVNULL,
            stdout=self._log,
            stderr=asyncio.subprocess.STDOUT,
            cwd=REPO_ROOT,
            env=env,
        )

    async def _wait_ready(self) -> bool:
        """True once ready; False if the child exited first. Fails on a child that never gets ready."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + READY_TIMEOUT_SECONDS
        while loop.time() < deadline:
            if self.proc.returncode is not None:
                await self.wait()
                return False
            if await self.is_ready():
                return True
            await asyncio.sleep(0.05)
        raise AssertionError(f"{self.name} not ready after {READY_TIMEOUT_SECONDS} s\n{self.log_tail()}")

    @property
    def proc(self) -> asyncio.subprocess.Process:
        if self._proc is None:
            raise RuntimeError(f"{self.name} was not started")
        return self._proc

    @property
    def pid(self) -> int:
        return self.proc.pid

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.returncode is None

    def kill(self, sig: signal.Signals = signal.SIGKILL) -> None:
        """Send a signal (SIGKILL by default); a no-op once the child has exited."""
        if self.running:
            self.proc.send_signal(sig)

    async def wait(self) -> int:
        """Wait for the child to exit (bounded by the test timeout); its exit code."""
        self.returncode = await self.proc.wait()
        return self.returncode

    async def stop(self) -> None:
        """Always safe: SIGKILL a child still running, reap it, close the log."""
        if self._proc is not None:
            self.kill(signal.SIGKILL)
            await self.wait()
        self._close_log()

    def _close_log(self) -> None:
        if self._log is not None:
            self._log.close()
            self._log = None

    def log_tail(self, lines: int = 60) -> str:
        """The end of the child's log, for assertion messages."""
        try:
            text = self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return f"--- {self.log_path.name}: no log ---"
        tail = "\n".join(text.splitlines()[-lines:])
        return f"--- last {lines} lines of {self.log_path.name} ---\n{tail}"

    def fail(self, message: str) -> str:
        """An assertion message with the child's log attached: `assert ok, proc.fail("why")`."""
        return f"{message}\n{self.log_tail()}"

    async def __aenter__(self) -> Self:
        try:
            return await self.start()
        except BaseException:
            await self.stop()
            raise

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if exc is not None:  # captured by pytest and shown with the failure
            print(self.log_tail())
        await self.stop()


async def _http_ok(url: str) -> bool:
    try:
        async with (
            aiohttp.ClientSession() as http,
            http.get(url, timeout=aiohttp.ClientTimeout(total=2)) as response,
        ):
            return response.status == 200
    except (aiohttp.ClientError, TimeoutError):
        return False


async def grpc_serving(target: str) -> bool:
    """Whether the gRPC server at target answers health SERVING."""
    async with grpc.aio.insecure_channel(target) as channel:
        try:
            reply = await health_pb2_grpc.HealthStub(channel).Check(
                health_pb2.HealthCheckRequest(service=""), timeout=2
            )
        except grpc.aio.AioRpcError:
            return False
        return bool(reply.status == health_pb2.HealthCheckResponse.SERVING)


class ServerProcess(ServiceProcess):
    """A gRPC server child (alone or with the bridge) on a TOML config and a data dir."""

    def __init__(self, tmp_path: Path, config: TomlTable | str, data_dir: Path, name: str) -> None:
        super().__init__(tmp_path, name)
        self.config_path = tmp_path / f"{self.name}.toml"
        self.config_path.write_text(config if isinstance(config, str) else toml_text(config))
        self.data_dir = data_dir
        self.grpc_port = 0

    def choose_ports(self) -> None:
        self.grpc_port = free_port()

    def args(self) -> Sequence[str]:
        return [
            "--config",
            str(self.config_path),
            "--data-dir",
            str(self.data_dir),
            "--grpc-port",
            str(self.grpc_port),
        ]

    @property
    def grpc_target(self) -> str:
        return f"127.0.0.1:{self.grpc_port}"


class AsyncGateProcess(ServerProcess):
    """`python -m asyncgate`: gRPC server and REST bridge in one process, ready when `/health` is 200."""

    module = "asyncgate"

    def __init__(
        self, tmp_path: Path, config: TomlTable | str, data_dir: Path, name: str = "asyncgate"
    ) -> None:
        super().__init__(tmp_path, config, data_dir, name)
        self.http_port = 0

    def choose_ports(self) -> None:
        super().choose_ports()
        self.http_port = free_port()

    def args(self) -> Sequence[str]:
        return [*super().args(), "--http-port", str(self.http_port)]

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.http_port}"

    async def is_ready(self) -> bool:
        return await _http_ok(f"{self.base_url}/health")


class GrpcServerProcess(ServerProcess):
    """`python -m grpc_server` alone, ready when its gRPC health answers SERVING."""

    module = "grpc_server"

    def __init__(
        self, tmp_path: Path, config: TomlTable | str, data_dir: Path, name: str = "grpc_server"
    ) -> None:
        super().__init__(tmp_path, config, data_dir, name)

    async def is_ready(self) -> bool:
        return await grpc_serving(self.grpc_target)


class RestBridgeProcess(ServiceProcess):
    """`python -m rest_bridge` in front of a gRPC server; ready when `/health` is 200 (the server SERVING)."""

    module = "rest_bridge"

    def __init__(self, tmp_path: Path, grpc_target: str, name: str = "rest_bridge") -> None:
        super().__init__(tmp_path, name)
        self.grpc_target = grpc_target
        self.http_port = 0

    def choose_ports(self) -> None:
        self.http_port = free_port()

    def args(self) -> Sequence[str]:
        return ["--grpc-target", self.grpc_target, "--http-port", str(self.http_port)]

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.http_port}"

    async def is_ready(self) -> bool:
        return await _http_ok(f"{self.base_url}/health")
