"""Every store backend runs the same suite: parametrize the `store` fixture.

PostgreSQL tests each get a fresh schema in the database at TEST_DATABASE_URL, dropped
afterwards. Where PostgreSQL is unreachable they are skipped, except in CI (CI=true),
where that is a failure: CI must never pass by skipping them.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import pytest

from grpc_server.blobs.base import BlobStore
from grpc_server.blobs.directory import DirectoryBlobStore
from grpc_server.store.base import JobStore
from grpc_server.store.migrate import migrate
from grpc_server.store.pg_connect import quote_ident
from grpc_server.store.postgres import PostgresStore
from grpc_server.store.sqlite import SQLiteStore
from tests.pg import TEST_DATABASE_URL, connect_or_skip


@asynccontextmanager
async def fresh_schema() -> AsyncIterator[str]:
    """The name of a schema no one uses (not created: migrate creates it), dropped on exit."""
    admin = await connect_or_skip()
    name = f"t_{uuid.uuid4().hex}"
    try:
        yield name
    finally:
        await admin.execute(f"DROP SCHEMA IF EXISTS {quote_ident(name)} CASCADE")
        await admin.close()


@pytest.fixture
async def pg_schema() -> AsyncIterator[str]:
    async with fresh_schema() as name:
        yield name


@asynccontextmanager
async def postgres_store(
    schema: str, *, max_size: int = 10, scratch_dir: Path | None = None, blobs: BlobStore | None = None
) -> AsyncIterator[PostgresStore]:
    """An open store on `schema` (which must be migrated)."""
    backend = PostgresStore(
        TEST_DATABASE_URL, schema=schema, max_size=max_size, scratch_dir=scratch_dir, blobs=blobs
    )
    await backend.open()
    try:
        yield backend
    finally:
        await backend.close()


BACKENDS = ["sqlite", "sqlite+directory", "postgres", "postgres+directory"]
"""Each job store with its files in the database and in a blob store beside it."""


def blob_store_for(backend: str, tmp_path: Path) -> BlobStore | None:
    if backend.endswith("+directory"):
        return DirectoryBlobStore(tmp_path / "blobs", fsync=False)
    return None


@pytest.fixture(params=BACKENDS)
async def store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[JobStore]:
    blobs = blob_store_for(request.param, tmp_path)
    if request.param.startswith("sqlite"):
        backend = SQLiteStore(tmp_path / "store.sqlite3", blobs=blobs)
        await backend.open()
        yield backend
        await backend.close()
        return
    async with fresh_schema() as schema:
        await migrate(TEST_DATABASE_URL, schema=schema)
        async with postgres_store(schema, blobs=blobs) as pg:
            yield pg
