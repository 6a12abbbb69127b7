"""Placeholder images: right size and mode, deterministic, prompt- and seed-coloured, text kept inside."""

from __future__ import annotations

import pytest
from PIL import Image

from grpc_server.providers.placeholder_images import (
    ELLIPSIS,
    MAX_SIDE,
    MIN_SIDE,
    gradient_colours,
    placeholder_image,
    wrap_text,
)

PROMPT = "a red fox jumping over a lazy dog in the snow, watercolour"
LONG_PROMPTS = [
    "supercalifragilisticexpialidocious " * 200,
    "x" * 50_000,
    "W" * 3000 + " " + "i " * 3000,
    "tabs\tand\nnewlines\x00and\x7fcontrols " * 100,
    "Ünïcödé 日本語 🦊 " * 300,
]


def _corner_colours(image: Image.Image) -> tuple[object, object]:
    # Just inside the border, top and bottom: the gradient's two ends.
    return image.getpixel((image.width // 2, 4)), image.getpixel((image.width // 2, image.height - 5))


@pytest.mark.parametrize(("width", "height"), [(MIN_SIDE, MIN_SIDE), (64, 32), (512, 512), (1792, 1024)])
def test_size_and_mode(width: int, height: int) -> None:
    image = placeholder_image(PROMPT, width, height)
    assert image.size == (width, height)
    assert image.mode == "RGB"


def test_largest_size() -> None:
    image = placeholder_image(PROMPT, MAX_SIDE, MAX_SIDE)
    assert image.size == (MAX_SIDE, MAX_SIDE)


@pytest.mark.parametrize("seed", [None, 0, 7])
def test_same_inputs_give_identical_pixels(seed: int | None) -> None:
    first = placeholder_image(PROMPT, 256, 192, seed=seed)
    second = placeholder_image(PROMPT, 256, 192, seed=seed)
    assert first.tobytes() == second.tobytes()


def test_different_prompts_give_different_colours() -> None:
    prompts = [PROMPT, PROMPT + "!", "a cat", "a dog", "", "A RED FOX"]
    colours = {gradient_colours(prompt) for prompt in prompts}
    assert len(colours) == len(prompts)
    images = {_corner_colours(placeholder_image(prompt, 128, 128)) for prompt in prompts}
    assert len(images) == len(prompts)


def test_seed_changes_colours() -> None:
    by_seed = {seed: placeholder_image(PROMPT, 128, 128, seed=seed) for seed in (None, 0, 1, 2**40)}
    assert len({_corner_colours(image) for image in by_seed.values()}) == len(by_seed)


def test_image_is_a_gradient_with_a_border_and_text() -> None:
    image = placeholder_image(PROMPT, 256, 256)
    top, bottom = _corner_colours(image)
    assert top != bottom
    border = image.getpixel((0, 0))
    assert all(image.getpixel(xy) == border for xy in [(255, 0), (0, 255), (255, 255), (128, 0), (0, 128)])
    # Gradient rows are one colour each; text makes rows near the top vary across x.
    rows_with_text = [y for y in range(8, 40) if len({image.getpixel((x, y)) for x in range(8, 248)}) > 1]
    assert rows_with_text
    assert all(len({image.getpixel((x, y)) for x in range(1, 255)}) == 1 for y in range(200, 255))


@pytest.mark.parametrize("prompt", LONG_PROMPTS)
@pytest.mark.parametrize(("width", "height"), [(MIN_SIDE, MIN_SIDE), (40, 200), (200, 40), (300, 300)])
def test_long_prompts_stay_inside_the_image(prompt: str, width: int, height: int) -> None:
    image = placeholder_image(prompt, width, height)
    assert image.size == (width, height)
    _assert_border_intact(image)
    _assert_margins_untouched(image)


def _assert_border_intact(image: Image.Image) -> None:
    border = image.getpixel((0, 0))
    w, h = image.size
    ring = [(x, 0) for x in range(w)] + [(x, h - 1) for x in range(w)]
    ring += [(0, y) for y in range(h)] + [(w - 1, y) for y in range(h)]
    assert all(image.getpixel(xy) == border for xy in ring)


def _assert_margins_untouched(image: Image.Image) -> None:
    # The gradient is vertical, so without text every row is one colour; text spilling
    # past the margins would make the pixel just inside the right border differ from
    # the one just inside the left border, or mark the row just above the bottom border.
    w, h = image.size
    for y in range(1, h - 1):
        assert image.getpixel((1, y)) == image.getpixel((w - 2, y)), y
    bottom_row = {image.getpixel((x, h - 2)) for x in range(1, w - 1)}
    assert len(bottom_row) == 1


@pytest.mark.parametrize(
    ("width", "height"), [(MIN_SIDE - 1, 64), (64, MIN_SIDE - 1), (MAX_SIDE + 1, 64), (0, 0)]
)
def test_bad_sizes_are_refused(width: int, height: int) -> None:
    with pytest.raises(ValueError, match=r"width|height"):
        placeholder_image(PROMPT, width, height)


@pytest.mark.parametrize("size", [-64, 64.0, True])
def test_non_integer_or_negative_sizes_are_refused(size: object) -> None:
    with pytest.raises(ValueError):
        placeholder_image(PROMPT, size, 64)  # type: ignore[arg-type]


# wrap_text with a fixed-width "font": every character is 1 unit wide.
def _chars(text: str) -> float:
    return float(len(text))


@pytest.mark.parametrize(
    ("text", "width", "lines", "expected"),
    [
        ("the quick brown fox", 10, 5, ["the quick", "brown fox"]),
        ("the quick brown fox", 10, 1, ["the qui..."]),
        ("  spaced \n\t out  ", 20, 2, ["spaced out"]),
        ("abcdefghij", 4, 5, ["abcd", "efgh", "ij"]),
        ("abcdefghijklmnop", 4, 2, ["abcd", "e..."]),
        ("", 10, 3, []),
        ("anything", 2, 3, []),  # narrower than the ellipsis: nothing fits
        ("anything", 10, 0, []),
    ],
)
def test_wrap_text(text: str, width: int, lines: int, expected: list[str]) -> None:
    assert wrap_text(text, width, lines, _chars) == expected


def test_wrap_text_skips_a_glyph_wider_than_the_line() -> None:
    def measure(text: str) -> float:
        return sum(10.0 if ch == "W" else 1.0 for ch in text)

    # The broken word goes on after its first piece, on a new line, minus the W.
    assert wrap_text("aWb", 5, 3, measure) == ["a", "b"]
    assert wrap_text("x aWb", 5, 3, measure) == ["x", "a", "b"]


@pytest.mark.parametrize("text", ["word " * 100_000, "y" * 1_000_000])
def test_wrap_text_bounds_huge_text(text: str) -> None:
    calls = 0

    def measure(part: str) -> float:
        nonlocal calls
        calls += 1
        return float(len(part))

    lines = wrap_text(text, 40, 3, measure)
    assert len(lines) == 3
    assert lines[-1].endswith(ELLIPSIS)
    assert all(len(line) <= 40 for line in lines)
    assert calls < 100
