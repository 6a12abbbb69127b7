"""Image edit field rules (grpc_server.operations.image_edit), as tables."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import pytest

from grpc_server.domain.errors import InvalidArgument
from grpc_server.domain.jobs import ImageEditParams
from grpc_server.domain.validation import (
    BACKGROUNDS,
    EDIT_TYPES,
    IMAGE_SIZES,
    INPUT_FIDELITIES,
    OUTPUT_FORMATS,
    QUALITIES,
    RESPONSE_FORMATS,
)
from grpc_server.operations.image_edit import validate_image_edit

VALID = ImageEditParams(model="openai/gpt-image-1", prompt="a red fox in the snow")


def validate(
    params: ImageEditParams,
    *,
    image_count: int = 1,
    has_mask: bool = False,
    stream: bool = False,
    max_images: int = 16,
) -> None:
    validate_image_edit(
        params,
        image_count=image_count,
        has_mask=has_mask,
        stream=stream,
        max_images=max_images,
        max_fallbacks=4,
    )


def refusal(params: ImageEditParams, **kwargs: Any) -> InvalidArgument:
    with pytest.raises(InvalidArgument) as caught:
        validate(params, **kwargs)
    return caught.value


def test_allowed_values_match_the_contract() -> None:
    assert set(EDIT_TYPES) == {"inpainting", "outpainting", "background_removal"}
    assert set(IMAGE_SIZES) == {"256x256", "512x512", "1024x1024", "1536x1024", "1024x1536", "auto"}
    assert set(RESPONSE_FORMATS) == {"url", "b64_json"}
    assert set(BACKGROUNDS) == {"transparent", "opaque", "auto"}
    assert set(INPUT_FIDELITIES) == {"low", "high"}
    assert set(QUALITIES) == {"auto", "high", "medium", "low", "standard"}
    assert set(OUTPUT_FORMATS) == {"png", "webp", "jpeg"}


ENUM_FIELDS: dict[str, tuple[str, ...]] = {
    "type": EDIT_TYPES,
    "size": IMAGE_SIZES,
    "response_format": RESPONSE_FORMATS,
    "background": BACKGROUNDS,
    "input_fidelity": INPUT_FIDELITIES,
    "quality": QUALITIES,
    "output_format": OUTPUT_FORMATS,
}


@pytest.mark.parametrize(
    "changes",
    [
        pytest.param({}, id="minimal"),
        *(
            pytest.param({field: value}, id=f"{field}={value}")
            for field, values in ENUM_FIELDS.items()
            for value in values
        ),
        pytest.param({"type": "background_removal", "prompt": ""}, id="background-removal-without-prompt"),
        pytest.param({"n": 1}, id="n-min"),
        pytest.param({"n": 10}, id="n-max"),
        pytest.param({"partial_images": 0}, id="partial-images-min"),
        pytest.param({"partial_images": 3}, id="partial-images-max"),
        pytest.param({"output_compression": 0}, id="output-compression-min"),
        pytest.param({"output_compression": 100}, id="output-compression-max"),
        pytest.param({"num_inference_steps": 0}, id="num-inference-steps-zero"),
        pytest.param({"num_inference_steps": 50}, id="num-inference-steps"),
        pytest.param({"seed": -7}, id="seed-negative"),
        pytest.param({"negative_prompt": "blurry", "user": "u-1"}, id="strings"),
        pytest.param({"model": "openai-compatible/org/model"}, id="model-with-slashes"),
        pytest.param({"fallbacks": ("gemini/imagen-3", "openai-compatible/org/m")}, id="fallbacks"),
        pytest.param({"extra_params": {"style": "vivid"}}, id="extra-params"),
    ],
)
def test_valid_requests_pass(changes: dict[str, Any]) -> None:
    validate(replace(VALID, **changes))


@pytest.mark.parametrize(
    ("image_count", "max_images", "has_mask"),
    [(1, 16, False), (16, 16, False), (16, 16, True), (2, 2, True)],
)
def test_image_counts_within_the_limit_pass(image_count: int, max_images: int, has_mask: bool) -> None:
    validate(VALID, image_count=image_count, max_images=max_images, has_mask=has_mask)


@pytest.mark.parametrize(
    ("changes", "kwargs", "param", "message"),
    [
        pytest.param(
            {}, {"stream": True}, "stream", "stream is not supported for async image edits", id="stream"
        ),
        pytest.param({"model": ""}, {}, "model", "model is required", id="model-missing"),
        pytest.param({"model": "   "}, {}, "model", "model is required", id="model-blank"),
        pytest.param(
            {"model": "gpt"},
            {},
            "model",
            "invalid model value: 'gpt' (expected provider/model)",
            id="model-bare",
        ),
        pytest.param(
            {"model": "openai/"},
            {},
            "model",
            "invalid model value: 'openai/' (expected provider/model)",
            id="no-name",
        ),
        pytest.param(
            {"model": "/gpt"},
            {},
            "model",
            "invalid model value: '/gpt' (expected provider/model)",
            id="no-provider",
        ),
        pytest.param(
            {"model": " openai/gpt"},
            {},
            "model",
            "invalid model value: ' openai/gpt' (expected provider/model)",
            id="model-padded",
        ),
        pytest.param({"prompt": ""}, {}, "prompt", "prompt is required", id="prompt-missing"),
        pytest.param({"prompt": "  \n"}, {}, "prompt", "prompt is required", id="prompt-blank"),
        pytest.param(
            {"prompt": "", "type": "inpainting"},
            {},
            "prompt",
            "prompt is required",
            id="prompt-missing-inpainting",
        ),
        pytest.param(
            {"prompt": "", "type": "outpainting"},
            {},
            "prompt",
            "prompt is required",
            id="prompt-missing-outpainting",
        ),
        pytest.param({}, {"image_count": 0}, "image", "at least one image is required", id="no-images"),
        pytest.param(
            {}, {"image_count": 17}, "image", "too many images: 17 (at most 16)", id="too-many-images"
        ),
        pytest.param(
            {},
            {"image_count": 3, "max_images": 2},
            "image",
            "too many images: 3 (at most 2)",
            id="configured-max",
        ),
        pytest.param(
            {"size": "300x300"},
            {},
            "size",
            "invalid size value: '300x300' "
            "(expected one of 256x256, 512x512, 1024x1024, 1536x1024, 1024x1536, auto)",
            id="size-exact-message",
        ),
        pytest.param({"n": 0}, {}, "n", "invalid n value: 0 (expected 1 to 10)", id="n-0"),
        pytest.param({"n": 11}, {}, "n", "invalid n value: 11 (expected 1 to 10)", id="n-11"),
        pytest.param({"n": -1}, {}, "n", "invalid n value: -1 (expected 1 to 10)", id="n-negative"),
        pytest.param(
            {"partial_images": 4},
            {},
            "partial_images",
            "invalid partial_images value: 4 (expected 0 to 3)",
            id="partial-images-4",
        ),
        pytest.param(
            {"partial_images": -1},
            {},
            "partial_images",
            "invalid partial_images value: -1 (expected 0 to 3)",
            id="partial-images-negative",
        ),
        pytest.param(
            {"output_compression": 101},
            {},
            "output_compression",
            "invalid output_compression value: 101 (expected 0 to 100)",
            id="output-compression-101",
        ),
        pytest.param(
            {"output_compression": -1},
            {},
            "output_compression",
            "invalid output_compression value: -1 (expected 0 to 100)",
            id="output-compression-negative",
        ),
        pytest.param(
            {"num_inference_steps": -1},
            {},
            "num_inference_steps",
            "invalid num_inference_steps value: -1 (expected 0 or more)",
            id="num-inference-steps-negative",
        ),
        pytest.param(
            {"fallbacks": ("gpt",)},
            {},
            "fallbacks",
            "invalid fallbacks value: 'gpt' (expected provider/model)",
            id="fallback-bare",
        ),
        pytest.param(
            {"fallbacks": ("gemini/imagen-3", "")},
            {},
            "fallbacks",
            "invalid fallbacks value: '' (expected provider/model)",
            id="second-fallback-empty",
        ),
        # Several faults: the first rule in the documented order wins.
        pytest.param(
            {"model": "", "prompt": "", "n": 99},
            {"stream": True, "image_count": 0},
            "stream",
            "stream is not supported for async image edits",
            id="stream-first",
        ),
        pytest.param({"model": "", "prompt": ""}, {}, "model", "model is required", id="model-before-prompt"),
        pytest.param(
            {"prompt": ""}, {"image_count": 0}, "prompt", "prompt is required", id="prompt-before-images"
        ),
        pytest.param(
            {"size": "big"},
            {"image_count": 0},
            "image",
            "at least one image is required",
            id="images-before-size",
        ),
        pytest.param(
            {"prompt": "", "type": "bg_removal"}, {}, "prompt", "prompt is required", id="prompt-before-type"
        ),
        pytest.param(
            {"n": 0, "fallbacks": ("x",)},
            {},
            "n",
            "invalid n value: 0 (expected 1 to 10)",
            id="n-before-fallbacks",
        ),
    ],
)
def test_invalid_requests_are_refused(
    changes: dict[str, Any], kwargs: dict[str, Any], param: str, message: str
) -> None:
    error = refusal(replace(VALID, **changes), **kwargs)
    assert (error.param, error.message) == (param, message)


BAD_ENUM_VALUES: dict[str, tuple[str, ...]] = {
    "type": ("", "bg_removal", "Inpainting", "inpainting "),
    "size": ("", "300x300", "1024X1024", "1024", "AUTO"),
    "response_format": ("", "URL", "b64", "json"),
    "background": ("", "white", "Transparent"),
    "input_fidelity": ("", "medium", "HIGH"),
    "quality": ("", "hd", "ultra", "Auto"),
    "output_format": ("", "jpg", "PNG", "gif"),
}


@pytest.mark.parametrize(
    ("field", "value"),
    [
        pytest.param(field, value, id=f"{field}={value!r}")
        for field, values in BAD_ENUM_VALUES.items()
        for value in values
    ],
)
def test_values_outside_their_set_are_refused(field: str, value: str) -> None:
    changes: dict[str, Any] = {field: value}
    error = refusal(replace(VALID, **changes))
    assert error.param == field
    assert error.message.startswith(f"invalid {field} value: {value!r} (expected one of ")
    for allowed in ENUM_FIELDS[field]:
        assert allowed in error.message
