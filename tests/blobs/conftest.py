"""Both blob stores run the same contract: parametrize the `blob_store` fixture.

The directory store lives in tmp_path; the S3 store in a fresh bucket (made by the store, as
create_bucket asks) on the session's real SeaweedFS server (tests/s3_server.py), emptied and
removed after the test.
"""

from __future__ import annotations

import errno
import hashlib
import os
from collections.abc import AsyncIterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from grpc_server.blobs.base import BlobStore
from grpc_server.blobs.directory import DirectoryBlobStore
from grpc_server.blobs.s3 import S3BlobStore, S3Settings
from tests.s3_server import S3Endpoint, fresh_bucket


def s3_settings(endpoint: S3Endpoint, bucket: str, **overrides: Any) -> S3Settings:
    settings = S3Settings(
        endpoint_url=endpoint.url,
        bucket=bucket,
        region=endpoint.region,
        access_key_id=endpoint.access_key_id,
        secret_access_key=endpoint.secret_access_key,
        create_bucket=True,
        connect_timeout_seconds=5,
        read_timeout_seconds=30,
        max_attempts=2,
    )
    return replace(settings, **overrides)


@pytest.fixture(params=["directory", "s3"])
async def blob_store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[BlobStore]:
    store: BlobStore
    if request.param == "directory":
        store = DirectoryBlobStore(tmp_path / "blobs", fsync=True)
        await store.open()
        yield store
        await store.close()
        return
    endpoint: S3Endpoint = request.getfixturevalue("s3_server")
    async with fresh_bucket(endpoint) as bucket:
        store = S3BlobStore(s3_settings(endpoint, bucket))
        await store.open()
        try:
            yield store
        finally:
            await store.close()


async def read_all(store: BlobStore, key: str) -> bytes:
    return b"".join([chunk async for chunk in store.read(key)])


def random_file(path: Path, size: int) -> str:
    """Write `size` random bytes to `path` (a MiB at a time); their sha256."""
    digest = hashlib.sha256()
    with path.open("wb") as out:
        left = size
        while left:
            chunk = os.urandom(min(left, 1 << 20))
            digest.update(chunk)
            out.write(chunk)
            left -= len(chunk)
    return digest.hexdigest()


def file_digest(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        while chunk := f.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


class FailingReader:
    """A source file that reads `good` bytes, then fails as a broken disk would."""

    def __init__(self, good: int) -> None:
        self.left = good

    def read(self, size: int = -1) -> bytes:
        if self.left <= 0:
            raise OSError(errno.EIO, "Input/output error")
        n = min(size, self.left)
        self.left -= n
        return b"x" * n

    def close(self) -> None:
        pass

    def __enter__(self) -> FailingReader:
        return self

    def __exit__(self, *exc: object) -> None:
        pass
