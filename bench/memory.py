"""Peak memory of the bridge and the server while one large image is uploaded through the bridge.

Fresh processes, an accept-only server (no job ever decodes the image), one small
request to warm both up, then: VmRSS as the idle figure, VmHWM reset to it, the
large upload streamed from disk, VmHWM read after the 202.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from pathlib import Path
from typing import Any

import aiohttp

from bench import procs
from bench.load import EDITS_PATH
from bench.payloads import EDIT_TYPE, MODEL, MultipartBody
from bench.procfs import peak_rss_bytes, reset_peak_rss, rss_bytes

UPLOAD_TIMEOUT = 120.0
_SETTLE_SECONDS = 0.5  # after the warm-up request, before idle is read


async def _post(session: aiohttp.ClientSession, url: str, data: Any, headers: dict[str, str]) -> int:
    async with session.post(url, data=data, headers=headers) as response:
        body = await response.read()
        if response.status != 202:
            raise RuntimeError(f"POST {url}: {response.status} {body[:300]!r}")
        return response.status


async def _upload_from_disk(session: aiohttp.ClientSession, url: str, image: Path) -> None:
    with image.open("rb") as file:  # aiohttp reads a file field in chunks as it sends: never whole
        form = aiohttp.FormData()
        form.add_field("model", MODEL)
        form.add_field("type", EDIT_TYPE)
        form.add_field("image", file, filename=image.name, content_type="image/png")
        await _post(session, url, form, {})


def _figures(idle: int, peak: int, after: int, image_bytes: int) -> dict[str, Any]:
    return {
        "idle_rss_bytes": idle,
        "peak_rss_bytes": peak,
        "growth_bytes": peak - idle,
        "rss_after_bytes": after,
        "growth_per_image": (peak - idle) / image_bytes,
        "peak_per_image": peak / image_bytes,
    }


async def measure_upload(workdir: Path, image: Path, warmup: MultipartBody) -> dict[str, Any]:
    image_bytes = image.stat().st_size
    with contextlib.ExitStack() as stack:
        server, target = procs.start_server(stack, workdir, "memory-grpc-server")
        await procs.wait_grpc_ready(server, target)
        bridge, base_url = procs.start_bridge(stack, workdir, target, "memory-rest-bridge")
        await procs.wait_http_ready(bridge, base_url)
        measured = {"rest-bridge": bridge.pid, "grpc-server": server.pid}
        url = base_url + EDITS_PATH
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=UPLOAD_TIMEOUT)) as session:
            await _post(session, url, warmup.data, {"Content-Type": warmup.content_type})
            await asyncio.sleep(_SETTLE_SECONDS)
            startup_peak = {name: peak_rss_bytes(pid) for name, pid in measured.items()}
            # Without a reset, VmHWM would be the peak since start (imports included): still an upper bound.
            reset = all([reset_peak_rss(pid) for pid in measured.values()])
            idle = {name: rss_bytes(pid) for name, pid in measured.items()}  # read after: peak >= idle
            started = time.perf_counter()
            await _upload_from_disk(session, url, image)
            seconds = time.perf_counter() - started
            peak = {name: peak_rss_bytes(pid) for name, pid in measured.items()}
            after = {name: rss_bytes(pid) for name, pid in measured.items()}
    return {
        "image_bytes": image_bytes,
        "upload_seconds": round(seconds, 3),
        "peak_reset_before_upload": reset,
        "startup_peak_rss_bytes": startup_peak,
        "processes": {name: _figures(idle[name], peak[name], after[name], image_bytes) for name in measured},
    }
