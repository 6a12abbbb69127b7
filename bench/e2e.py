"""End-to-end jobs through the REST bridge: embeddings against a provider that answers at once,
and image generations by the local placeholder model.

The server runs jobs here (16 at once, safety poll 1 s: a submit wakes its dispatcher,
so dispatch does not wait for the poll); SQLite store.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
from dataclasses import replace
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any

from bench import procs
from bench.compare import Side, SideResult, measure
from bench.fake_provider import DIMENSIONS, FakeProviderClient
from bench.jobs import POLL_INTERVAL, DirectEmbeddings, RestJobs
from bench.stats import comparison, job_summary, ratio

if TYPE_CHECKING:
    from bench.runner import Settings

EMBEDDINGS_PATH = "/v1/async/embeddings"
GENERATIONS_PATH = "/v1/async/images/generations"
PROVIDER_MODEL = "bench-embed"
EMBEDDING_MODEL = f"{procs.BENCH_PROVIDER}/{PROVIDER_MODEL}"
GENERATION_MODEL = "local/placeholder"
GENERATION_SIZE = "256x256"
RUNNING_SERVER = procs.ServerOptions(concurrency=16, poll_interval_seconds=1.0)


def embedding_body(text: str) -> dict[str, Any]:
    return {"model": EMBEDDING_MODEL, "input": text}


def generation_body(text: str) -> dict[str, Any]:
    return {"model": GENERATION_MODEL, "prompt": text, "size": GENERATION_SIZE}


async def _running_stack(
    stack: contextlib.ExitStack, workdir: Path, prefix: str, provider_url: str | None
) -> tuple[procs.Process, procs.Process, str]:
    """A job-running server and its bridge: (server, bridge, bridge URL)."""
    options = replace(RUNNING_SERVER, provider_url=provider_url)
    server, target = procs.start_server(stack, workdir, f"{prefix}-grpc-server", options)
    await procs.wait_grpc_ready(server, target)
    bridge, bridge_url = procs.start_bridge(stack, workdir, target, f"{prefix}-rest-bridge")
    await procs.wait_http_ready(bridge, bridge_url)
    return server, bridge, bridge_url


def gateway_share(provider_ms: float, total_ms: float) -> float:
    """The part of `total_ms` that is not the provider's."""
    return 1 - ratio(provider_ms, total_ms)


def _versus_direct(baseline: SideResult, subject: SideResult, arrivals: dict[str, float]) -> dict[str, Any]:
    part = comparison(baseline, subject, summarize_subject=partial(job_summary, arrivals=arrivals))
    direct_ms = part["baseline"]["latency_ms"]["p50"]
    subj = part["subject"]
    return {
        **part,
        # The provider's time is a direct call's p50: what it costs a client, HTTP included.
        "provider_call_p50_ms": direct_ms,
        "gateway_share": {
            "end_to_end_p50": gateway_share(direct_ms, subj["latency_ms"]["p50"]),
            "server_side_p50": gateway_share(direct_ms, subj["server_job_ms"]["p50"]),
        },
    }


async def embeddings_measurement(workdir: Path, settings: Settings) -> dict[str, Any]:
    """Submit, run against the fake, poll: against the same client calling the fake directly.

    Twice: with the bench's clients (saturating two cores: latency is mostly queueing for
    CPU), then with one client (what a job costs when nothing waits)."""
    with contextlib.ExitStack() as stack:
        fake, fake_url = procs.start_fake_provider(stack, workdir)
        server, bridge, bridge_url = await _running_stack(stack, workdir, "embeddings", fake_url + "/v1")
        await procs.wait_http_ready(fake, fake_url)
        gateway = {"rest-bridge": bridge.pid, "grpc-server": server.pid, "fake-provider": fake.pid}

        async def versus(concurrency: int, duration: float) -> tuple[SideResult, SideResult]:
            async with (
                DirectEmbeddings(fake_url + "/v1", PROVIDER_MODEL, concurrency) as direct,
                RestJobs(bridge_url, EMBEDDINGS_PATH, embedding_body, concurrency) as jobs,
            ):
                return await settings.compare(
                    Side("direct", direct.run, {"fake-provider": fake.pid}),
                    Side("asyncgate", jobs.run, gateway),
                    duration,
                )

        loaded = await versus(settings.concurrency, settings.duration)
        alone = await versus(1, settings.duration / 2)  # a closed loop of one: half the time is plenty
        provider = FakeProviderClient(fake_url)
        arrivals, (requests, handler_seconds) = await asyncio.gather(provider.arrivals(), provider.stats())
    return {
        "dimensions": DIMENSIONS,
        "poll_interval_ms": POLL_INTERVAL * 1000,
        "provider_handler_mean_ms": handler_seconds / requests * 1000 if requests else math.nan,
        **_versus_direct(*loaded, arrivals),
        "one_client": _versus_direct(*alone, arrivals),
    }


async def generations_measurement(workdir: Path, settings: Settings) -> dict[str, Any]:
    """Submit, generate a 256x256 placeholder in the server, poll: jobs/s and latency, no baseline."""
    with contextlib.ExitStack() as stack:
        server, bridge, bridge_url = await _running_stack(stack, workdir, "generations", None)
        async with RestJobs(bridge_url, GENERATIONS_PATH, generation_body, settings.concurrency) as jobs:
            result = await measure(
                Side("asyncgate", jobs.run, {"rest-bridge": bridge.pid, "grpc-server": server.pid}),
                duration=settings.duration,
                rounds=settings.rounds,
                warmup=settings.warmup,
            )
    return {
        "model": GENERATION_MODEL,
        "size": GENERATION_SIZE,
        "poll_interval_ms": POLL_INTERVAL * 1000,
        "subject": job_summary(result),
    }
