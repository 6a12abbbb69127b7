"""Google's Gemini API (`generativelanguage.googleapis.com/v1beta`): image generation, edits, embeddings.

What is sent, and why:

- The key goes in the `x-goog-api-key` header, never in the `?key=` query: URLs end
  up in logs and exception texts. Keys come from a KeyPool, so a key answered 429
  (or 403) sits out while the others carry the load; a key Gemini calls
  API_KEY_INVALID (a 400) is set aside as a revoked one would be.
- Generations with Gemini image models: `POST {base}/models/{model}:generateContent`
  with the prompt as one text part and `generationConfig.responseModalities` =
  TEXT + IMAGE (image models answer text alongside). `seed` becomes
  `generationConfig.seed`; `size` WxH becomes `imageConfig.aspectRatio`, the supported
  ratio nearest to W/H (see media.nearest_aspect_ratio): Gemini takes 1:1, 2:3, 3:2,
  3:4, 4:3, 4:5, 5:4, 9:16, 16:9, 21:9. Gemini picks the pixel size itself; `size`
  "auto" or absent sends no ratio. quality, style, background, moderation,
  output_format, output_compression and negative_prompt have no Gemini field and are
  not sent.
- `n` > 1 with a Gemini image model (generations and edits) is n calls of the same
  body, at most MAX_PARALLEL at once: image models refuse `candidateCount` > 1
  ("Multiple candidates is not enabled for models/..."), so it is never sent. Their
  images are merged in call order and their usage summed; the first failure fails
  the request. A set seed goes to every call as it is (the edit body, which inlines
  every input image, is built once), so with a fixed seed the n images may come out
  alike.
- Generations with `imagen-*` models: `POST {base}/models/{model}:predict` with
  `{"instances": [{"prompt"}], "parameters": {"sampleCount": n, "aspectRatio",
  "outputOptions": {"mimeType"}}}`; Imagen takes 1:1, 3:4, 4:3, 9:16, 16:9, and png or
  jpeg (another output_format is not sent: Imagen answers png).
- Edits: generateContent with the prompt text part, then every input image as an
  `inlineData` part (base64 of the file), then, when a mask is given, a text part
  saying how to read it followed by the mask as another image part. The edit type
  has no Gemini field: `background_removal` with an empty prompt sends
  BACKGROUND_REMOVAL_PROMPT instead; `inpainting` and `outpainting` send the prompt
  as given (the mask hint covers inpainting). `size` maps to an aspect ratio as above.
  Imagen models cannot edit through this API (refused before any call).
- Embeddings: `POST {base}/models/{model}:batchEmbedContents`, one request per text,
  each naming `models/{model}` (it must match the URL) and `outputDimensionality`
  when `dimensions` is set. Gemini embeds text only: token-id inputs are refused
  before any call. Gemini reports no token counts here, so they are 0.
- `extra_params` pass through: into `generationConfig` for generateContent (except the
  request-level fields safetySettings, systemInstruction, tools, toolConfig,
  cachedContent, which go beside it; a dict merges into the one already set, e.g.
  `imageConfig.imageSize`), into `parameters` for predict, into each request for
  embeddings (taskType, title). `responseModalities`, `contents`, `model`, `content`
  and `candidateCount` cannot be set. Edit extras arrive as strings: one that looks like a
  JSON object or array is decoded; Gemini's proto JSON takes numbers as strings.

Answers: every image part of every candidate (camelCase `inlineData`/`mimeType` or
snake_case `inline_data`/`mime_type`; "thought" parts skipped) becomes a
ProducedImage, with the candidate's text as its revised_prompt; `usageMetadata`
becomes usage (input/output/total tokens). An answer without any image (a blocked
prompt, a SAFETY finish, a text-only reply) is a 400 whose code is the block or
finish reason, not retried. A 2xx that is not Gemini's shape is a retryable 502
`invalid_response`. Errors `{"error": {"code", "message", "status", "details"}}`
become a ProviderError: type = the status lower-cased, code = the ErrorInfo reason or
the status, param = the first BadRequest field violation, retry_after = the
RetryInfo `retryDelay` or else the Retry-After header. Timeouts and connection
errors are left to the chain runner. No key ever appears in an error.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import json
import re
import time
import uuid
from collections.abc import Mapping
from typing import Any

import aiohttp

from grpc_server.config import ProviderSettings
from grpc_server.domain.jobs import EmbeddingParams, RequestType
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
from grpc_server.providers.fan_out import gather_bounded
from grpc_server.providers.http_errors import (
    Malformed,
    Redactor,
    body_prefix,
    invalid_response,
    json_object,
    missing_key,
)
from grpc_server.providers.keys import AUTH_ASIDE, KeyPool
from grpc_server.providers.media import nearest_aspect_ratio, sniff_image_type

DEFAULT_BASE_URL = "https://generativelanguage.googleapis.com/v1beta"

GEMINI_ASPECT_RATIOS = ("1:1", "2:3", "3:2", "3:4", "4:3", "4:5", "5:4", "9:16", "16:9", "21:9")
IMAGEN_ASPECT_RATIOS = ("1:1", "3:4", "4:3", "9:16", "16:9")
IMAGEN_PREFIX = "imagen-"

MAX_PARALLEL = 4
"""generateContent calls in flight at once for one request of n images."""

BACKGROUND_REMOVAL_PROMPT = "Remove the background, keep the subject, transparent background"
MASK_HINT = (
    "The next image is a mask for the first image: edit only where the mask is transparent "
    "and keep everything else unchanged."
)

_IMAGEN_MIME_TYPES = {"png": "image/png", "jpeg": "image/jpeg", "jpg": "image/jpeg"}
_FORMATS = {"image/png": "png", "image/jpeg": "jpeg", "image/webp": "webp"}
# The canonical google.rpc status of an HTTP status, for error bodies that name none.
_STATUS_NAMES = {
    400: "INVALID_ARGUMENT",
    401: "UNAUTHENTICATED",
    403: "PERMISSION_DENIED",
    404: "NOT_FOUND",
    409: "ABORTED",
    429: "RESOURCE_EXHAUSTED",
    499: "CANCELLED",
    500: "INTERNAL",
    501: "NOT_IMPLEMENTED",
    503: "UNAVAILABLE",
    504: "DEADLINE_EXCEEDED",
}
_ERROR_INFO = "type.googleapis.com/google.rpc.ErrorInfo"
_RETRY_INFO = "type.googleapis.com/google.rpc.RetryInfo"
_BAD_REQUEST = "type.googleapis.com/google.rpc.BadRequest"
_INVALID_KEY_REASON = "API_KEY_INVALID"
# Reasons that say nothing about why no image came.
_UNINFORMATIVE_FINISH = frozenset({"", "STOP", "FINISH_REASON_UNSPECIFIED"})
# GenerateContentRequest fields that live beside generationConfig, not inside it.
_REQUEST_FIELDS = frozenset({"safetySettings", "systemInstruction", "tools", "toolConfig", "cachedContent"})
# candidateCount too: image models refuse more than one (n is n calls instead).
_RESERVED_EXTRAS = frozenset(
    {"responseModalities", "contents", "model", "content", "instances", "candidateCount"}
)

_DURATION = re.compile(r"\s*(\d+(?:\.\d+)?)s\s*")
_MODEL = re.compile(r"[A-Za-z0-9._-]+")
_TEXT_PREFIX = 200


def is_imagen(model: str) -> bool:
    return model.removeprefix("models/").startswith(IMAGEN_PREFIX)


class GeminiProvider:
    """Gemini image generation (Gemini image models and Imagen), edits and embeddings."""

    name = "gemini"

    def __init__(
        self, session: aiohttp.ClientSession, settings: ProviderSettings, name: str = "gemini"
    ) -> None:
        self.name = name
        self._session = session
        self._keys = KeyPool(settings.keys)
        self._redact = Redactor(settings.keys)
        self._base_url = (settings.base_url or DEFAULT_BASE_URL).rstrip("/")

    def supports(self, request_type: RequestType) -> bool:
        return request_type in (RequestType.IMAGE_EDIT, RequestType.IMAGE_GENERATION, RequestType.EMBEDDING)

    async def generate_image(self, call: ImageGenerationCall) -> ImageOutcome:
        resource = self._resource(call.model)
        if is_imagen(call.model):
            doc = await self._post(resource, "predict", _json_bytes(_imagen_body(call)))
            return self._imagen_outcome(doc)
        return await self._generate_content(resource, _json_bytes(_generation_body(call)), call.params.n)

    async def edit_image(self, call: ImageEditCall) -> ImageOutcome:
        resource = self._resource(call.model)
        if is_imagen(call.model):
            raise self._gateway_error(
                f"{call.model} cannot edit images through the Gemini API; use a Gemini image model",
                status=400,
                code="unsupported_model",
                param="model",
            )
        self._check_key()
        # Reading and base64-encoding up to 16 large files would stall the event loop.
        body = await asyncio.to_thread(_edit_body, call)
        return await self._generate_content(resource, body, call.params.n)

    async def vary_image(self, call: ImageVariationCall) -> ImageOutcome:
        raise unsupported(self.name, RequestType.IMAGE_VARIATION)

    async def embed(self, call: EmbeddingCall) -> EmbeddingOutcome:
        resource = self._resource(call.model)
        texts = self._texts(call.params)
        body = _json_bytes(_embed_body(resource, texts, call))
        doc = await self._post(resource, "batchEmbedContents", body)
        return self._embedding_outcome(doc, call.model, len(texts))

    async def _generate_content(self, resource: str, body: bytes, n: int | None) -> ImageOutcome:
        """n images from a Gemini image model: n calls of one body (see the module docstring)."""

        async def one(index: int) -> ImageOutcome:
            return self._content_outcome(await self._post(resource, "generateContent", body))

        return _merged(await gather_bounded(max(n or 1, 1), MAX_PARALLEL, one))

    # Requests

    def _resource(self, model: str) -> str:
        """`models/{model}` (or a `tunedModels/...` name as given), refused when not a plain name."""
        collection, sep, name = model.partition("/")
        if not sep:
            collection, name = "models", model
        if collection not in ("models", "tunedModels") or not _MODEL.fullmatch(name):
            raise self._gateway_error(
                f"invalid Gemini model name {model!r}", status=400, code="invalid_model", param="model"
            )
        return f"{collection}/{name}"

    def _texts(self, params: EmbeddingParams) -> list[str]:
        items = params.inputs()
        if not all(isinstance(item, str) for item in items):
            raise ProviderError(
                message=f"{self.name}: Gemini embeds text only; token-id inputs are not supported",
                status_code=400,
                type="invalid_request_error",
                code="unsupported_input",
                param="input",
                retryable=False,
                is_gateway_error=True,
            )
        return [item for item in items if isinstance(item, str)]

    async def _post(self, resource: str, method: str, body: bytes) -> dict[str, Any]:
        """POST one JSON body with a leased key; the 2xx JSON object, or a classified ProviderError."""
        self._check_key()
        url = f"{self._base_url}/{resource}:{method}"
        with self._keys.lease() as key:
            assert key is not None  # _check_key: the pool is not empty
            headers = {
                "x-goog-api-key": key,
                "Content-Type": "application/json",
                "Accept": "application/json",
            }
            async with self._session.post(url, data=body, headers=headers) as response:
                raw = await response.read()
                if not 200 <= response.status < 300:
                    error = self._error(response.status, response.headers, raw)
                    if error.code == _INVALID_KEY_REASON:
                        # Gemini answers a revoked key with a 400, which the pool does not watch.
                        self._keys.set_aside(key, AUTH_ASIDE)
                    raise error
        try:
            return json_object(raw)
        except Malformed as problem:
            raise self._invalid(str(problem)) from None

    def _check_key(self) -> None:
        if not len(self._keys):
            raise missing_key(self.name, "set `api_key` for the provider or GEMINI_API_KEY")

    # Answers

    def _content_outcome(self, doc: dict[str, Any]) -> ImageOutcome:
        candidates = doc.get("candidates", [])
        if not isinstance(candidates, list):
            raise self._invalid("`candidates` is not a list")
        images: list[ProducedImage] = []
        for index, candidate in enumerate(candidates):
            images.extend(self._candidate_images(candidate, index))
        if not images:
            raise self._no_image(doc, candidates)
        return ImageOutcome(
            created=int(time.time()),
            images=images,
            usage=_usage(doc.get("usageMetadata")),
            output_format=_FORMATS.get(images[0].content_type),
        )

    def _candidate_images(self, candidate: object, index: int) -> list[ProducedImage]:
        if not isinstance(candidate, dict):
            raise self._invalid(f"candidates[{index}] is not an object")
        content = candidate.get("content")
        if content is None:
            return []  # a blocked candidate carries no content
        parts = content.get("parts", []) if isinstance(content, dict) else None
        if not isinstance(parts, list):
            raise self._invalid(f"candidates[{index}].content.parts is not a list")
        # Thinking models may show draft images and reasoning as "thought" parts: not the answer.
        answer = [p for p in parts if isinstance(p, dict) and not p.get("thought")]
        text = " ".join(t.strip() for p in answer if isinstance(t := p.get("text"), str) and t.strip())
        images = []
        for part in answer:
            inline = part.get("inlineData", part.get("inline_data"))
            if inline is not None:
                image = self._inline_image(inline, index)
                if image is not None:
                    images.append(ProducedImage(image[0], content_type=image[1], revised_prompt=text or None))
        return images

    def _inline_image(self, inline: object, index: int) -> tuple[bytes, str] | None:
        """(bytes, content type) of an inlineData part; None for a part that is not an image."""
        if not isinstance(inline, dict):
            raise self._invalid(f"candidates[{index}] has an inlineData that is not an object")
        mime = inline.get("mimeType", inline.get("mime_type"))
        mime = mime.lower() if isinstance(mime, str) else ""
        if mime and not mime.startswith("image/"):
            return None
        data = self._base64(inline.get("data"), f"candidates[{index}] inlineData.data")
        return data, mime or _sniff(data)

    def _no_image(self, doc: dict[str, Any], candidates: list[Any]) -> ProviderError:
        feedback = doc.get("promptFeedback")
        feedback = feedback if isinstance(feedback, dict) else {}
        block = _str(feedback.get("blockReason"))
        if block:
            problem = f"the prompt was blocked ({block})"
            detail = _str(feedback.get("blockReasonMessage"))
            return self._refused(f"{problem}: {detail}" if detail else problem, block)
        first = candidates[0] if candidates and isinstance(candidates[0], dict) else {}
        finish = _str(first.get("finishReason"))
        detail = _str(first.get("finishMessage")) or _candidate_text(first)
        if finish not in _UNINFORMATIVE_FINISH:
            problem = f"no image was generated (finish reason {finish})"
            return self._refused(f"{problem}: {detail}" if detail else problem, finish)
        problem = "the model answered without an image"
        return self._refused(f"{problem}: {detail}" if detail else problem, "NO_IMAGE")

    def _imagen_outcome(self, doc: dict[str, Any]) -> ImageOutcome:
        predictions = doc.get("predictions", [])
        if not isinstance(predictions, list):
            raise self._invalid("`predictions` is not a list")
        images: list[ProducedImage] = []
        filtered: list[str] = []
        for index, prediction in enumerate(predictions):
            if not isinstance(prediction, dict):
                raise self._invalid(f"predictions[{index}] is not an object")
            if "bytesBase64Encoded" not in prediction:
                # Imagen drops an image its safety filters caught, saying why instead.
                filtered.append(_str(prediction.get("raiFilteredReason")) or "no image")
                continue
            data = self._base64(prediction["bytesBase64Encoded"], f"predictions[{index}].bytesBase64Encoded")
            mime = _str(prediction.get("mimeType")).lower() or _sniff(data)
            images.append(ProducedImage(data, content_type=mime))
        if not images and filtered:
            raise self._refused(f"every image was filtered: {'; '.join(filtered)}", "RAI_FILTERED")
        if not images:
            raise self._refused("the answer holds no image", "NO_IMAGE")
        return ImageOutcome(
            created=int(time.time()), images=images, output_format=_FORMATS.get(images[0].content_type)
        )

    def _embedding_outcome(self, doc: dict[str, Any], model: str, expected: int) -> EmbeddingOutcome:
        embeddings = doc.get("embeddings")
        if not isinstance(embeddings, list):
            raise self._invalid("`embeddings` is not a list")
        if len(embeddings) != expected:
            raise self._invalid(f"{len(embeddings)} embeddings for {expected} inputs")
        vectors = []
        for index, item in enumerate(embeddings):
            values = item.get("values") if isinstance(item, dict) else None
            vector = _vector(values)
            if vector is None:
                raise self._invalid(f"embeddings[{index}].values is not a list of numbers")
            vectors.append(vector)
        return EmbeddingOutcome(vectors=vectors, model=model)

    def _base64(self, value: object, where: str) -> bytes:
        if not isinstance(value, str) or not value:
            raise self._invalid(f"{where} is missing")
        # Proto JSON writers may use the URL-safe alphabet and drop the padding: accept both.
        text = value.replace("-", "+").replace("_", "/")
        try:
            data = base64.b64decode(text + "=" * (-len(text) % 4), validate=True)
        except binascii.Error:
            raise self._invalid(f"{where} is not valid base64") from None
        if not data:
            raise self._invalid(f"{where} is empty")
        return data

    # Errors

    def _invalid(self, problem: str) -> ProviderError:
        return invalid_response(self.name, problem)

    def _refused(self, problem: str, reason: str) -> ProviderError:
        return ProviderError(
            message=self._redact(f"{self.name}: {problem}"),
            status_code=400,
            type="invalid_request_error",
            code=reason,
            retryable=False,
        )

    def _gateway_error(self, problem: str, *, status: int, code: str, param: str = "") -> ProviderError:
        return ProviderError(
            message=f"{self.name}: {problem}",
            status_code=status,
            type="invalid_request_error",
            code=code,
            param=param,
            retryable=False,
            is_gateway_error=True,
        )

    def _error(self, status: int, headers: Mapping[str, str], raw: bytes) -> ProviderError:
        error = _error_object(raw)
        details = error.get("details")
        details = [d for d in details if isinstance(d, dict)] if isinstance(details, list) else []
        status_name = _str(error.get("status")) or _STATUS_NAMES.get(status, "")
        reason = _detail(details, _ERROR_INFO, "reason")
        message = _str(error.get("message")) or body_prefix(raw, status)
        retry_after = _duration(_detail(details, _RETRY_INFO, "retryDelay"))
        if retry_after is None:
            retry_after = parse_retry_after(headers.get("Retry-After"))
        return ProviderError(
            message=self._redact(message),
            status_code=status,
            type=status_name.lower(),
            code=self._redact(reason or status_name),
            param=self._redact(_field_violation(details)),
            retryable=retryable_status(status),
            retry_after=retry_after,
            details={k: v for k, v in (("status", status_name), ("reason", reason)) if v},
        )


# Request bodies


def _generation_body(call: ImageGenerationCall) -> dict[str, Any]:
    params = call.params
    config = _generation_config(params.size, params.seed)
    body: dict[str, Any] = {"contents": [{"parts": [{"text": params.prompt}]}]}
    return _with_extras(body, config, params.extra_params)


def _generation_config(size: str | None, seed: int | None) -> dict[str, Any]:
    """No candidateCount: image models refuse more than one (n is n calls instead)."""
    config: dict[str, Any] = {"responseModalities": ["TEXT", "IMAGE"]}
    if seed is not None:
        config["seed"] = seed
    if (ratio := nearest_aspect_ratio(size, GEMINI_ASPECT_RATIOS)) is not None:
        config["imageConfig"] = {"aspectRatio": ratio}
    return config


def _with_extras(body: dict[str, Any], config: dict[str, Any], extras: Mapping[str, Any]) -> dict[str, Any]:
    """The generateContent body with extra_params placed beside or inside generationConfig."""
    for name, raw in extras.items():
        if name in _RESERVED_EXTRAS or name == "generationConfig":
            continue
        _merge(body if name in _REQUEST_FIELDS else config, name, _extra_value(raw))
    body["generationConfig"] = config
    return body


def _merge(target: dict[str, Any], name: str, value: Any) -> None:
    current = target.get(name)
    target[name] = {**current, **value} if isinstance(current, dict) and isinstance(value, dict) else value


def _extra_value(value: Any) -> Any:
    """Edit extras are multipart strings: decode the ones that are JSON objects or arrays."""
    if isinstance(value, str) and value.lstrip().startswith(("{", "[")):
        try:
            return json.loads(value)
        except ValueError:
            return value
    return value


def _imagen_body(call: ImageGenerationCall) -> dict[str, Any]:
    params = call.params
    parameters: dict[str, Any] = {"sampleCount": params.n or 1}
    if (ratio := nearest_aspect_ratio(params.size, IMAGEN_ASPECT_RATIOS)) is not None:
        parameters["aspectRatio"] = ratio
    mime = _IMAGEN_MIME_TYPES.get((params.output_format or "").lower())
    if mime is not None:
        parameters["outputOptions"] = {"mimeType": mime}
    for name, value in params.extra_params.items():
        if name not in _RESERVED_EXTRAS:
            _merge(parameters, name, value)
    return {"instances": [{"prompt": params.prompt}], "parameters": parameters}


def _edit_body(call: ImageEditCall) -> bytes:
    """The generateContent body of an edit, as bytes: runs in a worker thread.

    Gemini takes input images only inline, as base64 inside the JSON: there is no
    way to stream them. Each file is read once and encoded straight into the body,
    never escaped or copied through a JSON string, so the peak is about twice the
    base64 of all inputs (about 2.7 times their size on disk), for the length of
    one call: 16 inputs of 50 MB cost about 2.2 GB. That is the price of the API.
    """
    params = call.params
    prompt = params.prompt
    if not prompt.strip() and params.type == "background_removal":
        prompt = BACKGROUND_REMOVAL_PROMPT
    # Each image's data is a placeholder in the JSON skeleton, replaced by the file's base64.
    placeholder = f"asyncgate-inline-{uuid.uuid4().hex}"
    parts: list[dict[str, Any]] = [{"text": prompt}] if prompt else []
    parts += [_inline_placeholder(image, placeholder) for image in call.images]
    files = list(call.images)
    if call.mask is not None:
        parts += [{"text": MASK_HINT}, _inline_placeholder(call.mask, placeholder)]
        files.append(call.mask)
    config = _generation_config(params.size, params.seed)
    body = _with_extras({"contents": [{"parts": parts}]}, config, params.extra_params)
    pieces = _json_bytes(body).split(json.dumps(placeholder).encode())
    chunks = [pieces[0]]
    # strict: a random placeholder cannot also occur in the prompt or the extras.
    for image, piece in zip(files, pieces[1:], strict=True):
        chunks += [b'"', base64.b64encode(image.path.read_bytes()), b'"', piece]
    return b"".join(chunks)


def _inline_placeholder(image: ImageInput, placeholder: str) -> dict[str, Any]:
    return {"inlineData": {"mimeType": image.content_type, "data": placeholder}}


def _embed_body(resource: str, texts: list[str], call: EmbeddingCall) -> dict[str, Any]:
    template: dict[str, Any] = {}
    for name, value in call.params.extra_params.items():
        if name not in _RESERVED_EXTRAS:
            template[name] = value
    if call.params.dimensions is not None:
        template["outputDimensionality"] = call.params.dimensions
    requests = [{"model": resource, "content": {"parts": [{"text": text}]}, **template} for text in texts]
    return {"requests": requests}


def _json_bytes(doc: Any) -> bytes:
    return json.dumps(doc, separators=(",", ":")).encode()


# Answers


def _usage(metadata: object) -> dict[str, Any] | None:
    if not isinstance(metadata, dict):
        return None
    prompt = _int(metadata.get("promptTokenCount"))
    output = _int(metadata.get("candidatesTokenCount"))
    total = _int(metadata.get("totalTokenCount")) or prompt + output
    usage: dict[str, Any] = {"input_tokens": prompt, "output_tokens": output, "total_tokens": total}
    details = _modality_tokens(metadata.get("promptTokensDetails"))
    if details:
        usage["input_tokens_details"] = details
    return usage


def _modality_tokens(details: object) -> dict[str, int]:
    """promptTokensDetails `[{"modality": "TEXT", "tokenCount": 5}, ...]` as OpenAI's text_tokens, ..."""
    counts: dict[str, int] = {}
    for item in details if isinstance(details, list) else []:
        if isinstance(item, dict) and (modality := _str(item.get("modality"))):
            key = f"{modality.lower()}_tokens"
            counts[key] = counts.get(key, 0) + _int(item.get("tokenCount"))
    return counts


def _candidate_text(candidate: Mapping[str, Any]) -> str:
    content = candidate.get("content")
    parts = content.get("parts") if isinstance(content, dict) else None
    texts = [p["text"] for p in parts or [] if isinstance(p, dict) and isinstance(p.get("text"), str)]
    text = " ".join(" ".join(texts).split())
    return text if len(text) <= _TEXT_PREFIX else text[:_TEXT_PREFIX] + "..."


def _vector(values: object) -> list[float] | None:
    if not isinstance(values, list):
        return None
    if not all(isinstance(v, int | float) and not isinstance(v, bool) for v in values):
        return None
    return [float(v) for v in values]


def _sniff(data: bytes) -> str:
    return sniff_image_type(data) or "image/png"


def _merged(outcomes: list[ImageOutcome]) -> ImageOutcome:
    """The outcomes of n calls as one: every image in call order, the usage summed."""
    if len(outcomes) == 1:
        return outcomes[0]
    images = [image for outcome in outcomes for image in outcome.images]
    usages = [outcome.usage for outcome in outcomes if outcome.usage is not None]
    return ImageOutcome(
        created=min(outcome.created for outcome in outcomes),
        images=images,
        usage=_summed(usages) if usages else None,
        output_format=outcomes[0].output_format,
    )


def _summed(usages: list[dict[str, Any]]) -> dict[str, Any]:
    """Token counts added up key by key, nested counts (input_tokens_details) too."""
    total: dict[str, Any] = {}
    for usage in usages:
        for key, value in usage.items():
            if isinstance(value, dict):
                total[key] = _summed([total.get(key, {}), value])
            else:
                total[key] = total.get(key, 0) + value
    return total


# Errors


def _error_object(raw: bytes) -> dict[str, Any]:
    """The `error` object of a Google error body (also inside a one-element array); {} when none."""
    try:
        doc: Any = json.loads(raw)
    except ValueError:
        return {}
    if isinstance(doc, list) and doc:
        doc = doc[0]
    error = doc.get("error") if isinstance(doc, dict) else None
    return error if isinstance(error, dict) else {}


def _detail(details: list[dict[str, Any]], type_url: str, name: str) -> str:
    for detail in details:
        if detail.get("@type") == type_url and isinstance(value := detail.get(name), str):
            return value
    return ""


def _field_violation(details: list[dict[str, Any]]) -> str:
    for detail in details:
        violations = detail.get("fieldViolations") if detail.get("@type") == _BAD_REQUEST else None
        if isinstance(violations, list) and violations and isinstance(violations[0], dict):
            return _str(violations[0].get("field"))
    return ""


def _duration(value: str) -> float | None:
    """Seconds of a protobuf Duration in JSON (`"13s"`, `"58.934310785s"`); None when not one."""
    match = _DURATION.fullmatch(value) if value else None
    return float(match[1]) if match else None


def _str(value: object) -> str:
    return value if isinstance(value, str) else ""


def _int(value: object) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) else 0
