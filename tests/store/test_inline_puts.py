"""SQLite with a directory beside it that does not sync: a new job's files, in memory and small,
are written by the SQLite writer just before the INSERT that names them (BlobsBeside.inline_puts),
not handed to the blob threads first. What must hold either way: the files are there before the
row, a job whose files cannot be written fails alone and leaves nothing, a refused job leaves
no files."""

from __future__ import annotations

import asyncio
import os
import threading
from collections.abc import AsyncIterator
from dataclasses import replace
from pathlib import Path

import pytest

from grpc_server.blobs.directory import DirectoryBlobStore
from grpc_server.domain.errors import TooManyJobsInFlight
from grpc_server.domain.jobs import InputFile
from grpc_server.store.admission import AdmissionLimits, KeyPolicy
from grpc_server.store.base import StagedFile, StoreUnavailable
from grpc_server.store.blobs_beside import INLINE_BYTES, input_key
from grpc_server.store.sqlite import SQLiteStore
from tests.store.test_store_contract import _job


def in_memory(size: int, role: str = "image", index: int = 0) -> StagedFile:
    info = InputFile(role, index, f"{role}.png", "image/png", size, 8, 8)  # type: ignore[arg-type]
    return StagedFile(info, os.urandom(size))


class RecordingDirectory(DirectoryBlobStore):
    """Records the thread each file is written on; fails the puts of the job ids in `failing`."""

    def __init__(self, root: Path, *, fsync: bool) -> None:
        super().__init__(root, fsync=fsync)
        self.threads: dict[str, str] = {}
        self.failing: set[str] = set()

    def _put(self, dest: str, source: Path | bytes) -> int:
        job_id = Path(dest).parent.name
        self.threads[job_id] = threading.current_thread().name
        if job_id in self.failing:
            raise StoreUnavailable("the blob store cannot write a blob in its directory (EIO)")
        return super()._put(dest, source)


async def open_store(tmp_path: Path, *, fsync: bool = False) -> tuple[SQLiteStore, RecordingDirectory]:
    blobs = RecordingDirectory(tmp_path / "blobs", fsync=fsync)
    store = SQLiteStore(tmp_path / "store.sqlite3", blobs=blobs)
    await store.open()
    return store, blobs


@pytest.fixture
async def opened(tmp_path: Path) -> AsyncIterator[tuple[SQLiteStore, RecordingDirectory]]:
    store, blobs = await open_store(tmp_path)
    yield store, blobs
    await store.close()


def job_files(blobs: DirectoryBlobStore, job_id: str) -> list[Path]:
    return sorted(p for p in blobs.root.rglob("*") if p.is_file() and job_id in p.parts)


async def chunk_rows(store: SQLiteStore) -> int:
    count: int = await store._read(lambda c: c.execute("SELECT count(*) FROM blob_chunks").fetchone()[0])
    return count


async def test_small_files_in_memory_are_written_by_the_writer(
    opened: tuple[SQLiteStore, RecordingDirectory],
) -> None:
    store, blobs = opened
    job = _job()
    files = [in_memory(111_000), in_memory(900, "mask")]
    await store.create_job(job, files)
    assert blobs.threads[job.id].startswith("sqlite-writer")
    stored = await store.get_job(job.id)
    assert stored is not None and stored.blob_store == "directory"
    for staged in files:
        assert blobs.path(input_key(job.id, staged.info)).read_bytes() == staged.source
    assert await chunk_rows(store) == 0
    assert list((blobs.root / ".partial").iterdir()) == []


async def test_a_job_whose_files_cannot_be_written_fails_alone(
    opened: tuple[SQLiteStore, RecordingDirectory],
) -> None:
    store, blobs = opened
    jobs = [_job() for _ in range(6)]
    blobs.failing.add(jobs[2].id)
    outcomes = await asyncio.gather(
        *(store.create_job(job, [in_memory(1000), in_memory(10, "mask")]) for job in jobs),
        return_exceptions=True,
    )
    assert isinstance(outcomes[2], StoreUnavailable)
    assert [o for i, o in enumerate(outcomes) if i != 2] == [None] * 5
    assert await store.get_job(jobs[2].id) is None
    assert job_files(blobs, jobs[2].id) == []
    for job in jobs[:2] + jobs[3:]:
        assert await store.get_job(job.id) is not None
        assert len(job_files(blobs, job.id)) == 2


async def test_a_refused_job_leaves_no_files(opened: tuple[SQLiteStore, RecordingDirectory]) -> None:
    store, blobs = opened
    store.use_key_policy(KeyPolicy(limits={"vk-a": AdmissionLimits(max_jobs_in_flight=1)}))
    first = replace(_job(), owner_key_id="vk-a")
    await store.create_job(first, [in_memory(100)])
    refused = replace(_job(), owner_key_id="vk-a")
    with pytest.raises(TooManyJobsInFlight):
        await store.create_job(refused, [in_memory(100)])
    assert blobs.threads[refused.id].startswith("sqlite-writer")  # written, then taken back
    assert job_files(blobs, refused.id) == []
    assert len(job_files(blobs, first.id)) == 1


@pytest.mark.parametrize("case", ["synced", "large", "on disk"])
async def test_other_files_go_through_the_blob_threads_first(tmp_path: Path, case: str) -> None:
    store, blobs = await open_store(tmp_path, fsync=case == "synced")
    try:
        job = _job()
        staged = in_memory(INLINE_BYTES + 1 if case == "large" else 1000)
        if case == "on disk":
            path = tmp_path / "staged"
            path.write_bytes(staged.source)  # type: ignore[arg-type]
            staged = StagedFile(staged.info, path)
        await store.create_job(job, [staged])
        assert blobs.threads[job.id].startswith("blob-directory")
        assert len(job_files(blobs, job.id)) == 1
    finally:
        await store.close()
