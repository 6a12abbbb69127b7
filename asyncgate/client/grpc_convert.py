"""Between the client's types and the protos: request fields in, Job messages out."""

from __future__ import annotations

import re
import struct
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any, cast

from google.protobuf import struct_pb2
from google.protobuf.descriptor import FieldDescriptor
from google.protobuf.message import Message
from google.protobuf.timestamp_pb2 import Timestamp

from asyncgate.client.errors import InvalidRequest
from asyncgate.client.types import (
    Embedding,
    EmbeddingsResult,
    ImageData,
    ImagesResult,
    Job,
    JobError,
    JobStatus,
    OutputRef,
    RequestType,
)
from asyncgate.v1 import embedding_pb2, job_pb2

STATUSES: dict[int, JobStatus] = {
    job_pb2.JOB_STATUS_PENDING: "pending",
    job_pb2.JOB_STATUS_PROCESSING: "processing",
    job_pb2.JOB_STATUS_COMPLETED: "completed",
    job_pb2.JOB_STATUS_FAILED: "failed",
    job_pb2.JOB_STATUS_CANCELLED: "cancelled",
}
STATUS_VALUES = {name: value for value, name in STATUSES.items()}
REQUEST_TYPES: dict[int, RequestType] = {
    job_pb2.REQUEST_TYPE_IMAGE_EDIT: "image_edit",
    job_pb2.REQUEST_TYPE_IMAGE_GENERATION: "image_generation",
    job_pb2.REQUEST_TYPE_IMAGE_VARIATION: "image_variation",
    job_pb2.REQUEST_TYPE_EMBEDDING: "embedding",
}
REQUEST_TYPE_VALUES = {name: value for value, name in REQUEST_TYPES.items()}


def _enum_prefix(enum_name: str) -> str:
    """EditType -> EDIT_TYPE_: the protos' enum values are their type's name in upper snake case."""
    return re.sub(r"(?<!^)(?=[A-Z])", "_", enum_name).upper() + "_"


def fill_request(message: Message, params: Mapping[str, Any]) -> None:
    """Set `message`'s fields from OpenAI-named params; enums from their lower-case names
    (`"256x256"`, `"background_removal"`); any other name goes to extra_params."""
    fields = message.DESCRIPTOR.fields_by_name
    extra: dict[str, Any] = {}
    for name, value in params.items():
        if value is None:
            continue
        descriptor = fields.get(name)
        if descriptor is None or name == "extra_params":
            extra[name] = value
        elif descriptor.type == FieldDescriptor.TYPE_ENUM:
            enum = descriptor.enum_type
            assert enum is not None
            member = enum.values_by_name.get(_enum_prefix(enum.name) + str(value).upper())
            if member is None or member.number == 0:
                raise InvalidRequest(f"invalid {name} value: {value!r}", param=name, status=400)
            setattr(message, name, member.number)
        elif descriptor.is_repeated:
            getattr(message, name).extend(value)
        else:
            setattr(message, name, value)
    if extra:
        cast(struct_pb2.Struct, message.extra_params).update(extra)  # type: ignore[attr-defined]


def embedding_input(value: str | list[str] | list[int] | list[list[int]]) -> embedding_pb2.EmbeddingInput:
    """OpenAI's four shapes of `input`; the server checks what is inside."""
    if isinstance(value, str):
        return embedding_pb2.EmbeddingInput(text=value)
    items = list(value)
    if items and all(isinstance(item, list) for item in items):
        lists = [embedding_pb2.TokenList(values=item) for item in cast(list[list[int]], items)]
        return embedding_pb2.EmbeddingInput(token_lists=embedding_pb2.TokenLists(values=lists))
    if items and all(isinstance(item, int) for item in items):
        return embedding_pb2.EmbeddingInput(tokens=embedding_pb2.TokenList(values=cast(list[int], items)))
    if all(isinstance(item, str) for item in items):
        return embedding_pb2.EmbeddingInput(texts=embedding_pb2.TextList(values=cast(list[str], items)))
    raise InvalidRequest("input must be a string, a list of strings, or token ids", param="input", status=400)


def timestamp(when: datetime) -> Timestamp:
    stamp = Timestamp()
    stamp.FromDatetime(when)
    return stamp


def _time(message: job_pb2.Job, name: str) -> datetime | None:
    return getattr(message, name).ToDatetime(tzinfo=UTC) if message.HasField(name) else None


def _image_result(result: job_pb2.ImageResult) -> ImagesResult:
    data = tuple(
        ImageData(
            url=image.url if image.HasField("url") else None,
            revised_prompt=image.revised_prompt or None,
            output=OutputRef(image.stored.index, image.stored.access_token)
            if image.HasField("stored")
            else None,
        )
        for image in result.data
    )
    return ImagesResult(
        created=result.created,
        data=data,
        size=result.size or None,
        background=result.background or None,
        output_format=result.output_format or None,
        quality=result.quality or None,
        provider=result.extra_fields.provider,
        model=result.extra_fields.model_requested,
    )


def vectors(raw: bytes, count: int, dimensions: int) -> list[list[float]]:
    """Rows of little-endian float32, as Python floats (exactly the stored values)."""
    width = dimensions * 4
    return [list(struct.unpack(f"<{dimensions}f", raw[i * width : (i + 1) * width])) for i in range(count)]


def embeddings_result(result: job_pb2.EmbeddingResult, raw: bytes) -> EmbeddingsResult:
    rows = vectors(raw, result.count, result.dimensions)
    return EmbeddingsResult(
        data=tuple(Embedding(index, row) for index, row in enumerate(rows)),
        model=result.model,
        prompt_tokens=result.prompt_tokens,
        total_tokens=result.total_tokens,
        provider=result.extra_fields.provider,
    )


def to_job(message: job_pb2.Job, embeddings: EmbeddingsResult | None = None) -> Job:
    """A Job from its message; an embedding job's result is given (its vectors read apart)."""
    result: ImagesResult | EmbeddingsResult | None = None
    if message.HasField("image_result"):
        result = _image_result(message.image_result)
    elif message.HasField("embedding_result"):
        result = embeddings
    error = None
    if message.HasField("error"):
        detail = message.error.error
        error = JobError(
            message=detail.message,
            type=detail.type or message.error.type,
            code=detail.code or None,
            param=detail.param or None,
            status_code=message.error.status_code,
        )
    status = STATUSES.get(message.status, "pending")
    ended = status in ("completed", "failed", "cancelled")
    return Job(
        id=message.id,
        status=status,
        created_at=message.create_time.ToDatetime(tzinfo=UTC),
        request_type=REQUEST_TYPES.get(message.request_type),
        completed_at=_time(message, "complete_time"),
        expires_at=_time(message, "expire_time"),
        status_code=message.status_code if ended else None,
        result=result,
        error=error,
        attempt=message.attempt,
        queue_position=message.queue_position if message.HasField("queue_position") else None,
        labels=dict(message.labels),
    )
