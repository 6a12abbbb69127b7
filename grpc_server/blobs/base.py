"""The blob store protocol: the bytes of job inputs and outputs, kept beside the job rows.

A blob is written once under a key that is never reused and never changed after: put()
makes it appear whole or not at all, and when put() returns it is as durable as the store
was configured to make it. The row that references a blob commits after the blob is
written, so a row never points at a missing blob; a blob no row references (a create that
failed after its put, a worker that lost its lease) is an orphan, collected later by
listing (list()) and deleting.

Keys are paths of ASCII letters, digits and `._-`, separated by `/`, without empty, `.`
or `..` segments; every key starts with the id of the job it belongs to
(`<job id>/in/image-0`, `<job id>/out-<token>/0`, see store.blob_keys).

Errors: a store that cannot be reached (or answers with a server error) raises
StoreUnavailable; one out of space raises StoreFull; a missing blob raises BlobNotFound.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Collection
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Protocol


class BlobNotFound(Exception):
    """No blob under this key (never written, or deleted)."""


@dataclass(frozen=True)
class BlobInfo:
    key: str
    size: int
    modified: datetime
    """When the blob was written (timezone-aware, UTC)."""


class BlobStore(Protocol):
    name: str
    """Recorded with each job whose blobs this store holds: "directory" or "s3"."""
    presigns: bool
    """Whether presign() hands out URLs (clients then fetch outputs from the store directly)."""

    async def open(self) -> None:
        """Prepare the store (the directory, or the bucket when configured to create it);
        StoreUnavailable when it cannot be used."""
        ...

    async def close(self) -> None: ...

    async def ping(self) -> None:
        """StoreUnavailable when the store cannot serve requests now; StoreFull when it
        cannot take a write for lack of space (where that can be known)."""
        ...

    async def put(self, key: str, source: Path | bytes) -> int:
        """Store the file at `source` (read in chunks, never whole) or the bytes, under `key`;
        the number of bytes stored."""
        ...

    def read(self, key: str) -> AsyncIterator[bytes]:
        """The blob's bytes in chunks of at most CHUNK_BYTES (store.base); BlobNotFound, raised
        on the first iteration, when there is none."""
        ...

    async def export(self, key: str, dest: Path) -> None:
        """Write the blob into the file `dest`, chunk by chunk; BlobNotFound when there is none."""
        ...

    async def delete(self, keys: Collection[str]) -> None:
        """Delete these blobs; keys already gone are not an error."""
        ...

    async def delete_prefix(self, prefix: str) -> int:
        """Delete every blob whose key starts with `prefix` (a job's: "<job id>/"); how many."""
        ...

    def list(self, prefix: str = "") -> AsyncIterator[BlobInfo]:
        """Every blob whose key starts with `prefix`, in no promised order."""
        ...

    async def presign(self, key: str, expires_in: timedelta) -> str | None:
        """A URL that lets anyone holding it GET the blob directly for `expires_in`, or None
        when this store gives none (a directory; a bucket not configured to)."""
        ...
