"""Faults survived by server replicas on one PostgreSQL database, shown with real processes.

Every server is a `python -m grpc_server` subprocess with a TOML config whose
`database_url` names a fresh database (tests/pg.py); REST goes through `python -m
rest_bridge` subprocesses. The provider is the fake OpenAI server in the test process.

Telling answers apart. Each job has a unique prompt, so the fake's records say which job
reached the provider and how often. Each replica has its own API key (the only difference
between their configs), so the records also say which replica made each call. And the
fake answers from a script in which answer k carries `created = CREATED_BASE + k` and an
image of its own: the stored result of a job names the one answer it was made from.
"""

from __future__ import annotations

import asyncio
import base64
import functools
import io
import os
from collections import defaultdict
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import aiohttp
import asyncpg
import grpc
import pytest
from google.rpc import error_details_pb2
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_status import rpc_status
from PIL import Image

from asyncgate.v1 import image_common_pb2 as common_pb
from asyncgate.v1 import image_edit_pb2 as edit_pb
from asyncgate.v1 import job_pb2 as job_pb
from asyncgate.v1 import job_service_pb2 as pb
from asyncgate.v1 import job_service_pb2_grpc as pb_grpc
from tests.fakes.openai_server import EDITS_PATH, FakeOpenAI, FakeResponse
from tests.images import png_bytes
from tests.pg import fresh_database, server_address, with_address
from tests.processes import GrpcServerProcess, RestBridgeProcess, ServiceProcess, TomlTable
from tests.rest import EDITS
from tests.tcp_proxy import TcpProxy

if TYPE_CHECKING:
    from asyncgate.v1.job_service_pb2_grpc import JobServiceAsyncStub

pytestmark = pytest.mark.slow

T = TypeVar("T")

MODEL = "openai/gpt-image-1"
URL_SIGNING_SECRET = "replica-tests-url-signing-secret"
"""The same on every replica, so an image URL signed by one is accepted by all."""
INPUT_IMAGE = png_bytes(8, 8, (40, 90, 200))
CREATED_BASE = 1_700_000_000
"""Scripted answer k says `created = CREATED_BASE + k`."""
CLEANUP_SECONDS = 10.0
"""Waits give up this long before pytest-timeout would, so every child is still stopped."""
PARALLEL_CALLS = 32
"""Requests the test keeps in flight at once when it submits or reads many jobs."""

REPLICAS = 3
JOBS = 200
REPLICAS_TIMEOUT = 90
CUT_TIMEOUT = 60
CUT_JOBS = 6
"""Jobs accepted just before the database is cut (two run at once, the rest wait)."""
STREAMED_IMAGE_SIDE = 2400
"""A result image of about 16 MiB (16 chunks of the store)."""
STREAMED_AHEAD_BYTES = 6 * 1024 * 1024
"""About what gRPC lets the server send ahead of a client that stops reading (measured: 6 chunks)."""


def replica_key(replica: int) -> str:
    return f"sk-replica-{replica}"


def server_config(database_url: str, fake: FakeOpenAI, api_key: str, **dispatcher: float) -> TomlTable:
    """Short leases and sweeps, so a dead replica's jobs come back within seconds."""
    return {
        "database_url": database_url,
        "url_signing_secret": URL_SIGNING_SECRET,
        "providers": {"openai": {"api_key": api_key, "base_url": fake.base_url}},
        "dispatcher": {
            "lease_seconds": 2,
            "sweep_interval_seconds": 0.5,
            "poll_interval_seconds": 0.5,
            "concurrency": 8,
            **dispatcher,
        },
        "retry": {"base_delay_seconds": 0.05},
    }


# --- bounded waiting -------------------------------------------------------------------------


class Waiter:
    """Polls conditions; says what it was waiting for when the test's time runs out."""

    def __init__(self) -> None:
        self.processes: list[ServiceProcess] = []
        """Those whose logs the failure shows."""
        self.what = "nothing (the test body itself)"

    async def until(
        self, what: str, check: Callable[[], Awaitable[T | None]], alive: Sequence[ServiceProcess] = ()
    ) -> T:
        """Poll `check` until it returns something other than None (or False); fail at once if a
        process in `alive` exits."""
        self.what = what
        while True:
            value = await check()
            if value is not None and value is not False:
                self.what = "nothing (the test body itself)"
                return value
            for process in alive:
                assert process.running, process.fail(f"{process.name} exited while waiting for {what}")
            await asyncio.sleep(0.05)

    def logs(self) -> str:
        return "\n".join(p.log_tail(30) for p in self.processes)


@asynccontextmanager
async def bounded(test_timeout: float) -> AsyncIterator[Waiter]:
    """Run the test body under a deadline a little before pytest-timeout's: on expiry the body is
    cancelled (its `async with` blocks stop the children) and the failure names what it awaited."""
    waiter = Waiter()
    try:
        async with asyncio.timeout(test_timeout - CLEANUP_SECONDS):
            yield waiter
    except TimeoutError as exc:
        raise AssertionError(f"out of time waiting for {waiter.what}\n{waiter.logs()}") from exc


@dataclass(frozen=True)
class Run:
    """A test's fresh database, and what it starts and opens: all stopped and closed at its end."""

    waiter: Waiter
    dsn: str
    stack: AsyncExitStack

    async def start(self, *processes: ServiceProcess) -> None:
        """Start processes at once; every one is stopped at the end, started or not."""
        self.waiter.processes.extend(processes)
        for process in processes:
            self.stack.push_async_callback(process.stop)
        results = await asyncio.gather(*(p.start() for p in processes), return_exceptions=True)
        for result in results:
            if isinstance(result, BaseException):
                raise result

    async def stub(self, target: str) -> JobServiceAsyncStub:
        channel = await self.stack.enter_async_context(grpc.aio.insecure_channel(target))
        return pb_grpc.JobServiceStub(channel)

    async def http(self, base_url: str) -> aiohttp.ClientSession:
        return await self.stack.enter_async_context(aiohttp.ClientSession(base_url))

    async def proxy(self) -> TcpProxy:
        """A proxy to the database, to cut it; closed after every process is stopped."""
        return await self.stack.enter_async_context(TcpProxy(*server_address(self.dsn)))

    async def db(self) -> asyncpg.Connection:
        """The test's own view of the store (not through a proxy)."""
        db = await asyncpg.connect(self.dsn)
        self.stack.push_async_callback(db.close)
        return db


@asynccontextmanager
async def replica_run(test_timeout: float) -> AsyncIterator[Run]:
    """The test body's Run, under `bounded`."""
    async with bounded(test_timeout) as waiter, fresh_database() as dsn, AsyncExitStack() as stack:
        yield Run(waiter, dsn, stack)


async def bounded_gather(calls: Sequence[Awaitable[T]], parallel: int = PARALLEL_CALLS) -> list[T]:
    semaphore = asyncio.Semaphore(parallel)

    async def one(call: Awaitable[T]) -> T:
        async with semaphore:
            return await call

    return await asyncio.gather(*(one(c) for c in calls))


# --- the fake's script and records ---------------------------------------------------------


def answer_image(k: int) -> bytes:
    """The image of scripted answer k: a tiny PNG of a colour no other answer has."""
    return png_bytes(8, 8, (k % 256, k // 256 % 256, 77))


def script_answers(fake: FakeOpenAI, count: int) -> None:
    """Queue `count` successes; the fake gives them out in the order the calls arrive."""
    for k in range(count):
        fake.enqueue(
            FakeResponse.json_body(
                {
                    "created": CREATED_BASE + k,
                    "data": [{"b64_json": base64.b64encode(answer_image(k)).decode()}],
                    "usage": {"input_tokens": 10, "output_tokens": 20, "total_tokens": 30},
                    "background": "opaque",
                    "size": "8x8",
                    "output_format": "png",
                    "quality": "medium",
                }
            )
        )


@dataclass(frozen=True)
class Call:
    answer: int
    """Which scripted answer the call got: its position among the fake's edit calls."""
    replica: int
    prompt: str


def provider_calls(fake: FakeOpenAI) -> list[Call]:
    """Every edit call the fake received, in arrival order (= the order answers were given out)."""
    replica_of = {f"Bearer {replica_key(r)}": r for r in range(REPLICAS)}
    edits = [r for r in fake.requests if r.path == EDITS_PATH]
    return [
        Call(k, replica_of[r.headers.get("authorization", "")], r.field("prompt") or "")
        for k, r in enumerate(edits)
    ]


# --- clients -------------------------------------------------------------------------------


def edit_request(prompt: str) -> edit_pb.ImageEditRequest:
    image = common_pb.InputImage(data=INPUT_IMAGE, filename="in.png", content_type="image/png")
    return edit_pb.ImageEditRequest(model=MODEL, prompt=prompt, images=[image])


def edit_form(prompt: str) -> aiohttp.FormData:
    form = aiohttp.FormData(default_to_multipart=True)
    form.add_field("model", MODEL)
    form.add_field("prompt", prompt)
    form.add_field("image", io.BytesIO(INPUT_IMAGE), filename="in.png", content_type="image/png")
    return form


async def submit_grpc(stub: JobServiceAsyncStub, prompt: str) -> str:
    response = await stub.CreateImageEditJob(pb.CreateImageEditJobRequest(request=edit_request(prompt)))
    assert response.job.status == job_pb.JOB_STATUS_PENDING, response
    return str(response.job.id)


async def submit_rest(http: aiohttp.ClientSession, prompt: str) -> str:
    async with http.post(EDITS, data=edit_form(prompt)) as response:
        body = await response.json()
        assert response.status == 202, body
    return str(body["id"])


async def read_output(stub: JobServiceAsyncStub, job: job_pb.Job) -> bytes:
    [image] = job.image_result.data
    request = pb.ReadJobOutputRequest(job_id=job.id, index=0, access_token=image.stored.access_token)
    return b"".join([message.chunk async for message in stub.ReadJobOutput(request)])


async def health(target: str) -> int:
    """The gRPC health status of the server at target."""
    async with grpc.aio.insecure_channel(target) as channel:
        reply = await health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(service=""))
        status: int = reply.status
        return status


async def http_status(http: aiohttp.ClientSession, path: str) -> tuple[int, dict[str, Any]]:
    async with http.get(path) as response:
        body: dict[str, Any] = await response.json()
        return response.status, body


def error_reason(error: grpc.aio.AioRpcError) -> str:
    """The ErrorInfo reason a failed call carries ("" without one)."""
    status = rpc_status.from_call(error)  # type: ignore[arg-type]
    for detail in status.details if status is not None else ():
        if detail.Is(error_details_pb2.ErrorInfo.DESCRIPTOR):
            info = error_details_pb2.ErrorInfo()
            detail.Unpack(info)
            return str(info.reason)
    return ""


def assert_unavailable_object(status: int, body: dict[str, Any], proc: ServiceProcess) -> None:
    """A 503 carrying the REST error object."""
    assert status == 503, proc.fail(f"expected 503, got {status}: {body}")
    assert set(body) == {"event_id", "type", "is_bifrost_error", "status_code", "error", "extra_fields"}, body
    assert body["status_code"] == 503 and body["type"] == "service_unavailable", body
    assert body["is_bifrost_error"] is True, body
    error = body["error"]
    assert error["type"] == "service_unavailable" and error["event_id"] == body["event_id"], body
    assert error["message"] and error.get("code") == "store_unavailable", body


# --- 1. three replicas, one killed ---------------------------------------------------------


async def leases_of_replica_0(db: asyncpg.Connection, fake: FakeOpenAI, jobs: dict[str, str]) -> str | None:
    """The worker id of replica 0 once it holds a lease on a job it is running (its provider call
    made, no answer stored yet), and only while it holds leases; else None."""
    job_of = {prompt: job_id for job_id, prompt in jobs.items()}
    for call in reversed(provider_calls(fake)):
        if call.replica != 0 or call.prompt not in job_of:
            continue
        owner: str | None = await db.fetchval(
            "SELECT lease_owner FROM jobs WHERE id = $1 AND status = 'processing'", job_of[call.prompt]
        )
        if owner is None:
            continue
        held: int = await db.fetchval(
            "SELECT count(*) FROM jobs WHERE status = 'processing' AND lease_owner = $1", owner
        )
        return owner if held > 0 else None
    return None


async def all_finished(db: asyncpg.Connection) -> bool:
    count: int = await db.fetchval("SELECT count(*) FROM jobs WHERE status IN ('pending', 'processing')")
    return count == 0


@pytest.mark.timeout(REPLICAS_TIMEOUT)
async def test_three_replicas_one_sigkilled_every_job_completes_once(
    tmp_path: Path, fake: FakeOpenAI
) -> None:
    async with replica_run(REPLICAS_TIMEOUT) as run:
        waiter, dsn = run.waiter, run.dsn
        db = await run.db()
        servers = [
            GrpcServerProcess(
                tmp_path, server_config(dsn, fake, replica_key(r)), tmp_path / f"data{r}", f"replica{r}"
            )
            for r in range(REPLICAS)
        ]
        await run.start(*servers)  # all at once: their migrations run concurrently
        bridges = [RestBridgeProcess(tmp_path, s.grpc_target, f"bridge{r}") for r, s in enumerate(servers)]
        await run.start(*bridges)
        stubs: list[JobServiceAsyncStub] = []
        https: list[aiohttp.ClientSession] = []
        for server, bridge in zip(servers, bridges, strict=True):
            stubs.append(await run.stub(server.grpc_target))
            https.append(await run.http(bridge.base_url))

        script_answers(fake, 2 * JOBS)
        fake.latency = 1

        # Job i goes to replica i % 3, over REST (its bridge) when i is even, else over gRPC.
        async def submit(i: int) -> tuple[str, str]:
            prompt = f"replica job {i}"
            r = i % REPLICAS
            job_id = await (submit_rest(https[r], prompt) if i % 2 == 0 else submit_grpc(stubs[r], prompt))
            return job_id, prompt

        jobs = dict(await bounded_gather([submit(i) for i in range(JOBS)]))
        assert len(jobs) == JOBS

        # SIGKILL replica 0 while it holds leases on jobs whose provider calls are in flight.
        owner = await waiter.until(
            "replica 0 to hold leases on running jobs", lambda: leases_of_replica_0(db, fake, jobs), servers
        )
        servers[0].kill()
        await servers[0].wait()
        killed_at = len(provider_calls(fake))
        # FOR UPDATE waits out a transaction the dead replica left open (its backend rolls it
        # back, or commits a COMMIT already sent), so these jobs really are orphaned.
        orphaned = {
            r["id"]
            for r in await db.fetch(
                "SELECT id FROM jobs WHERE status = 'processing' AND lease_owner = $1 FOR UPDATE", owner
            )
        }
        assert orphaned, "replica 0 held no lease when it died, so this tested nothing"
        print(f"replica 0 SIGKILLed holding {len(orphaned)} leases, after {killed_at} provider calls")
        status, _ = await http_status(https[0], "/health")
        assert status == 503, bridges[0].fail("the bridge of the dead replica should answer 503")

        survivors = [1, 2]
        await waiter.until("every job to finish", lambda: all_finished(db), [servers[r] for r in survivors])

        # The store: every job completed, with exactly one result image.
        rows = {r["id"]: r for r in await db.fetch("SELECT id, status, attempts FROM jobs")}
        assert set(rows) == set(jobs)
        assert {r["status"] for r in rows.values()} == {"completed"}, {
            i: r["status"] for i, r in rows.items() if r["status"] != "completed"
        }
        outputs = {
            r["job_id"]: (r["images"], r["chunks"])
            for r in await db.fetch(
                "SELECT job_id, count(DISTINCT idx) AS images, count(*) AS chunks FROM blob_chunks"
                " WHERE kind = 'output' GROUP BY job_id"
            )
        }
        assert outputs == {job_id: (1, 1) for job_id in jobs}

        # Every surviving replica answers the same result for every job, over gRPC and REST.
        async def read_everywhere(job_id: str) -> int:
            answers = set()
            for r in survivors:
                job = (await stubs[r].GetJob(pb.GetJobRequest(id=job_id))).job
                assert job.status == job_pb.JOB_STATUS_COMPLETED, servers[r].fail(f"{job_id}: {job}")
                k = job.image_result.created - CREATED_BASE
                assert await read_output(stubs[r], job) == answer_image(k), servers[r].fail(job_id)
                status, body = await http_status(https[r], f"{EDITS}/{job_id}")
                assert status == 200 and body["status"] == "completed", bridges[r].fail(f"{job_id}: {body}")
                assert body["result"]["created"] == CREATED_BASE + k, body
                [item] = body["result"]["data"]
                async with https[r].get(item["url"]) as response:
                    assert response.status == 200, bridges[r].fail(f"{job_id}: image {response.status}")
                    assert await response.read() == answer_image(k), bridges[r].fail(job_id)
                answers.add(k)
            [k] = answers
            return k

        stored = dict(zip(jobs, await bounded_gather([read_everywhere(j) for j in jobs]), strict=True))

        # Never completed twice: each stored result is one of the answers its job got; a job
        # claimed once was called once; a job claimed twice (the reaper requeued it after the
        # dead replica's lease ran out) was run to its end once, by a survivor, after the kill.
        calls: dict[str, list[Call]] = defaultdict(list)
        job_of = {prompt: job_id for job_id, prompt in jobs.items()}
        for call in provider_calls(fake):
            calls[job_of[call.prompt]].append(call)
        assert not [c for c in provider_calls(fake)[killed_at:] if c.replica == 0]
        for job_id in jobs:
            attempts, got = rows[job_id]["attempts"], calls[job_id]
            assert stored[job_id] in {c.answer for c in got}, (job_id, stored[job_id], got)
            assert attempts in (1, 2), (job_id, attempts, got)
            if attempts == 1:
                assert len(got) == 1, f"{job_id} was run again though claimed once: {got}"
            else:
                survivor_calls = [c for c in got if c.replica != 0]
                assert len(survivor_calls) == 1 and survivor_calls[0].answer >= killed_at, (job_id, got)
                assert stored[job_id] == survivor_calls[0].answer, (job_id, stored[job_id], got)
                assert len(got) - len(survivor_calls) <= 1, (job_id, got)
        requeued = {job_id for job_id in jobs if rows[job_id]["attempts"] == 2}
        assert orphaned <= requeued, {j: rows[j]["attempts"] for j in orphaned - requeued}
        answered_twice = {job_id for job_id, got in calls.items() if len(got) > 1}
        assert answered_twice, "the kill interrupted no provider call"
        assert answered_twice <= orphaned, answered_twice - orphaned
        print(
            f"requeued by the reaper: {len(requeued)} jobs; sent to the provider twice: {len(answered_twice)}"
        )


# --- 2. the database connection cut and restored -------------------------------------------


async def serving_is(target: str, wanted: int) -> bool:
    try:
        return await health(target) == wanted
    except grpc.aio.AioRpcError:
        return False


async def until_health(waiter: Waiter, server: GrpcServerProcess, wanted: int, what: str) -> None:
    """Wait until the server's gRPC health is `wanted`; fail at once if it exits."""
    await waiter.until(what, lambda: serving_is(server.grpc_target, wanted), [server])


@pytest.mark.timeout(CUT_TIMEOUT)
async def test_database_cut_is_unavailable_then_recovers_without_losing_jobs(
    tmp_path: Path, fake: FakeOpenAI
) -> None:
    async with replica_run(CUT_TIMEOUT) as run:
        waiter, dsn = run.waiter, run.dsn
        proxy = await run.proxy()
        db = await run.db()
        config = server_config(with_address(dsn, proxy.host, proxy.port), fake, replica_key(0), concurrency=2)
        server = GrpcServerProcess(tmp_path, config, tmp_path / "data", "server")
        await run.start(server)
        bridge = RestBridgeProcess(tmp_path, server.grpc_target, "bridge")
        await run.start(bridge)
        stub = await run.stub(server.grpc_target)
        http = await run.http(bridge.base_url)
        fake.latency = 1

        # Accepted just before the cut: two start running, the others wait in the queue.
        accepted = [
            await (submit_rest(http, f"before {i}") if i % 2 else submit_grpc(stub, f"before {i}"))
            for i in range(CUT_JOBS)
        ]
        await waiter.until("a job to reach the provider", lambda: _has_calls(fake), [server])
        proxy.cut()
        cut_at = asyncio.get_running_loop().time()
        at_cut = {r["id"]: r["status"] for r in await db.fetch("SELECT id, status FROM jobs")}
        assert set(at_cut) == set(accepted)
        assert {"processing", "pending"} <= set(at_cut.values()), at_cut

        # While cut: submits and polls are UNAVAILABLE (503 with the error object over REST).
        with pytest.raises(grpc.aio.AioRpcError) as raised:
            await submit_grpc(stub, "during the cut")
        assert raised.value.code() == grpc.StatusCode.UNAVAILABLE, server.fail(str(raised.value))
        assert error_reason(raised.value) == "STORE_UNAVAILABLE", raised.value
        with pytest.raises(grpc.aio.AioRpcError) as raised:
            await stub.GetJob(pb.GetJobRequest(id=accepted[0]))
        assert raised.value.code() == grpc.StatusCode.UNAVAILABLE, server.fail(str(raised.value))
        async with http.post(EDITS, data=edit_form("during the cut (REST)")) as response:
            assert_unavailable_object(response.status, await response.json(), server)
        assert_unavailable_object(*await http_status(http, f"{EDITS}/{accepted[0]}"), server)
        # The health monitor notices; the bridge reports what the server says.
        await until_health(waiter, server, health_pb2.HealthCheckResponse.NOT_SERVING, "health NOT_SERVING")
        status, body = await http_status(http, "/health")
        assert status == 503, bridge.fail(f"bridge /health while the store is cut: {status} {body}")
        # Hold the cut until the running jobs' provider calls have returned: their outcomes
        # cannot be written, so the store keeps them leased until the lease runs out.
        await asyncio.sleep(max(0.0, cut_at + fake.latency + 0.5 - asyncio.get_running_loop().time()))

        proxy.restore()
        await until_health(waiter, server, health_pb2.HealthCheckResponse.SERVING, "health SERVING again")
        status, body = await http_status(http, "/health")
        assert status == 200, bridge.fail(f"bridge /health after the store came back: {status} {body}")
        after = [await submit_grpc(stub, "after the cut"), await submit_rest(http, "after the cut (REST)")]

        # No accepted job lost: each completes, its image readable.
        async def finished(job_id: str) -> job_pb.Job | None:
            job = (await stub.GetJob(pb.GetJobRequest(id=job_id))).job
            return job if job.status in (job_pb.JOB_STATUS_COMPLETED, job_pb.JOB_STATUS_FAILED) else None

        for job_id in accepted + after:
            job = await waiter.until(f"job {job_id} to finish", functools.partial(finished, job_id), [server])
            assert job.status == job_pb.JOB_STATUS_COMPLETED, server.fail(f"{job_id}: {job}")
            assert await read_output(stub, job), server.fail(f"{job_id}: no image")
        assert {r["status"] for r in await db.fetch("SELECT status FROM jobs")} == {"completed"}


def noise_png(side: int) -> bytes:
    """A PNG of random pixels, stored uncompressed: about side * side * 3 bytes."""
    image = Image.frombytes("RGB", (side, side), os.urandom(side * side * 3))
    buffer = io.BytesIO()
    image.save(buffer, "PNG", compress_level=0)
    return buffer.getvalue()


async def completed(stub: JobServiceAsyncStub, job_id: str) -> job_pb.Job | None:
    job = (await stub.GetJob(pb.GetJobRequest(id=job_id))).job
    assert job.status != job_pb.JOB_STATUS_FAILED, job
    return job if job.status == job_pb.JOB_STATUS_COMPLETED else None


@pytest.mark.timeout(CUT_TIMEOUT)
async def test_database_cut_while_an_image_streams_ends_the_stream_unavailable(
    tmp_path: Path, fake: FakeOpenAI
) -> None:
    # A result of many 1 MiB chunks: read_output fetches each with its own query, and gRPC
    # flow control holds the server back a few chunks ahead of a client that stops reading,
    # so the chunks past those can only come from the database after the cut.
    image = noise_png(STREAMED_IMAGE_SIDE)
    assert len(image) > 2 * STREAMED_AHEAD_BYTES
    async with replica_run(CUT_TIMEOUT) as run:
        waiter, dsn = run.waiter, run.dsn
        proxy = await run.proxy()
        fake.enqueue(
            FakeResponse.json_body(
                {"created": CREATED_BASE, "data": [{"b64_json": base64.b64encode(image).decode()}]}
            )
        )
        config = server_config(with_address(dsn, proxy.host, proxy.port), fake, replica_key(0))
        server = GrpcServerProcess(tmp_path, config, tmp_path / "data", "server")
        await run.start(server)
        stub = await run.stub(server.grpc_target)
        job_id = await submit_grpc(stub, "a large result")
        job = await waiter.until("the job to complete", functools.partial(completed, stub, job_id), [server])
        [stored] = job.image_result.data
        request = pb.ReadJobOutputRequest(job_id=job_id, index=0, access_token=stored.stored.access_token)

        messages = aiter(stub.ReadJobOutput(request))
        first = await anext(messages)
        assert first.size_bytes == len(image)
        proxy.cut()
        received = len(first.chunk)
        error: grpc.aio.AioRpcError | None = None
        try:
            async for message in messages:
                received += len(message.chunk)
        except grpc.aio.AioRpcError as exc:
            error = exc
        assert error is not None, f"all {received} bytes were sent before the cut: make the image larger"
        assert error.code() == grpc.StatusCode.UNAVAILABLE, server.fail(
            f"the stream broke off after {received} of {len(image)} bytes with {error.code()}:"
            f" {error.details()}"
        )

        proxy.restore()  # the caller retries, and reads it whole
        await until_health(waiter, server, health_pb2.HealthCheckResponse.SERVING, "health SERVING again")
        assert await read_output(stub, job) == image


async def _has_calls(fake: FakeOpenAI) -> bool:
    return bool(provider_calls(fake))


@pytest.fixture
async def fake() -> AsyncIterator[FakeOpenAI]:
    async with FakeOpenAI(api_key=tuple(replica_key(r) for r in range(REPLICAS))) as fake:
        yield fake
