"""AsyncClient over gRPC and REST against the real server and bridge, local provider."""

from __future__ import annotations

import io
import struct

import pytest
from PIL import Image

from asyncgate.client import (
    Conflict,
    EmbeddingsResult,
    ImagesResult,
    InvalidRequest,
    NotFound,
)
from grpc_server.config import DispatcherSettings
from tests.client.conftest import Connect
from tests.conftest import KEY_A, StackFactory
from tests.images import png_bytes, subject_on_background

ACCEPT_ONLY = {"dispatcher": DispatcherSettings(concurrency=0, poll_interval_seconds=0.2)}


def opened(data: bytes) -> Image.Image:
    image = Image.open(io.BytesIO(data))
    image.load()
    return image


async def test_image_edit_waits_and_downloads_the_cut_out(make_stack: StackFactory, connect: Connect) -> None:
    client = connect(await make_stack())
    job = await client.submit_image_edit(
        subject_on_background(64), model="local/pillow", type="background_removal", labels={"run": "edit"}
    )
    assert job.status == "pending" and job.request_type == "image_edit"
    done = await client.wait(job.id, timeout=60)
    assert done.status == "completed" and done.status_code == 200 and done.error is None
    assert isinstance(done.result, ImagesResult) and done.result.provider == "local"
    [data] = await client.download_outputs(done)
    assert isinstance(data, bytes)
    image = opened(data)
    assert image.size == (64, 64) and image.mode == "RGBA"
    assert image.getpixel((0, 0))[3] == 0, "the flat background is cut out"  # type: ignore[index]
    assert image.getpixel((32, 32))[3] == 255, "the subject stays"  # type: ignore[index]


async def test_a_large_edit_goes_through_the_upload_stream(
    make_stack: StackFactory, connect: Connect
) -> None:
    # Stored uncompressed: over the server's 3 MiB message limit, which a CreateImageEditJob
    # carrying it inline could not pass; the upload stream's 1 MiB chunks do.
    noise = Image.frombytes("RGB", (1024, 1024), bytes(range(256)) * (3 * 1024 * 4))
    buffer = io.BytesIO()
    noise.save(buffer, "PNG", compress_level=0)
    assert len(buffer.getvalue()) > 3 * 1024 * 1024
    client = connect(await make_stack(max_message_bytes=3 * 1024 * 1024))
    job = await client.submit_image_edit(
        buffer.getvalue(), model="local/pillow", type="outpainting", prompt="more"
    )
    done = await client.wait(job.id, timeout=120)
    assert done.status == "completed", done.error
    [data] = await client.download_images(done)
    assert opened(data).size[0] >= 1024


async def test_generation_and_variation(make_stack: StackFactory, connect: Connect) -> None:
    client = connect(await make_stack())
    generated = await client.submit_image_generation(
        "a red fox", model="local/placeholder", size="256x256", n=2
    )
    done = await client.wait(generated.id, timeout=60)
    assert done.status == "completed" and done.request_type == "image_generation"
    images = await client.download_images(done)
    assert [opened(data).size for data in images] == [(256, 256), (256, 256)]

    varied = await client.submit_image_variation(png_bytes(48, 32), model="local/pillow")
    done = await client.wait(varied.id, timeout=60)
    assert done.status == "completed" and done.request_type == "image_variation"
    [data] = await client.download_images(done)
    assert opened(data).size == (48, 32)


async def test_b64_json_images_decode_to_the_same_file(make_stack: StackFactory, connect: Connect) -> None:
    stack = await make_stack()
    client = connect(stack)
    job = await client.submit_image_generation(
        "a fox", model="local/placeholder", size="256x256", response_format="b64_json"
    )
    [data] = await client.download_images(await client.wait(job.id, timeout=60))
    assert opened(data).size == (256, 256)


async def test_embeddings_are_the_stored_float32_vectors(make_stack: StackFactory, connect: Connect) -> None:
    stack = await make_stack()
    client = connect(stack)
    job = await client.submit_embeddings(["a cat", "a dog"], model="local/hashing", dimensions=16)
    done = await client.wait(job.id, timeout=60)
    assert isinstance(done.result, EmbeddingsResult) and done.result.model
    vectors = await client.download_embeddings(done)
    # The bytes the server stored, read over plain HTTP: every float must match exactly.
    async with stack.http.get(f"/v1/async/files/{job.id}/0", headers={"x-bf-vk": KEY_A.value}) as response:
        assert response.status == 200
        raw = await response.read()
    assert vectors == [list(struct.unpack("<16f", raw[:64])), list(struct.unpack("<16f", raw[64:]))]
    assert vectors[0] != vectors[1]
    assert await client.download_outputs(done) == vectors


async def test_watch_sees_pending_then_cancelled(make_stack: StackFactory, connect: Connect) -> None:
    client = connect(await make_stack(**ACCEPT_ONLY))
    job = await client.submit_embeddings("a cat", model="local/hashing")
    seen: list[str] = []
    async for state in client.watch(job.id):
        seen.append(state.status)
        if state.status == "pending":
            await client.cancel(job.id)
    assert seen == ["pending", "cancelled"]


async def test_cancel_retry_delete_of_a_pending_job(make_stack: StackFactory, connect: Connect) -> None:
    client = connect(await make_stack(**ACCEPT_ONLY))
    job = await client.submit_embeddings("a cat", model="local/hashing")
    assert (await client.get(job.id)).queue_position == 0
    cancelled = await client.cancel(job.id)
    assert cancelled.status == "cancelled" and cancelled.status_code == 499
    assert cancelled.error is not None and cancelled.error.code == "cancelled"
    with pytest.raises(Conflict) as finished:
        await client.cancel(job.id)
    assert finished.value.code == "job_finished" and finished.value.status == 409
    again = await client.retry(job.id)
    assert again.id == job.id and again.status == "pending"
    await client.delete(job.id)
    with pytest.raises(NotFound):
        await client.get(job.id)


async def test_wait_that_times_out_returns_the_running_job(
    make_stack: StackFactory, connect: Connect
) -> None:
    client = connect(await make_stack(**ACCEPT_ONLY))
    job = await client.submit_embeddings("a cat", model="local/hashing")
    still = await client.wait(job.id, timeout=1)
    assert still.status == "pending" and not still.done


async def test_list_pages_and_filters(make_stack: StackFactory, connect: Connect) -> None:
    client = connect(await make_stack(**ACCEPT_ONLY))
    ids = [
        (await client.submit_embeddings(f"text {i}", model="local/hashing", labels={"batch": "b1"})).id
        for i in range(3)
    ]
    other = await client.submit_image_generation("x", model="local/placeholder", labels={"batch": "b2"})
    first = await client.list(labels={"batch": "b1"}, page_size=2)
    assert len(first.jobs) == 2 and first.next_page_token is not None
    second = await client.list(labels={"batch": "b1"}, page_size=2, page_token=first.next_page_token)
    assert [j.id for j in first.jobs + second.jobs] == ids[::-1] and second.next_page_token is None
    assert [j.id async for j in client.iter_jobs(type="image_generation")] == [other.id]
    assert {j.labels["batch"] for j in first.jobs} == {"b1"}


async def test_refusals_raise_invalid_request_with_the_param(
    make_stack: StackFactory, connect: Connect
) -> None:
    client = connect(await make_stack())
    with pytest.raises(InvalidRequest) as refused:
        await client.submit_image_generation("a fox", model="local/placeholder", n=11)
    assert refused.value.param == "n" and refused.value.status == 400
    with pytest.raises(InvalidRequest) as bad_model:
        await client.submit_embeddings("a cat", model="no-slash")
    assert bad_model.value.param == "model"
    with pytest.raises(NotFound):
        await client.get("00000000-0000-4000-8000-000000000000")
