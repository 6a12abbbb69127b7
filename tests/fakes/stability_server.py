"""A fake of Stability AI's v2beta stable-image API: a real aiohttp server on 127.0.0.1.

    async with FakeStability(api_key="s") as fake:
        fake.enqueue(FakeResponse.error(429, headers={"Retry-After": "1"}), FakeResponse.success())
        ...  # point a client at fake.base_url (the API root, like https://api.stability.ai)
        assert fake.requests[0].field("prompt") == "a lighthouse"

Endpoints (POST, multipart/form-data):

- `/v2beta/stable-image/generate/{core,ultra,sd3}`: `prompt` required; `aspect_ratio`,
  `negative_prompt`, `seed`, `output_format`, and on sd3 `model`. Answers a small image
  of the requested aspect ratio (64 px on its short side).
- `/v2beta/stable-image/edit/inpaint`: `image` and `prompt` required, `mask` optional
  (white = edit, same size as the image). Answers the image with the masked area
  painted EDIT_COLOR (without a mask: its transparent area).
- `/v2beta/stable-image/edit/outpaint`: `image` and at least one of `left`, `right`,
  `up`, `down` (0..2000, one above 0). Answers the image centred on a BACKGROUND_COLOR
  canvas grown by those margins.
- `/v2beta/stable-image/edit/remove-background`: `image`; `output_format` png or webp.
  Answers the image with every pixel of its top-left pixel's colour made transparent.

Checked in this order, as Stability does: the path (404), the bearer key (401), the body
size (413 over 10 MiB), multipart (400), the fields and images (400: sides >= 64 px,
4,096..9,437,184 pixels), `Accept` (400 unless image/* or application/json). Errors are
Stability's `{"id", "name", "errors": ["field: message"]}`. A request that passes gets
the next scripted answer, or the default success. A success honours `Accept`: image/*
(the default) gives the raw image with `finish-reason` and `seed` headers;
application/json gives `{"image": base64, "finish_reason", "seed"}`.

Every request is recorded, whatever the answer. `FakeResponse.hang()` never answers;
on close its handler is cancelled, so nothing is left running.
"""

from __future__ import annotations

import asyncio
import base64
import io
import json
import time
import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from aiohttp import web
from PIL import Image, ImageChops, ImageFilter

from tests.fakes.scripted import (
    MultipartBody,
    RecordedMultipartRequest,
    ScriptedResponse,
    ScriptedServer,
    read_multipart,
)
from tests.fakes.scripted import RecordedFile as RecordedFile

API_PREFIX = "/v2beta/stable-image/"
GENERATE_ENDPOINTS = frozenset({"core", "ultra", "sd3"})
EDIT_ENDPOINTS = frozenset({"inpaint", "outpaint", "remove-background"})
SD3_MODELS = frozenset(
    {
        "sd3.5-large",
        "sd3.5-large-turbo",
        "sd3.5-medium",
        "sd3.5-flash",
        "sd3-large",
        "sd3-large-turbo",
        "sd3-medium",
    }
)
ASPECT_RATIOS = {
    "16:9": (16, 9),
    "1:1": (1, 1),
    "21:9": (21, 9),
    "2:3": (2, 3),
    "3:2": (3, 2),
    "4:5": (4, 5),
    "5:4": (5, 4),
    "9:16": (9, 16),
    "9:21": (9, 21),
}
OUTPUT_FORMATS = ("png", "jpeg", "webp")
MAX_BODY_BYTES = 10 * 1024 * 1024
MAX_MARGIN = 2000
MAX_SEED = 4_294_967_294
BASE_SIDE = 64
"""The short side of a generated image."""
EDIT_COLOR = (0, 0, 255, 255)
BACKGROUND_COLOR = (128, 128, 128, 255)
GENERATED_COLOR = (30, 160, 90, 255)

# The `name` of an error body by status (bad_request, content_moderation and
# rate_limit_exceeded are Stability's; the others are this fake's guesses).
ERROR_NAMES = {
    400: "bad_request",
    401: "unauthorized",
    403: "content_moderation",
    404: "not_found",
    413: "payload_too_large",
    422: "invalid_request",
    429: "rate_limit_exceeded",
    500: "internal_error",
    503: "service_unavailable",
}
_DEFAULT_ERRORS = {
    403: "Your request was flagged by our content moderation system, as a result your request was "
    "denied and you were not charged.",
    429: "You have exceeded the rate limit of 150 requests within a 10 second period, and have been "
    "timed out for 60 seconds.",
}


@dataclass(frozen=True)
class RecordedRequest(RecordedMultipartRequest):
    @property
    def key(self) -> str | None:
        """The bearer key presented, or None."""
        auth = self.headers.get("authorization", "")
        return auth.removeprefix("Bearer ") if auth.startswith("Bearer ") else None

    @property
    def endpoint(self) -> str:
        """The last path segment: core, sd3, inpaint, remove-background, ..."""
        return self.path.rsplit("/", 1)[-1]


class FakeResponse(ScriptedResponse):
    """One scripted answer; build it with the class methods (success, raw, json_body, hang,
    and Stability's content_filtered and error)."""

    @classmethod
    def content_filtered(cls, delay: float = 0.0) -> FakeResponse:
        """A 200 with a blurred image and finish reason CONTENT_FILTERED."""
        return cls("content_filtered", delay=delay)

    @classmethod
    def error(
        cls,
        status: int,
        *errors: str,
        name: str | None = None,
        headers: Mapping[str, str] | None = None,
        delay: float = 0.0,
    ) -> FakeResponse:
        """Stability's error JSON; name and message default by status."""
        body = error_body(status, list(errors), name)
        return cls("error", status, body, headers=dict(headers or {}), delay=delay)


class FakeStability(ScriptedServer[RecordedRequest]):
    """Stability's stable-image API on 127.0.0.1 (a free port), for the length of an `async with`."""

    client_max_size = 1024**2  # aiohttp's default: bodies are multipart, read part by part

    def __init__(self, api_key: str | Iterable[str] | None = "s") -> None:
        super().__init__()
        self.api_keys: frozenset[str] | None = (
            None if api_key is None else frozenset([api_key] if isinstance(api_key, str) else api_key)
        )
        """The keys to accept as `Authorization: Bearer`; None accepts any request."""

    @property
    def base_url(self) -> str:
        """The API root, e.g. `http://127.0.0.1:PORT` (paths start with /v2beta). Scripted
        answers go to valid, authenticated requests."""
        return self._url()

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        recorded, too_large = await _record(request)
        self.requests.append(recorded)
        refusal = self._refusal(request, recorded, too_large)
        if refusal is None:
            refusal = await asyncio.to_thread(_invalid_fields, recorded)
        if refusal is not None:
            return await self._after_latency(refusal)

        async def success(scripted: ScriptedResponse) -> web.Response:
            filtered = scripted.kind == "content_filtered"
            image, media_type = await asyncio.to_thread(_render, recorded, filtered)
            return self._image_response(recorded, image, media_type, filtered)

        return await self._scripted_answer(success, request)

    def _refusal(
        self, request: web.Request, recorded: RecordedRequest, too_large: bool
    ) -> web.Response | None:
        """The checks before the fields: path, key, size, multipart, Accept."""
        if request.method != "POST" or not _known_path(request.path):
            return error_response(404, f"{request.method} {request.path}: not found")
        if self.api_keys is not None and recorded.key not in self.api_keys:
            return error_response(401, "authorization: invalid or missing API key")
        if too_large:
            return error_response(413, f"body: payloads cannot be larger than {MAX_BODY_BYTES} bytes")
        if not request.content_type.startswith("multipart/form-data"):
            return error_response(400, "content-type: must be multipart/form-data")
        if _accept(recorded) is None:
            return error_response(400, "accept: must be image/* or application/json")
        return None

    def _image_response(
        self, recorded: RecordedRequest, image: bytes, media_type: str, filtered: bool
    ) -> web.Response:
        finish_reason = "CONTENT_FILTERED" if filtered else "SUCCESS"
        seed = _seed(recorded, len(self.requests))
        if _accept(recorded) == "application/json":
            doc = {"image": base64.b64encode(image).decode(), "finish_reason": finish_reason, "seed": seed}
            headers = {"Content-Type": f"application/json; type={media_type}"}
            return web.Response(body=json.dumps(doc).encode(), headers=headers)
        headers = {"Content-Type": media_type, "finish-reason": finish_reason, "seed": str(seed)}
        return web.Response(body=image, headers=headers)


async def _record(request: web.Request) -> tuple[RecordedRequest, bool]:
    """The request as received, and whether its body went over MAX_BODY_BYTES (reading stops there)."""
    arrived = time.monotonic()
    parts = MultipartBody(too_large=(request.content_length or 0) > MAX_BODY_BYTES)
    body = b""
    if not parts.too_large and request.content_type.startswith("multipart/"):
        parts = await read_multipart(request, MAX_BODY_BYTES)
    elif not parts.too_large:
        body = await request.read()
    headers = {k.lower(): v for k, v in request.headers.items()}
    recorded = RecordedRequest(
        request.method, request.path, headers, parts.fields, parts.files, body, arrived
    )
    return recorded, parts.too_large


def _known_path(path: str) -> bool:
    if not path.startswith(API_PREFIX):
        return False
    kind, _, endpoint = path.removeprefix(API_PREFIX).partition("/")
    return (kind == "generate" and endpoint in GENERATE_ENDPOINTS) or (
        kind == "edit" and endpoint in EDIT_ENDPOINTS
    )


def _accept(recorded: RecordedRequest) -> str | None:
    """image/* or application/json (the first the header names), or None for anything else."""
    accept = recorded.headers.get("accept", "").strip()
    if accept in ("", "*/*"):
        return "image/*"
    for item in accept.split(","):
        media = item.split(";")[0].strip().lower()
        if media in ("image/*", "application/json"):
            return media
    return None


def _invalid_fields(recorded: RecordedRequest) -> web.Response | None:
    """A Stability 400 for the first missing or invalid field, or None."""
    problem = _field_problem(recorded)
    return None if problem is None else error_response(400, problem)


def _field_problem(recorded: RecordedRequest) -> str | None:
    endpoint = recorded.endpoint
    formats = ("png", "webp") if endpoint == "remove-background" else OUTPUT_FORMATS
    output_format = recorded.field("output_format")
    if output_format is not None and output_format not in formats:
        return f"output_format: must be one of {', '.join(formats)}"
    seed = recorded.field("seed")
    if seed is not None and not (seed.isdigit() and int(seed) <= MAX_SEED):
        return f"seed: must be an integer between 0 and {MAX_SEED}"
    if endpoint in ("core", "ultra", "sd3", "inpaint") and not (recorded.field("prompt") or "").strip():
        return "prompt: cannot be empty"
    if endpoint in GENERATE_ENDPOINTS:
        return _generation_problem(recorded)
    return _edit_problem(recorded)


def _generation_problem(recorded: RecordedRequest) -> str | None:
    ratio = recorded.field("aspect_ratio")
    if ratio is not None and ratio not in ASPECT_RATIOS:
        return f"aspect_ratio: must be one of {', '.join(ASPECT_RATIOS)}"
    model = recorded.field("model")
    if model is not None and (recorded.endpoint != "sd3" or model not in SD3_MODELS):
        return f"model: must be one of {', '.join(sorted(SD3_MODELS))}"
    return None


def _edit_problem(recorded: RecordedRequest) -> str | None:
    image_file = recorded.file("image")
    if image_file is None:
        return "image: is required"
    image = _open(image_file.data)
    if image is None:
        return "image: could not be decoded as an image"
    width, height = image.size
    if min(width, height) < 64 or not 4_096 <= width * height <= 9_437_184:
        return f"image: dimensions {width}x{height} are invalid: sides >= 64 and 4096 to 9437184 pixels"
    if recorded.endpoint == "inpaint" and (mask_file := recorded.file("mask")) is not None:
        mask = _open(mask_file.data)
        if mask is None or mask.size != image.size:
            return "mask: must be an image the same size as the image"
    if recorded.endpoint == "outpaint":
        return _margin_problem(recorded)
    return None


def _margin_problem(recorded: RecordedRequest) -> str | None:
    given = {side: recorded.field(side) for side in ("left", "right", "up", "down")}
    values = [v for v in given.values() if v is not None]
    for side, value in given.items():
        if value is not None and not (value.isdigit() and int(value) <= MAX_MARGIN):
            return f"{side}: must be an integer between 0 and {MAX_MARGIN}"
    if not any(int(v) > 0 for v in values):
        return "left: at least one of left, right, up or down must be greater than 0"
    return None


def _margins(recorded: RecordedRequest) -> tuple[int, int, int, int]:
    left, right, up, down = (int(recorded.field(side) or 0) for side in ("left", "right", "up", "down"))
    return left, right, up, down


def _render(recorded: RecordedRequest, filtered: bool) -> tuple[bytes, str]:
    """The default success for a valid request: (image bytes, media type)."""
    endpoint = recorded.endpoint
    if endpoint in GENERATE_ENDPOINTS:
        width, height = generated_size(recorded.field("aspect_ratio") or "1:1")
        image = Image.new("RGBA", (width, height), GENERATED_COLOR)
    else:
        image_file = recorded.file("image")
        assert image_file is not None  # validated before
        source = _open(image_file.data)
        assert source is not None
        image = _edit(endpoint, recorded, source.convert("RGBA"))
    if filtered:
        image = image.filter(ImageFilter.GaussianBlur(8))
    output_format = recorded.field("output_format") or "png"
    return _encode(image, output_format), f"image/{output_format}"


def generated_size(ratio: str) -> tuple[int, int]:
    """The size of a generated image: BASE_SIDE on its short side, the ratio's long side."""
    a, b = ASPECT_RATIOS[ratio]
    if a >= b:
        return round(BASE_SIDE * a / b), BASE_SIDE
    return BASE_SIDE, round(BASE_SIDE * b / a)


def _edit(endpoint: str, recorded: RecordedRequest, image: Image.Image) -> Image.Image:
    if endpoint == "outpaint":
        left, right, up, down = _margins(recorded)
        canvas = Image.new("RGBA", (image.width + left + right, image.height + up + down), BACKGROUND_COLOR)
        canvas.paste(image, (left, up))
        return canvas
    if endpoint == "remove-background":
        image.paste((0, 0, 0, 0), (0, 0, image.width, image.height), _same_as_corner(image))
        return image
    mask_file = recorded.file("mask")
    mask = _open(mask_file.data) if mask_file is not None else None
    # Stability's mask: white = edit. Without one, the image's transparent area is edited.
    area = (
        mask.convert("L").point([0] * 128 + [255] * 128)
        if mask is not None
        else image.getchannel("A").point([255] + [0] * 255)
    )
    image.paste(EDIT_COLOR, (0, 0, image.width, image.height), area)
    return image


def _same_as_corner(image: Image.Image) -> Image.Image:
    """A mask, white where a pixel has exactly the colour of the top-left one."""
    same: Image.Image | None = None
    for band in image.split():
        corner = band.getpixel((0, 0))
        band_mask = band.point([255 if value == corner else 0 for value in range(256)])
        same = band_mask if same is None else ImageChops.multiply(same, band_mask)
    assert same is not None
    return same


def _open(data: bytes) -> Image.Image | None:
    try:
        image = Image.open(io.BytesIO(data))
        image.load()
    except (OSError, ValueError, SyntaxError):
        return None
    return image


def _encode(image: Image.Image, output_format: str) -> bytes:
    out = io.BytesIO()
    if output_format == "jpeg":
        image.convert("RGB").save(out, "JPEG")
    elif output_format == "webp":
        image.save(out, "WEBP", lossless=True)  # exact pixels, for the tests
    else:
        image.save(out, "PNG")
    return out.getvalue()


def _seed(recorded: RecordedRequest, counter: int) -> int:
    """The seed asked for, or (for none or 0, Stability's "random") a made-up one."""
    seed = recorded.field("seed")
    return int(seed) if seed and seed.isdigit() and int(seed) > 0 else 1_000 + counter


def error_body(status: int, errors: Sequence[str], name: str | None = None) -> bytes:
    messages = list(errors) or [_DEFAULT_ERRORS.get(status, f"HTTP {status}")]
    doc = {"id": uuid.uuid4().hex, "name": name or ERROR_NAMES.get(status, "error"), "errors": messages}
    return json.dumps(doc).encode()


def error_response(status: int, *errors: str, name: str | None = None) -> web.Response:
    return web.Response(status=status, body=error_body(status, errors, name), content_type="application/json")
