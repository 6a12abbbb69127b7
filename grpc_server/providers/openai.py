"""OpenAI's images and embeddings API, and servers that speak it.

`OpenAIProvider` calls `{base_url}/images/edits`, `/images/generations` and
`/embeddings`; `OpenAICompatibleProvider` does the same against an operator's own
server (vLLM, Ollama, LocalAI, text-embeddings-inference...).

What is sent, and why:

- Keys come from a KeyPool: each call leases one, so a key answered 429 or 401 sits
  out a while and the other keys carry the load. OpenAI needs a key; without one
  nothing is sent. A compatible server may need none (no Authorization header then).
- Edits: multipart laid out as OpenAI's own Python SDK lays it out: the text fields
  first, then the images, then the mask. One image is a part named `image`; several
  are each a part named `image[]` (the SDK's bracket array format). Every file part
  carries its filename and content type: OpenAI refuses parts it sees as
  `application/octet-stream`. Filenames are escaped as the SDK (httpx) and browsers
  do (`"` and control characters as %XX), otherwise sent as UTF-8. Files are
  streamed from disk (open file objects in the form), never read whole: an edit may
  carry 16 inputs of 50 MB each. Text fields: `model` (the bare name), `prompt`, and
  each edit parameter that is set; never `stream` (this adapter reads one JSON
  answer, not events), `type` (the gateway's edit type) or `fallbacks` (the
  gateway's own chain).
- Generations: JSON with `model`, `prompt` and each OpenAI generation field that is
  set. Never `stream` or `partial_images` (streaming only) nor `fallbacks`;
  `seed`, `negative_prompt` and `num_inference_steps` only to compatible servers
  (OpenAI refuses fields it does not know, compatible image servers often take them).
- `response_format` (edits and generations): the gateway keeps the image bytes and
  serves its own URLs, whatever the caller asked for. dall-e models would answer
  with 60-minute URLs by default, so they get `b64_json`; GPT image models always
  answer base64 and refuse the field, so they get none.
- Embeddings: JSON with `model`, `input`, `dimensions` and `user` when set, and
  `encoding_format: base64` (little-endian float32: a quarter of the bytes of a
  float list). A float list is accepted too: many compatible servers ignore the field.
- `extra_params` go through unchanged, replacing a named field of the same name;
  they cannot replace the model, the prompt or input, the files, or ask for streaming.

Answers: 2xx JSON becomes an ImageOutcome or EmbeddingOutcome (a 2xx that is not
OpenAI's shape is a retryable 502 `invalid_response`); other statuses become a
ProviderError with OpenAI's error message, type, code and param, retryable as the
SDK retries, with the Retry-After hint. Timeouts and connection errors are left to
the chain runner. No API key ever appears in an error.
"""

from __future__ import annotations

import base64
import binascii
import json
import struct
import time
from collections.abc import Callable, Mapping
from contextlib import ExitStack
from functools import partial
from typing import Any, TypeVar

import aiohttp

from grpc_server.config import ProviderSettings
from grpc_server.domain.jobs import RequestType
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

DEFAULT_BASE_URL = "https://api.openai.com/v1"

# Edit parameters sent as text fields when set, in the order they are sent.
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
# Generation parameters OpenAI takes, sent when set.
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
)
# Generation parameters OpenAI refuses but compatible image servers commonly take.
_COMPATIBLE_GENERATION_FIELDS = ("seed", "negative_prompt", "num_inference_steps")
_EMBEDDING_FIELDS = ("dimensions", "user")

# Fields extra_params may not set: what identifies the call, and streaming we cannot read.
_EDIT_RESERVED = frozenset({"model", "image", "image[]", "mask", "stream"})
_GENERATION_RESERVED = frozenset({"model", "prompt", "stream", "partial_images"})
# encoding_format too: it is how the adapter asks for the compact wire form.
_EMBEDDING_RESERVED = frozenset({"model", "input", "encoding_format"})

_ALL_OPERATIONS = frozenset(RequestType)
_CONTENT_TYPES = {"png": "image/png", "jpeg": "image/jpeg", "jpg": "image/jpeg", "webp": "image/webp"}
_ERROR_BODY_PREFIX = 200
_FLOAT32 = struct.Struct("<f")

T = TypeVar("T")


class _Malformed(ValueError):
    """A 2xx answer that is not OpenAI's shape; the message says what is wrong."""


class OpenAIProvider:
    """OpenAI: image edits, image generations and embeddings (see the module docstring)."""

    name = "openai"
    _requires_key = True
    _generation_fields: tuple[str, ...] = _GENERATION_FIELDS

    def __init__(
        self, session: aiohttp.ClientSession, settings: ProviderSettings, name: str = "openai"
    ) -> None:
        self.name = name
        self._session = session
        self._keys = KeyPool(settings.keys)
        # Longest first, so that a key containing another is redacted whole.
        self._secrets = sorted({k.value for k in settings.keys if k.value}, key=len, reverse=True)
        self._base_url = (settings.base_url or DEFAULT_BASE_URL).rstrip("/")
        self._operations = _ALL_OPERATIONS

    def supports(self, request_type: RequestType) -> bool:
        return request_type in self._operations

    async def edit_image(self, call: ImageEditCall) -> ImageOutcome:
        with ExitStack() as files:
            form = _edit_form(call, files)
            return await self._post("/images/edits", _image_outcome, form=form)

    async def generate_image(self, call: ImageGenerationCall) -> ImageOutcome:
        return await self._post("/images/generations", _image_outcome, body=self._generation_body(call))

    async def embed(self, call: EmbeddingCall) -> EmbeddingOutcome:
        expected = len(call.params.inputs())
        parse = partial(_embedding_outcome, asked_model=call.model, expected=expected)
        return await self._post("/embeddings", parse, body=_embedding_body(call))

    def _generation_body(self, call: ImageGenerationCall) -> dict[str, Any]:
        params = call.params
        body: dict[str, Any] = {"model": call.model, "prompt": params.prompt}
        body.update(_set_fields(params, self._generation_fields))
        if (response_format := _response_format(call.model)) is not None:
            body["response_format"] = response_format
        body.update(_allowed_extras(params.extra_params, _GENERATION_RESERVED))
        return body

    async def _post(
        self,
        path: str,
        parse: Callable[[dict[str, Any]], T],
        *,
        form: aiohttp.FormData | None = None,
        body: Mapping[str, Any] | None = None,
    ) -> T:
        """POST a form or a JSON body with a leased key; the parsed answer or a ProviderError."""
        self._check_key()
        with self._keys.lease() as key:
            post = self._session.post(self._base_url + path, data=form, json=body, headers=_headers(key))
            async with post as response:
                payload = await response.read()
                if not 200 <= response.status < 300:
                    raise self._error(response.status, response.headers, payload)
        try:
            return parse(_json_object(payload))
        except _Malformed as problem:
            raise self._invalid(str(problem)) from None

    def _check_key(self) -> None:
        if self._requires_key and not len(self._keys):
            raise ProviderError(
                message=f"{self.name}: no API key configured",
                status_code=401,
                type="authentication_error",
                retryable=False,
                is_gateway_error=True,
            )

    def _invalid(self, problem: str) -> ProviderError:
        return ProviderError(
            message=f"{self.name}: invalid response: {problem}",
            status_code=502,
            type="invalid_response",
            retryable=True,
        )

    def _error(self, status: int, headers: Mapping[str, str], body: bytes) -> ProviderError:
        message, type_, code, param = _parse_error_body(body)
        if not message:
            text = " ".join(body.decode("utf-8", "replace").split())
            message = text[:_ERROR_BODY_PREFIX] or f"HTTP {status}"
        return ProviderError(
            message=self._redact(message),
            status_code=status,
            type=type_,
            code=self._redact(code),
            param=self._redact(param),
            retryable=retryable_status(status),
            retry_after=_retry_after(headers),
        )

    def _redact(self, text: str) -> str:
        """A server may echo a key back (OpenAI masks it, compatible servers may not)."""
        for secret in self._secrets:
            text = text.replace(secret, "[redacted]")
        return text


class OpenAICompatibleProvider(OpenAIProvider):
    """A server that speaks OpenAI's API at the operator's `base_url` (vLLM, Ollama,
    LocalAI, text-embeddings-inference...).

    Unlike OpenAI: keys are optional (none: no Authorization header), the operations
    offered are the operator's `operations` (empty: all three), and generations also
    carry seed, negative_prompt and num_inference_steps.
    """

    _requires_key = False
    _generation_fields = _GENERATION_FIELDS + _COMPATIBLE_GENERATION_FIELDS

    def __init__(self, session: aiohttp.ClientSession, settings: ProviderSettings, name: str) -> None:
        if not settings.base_url:
            raise ValueError(f"providers.{name}: an openai-compatible provider needs a base_url")
        super().__init__(session, settings, name)
        self._operations = _operations(settings.operations, name)


def _operations(names: tuple[str, ...], provider: str) -> frozenset[RequestType]:
    known = {op.value for op in RequestType}
    unknown = sorted(set(names) - known)
    if unknown:
        raise ValueError(
            f"providers.{provider}: unknown operation(s) {', '.join(unknown)}; "
            f"expected {', '.join(sorted(known))}"
        )
    return frozenset(RequestType(op) for op in names) or _ALL_OPERATIONS


# What is sent


def _headers(key: str | None) -> dict[str, str]:
    headers = {"Accept": "application/json"}
    if key is not None:
        headers["Authorization"] = f"Bearer {key}"
    return headers


def _set_fields(params: object, names: tuple[str, ...]) -> dict[str, Any]:
    """The named parameters that are set (not None, not empty), in the order named."""
    values = {name: getattr(params, name) for name in names}
    return {name: value for name, value in values.items() if value is not None and value != ""}


def _allowed_extras(extra: Mapping[str, T], reserved: frozenset[str]) -> dict[str, T]:
    return {name: value for name, value in extra.items() if name not in reserved}


def _response_format(model: str) -> str | None:
    """b64_json for dall-e (URLs by default); none for GPT image models, which refuse it."""
    return "b64_json" if model.startswith("dall-e") else None


def _edit_form(call: ImageEditCall, files: ExitStack) -> aiohttp.FormData:
    fields: dict[str, str] = {"model": call.model, "prompt": call.params.prompt}
    fields.update((name, str(value)) for name, value in _set_fields(call.params, _EDIT_FIELDS).items())
    if (response_format := _response_format(call.model)) is not None:
        fields["response_format"] = response_format
    fields.update(_allowed_extras(call.params.extra_params, _EDIT_RESERVED))
    form = aiohttp.FormData(quote_fields=False)
    for name, value in fields.items():
        form.add_field(_form_quote(name), value)
    image_part = "image" if len(call.images) == 1 else "image[]"
    for image in call.images:
        _add_file(form, files, image_part, image)
    if call.mask is not None:
        _add_file(form, files, "mask", call.mask)
    return form


def _add_file(form: aiohttp.FormData, files: ExitStack, part: str, image: ImageInput) -> None:
    # An open file object makes aiohttp stream the part from disk in chunks.
    stream = files.enter_context(image.path.open("rb"))
    form.add_field(part, stream, filename=_form_quote(image.filename), content_type=image.content_type)


def _form_quote(value: str) -> str:
    """Escape a multipart name or filename as httpx and browsers do (HTML5 form encoding)."""
    return "".join(f"%{ord(c):02X}" if c == '"' or ord(c) < 0x20 or c == "\x7f" else c for c in value)


def _embedding_body(call: EmbeddingCall) -> dict[str, Any]:
    params = call.params
    body: dict[str, Any] = {"model": call.model, "input": params.input, "encoding_format": "base64"}
    body.update(_set_fields(params, _EMBEDDING_FIELDS))
    body.update(_allowed_extras(params.extra_params, _EMBEDDING_RESERVED))
    return body


# What comes back


def _json_object(body: bytes) -> dict[str, Any]:
    try:
        doc = json.loads(body)
    except ValueError:
        raise _Malformed("body is not JSON") from None
    if not isinstance(doc, dict):
        raise _Malformed("body is not a JSON object")
    return doc


def _image_outcome(doc: dict[str, Any]) -> ImageOutcome:
    data = doc.get("data")
    if not isinstance(data, list) or not data:
        raise _Malformed("no images in `data`")
    output_format = _str_or_none(doc.get("output_format"))
    images = [_image(item, i, output_format) for i, item in enumerate(data)]
    created = doc.get("created")
    usage = doc.get("usage")
    return ImageOutcome(
        # Some compatible servers leave `created` out; it is not worth failing a call for.
        created=created if isinstance(created, int) else int(time.time()),
        images=images,
        usage=usage if isinstance(usage, dict) else None,
        background=_str_or_none(doc.get("background")),
        output_format=output_format,
        quality=_str_or_none(doc.get("quality")),
        size=_str_or_none(doc.get("size")),
    )


def _image(item: object, index: int, output_format: str | None) -> ProducedImage:
    if not isinstance(item, dict):
        raise _Malformed(f"data[{index}] is not an object")
    revised_prompt = _str_or_none(item.get("revised_prompt"))
    b64 = item.get("b64_json")
    url = item.get("url")
    if isinstance(b64, str) and b64:
        try:
            data = base64.b64decode(b64, validate=True)
        except binascii.Error:
            raise _Malformed(f"data[{index}].b64_json is not valid base64") from None
        return ProducedImage(
            data=data, content_type=_content_type(output_format, data), revised_prompt=revised_prompt
        )
    if isinstance(url, str) and url:
        return ProducedImage(
            url=url, content_type=_content_type(output_format, b""), revised_prompt=revised_prompt
        )
    raise _Malformed(f"data[{index}] has neither b64_json nor url")


def _content_type(output_format: str | None, data: bytes) -> str:
    if output_format and output_format.lower() in _CONTENT_TYPES:
        return _CONTENT_TYPES[output_format.lower()]
    # No (known) format named: trust the bytes over a guess.
    if data.startswith(b"\xff\xd8\xff"):
        return "image/jpeg"
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "image/webp"
    return "image/png"


def _embedding_outcome(doc: dict[str, Any], *, asked_model: str, expected: int) -> EmbeddingOutcome:
    data = doc.get("data")
    if not isinstance(data, list):
        raise _Malformed("no `data` list")
    by_index: dict[int, list[float]] = {}
    for position, item in enumerate(data):
        index, vector = _embedding(item, position)
        if index in by_index:
            raise _Malformed(f"two vectors for input {index}")
        by_index[index] = vector
    if sorted(by_index) != list(range(expected)):
        raise _Malformed(f"{len(by_index)} vectors for {expected} inputs (indexes {sorted(by_index)[:10]})")
    vectors = [by_index[i] for i in range(expected)]
    if len({len(v) for v in vectors}) > 1:
        # Vectors are stored as one count x dimensions matrix.
        raise _Malformed("vectors of different lengths")
    model = _str_or_none(doc.get("model"))
    usage = doc.get("usage")
    usage = usage if isinstance(usage, dict) else {}
    return EmbeddingOutcome(
        vectors=vectors,
        model=model or asked_model,
        prompt_tokens=_count(usage.get("prompt_tokens")),
        total_tokens=_count(usage.get("total_tokens")),
    )


def _embedding(item: object, position: int) -> tuple[int, list[float]]:
    """(index, vector) of one `data` item: base64 little-endian float32, or a number list."""
    if not isinstance(item, dict):
        raise _Malformed(f"data[{position}] is not an object")
    index = item.get("index")
    if not isinstance(index, int) or isinstance(index, bool):
        raise _Malformed(f"data[{position}].index is not an integer")
    embedding = item.get("embedding")
    if isinstance(embedding, str):
        vector = _decode_float32(embedding, position)
    elif isinstance(embedding, list) and all(_is_number(v) for v in embedding):
        vector = [float(v) for v in embedding]
    else:
        raise _Malformed(f"data[{position}].embedding is neither base64 nor a list of numbers")
    if not vector:
        raise _Malformed(f"data[{position}].embedding is empty")
    return index, vector


def _decode_float32(text: str, position: int) -> list[float]:
    try:
        raw = base64.b64decode(text, validate=True)
    except binascii.Error:
        raise _Malformed(f"data[{position}].embedding is not valid base64") from None
    if len(raw) % _FLOAT32.size:
        raise _Malformed(f"data[{position}].embedding is not a whole number of float32 values")
    return [value for (value,) in _FLOAT32.iter_unpack(raw)]


def _is_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _count(value: object) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) and value >= 0 else 0


def _parse_error_body(body: bytes) -> tuple[str, str, str, str]:
    """(message, type, code, param) from `{"error": {...}}`; empty strings where absent."""
    try:
        doc: Any = json.loads(body)
    except ValueError:
        return "", "", "", ""
    error = doc.get("error") if isinstance(doc, dict) else None
    if isinstance(error, str):
        return error, "", "", ""
    if not isinstance(error, dict):
        return "", "", "", ""
    code = error.get("code")
    return (
        _str_or_none(error.get("message")) or "",
        _str_or_none(error.get("type")) or "",
        str(code) if isinstance(code, str | int) and not isinstance(code, bool) else "",
        _str_or_none(error.get("param")) or "",
    )


def _retry_after(headers: Mapping[str, str]) -> float | None:
    # OpenAI's SDK prefers the millisecond header when both are present.
    ms = parse_retry_after(headers.get("retry-after-ms"))
    if ms is not None:
        return ms / 1000
    return parse_retry_after(headers.get("retry-after"))


def _str_or_none(value: object) -> str | None:
    return value if isinstance(value, str) else None
