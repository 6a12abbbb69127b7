"""The bodies the bench sends: a 256x256 PNG as multipart and as a proto, and a ~50 MB PNG file."""

from __future__ import annotations

import io
import os
import random
from dataclasses import dataclass
from pathlib import Path

from PIL import Image, ImageDraw

from asyncgate.v1 import image_common_pb2, image_edit_pb2, job_service_pb2

MODEL = "local/pillow"
EDIT_TYPE = "background_removal"
BIG_SIDE = 4100  # 4100 x 4100 RGB is 50.4 MB of pixels: stored uncompressed, the PNG is about that
_BOUNDARY = "asyncgate-bench-boundary-7d1f"


@dataclass(frozen=True)
class MultipartBody:
    data: bytes
    content_type: str


def small_png(side: int = 256, seed: int = 7) -> bytes:
    """A photo-like PNG: a subject on a gradient, with a little noise so it does not compress to nothing."""
    gradient = Image.linear_gradient("L").resize((side, side))
    image = Image.merge("RGB", [gradient, gradient.rotate(90), Image.new("L", (side, side), 180)])
    ImageDraw.Draw(image).ellipse((side // 4, side // 5, 3 * side // 4, 4 * side // 5), fill=(200, 40, 40))
    noise = Image.frombytes("RGB", (side, side), random.Random(seed).randbytes(side * side * 3))
    buffer = io.BytesIO()
    Image.blend(image, noise, 0.08).save(buffer, "PNG")
    return buffer.getvalue()


def multipart_form(png: bytes) -> MultipartBody:
    """The edit form as the REST API takes it, encoded once so every request sends the same bytes."""
    crlf = b"\r\n"
    parts = []
    for name, value in (("model", MODEL), ("type", EDIT_TYPE)):
        parts.append(f'Content-Disposition: form-data; name="{name}"'.encode() + crlf + crlf + value.encode())
    parts.append(
        b'Content-Disposition: form-data; name="image"; filename="photo.png"'
        + crlf
        + b"Content-Type: image/png"
        + crlf
        + crlf
        + png
    )
    delimiter = f"--{_BOUNDARY}".encode()
    body = b"".join(delimiter + crlf + part + crlf for part in parts) + delimiter + b"--" + crlf
    return MultipartBody(body, f"multipart/form-data; boundary={_BOUNDARY}")


def create_request(png: bytes) -> job_service_pb2.CreateImageEditJobRequest:
    """The same edit as a unary gRPC request, the image inline."""
    return job_service_pb2.CreateImageEditJobRequest(
        request=image_edit_pb2.ImageEditRequest(
            model=MODEL,
            type=image_edit_pb2.EDIT_TYPE_BACKGROUND_REMOVAL,
            images=[image_common_pb2.InputImage(data=png, filename="photo.png", content_type="image/png")],
        )
    )


def write_big_png(path: Path, side: int = BIG_SIDE) -> int:
    """Random noise saved uncompressed: a valid PNG of about side*side*3 bytes. Returns its size."""
    image = Image.frombytes("RGB", (side, side), os.urandom(side * side * 3))
    image.save(path, "PNG", compress_level=0)
    return path.stat().st_size
