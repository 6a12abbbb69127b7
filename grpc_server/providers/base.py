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

from grpc_server.domain.jobs import ImageEditParams, RequestType

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
    """An adapter for one AI provider."""

    name: str

    def supports(self, request_type: RequestType) -> bool: ...

    async def edit_image(self, call: ImageEditCall) -> ImageOutcome: ...
