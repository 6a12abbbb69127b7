"""Stability AI REST v2beta (`{base_url}/v2beta/stable-image/...`): generations and edits.

What is sent, and why:

- Every call is multipart/form-data, even with no file: Stability refuses other bodies.
  `Authorization: Bearer <key>` (one key per call, leased from the KeyPool, so a key set
  aside after a 429 or 401 rests while the others carry the load) and `Accept: image/*`:
  the image comes back as raw bytes, with `finish-reason` and `seed` headers. An
  `application/json` answer (`{"image": base64, "finish_reason", "seed"}`) is read too.
- Stability returns one image per call, so `n` images take `n` calls, at most
  fan_out.parallel_calls at once (one after another with max_concurrency set). With a
  fixed seed, call i uses seed + i: the same seed would
  give n copies of one image (seed 0 means "random" to Stability and stays 0).
- Generations: `POST /generate/{endpoint}` chosen by the bare model name:

      core, stable-image-core          -> /generate/core
      ultra, stable-image-ultra        -> /generate/ultra
      sd3                              -> /generate/sd3 (Stability's default SD3 model)
      sd3.5-large, sd3.5-medium, sd3-large-turbo, ... (any sd3*)
                                       -> /generate/sd3 with `model=<name>`

  Fields: prompt, negative_prompt, seed, aspect_ratio (the ratio of `size` nearest to
  one Stability offers; none for `auto`), output_format (png, jpeg, webp).
- Edits, by the edit `type` (Stability's edit endpoints have no model choice, so the
  model name is not sent):

      inpainting (or no type but a mask) -> /edit/inpaint: image, prompt, mask,
                                            negative_prompt, seed, output_format
      outpainting                        -> /edit/outpaint: image, left/right/up/down,
                                            prompt, seed, output_format
      background_removal                 -> /edit/remove-background: image, output_format

  The mask is converted: asyncgate (like OpenAI) marks the area to edit as transparent,
  Stability as white. So alpha 0 becomes white, anything else black, sent as a grayscale
  PNG built in memory. Outpainting margins centre the image in the requested `size`
  (each margin 0..2000); with no size (or `auto`) the image grows by half in each axis.
- `extra_params` go through as further text fields (e.g. style_preset, creativity,
  grow_mask), replacing a named field of the same name; never the image or the mask.
- Stability takes one image per edit, with sides >= 64 px and 4,096 to 9,437,184
  pixels; other inputs are refused here (400, param `image`) rather than paid for.

Answers: a 2xx image (raw, or base64 in JSON) becomes an ImageOutcome, its media type
taken from the bytes' signature; `finish-reason: CONTENT_FILTERED` is a 400
`content_filtered` (not retried: the same prompt will be filtered again); a 2xx that
is not an image is a retryable 502 `invalid_response`. Errors
`{"id", "name", "errors": ["field: message", ...]}` become a ProviderError with the
errors joined as message, `name` as type and code, and the field of the first error as
param. A 429 or 401 rests the key in the pool; a 403 `content_moderation` does not (it
is about the prompt, not the key). Timeouts and connection errors are left to the
chain runner, as is the per-attempt timeout. No API key ever appears in an error.
Calls go through the HTTP seam (providers.http): no redirect followed, the answer
read up to max_response_bytes.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import time
from collections.abc import Mapping, Sequence
from contextlib import ExitStack
from dataclasses import dataclass, replace
from typing import Any

import aiohttp
from PIL import UnidentifiedImageError

from grpc_server.config import ProviderSettings
from grpc_server.domain.jobs import RequestType
from grpc_server.providers.base import (
    EmbeddingCall,
    EmbeddingOutcome,
    ImageEditCall,
    ImageGenerationCall,
    ImageInput,
    ImageOutcome,
    ImageVariationCall,
    ProducedImage,
    ProviderError,
    parse_retry_after,
    retryable_status,
    unsupported,
)
from grpc_server.providers.fan_out import gather_bounded, parallel_calls
from grpc_server.providers.http import Answer, ProviderClient, Request
from grpc_server.providers.http_errors import body_prefix, invalid_response
from grpc_server.providers.media import sniff_image_type
from grpc_server.providers.multipart import add_file, text_form
from grpc_server.providers.stability_wire import (
    MAX_SEED,
    aspect_ratio,
    generation_endpoint,
    image_size_problem,
    outpaint_margins,
    parse_error_body,
    stability_mask,
)

DEFAULT_BASE_URL = "https://api.stability.ai"
GENERATE_PATH = "/v2beta/stable-image/generate/"
EDIT_PATH = "/v2beta/stable-image/edit/"

"""Calls in flight at once for one request of n images."""

_OUTPUT_FORMATS = {"png": "png", "jpeg": "jpeg", "jpg": "jpeg", "webp": "webp"}
_BACKGROUND_REMOVAL_FORMATS = frozenset({"png", "webp"})
_EDIT_ENDPOINTS = {
    "inpainting": "inpaint",
    "outpainting": "outpaint",
    "background_removal": "remove-background",
}
_RESERVED_FIELDS = frozenset({"image", "mask"})


@dataclass(frozen=True)
class _Request:
    """One Stability call: its path, text fields, and the files to attach."""

    path: str
    fields: Mapping[str, str]
    image: ImageInput | None = None
    mask_png: bytes | None = None

    def for_index(self, index: int) -> _Request:
        """The request for the index-th of n images: the seed moves on, unless random (0)."""
        seed = self.fields.get("seed")
        if index == 0 or seed is None or not seed.isdigit() or int(seed) == 0:
            return self
        fields = {**self.fields, "seed": str((int(seed) + index - 1) % MAX_SEED + 1)}
        return replace(self, fields=fields)


class StabilityProvider:
    name = "stability"

    def __init__(
        self, session: aiohttp.ClientSession, settings: ProviderSettings, name: str = "stability"
    ) -> None:
        self.name = name
        self._client = ProviderClient(name, session, settings, auth=_bearer, blames_key=_blames_the_key)
        self._base_url = (settings.base_url or DEFAULT_BASE_URL).rstrip("/")
        self._parallel = parallel_calls(settings.max_concurrency)

    def supports(self, request_type: RequestType) -> bool:
        return request_type in (RequestType.IMAGE_GENERATION, RequestType.IMAGE_EDIT)

    async def vary_image(self, call: ImageVariationCall) -> ImageOutcome:
        raise unsupported(self.name, RequestType.IMAGE_VARIATION)

    async def embed(self, call: EmbeddingCall) -> EmbeddingOutcome:
        raise unsupported(self.name, RequestType.EMBEDDING)

    async def generate_image(self, call: ImageGenerationCall) -> ImageOutcome:
        params = call.params
        endpoint, model_field = self._generation_endpoint(call.model)
        fields: dict[str, str] = {"prompt": params.prompt}
        if model_field is not None:
            fields["model"] = model_field
        _set(fields, "negative_prompt", params.negative_prompt)
        _set(fields, "seed", params.seed)
        _set(fields, "aspect_ratio", aspect_ratio(params.size))
        _set(fields, "output_format", _output_format(params.output_format))
        fields.update(_extra_fields(params.extra_params))
        request = _Request(GENERATE_PATH + endpoint, fields)
        return _outcome(await self._run(request, params.n))

    async def edit_image(self, call: ImageEditCall) -> ImageOutcome:
        request = await self._edit_request(call)
        return _outcome(await self._run(request, call.params.n))

    def _generation_endpoint(self, model: str) -> tuple[str, str | None]:
        found = generation_endpoint(model)
        if found is None:
            raise ProviderError(
                f"{self.name}: unknown model {model!r}: use core, ultra, sd3 or an sd3 variant "
                "such as sd3.5-large",
                status_code=400,
                type="invalid_request_error",
                code="model_not_found",
                param="model",
            )
        return found

    async def _edit_request(self, call: ImageEditCall) -> _Request:
        params = call.params
        kind = self._edit_kind(call)
        image = self._single_image(call.images)
        fields: dict[str, str] = {}
        mask_png: bytes | None = None
        if kind == "inpaint":
            fields["prompt"] = params.prompt
            _set(fields, "negative_prompt", params.negative_prompt)
            if call.mask is not None:
                mask_png = await self._mask(call.mask)
        elif kind == "outpaint":
            fields.update(self._margins(image, params.size))
            _set(fields, "prompt", params.prompt)
        if kind != "remove-background":
            _set(fields, "seed", params.seed)
        _set(fields, "output_format", self._edit_output_format(kind, params.output_format))
        fields.update(_extra_fields(params.extra_params))
        return _Request(EDIT_PATH + kind, fields, image, mask_png)

    async def _mask(self, mask: ImageInput) -> bytes:
        try:
            return await asyncio.to_thread(stability_mask, mask.path)
        except UnidentifiedImageError:
            raise self._refusal(f"mask {mask.filename!r} is not an image", "mask") from None

    def _edit_kind(self, call: ImageEditCall) -> str:
        edit_type = call.params.type
        if edit_type is None and call.mask is not None:
            return "inpaint"
        if edit_type in _EDIT_ENDPOINTS:
            return _EDIT_ENDPOINTS[edit_type]
        named = "no edit type" if edit_type is None else f"edit type {edit_type!r}"
        raise self._refusal(
            f"{named}: Stability edits need type inpainting, outpainting or background_removal "
            "(or a mask, for inpainting)",
            "type",
        )

    def _single_image(self, images: Sequence[ImageInput]) -> ImageInput:
        if len(images) != 1:
            raise self._refusal(f"Stability edits take exactly one image, got {len(images)}", "image")
        image = images[0]
        problem = image_size_problem(image.width, image.height)
        if problem is not None:
            raise self._refusal(
                f"image {image.filename!r} is {image.width}x{image.height}: {problem}", "image"
            )
        return image

    def _margins(self, image: ImageInput, size: str | None) -> dict[str, str]:
        margins = outpaint_margins(image.width, image.height, size)
        if not any(margins.values()):
            raise self._refusal(
                f"size {size} is not larger than the {image.width}x{image.height} image: nothing to outpaint",
                "size",
            )
        return {side: str(pixels) for side, pixels in margins.items()}

    def _edit_output_format(self, kind: str, requested: str | None) -> str | None:
        output_format = _output_format(requested)
        if kind == "remove-background" and output_format not in (None, *_BACKGROUND_REMOVAL_FORMATS):
            raise self._refusal("background removal produces png or webp, not jpeg", "output_format")
        return output_format

    def _refusal(self, message: str, param: str) -> ProviderError:
        """A request Stability would refuse: refused here, before a call is paid for."""
        return ProviderError(
            f"{self.name}: {message}", status_code=400, type="invalid_request_error", param=param
        )

    async def _run(self, request: _Request, n: int | None) -> list[ProducedImage]:
        """n calls (one image each), at most fan_out.parallel_calls at once (one by one with
        max_concurrency set); the first failure wins."""

        async def one(index: int) -> ProducedImage:
            return await self._call(request.for_index(index))

        return await gather_bounded(max(n or 1, 1), self._parallel, one)

    async def _call(self, request: _Request) -> ProducedImage:
        """One call through the seam: the image, or the error Stability answered."""
        with ExitStack() as files:
            http = Request(self._base_url + request.path, {"Accept": "image/*"}, data=_form(request, files))
            return await self._client.call(http, self._error, self._image)

    def _image(self, answer: Answer) -> ProducedImage:
        media = answer.media_type
        if media == "application/json":
            data, finish_reason = self._json_image(answer)
        elif media.startswith("image/"):
            data, finish_reason = answer.body, answer.headers.get("finish-reason")
        else:
            raise self._invalid(f"unexpected content type {media or '(none)'}")
        if finish_reason == "CONTENT_FILTERED":
            raise ProviderError(
                f"{self.name}: the image was withheld by Stability's content filter",
                status_code=400,
                type="content_filtered",
                code="content_filtered",
            )
        if finish_reason not in (None, "", "SUCCESS"):
            raise self._invalid(f"finish reason {finish_reason!r}")
        content_type = sniff_image_type(data)
        if content_type is None:
            raise self._invalid("the body is not an image")
        return ProducedImage(data=data, content_type=content_type)

    def _json_image(self, answer: Answer) -> tuple[bytes, str | None]:
        doc = answer.json_object()
        finish_reason = doc.get("finish_reason")
        finish_reason = finish_reason if isinstance(finish_reason, str) else None
        if finish_reason == "CONTENT_FILTERED":
            return b"", finish_reason
        image = doc.get("image")
        if not isinstance(image, str) or not image:
            raise self._invalid("no `image` in the answer")
        try:
            return base64.b64decode(image, validate=True), finish_reason
        except binascii.Error:
            raise self._invalid("`image` is not valid base64") from None

    def _invalid(self, problem: str) -> ProviderError:
        return invalid_response(self.name, problem)

    def _error(self, answer: Answer) -> ProviderError:
        message, name, param = parse_error_body(answer.body)
        redact = self._client.redact
        return ProviderError(
            redact(message or body_prefix(answer.body, answer.status)),
            status_code=answer.status,
            type=redact(name),
            code=redact(name),
            param=redact(param),
            retryable=retryable_status(answer.status),
            retry_after=parse_retry_after(answer.headers.get("Retry-After")),
        )


def _blames_the_key(error: ProviderError) -> bool:
    """Whether the key pool should see this error. A 403 content_moderation is about the
    prompt or image, not the key: resting the key for it would punish the other callers."""
    return not (error.status_code == 403 and error.code == "content_moderation")


def _form(request: _Request, files: ExitStack) -> aiohttp.FormData:
    # Multipart even with no file part: Stability refuses url-encoded bodies.
    form = text_form(request.fields)
    if request.image is not None:
        add_file(form, files, "image", request.image)
    if request.mask_png is not None:
        form.add_field("mask", request.mask_png, filename="mask.png", content_type="image/png")
    return form


def _outcome(images: list[ProducedImage]) -> ImageOutcome:
    first = images[0]
    output_format = first.content_type.removeprefix("image/") if first.content_type else None
    return ImageOutcome(created=int(time.time()), images=images, output_format=output_format)


def _set(fields: dict[str, str], name: str, value: object) -> None:
    if value is not None and value != "":
        fields[name] = str(value)


def _output_format(requested: str | None) -> str | None:
    return _OUTPUT_FORMATS.get(requested.strip().lower()) if requested else None


def _extra_fields(extra: Mapping[str, Any]) -> dict[str, str]:
    return {name: _text(value) for name, value in extra.items() if name not in _RESERVED_FIELDS}


def _text(value: object) -> str:
    """A form value: JSON's spelling for booleans (`true`), str() for the rest."""
    return ("true" if value else "false") if isinstance(value, bool) else str(value)


def _bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}
