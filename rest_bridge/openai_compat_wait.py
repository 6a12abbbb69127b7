"""How long an OpenAI-compatible request is held open, and the one function that waits.

`wait_for_job` reads the job once (GetJob, which also checks its operation), then waits
with the server's WaitJob (rest_bridge.waiting) until the job is terminal, the client has
hung up, or the caller's limit (the `x-asyncgate-wait-timeout` header) has passed: woken by
the server's store events, never polling.
"""

from __future__ import annotations

import asyncio
import math
import re

from aiohttp import web

from asyncgate.v1 import job_pb2 as job_pb
from asyncgate.v1 import job_service_pb2 as pb
from rest_bridge.context import CONFIG, JOBS, forwarded_metadata
from rest_bridge.errors import BridgeError
from rest_bridge.hangup import ClientHungUp
from rest_bridge.waiting import wait_until_ended

WAIT_TIMEOUT_HEADER = "x-asyncgate-wait-timeout"
MAX_WAIT_TIMEOUT_SECONDS = 24 * 3600.0
"""The largest limit the header takes (a job's own deadline ends it long before)."""

_SECONDS = re.compile(r"[0-9]{1,6}(\.[0-9]{1,3})?")


def wait_timeout(request: web.Request) -> float | None:
    """The caller's limit on the hold in seconds (None: until the job ends)."""
    value = request.headers.get(WAIT_TIMEOUT_HEADER)
    if value is None:
        return None
    seconds = float(value) if _SECONDS.fullmatch(value.strip()) else math.nan
    if not 0 <= seconds <= MAX_WAIT_TIMEOUT_SECONDS:  # NaN too
        raise BridgeError(
            400,
            f"invalid {WAIT_TIMEOUT_HEADER} header: {value!r} (expected seconds, a number from 0 "
            f"to {MAX_WAIT_TIMEOUT_SECONDS:.0f})",
            WAIT_TIMEOUT_HEADER,
        )
    return seconds


async def wait_for_job(
    request: web.Request, job_id: str, request_type: int, timeout: float | None
) -> job_pb.Job | None:
    """The job, terminal; or as it stands once `timeout` seconds have passed (not terminal);
    None when the client hung up first. The job itself runs on either way."""
    loop = asyncio.get_running_loop()
    started = loop.time()
    response = await request.app[JOBS].GetJob(
        pb.GetJobRequest(id=job_id, request_type=request_type),  # type: ignore[arg-type]
        metadata=forwarded_metadata(request),
        timeout=request.app[CONFIG].grpc_timeout_seconds,
    )
    left = None if timeout is None else max(0.0, timeout - (loop.time() - started))
    try:
        return await wait_until_ended(request, response.job, left)
    except ClientHungUp:
        return None
