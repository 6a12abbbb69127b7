"""Image variations: new images like the one given (OpenAI's /images/variations)."""

from __future__ import annotations

from typing import ClassVar

from asyncgate.v1 import image_common_pb2 as common_pb
from asyncgate.v1 import image_variation_pb2 as var_pb
from asyncgate.v1 import job_pb2 as job_pb
from grpc_server.config import ServerConfig
from grpc_server.domain import validation as rules
from grpc_server.domain.errors import InvalidArgument
from grpc_server.domain.jobs import FileRole, ImageResult, ImageVariationParams, Job, OutputBlob, RequestType
from grpc_server.operations.base import Operation, RunInputs, SubmitShape
from grpc_server.operations.image_results import keep_images
from grpc_server.operations.proto_fields import (
    enum_to_str,
    form_extra_params,
    optional,
    strip_models,
)
from grpc_server.providers.base import ImageOutcome, ImageVariationCall, Provider


def validate_image_variation(params: ImageVariationParams, *, image_count: int, max_fallbacks: int) -> None:
    """Refuse the first rule an image variation breaks."""
    rules.check_model("model", params.model, required=True)
    if image_count != 1:
        raise InvalidArgument(f"exactly one image is required (got {image_count})", "image")
    rules.check_range("n", params.n, rules.N_RANGE)
    rules.check_choice("size", params.size, rules.VARIATION_SIZES)
    rules.check_choice("response_format", params.response_format, rules.RESPONSE_FORMATS)
    rules.check_fallbacks(params.fallbacks, max_fallbacks)


def image_variation_params(request: var_pb.ImageVariationRequest) -> ImageVariationParams:
    return ImageVariationParams(
        model=request.model.strip(),
        n=optional(request, "n"),
        size=enum_to_str(common_pb.ImageSize, request.size, "size"),
        response_format=enum_to_str(common_pb.ResponseFormat, request.response_format, "response_format")
        or "url",
        user=request.user or None,
        fallbacks=strip_models(request.fallbacks),
        extra_params=form_extra_params(request.extra_params),
    )


class ImageVariation(Operation[ImageVariationParams, ImageOutcome]):
    request_type = RequestType.IMAGE_VARIATION
    proto_request_type = job_pb.REQUEST_TYPE_IMAGE_VARIATION
    file_roles: ClassVar[frozenset[FileRole]] = frozenset({"image"})

    def params_from_proto(self, request: var_pb.ImageVariationRequest) -> ImageVariationParams:
        return image_variation_params(request)

    def validate(self, params: ImageVariationParams, shape: SubmitShape, config: ServerConfig) -> None:
        validate_image_variation(params, image_count=shape.images, max_fallbacks=config.max_fallbacks)

    async def call(
        self, provider: Provider, model: str, params: ImageVariationParams, inputs: RunInputs
    ) -> ImageOutcome:
        return await provider.vary_image(ImageVariationCall(model, params, inputs.images[0]))

    def keep(
        self, job: Job, params: ImageVariationParams, outcome: ImageOutcome, served_by: str
    ) -> tuple[ImageResult, list[OutputBlob]]:
        return keep_images(job, outcome, served_by, params.response_format)
