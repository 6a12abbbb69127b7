"""The job paths over REST through the real bridge and server: read any job, wait with
`Prefer: wait`, watch as Server-Sent Events, cancel, retry, delete, list; Location and
Retry-After on the gateway's own paths."""

from __future__ import annotations

import json
from typing import Any

import aiohttp
import pytest

from grpc_server.config import DispatcherSettings
from rest_bridge import jobs_routes
from tests.conftest import KEY_A, KEY_B, Stack, StackFactory

EMBEDDINGS = "/v1/async/embeddings"
JOBS = "/v1/async/jobs"
VK_A = {"x-bf-vk": KEY_A.value}
VK_B = {"x-bf-vk": KEY_B.value}


async def _accept_only(make_stack: StackFactory) -> Stack:
    return await make_stack(dispatcher=DispatcherSettings(concurrency=0, poll_interval_seconds=0.2))


async def _submit(stack: Stack, text: str = "hello", headers: dict[str, str] | None = None) -> Any:
    body = {"model": "local/hashing", "input": text}
    async with stack.http.post(EMBEDDINGS, json=body, headers={**VK_A, **(headers or {})}) as response:
        return response.status, dict(response.headers), await response.json()


async def _call(stack: Stack, method: str, path: str, headers: dict[str, str] | None = None) -> Any:
    async with stack.http.request(method, path, headers=headers if headers is not None else VK_A) as response:
        body = await response.json() if response.content_type == "application/json" else None
        return response.status, dict(response.headers), body


async def test_a_submit_that_waits_answers_the_terminal_envelope(stack: Stack) -> None:
    status, headers, body = await _submit(stack, headers={"Prefer": "wait=30"})
    assert status == 200 and body["status"] == "completed" and "result" in body
    assert headers["Location"] == f"{JOBS}/{body['id']}" and headers["Preference-Applied"] == "wait=30"
    assert "attempt" not in body  # the gateway's path answers the gateway's envelope
    status, _, job = await _call(stack, "GET", f"{JOBS}/{body['id']}")
    assert status == 200
    assert list(job) == [
        "id",
        "status",
        "expires_at",
        "created_at",
        "completed_at",
        "status_code",
        "result",
        "request_type",
        "attempt",
    ]
    assert (job["request_type"], job["attempt"]) == ("embedding", 1)


async def test_a_pending_job_is_polled_waited_on_cancelled_and_retried(make_stack: StackFactory) -> None:
    stack = await _accept_only(make_stack)
    status, headers, accepted = await _submit(stack)
    assert status == 202 and headers["Location"] == f"{JOBS}/{accepted['id']}"
    path = f"{JOBS}/{accepted['id']}"
    status, headers, job = await _call(stack, "GET", path, {**VK_A, "Prefer": "wait=1"})
    assert status == 202 and headers["Retry-After"] == "1" and headers["Preference-Applied"] == "wait=1"
    assert job["status"] == "pending" and job["queue_position"] == 0 and job["request_type"] == "embedding"
    assert (await _call(stack, "POST", f"{path}/cancel", VK_B))[0] == 404  # another key's job: unknown
    status, _, cancelled = await _call(stack, "POST", f"{path}/cancel")
    assert status == 200 and cancelled["status"] == "cancelled" and cancelled["status_code"] == 499
    assert cancelled["error"]["error"]["code"] == "cancelled" and "expires_at" in cancelled
    status, _, again = await _call(stack, "POST", f"{path}/cancel")
    assert status == 409 and again["error"]["code"] == "job_finished"
    status, _, polled = await _call(stack, "GET", f"{EMBEDDINGS}/{accepted['id']}")
    assert status == 200 and polled["status"] == "cancelled" and "queue_position" not in polled
    status, _, retried = await _call(stack, "POST", f"{path}/retry")
    assert status == 202 and (retried["id"], retried["status"]) == (accepted["id"], "pending")
    status, _, refused = await _call(stack, "POST", f"{path}/retry")
    assert status == 409 and refused["error"]["code"] == "job_not_retryable"


async def test_delete_makes_the_job_and_its_urls_unknown(stack: Stack) -> None:
    body = {"model": "local/placeholder", "prompt": "a lighthouse", "response_format": "url"}
    async with stack.http.post(
        "/v1/async/images/generations", json=body, headers={**VK_A, "Prefer": "wait=30"}
    ) as response:
        job = await response.json()
    assert job["status"] == "completed"
    url = job["result"]["data"][0]["url"]
    async with stack.http.get(url) as response:
        assert response.status == 200
    status, _, _ = await _call(stack, "DELETE", f"{JOBS}/{job['id']}")
    assert status == 204
    assert (await _call(stack, "GET", f"{JOBS}/{job['id']}"))[0] == 404
    assert (await _call(stack, "GET", f"/v1/async/images/generations/{job['id']}"))[0] == 404
    async with stack.http.get(url) as response:
        assert response.status == 404


async def test_the_list_is_the_callers_own_newest_first(make_stack: StackFactory) -> None:
    stack = await _accept_only(make_stack)
    ids = [(await _submit(stack, str(i)))[2]["id"] for i in range(3)]
    assert (await _call(stack, "GET", JOBS, {}))[0] == 401
    status, _, page = await _call(stack, "GET", f"{JOBS}?page_size=2")
    assert status == 200 and [j["id"] for j in page["data"]] == ids[:0:-1] and page["next_page_token"]
    status, _, rest = await _call(stack, "GET", f"{JOBS}?page_size=2&page_token={page['next_page_token']}")
    assert [j["id"] for j in rest["data"]] == [ids[0]] and "next_page_token" not in rest
    await _call(stack, "POST", f"{JOBS}/{ids[1]}/cancel")
    _, _, cancelled = await _call(stack, "GET", f"{JOBS}?status=cancelled&type=embedding")
    assert [j["id"] for j in cancelled["data"]] == [ids[1]]
    for query, param in (
        ("page_size=0", "page_size"),
        ("status=done", "status"),
        ("created_after=x", "created_after"),
    ):
        status, _, refused = await _call(stack, "GET", f"{JOBS}?{query}")
        assert status == 400 and refused["error"]["param"] == param


async def _events(response: aiohttp.ClientResponse) -> list[tuple[str, dict[str, Any]]]:
    """Every event of a stream until it ends: (id, data)."""
    events: list[tuple[str, dict[str, Any]]] = []
    block: dict[str, str] = {}
    async for raw in response.content:
        line = raw.decode().rstrip("\n")
        if not line:
            if "data" in block:
                events.append((block["id"], json.loads(block["data"])))
            block = {}
            continue
        if not line.startswith(":"):
            name, _, value = line.partition(": ")
            block[name] = value
    return events


async def test_events_stream_each_change_and_resume(make_stack: StackFactory) -> None:
    stack = await _accept_only(make_stack)
    _, _, accepted = await _submit(stack)
    path = f"{JOBS}/{accepted['id']}"
    async with stack.http.get(f"{path}/events", headers=VK_A) as response:
        assert response.status == 200 and response.content_type == "text/event-stream"
        first = await response.content.readuntil(b"\n\n")
        assert first.startswith(b"event: status\nid: 1\ndata: ")
        await _call(stack, "POST", f"{path}/cancel")
        rest = await _events(response)
    assert [(i, e["status"]) for i, e in rest] == [("2", "cancelled")]
    async with stack.http.get(f"{path}/events", headers={**VK_A, "Last-Event-ID": "2"}) as response:
        assert [(i, e["status"]) for i, e in await _events(response)] == [("2", "cancelled")]
    async with stack.http.get(f"{path}/events", headers=VK_B) as response:
        assert response.status == 404


async def test_a_quiet_event_stream_sends_keep_alive_comments(
    make_stack: StackFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(jobs_routes, "KEEP_ALIVE_SECONDS", 0.05)  # the bridge runs in this process
    stack = await _accept_only(make_stack)
    _, _, accepted = await _submit(stack)
    async with stack.http.get(f"{JOBS}/{accepted['id']}/events", headers=VK_A) as response:
        assert (await response.content.readuntil(b"\n\n")).startswith(b"event: status\nid: 1\n")
        assert await response.content.readuntil(b"\n\n") == b": keep-alive\n\n"
        assert await response.content.readuntil(b"\n\n") == b": keep-alive\n\n"


async def test_an_idempotency_key_replays_the_first_job_and_refuses_another_request(
    make_stack: StackFactory,
) -> None:
    stack = await _accept_only(make_stack)
    key = {"Idempotency-Key": "order-42"}
    status, headers, first = await _submit(stack, "a cat", key)
    assert status == 202 and "Idempotent-Replayed" not in headers
    status, headers, again = await _submit(stack, "a cat", key)
    assert status == 202 and again["id"] == first["id"], again
    assert headers["Idempotent-Replayed"] == "true"
    assert headers["Location"] == f"{JOBS}/{first['id']}"
    status, _, refused = await _submit(stack, "a dog", key)  # the same key, another request
    assert status == 409 and refused["error"]["code"] == "idempotency_key_reused", refused
    # Another caller's same key is its own.
    async with stack.http.post(
        EMBEDDINGS, json={"model": "local/hashing", "input": "a cat"}, headers={**VK_B, **key}
    ) as response:
        other = await response.json()
    assert response.status == 202 and other["id"] != first["id"]
    assert stack.stored_jobs() == 2


async def test_labels_are_kept_and_listed_and_bad_ones_refused(make_stack: StackFactory) -> None:
    stack = await _accept_only(make_stack)
    status, _, accepted = await _submit(stack, headers={"x-asyncgate-labels": "team=vision,run=7"})
    assert status == 202
    _, _, job = await _call(stack, "GET", f"{JOBS}/{accepted['id']}")
    assert job["labels"] == {"team": "vision", "run": "7"}
    _, _, listed = await _call(stack, "GET", f"{JOBS}?label=team=vision")
    assert [j["id"] for j in listed["data"]] == [accepted["id"]]
    for bad in ("Team=x", "k", "k=a,k=b", ",".join(f"k{i}=v" for i in range(17))):
        status, _, body = await _submit(stack, headers={"x-asyncgate-labels": bad})
        assert status == 400 and body["error"]["param"] == "labels", (bad, body)
