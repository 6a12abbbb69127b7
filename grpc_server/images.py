"""Inspection of uploaded images with Pillow: format, dimensions and integrity.

Each accepted format's Pillow parser is called directly on the file rather than
through Image.open, for two reasons:

- Image.open applies Pillow's process-wide decompression-bomb limit
  (Image.MAX_IMAGE_PIXELS) before we can apply ours: above it a
  DecompressionBombWarning goes through the warnings module (which cannot be
  silenced per call without racing other threads), above twice it
  DecompressionBombError is raised. Our configured max_pixels is the limit,
  checked against the header before any pixel buffer exists, and Pillow's global
  is left alone.
- Only the PNG, JPEG and WEBP parsers ever run on an upload. Other formats are
  named from their signature alone (Pillow's prefix tests), never parsed.

A JPEG that is really an MPO (several frames, as some cameras write) is read as
the JPEG it starts with; Image.open would have called it "MPO".
"""

from __future__ import annotations

import contextlib
import io
from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

from PIL import Image, JpegImagePlugin, PngImagePlugin, WebPImagePlugin

from grpc_server.domain.errors import InvalidArgument

SUPPORTED_FORMATS: frozenset[str] = frozenset({"PNG", "JPEG", "WEBP"})
CONTENT_TYPES: dict[str, str] = {"PNG": "image/png", "JPEG": "image/jpeg", "WEBP": "image/webp"}

_FORMAT_ORDER = ("PNG", "JPEG", "WEBP")  # for messages
_HEAD_BYTES = 32  # enough for every signature and the WEBP canvas size
_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_JPEG_EOI = b"\xff\xd9"
_SCAN_BLOCK = 1 << 20


Reserve = Callable[[int], AbstractContextManager[None]]
"""Holds a number of decoded pixels from a budget while a decode runs."""


def _no_budget(pixels: int) -> AbstractContextManager[None]:
    return contextlib.nullcontext()


@dataclass(frozen=True)
class ImageInfo:
    format: str
    """"PNG", "JPEG" or "WEBP"."""
    content_type: str
    width: int
    height: int


def inspect_image(
    source: Path | bytes,
    *,
    param: str,
    label: str,
    max_pixels: int,
    allowed_formats: frozenset[str] = SUPPORTED_FORMATS,
    reserve: Reserve = _no_budget,
) -> ImageInfo:
    """Identify an uploaded image and check it, or raise InvalidArgument naming `param`.

    `label` starts every message ("image[1]", "mask"). The pixel count is checked
    from the header before anything is decoded; then the data is verified, a decode
    holding `reserve(pixels)` (grpc_server.image_work.PixelBudget) while it runs.
    """
    if not allowed_formats <= SUPPORTED_FORMATS:
        raise ValueError(f"unsupported formats: {sorted(allowed_formats - SUPPORTED_FORMATS)}")
    upload = _Upload(param, label, max_pixels, reserve)
    with io.BytesIO(source) if isinstance(source, bytes) else source.open("rb") as fp:
        head = fp.read(_HEAD_BYTES)
        fmt = _identify(head, upload, allowed_formats)
        try:
            if fmt == "PNG":
                width, height = _check_png(fp, upload)
            elif fmt == "JPEG":
                width, height = _check_jpeg(fp, upload)
            else:
                width, height = _check_webp(fp, head, upload)
        except InvalidArgument:
            raise
        except MemoryError:
            raise  # the server is short of memory; not the caller's fault
        except Exception as e:  # whatever a parser or decoder raised (OSError, SyntaxError, ...)
            raise upload.corrupt(_reason(e)) from e
    return ImageInfo(fmt, CONTENT_TYPES[fmt], width, height)


def check_mask(mask: ImageInfo, first_image: ImageInfo) -> None:
    """A mask must be a PNG (it carries the alpha channel) of the first image's dimensions."""
    if mask.format != "PNG":
        raise InvalidArgument("mask: must be a PNG image", "mask")
    if (mask.width, mask.height) != (first_image.width, first_image.height):
        raise InvalidArgument(
            f"mask: {mask.width}x{mask.height} does not match the first image's "
            f"{first_image.width}x{first_image.height}",
            "mask",
        )


@dataclass(frozen=True)
class _Upload:
    """Which upload is being checked, for its error messages."""

    param: str
    label: str
    max_pixels: int
    reserve: Reserve = field(default=_no_budget)

    def error(self, text: str) -> InvalidArgument:
        return InvalidArgument(f"{self.label}: {text}", self.param)

    def corrupt(self, reason: str) -> InvalidArgument:
        return self.error(f"image data is truncated or corrupt ({reason})")

    def too_many_pixels(self, size: tuple[int, int], limit: int) -> InvalidArgument:
        width, height = size
        return self.error(f"{width}x{height} is {width * height} pixels, more than the limit of {limit}")

    def check_pixels(self, size: tuple[int, int]) -> None:
        width, height = size
        if width < 1 or height < 1:
            raise self.corrupt(f"{width}x{height} image")
        if width * height > self.max_pixels:
            raise self.too_many_pixels(size, self.max_pixels)


def _identify(head: bytes, upload: _Upload, allowed: frozenset[str]) -> str:
    expected = _expected(allowed)
    fmt = _sniff(head)
    if fmt is None:
        other = _other_format(head)
        if other is None:
            raise upload.error(f"not a {expected} image (cannot identify image file)")
        fmt = other
    if fmt not in allowed:
        raise upload.error(f"{fmt} images are not accepted (expected {expected})")
    return fmt


def _sniff(head: bytes) -> str | None:
    if head.startswith(_PNG_SIGNATURE):
        return "PNG"
    if head.startswith(b"\xff\xd8\xff"):
        return "JPEG"
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "WEBP"
    return None


def _other_format(head: bytes) -> str | None:
    """The format Pillow would recognise from these first bytes (its signature tests only; no parser runs)."""
    Image.init()
    for name in Image.ID:
        accept = Image.OPEN[name][1]
        try:
            if accept is not None and accept(head[:16]) is True:  # a str result means "unsupported"
                return name
        except Exception:  # a signature test that trips over a short file: not that format
            continue
    return None


def _expected(allowed: frozenset[str]) -> str:
    names = [name for name in _FORMAT_ORDER if name in allowed]
    return names[0] if len(names) == 1 else f"{', '.join(names[:-1])} or {names[-1]}"


def _check_png(fp: BinaryIO, upload: _Upload) -> tuple[int, int]:
    fp.seek(0)
    image = PngImagePlugin.PngImageFile(fp)  # reads the chunks before the first IDAT only
    size = image.size
    upload.check_pixels(size)
    # verify() reads every chunk to IEND and checks its CRC, without decoding any pixels: a PNG
    # costs no image memory however large. The compressed data is not inflated, so a PNG whose
    # CRCs are right but whose zlib stream is broken passes (the provider will refuse it).
    image.verify()
    return size


def _check_jpeg(fp: BinaryIO, upload: _Upload) -> tuple[int, int]:
    fp.seek(0)
    image = JpegImagePlugin.JpegImageFile(fp)  # reads the markers up to the first scan only
    size = image.size
    upload.check_pixels(size)
    scan_start = fp.tell()
    # verify() does nothing for a JPEG, so decode, but at 1/8 scale: libjpeg still reads the whole
    # entropy-coded stream (a truncated file fails here) while the pixel buffer is 1/64 of full size:
    # a baseline JPEG costs next to nothing (measured 2 MB for 4000x4000). A progressive one still
    # needs libjpeg's full-size coefficient buffer, 2 bytes a sample: about 3 bytes a pixel with the
    # usual 4:2:0 chroma subsampling (measured 47 MB for 4000x4000), 6 without; max_pixels bounds it.
    width, height = size
    image.draft(None, (max(1, width // 8), max(1, height // 8)))
    with upload.reserve(width * height):  # progressive: about 3 bytes a pixel, see above
        image.load()
    # With ImageFile.LOAD_TRUNCATED_IMAGES (a process-wide switch other code may turn on) load()
    # accepts a truncated file, so also require the end-of-image marker after the first scan.
    if not _contains(fp, scan_start, _JPEG_EOI):
        raise upload.corrupt("no end-of-image marker")
    return size


def _check_webp(fp: BinaryIO, head: bytes, upload: _Upload) -> tuple[int, int]:
    # Pillow's WEBP parser creates the decoder, which allocates the canvas, as soon as it opens the
    # file: so check the size the header declares first.
    size = _webp_canvas_size(head)
    if size is None:
        raise upload.corrupt("unreadable WEBP header")
    upload.check_pixels(size)
    fp.seek(0)
    with upload.reserve(size[0] * size[1]):
        return _decode_webp(fp, size, upload)


def _decode_webp(fp: BinaryIO, size: tuple[int, int], upload: _Upload) -> tuple[int, int]:
    try:
        # Reads the whole file and demuxes it: a truncated container fails here.
        image = WebPImagePlugin.WebPImageFile(fp)
    except Image.DecompressionBombError:
        # Pillow's WEBP parser still applies its own limit (2 * Image.MAX_IMAGE_PIXELS); reached
        # only when max_pixels is above it. Refused the same way, naming the limit that applied.
        raise upload.too_many_pixels(size, 2 * (Image.MAX_IMAGE_PIXELS or 0)) from None
    upload.check_pixels(image.size)
    # Pillow has no cheaper check for WEBP than a full decode. Peak memory is about 15 bytes a pixel
    # (libwebp's buffers plus Pillow's copy; measured 245 MB for 4000x4000, 1.5 GB for 10000x10000),
    # bounded only by max_pixels: about 1 GB at the default 64 Mpx.
    image.load()
    return image.size


def _webp_canvas_size(head: bytes) -> tuple[int, int] | None:
    """Width and height from the first chunk's header (lossy VP8, lossless VP8L or extended VP8X)."""
    chunk = head[12:16]
    if chunk == b"VP8 " and len(head) >= 30 and head[23:26] == b"\x9d\x01\x2a":
        return int.from_bytes(head[26:28], "little") & 0x3FFF, int.from_bytes(head[28:30], "little") & 0x3FFF
    if chunk == b"VP8L" and len(head) >= 25 and head[20] == 0x2F:
        bits = int.from_bytes(head[21:25], "little")
        return (bits & 0x3FFF) + 1, ((bits >> 14) & 0x3FFF) + 1
    if chunk == b"VP8X" and len(head) >= 30:
        return int.from_bytes(head[24:27], "little") + 1, int.from_bytes(head[27:30], "little") + 1
    return None


def _contains(fp: BinaryIO, start: int, needle: bytes) -> bool:
    """Whether `needle` occurs in the file from `start` on, read a block at a time."""
    fp.seek(start)
    tail = b""
    while block := fp.read(_SCAN_BLOCK):
        if needle in tail + block:
            return True
        tail = block[-(len(needle) - 1) :]
    return False


def _reason(error: Exception) -> str:
    return str(error) or type(error).__name__
