"""Closed-loop load: N workers, each sending its next request as soon as the last one is answered.

A run lasts a fixed time; requests already sent when it ends are waited for and
counted. Only successful answers (202 / a gRPC reply with a job id) count towards
throughput and latency; everything else is tallied by status.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Self

import aiohttp
import grpc

from asyncgate.v1 import job_pb2, job_service_pb2, job_service_pb2_grpc
from bench.payloads import MultipartBody

if TYPE_CHECKING:  # the async stub type exists only in the generated .pyi
    from asyncgate.v1.job_service_pb2_grpc import JobServiceAsyncStub

EDITS_PATH = "/v1/async/images/edits"
REQUEST_TIMEOUT = 30.0
ERROR_PAUSE = 0.05
"""Seconds a worker waits after a failed connection, so a dead target does not spin the loop."""
_MAX_ERRORS_KEPT = 5


@dataclass
class LoadResult:
    """What a run (or several merged runs) produced."""

    latencies: list[float] = field(default_factory=list)
    """Seconds, of successful requests only."""
    statuses: Counter[str] = field(default_factory=Counter)
    errors: list[str] = field(default_factory=list)
    """The first few failure messages."""
    elapsed: float = 0.0
    sample: dict[str, Any] | None = None
    """The first successful answer, decoded."""
    samples: dict[str, list[float]] = field(default_factory=dict)
    """Other per-request figures by name: seconds (e.g. the server's own job time) unless the
    name says otherwise."""
    submitted: dict[str, float] = field(default_factory=dict)
    """Jobs only: unique input text -> time.monotonic() when its submit returned, to match
    against when the provider saw it."""

    @property
    def ok(self) -> int:
        return len(self.latencies)

    def success(self, latency: float, status: str) -> None:
        self.latencies.append(latency)
        self.statuses[status] += 1

    def failure(self, status: str, message: str) -> None:
        self.statuses[status] += 1
        if len(self.errors) < _MAX_ERRORS_KEPT:
            self.errors.append(message)

    def merge(self, other: LoadResult) -> None:
        self.latencies += other.latencies
        self.statuses += other.statuses
        self.errors += other.errors[: max(0, _MAX_ERRORS_KEPT - len(self.errors))]
        self.elapsed += other.elapsed
        self.sample = self.sample or other.sample
        for name, values in other.samples.items():
            self.samples.setdefault(name, []).extend(values)
        self.submitted.update(other.submitted)

    def add_sample(self, name: str, seconds: float) -> None:
        self.samples.setdefault(name, []).append(seconds)


Worker = Callable[[float, LoadResult], Awaitable[None]]
"""A worker loop: send requests until the deadline (perf_counter), recording into the result."""


async def run_load(worker: Worker, concurrency: int, duration: float) -> LoadResult:
    result = LoadResult()
    start = time.perf_counter()
    deadline = start + duration
    await asyncio.gather(*(worker(deadline, result) for _ in range(concurrency)))
    result.elapsed = time.perf_counter() - start
    return result


class HttpClient:
    """Mixin of the HTTP loads: `_http`, a keep-alive pool of `concurrency` connections, open
    inside `async with`."""

    concurrency: int
    _http: aiohttp.ClientSession | None = None

    async def __aenter__(self) -> Self:
        self._http = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=self.concurrency),
            timeout=aiohttp.ClientTimeout(total=REQUEST_TIMEOUT),
        )
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._http is not None:
            await self._http.close()


class RestTarget(HttpClient):
    """Posts the multipart form (or another body, to another `path`) to one HTTP server over a
    keep-alive pool of N connections."""

    def __init__(self, base_url: str, body: MultipartBody, concurrency: int, path: str = EDITS_PATH) -> None:
        self.url = base_url + path
        self.concurrency = concurrency
        self._body = body
        self._headers = {"Content-Type": body.content_type}

    async def run(self, duration: float) -> LoadResult:
        return await run_load(self._worker, self.concurrency, duration)

    async def _worker(self, deadline: float, result: LoadResult) -> None:
        assert self._http is not None
        while (start := time.perf_counter()) < deadline:
            try:
                async with self._http.post(self.url, data=self._body.data, headers=self._headers) as r:
                    payload = await r.read()
                    status = r.status
            except (aiohttp.ClientError, TimeoutError) as exc:
                result.failure(type(exc).__name__, repr(exc))
                await asyncio.sleep(ERROR_PAUSE)
                continue
            if status == 202:
                result.success(time.perf_counter() - start, str(status))
                if result.sample is None:  # decoded once: the bench process is the client, keep it light
                    result.sample = _json(payload)
            else:
                result.failure(str(status), payload[:300].decode(errors="replace"))


def _json(payload: bytes) -> dict[str, Any]:
    decoded: dict[str, Any] = json.loads(payload)
    return decoded


CreateRequest = job_service_pb2.CreateImageEditJobRequest | job_service_pb2.CreateEmbeddingJobRequest


async def create_job(stub: JobServiceAsyncStub, request: CreateRequest) -> job_pb2.Job:
    """The Create call that takes `request`."""
    if isinstance(request, job_service_pb2.CreateEmbeddingJobRequest):
        return (await stub.CreateEmbeddingJob(request, timeout=REQUEST_TIMEOUT)).job
    return (await stub.CreateImageEditJob(request, timeout=REQUEST_TIMEOUT)).job


class GrpcTarget:
    """Calls CreateImageEditJob (or CreateEmbeddingJob) on one server, N calls in flight on one channel."""

    def __init__(self, target: str, request: CreateRequest, concurrency: int) -> None:
        self.target = target
        self.concurrency = concurrency
        self._request = request
        self._channel: grpc.aio.Channel | None = None
        self._stub: JobServiceAsyncStub | None = None

    async def __aenter__(self) -> GrpcTarget:
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
                job = await create_job(self._stub, self._request)
            except grpc.aio.AioRpcError as exc:
                result.failure(exc.code().name, exc.details() or "")
                if exc.code() == grpc.StatusCode.UNAVAILABLE:
                    await asyncio.sleep(ERROR_PAUSE)
                continue
            result.success(time.perf_counter() - start, "OK")
            if result.sample is None:
                result.sample = {"id": job.id, "status": job_pb2.JobStatus.Name(job.status)}
