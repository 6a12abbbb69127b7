"""The `local` provider: offline image edits done with Pillow.

This is NOT a generative model. It never calls out to a network and ignores
the prompt: it does deterministic, classical image processing, so results are
plausible fills, not invented content. It accepts any model name
(`local/pillow`, ...). Operations, chosen by `params.type`:

- background_removal: make the flat background around the subject transparent.
- outpainting: grow the canvas and extend the image's edges into the new area.
- inpainting: fill the mask's transparent pixels smoothly from their surroundings.

It also answers image generations with a placeholder (a gradient with the prompt
written on it: see placeholder_images) and embeddings with a feature-hashing
model (see hashing_embeddings): similar wording gives similar vectors.

Output encoding: png (lossless, output_compression ignored), webp or jpeg.
For webp and jpeg, quality = 100 - output_compression, capped at 95 (higher
only grows files); webp with output_compression 0 is encoded lossless; with no
output_compression the quality is 90. jpeg has no alpha, so it is flattened
onto white.
"""

from __future__ import annotations

import asyncio
import io
import re
import time
from collections.abc import Callable

from PIL import Image, ImageChops, ImageFilter, ImageMath, ImageOps, ImageStat, UnidentifiedImageError

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
    unsupported,
)
from grpc_server.providers.hashing_embeddings import (
    DEFAULT_DIMENSIONS,
    MAX_DIMENSIONS,
    count_tokens,
    embed_text,
    embed_tokens,
)
from grpc_server.providers.placeholder_images import placeholder_image

WHITE = (255, 255, 255)
MAX_SIDE = 4096
OUTPAINT_AUTO_SCALE = 1.5
SOFTEN_STEPS = 4

# Background removal: colour distance (max over channels, 0..255) ramps from
# transparent at `lo` to opaque at `lo + RAMP_WIDTH`; `lo` sits above the
# border's own noise so a noisy flat background still clears.
RAMP_WIDTH = 40
MIN_LOW_THRESHOLD = 12
MAX_LOW_THRESHOLD = 96
NOISE_PERCENTILE = 0.9

# Inpainting: the pyramid stops at this side; relaxation passes per level.
COARSEST_SIDE = 16
COARSE_PASSES = 40
FINE_PASSES = 6

DEFAULT_QUALITY = 90
MAX_QUALITY = 95
CONTENT_TYPES = {"png": "image/png", "webp": "image/webp", "jpeg": "image/jpeg"}
_SIZE = re.compile(r"(\d+)x(\d+)")
_RUN = re.compile(rb"\xff+")


class LocalProvider:
    """Offline Pillow image edits; see the module docstring."""

    name = "local"

    def __init__(self, name: str = "local") -> None:
        self.name = name

    def supports(self, request_type: RequestType) -> bool:
        return True

    async def edit_image(self, call: ImageEditCall) -> ImageOutcome:
        # Pillow work is CPU-bound; a thread keeps the event loop responsive.
        return await asyncio.to_thread(run_edit, call)

    async def generate_image(self, call: ImageGenerationCall) -> ImageOutcome:
        return await asyncio.to_thread(run_generation, call)

    async def vary_image(self, call: ImageVariationCall) -> ImageOutcome:
        raise unsupported(self.name, RequestType.IMAGE_VARIATION)

    async def embed(self, call: EmbeddingCall) -> EmbeddingOutcome:
        return await asyncio.to_thread(run_embedding, call)


PLACEHOLDER_SIZE = (256, 256)
"""A generation without a size (or `auto`) gets this small placeholder."""


def run_generation(call: ImageGenerationCall) -> ImageOutcome:
    params = call.params
    fmt = params.output_format or "png"
    if fmt not in CONTENT_TYPES:
        raise _invalid(f"the local provider cannot write {fmt!r} images", "output_format")
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


def run_edit(call: ImageEditCall) -> ImageOutcome:
    """Run one edit synchronously: decode, transform, resize, encode n copies."""
    params = call.params
    operation = _operation(call)
    fmt = params.output_format or "png"
    if fmt not in CONTENT_TYPES:
        raise _invalid(f"the local provider cannot write {fmt!r} images", "output_format")
    if not call.images:
        raise _invalid("an image is required", "image")
    image = _open(call.images[0], "image")
    target = _parse_size(params.size)

    if operation == "background_removal":
        result = remove_background(image)
    elif operation == "outpainting":
        result = outpaint(image, target or _auto_outpaint_size(image.size))
    else:
        assert call.mask is not None  # _operation guarantees it
        hole = _hole_mask(_open(call.mask, "mask"), image.size)
        result = inpaint(_flatten(image), hole)

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


def _invalid(message: str, param: str) -> ProviderError:
    return ProviderError(
        message=message, status_code=400, type="invalid_request_error", param=param, retryable=False
    )


def _open(item: ImageInput, param: str) -> Image.Image:
    try:
        with Image.open(item.path) as img:
            img.load()
            return img.copy()
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


def _flatten(image: Image.Image) -> Image.Image:
    """RGB, with any transparency composited onto white."""
    if not image.has_transparency_data:
        return image.convert("RGB")
    background = Image.new("RGBA", image.size, (*WHITE, 255))
    return Image.alpha_composite(background, image.convert("RGBA")).convert("RGB")


def encode(image: Image.Image, fmt: str, compression: int | None) -> bytes:
    buffer = io.BytesIO()
    quality = DEFAULT_QUALITY if compression is None else min(MAX_QUALITY, max(1, 100 - compression))
    if fmt == "jpeg":
        _flatten(image).save(buffer, "JPEG", quality=quality)
    elif fmt == "webp" and compression == 0:
        image.save(buffer, "WEBP", lossless=True)
    elif fmt == "webp":
        image.save(buffer, "WEBP", quality=quality)
    else:
        image.save(buffer, "PNG")
    return buffer.getvalue()


# --- background removal -------------------------------------------------------


def remove_background(image: Image.Image) -> Image.Image:
    """RGBA: the subject untouched, border-connected background transparent."""
    rgba = image.convert("RGBA")
    rgb = rgba.convert("RGB")
    background = _border_median(rgb)
    # A light blur keeps pixel noise from speckling the matte.
    distance = _colour_distance(rgb, background).filter(ImageFilter.GaussianBlur(1))
    low = _low_threshold(distance)
    high = low + RAMP_WIDTH
    matte = distance.point(_ramp(low, high))
    # Anything not fully opaque may be background, but only if it reaches the border.
    candidates = distance.point(lambda v: 255 if v < high else 0)
    reached = border_connected(candidates)
    alpha = ImageChops.lighter(matte, ImageOps.invert(reached))
    rgba.putalpha(ImageChops.darker(alpha, rgba.getchannel("A")))
    return rgba


def _border_strips(image: Image.Image) -> list[Image.Image]:
    w, h = image.size
    depth = max(1, min(w, h) // 100)
    boxes = [(0, 0, w, depth), (0, h - depth, w, h), (0, 0, depth, h), (w - depth, 0, w, h)]
    return [image.crop(box) for box in boxes]


def _histogram_percentile(histogram: list[int], fraction: float) -> int:
    """The value below which `fraction` of the counted pixels fall."""
    wanted = fraction * sum(histogram)
    seen = 0
    for value, count in enumerate(histogram):
        seen += count
        if seen >= wanted:
            return value
    return len(histogram) - 1


def _summed_histogram(strips: list[Image.Image]) -> list[int]:
    histograms = [strip.histogram() for strip in strips]
    return [sum(counts) for counts in zip(*histograms, strict=True)]


def _border_median(rgb: Image.Image) -> tuple[int, int, int]:
    histogram = _summed_histogram(_border_strips(rgb))
    r, g, b = (_histogram_percentile(histogram[i * 256 : (i + 1) * 256], 0.5) for i in range(3))
    return r, g, b


def _colour_distance(rgb: Image.Image, colour: tuple[int, int, int]) -> Image.Image:
    """L image: the largest per-channel difference from `colour`."""
    diff = ImageChops.difference(rgb, Image.new("RGB", rgb.size, colour))
    red, green, blue = diff.split()
    return ImageChops.lighter(ImageChops.lighter(red, green), blue)


def _low_threshold(distance: Image.Image) -> int:
    noise = _histogram_percentile(_summed_histogram(_border_strips(distance)), NOISE_PERCENTILE)
    return min(MAX_LOW_THRESHOLD, max(MIN_LOW_THRESHOLD, 2 * noise + 6))


def _ramp(low: int, high: int) -> Callable[[int], int]:
    def alpha(value: int) -> int:
        if value <= low:
            return 0
        if value >= high:
            return 255
        return round(255 * (value - low) / (high - low))

    return alpha


def border_connected(mask: Image.Image) -> Image.Image:
    """L image: 255 where `mask` is 255 and 4-connected to the image border.

    Connected-component labelling over horizontal runs (regex-found, union-find
    joined row to row): Python work per run, not per pixel.
    """
    width, height = mask.size
    data = mask.tobytes()
    rows: list[list[tuple[int, int, int]]] = []  # per row: (start, end, run id)
    parent: list[int] = []

    def find(run: int) -> int:
        while parent[run] != run:
            parent[run] = parent[parent[run]]
            run = parent[run]
        return run

    for y in range(height):
        row = []
        for match in _RUN.finditer(data, y * width, (y + 1) * width):
            parent.append(len(parent))
            row.append((match.start() - y * width, match.end() - y * width, len(parent) - 1))
        if rows:
            _join_overlapping(rows[-1], row, parent, find)
        rows.append(row)

    touching = {find(run) for run in _edge_runs(rows, width)}
    out = bytearray(width * height)
    for y, row in enumerate(rows):
        for start, end, run in row:
            if find(run) in touching:
                out[y * width + start : y * width + end] = b"\xff" * (end - start)
    return Image.frombytes("L", mask.size, bytes(out))


def _join_overlapping(
    above: list[tuple[int, int, int]],
    below: list[tuple[int, int, int]],
    parent: list[int],
    find: Callable[[int], int],
) -> None:
    """Union runs of adjacent rows that share a column (both lists sorted)."""
    i = j = 0
    while i < len(above) and j < len(below):
        a_start, a_end, a_run = above[i]
        b_start, b_end, b_run = below[j]
        if a_start < b_end and b_start < a_end:
            parent[find(a_run)] = find(b_run)
        if a_end < b_end:
            i += 1
        else:
            j += 1


def _edge_runs(rows: list[list[tuple[int, int, int]]], width: int) -> list[int]:
    runs = [run for row in (rows[0], rows[-1]) for _, _, run in row] if rows else []
    runs += [run for row in rows for start, end, run in row if start == 0 or end == width]
    return runs


# --- outpainting ----------------------------------------------------------------


def _auto_outpaint_size(size: tuple[int, int]) -> tuple[int, int]:
    width, height = size
    return (
        min(MAX_SIDE, round(width * OUTPAINT_AUTO_SCALE)),
        min(MAX_SIDE, round(height * OUTPAINT_AUTO_SCALE)),
    )


def outpaint(image: Image.Image, target: tuple[int, int]) -> Image.Image:
    """The image centred on a `target` canvas, the margins continued from its edges."""
    fitted = _fit_within(_flatten(image), target)
    left = (target[0] - fitted.width) // 2
    top = (target[1] - fitted.height) // 2
    canvas = _extend_edges(fitted, target, left, top)
    margin = max(left, top, target[0] - fitted.width - left, target[1] - fitted.height - top)
    if margin > 0:
        canvas = _soften_margins(canvas, (left, top, left + fitted.width, top + fitted.height), margin)
    canvas.paste(fitted, (left, top))
    return canvas


def _fit_within(image: Image.Image, target: tuple[int, int]) -> Image.Image:
    scale = min(target[0] / image.width, target[1] / image.height)
    if scale >= 1:
        return image
    size = (max(1, round(image.width * scale)), max(1, round(image.height * scale)))
    return image.resize(size, Image.Resampling.LANCZOS)


def _extend_edges(image: Image.Image, target: tuple[int, int], left: int, top: int) -> Image.Image:
    """Replicate the edges outwards: rows to the sides, then the widened rows up and down."""
    w, h = image.size
    right, bottom = target[0] - w - left, target[1] - h - top
    canvas = Image.new("RGB", target)
    canvas.paste(image, (left, top))
    # Averaging a few edge pixels keeps one noisy row or column from streaking the margin.
    depth = min(4, w, h)
    if left:
        canvas.paste(_stretch(image.crop((0, 0, depth, h)), (left, h)), (0, top))
    if right:
        canvas.paste(_stretch(image.crop((w - depth, 0, w, h)), (right, h)), (left + w, top))
    if top:
        canvas.paste(_stretch(canvas.crop((0, top, target[0], top + depth)), (target[0], top)), (0, 0))
    if bottom:
        strip = canvas.crop((0, top + h - depth, target[0], top + h))
        canvas.paste(_stretch(strip, (target[0], bottom)), (0, top + h))
    return canvas


def _stretch(strip: Image.Image, size: tuple[int, int]) -> Image.Image:
    """Average a strip down to one pixel across, then repeat it to `size`."""
    vertical = size[1] == strip.height
    line = strip.resize((1, strip.height) if vertical else (strip.width, 1), Image.Resampling.BOX)
    return line.resize(size, Image.Resampling.NEAREST)


def _soften_margins(canvas: Image.Image, inner: tuple[int, int, int, int], margin: int) -> Image.Image:
    """Blur the margins more the further they are from the image.

    Replicated edges streak; rings of growing blur turn the streaks into a
    soft wash far out while keeping colours continuous next to the image.
    """
    result = canvas
    for step in range(1, SOFTEN_STEPS + 1):
        grow = round(margin * (step - 1) / SOFTEN_STEPS)
        radius = margin * step / (2 * SOFTEN_STEPS)
        keep = Image.new("L", canvas.size, 0)
        keep.paste(255, (inner[0] - grow, inner[1] - grow, inner[2] + grow, inner[3] + grow))
        keep = keep.filter(ImageFilter.GaussianBlur(radius / 2))
        result = Image.composite(result, canvas.filter(ImageFilter.GaussianBlur(radius)), keep)
    return result


# --- inpainting -----------------------------------------------------------------


def _hole_mask(mask: Image.Image, size: tuple[int, int]) -> Image.Image:
    """L image: 255 where the mask is fully transparent (the area to edit)."""
    if mask.size != size:
        raise _invalid(f"mask is {mask.width}x{mask.height}, image is {size[0]}x{size[1]}", "mask")
    if not mask.has_transparency_data:
        raise _invalid("mask needs an alpha channel (transparent pixels mark the area to edit)", "mask")
    return mask.convert("RGBA").getchannel("A").point(lambda v: 255 if v == 0 else 0)


def inpaint(image: Image.Image, hole: Image.Image) -> Image.Image:
    """Fill `hole` (L, 255 = fill) in RGB `image` smoothly from the pixels around it.

    Push-pull: halve image and known-mask down to a few pixels, each coarse
    pixel the mean of the known pixels under it; fill the coarsest level from
    the known mean; then, going back up, start each level from the upscaled
    coarser fill and relax it (blur, re-paste known pixels). The result
    approaches a smooth membrane through the colours around the hole.
    """
    known = ImageOps.invert(hole)
    if hole.getbbox() is None or known.getbbox() is None:
        return image.copy()  # nothing to fill, or nothing to fill from
    levels = _pyramid(image, known)
    coarse_image, coarse_known = levels[-1]
    mean = ImageStat.Stat(coarse_image, mask=coarse_known).mean
    start = Image.new("RGB", coarse_image.size, (round(mean[0]), round(mean[1]), round(mean[2])))
    filled = _relax(
        Image.composite(coarse_image, start, coarse_known), coarse_image, coarse_known, COARSE_PASSES
    )
    for level_image, level_known in reversed(levels[:-1]):
        guess = filled.resize(level_image.size, Image.Resampling.BILINEAR)
        filled = _relax(
            Image.composite(level_image, guess, level_known), level_image, level_known, FINE_PASSES
        )
    return filled


def _pyramid(image: Image.Image, known: Image.Image) -> list[tuple[Image.Image, Image.Image]]:
    """Halved copies down to COARSEST_SIDE; known masks stay 0/255."""
    levels = [(image, known)]
    while max(levels[-1][0].size) > COARSEST_SIDE and min(levels[-1][0].size) >= 2:
        levels.append(_halve_known(*levels[-1]))
    return levels


def _halve_known(image: Image.Image, known: Image.Image) -> tuple[Image.Image, Image.Image]:
    """Half size; each pixel the mean of the known pixels under it, known if any was.

    Averaging only known pixels keeps the hole's colour out, and keeps thin
    known areas (a ring around the hole) alive at coarse levels.
    """
    weight = known.convert("F").reduce(2)
    bands = []
    for band in image.split():
        summed = Image.composite(band, Image.new("L", band.size, 0), known).convert("F").reduce(2)
        bands.append(_divide(summed, weight))
    return Image.merge("RGB", bands), weight.convert("L").point(lambda v: 255 if v else 0)


def _divide(summed: Image.Image, weight: Image.Image) -> Image.Image:
    """L image of summed * 255 / weight (0 where weight is 0), rounded."""
    quotient = ImageMath.lambda_eval(lambda args: args["s"] * 255 / args["w"] + 0.5, s=summed, w=weight)
    assert isinstance(quotient, Image.Image)
    return quotient.convert("L")


def _relax(filled: Image.Image, image: Image.Image, known: Image.Image, passes: int) -> Image.Image:
    for _ in range(passes):
        filled = Image.composite(image, filled.filter(ImageFilter.BoxBlur(1)), known)
    return filled
