"""Image generations: images from a prompt."""

from __future__ import annotations

from asyncgate.v1 import image_common_pb2 as common_pb
from asyncgate.v1 import image_generation_pb2 as gen_pb
from asyncgate.v1 import job_pb2 as job_pb
from grpc_server.config import ServerConfig
from grpc_server.domain import validation as rules
from grpc_server.domain.errors import InvalidArgument
from grpc_server.domain.jobs import ImageGenerationParams, ImageResult, Job, OutputBlob, RequestType
from grpc_server.operations.base import Operation, RunInputs, SubmitShape
from grpc_server.operations.image_results import keep_images
from grpc_server.operations.proto_fields import (
    enum_to_str,
    optional,
    strip_models,
    struct_params,
)
from grpc_server.providers.base import ImageGenerationCall, ImageOutcome, Provider


def validate_image_generation(params: ImageGenerationParams, *, stream: bool, max_fallbacks: int) -> None:
    """Refuse the first rule an image generation breaks."""
    if stream:
        raise InvalidArgument("stream is not supported for async image generations", "stream")
    rules.check_model("model", params.model, required=True)
    if not params.prompt.strip():
        raise InvalidArgument("prompt is required", "prompt")
    rules.check_choice("size", params.size, rules.GENERATION_SIZES)
    rules.check_choice("quality", params.quality, rules.GENERATION_QUALITIES)
    rules.check_choice("style", params.style, rules.STYLES)
    rules.check_choice("response_format", params.response_format, rules.RESPONSE_FORMATS)
    rules.check_choice("background", params.background, rules.BACKGROUNDS)
    rules.check_choice("moderation", params.moderation, rules.MODERATIONS)
    rules.check_choice("output_format", params.output_format, rules.OUTPUT_FORMATS)
    rules.check_image_counts(params)
    rules.check_fallbacks(params.fallbacks, max_fallbacks)


def image_generation_params(request: gen_pb.ImageGenerationRequest) -> ImageGenerationParams:
    return ImageGenerationParams(
        model=request.model.strip(),
        prompt=request.prompt,
        n=optional(request, "n"),
        size=enum_to_str(common_pb.ImageSize, request.size, "size"),
        quality=enum_to_str(common_pb.Quality, request.quality, "quality"),
        style=enum_to_str(gen_pb.Style, request.style, "style"),
        response_format=enum_to_str(common_pb.ResponseFormat, request.response_format, "response_format")
        or "url",
        background=enum_to_str(common_pb.Background, request.background, "background"),
        moderation=enum_to_str(gen_pb.Moderation, request.moderation, "moderation"),
        output_format=enum_to_str(common_pb.OutputFormat, request.output_format, "output_format"),
        output_compression=optional(request, "output_compression"),
        partial_images=optional(request, "partial_images"),
        seed=optional(request, "seed"),
        negative_prompt=request.negative_prompt or None,
        num_inference_steps=optional(request, "num_inference_steps"),
        user=request.user or None,
        fallbacks=strip_models(request.fallbacks),
        extra_params=struct_params(request.extra_params),
    )


class ImageGeneration(Operation[ImageGenerationParams, ImageOutcome]):
    request_type = RequestType.IMAGE_GENERATION
    proto_request_type = job_pb.REQUEST_TYPE_IMAGE_GENERATION

    def params_from_proto(self, request: gen_pb.ImageGenerationRequest) -> ImageGenerationParams:
        return image_generation_params(request)

    def streams(self, request: gen_pb.ImageGenerationRequest) -> bool:
        return request.stream

    def validate(self, params: ImageGenerationParams, shape: SubmitShape, config: ServerConfig) -> None:
        validate_image_generation(params, stream=shape.stream, max_fallbacks=config.max_fallbacks)

    async def call(
        self, provider: Provider, model: str, params: ImageGenerationParams, inputs: RunInputs
    ) -> ImageOutcome:
        return await provider.generate_image(ImageGenerationCall(model, params))

    def keep(
        self, job: Job, params: ImageGenerationParams, outcome: ImageOutcome, served_by: str
    ) -> tuple[ImageResult, list[OutputBlob]]:
        return keep_images(job, outcome, served_by, params.response_format)
