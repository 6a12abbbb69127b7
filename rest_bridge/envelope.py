"""A proto Job -> the JSON job envelope (docs/rest-api.md §2 and §9), keys in order: the
gateway's keys, then (on the job paths under /v1/async/jobs only, so the gateway's own paths
answer exactly as before) asyncgate's own: request_type, queue_position, attempt, labels, webhook, each
only when it has a value."""

from __future__ import annotations

import base64
import struct
from collections.abc import Awaitable, Callable
from typing import Any

from google.protobuf import json_format
from google.protobuf.timestamp_pb2 import Timestamp

from asyncgate.v1 import job_pb2 as job_pb

STATUS = {
    job_pb.JOB_STATUS_PENDING: "pending",
    job_pb.JOB_STATUS_PROCESSING: "processing",
    job_pb.JOB_STATUS_COMPLETED: "completed",
    job_pb.JOB_STATUS_FAILED: "failed",
    job_pb.JOB_STATUS_CANCELLED: "cancelled",
}
TERMINAL = (job_pb.JOB_STATUS_COMPLETED, job_pb.JOB_STATUS_FAILED, job_pb.JOB_STATUS_CANCELLED)
REQUEST_TYPES = {
    job_pb.REQUEST_TYPE_IMAGE_EDIT: "image_edit",
    job_pb.REQUEST_TYPE_IMAGE_GENERATION: "image_generation",
    job_pb.REQUEST_TYPE_IMAGE_VARIATION: "image_variation",
    job_pb.REQUEST_TYPE_EMBEDDING: "embedding",
}

ReadOutput = Callable[[str, job_pb.StoredOutput], Awaitable[bytes]]


def rfc3339(ts: Timestamp) -> str:
    return ts.ToDatetime().strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def extra_fields(extra: job_pb.ExtraFields) -> dict[str, str]:
    return {
        "provider": extra.provider,
        "model_requested": extra.model_requested,
        "request_type": extra.request_type,
    }


def error_object(error: job_pb.JobError) -> dict[str, Any]:
    inner: dict[str, Any] = {"type": error.error.type, "message": error.error.message}
    if error.error.code:
        inner["code"] = error.error.code
    if error.error.param:
        inner["param"] = error.error.param
    inner["event_id"] = error.error.event_id
    return {
        "event_id": error.event_id,
        "type": error.type,
        "is_bifrost_error": error.is_gateway_error,
        "status_code": error.status_code,
        "error": inner,
        "extra_fields": extra_fields(error.extra_fields),
    }


def image_url(base_url: str, job_id: str, stored: job_pb.StoredOutput) -> str:
    """The bucket's pre-signed URL when the server gave one, else the bridge's own file URL."""
    if stored.direct_url:
        return stored.direct_url
    return f"{base_url}/v1/async/files/{job_id}/{stored.index}?token={stored.access_token}"


async def image_result(job: job_pb.Job, base_url: str, read_output: ReadOutput) -> dict[str, Any]:
    result = job.image_result
    data = []
    for image in result.data:
        item: dict[str, Any] = {}
        if image.HasField("stored"):
            if result.response_format == "b64_json":
                item["b64_json"] = base64.b64encode(await read_output(job.id, image.stored)).decode()
            else:
                item["url"] = image_url(base_url, job.id, image.stored)
        else:
            item["url"] = image.url
        if image.revised_prompt:
            item["revised_prompt"] = image.revised_prompt
        data.append(item)
    body: dict[str, Any] = {"created": result.created, "data": data}
    if result.HasField("usage"):
        body["usage"] = json_format.MessageToDict(result.usage)
    for key in ("background", "output_format", "quality", "size"):
        if value := getattr(result, key):
            body[key] = value
    body["extra_fields"] = extra_fields(result.extra_fields)
    return body


def _float32(value: float) -> float:
    """The shortest decimal that reads back as the same float32 (as OpenAI prints them)."""
    return float(f"{value:.9g}")


async def embedding_result(job: job_pb.Job, read_output: ReadOutput) -> dict[str, Any]:
    """OpenAI's embeddings list, vectors as JSON numbers or base64 of little-endian float32."""
    result = job.embedding_result
    raw = await read_output(job.id, result.vectors)
    width = result.dimensions * 4
    data = []
    for index in range(result.count):
        row = raw[index * width : (index + 1) * width]
        if result.encoding_format == "base64":
            embedding: Any = base64.b64encode(row).decode()
        else:
            embedding = [_float32(x) for x in struct.unpack(f"<{result.dimensions}f", row)]
        data.append({"object": "embedding", "index": index, "embedding": embedding})
    return {
        "object": "list",
        "data": data,
        "model": result.model,
        "usage": {"prompt_tokens": result.prompt_tokens, "total_tokens": result.total_tokens},
        "extra_fields": extra_fields(result.extra_fields),
    }


async def envelope(
    job: job_pb.Job, base_url: str, read_output: ReadOutput, *, extended: bool = False
) -> dict[str, Any]:
    """The envelope; `extended` adds asyncgate's own keys (the job paths' answers)."""
    body: dict[str, Any] = {"id": job.id, "status": STATUS[job.status]}
    if job.HasField("expire_time"):
        body["expires_at"] = rfc3339(job.expire_time)
    body["created_at"] = rfc3339(job.create_time)
    if job.HasField("complete_time"):
        body["completed_at"] = rfc3339(job.complete_time)
    if job.status_code:
        body["status_code"] = job.status_code
    if job.status == job_pb.JOB_STATUS_COMPLETED:
        kind = job.WhichOneof("result")
        if kind == "image_result":
            body["result"] = await image_result(job, base_url, read_output)
        elif kind == "embedding_result":
            body["result"] = await embedding_result(job, read_output)
    if job.status in (job_pb.JOB_STATUS_FAILED, job_pb.JOB_STATUS_CANCELLED) and job.HasField("error"):
        body["error"] = error_object(job.error)
    if extended:
        body.update(own_keys(job))
    return body


def own_keys(job: job_pb.Job) -> dict[str, Any]:
    """asyncgate's keys of a job, in order, each only when it has a value."""
    keys: dict[str, Any] = {}
    if job.request_type in REQUEST_TYPES:
        keys["request_type"] = REQUEST_TYPES[job.request_type]
    if job.HasField("queue_position"):
        keys["queue_position"] = job.queue_position
    if job.attempt:
        keys["attempt"] = job.attempt
    if job.labels:
        keys["labels"] = dict(sorted(job.labels.items()))
    if job.webhook:
        keys["webhook"] = job.webhook
    return keys


def accepted(job: job_pb.Job) -> dict[str, Any]:
    """The submit answer: id, status, created_at."""
    return {"id": job.id, "status": STATUS[job.status], "created_at": rfc3339(job.create_time)}
