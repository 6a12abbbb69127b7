"""The one table of operations: everything else asks it instead of switching on the type."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from grpc_server.domain.jobs import RequestType
from grpc_server.operations.base import Operation
from grpc_server.operations.embedding import Embedding
from grpc_server.operations.image_edit import ImageEdit
from grpc_server.operations.image_generation import ImageGeneration
from grpc_server.operations.image_variation import ImageVariation

IMAGE_EDIT = ImageEdit()
IMAGE_GENERATION = ImageGeneration()
EMBEDDING = Embedding()
IMAGE_VARIATION = ImageVariation()

OPERATIONS: Mapping[RequestType, Operation[Any, Any]] = {
    op.request_type: op for op in (IMAGE_EDIT, IMAGE_GENERATION, EMBEDDING, IMAGE_VARIATION)
}
BY_PROTO: Mapping[int, Operation[Any, Any]] = {op.proto_request_type: op for op in OPERATIONS.values()}


def operation_of(request_type: RequestType) -> Operation[Any, Any]:
    return OPERATIONS[request_type]
