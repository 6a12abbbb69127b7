"""A submit whose answer is lost is sent again with the same idempotency key, and the server
answers it with the first job: one job, whatever the transport.

Between the client and the real stack sits a real front (an HTTP server, or a gRPC server)
that passes the first submit on and then loses the answer, as a load balancer that drops a
connection would: the client sees a connection failure (REST) or UNAVAILABLE (gRPC)."""

from __future__ import annotations

from collections.abc import AsyncGenerator

import grpc
import pytest
from aiohttp import web

from asyncgate.client import AsyncClient, RetryPolicy, Unavailable
from asyncgate.v1 import job_service_pb2 as pb
from asyncgate.v1 import job_service_pb2_grpc as pb_grpc
from grpc_server.config import DispatcherSettings
from tests.conftest import KEY_A, Stack, StackFactory
from tests.tcp_proxy import TcpProxy

FAST = RetryPolicy(attempts=3, base_delay=0.01, max_delay=0.05)


class LosesFirstAnswer:
    def __init__(self) -> None:
        self.forwarded: list[str] = []  # the job ids the stack answered to the front


async def rest_front(stack: Stack, state: LosesFirstAnswer) -> AsyncGenerator[str]:
    async def forward(request: web.Request) -> web.StreamResponse:
        headers = {k: v for k, v in request.headers.items() if k.lower() not in ("host", "content-length")}
        async with stack.http.post(request.path, data=await request.read(), headers=headers) as answer:
            body = await answer.json()
        state.forwarded.append(body["id"])
        if len(state.forwarded) == 1:
            assert request.transport is not None
            request.transport.abort()  # the answer never reaches the client
        return web.json_response(body, status=answer.status)

    app = web.Application()
    app.router.add_post("/v1/async/embeddings", forward)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        await runner.cleanup()


class GrpcFront(pb_grpc.JobServiceServicer):
    def __init__(self, stack: Stack, state: LosesFirstAnswer) -> None:
        self.stack, self.state = stack, state

    async def CreateEmbeddingJob(
        self, request: pb.CreateEmbeddingJobRequest, context: grpc.aio.ServicerContext[object, object]
    ) -> pb.CreateEmbeddingJobResponse:
        metadata = tuple((k, v) for k, v in context.invocation_metadata() or () if k == "x-bf-vk")
        response = await self.stack.stub.CreateEmbeddingJob(request, metadata=metadata)
        self.state.forwarded.append(response.job.id)
        if len(self.state.forwarded) == 1:
            await context.abort(grpc.StatusCode.UNAVAILABLE, "connection to the backend lost")
        return response


async def grpc_front(stack: Stack, state: LosesFirstAnswer) -> AsyncGenerator[str]:
    server = grpc.aio.server()
    pb_grpc.add_JobServiceServicer_to_server(GrpcFront(stack, state), server)  # type: ignore[abstract]  # a front for one RPC
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    try:
        yield f"127.0.0.1:{port}"
    finally:
        await server.stop(None)


@pytest.mark.parametrize("transport", ["grpc", "rest"])
async def test_a_retried_submit_makes_one_job(make_stack: StackFactory, transport: str) -> None:
    stack = await make_stack(dispatcher=DispatcherSettings(concurrency=0))  # the front forwards submits only
    state = LosesFirstAnswer()
    fronts = grpc_front(stack, state) if transport == "grpc" else rest_front(stack, state)
    address = await anext(fronts)
    client = (
        AsyncClient(grpc_target=address, key=KEY_A.value, retry=FAST)
        if transport == "grpc"
        else AsyncClient(address, key=KEY_A.value, retry=FAST)
    )
    try:
        job = await client.submit_embeddings("a cat", model="local/hashing")
        assert len(state.forwarded) == 2, "the lost answer was retried"
        assert state.forwarded == [job.id, job.id], "the retry got the first job back"
        assert stack.stored_jobs() == 1

        # Without retries, the same loss is the caller's to see.
        state.forwarded.clear()
        no_retries = (
            AsyncClient(grpc_target=address, key=KEY_A.value, retry=RetryPolicy(attempts=1))
            if transport == "grpc"
            else AsyncClient(address, key=KEY_A.value, retry=RetryPolicy(attempts=1))
        )
        with pytest.raises(Unavailable):
            await no_retries.submit_embeddings("a dog", model="local/hashing")
        await no_retries.close()
    finally:
        await client.close()
        await fronts.aclose()


async def test_an_unreachable_server_is_unavailable_after_the_retries() -> None:
    for client in (
        AsyncClient("http://127.0.0.1:9", retry=FAST),
        AsyncClient(grpc_target="127.0.0.1:9", retry=FAST),
    ):
        with pytest.raises(Unavailable):
            await client.get("00000000-0000-4000-8000-000000000000")
        await client.close()


@pytest.mark.parametrize("transport", ["grpc", "rest"])
async def test_a_dropped_watch_is_reopened(make_stack: StackFactory, transport: str) -> None:
    stack = await make_stack(dispatcher=DispatcherSettings(concurrency=0, poll_interval_seconds=0.2))
    host, port = (stack.grpc_target if transport == "grpc" else stack.base_url.removeprefix("http://")).split(
        ":"
    )
    async with TcpProxy(host, int(port)) as proxy:
        address = f"127.0.0.1:{proxy.port}"
        client = (
            AsyncClient(grpc_target=address, key=KEY_A.value, retry=FAST)
            if transport == "grpc"
            else AsyncClient(f"http://{address}", key=KEY_A.value, retry=FAST)
        )
        try:
            job = await client.submit_embeddings("a cat", model="local/hashing")
            seen: list[str] = []
            async for state in client.watch(job.id):
                seen.append(state.status)
                if state.status == "pending":
                    proxy.cut()  # the stream is reset under the client
                    direct = pb.CancelJobRequest(id=job.id)
                    await stack.stub.CancelJob(direct, metadata=(("x-bf-vk", KEY_A.value),))
                    proxy.restore()
            # The reset stream raised nothing: the watch was reopened and saw the job end.
            assert seen == ["pending", "cancelled"]
            assert proxy.accepted >= 2
        finally:
            await client.close()
