"""Form fields (text) -> a typed request message (image edits, image variations), refusing
what cannot be typed.

The bridge only translates: it refuses a value it cannot put into the proto
(`n=two`, `size=300x300`) with the same error the server would give; every
other rule (ranges, required fields, images) is the server's.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

from google.protobuf.internal.enum_type_wrapper import EnumTypeWrapper

from asyncgate.v1 import image_common_pb2 as common_pb
from asyncgate.v1 import image_edit_pb2 as edit_pb
from asyncgate.v1 import image_variation_pb2 as var_pb
from rest_bridge.errors import BridgeError

_INTEGER = re.compile(r"[+-]?[0-9]+")
M = TypeVar("M")

_INT_RANGE = {32: (-(2**31), 2**31 - 1), 64: (-(2**63), 2**63 - 1)}


def _enum_names(enum: EnumTypeWrapper) -> list[str]:
    prefix = enum.Name(0).removesuffix("UNSPECIFIED")
    return [name.removeprefix(prefix).lower() for name in enum.keys()[1:]]


def parse_enum(field: str, enum: EnumTypeWrapper, value: str) -> int:
    prefix = enum.Name(0).removesuffix("UNSPECIFIED")
    if value == value.lower() and (prefix + value.upper()) in enum.keys()[1:]:
        return enum.Value(prefix + value.upper())
    allowed = ", ".join(_enum_names(enum))
    raise BridgeError(400, f"invalid {field} value: {value!r} (expected one of {allowed})", field)


def parse_int(field: str, value: str, bits: int = 32) -> int:
    if not _INTEGER.fullmatch(value):
        raise BridgeError(400, f"invalid {field} value: {value!r} (expected an integer)", field)
    low, high = _INT_RANGE[bits]
    # Beyond 20 digits it is out of range anyway; int() would refuse past 4300 digits.
    if len(value.lstrip("+-")) > 20 or not low <= (number := int(value)) <= high:
        raise BridgeError(400, f"invalid {field} value: {value!r} (out of range)", field)
    return number


def parse_bool(field: str, value: str) -> bool:
    lowered = value.strip().lower()
    if lowered in ("true", "1"):
        return True
    if lowered in ("false", "0", ""):
        return False
    raise BridgeError(400, f"invalid {field} value: {value!r} (expected true or false)", field)


FALLBACK_FIELDS = ("fallbacks", "fallbacks[]")


@dataclass(frozen=True)
class FormFields:
    """The text fields a multipart operation's request message takes, by kind; any other
    field goes to its `extra_params`."""

    strings: tuple[str, ...] = ()
    enums: Mapping[str, EnumTypeWrapper] = field(default_factory=dict)
    int32s: tuple[str, ...] = ()
    int64s: tuple[str, ...] = ()
    bools: tuple[str, ...] = ()


EDIT_FIELDS = FormFields(
    strings=("model", "prompt", "negative_prompt", "user"),
    enums={
        "type": edit_pb.EditType,
        "size": common_pb.ImageSize,
        "response_format": common_pb.ResponseFormat,
        "background": common_pb.Background,
        "input_fidelity": edit_pb.InputFidelity,
        "quality": common_pb.Quality,
        "output_format": common_pb.OutputFormat,
    },
    int32s=("n", "partial_images", "output_compression"),
    int64s=("num_inference_steps", "seed"),
    bools=("stream",),
)
VARIATION_FIELDS = FormFields(
    strings=("model", "user"),
    enums={"size": common_pb.ImageSize, "response_format": common_pb.ResponseFormat},
    int32s=("n",),
)


class TypedForm(Generic[M]):
    """Builds a typed request field by field, refusing a bad value as soon as it arrives
    (so a refused form is answered before the files that follow it are streamed)."""

    def __init__(self, request: M, fields: FormFields) -> None:
        self.request = request
        self._fields = fields
        self._seen: set[str] = set()

    def add(self, name: str, value: str) -> None:
        request: Any = self.request
        kinds = self._fields
        if name in FALLBACK_FIELDS:
            if value.strip():
                request.fallbacks.append(value.strip())
            return
        if name in self._seen:
            raise BridgeError(400, f"{name} was given more than once (expected once)", name)
        self._seen.add(name)
        if name in kinds.strings:
            setattr(request, name, value)
        elif name in kinds.enums:
            if value:
                setattr(request, name, parse_enum(name, kinds.enums[name], value))
        elif name in kinds.int32s or name in kinds.int64s:
            if value:
                setattr(request, name, parse_int(name, value, 32 if name in kinds.int32s else 64))
        elif name in kinds.bools:
            setattr(request, name, parse_bool(name, value))
        else:
            request.extra_params[name] = value


def image_edit_form() -> TypedForm[edit_pb.ImageEditRequest]:
    return TypedForm(edit_pb.ImageEditRequest(), EDIT_FIELDS)


def image_variation_form() -> TypedForm[var_pb.ImageVariationRequest]:
    return TypedForm(var_pb.ImageVariationRequest(), VARIATION_FIELDS)
