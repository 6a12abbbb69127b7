"""The local Pillow provider does real, checkable image work."""

from __future__ import annotations

import io
import random
from pathlib import Path

import pytest
from PIL import Image, ImageChops, ImageDraw, ImageStat

from grpc_server.domain.jobs import ImageEditParams, RequestType
from grpc_server.providers.base import ImageEditCall, ImageInput, ImageOutcome, ProviderError
from grpc_server.providers.local import LocalProvider

GREY = (200, 200, 200)
RED = (220, 30, 30)
BLUE = (0, 0, 255)
GREEN = (0, 200, 0)

Colour = tuple[int, ...]


def save(tmp_path: Path, image: Image.Image, name: str) -> ImageInput:
    path = tmp_path / name
    image.save(path, "PNG")
    return ImageInput(path, name, "image/png", image.width, image.height)


def edit_call(
    image: ImageInput, type: str | None, mask: ImageInput | None = None, **params: object
) -> ImageEditCall:
    edit = ImageEditParams(model="local/pillow", type=type, **params)  # type: ignore[arg-type]
    return ImageEditCall(model="pillow", params=edit, images=[image], mask=mask)


async def run(call: ImageEditCall) -> ImageOutcome:
    return await LocalProvider().edit_image(call)


def decode(outcome: ImageOutcome, index: int = 0) -> Image.Image:
    data = outcome.images[index].data
    assert data is not None
    image = Image.open(io.BytesIO(data))
    image.load()
    return image


def distance(a: Colour, b: Colour) -> int:
    return max(abs(x - y) for x, y in zip(a[:3], b[:3], strict=True))


def pixel(image: Image.Image, xy: tuple[int, int]) -> Colour:
    value = image.getpixel(xy)
    assert isinstance(value, tuple)
    return value


def noisy_grey(size: tuple[int, int], spread: int = 5) -> Image.Image:
    rng = random.Random(7)
    data = bytes(GREY[0] + rng.randint(-spread, spread) for _ in range(size[0] * size[1] * 3))
    return Image.frombytes("RGB", size, data)


def opaque_mask(size: tuple[int, int], hole: tuple[int, int, int, int]) -> Image.Image:
    """RGBA mask: opaque everywhere except a fully transparent rectangle."""
    mask = Image.new("RGBA", size, (0, 0, 0, 255))
    ImageDraw.Draw(mask).rectangle(hole, fill=(0, 0, 0, 0))
    return mask


# --- background removal ---------------------------------------------------------


async def test_background_removal_clears_border_and_keeps_the_disc(tmp_path: Path) -> None:
    image = noisy_grey((256, 256))
    ImageDraw.Draw(image).ellipse((64, 64, 192, 192), fill=RED)

    outcome = await run(edit_call(save(tmp_path, image, "disc.png"), "background_removal"))
    result = decode(outcome)

    assert result.mode == "RGBA"
    alpha = result.getchannel("A")
    for strip in ((0, 0, 256, 2), (0, 254, 256, 256), (0, 0, 2, 256), (254, 0, 256, 256)):
        assert alpha.crop(strip).getextrema() == (0, 0)
    assert pixel(result, (40, 128))[3] == 0  # background between border and disc
    assert pixel(result, (128, 128)) == (*RED, 255)
    assert alpha.crop((100, 100, 156, 156)).getextrema() == (255, 255)  # well inside the disc
    assert outcome.background == "transparent"
    assert outcome.size == "256x256"


async def test_background_removal_feathers_the_edge(tmp_path: Path) -> None:
    image = noisy_grey((256, 256))
    ImageDraw.Draw(image).ellipse((64, 64, 192, 192), fill=RED)

    result = decode(await run(edit_call(save(tmp_path, image, "disc.png"), "background_removal")))

    row = [pixel(result, (x, 128))[3] for x in range(50, 80)]
    assert any(0 < a < 255 for a in row)  # a soft ramp, not a hard cut
    assert row[0] == 0 and row[-1] == 255


async def test_enclosed_background_colour_stays_opaque(tmp_path: Path) -> None:
    image = noisy_grey((256, 256))
    draw = ImageDraw.Draw(image)
    draw.ellipse((40, 40, 216, 216), fill=RED)
    draw.ellipse((100, 100, 156, 156), fill=GREY)  # a hole the background cannot reach

    result = decode(await run(edit_call(save(tmp_path, image, "ring.png"), "background_removal")))

    centre = pixel(result, (128, 128))
    assert centre[3] == 255
    assert distance(centre, GREY) == 0
    assert pixel(result, (10, 10))[3] == 0


async def test_background_reaching_the_border_through_a_gap_is_cleared(tmp_path: Path) -> None:
    image = noisy_grey((256, 256))
    draw = ImageDraw.Draw(image)
    draw.ellipse((40, 40, 216, 216), fill=RED)
    draw.ellipse((100, 100, 156, 156), fill=GREY)
    draw.rectangle((120, 128, 136, 255), fill=GREY)  # a channel from the hole to the border

    result = decode(await run(edit_call(save(tmp_path, image, "cup.png"), "background_removal")))

    assert pixel(result, (128, 128))[3] == 0
    assert pixel(result, (70, 128))[3] == 255  # the ring itself


# --- outpainting ----------------------------------------------------------------


def halves(size: tuple[int, int]) -> Image.Image:
    image = Image.new("RGB", size, BLUE)
    ImageDraw.Draw(image).rectangle((size[0] // 2, 0, size[0], size[1]), fill=GREEN)
    return image


async def test_outpainting_centres_the_original_and_extends_its_edges(tmp_path: Path) -> None:
    image = halves((128, 96))

    outcome = await run(edit_call(save(tmp_path, image, "halves.png"), "outpainting", size="256x256"))
    result = decode(outcome).convert("RGB")

    assert result.size == (256, 256)
    assert outcome.size == "256x256"
    assert outcome.background == "opaque"
    left, top = (256 - 128) // 2, (256 - 96) // 2
    centre = result.crop((left, top, left + 128, top + 96))
    assert ImageChops.difference(centre, image).getbbox() is None
    for y in (20, 128, 236):
        assert distance(pixel(result, (4, y)), BLUE) <= 30
        assert distance(pixel(result, (251, y)), GREEN) <= 30
    above_left, above_right = pixel(result, (80, 10)), pixel(result, (176, 10))
    assert distance(above_left, BLUE) < distance(above_left, GREEN)
    assert distance(above_right, GREEN) < distance(above_right, BLUE)


async def test_outpainting_auto_size_is_one_and_a_half_times(tmp_path: Path) -> None:
    outcome = await run(edit_call(save(tmp_path, halves((100, 60)), "small.png"), "outpainting", size="auto"))

    assert decode(outcome).size == (150, 90)
    assert outcome.size == "150x90"


async def test_outpainting_to_a_smaller_size_scales_the_image_down(tmp_path: Path) -> None:
    image = halves((512, 256))

    result = decode(await run(edit_call(save(tmp_path, image, "wide.png"), "outpainting", size="256x256")))

    assert result.size == (256, 256)
    # Fitted to 256x128 and centred: blue left of centre, green right, on every row.
    for y in (20, 128, 236):
        assert distance(pixel(result, (60, y)), BLUE) <= 30
        assert distance(pixel(result, (196, y)), GREEN) <= 30


# --- inpainting -----------------------------------------------------------------


async def test_inpainting_fills_a_hole_with_the_surrounding_colour(tmp_path: Path) -> None:
    surround = (40, 120, 200)
    image = Image.new("RGB", (128, 128), surround)
    ImageDraw.Draw(image).rectangle((40, 40, 87, 87), fill=(255, 0, 255))
    mask = opaque_mask(image.size, (40, 40, 87, 87))

    outcome = await run(
        edit_call(save(tmp_path, image, "flat.png"), "inpainting", save(tmp_path, mask, "mask.png"))
    )
    result = decode(outcome).convert("RGB")

    hole = ImageStat.Stat(result.crop((40, 40, 88, 88)))
    for (low, high), expected in zip(hole.extrema, surround, strict=True):
        assert expected - 3 <= low and high <= expected + 3
    outside = Image.composite(ImageChops.difference(result, image), Image.new("RGB", image.size), mask)
    assert outside.getbbox() is None
    assert outcome.background == "opaque"


async def test_inpainting_follows_a_gradient(tmp_path: Path) -> None:
    red = Image.linear_gradient("L").rotate(90)  # 255 on the left, 0 on the right
    green = Image.linear_gradient("L")  # 0 at the top, 255 at the bottom
    truth = Image.merge("RGB", (red, green, Image.new("L", red.size, 128)))
    damaged = truth.copy()
    ImageDraw.Draw(damaged).rectangle((96, 96, 159, 159), fill=(0, 255, 0))
    mask = opaque_mask(truth.size, (96, 96, 159, 159))

    result = decode(
        await run(edit_call(save(tmp_path, damaged, "grad.png"), "inpainting", save(tmp_path, mask, "m.png")))
    ).convert("RGB")

    error = ImageStat.Stat(ImageChops.difference(result, truth).crop((96, 96, 160, 160)))
    assert max(error.mean) < 8  # of a 0..255 range; the painted colour was ~128 off
    assert max(error.extrema[i][1] for i in range(3)) < 32


async def test_inpainting_uses_a_thin_ring_of_surrounding_colour(tmp_path: Path) -> None:
    image = Image.new("RGB", (1024, 1024), GREY)
    ImageDraw.Draw(image).ellipse((200, 200, 800, 800), fill=RED)
    hole = (300, 300, 700, 700)  # the red ring left around it is only ~17 px wide at the corners
    ImageDraw.Draw(image).rectangle(hole, fill=BLUE)
    mask = save(tmp_path, opaque_mask(image.size, hole), "m.png")

    result = decode(await run(edit_call(save(tmp_path, image, "ring.png"), "inpainting", mask))).convert(
        "RGB"
    )

    # The grey beyond the ring must not bleed in: the fill is the ring's red.
    assert max(distance(pixel(result, xy), RED) for xy in ((512, 512), (310, 310), (690, 512))) <= 12


async def test_type_none_with_a_mask_means_inpainting(tmp_path: Path) -> None:
    image = Image.new("RGB", (64, 64), GREEN)
    ImageDraw.Draw(image).rectangle((20, 20, 40, 40), fill=RED)
    mask = save(tmp_path, opaque_mask(image.size, (20, 20, 40, 40)), "m.png")

    result = decode(await run(edit_call(save(tmp_path, image, "g.png"), None, mask))).convert("RGB")

    assert distance(pixel(result, (30, 30)), GREEN) <= 3


# --- outputs ----------------------------------------------------------------------


async def test_n_outputs(tmp_path: Path) -> None:
    outcome = await run(edit_call(save(tmp_path, halves((64, 64)), "h.png"), "outpainting", n=3))

    assert len(outcome.images) == 3
    assert all(decode(outcome, i).size == (96, 96) for i in range(3))


async def test_jpeg_output_is_flattened_onto_white(tmp_path: Path) -> None:
    image = noisy_grey((128, 128))
    ImageDraw.Draw(image).ellipse((32, 32, 96, 96), fill=RED)

    outcome = await run(
        edit_call(
            save(tmp_path, image, "d.png"), "background_removal", output_format="jpeg", output_compression=20
        )
    )
    result = decode(outcome)

    assert result.format == "JPEG" and result.mode == "RGB"
    assert outcome.images[0].content_type == "image/jpeg"
    assert outcome.output_format == "jpeg"
    assert distance(pixel(result, (4, 4)), (255, 255, 255)) <= 8
    assert distance(pixel(result, (64, 64)), RED) <= 12


async def test_output_compression_trades_size_for_quality(tmp_path: Path) -> None:
    image = save(tmp_path, noisy_grey((128, 128), spread=40), "noise.png")
    sizes = []
    for compression in (10, 90):
        outcome = await run(
            edit_call(image, "outpainting", output_format="jpeg", output_compression=compression)
        )
        data = outcome.images[0].data
        assert data is not None
        sizes.append(len(data))

    assert sizes[1] < sizes[0]


async def test_webp_output_keeps_alpha(tmp_path: Path) -> None:
    image = noisy_grey((128, 128))
    ImageDraw.Draw(image).ellipse((32, 32, 96, 96), fill=RED)

    outcome = await run(
        edit_call(
            save(tmp_path, image, "d.png"), "background_removal", output_format="webp", output_compression=0
        )
    )
    result = decode(outcome)

    assert result.format == "WEBP"
    assert outcome.images[0].content_type == "image/webp"
    assert pixel(result, (4, 4))[3] == 0
    assert pixel(result, (64, 64)) == (*RED, 255)


async def test_size_resizes_the_result(tmp_path: Path) -> None:
    image = noisy_grey((128, 128))
    ImageDraw.Draw(image).ellipse((32, 32, 96, 96), fill=RED)

    outcome = await run(edit_call(save(tmp_path, image, "d.png"), "background_removal", size="256x256"))

    assert decode(outcome).size == (256, 256)
    assert outcome.size == "256x256"


# --- errors and protocol ------------------------------------------------------------


async def test_inpainting_without_a_mask_is_rejected(tmp_path: Path) -> None:
    with pytest.raises(ProviderError) as caught:
        await run(edit_call(save(tmp_path, halves((32, 32)), "h.png"), "inpainting"))

    error = caught.value
    assert (error.status_code, error.param, error.type) == (400, "mask", "invalid_request_error")
    assert error.message == "inpainting needs a mask"
    assert not error.retryable


async def test_no_type_and_no_mask_is_rejected(tmp_path: Path) -> None:
    with pytest.raises(ProviderError) as caught:
        await run(edit_call(save(tmp_path, halves((32, 32)), "h.png"), None))

    assert (caught.value.status_code, caught.value.param) == (400, "type")
    assert not caught.value.retryable


async def test_mask_of_another_size_is_rejected(tmp_path: Path) -> None:
    mask = save(tmp_path, opaque_mask((16, 16), (4, 4, 8, 8)), "m.png")

    with pytest.raises(ProviderError) as caught:
        await run(edit_call(save(tmp_path, halves((32, 32)), "h.png"), "inpainting", mask))

    assert (caught.value.status_code, caught.value.param) == (400, "mask")


async def test_mask_without_alpha_is_rejected(tmp_path: Path) -> None:
    mask = save(tmp_path, Image.new("L", (32, 32), 0), "m.png")

    with pytest.raises(ProviderError) as caught:
        await run(edit_call(save(tmp_path, halves((32, 32)), "h.png"), "inpainting", mask))

    assert (caught.value.status_code, caught.value.param) == (400, "mask")


async def test_undecodable_image_is_rejected(tmp_path: Path) -> None:
    path = tmp_path / "junk.png"
    path.write_bytes(b"not an image")

    with pytest.raises(ProviderError) as caught:
        await run(edit_call(ImageInput(path, "junk.png", "image/png", 1, 1), "outpainting"))

    assert (caught.value.status_code, caught.value.param) == (400, "image")


def test_supports_image_edit() -> None:
    provider = LocalProvider()

    assert provider.name == "local"
    assert provider.supports(RequestType.IMAGE_EDIT)
    assert LocalProvider("pillow-box").name == "pillow-box"
