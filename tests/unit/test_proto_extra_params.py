"""extra_params is a google.protobuf.Struct in every request message; the multipart
operations (edit, variation) hand it to providers as form text."""

from __future__ import annotations

import pytest
from google.protobuf import descriptor_pb2, struct_pb2
from google.protobuf.message import Message

from asyncgate.v1 import (
    embedding_pb2,
    image_edit_pb2,
    image_generation_pb2,
    image_variation_pb2,
)
from grpc_server.operations.image_edit import image_edit_params
from grpc_server.operations.proto_fields import form_extra_params
from rest_bridge.form import image_edit_form

REQUESTS = [
    image_edit_pb2.ImageEditRequest,
    image_generation_pb2.ImageGenerationRequest,
    image_variation_pb2.ImageVariationRequest,
    embedding_pb2.EmbeddingRequest,
]


@pytest.mark.parametrize("request_type", REQUESTS, ids=lambda t: t.DESCRIPTOR.name)
def test_every_request_carries_extra_params_as_a_struct(request_type: type[Message]) -> None:
    struct = request_type.DESCRIPTOR.fields_by_name["extra_params"].message_type
    assert struct is not None and struct.full_name == "google.protobuf.Struct"


@pytest.mark.parametrize(
    ("request_type", "old_number"),
    [(image_edit_pb2.ImageEditRequest, 21), (image_variation_pb2.ImageVariationRequest, 8)],
    ids=["ImageEditRequest", "ImageVariationRequest"],
)
def test_the_number_of_the_old_string_map_is_reserved(request_type: type[Message], old_number: int) -> None:
    declared = descriptor_pb2.DescriptorProto()
    request_type.DESCRIPTOR.CopyToProto(declared)
    assert old_number not in {field.number for field in declared.field}
    assert any(r.start <= old_number < r.end for r in declared.reserved_range)


def test_form_text_keeps_strings_and_writes_other_values_as_json() -> None:
    extra = struct_pb2.Struct()
    extra.update(
        {
            "style_preset": "photographic",
            "steps": 7,
            "cfg": 1.5,
            "upscale": True,
            "nothing": None,
            "weights": [1, 0.5],
            "nested": {"a": 2},
        }
    )
    assert form_extra_params(extra) == {
        "style_preset": "photographic",
        "steps": "7",
        "cfg": "1.5",
        "upscale": "true",
        "nothing": "null",
        "weights": "[1,0.5]",
        "nested": '{"a":2}',
    }


def test_an_unknown_form_field_reaches_the_edit_params_unchanged() -> None:
    form = image_edit_form()
    form.add("model", "local/pillow")
    form.add("style_preset", "photographic")
    form.add("steps", "7")
    params = image_edit_params(form.request)
    assert params.extra_params == {"style_preset": "photographic", "steps": "7"}
