"""Turn what a provider chain produced into what the store keeps."""

from __future__ import annotations

import uuid

from grpc_server.domain.jobs import (
    ExtraFields,
    ImageResult,
    Job,
    JobError,
    OutputImage,
    ResultImage,
    split_model,
)
from grpc_server.providers.base import ImageOutcome, ProviderError


def _extra_fields(job: Job, model: str) -> ExtraFields:
    provider, name = split_model(model) or ("", model)
    return ExtraFields(provider=provider, model_requested=name, request_type=job.request_type.value)


def image_result(job: Job, outcome: ImageOutcome, served_by: str) -> tuple[ImageResult, list[OutputImage]]:
    """The neutral result (bytes referenced by output index) and the bytes to store."""
    images: list[ResultImage] = []
    outputs: list[OutputImage] = []
    for produced in outcome.images:
        if produced.data is not None:
            images.append(
                ResultImage(
                    stored_index=len(outputs),
                    content_type=produced.content_type,
                    size_bytes=len(produced.data),
                    revised_prompt=produced.revised_prompt,
                )
            )
            outputs.append(OutputImage(produced.data, produced.content_type))
        else:
            images.append(ResultImage(url=produced.url, revised_prompt=produced.revised_prompt))
    result = ImageResult(
        created=outcome.created,
        images=tuple(images),
        response_format=job.params.response_format,
        extra_fields=_extra_fields(job, served_by),
        usage=outcome.usage,
        background=outcome.background,
        output_format=outcome.output_format,
        quality=outcome.quality,
        size=outcome.size,
    )
    return result, outputs


def job_error(job: Job, error: ProviderError, model: str | None = None) -> JobError:
    """The error object a failed job keeps (CONTRACT section 6)."""
    return JobError(
        status_code=error.status_code or 500,
        message=error.message,
        type=error.type or ("server_error" if error.is_gateway_error else "api_error"),
        code=error.code,
        param=error.param,
        event_id=str(uuid.uuid4()),
        is_gateway_error=error.is_gateway_error,
        extra_fields=_extra_fields(job, model or job.params.model),
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
