"""The S3 blob store's own promises, against a real S3 server (SeaweedFS, tests/s3_server.py):
multipart uploads, presigned URLs, key prefixes, and how it fails."""

from __future__ import annotations

import asyncio
import errno
import hashlib
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import timedelta
from pathlib import Path, PosixPath
from typing import IO, Any
from urllib.parse import parse_qs, urlsplit

import aiohttp
import pytest
from aiohttp import web

from grpc_server.blobs.base import BlobNotFound
from grpc_server.blobs.s3 import PART_BYTES, S3BlobStore, S3Settings
from grpc_server.store.base import StoreUnavailable
from tests.blobs.conftest import FailingReader, random_file, read_all, s3_settings
from tests.processes import free_port
from tests.s3_server import S3Endpoint, empty_bucket, fresh_bucket, s3_client


@pytest.fixture
async def bucket(s3_server: S3Endpoint) -> AsyncIterator[str]:
    async with fresh_bucket(s3_server) as name:
        yield name


@pytest.fixture
async def store(s3_server: S3Endpoint, bucket: str) -> AsyncIterator[S3BlobStore]:
    blobs = S3BlobStore(s3_settings(s3_server, bucket, presign=True))
    await blobs.open()
    yield blobs
    await blobs.close()


async def etag(endpoint: S3Endpoint, bucket: str, name: str) -> str:
    async with s3_client(endpoint) as client:
        return (await client.head_object(Bucket=bucket, Key=name))["ETag"]


class FailingPath(PosixPath):
    """A staged file whose reads fail after two and a half parts."""

    def open(self, *args: Any, **kwargs: Any) -> IO[Any]:  # type: ignore[override]
        return FailingReader(2 * PART_BYTES + PART_BYTES // 2)  # type: ignore[return-value]


async def test_a_file_larger_than_a_part_goes_up_in_parts(
    store: S3BlobStore, s3_server: S3Endpoint, bucket: str, tmp_path: Path
) -> None:
    source = tmp_path / "big.bin"
    expected = random_file(source, 2 * PART_BYTES + 5)
    assert await store.put("job-1/in/image-0", source) == 2 * PART_BYTES + 5
    assert (await etag(s3_server, bucket, "job-1/in/image-0")).strip('"').endswith("-3")
    digest = hashlib.sha256()
    async for chunk in store.read("job-1/in/image-0"):
        digest.update(chunk)
    assert digest.hexdigest() == expected

    one_part = tmp_path / "one-part.bin"
    random_file(one_part, PART_BYTES)
    assert await store.put("job-1/in/image-1", one_part) == PART_BYTES
    assert "-" not in await etag(s3_server, bucket, "job-1/in/image-1")  # a single put_object
    assert await read_all(store, "job-1/in/image-1") == one_part.read_bytes()


async def test_a_failed_multipart_upload_is_aborted(
    store: S3BlobStore, s3_server: S3Endpoint, bucket: str
) -> None:
    with pytest.raises(OSError) as raised:
        await store.put("job-2/in/image-0", FailingPath("/staged/image"))
    assert raised.value.errno == errno.EIO  # the source's own error
    async with s3_client(s3_server) as client:
        assert (await client.list_multipart_uploads(Bucket=bucket)).get("Uploads", []) == []
    with pytest.raises(BlobNotFound):
        await read_all(store, "job-2/in/image-0")


async def test_presigned_urls_fetch_the_blob_until_it_is_deleted(store: S3BlobStore) -> None:
    await store.put("job-3/out-t/0", b"an image")
    url = await store.presign("job-3/out-t/0", timedelta(minutes=10))
    assert url is not None
    async with aiohttp.ClientSession() as http:
        async with http.get(url) as response:
            assert response.status == 200
            assert await response.read() == b"an image"
        await store.delete(["job-3/out-t/0"])
        async with http.get(url) as response:
            assert response.status == 404
        tampered = url.replace("X-Amz-Expires=600", "X-Amz-Expires=6000")
        async with http.get(tampered) as response:
            assert response.status == 403  # the signature covers the expiry


async def test_presigned_urls_last_at_most_seven_days(store: S3BlobStore) -> None:
    url = await store.presign("job-3/out-t/0", timedelta(days=30))
    assert url is not None
    assert parse_qs(urlsplit(url).query)["X-Amz-Expires"] == ["604800"]
    with pytest.raises(ValueError):
        await store.presign("job-3/out-t/0", timedelta(0))


async def test_presign_off_gives_none(s3_server: S3Endpoint, bucket: str) -> None:
    store = S3BlobStore(s3_settings(s3_server, bucket, presign=False))
    await store.open()
    try:
        await store.put("job-4/out-t/0", b"x")
        assert await store.presign("job-4/out-t/0", timedelta(minutes=5)) is None
    finally:
        await store.close()


async def test_presigned_urls_use_the_public_endpoint(s3_server: S3Endpoint, bucket: str) -> None:
    public = s3_server.url.replace("127.0.0.1", "localhost")  # the same server, another name
    store = S3BlobStore(s3_settings(s3_server, bucket, presign=True, public_endpoint_url=public))
    await store.open()
    try:
        await store.put("job-5/out-t/0", b"public")
        url = await store.presign("job-5/out-t/0", timedelta(minutes=5))
        assert url is not None and url.startswith(f"{public}/{bucket}/job-5/out-t/0?")
        async with aiohttp.ClientSession() as http, http.get(url) as response:
            assert response.status == 200
            assert await response.read() == b"public"
    finally:
        await store.close()


async def test_key_prefixes_keep_two_stores_on_one_bucket_apart(s3_server: S3Endpoint, bucket: str) -> None:
    a = S3BlobStore(s3_settings(s3_server, bucket, key_prefix="deploy-a/"))
    b = S3BlobStore(s3_settings(s3_server, bucket, key_prefix="deploy-b/"))
    await a.open()
    await b.open()
    try:
        await a.put("job-6/in/image-0", b"from a")
        await b.put("job-6/in/image-0", b"from b")
        await b.put("job-7/in/image-0", b"b only")
        assert await read_all(a, "job-6/in/image-0") == b"from a"
        assert await read_all(b, "job-6/in/image-0") == b"from b"
        assert [info.key async for info in a.list()] == ["job-6/in/image-0"]
        with pytest.raises(BlobNotFound):
            await read_all(a, "job-7/in/image-0")
        assert await a.delete_prefix("job-6/") == 1
        assert await read_all(b, "job-6/in/image-0") == b"from b"
        async with s3_client(s3_server) as client:
            listed = await client.list_objects_v2(Bucket=bucket)
        assert sorted(obj["Key"] for obj in listed["Contents"]) == [
            "deploy-b/job-6/in/image-0",
            "deploy-b/job-7/in/image-0",
        ]
    finally:
        await a.close()
        await b.close()


async def test_an_unreachable_endpoint_is_unavailable(bucket: str) -> None:
    closed = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    settings = S3Settings(
        endpoint_url=closed,
        bucket=bucket,
        access_key_id="AKUNUSED",
        secret_access_key="unused-secret",
        connect_timeout_seconds=1,
        read_timeout_seconds=1,
        max_attempts=1,
    )
    store = S3BlobStore(settings)
    with pytest.raises(StoreUnavailable) as raised:
        await store.open()
    assert f"blob bucket {bucket!r}: cannot connect to {closed}" in str(raised.value)
    await store.close()


async def test_an_endpoint_that_never_answers_is_unavailable(bucket: str) -> None:
    async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.read()  # accepts, reads, never answers
        writer.close()

    server = await asyncio.start_server(silent, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    settings = S3Settings(
        endpoint_url=f"http://127.0.0.1:{port}",
        bucket=bucket,
        access_key_id="AKUNUSED",
        secret_access_key="unused-secret",
        connect_timeout_seconds=1,
        read_timeout_seconds=0.5,
        max_attempts=1,
    )
    store = S3BlobStore(settings)
    try:
        with pytest.raises(StoreUnavailable) as raised:
            await store.open()
        assert "did not answer in time" in str(raised.value)
    finally:
        await store.close()
        server.close()
        await server.wait_closed()


async def test_server_errors_are_unavailable(bucket: str) -> None:
    async def failing(request: web.Request) -> web.Response:
        body = "<Error><Code>InternalError</Code><Message>We encountered an internal error.</Message></Error>"
        return web.Response(status=500, text=body, content_type="application/xml")

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", failing)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    settings = S3Settings(
        endpoint_url=f"http://127.0.0.1:{port}",
        bucket=bucket,
        access_key_id="AKUNUSED",
        secret_access_key="unused-secret",
        max_attempts=1,
    )
    store = S3BlobStore(settings)
    try:
        with pytest.raises(StoreUnavailable) as raised:
            await store.open()
        assert "failed to open the bucket (HTTP 500)" in str(raised.value)
        assert bucket in str(raised.value)
    finally:
        await store.close()
        await runner.cleanup()


async def test_a_wrong_secret_is_unavailable_without_the_secret(s3_server: S3Endpoint, bucket: str) -> None:
    good = S3BlobStore(s3_settings(s3_server, bucket))  # makes the bucket
    await good.open()
    await good.put("job-8/in/image-0", b"x")
    await good.close()

    wrong_secret = "not-the-secret-0123456789abcdef"
    settings = s3_settings(s3_server, bucket, secret_access_key=wrong_secret)
    assert wrong_secret not in repr(settings)
    store = S3BlobStore(settings)
    with pytest.raises(StoreUnavailable) as raised:
        await store.open()
    message = str(raised.value)
    assert f"blob bucket {bucket!r}: access denied" in message
    assert "check the credentials" in message
    assert wrong_secret not in message and s3_server.secret_access_key not in message
    await store.close()


async def test_a_missing_bucket_is_unavailable_unless_created(s3_server: S3Endpoint, bucket: str) -> None:
    store = S3BlobStore(s3_settings(s3_server, bucket, create_bucket=False))
    with pytest.raises(StoreUnavailable) as raised:
        await store.open()
    assert f"blob bucket {bucket!r} does not exist" in str(raised.value)
    await store.close()

    creating = S3BlobStore(s3_settings(s3_server, bucket, create_bucket=True))
    await creating.open()
    await creating.close()
    await store.open()  # there now
    await store.ping()
    await store.close()


def test_settings_are_checked() -> None:
    with pytest.raises(ValueError, match="must end with '/'"):
        S3Settings(bucket="b", key_prefix="prod")
    with pytest.raises(ValueError):
        S3Settings(bucket="b", key_prefix="/prod/")
    with pytest.raises(ValueError, match="both"):
        S3Settings(bucket="b", access_key_id="AK")
    with pytest.raises(ValueError):
        S3Settings(bucket="")
    assert S3Settings(bucket="b", key_prefix="prod/eu-1/").key_prefix == "prod/eu-1/"


async def test_many_blobs_are_listed_and_deleted_page_by_page(store: S3BlobStore) -> None:
    """More than one page of list_objects_v2 (1000 keys) and one delete_objects batch (1000)."""
    keys = [f"job-9/out-t/{i}" for i in range(2100)]
    slots = asyncio.Semaphore(32)

    async def put(key: str) -> None:
        async with slots:
            await store.put(key, b"")

    await asyncio.gather(*(put(key) for key in keys))
    await store.put("job-90/in/image-0", b"not this job's")
    assert sorted([info.key async for info in store.list("job-9/")]) == sorted(keys)
    await store.delete([*keys[:1100], "job-9/out-t/never-written"])  # two batches
    assert sorted([info.key async for info in store.list("job-9/")]) == sorted(keys[1100:])
    await store.put("job-9/in/image-0", b"x")
    assert await store.delete_prefix("job-9/") == 1001  # deleted page by page while listing
    assert [info.key async for info in store.list()] == ["job-90/in/image-0"]


async def test_a_bucket_removed_under_an_open_store_is_unavailable(
    store: S3BlobStore, s3_server: S3Endpoint, bucket: str
) -> None:
    await store.put("job-10/in/image-0", b"x")
    async with s3_client(s3_server) as client:
        await empty_bucket(client, bucket)
    attempts: list[Callable[[], Awaitable[object]]] = [
        store.ping,
        lambda: store.put("job-10/in/image-1", b"y"),
        lambda: read_all(store, "job-10/in/image-0"),
    ]
    for attempt in attempts:
        with pytest.raises(StoreUnavailable) as raised:
            await attempt()
        assert f"blob bucket {bucket!r} does not exist" in str(raised.value)
