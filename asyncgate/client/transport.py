"""What the client needs from a transport; gRPC (grpc_transport) and REST (rest_transport)
each provide it. Calls here are single attempts: retries are the client's business."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, Protocol

from asyncgate.client.types import InputFile, Job, JobPage, OutputRef, RequestType

ImageInput = bytes | str | os.PathLike[str] | InputFile
"""An image to send: its bytes, a path to read it from, or an InputFile."""


def input_file(image: ImageInput) -> InputFile:
    if isinstance(image, InputFile):
        return image
    if isinstance(image, bytes):
        return InputFile(image)
    path = Path(image)
    return InputFile(path.read_bytes(), filename=path.name)


def input_files(images: ImageInput | Sequence[ImageInput]) -> tuple[InputFile, ...]:
    """One image or several, as InputFiles (a str is a path, never a list of characters)."""
    if isinstance(images, bytes | str | os.PathLike | InputFile):
        return (input_file(images),)
    return tuple(input_file(image) for image in images)


@dataclass(frozen=True)
class Submission:
    """One submit: the operation, its fields by their OpenAI names, its files and options."""

    operation: RequestType
    params: Mapping[str, Any]
    images: tuple[InputFile, ...] = ()
    mask: InputFile | None = None
    idempotency_key: str | None = None
    labels: Mapping[str, str] = field(default_factory=dict)
    result_ttl_seconds: int | None = None


@dataclass(frozen=True)
class ListQuery:
    page_size: int | None = None
    page_token: str | None = None
    statuses: tuple[str, ...] = ()
    request_type: str | None = None
    labels: Mapping[str, str] = field(default_factory=dict)
    created_after: datetime | None = None
    created_before: datetime | None = None


class Transport(Protocol):
    async def submit(self, submission: Submission) -> Job: ...

    async def get(self, job_id: str) -> Job: ...

    async def wait_once(self, job_id: str, timeout: float) -> Job:
        """One wait on the server, for at most `timeout` seconds (the server may cap it)."""
        ...

    def watch(self, job_id: str, after_change: int) -> AsyncIterator[tuple[int, Job]]:
        """(change number, job) at each change above `after_change`, until the job ends."""
        ...

    async def cancel(self, job_id: str) -> Job: ...

    async def retry(self, job_id: str) -> Job: ...

    async def delete(self, job_id: str) -> None: ...

    async def list(self, query: ListQuery) -> JobPage: ...

    async def read_output(self, job_id: str, output: OutputRef) -> bytes: ...

    async def fetch_url(self, url: str) -> bytes: ...

    async def close(self) -> None: ...


def auth_headers(key: str | None, bearer_token: str | None) -> dict[str, str]:
    """The virtual key as `x-bf-vk`, a token as `authorization: Bearer` (both may be given)."""
    headers: dict[str, str] = {}
    if key:
        headers["x-bf-vk"] = key
    if bearer_token:
        headers["authorization"] = f"Bearer {bearer_token}"
    return headers
