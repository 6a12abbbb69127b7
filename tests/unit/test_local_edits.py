"""The local provider does real work: each operation is checked on synthetic images
whose right answer is known."""

from __future__ import annotations

import io
import random
from pathlib import Path
from typing import Any

import pytest
from PIL import Image, ImageDraw, ImageStat

from grpc_server.domain.jobs import ImageEditParams
from grpc_server.providers.base import ImageEditCall, ImageInput, ProviderError
from grpc_server.providers.local import LocalProvider

GREY, RED = (225, 225, 225), (200, 20, 20)


def _input(tmp_path: Path, image: Image.Image, name: str) -> ImageInput:
    path = tmp_path / f"{name}.png"
    image.save(path, "PNG")
    return ImageInput(path, path.name, "image/png", image.width, image.height)


def _call(images: list[ImageInput], mask: ImageInput | None = None, **params: Any) -> ImageEditCall:
    return ImageEditCall("pillow", ImageEditParams(model="local/pillow", **params), images, mask)


async def _run(call: ImageEditCall) -> list[Image.Image]:
    outcome = await LocalProvider().edit_image(call)
    images: list[Image.Image] = []
    for produced in outcome.images:
        assert produced.data is not None
        image = Image.open(io.BytesIO(produced.data))
        image.load()
        images.append(image)
    return images


def _disc_with_hole(size: int = 128) -> Image.Image:
    """A red ring on slightly noisy grey: the grey hole in the middle is enclosed."""
    rng = random.Random(7)
    image = Image.new("RGB", (size, size), GREY)
    image.putdata([tuple(c + rng.randint(-3, 3) for c in GREY) for _ in range(size * size)])
    draw = ImageDraw.Draw(image)
    draw.ellipse((24, 24, size - 24, size - 24), fill=RED)
    draw.ellipse((54, 54, size - 54, size - 54), fill=GREY)
    return image


async def test_background_removal_clears_the_border_connected_background(tmp_path: Path) -> None:
    [out] = await _run(_call([_input(tmp_path, _disc_with_hole(), "ring")], type="background_removal"))
    alpha = out.getchannel("A")
    assert out.mode == "RGBA" and out.size == (128, 128)
    for corner in ((0, 0), (127, 0), (0, 127), (127, 127), (10, 64)):
        assert alpha.getpixel(corner) == 0
    assert alpha.getpixel((34, 64)) == 255  # the ring
    assert out.getpixel((34, 64))[:3] == RED  # type: ignore[index]
    assert alpha.getpixel((64, 64)) == 255  # background colour, but enclosed by the subject: kept


async def test_outpainting_extends_the_canvas_from_the_edges(tmp_path: Path) -> None:
    image = Image.new("RGB", (64, 64), (0, 0, 255))
    image.paste((0, 200, 0), (32, 0, 64, 64))  # left half blue, right half green
    [out] = await _run(_call([_input(tmp_path, image, "halves")], type="outpainting", size="256x256"))
    assert out.size == (256, 256)
    assert out.crop((96, 96, 160, 160)).tobytes() == image.tobytes()  # the original, untouched, centred
    left = ImageStat.Stat(out.crop((0, 100, 40, 156))).mean
    right = ImageStat.Stat(out.crop((216, 100, 256, 156))).mean
    assert left[2] > 150 and left[1] < 80  # continues blue to the left
    assert right[1] > 120 and right[2] < 80  # and green to the right


async def test_outpainting_without_size_grows_by_half(tmp_path: Path) -> None:
    [out] = await _run(_call([_input(tmp_path, Image.new("RGB", (100, 60), RED), "a")], type="outpainting"))
    assert out.size == (150, 90)


async def test_inpainting_fills_the_hole_from_its_surroundings(tmp_path: Path) -> None:
    # A horizontal gradient with a square of wrong colour where the mask is transparent.
    image = Image.linear_gradient("L").rotate(90).resize((128, 128)).convert("RGB")
    damaged = image.copy()
    damaged.paste((255, 0, 255), (48, 48, 80, 80))
    mask = Image.new("RGBA", (128, 128), (0, 0, 0, 255))
    mask.paste((0, 0, 0, 0), (48, 48, 80, 80))
    [out] = await _run(
        _call(
            [_input(tmp_path, damaged, "damaged")],
            _input(tmp_path, mask, "mask"),
            type="inpainting",
            prompt="x",
        )
    )
    hole = out.crop((48, 48, 80, 80))
    truth = image.crop((48, 48, 80, 80))
    mean_abs_error = sum(
        abs(a - b) for a, b in zip(hole.convert("L").tobytes(), truth.convert("L").tobytes(), strict=True)
    ) / (32 * 32)
    assert mean_abs_error < 20  # the gradient runs 0..255: the fill follows it, the magenta is gone
    assert out.crop((0, 0, 40, 128)).tobytes() == image.crop((0, 0, 40, 128)).tobytes()  # outside: unchanged


async def test_n_formats_and_size(tmp_path: Path) -> None:
    source = _input(tmp_path, _disc_with_hole(), "ring")
    outs = await _run(_call([source], type="background_removal", n=3, output_format="webp", size="256x256"))
    assert len(outs) == 3 and all(o.format == "WEBP" and o.size == (256, 256) for o in outs)
    [jpeg] = await _run(
        _call([source], type="background_removal", output_format="jpeg", output_compression=50)
    )
    assert jpeg.format == "JPEG" and jpeg.mode == "RGB"


@pytest.mark.parametrize(
    ("params", "param"),
    [
        ({"type": "inpainting", "prompt": "x"}, "mask"),
        ({}, "type"),
    ],
)
async def test_refusals_name_the_field(tmp_path: Path, params: dict[str, Any], param: str) -> None:
    with pytest.raises(ProviderError) as raised:
        await _run(_call([_input(tmp_path, _disc_with_hole(), "ring")], **params))
    assert raised.value.status_code == 400 and not raised.value.retryable
    assert raised.value.param == param
