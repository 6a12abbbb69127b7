"""Azure OpenAI, deployment form: image generations, image edits and embeddings.

    POST {endpoint}/openai/deployments/{deployment}/images/generations?api-version=V   (JSON)
    POST {endpoint}/openai/deployments/{deployment}/images/edits?api-version=V         (multipart)
    POST {endpoint}/openai/deployments/{deployment}/embeddings?api-version=V           (JSON)

What is sent, and why:

- `endpoint` is the resource root (`https://NAME.openai.azure.com`), from the
  provider's `endpoint` / `base_url` setting or AZURE_OPENAI_ENDPOINT. It is
  required: without it (or without a key) every call fails with a gateway error,
  never retried, before anything is sent.
- `api-version` is `settings.api_version` (or OPENAI_API_VERSION); when unset,
  DEFAULT_API_VERSION, the first version that offers all three operations
  (image edits came with 2025-04-01-preview).
- The deployment is the bare model name (after `azure/`), mapped through
  `settings.deployments` when listed there; it is quoted as one path segment.
- The key goes in the `api-key` header, never `Authorization: Bearer` (Azure
  reads a bearer token as an Entra ID token). Keys come from a KeyPool, so a key
  answered 429 or 401/403 sits out and the next call takes another.
- Bodies are OpenAI's without `model`: the deployment names the model.
  Generations and edits ask dall-e models for `b64_json` (the gateway keeps the
  bytes; GPT image models always answer base64 and refuse the field). Edits are
  multipart laid out as the OpenAI adapter does: text fields, then `image` (one)
  or `image[]` (several), then `mask`, each file part with its filename and
  content type, streamed from disk. Embeddings always ask for base64 (a quarter
  of the JSON size) and accept float lists from servers that ignore the ask.
- `extra_params` go through as further fields; they cannot replace the model,
  the files, the embeddings input or encoding, or ask for streaming.

Answers: 2xx that is not the expected shape is a retryable 502 `invalid_response`;
other statuses become a ProviderError with Azure's error code (always a string:
Azure sends "404", "429", "DeploymentNotFound", "content_filter"), message, param
and type (`azure_error` when Azure names none), retryable per retryable_status,
retry_after from `retry-after-ms` or `Retry-After`. No key ever appears in an
error. Timeouts and connection errors are left to the chain runner.

The JSON/multipart helpers below are private copies of the OpenAI adapter's
(grpc_server/providers/openai.py), which was being extended at the same time;
they can be merged into one shared module.
"""

from __future__ import annotations

import base64
import binascii
import json
import struct
import time
from collections.abc import Mapping, Sequence
from contextlib import ExitStack
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

import aiohttp

from grpc_server.config import ProviderSettings
from grpc_server.domain.jobs import ImageEditParams, ImageGenerationParams, RequestType
from grpc_server.providers.base import (
    EmbeddingCall,
    EmbeddingOutcome,
    ImageEditCall,
    ImageGenerationCall,
    ImageInput,
    ImageOutcome,
    ProducedImage,
    ProviderError,
    parse_retry_after,
    retryable_status,
)
from grpc_server.providers.keys import KeyPool

DEFAULT_API_VERSION = "2025-04-01-preview"
"""Used when no api_version is configured: the first that has image edits as well."""

GENERATIONS = "images/generations"
EDITS = "images/edits"
EMBEDDINGS = "embeddings"

# Parameters sent when set, in this order. Edits mirror the OpenAI adapter's fields.
_EDIT_FIELDS = (
    "n",
    "size",
    "quality",
    "background",
    "output_format",
    "output_compression",
    "input_fidelity",
    "partial_images",
    "user",
    "seed",
    "num_inference_steps",
    "negative_prompt",
)
# No partial_images: it only means something when streaming, and we read one JSON answer.
_GENERATION_FIELDS = (
    "n",
    "size",
    "quality",
    "style",
    "background",
    "moderation",
    "output_format",
    "output_compression",
    "user",
    "seed",
    "num_inference_steps",
    "negative_prompt",
)
_RESERVED_IMAGE_FIELDS = frozenset({"model", "image", "image[]", "mask", "stream", "response_format"})
_RESERVED_EMBEDDING_FIELDS = frozenset({"model", "input", "encoding_format", "stream"})

_CONTENT_TYPES = {"png": "image/png", "jpeg": "image/jpeg", "jpg": "image/jpeg", "webp": "image/webp"}
_ERROR_BODY_PREFIX = 200


class AzureOpenAIProvider:
    name = "azure"

    def __init__(
        self, session: aiohttp.ClientSession, settings: ProviderSettings, name: str = "azure"
    ) -> None:
        self.name = name
        self._session = session
        self._keys = KeyPool(settings.keys)
        self._secrets = tuple(key.value for key in settings.keys if key.value)
        self._endpoint = (settings.base_url or "").strip().rstrip("/")
        self._api_version = settings.api_version or DEFAULT_API_VERSION
        self._deployments = dict(settings.deployments)

    def supports(self, request_type: RequestType) -> bool:
        return request_type in (RequestType.IMAGE_EDIT, RequestType.IMAGE_GENERATION, RequestType.EMBEDDING)

    def deployment(self, model: str) -> str:
        """The deployment that serves a bare model name: its mapping, else the name itself."""
        return self._deployments.get(model, model)

    # Operations

    async def generate_image(self, call: ImageGenerationCall) -> ImageOutcome:
        body = _image_body(call.model, call.params, _GENERATION_FIELDS)
        answer = await self._post(call.model, GENERATIONS, json_body=body)
        return self._image_outcome(answer)

    async def edit_image(self, call: ImageEditCall) -> ImageOutcome:
        fields = _image_body(call.model, call.params, _EDIT_FIELDS)
        with ExitStack() as files:
            form = aiohttp.FormData(quote_fields=False)
            for name, value in fields.items():
                form.add_field(_form_quote(name), str(value))
            part = "image" if len(call.images) == 1 else "image[]"
            for image in call.images:
                _add_file(form, files, part, image)
            if call.mask is not None:
                _add_file(form, files, "mask", call.mask)
            answer = await self._post(call.model, EDITS, form=form)
        return self._image_outcome(answer)

    async def embed(self, call: EmbeddingCall) -> EmbeddingOutcome:
        params = call.params
        body: dict[str, Any] = {"input": params.input, "encoding_format": "base64"}
        if params.dimensions is not None:
            body["dimensions"] = params.dimensions
        if params.user:
            body["user"] = params.user
        body.update((k, v) for k, v in params.extra_params.items() if k not in _RESERVED_EMBEDDING_FIELDS)
        answer = await self._post(call.model, EMBEDDINGS, json_body=body)
        return self._embedding_outcome(answer, len(params.inputs()), call.model)

    # HTTP

    def url(self, model: str, operation: str) -> str:
        """The deployment URL of an operation, without the api-version query."""
        deployment = quote(self.deployment(model), safe="")
        return f"{self._endpoint}/openai/deployments/{deployment}/{operation}"

    async def _post(
        self,
        model: str,
        operation: str,
        *,
        json_body: Mapping[str, Any] | None = None,
        form: aiohttp.FormData | None = None,
    ) -> bytes:
        """POST one request with a leased key; the 2xx body, or a classified ProviderError."""
        self._check_configured()
        url = self.url(model, operation)
        with self._keys.lease() as key:
            if not key:
                raise self._missing_key()
            headers = {"api-key": key, "Accept": "application/json"}
            async with self._session.post(
                url, params={"api-version": self._api_version}, headers=headers, json=json_body, data=form
            ) as response:
                body = await response.read()
                if 200 <= response.status < 300:
                    return body
                raise self._error(response.status, response.headers, body)

    def _check_configured(self) -> None:
        if not self._endpoint:
            raise self._gateway_error(
                "no endpoint configured (set `endpoint` for the provider or AZURE_OPENAI_ENDPOINT)",
                status=500,
                code="missing_endpoint",
            )
        if not len(self._keys):
            raise self._missing_key()

    def _missing_key(self) -> ProviderError:
        return self._gateway_error(
            "no API key configured (set `api_key` for the provider or AZURE_OPENAI_API_KEY)",
            status=401,
            code="missing_api_key",
        )

    def _gateway_error(self, problem: str, *, status: int, code: str) -> ProviderError:
        return ProviderError(
            message=f"{self.name}: {problem}",
            status_code=status,
            type="configuration_error",
            code=code,
            retryable=False,
            is_gateway_error=True,
        )

    # Answers

    def _json_object(self, body: bytes) -> dict[str, Any]:
        try:
            doc = json.loads(body)
        except ValueError:
            raise self._invalid("body is not JSON") from None
        if not isinstance(doc, dict):
            raise self._invalid("body is not a JSON object")
        return doc

    def _image_outcome(self, body: bytes) -> ImageOutcome:
        doc = self._json_object(body)
        data = doc.get("data")
        if not isinstance(data, list) or not data:
            raise self._invalid("no images in `data`")
        output_format = _str_or_none(doc.get("output_format"))
        created = doc.get("created")
        usage = doc.get("usage")
        return ImageOutcome(
            created=created if isinstance(created, int) else int(time.time()),
            images=[self._image(item, i, output_format) for i, item in enumerate(data)],
            usage=usage if isinstance(usage, dict) else None,
            background=_str_or_none(doc.get("background")),
            output_format=output_format,
            quality=_str_or_none(doc.get("quality")),
            size=_str_or_none(doc.get("size")),
        )

    def _image(self, item: object, index: int, output_format: str | None) -> ProducedImage:
        if not isinstance(item, dict):
            raise self._invalid(f"data[{index}] is not an object")
        revised_prompt = _str_or_none(item.get("revised_prompt"))
        b64 = item.get("b64_json")
        url = item.get("url")
        if isinstance(b64, str) and b64:
            try:
                data = base64.b64decode(b64, validate=True)
            except binascii.Error:
                raise self._invalid(f"data[{index}].b64_json is not valid base64") from None
            content_type = _content_type(output_format, data)
            return ProducedImage(data=data, content_type=content_type, revised_prompt=revised_prompt)
        if isinstance(url, str) and url:
            content_type = _content_type(output_format, b"")
            return ProducedImage(url=url, content_type=content_type, revised_prompt=revised_prompt)
        raise self._invalid(f"data[{index}] has neither b64_json nor url")

    def _embedding_outcome(self, body: bytes, expected: int, model: str) -> EmbeddingOutcome:
        doc = self._json_object(body)
        data = doc.get("data")
        if not isinstance(data, list) or len(data) != expected:
            raise self._invalid(f"expected {expected} embedding(s) in `data`")
        by_index: dict[int, list[float]] = {}
        for position, item in enumerate(data):
            index, vector = self._embedding_item(item, position)
            if not 0 <= index < expected or index in by_index:
                raise self._invalid(f"data[{position}].index {index} is out of range or repeated")
            by_index[index] = vector
        vectors = [by_index[i] for i in range(expected)]
        if len({len(v) for v in vectors}) != 1:
            raise self._invalid("embeddings differ in length")
        usage = doc.get("usage")
        usage = usage if isinstance(usage, dict) else {}
        return EmbeddingOutcome(
            vectors=vectors,
            model=_str_or_none(doc.get("model")) or model,
            prompt_tokens=_int(usage.get("prompt_tokens")),
            total_tokens=_int(usage.get("total_tokens")),
        )

    def _embedding_item(self, item: object, position: int) -> tuple[int, list[float]]:
        if not isinstance(item, dict):
            raise self._invalid(f"data[{position}] is not an object")
        index = item.get("index", position)
        if not isinstance(index, int) or isinstance(index, bool):
            raise self._invalid(f"data[{position}].index is not an integer")
        vector = _vector(item.get("embedding"))
        if not vector:
            raise self._invalid(f"data[{position}].embedding is not a base64 float32 vector or a float list")
        return index, vector

    def _invalid(self, problem: str) -> ProviderError:
        return ProviderError(
            message=f"{self.name}: invalid response: {problem}",
            status_code=502,
            type="invalid_response",
            code="invalid_response",
            retryable=True,
        )

    def _error(self, status: int, headers: Mapping[str, str], body: bytes) -> ProviderError:
        parsed = _parse_error_body(body)
        message = parsed.message
        if not message:
            text = " ".join(body.decode("utf-8", "replace").split())
            message = text[:_ERROR_BODY_PREFIX] or f"HTTP {status}"
        return ProviderError(
            message=self._redact(message),
            status_code=status,
            type=self._redact(parsed.type) or "azure_error",
            code=self._redact(parsed.code),
            param=self._redact(parsed.param),
            retryable=retryable_status(status),
            retry_after=_retry_after(headers),
            details=parsed.details,
        )

    def _redact(self, text: str) -> str:
        """Azure does not echo keys, but a proxy in front of it might."""
        for secret in self._secrets:
            text = text.replace(secret, "[redacted]")
        return text


# Request building


def _image_body(
    model: str, params: ImageEditParams | ImageGenerationParams, names: Sequence[str]
) -> dict[str, Any]:
    """Generation JSON or edit text fields: the prompt, the set parameters, extra_params; no model."""
    body: dict[str, Any] = {"prompt": params.prompt}
    for name in names:
        value = getattr(params, name)
        if value is not None and value != "":
            body[name] = value
    if model.startswith("dall-e"):
        # dall-e answers 60-minute URLs by default; the gateway keeps bytes instead.
        body["response_format"] = "b64_json"
    extra: Mapping[str, Any] = params.extra_params
    body.update((k, v) for k, v in extra.items() if k not in _RESERVED_IMAGE_FIELDS)
    return body


def _add_file(form: aiohttp.FormData, files: ExitStack, part: str, image: ImageInput) -> None:
    # An open file object makes aiohttp stream the part from disk in chunks.
    stream = files.enter_context(image.path.open("rb"))
    form.add_field(part, stream, filename=_form_quote(image.filename), content_type=image.content_type)


def _form_quote(value: str) -> str:
    """Escape a multipart name or filename as httpx and browsers do (HTML5 form encoding)."""
    return "".join(f"%{ord(c):02X}" if c == '"' or ord(c) < 0x20 or c == "\x7f" else c for c in value)


# Answer parsing


def _vector(value: object) -> list[float] | None:
    """A base64 little-endian float32 vector, or a list of numbers; None otherwise."""
    if isinstance(value, str):
        try:
            raw = base64.b64decode(value, validate=True)
        except binascii.Error:
            return None
        if len(raw) % 4:
            return None
        return list(struct.unpack(f"<{len(raw) // 4}f", raw))
    if isinstance(value, list) and all(isinstance(x, int | float) and not isinstance(x, bool) for x in value):
        return [float(x) for x in value]
    return None


def _content_type(output_format: str | None, data: bytes) -> str:
    if output_format and output_format.lower() in _CONTENT_TYPES:
        return _CONTENT_TYPES[output_format.lower()]
    # No (known) format named: trust the bytes over a guess.
    if data.startswith(b"\xff\xd8\xff"):
        return "image/jpeg"
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "image/webp"
    return "image/png"


@dataclass(frozen=True)
class _ParsedError:
    message: str = ""
    type: str = ""
    code: str = ""
    param: str = ""
    details: dict[str, Any] = field(default_factory=dict)


def _parse_error_body(body: bytes) -> _ParsedError:
    """Azure's `{"error": {code, message, param?, type?, innererror?}}`, or API Management's
    `{"statusCode", "message"}`; empty fields where absent."""
    try:
        doc: Any = json.loads(body)
    except ValueError:
        return _ParsedError()
    if not isinstance(doc, dict):
        return _ParsedError()
    error = doc.get("error")
    if isinstance(error, str):
        return _ParsedError(message=error)
    if not isinstance(error, dict):
        return _ParsedError(message=_str_or_none(doc.get("message")) or "", code=_code(doc.get("statusCode")))
    inner = error.get("innererror")
    return _ParsedError(
        message=_str_or_none(error.get("message")) or "",
        type=_str_or_none(error.get("type")) or "",
        code=_code(error.get("code")),
        param=_str_or_none(error.get("param")) or "",
        # The content filter's verdict (which category tripped) is worth keeping.
        details={"innererror": inner} if isinstance(inner, dict) else {},
    )


def _code(value: object) -> str:
    return str(value) if isinstance(value, str | int) and not isinstance(value, bool) else ""


def _retry_after(headers: Mapping[str, str]) -> float | None:
    # As OpenAI's SDK (which Azure's clients share): the millisecond header wins.
    ms = parse_retry_after(headers.get("retry-after-ms"))
    if ms is not None:
        return ms / 1000
    return parse_retry_after(headers.get("retry-after"))


def _str_or_none(value: object) -> str | None:
    return value if isinstance(value, str) else None


def _int(value: object) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) else 0
