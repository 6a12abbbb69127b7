"""The operations table covers every request type, in the domain and in the protos."""

from __future__ import annotations

from asyncgate.v1 import job_pb2 as job_pb
from grpc_server.domain.jobs import ModelRef, RequestType
from grpc_server.operations.registry import BY_PROTO, OPERATIONS


def test_every_request_type_has_one_operation() -> None:
    assert set(OPERATIONS) == set(RequestType)
    assert all(op.request_type == request_type for request_type, op in OPERATIONS.items())


def test_every_proto_request_type_maps_to_its_operation() -> None:
    numbers = {value for name, value in job_pb.RequestType.items() if not name.endswith("UNSPECIFIED")}
    assert set(BY_PROTO) == numbers
    for number, op in BY_PROTO.items():
        assert job_pb.RequestType.Name(number) == f"REQUEST_TYPE_{op.request_type.value.upper()}"


def test_model_ref_parses_once_and_prints_back() -> None:
    ref = ModelRef.parse("compatible/org/model-1")
    assert ref == ModelRef("compatible", "org/model-1") and str(ref) == "compatible/org/model-1"
    for bad in ("", "nomodel", "/x", "x/", " openai/x", "openai/x "):
        assert ModelRef.parse(bad) is None
