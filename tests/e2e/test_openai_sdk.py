"""The real `openai` package, unchanged, against the real bridge and server: images.edit,
images.generate, images.create_variation and embeddings.create through the OpenAI-compatible
routes, each a job held until it ends, and picked up again by its id."""

from __future__ import annotations

import base64
import struct
from collections.abc import AsyncIterator

import openai
import pytest
from openai.types import CreateEmbeddingResponse, ImagesResponse

from tests.conftest import KEY_A, Stack
from tests.images import decode, subject_on_background

JOB_ID = "x-asyncgate-job-id"


@pytest.fixture
async def client(stack: Stack) -> AsyncIterator[openai.AsyncOpenAI]:
    async with openai.AsyncOpenAI(base_url=f"{stack.base_url}/v1", api_key=KEY_A.value) as sdk:
        yield sdk


async def test_images_edit_removes_the_background(stack: Stack, client: openai.AsyncOpenAI) -> None:
    raw = await client.images.with_raw_response.edit(
        model="local/pillow",
        image=("photo.png", subject_on_background(), "image/png"),
        prompt="remove the background",
        response_format="b64_json",
        extra_body={"type": "background_removal"},
    )
    result = raw.parse()
    assert isinstance(result, ImagesResponse) and result.created > 0
    [image] = result.data or []
    assert image.b64_json is not None
    alpha = decode(base64.b64decode(image.b64_json)).getchannel("A")
    assert alpha.getpixel((0, 0)) == 0 and alpha.getpixel((32, 32)) == 255  # background gone

    # The job behind it: the async poll holds the same answer under `result`.
    job_id = raw.headers[JOB_ID]
    async with stack.http.get(f"/v1/async/images/edits/{job_id}", headers={"x-bf-vk": KEY_A.value}) as poll:
        job = await poll.json()
    assert job["status"] == "completed" and job["result"] == raw.http_response.json()


async def test_images_edit_answers_result_urls_by_default(stack: Stack, client: openai.AsyncOpenAI) -> None:
    result = await client.images.edit(
        model="local/pillow",
        image=[("a.png", subject_on_background(), "image/png")],  # sent as image[]
        prompt="cut out",
        extra_body={"type": "background_removal"},
    )
    [image] = result.data or []
    assert image.url is not None and image.url.startswith(f"{stack.base_url}/v1/async/files/")
    async with stack.http.get(image.url) as response:
        assert response.status == 200
        assert decode(await response.read()).mode == "RGBA"


async def test_images_generate(client: openai.AsyncOpenAI) -> None:
    result = await client.images.generate(
        model="local/placeholder", prompt="a red fox", n=2, size="256x256", response_format="b64_json"
    )
    images = [decode(base64.b64decode(item.b64_json or "")) for item in result.data or []]
    assert [i.size for i in images] == [(256, 256), (256, 256)]
    assert images[0].tobytes() != images[1].tobytes()


async def test_images_create_variation(client: openai.AsyncOpenAI) -> None:
    with pytest.warns(DeprecationWarning):  # the SDK marks variations (a dall-e-2 API) deprecated
        result = await client.images.create_variation(
            model="local/pillow",
            image=("photo.png", subject_on_background(), "image/png"),
            n=2,
            size="256x256",
            response_format="b64_json",
        )
    images = [decode(base64.b64decode(item.b64_json or "")) for item in result.data or []]
    assert [i.size for i in images] == [(256, 256), (256, 256)]
    assert images[0].tobytes() != images[1].tobytes()  # each re-tinted its own way


def _float32(values: list[float]) -> bytes:
    return struct.pack(f"<{len(values)}f", *values)


async def test_embeddings_in_base64_by_default_and_as_floats(client: openai.AsyncOpenAI) -> None:
    texts = ["the cat sat on the mat", "quarterly revenue grew"]
    raw = await client.embeddings.with_raw_response.create(model="local/hashing", input=texts, dimensions=32)
    wire = raw.http_response.json()
    assert all(isinstance(item["embedding"], str) for item in wire["data"])  # the SDK asked for base64
    default = raw.parse()
    assert isinstance(default, CreateEmbeddingResponse)
    assert default.object == "list" and default.model == "hashing"
    assert [(d.index, len(d.embedding)) for d in default.data] == [(0, 32), (1, 32)]
    assert default.usage.prompt_tokens > 0

    floats = await client.embeddings.create(
        model="local/hashing", input=texts, dimensions=32, encoding_format="float"
    )
    # The same vectors either way (the hashing model is deterministic), bit for bit as float32.
    assert [_float32(d.embedding) for d in floats.data] == [_float32(d.embedding) for d in default.data]
    assert floats.data[0].embedding != floats.data[1].embedding


async def test_a_result_is_picked_up_again_by_its_job_id(client: openai.AsyncOpenAI) -> None:
    raw = await client.embeddings.with_raw_response.create(model="local/hashing", input="hello", dimensions=8)
    job_id = raw.headers[JOB_ID]
    again = await client.get(f"/embeddings/{job_id}", cast_to=object)  # the JSON as it came
    assert again == raw.http_response.json()
