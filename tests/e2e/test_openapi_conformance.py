"""schemathesis against the real bridge and server: every operation of the OpenAPI document
gets generated requests (positive and negative data, a fixed number per operation,
derandomized so a run is repeatable), and every answer must be no 5xx and match the
document (status code, content type, headers, body schema); data the document calls
invalid must be refused. Real jobs of each kind are
then polled to the end and their answers checked the same way, so the job, result and
error schemas are exercised too, not only the refusals random data gets; so are the job paths
under /v1/async/jobs on those jobs (read, list, watch, cancel, retry, delete) and the submit
headers (Idempotency-Key, x-asyncgate-labels, Prefer: wait)."""

from __future__ import annotations

import asyncio
import base64
import io
from collections import Counter
from collections.abc import Callable
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, assume, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import Case as GenericCase
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.core.result import Err
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    negative_data_rejection,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from tests.conftest import KEY_A, Stack
from tests.e2e.test_openapi import NOT_YET_SERVED, document
from tests.images import subject_on_background

Case = GenericCase[Any]

EXAMPLES_PER_OPERATION = 50
"""Per operation and generation mode: enough to reach every refusal, few enough for CI (seconds)."""

CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    negative_data_rejection,
]

_settings = settings(
    max_examples=EXAMPLES_PER_OPERATION,
    derandomize=True,
    database=None,
    deadline=None,
    phases=[Phase.explicit, Phase.generate],
    suppress_health_check=list(HealthCheck),
)


FILES = "/v1/async/files/{job_id}/{index}"
NOTHING_TO_NEGATE = (
    "/health",
    "/openapi.json",
    "/docs",
    "/metrics",
    "/console",
    "/console/console.js",
    "/console/console.css",
    # Only string path parameters: any text is a valid name and id (answered 404 when unknown).
    "/v1/async/webhooks/{name}/deliveries/{webhook_id}/redeliver",
)


INT64_MAX = 2**63 - 1


KNOWN_BUGS: dict[str, Callable[[Case], bool]] = {}
"""Bugs found by this test and not yet fixed, each with the cases that reach it: those cases
are not sent, so that the rest of the document keeps being checked meanwhile. None now: its
finds (a 500 for a non-ASCII file token, for a Last-Event-ID past int64 or in other digits,
for a list time out of the range of times) are fixed and pinned by the tests below."""


def _fuzz(operation: Any, mode: GenerationMode, base_url: str, statuses: Counter[int]) -> int:
    """Run one operation's generated cases; the number of requests sent."""
    sent = 0

    @_settings
    @given(case=operation.as_strategy(generation_mode=mode))
    def run(case: Case) -> None:
        nonlocal sent
        assume(not any(reaches(case) for reaches in KNOWN_BUGS.values()))
        response = case.call_and_validate(base_url=base_url, checks=CHECKS, timeout=30)
        sent += 1
        statuses[response.status_code] += 1

    try:
        run()
    except Unsatisfiable:
        # Negative mode for an operation with no parameters or body: there is nothing to
        # make invalid. Anywhere else it would mean KNOWN_BUGS filters everything out.
        if mode != GenerationMode.NEGATIVE or sent or operation.path not in NOTHING_TO_NEGATE:
            raise
    return sent


@pytest.mark.slow
@pytest.mark.timeout(600)
async def test_generated_requests_get_documented_answers(stack: Stack) -> None:
    schema = schemathesis.openapi.from_dict(document())
    summary: list[str] = []
    statuses: Counter[int] = Counter()
    total = 0
    for result in schema.get_all_operations():
        if isinstance(result, Err):
            raise result.err()
        operation = result.ok()
        if (operation.method.upper(), operation.path) in NOT_YET_SERVED:
            continue
        # GET /v1/async/jobs/{job_id}/events is fuzzed too: its stream never ends while a job
        # runs, but no generated id names a real job (ids are random UUIDs the server makes), so
        # every generated request is answered at once with an error. Its stream is checked,
        # bounded, on an ended job in _job_paths.
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
            # In a thread: the bridge and server run on this test's event loop meanwhile.
            sent = await asyncio.to_thread(_fuzz, operation, mode, stack.base_url, statuses)
            summary.append(f"{operation.method.upper()} {operation.path} {mode.value}: {sent}")
            total += sent
    print("\n".join([*summary, f"{total} requests, statuses {dict(sorted(statuses.items()))}"]))
    assert total > 0
    assert not any(status >= 500 for status in statuses)


def _operation(path: str, method: str) -> Any:
    return schemathesis.openapi.from_dict(document())[path][method]


def _png() -> bytes:
    return subject_on_background()


def _checked(case: Case, base_url: str) -> Any:
    return case.call_and_validate(base_url=base_url, checks=CHECKS, timeout=30)


def _poll_to_end(path: str, job_id: str, base_url: str, headers: dict[str, str]) -> dict[str, Any]:
    poll = _operation(path + "/{job_id}", "GET")
    while True:
        response = _checked(poll.Case(path_parameters={"job_id": job_id}, headers=headers), base_url)
        if response.status_code == 200:
            body: dict[str, Any] = response.json()
            return body


def _real_jobs(base_url: str) -> list[dict[str, Any]]:
    """Submit one job of each kind (one failing), check every answer against the document."""
    key = {"x-bf-vk": KEY_A.value}
    submits: list[tuple[str, Any, str | None]] = [
        ("/v1/async/images/generations", {"model": "local/placeholder", "prompt": "a lighthouse"}, None),
        (
            "/v1/async/images/generations",
            {"model": "local/placeholder", "prompt": "b64", "response_format": "b64_json"},
            None,
        ),
        ("/v1/async/embeddings", {"model": "local/hashing", "input": ["a cat", "a dog"]}, None),
        (
            "/v1/async/embeddings",
            {"model": "local/hashing", "input": "one", "encoding_format": "base64", "dimensions": 8},
            None,
        ),
        (
            "/v1/async/images/edits",
            {"model": "local/pillow", "type": "background_removal", "image": [_png()]},
            "multipart/form-data",
        ),
        # No type and no mask: the local provider fails the job (a failed job's error object).
        (
            "/v1/async/images/edits",
            {"model": "local/pillow", "prompt": "x", "image": [_png()]},
            "multipart/form-data",
        ),
    ]
    jobs = []
    for path, body, media in submits:
        submit = _operation(path, "POST")
        case = submit.Case(body=body, headers={**key, "x-bf-async-job-result-ttl": "300"}, media_type=media)
        response = _checked(case, base_url)
        assert response.status_code == 202, response.text
        jobs.append(_poll_to_end(path, response.json()["id"], base_url, key))
    return jobs


@pytest.mark.slow
async def test_real_jobs_and_their_results_match_the_document(stack: Stack) -> None:
    jobs = await asyncio.to_thread(_real_jobs, stack.base_url)
    assert [job["status"] for job in jobs] == ["completed"] * 5 + ["failed"]
    assert "b64_json" in jobs[1]["result"]["data"][0]
    assert isinstance(jobs[3]["result"]["data"][0]["embedding"], str)
    assert len(base64.b64decode(jobs[3]["result"]["data"][0]["embedding"])) == 8 * 4
    # The result URL of the edit, fetched through the file operation, is checked too.
    url: str = jobs[4]["result"]["data"][0]["url"]
    job_id, index_and_token = url.split("/v1/async/files/")[1].split("/")
    index, token = index_and_token.split("?token=")
    files = _operation("/v1/async/files/{job_id}/{index}", "GET")
    case = files.Case(path_parameters={"job_id": job_id, "index": int(index)}, query={"token": token})
    response = await asyncio.to_thread(_checked, case, stack.base_url)
    assert response.status_code == 200
    assert io.BytesIO(response.content).read(8) == b"\x89PNG\r\n\x1a\n"


async def test_a_non_ascii_file_token_is_refused(stack: Stack) -> None:
    path = "/v1/async/files/3f0c9a4e-8a51-4c1e-9d0b-6c2f1d7e2a10/0"
    async with stack.http.get(path, params={"token": "é"}) as response:
        assert response.status in (403, 404), await response.text()


def _job_paths(base_url: str, completed_id: str, failed_id: str) -> None:
    """The job paths on real ended jobs, every answer checked against the document."""
    key = {"x-bf-vk": KEY_A.value}

    def call(
        path: str, method: str, job_id: str | None = None, query: Any = None, wait: str | None = None
    ) -> Any:
        ids = {"job_id": job_id} if job_id else {}
        headers = {**key, "Prefer": wait} if wait else key
        case = _operation(path, method).Case(path_parameters=ids, headers=headers, query=query)
        return _checked(case, base_url)

    read = call("/v1/async/jobs/{job_id}", "GET", completed_id)
    assert read.status_code == 200 and read.json()["request_type"] == "image_generation"
    page = call("/v1/async/jobs", "GET", query={"status": ["completed", "failed"], "page_size": 2})
    assert page.status_code == 200 and len(page.json()["data"]) == 2 and "next_page_token" in page.json()
    assert all("result" not in job for job in page.json()["data"])
    # Bounded: the stream of an ended job is its final event, then the end.
    events = call("/v1/async/jobs/{job_id}/events", "GET", completed_id)
    assert events.status_code == 200
    assert events.text.startswith("event: status\n") and '"status":"completed"' in events.text
    cancel = call("/v1/async/jobs/{job_id}/cancel", "POST", completed_id)
    assert cancel.status_code == 409 and cancel.json()["error"]["code"] == "job_finished"
    retry = call("/v1/async/jobs/{job_id}/retry", "POST", completed_id)
    assert retry.status_code == 409 and retry.json()["error"]["code"] == "job_not_retryable"
    retry = call("/v1/async/jobs/{job_id}/retry", "POST", failed_id)
    assert retry.status_code == 202 and retry.json()["status"] == "pending"
    waited = call("/v1/async/jobs/{job_id}", "GET", failed_id, wait="wait=30")
    assert waited.json()["status"] == "failed" and waited.json()["attempt"] >= 2
    assert call("/v1/async/jobs/{job_id}", "DELETE", completed_id).status_code == 204
    assert call("/v1/async/jobs/{job_id}", "GET", completed_id).status_code == 404


def _header(response: Any, name: str) -> str | None:
    """One header of a schemathesis response (its headers: lower-case names, lists of values)."""
    values: list[str] = response.headers.get(name.lower(), [])
    return values[0] if values else None


def _submit_headers(base_url: str) -> None:
    """A submit with Idempotency-Key, labels and Prefer: wait, then its replay and a reuse."""
    submit = _operation("/v1/async/embeddings", "POST")
    headers = {
        "x-bf-vk": KEY_A.value,
        "Idempotency-Key": "conformance-1",
        "x-asyncgate-labels": "team=search,run=7",
        "Prefer": "wait=30",
    }
    body = {"model": "local/hashing", "input": "one"}
    first = _checked(submit.Case(body=body, headers=headers), base_url)
    assert first.status_code == 200 and _header(first, "Preference-Applied") == "wait=30"
    replay = _checked(submit.Case(body=body, headers=headers), base_url)
    assert replay.status_code == 200 and _header(replay, "Idempotent-Replayed") == "true"
    location = f"/v1/async/jobs/{first.json()['id']}"
    assert _header(replay, "Location") == _header(first, "Location") == location
    reused = _checked(submit.Case(body={**body, "input": "two"}, headers=headers), base_url)
    assert reused.status_code == 409 and reused.json()["error"]["code"] == "idempotency_key_reused"
    listing = _operation("/v1/async/jobs", "GET").Case(
        headers={"x-bf-vk": KEY_A.value}, query={"label": ["team=search", "run=7"]}
    )
    page = _checked(listing, base_url).json()
    assert [job["labels"] for job in page["data"]] == [{"run": "7", "team": "search"}]


@pytest.mark.slow
async def test_the_job_paths_and_submit_headers_match_the_document(stack: Stack) -> None:
    jobs = await asyncio.to_thread(_real_jobs, stack.base_url)
    await asyncio.to_thread(_job_paths, stack.base_url, jobs[0]["id"], jobs[5]["id"])
    await asyncio.to_thread(_submit_headers, stack.base_url)


@pytest.mark.parametrize(
    ("path", "headers", "param"),
    [
        ("/v1/async/jobs/{id}/events", {"Last-Event-ID": "44600454296337676632"}, "Last-Event-ID"),
        ("/v1/async/jobs/{id}/events", {"Last-Event-ID": "\u00b2"}, "Last-Event-ID"),
        ("/v1/async/jobs?created_after=0001-01-01T00:00:00%2B14:00", {}, "created_after"),
        ("/v1/async/jobs?created_before=9999-12-31T23:59:59-10:00", {}, "created_before"),
        ("/v1/async/jobs?page_size=\u0663", {}, "page_size"),
    ],
)
async def test_the_job_paths_refuse_out_of_range_values_with_a_400(
    stack: Stack, path: str, headers: dict[str, str], param: str
) -> None:
    target = path.replace("{id}", "4837b90e-3db7-464c-8b75-7284262e6ca5")
    async with stack.http.get(target, headers={"x-bf-vk": KEY_A.value, **headers}) as response:
        body = await response.json()
    assert response.status == 400 and body["error"]["param"] == param, body
