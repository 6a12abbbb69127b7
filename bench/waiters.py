"""Many clients waiting on jobs: what they cost while they wait, and how soon each hears that its
job ended. Waiting (gRPC WaitJob, gRPC WatchJob, REST `Prefer: wait`) against the same clients
polling once a second.

    python -m bench.waiters [--clients 10000] [--jobs 100] [--modes grpc-wait,grpc-watch,rest-wait,rest-poll]

One process holds the server (SQLite), the bridge and the clients, on one event loop, and a
provider that holds every call until released: the jobs are all running while the clients
wait. Per mode: the process's RSS growth and CPU use over a quiet window with every client
waiting, then the latency from each job's completion (its completed_at) to each client's
answer, p50 and p99. Clients are spread evenly over the jobs. One loop for everything makes
the latencies an upper bound: the clients' own work delays the server's."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import resource
import tempfile
import time
from collections.abc import AsyncIterator, Callable, Coroutine
from dataclasses import replace
from datetime import datetime
from pathlib import Path
from typing import Any

import aiohttp
import grpc
from aiohttp import web

from asyncgate.v1 import embedding_pb2 as emb_pb
from asyncgate.v1 import job_pb2 as job_pb
from asyncgate.v1 import job_service_pb2 as pb
from asyncgate.v1 import job_service_pb2_grpc as pb_grpc
from bench.stats import percentile
from grpc_server.config import ApiKey, DispatcherSettings, ProviderSettings, ServerConfig
from grpc_server.server import AsyncGateServer
from rest_bridge.app import create_app
from rest_bridge.config import BridgeConfig
from rest_bridge.serving import start_bridge

QUIET_SECONDS = 5.0
"""How long every client waits before the jobs are released: the window RSS and CPU are read over."""
ARRIVAL_BATCH = 200
ARRIVAL_PAUSE_SECONDS = 0.25
"""Clients arrive in batches (800 a second). gRPC's server cancels calls beyond its pending-call
limits (`grpc.server.max_pending_requests`, 1000, and `..._hard_limit`, 3000, by default): 5,000
calls started in one instant on a plain grpc.aio server had 2,271 end CANCELLED, none with both
limits raised. asyncgate's server keeps the defaults, so a burst of waiters (or of the REST
bridge's reads when thousands of waits end at once) meets them; see the job API's report."""
TERMINAL = (job_pb.JOB_STATUS_COMPLETED, job_pb.JOB_STATUS_FAILED, job_pb.JOB_STATUS_CANCELLED)


class Gate:
    """OpenAI's embeddings endpoint, answering nothing until released."""

    def __init__(self) -> None:
        self.open = asyncio.Event()
        self.arrived = 0

    async def embeddings(self, request: web.Request) -> web.Response:
        await request.read()
        self.arrived += 1
        await self.open.wait()
        return web.json_response(
            {
                "object": "list",
                "data": [{"object": "embedding", "index": 0, "embedding": [0.5, 0.5]}],
                "model": "bench",
                "usage": {"prompt_tokens": 1, "total_tokens": 1},
            }
        )


def _rss_bytes() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    return 0


def _cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


@contextlib.asynccontextmanager
async def _stack(jobs: int, clients: int) -> AsyncIterator[tuple[Gate, str, str]]:
    gate = Gate()
    app = web.Application()
    app.router.add_post("/v1/embeddings", gate.embeddings)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    provider_url = f"http://127.0.0.1:{runner.addresses[0][1]}/v1"
    with tempfile.TemporaryDirectory(prefix="asyncgate-waiters-") as data_dir:
        config = ServerConfig(
            port=0,
            data_dir=Path(data_dir),
            providers={
                "openai": ProviderSettings(
                    keys=(ApiKey("sk-bench"),), base_url=provider_url, max_concurrency=jobs
                )
            },
            dispatcher=DispatcherSettings(concurrency=jobs, lease_seconds=120),
        )
        server = AsyncGateServer(config)
        port = await server.start()
        bridge_config = replace(
            BridgeConfig(), grpc_target=f"127.0.0.1:{port}", port=0, max_connections=clients + 100
        )
        bridge = await start_bridge(create_app(bridge_config), bridge_config)
        try:
            yield gate, f"127.0.0.1:{port}", f"http://127.0.0.1:{bridge.addresses[0][1]}"
        finally:
            gate.open.set()
            await bridge.cleanup()
            await server.stop(grace=1.0)
            await runner.cleanup()


def _done_at(job: job_pb.Job) -> float:
    return job.complete_time.ToDatetime().timestamp() if job.HasField("complete_time") else 0.0


async def _grpc_wait(stub: Any, job_id: str) -> float:
    reply = await stub.WaitJob(pb.WaitJobRequest(id=job_id), timeout=300)
    return time.time() - _done_at(reply.job)


async def _grpc_watch(stub: Any, job_id: str) -> float:
    async for message in stub.WatchJob(pb.WatchJobRequest(id=job_id), timeout=300):
        if message.job.status in TERMINAL:
            return time.time() - _done_at(message.job)
    raise RuntimeError("the watch ended before the job")


def _rest_done_at(body: dict[str, Any]) -> float:
    return datetime.fromisoformat(body["completed_at"].replace("Z", "+00:00")).timestamp()


async def _rest_wait(http: aiohttp.ClientSession, job_id: str) -> float:
    while True:
        async with http.get(f"/v1/async/embeddings/{job_id}", headers={"Prefer": "wait=60"}) as response:
            body = await response.json()
        if response.status == 200:
            return time.time() - _rest_done_at(body)
        if response.status != 202:
            raise RuntimeError(f"the bridge answered {response.status}: {body}")


async def _rest_poll(http: aiohttp.ClientSession, job_id: str) -> float:
    while True:
        async with http.get(f"/v1/async/embeddings/{job_id}") as response:
            body = await response.json()
        if response.status == 200:
            return time.time() - _rest_done_at(body)
        if response.status != 202:
            raise RuntimeError(f"the bridge answered {response.status}: {body}")
        await asyncio.sleep(1.0)


async def run_mode(mode: str, clients: int, jobs: int) -> dict[str, Any]:
    async with _stack(jobs, clients) as (gate, target, base_url):
        channel = grpc.aio.insecure_channel(target)
        http = aiohttp.ClientSession(base_url, connector=aiohttp.TCPConnector(limit=0))
        try:
            stub = pb_grpc.JobServiceStub(channel)
            ids = []
            for i in range(jobs):
                request = emb_pb.EmbeddingRequest(
                    model="openai/bench", input=emb_pb.EmbeddingInput(text=f"t{i}")
                )
                ids.append(
                    (await stub.CreateEmbeddingJob(pb.CreateEmbeddingJobRequest(request=request))).job.id
                )
            while gate.arrived < jobs:  # every job running, held at the provider
                await asyncio.sleep(0.05)
            client: Callable[[str], Coroutine[Any, Any, float]] = {
                "grpc-wait": lambda job_id: _grpc_wait(stub, job_id),
                "grpc-watch": lambda job_id: _grpc_watch(stub, job_id),
                "rest-wait": lambda job_id: _rest_wait(http, job_id),
                "rest-poll": lambda job_id: _rest_poll(http, job_id),
            }[mode]
            rss_before = _rss_bytes()
            tasks = []
            for start in range(0, clients, ARRIVAL_BATCH):  # see ARRIVAL_BATCH
                batch = range(start, min(start + ARRIVAL_BATCH, clients))
                tasks += [asyncio.create_task(client(ids[i % jobs])) for i in batch]
                await asyncio.sleep(ARRIVAL_PAUSE_SECONDS)
            await asyncio.sleep(QUIET_SECONDS / 2)  # everyone has arrived
            cpu_start, started = _cpu_seconds(), time.monotonic()
            await asyncio.sleep(QUIET_SECONDS)
            cpu = (_cpu_seconds() - cpu_start) / (time.monotonic() - started)
            rss = _rss_bytes() - rss_before
            gate.open.set()
            latencies = await asyncio.gather(*tasks)
        finally:
            await http.close()
            await channel.close(grace=None)
    return {
        "mode": mode,
        "clients": clients,
        "jobs": jobs,
        "rss_growth_mib": round(rss / 2**20, 1),
        "cpu_while_waiting": f"{cpu:.0%} of one core",
        "latency_ms_p50": round(percentile(list(latencies), 50) * 1000, 1),
        "latency_ms_p99": round(percentile(list(latencies), 99) * 1000, 1),
    }


async def main(clients: int, jobs: int, modes: list[str]) -> None:
    _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))  # REST clients: two sockets each
    for mode in modes:
        print(await run_mode(mode, clients, jobs), flush=True)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(prog="python -m bench.waiters", description=__doc__)
    parser.add_argument("--clients", type=int, default=10_000)
    parser.add_argument("--jobs", type=int, default=100)
    parser.add_argument("--modes", default="grpc-wait,grpc-watch,rest-wait,rest-poll")
    args = parser.parse_args()
    asyncio.run(main(args.clients, args.jobs, args.modes.split(",")))
