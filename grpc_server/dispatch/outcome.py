"""Turn what a provider chain produced into what the store keeps."""

from __future__ import annotations

import math
import struct
import uuid

from grpc_server.domain.jobs import (
    VECTORS_CONTENT_TYPE,
    EmbeddingParams,
    EmbeddingResult,
    ExtraFields,
    ImageResult,
    Job,
    JobError,
    OutputBlob,
    ResultImage,
    split_model,
)
from grpc_server.providers.base import EmbeddingOutcome, ImageOutcome, ProviderError


def _extra_fields(job: Job, model: str) -> ExtraFields:
    provider, name = split_model(model) or ("", model)
    return ExtraFields(provider=provider, model_requested=name, request_type=job.request_type.value)


def image_result(
    job: Job, outcome: ImageOutcome, served_by: str, response_format: str
) -> tuple[ImageResult, list[OutputBlob]]:
    """The neutral result (bytes referenced by output index) and the bytes to store."""
    images: list[ResultImage] = []
    outputs: list[OutputBlob] = []
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
            outputs.append(OutputBlob(produced.data, produced.content_type))
        else:
            images.append(ResultImage(url=produced.url, revised_prompt=produced.revised_prompt))
    result = ImageResult(
        created=outcome.created,
        images=tuple(images),
        response_format=response_format,
        extra_fields=_extra_fields(job, served_by),
        usage=outcome.usage,
        background=outcome.background,
        output_format=outcome.output_format,
        quality=outcome.quality,
        size=outcome.size,
    )
    return result, outputs


def embedding_result(
    job: Job, params: EmbeddingParams, outcome: EmbeddingOutcome, served_by: str
) -> tuple[EmbeddingResult, list[OutputBlob]]:
    """The neutral result and the vectors as one little-endian float32 blob.

    Vectors longer than the `dimensions` asked for (a provider that ignores it)
    are shortened and L2-normalised again, as OpenAI's own shortening does.
    """
    vectors = [list(v) for v in outcome.vectors]
    if params.dimensions is not None:
        vectors = [_shorten(v, params.dimensions) for v in vectors]
    dimensions = len(vectors[0]) if vectors else 0
    data = struct.pack(f"<{len(vectors) * dimensions}f", *(x for v in vectors for x in v))
    result = EmbeddingResult(
        model=outcome.model,
        count=len(vectors),
        dimensions=dimensions,
        encoding_format=params.encoding_format,
        extra_fields=_extra_fields(job, served_by),
        prompt_tokens=outcome.prompt_tokens,
        total_tokens=outcome.total_tokens,
    )
    return result, [OutputBlob(data, VECTORS_CONTENT_TYPE)]


def check_vectors(outcome: EmbeddingOutcome, inputs: int) -> None:
    """One vector per input, all of one non-zero length; otherwise the answer is bad (retryable)."""
    lengths = {len(v) for v in outcome.vectors}
    if len(outcome.vectors) != inputs or len(lengths) != 1 or 0 in lengths:
        raise ProviderError(
            f"provider returned {len(outcome.vectors)} vectors for {inputs} inputs"
            f" (lengths {sorted(lengths)})",
            status_code=502,
            type="invalid_response",
            retryable=True,
        )


def _shorten(vector: list[float], dimensions: int) -> list[float]:
    if len(vector) <= dimensions:
        return vector
    head = vector[:dimensions]
    norm = math.sqrt(sum(x * x for x in head))
    return [x / norm for x in head] if norm else head


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
