"""OpenAI's images and embeddings API, and servers that speak it.

`OpenAIProvider` calls `{base_url}/images/edits`, `/images/generations`,
`/images/variations` and `/embeddings`; `OpenAICompatibleProvider` does the same against an operator's own
server (vLLM, Ollama, LocalAI, text-embeddings-inference...).

The wire format (bodies, answers, errors) is openai_wire's, shared with Azure OpenAI.
What is particular to this adapter:

- Keys come from a KeyPool: each call leases one, so a key answered 429 or 401 sits
  out a while and the other keys carry the load; it goes in `Authorization: Bearer`.
  OpenAI needs a key; without one nothing is sent. A compatible server may need none
  (no Authorization header then).
- Bodies name the model (the bare name, after `openai/`).
- Edits and generations carry OpenAI's fields; to compatible servers also `seed`,
  `negative_prompt` and `num_inference_steps` (OpenAI refuses fields it does not know,
  compatible image servers often take them). Never `stream` or `partial_images`
  (streaming only), the gateway's edit `type` or its `fallbacks` chain.

Calls go through the HTTP seam (providers.http): no redirect followed, the answer
read up to max_response_bytes, every malformed answer a retryable 502.

Answers: 2xx JSON becomes an ImageOutcome or EmbeddingOutcome (a 2xx that is not
OpenAI's shape is a retryable 502 `invalid_response`); other statuses become a
ProviderError with OpenAI's error message, type, code and param, retryable as the
SDK retries, with the Retry-After hint. Timeouts and connection errors are left to
the chain runner. No API key ever appears in an error.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from contextlib import ExitStack
from functools import partial
from typing import Any, TypeVar

import aiohttp

from grpc_server.config import ProviderSettings
from grpc_server.domain.jobs import RequestType
from grpc_server.providers import openai_errors, openai_wire
from grpc_server.providers.base import (
    EmbeddingCall,
    EmbeddingOutcome,
    ImageEditCall,
    ImageGenerationCall,
    ImageOutcome,
    ImageVariationCall,
    ProviderError,
)
from grpc_server.providers.http import Answer, ProviderClient, Request

DEFAULT_BASE_URL = "https://api.openai.com/v1"

_ALL_OPERATIONS = frozenset(RequestType)

T = TypeVar("T")


class OpenAIProvider:
    """OpenAI: image edits, generations, variations and embeddings (see the module docstring)."""

    name = "openai"
    _requires_key = True
    _generation_fields: tuple[str, ...] = openai_wire.GENERATION_FIELDS
    _edit_fields: tuple[str, ...] = openai_wire.EDIT_FIELDS

    def __init__(
        self, session: aiohttp.ClientSession, settings: ProviderSettings, name: str = "openai"
    ) -> None:
        self.name = name
        self._client = ProviderClient(name, session, settings, auth=_bearer, requires_key=self._requires_key)
        self._base_url = (settings.base_url or DEFAULT_BASE_URL).rstrip("/")
        self._operations = _ALL_OPERATIONS

    def supports(self, request_type: RequestType) -> bool:
        return request_type in self._operations

    async def edit_image(self, call: ImageEditCall) -> ImageOutcome:
        with ExitStack() as files:
            form = openai_wire.edit_form(call, files, self._edit_fields)
            return await self._post("/images/edits", openai_wire.image_outcome, form=form)

    async def generate_image(self, call: ImageGenerationCall) -> ImageOutcome:
        body = openai_wire.generation_body(call, self._generation_fields)
        return await self._post("/images/generations", openai_wire.image_outcome, body=body)

    async def vary_image(self, call: ImageVariationCall) -> ImageOutcome:
        with ExitStack() as files:
            form = openai_wire.variation_form(call, files)
            return await self._post("/images/variations", openai_wire.image_outcome, form=form)

    async def embed(self, call: EmbeddingCall) -> EmbeddingOutcome:
        expected = len(call.params.inputs())
        parse = partial(openai_wire.embedding_outcome, asked_model=call.model, expected=expected)
        return await self._post("/embeddings", parse, body=openai_wire.embedding_body(call))

    async def _post(
        self,
        path: str,
        parse: Callable[[dict[str, Any]], T],
        *,
        form: aiohttp.FormData | None = None,
        body: Mapping[str, Any] | None = None,
    ) -> T:
        """POST a form or a JSON body through the seam; the parsed answer or a ProviderError."""
        request = Request(self._base_url + path, {"Accept": "application/json"}, json=body, data=form)
        return await self._client.call(request, self._classify, lambda answer: parse(answer.json_object()))

    def _classify(self, answer: Answer) -> ProviderError:
        return openai_errors.classify_error(answer.status, answer.headers, answer.body, self._client.redact)


class OpenAICompatibleProvider(OpenAIProvider):
    """A server that speaks OpenAI's API at the operator's `base_url` (vLLM, Ollama,
    LocalAI, text-embeddings-inference...).

    Unlike OpenAI: keys are optional (none: no Authorization header), the operations
    offered are the operator's `operations` (empty: all four), and generations and edits
    also carry seed, negative_prompt and num_inference_steps, which OpenAI refuses.
    """

    _requires_key = False
    _generation_fields = openai_wire.GENERATION_FIELDS + openai_wire.COMPATIBLE_IMAGE_FIELDS
    _edit_fields = openai_wire.EDIT_FIELDS + openai_wire.COMPATIBLE_IMAGE_FIELDS

    def __init__(self, session: aiohttp.ClientSession, settings: ProviderSettings, name: str) -> None:
        if not settings.base_url:
            raise ValueError(f"providers.{name}: an openai-compatible provider needs a base_url")
        super().__init__(session, settings, name)
        self._operations = offered_operations(settings.operations, name)


def offered_operations(names: tuple[str, ...], provider: str) -> frozenset[RequestType]:
    """The operations an openai-compatible server offers: those named, or all when none;
    ValueError naming the setting for an unknown one."""
    known = {op.value for op in RequestType}
    unknown = sorted(set(names) - known)
    if unknown:
        raise ValueError(
            f"providers.{provider}.operations: unknown operation(s) {', '.join(unknown)}; "
            f"expected {', '.join(sorted(known))}"
        )
    return frozenset(RequestType(op) for op in names) or _ALL_OPERATIONS


def _bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}
