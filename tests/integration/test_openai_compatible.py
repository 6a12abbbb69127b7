"""OpenAICompatibleProvider (vLLM, Ollama, LocalAI, TEI...) against FakeOpenAI acting as such a server."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest

from grpc_server.config import ApiKey, ProviderSettings
from grpc_server.domain.jobs import RequestType
from grpc_server.providers.base import ImageEditCall, ProviderError
from grpc_server.providers.openai import OpenAICompatibleProvider
from tests.fakes.openai_server import FakeOpenAI, FakeResponse, embedding_vector
from tests.integration.helpers import edit_call, image_file
from tests.integration.test_openai_generations_embeddings import embedding, generation

NAME = "local-vllm"
KEY = "local-key-0123456789"


@pytest.fixture
async def fake() -> AsyncIterator[FakeOpenAI]:
    # api_key=None: a server that takes any request, with or without a key.
    async with FakeOpenAI(api_key=None) as server:
        yield server


@pytest.fixture
def provider(session: aiohttp.ClientSession, fake: FakeOpenAI) -> OpenAICompatibleProvider:
    return OpenAICompatibleProvider(
        session, ProviderSettings(kind="openai-compatible", base_url=fake.base_url), NAME
    )


def edit(tmp_path: Path) -> ImageEditCall:
    image = image_file(tmp_path, "a.png", size=(16, 16), colour=(0, 0, 255, 255))
    return edit_call(NAME, "flux", [image], prompt="make it red")


async def test_without_a_key_no_authorization_is_sent(
    provider: OpenAICompatibleProvider, fake: FakeOpenAI, tmp_path: Path
) -> None:
    await provider.generate_image(generation(model="sdxl"))
    await provider.embed(embedding(model="bge-small"))
    await provider.edit_image(edit(tmp_path))

    assert [r.path for r in fake.requests] == ["/v1/images/generations", "/v1/embeddings", "/v1/images/edits"]
    assert all("authorization" not in r.headers for r in fake.requests)


async def test_a_configured_key_is_sent_as_bearer(session: aiohttp.ClientSession, fake: FakeOpenAI) -> None:
    settings = ProviderSettings(kind="openai-compatible", keys=(ApiKey(KEY),), base_url=fake.base_url)
    provider = OpenAICompatibleProvider(session, settings, NAME)

    await provider.embed(embedding(model="bge-small"))

    assert fake.requests[0].headers["authorization"] == f"Bearer {KEY}"


async def test_floats_are_accepted_when_the_server_ignores_base64(
    provider: OpenAICompatibleProvider, fake: FakeOpenAI
) -> None:
    fake.ignore_encoding_format = True
    texts = ["first text", "the second text", "third"]

    outcome = await provider.embed(embedding(texts, model="bge-small", dimensions=12))

    assert fake.requests[0].json["encoding_format"] == "base64"
    assert [list(v) for v in outcome.vectors] == [embedding_vector(t, 12) for t in texts]
    assert (outcome.model, outcome.prompt_tokens) == ("bge-small", 6)


async def test_a_generation_carries_the_fields_image_servers_take(
    provider: OpenAICompatibleProvider, fake: FakeOpenAI
) -> None:
    call = generation(
        model="stabilityai/sdxl-turbo",
        size="32x32",
        seed=0,
        negative_prompt="blurry",
        num_inference_steps=4,
        partial_images=1,
        response_format="url",
    )

    outcome = await provider.generate_image(call)

    assert fake.requests[0].json == {
        "model": "stabilityai/sdxl-turbo",
        "prompt": "a red fox",
        "size": "32x32",
        "seed": 0,
        "negative_prompt": "blurry",
        "num_inference_steps": 4,
    }
    assert outcome.images[0].data is not None


async def test_a_sparse_answer_is_accepted(provider: OpenAICompatibleProvider, fake: FakeOpenAI) -> None:
    # Servers that leave out `created`, `usage`, `model` and the image metadata.
    fake.enqueue(
        FakeResponse.json_body({"data": [{"b64_json": "iVBORw0KGgo="}]}),
        FakeResponse.json_body({"data": [{"index": 0, "embedding": [1, 0]}]}),
    )

    image = await provider.generate_image(generation(model="sdxl"))
    vectors = await provider.embed(embedding("text", model="bge-small"))

    assert (image.images[0].content_type, image.usage, image.created > 0) == ("image/png", None, True)
    assert (vectors.vectors, vectors.model, vectors.total_tokens) == ([[1.0, 0.0]], "bge-small", 0)


async def test_errors_name_the_operators_provider(
    provider: OpenAICompatibleProvider, fake: FakeOpenAI
) -> None:
    fake.enqueue(FakeResponse.raw(200, b"Internal Server Error", "text/plain"))

    with pytest.raises(ProviderError) as caught:
        await provider.embed(embedding(model="bge-small"))

    assert caught.value.message == f"{NAME}: invalid response: body is not JSON"


def test_operations_follow_the_settings(session: aiohttp.ClientSession) -> None:
    settings = ProviderSettings(base_url="http://127.0.0.1:1/v1", operations=("embedding",))
    provider = OpenAICompatibleProvider(session, settings, NAME)

    assert provider.name == NAME
    assert provider.supports(RequestType.EMBEDDING)
    assert not provider.supports(RequestType.IMAGE_GENERATION)
    assert not provider.supports(RequestType.IMAGE_EDIT)


def test_no_operations_named_means_all_of_them(session: aiohttp.ClientSession) -> None:
    provider = OpenAICompatibleProvider(session, ProviderSettings(base_url="http://127.0.0.1:1/v1"), NAME)

    assert all(provider.supports(request_type) for request_type in RequestType)


def test_an_unknown_operation_is_refused(session: aiohttp.ClientSession) -> None:
    settings = ProviderSettings(base_url="http://127.0.0.1:1/v1", operations=("embeddings",))

    with pytest.raises(ValueError, match="unknown operation"):
        OpenAICompatibleProvider(session, settings, NAME)


@pytest.mark.parametrize("base_url", [None, ""])
def test_a_base_url_is_required(session: aiohttp.ClientSession, base_url: str | None) -> None:
    with pytest.raises(ValueError, match=f"providers.{NAME}: .*base_url"):
        OpenAICompatibleProvider(session, ProviderSettings(keys=(ApiKey(KEY),), base_url=base_url), NAME)
