"""Reading request messages: enums by name, optional scalars, model lists.

Enums map by name: `IMAGE_SIZE_1024X1024` <-> "1024x1024", `EDIT_TYPE_INPAINTING` <->
"inpainting"; the `*_UNSPECIFIED` value means "not set". A number the enum does not define
(a client built from newer protos, or a hand-made message) is refused naming the field.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

from google.protobuf import json_format, struct_pb2
from google.protobuf.internal.enum_type_wrapper import EnumTypeWrapper

from grpc_server.domain.errors import InvalidArgument


def _prefix(enum: EnumTypeWrapper) -> str:
    return enum.Name(0).removesuffix("UNSPECIFIED")


def enum_to_str(enum: EnumTypeWrapper, value: int, field: str) -> str | None:
    """`EDIT_TYPE_INPAINTING` -> "inpainting"; unspecified -> None."""
    if value == 0:
        return None
    try:
        name = enum.Name(value)
    except ValueError:
        raise InvalidArgument(f"invalid {field} value: {value} (not a known enum number)", field) from None
    return name.removeprefix(_prefix(enum)).lower()


def optional(message: Any, field: str) -> int | None:
    return getattr(message, field) if message.HasField(field) else None


def strip_models(models: Iterable[str]) -> tuple[str, ...]:
    return tuple(model.strip() for model in models)


def struct_params(extra: struct_pb2.Struct) -> dict[str, Any]:
    """A JSON operation's `extra_params` (generation, embeddings) as a plain dict."""
    return json_format.MessageToDict(extra)


def _integral(value: Any) -> Any:
    """Struct numbers are doubles: 7.0 -> 7, so a form field reads "7" as it was given."""
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, list):
        return [_integral(item) for item in value]
    if isinstance(value, dict):
        return {key: _integral(item) for key, item in value.items()}
    return value


def form_extra_params(extra: struct_pb2.Struct) -> dict[str, str]:
    """Extra fields of a multipart operation (edit, variation) as form text: a string as it
    is, any other value as its JSON text (7 -> "7", true -> "true", [1, 2] -> "[1,2]")."""
    fields: dict[str, str] = {}
    for name, value in json_format.MessageToDict(extra).items():
        plain = _integral(value)
        fields[name] = plain if isinstance(plain, str) else json.dumps(plain, separators=(",", ":"))
    return fields
