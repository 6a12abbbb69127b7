"""A fake of Google's Gemini API: a real aiohttp server on 127.0.0.1, for any test.

    async with FakeGemini(api_key="g") as fake:
        fake.enqueue(FakeResponse.error(429, retry_delay="13s"), FakeResponse.success())
        ...  # point a client (or a server subprocess) at fake.base_url (ends with /v1beta)
        assert fake.requests[0].json["generationConfig"]["responseModalities"] == ["TEXT", "IMAGE"]

`POST /v1beta/models/{model}:generateContent | :predict | :batchEmbedContents`
records the request, checks the key as Google does (`x-goog-api-key`, or the
`?key=` query the real API also takes): none is a 403 PERMISSION_DENIED, a wrong
one a 400 INVALID_ARGUMENT whose ErrorInfo reason is API_KEY_INVALID (with a
DebugInfo quoting the key, as Google has been seen to do). Then it answers the next
scripted response, or a success when none is queued:

- generateContent: one candidate holding a text part and an inlineData PNG of
  64x64: the first input image re-encoded for an edit, else a flat colour derived
  from the prompt (`prompt_colour`). Without IMAGE in responseModalities the
  candidate is text only, as with the real API, and `candidateCount` candidates are
  given; with IMAGE a candidateCount above 1 is refused as the real image models
  refuse it (400 "Multiple candidates is not enabled for models/..."). usageMetadata
  counts a token per prompt word plus 258 per input image, 1290 per output image.
- predict: `sampleCount` (1..4) images of the prompt's colour, in
  `outputOptions.mimeType` (png or jpeg).
- batchEmbedContents: one `fake_vector(text, outputDimensionality or 8)` per request,
  in order; each request must name the URL's model.

Every other path or method answers 404 NOT_FOUND. Every request is recorded,
whatever the answer. `FakeResponse.hang()` never answers: on close the handler is
cancelled, so the connection drops unanswered and nothing is left running.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import hashlib
import io
import json
import re
import struct
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from aiohttp import web
from PIL import Image

from tests.fakes.scripted import ScriptedResponse, ScriptedServer

API_ROOT = "/v1beta"
METHODS = ("generateContent", "predict", "batchEmbedContents")
DEFAULT_DIMENSIONS = 8
IMAGE_SIDE = 64
MAX_SAMPLES = 4
TOKENS_PER_INPUT_IMAGE = 258
TOKENS_PER_OUTPUT_IMAGE = 1290
MODEL_TEXT = "Here is the image you asked for."

NO_KEY_MESSAGE = (
    "Method doesn't allow unregistered callers (callers without established identity). "
    "Please use API Key or other form of API consumer identity to call this API."
)
BAD_KEY_MESSAGE = "API key not valid. Please pass a valid API key."
_PATH = re.compile(r"/v1beta/(models|tunedModels)/([^/:]+):([A-Za-z]+)")
_DETAIL = "type.googleapis.com/google.rpc."
# The canonical google.rpc status of an HTTP status.
STATUS_NAMES = {
    400: "INVALID_ARGUMENT",
    401: "UNAUTHENTICATED",
    403: "PERMISSION_DENIED",
    404: "NOT_FOUND",
    429: "RESOURCE_EXHAUSTED",
    500: "INTERNAL",
    503: "UNAVAILABLE",
    504: "DEADLINE_EXCEEDED",
}


@dataclass(frozen=True)
class RecordedRequest:
    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    """Lower-case names."""
    body: bytes
    json: Any
    """The body parsed as JSON; None when it is not JSON."""
    received_at: float = 0.0
    """time.monotonic() when the request arrived, to check waits between retries."""

    @property
    def api_key(self) -> str | None:
        return self.headers.get("x-goog-api-key")

    @property
    def model(self) -> str:
        """The model named by the path (`gemini-x` of `/v1beta/models/gemini-x:generateContent`)."""
        match = _PATH.fullmatch(self.path)
        return match[2] if match else ""

    @property
    def rpc(self) -> str:
        """The method named by the path: generateContent, predict or batchEmbedContents."""
        match = _PATH.fullmatch(self.path)
        return match[3] if match else ""

    def parts(self) -> list[dict[str, Any]]:
        """The parts of the first content of a generateContent body."""
        contents = self.json.get("contents") if isinstance(self.json, dict) else None
        first = contents[0] if isinstance(contents, list) and contents else None
        parts = first.get("parts") if isinstance(first, dict) else None
        return [p for p in parts if isinstance(p, dict)] if isinstance(parts, list) else []

    def inline_images(self) -> list[tuple[str, bytes]]:
        """(mimeType, decoded bytes) of every inlineData part, in order."""
        images = []
        for part in self.parts():
            inline = _inline(part)
            if inline is not None:
                images.append((_mime(inline), base64.b64decode(inline.get("data", ""))))
        return images


class FakeResponse(ScriptedResponse):
    """One scripted answer; build it with the class methods (success, raw, json_body, hang,
    and Google's error and blocked)."""

    @classmethod
    def error(
        cls,
        status: int,
        message: str = "An internal error has occurred. Please retry or report in "
        "https://developers.generativeai.google/guide/troubleshooting",
        status_name: str | None = None,
        *,
        reason: str | None = None,
        retry_delay: str | None = None,
        headers: Mapping[str, str] | None = None,
        delay: float = 0.0,
    ) -> FakeResponse:
        """Google's `{"error": {code, message, status, details}}`; status_name defaults to the
        canonical one of `status`; `reason` adds an ErrorInfo detail, `retry_delay` (e.g.
        "13s") a RetryInfo detail."""
        details: list[dict[str, Any]] = []
        if reason is not None:
            details.append(_error_info(reason))
        if retry_delay is not None:
            details.append({"@type": f"{_DETAIL}RetryInfo", "retryDelay": retry_delay})
        body = _error_body(status, message, status_name or STATUS_NAMES.get(status, "UNKNOWN"), details)
        return cls("raw", status, body, headers=dict(headers or {}), delay=delay)

    @classmethod
    def blocked(cls, reason: str = "SAFETY", *, prompt: bool = True) -> FakeResponse:
        """A 200 without an image: the prompt blocked (`promptFeedback.blockReason`, no
        candidates) or, with prompt=False, a candidate stopped with finishReason `reason`."""
        usage = {"promptTokenCount": 7, "totalTokenCount": 7}
        if prompt:
            return cls.json_body({"promptFeedback": {"blockReason": reason}, "usageMetadata": usage})
        candidate = {"finishReason": reason, "index": 0}
        return cls.json_body({"candidates": [candidate], "usageMetadata": usage})


class FakeGemini(ScriptedServer[RecordedRequest]):
    """The Gemini API on 127.0.0.1 (a free port), for the length of an `async with`."""

    def __init__(self, api_key: str | None = "g", *, extra_keys: Sequence[str] = ()) -> None:
        super().__init__()
        self.api_keys = frozenset(k for k in (api_key, *extra_keys) if k is not None)
        """The keys accepted; empty (api_key None and no extra_keys) accepts any request."""

    @property
    def base_url(self) -> str:
        """The API root to configure a client with: `http://127.0.0.1:PORT/v1beta`."""
        return self._url(API_ROOT)

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        recorded = await _record(request)
        self.requests.append(recorded)
        match = _PATH.fullmatch(request.path)
        if request.method != "POST" or match is None or match[3] not in METHODS:
            message = f"Method not found: {request.method} {request.path}"
            return await self._after_latency(_error_response(404, message, "NOT_FOUND"))
        if (denied := self._check_key(recorded)) is not None:
            return await self._after_latency(denied)
        return await self._scripted_answer(
            lambda _: _success(recorded, f"{match[1]}/{match[2]}", match[3]), request
        )

    def _check_key(self, request: RecordedRequest) -> web.Response | None:
        if not self.api_keys:
            return None
        presented = request.api_key or request.query.get("key")
        if presented in self.api_keys:
            return None
        if not presented:
            return _error_response(403, NO_KEY_MESSAGE, "PERMISSION_DENIED")
        details = [
            _error_info("API_KEY_INVALID"),
            {"@type": f"{_DETAIL}LocalizedMessage", "locale": "en-US", "message": BAD_KEY_MESSAGE},
            # Google has been seen quoting the rejected key here: clients must not pass it on.
            {"@type": f"{_DETAIL}DebugInfo", "detail": f"Invalid API key: {presented}"},
        ]
        return _error_response(400, BAD_KEY_MESSAGE, "INVALID_ARGUMENT", details)


def prompt_colour(prompt: str) -> tuple[int, int, int]:
    """The flat colour the fake paints for a prompt."""
    digest = hashlib.sha256(prompt.encode()).digest()
    return digest[0], digest[1], digest[2]


def fake_vector(text: str, dimensions: int = DEFAULT_DIMENSIONS) -> list[float]:
    """The fake's embedding of a text: deterministic, in [-1, 1], float32-exact."""
    values: list[float] = []
    counter = 0
    while len(values) < dimensions:
        digest = hashlib.sha256(f"{counter}:{text}".encode()).digest()
        for (word,) in struct.iter_unpack(">H", digest):
            values.append(round(word / 32767.5 - 1.0, 4))
        counter += 1
    # Round-tripped through float32, so a stored float32 vector compares equal.
    return [struct.unpack("<f", struct.pack("<f", v))[0] for v in values[:dimensions]]


async def _record(request: web.Request) -> RecordedRequest:
    arrived = time.monotonic()
    body = await request.read()
    try:
        doc: Any = json.loads(body) if body else None
    except ValueError:
        doc = None
    headers = {k.lower(): v for k, v in request.headers.items()}
    return RecordedRequest(
        request.method, request.path, dict(request.query), headers, body, doc, received_at=arrived
    )


async def _success(request: RecordedRequest, resource: str, method: str) -> web.Response:
    if not isinstance(request.json, dict):
        return _error_response(400, "Invalid JSON payload received.", "INVALID_ARGUMENT")
    if method == "generateContent":
        return await _generate_content(request, request.json, resource)
    if method == "predict":
        return await _predict(request.json)
    return _embed(request.json, resource)


async def _generate_content(request: RecordedRequest, doc: dict[str, Any], resource: str) -> web.Response:
    parts = request.parts()
    if not parts:
        return _invalid("* GenerateContentRequest.contents: contents is not specified")
    config = doc.get("generationConfig") or {}
    modalities = config.get("responseModalities") or ["TEXT"]
    count = config.get("candidateCount", 1)
    if not isinstance(count, int) or count < 1:
        return _invalid("* GenerateContentRequest.generation_config.candidate_count: must be positive")
    if count > 1 and "IMAGE" in modalities:
        # The real image models' answer (e.g. gemini-2.5-flash-image-preview).
        return _invalid(f"Multiple candidates is not enabled for {resource}")
    inputs: list[bytes] = []
    for index, part in enumerate(parts):
        inline = _inline(part)
        if inline is None:
            continue
        try:
            inputs.append(base64.b64decode(inline.get("data", ""), validate=True))
        except (binascii.Error, TypeError):
            where = f"contents[0].parts[{index}].inline_data.data"
            return _invalid(f"Invalid value at '{where}' (TYPE_BYTES), Base64 decoding failed")
    prompt = " ".join(p["text"] for p in parts if isinstance(p.get("text"), str))
    content: list[dict[str, Any]] = [{"text": MODEL_TEXT}]
    if "IMAGE" in modalities:
        try:
            png = await asyncio.to_thread(_picture, inputs[0] if inputs else None, prompt)
        except OSError:
            return _invalid(
                "Unable to process input image. Please retry or report in "
                "https://developers.generativeai.google/guide/troubleshooting"
            )
        content.append({"inlineData": {"mimeType": "image/png", "data": base64.b64encode(png).decode()}})
    candidates = [
        {"content": {"parts": content, "role": "model"}, "finishReason": "STOP", "index": i}
        for i in range(count)
    ]
    text_tokens = len(prompt.split())
    image_tokens = TOKENS_PER_INPUT_IMAGE * len(inputs)
    output_tokens = count * (TOKENS_PER_OUTPUT_IMAGE if "IMAGE" in modalities else 0) + count * 8
    usage = {
        "promptTokenCount": text_tokens + image_tokens,
        "candidatesTokenCount": output_tokens,
        "totalTokenCount": text_tokens + image_tokens + output_tokens,
        "promptTokensDetails": [{"modality": "TEXT", "tokenCount": text_tokens}]
        + ([{"modality": "IMAGE", "tokenCount": image_tokens}] if inputs else []),
    }
    answer = {"candidates": candidates, "usageMetadata": usage, "modelVersion": resource.split("/")[-1]}
    return web.json_response(answer)


async def _predict(doc: dict[str, Any]) -> web.Response:
    instances = doc.get("instances")
    first = instances[0] if isinstance(instances, list) and instances else None
    prompt = first.get("prompt") if isinstance(first, dict) else None
    if not isinstance(prompt, str) or not prompt:
        return _invalid("* instances[0].prompt: prompt is required")
    parameters = doc.get("parameters") or {}
    count = parameters.get("sampleCount", 1)
    if not isinstance(count, int) or not 1 <= count <= MAX_SAMPLES:
        return _invalid(f"Number of images must be between 1 and {MAX_SAMPLES}, got {count}.")
    mime = (parameters.get("outputOptions") or {}).get("mimeType", "image/png")
    if mime not in ("image/png", "image/jpeg"):
        return _invalid(f"Unsupported output mime type: {mime}")
    image = await asyncio.to_thread(_picture, None, prompt, "JPEG" if mime == "image/jpeg" else "PNG")
    b64 = base64.b64encode(image).decode()
    return web.json_response({"predictions": [{"mimeType": mime, "bytesBase64Encoded": b64}] * count})


def _embed(doc: dict[str, Any], resource: str) -> web.Response:
    requests = doc.get("requests")
    if not isinstance(requests, list) or not requests:
        return _invalid("* BatchEmbedContentsRequest.requests: requests is not specified")
    embeddings = []
    for index, item in enumerate(requests):
        if not isinstance(item, dict) or item.get("model") != resource:
            return _invalid(
                f"* BatchEmbedContentsRequest.requests[{index}].model: the model of each request "
                f"must be {resource}"
            )
        parts = (item.get("content") or {}).get("parts") or []
        text = " ".join(p["text"] for p in parts if isinstance(p, dict) and isinstance(p.get("text"), str))
        dimensions = item.get("outputDimensionality", DEFAULT_DIMENSIONS)
        if not isinstance(dimensions, int) or not 1 <= dimensions <= 3072:
            return _invalid(f"* requests[{index}].output_dimensionality: must be between 1 and 3072")
        embeddings.append({"values": fake_vector(text, dimensions)})
    return web.json_response({"embeddings": embeddings})


def _picture(source: bytes | None, prompt: str, fmt: str = "PNG") -> bytes:
    """A 64x64 image: the source image re-encoded (and resized), or the prompt's colour."""
    if source is not None:
        with Image.open(io.BytesIO(source)) as opened:
            image = opened.convert("RGBA").resize((IMAGE_SIDE, IMAGE_SIDE))
    else:
        image = Image.new("RGB", (IMAGE_SIDE, IMAGE_SIDE), prompt_colour(prompt))
    out = io.BytesIO()
    image.save(out, fmt)
    return out.getvalue()


def _inline(part: Mapping[str, Any]) -> dict[str, Any] | None:
    inline = part.get("inlineData", part.get("inline_data"))
    return inline if isinstance(inline, dict) else None


def _mime(inline: Mapping[str, Any]) -> str:
    mime = inline.get("mimeType", inline.get("mime_type"))
    return mime if isinstance(mime, str) else ""


def _error_info(reason: str) -> dict[str, Any]:
    return {
        "@type": f"{_DETAIL}ErrorInfo",
        "reason": reason,
        "domain": "googleapis.com",
        "metadata": {"service": "generativelanguage.googleapis.com"},
    }


def _error_body(status: int, message: str, status_name: str, details: list[dict[str, Any]]) -> bytes:
    error: dict[str, Any] = {"code": status, "message": message, "status": status_name}
    if details:
        error["details"] = details
    return json.dumps({"error": error}, indent=2).encode()


def _error_response(
    status: int, message: str, status_name: str, details: list[dict[str, Any]] | None = None
) -> web.Response:
    body = _error_body(status, message, status_name, details or [])
    return web.Response(status=status, body=body, content_type="application/json")


def _invalid(message: str) -> web.Response:
    return _error_response(400, message, "INVALID_ARGUMENT")
