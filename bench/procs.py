"""Subprocesses under test: started with this interpreter, waited for, always stopped.

Each process writes its output to a log file in the work directory; when one
dies or never becomes ready, the tail of its log is in the exception.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import aiohttp
import grpc

ROOT = Path(__file__).resolve().parents[1]  # `-m grpc_server` etc. resolve from the repo root
READY_TIMEOUT = 30.0
STOP_TIMEOUT = 10.0


class ProcessFailed(RuntimeError):
    pass


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class Process:
    """One `python -m ...` child; stop() is safe to call more than once."""

    def __init__(self, name: str, args: list[str], workdir: Path, cwd: Path = ROOT) -> None:
        self.name = name
        self.log_path = workdir / f"{name}.log"
        self._log = self.log_path.open("wb")
        try:
            self._popen = subprocess.Popen(
                [sys.executable, *args], cwd=cwd, stdout=self._log, stderr=subprocess.STDOUT
            )
        except BaseException:
            self._log.close()
            raise

    @property
    def pid(self) -> int:
        return self._popen.pid

    def check_alive(self) -> None:
        if (code := self._popen.poll()) is not None:
            raise ProcessFailed(f"{self.name} exited with {code}:\n{self.log_tail()}")

    def log_tail(self, lines: int = 20) -> str:
        self._log.flush()
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])

    def stop(self) -> None:
        if self._popen.poll() is None:
            self._popen.terminate()  # SIGTERM: the servers shut down cleanly on it
            try:
                self._popen.wait(STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                self._popen.kill()
                self._popen.wait()
        self._log.close()


def start(
    stack: contextlib.ExitStack, name: str, args: list[str], workdir: Path, cwd: Path = ROOT
) -> Process:
    """Start a child whose stop() runs when `stack` closes; `cwd`: the source tree it runs from."""
    process = Process(name, args, workdir, cwd)
    stack.callback(process.stop)
    return process


BENCH_PROVIDER = "bench"
"""The provider name servers give the fake (models are `bench/...`)."""


@dataclass(frozen=True)
class ServerOptions:
    """What a bench server's TOML says; the default is accept-only on SQLite."""

    concurrency: int = 0
    """0: jobs are stored but never run, so no job competes for CPU or memory."""
    poll_interval_seconds: float = 1.0
    database_url: str | None = None
    """PostgreSQL; SQLite in the server's own data directory when None."""
    provider_url: str | None = None
    """An OpenAI-compatible root (http://.../v1), configured as provider `bench`."""

    def toml(self, data_dir: Path) -> str:
        lines = [f'data_dir = "{data_dir}"']
        if self.database_url is not None:
            # Replicas of one store sign result URLs alike; the bench reads none, but a deployment would.
            lines += [
                f'database_url = "{self.database_url}"',
                'url_signing_secret = "asyncgate-bench-url-signing-secret"',
            ]
        lines += [
            "",
            "[dispatcher]",
            f"concurrency = {self.concurrency}",
            f"poll_interval_seconds = {self.poll_interval_seconds}",
        ]
        if self.provider_url is not None:
            lines += ["", f"[providers.{BENCH_PROVIDER}]", 'kind = "openai-compatible"']
            lines.append(f'base_url = "{self.provider_url}"')
        return "\n".join(lines) + "\n"


ACCEPT_ONLY = ServerOptions()


def start_server(
    stack: contextlib.ExitStack,
    workdir: Path,
    name: str = "grpc-server",
    options: ServerOptions = ACCEPT_ONLY,
    source: Path = ROOT,
) -> tuple[Process, str]:
    """The real gRPC server (accept-only unless told otherwise), its data in a directory of its own."""
    data_dir = workdir / f"{name}-data"
    config = workdir / f"{name}.toml"
    config.write_text(options.toml(data_dir))
    port = free_port()
    args = [
        "-m",
        "grpc_server",
        "--config",
        str(config),
        "--grpc-port",
        str(port),
        "--data-dir",
        str(data_dir),
    ]
    return start(stack, name, args, workdir, source), f"127.0.0.1:{port}"


def start_bridge(
    stack: contextlib.ExitStack,
    workdir: Path,
    grpc_target: str,
    name: str = "rest-bridge",
    source: Path = ROOT,
) -> tuple[Process, str]:
    port = free_port()
    args = ["-m", "rest_bridge", "--grpc-target", grpc_target, "--http-port", str(port)]
    return start(stack, name, args, workdir, source), f"http://127.0.0.1:{port}"


def start_rest_baseline(stack: contextlib.ExitStack, workdir: Path) -> tuple[Process, str]:
    port = free_port()
    process = start(stack, "rest-baseline", ["-m", "bench.baselines", "rest", "--port", str(port)], workdir)
    return process, f"http://127.0.0.1:{port}"


def start_grpc_baseline(
    stack: contextlib.ExitStack, workdir: Path, name: str = "grpc-baseline", *, storing: bool = False
) -> tuple[Process, str]:
    """The bare grpc.aio handler; `storing`: it also writes each job with asyncgate's SQLite store."""
    port = free_port()
    args = ["-m", "bench.baselines", "grpc", "--port", str(port)]
    if storing:
        args += ["--store", str(workdir / f"{name}-data")]
    return start(stack, name, args, workdir), f"127.0.0.1:{port}"


def start_fake_provider(
    stack: contextlib.ExitStack, workdir: Path, latency: float = 0.0, name: str = "fake-provider"
) -> tuple[Process, str]:
    """bench.fake_provider (answering after `latency` s); returns its root URL (the OpenAI root is
    that + /v1)."""
    port = free_port()
    args = ["-m", "bench.fake_provider", "--port", str(port), "--latency", str(latency)]
    process = start(stack, name, args, workdir)
    return process, f"http://127.0.0.1:{port}"


async def wait_http_ready(process: Process, base_url: str, timeout: float = READY_TIMEOUT) -> None:
    """Until GET /health answers 200 (the bridge answers 200 only once its gRPC server serves)."""
    deadline = time.monotonic() + timeout
    async with aiohttp.ClientSession() as session:
        while True:
            process.check_alive()
            with contextlib.suppress(aiohttp.ClientError, TimeoutError):
                async with session.get(f"{base_url}/health", timeout=aiohttp.ClientTimeout(total=2)) as r:
                    if r.status == 200:
                        return
            if time.monotonic() > deadline:
                raise ProcessFailed(f"{process.name} not ready after {timeout} s:\n{process.log_tail()}")
            await asyncio.sleep(0.1)


async def wait_grpc_ready(process: Process, target: str, timeout: float = READY_TIMEOUT) -> None:
    """Until a channel to `target` connects."""
    deadline = time.monotonic() + timeout
    async with grpc.aio.insecure_channel(target) as channel:
        while True:
            process.check_alive()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(channel.channel_ready(), 0.5)
                return
            if time.monotonic() > deadline:
                raise ProcessFailed(f"{process.name} not ready after {timeout} s:\n{process.log_tail()}")
