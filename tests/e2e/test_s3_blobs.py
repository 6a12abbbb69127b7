"""The whole path with job files in an S3 bucket on a real S3 server (SeaweedFS): a REST image
edit is stored, run and answered with its image read back from the bucket; with pre-signed URLs
the answer points at the bucket itself, and a deleted job's URL stops working at once."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import replace

import aiohttp
import pytest

from grpc_server.config import BlobSettings, S3BlobSettings
from tests.conftest import Stack, StackFactory
from tests.images import decode, noisy_subject, subject_on_background
from tests.rest import edit_form, submit, wait_terminal
from tests.s3_server import S3Endpoint, fresh_bucket, s3_client


@pytest.fixture
async def bucket(s3_server: S3Endpoint) -> AsyncIterator[str]:
    async with fresh_bucket(s3_server) as name:
        yield name


def blob_settings(endpoint: S3Endpoint, bucket: str, *, presign: bool) -> BlobSettings:
    s3 = S3BlobSettings(
        bucket=bucket,
        endpoint_url=endpoint.url,
        region=endpoint.region,
        access_key_id=endpoint.access_key_id,
        secret_access_key=endpoint.secret_access_key,
        key_prefix="e2e/",
        create_bucket=True,
        presign_urls=presign,
    )
    return replace(BlobSettings(), store="s3", s3=s3)


async def bucket_keys(endpoint: S3Endpoint, bucket: str) -> list[str]:
    async with s3_client(endpoint) as client:
        listed = await client.list_objects_v2(Bucket=bucket)
    return sorted(item["Key"] for item in listed.get("Contents", []))


async def completed_edit(stack: Stack, image: bytes) -> tuple[str, str]:
    """Submit an edit of `image` and wait for it: (job id, its image's URL)."""
    status, accepted = await submit(stack.http, edit_form(images=[("photo.png", image)]))
    assert status == 202, accepted
    job = await wait_terminal(stack.http, accepted["id"])
    assert job["status"] == "completed", job
    [item] = job["result"]["data"]
    return job["id"], item["url"]


async def test_an_edit_runs_from_the_bucket_and_its_image_comes_back_through_the_bridge(
    make_stack: StackFactory, s3_server: S3Endpoint, bucket: str
) -> None:
    stack = await make_stack(blobs=blob_settings(s3_server, bucket, presign=False))
    # An output too large to stay in the job database (store.blobs_beside.SMALL_OUTPUTS_BYTES).
    job_id, url = await completed_edit(stack, noisy_subject())
    keys = await bucket_keys(s3_server, bucket)
    assert f"e2e/{job_id}/in/image-0" in keys
    assert any(key.startswith(f"e2e/{job_id}/out-") for key in keys)
    assert url.startswith(stack.base_url + "/v1/async/files/")  # the bridge serves it
    async with stack.http.get(url) as response:
        assert response.status == 200
        assert decode(await response.read()).getchannel("A").getpixel((0, 0)) == 0  # background removed


async def test_presigned_urls_point_at_the_bucket_and_die_with_the_job(
    make_stack: StackFactory, s3_server: S3Endpoint, bucket: str
) -> None:
    stack = await make_stack(blobs=blob_settings(s3_server, bucket, presign=True))
    job_id, url = await completed_edit(stack, subject_on_background())  # small: in the bucket all the same
    assert url.startswith(f"{s3_server.url}/{bucket}/e2e/{job_id}/out-") and "X-Amz-Signature=" in url
    async with aiohttp.ClientSession() as anyone, anyone.get(url) as response:  # no key, no bridge
        assert response.status == 200
        image = decode(await response.read())
    assert image.size == (64, 64)

    async with stack.http.delete(f"/v1/async/jobs/{job_id}") as deleted:
        assert deleted.status == 204, await deleted.text()
    assert [key for key in await bucket_keys(s3_server, bucket) if job_id in key] == []
    async with aiohttp.ClientSession() as anyone, anyone.get(url) as response:
        assert response.status == 404
