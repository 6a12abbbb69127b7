"""Offline placeholder images for image generation requests.

This is NOT an image generator: it draws an obvious placeholder, a vertical
two-colour gradient with a thin border and the text "PLACEHOLDER WxH" followed
by the prompt's words, in Pillow's default font, wrapped to the width and cut
off with "..." when it runs out of room. The colours come from a stable hash
(blake2b) of the prompt and seed, so the same inputs always give identical
pixels and a different prompt or seed gives different colours.
"""

from __future__ import annotations

import colorsys
import hashlib
import re
from collections.abc import Callable
from functools import lru_cache

from PIL import Image, ImageDraw, ImageFont

MIN_SIDE = 16
MAX_SIDE = 4096
ELLIPSIS = "..."
# Leading added below each line of text, in pixels.
LEADING = 2

RGB = tuple[int, int, int]
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")


def placeholder_image(prompt: str, width: int, height: int, *, seed: int | None = None) -> Image.Image:
    """A deterministic RGB placeholder of `width` x `height` for `prompt`; see the module docstring."""
    _check_side("width", width)
    _check_side("height", height)
    top, bottom = gradient_colours(prompt, seed)
    image = _gradient(width, height, top, bottom)
    draw = ImageDraw.Draw(image)
    border = _border_width(width, height)
    ink = _ink(top, bottom)
    draw.rectangle((0, 0, width - 1, height - 1), outline=ink, width=border)
    _draw_caption(draw, image.size, f"PLACEHOLDER {width}x{height}", prompt, ink)
    return image


def gradient_colours(prompt: str, seed: int | None = None) -> tuple[RGB, RGB]:
    """The gradient's top and bottom colours for (prompt, seed)."""
    digest = hashlib.blake2b(f"{seed!r}\n{prompt}".encode("utf-8", "surrogatepass"), digest_size=16).digest()
    hue = int.from_bytes(digest[0:2], "big") / 65536
    # The second hue sits 60..180 degrees away so the gradient is always visible.
    other_hue = (hue + (60 + digest[2] * 120 / 255) / 360) % 1.0
    # Mid-tone saturation and brightness keep dark text readable on either colour.
    top = _hsv(hue, 0.35 + digest[3] / 255 * 0.3, 0.75 + digest[4] / 255 * 0.2)
    bottom = _hsv(other_hue, 0.35 + digest[5] / 255 * 0.3, 0.75 + digest[6] / 255 * 0.2)
    return top, bottom


def wrap_text(text: str, max_width: float, max_lines: int, measure: Callable[[str], float]) -> list[str]:
    """Greedy word wrap of `text` into at most `max_lines` lines no wider than `max_width`.

    `measure` gives a string's drawn width. Whitespace runs become single
    spaces; a word wider than a line is broken between characters (a character
    wider than the whole line is left out); text that does not fit is dropped
    and the last line ends with "..." instead. Work stays bounded for any
    length of text: only what can fit (at least 1 unit per character) is
    looked at, and each line takes a logarithmic number of measurements.
    """
    if max_lines < 1 or measure(ELLIPSIS) > max_width:
        return []
    limit = max_lines * (int(max_width) + 1) + 1
    tokens = " ".join(text.split())[:limit].split()
    lines: list[str] = []
    start = 0
    while start < len(tokens):
        if len(lines) == max_lines:
            lines[-1] = _with_ellipsis(lines[-1], max_width, measure)
            break
        count = _fit_words(tokens[start:], max_width, measure)
        if count:
            lines.append(" ".join(tokens[start : start + count]))
            start += count
            continue
        head, rest = _break_word(tokens[start], max_width, measure)
        if head:
            lines.append(head)
        if rest:
            tokens[start] = rest
        else:
            start += 1
    return lines


def _check_side(name: str, value: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError(f"{name} must be an integer, got {value!r}")
    if not MIN_SIDE <= value <= MAX_SIDE:
        raise ValueError(f"{name} must be {MIN_SIDE}..{MAX_SIDE}, got {value}")


def _hsv(hue: float, saturation: float, value: float) -> RGB:
    red, green, blue = colorsys.hsv_to_rgb(hue, saturation, value)
    return round(red * 255), round(green * 255), round(blue * 255)


def _gradient(width: int, height: int, top: RGB, bottom: RGB) -> Image.Image:
    # One column computed in Python, stretched sideways: cheap even at 4096 x 4096.
    column = bytearray()
    for y in range(height):
        t = y / (height - 1)
        column.extend(round(a + (b - a) * t) for a, b in zip(top, bottom, strict=True))
    strip = Image.frombytes("RGB", (1, height), bytes(column))
    return strip.resize((width, height), Image.Resampling.NEAREST)


def _border_width(width: int, height: int) -> int:
    return max(1, min(width, height) // 256)


def _ink(top: RGB, bottom: RGB) -> RGB:
    # A dark shade of the mean colour for border and text: the gradient colours are
    # light (HSV value >= 0.75), so this always contrasts with them.
    mean = [(a + b) // 2 for a, b in zip(top, bottom, strict=True)]
    return mean[0] * 2 // 5, mean[1] * 2 // 5, mean[2] * 2 // 5


def _font_for(width: int, height: int) -> ImageFont.FreeTypeFont:
    # Scale with the image so a 1024px placeholder is not a speck of 10px text.
    return _default_font(max(10, min(48, min(width, height) // 24)))


@lru_cache(maxsize=64)
def _default_font(size: int) -> ImageFont.FreeTypeFont:
    # load_default decodes its embedded font on every call; sizes are few, so keep them.
    font = ImageFont.load_default(size=size)
    if not isinstance(font, ImageFont.FreeTypeFont):  # only without FreeType, where size= fails first
        raise RuntimeError("placeholder images need Pillow built with FreeType")
    return font


def _draw_caption(
    draw: ImageDraw.ImageDraw, size: tuple[int, int], header: str, prompt: str, colour: RGB
) -> None:
    width, height = size
    font = _font_for(width, height)
    margin = _border_width(width, height) + max(2, min(width, height) // 32)
    line_height = _line_height(font)
    max_lines = (height - 2 * margin) // line_height
    max_width = width - 2 * margin

    def measure(text: str) -> float:
        return draw.textlength(text, font=font)

    lines = wrap_text(header, max_width, max_lines, measure)
    # Control characters would draw as boxes; as spaces they just separate words.
    words = _CONTROL.sub(" ", prompt)
    prompt_lines = wrap_text(words, max_width, max_lines - len(lines), measure)
    if lines and not prompt_lines and words.strip() and not lines[-1].endswith(ELLIPSIS):
        # No room left for the prompt: say so rather than drop it silently.
        lines[-1] = _with_ellipsis(lines[-1], max_width, measure)
    lines += prompt_lines
    for row, line in enumerate(lines):
        draw.text((margin, margin + row * line_height), line, fill=colour, font=font)


def _line_height(font: ImageFont.FreeTypeFont) -> int:
    # Ascent + descent bound every glyph of the font; plus a little leading.
    ascent, descent = font.getmetrics()
    return ascent + descent + LEADING


def _longest_fit(
    piece: Callable[[int], str], available: int, max_width: float, measure: Callable[[str], float]
) -> int:
    """The largest n <= available with measure(piece(n)) <= max_width (0 if none).

    Galloping then bisecting, so a line costs O(log n) measurements of strings
    at most about twice the line's length. Widths grow with n.
    """
    low, high = 0, 1
    while high <= available and measure(piece(high)) <= max_width:
        low, high = high, high * 2
    high = min(high, available + 1)
    while high - low > 1:
        middle = (low + high) // 2
        if measure(piece(middle)) <= max_width:
            low = middle
        else:
            high = middle
    return low


def _fit_words(words: list[str], max_width: float, measure: Callable[[str], float]) -> int:
    """How many of `words`, joined by spaces, fit on one line."""
    return _longest_fit(lambda n: " ".join(words[:n]), len(words), max_width, measure)


def _break_word(word: str, max_width: float, measure: Callable[[str], float]) -> tuple[str, str]:
    """Split off the longest prefix of `word` that fits; drop a first character that never fits."""
    count = _longest_fit(lambda n: word[:n], len(word), max_width, measure)
    if count == 0:
        return "", word[1:]
    return word[:count], word[count:]


def _with_ellipsis(line: str, max_width: float, measure: Callable[[str], float]) -> str:
    while line and measure(line + ELLIPSIS) > max_width:
        line = line[:-1]
    return line.rstrip() + ELLIPSIS
