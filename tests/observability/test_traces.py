"""OpenTelemetry traces with the SDK's in-memory exporter: one trace from the HTTP client's
traceparent through the bridge, gRPC, the store and the job's run to the provider's request
(the fake OpenAI server records the traceparent it received)."""

from __future__ import annotations

import asyncio
import os
import secrets
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from asyncgate import otel
from grpc_server.config import ApiKey, ProviderSettings
from tests.conftest import Stack, StackFactory
from tests.fakes.openai_server import FakeOpenAI
from tests.rest import EDITS, edit_form, wait_terminal

ROOT = Path(__file__).parents[2]
OPENAI_EDIT = {"model": "openai/gpt-image-1", "prompt": "make it blue", "type": ""}


@pytest.fixture
def exporter() -> Iterator[InMemorySpanExporter]:
    spans = InMemorySpanExporter()
    traces = TracerProvider()
    traces.add_span_processor(SimpleSpanProcessor(spans))
    otel.install(traces)
    yield spans
    otel.uninstall()
    traces.shutdown()


@pytest.fixture
async def fake() -> AsyncIterator[FakeOpenAI]:
    async with FakeOpenAI(api_key="sk-test") as server:
        yield server


def openai(fake: FakeOpenAI) -> dict[str, ProviderSettings]:
    return {"openai": ProviderSettings(keys=(ApiKey("sk-test"),), base_url=fake.base_url)}


async def submit_traced(stack: Stack, traceparent: str) -> str:
    headers = {"traceparent": traceparent}
    async with stack.http.post(EDITS, data=edit_form(OPENAI_EDIT), headers=headers) as response:
        assert response.status == 202, await response.text()
        job_id: str = (await response.json())["id"]
    assert (await wait_terminal(stack.http, job_id))["status"] == "completed"
    return job_id


async def finished(exporter: InMemorySpanExporter, name: str) -> ReadableSpan:
    """The span once it has ended (a job's run span ends just after its outcome is written)."""
    while True:
        found = [s for s in exporter.get_finished_spans() if s.name == name]
        if found:
            return found[0]
        await asyncio.sleep(0.01)


async def test_one_trace_from_the_http_client_to_the_provider_request(
    exporter: InMemorySpanExporter, make_stack: StackFactory, fake: FakeOpenAI
) -> None:
    stack = await make_stack(providers=openai(fake))
    trace_id, client_span = secrets.token_hex(16), secrets.token_hex(8)
    await submit_traced(stack, f"00-{trace_id}-{client_span}-01")

    [sent] = fake.requests
    version, sent_trace, sent_parent, _ = sent.headers["traceparent"].split("-")
    assert (version, sent_trace) == ("00", trace_id)

    provider = await finished(exporter, "provider openai")
    run = await finished(exporter, "job.run")
    spans = {
        s.context.span_id: s for s in exporter.get_finished_spans() if s.context.trace_id == int(trace_id, 16)
    }
    by_name = {s.name: s for s in spans.values()}
    http = by_name["POST /v1/async/images/edits"]
    [grpc_server] = [s for s in spans.values() if "JobService" in s.name and s.kind.name == "SERVER"]
    store = by_name["store.create_job"]

    assert http.parent is not None and http.parent.span_id == int(client_span, 16)  # the client's span
    assert store.parent is not None and store.parent.span_id == grpc_server.context.span_id
    assert run.parent is not None and run.parent.span_id == grpc_server.context.span_id  # the submit's
    assert provider.context.trace_id == int(trace_id, 16)
    assert provider.attributes is not None and provider.attributes["asyncgate.outcome"] == "ok"
    assert int(sent_parent, 16) == provider.context.span_id  # the provider's request is the call's child

    def ancestors(span: ReadableSpan) -> list[str]:
        names = []
        while span.parent is not None and span.parent.span_id in spans:
            span = spans[span.parent.span_id]
            names.append(span.name)
        return names

    assert ancestors(provider)[0] == "job.run"
    assert ancestors(provider)[-1] == "POST /v1/async/images/edits"  # one trace, from the bridge down


async def test_a_failed_provider_call_is_an_error_span(
    exporter: InMemorySpanExporter, make_stack: StackFactory, fake: FakeOpenAI
) -> None:
    from tests.fakes.openai_server import FakeResponse

    stack = await make_stack(providers=openai(fake))
    fake.enqueue(FakeResponse.error(400, "rejected", "invalid_request_error"))
    async with stack.http.post(EDITS, data=edit_form(OPENAI_EDIT)) as response:
        job_id = (await response.json())["id"]
    assert (await wait_terminal(stack.http, job_id))["status"] == "failed"
    provider = await finished(exporter, "provider openai")
    assert provider.status.status_code.name == "ERROR"
    assert provider.attributes is not None and provider.attributes["asyncgate.outcome"] == "client_error"
    assert "traceparent" in fake.requests[0].headers  # a trace started by the bridge, without a client's


async def test_tracing_off_sends_no_traceparent(make_stack: StackFactory, fake: FakeOpenAI) -> None:
    assert not otel.enabled()
    stack = await make_stack(providers=openai(fake))
    await submit_traced(stack, f"00-{secrets.token_hex(16)}-{secrets.token_hex(8)}-01")
    [sent] = fake.requests
    assert "traceparent" not in sent.headers


def test_nothing_of_opentelemetry_is_imported_unless_tracing_is_configured() -> None:
    program = (
        "import sys, asyncgate.__main__, grpc_server.__main__, rest_bridge.__main__\n"
        "from grpc_server.server import AsyncGateServer\n"
        "from rest_bridge.app import create_app\n"
        "print(sorted(m for m in sys.modules if m.startswith('opentelemetry')))\n"
    )
    env = {k: v for k, v in os.environ.items() if k != otel.OTLP_ENDPOINT_ENV}
    out = subprocess.run(
        [sys.executable, "-c", program], cwd=ROOT, env=env, capture_output=True, text=True, check=True
    )
    assert out.stdout.strip() == "[]"


async def test_probes_and_scrapes_start_no_trace(
    exporter: InMemorySpanExporter, make_stack: StackFactory
) -> None:
    stack = await make_stack()
    for path in ("/health", "/metrics", "/v1/async/images/edits/not-a-job"):
        async with stack.http.get(path) as response:
            await response.read()
    names = {span.name for span in exporter.get_finished_spans()}
    assert "GET /v1/async/images/edits/{job_id}" in names  # tracing is on
    assert not [name for name in names if "health" in name.lower() or "metrics" in name]
