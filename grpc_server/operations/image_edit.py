"""Image edits: one to 16 images (and an optional mask) changed as a prompt says."""

from __future__ import annotations

from collections.abc import Sequence
from typing import ClassVar

from asyncgate.v1 import image_common_pb2 as common_pb
from asyncgate.v1 import image_edit_pb2 as edit_pb
from asyncgate.v1 import job_pb2 as job_pb
from grpc_server.config import ServerConfig
from grpc_server.domain import validation as rules
from grpc_server.domain.errors import InvalidArgument
from grpc_server.domain.jobs import FileRole, ImageEditParams, ImageResult, Job, OutputBlob, RequestType
from grpc_server.images import ImageInfo, check_mask
from grpc_server.operations.base import Operation, RunInputs, SubmitShape
from grpc_server.operations.image_results import keep_images
from grpc_server.operations.proto_fields import (
    enum_to_str,
    form_extra_params,
    optional,
    strip_models,
)
from grpc_server.providers.base import ImageEditCall, ImageOutcome, Provider


def validate_image_edit(
    params: ImageEditParams,
    *,
    image_count: int,
    has_mask: bool,
    stream: bool,
    max_images: int,
    max_fallbacks: int,
) -> None:
    """Refuse the first rule an image edit breaks; return quietly when it breaks none.

    `has_mask` is accepted so callers pass the whole shape of the request; the mask's own
    rules (PNG, same size as the first image) need its bytes: ImageEdit.check_images.
    """
    if stream:
        raise InvalidArgument("stream is not supported for async image edits", "stream")
    rules.check_model("model", params.model, required=True)
    if not params.prompt.strip() and params.type != rules.PROMPTLESS_EDIT_TYPE:
        raise InvalidArgument("prompt is required", "prompt")
    if image_count < 1:
        raise InvalidArgument("at least one image is required", "image")
    if image_count > max_images:
        raise InvalidArgument(f"too many images: {image_count} (at most {max_images})", "image")

    rules.check_choice("type", params.type, rules.EDIT_TYPES)
    rules.check_choice("size", params.size, rules.IMAGE_SIZES)
    rules.check_choice("response_format", params.response_format, rules.RESPONSE_FORMATS)
    rules.check_choice("background", params.background, rules.BACKGROUNDS)
    rules.check_choice("input_fidelity", params.input_fidelity, rules.INPUT_FIDELITIES)
    rules.check_choice("quality", params.quality, rules.QUALITIES)
    rules.check_choice("output_format", params.output_format, rules.OUTPUT_FORMATS)

    rules.check_image_counts(params)
    rules.check_fallbacks(params.fallbacks, max_fallbacks)


def image_edit_params(request: edit_pb.ImageEditRequest) -> ImageEditParams:
    return ImageEditParams(
        model=request.model.strip(),
        prompt=request.prompt,
        type=enum_to_str(edit_pb.EditType, request.type, "type"),
        n=optional(request, "n"),
        size=enum_to_str(common_pb.ImageSize, request.size, "size"),
        response_format=enum_to_str(common_pb.ResponseFormat, request.response_format, "response_format")
        or "url",
        background=enum_to_str(common_pb.Background, request.background, "background"),
        input_fidelity=enum_to_str(edit_pb.InputFidelity, request.input_fidelity, "input_fidelity"),
        partial_images=optional(request, "partial_images"),
        quality=enum_to_str(common_pb.Quality, request.quality, "quality"),
        output_format=enum_to_str(common_pb.OutputFormat, request.output_format, "output_format"),
        output_compression=optional(request, "output_compression"),
        num_inference_steps=optional(request, "num_inference_steps"),
        seed=optional(request, "seed"),
        negative_prompt=request.negative_prompt or None,
        user=request.user or None,
        fallbacks=strip_models(request.fallbacks),
        extra_params=form_extra_params(request.extra_params),
    )


class ImageEdit(Operation[ImageEditParams, ImageOutcome]):
    request_type = RequestType.IMAGE_EDIT
    proto_request_type = job_pb.REQUEST_TYPE_IMAGE_EDIT
    file_roles: ClassVar[frozenset[FileRole]] = frozenset({"image", "mask"})

    def params_from_proto(self, request: edit_pb.ImageEditRequest) -> ImageEditParams:
        return image_edit_params(request)

    def streams(self, request: edit_pb.ImageEditRequest) -> bool:
        return request.stream

    def validate(self, params: ImageEditParams, shape: SubmitShape, config: ServerConfig) -> None:
        validate_image_edit(
            params,
            image_count=shape.images,
            has_mask=shape.has_mask,
            stream=shape.stream,
            max_images=config.max_images,
            max_fallbacks=config.max_fallbacks,
        )

    def check_images(self, images: Sequence[ImageInfo], mask: ImageInfo | None) -> None:
        if mask is not None:
            check_mask(mask, images[0])

    async def call(
        self, provider: Provider, model: str, params: ImageEditParams, inputs: RunInputs
    ) -> ImageOutcome:
        return await provider.edit_image(ImageEditCall(model, params, inputs.images, inputs.mask))

    def keep(
        self, job: Job, params: ImageEditParams, outcome: ImageOutcome, served_by: str
    ) -> tuple[ImageResult, list[OutputBlob]]:
        return keep_images(job, outcome, served_by, params.response_format)
