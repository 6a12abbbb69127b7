"""AzureOpenAIProvider against FakeAzure, over real HTTP on 127.0.0.1."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from grpc_server.config import ApiKey, ProviderSettings
from grpc_server.domain.jobs import RequestType
from grpc_server.providers.azure import DEFAULT_API_VERSION, AzureOpenAIProvider
from grpc_server.providers.base import (
    EmbeddingCall,
    ImageEditCall,
    ImageGenerationCall,
    ImageInput,
    ProviderError,
)
from tests.fakes.azure_server import (
    ACCESS_DENIED,
    DEPLOYMENT_NOT_FOUND,
    FakeAzure,
    FakeResponse,
    encode_base64,
    fake_vector,
)
from tests.images import decode
from tests.integration.helpers import (
    edit_call,
    embedding_call,
    generation_call,
    image_file,
    only_request,
    provider_error,
)

KEY = "azure-key-0123456789abcdef"
OTHER_KEY = "azure-key-fedcba9876543210"
VERSION = "2025-03-01-preview"
DEPLOYMENTS = {"gpt-image-1": "img-deploy", "text-embedding-3-small": "emb-deploy"}
KNOWN = {"img-deploy", "emb-deploy", "dall-e-3"}


@pytest.fixture
async def fake() -> AsyncIterator[FakeAzure]:
    async with FakeAzure(api_key=[KEY, OTHER_KEY], deployments=KNOWN) as server:
        yield server


@pytest.fixture
def settings(fake: FakeAzure) -> ProviderSettings:
    return ProviderSettings(
        kind="azure",
        keys=(ApiKey(KEY),),
        base_url=fake.endpoint,
        api_version=VERSION,
        deployments=DEPLOYMENTS,
    )


@pytest.fixture
def provider(session: aiohttp.ClientSession, settings: ProviderSettings) -> AzureOpenAIProvider:
    return AzureOpenAIProvider(session, settings)


def generation(model: str = "gpt-image-1", **params: Any) -> ImageGenerationCall:
    return generation_call("azure", model, "a red fox", **params)


def edit(
    images: list[ImageInput], model: str = "gpt-image-1", mask: ImageInput | None = None, **params: Any
) -> ImageEditCall:
    return edit_call("azure", model, images, mask, **params)


def embedding(model: str = "text-embedding-3-small", **params: Any) -> EmbeddingCall:
    params.setdefault("input", ["hello world", "good night"])
    return embedding_call("azure", model, **params)


# Each operation with a default call, for the tests that hold for all three.
Operation = Callable[[AzureOpenAIProvider, Path], Awaitable[object]]


async def _generate(provider: AzureOpenAIProvider, tmp_path: Path) -> object:
    return await provider.generate_image(generation())


async def _edit(provider: AzureOpenAIProvider, tmp_path: Path) -> object:
    return await provider.edit_image(edit([image_file(tmp_path, "a.png")]))


async def _embed(provider: AzureOpenAIProvider, tmp_path: Path) -> object:
    return await provider.embed(embedding())


OPERATIONS: dict[str, Operation] = {"generation": _generate, "edit": _edit, "embedding": _embed}
PATHS = {
    "generation": "/openai/deployments/img-deploy/images/generations",
    "edit": "/openai/deployments/img-deploy/images/edits",
    "embedding": "/openai/deployments/emb-deploy/embeddings",
}
each_operation = pytest.mark.parametrize("operation", list(OPERATIONS))


async def failure(provider: AzureOpenAIProvider, operation: str, tmp_path: Path) -> ProviderError:
    return await provider_error(OPERATIONS[operation](provider, tmp_path))


# What is sent


def test_supports_all_three_operations(provider: AzureOpenAIProvider) -> None:
    assert all(
        provider.supports(t)
        for t in (RequestType.IMAGE_EDIT, RequestType.IMAGE_GENERATION, RequestType.EMBEDDING)
    )
    assert not provider.supports(RequestType.IMAGE_VARIATION)


@each_operation
async def test_deployment_path_version_and_api_key_header(
    provider: AzureOpenAIProvider, fake: FakeAzure, tmp_path: Path, operation: str
) -> None:
    await OPERATIONS[operation](provider, tmp_path)

    sent = only_request(fake)
    assert (sent.method, sent.path) == ("POST", PATHS[operation])
    assert sent.query == {"api-version": VERSION}
    assert sent.headers["api-key"] == KEY
    assert "authorization" not in sent.headers
    assert sent.headers["accept"] == "application/json"


@each_operation
async def test_api_version_defaults_when_unset(
    session: aiohttp.ClientSession,
    settings: ProviderSettings,
    fake: FakeAzure,
    tmp_path: Path,
    operation: str,
) -> None:
    provider = AzureOpenAIProvider(session, replace(settings, api_version=None))

    await OPERATIONS[operation](provider, tmp_path)

    assert only_request(fake).query == {"api-version": DEFAULT_API_VERSION}


async def test_endpoint_with_a_trailing_slash(
    session: aiohttp.ClientSession, settings: ProviderSettings, fake: FakeAzure
) -> None:
    provider = AzureOpenAIProvider(session, replace(settings, base_url=fake.endpoint + "/"))

    await provider.generate_image(generation())

    assert only_request(fake).path == PATHS["generation"]


async def test_generation_body_is_openai_json_without_model(
    provider: AzureOpenAIProvider, fake: FakeAzure
) -> None:
    call = generation(
        n=2,
        size="32x16",
        quality="low",
        response_format="url",
        partial_images=2,
        fallbacks=("openai/gpt-image-1",),
        extra_params={"moderation": "low", "model": "other", "stream": True},
    )

    await provider.generate_image(call)

    # Only the set fields; never the model, the caller's response_format, streaming or fallbacks.
    assert only_request(fake).json_body == {
        "prompt": "a red fox",
        "n": 2,
        "size": "32x16",
        "quality": "low",
        "moderation": "low",
    }


async def test_dall_e_is_its_own_deployment_and_asked_for_base64(
    provider: AzureOpenAIProvider, fake: FakeAzure
) -> None:
    await provider.generate_image(generation("dall-e-3", style="vivid"))

    sent = only_request(fake)
    assert sent.path == "/openai/deployments/dall-e-3/images/generations"
    assert sent.json_body == {"prompt": "a red fox", "style": "vivid", "response_format": "b64_json"}


async def test_one_image_is_an_image_part_with_text_fields_and_no_model(
    provider: AzureOpenAIProvider, fake: FakeAzure, tmp_path: Path
) -> None:
    image = image_file(tmp_path, "cat photo.png")

    await provider.edit_image(edit([image], n=1, size="48x32", type="inpaint", extra_params={"model": "x"}))

    sent = only_request(fake)
    assert sent.headers["content-type"].startswith("multipart/form-data; boundary=")
    assert sent.fields == {"prompt": ["make it blue"], "n": ["1"], "size": ["48x32"]}
    assert [(f.name, f.filename, f.content_type) for f in sent.files] == [
        ("image", "cat photo.png", "image/png")
    ]
    assert sent.files[0].data == image.path.read_bytes()


async def test_several_images_are_image_array_parts_then_the_mask(
    provider: AzureOpenAIProvider, fake: FakeAzure, tmp_path: Path
) -> None:
    images = [image_file(tmp_path, "a.png"), image_file(tmp_path, "b.webp", content_type="image/webp")]
    mask = image_file(tmp_path, "mask.png")

    await provider.edit_image(edit(images, mask=mask))

    sent = only_request(fake)
    assert [(f.name, f.filename, f.content_type) for f in sent.files] == [
        ("image[]", "a.png", "image/png"),
        ("image[]", "b.webp", "image/webp"),
        ("mask", "mask.png", "image/png"),
    ]
    assert [f.data for f in sent.files] == [i.path.read_bytes() for i in [*images, mask]]
    assert "model" not in sent.fields


async def test_embedding_body_asks_for_base64_without_model(
    provider: AzureOpenAIProvider, fake: FakeAzure
) -> None:
    call = embedding(
        input=["a", "b"], encoding_format="float", dimensions=4, user="u-1", extra_params={"model": "x"}
    )

    await provider.embed(call)

    body = only_request(fake).json_body
    assert body == {"input": ["a", "b"], "encoding_format": "base64", "dimensions": 4, "user": "u-1"}


# What comes back


async def test_generation_success(provider: AzureOpenAIProvider, fake: FakeAzure) -> None:
    outcome = await provider.generate_image(generation(n=2, size="32x16", quality="high"))

    assert len(outcome.images) == 2
    for image in outcome.images:
        assert image.data is not None and image.url is None
        assert image.content_type == "image/png"
        assert decode(image.data).size == (32, 16)
    assert (outcome.size, outcome.quality, outcome.output_format) == ("32x16", "high", "png")
    assert outcome.usage == {"input_tokens": 10, "output_tokens": 20, "total_tokens": 30}
    assert outcome.created > 0


async def test_edit_success(provider: AzureOpenAIProvider, fake: FakeAzure, tmp_path: Path) -> None:
    outcome = await provider.edit_image(edit([image_file(tmp_path, "a.png")]))

    [image] = outcome.images
    assert image.data is not None
    assert decode(image.data).size == (64, 64)


async def test_generation_url_and_revised_prompt(provider: AzureOpenAIProvider, fake: FakeAzure) -> None:
    doc = {"created": 1, "data": [{"url": "https://blob.example/x.png", "revised_prompt": "a fox, red"}]}
    fake.enqueue(FakeResponse.json_body(doc))

    outcome = await provider.generate_image(generation())

    assert outcome.images[0].url == "https://blob.example/x.png"
    assert outcome.images[0].revised_prompt == "a fox, red"


async def test_embedding_success_decodes_base64(provider: AzureOpenAIProvider, fake: FakeAzure) -> None:
    outcome = await provider.embed(embedding(input=["hello world", "good night"], dimensions=6))

    assert outcome.vectors == [fake_vector("hello world", 6), fake_vector("good night", 6)]
    assert outcome.model == "emb-deploy"
    assert (outcome.prompt_tokens, outcome.total_tokens) == (4, 4)


async def test_embedding_of_token_ids_is_one_vector(provider: AzureOpenAIProvider, fake: FakeAzure) -> None:
    outcome = await provider.embed(embedding(input=[15, 27, 3]))

    assert outcome.vectors == [fake_vector([15, 27, 3])]


async def test_embeddings_are_ordered_by_index_and_floats_accepted(
    provider: AzureOpenAIProvider, fake: FakeAzure
) -> None:
    doc = {
        "data": [
            {"index": 1, "embedding": [0.5, -1]},
            {"index": 0, "embedding": encode_base64([0.25, 0.75])},
        ],
        "model": "text-embedding-3-small",
    }
    fake.enqueue(FakeResponse.json_body(doc))

    outcome = await provider.embed(embedding(input=["a", "b"]))

    assert outcome.vectors == [[0.25, 0.75], [0.5, -1.0]]
    assert outcome.model == "text-embedding-3-small"
    assert (outcome.prompt_tokens, outcome.total_tokens) == (0, 0)


async def test_embeddings_without_an_index_stand_in_list_order(
    provider: AzureOpenAIProvider, fake: FakeAzure
) -> None:
    fake.enqueue(FakeResponse.json_body({"data": [{"embedding": [1.0, 2.0]}, {"embedding": [3.0, 4.0]}]}))

    outcome = await provider.embed(embedding(input=["a", "b"]))

    assert outcome.vectors == [[1.0, 2.0], [3.0, 4.0]]


# Errors the fake raises itself


@each_operation
async def test_wrong_key_is_401(
    session: aiohttp.ClientSession, settings: ProviderSettings, tmp_path: Path, operation: str
) -> None:
    provider = AzureOpenAIProvider(session, replace(settings, keys=(ApiKey("not-the-key"),)))

    error = await failure(provider, operation, tmp_path)

    assert (error.status_code, error.code, error.type) == (401, "401", "azure_error")
    assert error.message == ACCESS_DENIED
    assert not error.retryable and not error.is_gateway_error


@each_operation
async def test_unknown_deployment_is_404_deployment_not_found(
    session: aiohttp.ClientSession, settings: ProviderSettings, tmp_path: Path, operation: str
) -> None:
    provider = AzureOpenAIProvider(session, replace(settings, deployments={}))

    error = await failure(provider, operation, tmp_path)

    assert (error.status_code, error.code, error.message) == (404, "DeploymentNotFound", DEPLOYMENT_NOT_FOUND)
    assert not error.retryable


@each_operation
async def test_wrong_endpoint_path_is_404_resource_not_found(
    session: aiohttp.ClientSession,
    settings: ProviderSettings,
    fake: FakeAzure,
    tmp_path: Path,
    operation: str,
) -> None:
    provider = AzureOpenAIProvider(session, replace(settings, base_url=fake.endpoint + "/v1"))

    error = await failure(provider, operation, tmp_path)

    assert (error.status_code, error.code, error.message) == (404, "404", "Resource not found")
    assert not error.retryable


@each_operation
async def test_unsupported_api_version_is_400(
    session: aiohttp.ClientSession, settings: ProviderSettings, tmp_path: Path, operation: str
) -> None:
    provider = AzureOpenAIProvider(session, replace(settings, api_version="2099-01-01"))

    error = await failure(provider, operation, tmp_path)

    assert (error.status_code, error.code, error.message) == (400, "BadRequest", "API version not supported")
    assert not error.retryable


async def test_fake_answers_a_missing_api_version_with_404(
    session: aiohttp.ClientSession, fake: FakeAzure
) -> None:
    url = fake.endpoint + PATHS["embedding"]
    async with session.post(url, json={"input": "x"}, headers={"api-key": KEY}) as response:
        assert response.status == 404
        assert await response.json() == {"error": {"code": "404", "message": "Resource not found"}}


# Scripted errors: (answer, status, code, type, retryable, retry_after)
ERRORS: dict[str, tuple[FakeResponse, int, str, str, bool, float | None]] = {
    "content_filter": (FakeResponse.content_filter(), 400, "content_filter", "azure_error", False, None),
    "forbidden": (
        FakeResponse.error(403, "Public access is disabled. Please configure private endpoint.", "403"),
        403,
        "403",
        "azure_error",
        False,
        None,
    ),
    "missing_api_version": (
        FakeResponse.error(404, "Resource not found"),
        404,
        "404",
        "azure_error",
        False,
        None,
    ),
    "rate_limited": (FakeResponse.rate_limited(retry_after=7), 429, "429", "azure_error", True, 7.0),
    "rate_limited_ms": (
        FakeResponse.error(
            429, "Rate limit is exceeded.", headers={"retry-after-ms": "1500", "Retry-After": "2"}
        ),
        429,
        "429",
        "azure_error",
        True,
        1.5,
    ),
    "server_error": (FakeResponse.error(500), 500, "500", "azure_error", True, None),
    "unavailable": (
        FakeResponse.error(503, "The service is temporarily unable to process your request."),
        503,
        "503",
        "azure_error",
        True,
        None,
    ),
    "openai_shape": (
        FakeResponse.error(400, "Invalid size.", "invalid_value", type="invalid_request_error", param="size"),
        400,
        "invalid_value",
        "invalid_request_error",
        False,
        None,
    ),
    "integer_code": (
        FakeResponse.json_body({"error": {"code": 500, "message": "x"}}, 500),
        500,
        "500",
        "azure_error",
        True,
        None,
    ),
    "api_management": (
        FakeResponse.json_body({"statusCode": 429, "message": "Rate limit is exceeded."}, 429),
        429,
        "429",
        "azure_error",
        True,
        None,
    ),
}


@each_operation
@pytest.mark.parametrize("case", list(ERRORS))
async def test_error_matrix(
    provider: AzureOpenAIProvider, fake: FakeAzure, tmp_path: Path, operation: str, case: str
) -> None:
    answer, status, code, type_, retryable, retry_after = ERRORS[case]
    fake.enqueue(answer)

    error = await failure(provider, operation, tmp_path)

    assert (error.status_code, error.code, error.type) == (status, code, type_)
    assert (error.retryable, error.retry_after) == (retryable, retry_after)
    assert error.message and not error.is_gateway_error


async def test_content_filter_keeps_param_and_verdict(provider: AzureOpenAIProvider, fake: FakeAzure) -> None:
    fake.enqueue(FakeResponse.content_filter())

    with pytest.raises(ProviderError) as caught:
        await provider.generate_image(generation())

    assert caught.value.param == "prompt"
    assert "content management policy" in caught.value.message
    assert caught.value.details["innererror"]["code"] == "ResponsibleAIPolicyViolation"


@each_operation
async def test_html_error_page_becomes_the_message(
    provider: AzureOpenAIProvider, fake: FakeAzure, tmp_path: Path, operation: str
) -> None:
    fake.enqueue(FakeResponse.raw(502, b"<html>\n<body>Bad   Gateway</body></html>", "text/html"))

    error = await failure(provider, operation, tmp_path)

    assert (error.status_code, error.message, error.retryable) == (
        502,
        "<html> <body>Bad Gateway</body></html>",
        True,
    )


@each_operation
async def test_key_never_appears_in_an_error(
    provider: AzureOpenAIProvider, fake: FakeAzure, tmp_path: Path, operation: str
) -> None:
    fake.enqueue(FakeResponse.error(401, f"Key {KEY} is revoked", KEY, param=KEY))

    error = await failure(provider, operation, tmp_path)

    assert KEY not in f"{error} {error.message} {error.code} {error.param} {error.details}"


# Malformed successes: a retryable 502 invalid_response


@each_operation
@pytest.mark.parametrize("body", [b"not json", b"[]", b"{}", b'{"data": "x"}'])
async def test_malformed_success_is_502(
    provider: AzureOpenAIProvider, fake: FakeAzure, tmp_path: Path, operation: str, body: bytes
) -> None:
    fake.enqueue(FakeResponse.raw(200, body))

    error = await failure(provider, operation, tmp_path)

    assert (error.status_code, error.type, error.retryable) == (502, "invalid_response", True)


@pytest.mark.parametrize(
    "data",
    [
        [{"b64_json": "!!not base64!!"}],
        [{"revised_prompt": "neither b64_json nor url"}],
        ["not an object"],
    ],
)
async def test_malformed_image_is_502(
    provider: AzureOpenAIProvider, fake: FakeAzure, data: list[Any]
) -> None:
    fake.enqueue(FakeResponse.json_body({"created": 1, "data": data}))

    with pytest.raises(ProviderError) as caught:
        await provider.generate_image(generation())

    assert (caught.value.status_code, caught.value.type) == (502, "invalid_response")


@pytest.mark.parametrize(
    "data",
    [
        [{"index": 0, "embedding": [1.0]}],  # one vector for two inputs
        [{"index": 0, "embedding": [1.0]}, {"index": 0, "embedding": [2.0]}],  # repeated index
        [{"index": 0, "embedding": [1.0]}, {"index": 2, "embedding": [2.0]}],  # index out of range
        [{"index": 0, "embedding": [1.0]}, {"index": 1, "embedding": [1.0, 2.0]}],  # lengths differ
        [{"index": 0, "embedding": "AAA="}, {"index": 1, "embedding": "AAA="}],  # 2 bytes: not float32
        [{"index": 0, "embedding": ["x"]}, {"index": 1, "embedding": [True]}],  # not numbers
        [{"index": 0, "embedding": []}, {"index": 1, "embedding": []}],  # empty
        [{"index": "0", "embedding": [1.0]}, {"index": 1, "embedding": [1.0]}],  # index not an int
    ],
)
async def test_malformed_embeddings_are_502(
    provider: AzureOpenAIProvider, fake: FakeAzure, data: list[Any]
) -> None:
    fake.enqueue(FakeResponse.json_body({"data": data}))

    with pytest.raises(ProviderError) as caught:
        await provider.embed(embedding(input=["a", "b"]))

    assert (caught.value.status_code, caught.value.type, caught.value.retryable) == (
        502,
        "invalid_response",
        True,
    )


# Hangs, key rotation, configuration


@each_operation
async def test_a_hang_is_bounded_by_the_callers_timeout(
    provider: AzureOpenAIProvider, fake: FakeAzure, tmp_path: Path, operation: str
) -> None:
    fake.enqueue(FakeResponse.hang())

    with pytest.raises(TimeoutError):
        async with asyncio.timeout(0.3):
            await OPERATIONS[operation](provider, tmp_path)


@each_operation
async def test_a_rate_limited_key_sits_out_the_next_call(
    session: aiohttp.ClientSession,
    settings: ProviderSettings,
    fake: FakeAzure,
    tmp_path: Path,
    operation: str,
) -> None:
    provider = AzureOpenAIProvider(session, replace(settings, keys=(ApiKey(KEY), ApiKey(OTHER_KEY))))
    fake.enqueue(FakeResponse.rate_limited(retry_after=30))

    first = await failure(provider, operation, tmp_path)
    await OPERATIONS[operation](provider, tmp_path)

    assert first.status_code == 429
    used = [r.headers["api-key"] for r in fake.requests]
    # Whichever key the weighted pick chose first, the second call carries the other one.
    assert sorted(used) == sorted([KEY, OTHER_KEY])


@each_operation
@pytest.mark.parametrize(
    ("change", "code", "status", "type_"),
    [
        ({"base_url": None}, "missing_endpoint", 500, "configuration_error"),
        ({"base_url": "  "}, "missing_endpoint", 500, "configuration_error"),
        # As for every adapter (see http_errors.missing_key).
        ({"keys": ()}, "missing_api_key", 401, "authentication_error"),
    ],
    ids=["no-endpoint", "blank-endpoint", "no-key"],
)
async def test_missing_configuration_is_a_gateway_error(
    session: aiohttp.ClientSession,
    settings: ProviderSettings,
    fake: FakeAzure,
    tmp_path: Path,
    operation: str,
    change: dict[str, Any],
    code: str,
    status: int,
    type_: str,
) -> None:
    provider = AzureOpenAIProvider(session, replace(settings, **change))

    error = await failure(provider, operation, tmp_path)

    assert (error.is_gateway_error, error.retryable, error.code, error.status_code, error.type) == (
        True,
        False,
        code,
        status,
        type_,
    )
    assert "azure" in error.message and ("endpoint" in error.message or "API key" in error.message)
    assert fake.requests == []
