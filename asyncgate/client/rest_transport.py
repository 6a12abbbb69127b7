"""The client over the REST bridge (aiohttp): docs/rest-api.md's async-jobs paths."""

from __future__ import annotations

import io
import json
import math
from collections.abc import AsyncIterator, Mapping
from typing import Any

import aiohttp

from asyncgate.client import rest_convert
from asyncgate.client.errors import Unavailable, from_rest
from asyncgate.client.transport import ListQuery, Submission, auth_headers
from asyncgate.client.types import Job, JobPage, OutputRef

SUBMIT_PATHS = {
    "image_edit": "/v1/async/images/edits",
    "image_generation": "/v1/async/images/generations",
    "image_variation": "/v1/async/images/variations",
    "embedding": "/v1/async/embeddings",
}
LOST = (aiohttp.ClientConnectionError, aiohttp.ClientPayloadError)
"""A connection refused, reset or closed, or an answer cut short: Unavailable (retryable)."""
MAX_WAIT_SECONDS = 60
"""The bridge caps `Prefer: wait=N` here (docs/rest-api.md §10)."""


def _form_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _form(submission: Submission) -> aiohttp.FormData:
    form = aiohttp.FormData()
    for name, value in submission.params.items():
        if value is None:
            continue
        for item in value if isinstance(value, list | tuple) else [value]:
            form.add_field(name, _form_value(item))
    for image in submission.images:
        form.add_field(
            "image", io.BytesIO(image.data), filename=image.filename, content_type=image.content_type
        )
    if submission.mask is not None:
        mask = submission.mask
        form.add_field("mask", io.BytesIO(mask.data), filename=mask.filename, content_type=mask.content_type)
    return form


def _submit_headers(submission: Submission) -> dict[str, str]:
    headers: dict[str, str] = {}
    if submission.idempotency_key:
        headers["Idempotency-Key"] = submission.idempotency_key
    if submission.labels:
        headers["x-asyncgate-labels"] = ",".join(f"{k}={v}" for k, v in submission.labels.items())
    if submission.result_ttl_seconds is not None:
        headers["x-bf-async-job-result-ttl"] = str(submission.result_ttl_seconds)
    return headers


class RestTransport:
    def __init__(
        self, base_url: str, *, key: str | None = None, bearer_token: str | None = None, timeout: float = 300
    ) -> None:
        self._base = base_url.rstrip("/")
        self._headers = auth_headers(key, bearer_token)
        self._timeout = aiohttp.ClientTimeout(total=None, sock_connect=timeout, sock_read=timeout)
        self._session: aiohttp.ClientSession | None = None

    @property
    def _http(self) -> aiohttp.ClientSession:
        # Made on first use, inside the running loop (aiohttp binds a session to its loop).
        if self._session is None:
            self._session = aiohttp.ClientSession(timeout=self._timeout)
        return self._session

    async def _json(
        self, method: str, url: str, *, headers: Mapping[str, str] | None = None, **kwargs: Any
    ) -> Any:
        try:
            all_headers = {**self._headers, **(headers or {})}
            async with self._http.request(method, url, headers=all_headers, **kwargs) as response:
                body: Any = None
                if response.content_type == "application/json":
                    body = await response.json()
                if response.status >= 300:
                    raise from_rest(response.status, body)
                return body
        except LOST as error:
            raise Unavailable(f"cannot reach {self._base}: {error}", status=503) from None

    def _url(self, path: str) -> str:
        return self._base + path

    async def submit(self, submission: Submission) -> Job:
        url = self._url(SUBMIT_PATHS[submission.operation])
        headers = _submit_headers(submission)
        if submission.operation in ("image_edit", "image_variation"):
            # A fresh form for each attempt: aiohttp cannot send one twice.
            body = await self._json("POST", url, headers=headers, data=_form(submission))
        else:
            params = {k: v for k, v in submission.params.items() if v is not None}
            body = await self._json("POST", url, headers=headers, json=params)
        return rest_convert.to_job(body, submission.operation)

    async def get(self, job_id: str) -> Job:
        return rest_convert.to_job(await self._json("GET", self._url(f"/v1/async/jobs/{job_id}")))

    async def wait_once(self, job_id: str, timeout: float) -> Job:
        seconds = min(MAX_WAIT_SECONDS, math.ceil(timeout))
        headers = {"Prefer": f"wait={seconds}"} if seconds > 0 else {}
        return rest_convert.to_job(
            await self._json("GET", self._url(f"/v1/async/jobs/{job_id}"), headers=headers)
        )

    async def watch(self, job_id: str, after_change: int) -> AsyncIterator[tuple[int, Job]]:
        headers = {**self._headers, **({"Last-Event-ID": str(after_change)} if after_change else {})}
        url = self._url(f"/v1/async/jobs/{job_id}/events")
        try:
            async with self._http.get(url, headers=headers) as response:
                if response.status >= 300:
                    body = await response.json() if response.content_type == "application/json" else None
                    raise from_rest(response.status, body)
                event_id, data = 0, ""
                async for raw in response.content:
                    line = raw.decode().rstrip("\r\n")
                    if line.startswith("id:"):
                        event_id = int(line[3:].strip())
                    elif line.startswith("data:"):
                        data += line[5:].strip()
                    elif not line and data:  # a blank line ends the event
                        yield event_id, rest_convert.to_job(json.loads(data))
                        data = ""
        except LOST as error:
            raise Unavailable(f"cannot reach {self._base}: {error}", status=503) from None

    async def cancel(self, job_id: str) -> Job:
        return rest_convert.to_job(await self._json("POST", self._url(f"/v1/async/jobs/{job_id}/cancel")))

    async def retry(self, job_id: str) -> Job:
        return rest_convert.to_job(await self._json("POST", self._url(f"/v1/async/jobs/{job_id}/retry")))

    async def delete(self, job_id: str) -> None:
        await self._json("DELETE", self._url(f"/v1/async/jobs/{job_id}"))

    async def list(self, query: ListQuery) -> JobPage:
        params: list[tuple[str, str]] = [("status", status) for status in query.statuses]
        params += [("label", f"{k}={v}") for k, v in query.labels.items()]
        if query.request_type:
            params.append(("type", query.request_type))
        if query.page_size:
            params.append(("page_size", str(query.page_size)))
        if query.page_token:
            params.append(("page_token", query.page_token))
        if query.created_after is not None:
            params.append(("created_after", query.created_after.isoformat()))
        if query.created_before is not None:
            params.append(("created_before", query.created_before.isoformat()))
        body = await self._json("GET", self._url("/v1/async/jobs"), params=params)
        jobs = tuple(rest_convert.to_job(item) for item in body["data"])
        return JobPage(jobs, body.get("next_page_token"))

    async def read_output(self, job_id: str, output: OutputRef) -> bytes:
        return await self.fetch_url(
            self._url(f"/v1/async/files/{job_id}/{output.index}?token={output.token}")
        )

    async def fetch_url(self, url: str) -> bytes:
        # The key goes to the bridge only, never to a provider's URL (a token is in ours).
        headers = self._headers if url.startswith(self._base + "/") else {}
        try:
            async with self._http.get(url, headers=headers) as response:
                if response.status >= 300:
                    body = await response.json() if response.content_type == "application/json" else None
                    raise from_rest(response.status, body)
                return await response.read()
        except LOST as error:
            raise Unavailable(f"cannot reach {url}: {error}", status=503) from None

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
