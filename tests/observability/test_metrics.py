"""/metrics of the real server and bridge after real jobs: local ones, and OpenAI jobs against
the fake provider that fail, are retried and fall back. Counters are process-wide, so each
check compares a scrape before the jobs with one after."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import replace

import aiohttp
import pytest

from grpc_server.config import ApiKey, DispatcherSettings, ProviderSettings
from rest_bridge.app import create_app
from rest_bridge.config import BridgeConfig
from rest_bridge.metrics import add_metrics_source
from rest_bridge.serving import start_bridge
from tests.conftest import Stack, StackFactory
from tests.fakes.openai_server import FakeOpenAI, FakeResponse
from tests.images import subject_on_background
from tests.observability.scrape import moved, scrape, value
from tests.rest import edit_form, submit, wait_terminal

OPENAI = "openai/gpt-image-1"


@pytest.fixture
async def fake() -> AsyncIterator[FakeOpenAI]:
    async with FakeOpenAI(api_key="sk-test") as server:
        yield server


@pytest.fixture
async def stack(make_stack: StackFactory, fake: FakeOpenAI) -> Stack:
    provider = ProviderSettings(keys=(ApiKey("sk-test"),), base_url=fake.base_url)
    return await make_stack(providers={"openai": provider}, metrics_port=0)


def server_metrics(stack: Stack) -> str:
    return f"http://127.0.0.1:{stack.server.metrics.port}/metrics"


async def run_jobs(stack: Stack, fake: FakeOpenAI) -> int:
    """Two local jobs, one OpenAI job failing three times then falling back to local, one
    OpenAI job refused for good. The bytes of the images uploaded."""
    image = subject_on_background()
    for _ in range(2):
        _, accepted = await submit(stack.http, edit_form(images=[("a.png", image)]))
        assert (await wait_terminal(stack.http, accepted["id"]))["status"] == "completed"
    fake.enqueue(*[FakeResponse.error(500) for _ in range(3)])
    fields = {"model": OPENAI, "prompt": "p", "type": "background_removal", "fallbacks": "local/pillow"}
    _, accepted = await submit(stack.http, edit_form(fields, images=[("a.png", image)]))
    assert (await wait_terminal(stack.http, accepted["id"]))["status"] == "completed"
    fake.enqueue(FakeResponse.error(400, "rejected", "invalid_request_error"))
    _, accepted = await submit(
        stack.http, edit_form({"model": OPENAI, "prompt": "p"}, images=[("a.png", image)])
    )
    assert (await wait_terminal(stack.http, accepted["id"]))["status"] == "failed"
    return 4 * len(image)


async def test_server_metrics_count_jobs_provider_calls_and_store_operations(
    stack: Stack, fake: FakeOpenAI
) -> None:
    before = await scrape(server_metrics(stack))
    uploaded = await run_jobs(stack, fake)
    after = await scrape(server_metrics(stack))

    edit = {"operation": "image_edit"}
    assert moved(before, after, "asyncgate_jobs_submitted_total", **edit) == 4
    assert moved(before, after, "asyncgate_jobs_ended_total", **edit, outcome="completed") == 3
    assert moved(before, after, "asyncgate_jobs_ended_total", **edit, outcome="failed") == 1
    assert moved(before, after, "asyncgate_input_bytes_total", **edit) == uploaded
    assert moved(before, after, "asyncgate_job_claim_wait_seconds_count", **edit) == 4

    calls = "asyncgate_provider_call_seconds_count"
    openai = {"provider": "openai", "model": "gpt-image-1"}
    assert moved(before, after, calls, **openai, outcome="server_error") == 3
    assert moved(before, after, calls, **openai, outcome="client_error") == 1
    assert moved(before, after, calls, **openai, outcome="ok") == 0
    assert moved(before, after, calls, provider="local", model="pillow", outcome="ok") == 3
    assert moved(before, after, "asyncgate_provider_retries_total", provider="openai") == 2
    assert moved(before, after, "asyncgate_fallbacks_total", provider="local") == 1
    assert len(fake.requests) == 4

    store_ops = "asyncgate_store_operation_seconds_count"
    assert moved(before, after, store_ops, method="create_job", outcome="ok") == 4
    assert moved(before, after, store_ops, method="complete_job", outcome="ok") == 3
    assert moved(before, after, store_ops, method="get_job", outcome="ok") >= 4  # the polls

    # Read from the store at scrape time: nothing waits or runs any more.
    assert value(after, "asyncgate_store_up") == 1
    assert value(after, "asyncgate_health_serving") == 1
    assert value(after, "asyncgate_queue_jobs", state="pending") == 0
    assert value(after, "asyncgate_queue_jobs", state="processing") == 0
    assert value(after, "asyncgate_running_jobs") == 0
    assert value(after, "asyncgate_worker_concurrency") == stack.server.config.dispatcher.concurrency


async def test_bridge_metrics_count_requests_by_route_and_status(stack: Stack, fake: FakeOpenAI) -> None:
    url = f"{stack.base_url}/metrics"
    before = await scrape(url)
    async with stack.http.get("/v1/async/images/edits/not-a-job") as response:
        missing_status = response.status
    await run_jobs(stack, fake)
    after = await scrape(url)

    requests = "asyncgate_http_request_seconds_count"
    edits = {"method": "POST", "route": "/v1/async/images/edits"}
    assert moved(before, after, requests, **edits, status="202") == 4
    assert moved(before, after, "asyncgate_http_request_body_bytes_total", route=edits["route"]) > 0
    poll = {"method": "GET", "route": "/v1/async/images/edits/{job_id}"}
    assert moved(before, after, requests, **poll, status="200") == 4  # each wait ends with one 200
    assert moved(before, after, requests, **poll, status=str(missing_status)) == 1
    assert missing_status >= 400
    # The scrape itself is counted once its answer is sent: the first one shows in the second.
    assert value(after, requests, method="GET", route="/metrics", status="200") >= 1


async def test_queue_gauges_come_from_the_store(make_stack: StackFactory, tmp_path: object) -> None:
    """An accept-only server claims nothing: its jobs wait, and /metrics says how many and for
    how long, read from the store at scrape time."""
    stack = await make_stack(metrics_port=0, dispatcher=DispatcherSettings(concurrency=0))
    for _ in range(3):
        await submit(stack.http, edit_form())
    samples = await scrape(server_metrics(stack))
    assert value(samples, "asyncgate_queue_jobs", state="pending") == 3
    assert value(samples, "asyncgate_oldest_pending_job_age_seconds") > 0
    assert value(samples, "asyncgate_running_jobs") == 0


async def test_one_process_serves_the_servers_metrics_on_the_bridge(make_stack: StackFactory) -> None:
    """As `python -m asyncgate` does: the bridge's /metrics carries the server's metrics too."""
    stack = await make_stack()
    assert stack.server.metrics.port is None  # metrics_port unset: no port of its own
    config = replace(BridgeConfig(), grpc_target=stack.grpc_target, port=0)
    app = create_app(config)
    add_metrics_source(app, stack.server.metrics.render)
    runner = await start_bridge(app, config)
    try:
        url = f"http://127.0.0.1:{runner.addresses[0][1]}"
        async with aiohttp.ClientSession(url) as http:
            await submit(http, edit_form())
        samples = await scrape(f"{url}/metrics")
    finally:
        await runner.cleanup()
    assert (
        value(samples, "asyncgate_queue_jobs", state="pending")
        + value(samples, "asyncgate_queue_jobs", state="processing")
        + value(samples, "asyncgate_jobs_ended_total", operation="image_edit", outcome="completed")
        >= 1
    )
    assert value(samples, "asyncgate_store_up") == 1
    assert (
        value(
            samples,
            "asyncgate_http_request_seconds_count",
            method="POST",
            route="/v1/async/images/edits",
            status="202",
        )
        >= 1
    )
