"""Waiting for a job to end on behalf of a REST client: `Prefer: wait=N` and the
OpenAI-compatible routes.

One WaitJob call at a time, each of at most the bridge's `max_wait_seconds` (the server may
cut one shorter, at its own `max_wait_seconds`: the bridge then calls again until its own
limit). The server wakes each call from its store's events, so the answer follows the job's
end at once; a client that hangs up cancels the call at once (rest_bridge.hangup).
"""

from __future__ import annotations

import asyncio

from aiohttp import web
from google.protobuf.duration_pb2 import Duration

from asyncgate.v1 import job_pb2 as job_pb
from asyncgate.v1 import job_service_pb2 as pb
from rest_bridge.context import CONFIG, JOBS, forwarded_metadata
from rest_bridge.envelope import TERMINAL
from rest_bridge.hangup import hangup_cancels


def _duration(seconds: float) -> Duration:
    duration = Duration()
    duration.FromNanoseconds(round(seconds * 1e9))
    return duration


async def wait_until_ended(request: web.Request, job: job_pb.Job, seconds: float | None) -> job_pb.Job:
    """The job once terminal, or as it is once `seconds` have passed (None: no limit). Raises
    ClientHungUp when the client leaves first; the job itself runs on either way."""
    config = request.app[CONFIG]
    loop = asyncio.get_running_loop()
    deadline = None if seconds is None else loop.time() + seconds
    metadata = forwarded_metadata(request)
    with hangup_cancels(request):
        while job.status not in TERMINAL:
            step = float(config.max_wait_seconds)
            if deadline is not None:
                step = min(step, deadline - loop.time())
                if step <= 0:
                    break
            reply = await request.app[JOBS].WaitJob(
                pb.WaitJobRequest(id=job.id, timeout=_duration(step)),
                metadata=metadata,
                timeout=config.grpc_timeout_seconds + step,
            )
            job = reply.job
    return job
