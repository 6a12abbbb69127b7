"""The vocabulary of request fields (docs/rest-api.md §5): the values each field allows, and
the pure checks every operation's rules are made of. Each operation's own rules, in their
fixed order, live in its slice (grpc_server.operations.*).

Every refusal is an InvalidArgument naming the offending field in `param` and saying what
was wrong in its message. Absent optional fields are None; an empty string is a value like
any other, and is refused where it is not one of the allowed values.
"""

from __future__ import annotations

from grpc_server.domain.errors import InvalidArgument
from grpc_server.domain.jobs import ImageEditParams, ImageGenerationParams, ModelRef

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
# Image variations take dall-e-2's square sizes only.
VARIATION_SIZES: tuple[str, ...] = IMAGE_SIZES[:3]

N_RANGE = (1, 10)
DIMENSIONS_RANGE = (1, 65536)
MAX_EMBEDDING_INPUTS = 2048
PARTIAL_IMAGES_RANGE = (0, 3)
OUTPUT_COMPRESSION_RANGE = (0, 100)

PROMPTLESS_EDIT_TYPE = "background_removal"


def check_image_counts(params: ImageEditParams | ImageGenerationParams) -> None:
    """The numeric fields edits and generations share. seed: any integer, the provider's call."""
    check_range("n", params.n, N_RANGE)
    check_range("partial_images", params.partial_images, PARTIAL_IMAGES_RANGE)
    check_range("output_compression", params.output_compression, OUTPUT_COMPRESSION_RANGE)
    if params.num_inference_steps is not None and params.num_inference_steps < 0:
        raise InvalidArgument(
            f"invalid num_inference_steps value: {params.num_inference_steps} (expected 0 or more)",
            "num_inference_steps",
        )


def check_fallbacks(fallbacks: tuple[str, ...], max_fallbacks: int) -> None:
    if len(fallbacks) > max_fallbacks:
        raise InvalidArgument(f"too many fallbacks: {len(fallbacks)} (at most {max_fallbacks})", "fallbacks")
    for fallback in fallbacks:
        check_model("fallbacks", fallback, required=False)


def check_model(field: str, value: str, *, required: bool) -> None:
    if required and not value.strip():
        raise InvalidArgument(f"{field} is required", field)
    if ModelRef.parse(value) is None:
        raise InvalidArgument(f"invalid {field} value: {value!r} (expected provider/model)", field)


def check_choice(field: str, value: str | None, allowed: tuple[str, ...]) -> None:
    if value is not None and value not in allowed:
        raise InvalidArgument(
            f"invalid {field} value: {value!r} (expected one of {', '.join(allowed)})", field
        )


def check_range(field: str, value: int | None, bounds: tuple[int, int]) -> None:
    low, high = bounds
    if value is not None and not low <= value <= high:
        raise InvalidArgument(f"invalid {field} value: {value} (expected {low} to {high})", field)
