"""Image facts several adapters need: the media type of image bytes, and the supported
aspect ratio nearest to a `WxH` size (each adapter has its own table of ratios)."""

from __future__ import annotations

import math
import re
from collections.abc import Sequence

_SIZE = re.compile(r"\s*(\d+)\s*x\s*(\d+)\s*", re.IGNORECASE)


def sniff_image_type(data: bytes) -> str | None:
    """The media type of image bytes by their signature (png, jpeg, webp or gif); None when
    they are none of these. Nothing is decoded."""
    if data.startswith(b"\x89PNG\r\n\x1a\n"):
        return "image/png"
    if data.startswith(b"\xff\xd8\xff"):
        return "image/jpeg"
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "image/webp"
    if data[:6] in (b"GIF87a", b"GIF89a"):
        return "image/gif"
    return None


def parse_size(size: str | None) -> tuple[int, int] | None:
    """(width, height) of a `WxH` size (`1024x768`, ` 1024 X 768 `); None for anything else."""
    match = _SIZE.fullmatch(size) if size else None
    return (int(match[1]), int(match[2])) if match else None


def nearest_aspect_ratio(size: str | None, supported: Sequence[str]) -> str | None:
    """The ratio of `supported` (`"16:9"`, ...) nearest to a `WxH` size, compared on a log
    scale (2:1 is as far from 1:1 as 1:2 is; a tie goes to the earlier ratio); None when
    size is not WxH or has a zero side."""
    parsed = parse_size(size)
    if parsed is None or 0 in parsed:
        return None
    target = math.log(parsed[0] / parsed[1])
    return min(supported, key=lambda ratio: abs(_log_ratio(ratio) - target))


def _log_ratio(ratio: str) -> float:
    width, height = ratio.split(":")
    return math.log(int(width) / int(height))
