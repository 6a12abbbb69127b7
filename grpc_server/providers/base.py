"""The provider protocol: what every adapter takes, returns and raises.

An adapter turns the neutral request into its provider's wire format and back,
and classifies every failure as a ProviderError (retryable or not). Transport
failures (timeouts, refused connections) are classified by the chain runner,
so adapters need not catch them.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from grpc_server.domain.failures import RETRYABLE_STATUSES as RETRYABLE_STATUSES
from grpc_server.domain.failures import ProviderError as ProviderError
from grpc_server.domain.failures import parse_retry_after as parse_retry_after
from grpc_server.domain.failures import retryable_status as retryable_status
from grpc_server.domain.jobs import (
    EmbeddingParams,
    ImageEditParams,
    ImageGenerationParams,
    ImageVariationParams,
    RequestType,
)


@dataclass(frozen=True)
class ImageInput:
    """An input image or mask, on local disk for the duration of one job run."""

    path: Path
    filename: str
    content_type: str
    width: int
    height: int


@dataclass(frozen=True)
class ImageEditCall:
    """One image edit as a provider receives it."""

    model: str
    """The bare model name, without the `provider/` prefix."""
    params: ImageEditParams
    images: Sequence[ImageInput]
    mask: ImageInput | None = None


@dataclass(frozen=True)
class ImageGenerationCall:
    """One image generation as a provider receives it."""

    model: str
    """The bare model name, without the `provider/` prefix."""
    params: ImageGenerationParams


@dataclass(frozen=True)
class ImageVariationCall:
    """One image variation as a provider receives it."""

    model: str
    """The bare model name, without the `provider/` prefix."""
    params: ImageVariationParams
    image: ImageInput


@dataclass(frozen=True)
class EmbeddingCall:
    """One embeddings request as a provider receives it."""

    model: str
    """The bare model name, without the `provider/` prefix."""
    params: EmbeddingParams


@dataclass(frozen=True)
class EmbeddingOutcome:
    """One vector per input, in input order."""

    vectors: Sequence[Sequence[float]]
    model: str
    """The model as the provider named it in its answer (or as asked)."""
    prompt_tokens: int = 0
    total_tokens: int = 0


@dataclass(frozen=True)
class ProducedImage:
    """One image a provider returned: bytes, or a URL of its own."""

    data: bytes | None = None
    url: str | None = None
    content_type: str = "image/png"
    revised_prompt: str | None = None


@dataclass(frozen=True)
class ImageOutcome:
    created: int
    images: Sequence[ProducedImage]
    usage: dict[str, Any] | None = None
    background: str | None = None
    output_format: str | None = None
    quality: str | None = None
    size: str | None = None


class Provider(Protocol):
    """An adapter for one AI provider. It implements the operations `supports` names;
    the others may raise `unsupported(...)` (the chain never calls them)."""

    name: str

    def supports(self, request_type: RequestType) -> bool: ...

    async def edit_image(self, call: ImageEditCall) -> ImageOutcome: ...

    async def generate_image(self, call: ImageGenerationCall) -> ImageOutcome: ...

    async def embed(self, call: EmbeddingCall) -> EmbeddingOutcome: ...

    async def vary_image(self, call: ImageVariationCall) -> ImageOutcome: ...


def unsupported(provider: str, request_type: RequestType) -> ProviderError:
    """For an operation a provider does not offer: a gateway error, never retried."""
    return ProviderError(
        f"provider {provider!r} does not support {request_type.value}",
        status_code=400,
        type="invalid_request_error",
        code="unsupported_operation",
        is_gateway_error=True,
    )
