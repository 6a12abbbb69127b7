"""A job's overall deadline: however its attempts and fallbacks go, one run ends in time."""

from __future__ import annotations

from dataclasses import replace

from grpc_server.config import ApiKey, DispatcherSettings, ProviderSettings
from tests.conftest import StackFactory
from tests.fakes.openai_server import FakeOpenAI, FakeResponse
from tests.rest import edit_form, submit, wait_terminal


async def test_a_job_past_its_deadline_fails_with_a_gateway_timeout(make_stack: StackFactory) -> None:
    async with FakeOpenAI(api_key="sk-test") as fake:
        # Each attempt may take 10 s (the test timings); the provider would answer after 60 s;
        # the job's deadline is 1 s.
        fake.enqueue(FakeResponse.success(delay=60))
        stack = await make_stack(
            providers={"openai": ProviderSettings(keys=(ApiKey("sk-test"),), base_url=fake.base_url)},
            dispatcher=replace(DispatcherSettings(), poll_interval_seconds=0.2, job_deadline_seconds=1),
        )
        form = edit_form({"model": "openai/gpt-image-1", "prompt": "make it blue", "fallbacks": "openai/b"})
        _, accepted = await submit(stack.http, form)
        job = await wait_terminal(stack.http, accepted["id"])
    assert job["status"] == "failed" and job["status_code"] == 504, job
    assert job["error"]["error"]["code"] == "job_deadline_exceeded"
    assert job["error"]["is_bifrost_error"] is True
    assert len(fake.requests) == 1  # the deadline ended the run, not a retry or a fallback
