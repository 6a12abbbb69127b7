"""The blob store contract (grpc_server/blobs/base.py), run against every store."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from grpc_server.blobs.base import BlobNotFound, BlobStore
from grpc_server.store.base import CHUNK_BYTES
from tests.blobs.conftest import file_digest, random_file, read_all

BAD_KEYS = [
    "",
    "/job/in/0",
    "job//0",
    "job/./0",
    "job/../0",
    "..",
    ".",
    "job/in/",
    "job/in 0",
    "jöb/0",
    "a\\b",
]


async def test_put_bytes_and_read_back(blob_store: BlobStore) -> None:
    assert await blob_store.put("job-1/in/prompt", b"hello blobs") == 11
    assert await read_all(blob_store, "job-1/in/prompt") == b"hello blobs"


async def test_a_20_mb_file_put_from_a_path_reads_back_in_chunks(
    blob_store: BlobStore, tmp_path: Path
) -> None:
    source = tmp_path / "image.bin"
    size = 20 * 1000 * 1000 + 17  # not a whole number of chunks or parts
    expected = random_file(source, size)
    assert await blob_store.put("job-2/in/image-0", source) == size

    digest = hashlib.sha256()
    chunks = 0
    async for chunk in blob_store.read("job-2/in/image-0"):
        assert 0 < len(chunk) <= CHUNK_BYTES
        digest.update(chunk)
        chunks += 1
    assert digest.hexdigest() == expected
    assert chunks >= size // CHUNK_BYTES + 1

    exported = tmp_path / "exported.bin"
    await blob_store.export("job-2/in/image-0", exported)
    assert file_digest(exported) == expected


async def test_small_bytes_and_file_export(blob_store: BlobStore, tmp_path: Path) -> None:
    data = bytes(range(256)) * 5000  # 1.28 MB: more than one chunk
    assert await blob_store.put("job-3/out-a/0", data) == len(data)
    dest = tmp_path / "out.bin"
    await blob_store.export("job-3/out-a/0", dest)
    assert dest.read_bytes() == data


async def test_empty_blobs(blob_store: BlobStore, tmp_path: Path) -> None:
    empty_file = tmp_path / "empty"
    empty_file.touch()
    assert await blob_store.put("job-4/in/a", b"") == 0
    assert await blob_store.put("job-4/in/b", empty_file) == 0
    for key in ("job-4/in/a", "job-4/in/b"):
        assert [chunk async for chunk in blob_store.read(key)] == []
        dest = tmp_path / f"{key.replace('/', '_')}.out"
        await blob_store.export(key, dest)
        assert dest.read_bytes() == b""
    assert sorted([(info.key, info.size) async for info in blob_store.list("job-4/")]) == [
        ("job-4/in/a", 0),
        ("job-4/in/b", 0),
    ]


async def test_list_by_prefix(blob_store: BlobStore) -> None:
    before = datetime.now(UTC)
    blobs = {
        "job-5/in/image-0": b"a" * 10,
        "job-5/in/mask-0": b"b" * 20,
        "job-5/out-x1/0": b"c" * 30,
        "job-50/in/image-0": b"d" * 40,
        "job-6/in/image-0": b"e" * 50,
    }
    for key, data in blobs.items():
        await blob_store.put(key, data)
    after = datetime.now(UTC)

    async def listed(prefix: str) -> dict[str, int]:
        return {info.key: info.size async for info in blob_store.list(prefix)}

    assert await listed("job-5/") == {key: len(blobs[key]) for key in blobs if key.startswith("job-5/")}
    assert await listed("job-5/in/") == {"job-5/in/image-0": 10, "job-5/in/mask-0": 20}
    assert await listed("job-5/in/ma") == {"job-5/in/mask-0": 20}
    assert await listed("job-5") == {key: len(data) for key, data in blobs.items() if key.startswith("job-5")}
    assert await listed("j") == {key: len(data) for key, data in blobs.items()}
    assert await listed("") == {key: len(data) for key, data in blobs.items()}
    assert await listed("job-7/") == {}
    assert await listed("x") == {}

    async for info in blob_store.list("job-5/"):
        assert info.modified.tzinfo is not None and info.modified.utcoffset() == timedelta(0)
        # Stores keep whole seconds (S3): within a second of when the puts ran.
        assert before - timedelta(seconds=1) <= info.modified <= after + timedelta(seconds=1)


async def test_delete_some_keys_missing_ones_fine(blob_store: BlobStore) -> None:
    for key in ("job-8/in/a", "job-8/in/b", "job-8/out-t/0"):
        await blob_store.put(key, key.encode())
    await blob_store.delete(["job-8/in/a", "job-8/out-t/0", "job-8/in/never-written", "job-9/x"])
    await blob_store.delete([])
    with pytest.raises(BlobNotFound):
        await read_all(blob_store, "job-8/in/a")
    assert await read_all(blob_store, "job-8/in/b") == b"job-8/in/b"
    assert [info.key async for info in blob_store.list("job-8/")] == ["job-8/in/b"]


async def test_delete_prefix_removes_exactly_that_jobs_blobs(blob_store: BlobStore) -> None:
    mine = ["job-10/in/image-0", "job-10/in/image-1", "job-10/out-q/0"]
    others = ["job-100/in/image-0", "job-1/in/image-0", "job-11/out-q/0"]
    for key in mine + others:
        await blob_store.put(key, b"x")
    assert await blob_store.delete_prefix("job-10/") == 3
    assert sorted([info.key async for info in blob_store.list()]) == sorted(others)
    for key in mine:
        with pytest.raises(BlobNotFound):
            await read_all(blob_store, key)
    assert await blob_store.delete_prefix("job-10/") == 0
    assert await blob_store.delete_prefix("job-1/in/") == 1
    assert sorted([info.key async for info in blob_store.list()]) == ["job-100/in/image-0", "job-11/out-q/0"]


async def test_a_missing_blob_is_not_found(blob_store: BlobStore, tmp_path: Path) -> None:
    chunks = blob_store.read("job-12/in/image-0")  # nothing raised until iterated
    with pytest.raises(BlobNotFound):
        await anext(chunks)
    dest = tmp_path / "dest.bin"
    with pytest.raises(BlobNotFound):
        await blob_store.export("job-12/in/image-0", dest)
    assert not dest.exists()


async def test_a_missing_source_file_is_the_callers_error(blob_store: BlobStore, tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        await blob_store.put("job-13/in/image-0", tmp_path / "gone")
    assert [info async for info in blob_store.list()] == []


async def test_keys_with_dots_and_dashes(blob_store: BlobStore) -> None:
    keys = ["..x/in/0", ".a/b.c", "-_/x", "Q/.../..a", "x"]
    for key in keys:
        await blob_store.put(key, key.encode())
    for key in keys:
        assert await read_all(blob_store, key) == key.encode()
    assert sorted([info.key async for info in blob_store.list()]) == sorted(keys)
    assert sorted([info.key async for info in blob_store.list(".")]) == ["..x/in/0", ".a/b.c"]
    assert [info.key async for info in blob_store.list(".a")] == [".a/b.c"]
    assert [info.key async for info in blob_store.list("..")] == ["..x/in/0"]


async def test_bad_keys_are_refused(blob_store: BlobStore, tmp_path: Path) -> None:
    for key in BAD_KEYS:
        with pytest.raises(ValueError):
            await blob_store.put(key, b"x")
        with pytest.raises(ValueError):
            await anext(blob_store.read(key))
        with pytest.raises(ValueError):
            await blob_store.export(key, tmp_path / "out")
        with pytest.raises(ValueError):
            await blob_store.delete(["job/ok", key])
        with pytest.raises(ValueError):
            await blob_store.presign(key, timedelta(minutes=5))
    assert [info async for info in blob_store.list()] == []
    assert not (tmp_path / "out").exists()


async def test_bad_prefixes_are_refused(blob_store: BlobStore) -> None:
    await blob_store.put("job/in/0", b"x")
    for prefix in ["/job", "job//", "job/../", "../", "a b", "job/./x", "job\\"]:
        with pytest.raises(ValueError):
            await anext(blob_store.list(prefix))
        with pytest.raises(ValueError):
            await blob_store.delete_prefix(prefix)
    assert [info.key async for info in blob_store.list()] == ["job/in/0"]


async def test_ping(blob_store: BlobStore) -> None:
    await blob_store.ping()
