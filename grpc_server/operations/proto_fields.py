"""Reading request messages: enums by name, optional scalars, model lists.

Enums map by name: `IMAGE_SIZE_1024X1024` <-> "1024x1024", `EDIT_TYPE_INPAINTING` <->
"inpainting"; the `*_UNSPECIFIED` value means "not set". A number the enum does not define
(a client built from newer protos, or a hand-made message) is refused naming the field.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

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
