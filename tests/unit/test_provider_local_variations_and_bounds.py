"""The local provider's image variations, and its bound on the pixels it works on."""

from __future__ import annotations

import io
import threading
from pathlib import Path
from typing import Any

import pytest
from PIL import Image, ImageDraw

from grpc_server.domain.jobs import ImageEditParams, ImageVariationParams
from grpc_server.providers import image_variation, local
from grpc_server.providers.base import ImageEditCall, ImageInput, ImageVariationCall, ProviderError
from grpc_server.providers.image_codec import reduced_size
from grpc_server.providers.local import LocalProvider


def write(image: Image.Image, tmp_path: Path, filename: str = "in.png") -> ImageInput:
    path = tmp_path / filename
    image.save(path, "PNG")
    return ImageInput(path, filename, "image/png", image.width, image.height)


def vary(image: ImageInput, **params: Any) -> ImageVariationCall:
    return ImageVariationCall(
        model="pillow", params=ImageVariationParams(model="local/pillow", **params), image=image
    )


def decoded(data: bytes | None) -> Image.Image:
    assert data is not None
    with Image.open(io.BytesIO(data)) as opened:
        opened.load()
        return opened.copy()


def black_left_white_right(size: tuple[int, int] = (40, 20)) -> Image.Image:
    image = Image.new("RGB", size, (0, 0, 0))
    image.paste((255, 255, 255), (size[0] // 2, 0, size[0], size[1]))
    return image


def lightness(pixel: Any) -> float:
    return float(sum(pixel[:3])) / 3


# Variations


async def test_a_variation_is_the_image_mirrored(tmp_path: Path) -> None:
    outcome = await LocalProvider().vary_image(vary(write(black_left_white_right(), tmp_path)))

    [produced] = outcome.images  # n defaults to 1
    image = decoded(produced.data)
    assert produced.content_type == "image/png"
    assert (outcome.output_format, outcome.size, outcome.background) == ("png", "40x20", "opaque")
    assert image.size == (40, 20)
    # White was on the right: now it is on the left (the tint moves it only a little).
    assert lightness(image.getpixel((3, 10))) > 200
    assert lightness(image.getpixel((36, 10))) < 60


async def test_each_of_n_variations_is_tinted_differently(tmp_path: Path) -> None:
    source = Image.new("RGB", (16, 16), (200, 40, 40))
    source.paste((128, 128, 128), (0, 0, 8, 16))

    outcome = await LocalProvider().vary_image(vary(write(source, tmp_path), n=4))

    images = [decoded(produced.data).convert("RGB") for produced in outcome.images]
    assert len(images) == 4
    reds = {image.getpixel((2, 8)) for image in images}  # from the red half
    greys = {image.getpixel((13, 8)) for image in images}  # from the grey half: tinted too
    assert len(reds) == 4
    assert len(greys) == 4
    assert all(image.getpixel((2, 8)) != (200, 40, 40) for image in images)


async def test_a_variation_is_resized_to_size(tmp_path: Path) -> None:
    outcome = await LocalProvider().vary_image(
        vary(write(black_left_white_right(), tmp_path), size="512x512", n=2)
    )

    assert outcome.size == "512x512"
    assert [decoded(p.data).size for p in outcome.images] == [(512, 512), (512, 512)]


async def test_a_variation_keeps_transparency_mirrored(tmp_path: Path) -> None:
    source = Image.new("RGBA", (20, 10), (10, 200, 10, 255))
    source.paste((0, 0, 0, 0), (0, 0, 5, 10))  # transparent on the left

    outcome = await LocalProvider().vary_image(vary(write(source, tmp_path)))

    image = decoded(outcome.images[0].data)
    assert outcome.background == "transparent"
    assert image.mode == "RGBA"
    assert image.getchannel("A").getpixel((17, 5)) == 0
    assert image.getchannel("A").getpixel((2, 5)) == 255


async def test_an_undecodable_image_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "junk.png"
    path.write_bytes(b"not an image at all")

    with pytest.raises(ProviderError) as caught:
        await LocalProvider().vary_image(vary(ImageInput(path, "junk.png", "image/png", 1, 1)))

    assert (caught.value.status_code, caught.value.param) == (400, "image")


async def test_an_invalid_size_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ProviderError) as caught:
        await LocalProvider().vary_image(vary(write(black_left_white_right(), tmp_path), size="9000x10"))

    assert (caught.value.status_code, caught.value.param) == (400, "size")


async def test_the_pillow_work_runs_off_the_event_loop(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    threads: list[int] = []
    real = image_variation.variation

    def recording(image: Image.Image, index: int, count: int) -> Image.Image:
        threads.append(threading.get_ident())
        return real(image, index, count)

    monkeypatch.setattr(local, "variation", recording)

    await LocalProvider().vary_image(vary(write(black_left_white_right(), tmp_path)))

    assert threads and threading.get_ident() not in threads


# The pixel bound


def test_reduced_sizes_keep_the_ratio_within_the_budget() -> None:
    assert reduced_size(100, 50, 10_000) == (100, 50)
    assert reduced_size(8192, 8192, 16 * 1024 * 1024) == (4096, 4096)
    width, height = reduced_size(3001, 1999, 1_000_000)
    assert width * height <= 1_000_000
    assert abs(width / height - 3001 / 1999) < 0.01
    assert reduced_size(100_000, 1, 10) == (10, 1)


async def test_a_64_megapixel_input_is_processed_at_the_reduced_size(tmp_path: Path) -> None:
    # Mostly uniform, so the file is small; it decodes to 8192 x 8192 = 64 megapixels.
    source = Image.new("L", (8192, 8192), 30)
    ImageDraw.Draw(source).rectangle((0, 0, 1023, 1023), fill=250)
    image = write(source, tmp_path, "big.png")
    del source

    outcome = await LocalProvider().vary_image(vary(image))

    assert outcome.size == "4096x4096"  # 16 Mi pixels: the default bound
    result = decoded(outcome.images[0].data)
    assert result.size == (4096, 4096)
    # The bright square, top left in the input, is top right (mirrored), at half scale.
    assert lightness(result.getpixel((4096 - 256, 256))) > 180
    assert lightness(result.getpixel((256, 256))) < 100


def edit(image: ImageInput, mask: ImageInput | None = None, **params: Any) -> ImageEditCall:
    return ImageEditCall(
        model="pillow", params=ImageEditParams(model="local/pillow", **params), images=[image], mask=mask
    )


@pytest.mark.parametrize(
    ("edit_type", "size"),
    [("background_removal", (50, 25)), ("outpainting", (75, 38)), ("inpainting", (50, 25))],
)
async def test_edits_of_a_reduced_input_come_out_at_the_reduced_size(
    tmp_path: Path, edit_type: str, size: tuple[int, int]
) -> None:
    source = Image.new("RGB", (200, 100), (255, 255, 255))
    ImageDraw.Draw(source).ellipse((70, 20, 130, 80), fill=(200, 0, 0))
    mask = Image.new("RGBA", (200, 100), (0, 0, 0, 255))
    mask.paste((0, 0, 0, 0), (90, 40, 110, 60))
    provider = LocalProvider(max_pixels=50 * 25)
    call = edit(write(source, tmp_path), write(mask, tmp_path, "mask.png"), type=edit_type)

    outcome = await provider.edit_image(call)

    assert outcome.size == f"{size[0]}x{size[1]}"
    assert decoded(outcome.images[0].data).size == size


async def test_size_still_decides_the_output_of_a_reduced_input(tmp_path: Path) -> None:
    provider = LocalProvider(max_pixels=50 * 25)
    call = edit(
        write(black_left_white_right((200, 100)), tmp_path), type="background_removal", size="300x150"
    )

    outcome = await provider.edit_image(call)

    assert decoded(outcome.images[0].data).size == (300, 150)


async def test_a_mask_of_another_size_is_refused_by_the_sizes_sent(tmp_path: Path) -> None:
    provider = LocalProvider(max_pixels=50 * 25)
    image = write(black_left_white_right((200, 100)), tmp_path)
    mask = write(Image.new("RGBA", (100, 50), (0, 0, 0, 0)), tmp_path, "mask.png")

    with pytest.raises(ProviderError) as caught:
        await provider.edit_image(edit(image, mask, type="inpainting"))

    assert caught.value.param == "mask"
    assert "100x50" in caught.value.message and "200x100" in caught.value.message


def test_a_bound_below_one_pixel_is_refused() -> None:
    with pytest.raises(ValueError, match="local_max_pixels"):
        LocalProvider(max_pixels=0)
