"""Image variations end to end: multipart through the bridge and unary over gRPC, the local
provider's real variation (a mirrored, re-tinted copy), OpenAI's wire format at a fake, and the
refusals that happen before any job exists."""

from __future__ import annotations

import asyncio
import base64
import io
from typing import Any

import aiohttp
import grpc
import pytest
from PIL import Image, ImageChops

from asyncgate.v1 import image_common_pb2 as common_pb
from asyncgate.v1 import image_variation_pb2 as var_pb
from asyncgate.v1 import job_pb2 as job_pb
from asyncgate.v1 import job_service_pb2 as pb
from grpc_server.config import ApiKey, ProviderSettings
from tests.conftest import Stack, StackFactory
from tests.fakes.openai_server import FakeOpenAI
from tests.grpc_details import error_details
from tests.images import decode, png_bytes
from tests.rest import wait_terminal

VARIATIONS = "/v1/async/images/variations"


def asymmetric_png(width: int = 64, height: int = 48) -> bytes:
    """White with a red block in the top-left corner: mirrored, the block is top-right."""
    image = Image.new("RGB", (width, height), (255, 255, 255))
    image.paste((200, 30, 30), (0, 0, width // 4, height // 3))
    out = io.BytesIO()
    image.save(out, "PNG")
    return out.getvalue()


def variation_form(fields: dict[str, str] | None = None, images: int = 1) -> aiohttp.FormData:
    form = aiohttp.FormData(default_to_multipart=True)
    for name, value in {"model": "local/pillow", **(fields or {})}.items():
        form.add_field(name, value)
    for _ in range(images):
        form.add_field("image", asymmetric_png(), filename="in.png", content_type="image/png")
    return form


async def submit(stack: Stack, form: aiohttp.FormData) -> tuple[int, dict[str, Any]]:
    async with stack.http.post(VARIATIONS, data=form) as response:
        return response.status, await response.json()


async def test_local_variations_through_the_bridge(stack: Stack) -> None:
    status, accepted = await submit(stack, variation_form({"n": "2", "size": "256x256"}))
    assert status == 202 and accepted["status"] == "pending", accepted
    job = await wait_terminal(stack.http, accepted["id"], path=VARIATIONS)
    assert job["status"] == "completed", job
    assert job["result"]["extra_fields"] == {
        "provider": "local",
        "model_requested": "pillow",
        "request_type": "image_variation",
    }
    images = []
    for item in job["result"]["data"]:
        async with stack.http.get(item["url"]) as response:
            assert response.status == 200
            images.append(decode(await response.read()).convert("RGB"))
    assert [image.size for image in images] == [(256, 256)] * 2
    first, second = images
    assert ImageChops.difference(first, second).getbbox() is not None  # each re-tinted its own way
    for image in images:  # mirrored: the block is top-right now, the top-left is background
        top_left, top_right, bottom_left = (image.getpixel(xy) for xy in ((10, 20), (246, 20), (10, 236)))
        assert top_left == bottom_left != top_right


async def test_b64_json_puts_the_variation_inline(stack: Stack) -> None:
    _, accepted = await submit(stack, variation_form({"response_format": "b64_json"}))
    job = await wait_terminal(stack.http, accepted["id"], path=VARIATIONS)
    [item] = job["result"]["data"]
    assert decode(base64.b64decode(item["b64_json"])).size == (64, 48)


@pytest.mark.parametrize(
    ("fields", "images", "param"),
    [
        ({"size": "1024x1536"}, 1, "size"),  # an edit size, not a variation one
        ({"n": "11"}, 1, "n"),
        ({"n": "two"}, 1, "n"),
        ({"model": "pillow"}, 1, "model"),
        ({}, 0, "image"),
        ({}, 2, "image"),
        ({"model": "azure/dall-e-2"}, 1, "model"),  # a provider that is not configured
    ],
)
async def test_refusals_name_the_field_and_create_nothing(
    stack: Stack, fields: dict[str, str], images: int, param: str
) -> None:
    status, body = await submit(stack, variation_form(fields, images))
    assert status == 400, body
    assert body["error"]["param"] == param
    assert body["extra_fields"] == {"request_type": "image_variation"}
    assert stack.stored_jobs() == 0


async def test_polling_a_variation_on_the_edits_path_is_a_type_mismatch(stack: Stack) -> None:
    _, accepted = await submit(stack, variation_form())
    async with stack.http.get(f"/v1/async/images/edits/{accepted['id']}") as response:
        body = await response.json()
    assert response.status == 404 and body["error"]["message"] == "operation type mismatch"


async def test_grpc_create_and_read_a_variation(stack: Stack) -> None:
    image = common_pb.InputImage(
        data=png_bytes(32, 32, (10, 200, 10)), filename="g.png", content_type="image/png"
    )
    request = var_pb.ImageVariationRequest(model="local/pillow", image=image, n=3)
    created = await stack.stub.CreateImageVariationJob(pb.CreateImageVariationJobRequest(request=request))
    assert created.job.request_type == job_pb.REQUEST_TYPE_IMAGE_VARIATION
    while (job := (await stack.stub.GetJob(pb.GetJobRequest(id=created.job.id))).job).status not in (
        job_pb.JOB_STATUS_COMPLETED,
        job_pb.JOB_STATUS_FAILED,
    ):
        await asyncio.sleep(0.02)
    assert job.status == job_pb.JOB_STATUS_COMPLETED, job.error
    assert len(job.image_result.data) == 3
    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await stack.stub.CreateImageVariationJob(
            pb.CreateImageVariationJobRequest(request=var_pb.ImageVariationRequest(model="local/pillow"))
        )
    assert error_details(refused.value) == ("INVALID_ARGUMENT", "image")


async def test_openai_variation_in_its_wire_format(make_stack: StackFactory) -> None:
    async with FakeOpenAI(api_key="sk-test") as fake:
        stack = await make_stack(
            providers={"openai": ProviderSettings(keys=(ApiKey("sk-test"),), base_url=fake.base_url)}
        )
        form = variation_form({"model": "openai/dall-e-2", "n": "2", "size": "512x512", "user": "u-1"})
        _, accepted = await submit(stack, form)
        job = await wait_terminal(stack.http, accepted["id"], path=VARIATIONS)
    assert job["status"] == "completed", job
    [sent] = fake.requests
    assert sent.path == "/v1/images/variations"
    assert (sent.field("model"), sent.field("n"), sent.field("size"), sent.field("user")) == (
        "dall-e-2",
        "2",
        "512x512",
        "u-1",
    )
    uploaded = sent.file("image")
    assert uploaded is not None and uploaded.data == asymmetric_png()
    assert len(job["result"]["data"]) == 2
