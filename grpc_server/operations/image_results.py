"""What the image operations (edit, generation, variation) keep of a provider's answer."""

from __future__ import annotations

from grpc_server.domain.jobs import ImageResult, Job, OutputBlob, ResultImage, served_extra_fields
from grpc_server.providers.base import ImageOutcome


def keep_images(
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
        extra_fields=served_extra_fields(job, served_by),
        usage=outcome.usage,
        background=outcome.background,
        output_format=outcome.output_format,
        quality=outcome.quality,
        size=outcome.size,
    )
    return result, outputs
