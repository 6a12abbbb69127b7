"""The measurements, each with its own processes, and the whole run."""

from __future__ import annotations

import asyncio
import contextlib
import os
import platform
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from bench import pg, procs
from bench.ceilings import ceilings_measurement
from bench.compare import Side, SideResult, compare
from bench.e2e import embeddings_measurement, generations_measurement
from bench.enqueue import enqueue_measurement
from bench.fairness import fairness_measurement
from bench.inflight import inflight_measurement
from bench.load import GrpcTarget, RestTarget
from bench.memory import measure_upload
from bench.payloads import BIG_SIDE, create_request, multipart_form, small_png, write_big_png
from bench.pixel_bombs import pixel_bomb_measurement
from bench.polls import poll_measurement
from bench.postgres import postgres_measurement
from bench.procfs import load_average
from bench.report import goals
from bench.stats import comparison
from bench.waiters import WaiterSettings, waiters_measurement

ACCEPT_ONLY_NOTE = (
    "for the submit parts the gRPC server runs accept-only ([dispatcher] concurrency = 0): jobs are "
    "validated and stored, never run, so no job steals CPU from the submit path or decodes the large "
    "image; the job parts run them (16 at once)"
)


@dataclass(frozen=True)
class Settings:
    duration: float = 10.0
    """Measured seconds per side of each comparison."""
    warmup: float = 1.0
    concurrency: int = 16
    rounds: int = 4
    """Alternating slices the measured time is cut into."""
    parts: tuple[str, ...] = field(default_factory=lambda: PARTS)
    database_url: str = pg.ADMIN_URL
    """PostgreSQL maintenance database the postgres part creates its databases from."""
    inflight_jobs: int = 2000
    """Jobs the inflight part submits at once (the goal: 10,000 on one replica)."""
    inflight_latency: float = 10.0
    """Seconds the inflight part's provider takes per call; above the submit time, every job
    is in flight at once."""
    waiters: WaiterSettings = field(default_factory=WaiterSettings)
    """The waiters part's clients, jobs and completion pace."""

    async def compare(
        self, baseline: Side, subject: Side, duration: float | None = None
    ) -> tuple[SideResult, SideResult]:
        """bench.compare.compare with these rounds and warm-up, for `duration` seconds a side
        (these settings' duration unless given)."""
        seconds = self.duration if duration is None else duration
        return await compare(baseline, subject, duration=seconds, rounds=self.rounds, warmup=self.warmup)


async def rest_comparison(workdir: Path, settings: Settings) -> dict[str, Any]:
    """POST /v1/async/images/edits: bridge + server against a bare aiohttp multipart reader."""
    body = multipart_form(small_png())
    with contextlib.ExitStack() as stack:
        server, target = procs.start_server(stack, workdir, "rest-grpc-server")
        baseline, baseline_url = procs.start_rest_baseline(stack, workdir)
        await procs.wait_grpc_ready(server, target)
        bridge, bridge_url = procs.start_bridge(stack, workdir, target)
        await asyncio.gather(
            procs.wait_http_ready(bridge, bridge_url), procs.wait_http_ready(baseline, baseline_url)
        )
        async with (
            RestTarget(baseline_url, body, settings.concurrency) as bare,
            RestTarget(bridge_url, body, settings.concurrency) as real,
        ):
            results = await settings.compare(
                Side("baseline", bare.run, {"rest-baseline": baseline.pid}),
                Side("asyncgate", real.run, {"rest-bridge": bridge.pid, "grpc-server": server.pid}),
            )
    return {"body_bytes": len(body.data), **comparison(*results)}


async def grpc_comparison(workdir: Path, settings: Settings) -> dict[str, Any]:
    """CreateImageEditJob (unary, image inline): the server against a bare grpc.aio handler."""
    request = create_request(small_png())
    with contextlib.ExitStack() as stack:
        server, target = procs.start_server(stack, workdir, "grpc-grpc-server")
        baseline, baseline_target = procs.start_grpc_baseline(stack, workdir)
        await asyncio.gather(
            procs.wait_grpc_ready(server, target), procs.wait_grpc_ready(baseline, baseline_target)
        )
        async with (
            GrpcTarget(baseline_target, request, settings.concurrency) as bare,
            GrpcTarget(target, request, settings.concurrency) as real,
        ):
            results = await settings.compare(
                Side("baseline", bare.run, {"grpc-baseline": baseline.pid}),
                Side("asyncgate", real.run, {"grpc-server": server.pid}),
            )
    return {"message_bytes": request.ByteSize(), **comparison(*results)}


async def memory_measurement(workdir: Path) -> dict[str, Any]:
    image = workdir / "big.png"
    write_big_png(image)  # before any process starts, so it disturbs nothing measured
    result = await measure_upload(workdir, image, multipart_form(small_png()))
    return {"image": f"{BIG_SIDE}x{BIG_SIDE} RGB noise PNG, stored uncompressed", **result}


Measurement = Callable[[Path, Settings], Awaitable[dict[str, Any]]]

MEASUREMENTS: dict[str, tuple[str, Measurement]] = {
    "rest": ("REST submit: bridge + server against bare aiohttp ...", rest_comparison),
    "grpc": ("gRPC submit: server against bare grpc.aio ...", grpc_comparison),
    "ceilings": ("Ceilings: storing alone, the bridge over a bare gRPC handler ...", ceilings_measurement),
    "memory": ("Memory: a ~50 MB PNG through the bridge ...", lambda workdir, _: memory_measurement(workdir)),
    "embeddings": (
        "Embeddings end to end: submit, run against a provider that answers at once, poll ...",
        embeddings_measurement,
    ),
    "generations": ("Image generations end to end: local/placeholder 256x256 ...", generations_measurement),
    "postgres": (
        "PostgreSQL next to SQLite: submit, end to end, NOTIFY dispatch, two replicas ...",
        postgres_measurement,
    ),
    "enqueue": (
        "Submit on PostgreSQL next to procrastinate's enqueue: embedding and image jobs, each blob store ...",
        enqueue_measurement,
    ),
    "inflight": (
        "In flight: N jobs at once against a provider answering in 10 s, SQLite and PostgreSQL ...",
        inflight_measurement,
    ),
    "polls": (
        "Polls of an ended job: REST and gRPC against bare servers answering the same bytes ...",
        poll_measurement,
    ),
    "bombs": (
        "Pixel bombs: 20 x 64 Mpx WEBPs at once, before and after the pixel budget ...",
        lambda workdir, _: pixel_bomb_measurement(workdir),
    ),
    "fairness": (
        "Fair share: key A's 5,000 jobs, then key B's 10, claimed with and without fair share ...",
        lambda workdir, settings: fairness_measurement(workdir, settings.database_url),
    ),
    "waiters": (
        "Waiters: 10,000 clients waiting (REST Prefer: wait, gRPC WaitJob, WatchJob) and polling ...",
        lambda workdir, settings: waiters_measurement(workdir, settings.waiters),
    ),
}
"""Each part: what the progress line says, and what measures it; run in this order."""
PARTS: tuple[str, ...] = tuple(MEASUREMENTS)


def _meta(settings: Settings) -> dict[str, Any]:
    return {
        "settings": asdict(settings),
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "cpus": os.cpu_count(),
        "note": ACCEPT_ONLY_NOTE,
    }


async def run_all(settings: Settings, progress: Callable[[str], None] = lambda _: None) -> dict[str, Any]:
    """Every part asked for, in a temporary directory removed afterwards."""
    report: dict[str, Any] = {"meta": _meta(settings)}
    report["meta"]["load_average_start"] = load_average()
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="asyncgate-bench-") as tmp:
        workdir = Path(tmp)
        for part, (what, measurement) in MEASUREMENTS.items():
            if part in settings.parts:
                progress(what)
                report[part] = await measurement(workdir, settings)
    report["meta"]["load_average_end"] = load_average()
    report["meta"]["total_seconds"] = round(time.perf_counter() - started, 1)
    report["goals"] = goals(report)
    return report
