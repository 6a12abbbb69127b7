"""OpenAIProvider image generations and embeddings against FakeOpenAI, over real HTTP on 127.0.0.1."""

from __future__ import annotations

import asyncio
import base64
import io
import struct
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest
from PIL import Image

from grpc_server.config import ApiKey, ProviderSettings
from grpc_server.domain.jobs import EmbeddingInput
from grpc_server.providers.base import (
    EmbeddingCall,
    EmbeddingOutcome,
    ImageGenerationCall,
    ImageOutcome,
    ProviderError,
)
from grpc_server.providers.openai import OpenAIProvider
from tests.fakes.openai_server import (
    FakeOpenAI,
    FakeResponse,
    RecordedRequest,
    embedding_vector,
    prompt_colour,
)
from tests.integration.helpers import embedding_call, generation_call, only_request, provider_error

KEY = "sk-test-0123456789abcdef"
OTHER_KEY = "sk-test-fedcba9876543210"
OPERATIONS = ("generate_image", "embed")


@pytest.fixture
async def fake() -> AsyncIterator[FakeOpenAI]:
    async with FakeOpenAI(api_key=(KEY, OTHER_KEY)) as server:
        yield server


@pytest.fixture
def provider(session: aiohttp.ClientSession, fake: FakeOpenAI) -> OpenAIProvider:
    return OpenAIProvider(session, ProviderSettings(keys=(ApiKey(KEY),), base_url=fake.base_url))


def generation(model: str = "gpt-image-1", prompt: str = "a red fox", **params: Any) -> ImageGenerationCall:
    return generation_call("openai", model, prompt, **params)


def embedding(
    input: EmbeddingInput | None = None, model: str = "text-embedding-3-small", **params: Any
) -> EmbeddingCall:
    value = ["first text", "the second text"] if input is None else input
    return embedding_call("openai", model, input=value, **params)


async def run(provider: OpenAIProvider, operation: str) -> ImageOutcome | EmbeddingOutcome:
    """One default call of the operation named (the error matrix runs over both)."""
    if operation == "generate_image":
        return await provider.generate_image(generation())
    return await provider.embed(embedding())


async def failure(provider: OpenAIProvider, operation: str) -> ProviderError:
    return await provider_error(run(provider, operation))


def decoded(outcome: ImageOutcome, index: int = 0) -> Image.Image:
    data = outcome.images[index].data
    assert data is not None
    with Image.open(io.BytesIO(data)) as image:
        image.load()
        return image


# Generations: what is sent


async def test_a_generation_is_json_with_every_set_openai_field(
    provider: OpenAIProvider, fake: FakeOpenAI
) -> None:
    call = generation(
        n=2,
        size="48x32",
        quality="low",
        style="vivid",
        background="transparent",
        moderation="low",
        output_format="png",
        output_compression=0,
        user="user-1",
        # Not OpenAI fields, or not for a non-streaming call: never sent to OpenAI.
        partial_images=2,
        seed=7,
        negative_prompt="no dogs",
        num_inference_steps=30,
        response_format="url",
        fallbacks=("openai/dall-e-3",),
    )

    await provider.generate_image(call)

    sent = only_request(fake)
    assert (sent.method, sent.path) == ("POST", "/v1/images/generations")
    assert sent.headers["authorization"] == f"Bearer {KEY}"
    assert sent.headers["content-type"].startswith("application/json")
    assert sent.json == {
        "model": "gpt-image-1",
        "prompt": "a red fox",
        "n": 2,
        "size": "48x32",
        "quality": "low",
        "style": "vivid",
        "background": "transparent",
        "moderation": "low",
        "output_format": "png",
        "output_compression": 0,
        "user": "user-1",
    }


async def test_an_unset_generation_sends_only_the_model_and_prompt(
    provider: OpenAIProvider, fake: FakeOpenAI
) -> None:
    await provider.generate_image(generation(size="", quality=None))

    assert only_request(fake).json == {"model": "gpt-image-1", "prompt": "a red fox"}


async def test_extra_params_are_merged_but_cannot_replace_the_model_prompt_or_streaming(
    provider: OpenAIProvider, fake: FakeOpenAI
) -> None:
    extra = {
        "model": "x",
        "prompt": "x",
        "stream": True,
        "partial_images": 2,
        "quality": "high",
        "provider_options": {"steps": [1, 2], "fast": False},
    }

    await provider.generate_image(generation(quality="low", extra_params=extra))

    assert only_request(fake).json == {
        "model": "gpt-image-1",
        "prompt": "a red fox",
        "quality": "high",
        "provider_options": {"steps": [1, 2], "fast": False},
    }


@pytest.mark.parametrize("model", ["dall-e-2", "dall-e-3"])
async def test_dall_e_is_asked_for_base64(provider: OpenAIProvider, fake: FakeOpenAI, model: str) -> None:
    outcome = await provider.generate_image(generation(model=model, response_format="url"))

    assert only_request(fake).json == {"model": model, "prompt": "a red fox", "response_format": "b64_json"}
    # The fake answers dall-e with URLs unless asked for base64.
    assert outcome.images[0].url is None
    assert decoded(outcome).size == (64, 64)


# Generations: what comes back


async def test_a_generation_decodes_the_images_and_keeps_the_metadata(provider: OpenAIProvider) -> None:
    outcome = await provider.generate_image(generation(n=2, size="48x32", quality="low"))

    assert len(outcome.images) == 2
    for index, produced in enumerate(outcome.images):
        assert (produced.url, produced.content_type, produced.revised_prompt) == (None, "image/png", None)
        image = decoded(outcome, index)
        assert (image.format, image.size) == ("PNG", (48, 32))
        assert image.getpixel((0, 0)) == prompt_colour("a red fox")
    assert outcome.usage == {"input_tokens": 10, "output_tokens": 20, "total_tokens": 30}
    assert (outcome.size, outcome.output_format, outcome.quality, outcome.background) == (
        "48x32",
        "png",
        "low",
        "opaque",
    )
    assert outcome.created > 0


async def test_a_generation_in_another_format_is_labelled_so(provider: OpenAIProvider) -> None:
    outcome = await provider.generate_image(generation(output_format="jpeg"))

    assert (outcome.images[0].content_type, decoded(outcome).format) == ("image/jpeg", "JPEG")


async def test_generation_urls_and_revised_prompts_pass_through(
    provider: OpenAIProvider, fake: FakeOpenAI
) -> None:
    fake.enqueue(
        FakeResponse.json_body(
            {
                "created": 1700000000,
                "data": [{"url": "https://files.example/1.png", "revised_prompt": "a red fox, at dusk"}],
            }
        )
    )

    outcome = await provider.generate_image(generation(model="dall-e-3"))

    [produced] = outcome.images
    assert (produced.url, produced.data, produced.revised_prompt) == (
        "https://files.example/1.png",
        None,
        "a red fox, at dusk",
    )
    assert (outcome.created, outcome.usage, outcome.size) == (1700000000, None, None)


# Embeddings: what is sent


async def test_an_embedding_asks_for_base64_with_the_set_fields(
    provider: OpenAIProvider, fake: FakeOpenAI
) -> None:
    call = embedding(dimensions=4, user="user-1", encoding_format="float", fallbacks=("openai/x",))

    await provider.embed(call)

    sent = only_request(fake)
    assert (sent.method, sent.path) == ("POST", "/v1/embeddings")
    assert sent.headers["authorization"] == f"Bearer {KEY}"
    assert sent.headers["content-type"].startswith("application/json")
    assert sent.json == {
        "model": "text-embedding-3-small",
        "input": ["first text", "the second text"],
        "encoding_format": "base64",
        "dimensions": 4,
        "user": "user-1",
    }


@pytest.mark.parametrize(
    "input",
    ["one text", ["a", "b"], [1, 2, 3], [[1, 2], [3]]],
    ids=["string", "strings", "token-ids", "token-id-lists"],
)
async def test_the_input_goes_through_in_its_own_form(
    provider: OpenAIProvider, fake: FakeOpenAI, input: EmbeddingInput
) -> None:
    outcome = await provider.embed(embedding(input))

    assert only_request(fake).json == {
        "model": "text-embedding-3-small",
        "input": input,
        "encoding_format": "base64",
    }
    assert len(outcome.vectors) == len(embedding(input).params.inputs())


async def test_embedding_extra_params_are_merged_but_cannot_replace_the_model_input_or_encoding(
    provider: OpenAIProvider, fake: FakeOpenAI
) -> None:
    extra = {"model": "x", "input": "x", "encoding_format": "float", "dimensions": 3, "truncate": "END"}

    await provider.embed(embedding("text", dimensions=4, extra_params=extra))

    assert only_request(fake).json == {
        "model": "text-embedding-3-small",
        "input": "text",
        "encoding_format": "base64",
        "dimensions": 3,
        "truncate": "END",
    }


# Embeddings: what comes back


async def test_base64_vectors_are_decoded_exactly(provider: OpenAIProvider) -> None:
    outcome = await provider.embed(embedding(["first text", "the second text"], dimensions=16))

    assert [list(v) for v in outcome.vectors] == [
        embedding_vector("first text", 16),
        embedding_vector("the second text", 16),
    ]
    assert (outcome.model, outcome.prompt_tokens, outcome.total_tokens) == ("text-embedding-3-small", 5, 5)


async def test_vectors_are_put_in_index_order(provider: OpenAIProvider, fake: FakeOpenAI) -> None:
    fake.shuffle_embeddings = True
    texts = ["zero", "one", "two", "three"]

    outcome = await provider.embed(embedding(texts))

    assert [list(v) for v in outcome.vectors] == [embedding_vector(t) for t in texts]


async def test_a_float_list_answer_is_accepted_and_missing_fields_default(
    provider: OpenAIProvider, fake: FakeOpenAI
) -> None:
    fake.enqueue(FakeResponse.json_body({"data": [{"index": 0, "embedding": [0.5, -1, 0.25]}], "model": ""}))

    outcome = await provider.embed(embedding("text"))

    assert [list(v) for v in outcome.vectors] == [[0.5, -1.0, 0.25]]
    assert (outcome.model, outcome.prompt_tokens, outcome.total_tokens) == ("text-embedding-3-small", 0, 0)


def b64(*values: float) -> str:
    return base64.b64encode(struct.pack(f"<{len(values)}f", *values)).decode()


@pytest.mark.parametrize(
    ("data", "problem"),
    [
        (None, "no `data` list"),
        ([{"index": 0, "embedding": [1.0]}], "1 vectors for 2 inputs"),
        ([{"index": 0, "embedding": [1.0]}, {"index": 0, "embedding": [1.0]}], "two vectors for input 0"),
        ([{"index": 0, "embedding": [1.0]}, {"index": 2, "embedding": [1.0]}], "2 vectors for 2 inputs"),
        ([{"index": 0, "embedding": [1.0]}, {"index": 1, "embedding": [1.0, 2.0]}], "different lengths"),
        ([{"index": "0", "embedding": [1.0]}, {"index": 1, "embedding": [1.0]}], "index is not an integer"),
        ([{"index": 0, "embedding": "!!"}, {"index": 1, "embedding": [1.0]}], "not valid base64"),
        ([{"index": 0, "embedding": "AAAA"}, {"index": 1, "embedding": [1.0]}], "whole number of float32"),
        ([{"index": 0, "embedding": ["1"]}, {"index": 1, "embedding": [1.0]}], "neither base64 nor"),
        ([{"index": 0, "embedding": [True]}, {"index": 1, "embedding": [1.0]}], "neither base64 nor"),
        ([{"index": 0, "embedding": []}, {"index": 1, "embedding": []}], "is empty"),
        ([{"index": 0, "embedding": b64(1.0)}, "x"], "data[1] is not an object"),
    ],
)
async def test_a_malformed_embedding_answer_is_a_retryable_invalid_response(
    provider: OpenAIProvider, fake: FakeOpenAI, data: Any, problem: str
) -> None:
    fake.enqueue(FakeResponse.json_body({"object": "list", "data": data, "model": "m"}))

    with pytest.raises(ProviderError) as caught:
        await provider.embed(embedding())

    error = caught.value
    assert (error.status_code, error.type, error.retryable) == (502, "invalid_response", True)
    assert problem in error.message


# Errors, for both operations


@pytest.mark.parametrize("operation", OPERATIONS)
@pytest.mark.parametrize(
    ("status", "type", "code", "retryable"),
    [
        (400, "invalid_request_error", "moderation_blocked", False),
        (401, "invalid_request_error", "invalid_api_key", False),
        (403, "permission_error", "unsupported_country_region_territory", False),
        (404, "invalid_request_error", "model_not_found", False),
        (500, "server_error", None, True),
        (503, "server_error", None, True),
    ],
)
async def test_an_error_keeps_openais_fields_and_is_classified(
    provider: OpenAIProvider,
    fake: FakeOpenAI,
    operation: str,
    status: int,
    type: str,
    code: str | None,
    retryable: bool,
) -> None:
    fake.enqueue(
        FakeResponse.error(status, message=f"failed with {status}", type=type, code=code, param="model")
    )

    error = await failure(provider, operation)

    assert (error.status_code, error.message, error.type, error.code, error.param) == (
        status,
        f"failed with {status}",
        type,
        code or "",
        "model",
    )
    assert (error.retryable, error.retry_after, error.is_gateway_error) == (retryable, None, False)


@pytest.mark.parametrize("operation", OPERATIONS)
@pytest.mark.parametrize(
    ("headers", "retry_after"),
    [({"Retry-After": "2"}, 2.0), ({"retry-after-ms": "250", "Retry-After": "2"}, 0.25)],
)
async def test_a_429_is_retryable_with_the_providers_hint(
    provider: OpenAIProvider,
    fake: FakeOpenAI,
    operation: str,
    headers: dict[str, str],
    retry_after: float,
) -> None:
    fake.enqueue(
        FakeResponse.error(429, "Rate limit reached", "requests", "rate_limit_exceeded", headers=headers)
    )

    error = await failure(provider, operation)

    assert (error.status_code, error.code, error.retryable, error.retry_after) == (
        429,
        "rate_limit_exceeded",
        True,
        retry_after,
    )


@pytest.mark.parametrize("operation", OPERATIONS)
@pytest.mark.parametrize(
    ("body", "problem"), [(b"<html>ok</html>", "not JSON"), (b'"ok"', "not a JSON object")]
)
async def test_a_malformed_success_is_a_retryable_invalid_response(
    provider: OpenAIProvider, fake: FakeOpenAI, operation: str, body: bytes, problem: str
) -> None:
    fake.enqueue(FakeResponse.raw(200, body))

    error = await failure(provider, operation)

    assert (error.status_code, error.type, error.retryable) == (502, "invalid_response", True)
    assert error.message.startswith("openai: invalid response:")
    assert problem in error.message


@pytest.mark.parametrize("operation", OPERATIONS)
async def test_a_hanging_call_can_be_bounded_by_the_caller(
    provider: OpenAIProvider, fake: FakeOpenAI, operation: str
) -> None:
    fake.enqueue(FakeResponse.hang())

    with pytest.raises(TimeoutError):
        async with asyncio.timeout(0.3):
            await run(provider, operation)


@pytest.mark.parametrize("operation", OPERATIONS)
async def test_without_an_api_key_nothing_is_sent(
    session: aiohttp.ClientSession, fake: FakeOpenAI, operation: str
) -> None:
    provider = OpenAIProvider(session, ProviderSettings(keys=(), base_url=fake.base_url))

    error = await failure(provider, operation)

    assert (error.status_code, error.type, error.is_gateway_error, error.message) == (
        401,
        "authentication_error",
        True,
        "openai: no API key configured",
    )
    assert fake.requests == []


@pytest.mark.parametrize("operation", OPERATIONS)
async def test_every_key_echoed_by_the_server_is_redacted(
    session: aiohttp.ClientSession, fake: FakeOpenAI, operation: str
) -> None:
    settings = ProviderSettings(keys=(ApiKey(KEY), ApiKey(OTHER_KEY)), base_url=fake.base_url)
    provider = OpenAIProvider(session, settings)
    fake.enqueue(FakeResponse.error(400, message=f"Bad keys {KEY} {OTHER_KEY}", code=KEY, param=OTHER_KEY))

    error = await failure(provider, operation)

    text = f"{error} {error.code} {error.param} {error.details}"
    assert KEY not in text and OTHER_KEY not in text
    assert error.message == "Bad keys [redacted] [redacted]"


# Several keys


def used_key(request: RecordedRequest) -> str:
    return request.headers["authorization"].removeprefix("Bearer ")


@pytest.mark.parametrize("operation", OPERATIONS)
async def test_a_key_answered_429_sits_out_and_the_next_call_uses_the_other(
    session: aiohttp.ClientSession, fake: FakeOpenAI, operation: str
) -> None:
    settings = ProviderSettings(keys=(ApiKey(KEY), ApiKey(OTHER_KEY)), base_url=fake.base_url)
    provider = OpenAIProvider(session, settings)
    fake.enqueue(FakeResponse.error(429, "Rate limit reached", "requests", headers={"Retry-After": "30"}))

    await failure(provider, operation)
    for _ in range(3):
        await run(provider, operation)

    limited = used_key(fake.requests[0])
    assert [used_key(r) for r in fake.requests[1:]] == [({KEY, OTHER_KEY} - {limited}).pop()] * 3


async def test_a_key_answered_401_sits_out(session: aiohttp.ClientSession, fake: FakeOpenAI) -> None:
    wrong = "sk-wrong-9876543210fedcba"
    settings = ProviderSettings(keys=(ApiKey(wrong), ApiKey(KEY)), base_url=fake.base_url)
    provider = OpenAIProvider(session, settings)

    # Each call picks a key at random, by weight: call until the wrong one has been tried.
    for _ in range(60):
        try:
            await provider.embed(embedding())
        except ProviderError as error:
            assert (error.status_code, error.code) == (401, "invalid_api_key")
            break
    else:
        pytest.fail("the wrong key was never picked")
    tried = len(fake.requests)
    for _ in range(5):
        await provider.embed(embedding())

    assert [used_key(r) for r in fake.requests[tried:]] == [KEY] * 5
