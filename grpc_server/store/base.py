"""The store protocol: everything the server and dispatcher need to persist.

Every write that moves a job between states is a compare-and-set guarded by the
job's current status (and, for a running job, by the lease holder), so a
worker that lost its lease can never overwrite an outcome.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Protocol

from grpc_server.domain.jobs import ImageResult, InputFile, Job, JobError, OutputImage

CHUNK_BYTES = 1024 * 1024
"""Blobs are stored and streamed in chunks of this size, never held whole."""


@dataclass(frozen=True)
class StagedFile:
    """An input file, validated, waiting to be stored with its job: on local disk
    (large uploads, and inputs exported for a provider) or in memory (small ones)."""

    info: InputFile
    source: Path | bytes

    @property
    def path(self) -> Path:
        """The file on disk; only for files exported from the store."""
        assert isinstance(self.source, Path), "an in-memory input has no path"
        return self.source


@dataclass(frozen=True)
class OutputInfo:
    content_type: str
    size_bytes: int


@dataclass(frozen=True)
class ReapResult:
    requeued: int
    failed: int


class StoreUnavailable(Exception):
    """The store cannot be reached right now; the caller may retry."""


class JobStore(Protocol):
    async def open(self) -> None: ...

    async def close(self) -> None: ...

    async def ping(self) -> None:
        """Raise StoreUnavailable when the store cannot serve requests."""
        ...

    async def create_job(self, job: Job, files: Sequence[StagedFile]) -> None:
        """Persist a new pending job and all its input files in one transaction."""
        ...

    async def get_job(self, job_id: str) -> Job | None: ...

    async def claim_jobs(self, worker: str, limit: int, now: datetime, lease_until: datetime) -> list[Job]:
        """Move up to `limit` pending jobs (oldest first) to processing under a lease."""
        ...

    async def renew_lease(self, job_id: str, worker: str, lease_until: datetime) -> bool:
        """Extend a lease; False when the worker no longer holds it."""
        ...

    async def release_job(self, job_id: str, worker: str) -> bool:
        """Give a running job back to the queue (graceful shutdown)."""
        ...

    async def complete_job(
        self, job_id: str, worker: str, result: ImageResult, outputs: Sequence[OutputImage], now: datetime
    ) -> bool:
        """processing -> completed, with the output images; False if the lease was lost."""
        ...

    async def fail_job(self, job_id: str, worker: str | None, error: JobError, now: datetime) -> bool:
        """-> failed. With a worker: only while it holds the lease; without: only if pending."""
        ...

    async def export_inputs(self, job_id: str, dest: Path) -> list[StagedFile]:
        """Write a job's input files into `dest`, chunk by chunk."""
        ...

    async def output_info(self, job_id: str, index: int) -> OutputInfo | None: ...

    def read_output(self, job_id: str, index: int) -> AsyncIterator[bytes]:
        """The bytes of one output image, in chunks."""
        ...

    async def reap_expired_leases(self, now: datetime, max_attempts: int, exhausted: JobError) -> ReapResult:
        """Return jobs whose lease expired to the queue; fail those out of attempts."""
        ...

    async def delete_expired(self, now: datetime, limit: int) -> int:
        """Delete up to `limit` expired jobs and their blobs; the number deleted."""
        ...
