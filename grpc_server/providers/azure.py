"""Azure OpenAI, deployment form: image generations, image edits and embeddings.

    POST {endpoint}/openai/deployments/{deployment}/images/generations?api-version=V   (JSON)
    POST {endpoint}/openai/deployments/{deployment}/images/edits?api-version=V         (multipart)
    POST {endpoint}/openai/deployments/{deployment}/embeddings?api-version=V           (JSON)

The bodies, the answers and the error shapes are OpenAI's (openai_wire, shared with
the OpenAI adapter). What is particular to Azure:

- `endpoint` is the resource root (`https://NAME.openai.azure.com`), from the
  provider's `endpoint` / `base_url` setting or AZURE_OPENAI_ENDPOINT. It is
  required: without it (a 500 `configuration_error`) or without a key (a 401
  `authentication_error`) every call fails with a gateway error, never retried,
  before anything is sent.
- `api-version` is `settings.api_version` (or OPENAI_API_VERSION); when unset,
  DEFAULT_API_VERSION, the first version that offers all three operations
  (image edits came with 2025-04-01-preview).
- The deployment is the bare model name (after `azure/`), mapped through
  `settings.deployments` when listed there; it is quoted as one path segment.
- The key goes in the `api-key` header, never `Authorization: Bearer` (Azure
  reads a bearer token as an Entra ID token). Keys come from a KeyPool, so a key
  answered 429 or 401/403 sits out and the next call takes another.
- Bodies carry no `model`: the deployment names the model; otherwise the fields are
  OpenAI's (Azure OpenAI refuses the seed, negative_prompt and num_inference_steps that
  compatible servers take).

Calls go through the HTTP seam (providers.http): no redirect followed (the `api-key`
goes only to the configured endpoint), the answer read up to max_response_bytes.

Errors: Azure's code is always a string ("404", "429", "DeploymentNotFound",
"content_filter"); the type is `azure_error` when Azure names none; the content
filter's `innererror` is kept in details; API Management's `{"statusCode", "message"}`
is read too. No key ever appears in an error. Timeouts and connection errors are left
to the chain runner.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from contextlib import ExitStack
from functools import partial
from typing import Any, TypeVar
from urllib.parse import quote

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
    unsupported,
)
from grpc_server.providers.http import Answer, ProviderClient, Request

DEFAULT_API_VERSION = "2025-04-01-preview"
"""Used when no api_version is configured: the first that has image edits as well."""

GENERATIONS = "images/generations"
EDITS = "images/edits"
EMBEDDINGS = "embeddings"

_GENERATION_FIELDS = openai_wire.GENERATION_FIELDS
_KEY_HINT = "set `api_key` for the provider or AZURE_OPENAI_API_KEY"

T = TypeVar("T")


class AzureOpenAIProvider:
    name = "azure"

    def __init__(
        self, session: aiohttp.ClientSession, settings: ProviderSettings, name: str = "azure"
    ) -> None:
        self.name = name
        self._client = ProviderClient(name, session, settings, auth=_api_key, key_hint=_KEY_HINT)
        self._endpoint = (settings.base_url or "").strip().rstrip("/")
        self._api_version = settings.api_version or DEFAULT_API_VERSION
        self._deployments = dict(settings.deployments)

    def supports(self, request_type: RequestType) -> bool:
        return request_type in (RequestType.IMAGE_EDIT, RequestType.IMAGE_GENERATION, RequestType.EMBEDDING)

    def deployment(self, model: str) -> str:
        """The deployment that serves a bare model name: its mapping, else the name itself."""
        return self._deployments.get(model, model)

    # Operations

    async def generate_image(self, call: ImageGenerationCall) -> ImageOutcome:
        body = openai_wire.generation_body(call, _GENERATION_FIELDS, send_model=False)
        return await self._post(call.model, GENERATIONS, openai_wire.image_outcome, json_body=body)

    async def edit_image(self, call: ImageEditCall) -> ImageOutcome:
        with ExitStack() as files:
            form = openai_wire.edit_form(call, files, send_model=False)
            return await self._post(call.model, EDITS, openai_wire.image_outcome, form=form)

    async def vary_image(self, call: ImageVariationCall) -> ImageOutcome:
        raise unsupported(self.name, RequestType.IMAGE_VARIATION)

    async def embed(self, call: EmbeddingCall) -> EmbeddingOutcome:
        body = openai_wire.embedding_body(call, send_model=False)
        expected = len(call.params.inputs())
        parse = partial(openai_wire.embedding_outcome, asked_model=call.model, expected=expected)
        return await self._post(call.model, EMBEDDINGS, parse, json_body=body)

    # HTTP

    def url(self, model: str, operation: str) -> str:
        """The deployment URL of an operation, without the api-version query."""
        deployment = quote(self.deployment(model), safe="")
        return f"{self._endpoint}/openai/deployments/{deployment}/{operation}"

    async def _post(
        self,
        model: str,
        operation: str,
        parse: Callable[[dict[str, Any]], T],
        *,
        json_body: Mapping[str, Any] | None = None,
        form: aiohttp.FormData | None = None,
    ) -> T:
        """POST one request through the seam; the parsed answer, or a classified ProviderError."""
        self._check_configured()
        request = Request(
            self.url(model, operation),
            {"Accept": "application/json"},
            params={"api-version": self._api_version},
            json=json_body,
            data=form,
        )
        return await self._client.call(request, self._classify, lambda answer: parse(answer.json_object()))

    def _classify(self, answer: Answer) -> ProviderError:
        return openai_errors.classify_error(
            answer.status, answer.headers, answer.body, self._client.redact, default_type="azure_error"
        )

    def _check_configured(self) -> None:
        if not self._endpoint:
            raise ProviderError(
                message=f"{self.name}: no endpoint configured "
                "(set `endpoint` for the provider or AZURE_OPENAI_ENDPOINT)",
                status_code=500,
                type="configuration_error",
                code="missing_endpoint",
                retryable=False,
                is_gateway_error=True,
            )
        self._client.check_key()


def _api_key(key: str) -> dict[str, str]:
    """Azure's key header; `Authorization: Bearer` would be read as an Entra ID token."""
    return {"api-key": key}
