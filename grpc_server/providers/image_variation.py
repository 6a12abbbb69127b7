"""Image variations without a model: the image mirrored and re-tinted, differently for
each of n outputs.

Output i of n is the image flipped left to right, its hue turned by (i + 1) / (n + 1) of
a full turn, then blended TINT of the way towards a colour of that hue, so that grey
images (which have no hue to turn) vary too. Transparency is kept.
"""

from __future__ import annotations

from PIL import Image, ImageOps

TINT = 0.15
"""How far each output is blended towards its tint colour."""


def variation(image: Image.Image, index: int, count: int) -> Image.Image:
    """The index-th (from 0) of `count` variations of `image`: RGB, or RGBA when it has alpha."""
    mirrored = ImageOps.mirror(image)
    alpha = mirrored.convert("RGBA").getchannel("A") if mirrored.has_transparency_data else None
    rgb = mirrored.convert("RGB")
    turn = round(256 * (index + 1) / (count + 1)) % 256
    hue, saturation, value = rgb.convert("HSV").split()
    turned = Image.merge("HSV", (hue.point(lambda h: (h + turn) % 256), saturation, value)).convert("RGB")
    tint = Image.new("HSV", rgb.size, (turn, 255, 255)).convert("RGB")
    result = Image.blend(turned, tint, TINT)
    if alpha is not None:
        result.putalpha(alpha)
    return result
