"""Image inspection (grpc_server.images) on real files written with Pillow."""

from __future__ import annotations

import io
import random
import struct
import warnings
import zlib
from pathlib import Path
from typing import Any

import pytest
from PIL import Image, ImageFile

from grpc_server.domain.errors import InvalidArgument
from grpc_server.images import ImageInfo, check_mask, inspect_image

LIMIT = 64 * 1024 * 1024  # ServerConfig.max_image_pixels default


def noise(size: tuple[int, int], mode: str = "RGB", seed: int = 1) -> Image.Image:
    """An image of random pixels: they compress badly, so the file has real data to cut."""
    rgb = Image.frombytes("RGB", size, random.Random(seed).randbytes(size[0] * size[1] * 3))
    return rgb.convert(mode)


def encode(image: Image.Image, fmt: str, **options: Any) -> bytes:
    out = io.BytesIO()
    image.save(out, fmt, **options)
    return out.getvalue()


def png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def black_1bit_png(width: int, height: int) -> bytes:
    """A valid 1-bit greyscale PNG, compressed row by row: a few KB on disk, however large it claims to be."""
    compressor = zlib.compressobj(9)
    row = bytes(1 + (width + 7) // 8)  # filter byte, then the packed pixels
    idat = b"".join(compressor.compress(row) for _ in range(height)) + compressor.flush()
    ihdr = struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n" + png_chunk(b"IHDR", ihdr) + png_chunk(b"IDAT", idat) + png_chunk(b"IEND", b"")
    )


def vp8x_header(width: int, height: int) -> bytes:
    """A WEBP made of just an extended-format header declaring a canvas size."""
    vp8x = b"VP8X" + struct.pack("<I", 10) + bytes(4) + (width - 1).to_bytes(3, "little")
    vp8x += (height - 1).to_bytes(3, "little")
    return b"RIFF" + struct.pack("<I", 4 + len(vp8x)) + b"WEBP" + vp8x


def write(tmp_path: Path, data: bytes, name: str = "upload") -> Path:
    path = tmp_path / name
    path.write_bytes(data)
    return path


def refusal(path: Path, *, param: str = "image", label: str = "image[0]", **kwargs: Any) -> InvalidArgument:
    with pytest.raises(InvalidArgument) as caught:
        inspect_image(path, param=param, label=label, **{"max_pixels": LIMIT, **kwargs})
    assert caught.value.param == param
    return caught.value


def images_allocated() -> int:
    """How many image buffers Pillow has allocated in this process so far."""
    stats: dict[str, int] = Image.core.get_stats()  # type: ignore[attr-defined]  # the C module's counters
    return stats["new_count"]


@pytest.mark.parametrize(
    ("data", "fmt", "content_type"),
    [
        pytest.param(encode(noise((300, 200)), "PNG"), "PNG", "image/png", id="png-rgb"),
        pytest.param(encode(noise((300, 200), "RGBA"), "PNG"), "PNG", "image/png", id="png-rgba"),
        pytest.param(encode(noise((300, 200), "P"), "PNG"), "PNG", "image/png", id="png-palette"),
        pytest.param(encode(noise((300, 200), "1"), "PNG"), "PNG", "image/png", id="png-1bit"),
        pytest.param(encode(noise((300, 200)), "JPEG"), "JPEG", "image/jpeg", id="jpeg"),
        pytest.param(encode(noise((300, 200), "L"), "JPEG"), "JPEG", "image/jpeg", id="jpeg-grey"),
        pytest.param(encode(noise((300, 200), "CMYK"), "JPEG"), "JPEG", "image/jpeg", id="jpeg-cmyk"),
        pytest.param(
            encode(noise((300, 200)), "JPEG", progressive=True), "JPEG", "image/jpeg", id="jpeg-progressive"
        ),
        pytest.param(encode(noise((300, 200)), "WEBP"), "WEBP", "image/webp", id="webp-lossy"),
        pytest.param(
            encode(noise((300, 200)), "WEBP", lossless=True), "WEBP", "image/webp", id="webp-lossless"
        ),
        pytest.param(encode(noise((300, 200), "RGBA"), "WEBP"), "WEBP", "image/webp", id="webp-alpha"),
    ],
)
def test_valid_images_are_identified(tmp_path: Path, data: bytes, fmt: str, content_type: str) -> None:
    info = inspect_image(write(tmp_path, data), param="image", label="image[0]", max_pixels=LIMIT)
    assert info == ImageInfo(format=fmt, content_type=content_type, width=300, height=200)


@pytest.mark.parametrize("fmt", ["PNG", "JPEG", "WEBP"])
def test_a_one_pixel_image_is_accepted(tmp_path: Path, fmt: str) -> None:
    info = inspect_image(write(tmp_path, encode(noise((1, 1)), fmt)), param="image", label="x", max_pixels=1)
    assert (info.format, info.width, info.height) == (fmt, 1, 1)


@pytest.mark.parametrize(
    "data",
    [
        pytest.param(random.Random(7).randbytes(4096), id="random-bytes"),
        pytest.param(b"a red fox in the snow\n" * 20, id="text"),
        pytest.param(b'{"model": "openai/gpt-image-1"}', id="json"),
        pytest.param(b"", id="empty"),
        pytest.param(b"\x89PNG", id="png-signature-cut"),
    ],
)
def test_unidentifiable_files_are_refused(tmp_path: Path, data: bytes) -> None:
    error = refusal(write(tmp_path, data), param="image", label="image[2]")
    assert error.message == "image[2]: not a PNG, JPEG or WEBP image (cannot identify image file)"


@pytest.mark.parametrize("fmt", ["GIF", "BMP", "TIFF"])
def test_other_formats_are_refused_by_name(tmp_path: Path, fmt: str) -> None:
    error = refusal(write(tmp_path, encode(noise((64, 64)), fmt)))
    assert error.message == f"image[0]: {fmt} images are not accepted (expected PNG, JPEG or WEBP)"


def test_allowed_formats_narrow_the_choice(tmp_path: Path) -> None:
    path = write(tmp_path, encode(noise((64, 64)), "JPEG"))
    error = refusal(path, param="mask", label="mask", allowed_formats=frozenset({"PNG"}))
    assert error.message == "mask: JPEG images are not accepted (expected PNG)"


def test_allowed_formats_must_be_supported(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="GIF"):
        inspect_image(
            write(tmp_path, b""),
            param="image",
            label="x",
            max_pixels=LIMIT,
            allowed_formats=frozenset({"GIF"}),
        )


def half(data: bytes) -> bytes:
    return data[: len(data) // 2]


def flip_byte(data: bytes, at: int) -> bytes:
    return data[:at] + bytes([data[at] ^ 0xFF]) + data[at + 1 :]


def flip_byte_in_idat(png: bytes) -> bytes:
    return flip_byte(png, png.index(b"IDAT") + 4 + 100)  # in the compressed data, not the chunk header


def without_iend(png: bytes) -> bytes:
    return png[: png.rindex(b"IEND") - 4]


PNG = encode(noise((256, 256)), "PNG")
JPEG = encode(noise((256, 256)), "JPEG")
WEBP = encode(noise((256, 256)), "WEBP")
WEBP_LOSSLESS = encode(noise((256, 256)), "WEBP", lossless=True)

BROKEN: list[Any] = [
    pytest.param(half(PNG), id="png-cut-in-half"),
    pytest.param(flip_byte_in_idat(PNG), id="png-idat-crc"),
    pytest.param(without_iend(PNG), id="png-no-iend"),
    pytest.param(half(JPEG), id="jpeg-cut-in-half"),
    pytest.param(JPEG[:-2], id="jpeg-no-eoi"),
    pytest.param(JPEG[: JPEG.index(b"\xff\xda") + 14], id="jpeg-headers-only"),
    pytest.param(half(WEBP), id="webp-cut-in-half"),
    pytest.param(WEBP[:40], id="webp-header-only"),
    pytest.param(flip_byte(WEBP_LOSSLESS, 40), id="webp-lossless-bad-bitstream"),  # fails in load() only
    pytest.param(b"RIFF\x10\x00\x00\x00WEBPJUNKJUNKJUNKJUNK", id="webp-unreadable-header"),
]


@pytest.mark.parametrize("load_truncated", [False, True], ids=["strict", "load-truncated-images"])
@pytest.mark.parametrize("data", BROKEN)
def test_truncated_or_corrupt_images_are_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, data: bytes, load_truncated: bool
) -> None:
    # Other code may turn on Pillow's process-wide LOAD_TRUNCATED_IMAGES; the checks must not depend on it.
    monkeypatch.setattr(ImageFile, "LOAD_TRUNCATED_IMAGES", load_truncated)
    error = refusal(write(tmp_path, data), label="image[1]")
    assert error.message.startswith("image[1]: image data is truncated or corrupt (")


def test_a_corrupt_jpeg_is_refused_by_decoding(tmp_path: Path) -> None:
    # A broken Huffman table: the file is complete (it ends with EOI), only decoding finds the fault.
    # (With LOAD_TRUNCATED_IMAGES on, Pillow ignores decoder errors, so this one would pass then.)
    dht = JPEG.index(b"\xff\xc4")
    counts = dht + 5  # after marker, length and table class: 16 code-length counts
    broken = JPEG[:counts] + b"\xff" * 16 + JPEG[counts + 16 :]
    error = refusal(write(tmp_path, broken), label="image[0]")
    assert (
        error.message
        == "image[0]: image data is truncated or corrupt (broken data stream when reading image file)"
    )


def test_the_corruption_reason_is_given(tmp_path: Path) -> None:
    error = refusal(write(tmp_path, flip_byte_in_idat(PNG)), label="image[0]")
    assert "IDAT" in error.message


BOMB = black_1bit_png(20000, 20000)


def test_a_decompression_bomb_is_refused_from_its_header(tmp_path: Path) -> None:
    assert len(BOMB) < 100_000  # small on disk, 400 million pixels once decoded
    path = write(tmp_path, BOMB)
    allocated = images_allocated()
    error = refusal(path, label="image[0]")
    assert error.message == "image[0]: 20000x20000 is 400000000 pixels, more than the limit of 67108864"
    assert images_allocated() == allocated  # refused before Pillow allocated any pixel buffer


def test_the_bomb_is_refused_by_our_limit_above_pillows_own(tmp_path: Path) -> None:
    assert Image.MAX_IMAGE_PIXELS is not None
    limit = 2 * Image.MAX_IMAGE_PIXELS + 1  # Image.open would raise DecompressionBombError
    error = refusal(write(tmp_path, BOMB), label="image[0]", max_pixels=limit)
    assert error.message == f"image[0]: 20000x20000 is 400000000 pixels, more than the limit of {limit}"


def test_a_webp_header_over_the_limit_is_refused_before_pillow_parses_it(tmp_path: Path) -> None:
    # Pillow's WEBP parser would refuse this too, but naming its own limit: ours is checked first.
    error = refusal(write(tmp_path, vp8x_header(16384, 16384)), label="image[0]")
    assert error.message == "image[0]: 16384x16384 is 268435456 pixels, more than the limit of 67108864"


def test_pillows_own_bomb_error_is_converted(tmp_path: Path) -> None:
    # Pillow's WEBP parser applies Image.MAX_IMAGE_PIXELS * 2 itself; with a higher limit of ours,
    # its DecompressionBombError is what refuses the file, and it comes out as the same refusal.
    assert Image.MAX_IMAGE_PIXELS is not None
    path = write(tmp_path, vp8x_header(16384, 16384))
    error = refusal(path, label="image[0]", max_pixels=2**30)
    pillow_limit = 2 * Image.MAX_IMAGE_PIXELS
    assert (
        error.message == f"image[0]: 16384x16384 is 268435456 pixels, more than the limit of {pillow_limit}"
    )


def test_pillows_lowered_limit_is_converted_too(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 1000)
    error = refusal(write(tmp_path, encode(noise((100, 100)), "WEBP")), label="image[0]")
    assert error.message == "image[0]: 100x100 is 10000 pixels, more than the limit of 2000"


def test_our_limit_not_pillows_decides_without_a_warning(tmp_path: Path) -> None:
    # 100 million pixels: above Image.MAX_IMAGE_PIXELS, where Image.open would warn; below our limit.
    assert Image.MAX_IMAGE_PIXELS is not None
    assert Image.MAX_IMAGE_PIXELS < 10000 * 10000 < 2 * Image.MAX_IMAGE_PIXELS
    path = write(tmp_path, black_1bit_png(10000, 10000))
    allocated = images_allocated()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        info = inspect_image(path, param="image", label="image[0]", max_pixels=200_000_000)
    assert (info.width, info.height) == (10000, 10000)
    assert images_allocated() == allocated  # a PNG is verified without decoding


@pytest.mark.parametrize(
    ("size", "max_pixels", "refused"),
    [((100, 100), 10000, False), ((100, 101), 10000, True), ((101, 100), 10000, True)],
)
@pytest.mark.parametrize("fmt", ["PNG", "JPEG", "WEBP"])
def test_the_pixel_limit_is_inclusive(
    tmp_path: Path, fmt: str, size: tuple[int, int], max_pixels: int, refused: bool
) -> None:
    path = write(tmp_path, encode(noise(size), fmt))
    if refused:
        error = refusal(path, label="image[0]", max_pixels=max_pixels)
        assert error.message == f"image[0]: {size[0]}x{size[1]} is 10100 pixels, more than the limit of 10000"
    else:
        info = inspect_image(path, param="image", label="image[0]", max_pixels=max_pixels)
        assert (info.width, info.height) == size


def info(fmt: str, width: int, height: int) -> ImageInfo:
    return ImageInfo(fmt, f"image/{fmt.lower()}", width, height)


@pytest.mark.parametrize(
    ("mask", "first", "message"),
    [
        pytest.param(info("PNG", 256, 256), info("PNG", 256, 256), None, id="match"),
        pytest.param(info("PNG", 256, 256), info("JPEG", 256, 256), None, id="match-jpeg-image"),
        pytest.param(info("PNG", 300, 200), info("WEBP", 300, 200), None, id="match-non-square"),
        pytest.param(
            info("PNG", 512, 512),
            info("PNG", 256, 256),
            "mask: 512x512 does not match the first image's 256x256",
            id="mismatch",
        ),
        pytest.param(
            info("PNG", 200, 300),
            info("PNG", 300, 200),
            "mask: 200x300 does not match the first image's 300x200",
            id="transposed",
        ),
        pytest.param(
            info("JPEG", 256, 256), info("PNG", 256, 256), "mask: must be a PNG image", id="jpeg-mask"
        ),
        pytest.param(
            info("WEBP", 256, 256), info("PNG", 256, 256), "mask: must be a PNG image", id="webp-mask"
        ),
        pytest.param(
            info("JPEG", 512, 512), info("PNG", 256, 256), "mask: must be a PNG image", id="format-first"
        ),
    ],
)
def test_check_mask(mask: ImageInfo, first: ImageInfo, message: str | None) -> None:
    if message is None:
        check_mask(mask, first)
        return
    with pytest.raises(InvalidArgument) as caught:
        check_mask(mask, first)
    assert (caught.value.param, caught.value.message) == ("mask", message)


def test_an_inspected_mask_is_checked_against_the_first_image(tmp_path: Path) -> None:
    image = inspect_image(write(tmp_path, JPEG, "image"), param="image", label="image[0]", max_pixels=LIMIT)
    mask_path = write(tmp_path, encode(noise((256, 256), "RGBA"), "PNG"), "mask")
    mask = inspect_image(mask_path, param="mask", label="mask", max_pixels=LIMIT)
    check_mask(mask, image)
