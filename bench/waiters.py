"""Many clients waiting for their jobs to end: what they cost while they wait, and how soon each
hears that its job ended. Waiting (REST `Prefer: wait`, gRPC WaitJob, gRPC WatchJob) next to
the same number of clients polling once a second (REST GET, gRPC GetJob).

    python -m bench --only waiters [--waiters-clients 10000]
    python -m bench.waiters [--clients 10000] [--modes rest-wait,rest-poll,...]

Separate processes, as deployed: the gRPC server (SQLite), the REST bridge, a provider that
answers only when told to (bench.gated_provider), and the clients (bench.waiter_clients). Per
mode, from fresh processes:

1. N embedding jobs are submitted; the server runs them all at once, each held at the provider.
2. N clients arrive, client i waiting on job i; once every waiter is registered with the
   server (its asyncgate_job_waiters gauge; pollers: after a first round of polls), the
   server's and the bridge's RSS growth (over the same processes before the clients came) and
   CPU use are read over QUIET_SECONDS.
3. Paced: the provider answers `paced` calls at `rate` a second, so each completion meets
   an idle path: the latency from completion to answer, not a queue.
4. Burst: the provider answers all the other calls at once: that measures throughput.

Latency: from the moment the job's terminal state committed to the moment the client process
has the answer (one machine, one clock). The commit moment is the server's own log line "job
... completed", written as the store's write returns, after its event is published and before
any waiter runs (millisecond resolution). Also reported from the job's `completed_at` (the
server's clock just before the write, so that figure includes the commit itself).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import math
import re
import resource
import sqlite3
import sys
import tempfile
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import aiohttp
import grpc
from prometheus_client.parser import text_string_to_metric_families

from asyncgate.v1 import job_service_pb2_grpc
from bench import procs
from bench.jobs import embedding_request
from bench.load import create_job
from bench.procfs import cpu_seconds, load_average, rss_bytes
from bench.stats import percentile
from bench.waiter_clients import MODES

SUBMIT_CLIENTS = 32
QUIET_SECONDS = 5.0
"""The window RSS and CPU are read over, every client waiting."""
POLL_ROUND_SECONDS = 2.0
"""Pollers have no waiter to count: this long after they all started, each has polled."""
READY_TIMEOUT = 300.0
PHASE_TIMEOUT = 600.0
MODEL = f"{procs.BENCH_PROVIDER}/text-embedding-3-small"
MIB = 2**20


@dataclass(frozen=True)
class WaiterSettings:
    clients: int = 10_000
    jobs: int = 0
    """Jobs waited on (0: as many as clients); clients must be a multiple of it."""
    paced: int = 2_000
    """Completions of the paced phase (at most half the jobs); the rest end in the burst."""
    rate: float = 200.0
    """Paced completions a second."""
    modes: tuple[str, ...] = MODES

    @property
    def job_count(self) -> int:
        return self.jobs or self.clients

    @property
    def paced_count(self) -> int:
        return min(self.paced, self.job_count // 2)


def raise_fd_limit() -> int:
    """Soft file-descriptor limit up to the hard one, for this process and the children it
    starts: 10,000 REST clients are 10,000 sockets in the client process and in the bridge."""
    _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return hard


def _server_toml(data_dir: Path, jobs: int, provider_url: str, metrics_port: int) -> str:
    return f"""data_dir = "{data_dir}"
metrics_port = {metrics_port}

[dispatcher]
concurrency = {jobs}

[retry]
attempt_timeout_seconds = 3600.0

[providers.{procs.BENCH_PROVIDER}]
kind = "openai-compatible"
base_url = "{provider_url}"
"""


@dataclass
class Stack:
    server: procs.Process
    bridge: procs.Process
    target: str
    base_url: str
    provider_url: str
    metrics_url: str
    database: Path


@contextlib.asynccontextmanager
async def _stack(workdir: Path, name: str, settings: WaiterSettings) -> AsyncIterator[Stack]:
    with contextlib.ExitStack() as stack:
        port = procs.free_port()
        provider = procs.start(
            stack, f"{name}-provider", ["-m", "bench.gated_provider", "--port", str(port)], workdir
        )
        provider_url = f"http://127.0.0.1:{port}"
        data_dir, config = workdir / f"{name}-server-data", workdir / f"{name}-server.toml"
        metrics_port, grpc_port = procs.free_port(), procs.free_port()
        config.write_text(_server_toml(data_dir, settings.job_count, provider_url + "/v1", metrics_port))
        server_args = ["-m", "grpc_server", "--config", str(config), "--grpc-port", str(grpc_port)]
        server = procs.start(stack, f"{name}-server", server_args, workdir)
        target = f"127.0.0.1:{grpc_port}"
        await asyncio.gather(
            procs.wait_grpc_ready(server, target), procs.wait_http_ready(provider, provider_url)
        )
        http_port = procs.free_port()
        bridge_args = ["-m", "rest_bridge", "--grpc-target", target, "--http-port", str(http_port)]
        bridge_args += ["--max-connections", str(settings.clients + 1000)]
        bridge = procs.start(stack, f"{name}-bridge", bridge_args, workdir)
        base_url = f"http://127.0.0.1:{http_port}"
        await procs.wait_http_ready(bridge, base_url)
        yield Stack(
            server,
            bridge,
            target,
            base_url,
            provider_url,
            f"http://127.0.0.1:{metrics_port}/metrics",
            data_dir / "asyncgate.sqlite3",
        )


async def _submit(target: str, count: int, mode: str) -> list[str]:
    request = embedding_request(MODEL)
    texts = iter(enumerate(f"waiters {mode} {i} {uuid.uuid4().hex}" for i in range(count)))
    ids = [""] * count
    async with grpc.aio.insecure_channel(target) as channel:
        stub = job_service_pb2_grpc.JobServiceStub(channel)

        async def client() -> None:
            for i, text in texts:  # one iterator shared: each text is taken once
                ids[i] = (await create_job(stub, request(text))).id

        await asyncio.gather(*(client() for _ in range(SUBMIT_CLIENTS)))
    return ids


async def _get_json(http: aiohttp.ClientSession, url: str) -> Any:
    async with http.get(url) as response:
        response.raise_for_status()
        return await response.json()


async def _until(what: str, check: Any, timeout: float = READY_TIMEOUT) -> None:
    """Until `await check()` is true, checked every 0.1 s; TimeoutError naming `what`."""
    try:
        async with asyncio.timeout(timeout):
            while not await check():
                await asyncio.sleep(0.1)
    except TimeoutError:
        raise TimeoutError(f"waited {timeout:g} s for {what}") from None


async def _waiters(http: aiohttp.ClientSession, metrics_url: str) -> float:
    async with http.get(metrics_url) as response:
        text = await response.text()
    return sum(
        sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.name == "asyncgate_job_waiters"
    )


@dataclass
class Clients:
    """The client process, and what its stdout says (bench.waiter_clients)."""

    process: asyncio.subprocess.Process
    started: asyncio.Event = field(default_factory=asyncio.Event)
    finished: asyncio.Event = field(default_factory=asyncio.Event)
    answered: int = 0
    errors: dict[str, int] = field(default_factory=dict)

    async def follow(self) -> None:
        assert self.process.stdout is not None
        async for raw in self.process.stdout:
            line = json.loads(raw)
            if "started" in line:
                self.started.set()
            if "answered" in line:
                self.answered = line["answered"]
            if "done" in line:
                self.errors = line["errors"]
                self.finished.set()
        self.finished.set()  # ended, done or not: the run checks the records

    async def until_answered(self, count: int, timeout: float = PHASE_TIMEOUT) -> None:
        async def enough() -> bool:
            if self.answered >= count:
                return True
            if self.finished.is_set():
                raise RuntimeError(f"the client process ended after {self.answered} answers of {count}")
            return False

        await _until(f"{count} answers", enough, timeout)


@contextlib.asynccontextmanager
async def _clients(
    workdir: Path, name: str, mode: str, ids: list[str], count: int, target: str, base_url: str
) -> AsyncIterator[Clients]:
    """`count` clients of `mode` on the jobs `ids`; their records go to {name}-records.json."""
    ids_file, log = workdir / f"{name}-jobs.json", (workdir / f"{name}-clients.log").open("wb")
    ids_file.write_text(json.dumps(ids))
    process = await asyncio.create_subprocess_exec(
        *(sys.executable, "-m", "bench.waiter_clients", "--mode", mode, "--clients", str(count)),
        *("--jobs", str(ids_file), "--out", str(workdir / f"{name}-records.json")),
        *("--grpc-target", target, "--base-url", base_url),
        cwd=procs.ROOT,
        stdout=asyncio.subprocess.PIPE,
        stderr=log,
    )
    clients = Clients(process)
    following = asyncio.create_task(clients.follow())
    try:
        yield clients
    finally:
        if process.returncode is None:
            process.terminate()
            await process.wait()
        await following
        log.close()


class Cpu:
    """CPU use of some processes over a window, as a fraction of one core."""

    def __init__(self, pids: dict[str, int]) -> None:
        self._pids = pids
        self._start = {name: cpu_seconds(pid) for name, pid in pids.items()}
        self._started = time.monotonic()

    def read(self) -> dict[str, float]:
        elapsed = time.monotonic() - self._started
        return {
            name: round((cpu_seconds(pid) - self._start[name]) / elapsed, 3)
            for name, pid in self._pids.items()
        }


def _figures(latencies: list[float]) -> dict[str, Any]:
    ms = [s * 1000 for s in latencies]
    return {
        "p50_ms": round(percentile(ms, 50), 2),
        "p99_ms": round(percentile(ms, 99), 2),
        "max_ms": round(max(ms, default=math.nan), 2),
    }


def _latencies(records: list[list[Any]], ended: Ended, since: float, until: float) -> dict[str, Any]:
    """The answers to jobs that completed in [since, until): from the commit (the server's log
    line), and from completed_at (which the commit follows)."""
    mine = [(job, received) for job, received, _ in records if since <= ended.completed_at[job] < until]
    committed = [received - ended.committed[job] for job, received in mine if job in ended.committed]
    return {
        "answers": len(mine),
        **_figures(committed),
        "from_completed_at": _figures([received - ended.completed_at[job] for job, received in mine]),
    }


_COMMITTED = re.compile(
    r"^(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d),(\d{3}) INFO asyncgate\.dispatcher: job (\S+) completed "
)


@dataclass(frozen=True)
class Ended:
    """When each job ended, as the server says."""

    completed_at: dict[str, float]
    """The `completed_at` the server wrote with the terminal state (its clock just before the write)."""
    committed: dict[str, float]
    """The moment the dispatcher logged the job completed: right after the commit returned and
    the store's event was published, before any waiter has run. Logs have milliseconds: the
    middle of the logged millisecond is taken."""

    @classmethod
    def read(cls, database: Path, server_log: Path) -> Ended:
        with contextlib.closing(sqlite3.connect(f"file:{database}?mode=ro", uri=True)) as conn:
            rows = conn.execute("SELECT id, completed_at FROM jobs WHERE completed_at IS NOT NULL").fetchall()
        committed = {}
        for line in server_log.read_text(errors="replace").splitlines():
            if match := _COMMITTED.match(line):
                local = datetime.strptime(match.group(1), "%Y-%m-%d %H:%M:%S")  # the server's local time
                committed[match.group(3)] = local.timestamp() + (int(match.group(2)) + 0.5) / 1000
        return cls({str(job): float(at) for job, at in rows}, committed)


async def run_mode(workdir: Path, mode: str, settings: WaiterSettings) -> dict[str, Any]:
    jobs, paced = settings.job_count, settings.paced_count
    per_job = settings.clients // jobs
    async with (
        _stack(workdir, mode, settings) as stack,
        aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=PHASE_TIMEOUT)) as http,
    ):
        submit_started = time.monotonic()
        ids = await _submit(stack.target, jobs, mode)
        submit_seconds = time.monotonic() - submit_started

        async def all_held() -> bool:
            return bool((await _get_json(http, f"{stack.provider_url}/bench/held"))["held"] >= jobs)

        await _until("every job to reach the provider", all_held)
        pids = {"server": stack.server.pid, "bridge": stack.bridge.pid}
        idle_rss = {name: rss_bytes(pid) for name, pid in pids.items()}
        clients_of = _clients(workdir, mode, mode, ids, settings.clients, stack.target, stack.base_url)
        async with clients_of as clients:
            await _until("the clients to start", lambda: _event_set(clients.started))
            arrived = time.monotonic()
            if mode.endswith("-poll"):
                await asyncio.sleep(POLL_ROUND_SECONDS)
            else:

                async def all_waiting() -> bool:
                    return await _waiters(http, stack.metrics_url) >= settings.clients

                await _until("every client to wait at the server", all_waiting)
            ready_seconds = time.monotonic() - arrived
            cpu = Cpu({**pids, "clients": clients.process.pid})
            await asyncio.sleep(QUIET_SECONDS)
            waiting_cpu = cpu.read()
            waiting_rss = {name: rss_bytes(pid) for name, pid in pids.items()}
            paced_started = time.time()
            cpu = Cpu({**pids, "clients": clients.process.pid})
            release = {"count": paced, "rate": settings.rate}
            async with http.post(f"{stack.provider_url}/bench/release", json=release) as response:
                paced_release = await response.json()
            await clients.until_answered(paced * per_job)
            paced_cpu = cpu.read()
            paced_seconds = time.time() - paced_started
            burst_started = time.time()
            cpu = Cpu(pids)  # the client process may be gone by the end
            async with http.post(
                f"{stack.provider_url}/bench/release", json={"count": jobs - paced}
            ) as response:
                await response.json()
            await clients.until_answered(settings.clients)
            burst_seconds = time.time() - burst_started
            burst_cpu = cpu.read()
            await _until("the client process to finish", lambda: _event_set(clients.finished))
            errors = clients.errors
        records: list[list[Any]] = json.loads((workdir / f"{mode}-records.json").read_text())
    ended = Ended.read(stack.database, stack.server.log_path)
    return {
        "mode": mode,
        "clients": settings.clients,
        "jobs": jobs,
        "submit_seconds": round(submit_seconds, 1),
        "ready_seconds": round(ready_seconds, 1),
        "idle_rss_mib": {name: round(rss / MIB, 1) for name, rss in idle_rss.items()},
        "waiting": {
            "rss_growth_mib": {name: round((waiting_rss[name] - idle_rss[name]) / MIB, 1) for name in pids},
            "cpu_cores": waiting_cpu,
        },
        "paced": {
            "rate_per_second": settings.rate,
            "jobs": paced,
            "release_seconds": round(paced_release["seconds"], 2),
            "seconds": round(paced_seconds, 2),
            "cpu_ms_per_answer": {
                name: round(cores * paced_seconds / (paced * per_job) * 1000, 2)
                for name, cores in paced_cpu.items()
            },
            "cpu_cores": paced_cpu,
            **_latencies(records, ended, paced_started, burst_started),
        },
        "burst": {
            "jobs": jobs - paced,
            "last_answer_seconds": round(burst_seconds, 2),
            "cpu_cores": burst_cpu,
            **_latencies(records, ended, burst_started, math.inf),
        },
        "requests": sum(r[2] for r in records),
        "client_errors": errors,
    }


async def baseline_mode(workdir: Path, mode: str, settings: WaiterSettings) -> dict[str, Any]:
    """The same clients held by bare grpc.aio (gRPC modes) or bare aiohttp (REST) doing nothing
    else (bench.held_calls): RSS growth and CPU over the same quiet window."""
    name = f"{mode}-bare"
    grpc_port, http_port = procs.free_port(), procs.free_port()
    args = ["-m", "bench.held_calls", "--grpc-port", str(grpc_port), "--http-port", str(http_port)]
    if mode.startswith("grpc-"):
        args.append("--keep-freed-memory")  # as asyncgate's server sets malloc
    base_url = f"http://127.0.0.1:{http_port}"
    ids = [f"job-{i}" for i in range(settings.job_count)]
    with contextlib.ExitStack() as stack:
        bare = procs.start(stack, name, args, workdir)
        await procs.wait_http_ready(bare, base_url)
        async with aiohttp.ClientSession() as http:
            idle_rss = rss_bytes(bare.pid)
            clients_of = _clients(
                workdir, name, mode, ids, settings.clients, f"127.0.0.1:{grpc_port}", base_url
            )
            async with clients_of as clients:
                await _until("the clients to start", lambda: _event_set(clients.started))

                async def all_held() -> bool:
                    return bool((await _get_json(http, f"{base_url}/held"))["held"] >= settings.clients)

                await _until("every call to be held", all_held)
                cpu = Cpu({"bare": bare.pid, "clients": clients.process.pid})
                await asyncio.sleep(QUIET_SECONDS)
                waiting_cpu = cpu.read()
                rss = rss_bytes(bare.pid)
    return {
        "idle_rss_mib": round(idle_rss / MIB, 1),
        "rss_growth_mib": round((rss - idle_rss) / MIB, 1),
        "cpu_cores": waiting_cpu,
    }


async def _event_set(event: asyncio.Event) -> bool:
    return event.is_set()


async def waiters_measurement(workdir: Path, settings: WaiterSettings) -> dict[str, Any]:
    if settings.clients % settings.job_count:
        raise ValueError(f"{settings.clients} clients do not spread evenly over {settings.job_count} jobs")
    part: dict[str, Any] = {
        "clients": settings.clients,
        "jobs": settings.job_count,
        "paced": settings.paced_count,
        "rate": settings.rate,
        "fd_limit": raise_fd_limit(),
        "quiet_seconds": QUIET_SECONDS,
        "load_average_start": load_average(),
    }
    for mode in settings.modes:
        part[mode] = await run_mode(workdir, mode, settings)
        if not mode.endswith("-poll"):
            part[mode]["bare"] = await baseline_mode(workdir, mode, settings)
    part["load_average_end"] = load_average()
    return part


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.waiters", description=__doc__)
    parser.add_argument("--clients", type=int, default=10_000)
    parser.add_argument("--jobs", type=int, default=0, help="jobs waited on (default: one per client)")
    parser.add_argument("--paced", type=int, default=2_000)
    parser.add_argument("--rate", type=float, default=200.0)
    parser.add_argument("--modes", default=",".join(MODES))
    parser.add_argument("--workdir", type=Path, help="keep the processes' logs and data here")
    args = parser.parse_args()
    settings = WaiterSettings(args.clients, args.jobs, args.paced, args.rate, tuple(args.modes.split(",")))
    with contextlib.ExitStack() as stack:
        workdir = args.workdir or Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="waiters-")))
        workdir.mkdir(parents=True, exist_ok=True)
        print(json.dumps(asyncio.run(waiters_measurement(workdir, settings)), indent=2))


if __name__ == "__main__":
    main()
