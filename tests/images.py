"""Test images made with Pillow, as bytes."""

from __future__ import annotations

import io
import os

from PIL import Image


def png_bytes(
    width: int = 64, height: int = 64, color: tuple[int, ...] = (200, 30, 30), mode: str = "RGB"
) -> bytes:
    buffer = io.BytesIO()
    Image.new(mode, (width, height), color).save(buffer, "PNG")
    return buffer.getvalue()


def subject_on_background(size: int = 64) -> bytes:
    """A red square on a flat light-grey background: something to cut out."""
    image = Image.new("RGB", (size, size), (230, 230, 230))
    image.paste((200, 20, 20), (size // 4, size // 4, 3 * size // 4, 3 * size // 4))
    buffer = io.BytesIO()
    image.save(buffer, "PNG")
    return buffer.getvalue()


def noisy_subject(size: int = 512) -> bytes:
    """Random noise in the middle of a flat light-grey background: something to cut out whose
    PNG cannot shrink (about size * size / 4 * 3 bytes)."""
    noise = Image.frombytes("RGB", (size // 2, size // 2), os.urandom(size * size // 4 * 3))
    image = Image.new("RGB", (size, size), (230, 230, 230))
    image.paste(noise, (size // 4, size // 4))
    buffer = io.BytesIO()
    image.save(buffer, "PNG")
    return buffer.getvalue()


def jpeg_bytes(width: int = 64, height: int = 64) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (width, height), (10, 120, 200)).save(buffer, "JPEG")
    return buffer.getvalue()


def mask_bytes(width: int = 64, height: int = 64) -> bytes:
    """Opaque, with a transparent square in the middle: edit there."""
    mask = Image.new("RGBA", (width, height), (0, 0, 0, 255))
    mask.paste((0, 0, 0, 0), (width // 4, height // 4, 3 * width // 4, 3 * height // 4))
    buffer = io.BytesIO()
    mask.save(buffer, "PNG")
    return buffer.getvalue()


def decode(data: bytes) -> Image.Image:
    image = Image.open(io.BytesIO(data))
    image.load()
    return image
