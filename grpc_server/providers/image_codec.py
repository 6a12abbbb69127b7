"""Decoding and encoding for the local provider: inputs read as a copy bounded in pixels,
outputs written as png, webp or jpeg.

Output encoding: png (lossless, output_compression ignored), webp or jpeg. For webp and
jpeg, quality = 100 - output_compression, capped at 95 (higher only grows files); webp
with output_compression 0 is encoded lossless; with no output_compression the quality
is 90. jpeg has no alpha, so it is flattened onto white.
"""

from __future__ import annotations

import io
import math
from pathlib import Path

from PIL import Image

WHITE = (255, 255, 255)
DEFAULT_QUALITY = 90
MAX_QUALITY = 95
CONTENT_TYPES = {"png": "image/png", "webp": "image/webp", "jpeg": "image/jpeg"}


def reduced_size(width: int, height: int, max_pixels: int) -> tuple[int, int]:
    """The size itself when it has at most max_pixels pixels; else the largest size of
    (about) the same aspect ratio that has."""
    if width * height <= max_pixels:
        return width, height
    scale = math.sqrt(max_pixels / (width * height))
    reduced_width, reduced_height = max(1, math.floor(width * scale)), max(1, math.floor(height * scale))
    while reduced_width * reduced_height > max_pixels:  # rounding at the edge of the budget
        if reduced_width >= reduced_height:
            reduced_width -= 1
        else:
            reduced_height -= 1
    return reduced_width, reduced_height


def open_bounded(
    path: Path,
    max_pixels: int,
    size: tuple[int, int] | None = None,
    resample: Image.Resampling = Image.Resampling.LANCZOS,
) -> tuple[Image.Image, tuple[int, int]]:
    """(the image as a copy of at most max_pixels pixels, or of `size` when given; its size
    on disk). A JPEG is decoded at a fraction of its size already (draft); other formats
    are decoded, reduced, and the full decode dropped at once, so the work that follows
    (many copies of the image) is bounded whatever the input."""
    with Image.open(path) as opened:
        original = opened.size
        target = size or reduced_size(*original, max_pixels)
        if target != original:
            opened.draft(opened.mode, target)  # JPEG only; a no-op for other formats
        opened.load()
        if opened.size == target:
            return opened.copy(), original
        return opened.resize(target, resample, reducing_gap=2.0), original


def flatten(image: Image.Image) -> Image.Image:
    """RGB, with any transparency composited onto white."""
    if not image.has_transparency_data:
        return image.convert("RGB")
    background = Image.new("RGBA", image.size, (*WHITE, 255))
    return Image.alpha_composite(background, image.convert("RGBA")).convert("RGB")


def encode(image: Image.Image, fmt: str, compression: int | None) -> bytes:
    buffer = io.BytesIO()
    quality = DEFAULT_QUALITY if compression is None else min(MAX_QUALITY, max(1, 100 - compression))
    if fmt == "jpeg":
        flatten(image).save(buffer, "JPEG", quality=quality)
    elif fmt == "webp" and compression == 0:
        image.save(buffer, "WEBP", lossless=True)
    elif fmt == "webp":
        image.save(buffer, "WEBP", quality=quality)
    else:
        image.save(buffer, "PNG")
    return buffer.getvalue()
