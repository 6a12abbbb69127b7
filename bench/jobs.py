"""End-to-end job load: N clients, each submitting a job, polling it until it ends, then the next.

A job's latency runs from the submit call to the poll that sees it completed (its
vectors read, for embeddings over gRPC, as the REST poll reads them). Every job has a
unique input text, so the provider's arrival records can be matched to submit times
(LoadResult.submitted). The server's own view, created -> completed from its
timestamps, is kept as the `server` sample: it has no poll granularity in it.

The baseline, DirectEmbeddings, is the same kind of client calling the provider itself.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

import aiohttp
import grpc

from asyncgate.v1 import embedding_pb2, job_pb2, job_service_pb2, job_service_pb2_grpc
from bench.load import (
    ERROR_PAUSE,
    REQUEST_TIMEOUT,
    CreateRequest,
    HttpClient,
    LoadResult,
    create_job,
    run_load,
)

if TYPE_CHECKING:  # the async stub type exists only in the generated .pyi
    from asyncgate.v1.job_service_pb2_grpc import JobServiceAsyncStub

POLL_INTERVAL = 0.01
JOB_TIMEOUT = 30.0
"""A job not ended by then counts as failed ("timeout"): a stuck dispatcher cannot hang the bench."""
SERVER_SAMPLE = "server"
SUBMIT_SAMPLE = "submit"
"""Seconds the submit call took (the rest of a job's latency is polling)."""
POLLS_SAMPLE = "polls"
"""A count, not seconds: polls a job took, the last (terminal) one included."""
_RUNNING = (job_pb2.JOB_STATUS_PENDING, job_pb2.JOB_STATUS_PROCESSING)
_FLOAT32_BYTES = 4


class JobFailed(Exception):
    def __init__(self, status: str, message: str) -> None:
        super().__init__(message)
        self.status = status


@dataclass(frozen=True)
class Finished:
    server_seconds: float
    """created -> completed, as the server recorded them."""
    sample: dict[str, Any]


class JobLoad:
    """The closed loop; subclasses say how to submit and how to poll."""

    def __init__(self, concurrency: int, poll_interval: float = POLL_INTERVAL) -> None:
        self.concurrency = concurrency
        self.poll_interval = poll_interval
        self._prefix = uuid.uuid4().hex[:8]  # texts unique across loads sharing one provider
        self._texts = itertools.count()
        self._slots = itertools.count()

    async def run(self, duration: float) -> LoadResult:
        return await run_load(self._worker, self.concurrency, duration)

    async def _submit(self, slot: int, text: str) -> str:
        raise NotImplementedError

    async def _poll(self, slot: int, job_id: str) -> Finished | None:
        """None while the job runs; JobFailed when it failed."""
        raise NotImplementedError

    async def _job(self, slot: int, text: str, result: LoadResult) -> Finished:
        started = time.monotonic()
        job_id = await self._submit(slot, text)
        submitted = time.monotonic()
        give_up = time.perf_counter() + JOB_TIMEOUT
        polls = 0
        while True:
            await asyncio.sleep(self.poll_interval)  # first poll after one interval: at once it is never done
            polls += 1
            if (finished := await self._poll(slot, job_id)) is not None:
                result.submitted[text] = submitted
                result.add_sample(POLLS_SAMPLE, polls)
                result.add_sample(SUBMIT_SAMPLE, submitted - started)
                return finished
            if time.perf_counter() > give_up:
                raise JobFailed("timeout", f"job {job_id} still running after {JOB_TIMEOUT} s")

    async def _worker(self, deadline: float, result: LoadResult) -> None:
        slot = next(self._slots)  # which target this client uses, where there are several
        while (start := time.perf_counter()) < deadline:
            text = f"bench {self._prefix} {next(self._texts)}"
            try:
                finished = await self._job(slot, text, result)
            except JobFailed as exc:
                result.failure(exc.status, str(exc))
                continue
            except (aiohttp.ClientError, TimeoutError) as exc:
                result.failure(type(exc).__name__, repr(exc))
                await asyncio.sleep(ERROR_PAUSE)
                continue
            except grpc.aio.AioRpcError as exc:
                result.failure(exc.code().name, exc.details() or "")
                await asyncio.sleep(ERROR_PAUSE)
                continue
            result.success(time.perf_counter() - start, "completed")
            result.add_sample(SERVER_SAMPLE, finished.server_seconds)
            if result.sample is None:
                result.sample = finished.sample


def _rfc3339(text: str) -> datetime:
    return datetime.fromisoformat(text)


class RestJobs(JobLoad, HttpClient):
    """Through the REST bridge: POST {path} (202 + id), GET {path}/{id} until 200."""

    def __init__(
        self, base_url: str, path: str, body: Callable[[str], dict[str, Any]], concurrency: int
    ) -> None:
        super().__init__(concurrency)
        self.url = base_url + path
        self._body = body

    async def _submit(self, slot: int, text: str) -> str:
        assert self._http is not None
        async with self._http.post(self.url, json=self._body(text)) as response:
            payload = await response.read()
            if response.status != 202:
                raise JobFailed(str(response.status), payload[:300].decode(errors="replace"))
        job_id: str = json.loads(payload)["id"]
        return job_id

    async def _poll(self, slot: int, job_id: str) -> Finished | None:
        assert self._http is not None
        async with self._http.get(f"{self.url}/{job_id}") as response:
            payload = await response.read()
            if response.status == 202:
                return None
            if response.status != 200:
                raise JobFailed(str(response.status), payload[:300].decode(errors="replace"))
        doc: dict[str, Any] = json.loads(payload)
        if doc["status"] != "completed":
            raise JobFailed(doc["status"], json.dumps(doc.get("error"))[:300])
        took = _rfc3339(doc["completed_at"]) - _rfc3339(doc["created_at"])
        sample = {key: value for key, value in doc.items() if key != "result"}
        sample["result_items"] = len(doc["result"]["data"])  # the vectors or image URLs themselves left out
        return Finished(took.total_seconds(), sample)


def embedding_request(model: str) -> Callable[[str], job_service_pb2.CreateEmbeddingJobRequest]:
    def request(text: str) -> job_service_pb2.CreateEmbeddingJobRequest:
        return job_service_pb2.CreateEmbeddingJobRequest(
            request=embedding_pb2.EmbeddingRequest(model=model, input=embedding_pb2.EmbeddingInput(text=text))
        )

    return request


class GrpcJobs(JobLoad):
    """Over gRPC: Create*Job, GetJob until terminal, ReadJobOutput of an embedding's vectors.

    With several targets (replicas), client k talks to target k mod len(targets) only.
    """

    def __init__(
        self, targets: Sequence[str], request: Callable[[str], CreateRequest], concurrency: int
    ) -> None:
        super().__init__(concurrency)
        self.targets = list(targets)
        self._request = request
        self._channels: list[grpc.aio.Channel] = []
        self._stubs: list[JobServiceAsyncStub] = []

    async def __aenter__(self) -> GrpcJobs:
        self._channels = [grpc.aio.insecure_channel(target) for target in self.targets]
        self._stubs = [job_service_pb2_grpc.JobServiceStub(channel) for channel in self._channels]
        return self

    async def __aexit__(self, *exc: object) -> None:
        for channel in self._channels:
            await channel.close(grace=None)

    def _stub(self, slot: int) -> JobServiceAsyncStub:
        return self._stubs[slot % len(self._stubs)]

    async def _submit(self, slot: int, text: str) -> str:
        return (await create_job(self._stub(slot), self._request(text))).id

    async def _poll(self, slot: int, job_id: str) -> Finished | None:
        stub = self._stub(slot)
        job = (await stub.GetJob(job_service_pb2.GetJobRequest(id=job_id), timeout=REQUEST_TIMEOUT)).job
        if job.status in _RUNNING:
            return None
        if job.status != job_pb2.JOB_STATUS_COMPLETED:
            raise JobFailed(job_pb2.JobStatus.Name(job.status), job.error.error.message[:300])
        if job.WhichOneof("result") == "embedding_result":
            await self._read_vectors(stub, job)
        took = job.complete_time.ToDatetime() - job.create_time.ToDatetime()
        sample = {"id": job.id, "status": job_pb2.JobStatus.Name(job.status), "model": job.model}
        return Finished(took.total_seconds(), sample)

    async def _read_vectors(self, stub: JobServiceAsyncStub, job: job_pb2.Job) -> None:
        result = job.embedding_result
        request = job_service_pb2.ReadJobOutputRequest(
            job_id=job.id, index=result.vectors.index, access_token=result.vectors.access_token
        )
        size = 0
        async for message in stub.ReadJobOutput(request, timeout=REQUEST_TIMEOUT):
            size += len(message.chunk)
        if size != result.count * result.dimensions * _FLOAT32_BYTES:
            raise JobFailed("short_output", f"job {job.id}: {size} bytes of vectors")


class DirectEmbeddings(HttpClient):
    """The baseline: the same kind of client calling the provider's POST /embeddings itself."""

    def __init__(self, provider_url: str, model: str, concurrency: int) -> None:
        self.url = provider_url + "/embeddings"
        self.model = model
        self.concurrency = concurrency
        self._prefix = uuid.uuid4().hex[:8]
        self._texts = itertools.count()

    async def run(self, duration: float) -> LoadResult:
        return await run_load(self._worker, self.concurrency, duration)

    async def _worker(self, deadline: float, result: LoadResult) -> None:
        assert self._http is not None
        while (start := time.perf_counter()) < deadline:
            # What the gateway's adapter sends: base64 vectors.
            body = {"model": self.model, "input": f"direct {self._prefix} {next(self._texts)}"}
            try:
                async with self._http.post(self.url, json={**body, "encoding_format": "base64"}) as r:
                    payload = await r.read()
                    status = r.status
            except (aiohttp.ClientError, TimeoutError) as exc:
                result.failure(type(exc).__name__, repr(exc))
                await asyncio.sleep(ERROR_PAUSE)
                continue
            if status != 200:
                result.failure(str(status), payload[:300].decode(errors="replace"))
                continue
            doc = json.loads(payload)  # a client reads the answer, as the gateway does
            result.success(time.perf_counter() - start, str(status))
            if result.sample is None:
                result.sample = {"model": doc["model"], "vectors": len(doc["data"])}
