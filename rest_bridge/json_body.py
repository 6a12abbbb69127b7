"""JSON bodies (image generations, embeddings) -> typed requests, refusing wrong types.

The bridge only translates: a value that cannot be put into the proto (`"n": "two"`,
`"size": "huge"`, a list of mixed texts and numbers) is refused here with the field
named; the rules on values (ranges, required fields, `stream`) are the server's.
`null` means the field was not given. Any field this API does not know is passed to
the provider as an extra parameter.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Mapping
from typing import Any

from aiohttp import web
from google.protobuf import struct_pb2
from google.protobuf.message import Message

from asyncgate.v1 import embedding_pb2 as emb_pb
from asyncgate.v1 import image_common_pb2 as common_pb
from asyncgate.v1 import image_generation_pb2 as gen_pb
from rest_bridge.config import BridgeConfig
from rest_bridge.errors import BridgeError
from rest_bridge.form import parse_enum

_INT_BITS = {32: (-(2**31), 2**31 - 1), 64: (-(2**63), 2**63 - 1)}


MAX_DEPTH = 32
"""Deepest nesting of arrays and objects a body may have (the protobuf Struct the extra
parameters travel in would be refused by a parser past 100)."""

_NON_FINITE = object()
"""What NaN, Infinity and -Infinity parse to: refused by the walk, which names the field."""


class _DuplicateKey(Exception):
    def __init__(self, key: str) -> None:
        super().__init__(key)
        self.key = key


def _object(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    doc: dict[str, Any] = {}
    for key, value in pairs:
        if key in doc:
            raise _DuplicateKey(key)
        doc[key] = value
    return doc


def _float(text: str) -> Any:
    number = float(text)
    return number if math.isfinite(number) else _NON_FINITE  # 1e400 reads as inf


def parse_json_object(body: bytes) -> dict[str, Any]:
    """Strict JSON: UTF-8, one value per key, finite numbers, bounded depth, a top-level object."""
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise BridgeError(400, f"invalid JSON body: not UTF-8 (byte {exc.start})") from None
    try:
        doc = json.loads(
            text, object_pairs_hook=_object, parse_float=_float, parse_constant=lambda _: _NON_FINITE
        )
    except _DuplicateKey as dup:
        raise BridgeError(400, f"{dup.key} was given more than once (expected once)", dup.key) from None
    except RecursionError:
        raise BridgeError(400, f"invalid JSON body: nested deeper than {MAX_DEPTH} levels") from None
    except ValueError as exc:  # JSONDecodeError, an integer too long to convert
        raise BridgeError(400, f"invalid JSON body: {exc}") from None
    if not isinstance(doc, dict):
        raise BridgeError(400, "the request body must be a JSON object")
    for field, value in doc.items():
        _check_value(field, value)
    return doc


def _check_value(field: str, value: Any) -> None:
    """Refuse what no proto field can hold, naming the top-level field it sits under:
    non-finite or out-of-range numbers, unpaired surrogates (from \\u escapes), too deep."""
    _check_text(field, field)
    stack = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if depth > MAX_DEPTH:
            raise BridgeError(400, f"invalid {field} value: nested deeper than {MAX_DEPTH} levels", field)
        if item is _NON_FINITE:
            raise BridgeError(400, f"invalid {field} value: NaN and infinite numbers are not allowed", field)
        if isinstance(item, str):
            _check_text(field, item)
        elif isinstance(item, int) and not isinstance(item, bool) and not -(2**64) < item < 2**64:
            raise BridgeError(400, f"invalid {field} value: a number is out of range", field)
        elif isinstance(item, list):
            stack.extend((v, depth + 1) for v in item)
        elif isinstance(item, dict):
            for key, v in item.items():
                _check_text(field, key)
                stack.append((v, depth + 1))


def _check_text(field: str, text: str) -> None:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        raise BridgeError(
            400, f"invalid {field} value: an unpaired surrogate (\\u escape) in a string", field
        ) from None


async def read_json_object(request: web.Request, config: BridgeConfig) -> dict[str, Any]:
    """The body as a JSON object; 413 past the limit (before reading, when declared)."""
    limit = config.max_json_bytes
    if request.content_length is not None and request.content_length > limit:
        raise BridgeError(413, f"request body larger than the limit of {limit} bytes")
    body = bytearray()
    while chunk := await request.content.read(64 * 1024):
        body += chunk
        if len(body) > limit:
            raise BridgeError(413, f"request body larger than the limit of {limit} bytes")
    return parse_json_object(bytes(body))


def _string(field: str, value: Any) -> str:
    if not isinstance(value, str):
        raise BridgeError(400, f"invalid {field} value: {value!r} (expected a string)", field)
    return value


def _integer(bits: int) -> Callable[[str, Any], int]:
    def parse(field: str, value: Any) -> int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise BridgeError(400, f"invalid {field} value: {value!r} (expected an integer)", field)
        low, high = _INT_BITS[bits]
        if not low <= value <= high:
            raise BridgeError(400, f"invalid {field} value: {value} (out of range)", field)
        return value

    return parse


def _boolean(field: str, value: Any) -> bool:
    if not isinstance(value, bool):
        raise BridgeError(400, f"invalid {field} value: {value!r} (expected true or false)", field)
    return value


def _enum(enum: Any) -> Callable[[str, Any], int]:
    def parse(field: str, value: Any) -> int:
        return parse_enum(field, enum, _string(field, value))

    return parse


def _fallbacks(field: str, value: Any) -> list[str]:
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise BridgeError(400, f"invalid {field} value: expected an array of provider/model strings", field)
    return [v.strip() for v in value]


Parser = Callable[[str, Any], Any]

GENERATION_FIELDS: dict[str, Parser] = {
    "model": _string,
    "prompt": _string,
    "n": _integer(32),
    "size": _enum(common_pb.ImageSize),
    "quality": _enum(common_pb.Quality),
    "style": _enum(gen_pb.Style),
    "response_format": _enum(common_pb.ResponseFormat),
    "background": _enum(common_pb.Background),
    "moderation": _enum(gen_pb.Moderation),
    "output_format": _enum(common_pb.OutputFormat),
    "output_compression": _integer(32),
    "partial_images": _integer(32),
    "seed": _integer(64),
    "negative_prompt": _string,
    "num_inference_steps": _integer(64),
    "user": _string,
    "fallbacks": _fallbacks,
    "stream": _boolean,
}

EMBEDDING_FIELDS: dict[str, Parser] = {
    "model": _string,
    "encoding_format": _enum(emb_pb.EncodingFormat),
    "dimensions": _integer(32),
    "user": _string,
    "fallbacks": _fallbacks,
}


def _fill(message: Message, body: Mapping[str, Any], parsers: Mapping[str, Parser], skip: set[str]) -> None:
    """Set every known field of `body` on `message`; the unknown ones become extra_params."""
    extra: dict[str, Any] = {}
    for field, value in body.items():
        if value is None or field in skip:
            continue
        parser = parsers.get(field)
        if parser is None:
            extra[field] = value
        elif field == "fallbacks":
            getattr(message, field).extend(parser(field, value))
        else:
            setattr(message, field, parser(field, value))
    if extra:
        struct = struct_pb2.Struct()
        struct.update(extra)
        message.extra_params.CopyFrom(struct)  # type: ignore[attr-defined]


def image_generation_request(body: Mapping[str, Any]) -> gen_pb.ImageGenerationRequest:
    request = gen_pb.ImageGenerationRequest()
    _fill(request, body, GENERATION_FIELDS, skip=set())
    return request


def embedding_request(body: Mapping[str, Any]) -> emb_pb.EmbeddingRequest:
    request = emb_pb.EmbeddingRequest()
    _fill(request, body, EMBEDDING_FIELDS, skip={"input"})
    if body.get("input") is not None:
        request.input.CopyFrom(embedding_input(body["input"]))
    return request


def _token(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def embedding_input(value: Any) -> emb_pb.EmbeddingInput:
    """A string, an array of strings, an array of token ids, or an array of such arrays."""
    if isinstance(value, str):
        return emb_pb.EmbeddingInput(text=value)
    if isinstance(value, list):
        if all(isinstance(v, str) for v in value):
            return emb_pb.EmbeddingInput(texts=emb_pb.TextList(values=value))
        if all(_token(v) for v in value):
            return emb_pb.EmbeddingInput(tokens=emb_pb.TokenList(values=_checked_tokens(value)))
        if all(isinstance(v, list) and all(_token(t) for t in v) for v in value):
            lists = [emb_pb.TokenList(values=_checked_tokens(v)) for v in value]
            return emb_pb.EmbeddingInput(token_lists=emb_pb.TokenLists(values=lists))
    raise BridgeError(
        400,
        "invalid input value: expected a string, an array of strings, an array of token ids,"
        " or an array of arrays of token ids",
        "input",
    )


def _checked_tokens(values: list[int]) -> list[int]:
    low, high = _INT_BITS[64]
    if any(not low <= v <= high for v in values):
        raise BridgeError(400, "invalid input value: a token id is out of range", "input")
    return values
