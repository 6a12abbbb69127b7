"""A burst of decompression bombs: what it costs the server, before and after the pixel budget.

Each request is a lossless WEBP of about 2.5 KB that declares 8000 x 8000 pixels (64 Mpx,
exactly the default max_image_pixels, so it is accepted and must be decoded to be checked).
Twenty arrive at once through the bridge while a client asks `GET /health` every 20 ms.
Reported per side: the server's peak RSS during the burst (VmHWM, reset when idle), the
longest and median /health answer, how long the burst took and what each submit answered.

"before" is the same server from an earlier commit (`BEFORE_REF`, checked out in a temporary
git worktree), "after" this tree; both accept-only, so no job runs, and measured in one run.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import statistics
import subprocess
import time
from pathlib import Path
from typing import Any

import aiohttp
from PIL import Image

from bench import procs
from bench.procfs import peak_rss_bytes, reset_peak_rss, rss_bytes

BEFORE_REF = "6098bda"
"""main before the pixel budget and before image checks left the event loop."""
BOMBS = 20
BOMB_SIDE = 8000
HEALTH_EVERY = 0.02
EDITS = "/v1/async/images/edits"


def bomb_webp(side: int = BOMB_SIDE) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (side, side), "white").save(out, "WEBP", lossless=True)
    return out.getvalue()


async def _submit(session: aiohttp.ClientSession, url: str, image: bytes) -> int:
    form = aiohttp.FormData()
    form.add_field("model", "local/pillow")
    form.add_field("type", "background_removal")
    form.add_field("image", image, filename="bomb.webp", content_type="image/webp")
    async with session.post(url + EDITS, data=form) as response:
        await response.read()
        return response.status


async def _watch_health(session: aiohttp.ClientSession, url: str, stop: asyncio.Event) -> list[float]:
    answers: list[float] = []
    while not stop.is_set():
        started = time.perf_counter()
        async with session.get(url + "/health") as response:
            await response.read()
        answers.append(time.perf_counter() - started)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), HEALTH_EVERY)
    return answers


async def _burst(url: str, server_pid: int, image: bytes, count: int) -> dict[str, Any]:
    timeout = aiohttp.ClientTimeout(total=600)
    async with (
        aiohttp.ClientSession(timeout=timeout) as submits,
        aiohttp.ClientSession(timeout=timeout) as probe,
    ):
        await _submit(submits, url, image)  # warm-up: imports, first decode, allocator
        await asyncio.sleep(0.5)
        idle = rss_bytes(server_pid)
        reset_peak_rss(server_pid)
        stop = asyncio.Event()
        watcher = asyncio.create_task(_watch_health(probe, url, stop))
        started = time.perf_counter()
        statuses = await asyncio.gather(*(_submit(submits, url, image) for _ in range(count)))
        elapsed = time.perf_counter() - started
        stop.set()
        health = await watcher
    return {
        "statuses": sorted(statuses),
        "burst_seconds": round(elapsed, 2),
        "idle_rss_bytes": idle,
        "peak_rss_bytes": peak_rss_bytes(server_pid),
        "health_answers": len(health),
        "health_max_ms": round(max(health) * 1000, 1),
        "health_p50_ms": round(statistics.median(health) * 1000, 1),
    }


async def _side(workdir: Path, name: str, source: Path, image: bytes, count: int) -> dict[str, Any]:
    with contextlib.ExitStack() as stack:
        server, target = procs.start_server(stack, workdir, f"{name}-grpc-server", source=source)
        await procs.wait_grpc_ready(server, target)
        bridge, url = procs.start_bridge(stack, workdir, target, f"{name}-rest-bridge", source=source)
        await procs.wait_http_ready(bridge, url)
        return await _burst(url, server.pid, image, count)


@contextlib.contextmanager
def _checkout(ref: str, where: Path) -> Any:
    """`ref` of this repository in a temporary worktree (None when it cannot be had)."""
    added = subprocess.run(
        ["git", "-C", str(procs.ROOT), "worktree", "add", "--detach", str(where), ref],
        capture_output=True,
        check=False,
    )
    if added.returncode != 0:
        yield None
        return
    try:
        yield where
    finally:
        subprocess.run(
            ["git", "-C", str(procs.ROOT), "worktree", "remove", "--force", str(where)],
            capture_output=True,
            check=False,
        )


async def pixel_bomb_measurement(
    workdir: Path, count: int = BOMBS, before_ref: str = BEFORE_REF
) -> dict[str, Any]:
    image = bomb_webp()
    report: dict[str, Any] = {
        "bomb_bytes": len(image),
        "bomb_pixels": BOMB_SIDE * BOMB_SIDE,
        "requests": count,
    }
    with _checkout(before_ref, workdir / "before-tree") as before:
        if before is None:
            report["before"] = {"skipped": f"git ref {before_ref} is not in this clone"}
        else:
            report["before"] = await _side(workdir, "before", before, image, count)
    report["after"] = await _side(workdir, "after", procs.ROOT, image, count)
    if "peak_rss_bytes" in report["before"]:
        b, a = report["before"], report["after"]
        report["peak_rss_after_to_before"] = round(a["peak_rss_bytes"] / b["peak_rss_bytes"], 2)
        report["health_max_after_to_before"] = round(a["health_max_ms"] / b["health_max_ms"], 3)
    return report
