"""The longest wait is a setting: the server cuts one WaitJob call at `max_wait_seconds`, and
the bridge, whose `Prefer: wait` cap is its own `max_wait_seconds`, calls again until the N
the client asked for has passed. On an accept-only server (jobs never end)."""

from __future__ import annotations

import asyncio

from google.protobuf.duration_pb2 import Duration

from asyncgate.v1 import embedding_pb2 as emb_pb
from asyncgate.v1 import job_pb2 as job_pb
from asyncgate.v1 import job_service_pb2 as pb
from grpc_server.config import DispatcherSettings
from rest_bridge.config import BridgeConfig
from tests.conftest import KEY_A, Stack, StackFactory

A = (("x-bf-vk", KEY_A.value),)
LIVENESS_SECONDS = 60
"""A bound on the call, so that a wait that is not cut fails the test instead of hanging it."""
SERVER_CAP = 0.2


async def _stack(make_stack: StackFactory, bridge: BridgeConfig | None = None) -> Stack:
    return await make_stack(
        bridge,
        dispatcher=DispatcherSettings(concurrency=0, poll_interval_seconds=0.2),
        max_wait_seconds=SERVER_CAP,
    )


async def _pending(stack: Stack) -> str:
    request = pb.CreateEmbeddingJobRequest(
        request=emb_pb.EmbeddingRequest(model="local/hashing", input=emb_pb.EmbeddingInput(text="x"))
    )
    return (await stack.stub.CreateEmbeddingJob(request, metadata=A)).job.id


async def test_the_server_cuts_a_wait_at_max_wait_seconds(make_stack: StackFactory) -> None:
    stack = await _stack(make_stack)
    job_id = await _pending(stack)
    for request in (  # no timeout (the call's deadline alone), and one far above the cap
        pb.WaitJobRequest(id=job_id),
        pb.WaitJobRequest(id=job_id, timeout=Duration(seconds=3600)),
    ):
        reply = await stack.stub.WaitJob(request, metadata=A, timeout=LIVENESS_SECONDS)
        assert reply.job.status == job_pb.JOB_STATUS_PENDING


async def test_the_bridge_waits_its_own_n_across_shorter_server_waits(make_stack: StackFactory) -> None:
    stack = await _stack(make_stack, BridgeConfig(max_wait_seconds=2))
    job_id = await _pending(stack)
    loop = asyncio.get_running_loop()
    started = loop.time()
    headers = {"x-bf-vk": KEY_A.value, "Prefer": "wait=30"}  # above the bridge's cap: cut to 2
    async with stack.http.get(f"/v1/async/jobs/{job_id}", headers=headers) as response:
        assert response.status == 202
        assert response.headers["Preference-Applied"] == "wait=2"
    # The whole N was waited, though each server call ended after SERVER_CAP.
    assert loop.time() - started >= 2
