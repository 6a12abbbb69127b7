"""The directory blob store's own promises: where files go, what a failed put leaves, crash
leftovers, fsync, a full disk."""

from __future__ import annotations

import errno
import os
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path, PosixPath
from typing import IO, Any

import pytest

from grpc_server.blobs.base import BlobNotFound
from grpc_server.blobs.directory import LIST_BATCH, PARTIAL_DIR, STALE_PARTIAL_SECONDS, DirectoryBlobStore
from grpc_server.store.base import CHUNK_BYTES, StoreFull, StoreUnavailable
from tests.blobs.conftest import FailingReader, random_file, read_all
from tests.store.tiny_disk import fill, tiny_disk


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[DirectoryBlobStore]:
    blobs = DirectoryBlobStore(tmp_path / "blobs", fsync=False)
    await blobs.open()
    yield blobs
    await blobs.close()


def files_under(root: Path) -> list[str]:
    return sorted(p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file())


class FailingPath(PosixPath):
    """A staged file whose reads fail after three chunks."""

    def open(self, *args: Any, **kwargs: Any) -> IO[Any]:  # type: ignore[override]
        return FailingReader(3 * CHUNK_BYTES)  # type: ignore[return-value]


async def test_blobs_are_files_sharded_by_job_id_one_directory_per_job(store: DirectoryBlobStore) -> None:
    await store.put("abcd-1234/in/image-0", b"one")
    await store.put("abcd-1234/out-t/0", b"out")
    await store.put("..x/in/0", b"two")  # ".." is no shard: the file stays under root
    assert files_under(store.root) == ["__/..x/in~0", "ab/abcd-1234/in~image-0", "ab/abcd-1234/out-t~0"]
    assert (store.root / "ab" / "abcd-1234" / "in~image-0").read_bytes() == b"one"
    assert store.path("abcd-1234/in/image-0") == store.root / "ab/abcd-1234/in~image-0"
    assert sorted([info.key async for info in store.list("abcd-1234/")]) == [
        "abcd-1234/in/image-0",
        "abcd-1234/out-t/0",
    ]


async def test_blobs_of_the_nested_layout_are_read_listed_and_deleted(store: DirectoryBlobStore) -> None:
    """Files an earlier version wrote one directory per key segment."""
    job = store.root / "ab" / "abjob"
    for relative, data in (("in/image-0", b"in"), ("out-t/0", b"out0"), ("out-t/1", b"out1")):
        (job / relative).parent.mkdir(parents=True, exist_ok=True)
        (job / relative).write_bytes(data)
    await store.put("abjob/out-u/0", b"new")  # beside them, in today's layout

    assert await read_all(store, "abjob/in/image-0") == b"in"
    exported = store.root.parent / "exported"
    await store.export("abjob/out-t/1", exported)
    assert exported.read_bytes() == b"out1"
    assert sorted([info.key async for info in store.list("abjob/out-")]) == [
        "abjob/out-t/0",
        "abjob/out-t/1",
        "abjob/out-u/0",
    ]
    assert [info.key async for info in store.list("abjob/in/im")] == ["abjob/in/image-0"]
    await store.delete(["abjob/out-t/0"])
    assert await store.delete_prefix("abjob/out-t/") == 1
    assert not (job / "out-t").exists()
    assert files_under(store.root) == ["ab/abjob/in/image-0", "ab/abjob/out-u~0"]
    assert await store.delete_prefix("abjob/") == 2
    assert not job.exists()


async def test_a_source_failing_midway_leaves_no_blob_and_no_temporary_file(
    store: DirectoryBlobStore,
) -> None:
    with pytest.raises(OSError) as raised:
        await store.put("job-1/in/image-0", FailingPath("/staged/image"))
    assert raised.value.errno == errno.EIO  # the source's own error, not the store's
    assert not isinstance(raised.value, StoreUnavailable)
    with pytest.raises(BlobNotFound):
        await read_all(store, "job-1/in/image-0")
    assert files_under(store.root) == []


async def test_a_missing_source_leaves_no_temporary_file(store: DirectoryBlobStore, tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        await store.put("job-1/in/image-0", tmp_path / "removed-before-put")
    assert files_under(store.root) == []


async def test_open_removes_a_crash_s_leftover_temporary_files(tmp_path: Path) -> None:
    root = tmp_path / "blobs"
    (root / PARTIAL_DIR).mkdir(parents=True)
    leftover = root / PARTIAL_DIR / "put-abc123"
    leftover.write_bytes(b"half a blob")
    old = time.time() - STALE_PARTIAL_SECONDS - 60
    os.utime(leftover, (old, old))
    in_progress = root / PARTIAL_DIR / "put-def456"  # another process's put, still being written
    in_progress.write_bytes(b"being written")
    store = DirectoryBlobStore(root, fsync=False)
    await store.open()
    try:
        assert not leftover.exists()
        assert in_progress.exists()
        assert [info async for info in store.list()] == []  # never listed as blobs
    finally:
        await store.close()


async def test_fsync_syncs_the_file_and_the_directories_it_changed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    synced: list[str] = []
    real_fsync = os.fsync

    def recording_fsync(fd: int) -> None:
        synced.append(os.readlink(f"/proc/self/fd/{fd}"))
        real_fsync(fd)

    monkeypatch.setattr(os, "fsync", recording_fsync)
    root = tmp_path / "blobs"
    store = DirectoryBlobStore(root, fsync=True)
    await store.open()
    try:
        await store.put("job-1/in/image-0", b"data")
        partial = str(root / PARTIAL_DIR)
        assert [p for p in synced if p.startswith(partial + "/")], synced  # the temporary file, written
        # The blob's directory, and those whose new entries made the path to it.
        assert {p for p in synced if not p.startswith(partial)} == {
            str(root / "jo"),
            str(root),
            str(root / "jo/job-1"),
        }
        synced.clear()
        (tmp_path / "f").write_bytes(b"from a file")
        await store.put("job-1/in/image-1", tmp_path / "f")
        assert [p for p in synced if not p.startswith(partial)] == [str(root / "jo/job-1")]
    finally:
        await store.close()

    synced.clear()
    unsynced = DirectoryBlobStore(tmp_path / "other", fsync=False)
    await unsynced.open()
    await unsynced.put("job-1/in/image-0", b"data")
    await unsynced.close()
    assert synced == []


async def test_delete_prefix_removes_the_job_directory(store: DirectoryBlobStore) -> None:
    await store.put("abjob/in/image-0", b"1")
    await store.put("abjob/out-t/0", b"2")
    await store.put("abother/in/image-0", b"3")
    assert await store.delete_prefix("abjob/") == 2
    assert not (store.root / "ab" / "abjob").exists()
    assert files_under(store.root) == ["ab/abother/in~image-0"]


async def test_delete_removes_directories_it_empties(store: DirectoryBlobStore) -> None:
    await store.put("abjob/in/image-0", b"1")
    await store.put("abjob/out-t/0", b"2")
    await store.delete(["abjob/out-t/0"])
    assert files_under(store.root) == ["ab/abjob/in~image-0"]
    await store.delete(["abjob/in/image-0"])
    assert not (store.root / "ab/abjob").exists()
    await store.put("abjob/out-t/1", b"3")  # a later put makes them again
    assert await read_all(store, "abjob/out-t/1") == b"3"


async def test_list_walks_many_blobs_in_batches(store: DirectoryBlobStore) -> None:
    count = 2 * LIST_BATCH + 7
    await store.put("job-0/in/first", b"")
    for i in range(count):
        await store.put(f"job-{i % 50}/out-x/{i}", b"")
    keys = [info.key async for info in store.list("job-")]
    assert len(keys) == count + 1 == len(set(keys))
    # Abandoned half way: nothing left open (a warning would fail the test).
    async for _ in store.list():
        break


async def test_a_root_that_cannot_be_a_directory_is_unavailable_without_paths(tmp_path: Path) -> None:
    root = tmp_path / "not-a-dir"
    root.write_bytes(b"a file where the blob directory should be")
    store = DirectoryBlobStore(root / "blobs", fsync=False)
    with pytest.raises(StoreUnavailable) as raised:
        await store.open()
    assert not isinstance(raised.value, StoreFull)
    assert str(tmp_path) not in str(raised.value)
    await store.close()


async def test_a_full_disk_is_store_full_and_leaves_nothing(tmp_path: Path) -> None:
    with tiny_disk(tmp_path / "disk") as disk:
        store = DirectoryBlobStore(disk / "blobs", fsync=True)
        await store.open()
        try:
            source = tmp_path / "big.bin"
            random_file(source, 12 * 1000 * 1000)  # more than the 8 MB disk holds
            with pytest.raises(StoreFull) as raised:
                await store.put("job-1/in/image-0", source)
            assert str(disk) not in str(raised.value) and str(tmp_path) not in str(raised.value)
            with pytest.raises(BlobNotFound):
                await read_all(store, "job-1/in/image-0")
            assert files_under(store.root) == []

            await store.put("job-1/in/small", b"fits")
            filler = fill(disk)
            with pytest.raises(StoreFull):
                await store.ping()
            with pytest.raises(StoreFull):
                await store.put("job-2/in/image-0", b"x" * CHUNK_BYTES)
            with pytest.raises(StoreFull):
                await store.export("job-1/in/small", disk / "exported")
            filler.unlink()
            await store.ping()
            await store.put("job-2/in/image-0", b"x" * CHUNK_BYTES)
            assert [info.key async for info in store.list("job-2/")] == ["job-2/in/image-0"]
        finally:
            await store.close()


def test_the_directory_store_does_not_need_the_s3_extra() -> None:
    """A server without aiobotocore runs the directory store: nothing imports it on the way."""
    code = (
        "import sys, grpc_server.blobs.directory, grpc_server.blobs.base\n"
        "assert not [m for m in sys.modules if m.startswith(('aiobotocore', 'botocore'))], 'imported'\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, cwd=Path(__file__).resolve().parents[2])
