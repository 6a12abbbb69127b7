"""Every refusal of docs/rest-api.md §5 through the REST bridge: 400 (or 413) naming the
field, before any job exists, leaving nothing stored or staged."""

from __future__ import annotations

import asyncio
import io
import os
import zlib
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest
from PIL import Image

from grpc_server.config import DispatcherSettings
from rest_bridge.config import BridgeConfig
from tests.conftest import Stack, StackFactory
from tests.images import jpeg_bytes, mask_bytes, png_bytes
from tests.rest import EDITS, edit_form, submit

MB = 1024 * 1024


def _bomb_png(width: int, height: int) -> bytes:
    """A tiny PNG whose header claims width x height 1-bit pixels (a decompression bomb)."""
    row = b"\x00" + b"\x00" * ((width + 7) // 8)
    raw = zlib.compress(row * height, 9)

    def chunk(kind: bytes, data: bytes) -> bytes:
        return len(data).to_bytes(4, "big") + kind + data + zlib.crc32(kind + data).to_bytes(4, "big")

    header = width.to_bytes(4, "big") + height.to_bytes(4, "big") + bytes([1, 0, 0, 0, 0])
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", raw) + chunk(b"IEND", b"")


def _gif() -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (8, 8)).save(buffer, "GIF")
    return buffer.getvalue()


def _corrupt_png() -> bytes:
    data = bytearray(png_bytes(64, 64))
    data[60] ^= 0xFF  # inside IDAT: its CRC no longer matches
    return bytes(data)


FIELD_REFUSALS: list[tuple[str, dict[str, str], str, str]] = [
    # (case, fields over the default form, param, words of the message)
    ("no model", {"model": ""}, "model", "model is required"),
    ("model without provider", {"model": "gpt-image-1"}, "model", "invalid model value"),
    ("unconfigured provider", {"model": "nope/model"}, "model", "not configured"),
    ("no prompt for inpainting", {"type": "inpainting"}, "prompt", "prompt is required"),
    ("stream", {"stream": "true"}, "stream", "stream is not supported for async image edits"),
    ("stream not a bool", {"stream": "maybe"}, "stream", "invalid stream value"),
    ("unknown type", {"type": "upscale"}, "type", "invalid type value"),
    ("unknown size", {"size": "300x300"}, "size", "invalid size value"),
    ("unknown response_format", {"response_format": "png"}, "response_format", "invalid response_format"),
    ("unknown background", {"background": "blue"}, "background", "invalid background value"),
    ("unknown input_fidelity", {"input_fidelity": "max"}, "input_fidelity", "invalid input_fidelity"),
    ("unknown quality", {"quality": "ultra"}, "quality", "invalid quality value"),
    ("unknown output_format", {"output_format": "gif"}, "output_format", "invalid output_format"),
    ("n zero", {"n": "0"}, "n", "invalid n value"),
    ("n eleven", {"n": "11"}, "n", "invalid n value"),
    ("n not a number", {"n": "two"}, "n", "invalid n value"),
    ("n fullwidth digit", {"n": "\uff15"}, "n", "invalid n value"),
    ("partial_images 4", {"partial_images": "4"}, "partial_images", "invalid partial_images value"),
    (
        "output_compression 101",
        {"output_compression": "101"},
        "output_compression",
        "invalid output_compression",
    ),
    ("output_compression text", {"output_compression": "high"}, "output_compression", "expected an integer"),
    ("seed text", {"seed": "abc"}, "seed", "invalid seed value"),
    ("steps text", {"num_inference_steps": "1.5"}, "num_inference_steps", "invalid num_inference_steps"),
    ("fallback without provider", {"fallbacks": "dall-e-2"}, "fallbacks", "fallbacks"),
]


async def _refused(stack: Stack, form: aiohttp.FormData, status: int = 400) -> dict[str, Any]:
    got, body = await submit(stack.http, form)
    assert got == status, body
    assert body["status_code"] == status
    assert body["is_bifrost_error"] is False
    assert list(body) == ["event_id", "type", "is_bifrost_error", "status_code", "error", "extra_fields"]
    assert stack.stored_jobs() == 0, "a refused request left a job behind"
    await stack.no_staged_files()
    return body


@pytest.mark.parametrize(
    ("case", "fields", "param", "words"), FIELD_REFUSALS, ids=[r[0] for r in FIELD_REFUSALS]
)
async def test_field_refusals(
    stack: Stack, case: str, fields: dict[str, str], param: str, words: str
) -> None:
    body = await _refused(stack, edit_form(fields))
    assert body["error"]["param"] == param
    assert words in body["error"]["message"]


IMAGE_REFUSALS: list[tuple[str, list[tuple[str, bytes]], bytes | None, str, str]] = [
    ("no image", [], None, "image", "at least one image is required"),
    (
        "seventeen images",
        [(f"{i}.png", png_bytes(8, 8)) for i in range(17)],
        None,
        "image",
        "too many images",
    ),
    ("not an image", [("a.png", b"hello, I am text")], None, "image", "image[0]"),
    ("gif", [("a.gif", _gif())], None, "image", "GIF"),
    ("truncated png", [("a.png", png_bytes(64, 64)[:-30])], None, "image", "truncated or corrupt"),
    ("corrupt png", [("a.png", _corrupt_png())], None, "image", "truncated or corrupt"),
    ("truncated jpeg", [("a.jpg", jpeg_bytes(256, 256)[:300])], None, "image", "truncated or corrupt"),
    ("second image bad", [("a.png", png_bytes()), ("b.png", b"junk")], None, "image", "image[1]"),
    ("decompression bomb", [("bomb.png", _bomb_png(30000, 30000))], None, "image", "pixels"),
    ("mask size mismatch", [("a.png", png_bytes(64, 64))], mask_bytes(32, 32), "mask", "does not match"),
    ("mask not png", [("a.png", png_bytes(64, 64))], jpeg_bytes(64, 64), "mask", "PNG"),
]


@pytest.mark.parametrize(
    ("case", "images", "mask", "param", "words"), IMAGE_REFUSALS, ids=[r[0] for r in IMAGE_REFUSALS]
)
async def test_image_refusals(
    stack: Stack, case: str, images: list[tuple[str, bytes]], mask: bytes | None, param: str, words: str
) -> None:
    body = await _refused(stack, edit_form({"prompt": "p"}, images=images, mask=mask))
    assert body["error"]["param"] == param
    assert words in body["error"]["message"]


async def test_several_images_as_image_brackets_are_accepted(stack: Stack) -> None:
    images = [("a.png", png_bytes()), ("b.png", png_bytes())]
    status, body = await submit(stack.http, edit_form(images=images, image_field="image[]"))
    assert status == 202, body


MALFORMED: list[tuple[str, dict[str, str], bytes]] = [
    ("not multipart", {"Content-Type": "application/json"}, b'{"model": "local/pillow"}'),
    ("no boundary", {"Content-Type": "multipart/form-data"}, b"--x\r\n\r\n"),
    (
        "truncated body",
        {"Content-Type": "multipart/form-data; boundary=XYZ"},
        b'--XYZ\r\nContent-Disposition: form-data; name="model"\r\n\r\nlocal/pillow\r\n--XYZ\r\nContent-Disp',
    ),
    (
        "part without a name",
        {"Content-Type": "multipart/form-data; boundary=XYZ"},
        b"--XYZ\r\nContent-Disposition: form-data\r\n\r\nvalue\r\n--XYZ--\r\n",
    ),
]


@pytest.mark.parametrize(("case", "headers", "body"), MALFORMED, ids=[m[0] for m in MALFORMED])
async def test_malformed_multipart(stack: Stack, case: str, headers: dict[str, str], body: bytes) -> None:
    async with stack.http.post(EDITS, data=body, headers=headers) as response:
        assert response.status == 400
        error = await response.json()
    assert error["error"]["message"].startswith("failed to parse multipart form:"), error
    assert stack.stored_jobs() == 0
    await stack.no_staged_files()


def _noise_png(megabytes: int) -> bytes:
    """An incompressible PNG of roughly the given size."""
    side = int((megabytes * MB / 3) ** 0.5)
    image = Image.frombytes("RGB", (side, side), os.urandom(side * side * 3))
    buffer = io.BytesIO()
    image.save(buffer, "PNG", compress_level=0)
    return buffer.getvalue()


@pytest.mark.slow
async def test_a_30_mb_image_is_accepted_and_stored_whole(make_stack: StackFactory) -> None:
    stack = await make_stack(dispatcher=DispatcherSettings(concurrency=0))  # store it, run nothing
    image = _noise_png(30)
    assert len(image) > 30 * MB
    status, body = await submit(stack.http, edit_form(images=[("big.png", image)]))
    assert status == 202, body
    job = await stack.server.store.get_job(body["id"])
    assert job is not None and job.inputs[0].size_bytes == len(image)


async def test_body_over_the_bridge_limit_is_413_naming_the_file(make_stack: StackFactory) -> None:
    """Sent chunked (no Content-Length), so the bridge finds out while streaming the file."""
    stack = await make_stack(bridge=BridgeConfig(max_body_bytes=2 * MB))
    writer = aiohttp.MultipartWriter("form-data")
    writer.append("local/pillow").set_content_disposition("form-data", name="model")
    writer.append(io.BytesIO(_noise_png(3)), {"Content-Type": "image/png"}).set_content_disposition(
        "form-data", name="image", filename="big.png"
    )
    body = bytearray()

    class Sink:
        async def write(self, data: bytes) -> None:
            body.extend(data)

    await writer.write(Sink())  # type: ignore[arg-type]

    async def chunked() -> AsyncIterator[bytes]:
        for i in range(0, len(body), 64 * 1024):
            yield bytes(body[i : i + 64 * 1024])

    headers = {"Content-Type": writer.content_type}
    async with stack.http.post(EDITS, data=chunked(), headers=headers) as response:
        assert response.status == 413
        error = await response.json()
    assert error["error"]["param"] == "image"
    assert stack.stored_jobs() == 0


async def test_file_over_the_server_limit_is_413(make_stack: StackFactory) -> None:
    stack = await make_stack(max_image_bytes=1 * MB)
    body = await _refused(stack, edit_form(images=[("big.png", _noise_png(2))]), status=413)
    assert body["error"]["param"] == "image"
    assert "limit" in body["error"]["message"]


async def test_declared_content_length_over_the_limit_is_413_before_reading(make_stack: StackFactory) -> None:
    stack = await make_stack(bridge=BridgeConfig(max_body_bytes=1 * MB))
    headers = {"Content-Type": "multipart/form-data; boundary=XYZ", "Content-Length": str(5 * MB)}
    port = int(stack.base_url.rsplit(":", 1)[1])
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    head = (
        f"POST {EDITS} HTTP/1.1\r\nHost: x\r\n"
        + "".join(f"{k}: {v}\r\n" for k, v in headers.items())
        + "\r\n"
    )
    writer.write(head.encode())  # the headers only: the body is never sent
    await writer.drain()
    status_line = await reader.readline()
    writer.close()
    assert b" 413 " in status_line
    assert stack.stored_jobs() == 0


async def test_a_number_too_long_to_convert_is_a_400_not_a_crash(stack: Stack) -> None:
    body = await _refused(stack, edit_form({"n": "9" * 5000}))
    assert body["error"]["param"] == "n"
    assert "out of range" in body["error"]["message"]
