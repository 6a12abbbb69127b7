"""OpenAIProvider against FakeOpenAI, over real HTTP on 127.0.0.1."""

from __future__ import annotations

import asyncio
import base64
import io
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from PIL import Image

from grpc_server.config import ApiKey, ProviderSettings
from grpc_server.domain.jobs import RequestType
from grpc_server.providers.base import ImageEditCall, ImageInput, ProviderError
from grpc_server.providers.openai import OpenAICompatibleProvider, OpenAIProvider
from tests.fakes.openai_server import FakeOpenAI, FakeResponse
from tests.integration.helpers import edit_call, image_file, only_request, provider_error

KEY = "sk-test-0123456789abcdef"


@pytest.fixture
async def fake() -> AsyncIterator[FakeOpenAI]:
    async with FakeOpenAI(api_key=KEY) as server:
        yield server


@pytest.fixture
def provider(session: aiohttp.ClientSession, fake: FakeOpenAI) -> OpenAIProvider:
    return OpenAIProvider(session, ProviderSettings(keys=(ApiKey(KEY),), base_url=fake.base_url))


def edit(
    images: list[ImageInput], model: str = "gpt-image-1", mask: ImageInput | None = None, **params: Any
) -> ImageEditCall:
    return edit_call("openai", model, images, mask, **params)


async def failure(provider: OpenAIProvider, call: ImageEditCall) -> ProviderError:
    return await provider_error(provider.edit_image(call))


# What is sent


async def test_one_image_is_sent_as_image_with_only_the_set_fields(
    provider: OpenAIProvider, fake: FakeOpenAI, tmp_path: Path
) -> None:
    image = image_file(tmp_path, "cat photo.png")
    call = edit(
        [image],
        n=2,
        size="64x48",
        quality="low",
        type="inpaint",
        fallbacks=("openai/dall-e-2",),
        response_format="b64_json",
        extra_params={"moderation": "low"},
    )

    await provider.edit_image(call)

    sent = only_request(fake)
    assert (sent.method, sent.path) == ("POST", "/v1/images/edits")
    assert sent.headers["authorization"] == f"Bearer {KEY}"
    assert sent.headers["content-type"].startswith("multipart/form-data; boundary=")
    # Exactly these fields: nothing unset, no stream / type / fallbacks / response_format.
    assert sent.fields == {
        "model": ["gpt-image-1"],
        "prompt": ["make it blue"],
        "n": ["2"],
        "size": ["64x48"],
        "quality": ["low"],
        "moderation": ["low"],
    }
    assert [(f.name, f.filename, f.content_type) for f in sent.files] == [
        ("image", "cat photo.png", "image/png")
    ]
    assert sent.files[0].data == image.path.read_bytes()


async def test_several_images_are_image_array_parts_followed_by_the_mask(
    provider: OpenAIProvider, fake: FakeOpenAI, tmp_path: Path
) -> None:
    images = [
        image_file(tmp_path, "a.png"),
        image_file(tmp_path, "b.jpg", fmt="JPEG", content_type="image/jpeg"),
        # No extension: the content type must come from the input, not a guess from the name.
        image_file(tmp_path, "upload-3", fmt="WEBP", content_type="image/webp"),
    ]
    mask = image_file(tmp_path, "mask.png")

    await provider.edit_image(edit(images, mask=mask))

    sent = only_request(fake)
    assert [(f.name, f.filename, f.content_type) for f in sent.files] == [
        ("image[]", "a.png", "image/png"),
        ("image[]", "b.jpg", "image/jpeg"),
        ("image[]", "upload-3", "image/webp"),
        ("mask", "mask.png", "image/png"),
    ]
    assert [f.data for f in sent.files] == [i.path.read_bytes() for i in [*images, mask]]


async def test_every_set_openai_parameter_is_sent_as_text(
    provider: OpenAIProvider, fake: FakeOpenAI, tmp_path: Path
) -> None:
    call = edit(
        [image_file(tmp_path, "a.png")],
        n=1,
        size="auto",
        quality="high",
        background="transparent",
        output_format="png",
        output_compression=0,
        input_fidelity="high",
        partial_images=2,
        user="user-1",
        seed=0,
        num_inference_steps=30,
        negative_prompt="no dogs",
    )

    await provider.edit_image(call)

    assert only_request(fake).fields == {
        "model": ["gpt-image-1"],
        "prompt": ["make it blue"],
        "n": ["1"],
        "size": ["auto"],
        "quality": ["high"],
        "background": ["transparent"],
        "output_format": ["png"],
        "output_compression": ["0"],
        "input_fidelity": ["high"],
        "partial_images": ["2"],
        "user": ["user-1"],
    }  # OpenAI refuses seed, num_inference_steps and negative_prompt: not sent


async def test_compatible_servers_also_get_the_non_openai_image_fields(
    fake: FakeOpenAI, tmp_path: Path
) -> None:
    async with aiohttp.ClientSession() as session:
        settings = ProviderSettings(keys=(ApiKey(KEY),), base_url=fake.base_url)
        provider = OpenAICompatibleProvider(session, settings, "sdxl")
        call = edit(
            [image_file(tmp_path, "a.png")], seed=0, num_inference_steps=30, negative_prompt="no dogs"
        )
        await provider.edit_image(call)
    sent = only_request(fake)
    assert (sent.field("seed"), sent.field("num_inference_steps"), sent.field("negative_prompt")) == (
        "0",
        "30",
        "no dogs",
    )


async def test_dall_e_is_asked_for_base64(provider: OpenAIProvider, fake: FakeOpenAI, tmp_path: Path) -> None:
    await provider.edit_image(edit([image_file(tmp_path, "a.png")], model="dall-e-2", response_format="url"))

    sent = only_request(fake)
    assert sent.fields["model"] == ["dall-e-2"]
    assert sent.fields["response_format"] == ["b64_json"]


async def test_extra_params_cannot_replace_the_model_the_prompt_the_files_or_stream(
    provider: OpenAIProvider, fake: FakeOpenAI, tmp_path: Path
) -> None:
    extra = {
        "model": "x",
        "prompt": "x",
        "image": "x",
        "image[]": "x",
        "mask": "x",
        "stream": "true",
        "response_format": "url",
        "style": "vivid",
    }

    await provider.edit_image(edit([image_file(tmp_path, "a.png")], extra_params=extra))

    sent = only_request(fake)
    assert sent.fields == {"model": ["gpt-image-1"], "prompt": ["make it blue"], "style": ["vivid"]}
    assert [f.name for f in sent.files] == ["image"]


async def test_a_trailing_slash_on_the_base_url_is_ignored(
    session: aiohttp.ClientSession, fake: FakeOpenAI, tmp_path: Path
) -> None:
    provider = OpenAIProvider(session, ProviderSettings(keys=(ApiKey(KEY),), base_url=fake.base_url + "/"))

    await provider.edit_image(edit([image_file(tmp_path, "a.png")]))

    assert only_request(fake).path == "/v1/images/edits"


async def test_without_an_api_key_nothing_is_sent(
    session: aiohttp.ClientSession, fake: FakeOpenAI, tmp_path: Path
) -> None:
    provider = OpenAIProvider(session, ProviderSettings(keys=(), base_url=fake.base_url))

    error = await failure(provider, edit([image_file(tmp_path, "a.png")]))

    assert (error.status_code, error.type, error.code, error.retryable, error.is_gateway_error) == (
        401,
        "authentication_error",
        "missing_api_key",
        False,
        True,
    )
    assert error.message == "openai: no API key configured"
    assert fake.requests == []


def test_supports_every_operation(session: aiohttp.ClientSession) -> None:
    provider = OpenAIProvider(session, ProviderSettings(keys=(ApiKey(KEY),)))
    assert provider.name == "openai"
    assert all(provider.supports(request_type) for request_type in RequestType)


# What comes back


async def test_success_decodes_the_images_and_keeps_the_metadata(
    provider: OpenAIProvider, tmp_path: Path
) -> None:
    outcome = await provider.edit_image(
        edit([image_file(tmp_path, "a.png")], n=2, size="48x40", quality="low")
    )

    assert len(outcome.images) == 2
    for produced in outcome.images:
        assert produced.url is None
        assert produced.content_type == "image/png"
        assert produced.data is not None
        with Image.open(io.BytesIO(produced.data)) as decoded:
            assert (decoded.format, decoded.size) == ("PNG", (48, 40))
    assert outcome.usage == {"input_tokens": 10, "output_tokens": 20, "total_tokens": 30}
    assert (outcome.size, outcome.output_format, outcome.quality) == ("48x40", "png", "low")
    assert outcome.created > 0


async def test_urls_revised_prompts_and_the_output_format_pass_through(
    provider: OpenAIProvider, fake: FakeOpenAI, tmp_path: Path
) -> None:
    fake.enqueue(
        FakeResponse.json_body(
            {
                "created": 1700000000,
                "data": [{"url": "https://files.example/1.webp", "revised_prompt": "a blue cat"}],
                "output_format": "webp",
                "background": "opaque",
            }
        )
    )

    outcome = await provider.edit_image(edit([image_file(tmp_path, "a.png")]))

    assert outcome.created == 1700000000
    [produced] = outcome.images
    assert (produced.url, produced.data) == ("https://files.example/1.webp", None)
    assert (produced.revised_prompt, produced.content_type) == ("a blue cat", "image/webp")
    assert (outcome.background, outcome.output_format, outcome.usage) == ("opaque", "webp", None)


async def test_jpeg_output_is_labelled_jpeg(
    provider: OpenAIProvider, fake: FakeOpenAI, tmp_path: Path
) -> None:
    jpeg = b"\xff\xd8\xff\xe0 not really a jpeg"
    fake.enqueue(
        FakeResponse.json_body(
            {"created": 1, "data": [{"b64_json": base64.b64encode(jpeg).decode()}], "output_format": "jpeg"}
        )
    )

    outcome = await provider.edit_image(edit([image_file(tmp_path, "a.png")]))

    assert (outcome.images[0].data, outcome.images[0].content_type) == (jpeg, "image/jpeg")


@pytest.mark.parametrize(
    ("body", "problem"),
    [
        (b"<html>oops</html>", "not JSON"),
        (b"[]", "not a JSON object"),
        (b'{"created": 1}', "no images"),
        (b'{"created": 1, "data": []}', "no images"),
        (b'{"created": 1, "data": [{"b64_json": "!!not base64!!"}]}', "not valid base64"),
        (b'{"created": 1, "data": [{"revised_prompt": "x"}]}', "neither b64_json nor url"),
    ],
)
async def test_a_malformed_success_is_a_retryable_invalid_response(
    provider: OpenAIProvider, fake: FakeOpenAI, tmp_path: Path, body: bytes, problem: str
) -> None:
    fake.enqueue(FakeResponse.raw(200, body))

    error = await failure(provider, edit([image_file(tmp_path, "a.png")]))

    assert (error.status_code, error.type, error.retryable) == (502, "invalid_response", True)
    assert problem in error.message


# Errors


async def test_a_400_keeps_openais_error_and_is_not_retryable(
    provider: OpenAIProvider, fake: FakeOpenAI, tmp_path: Path
) -> None:
    fake.enqueue(
        FakeResponse.error(
            400,
            message="Your request was rejected by the safety system.",
            type="image_generation_user_error",
            code="moderation_blocked",
            param="prompt",
        )
    )

    error = await failure(provider, edit([image_file(tmp_path, "a.png")]))

    assert error.status_code == 400
    assert error.message == "Your request was rejected by the safety system."
    assert (error.type, error.code, error.param) == (
        "image_generation_user_error",
        "moderation_blocked",
        "prompt",
    )
    assert (error.retryable, error.retry_after, error.is_gateway_error) == (False, None, False)


async def test_a_wrong_key_is_a_401_that_does_not_repeat_the_key(
    session: aiohttp.ClientSession, fake: FakeOpenAI, tmp_path: Path
) -> None:
    wrong = "sk-wrong-9876543210fedcba"
    provider = OpenAIProvider(session, ProviderSettings(keys=(ApiKey(wrong),), base_url=fake.base_url))

    error = await failure(provider, edit([image_file(tmp_path, "a.png")]))

    assert (error.status_code, error.type, error.code, error.retryable) == (
        401,
        "invalid_request_error",
        "invalid_api_key",
        False,
    )
    assert error.message.startswith("Incorrect API key provided")
    assert wrong not in str(error)


@pytest.mark.parametrize(
    ("headers", "retry_after"),
    [({"Retry-After": "1"}, 1.0), ({"retry-after-ms": "250", "Retry-After": "1"}, 0.25), ({}, None)],
)
async def test_a_429_is_retryable_with_the_providers_hint(
    provider: OpenAIProvider,
    fake: FakeOpenAI,
    tmp_path: Path,
    headers: dict[str, str],
    retry_after: float | None,
) -> None:
    fake.enqueue(
        FakeResponse.error(
            429, message="Rate limit reached", type="requests", code="rate_limit_exceeded", headers=headers
        )
    )

    error = await failure(provider, edit([image_file(tmp_path, "a.png")]))

    assert (error.status_code, error.code, error.retryable, error.retry_after) == (
        429,
        "rate_limit_exceeded",
        True,
        retry_after,
    )


@pytest.mark.parametrize("status", [500, 503])
async def test_server_errors_are_retryable(
    provider: OpenAIProvider, fake: FakeOpenAI, tmp_path: Path, status: int
) -> None:
    fake.enqueue(FakeResponse.error(status, message="The server had an error", code=None))

    error = await failure(provider, edit([image_file(tmp_path, "a.png")]))

    assert (error.status_code, error.message, error.type, error.code) == (
        status,
        "The server had an error",
        "server_error",
        "",
    )
    assert error.retryable


@pytest.mark.parametrize(
    ("body", "message", "code"),
    [
        # API Management (in front of Azure OpenAI, or of a compatible server).
        ({"statusCode": 429, "message": "Rate limit is exceeded."}, "Rate limit is exceeded.", "429"),
        ({"error": "model is loading"}, "model is loading", ""),
    ],
)
async def test_other_error_shapes_keep_their_message(
    provider: OpenAIProvider, fake: FakeOpenAI, tmp_path: Path, body: dict[str, Any], message: str, code: str
) -> None:
    fake.enqueue(FakeResponse.json_body(body, status=503))

    error = await failure(provider, edit([image_file(tmp_path, "a.png")]))

    assert (error.status_code, error.message, error.code, error.retryable) == (503, message, code, True)


async def test_a_numeric_error_code_is_kept_as_text(
    provider: OpenAIProvider, fake: FakeOpenAI, tmp_path: Path
) -> None:
    fake.enqueue(FakeResponse.error(404, message="Resource not found", type="", code=404))

    error = await failure(provider, edit([image_file(tmp_path, "a.png")]))

    assert (error.status_code, error.code, error.retryable) == (404, "404", False)


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b"<html><body>\n  502 Bad Gateway\n</body></html>", "<html><body> 502 Bad Gateway </body></html>"),
        (b"x" * 5000, "x" * 200),
        (b"", "HTTP 502"),
    ],
)
async def test_a_non_json_error_body_gives_a_short_message(
    provider: OpenAIProvider, fake: FakeOpenAI, tmp_path: Path, body: bytes, message: str
) -> None:
    fake.enqueue(FakeResponse.raw(502, body, "text/html"))

    error = await failure(provider, edit([image_file(tmp_path, "a.png")]))

    assert (error.status_code, error.message, error.type, error.retryable) == (502, message, "", True)


@pytest.mark.parametrize(
    "answer",
    [
        FakeResponse.error(400, message=f"Bad key {KEY}", code=KEY, param=KEY),
        FakeResponse.raw(500, f"upstream said: Authorization: Bearer {KEY}".encode(), "text/plain"),
    ],
)
async def test_a_key_echoed_by_the_server_is_redacted(
    provider: OpenAIProvider, fake: FakeOpenAI, tmp_path: Path, answer: FakeResponse
) -> None:
    fake.enqueue(answer)

    error = await failure(provider, edit([image_file(tmp_path, "a.png")]))

    assert KEY not in f"{error} {error.code} {error.param} {error.details}"
    assert "[redacted]" in error.message


async def test_a_hanging_call_can_be_bounded_by_the_caller(
    provider: OpenAIProvider, fake: FakeOpenAI, tmp_path: Path
) -> None:
    fake.enqueue(FakeResponse.hang())

    with pytest.raises(TimeoutError):
        async with asyncio.timeout(0.5):
            await provider.edit_image(edit([image_file(tmp_path, "a.png")]))
