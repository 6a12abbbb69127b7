"""A terminal job's envelope as its webhook event carries it, rendered by the server.

The same keys, in the same order, as the bridge's envelope of the job paths (rest_bridge/
envelope.py): the gateway's keys, then asyncgate's own. One difference: a completed job's
`result` is never inlined (its image URLs and vectors are made by the bridge, with access
tokens the event must not carry); `"result_omitted": true` says to fetch it from the job's
result path, as a result larger than max_result_bytes would.
"""

from __future__ import annotations

from typing import Any

from grpc_server.domain.jobs import Job, JobError, JobStatus
from grpc_server.webhooks.events import rfc3339


def error_object(error: JobError) -> dict[str, Any]:
    """The error object of a failed or cancelled job, as the bridge renders it."""
    inner: dict[str, Any] = {"type": error.type, "message": error.message}
    if error.code:
        inner["code"] = error.code
    if error.param:
        inner["param"] = error.param
    inner["event_id"] = error.event_id
    extra = error.extra_fields
    return {
        "event_id": error.event_id,
        "type": error.type,
        "is_bifrost_error": error.is_gateway_error,
        "status_code": error.status_code,
        "error": inner,
        "extra_fields": {
            "provider": extra.provider,
            "model_requested": extra.model_requested,
            "request_type": extra.request_type,
        },
    }


def job_envelope(job: Job) -> dict[str, Any]:
    """The envelope of a job that has ended (completed, failed or cancelled)."""
    if not job.is_terminal:
        raise ValueError(f"job {job.id} has not ended: {job.status}")
    body: dict[str, Any] = {"id": job.id, "status": job.status.value}
    if job.expires_at is not None:
        body["expires_at"] = rfc3339(job.expires_at)
    body["created_at"] = rfc3339(job.created_at)
    if job.completed_at is not None:
        body["completed_at"] = rfc3339(job.completed_at)
    if job.status_code:
        body["status_code"] = job.status_code
    if job.status == JobStatus.COMPLETED and job.result is not None:
        body["result_omitted"] = True
    if job.status != JobStatus.COMPLETED and job.error is not None:
        body["error"] = error_object(job.error)
    body["request_type"] = job.request_type.value
    if job.attempts:
        body["attempt"] = job.attempts
    if job.labels:
        body["labels"] = dict(sorted(job.labels.items()))
    if job.webhook:
        body["webhook"] = job.webhook
    return body
