"""`python -m asyncgate` as a user runs it: its bridge's /metrics carries the server's metrics
too, and with --otlp-endpoint (here ASYNCGATE_OTLP_ENDPOINT) it exports a job's trace over
OTLP/HTTP to a collector (a real HTTP server that decodes what it receives)."""

from __future__ import annotations

import signal
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest
from aiohttp import web
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.trace.v1.trace_pb2 import Span

from asyncgate.otel import OTLP_ENDPOINT_ENV
from tests.observability.scrape import scrape, value
from tests.processes import AsyncGateProcess
from tests.rest import edit_form, submit, wait_terminal

pytestmark = pytest.mark.slow


class Collector:
    """An OTLP/HTTP trace receiver on 127.0.0.1: every span it was sent."""

    def __init__(self) -> None:
        self.spans: list[Span] = []
        self.url = ""

    async def receive(self, request: web.Request) -> web.Response:
        export = ExportTraceServiceRequest.FromString(await request.read())
        for resource in export.resource_spans:
            for scope in resource.scope_spans:
                self.spans.extend(scope.spans)
        return web.Response(body=b"", content_type="application/x-protobuf")


@pytest.fixture
async def collector() -> AsyncIterator[Collector]:
    received = Collector()
    app = web.Application()
    app.router.add_post("/v1/traces", received.receive)
    runner = web.AppRunner(app)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    received.url = f"http://127.0.0.1:{runner.addresses[0][1]}/v1/traces"
    yield received
    await runner.cleanup()


async def test_the_all_in_one_process_exposes_metrics_and_exports_traces(
    tmp_path: Path, collector: Collector, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(OTLP_ENDPOINT_ENV, collector.url)
    async with AsyncGateProcess(tmp_path, {}, tmp_path / "data") as proc:
        async with aiohttp.ClientSession(proc.base_url) as http:
            _, accepted = await submit(http, edit_form())
            assert (await wait_terminal(http, accepted["id"]))["status"] == "completed"
        samples = await scrape(f"{proc.base_url}/metrics")
        proc.kill(signal.SIGTERM)  # a clean stop flushes the spans not yet exported
        assert await proc.wait() == 0, proc.fail("did not stop cleanly")

    # One scrape, both parts: the bridge's requests and the server's jobs and queue.
    edits = {"method": "POST", "route": "/v1/async/images/edits", "status": "202"}
    assert value(samples, "asyncgate_http_request_seconds_count", **edits) == 1
    assert value(samples, "asyncgate_jobs_submitted_total", operation="image_edit") == 1
    assert value(samples, "asyncgate_jobs_ended_total", operation="image_edit", outcome="completed") == 1
    assert value(samples, "asyncgate_queue_jobs", state="pending") == 0

    names = {span.name for span in collector.spans}
    assert {"POST /v1/async/images/edits", "store.create_job", "job.run", "provider local"} <= names
    [submitted] = [s for s in collector.spans if s.name == "POST /v1/async/images/edits"]
    [ran] = [s for s in collector.spans if s.name == "provider local"]
    assert ran.trace_id == submitted.trace_id
