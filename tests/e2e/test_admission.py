"""A virtual key's limits at submit, through the REST bridge and over gRPC: refused before any
job exists, 429 with Retry-After (the bridge's reading of the server's google.rpc RetryInfo) /
RESOURCE_EXHAUSTED with RetryInfo."""

from __future__ import annotations

from dataclasses import replace

import grpc
import pytest
from google.rpc import error_details_pb2
from grpc_status import rpc_status

from asyncgate.v1 import image_generation_pb2 as gen_pb
from asyncgate.v1 import job_service_pb2 as pb
from grpc_server.config import DispatcherSettings
from grpc_server.store.admission import IN_FLIGHT_RETRY_AFTER_SECONDS
from tests.conftest import KEY_A, KEY_B, StackFactory
from tests.grpc_details import error_details
from tests.rest import edit_form, submit

ACCEPT_ONLY = DispatcherSettings(concurrency=0)  # nothing runs: jobs stay in flight


async def test_rest_submits_over_the_minute_are_429_with_retry_after(make_stack: StackFactory) -> None:
    limited = replace(KEY_A, submits_per_minute=2)
    stack = await make_stack(virtual_keys=(limited, KEY_B), dispatcher=ACCEPT_ONLY)
    headers = {"x-bf-vk": KEY_A.value}
    for _ in range(2):
        status, body = await submit(stack.http, edit_form(), headers)
        assert status == 202, body
    async with stack.http.post("/v1/async/images/edits", data=edit_form(), headers=headers) as response:
        body = await response.json()
        assert response.status == 429, body
        retry_after = int(response.headers["Retry-After"])
    assert 1 <= retry_after <= 60
    assert (body["error"]["code"], body["type"]) == ("rate_limited", "rate_limit_error")
    assert stack.stored_jobs() == 2  # the refused submit left nothing
    status, _ = await submit(stack.http, edit_form(), {"x-bf-vk": KEY_B.value})
    assert status == 202  # another key is not limited


async def test_rest_and_grpc_refuse_a_key_at_max_jobs_in_flight(make_stack: StackFactory) -> None:
    limited = replace(KEY_B, max_jobs_in_flight=1)
    stack = await make_stack(virtual_keys=(KEY_A, limited), dispatcher=ACCEPT_ONLY)
    headers = {"x-bf-vk": KEY_B.value}
    status, _ = await submit(stack.http, edit_form(), headers)
    assert status == 202
    async with stack.http.post("/v1/async/images/edits", data=edit_form(), headers=headers) as response:
        body = await response.json()
        assert response.status == 429, body
        assert response.headers["Retry-After"] == str(IN_FLIGHT_RETRY_AFTER_SECONDS)
    assert body["error"]["code"] == "too_many_jobs_in_flight"

    request = pb.CreateImageGenerationJobRequest(
        request=gen_pb.ImageGenerationRequest(model="local/placeholder", prompt="a lighthouse")
    )
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await stack.stub.CreateImageGenerationJob(request, metadata=(("x-bf-vk", KEY_B.value),))
    assert raised.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert error_details(raised.value)[0] == "TOO_MANY_JOBS_IN_FLIGHT"
    status_proto = rpc_status.from_call(raised.value)  # type: ignore[arg-type]
    assert status_proto is not None
    [retry] = [d for d in status_proto.details if d.Is(error_details_pb2.RetryInfo.DESCRIPTOR)]
    info = error_details_pb2.RetryInfo()
    retry.Unpack(info)
    assert info.retry_delay.seconds == IN_FLIGHT_RETRY_AFTER_SECONDS
    assert stack.stored_jobs() == 1
