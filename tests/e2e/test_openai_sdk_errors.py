"""Errors of the OpenAI-compatible routes as the real `openai` package sees them: OpenAI's
error object under the status the SDK maps to its exception classes, for refusals at
submit and for jobs that failed at their provider (a fake OpenAI on 127.0.0.1)."""

from __future__ import annotations

import asyncio
import logging
import re
import uuid
from collections.abc import AsyncIterator
from dataclasses import replace

import openai
import pytest
from openai.types import CreateEmbeddingResponse, ImagesResponse

from grpc_server.config import ApiKey, DispatcherSettings, ProviderSettings, RetrySettings, VirtualKey
from tests.conftest import KEY_A, KEY_B, Stack, StackFactory
from tests.fakes.openai_server import FakeOpenAI, FakeResponse

JOB_ID = "x-asyncgate-job-id"


def sdk(stack: Stack, api_key: str = KEY_A.value) -> openai.AsyncOpenAI:
    return openai.AsyncOpenAI(base_url=f"{stack.base_url}/v1", api_key=api_key)


@pytest.fixture
async def fake() -> AsyncIterator[FakeOpenAI]:
    async with FakeOpenAI(api_key="sk-test") as server:
        yield server


@pytest.fixture
async def openai_stack(make_stack: StackFactory, fake: FakeOpenAI) -> Stack:
    return await make_stack(
        providers={
            "openai": ProviderSettings(keys=(ApiKey("sk-test"),), base_url=fake.base_url, timeout_seconds=0.5)
        },
        retry=RetrySettings(max_attempts=3, base_delay_seconds=0.01),
    )


async def test_a_bad_field_is_a_bad_request_and_no_job(stack: Stack) -> None:
    async with sdk(stack) as client:
        with pytest.raises(openai.BadRequestError) as caught:
            await client.images.generate(model="local/placeholder", prompt="a fox", size="huge")
    error = caught.value
    assert error.status_code == 400 and error.param == "size" and error.type == "invalid_request_error"
    assert "size" in error.message
    assert JOB_ID not in error.response.headers
    assert stack.stored_jobs() == 0


async def test_an_unknown_virtual_key(stack: Stack) -> None:
    async with sdk(stack, api_key="sk-bf-nobody-has-this-key") as client:
        with pytest.raises(openai.BadRequestError) as caught:
            await client.embeddings.create(model="local/hashing", input="hi")
    assert caught.value.code == "virtual_key_not_found"
    assert stack.stored_jobs() == 0


async def test_a_required_key_missing_is_an_authentication_error(make_stack: StackFactory) -> None:
    stack = await make_stack(require_virtual_key=True)
    async with sdk(stack, api_key="not-a-virtual-key") as client:
        with pytest.raises(openai.AuthenticationError):
            await client.embeddings.create(model="local/hashing", input="hi")
    assert stack.stored_jobs() == 0


async def test_a_model_the_key_may_not_use_is_permission_denied(make_stack: StackFactory) -> None:
    limited = VirtualKey(id="vk-embed-only", value="sk-bf-embed-only", allowed_models=("local/hashing",))
    stack = await make_stack(virtual_keys=(limited,))
    async with sdk(stack, api_key=limited.value) as client:
        with pytest.raises(openai.PermissionDeniedError):
            await client.images.generate(model="local/placeholder", prompt="a fox")
        assert (await client.embeddings.create(model="local/hashing", input="hi")).data  # allowed
    assert stack.stored_jobs() == 1


async def test_picking_up_an_unknown_job_is_not_found(stack: Stack) -> None:
    async with sdk(stack) as client:
        with pytest.raises(openai.NotFoundError):
            await client.get(f"/embeddings/{uuid.uuid4()}", cast_to=CreateEmbeddingResponse)


async def test_another_keys_job_is_not_found(stack: Stack) -> None:
    async with sdk(stack) as client:
        raw = await client.embeddings.with_raw_response.create(model="local/hashing", input="hi")
    async with sdk(stack, api_key="sk-bf-team-b-secret") as other:
        with pytest.raises(openai.NotFoundError):
            await other.get(f"/embeddings/{raw.headers[JOB_ID]}", cast_to=CreateEmbeddingResponse)


async def test_a_provider_refusal_is_the_providers_error(openai_stack: Stack, fake: FakeOpenAI) -> None:
    fake.enqueue(FakeResponse.error(400, "Invalid prompt", "invalid_request_error", "bad_prompt", "prompt"))
    async with sdk(openai_stack) as client:
        with pytest.raises(openai.BadRequestError) as caught:
            await client.images.generate(model="openai/gpt-image-1", prompt="something")
    error = caught.value
    assert isinstance(error.body, dict)
    assert (error.body["message"], error.code, error.param) == ("Invalid prompt", "bad_prompt", "prompt")
    assert error.response.headers[JOB_ID] and error.response.headers["x-should-retry"] == "false"
    assert len(fake.requests) == 1 and openai_stack.stored_jobs() == 1


@pytest.mark.parametrize(
    ("status", "exception"), [(500, openai.InternalServerError), (429, openai.RateLimitError)]
)
async def test_a_job_that_failed_after_its_retries_is_not_sent_again(
    openai_stack: Stack, fake: FakeOpenAI, status: int, exception: type[openai.APIStatusError]
) -> None:
    fake.enqueue(*[FakeResponse.error(status, "provider trouble", "server_error")] * 3)
    async with sdk(openai_stack) as client:  # the SDK's default: 2 retries on 5xx and 429
        with pytest.raises(exception) as caught:
            await client.embeddings.create(model="openai/text-embedding-3-small", input="hi")
    assert caught.value.status_code == status
    assert isinstance(caught.value.body, dict) and caught.value.body["message"] == "provider trouble"
    # The server tried 3 times; the SDK, told x-should-retry: false, made no second job.
    assert len(fake.requests) == 3 and openai_stack.stored_jobs() == 1


async def test_a_wait_limit_answers_the_job_id_and_the_answer_is_picked_up_later(
    openai_stack: Stack, fake: FakeOpenAI
) -> None:
    fake.enqueue(FakeResponse.hang())  # the first attempt times out (0.5 s), the retry succeeds
    async with sdk(openai_stack) as client:
        with pytest.raises(openai.InternalServerError) as caught:
            await client.images.generate(
                model="openai/gpt-image-1",
                prompt="a slow fox",
                extra_headers={"x-asyncgate-wait-timeout": "0"},
            )
        error = caught.value
        assert error.status_code == 504 and error.code == "job_not_finished"
        job_id = error.response.headers[JOB_ID]
        assert f"/v1/images/generations/{job_id}" in error.message

        result = await client.get(f"/images/generations/{job_id}", cast_to=ImagesResponse)
    [image] = result.data or []
    assert image.url is not None and f"/v1/async/files/{job_id}/" in image.url
    assert len(fake.requests) == 2 and openai_stack.stored_jobs() == 1


@pytest.mark.parametrize("value", ["soon", "-1", "1e3", "86401"])
async def test_a_bad_wait_limit_is_refused_before_any_job(stack: Stack, value: str) -> None:
    async with sdk(stack) as client:
        with pytest.raises(openai.BadRequestError) as caught:
            await client.embeddings.create(
                model="local/hashing", input="hi", extra_headers={"x-asyncgate-wait-timeout": value}
            )
    assert caught.value.param == "x-asyncgate-wait-timeout"
    assert stack.stored_jobs() == 0


async def test_a_client_that_hangs_up_leaves_its_job_running(
    make_stack: StackFactory, fake: FakeOpenAI, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="rest_bridge.openai_compat")
    stack = await make_stack(
        providers={"openai": ProviderSettings(keys=(ApiKey("sk-test"),), base_url=fake.base_url)}
    )
    fake.enqueue(FakeResponse.hang())  # the job stays in its first attempt until the test ends
    body = {"model": "openai/text-embedding-3-small", "input": "hi"}
    held = asyncio.create_task(stack.http.post("/v1/embeddings", json=body))
    while not fake.requests:  # the job has reached its provider
        await asyncio.sleep(0.01)
    held.cancel()  # the client gives up: its connection closes
    with pytest.raises(asyncio.CancelledError):
        await held
    while "client disconnected while waiting for job" not in caplog.text:
        await asyncio.sleep(0.01)
    [job_id] = re.findall(r"waiting for job ([0-9a-f-]{36})", caplog.text)
    async with stack.http.get(f"/v1/async/embeddings/{job_id}") as poll:
        assert poll.status == 202 and (await poll.json())["status"] == "processing"


async def test_a_key_over_its_limit_is_a_rate_limit_error_with_retry_after(make_stack: StackFactory) -> None:
    limited = replace(KEY_A, max_jobs_in_flight=1)
    stack = await make_stack(virtual_keys=(limited, KEY_B), dispatcher=DispatcherSettings(concurrency=0))
    async with openai.AsyncOpenAI(base_url=f"{stack.base_url}/v1", api_key=KEY_A.value, max_retries=0) as sdk:
        headers = {"x-asyncgate-wait-timeout": "0.5"}
        with pytest.raises(openai.APIStatusError):  # the first job never ends here: 504, still in flight
            await sdk.embeddings.create(model="local/hashing", input="one", extra_headers=headers)
        with pytest.raises(openai.RateLimitError) as limited_error:
            await sdk.embeddings.create(model="local/hashing", input="two", extra_headers=headers)
    assert limited_error.value.response.headers["Retry-After"].isdigit()
    assert limited_error.value.code == "too_many_jobs_in_flight"
