"""Retries and fallbacks end to end: the REST bridge, the server, and a real HTTP server
on 127.0.0.1 speaking OpenAI's images API."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from grpc_server.config import ApiKey, ProviderSettings, RetrySettings
from tests.conftest import Stack, StackFactory
from tests.fakes.openai_server import FakeOpenAI, FakeResponse
from tests.images import decode
from tests.rest import edit_form, submit, wait_terminal

OPENAI_EDIT = {"model": "openai/gpt-image-1", "prompt": "make it blue", "type": ""}


@pytest.fixture
async def fake() -> AsyncIterator[FakeOpenAI]:
    async with FakeOpenAI(api_key="sk-test") as server:
        yield server


@pytest.fixture
async def openai_stack(make_stack: StackFactory, fake: FakeOpenAI) -> Stack:
    return await make_stack(
        providers={"openai": ProviderSettings(keys=(ApiKey("sk-test"),), base_url=fake.base_url)}
    )


async def test_openai_edit_completes_with_the_providers_image(openai_stack: Stack, fake: FakeOpenAI) -> None:
    _, accepted = await submit(openai_stack.http, edit_form({**OPENAI_EDIT, "size": "256x256"}))
    job = await wait_terminal(openai_stack.http, accepted["id"])
    assert job["status"] == "completed", job
    assert job["result"]["extra_fields"]["provider"] == "openai"
    assert job["result"]["usage"] == {"input_tokens": 10, "output_tokens": 20, "total_tokens": 30}
    [sent] = fake.requests
    assert sent.headers["authorization"] == "Bearer sk-test"
    assert sent.field("model") == "gpt-image-1" and sent.field("size") == "256x256"
    async with openai_stack.http.get(job["result"]["data"][0]["url"]) as response:
        assert decode(await response.read()).size == (256, 256)


async def test_retry_after_a_429_honours_retry_after(openai_stack: Stack, fake: FakeOpenAI) -> None:
    fake.enqueue(FakeResponse.error(429, "Rate limit reached", "requests", headers={"Retry-After": "1"}))
    _, accepted = await submit(openai_stack.http, edit_form(OPENAI_EDIT))
    job = await wait_terminal(openai_stack.http, accepted["id"])
    assert job["status"] == "completed", job
    first, second = fake.requests
    # The gateway waited as long as the provider asked before calling again.
    assert second.received_at - first.received_at >= 1.0


async def test_fallback_to_a_second_model(openai_stack: Stack, fake: FakeOpenAI) -> None:
    fake.enqueue(
        FakeResponse.error(400, "Your request was rejected", "invalid_request_error", "moderation_blocked")
    )
    form = edit_form({**OPENAI_EDIT, "type": "background_removal", "fallbacks": "local/pillow"})
    _, accepted = await submit(openai_stack.http, form)
    job = await wait_terminal(openai_stack.http, accepted["id"])
    assert job["status"] == "completed", job
    assert job["result"]["extra_fields"] == {
        "provider": "local",
        "model_requested": "pillow",
        "request_type": "image_edit",
    }
    assert len(fake.requests) == 1  # a 400 is not retried


async def test_when_every_model_fails_the_job_fails_with_the_primarys_error(
    openai_stack: Stack, fake: FakeOpenAI
) -> None:
    fake.enqueue(
        FakeResponse.error(400, "Invalid size for this model", "invalid_request_error", param="size")
    )
    # The fallback is the same provider: its 500s are retried, then it gives up too.
    fake.enqueue(*[FakeResponse.error(500, "boom", "server_error")] * 3)
    form = edit_form({**OPENAI_EDIT, "fallbacks": "openai/dall-e-2"})
    _, accepted = await submit(openai_stack.http, form)
    job = await wait_terminal(openai_stack.http, accepted["id"])
    assert job["status"] == "failed"
    assert job["status_code"] == 400
    error = job["error"]
    assert error["is_bifrost_error"] is False
    assert error["status_code"] == 400
    assert error["error"]["message"] == "Invalid size for this model"
    assert error["error"]["param"] == "size"
    assert error["extra_fields"] == {
        "provider": "openai",
        "model_requested": "gpt-image-1",
        "request_type": "image_edit",
    }
    assert [r.field("model") for r in fake.requests] == ["gpt-image-1", "dall-e-2", "dall-e-2", "dall-e-2"]
    assert list(job) == ["id", "status", "expires_at", "created_at", "completed_at", "status_code", "error"]


async def test_a_provider_that_hangs_is_timed_out_and_retried(
    make_stack: StackFactory, fake: FakeOpenAI
) -> None:
    stack = await make_stack(
        providers={
            "openai": ProviderSettings(keys=(ApiKey("sk-test"),), base_url=fake.base_url, timeout_seconds=0.5)
        },
        retry=RetrySettings(max_attempts=2, base_delay_seconds=0.01),
    )
    fake.enqueue(FakeResponse.hang())
    _, accepted = await submit(stack.http, edit_form(OPENAI_EDIT))
    job = await wait_terminal(stack.http, accepted["id"])
    assert job["status"] == "completed", job
    assert len(fake.requests) == 2


async def test_the_provider_key_never_reaches_the_client(openai_stack: Stack, fake: FakeOpenAI) -> None:
    fake.enqueue(*[FakeResponse.error(401, "Incorrect API key provided: sk-test", "invalid_request_error")])
    _, accepted = await submit(openai_stack.http, edit_form(OPENAI_EDIT))
    job = await wait_terminal(openai_stack.http, accepted["id"])
    assert job["status"] == "failed" and job["status_code"] == 401
    assert "sk-test" not in str(job)
