"""OpenAI image edits (`POST {base_url}/images/edits`).

What is sent, and why:

- Multipart laid out as OpenAI's own Python SDK lays it out: the text fields first,
  then the images, then the mask. One image is a part named `image`; several are
  each a part named `image[]` (the SDK's bracket array format). Every file part
  carries its filename and content type: OpenAI refuses parts it sees as
  `application/octet-stream`. Filenames are escaped as the SDK (httpx) and browsers
  do (`"` and control characters as %XX), otherwise sent as UTF-8.
- Files are streamed from disk (open file objects in the form), never read whole:
  an edit may carry 16 inputs of 50 MB each.
- Text fields: `model` (the bare name), `prompt`, and each edit parameter that is
  set. Never `stream` (this adapter reads one JSON answer, not events), `type`
  (the gateway's edit type, not an OpenAI field) or `fallbacks` (the gateway's own
  chain).
- `response_format`: the gateway keeps the image bytes and serves its own URLs,
  whatever the caller asked for. dall-e models would answer with 60-minute URLs by
  default, so they get `response_format=b64_json`; GPT image models always answer
  base64 and refuse the field, so they get none.
- `extra_params` go through unchanged as further text fields, replacing a named
  field of the same name; they cannot replace the model, the files or `stream`.

Answers: 2xx JSON becomes an ImageOutcome (a 2xx that is not OpenAI's shape is a
retryable 502 `invalid_response`); other statuses become a ProviderError with
OpenAI's error message, type, code and param. Timeouts and connection errors are
left to the chain runner. The API key never appears in an error.
"""

from __future__ import annotations

import base64
import binascii
import json
import time
from collections.abc import Mapping
from contextlib import ExitStack
from typing import Any

import aiohttp

from grpc_server.config import ProviderSettings
from grpc_server.domain.jobs import RequestType
from grpc_server.providers.base import (
    ImageEditCall,
    ImageInput,
    ImageOutcome,
    ProducedImage,
    ProviderError,
    parse_retry_after,
    retryable_status,
)

DEFAULT_BASE_URL = "https://api.openai.com/v1"

# Edit parameters sent as text fields when set, in the order they are sent.
_PARAM_FIELDS = (
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
# Fields extra_params may not set: the files, the model, and streaming we cannot read.
_RESERVED_FIELDS = frozenset({"model", "image", "image[]", "mask", "stream"})

_CONTENT_TYPES = {"png": "image/png", "jpeg": "image/jpeg", "jpg": "image/jpeg", "webp": "image/webp"}
_ERROR_BODY_PREFIX = 200


class OpenAIProvider:
    name = "openai"

    def __init__(
        self, session: aiohttp.ClientSession, settings: ProviderSettings, name: str = "openai"
    ) -> None:
        self.name = name
        self._session = session
        self._api_key = settings.api_key
        self._base_url = (settings.base_url or DEFAULT_BASE_URL).rstrip("/")

    def supports(self, request_type: RequestType) -> bool:
        return request_type is RequestType.IMAGE_EDIT

    async def edit_image(self, call: ImageEditCall) -> ImageOutcome:
        if not self._api_key:
            raise ProviderError(
                message=f"{self.name}: no API key configured",
                status_code=401,
                type="authentication_error",
                retryable=False,
                is_gateway_error=True,
            )
        headers = {"Authorization": f"Bearer {self._api_key}", "Accept": "application/json"}
        with ExitStack() as files:
            form = aiohttp.FormData(quote_fields=False)
            for name, value in _text_fields(call):
                form.add_field(_form_quote(name), value)
            image_part = "image" if len(call.images) == 1 else "image[]"
            for image in call.images:
                _add_file(form, files, image_part, image)
            if call.mask is not None:
                _add_file(form, files, "mask", call.mask)
            async with self._session.post(
                f"{self._base_url}/images/edits", data=form, headers=headers
            ) as response:
                body = await response.read()
                if 200 <= response.status < 300:
                    return self._outcome(body)
                raise self._error(response.status, response.headers, body)

    def _outcome(self, body: bytes) -> ImageOutcome:
        try:
            doc = json.loads(body)
        except ValueError:
            raise self._invalid("body is not JSON") from None
        if not isinstance(doc, dict):
            raise self._invalid("body is not a JSON object")
        data = doc.get("data")
        if not isinstance(data, list) or not data:
            raise self._invalid("no images in `data`")
        output_format = _str_or_none(doc.get("output_format"))
        images = [self._image(item, i, output_format) for i, item in enumerate(data)]
        created = doc.get("created")
        usage = doc.get("usage")
        return ImageOutcome(
            # Some compatible servers leave `created` out; it is not worth failing an edit for.
            created=created if isinstance(created, int) else int(time.time()),
            images=images,
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
            return ProducedImage(
                data=data, content_type=_content_type(output_format, data), revised_prompt=revised_prompt
            )
        if isinstance(url, str) and url:
            return ProducedImage(
                url=url, content_type=_content_type(output_format, b""), revised_prompt=revised_prompt
            )
        raise self._invalid(f"data[{index}] has neither b64_json nor url")

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
        """A server may echo the key back (OpenAI masks it, compatible servers may not)."""
        return text.replace(self._api_key, "[redacted]") if self._api_key else text


def _text_fields(call: ImageEditCall) -> list[tuple[str, str]]:
    fields: dict[str, str] = {"model": call.model, "prompt": call.params.prompt}
    for name in _PARAM_FIELDS:
        value = getattr(call.params, name)
        if value is not None and value != "":
            fields[name] = str(value)
    if call.model.startswith("dall-e"):
        fields["response_format"] = "b64_json"
    for name, value in call.params.extra_params.items():
        if name not in _RESERVED_FIELDS:
            fields[name] = value
    return list(fields.items())


def _add_file(form: aiohttp.FormData, files: ExitStack, part: str, image: ImageInput) -> None:
    # An open file object makes aiohttp stream the part from disk in chunks.
    stream = files.enter_context(image.path.open("rb"))
    form.add_field(part, stream, filename=_form_quote(image.filename), content_type=image.content_type)


def _form_quote(value: str) -> str:
    """Escape a multipart name or filename as httpx and browsers do (HTML5 form encoding)."""
    return "".join(f"%{ord(c):02X}" if c == '"' or ord(c) < 0x20 or c == "\x7f" else c for c in value)


def _content_type(output_format: str | None, data: bytes) -> str:
    if output_format and output_format.lower() in _CONTENT_TYPES:
        return _CONTENT_TYPES[output_format.lower()]
    # No (known) format named: trust the bytes over a guess.
    if data.startswith(b"\xff\xd8\xff"):
        return "image/jpeg"
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "image/webp"
    return "image/png"


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
