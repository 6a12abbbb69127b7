"""The `local` provider: offline image edits and variations done with Pillow.

This is NOT a generative model. It never calls out to a network and ignores
the prompt: it does deterministic, classical image processing, so results are
plausible fills, not invented content. It accepts any model name
(`local/pillow`, ...). Edit operations, chosen by `params.type`:

- background_removal: make the flat background around the subject transparent
  (image_background).
- outpainting: grow the canvas and extend the image's edges into the new area (image_fill).
- inpainting: fill the mask's transparent pixels smoothly from their surroundings (image_fill).

Variations are the image mirrored and re-tinted, differently for each of n (image_variation).
Generations are a placeholder (a gradient with the prompt written on it: see
placeholder_images), embeddings a feature-hashing model (see hashing_embeddings):
similar wording gives similar vectors.

Memory per job is bounded: every input is read as a copy of at most `max_pixels`
pixels (ServerConfig.local_max_pixels; a larger input is scaled down, its aspect
ratio kept, and a mask with it), so the many intermediate copies the algorithms make
stay small whatever the input. Outputs of a reduced input are at the reduced size
unless `size` asks for another. All Pillow work runs in a worker thread, never on the
event loop. Encoding: see image_codec.
"""

from __future__ import annotations

import asyncio
import re
import time

from PIL import Image, UnidentifiedImageError

from grpc_server.domain.jobs import RequestType
from grpc_server.providers.base import (
    EmbeddingCall,
    EmbeddingOutcome,
    ImageEditCall,
    ImageGenerationCall,
    ImageInput,
    ImageOutcome,
    ImageVariationCall,
    ProducedImage,
    ProviderError,
)
from grpc_server.providers.hashing_embeddings import (
    DEFAULT_DIMENSIONS,
    MAX_DIMENSIONS,
    count_tokens,
    embed_text,
    embed_tokens,
)
from grpc_server.providers.image_background import remove_background
from grpc_server.providers.image_codec import CONTENT_TYPES, encode, flatten, open_bounded
from grpc_server.providers.image_fill import inpaint, outpaint
from grpc_server.providers.image_variation import variation
from grpc_server.providers.placeholder_images import placeholder_image

DEFAULT_MAX_PIXELS = 16 * 1024 * 1024
MAX_SIDE = 4096
OUTPAINT_AUTO_SCALE = 1.5
_SIZE = re.compile(r"(\d+)x(\d+)")


class LocalProvider:
    """Offline Pillow image work; see the module docstring."""

    name = "local"

    def __init__(self, name: str = "local", max_pixels: int = DEFAULT_MAX_PIXELS) -> None:
        if max_pixels < 1:
            raise ValueError(f"local_max_pixels must be at least 1, got {max_pixels}")
        self.name = name
        self.max_pixels = max_pixels

    def supports(self, request_type: RequestType) -> bool:
        return True

    async def edit_image(self, call: ImageEditCall) -> ImageOutcome:
        # Pillow work is CPU-bound; a thread keeps the event loop responsive.
        return await asyncio.to_thread(run_edit, call, self.max_pixels)

    async def generate_image(self, call: ImageGenerationCall) -> ImageOutcome:
        return await asyncio.to_thread(run_generation, call)

    async def vary_image(self, call: ImageVariationCall) -> ImageOutcome:
        return await asyncio.to_thread(run_variation, call, self.max_pixels)

    async def embed(self, call: EmbeddingCall) -> EmbeddingOutcome:
        return await asyncio.to_thread(run_embedding, call)


PLACEHOLDER_SIZE = (256, 256)
"""A generation without a size (or `auto`) gets this small placeholder."""


def run_generation(call: ImageGenerationCall) -> ImageOutcome:
    params = call.params
    fmt = _output_format(params.output_format)
    width, height = _parse_size(params.size) or PLACEHOLDER_SIZE
    images = [
        ProducedImage(
            data=encode(
                placeholder_image(params.prompt, width, height, seed=_seed(params.seed, i)),
                fmt,
                params.output_compression,
            ),
            content_type=CONTENT_TYPES[fmt],
        )
        for i in range(max(1, params.n or 1))
    ]
    return ImageOutcome(
        created=int(time.time()),
        images=images,
        size=f"{width}x{height}",
        output_format=fmt,
        background="opaque",
    )


def _seed(seed: int | None, index: int) -> int | None:
    """n placeholders differ from each other, yet stay reproducible."""
    return None if seed is None and index == 0 else (seed or 0) + index


def run_embedding(call: EmbeddingCall) -> EmbeddingOutcome:
    params = call.params
    dimensions = params.dimensions or DEFAULT_DIMENSIONS
    if not 1 <= dimensions <= MAX_DIMENSIONS:
        raise _invalid(f"the local embedding model makes 1 to {MAX_DIMENSIONS} dimensions", "dimensions")
    vectors: list[list[float]] = []
    tokens = 0
    for item in params.inputs():
        if isinstance(item, str):
            vectors.append(embed_text(item, dimensions))
            tokens += count_tokens(item)
        else:
            vectors.append(embed_tokens(item, dimensions))
            tokens += len(item)
    return EmbeddingOutcome(vectors, model=call.model, prompt_tokens=tokens, total_tokens=tokens)


def run_edit(call: ImageEditCall, max_pixels: int = DEFAULT_MAX_PIXELS) -> ImageOutcome:
    """Run one edit synchronously: decode (bounded), transform, resize, encode n copies."""
    params = call.params
    operation = _operation(call)
    fmt = _output_format(params.output_format)
    if not call.images:
        raise _invalid("an image is required", "image")
    target = _parse_size(params.size)
    image, original = _open(call.images[0], "image", max_pixels)

    if operation == "background_removal":
        result = remove_background(image)
    elif operation == "outpainting":
        result = outpaint(image, target or _auto_outpaint_size(image.size))
    else:
        assert call.mask is not None  # _operation guarantees it
        # The mask is read at the (reduced) image's size; nearest keeps its holes exact.
        mask, mask_original = _open(call.mask, "mask", max_pixels, image.size, Image.Resampling.NEAREST)
        if mask_original != original:
            raise _invalid(
                f"mask is {mask_original[0]}x{mask_original[1]}, image is {original[0]}x{original[1]}", "mask"
            )
        result = inpaint(flatten(image), _hole_mask(mask))

    if operation != "outpainting" and target is not None and result.size != target:
        result = result.resize(target, Image.Resampling.LANCZOS)

    data = encode(result, fmt, params.output_compression)
    produced = ProducedImage(data=data, content_type=CONTENT_TYPES[fmt])
    transparent = operation == "background_removal" and fmt != "jpeg"
    return ImageOutcome(
        created=int(time.time()),
        images=[produced] * max(1, params.n or 1),
        size=f"{result.width}x{result.height}",
        output_format=fmt,
        background="transparent" if transparent else "opaque",
        quality=None,
        usage=None,
    )


def run_variation(call: ImageVariationCall, max_pixels: int = DEFAULT_MAX_PIXELS) -> ImageOutcome:
    """n variations of the image (see image_variation), PNG, at `size` when given."""
    params = call.params
    target = _parse_size(params.size)
    image, _ = _open(call.image, "image", max_pixels)
    count = max(1, params.n or 1)
    results = []
    for index in range(count):
        result = variation(image, index, count)
        if target is not None and result.size != target:
            result = result.resize(target, Image.Resampling.LANCZOS)
        results.append(result)
    images = [ProducedImage(data=encode(result, "png", None), content_type="image/png") for result in results]
    transparent = results[0].mode == "RGBA"
    return ImageOutcome(
        created=int(time.time()),
        images=images,
        size=f"{results[0].width}x{results[0].height}",
        output_format="png",
        background="transparent" if transparent else "opaque",
    )


def _operation(call: ImageEditCall) -> str:
    kind = call.params.type
    if kind is None:
        if call.mask is None:
            raise _invalid("the local provider needs a type (or a mask, for inpainting)", "type")
        return "inpainting"
    if kind == "inpainting" and call.mask is None:
        raise _invalid("inpainting needs a mask", "mask")
    if kind not in ("inpainting", "outpainting", "background_removal"):
        raise _invalid(f"the local provider cannot do {kind!r}", "type")
    return kind


def _output_format(requested: str | None) -> str:
    fmt = requested or "png"
    if fmt not in CONTENT_TYPES:
        raise _invalid(f"the local provider cannot write {fmt!r} images", "output_format")
    return fmt


def _invalid(message: str, param: str) -> ProviderError:
    return ProviderError(
        message=message, status_code=400, type="invalid_request_error", param=param, retryable=False
    )


def _open(
    item: ImageInput,
    param: str,
    max_pixels: int,
    size: tuple[int, int] | None = None,
    resample: Image.Resampling = Image.Resampling.LANCZOS,
) -> tuple[Image.Image, tuple[int, int]]:
    """(the input as a copy of at most max_pixels pixels, or of `size`; its own size)."""
    try:
        return open_bounded(item.path, max_pixels, size, resample)
    except FileNotFoundError:
        raise  # our own staging failed, not the caller's bytes
    except (UnidentifiedImageError, Image.DecompressionBombError, OSError, ValueError) as exc:
        raise _invalid(f"could not decode {param} {item.filename!r}: {exc}", param) from exc


def _parse_size(size: str | None) -> tuple[int, int] | None:
    if size is None or size == "auto":
        return None
    match = _SIZE.fullmatch(size)
    if match is None or not 0 < int(match[1]) <= MAX_SIDE or not 0 < int(match[2]) <= MAX_SIDE:
        raise _invalid(f"invalid size {size!r}", "size")
    return int(match[1]), int(match[2])


def _hole_mask(mask: Image.Image) -> Image.Image:
    """L image: 255 where the mask is fully transparent (the area to edit)."""
    if not mask.has_transparency_data:
        raise _invalid("mask needs an alpha channel (transparent pixels mark the area to edit)", "mask")
    return mask.convert("RGBA").getchannel("A").point(lambda v: 255 if v == 0 else 0)


def _auto_outpaint_size(size: tuple[int, int]) -> tuple[int, int]:
    width, height = size
    return (
        min(MAX_SIDE, round(width * OUTPAINT_AUTO_SCALE)),
        min(MAX_SIDE, round(height * OUTPAINT_AUTO_SCALE)),
    )
