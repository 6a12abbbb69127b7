"""StabilityProvider against FakeStability, over real HTTP on 127.0.0.1."""

from __future__ import annotations

import asyncio
import base64
import io
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from PIL import Image

from grpc_server.config import ApiKey, ProviderSettings
from grpc_server.domain.jobs import EmbeddingParams, RequestType
from grpc_server.providers.base import (
    EmbeddingCall,
    ImageEditCall,
    ImageGenerationCall,
    ImageInput,
    ImageOutcome,
)
from grpc_server.providers.fan_out import MAX_PARALLEL
from grpc_server.providers.stability import StabilityProvider
from grpc_server.providers.stability_wire import aspect_ratio, outpaint_margins
from tests.fakes.stability_server import (
    EDIT_COLOR,
    FakeResponse,
    FakeStability,
    RecordedRequest,
    generated_size,
)
from tests.images import decode, mask_bytes, png_bytes
from tests.integration import helpers
from tests.integration.helpers import edit_call, generation_call, only_request
from tests.integration.helpers import provider_error as failure

KEY = "sk-stability-0123456789abcdef"
OTHER_KEY = "sk-stability-fedcba9876543210"
RED = (200, 30, 30, 255)


@pytest.fixture
async def fake() -> AsyncIterator[FakeStability]:
    async with FakeStability(api_key=KEY) as server:
        yield server


@pytest.fixture
def provider(session: aiohttp.ClientSession, fake: FakeStability) -> StabilityProvider:
    return StabilityProvider(session, ProviderSettings(keys=(ApiKey(KEY),), base_url=fake.base_url))


def image_file(tmp_path: Path, filename: str = "photo.png", size: tuple[int, int] = (96, 64)) -> ImageInput:
    return helpers.image_file(tmp_path, filename, size, colour=RED)


def mask_file(tmp_path: Path, size: tuple[int, int] = (96, 64)) -> ImageInput:
    """Opaque, with a transparent square in the middle: asyncgate's "edit here"."""
    path = tmp_path / "mask.png"
    path.write_bytes(mask_bytes(*size))
    return ImageInput(path, "mask.png", "image/png", size[0], size[1])


def generation(model: str = "core", **params: Any) -> ImageGenerationCall:
    return generation_call("stability", model, params.pop("prompt", "a lighthouse"), **params)


def edit(images: list[ImageInput], mask: ImageInput | None = None, **params: Any) -> ImageEditCall:
    return edit_call("stability", "core", images, mask, **params)


def single_image(outcome: ImageOutcome) -> Image.Image:
    assert len(outcome.images) == 1
    data = outcome.images[0].data
    assert data is not None
    return decode(data)


def assert_stability_call(sent: RecordedRequest, path: str, key: str = KEY) -> None:
    assert (sent.method, sent.path) == ("POST", path)
    assert sent.headers["authorization"] == f"Bearer {key}"
    assert sent.headers["accept"] == "image/*"
    assert sent.headers["content-type"].startswith("multipart/form-data; boundary=")


# Generations: what is sent, what comes back


async def test_a_generation_sends_the_set_fields_as_multipart(
    provider: StabilityProvider, fake: FakeStability
) -> None:
    call = generation(
        "core",
        prompt="un phare — ☀",
        negative_prompt="fog",
        seed=7,
        size="1536x1024",
        output_format="webp",
        quality="high",
    )

    outcome = await provider.generate_image(call)

    sent = only_request(fake)
    assert_stability_call(sent, "/v2beta/stable-image/generate/core")
    # Exactly these: nothing unset, nothing Stability does not know (quality, n, model).
    assert sent.fields == {
        "prompt": ["un phare — ☀"],
        "negative_prompt": ["fog"],
        "seed": ["7"],
        "aspect_ratio": ["3:2"],
        "output_format": ["webp"],
    }
    assert sent.files == []
    assert outcome.images[0].content_type == "image/webp"
    assert outcome.output_format == "webp"
    assert single_image(outcome).size == generated_size("3:2")


async def test_a_prompt_only_generation_is_still_multipart(
    provider: StabilityProvider, fake: FakeStability
) -> None:
    outcome = await provider.generate_image(generation("ultra"))

    sent = only_request(fake)
    assert_stability_call(sent, "/v2beta/stable-image/generate/ultra")
    assert sent.fields == {"prompt": ["a lighthouse"]}
    assert outcome.images[0].content_type == "image/png"
    assert single_image(outcome).size == (64, 64)


@pytest.mark.parametrize(
    ("model", "endpoint", "model_field"),
    [
        ("core", "core", None),
        ("stable-image-core", "core", None),
        ("ultra", "ultra", None),
        ("stable-image-ultra", "ultra", None),
        ("sd3", "sd3", None),
        ("sd3.5-large", "sd3", "sd3.5-large"),
        ("sd3.5-large-turbo", "sd3", "sd3.5-large-turbo"),
        ("sd3.5-medium", "sd3", "sd3.5-medium"),
        ("sd3-large", "sd3", "sd3-large"),
    ],
)
async def test_the_model_name_chooses_the_endpoint(
    provider: StabilityProvider, fake: FakeStability, model: str, endpoint: str, model_field: str | None
) -> None:
    await provider.generate_image(generation(model))

    sent = only_request(fake)
    assert sent.path == f"/v2beta/stable-image/generate/{endpoint}"
    assert sent.field("model") == model_field


async def test_an_unknown_model_is_refused_without_a_call(
    provider: StabilityProvider, fake: FakeStability
) -> None:
    error = await failure(provider.generate_image(generation("dall-e-3")))

    assert (error.status_code, error.code, error.param, error.retryable) == (
        400,
        "model_not_found",
        "model",
        False,
    )
    assert fake.requests == []


@pytest.mark.parametrize(
    ("size", "ratio"),
    [
        ("1024x1024", "1:1"),
        ("256x256", "1:1"),
        ("1536x1024", "3:2"),
        ("1024x1536", "2:3"),
        ("1792x1024", "16:9"),
        ("1024x1792", "9:16"),
        ("2560x1080", "21:9"),
        ("1080x2560", "9:21"),
        ("1000x800", "5:4"),
        ("800x1000", "4:5"),
        ("auto", None),
        (None, None),
    ],
)
def test_size_maps_to_the_nearest_aspect_ratio(size: str | None, ratio: str | None) -> None:
    assert aspect_ratio(size) == ratio


async def test_a_tall_size_is_sent_as_a_tall_ratio(provider: StabilityProvider, fake: FakeStability) -> None:
    outcome = await provider.generate_image(generation("sd3.5-large", size="1024x1792"))

    assert only_request(fake).field("aspect_ratio") == "9:16"
    assert single_image(outcome).size == generated_size("9:16")


async def test_with_max_concurrency_set_the_n_calls_go_one_after_another(
    session: aiohttp.ClientSession, fake: FakeStability
) -> None:
    # The request holds one of the provider's slots (and its pool has max_concurrency
    # connections): its n calls must not take more at once (issue 17).
    settings = ProviderSettings(keys=(ApiKey(KEY),), base_url=fake.base_url, max_concurrency=2)
    fake.latency = 0.05

    outcome = await StabilityProvider(session, settings).generate_image(generation(n=4, seed=1))

    assert len(outcome.images) == 4 and len(fake.requests) == 4
    assert fake.max_in_flight == 1


async def test_n_images_are_n_calls_at_most_max_parallel_at_once(
    provider: StabilityProvider, fake: FakeStability
) -> None:
    fake.latency = 0.1

    outcome = await provider.generate_image(generation(n=6, seed=10))

    assert len(outcome.images) == 6
    assert all(image.data for image in outcome.images)
    assert len(fake.requests) == 6
    assert fake.max_in_flight == MAX_PARALLEL
    # A fixed seed moves on per call: the same seed would give six copies of one image.
    assert sorted(int(r.field("seed") or 0) for r in fake.requests) == list(range(10, 16))


async def test_a_random_seed_stays_random_for_every_call(
    provider: StabilityProvider, fake: FakeStability
) -> None:
    await provider.generate_image(generation(n=2, seed=0))

    assert [r.field("seed") for r in fake.requests] == ["0", "0"]


async def test_one_failed_call_among_n_fails_the_request(
    provider: StabilityProvider, fake: FakeStability
) -> None:
    fake.enqueue(FakeResponse.success(), FakeResponse.error(500))

    error = await failure(provider.generate_image(generation(n=2)))

    assert (error.status_code, error.retryable) == (500, True)
    assert fake.queued == 0


async def test_extra_params_are_sent_but_cannot_replace_the_files(
    provider: StabilityProvider, fake: FakeStability, tmp_path: Path
) -> None:
    call = edit(
        [image_file(tmp_path)],
        type="outpainting",
        extra_params={"creativity": "0.3", "image": "no", "mask": "no"},
    )

    await provider.edit_image(call)

    sent = only_request(fake)
    assert sent.field("creativity") == "0.3"
    assert "image" not in sent.fields and "mask" not in sent.fields
    assert [f.name for f in sent.files] == ["image"]


# Edits: what is sent, what comes back


async def test_inpainting_sends_the_image_and_the_mask_converted_to_white_means_edit(
    provider: StabilityProvider, fake: FakeStability, tmp_path: Path
) -> None:
    image = image_file(tmp_path, 'chat "été".png')
    call = edit(
        [image], mask_file(tmp_path), type="inpainting", seed=3, negative_prompt="dogs", output_format="png"
    )

    outcome = await provider.edit_image(call)

    sent = only_request(fake)
    assert_stability_call(sent, "/v2beta/stable-image/edit/inpaint")
    assert sent.fields == {
        "prompt": ["make it blue"],
        "negative_prompt": ["dogs"],
        "seed": ["3"],
        "output_format": ["png"],
    }
    assert [(f.name, f.filename, f.content_type) for f in sent.files] == [
        ("image", "chat %22été%22.png", "image/png"),  # quotes escaped as browsers do
        ("mask", "mask.png", "image/png"),
    ]
    image_part = sent.file("image")
    assert image_part is not None and image_part.data == image.path.read_bytes()
    mask_part = sent.file("mask")
    assert mask_part is not None
    mask = decode(mask_part.data)
    # asyncgate's transparent centre (edit) is white; the opaque rest (keep) is black.
    assert mask.mode == "L" and mask.size == (96, 64)
    assert mask.getpixel((48, 32)) == 255
    assert mask.getpixel((0, 0)) == 0 and mask.getpixel((95, 63)) == 0
    assert sorted(value for _, value in mask.getcolors() or []) == [0, 255]
    # The fake painted where the mask is white: the centre, not the corners.
    result = single_image(outcome).convert("RGBA")
    assert result.getpixel((48, 32)) == EDIT_COLOR
    assert result.getpixel((0, 0)) == RED


async def test_a_mask_without_a_type_means_inpainting(
    provider: StabilityProvider, fake: FakeStability, tmp_path: Path
) -> None:
    await provider.edit_image(edit([image_file(tmp_path)], mask_file(tmp_path)))

    sent = only_request(fake)
    assert sent.path == "/v2beta/stable-image/edit/inpaint"
    assert [f.name for f in sent.files] == ["image", "mask"]


async def test_inpainting_without_a_mask_sends_no_mask(
    provider: StabilityProvider, fake: FakeStability, tmp_path: Path
) -> None:
    await provider.edit_image(edit([image_file(tmp_path)], type="inpainting"))

    sent = only_request(fake)
    assert [f.name for f in sent.files] == ["image"]
    assert sent.fields == {"prompt": ["make it blue"]}


async def test_outpainting_centres_the_image_in_the_requested_size(
    provider: StabilityProvider, fake: FakeStability, tmp_path: Path
) -> None:
    call = edit([image_file(tmp_path, size=(97, 64))], type="outpainting", size="1536x1024", seed=5)

    outcome = await provider.edit_image(call)

    sent = only_request(fake)
    assert_stability_call(sent, "/v2beta/stable-image/edit/outpaint")
    assert sent.fields == {
        "left": ["719"],
        "right": ["720"],
        "up": ["480"],
        "down": ["480"],
        "prompt": ["make it blue"],
        "seed": ["5"],
    }
    result = single_image(outcome).convert("RGBA")
    assert result.size == (1536, 1024)
    assert result.getpixel((719 + 48, 480 + 32)) == RED


async def test_outpainting_without_a_size_grows_the_image_by_half(
    provider: StabilityProvider, fake: FakeStability, tmp_path: Path
) -> None:
    outcome = await provider.edit_image(
        edit([image_file(tmp_path)], type="outpainting", size="auto", prompt="")
    )

    sent = only_request(fake)
    # No prompt: Stability's outpaint does not need one.
    assert sent.fields == {"left": ["24"], "right": ["24"], "up": ["16"], "down": ["16"]}
    assert single_image(outcome).size == (144, 96)


def test_outpaint_margins_are_clamped_to_2000() -> None:
    assert outpaint_margins(8400, 1000, None) == {"left": 2000, "right": 2000, "up": 250, "down": 250}
    assert outpaint_margins(100, 100, "5000x100") == {"left": 2000, "right": 2000, "up": 0, "down": 0}
    # A size smaller than the image in one axis crops nothing there.
    assert outpaint_margins(200, 100, "100x300") == {"left": 0, "right": 0, "up": 100, "down": 100}


async def test_outpainting_to_a_size_no_larger_than_the_image_is_refused(
    provider: StabilityProvider, fake: FakeStability, tmp_path: Path
) -> None:
    call = edit([image_file(tmp_path, size=(256, 256))], type="outpainting", size="256x256")

    error = await failure(provider.edit_image(call))

    assert (error.status_code, error.param, error.retryable) == (400, "size", False)
    assert fake.requests == []


async def test_background_removal_sends_only_the_image_and_format(
    provider: StabilityProvider, fake: FakeStability, tmp_path: Path
) -> None:
    path = tmp_path / "subject.png"
    subject = Image.new("RGBA", (64, 64), (230, 230, 230, 255))
    subject.paste((200, 20, 20, 255), (16, 16, 48, 48))
    subject.save(path)
    call = edit(
        [ImageInput(path, "subject.png", "image/png", 64, 64)],
        type="background_removal",
        prompt="",
        seed=4,
        output_format="webp",
    )

    outcome = await provider.edit_image(call)

    sent = only_request(fake)
    assert_stability_call(sent, "/v2beta/stable-image/edit/remove-background")
    assert sent.fields == {"output_format": ["webp"]}
    assert [f.name for f in sent.files] == ["image"]
    assert outcome.images[0].content_type == "image/webp"
    result = single_image(outcome).convert("RGBA")
    assert result.getpixel((0, 0)) == (0, 0, 0, 0)
    assert result.getpixel((32, 32)) == (200, 20, 20, 255)


async def test_background_removal_to_jpeg_is_refused(
    provider: StabilityProvider, fake: FakeStability, tmp_path: Path
) -> None:
    call = edit([image_file(tmp_path)], type="background_removal", output_format="jpeg")

    error = await failure(provider.edit_image(call))

    assert (error.status_code, error.param) == (400, "output_format")
    assert fake.requests == []


@pytest.mark.parametrize("edit_type", [None, "variation", "inpaint"])
async def test_an_edit_without_a_known_type_or_a_mask_is_refused(
    provider: StabilityProvider, fake: FakeStability, tmp_path: Path, edit_type: str | None
) -> None:
    error = await failure(provider.edit_image(edit([image_file(tmp_path)], type=edit_type)))

    assert (error.status_code, error.param, error.retryable) == (400, "type", False)
    assert fake.requests == []


@pytest.mark.parametrize("size", [(32, 32), (40, 400), (63, 64), (4000, 4000)])
async def test_an_image_stability_would_refuse_is_refused_without_a_call(
    provider: StabilityProvider, fake: FakeStability, tmp_path: Path, size: tuple[int, int]
) -> None:
    # Only the declared size matters: the file is never read.
    image = ImageInput(tmp_path / "never-read.png", "odd.png", "image/png", *size)

    error = await failure(provider.edit_image(edit([image], type="inpainting")))

    assert (error.status_code, error.param, error.retryable) == (400, "image", False)
    assert f"{size[0]}x{size[1]}" in error.message
    assert fake.requests == []


async def test_several_images_are_refused(
    provider: StabilityProvider, fake: FakeStability, tmp_path: Path
) -> None:
    images = [image_file(tmp_path, "a.png"), image_file(tmp_path, "b.png")]

    error = await failure(provider.edit_image(edit(images, type="inpainting")))

    assert (error.status_code, error.param) == (400, "image")
    assert fake.requests == []


async def test_a_mask_that_is_no_image_is_refused(
    provider: StabilityProvider, fake: FakeStability, tmp_path: Path
) -> None:
    path = tmp_path / "mask.png"
    path.write_bytes(b"not a png")
    mask = ImageInput(path, "mask.png", "image/png", 96, 64)

    error = await failure(provider.edit_image(edit([image_file(tmp_path)], mask)))

    assert (error.status_code, error.param) == (400, "mask")
    assert fake.requests == []


async def test_n_edits_are_n_calls_each_with_the_image(
    provider: StabilityProvider, fake: FakeStability, tmp_path: Path
) -> None:
    image = image_file(tmp_path)

    outcome = await provider.edit_image(edit([image], mask_file(tmp_path), n=3))

    assert len(outcome.images) == 3
    assert len(fake.requests) == 3
    for sent in fake.requests:
        part = sent.file("image")
        assert part is not None and part.data == image.path.read_bytes()


# Answers in Stability's JSON shape


async def test_a_json_answer_is_decoded(provider: StabilityProvider, fake: FakeStability) -> None:
    jpeg = decode(png_bytes()).convert("RGB")
    data = _encoded(jpeg, "JPEG")
    doc = {"image": base64.b64encode(data).decode(), "finish_reason": "SUCCESS", "seed": 42}
    fake.enqueue(FakeResponse.raw(200, json.dumps(doc).encode(), "application/json"))

    outcome = await provider.generate_image(generation())

    assert outcome.images[0].data == data
    assert outcome.images[0].content_type == "image/jpeg"


async def test_content_filtered_json_is_a_content_filtered_error(
    provider: StabilityProvider, fake: FakeStability
) -> None:
    doc = {"image": "", "finish_reason": "CONTENT_FILTERED", "seed": 1}
    fake.enqueue(FakeResponse.raw(200, json.dumps(doc).encode()))

    error = await failure(provider.generate_image(generation()))

    assert (error.status_code, error.code, error.retryable) == (400, "content_filtered", False)


# Errors


@pytest.mark.parametrize(
    ("status", "errors", "name", "param", "retryable"),
    [
        (400, ["prompt: cannot be empty"], "bad_request", "prompt", False),
        (401, ["authorization: invalid or missing API key"], "unauthorized", "authorization", False),
        (403, [], "content_moderation", "", False),
        (404, ["not found"], "not_found", "", False),
        (413, ["body: payloads cannot be larger than 10MiB"], "payload_too_large", "body", False),
        (422, ["Your request was rejected"], "invalid_request", "", False),
        (500, ["An unexpected server error occurred"], "internal_error", "", True),
        (503, ["The service is overloaded, please try again later"], "service_unavailable", "", True),
    ],
)
async def test_stability_errors_are_classified(
    provider: StabilityProvider,
    fake: FakeStability,
    status: int,
    errors: list[str],
    name: str,
    param: str,
    retryable: bool,
) -> None:
    fake.enqueue(FakeResponse.error(status, *errors))

    error = await failure(provider.generate_image(generation()))

    assert error.status_code == status
    assert (error.type, error.code, error.param) == (name, name, param)
    assert error.retryable is retryable
    assert error.message == ("; ".join(errors) if errors else json.loads(_body(status))["errors"][0])
    assert not error.is_gateway_error


async def test_a_429_is_retryable_with_its_retry_after(
    provider: StabilityProvider, fake: FakeStability
) -> None:
    fake.enqueue(FakeResponse.error(429, headers={"Retry-After": "7"}))

    error = await failure(provider.generate_image(generation()))

    assert (error.status_code, error.code, error.retryable, error.retry_after) == (
        429,
        "rate_limit_exceeded",
        True,
        7.0,
    )


async def test_several_errors_are_joined_and_the_first_field_is_the_param(
    provider: StabilityProvider, fake: FakeStability
) -> None:
    fake.enqueue(FakeResponse.error(400, "aspect_ratio: must be one of 1:1, 16:9", "seed: too large"))

    error = await failure(provider.generate_image(generation()))

    assert error.message == "aspect_ratio: must be one of 1:1, 16:9; seed: too large"
    assert error.param == "aspect_ratio"


async def test_the_fake_refuses_a_missing_prompt_with_a_stability_400(
    provider: StabilityProvider, fake: FakeStability
) -> None:
    error = await failure(provider.generate_image(generation(prompt="")))

    assert (error.status_code, error.type, error.param) == (400, "bad_request", "prompt")
    assert error.message == "prompt: cannot be empty"


async def test_a_wrong_key_is_a_401_that_does_not_repeat_the_key(
    session: aiohttp.ClientSession, fake: FakeStability
) -> None:
    wrong = "sk-wrong-9876543210fedcba"
    provider = StabilityProvider(session, ProviderSettings(keys=(ApiKey(wrong),), base_url=fake.base_url))

    error = await failure(provider.generate_image(generation()))

    assert (error.status_code, error.retryable) == (401, False)
    assert only_request(fake).key == wrong
    assert wrong not in repr(error)


async def test_a_key_echoed_in_an_error_is_redacted(provider: StabilityProvider, fake: FakeStability) -> None:
    fake.enqueue(FakeResponse.error(401, f"authorization: key {KEY} was revoked", name=f"bad {KEY}"))

    error = await failure(provider.generate_image(generation()))

    assert KEY not in repr(error)
    assert error.message == "authorization: key [redacted] was revoked"


async def test_a_content_filtered_image_is_a_content_filtered_error(
    provider: StabilityProvider, fake: FakeStability
) -> None:
    fake.enqueue(FakeResponse.content_filtered())

    error = await failure(provider.generate_image(generation()))

    assert (error.status_code, error.code, error.retryable) == (400, "content_filtered", False)


@pytest.mark.parametrize(
    ("body", "content_type"),
    [
        (b"<html>oops</html>", "text/html"),
        (b"not an image at all", "image/png"),
        (b"{not json", "application/json"),
        (b'{"image": "***", "finish_reason": "SUCCESS"}', "application/json"),
        (b'{"finish_reason": "SUCCESS"}', "application/json"),
        (base64.b64encode(b"{}"), "application/json"),
    ],
)
async def test_a_malformed_success_is_a_retryable_invalid_response(
    provider: StabilityProvider, fake: FakeStability, body: bytes, content_type: str
) -> None:
    fake.enqueue(FakeResponse.raw(200, body, content_type))

    error = await failure(provider.generate_image(generation()))

    assert (error.status_code, error.code, error.retryable) == (502, "invalid_response", True)


async def test_an_error_that_is_not_stability_json_keeps_a_prefix_of_the_body(
    provider: StabilityProvider, fake: FakeStability
) -> None:
    fake.enqueue(FakeResponse.raw(502, b"<html>\n  Bad   gateway\n</html>", "text/html"))

    error = await failure(provider.generate_image(generation()))

    assert (error.status_code, error.message, error.retryable) == (502, "<html> Bad gateway </html>", True)


async def test_a_hanging_call_is_bounded_by_the_callers_timeout(
    provider: StabilityProvider, fake: FakeStability
) -> None:
    fake.enqueue(FakeResponse.hang())

    with pytest.raises(TimeoutError):
        async with asyncio.timeout(0.3):
            await provider.generate_image(generation())

    assert len(fake.requests) == 1


async def test_hanging_calls_among_n_are_all_cancelled(
    provider: StabilityProvider, fake: FakeStability
) -> None:
    fake.enqueue(FakeResponse.hang(), FakeResponse.hang(), FakeResponse.hang())

    with pytest.raises(TimeoutError):
        async with asyncio.timeout(0.3):
            await provider.generate_image(generation(n=3))

    assert len(fake.requests) == 3


# Keys, capabilities


async def test_a_key_that_got_a_429_rests_while_the_other_serves(
    session: aiohttp.ClientSession, tmp_path: Path
) -> None:
    async with FakeStability(api_key=[KEY, OTHER_KEY]) as fake:
        settings = ProviderSettings(keys=(ApiKey(KEY), ApiKey(OTHER_KEY)), base_url=fake.base_url)
        provider = StabilityProvider(session, settings)
        fake.enqueue(FakeResponse.error(429, headers={"Retry-After": "30"}))

        await failure(provider.generate_image(generation()))
        for _ in range(3):
            await provider.edit_image(edit([image_file(tmp_path)], type="background_removal"))

        limited = fake.requests[0].key
        assert limited in (KEY, OTHER_KEY)
        assert [r.key for r in fake.requests[1:]] == [({KEY, OTHER_KEY} - {limited}).pop()] * 3


async def test_a_content_moderation_403_does_not_rest_the_key(session: aiohttp.ClientSession) -> None:
    async with FakeStability(api_key=[KEY, OTHER_KEY]) as fake:
        settings = ProviderSettings(keys=(ApiKey(KEY), ApiKey(OTHER_KEY)), base_url=fake.base_url)
        provider = StabilityProvider(session, settings)
        fake.enqueue(FakeResponse.error(403))

        error = await failure(provider.generate_image(generation()))
        for _ in range(24):
            await provider.generate_image(generation())

        assert (error.status_code, error.code) == (403, "content_moderation")
        # Both keys still serve (by weight: all 24 on one key would be a 1 in 8 million chance).
        assert {r.key for r in fake.requests[1:]} == {KEY, OTHER_KEY}


async def test_without_a_key_nothing_is_sent(session: aiohttp.ClientSession, fake: FakeStability) -> None:
    provider = StabilityProvider(session, ProviderSettings(keys=(), base_url=fake.base_url))

    error = await failure(provider.generate_image(generation()))

    assert (error.status_code, error.is_gateway_error, error.retryable) == (401, True, False)
    assert (error.type, error.code) == ("authentication_error", "missing_api_key")
    assert fake.requests == []


async def test_a_trailing_slash_on_the_base_url_is_ignored(
    session: aiohttp.ClientSession, fake: FakeStability
) -> None:
    provider = StabilityProvider(session, ProviderSettings(keys=(ApiKey(KEY),), base_url=fake.base_url + "/"))

    await provider.generate_image(generation())

    assert only_request(fake).path == "/v2beta/stable-image/generate/core"


async def test_embeddings_are_unsupported(session: aiohttp.ClientSession) -> None:
    provider = StabilityProvider(session, ProviderSettings(keys=(ApiKey(KEY),)), name="stability-eu")
    assert provider.name == "stability-eu"
    assert provider.supports(RequestType.IMAGE_GENERATION)
    assert provider.supports(RequestType.IMAGE_EDIT)
    assert not provider.supports(RequestType.EMBEDDING)

    call = EmbeddingCall(model="core", params=EmbeddingParams(model="stability-eu/core", input="hi"))
    error = await failure(provider.embed(call))

    assert (error.status_code, error.code, error.is_gateway_error) == (400, "unsupported_operation", True)


# The fake itself, where the provider never goes


async def test_the_fake_answers_json_when_asked(session: aiohttp.ClientSession, fake: FakeStability) -> None:
    form = aiohttp.FormData(default_to_multipart=True)
    form.add_field("prompt", "a lighthouse")
    form.add_field("aspect_ratio", "16:9")
    headers = {"Authorization": f"Bearer {KEY}", "Accept": "application/json"}

    async with session.post(
        f"{fake.base_url}/v2beta/stable-image/generate/core", data=form, headers=headers
    ) as r:
        assert r.status == 200
        assert r.headers["Content-Type"] == "application/json; type=image/png"
        doc = await r.json(content_type=None)

    assert doc["finish_reason"] == "SUCCESS" and isinstance(doc["seed"], int)
    assert decode(base64.b64decode(doc["image"])).size == generated_size("16:9")


@pytest.mark.parametrize(
    ("path", "data", "status", "name"),
    [
        ("/v2beta/stable-image/generate/core", {"prompt": "x"}, 400, "bad_request"),  # url-encoded
        ("/v2beta/stable-image/generate/turbo", None, 404, "not_found"),
        ("/v1/generation", None, 404, "not_found"),
    ],
)
async def test_the_fake_refuses_what_stability_refuses(
    session: aiohttp.ClientSession, fake: FakeStability, path: str, data: Any, status: int, name: str
) -> None:
    headers = {"Authorization": f"Bearer {KEY}"}
    async with session.post(fake.base_url + path, data=data, headers=headers) as response:
        assert response.status == status
        doc = await response.json()

    assert doc["name"] == name and isinstance(doc["id"], str) and doc["errors"]


async def test_the_fake_checks_outpaint_margins(session: aiohttp.ClientSession, fake: FakeStability) -> None:
    form = aiohttp.FormData()
    form.add_field("image", png_bytes(64, 64), filename="a.png", content_type="image/png")
    form.add_field("left", "0")
    headers = {"Authorization": f"Bearer {KEY}"}

    async with session.post(
        f"{fake.base_url}/v2beta/stable-image/edit/outpaint", data=form, headers=headers
    ) as r:
        assert r.status == 400
        doc = await r.json()

    assert doc["errors"] == ["left: at least one of left, right, up or down must be greater than 0"]


def _encoded(image: Image.Image, image_format: str) -> bytes:
    out = io.BytesIO()
    image.save(out, image_format)
    return out.getvalue()


def _body(status: int) -> bytes:
    return FakeResponse.error(status).body
