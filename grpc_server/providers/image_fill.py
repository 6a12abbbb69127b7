"""Filling pixels without a model: outpainting (a larger canvas, its margins continued
from the image's edges) and inpainting (a hole filled smoothly from its surroundings)."""

from __future__ import annotations

from PIL import Image, ImageFilter, ImageMath, ImageOps, ImageStat

from grpc_server.providers.image_codec import flatten

SOFTEN_STEPS = 4

# Inpainting: the pyramid stops at this side; relaxation passes per level.
COARSEST_SIDE = 16
COARSE_PASSES = 40
FINE_PASSES = 6


def outpaint(image: Image.Image, target: tuple[int, int]) -> Image.Image:
    """The image centred on a `target` canvas, the margins continued from its edges."""
    fitted = _fit_within(flatten(image), target)
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
