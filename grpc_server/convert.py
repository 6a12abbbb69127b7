"""Proto <-> domain conversion, in one place. Servicers hold no business logic.

Enums map by name: `IMAGE_SIZE_1024X1024` <-> "1024x1024", `EDIT_TYPE_INPAINTING`
<-> "inpainting"; the `*_UNSPECIFIED` value means "not set".
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from google.protobuf import json_format, struct_pb2, timestamp_pb2
from google.protobuf.internal.enum_type_wrapper import EnumTypeWrapper

from asyncgate.v1 import embedding_pb2 as emb_pb
from asyncgate.v1 import image_common_pb2 as common_pb
from asyncgate.v1 import image_edit_pb2 as edit_pb
from asyncgate.v1 import image_generation_pb2 as gen_pb
from asyncgate.v1 import job_pb2 as job_pb
from grpc_server.capabilities import Capabilities
from grpc_server.domain.jobs import (
    EmbeddingInput,
    EmbeddingParams,
    EmbeddingResult,
    ExtraFields,
    ImageEditParams,
    ImageGenerationParams,
    ImageResult,
    Job,
    JobError,
    RequestType,
)

_STATUS = {
    "pending": job_pb.JOB_STATUS_PENDING,
    "processing": job_pb.JOB_STATUS_PROCESSING,
    "completed": job_pb.JOB_STATUS_COMPLETED,
    "failed": job_pb.JOB_STATUS_FAILED,
}
_REQUEST_TYPE = {
    RequestType.IMAGE_EDIT: job_pb.REQUEST_TYPE_IMAGE_EDIT,
    RequestType.IMAGE_GENERATION: job_pb.REQUEST_TYPE_IMAGE_GENERATION,
    RequestType.EMBEDDING: job_pb.REQUEST_TYPE_EMBEDDING,
}
REQUEST_TYPE_FROM_PROTO = {v: k for k, v in _REQUEST_TYPE.items()}


def _prefix(enum: EnumTypeWrapper) -> str:
    return enum.Name(0).removesuffix("UNSPECIFIED")


def enum_to_str(enum: EnumTypeWrapper, value: int) -> str | None:
    """`EDIT_TYPE_INPAINTING` -> "inpainting"; unspecified -> None."""
    if value == 0:
        return None
    return enum.Name(value).removeprefix(_prefix(enum)).lower()


def _optional(message: object, field: str) -> int | None:
    return getattr(message, field) if message.HasField(field) else None  # type: ignore[attr-defined]


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


def image_edit_params(request: edit_pb.ImageEditRequest) -> ImageEditParams:
    return ImageEditParams(
        model=request.model.strip(),
        prompt=request.prompt,
        type=enum_to_str(edit_pb.EditType, request.type),
        n=_optional(request, "n"),
        size=enum_to_str(common_pb.ImageSize, request.size),
        response_format=enum_to_str(common_pb.ResponseFormat, request.response_format) or "url",
        background=enum_to_str(common_pb.Background, request.background),
        input_fidelity=enum_to_str(edit_pb.InputFidelity, request.input_fidelity),
        partial_images=_optional(request, "partial_images"),
        quality=enum_to_str(common_pb.Quality, request.quality),
        output_format=enum_to_str(common_pb.OutputFormat, request.output_format),
        output_compression=_optional(request, "output_compression"),
        num_inference_steps=_optional(request, "num_inference_steps"),
        seed=_optional(request, "seed"),
        negative_prompt=request.negative_prompt or None,
        user=request.user or None,
        fallbacks=tuple(f.strip() for f in request.fallbacks),
        extra_params=form_extra_params(request.extra_params),
    )


def image_generation_params(request: gen_pb.ImageGenerationRequest) -> ImageGenerationParams:
    return ImageGenerationParams(
        model=request.model.strip(),
        prompt=request.prompt,
        n=_optional(request, "n"),
        size=enum_to_str(common_pb.ImageSize, request.size),
        quality=enum_to_str(common_pb.Quality, request.quality),
        style=enum_to_str(gen_pb.Style, request.style),
        response_format=enum_to_str(common_pb.ResponseFormat, request.response_format) or "url",
        background=enum_to_str(common_pb.Background, request.background),
        moderation=enum_to_str(gen_pb.Moderation, request.moderation),
        output_format=enum_to_str(common_pb.OutputFormat, request.output_format),
        output_compression=_optional(request, "output_compression"),
        partial_images=_optional(request, "partial_images"),
        seed=_optional(request, "seed"),
        negative_prompt=request.negative_prompt or None,
        num_inference_steps=_optional(request, "num_inference_steps"),
        user=request.user or None,
        fallbacks=tuple(f.strip() for f in request.fallbacks),
        extra_params=json_format.MessageToDict(request.extra_params),
    )


def embedding_input(value: emb_pb.EmbeddingInput) -> EmbeddingInput:
    kind = value.WhichOneof("kind")
    if kind == "text":
        return value.text
    if kind == "texts":
        return list(value.texts.values)
    if kind == "tokens":
        return list(value.tokens.values)
    if kind == "token_lists":
        return [list(tokens.values) for tokens in value.token_lists.values]
    return ""


def embedding_params(request: emb_pb.EmbeddingRequest) -> EmbeddingParams:
    return EmbeddingParams(
        model=request.model.strip(),
        input=embedding_input(request.input),
        encoding_format=enum_to_str(emb_pb.EncodingFormat, request.encoding_format) or "float",
        dimensions=_optional(request, "dimensions"),
        user=request.user or None,
        fallbacks=tuple(f.strip() for f in request.fallbacks),
        extra_params=json_format.MessageToDict(request.extra_params),
    )


def _timestamp(value: datetime) -> timestamp_pb2.Timestamp:
    ts = timestamp_pb2.Timestamp()
    ts.FromDatetime(value)
    return ts


def _extra_fields(extra: ExtraFields) -> job_pb.ExtraFields:
    return job_pb.ExtraFields(
        provider=extra.provider, model_requested=extra.model_requested, request_type=extra.request_type
    )


def job_error_to_proto(error: JobError) -> job_pb.JobError:
    return job_pb.JobError(
        event_id=error.event_id,
        type=error.type,
        is_gateway_error=error.is_gateway_error,
        status_code=error.status_code,
        error=job_pb.ErrorDetail(
            type=error.type,
            code=error.code,
            message=error.message,
            param=error.param,
            event_id=error.event_id,
        ),
        extra_fields=_extra_fields(error.extra_fields),
    )


def image_result_to_proto(job_id: str, result: ImageResult, capabilities: Capabilities) -> job_pb.ImageResult:
    proto = job_pb.ImageResult(
        created=result.created,
        background=result.background or "",
        output_format=result.output_format or "",
        quality=result.quality or "",
        size=result.size or "",
        response_format=result.response_format,
        extra_fields=_extra_fields(result.extra_fields),
    )
    if result.usage is not None:
        usage = struct_pb2.Struct()
        usage.update(result.usage)
        proto.usage.CopyFrom(usage)
    for image in result.images:
        item = proto.data.add(revised_prompt=image.revised_prompt or "")
        if image.stored_index is not None:
            item.stored.CopyFrom(
                job_pb.StoredOutput(
                    index=image.stored_index,
                    content_type=image.content_type,
                    size_bytes=image.size_bytes,
                    access_token=capabilities.token(job_id, image.stored_index),
                )
            )
        elif image.url is not None:
            item.url = image.url
    return proto


def embedding_result_to_proto(
    job_id: str, result: EmbeddingResult, capabilities: Capabilities
) -> job_pb.EmbeddingResult:
    info = result.stored_output(0)
    assert info is not None
    return job_pb.EmbeddingResult(
        model=result.model,
        count=result.count,
        dimensions=result.dimensions,
        prompt_tokens=result.prompt_tokens,
        total_tokens=result.total_tokens,
        vectors=job_pb.StoredOutput(
            index=0,
            content_type=info.content_type,
            size_bytes=info.size_bytes,
            access_token=capabilities.token(job_id, 0),
        ),
        encoding_format=result.encoding_format,
        extra_fields=_extra_fields(result.extra_fields),
    )


def job_to_proto(job: Job, capabilities: Capabilities) -> job_pb.Job:
    proto = job_pb.Job(
        id=job.id,
        status=_STATUS[job.status.value],
        request_type=_REQUEST_TYPE[job.request_type],
        model=job.params.model,
        create_time=_timestamp(job.created_at),
        status_code=job.status_code,
    )
    if job.completed_at is not None:
        proto.complete_time.CopyFrom(_timestamp(job.completed_at))
    if job.expires_at is not None:
        proto.expire_time.CopyFrom(_timestamp(job.expires_at))
    if isinstance(job.result, ImageResult):
        proto.image_result.CopyFrom(image_result_to_proto(job.id, job.result, capabilities))
    elif isinstance(job.result, EmbeddingResult):
        proto.embedding_result.CopyFrom(embedding_result_to_proto(job.id, job.result, capabilities))
    if job.error is not None:
        proto.error.CopyFrom(job_error_to_proto(job.error))
    return proto
