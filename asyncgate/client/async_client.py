"""AsyncClient: asyncgate's jobs from asyncio code, over gRPC or REST, one surface for both."""

from __future__ import annotations

import asyncio
import base64
import uuid
from collections.abc import AsyncGenerator, AsyncIterator, Mapping, Sequence
from datetime import datetime
from functools import partial
from types import TracebackType
from typing import Any, Self

from asyncgate.client.errors import AsyncGateError, Unavailable
from asyncgate.client.grpc_transport import GrpcTransport
from asyncgate.client.rest_transport import RestTransport
from asyncgate.client.retry import RetryPolicy, with_retries
from asyncgate.client.transport import ImageInput, ListQuery, Submission, Transport, input_file, input_files
from asyncgate.client.types import EmbeddingsResult, ImagesResult, Job, JobPage, RequestType

ImageFiles = list[bytes]
Vectors = list[list[float]]
WAIT_STEP_SECONDS = 60.0
"""Each server-side wait asks for at most this long (the bridge's cap); longer waits repeat it."""


class AsyncClient:
    """A client of one asyncgate deployment: give `url` (the REST bridge, e.g.
    `http://127.0.0.1:8080`) or `grpc_target` (`host:port` of the gRPC server).

    `key` is a virtual key (sent as `x-bf-vk`), `bearer_token` a signed token (sent as
    `Authorization: Bearer`). Safe calls (reads, waits, downloads, and submits, which
    always carry an idempotency key) are retried on Unavailable as `retry` says."""

    def __init__(
        self,
        url: str | None = None,
        *,
        grpc_target: str | None = None,
        key: str | None = None,
        bearer_token: str | None = None,
        retry: RetryPolicy | None = None,
    ) -> None:
        if (url is None) == (grpc_target is None):
            raise ValueError("give exactly one of url (REST) or grpc_target (gRPC)")
        self._transport: Transport = (
            RestTransport(url, key=key, bearer_token=bearer_token)
            if url is not None
            else GrpcTransport(str(grpc_target), key=key, bearer_token=bearer_token)
        )
        self._retry = retry or RetryPolicy()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.close()

    async def close(self) -> None:
        await self._transport.close()

    # Submits. Each carries an idempotency key (a new UUID unless one is given), so that a
    # submit retried after a lost answer gets the job the first attempt made.

    async def _submit(
        self,
        operation: RequestType,
        params: dict[str, Any],
        *,
        images: tuple[Any, ...] = (),
        mask: ImageInput | None = None,
        idempotency_key: str | None,
        labels: Mapping[str, str] | None,
        result_ttl_seconds: int | None,
    ) -> Job:
        submission = Submission(
            operation=operation,
            params=params,
            images=images,
            mask=input_file(mask) if mask is not None else None,
            idempotency_key=idempotency_key or str(uuid.uuid4()),
            labels=dict(labels or {}),
            result_ttl_seconds=result_ttl_seconds,
        )
        return await with_retries(self._retry, lambda: self._transport.submit(submission))

    async def submit_image_edit(
        self,
        images: ImageInput | Sequence[ImageInput],
        *,
        model: str,
        type: str | None = None,
        prompt: str | None = None,
        mask: ImageInput | None = None,
        n: int | None = None,
        size: str | None = None,
        response_format: str | None = None,
        fallbacks: Sequence[str] | None = None,
        idempotency_key: str | None = None,
        labels: Mapping[str, str] | None = None,
        result_ttl_seconds: int | None = None,
        **extra: Any,
    ) -> Job:
        """An image edit job (docs/rest-api.md §5.1); `extra` holds any other field by name."""
        params: dict[str, Any] = {"model": model, "type": type, "prompt": prompt, "n": n, "size": size}
        params |= {"response_format": response_format, "fallbacks": list(fallbacks or []) or None, **extra}
        return await self._submit(
            "image_edit",
            params,
            images=input_files(images),
            mask=mask,
            idempotency_key=idempotency_key,
            labels=labels,
            result_ttl_seconds=result_ttl_seconds,
        )

    async def submit_image_generation(
        self,
        prompt: str,
        *,
        model: str,
        n: int | None = None,
        size: str | None = None,
        quality: str | None = None,
        response_format: str | None = None,
        fallbacks: Sequence[str] | None = None,
        idempotency_key: str | None = None,
        labels: Mapping[str, str] | None = None,
        result_ttl_seconds: int | None = None,
        **extra: Any,
    ) -> Job:
        """An image generation job (§5.2)."""
        params: dict[str, Any] = {"model": model, "prompt": prompt, "n": n, "size": size, "quality": quality}
        params |= {"response_format": response_format, "fallbacks": list(fallbacks or []) or None, **extra}
        return await self._submit(
            "image_generation",
            params,
            idempotency_key=idempotency_key,
            labels=labels,
            result_ttl_seconds=result_ttl_seconds,
        )

    async def submit_image_variation(
        self,
        image: ImageInput,
        *,
        model: str,
        n: int | None = None,
        size: str | None = None,
        response_format: str | None = None,
        fallbacks: Sequence[str] | None = None,
        idempotency_key: str | None = None,
        labels: Mapping[str, str] | None = None,
        result_ttl_seconds: int | None = None,
        **extra: Any,
    ) -> Job:
        """An image variation job (§5.4)."""
        params: dict[str, Any] = {"model": model, "n": n, "size": size, "response_format": response_format}
        params |= {"fallbacks": list(fallbacks or []) or None, **extra}
        return await self._submit(
            "image_variation",
            params,
            images=(input_file(image),),
            idempotency_key=idempotency_key,
            labels=labels,
            result_ttl_seconds=result_ttl_seconds,
        )

    async def submit_embeddings(
        self,
        input: str | Sequence[str] | Sequence[int] | Sequence[Sequence[int]],
        *,
        model: str,
        dimensions: int | None = None,
        user: str | None = None,
        fallbacks: Sequence[str] | None = None,
        idempotency_key: str | None = None,
        labels: Mapping[str, str] | None = None,
        result_ttl_seconds: int | None = None,
        **extra: Any,
    ) -> Job:
        """An embeddings job (§5.3); `input` in any of OpenAI's four shapes."""
        value: Any = (
            input if isinstance(input, str) else [i if isinstance(i, int | str) else list(i) for i in input]
        )
        params: dict[str, Any] = {"model": model, "input": value, "dimensions": dimensions, "user": user}
        params |= {"fallbacks": list(fallbacks or []) or None, **extra}
        return await self._submit(
            "embedding",
            params,
            idempotency_key=idempotency_key,
            labels=labels,
            result_ttl_seconds=result_ttl_seconds,
        )

    # Reading and steering jobs.

    async def get(self, job_id: str) -> Job:
        return await with_retries(self._retry, lambda: self._transport.get(job_id))

    async def wait(self, job_id: str, timeout: float | None = None) -> Job:
        """The job once it has ended, or as it is when `timeout` seconds have passed (None:
        no limit); check `job.done`. Waits on the server (WaitJob / `Prefer: wait`), which
        answers the moment the job ends: no polling."""
        loop = asyncio.get_running_loop()
        deadline = None if timeout is None else loop.time() + timeout
        while True:
            remaining = WAIT_STEP_SECONDS if deadline is None else deadline - loop.time()
            if remaining <= 0:
                return await self.get(job_id)
            step = min(remaining, WAIT_STEP_SECONDS)
            job = await with_retries(self._retry, partial(self._transport.wait_once, job_id, step))
            if job.done or (deadline is not None and loop.time() >= deadline):
                return job

    async def watch(self, job_id: str) -> AsyncGenerator[Job]:
        """The job now, then at each change of status or attempt, ending after it ends. A
        dropped stream is reopened where it left off (as `retry` allows)."""
        after, failures = 0, 0
        while True:
            try:
                async for change, job in self._transport.watch(job_id, after):
                    after, failures = change, 0
                    yield job
                    if job.done:
                        return
                return
            except Unavailable:
                failures += 1
                if failures >= self._retry.attempts:
                    raise
                await asyncio.sleep(self._retry.delay(failures))

    async def cancel(self, job_id: str) -> Job:
        return await self._transport.cancel(job_id)

    async def retry(self, job_id: str) -> Job:
        return await self._transport.retry(job_id)

    async def delete(self, job_id: str) -> None:
        await self._transport.delete(job_id)

    async def list(
        self,
        *,
        status: Sequence[str] = (),
        type: str | None = None,
        labels: Mapping[str, str] | None = None,
        created_after: datetime | None = None,
        created_before: datetime | None = None,
        page_size: int | None = None,
        page_token: str | None = None,
    ) -> JobPage:
        """One page of the caller's jobs, newest first (`iter_jobs` walks every page)."""
        query = ListQuery(
            page_size, page_token, tuple(status), type, dict(labels or {}), created_after, created_before
        )
        return await with_retries(self._retry, lambda: self._transport.list(query))

    async def iter_jobs(
        self,
        *,
        status: Sequence[str] = (),
        type: str | None = None,
        labels: Mapping[str, str] | None = None,
        page_size: int | None = None,
    ) -> AsyncIterator[Job]:
        """Every job `list` would show, page after page."""
        token: str | None = None
        while True:
            page = await self.list(
                status=status, type=type, labels=labels, page_size=page_size, page_token=token
            )
            for job in page.jobs:
                yield job
            token = page.next_page_token
            if token is None:
                return

    # Outputs.

    async def _completed(self, job: Job | str) -> Job:
        if isinstance(job, str) or (job.status == "completed" and job.result is None):
            job = await self.get(job if isinstance(job, str) else job.id)
        if job.status != "completed" or job.result is None:
            raise AsyncGateError(f"job {job.id} is {job.status}, not completed: it has no outputs")
        return job

    async def download_images(self, job: Job | str) -> ImageFiles:
        """The image files of a completed image job, in order."""
        done = await self._completed(job)
        if not isinstance(done.result, ImagesResult):
            raise AsyncGateError(f"job {done.id} is an embeddings job: use download_embeddings")
        files: ImageFiles = []
        for item in done.result.data:
            if item.b64_json is not None:
                files.append(base64.b64decode(item.b64_json))
            elif item.output is not None:
                output = item.output
                files.append(
                    await with_retries(self._retry, partial(self._transport.read_output, done.id, output))
                )
            elif item.url is not None:
                url = item.url
                files.append(await with_retries(self._retry, partial(self._transport.fetch_url, url)))
        return files

    async def download_embeddings(self, job: Job | str) -> Vectors:
        """The vectors of a completed embeddings job, one per input, in input order."""
        done = await self._completed(job)
        if not isinstance(done.result, EmbeddingsResult):
            raise AsyncGateError(f"job {done.id} is an image job: use download_images")
        return [item.embedding for item in done.result.data]

    async def download_outputs(self, job: Job | str) -> ImageFiles | Vectors:
        """Image bytes for an image job, vectors (lists of floats) for an embeddings job."""
        done = await self._completed(job)
        if isinstance(done.result, EmbeddingsResult):
            return await self.download_embeddings(done)
        return await self.download_images(done)
