"""Background removal without a model: the flat background around a subject made transparent.

The background colour is the median of the image's border; pixels far enough from it
stay opaque (a ramp of RAMP_WIDTH levels feathers the edge), and only background that
reaches the border is cleared, so an enclosed patch of the same colour stays.
"""

from __future__ import annotations

import re
from collections.abc import Callable

from PIL import Image, ImageChops, ImageFilter, ImageOps

# Colour distance (max over channels, 0..255) ramps from transparent at `lo` to opaque
# at `lo + RAMP_WIDTH`; `lo` sits above the border's own noise so a noisy flat
# background still clears.
RAMP_WIDTH = 40
MIN_LOW_THRESHOLD = 12
MAX_LOW_THRESHOLD = 96
NOISE_PERCENTILE = 0.9

_RUN = re.compile(rb"\xff+")


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
