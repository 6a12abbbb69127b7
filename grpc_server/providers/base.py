"""The provider protocol: what every adapter takes, returns and raises.

An adapter turns the neutral request into its provider's wire format and back,
and classifies every failure as a ProviderError (retryable or not). Transport
failures (timeouts, refused connections) are classified by the chain runner,
so adapters need not catch them.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from grpc_server.domain.jobs import (
    EmbeddingParams,
    ImageEditParams,
    ImageGenerationParams,
    ImageVariationParams,
    RequestType,
)

RETRYABLE_STATUSES = frozenset({408, 409, 429, 500, 502, 503, 504})


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


@dataclass
class ProviderError(Exception):
    """A failed provider call, classified.

    status_code is the HTTP status the provider answered (None when no answer
    came); retryable says whether the same call may succeed later;
    retry_after is the provider's own hint in seconds, if it gave one.
    """

    message: str
    status_code: int | None = None
    type: str = ""
    code: str = ""
    param: str = ""
    retryable: bool = False
    retry_after: float | None = None
    is_gateway_error: bool = False
    details: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        super().__init__(self.message)

    def __str__(self) -> str:
        return self.message


def retryable_status(status: int) -> bool:
    return status in RETRYABLE_STATUSES or status >= 500


def parse_retry_after(value: str | None) -> float | None:
    """Seconds from a Retry-After header (delta-seconds form), or None."""
    if value is None:
        return None
    try:
        seconds = float(value.strip())
    except ValueError:
        return None
    return seconds if seconds >= 0 else None


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
