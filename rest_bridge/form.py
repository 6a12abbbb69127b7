"""Form fields (text) -> a typed ImageEditRequest, refusing what cannot be typed.

The bridge only translates: it refuses a value it cannot put into the proto
(`n=two`, `size=300x300`) with the same error the server would give; every
other rule (ranges, required fields, images) is the server's.
"""

from __future__ import annotations

import re

from google.protobuf.internal.enum_type_wrapper import EnumTypeWrapper

from asyncgate.v1 import image_common_pb2 as common_pb
from asyncgate.v1 import image_edit_pb2 as edit_pb
from rest_bridge.errors import BridgeError

_INTEGER = re.compile(r"[+-]?[0-9]+")

ENUM_FIELDS: dict[str, EnumTypeWrapper] = {
    "type": edit_pb.EditType,
    "size": common_pb.ImageSize,
    "response_format": common_pb.ResponseFormat,
    "background": common_pb.Background,
    "input_fidelity": edit_pb.InputFidelity,
    "quality": common_pb.Quality,
    "output_format": common_pb.OutputFormat,
}
INT32_FIELDS = ("n", "partial_images", "output_compression")
INT64_FIELDS = ("num_inference_steps", "seed")
STRING_FIELDS = ("model", "prompt", "negative_prompt", "user")
FALLBACK_FIELDS = ("fallbacks", "fallbacks[]")
FILE_FIELDS = ("image", "image[]", "mask")
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


class ImageEditForm:
    """Builds the typed request field by field, refusing a bad value as soon as it arrives
    (so a refused form is answered before the files that follow it are streamed)."""

    def __init__(self) -> None:
        self.request = edit_pb.ImageEditRequest()
        self._seen: set[str] = set()

    def add(self, field: str, value: str) -> None:
        request = self.request
        if field in FALLBACK_FIELDS:
            if value.strip():
                request.fallbacks.append(value.strip())
            return
        if field in self._seen:
            raise BridgeError(400, f"{field} was given more than once (expected once)", field)
        self._seen.add(field)
        if field in STRING_FIELDS:
            setattr(request, field, value)
        elif field in ENUM_FIELDS:
            if value:
                setattr(request, field, parse_enum(field, ENUM_FIELDS[field], value))
        elif field in INT32_FIELDS or field in INT64_FIELDS:
            if value:
                setattr(request, field, parse_int(field, value, 32 if field in INT32_FIELDS else 64))
        elif field == "stream":
            request.stream = parse_bool(field, value)
        else:
            request.extra_params[field] = value
