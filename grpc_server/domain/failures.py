"""How a failed provider call is classified: the error every adapter raises, and which
HTTP statuses (and Retry-After hints) make a call worth repeating.

Pure: the standard library only, so the retry decisions in the domain can use it
without importing the provider adapters or their HTTP client.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

RETRYABLE_STATUSES = frozenset({408, 409, 429, 500, 502, 503, 504})
"""What OpenAI's own SDK retries (and every 5xx): the same call may succeed later."""


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
    # inf and nan parse as floats too; neither is a wait.
    return seconds if 0 <= seconds < float("inf") else None
