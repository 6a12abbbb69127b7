"""An admin token may cancel, retry and delete any job (another key's, a keyless one), over REST
and gRPC; another key's token may not (the job is unknown to it)."""

from __future__ import annotations

import grpc
import pytest

from asyncgate.v1 import job_pb2 as job_pb
from asyncgate.v1 import job_service_pb2 as pb
from grpc_server.config import AuthSettings, DispatcherSettings
from tests.conftest import KEY_A, KEY_B, Stack, StackFactory
from tests.e2e.test_tokens import SECRET, bearer, claims, token
from tests.rest import edit_form, submit

JOBS = "/v1/async/jobs"


@pytest.fixture
async def stack(make_stack: StackFactory) -> Stack:
    # Accept-only: jobs stay pending, so there is something to cancel.
    return await make_stack(
        auth=AuthSettings(jwt_secret=SECRET, issuer="https://auth.test", audience="ag"),
        dispatcher=DispatcherSettings(concurrency=0),
    )


@pytest.mark.parametrize("owner", [{"x-bf-vk": KEY_A.value}, {}], ids=["key-a", "keyless"])
async def test_an_admin_cancels_retries_and_deletes_any_job_over_rest(
    stack: Stack, owner: dict[str, str]
) -> None:
    _, accepted = await submit(stack.http, edit_form(), owner)
    job = f"{JOBS}/{accepted['id']}"
    admin = bearer(token(claims(role="admin")))
    other = bearer(token(claims(vk=KEY_B.id)))
    async with stack.http.post(f"{job}/cancel", headers=other) as response:
        assert response.status == (404 if owner else 200)  # a keyless job is anyone's
    if owner:
        async with stack.http.post(f"{job}/cancel", headers=admin) as response:
            assert response.status == 200
            assert (await response.json())["status"] == "cancelled"
    async with stack.http.post(f"{job}/retry", headers=admin) as response:
        assert response.status == 202
        assert (await response.json())["status"] == "pending"
    async with stack.http.delete(job, headers=admin) as response:
        assert response.status == 204
    assert await stack.server.store.get_job(accepted["id"]) is None


async def test_an_admin_cancels_retries_and_deletes_another_keys_job_over_grpc(stack: Stack) -> None:
    _, accepted = await submit(stack.http, edit_form(), {"x-bf-vk": KEY_A.value})
    admin = (("authorization", f"Bearer {token(claims(role='admin'))}"),)
    other = (("authorization", f"Bearer {token(claims(vk=KEY_B.id))}"),)
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await stack.stub.CancelJob(pb.CancelJobRequest(id=accepted["id"]), metadata=other)
    assert raised.value.code() == grpc.StatusCode.NOT_FOUND
    cancelled = await stack.stub.CancelJob(pb.CancelJobRequest(id=accepted["id"]), metadata=admin)
    assert (cancelled.job.id, cancelled.job.status) == (accepted["id"], job_pb.JOB_STATUS_CANCELLED)
    retried = await stack.stub.RetryJob(pb.RetryJobRequest(id=accepted["id"]), metadata=admin)
    assert retried.job.status == job_pb.JOB_STATUS_PENDING
    await stack.stub.DeleteJob(pb.DeleteJobRequest(id=accepted["id"]), metadata=admin)
    assert await stack.server.store.get_job(accepted["id"]) is None
