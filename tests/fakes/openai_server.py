"""A fake of OpenAI's images and embeddings API: a real aiohttp server on 127.0.0.1.

    async with FakeOpenAI(api_key="sk-test") as fake:
        fake.enqueue(FakeResponse.error(429, headers={"Retry-After": "1"}), FakeResponse.success())
        ...  # point a client (or a server subprocess) at fake.base_url
        assert fake.requests[0].fields["model"] == ["gpt-image-1"]

Every request is recorded, whatever the answer. `POST /v1/images/edits`,
`POST /v1/images/generations`, `POST /v1/images/variations` and `POST /v1/embeddings`
check the bearer key (401 with OpenAI's error body if wrong), then answer with the next scripted response
(one queue for every path), or with a success when none is queued:

- edits: `n` PNGs, each the first input image re-encoded (resized to `size` when
  that is `WxH`);
- variations: `n` PNGs, each the `image` part mirrored left to right (resized to `size`
  when that is `WxH`), base64 when asked for `b64_json`, else URLs as dall-e-2 answers;
- generations: `n` images of `size` (64x64 when unset or `auto`, not OpenAI's
  large default) in one colour derived from the prompt (`prompt_colour`), encoded
  as `output_format`; base64, except that dall-e models answer URLs unless asked for
  `b64_json`, and GPT image models refuse `response_format` as OpenAI does;
- embeddings: one vector per input (`embedding_vector`: seeded by the input, so
  deterministic), `dimensions` long (8 by default), as base64 little-endian float32
  or float lists per `encoding_format`; usage counts whitespace-separated words
  (or token ids).

Every other path answers 404 like OpenAI. Behaviours of compatible servers can be
switched on: `ignore_encoding_format` (always float lists), `shuffle_embeddings`
(data in reverse index order); `api_key=None` accepts any request, keyed or not.

`FakeResponse.hang()` never answers; on close the handler is cancelled, so the
connection drops unanswered and nothing is left running.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import io
import json
import random
import re
import struct
import time
from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any

from aiohttp import hdrs, web
from PIL import Image

from tests.fakes.scripted import RecordedFile as RecordedFile
from tests.fakes.scripted import RecordedMultipartRequest, ScriptedResponse, ScriptedServer, read_multipart

EDITS_PATH = "/v1/images/edits"
GENERATIONS_PATH = "/v1/images/generations"
EMBEDDINGS_PATH = "/v1/embeddings"
VARIATIONS_PATH = "/v1/images/variations"
PATHS = frozenset({EDITS_PATH, GENERATIONS_PATH, EMBEDDINGS_PATH, VARIATIONS_PATH})
DEFAULT_DIMENSIONS = 8
DEFAULT_GENERATED_SIDE = 64
"""Generated images are this square when no size is asked: small, unlike OpenAI's 1024."""
MAX_SIDE = 4096
MAX_DIMENSIONS = 4096
_SIZE = re.compile(r"(\d+)x(\d+)")
_FORMATS = {"png": "PNG", "jpeg": "JPEG", "webp": "WEBP"}


@dataclass(frozen=True)
class RecordedRequest(RecordedMultipartRequest):
    json: Any = None
    """A JSON body, parsed (None when the body is not JSON)."""


class FakeResponse(ScriptedResponse):
    """One scripted answer; build it with the class methods (success, raw, json_body, hang
    and error)."""

    @classmethod
    def error(
        cls,
        status: int,
        message: str = "The server had an error while processing your request.",
        type: str = "server_error",
        code: str | int | None = None,
        param: str | None = None,
        headers: Mapping[str, str] | None = None,
        delay: float = 0.0,
    ) -> FakeResponse:
        """OpenAI's error JSON `{"error": {message, type, param, code}}`."""
        body = _error_body(message, type, code, param)
        return cls("error", status, body, headers=dict(headers or {}), delay=delay)


class FakeOpenAI(ScriptedServer[RecordedRequest]):
    """OpenAI's images and embeddings API on 127.0.0.1 (a free port), for the length of an
    `async with`."""

    def __init__(
        self, api_key: str | tuple[str, ...] | None = "sk-test", *, keep_file_data: bool = True
    ) -> None:
        super().__init__()
        self.api_key = api_key
        """The key (or keys) to expect as `Authorization: Bearer`; None accepts any request."""
        self.keep_file_data = keep_file_data
        """Keep the bytes of file parts in `requests` (False: empty data, only their size)."""
        self.ignore_encoding_format = False
        """Answer embeddings as float lists whatever was asked, like many compatible servers."""
        self.shuffle_embeddings = False
        """Answer embeddings in reverse index order (OpenAI keeps input order; `index` is the truth)."""

    @property
    def base_url(self) -> str:
        """The API root to configure a client with, e.g. `http://127.0.0.1:PORT/v1`."""
        return self._url("/v1")

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        recorded, first_image = await self._record(request)
        self.requests.append(recorded)
        if request.method != "POST" or request.path not in PATHS:
            message = f"Invalid URL ({request.method} {request.path})"
            not_found = error_response(404, message, "invalid_request_error", None, None)
            return await self._after_latency(not_found)
        if (denied := self._check_key(request)) is not None:
            return await self._after_latency(denied)
        return await self._scripted_answer(lambda _: self._success(recorded, first_image), request)

    async def _record(self, request: web.Request) -> tuple[RecordedRequest, bytes | None]:
        arrived = time.monotonic()
        fields: dict[str, list[str]] = {}
        files: list[RecordedFile] = []
        body = b""
        first_image: bytes | None = None
        if request.content_type.startswith("multipart/"):
            parts = await read_multipart(request)
            fields = parts.fields
            images = [f.data for f in parts.files if f.name in ("image", "image[]")]
            first_image = images[0] if images else None
            files = parts.files if self.keep_file_data else [replace(f, data=b"") for f in parts.files]
        else:
            body = await request.read()
        headers = {k.lower(): v for k, v in request.headers.items()}
        doc = _parse_json(body) if request.content_type == "application/json" else None
        recorded = RecordedRequest(
            request.method, request.path, headers, fields, files, body, received_at=arrived, json=doc
        )
        return recorded, first_image

    async def _success(self, request: RecordedRequest, first_image: bytes | None) -> web.Response:
        if request.path == EDITS_PATH:
            return await _edit_success(request, first_image)
        if request.path == VARIATIONS_PATH:
            return await _variation_success(request, first_image)
        if not isinstance(request.json, dict):
            return _unparseable_body()
        if request.path == GENERATIONS_PATH:
            return await _generation_success(request.json)
        return self._embedding_success(request.json)

    def _embedding_success(self, doc: dict[str, Any]) -> web.Response:
        if not isinstance(doc.get("model"), str):
            return error_response(
                400, "you must provide a model parameter", "invalid_request_error", None, None
            )
        items = _embedding_inputs(doc.get("input"))
        if items is None:
            message = "'$.input' is invalid. Please check the API reference: https://platform.openai.com/docs/api-reference."
            return error_response(400, message, "invalid_request_error", None, None)
        encoding = doc.get("encoding_format", "float")
        if encoding not in ("float", "base64"):
            message = f"{encoding!r} is not one of ['float', 'base64'] - 'encoding_format'"
            return error_response(400, message, "invalid_request_error", None, None)
        dimensions = doc.get("dimensions", DEFAULT_DIMENSIONS)
        if not _positive_int(dimensions) or dimensions > MAX_DIMENSIONS:
            message = (
                f"Invalid value for 'dimensions' = {dimensions}. Must be between 1 and {MAX_DIMENSIONS}."
            )
            return error_response(400, message, "invalid_request_error", None, "dimensions")
        as_base64 = encoding == "base64" and not self.ignore_encoding_format
        data = [
            {
                "object": "embedding",
                "index": i,
                "embedding": _encode(embedding_vector(item, dimensions), as_base64),
            }
            for i, item in enumerate(items)
        ]
        if self.shuffle_embeddings:
            data.reverse()
        tokens = sum(len(item.split()) if isinstance(item, str) else len(item) for item in items)
        usage = {"prompt_tokens": tokens, "total_tokens": tokens}
        return web.json_response({"object": "list", "data": data, "model": doc["model"], "usage": usage})

    def _check_key(self, request: web.Request) -> web.Response | None:
        if self.api_key is None:
            return None
        accepted = (self.api_key,) if isinstance(self.api_key, str) else self.api_key
        auth = request.headers.get(hdrs.AUTHORIZATION, "")
        if auth in {f"Bearer {key}" for key in accepted}:
            return None
        presented = auth.removeprefix("Bearer ")
        if not presented:
            message = (
                "You didn't provide an API key. You need to provide your API key in an Authorization header."
            )
            return error_response(401, message, "invalid_request_error", None, None)
        # OpenAI masks the key it quotes back.
        masked = f"{presented[:3]}{'*' * max(len(presented) - 7, 0)}{presented[-4:]}"
        message = f"Incorrect API key provided: {masked}. You can find your API key at https://platform.openai.com/account/api-keys."
        return error_response(401, message, "invalid_request_error", "invalid_api_key", None)


async def _edit_success(request: RecordedRequest, first_image: bytes | None) -> web.Response:
    if first_image is None:
        return missing_parameter("image")
    if not request.field("prompt"):
        return missing_parameter("prompt")
    n_text = request.field("n") or "1"
    if not n_text.isdigit() or not 1 <= int(n_text) <= 10:
        return invalid_n(n_text)
    try:
        png, width, height = await asyncio.to_thread(_reencode, first_image, request.field("size"))
    except OSError:
        message = "Invalid image file or mode for image 1, please check your image file."
        return error_response(400, message, "invalid_request_error", "invalid_image_file", "image")
    return png_answer(
        png, int(n_text), (width, height), request.field("background"), request.field("quality")
    )


async def _variation_success(request: RecordedRequest, first_image: bytes | None) -> web.Response:
    if first_image is None:
        return missing_parameter("image")
    n_text = request.field("n") or "1"
    if not n_text.isdigit() or not 1 <= int(n_text) <= 10:
        return invalid_n(n_text)
    response_format = request.field("response_format") or "url"
    if response_format not in ("url", "b64_json"):
        return _invalid_value("response_format", response_format)
    try:
        png, _, _ = await asyncio.to_thread(_reencode, first_image, request.field("size"), mirror=True)
    except OSError:
        message = "Invalid input image - format must be in ['RGBA', 'L', 'LA'], got RGB."
        return error_response(400, message, "invalid_request_error", "invalid_image_format", "image")
    data = [_generated_item(png, i, response_format == "url", None) for i in range(int(n_text))]
    return web.json_response({"created": int(time.time()), "data": data})


def png_answer(
    png: bytes, n: int, size: tuple[int, int], background: str | None, quality: str | None
) -> web.Response:
    """A GPT image model's answer: n copies of a PNG in base64, with usage and what was made."""
    b64 = base64.b64encode(png).decode()
    doc = {
        "created": int(time.time()),
        "data": [{"b64_json": b64} for _ in range(n)],
        "usage": {"input_tokens": 10, "output_tokens": 20, "total_tokens": 30},
        "background": background or "opaque",
        "size": f"{size[0]}x{size[1]}",
        "output_format": "png",
        "quality": quality or "medium",
    }
    return web.json_response(doc)


def _reencode(image: bytes, size: str | None, *, mirror: bool = False) -> tuple[bytes, int, int]:
    """The image as PNG, resized when size is `WxH` (and mirrored left to right if asked)."""
    with Image.open(io.BytesIO(image)) as opened:
        img = opened.convert("RGBA")
    if mirror:
        img = img.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
    if size and (match := _SIZE.fullmatch(size)):
        img = img.resize((int(match[1]), int(match[2])))
    out = io.BytesIO()
    img.save(out, "PNG")
    return out.getvalue(), img.width, img.height


async def _generation_success(doc: dict[str, Any]) -> web.Response:
    # OpenAI's default model for generations.
    model = str(doc.get("model", "dall-e-2"))
    prompt = doc.get("prompt")
    if not isinstance(prompt, str) or not prompt:
        return missing_parameter("prompt")
    n = doc.get("n", 1)
    if not _positive_int(n) or n > 10:
        return invalid_n(n)
    if (refusal := _response_format_refusal(model, doc)) is not None:
        return refusal
    size = _generated_size(doc.get("size"))
    if size is None:
        return _invalid_value("size", doc.get("size"))
    output_format = doc.get("output_format", "png")
    if output_format not in _FORMATS:
        return _invalid_value("output_format", output_format)
    image = await asyncio.to_thread(_solid_image, prompt_colour(prompt), size, output_format)
    dall_e = model.startswith("dall-e")
    as_url = dall_e and doc.get("response_format", "url") == "url"
    data = [_generated_item(image, i, as_url, prompt if model == "dall-e-3" else None) for i in range(n)]
    answer: dict[str, Any] = {"created": int(time.time()), "data": data}
    if not dall_e:  # GPT image models describe what they made
        answer |= {
            "usage": {"input_tokens": 10, "output_tokens": 20, "total_tokens": 30},
            "background": doc.get("background") or "opaque",
            "size": f"{size[0]}x{size[1]}",
            "output_format": output_format,
            "quality": doc.get("quality") or "medium",
        }
    return web.json_response(answer)


def _response_format_refusal(model: str, doc: dict[str, Any]) -> web.Response | None:
    """GPT image models always answer base64 and refuse the field; dall-e takes url or b64_json."""
    if "response_format" not in doc:
        return None
    if model.startswith("gpt-image"):
        message = "Unknown parameter: 'response_format'."
        return error_response(400, message, "invalid_request_error", "unknown_parameter", "response_format")
    if doc["response_format"] not in ("url", "b64_json"):
        return _invalid_value("response_format", doc["response_format"])
    return None


def _generated_size(size: object) -> tuple[int, int] | None:
    if size is None or size == "auto":
        return DEFAULT_GENERATED_SIDE, DEFAULT_GENERATED_SIDE
    match = _SIZE.fullmatch(size) if isinstance(size, str) else None
    if match is None or not all(1 <= int(side) <= MAX_SIDE for side in match.groups()):
        return None
    return int(match[1]), int(match[2])


def _generated_item(image: bytes, index: int, as_url: bool, revised_prompt: str | None) -> dict[str, str]:
    item = (
        {"url": f"https://images.fake-openai.invalid/{index}.png"}
        if as_url
        else {"b64_json": base64.b64encode(image).decode()}
    )
    if revised_prompt is not None:
        item["revised_prompt"] = f"{revised_prompt}, revised"
    return item


def prompt_colour(prompt: str) -> tuple[int, int, int]:
    """The one colour a generated image is painted in: the first bytes of the prompt's SHA-256."""
    digest = hashlib.sha256(prompt.encode()).digest()
    return digest[0], digest[1], digest[2]


def _solid_image(colour: tuple[int, int, int], size: tuple[int, int], output_format: str) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", size, colour).save(out, _FORMATS[output_format])
    return out.getvalue()


def embedding_vector(item: str | list[int], dimensions: int = DEFAULT_DIMENSIONS) -> list[float]:
    """The vector the fake answers for one input: unit length, seeded by the input,
    each value exactly a float32 (so float lists and base64 carry the same numbers)."""
    rng = random.Random(hashlib.sha256(json.dumps(item).encode()).digest())
    values = [rng.gauss(0.0, 1.0) for _ in range(dimensions)]
    norm = sum(v * v for v in values) ** 0.5 or 1.0
    packed = struct.pack(f"<{dimensions}f", *(v / norm for v in values))
    return list(struct.unpack(f"<{dimensions}f", packed))


def _encode(vector: list[float], as_base64: bool) -> str | list[float]:
    if not as_base64:
        return vector
    return base64.b64encode(struct.pack(f"<{len(vector)}f", *vector)).decode()


def _embedding_inputs(value: object) -> list[str | list[int]] | None:
    """OpenAI's four input forms as a list of items; None when the input is invalid."""
    if isinstance(value, str):
        return [value] if value else None
    if not isinstance(value, list) or not value:
        return None
    if all(isinstance(v, str) and v for v in value):
        return value
    if all(_token(v) for v in value):
        return [value]
    if all(isinstance(v, list) and v and all(_token(t) for t in v) for v in value):
        return value
    return None


def _token(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def _positive_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 1


def _parse_json(body: bytes) -> Any:
    try:
        return json.loads(body)
    except ValueError:
        return None


def _unparseable_body() -> web.Response:
    message = (
        "We could not parse the JSON body of your request. (HINT: This likely means you aren't using"
        " your HTTP library correctly. The OpenAI API expects a JSON payload, but what was sent was"
        " not valid JSON.)"
    )
    return error_response(400, message, "invalid_request_error", None, None)


def invalid_n(value: object) -> web.Response:
    message = f"Invalid 'n': expected an integer between 1 and 10, got {value!r}."
    return error_response(400, message, "invalid_request_error", "invalid_value", "n")


def _invalid_value(param: str, value: object) -> web.Response:
    message = f"Invalid value: {value!r}. Supported values are listed in the API reference."
    return error_response(400, message, "invalid_request_error", "invalid_value", param)


def missing_parameter(param: str) -> web.Response:
    message = f"Missing required parameter: '{param}'."
    return error_response(400, message, "invalid_request_error", "missing_required_parameter", param)


def _error_body(message: str, type: str, code: str | int | None, param: str | None) -> bytes:
    return json.dumps({"error": {"message": message, "type": type, "param": param, "code": code}}).encode()


def error_response(
    status: int, message: str, type: str, code: str | int | None, param: str | None
) -> web.Response:
    body = _error_body(message, type, code, param)
    return web.Response(status=status, body=body, content_type="application/json")
