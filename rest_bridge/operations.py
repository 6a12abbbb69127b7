"""The REST side of each operation, in one table: its path, its operation name (the error
object's extra_fields.request_type), the gRPC request type its polls ask for, and its submit
handler. Routes, the error middleware and the poll handlers read it."""

from __future__ import annotations

from dataclasses import dataclass

from asyncgate.v1 import job_pb2 as job_pb
from rest_bridge.context import Handler
from rest_bridge.submit_json import submit_embedding, submit_image_generation
from rest_bridge.submit_multipart import submit_image_edit, submit_image_variation


@dataclass(frozen=True)
class RestOperation:
    name: str
    path: str
    """POST here submits; GET {path}/{job_id} polls."""
    request_type: int
    """The asyncgate.v1.RequestType a poll on this path expects."""
    submit: Handler


OPERATIONS: tuple[RestOperation, ...] = (
    RestOperation("image_edit", "/v1/async/images/edits", job_pb.REQUEST_TYPE_IMAGE_EDIT, submit_image_edit),
    RestOperation(
        "image_generation",
        "/v1/async/images/generations",
        job_pb.REQUEST_TYPE_IMAGE_GENERATION,
        submit_image_generation,
    ),
    RestOperation(
        "image_variation",
        "/v1/async/images/variations",
        job_pb.REQUEST_TYPE_IMAGE_VARIATION,
        submit_image_variation,
    ),
    RestOperation("embedding", "/v1/async/embeddings", job_pb.REQUEST_TYPE_EMBEDDING, submit_embedding),
)
