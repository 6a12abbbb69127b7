"""Polls of an ended job: what asyncgate spends answering one, against a bare server answering
the same bytes.

One embedding job (2 inputs x 256 dimensions, local provider) is run to completion; then REST
polls (`GET /v1/async/embeddings/{id}` through the bridge) are compared with a bare aiohttp
handler returning the very same answer, and gRPC `GetJob` with a bare grpc.aio handler
returning the very same reply, each with the same closed-loop load. A third comparison gives
the REST ratio's ceiling while every poll asks the server (access and existence are decided
there): the bare aiohttp handler plus one GetJob call to the bare grpc.aio handler (the
"relay"); a fourth compares asyncgate's REST polls with the relay directly.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import aiohttp
import grpc

from asyncgate.v1 import job_service_pb2, job_service_pb2_grpc
from bench import procs
from bench.compare import Side
from bench.load import ERROR_PAUSE, REQUEST_TIMEOUT, HttpClient, LoadResult, run_load
from bench.stats import comparison

if TYPE_CHECKING:
    from asyncgate.v1.job_service_pb2_grpc import JobServiceAsyncStub
    from bench.runner import Settings

EMBEDDINGS = "/v1/async/embeddings"
JOB_BODY = {"model": "local/hashing", "input": ["a cat on a mat", "a dog in the fog"], "dimensions": 256}


class RestPolls(HttpClient):
    def __init__(self, url: str, concurrency: int) -> None:
        self.url = url
        self.concurrency = concurrency

    async def run(self, duration: float) -> LoadResult:
        return await run_load(self._worker, self.concurrency, duration)

    async def _worker(self, deadline: float, result: LoadResult) -> None:
        assert self._http is not None
        while (start := time.perf_counter()) < deadline:
            try:
                async with self._http.get(self.url) as response:
                    payload = await response.read()
                    status = response.status
            except (aiohttp.ClientError, TimeoutError) as exc:
                result.failure(type(exc).__name__, repr(exc))
                await asyncio.sleep(ERROR_PAUSE)
                continue
            if status == 200:
                result.success(time.perf_counter() - start, "200")
            else:
                result.failure(str(status), payload[:300].decode(errors="replace"))


class GrpcPolls:
    def __init__(self, target: str, job_id: str, concurrency: int) -> None:
        self.target, self.concurrency = target, concurrency
        self._request = job_service_pb2.GetJobRequest(id=job_id)
        self._channel: grpc.aio.Channel | None = None
        self._stub: JobServiceAsyncStub | None = None

    async def __aenter__(self) -> GrpcPolls:
        self._channel = grpc.aio.insecure_channel(self.target)
        self._stub = job_service_pb2_grpc.JobServiceStub(self._channel)
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._channel is not None:
            await self._channel.close(grace=None)

    async def run(self, duration: float) -> LoadResult:
        return await run_load(self._worker, self.concurrency, duration)

    async def _worker(self, deadline: float, result: LoadResult) -> None:
        assert self._stub is not None
        while (start := time.perf_counter()) < deadline:
            try:
                await self._stub.GetJob(self._request, timeout=REQUEST_TIMEOUT)
            except grpc.aio.AioRpcError as exc:
                result.failure(exc.code().name, exc.details() or "")
                continue
            result.success(time.perf_counter() - start, "OK")


async def _ended_job(bridge_url: str, grpc_target: str) -> tuple[str, bytes, bytes]:
    """An embedding job run to its end; (id, the REST poll's answer, the GetJob reply)."""
    async with aiohttp.ClientSession(bridge_url) as http:
        headers = {"Prefer": "wait=60"}
        async with http.post(EMBEDDINGS, json=JOB_BODY, headers=headers) as response:
            job_id: str = (await response.json())["id"]
        async with http.get(f"{EMBEDDINGS}/{job_id}", headers=headers) as response:
            assert response.status == 200, await response.text()
            body = await response.read()
    async with grpc.aio.insecure_channel(grpc_target) as channel:
        reply = await job_service_pb2_grpc.JobServiceStub(channel).GetJob(
            job_service_pb2.GetJobRequest(id=job_id)
        )
    return job_id, body, reply.SerializeToString()


def _baseline(stack: contextlib.ExitStack, workdir: Path, kind: str, *args: str) -> tuple[procs.Process, int]:
    port = procs.free_port()
    process = procs.start(
        stack,
        f"polls-{kind}-baseline",
        ["-m", "bench.poll_baselines", kind, "--port", str(port), *args],
        workdir,
    )
    return process, port


async def poll_measurement(workdir: Path, settings: Settings) -> dict[str, Any]:
    options = procs.ServerOptions(concurrency=4, poll_interval_seconds=0.2)
    with contextlib.ExitStack() as stack:
        server, target = procs.start_server(stack, workdir, "polls-grpc-server", options)
        await procs.wait_grpc_ready(server, target)
        bridge, bridge_url = procs.start_bridge(stack, workdir, target, "polls-rest-bridge")
        await procs.wait_http_ready(bridge, bridge_url)
        job_id, body, reply = await _ended_job(bridge_url, target)
        body_file, reply_file = workdir / "poll-body.json", workdir / "poll-reply.bin"
        body_file.write_bytes(body)
        reply_file.write_bytes(reply)
        rest_base, rest_port = _baseline(stack, workdir, "rest", "--body", str(body_file))
        grpc_base, grpc_port = _baseline(stack, workdir, "grpc", "--reply", str(reply_file))
        base_target = f"127.0.0.1:{grpc_port}"
        relay, relay_port = _baseline(
            stack, workdir, "relay", "--body", str(body_file), "--target", base_target
        )
        await procs.wait_grpc_ready(grpc_base, base_target)
        rest_base_url, relay_url = f"http://127.0.0.1:{rest_port}", f"http://127.0.0.1:{relay_port}"
        await _wait_http(rest_base, rest_base_url)
        await _wait_http(relay, relay_url)
        path = f"{EMBEDDINGS}/{job_id}"
        async with (
            RestPolls(rest_base_url + path, settings.concurrency) as bare_rest,
            RestPolls(bridge_url + path, settings.concurrency) as real_rest,
            RestPolls(relay_url + path, settings.concurrency) as relayed_rest,
            GrpcPolls(base_target, job_id, settings.concurrency) as bare_grpc,
            GrpcPolls(target, job_id, settings.concurrency) as real_grpc,
        ):
            rest = await settings.compare(
                Side("baseline", bare_rest.run, {"rest-baseline": rest_base.pid}),
                Side("asyncgate", real_rest.run, {"rest-bridge": bridge.pid, "grpc-server": server.pid}),
            )
            grpc_side = await settings.compare(
                Side("baseline", bare_grpc.run, {"grpc-baseline": grpc_base.pid}),
                Side("asyncgate", real_grpc.run, {"grpc-server": server.pid}),
            )
            # The most the REST ratio can be while each poll makes one gRPC call: the bare
            # handler plus one GetJob to the bare grpc.aio handler, and nothing else.
            relay_side = Side("relay", relayed_rest.run, {"relay": relay.pid, "grpc-baseline": grpc_base.pid})
            ceiling = await settings.compare(
                Side("baseline", bare_rest.run, {"rest-baseline": rest_base.pid}), relay_side
            )
            # asyncgate's REST polls against that ceiling directly, in interleaved rounds.
            to_ceiling = await settings.compare(
                replace(relay_side, name="baseline"),
                Side("asyncgate", real_rest.run, {"rest-bridge": bridge.pid, "grpc-server": server.pid}),
            )
    return {
        "answer_bytes": len(body),
        "reply_bytes": len(reply),
        "rest": comparison(*rest),
        "grpc": comparison(*grpc_side),
        "rest_ceiling": comparison(*ceiling),
        "rest_to_ceiling": comparison(*to_ceiling),
    }


async def _wait_http(process: procs.Process, url: str) -> None:
    """Until the bare server answers (it has no /health of its own: any GET answers)."""
    async with aiohttp.ClientSession() as session:
        for _ in range(300):
            process.check_alive()
            with contextlib.suppress(aiohttp.ClientError):
                async with session.get(url + "/ready") as response:
                    if response.status == 200:
                        return
            await asyncio.sleep(0.1)
    raise procs.ProcessFailed(f"{process.name} never answered:\n{process.log_tail()}")
