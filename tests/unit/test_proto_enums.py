"""The values of every enum-valued request field live in three places: the proto enum,
the server's allowed tuple for the operation, and the bridge's parsers. These tests tie
them, so a value added in one place and not the others fails here.

Strings follow the naming rule of grpc_server.operations.proto_fields.enum_to_str: `IMAGE_SIZE_1024X1024` <->
"1024x1024". A shared enum (ImageSize, Quality, ...) may carry values only some
operations take; every value must still be taken by at least one operation.

When the validation tuples or the bridge's parsers move, only the imports and the
OPERATIONS table below change.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, cast

import pytest
from google.protobuf.descriptor import EnumDescriptor
from google.protobuf.internal.enum_type_wrapper import EnumTypeWrapper
from google.protobuf.message import Message

from asyncgate.v1 import (
    embedding_pb2,
    image_edit_pb2,
    image_generation_pb2,
    image_variation_pb2,
    job_service_pb2,
)
from grpc_server.domain import validation as rules
from grpc_server.domain.errors import InvalidArgument
from grpc_server.operations.embedding import embedding_params, validate_embedding
from grpc_server.operations.image_edit import image_edit_params, validate_image_edit
from grpc_server.operations.image_generation import image_generation_params, validate_image_generation
from grpc_server.operations.image_variation import image_variation_params, validate_image_variation
from grpc_server.operations.proto_fields import enum_to_str
from rest_bridge.errors import BridgeError
from rest_bridge.form import image_edit_form, image_variation_form
from rest_bridge.json_body import embedding_request, image_generation_request


def _edit_form(field: str, text: str) -> Message:
    form = image_edit_form()
    form.add(field, text)
    return form.request


def _variation_form(field: str, text: str) -> Message:
    form = image_variation_form()
    form.add(field, text)
    return form.request


@dataclass(frozen=True)
class Operation:
    """An operation's request message, the server's allowed values per enum field, how the
    server judges a request, and how the bridge builds one from a single REST field."""

    request: Callable[[], Message]  # a request the server accepts
    allowed: Mapping[str, tuple[str, ...]]
    validate: Callable[[Any], None]
    bridge: Callable[[str, str], Message]


OPERATIONS: dict[str, Operation] = {
    "image_edit": Operation(
        request=lambda: image_edit_pb2.ImageEditRequest(model="local/pillow", prompt="a cat"),
        allowed={
            "type": rules.EDIT_TYPES,
            "size": rules.IMAGE_SIZES,
            "response_format": rules.RESPONSE_FORMATS,
            "background": rules.BACKGROUNDS,
            "input_fidelity": rules.INPUT_FIDELITIES,
            "quality": rules.QUALITIES,
            "output_format": rules.OUTPUT_FORMATS,
        },
        validate=lambda request: validate_image_edit(
            image_edit_params(request),
            image_count=1,
            has_mask=False,
            stream=False,
            max_images=16,
            max_fallbacks=4,
        ),
        bridge=_edit_form,
    ),
    "image_generation": Operation(
        request=lambda: image_generation_pb2.ImageGenerationRequest(model="local/pillow", prompt="a cat"),
        allowed={
            "size": rules.GENERATION_SIZES,
            "quality": rules.GENERATION_QUALITIES,
            "style": rules.STYLES,
            "response_format": rules.RESPONSE_FORMATS,
            "background": rules.BACKGROUNDS,
            "moderation": rules.MODERATIONS,
            "output_format": rules.OUTPUT_FORMATS,
        },
        validate=lambda request: validate_image_generation(
            image_generation_params(request), stream=False, max_fallbacks=4
        ),
        bridge=lambda field, text: image_generation_request({field: text}),
    ),
    "image_variation": Operation(
        request=lambda: image_variation_pb2.ImageVariationRequest(model="local/pillow"),
        allowed={"size": rules.VARIATION_SIZES, "response_format": rules.RESPONSE_FORMATS},
        validate=lambda request: validate_image_variation(
            image_variation_params(request), image_count=1, max_fallbacks=4
        ),
        bridge=_variation_form,
    ),
    "embedding": Operation(
        request=lambda: embedding_pb2.EmbeddingRequest(
            model="openai/text-embedding-3-small", input=embedding_pb2.EmbeddingInput(text="a cat")
        ),
        allowed={"encoding_format": rules.ENCODING_FORMATS},
        validate=lambda request: validate_embedding(
            embedding_params(request), max_fallbacks=4, max_tokens=10**6, max_chars=10**6
        ),
        bridge=lambda field, text: embedding_request({field: text}),
    ),
}


CASES = [(name, field) for name, operation in OPERATIONS.items() for field in operation.allowed]


def _enum(name: str, field: str) -> EnumDescriptor:
    enum = OPERATIONS[name].request().DESCRIPTOR.fields_by_name[field].enum_type
    assert enum is not None, f"{field} is not an enum field"
    return cast(EnumDescriptor, enum)  # the stubs also name upb's twin of the class


def _values(enum: EnumDescriptor) -> dict[str, int]:
    """The REST strings of an enum's values (all but *_UNSPECIFIED) -> their numbers."""
    wrapper = EnumTypeWrapper(enum)
    named = {enum_to_str(wrapper, value.number, enum.name): value.number for value in enum.values}
    return {text: number for text, number in named.items() if text is not None}


def _request_messages() -> dict[str, str]:
    """Every request message JobService takes (full name -> the method that takes it)."""
    found: dict[str, str] = {}
    for method in job_service_pb2.DESCRIPTOR.services_by_name["JobService"].methods:
        wrapper = method.input_type.fields_by_name.get("request")
        if wrapper is not None and wrapper.message_type is not None:
            found[wrapper.message_type.full_name] = method.name
    return found


def test_every_enum_field_of_every_request_is_tied_to_its_allowed_values() -> None:
    tied = {
        OPERATIONS[name].request().DESCRIPTOR.full_name: set(operation.allowed)
        for name, operation in OPERATIONS.items()
    }
    requests = _request_messages()
    assert set(tied) == set(requests)
    for full_name in tied:
        message = job_service_pb2.DESCRIPTOR.pool.FindMessageTypeByName(full_name)
        enum_fields = {field.name for field in message.fields if field.enum_type is not None}
        assert enum_fields == tied[full_name], full_name


@pytest.mark.parametrize(("operation", "field"), CASES)
def test_the_server_takes_exactly_the_allowed_values_and_each_is_in_the_proto(
    operation: str, field: str
) -> None:
    allowed = OPERATIONS[operation].allowed[field]
    values = _values(_enum(operation, field))
    assert len(set(allowed)) == len(allowed), "an allowed value is listed twice"
    assert set(allowed) <= set(values), "allowed but not in the proto enum"
    taken = set()
    for text, number in values.items():
        request = OPERATIONS[operation].request()
        setattr(request, field, number)
        try:
            OPERATIONS[operation].validate(request)
        except InvalidArgument as refusal:
            assert refusal.param == field
        else:
            taken.add(text)
    assert taken == set(allowed)


def _uses() -> dict[str, list[tuple[str, str]]]:
    uses: dict[str, list[tuple[str, str]]] = {}
    for operation, field in CASES:
        uses.setdefault(_enum(operation, field).full_name, []).append((operation, field))
    return uses


@pytest.mark.parametrize("enum_name", sorted(_uses()))
def test_every_proto_value_is_allowed_by_some_operation(enum_name: str) -> None:
    enum = job_service_pb2.DESCRIPTOR.pool.FindEnumTypeByName(enum_name)
    allowed = {
        value for operation, field in _uses()[enum_name] for value in OPERATIONS[operation].allowed[field]
    }
    assert set(_values(enum)) == allowed


@pytest.mark.parametrize(("operation", "field"), CASES)
def test_the_bridge_accepts_exactly_the_proto_values(operation: str, field: str) -> None:
    values = _values(_enum(operation, field))
    for text, number in values.items():
        assert getattr(OPERATIONS[operation].bridge(field, text), field) == number
    with pytest.raises(BridgeError) as refused:
        OPERATIONS[operation].bridge(field, "not-a-value")
    assert refused.value.param == field
    listed = str(refused.value).split("expected one of ", 1)[1].rstrip(")").split(", ")
    assert listed == list(values)
