"""Image variations: OpenAI and openai-compatible adapters against FakeOpenAI over real
HTTP; Azure, Gemini and Stability offer none."""

from __future__ import annotations

import io
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from PIL import Image

from grpc_server.config import ApiKey, ProviderSettings
from grpc_server.domain.jobs import ImageVariationParams, RequestType
from grpc_server.providers.azure import AzureOpenAIProvider
from grpc_server.providers.base import ImageInput, ImageVariationCall, Provider
from grpc_server.providers.gemini import GeminiProvider
from grpc_server.providers.openai import OpenAICompatibleProvider, OpenAIProvider
from grpc_server.providers.stability import StabilityProvider
from tests.fakes.openai_server import FakeOpenAI, FakeResponse
from tests.integration.helpers import only_request, provider_error

KEY = "sk-variations-0123456789abcdef"


@pytest.fixture
async def fake() -> AsyncIterator[FakeOpenAI]:
    async with FakeOpenAI(api_key=KEY) as server:
        yield server


@pytest.fixture
def provider(session: aiohttp.ClientSession, fake: FakeOpenAI) -> OpenAIProvider:
    return OpenAIProvider(session, ProviderSettings(keys=(ApiKey(KEY),), base_url=fake.base_url))


def left_red_right_blue(tmp_path: Path, filename: str = "photo one.png") -> ImageInput:
    """A 32x16 PNG: red left half, blue right half (a mirror shows at once)."""
    image = Image.new("RGBA", (32, 16), (255, 0, 0, 255))
    image.paste((0, 0, 255, 255), (16, 0, 32, 16))
    path = tmp_path / filename
    image.save(path, "PNG")
    return ImageInput(path, filename, "image/png", 32, 16)


def variation(
    image: ImageInput, provider: str = "openai", model: str = "dall-e-2", **params: Any
) -> ImageVariationCall:
    full = ImageVariationParams(model=f"{provider}/{model}", **params)
    return ImageVariationCall(model=model, params=full, image=image)


def decoded(data: bytes | None) -> Image.Image:
    assert data is not None
    with Image.open(io.BytesIO(data)) as opened:
        return opened.convert("RGBA")


async def test_the_form_is_sent_as_openais_sdk_sends_it(
    provider: OpenAIProvider, fake: FakeOpenAI, tmp_path: Path
) -> None:
    image = left_red_right_blue(tmp_path)
    call = variation(
        image,
        n=2,
        size="256x256",
        user="user-7",
        response_format="url",
        fallbacks=("openai/other",),
        extra_params={"style_hint": "soft", "model": "not-this", "response_format": "url"},
    )

    await provider.vary_image(call)

    sent = only_request(fake)
    assert (sent.method, sent.path) == ("POST", "/v1/images/variations")
    assert sent.headers["authorization"] == f"Bearer {KEY}"
    assert sent.headers["content-type"].startswith("multipart/form-data; boundary=")
    # The gateway keeps the bytes: b64_json whatever the caller's response_format; extras
    # cannot replace the model or response_format; no fallbacks.
    assert sent.fields == {
        "model": ["dall-e-2"],
        "n": ["2"],
        "size": ["256x256"],
        "user": ["user-7"],
        "response_format": ["b64_json"],
        "style_hint": ["soft"],
    }
    assert [(f.name, f.filename, f.content_type) for f in sent.files] == [
        ("image", "photo one.png", "image/png")
    ]
    assert sent.files[0].data == image.path.read_bytes()


async def test_only_the_set_fields_are_sent(
    provider: OpenAIProvider, fake: FakeOpenAI, tmp_path: Path
) -> None:
    await provider.vary_image(variation(left_red_right_blue(tmp_path)))

    assert only_request(fake).fields == {"model": ["dall-e-2"], "response_format": ["b64_json"]}


async def test_the_answer_is_read_as_the_images_answer(
    provider: OpenAIProvider, fake: FakeOpenAI, tmp_path: Path
) -> None:
    outcome = await provider.vary_image(variation(left_red_right_blue(tmp_path), n=3, size="64x32"))

    assert len(outcome.images) == 3
    for produced in outcome.images:
        assert produced.content_type == "image/png"
        image = decoded(produced.data)
        assert image.size == (64, 32)
        # The fake mirrors: blue now on the left.
        assert image.getpixel((2, 16)) == (0, 0, 255, 255)
        assert image.getpixel((61, 16)) == (255, 0, 0, 255)


async def test_a_url_answer_is_kept_as_a_url(
    provider: OpenAIProvider, fake: FakeOpenAI, tmp_path: Path
) -> None:
    fake.enqueue(FakeResponse.json_body({"created": 1, "data": [{"url": "https://images.example/1.png"}]}))

    outcome = await provider.vary_image(variation(left_red_right_blue(tmp_path)))

    assert [(i.url, i.data) for i in outcome.images] == [("https://images.example/1.png", None)]
    assert outcome.created == 1


async def test_errors_are_openais(provider: OpenAIProvider, fake: FakeOpenAI, tmp_path: Path) -> None:
    fake.enqueue(
        FakeResponse.error(
            400, "Invalid image: must be square", "invalid_request_error", "invalid_image", "image"
        ),
        FakeResponse.error(429, "Slow down", "rate_limit_exceeded", headers={"Retry-After": "7"}),
    )
    image = left_red_right_blue(tmp_path)

    refused = await provider_error(provider.vary_image(variation(image)))
    limited = await provider_error(provider.vary_image(variation(image)))

    assert (refused.status_code, refused.code, refused.param, refused.retryable) == (
        400,
        "invalid_image",
        "image",
        False,
    )
    assert refused.message == "Invalid image: must be square"
    assert (limited.status_code, limited.retryable, limited.retry_after) == (429, True, 7.0)


async def test_the_fake_refuses_a_form_without_an_image(
    session: aiohttp.ClientSession, fake: FakeOpenAI
) -> None:
    # The fake checks what it gets: the adapter's passing tests mean something.
    form = aiohttp.FormData({"model": "dall-e-2"}, default_to_multipart=True)
    async with session.post(
        fake.base_url + "/images/variations", data=form, headers={"Authorization": f"Bearer {KEY}"}
    ) as response:
        assert response.status == 400
        assert (await response.json())["error"]["param"] == "image"


async def test_a_wrong_key_is_401_and_redacted(
    session: aiohttp.ClientSession, fake: FakeOpenAI, tmp_path: Path
) -> None:
    wrong = "sk-wrong-0123456789abcdef"
    provider = OpenAIProvider(session, ProviderSettings(keys=(ApiKey(wrong),), base_url=fake.base_url))

    error = await provider_error(provider.vary_image(variation(left_red_right_blue(tmp_path))))

    assert (error.status_code, error.code) == (401, "invalid_api_key")
    assert wrong not in error.message


async def test_a_redirect_is_refused(provider: OpenAIProvider, fake: FakeOpenAI, tmp_path: Path) -> None:
    async with FakeOpenAI(api_key=None) as elsewhere:
        fake.enqueue(
            FakeResponse.raw(
                308, b"moved", headers={"Location": f"{elsewhere.base_url}/images/variations?k=1"}
            )
        )

        error = await provider_error(provider.vary_image(variation(left_red_right_blue(tmp_path))))

        assert (error.status_code, error.code, error.retryable) == (502, "redirect_refused", False)
        assert elsewhere.requests == []


# openai-compatible


async def test_a_compatible_server_without_a_key_gets_no_authorization(
    tmp_path: Path, session: aiohttp.ClientSession
) -> None:
    async with FakeOpenAI(api_key=None) as open_server:
        provider = OpenAICompatibleProvider(session, ProviderSettings(base_url=open_server.base_url), "vllm")

        outcome = await provider.vary_image(
            variation(left_red_right_blue(tmp_path), provider="vllm", model="sdxl")
        )

        sent = only_request(open_server)
        assert "authorization" not in sent.headers
        assert sent.fields["model"] == ["sdxl"]
        assert len(outcome.images) == 1


@pytest.mark.parametrize(
    ("operations", "offered"),
    [((), True), (("image_variation",), True), (("image_edit", "embedding"), False)],
)
def test_compatible_operations_name_image_variation(
    session: aiohttp.ClientSession, operations: tuple[str, ...], offered: bool
) -> None:
    settings = ProviderSettings(base_url="http://127.0.0.1:1/v1", operations=operations)
    provider = OpenAICompatibleProvider(session, settings, "vllm")

    assert provider.supports(RequestType.IMAGE_VARIATION) is offered


def test_openai_offers_variations(provider: OpenAIProvider) -> None:
    assert provider.supports(RequestType.IMAGE_VARIATION)


# Providers without variations


@pytest.mark.parametrize("build", [AzureOpenAIProvider, GeminiProvider, StabilityProvider])
async def test_other_providers_offer_no_variations(
    session: aiohttp.ClientSession,
    tmp_path: Path,
    build: Callable[[aiohttp.ClientSession, ProviderSettings, str], Provider],
) -> None:
    settings = ProviderSettings(keys=(ApiKey("k"),), base_url="http://127.0.0.1:1")
    provider = build(session, settings, "p")

    assert not provider.supports(RequestType.IMAGE_VARIATION)
    error = await provider_error(provider.vary_image(variation(left_red_right_blue(tmp_path), provider="p")))
    assert (error.status_code, error.code, error.is_gateway_error) == (400, "unsupported_operation", True)
