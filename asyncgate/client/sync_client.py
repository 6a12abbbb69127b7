"""Client: the AsyncClient's surface for code that does not run an event loop.

An AsyncClient lives on a private event loop in a daemon thread; each method runs the
async one there and blocks for its answer, so both clients behave alike by construction.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncGenerator, Coroutine, Iterator, Mapping, Sequence
from datetime import datetime
from types import TracebackType
from typing import Any, Self, TypeVar

from asyncgate.client.async_client import AsyncClient, ImageFiles, Vectors
from asyncgate.client.retry import RetryPolicy
from asyncgate.client.transport import ImageInput
from asyncgate.client.types import Job, JobPage

T = TypeVar("T")


async def _next(states: AsyncGenerator[Job]) -> Job:
    return await anext(states)


class Client:
    """Blocking client; the same arguments and methods as AsyncClient."""

    def __init__(
        self,
        url: str | None = None,
        *,
        grpc_target: str | None = None,
        key: str | None = None,
        bearer_token: str | None = None,
        retry: RetryPolicy | None = None,
    ) -> None:
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="asyncgate-client", daemon=True)
        self._thread.start()

        async def make() -> AsyncClient:  # on the loop, where its sessions and channel belong
            return AsyncClient(url, grpc_target=grpc_target, key=key, bearer_token=bearer_token, retry=retry)

        try:
            self._async = self._run(make())
        except BaseException:
            self._stop_loop()
            raise

    def _run(self, coroutine: Coroutine[Any, Any, T]) -> T:
        return asyncio.run_coroutine_threadsafe(coroutine, self._loop).result()

    def _stop_loop(self) -> None:
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join()
        self._loop.close()

    def close(self) -> None:
        if self._loop.is_closed():
            return
        self._run(self._async.close())
        self._stop_loop()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def submit_image_edit(
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
        return self._run(
            self._async.submit_image_edit(
                images,
                model=model,
                type=type,
                prompt=prompt,
                mask=mask,
                n=n,
                size=size,
                response_format=response_format,
                fallbacks=fallbacks,
                idempotency_key=idempotency_key,
                labels=labels,
                result_ttl_seconds=result_ttl_seconds,
                **extra,
            )
        )

    def submit_image_generation(
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
        return self._run(
            self._async.submit_image_generation(
                prompt,
                model=model,
                n=n,
                size=size,
                quality=quality,
                response_format=response_format,
                fallbacks=fallbacks,
                idempotency_key=idempotency_key,
                labels=labels,
                result_ttl_seconds=result_ttl_seconds,
                **extra,
            )
        )

    def submit_image_variation(
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
        return self._run(
            self._async.submit_image_variation(
                image,
                model=model,
                n=n,
                size=size,
                response_format=response_format,
                fallbacks=fallbacks,
                idempotency_key=idempotency_key,
                labels=labels,
                result_ttl_seconds=result_ttl_seconds,
                **extra,
            )
        )

    def submit_embeddings(
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
        return self._run(
            self._async.submit_embeddings(
                input,
                model=model,
                dimensions=dimensions,
                user=user,
                fallbacks=fallbacks,
                idempotency_key=idempotency_key,
                labels=labels,
                result_ttl_seconds=result_ttl_seconds,
                **extra,
            )
        )

    def get(self, job_id: str) -> Job:
        return self._run(self._async.get(job_id))

    def wait(self, job_id: str, timeout: float | None = None) -> Job:
        return self._run(self._async.wait(job_id, timeout))

    def watch(self, job_id: str) -> Iterator[Job]:
        """The job's states as AsyncClient.watch yields them, one by one."""
        states = self._async.watch(job_id)
        try:
            while True:
                try:
                    yield self._run(_next(states))
                except StopAsyncIteration:
                    return
        finally:
            self._run(states.aclose())

    def cancel(self, job_id: str) -> Job:
        return self._run(self._async.cancel(job_id))

    def retry(self, job_id: str) -> Job:
        return self._run(self._async.retry(job_id))

    def delete(self, job_id: str) -> None:
        self._run(self._async.delete(job_id))

    def list(
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
        return self._run(
            self._async.list(
                status=status,
                type=type,
                labels=labels,
                created_after=created_after,
                created_before=created_before,
                page_size=page_size,
                page_token=page_token,
            )
        )

    def iter_jobs(
        self,
        *,
        status: Sequence[str] = (),
        type: str | None = None,
        labels: Mapping[str, str] | None = None,
        page_size: int | None = None,
    ) -> Iterator[Job]:
        token: str | None = None
        while True:
            page = self.list(status=status, type=type, labels=labels, page_size=page_size, page_token=token)
            yield from page.jobs
            token = page.next_page_token
            if token is None:
                return

    def download_images(self, job: Job | str) -> ImageFiles:
        return self._run(self._async.download_images(job))

    def download_embeddings(self, job: Job | str) -> Vectors:
        return self._run(self._async.download_embeddings(job))

    def download_outputs(self, job: Job | str) -> ImageFiles | Vectors:
        return self._run(self._async.download_outputs(job))
