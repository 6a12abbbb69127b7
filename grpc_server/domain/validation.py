"""Field rules of image edit, image generation and embeddings requests (CONTRACT
section 5), as pure functions.

Every refusal is an InvalidArgument naming the offending field in `param` and
saying what was wrong in its message. The checks run in a fixed order so that a
request with several faults is always refused for the same one. Image bytes are
checked elsewhere (grpc_server.images); here only their count matters.

Absent optional fields are None; an empty string is a value like any other, and
is refused where it is not one of the allowed values.
"""

from __future__ import annotations

from typing import cast

from grpc_server.domain.jobs import EmbeddingParams, ImageEditParams, ImageGenerationParams, split_model
from grpc_server.errors import InvalidArgument

# Allowed values, in the order the contract lists them (the order shows in messages).
EDIT_TYPES: tuple[str, ...] = ("inpainting", "outpainting", "background_removal")
IMAGE_SIZES: tuple[str, ...] = ("256x256", "512x512", "1024x1024", "1536x1024", "1024x1536", "auto")
RESPONSE_FORMATS: tuple[str, ...] = ("url", "b64_json")
BACKGROUNDS: tuple[str, ...] = ("transparent", "opaque", "auto")
INPUT_FIDELITIES: tuple[str, ...] = ("low", "high")
QUALITIES: tuple[str, ...] = ("auto", "high", "medium", "low", "standard")
OUTPUT_FORMATS: tuple[str, ...] = ("png", "webp", "jpeg")

# Image generations take the dall-e-3 sizes and quality too.
GENERATION_SIZES: tuple[str, ...] = (*IMAGE_SIZES[:-1], "1792x1024", "1024x1792", "auto")
GENERATION_QUALITIES: tuple[str, ...] = (*QUALITIES, "hd")
STYLES: tuple[str, ...] = ("vivid", "natural")
MODERATIONS: tuple[str, ...] = ("low", "auto")
ENCODING_FORMATS: tuple[str, ...] = ("float", "base64")

N_RANGE = (1, 10)
DIMENSIONS_RANGE = (1, 65536)
MAX_EMBEDDING_INPUTS = 2048
PARTIAL_IMAGES_RANGE = (0, 3)
OUTPUT_COMPRESSION_RANGE = (0, 100)

_PROMPTLESS_TYPE = "background_removal"


def validate_image_edit(
    params: ImageEditParams, *, image_count: int, has_mask: bool, stream: bool, max_images: int
) -> None:
    """Refuse the first rule an image edit breaks; return quietly when it breaks none.

    `has_mask` is accepted so callers pass the whole shape of the request; the
    mask's own rules (PNG, same size as the first image) need its bytes and live
    in grpc_server.images.check_mask.
    """
    if stream:
        raise InvalidArgument("stream is not supported for async image edits", "stream")
    _check_model("model", params.model, required=True)
    if not params.prompt.strip() and params.type != _PROMPTLESS_TYPE:
        raise InvalidArgument("prompt is required", "prompt")
    if image_count < 1:
        raise InvalidArgument("at least one image is required", "image")
    if image_count > max_images:
        raise InvalidArgument(f"too many images: {image_count} (at most {max_images})", "image")

    _check_choice("type", params.type, EDIT_TYPES)
    _check_choice("size", params.size, IMAGE_SIZES)
    _check_choice("response_format", params.response_format, RESPONSE_FORMATS)
    _check_choice("background", params.background, BACKGROUNDS)
    _check_choice("input_fidelity", params.input_fidelity, INPUT_FIDELITIES)
    _check_choice("quality", params.quality, QUALITIES)
    _check_choice("output_format", params.output_format, OUTPUT_FORMATS)

    _check_image_counts(params)
    _check_fallbacks(params.fallbacks)


def validate_image_generation(params: ImageGenerationParams, *, stream: bool) -> None:
    """Refuse the first rule an image generation breaks."""
    if stream:
        raise InvalidArgument("stream is not supported for async image generations", "stream")
    _check_model("model", params.model, required=True)
    if not params.prompt.strip():
        raise InvalidArgument("prompt is required", "prompt")
    _check_choice("size", params.size, GENERATION_SIZES)
    _check_choice("quality", params.quality, GENERATION_QUALITIES)
    _check_choice("style", params.style, STYLES)
    _check_choice("response_format", params.response_format, RESPONSE_FORMATS)
    _check_choice("background", params.background, BACKGROUNDS)
    _check_choice("moderation", params.moderation, MODERATIONS)
    _check_choice("output_format", params.output_format, OUTPUT_FORMATS)
    _check_image_counts(params)
    _check_fallbacks(params.fallbacks)


def validate_embedding(params: EmbeddingParams) -> None:
    """Refuse the first rule an embeddings request breaks."""
    _check_model("model", params.model, required=True)
    items = params.inputs()
    if not items:
        raise InvalidArgument("input is required and must not be empty", "input")
    if len(items) > MAX_EMBEDDING_INPUTS:
        raise InvalidArgument(f"too many inputs: {len(items)} (at most {MAX_EMBEDDING_INPUTS})", "input")
    for index, item in enumerate(items):
        if isinstance(item, str):
            if not item:
                raise InvalidArgument(f"input[{index}] is empty", "input")
        elif not item:
            raise InvalidArgument(f"input[{index}] has no tokens", "input")
        elif min(cast(list[int], item)) < 0:
            raise InvalidArgument(f"input[{index}] has a negative token id", "input")
    _check_choice("encoding_format", params.encoding_format, ENCODING_FORMATS)
    _check_range("dimensions", params.dimensions, DIMENSIONS_RANGE)
    _check_fallbacks(params.fallbacks)


def _check_image_counts(params: ImageEditParams | ImageGenerationParams) -> None:
    """The numeric fields edits and generations share. seed: any integer, the provider's call."""
    _check_range("n", params.n, N_RANGE)
    _check_range("partial_images", params.partial_images, PARTIAL_IMAGES_RANGE)
    _check_range("output_compression", params.output_compression, OUTPUT_COMPRESSION_RANGE)
    if params.num_inference_steps is not None and params.num_inference_steps < 0:
        raise InvalidArgument(
            f"invalid num_inference_steps value: {params.num_inference_steps} (expected 0 or more)",
            "num_inference_steps",
        )


def _check_fallbacks(fallbacks: tuple[str, ...]) -> None:
    for fallback in fallbacks:
        _check_model("fallbacks", fallback, required=False)


def _check_model(field: str, value: str, *, required: bool) -> None:
    if required and not value.strip():
        raise InvalidArgument(f"{field} is required", field)
    if split_model(value) is None:
        raise InvalidArgument(f"invalid {field} value: {value!r} (expected provider/model)", field)


def _check_choice(field: str, value: str | None, allowed: tuple[str, ...]) -> None:
    if value is not None and value not in allowed:
        raise InvalidArgument(
            f"invalid {field} value: {value!r} (expected one of {', '.join(allowed)})", field
        )


def _check_range(field: str, value: int | None, bounds: tuple[int, int]) -> None:
    low, high = bounds
    if value is not None and not low <= value <= high:
        raise InvalidArgument(f"invalid {field} value: {value} (expected {low} to {high})", field)
