"""The error objects a failed job keeps: the provider's (classified), or the gateway's own."""

from __future__ import annotations

import uuid

from grpc_server.domain.jobs import Job, JobError, served_extra_fields
from grpc_server.providers.base import ProviderError


def job_error(job: Job, error: ProviderError, model: str | None = None) -> JobError:
    """The error object a failed job keeps (docs/rest-api.md §6)."""
    return JobError(
        status_code=error.status_code or 500,
        message=error.message,
        type=error.type or ("server_error" if error.is_gateway_error else "api_error"),
        code=error.code,
        param=error.param,
        event_id=str(uuid.uuid4()),
        is_gateway_error=error.is_gateway_error,
        extra_fields=served_extra_fields(job, model or job.params.model),
    )


def abandoned_error(max_attempts: int) -> JobError:
    """For a job whose workers kept dying: not the provider's fault, so a gateway error."""
    return JobError(
        status_code=500,
        message=f"the job was abandoned by its worker {max_attempts} times and will not be retried",
        type="server_error",
        code="attempts_exhausted",
        event_id=str(uuid.uuid4()),
        is_gateway_error=True,
    )


def deadline_error(job: Job, seconds: float) -> JobError:
    """For a job whose run outlasted dispatcher.job_deadline_seconds, over every attempt and fallback."""
    return JobError(
        status_code=504,
        message=f"the job did not finish within its deadline of {seconds:g}s",
        type="timeout",
        code="job_deadline_exceeded",
        event_id=str(uuid.uuid4()),
        is_gateway_error=True,
        extra_fields=served_extra_fields(job, job.params.model),
    )
