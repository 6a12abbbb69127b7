"""The job paths under /v1/async/jobs (any operation): read, wait, watch (Server-Sent Events),
cancel, retry, delete, list; and what the gateway's own paths gain from them: `Prefer: wait=N`
on polls and submits, `Retry-After` on 202 polls, `Location` on submit answers."""

from __future__ import annotations

import asyncio
import json
from typing import Any

from aiohttp import web

from asyncgate.v1 import job_pb2 as job_pb
from asyncgate.v1 import job_service_pb2 as pb
from rest_bridge.context import (
    CONFIG,
    JOBS,
    RENDERS,
    REPLAYED_HEADER,
    Handler,
    base_url,
    forwarded_metadata,
    read_output,
)
from rest_bridge.envelope import TERMINAL, envelope
from rest_bridge.hangup import hangup_cancels
from rest_bridge.jobs_params import last_event_id, list_request, preferred_wait
from rest_bridge.waiting import wait_until_ended

JOBS_PATH = "/v1/async/jobs"
RETRY_AFTER_SECONDS = 1
"""The Retry-After hint of a 202 poll answer."""
"""Set by a submit handler on an answer that is the job of an earlier request (same key)."""
KEEP_ALIVE_SECONDS = 15.0
"""An event stream sends a comment at least this often while the job does not change."""


def _timeout(request: web.Request, extra: float = 0.0) -> float:
    return request.app[CONFIG].grpc_timeout_seconds + extra


async def job_body(request: web.Request, job: job_pb.Job, *, extended: bool = True) -> dict[str, Any]:
    """The envelope of `job`; a b64_json image or an embedding's vectors read from the server."""

    async def read(job_id: str, stored: job_pb.StoredOutput) -> bytes:
        return await read_output(request, job_id, stored)

    return await envelope(job, base_url(request), read, extended=extended)


async def job_answer(
    request: web.Request, job: job_pb.Job, wait: int | None = None, *, extended: bool = True
) -> web.Response:
    """A poll's answer: job_response of the job's envelope; an ended job's rendered once per
    state and origin, then reused (rest_bridge.render_cache)."""
    origin = base_url(request)
    key = (job.id, job.change_number, extended, origin) if job.status in TERMINAL else None
    renders = request.app[RENDERS]
    answer = renders.get(key) if key is not None else None
    if answer is None:
        answer = json.dumps(await job_body(request, job, extended=extended)).encode()
        if key is not None:
            renders.put(key, answer)
    return job_response(answer, job, wait)


def job_response(body: dict[str, Any] | bytes, job: job_pb.Job, wait: int | None = None) -> web.Response:
    """200 once terminal, else 202 with Retry-After; Preference-Applied when a wait was honoured."""
    terminal = job.status in TERMINAL
    status = 200 if terminal else 202
    if isinstance(body, bytes):
        response = web.Response(body=body, status=status, content_type="application/json")
    else:
        response = web.json_response(body, status=status)
    if not terminal:
        response.headers["Retry-After"] = str(RETRY_AFTER_SECONDS)
    if wait is not None:
        response.headers["Preference-Applied"] = f"wait={wait}"
    return response


async def wait_for(request: web.Request, job: job_pb.Job, wait: int | None) -> job_pb.Job:
    """The job after `Prefer: wait=N`: at once if terminal (or no wait), else once it ends or N
    seconds pass. A client that goes away ends only this wait, at once (ClientHungUp)."""
    if not wait or job.status in TERMINAL:
        return job
    return await wait_until_ended(request, job, wait)


async def get_job(request: web.Request) -> web.StreamResponse:
    wait = preferred_wait(request)
    reply = await request.app[JOBS].GetJob(
        pb.GetJobRequest(id=request.match_info["job_id"]),
        metadata=forwarded_metadata(request),
        timeout=_timeout(request),
    )
    job = await wait_for(request, reply.job, wait)
    return await job_answer(request, job, wait)


async def cancel_job(request: web.Request) -> web.StreamResponse:
    reply = await request.app[JOBS].CancelJob(
        pb.CancelJobRequest(id=request.match_info["job_id"]),
        metadata=forwarded_metadata(request),
        timeout=_timeout(request),
    )
    return web.json_response(await job_body(request, reply.job), status=200)


async def retry_job(request: web.Request) -> web.StreamResponse:
    reply = await request.app[JOBS].RetryJob(
        pb.RetryJobRequest(id=request.match_info["job_id"]),
        metadata=forwarded_metadata(request),
        timeout=_timeout(request),
    )
    return web.json_response(await job_body(request, reply.job), status=202)


async def delete_job(request: web.Request) -> web.StreamResponse:
    await request.app[JOBS].DeleteJob(
        pb.DeleteJobRequest(id=request.match_info["job_id"]),
        metadata=forwarded_metadata(request),
        timeout=_timeout(request),
    )
    return web.Response(status=204)


async def list_jobs(request: web.Request) -> web.StreamResponse:
    reply = await request.app[JOBS].ListJobs(
        list_request(request.query), metadata=forwarded_metadata(request), timeout=_timeout(request)
    )
    page: dict[str, Any] = {"data": [await job_body(request, job) for job in reply.jobs]}
    if reply.next_page_token:
        page["next_page_token"] = reply.next_page_token
    return web.json_response(page)


async def job_events(request: web.Request) -> web.StreamResponse:
    """Server-Sent Events: `event: status`, `id: <change number>`, `data: <envelope>` at each
    change, ending after a terminal one; `: keep-alive` comments while nothing changes."""
    stream = request.app[JOBS].WatchJob(
        pb.WatchJobRequest(id=request.match_info["job_id"], after_change_number=last_event_id(request)),
        metadata=forwarded_metadata(request),
    )
    with hangup_cancels(request):  # a client that leaves ends the server's watch at once
        return await _stream_events(request, stream)


async def _stream_events(request: web.Request, stream: Any) -> web.StreamResponse:
    messages = aiter(stream)
    next_message = asyncio.ensure_future(anext(messages))
    try:
        # The first state before answering: a job that may not be read is a plain 404.
        await asyncio.wait({next_message})
        first = next_message.result()  # raises the call's error
        response = web.StreamResponse(
            headers={
                "Content-Type": "text/event-stream",
                "Cache-Control": "no-cache",
                "X-Accel-Buffering": "no",
            }
        )
        await response.prepare(request)
        await _send_event(request, response, first.job)
        next_message = asyncio.ensure_future(anext(messages))
        while True:
            done, _ = await asyncio.wait({next_message}, timeout=KEEP_ALIVE_SECONDS)
            if not done:
                await response.write(b": keep-alive\n\n")
                continue
            try:
                message = next_message.result()
            except StopAsyncIteration:
                break
            await _send_event(request, response, message.job)
            next_message = asyncio.ensure_future(anext(messages))
        await response.write_eof()
        return response
    finally:
        next_message.cancel()
        stream.cancel()


async def _send_event(request: web.Request, response: web.StreamResponse, job: job_pb.Job) -> None:
    data = json.dumps(await job_body(request, job), separators=(",", ":"))
    await response.write(f"event: status\nid: {job.change_number}\ndata: {data}\n\n".encode())


def submitted(submit: Handler) -> Handler:
    """A submit route that also answers `Location`, and honours `Prefer: wait=N` (200 with the
    terminal envelope if the job ends within N seconds, else the 202). An answer the submit marked
    Idempotent-Replayed (the job of an earlier request) becomes what a poll would answer."""

    async def handler(request: web.Request) -> web.StreamResponse:
        wait = preferred_wait(request)
        response = await submit(request)
        if response.status != 202 or not isinstance(response, web.Response) or response.body is None:
            return response
        job_id = json.loads(response.text or "{}").get("id", "")
        replayed = response.headers.get(REPLAYED_HEADER) == "true"
        if wait or replayed:  # a replay answers as a poll would: 200 once the job has ended
            reply = await request.app[JOBS].GetJob(
                pb.GetJobRequest(id=job_id), metadata=forwarded_metadata(request), timeout=_timeout(request)
            )
            job = await wait_for(request, reply.job, wait)
            if job.status in TERMINAL:
                response = job_response(await job_body(request, job, extended=False), job, wait)
                if replayed:
                    response.headers[REPLAYED_HEADER] = "true"
            else:
                if wait:
                    response.headers["Preference-Applied"] = f"wait={wait}"
                if replayed:
                    response.headers["Retry-After"] = str(RETRY_AFTER_SECONDS)
        response.headers["Location"] = f"{JOBS_PATH}/{job_id}"
        return response

    return handler


def add_job_routes(app: web.Application) -> None:
    app.router.add_get(JOBS_PATH, list_jobs, name="jobs_list", allow_head=False)
    app.router.add_get(f"{JOBS_PATH}/{{job_id}}", get_job, name="jobs_get", allow_head=False)
    app.router.add_delete(f"{JOBS_PATH}/{{job_id}}", delete_job, name="jobs_delete")
    app.router.add_post(f"{JOBS_PATH}/{{job_id}}/cancel", cancel_job, name="jobs_cancel")
    app.router.add_post(f"{JOBS_PATH}/{{job_id}}/retry", retry_job, name="jobs_retry")
    app.router.add_get(f"{JOBS_PATH}/{{job_id}}/events", job_events, name="jobs_events", allow_head=False)
