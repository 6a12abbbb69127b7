"""What only the SQLite store does: checkpoints beside the writer, not inside commits, a
bounded WAL, and batches of new jobs written with multi-row INSERTs."""

from __future__ import annotations

import asyncio
import os
import sqlite3
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from grpc_server.domain.jobs import InputFile
from grpc_server.store import sqlite_batch, sqlite_wal
from grpc_server.store.base import StagedFile
from grpc_server.store.sqlite import SQLiteStore
from tests.store.test_store_contract import _job

BLOB_BYTES = 100_000
RESTART_BYTES = 1024 * 1024
NEVER = 3600.0
"""A background checkpoint pause no test waits for: checkpoints happen only when a test asks."""


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[SQLiteStore]:
    backend = SQLiteStore(tmp_path / "s.sqlite3", wal_restart_bytes=RESTART_BYTES, checkpoint_pause=NEVER)
    await backend.open()
    yield backend
    await backend.close()


def _sizes(path: Path) -> tuple[int, int]:
    """(database file, WAL file) in bytes."""
    return path.stat().st_size, Path(f"{path}-wal").stat().st_size


async def _create_jobs(store: SQLiteStore, count: int) -> list[str]:
    ids = []
    for _ in range(count):
        job = _job()
        info = InputFile("image", 0, "i.png", "image/png", BLOB_BYTES, 8, 8)
        await store.create_job(job, [StagedFile(info, os.urandom(BLOB_BYTES))])
        ids.append(job.id)
    return ids


async def test_commits_do_not_checkpoint(tmp_path: Path) -> None:
    store = SQLiteStore(tmp_path / "s.sqlite3", wal_restart_bytes=4 * RESTART_BYTES, checkpoint_pause=NEVER)
    await store.open()
    try:
        db_before, _ = _sizes(store.path)
        await _create_jobs(store, 50)  # 5 MB: SQLite's automatic checkpoint would have run at 1000 pages
        db_after, wal = _sizes(store.path)
    finally:
        await store.close()
    assert db_after == db_before
    assert wal > 50 * BLOB_BYTES


async def test_a_commit_checkpoints_when_the_checkpointer_falls_far_behind(store: SQLiteStore) -> None:
    backstop = sqlite_wal.WAL_BACKSTOP_FACTOR * RESTART_BYTES
    largest = 0
    for _ in range(80):  # 8 MB, and no checkpoint round runs
        await _create_jobs(store, 1)
        largest = max(largest, _sizes(store.path)[1])
    assert largest < backstop + 4 * BLOB_BYTES  # the backstop, plus the commit that crossed it
    assert _sizes(store.path)[0] > 40 * BLOB_BYTES  # the commits copied pages into the database


async def test_a_checkpoint_copies_the_wal_and_the_next_write_starts_it_over(store: SQLiteStore) -> None:
    ids = await _create_jobs(store, 30)
    _, wal_before = _sizes(store.path)
    await store.checkpoint()
    db_size, _ = _sizes(store.path)
    assert db_size > 30 * BLOB_BYTES
    await _create_jobs(store, 1)
    _, wal_after = _sizes(store.path)
    assert wal_after <= RESTART_BYTES < wal_before  # restarted, and cut back to the size limit
    with sqlite3.connect(f"file:{store.path}?mode=ro", uri=True) as other:  # everything still reads
        (count,) = other.execute(
            "SELECT count(*) FROM blob_chunks WHERE length(data) = ?", (BLOB_BYTES,)
        ).fetchone()
    assert count == 31
    assert all([await store.get_job(i) for i in ids])


async def test_checkpoint_rounds_keep_the_wal_near_the_restart_size(store: SQLiteStore) -> None:
    largest = 0
    for _ in range(40):  # 8 MB written in all
        await _create_jobs(store, 2)
        largest = max(largest, _sizes(store.path)[1])
        await store.checkpoint()
    assert largest < RESTART_BYTES + 4 * BLOB_BYTES  # well under the backstop
    await store.close()
    assert not Path(f"{store.path}-wal").exists()  # the last close copied everything back


async def test_a_batch_larger_than_one_statement_is_written_whole(
    store: SQLiteStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(sqlite_batch, "ROWS_PER_STATEMENT", 3)
    jobs = [_job() for _ in range(20)]
    images = [os.urandom(1000 + i) for i in range(20)]
    infos = [InputFile("image", 0, "i.png", "image/png", len(data), 8, 8) for data in images]
    await asyncio.gather(
        *(
            store.create_job(job, [StagedFile(info, data)])
            for job, info, data in zip(jobs, infos, images, strict=True)
        )
    )
    for job, data in zip(jobs, images, strict=True):
        exported = await store.export_inputs(job.id, store.path.parent)
        assert [f.path.read_bytes() for f in exported] == [data]


async def test_the_checkpointer_keeps_going_after_a_failed_checkpoint(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    rounds: list[str] = []
    original = SQLiteStore.checkpoint

    async def failing_once(self: SQLiteStore) -> None:
        rounds.append("round")
        if len(rounds) == 1:
            raise sqlite3.DatabaseError("database disk image is malformed")
        await original(self)

    monkeypatch.setattr(SQLiteStore, "checkpoint", failing_once)
    store = SQLiteStore(tmp_path / "s.sqlite3", checkpoint_pause=0.001)
    await store.open()
    try:
        for _ in range(50):
            await _create_jobs(store, 1)
            if len(rounds) >= 2:
                break
            await asyncio.sleep(0.01)
    finally:
        await store.close()
    assert len(rounds) >= 2
    assert "background checkpoint failed: database disk image is malformed" in caplog.text
