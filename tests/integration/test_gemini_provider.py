"""GeminiProvider against FakeGemini, over real HTTP on 127.0.0.1."""

from __future__ import annotations

import asyncio
import base64
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from grpc_server.config import ApiKey, ProviderSettings
from grpc_server.domain.jobs import EmbeddingInput, RequestType
from grpc_server.providers.base import (
    EmbeddingCall,
    ImageEditCall,
    ImageGenerationCall,
    ImageInput,
    ProviderError,
)
from grpc_server.providers.fan_out import MAX_PARALLEL
from grpc_server.providers.gemini import DEFAULT_BASE_URL, GeminiProvider
from grpc_server.providers.gemini_wire import (
    BACKGROUND_REMOVAL_PROMPT,
    GEMINI_ASPECT_RATIOS,
    IMAGEN_ASPECT_RATIOS,
    MASK_HINT,
)
from grpc_server.providers.media import nearest_aspect_ratio
from tests.fakes.gemini_server import (
    BAD_KEY_MESSAGE,
    DEFAULT_DIMENSIONS,
    MODEL_TEXT,
    NO_KEY_MESSAGE,
    FakeGemini,
    FakeResponse,
    fake_vector,
    prompt_colour,
)
from tests.images import decode
from tests.integration import helpers
from tests.integration.helpers import (
    edit_call,
    embedding_call,
    generation_call,
    only_request,
    provider_error,
)

KEY = "AIzaSy-test-0123456789abcdef"
OTHER_KEY = "AIzaSy-test-fedcba9876543210"
IMAGE_MODEL = "gemini-2.5-flash-image"
IMAGEN_MODEL = "imagen-4.0-generate-001"
EMBED_MODEL = "gemini-embedding-001"


@pytest.fixture
async def fake() -> AsyncIterator[FakeGemini]:
    async with FakeGemini(api_key=KEY, extra_keys=[OTHER_KEY]) as server:
        yield server


def make_provider(session: aiohttp.ClientSession, fake: FakeGemini, *keys: str) -> GeminiProvider:
    settings = ProviderSettings(keys=tuple(ApiKey(k) for k in keys or (KEY,)), base_url=fake.base_url)
    return GeminiProvider(session, settings)


@pytest.fixture
def provider(session: aiohttp.ClientSession, fake: FakeGemini) -> GeminiProvider:
    return make_provider(session, fake)


def generation(model: str = IMAGE_MODEL, prompt: str = "a red fox", **params: Any) -> ImageGenerationCall:
    return generation_call("gemini", model, prompt, **params)


def image_file(
    tmp_path: Path,
    filename: str,
    colour: tuple[int, ...] = (200, 30, 30),
    fmt: str = "PNG",
    content_type: str = "image/png",
) -> ImageInput:
    return helpers.image_file(tmp_path, filename, (40, 30), fmt, content_type, colour)


def edit(
    images: list[ImageInput],
    mask: ImageInput | None = None,
    model: str = IMAGE_MODEL,
    prompt: str = "make it blue",
    **params: Any,
) -> ImageEditCall:
    return edit_call("gemini", model, images, mask, prompt, **params)


def embedding(texts: EmbeddingInput, model: str = EMBED_MODEL, **params: Any) -> EmbeddingCall:
    return embedding_call("gemini", model, input=texts, **params)


async def failure(provider: GeminiProvider, call: ImageGenerationCall) -> ProviderError:
    return await provider_error(provider.generate_image(call))


def b64(path: Path) -> str:
    return base64.b64encode(path.read_bytes()).decode()


# What is sent


async def test_a_generation_sends_the_prompt_and_asks_for_text_and_image(
    provider: GeminiProvider, fake: FakeGemini
) -> None:
    await provider.generate_image(generation(size="1024x1024", quality="high", style="vivid"))

    sent = only_request(fake)
    assert (sent.method, sent.path) == ("POST", f"/v1beta/models/{IMAGE_MODEL}:generateContent")
    assert sent.headers["x-goog-api-key"] == KEY
    assert sent.query == {}  # never ?key=: URLs end up in logs
    assert sent.headers["content-type"] == "application/json"
    # Exactly this: the OpenAI-only fields (quality, style) have no Gemini counterpart.
    assert sent.json == {
        "contents": [{"parts": [{"text": "a red fox"}]}],
        "generationConfig": {"responseModalities": ["TEXT", "IMAGE"], "imageConfig": {"aspectRatio": "1:1"}},
    }


async def test_n_images_are_n_calls_without_candidate_count_and_keep_the_seed(
    provider: GeminiProvider, fake: FakeGemini
) -> None:
    outcome = await provider.generate_image(generation(n=3, seed=42, size="auto"))

    # Image models refuse candidateCount > 1: each image is a call of its own.
    assert len(fake.requests) == 3
    for sent in fake.requests:
        assert sent.path == f"/v1beta/models/{IMAGE_MODEL}:generateContent"
        assert sent.json["generationConfig"] == {"responseModalities": ["TEXT", "IMAGE"], "seed": 42}
    assert len(outcome.images) == 3
    assert all(image.data and image.revised_prompt == MODEL_TEXT for image in outcome.images)
    # Each call's usage (3 prompt tokens, one image and its text), summed.
    assert outcome.usage == {
        "input_tokens": 9,
        "output_tokens": 3 * 1298,
        "total_tokens": 9 + 3 * 1298,
        "input_tokens_details": {"text_tokens": 9},
    }
    assert outcome.output_format == "png"


async def test_n_edits_send_the_same_body_n_times(
    provider: GeminiProvider, fake: FakeGemini, tmp_path: Path
) -> None:
    source = image_file(tmp_path, "green.png", colour=(20, 180, 40))

    outcome = await provider.edit_image(edit([source], n=2))

    assert len(fake.requests) == 2
    assert fake.requests[0].body == fake.requests[1].body
    assert "candidateCount" not in fake.requests[0].json["generationConfig"]
    assert len(outcome.images) == 2
    assert outcome.usage is not None
    assert outcome.usage["input_tokens_details"] == {"text_tokens": 6, "image_tokens": 2 * 258}


async def test_n_calls_run_at_most_max_parallel_at_once(provider: GeminiProvider, fake: FakeGemini) -> None:
    fake.latency = 0.1

    outcome = await provider.generate_image(generation(n=6))

    assert len(outcome.images) == 6
    assert len(fake.requests) == 6
    assert fake.max_in_flight == MAX_PARALLEL


async def test_one_failed_call_among_n_fails_the_request(provider: GeminiProvider, fake: FakeGemini) -> None:
    fake.enqueue(FakeResponse.success(), FakeResponse.error(429, "Resource has been exhausted"))

    error = await failure(provider, generation(n=2))

    assert (error.status_code, error.retryable) == (429, True)
    assert fake.queued == 0


async def test_the_fake_refuses_several_candidates_for_an_image_model_as_gemini_does(
    session: aiohttp.ClientSession, fake: FakeGemini
) -> None:
    url = f"{fake.base_url}/models/{IMAGE_MODEL}:generateContent"
    config = {"responseModalities": ["TEXT", "IMAGE"], "candidateCount": 2}
    body = {"contents": [{"parts": [{"text": "x"}]}], "generationConfig": config}
    async with session.post(url, json=body, headers={"x-goog-api-key": KEY}) as response:
        answer = await response.json()

    assert response.status == 400
    assert answer["error"]["status"] == "INVALID_ARGUMENT"
    assert answer["error"]["message"] == f"Multiple candidates is not enabled for models/{IMAGE_MODEL}"


async def test_one_image_sends_no_candidate_count(provider: GeminiProvider, fake: FakeGemini) -> None:
    await provider.generate_image(generation(n=1))

    assert only_request(fake).json["generationConfig"] == {"responseModalities": ["TEXT", "IMAGE"]}


# Size -> the nearest supported aspect ratio (on a log scale).
GEMINI_RATIOS = [
    ("256x256", "1:1"),
    ("1024x1024", "1:1"),
    ("1536x1024", "3:2"),
    ("1024x1536", "2:3"),
    ("1792x1024", "16:9"),
    ("1024x1792", "9:16"),
    ("1280x960", "4:3"),
    ("960x1280", "3:4"),
    ("1100x1000", "1:1"),
    ("1250x1000", "5:4"),
    ("800x1000", "4:5"),
    ("2560x1080", "21:9"),
    ("4000x1000", "21:9"),
]
IMAGEN_RATIOS = [
    ("1024x1024", "1:1"),
    ("1536x1024", "4:3"),
    ("1024x1536", "3:4"),
    ("1792x1024", "16:9"),
    ("1024x1792", "9:16"),
    ("2560x1080", "16:9"),
]


async def test_sizes_map_to_the_nearest_gemini_aspect_ratio(
    provider: GeminiProvider, fake: FakeGemini
) -> None:
    for size, _ in GEMINI_RATIOS:
        await provider.generate_image(generation(size=size))

    sent = [r.json["generationConfig"]["imageConfig"]["aspectRatio"] for r in fake.requests]
    assert list(zip([s for s, _ in GEMINI_RATIOS], sent, strict=True)) == GEMINI_RATIOS


async def test_sizes_map_to_the_nearest_imagen_aspect_ratio(
    provider: GeminiProvider, fake: FakeGemini
) -> None:
    for size, _ in IMAGEN_RATIOS:
        await provider.generate_image(generation(IMAGEN_MODEL, size=size))

    sent = [r.json["parameters"]["aspectRatio"] for r in fake.requests]
    assert list(zip([s for s, _ in IMAGEN_RATIOS], sent, strict=True)) == IMAGEN_RATIOS


@pytest.mark.parametrize("size", [None, "", "auto", "wide", "0x100", "100x0"])
def test_a_size_that_is_not_wxh_has_no_aspect_ratio(size: str | None) -> None:
    assert nearest_aspect_ratio(size, GEMINI_ASPECT_RATIOS) is None
    assert nearest_aspect_ratio(size, IMAGEN_ASPECT_RATIOS) is None


async def test_extra_params_go_beside_or_into_the_generation_config(
    provider: GeminiProvider, fake: FakeGemini
) -> None:
    safety = [{"category": "HARM_CATEGORY_HARASSMENT", "threshold": "BLOCK_ONLY_HIGH"}]
    extras = {
        "safetySettings": safety,
        "temperature": 0.4,
        "imageConfig": {"imageSize": "2K"},
        "responseModalities": ["TEXT"],  # would make the model answer without an image
        "contents": [],
        "candidateCount": 2,  # image models refuse it
    }
    await provider.generate_image(generation(size="1536x1024", extra_params=extras))

    sent = only_request(fake).json
    assert sent["safetySettings"] == safety
    assert sent["contents"] == [{"parts": [{"text": "a red fox"}]}]
    assert sent["generationConfig"] == {
        "responseModalities": ["TEXT", "IMAGE"],
        "imageConfig": {"aspectRatio": "3:2", "imageSize": "2K"},
        "temperature": 0.4,
    }


async def test_imagen_models_use_predict(provider: GeminiProvider, fake: FakeGemini) -> None:
    outcome = await provider.generate_image(
        generation(IMAGEN_MODEL, prompt="a lighthouse", n=3, size="1792x1024", output_format="jpeg")
    )

    sent = only_request(fake)
    assert sent.path == f"/v1beta/models/{IMAGEN_MODEL}:predict"
    assert sent.headers["x-goog-api-key"] == KEY
    assert sent.json == {
        "instances": [{"prompt": "a lighthouse"}],
        "parameters": {"sampleCount": 3, "aspectRatio": "16:9", "outputOptions": {"mimeType": "image/jpeg"}},
    }
    assert [i.content_type for i in outcome.images] == ["image/jpeg"] * 3
    assert outcome.output_format == "jpeg"
    for image in outcome.images:
        assert image.data is not None
        assert decode(image.data).format == "JPEG"


async def test_imagen_sends_one_sample_and_no_output_options_by_default(
    provider: GeminiProvider, fake: FakeGemini
) -> None:
    await provider.generate_image(generation(IMAGEN_MODEL, output_format="webp"))

    assert only_request(fake).json["parameters"] == {"sampleCount": 1}


async def test_an_edit_sends_the_prompt_then_each_image_then_the_mask_inline(
    provider: GeminiProvider, fake: FakeGemini, tmp_path: Path
) -> None:
    first = image_file(tmp_path, "a.png")
    second = image_file(tmp_path, "b.jpg", fmt="JPEG", content_type="image/jpeg")
    mask = image_file(tmp_path, "mask.png", colour=(0, 0, 0, 0))

    await provider.edit_image(edit([first, second], mask=mask, size="1024x1536", type="inpainting"))

    sent = only_request(fake)
    assert (sent.method, sent.path) == ("POST", f"/v1beta/models/{IMAGE_MODEL}:generateContent")
    assert sent.headers["x-goog-api-key"] == KEY
    assert sent.json["contents"] == [
        {
            "parts": [
                {"text": "make it blue"},
                {"inlineData": {"mimeType": "image/png", "data": b64(first.path)}},
                {"inlineData": {"mimeType": "image/jpeg", "data": b64(second.path)}},
                {"text": MASK_HINT},
                {"inlineData": {"mimeType": "image/png", "data": b64(mask.path)}},
            ]
        }
    ]
    assert sent.json["generationConfig"] == {
        "responseModalities": ["TEXT", "IMAGE"],
        "imageConfig": {"aspectRatio": "2:3"},
    }
    assert [data for _, data in sent.inline_images()] == [
        first.path.read_bytes(),
        second.path.read_bytes(),
        mask.path.read_bytes(),
    ]


async def test_background_removal_without_a_prompt_asks_for_it(
    provider: GeminiProvider, fake: FakeGemini, tmp_path: Path
) -> None:
    image = image_file(tmp_path, "a.png")

    await provider.edit_image(edit([image], prompt="", type="background_removal"))
    await provider.edit_image(edit([image], prompt="cut out the cat", type="background_removal"))

    assert [r.parts()[0] for r in fake.requests] == [
        {"text": BACKGROUND_REMOVAL_PROMPT},
        {"text": "cut out the cat"},
    ]


async def test_edit_extras_are_decoded_when_json(
    provider: GeminiProvider, fake: FakeGemini, tmp_path: Path
) -> None:
    extras = {"imageConfig": '{"imageSize": "2K"}', "temperature": "0.5"}

    await provider.edit_image(edit([image_file(tmp_path, "a.png")], extra_params=extras))

    assert only_request(fake).json["generationConfig"] == {
        "responseModalities": ["TEXT", "IMAGE"],
        "imageConfig": {"imageSize": "2K"},
        "temperature": "0.5",  # proto JSON takes a number as a string
    }


async def test_imagen_cannot_edit_and_nothing_is_sent(
    provider: GeminiProvider, fake: FakeGemini, tmp_path: Path
) -> None:
    with pytest.raises(ProviderError) as caught:
        await provider.edit_image(edit([image_file(tmp_path, "a.png")], model=IMAGEN_MODEL))

    error = caught.value
    assert (error.status_code, error.code, error.param) == (400, "unsupported_model", "model")
    assert error.is_gateway_error and not error.retryable
    assert fake.requests == []


async def test_embeddings_send_one_request_per_text_naming_the_model(
    provider: GeminiProvider, fake: FakeGemini
) -> None:
    await provider.embed(
        embedding(["first text", "second"], dimensions=4, extra_params={"taskType": "CLASSIFICATION"})
    )

    sent = only_request(fake)
    assert (sent.method, sent.path) == ("POST", f"/v1beta/models/{EMBED_MODEL}:batchEmbedContents")
    assert sent.headers["x-goog-api-key"] == KEY
    assert sent.json == {
        "requests": [
            {
                "model": f"models/{EMBED_MODEL}",
                "content": {"parts": [{"text": "first text"}]},
                "taskType": "CLASSIFICATION",
                "outputDimensionality": 4,
            },
            {
                "model": f"models/{EMBED_MODEL}",
                "content": {"parts": [{"text": "second"}]},
                "taskType": "CLASSIFICATION",
                "outputDimensionality": 4,
            },
        ]
    }


async def test_embeddings_without_dimensions_leave_the_models_default(
    provider: GeminiProvider, fake: FakeGemini
) -> None:
    outcome = await provider.embed(embedding("just one"))

    assert only_request(fake).json == {
        "requests": [{"model": f"models/{EMBED_MODEL}", "content": {"parts": [{"text": "just one"}]}}]
    }
    assert [len(v) for v in outcome.vectors] == [DEFAULT_DIMENSIONS]


@pytest.mark.parametrize("tokens", [[1, 2, 3], [[1, 2], [3]]])
async def test_token_id_inputs_are_refused_before_any_call(
    provider: GeminiProvider, fake: FakeGemini, tokens: EmbeddingInput
) -> None:
    with pytest.raises(ProviderError) as caught:
        await provider.embed(embedding(tokens))

    error = caught.value
    assert (error.status_code, error.param, error.retryable) == (400, "input", False)
    assert "token" in error.message
    assert fake.requests == []


async def test_a_models_prefix_is_accepted_and_a_strange_name_refused(
    provider: GeminiProvider, fake: FakeGemini
) -> None:
    await provider.generate_image(generation(f"models/{IMAGE_MODEL}"))
    assert only_request(fake).path == f"/v1beta/models/{IMAGE_MODEL}:generateContent"

    for model in ("../admin", "a?b", "models/x/y", ""):
        error = await failure(provider, generation(model))
        assert (error.status_code, error.code, error.is_gateway_error) == (400, "invalid_model", True)
    assert len(fake.requests) == 1


async def test_a_trailing_slash_on_the_base_url_is_ignored(
    session: aiohttp.ClientSession, fake: FakeGemini
) -> None:
    settings = ProviderSettings(keys=(ApiKey(KEY),), base_url=fake.base_url + "/")
    await GeminiProvider(session, settings).generate_image(generation())

    assert only_request(fake).path == f"/v1beta/models/{IMAGE_MODEL}:generateContent"


def test_the_default_base_url_is_googles_v1beta(session: aiohttp.ClientSession) -> None:
    provider = GeminiProvider(session, ProviderSettings(keys=(ApiKey(KEY),)))

    assert DEFAULT_BASE_URL == "https://generativelanguage.googleapis.com/v1beta"
    assert provider._base_url == DEFAULT_BASE_URL
    assert provider.name == "gemini"
    assert GeminiProvider(session, ProviderSettings(), name="gemini-eu").name == "gemini-eu"


def test_supports_all_three_operations(provider: GeminiProvider) -> None:
    assert all(
        provider.supports(t)
        for t in (RequestType.IMAGE_EDIT, RequestType.IMAGE_GENERATION, RequestType.EMBEDDING)
    )
    assert not provider.supports(RequestType.IMAGE_VARIATION)


async def test_without_an_api_key_nothing_is_sent(session: aiohttp.ClientSession, fake: FakeGemini) -> None:
    provider = GeminiProvider(session, ProviderSettings(base_url=fake.base_url))

    with pytest.raises(ProviderError) as caught:
        await provider.embed(embedding("x"))

    assert (caught.value.status_code, caught.value.type, caught.value.code) == (
        401,
        "authentication_error",
        "missing_api_key",
    )
    assert caught.value.is_gateway_error
    assert fake.requests == []


# What comes back


async def test_a_generation_returns_the_decoded_png_with_text_and_usage(provider: GeminiProvider) -> None:
    outcome = await provider.generate_image(generation(prompt="a calm blue sea"))

    assert len(outcome.images) == 1
    image = outcome.images[0]
    assert (image.content_type, image.revised_prompt, image.url) == ("image/png", MODEL_TEXT, None)
    assert image.data is not None
    picture = decode(image.data)
    assert (picture.format, picture.size) == ("PNG", (64, 64))
    assert picture.convert("RGB").getpixel((5, 5)) == prompt_colour("a calm blue sea")
    assert outcome.usage == {
        "input_tokens": 4,
        "output_tokens": 1298,
        "total_tokens": 1302,
        "input_tokens_details": {"text_tokens": 4},
    }
    assert outcome.output_format == "png"
    assert outcome.created > 0


async def test_an_edit_returns_the_image_gemini_made_from_the_input(
    provider: GeminiProvider, tmp_path: Path
) -> None:
    source = image_file(tmp_path, "green.png", colour=(20, 180, 40))

    outcome = await provider.edit_image(edit([source]))

    assert outcome.images[0].data is not None
    assert decode(outcome.images[0].data).convert("RGB").getpixel((3, 3)) == (20, 180, 40)
    assert outcome.usage is not None
    assert outcome.usage["input_tokens_details"] == {"text_tokens": 3, "image_tokens": 258}


async def test_snake_case_parts_are_read_and_thoughts_skipped(
    provider: GeminiProvider, fake: FakeGemini
) -> None:
    final = base64.b64encode(b"\x89PNG final").decode()
    draft = base64.b64encode(b"\x89PNG draft").decode()
    fake.enqueue(
        FakeResponse.json_body(
            {
                "candidates": [
                    {
                        "content": {
                            "parts": [
                                {"text": "thinking...", "thought": True},
                                {"inline_data": {"mime_type": "image/png", "data": draft}, "thought": True},
                                {"text": "A fox."},
                                {"inline_data": {"mime_type": "audio/wav", "data": "AAAA"}},
                                {"inline_data": {"mime_type": "image/webp", "data": final}},
                            ]
                        }
                    },
                    {"content": {"parts": [{"inlineData": {"mimeType": "image/png", "data": final}}]}},
                ]
            }
        )
    )

    outcome = await provider.generate_image(generation())

    assert [(i.data, i.content_type, i.revised_prompt) for i in outcome.images] == [
        (b"\x89PNG final", "image/webp", "A fox."),
        (b"\x89PNG final", "image/png", None),
    ]
    assert outcome.usage is None


async def test_url_safe_unpadded_base64_without_a_mime_type_is_sniffed(
    provider: GeminiProvider, fake: FakeGemini
) -> None:
    jpeg = b"\xff\xd8\xff\xe0 a jpeg?>"
    data = base64.urlsafe_b64encode(jpeg).decode().rstrip("=")
    assert "-" in data or "_" in data
    fake.enqueue(
        FakeResponse.json_body({"candidates": [{"content": {"parts": [{"inlineData": {"data": data}}]}}]})
    )

    outcome = await provider.generate_image(generation())

    assert [(i.data, i.content_type) for i in outcome.images] == [(jpeg, "image/jpeg")]


async def test_embedding_vectors_come_back_in_input_order(provider: GeminiProvider) -> None:
    texts = ["alpha", "beta", "gamma", "alpha"]

    outcome = await provider.embed(embedding(texts, dimensions=16))

    assert outcome.vectors == [fake_vector(t, 16) for t in texts]
    assert outcome.vectors[0] != outcome.vectors[1]
    assert (outcome.model, outcome.prompt_tokens, outcome.total_tokens) == (EMBED_MODEL, 0, 0)


async def test_imagen_images_all_filtered_is_a_refusal(provider: GeminiProvider, fake: FakeGemini) -> None:
    fake.enqueue(FakeResponse.json_body({"predictions": [{"raiFilteredReason": "Filtered for safety."}]}))

    error = await failure(provider, generation(IMAGEN_MODEL))

    assert (error.status_code, error.code, error.retryable) == (400, "RAI_FILTERED", False)
    assert "Filtered for safety." in error.message


# Refusals without an image


async def test_a_blocked_prompt_is_a_400_that_is_not_retried(
    provider: GeminiProvider, fake: FakeGemini
) -> None:
    fake.enqueue(FakeResponse.blocked("SAFETY"))

    error = await failure(provider, generation())

    assert (error.status_code, error.code, error.retryable) == (400, "SAFETY", False)
    assert "blocked" in error.message and "SAFETY" in error.message


async def test_a_candidate_stopped_for_image_safety_is_a_400(
    provider: GeminiProvider, fake: FakeGemini
) -> None:
    fake.enqueue(FakeResponse.blocked("IMAGE_SAFETY", prompt=False))

    error = await failure(provider, generation())

    assert (error.status_code, error.code, error.retryable) == (400, "IMAGE_SAFETY", False)


async def test_a_text_only_answer_is_a_400_quoting_the_model(
    provider: GeminiProvider, fake: FakeGemini
) -> None:
    text = {"candidates": [{"content": {"parts": [{"text": "I can't draw that."}]}, "finishReason": "STOP"}]}
    fake.enqueue(FakeResponse.json_body(text))

    error = await failure(provider, generation())

    assert (error.status_code, error.code, error.retryable) == (400, "NO_IMAGE", False)
    assert "I can't draw that." in error.message


# Errors


async def test_a_400_keeps_googles_message_and_status(provider: GeminiProvider, fake: FakeGemini) -> None:
    message = "Multiple candidates is not enabled for models/gemini-2.5-flash-image"
    fake.enqueue(FakeResponse.error(400, message))

    error = await failure(provider, generation())

    assert (error.status_code, error.type, error.code) == (400, "invalid_argument", "INVALID_ARGUMENT")
    assert error.message == message
    assert not error.retryable and error.retry_after is None


async def test_a_field_violation_names_the_param(provider: GeminiProvider, fake: FakeGemini) -> None:
    violation = {"field": "generation_config.image_config.aspect_ratio", "description": "unsupported"}
    body = {
        "error": {
            "code": 400,
            "message": "Invalid aspect ratio",
            "status": "INVALID_ARGUMENT",
            "details": [
                {"@type": "type.googleapis.com/google.rpc.BadRequest", "fieldViolations": [violation]}
            ],
        }
    }
    fake.enqueue(FakeResponse.json_body(body, status=400))

    error = await failure(provider, generation())

    assert error.param == "generation_config.image_config.aspect_ratio"


async def test_a_wrong_key_is_api_key_invalid_and_never_repeated(
    session: aiohttp.ClientSession, fake: FakeGemini
) -> None:
    wrong = "AIzaSy-revoked-key-000"
    provider = make_provider(session, fake, wrong)

    error = await failure(provider, generation())

    assert (error.status_code, error.type, error.code) == (400, "invalid_argument", "API_KEY_INVALID")
    assert error.message == BAD_KEY_MESSAGE
    assert not error.retryable
    # The fake's DebugInfo quotes the key, as Google's has: it must not travel on.
    assert wrong not in f"{error!s} {error!r}"


async def test_a_key_gemini_calls_invalid_is_set_aside(
    session: aiohttp.ClientSession, fake: FakeGemini
) -> None:
    provider = make_provider(session, fake, "AIzaSy-revoked-key-000", KEY)

    for _ in range(6):
        try:
            await provider.generate_image(generation())
        except ProviderError as error:
            assert error.code == "API_KEY_INVALID"

    assert sum(r.api_key != KEY for r in fake.requests) <= 1
    assert fake.requests[-1].api_key == KEY


async def test_a_missing_key_is_a_403_from_the_fake(session: aiohttp.ClientSession, fake: FakeGemini) -> None:
    url = f"{fake.base_url}/models/{IMAGE_MODEL}:generateContent"
    async with session.post(url, json={"contents": [{"parts": [{"text": "x"}]}]}) as response:
        body = await response.json()

    assert response.status == 403
    assert body == {"error": {"code": 403, "message": NO_KEY_MESSAGE, "status": "PERMISSION_DENIED"}}


async def test_a_wrong_key_gets_googles_error_info_from_the_fake(
    session: aiohttp.ClientSession, fake: FakeGemini
) -> None:
    url = f"{fake.base_url}/models/{EMBED_MODEL}:batchEmbedContents"
    async with session.post(url, json={}, headers={"x-goog-api-key": "AIzaSy-nope"}) as response:
        body = await response.json()

    assert response.status == 400
    assert (body["error"]["status"], body["error"]["message"]) == ("INVALID_ARGUMENT", BAD_KEY_MESSAGE)
    reasons = [d.get("reason") for d in body["error"]["details"]]
    assert "API_KEY_INVALID" in reasons
    assert "AIzaSy-nope" in str(body)  # the DebugInfo quotes it


async def test_a_403_is_permission_denied_and_not_retried(provider: GeminiProvider, fake: FakeGemini) -> None:
    fake.enqueue(FakeResponse.error(403, NO_KEY_MESSAGE))

    error = await failure(provider, generation())

    assert (error.status_code, error.type, error.code) == (403, "permission_denied", "PERMISSION_DENIED")
    assert not error.retryable


async def test_a_404_is_not_found_and_not_retried(provider: GeminiProvider, fake: FakeGemini) -> None:
    message = "models/gemini-9 is not found for API version v1beta, or is not supported for generateContent."
    fake.enqueue(FakeResponse.error(404, message))

    error = await failure(provider, generation("gemini-9"))

    assert (error.status_code, error.type, error.code, error.message) == (
        404,
        "not_found",
        "NOT_FOUND",
        message,
    )
    assert not error.retryable


@pytest.mark.parametrize(("delay", "seconds"), [("13s", 13.0), ("58.934310785s", 58.934310785)])
async def test_a_429_takes_its_delay_from_retry_info(
    provider: GeminiProvider, fake: FakeGemini, delay: str, seconds: float
) -> None:
    fake.enqueue(FakeResponse.error(429, "You exceeded your current quota.", retry_delay=delay))

    error = await failure(provider, generation())

    assert (error.status_code, error.type, error.code) == (429, "resource_exhausted", "RESOURCE_EXHAUSTED")
    assert error.retryable
    assert error.retry_after == seconds


async def test_a_429_without_retry_info_takes_the_retry_after_header(
    provider: GeminiProvider, fake: FakeGemini
) -> None:
    fake.enqueue(FakeResponse.error(429, "Resource has been exhausted", headers={"Retry-After": "7"}))

    error = await failure(provider, generation())

    assert (error.status_code, error.retryable, error.retry_after) == (429, True, 7.0)


@pytest.mark.parametrize(
    ("status", "name"), [(500, "INTERNAL"), (503, "UNAVAILABLE"), (504, "DEADLINE_EXCEEDED")]
)
async def test_server_errors_are_retryable(
    provider: GeminiProvider, fake: FakeGemini, status: int, name: str
) -> None:
    fake.enqueue(FakeResponse.error(status, "The model is overloaded. Please try again later."))

    error = await failure(provider, generation())

    assert (error.status_code, error.type, error.code, error.retryable) == (status, name.lower(), name, True)


async def test_an_error_inside_an_array_is_read(provider: GeminiProvider, fake: FakeGemini) -> None:
    body = [{"error": {"code": 503, "message": "overloaded", "status": "UNAVAILABLE"}}]
    fake.enqueue(FakeResponse.json_body(body, status=503))

    error = await failure(provider, generation())

    assert (error.message, error.code) == ("overloaded", "UNAVAILABLE")


async def test_an_html_error_page_keeps_a_prefix_and_the_http_status(
    provider: GeminiProvider, fake: FakeGemini
) -> None:
    fake.enqueue(FakeResponse.raw(502, b"<html><body>Bad   Gateway</body></html>", content_type="text/html"))

    error = await failure(provider, generation())

    assert (error.status_code, error.retryable) == (502, True)
    assert error.message == "<html><body>Bad Gateway</body></html>"


@pytest.mark.parametrize(
    "answer",
    [
        FakeResponse.raw(200, b"not json"),
        FakeResponse.json_body(["a list"]),
        FakeResponse.json_body({"candidates": "nope"}),
        FakeResponse.json_body({"candidates": [{"content": {"parts": [{"inlineData": {"data": "***"}}]}}]}),
        FakeResponse.json_body(
            {"candidates": [{"content": {"parts": [{"inlineData": {"mimeType": "image/png"}}]}}]}
        ),
    ],
)
async def test_a_malformed_success_is_a_retryable_invalid_response(
    provider: GeminiProvider, fake: FakeGemini, answer: FakeResponse
) -> None:
    fake.enqueue(answer)

    error = await failure(provider, generation())

    assert (error.status_code, error.type, error.retryable) == (502, "invalid_response", True)


@pytest.mark.parametrize(
    "doc",
    [{"embeddings": [{"values": [0.1]}]}, {"embeddings": [{"values": ["x"]}, {"values": [1]}]}, {}],
)
async def test_malformed_embeddings_are_a_retryable_invalid_response(
    provider: GeminiProvider, fake: FakeGemini, doc: dict[str, Any]
) -> None:
    fake.enqueue(FakeResponse.json_body(doc))

    with pytest.raises(ProviderError) as caught:
        await provider.embed(embedding(["a", "b"]))

    assert (caught.value.status_code, caught.value.type, caught.value.retryable) == (
        502,
        "invalid_response",
        True,
    )


async def test_a_hanging_provider_is_bounded_by_the_callers_timeout(
    provider: GeminiProvider, fake: FakeGemini
) -> None:
    fake.enqueue(FakeResponse.hang())

    with pytest.raises(TimeoutError):
        async with asyncio.timeout(0.3):
            await provider.generate_image(generation())

    assert len(fake.requests) == 1


async def test_after_a_429_the_next_call_uses_the_other_key(
    session: aiohttp.ClientSession, fake: FakeGemini
) -> None:
    provider = make_provider(session, fake, KEY, OTHER_KEY)
    fake.enqueue(FakeResponse.error(429, "Resource has been exhausted", retry_delay="13s"))

    error = await failure(provider, generation())
    assert error.status_code == 429
    await provider.generate_image(generation())
    await provider.generate_image(generation())

    first, second, third = (r.api_key for r in fake.requests)
    assert first in (KEY, OTHER_KEY)
    assert second == third != first
