"""Domain -> proto for what every operation answers: the Job and its result.

Each operation's request conversion (proto -> params) lives in its slice
(grpc_server.operations.*); results come in two kinds, images and embeddings.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime

from google.protobuf import struct_pb2, timestamp_pb2

from asyncgate.v1 import job_pb2 as job_pb
from asyncgate.v1 import job_service_pb2 as job_service_pb
from grpc_server.capabilities import Capabilities
from grpc_server.domain.errors import InvalidArgument
from grpc_server.domain.jobs import EmbeddingResult, ExtraFields, ImageResult, Job, JobError, JobStatus
from grpc_server.jobs_list import ListQuery, decode_token, page_size
from grpc_server.operations.registry import BY_PROTO, OPERATIONS

_STATUS = {
    "pending": job_pb.JOB_STATUS_PENDING,
    "processing": job_pb.JOB_STATUS_PROCESSING,
    "completed": job_pb.JOB_STATUS_COMPLETED,
    "failed": job_pb.JOB_STATUS_FAILED,
    "cancelled": job_pb.JOB_STATUS_CANCELLED,
}


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


def image_result_to_proto(
    job_id: str, result: ImageResult, capabilities: Capabilities, urls: Mapping[int, str] | None = None
) -> job_pb.ImageResult:
    """`urls`: pre-signed URLs of stored outputs by index (Job.output_urls), as their direct_url."""
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
                    direct_url=(urls or {}).get(image.stored_index, ""),
                )
            )
        elif image.url is not None:
            item.url = image.url
    return proto


def embedding_result_to_proto(
    job_id: str, result: EmbeddingResult, capabilities: Capabilities, urls: Mapping[int, str] | None = None
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
            direct_url=(urls or {}).get(0, ""),
        ),
        encoding_format=result.encoding_format,
        extra_fields=_extra_fields(result.extra_fields),
    )


def job_to_proto(job: Job, capabilities: Capabilities) -> job_pb.Job:
    proto = job_pb.Job(
        id=job.id,
        status=_STATUS[job.status.value],
        request_type=OPERATIONS[job.request_type].proto_request_type,  # type: ignore[arg-type]
        model=job.params.model,
        create_time=_timestamp(job.created_at),
        status_code=job.status_code,
        attempt=job.attempts,
        labels=job.labels,
        change_number=job.change_seq,
        webhook=job.webhook or "",
    )
    if job.queue_position is not None:
        proto.queue_position = job.queue_position
    if job.completed_at is not None:
        proto.complete_time.CopyFrom(_timestamp(job.completed_at))
    if job.expires_at is not None:
        proto.expire_time.CopyFrom(_timestamp(job.expires_at))
    if isinstance(job.result, ImageResult):
        proto.image_result.CopyFrom(image_result_to_proto(job.id, job.result, capabilities, job.output_urls))
    elif isinstance(job.result, EmbeddingResult):
        proto.embedding_result.CopyFrom(
            embedding_result_to_proto(job.id, job.result, capabilities, job.output_urls)
        )
    if job.error is not None:
        proto.error.CopyFrom(job_error_to_proto(job.error))
    return proto


_DOMAIN_STATUS = {number: JobStatus(name) for name, number in _STATUS.items()}


def list_query(request: job_service_pb.ListJobsRequest) -> ListQuery:
    """A ListJobsRequest as a query (the owner is set by the API from the caller)."""
    statuses = []
    for number in request.statuses:
        if number not in _DOMAIN_STATUS:
            raise InvalidArgument(f"invalid statuses value: {number}", "statuses")
        statuses.append(_DOMAIN_STATUS[number])
    request_type = None
    if request.request_type:
        operation = BY_PROTO.get(request.request_type)
        if operation is None:
            raise InvalidArgument(f"invalid request_type value: {request.request_type}", "request_type")
        request_type = operation.request_type
    return ListQuery(
        statuses=tuple(statuses),
        request_type=request_type,
        labels=dict(request.labels),
        created_after=(
            request.create_time_after.ToDatetime(UTC) if request.HasField("create_time_after") else None
        ),
        created_before=(
            request.create_time_before.ToDatetime(UTC) if request.HasField("create_time_before") else None
        ),
        page_size=page_size(request.page_size),
        after=decode_token(request.page_token),
    )
