"""OpenAI's images and embeddings wire format, as OpenAI, compatible servers and Azure
OpenAI all speak it: the bodies sent, the answers read, the errors classified.

What differs stays in the adapters: URLs, how the key is sent, and whether bodies name
the model (Azure's deployment names it instead: `send_model=False`).

What is sent:

- Edits: multipart laid out as OpenAI's own Python SDK lays it out: the text fields
  first, then the images, then the mask. One image is a part named `image`; several
  are each a part named `image[]` (the SDK's bracket array format). Every file part
  carries its filename and content type (OpenAI refuses parts it sees as
  `application/octet-stream`) and is streamed from disk (see multipart).
- Generations and embeddings: JSON.
- Each operation sends the parameters of its field list that are set (not None, not
  empty), in that order; `response_format` is `b64_json` for dall-e models (which
  answer 60-minute URLs by default: the gateway keeps the bytes and serves its own
  URLs) and absent for GPT image models (always base64; they refuse the field).
  Embeddings always ask for `encoding_format: base64` (little-endian float32: a quarter
  of the bytes of a float list).
- `extra_params` go through unchanged, replacing a named field of the same name; they
  cannot replace what the *_RESERVED sets name: what identifies the call (model,
  prompt or input, the files), streaming (this wire reads one JSON answer, not
  events), and the gateway's own choices (response_format, encoding_format).

What comes back: images as `data[i].b64_json` or `.url`, embeddings as base64 float32 or
number lists put in `index` order; anything else raises Malformed (the adapter makes it
a retryable 502 `invalid_response`). Error answers: see openai_errors.
"""

from __future__ import annotations

import base64
import binascii
import math
import struct
import time
from collections.abc import Mapping
from contextlib import ExitStack
from typing import Any, TypeVar

import aiohttp

from grpc_server.providers.base import (
    EmbeddingCall,
    EmbeddingOutcome,
    ImageEditCall,
    ImageGenerationCall,
    ImageOutcome,
    ImageVariationCall,
    ProducedImage,
)
from grpc_server.providers.http_errors import Malformed
from grpc_server.providers.media import sniff_image_type
from grpc_server.providers.multipart import add_file, text_form

# Edit parameters sent as text fields when set, in the order they are sent.
EDIT_FIELDS = (
    "n",
    "size",
    "quality",
    "background",
    "output_format",
    "output_compression",
    "input_fidelity",
    "partial_images",
    "user",
)
# Generation parameters OpenAI takes, sent when set. No partial_images: it only means
# something when streaming.
GENERATION_FIELDS = (
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
# Image parameters OpenAI (and Azure OpenAI) refuse but compatible image servers commonly take.
COMPATIBLE_IMAGE_FIELDS = ("seed", "num_inference_steps", "negative_prompt")
EMBEDDING_FIELDS = ("dimensions", "user")
# Variation parameters sent when set (dall-e-2 is OpenAI's only variation model).
VARIATION_FIELDS = ("n", "size", "user")

# Fields extra_params may not set (see the module docstring).
EDIT_RESERVED = frozenset({"model", "prompt", "image", "image[]", "mask", "stream", "response_format"})
GENERATION_RESERVED = frozenset({"model", "prompt", "stream", "partial_images", "response_format"})
EMBEDDING_RESERVED = frozenset({"model", "input", "encoding_format", "stream"})
VARIATION_RESERVED = frozenset({"model", "image", "response_format"})

_CONTENT_TYPES = {"png": "image/png", "jpeg": "image/jpeg", "jpg": "image/jpeg", "webp": "image/webp"}
_FLOAT32 = struct.Struct("<f")
MAX_COUNT = 2**53
"""Larger counts and timestamps are a broken answer (and would overflow a stored integer)."""

T = TypeVar("T")


# What is sent


def generation_body(
    call: ImageGenerationCall, fields: tuple[str, ...] = GENERATION_FIELDS, *, send_model: bool = True
) -> dict[str, Any]:
    """The JSON of an image generation, with the set parameters of `fields`."""
    params = call.params
    body: dict[str, Any] = {"model": call.model} if send_model else {}
    body["prompt"] = params.prompt
    body.update(_set_fields(params, fields))
    if (response_format := _response_format(call.model)) is not None:
        body["response_format"] = response_format
    body.update(_allowed_extras(params.extra_params, GENERATION_RESERVED))
    return body


def edit_form(
    call: ImageEditCall,
    files: ExitStack,
    fields_sent: tuple[str, ...] = EDIT_FIELDS,
    *,
    send_model: bool = True,
) -> aiohttp.FormData:
    """The multipart form of an image edit; its files stay open until `files` closes."""
    params = call.params
    fields: dict[str, str] = {"model": call.model} if send_model else {}
    fields["prompt"] = params.prompt
    fields.update((name, str(value)) for name, value in _set_fields(params, fields_sent).items())
    if (response_format := _response_format(call.model)) is not None:
        fields["response_format"] = response_format
    fields.update(_allowed_extras(params.extra_params, EDIT_RESERVED))
    form = text_form(fields)
    image_part = "image" if len(call.images) == 1 else "image[]"
    for image in call.images:
        add_file(form, files, image_part, image)
    if call.mask is not None:
        add_file(form, files, "mask", call.mask)
    return form


def variation_form(call: ImageVariationCall, files: ExitStack) -> aiohttp.FormData:
    """The multipart form of an image variation as OpenAI's SDK sends it: model, the set
    fields, `response_format`, extras, then the `image` file (open until `files` closes).

    `response_format` is always b64_json: the gateway keeps the bytes and serves its own
    URLs (the caller's response_format says how the gateway answers, not the provider).
    """
    params = call.params
    fields: dict[str, str] = {"model": call.model}
    fields.update((name, str(value)) for name, value in _set_fields(params, VARIATION_FIELDS).items())
    fields["response_format"] = "b64_json"
    fields.update(_allowed_extras(params.extra_params, VARIATION_RESERVED))
    form = text_form(fields)
    add_file(form, files, "image", call.image)
    return form


def embedding_body(call: EmbeddingCall, *, send_model: bool = True) -> dict[str, Any]:
    """The JSON of an embeddings request, always asking for base64."""
    params = call.params
    body: dict[str, Any] = {"model": call.model} if send_model else {}
    body |= {"input": params.input, "encoding_format": "base64"}
    body.update(_set_fields(params, EMBEDDING_FIELDS))
    body.update(_allowed_extras(params.extra_params, EMBEDDING_RESERVED))
    return body


def _set_fields(params: object, names: tuple[str, ...]) -> dict[str, Any]:
    """The named parameters that are set (not None, not empty), in the order named."""
    values = {name: getattr(params, name) for name in names}
    return {name: value for name, value in values.items() if value is not None and value != ""}


def _allowed_extras(extra: Mapping[str, T], reserved: frozenset[str]) -> dict[str, T]:
    return {name: value for name, value in extra.items() if name not in reserved}


def _response_format(model: str) -> str | None:
    """b64_json for dall-e (URLs by default); none for GPT image models, which refuse it."""
    return "b64_json" if model.startswith("dall-e") else None


# What comes back


def image_outcome(doc: dict[str, Any]) -> ImageOutcome:
    """The images of a 2xx images answer (edits and generations alike)."""
    data = doc.get("data")
    if not isinstance(data, list) or not data:
        raise Malformed("no images in `data`")
    output_format = _str_or_none(doc.get("output_format"))
    images = [_image(item, i, output_format) for i, item in enumerate(data)]
    created = doc.get("created")
    usage = doc.get("usage")
    return ImageOutcome(
        # Some compatible servers leave `created` out; it is not worth failing a call for.
        created=created if isinstance(created, int) and _is_count(created) else int(time.time()),
        images=images,
        usage=_checked_usage(usage) if isinstance(usage, dict) else None,
        background=_str_or_none(doc.get("background")),
        output_format=output_format,
        quality=_str_or_none(doc.get("quality")),
        size=_str_or_none(doc.get("size")),
    )


def _checked_usage(usage: dict[str, Any]) -> dict[str, Any]:
    """The usage object as given, once every number in it is plausible: it is stored and
    rendered as JSON numbers (doubles), where 10**400 tokens cannot go."""
    pending: list[object] = [usage]
    while pending:
        value = pending.pop()
        if isinstance(value, dict):
            pending.extend(value.values())
        elif isinstance(value, list):
            pending.extend(value)
        elif isinstance(value, int | float) and not (math.isfinite(value) and abs(value) <= MAX_COUNT):
            raise Malformed(f"a usage number is not finite or is over {MAX_COUNT}")
    return usage


def _image(item: object, index: int, output_format: str | None) -> ProducedImage:
    if not isinstance(item, dict):
        raise Malformed(f"data[{index}] is not an object")
    revised_prompt = _str_or_none(item.get("revised_prompt"))
    b64 = item.get("b64_json")
    url = item.get("url")
    if isinstance(b64, str) and b64:
        try:
            data = base64.b64decode(b64, validate=True)
        except binascii.Error:
            raise Malformed(f"data[{index}].b64_json is not valid base64") from None
        return ProducedImage(
            data=data, content_type=_content_type(output_format, data), revised_prompt=revised_prompt
        )
    if isinstance(url, str) and url:
        return ProducedImage(
            url=url, content_type=_content_type(output_format, b""), revised_prompt=revised_prompt
        )
    raise Malformed(f"data[{index}] has neither b64_json nor url")


def _content_type(output_format: str | None, data: bytes) -> str:
    if output_format and output_format.lower() in _CONTENT_TYPES:
        return _CONTENT_TYPES[output_format.lower()]
    # No (known) format named: trust the bytes over a guess.
    return sniff_image_type(data) or "image/png"


def embedding_outcome(doc: dict[str, Any], *, asked_model: str, expected: int) -> EmbeddingOutcome:
    """One vector per input, in input order (`index` is the truth, not the list's order)."""
    data = doc.get("data")
    if not isinstance(data, list):
        raise Malformed("no `data` list")
    by_index: dict[int, list[float]] = {}
    for position, item in enumerate(data):
        index, vector = _embedding(item, position)
        if index in by_index:
            raise Malformed(f"two vectors for input {index}")
        by_index[index] = vector
    if sorted(by_index) != list(range(expected)):
        raise Malformed(f"{len(by_index)} vectors for {expected} inputs (indexes {sorted(by_index)[:10]})")
    vectors = [by_index[i] for i in range(expected)]
    if len({len(v) for v in vectors}) > 1:
        # Vectors are stored as one count x dimensions matrix.
        raise Malformed("vectors of different lengths")
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
    """(index, vector) of one `data` item: base64 little-endian float32, or a number list.
    An item without `index` is taken to stand at its position."""
    if not isinstance(item, dict):
        raise Malformed(f"data[{position}] is not an object")
    index = item.get("index", position)
    if not isinstance(index, int) or isinstance(index, bool):
        raise Malformed(f"data[{position}].index is not an integer")
    embedding = item.get("embedding")
    if isinstance(embedding, str):
        vector = _decode_float32(embedding, position)
    elif isinstance(embedding, list) and all(_is_number(v) for v in embedding):
        vector = [float(v) for v in embedding]
    else:
        raise Malformed(f"data[{position}].embedding is neither base64 nor a list of numbers")
    if not vector:
        raise Malformed(f"data[{position}].embedding is empty")
    if not all(map(math.isfinite, vector)):
        raise Malformed(f"data[{position}].embedding holds a value that is not a finite number")
    return index, vector


def _decode_float32(text: str, position: int) -> list[float]:
    try:
        raw = base64.b64decode(text, validate=True)
    except binascii.Error:
        raise Malformed(f"data[{position}].embedding is not valid base64") from None
    if len(raw) % _FLOAT32.size:
        raise Malformed(f"data[{position}].embedding is not a whole number of float32 values")
    return [value for (value,) in _FLOAT32.iter_unpack(raw)]


def _is_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _count(value: object) -> int:
    """A token count; 0 when absent or not a count, Malformed when absurdly large."""
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        return 0
    if value > MAX_COUNT:
        raise Malformed(f"a count over {MAX_COUNT} is not plausible")
    return value


def _is_count(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and 0 <= value <= MAX_COUNT


def _str_or_none(value: object) -> str | None:
    return value if isinstance(value, str) else None
