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
  body, at most fan_out.parallel_calls at once (one by one with max_concurrency set):
  image models refuse `candidateCount` > 1
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

The wire format (bodies, answers, errors) is gemini_wire's; calls go through the HTTP
seam (providers.http): no redirect followed (the `x-goog-api-key` goes only to the
configured base URL), the answer read up to max_response_bytes.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Callable
from typing import Any, TypeVar

import aiohttp

from grpc_server.config import ProviderSettings
from grpc_server.domain.jobs import EmbeddingParams, RequestType
from grpc_server.providers import gemini_errors, gemini_wire
from grpc_server.providers.base import (
    EmbeddingCall,
    EmbeddingOutcome,
    ImageEditCall,
    ImageGenerationCall,
    ImageOutcome,
    ImageVariationCall,
    ProviderError,
    unsupported,
)
from grpc_server.providers.fan_out import gather_bounded, parallel_calls
from grpc_server.providers.gemini_wire import NoImage, is_imagen
from grpc_server.providers.http import Answer, ProviderClient, Request

DEFAULT_BASE_URL = "https://generativelanguage.googleapis.com/v1beta"

"""generateContent calls in flight at once for one request of n images."""

_INVALID_KEY_REASON = "API_KEY_INVALID"
_MODEL = re.compile(r"[A-Za-z0-9._-]+")

T = TypeVar("T")


class GeminiProvider:
    """Gemini image generation (Gemini image models and Imagen), edits and embeddings."""

    name = "gemini"

    def __init__(
        self, session: aiohttp.ClientSession, settings: ProviderSettings, name: str = "gemini"
    ) -> None:
        self.name = name
        self._client = ProviderClient(
            name,
            session,
            settings,
            auth=_api_key,
            key_hint="set `api_key` for the provider or GEMINI_API_KEY",
            # Gemini answers a revoked key with a 400, which the pool does not watch.
            revoked_key_codes=frozenset({_INVALID_KEY_REASON}),
        )
        self._base_url = (settings.base_url or DEFAULT_BASE_URL).rstrip("/")
        self._parallel = parallel_calls(settings.max_concurrency)

    def supports(self, request_type: RequestType) -> bool:
        return request_type in (RequestType.IMAGE_EDIT, RequestType.IMAGE_GENERATION, RequestType.EMBEDDING)

    async def generate_image(self, call: ImageGenerationCall) -> ImageOutcome:
        resource = self._resource(call.model)
        if is_imagen(call.model):
            body = gemini_wire.json_bytes(gemini_wire.imagen_body(call))
            return await self._post(resource, "predict", body, gemini_wire.imagen_outcome)
        body = gemini_wire.json_bytes(gemini_wire.generation_body(call))
        return await self._generate_content(resource, body, call.params.n)

    async def edit_image(self, call: ImageEditCall) -> ImageOutcome:
        resource = self._resource(call.model)
        if is_imagen(call.model):
            raise self._gateway_error(
                f"{call.model} cannot edit images through the Gemini API; use a Gemini image model",
                status=400,
                code="unsupported_model",
                param="model",
            )
        self._client.check_key()
        # Reading and base64-encoding up to 16 large files would stall the event loop.
        body = await asyncio.to_thread(gemini_wire.edit_body, call)
        return await self._generate_content(resource, body, call.params.n)

    async def vary_image(self, call: ImageVariationCall) -> ImageOutcome:
        raise unsupported(self.name, RequestType.IMAGE_VARIATION)

    async def embed(self, call: EmbeddingCall) -> EmbeddingOutcome:
        resource = self._resource(call.model)
        texts = self._texts(call.params)
        body = gemini_wire.json_bytes(gemini_wire.embed_body(resource, texts, call))

        def parse(doc: dict[str, Any]) -> EmbeddingOutcome:
            return gemini_wire.embedding_outcome(doc, call.model, len(texts))

        return await self._post(resource, "batchEmbedContents", body, parse)

    async def _generate_content(self, resource: str, body: bytes, n: int | None) -> ImageOutcome:
        """n images from a Gemini image model: n calls of one body (see the module docstring)."""

        async def one(index: int) -> ImageOutcome:
            return await self._post(resource, "generateContent", body, gemini_wire.content_outcome)

        return gemini_wire.merged(await gather_bounded(max(n or 1, 1), self._parallel, one))

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

    async def _post(self, resource: str, method: str, body: bytes, parse: Callable[[dict[str, Any]], T]) -> T:
        """POST one JSON body through the seam; the parsed answer, or a classified ProviderError."""
        headers = {"Content-Type": "application/json", "Accept": "application/json"}
        request = Request(f"{self._base_url}/{resource}:{method}", headers, data=body)

        def read(answer: Answer) -> T:
            try:
                return parse(answer.json_object())
            except NoImage as refused:
                raise self._refused(refused.problem, refused.reason) from None

        return await self._client.call(request, self._classify, read)

    def _classify(self, answer: Answer) -> ProviderError:
        return gemini_errors.classify_error(answer.status, answer.headers, answer.body, self._client.redact)

    # Errors

    def _refused(self, problem: str, reason: str) -> ProviderError:
        return ProviderError(
            message=self._client.redact(f"{self.name}: {problem}"),
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


def _api_key(key: str) -> dict[str, str]:
    """The key in a header, never in `?key=`: URLs end up in logs and exception texts."""
    return {"x-goog-api-key": key}
