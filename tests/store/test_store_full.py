"""A full disk is reported truthfully: writes fail with StoreFull (a clear message, no paths),
ping() notices that writing is impossible though reads work, watch_health() hears it at once,
and everything works again, by itself, once space is freed. On a real, tiny tmpfs."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from grpc_server.domain.jobs import InputFile
from grpc_server.staging import NO_SPACE_TO_STAGE, Staging
from grpc_server.store.base import JobStore, StagedFile, StoreFull, StoreUnavailable
from grpc_server.store.migrate import migrate
from grpc_server.store.sqlite import SQLiteStore
from tests.pg import TEST_DATABASE_URL
from tests.store.conftest import fresh_schema, postgres_store
from tests.store.test_store_contract import _job
from tests.store.tiny_disk import fill, tiny_disk

IMAGE_BYTES = 300_000


@pytest.fixture
def disk(tmp_path: Path) -> Iterator[Path]:
    with tiny_disk(tmp_path / "tiny") as mounted:
        yield mounted


def _image() -> StagedFile:
    return StagedFile(InputFile("image", 0, "i.png", "image/png", IMAGE_BYTES, 8, 8), os.urandom(IMAGE_BYTES))


def _says_full_without_paths(error: BaseException, disk: Path) -> None:
    assert isinstance(error, StoreFull)
    assert "full" in str(error) and str(disk) not in str(error) and "Errno" not in str(error)


async def test_an_sqlite_store_on_a_full_disk_refuses_reports_and_recovers(disk: Path) -> None:
    store = SQLiteStore(disk / "data" / "asyncgate.sqlite3")
    await store.open()
    heard: list[StoreUnavailable | None] = []
    store.watch_health(heard.append)
    try:
        kept = _job()
        await store.create_job(kept, [_image()])
        await store.ping()
        filler = fill(disk)

        with pytest.raises(StoreFull) as refused:
            for _ in range(30):  # what SQLite had reserved goes first
                await store.create_job(_job(), [_image()])
        _says_full_without_paths(refused.value, disk)
        assert isinstance(heard[-1], StoreFull)  # told at once, not at the next check
        assert await store.get_job(kept.id) is not None  # reads still work...
        with pytest.raises(StoreFull):
            await store.ping()  # ...and ping still knows writing does not

        filler.unlink()
        await store.ping()
        recovered = _job()
        await store.create_job(recovered, [_image()])
        assert await store.get_job(recovered.id) is not None
        assert heard[-1] is None  # told it works again
    finally:
        await store.close()


async def _export_into_full_disk(store: JobStore, disk: Path) -> None:
    job = _job()
    await store.create_job(job, [_image()])
    dest = disk / "export"
    dest.mkdir()
    filler = fill(disk)
    try:
        with pytest.raises(StoreFull) as refused:
            await store.export_inputs(job.id, dest)
        _says_full_without_paths(refused.value, disk)
    finally:
        filler.unlink()
    [exported] = await store.export_inputs(job.id, dest)
    assert exported.path.stat().st_size == IMAGE_BYTES


async def test_exporting_inputs_onto_a_full_disk_is_store_full_sqlite(disk: Path, tmp_path: Path) -> None:
    store = SQLiteStore(tmp_path / "elsewhere.sqlite3")  # the database has room; the job's dir does not
    await store.open()
    try:
        await _export_into_full_disk(store, disk)
    finally:
        await store.close()


async def test_a_postgres_store_checks_and_reports_its_scratch_disk(disk: Path) -> None:
    async with fresh_schema() as schema:
        await migrate(TEST_DATABASE_URL, schema=schema)
        async with postgres_store(schema, scratch_dir=disk) as store:
            heard: list[StoreUnavailable | None] = []
            store.watch_health(heard.append)
            await store.ping()
            filler = fill(disk)
            with pytest.raises(StoreFull) as refused:
                await store.ping()
            _says_full_without_paths(refused.value, disk)
            assert isinstance(heard[-1], StoreFull)
            filler.unlink()
            await store.ping()
            assert heard[-1] is None
            await _export_into_full_disk(store, disk)


async def test_staging_an_upload_onto_a_full_disk_is_store_full(disk: Path) -> None:
    filler = fill(disk)
    staging = Staging(disk / "staging", max_file_bytes=100 * IMAGE_BYTES, max_images=1)
    with pytest.raises(StoreFull) as refused:
        async with staging:
            staging.start_file("image", "big.png", "image/png")
            for _ in range(20):  # past SPOOL_BYTES: to disk
                staging.write(os.urandom(IMAGE_BYTES))
    assert str(refused.value) == NO_SPACE_TO_STAGE
    filler.unlink()
    assert list((disk / "staging").iterdir()) == []  # and nothing is left behind
