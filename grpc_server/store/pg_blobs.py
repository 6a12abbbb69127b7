"""Blobs in PostgreSQL: written and read in CHUNK_BYTES rows, never held whole.

An input is read from its staged file one chunk at a time (in a thread) and inserted inside
the create transaction; export_blob streams a blob into a file through a server-side cursor.
File errors are marked LocalFileError so that the store can tell them from the database's.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator, Callable, Iterator
from contextlib import aclosing
from pathlib import Path
from typing import IO, TypeAlias, TypeVar

import asyncpg
from asyncpg.pool import PoolConnectionProxy

from grpc_server.store.base import CHUNK_BYTES

T = TypeVar("T")
Connection: TypeAlias = "PoolConnectionProxy[asyncpg.Record]"  # subscriptable for mypy only


class LocalFileError(Exception):
    """A staged or exported file failed: the caller's OSError, not the database's."""

    def __init__(self, error: OSError) -> None:
        super().__init__(str(error))
        self.error = error


async def _local(fn: Callable[..., T], *args: object) -> T:
    """Run blocking file I/O in a thread, marking its OSError as local."""
    try:
        return await asyncio.to_thread(fn, *args)
    except OSError as exc:
        raise LocalFileError(exc) from exc


def split(data: bytes) -> Iterator[memoryview]:
    view = memoryview(data)
    return (view[i : i + CHUNK_BYTES] for i in range(0, len(data), CHUNK_BYTES))


async def file_chunks(path: Path) -> AsyncGenerator[bytes, None]:
    f: IO[bytes] = await _local(path.open, "rb")
    try:
        while chunk := await _local(f.read, CHUNK_BYTES):
            yield chunk
    finally:
        f.close()


async def memory_chunks(data: bytes) -> AsyncGenerator[memoryview, None]:
    for chunk in split(data):
        yield chunk


async def insert_blob(
    conn: Connection, job_id: str, kind: str, index: int, chunks: AsyncGenerator[bytes | memoryview, None]
) -> None:
    """Insert one blob chunk by chunk; an empty blob is one empty chunk, so it still exists."""
    seq = 0
    async with aclosing(chunks):
        async for chunk in chunks:
            await conn.execute(
                "INSERT INTO blob_chunks (job_id, kind, idx, seq, data) VALUES ($1, $2, $3, $4, $5)",
                job_id,
                kind,
                index,
                seq,
                chunk,
            )
            seq += 1
    if seq == 0:
        await conn.execute(
            "INSERT INTO blob_chunks (job_id, kind, idx, seq, data) VALUES ($1, $2, $3, 0, '')",
            job_id,
            kind,
            index,
        )


async def export_blob(conn: Connection, job_id: str, kind: str, index: int, path: Path) -> None:
    """Stream one blob into `path` through a server-side cursor, a chunk per fetch."""
    out: IO[bytes] = await _local(path.open, "wb")
    try:
        async for record in conn.cursor(
            "SELECT data FROM blob_chunks WHERE job_id = $1 AND kind = $2 AND idx = $3 ORDER BY seq",
            job_id,
            kind,
            index,
            prefetch=1,
        ):
            await _local(out.write, record["data"])
    finally:
        await _local(out.close)
