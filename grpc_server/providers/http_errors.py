"""What every HTTP adapter does alike with what goes wrong: the gateway's own errors
(no key configured, an answer that is not the provider's shape), the text of an error
body that is not JSON, and keys echoed back in error texts.
"""

from __future__ import annotations

from collections.abc import Iterable

from grpc_server.config import ApiKey
from grpc_server.providers.base import ProviderError

ERROR_BODY_PREFIX = 200
"""Characters of a non-JSON error body kept as the message."""
REDACTED = "[redacted]"


class Malformed(ValueError):
    """A 2xx answer that is not the provider's shape; the message says what is wrong."""


class Redactor:
    """Replaces every configured key in a text by [redacted]: providers (and proxies in
    front of them) have been seen quoting a key back in an error."""

    def __init__(self, keys: Iterable[ApiKey]) -> None:
        # Longest first, so that a key containing another is redacted whole.
        self._secrets = sorted({key.value for key in keys if key.value}, key=len, reverse=True)

    def __call__(self, text: str) -> str:
        for secret in self._secrets:
            text = text.replace(secret, REDACTED)
        return text


def body_prefix(body: bytes, status: int) -> str:
    """An error body that carries no message (an HTML page, plain text), as one line: its
    white space folded, its first ERROR_BODY_PREFIX characters; `HTTP {status}` when empty."""
    text = " ".join(body.decode("utf-8", "replace").split())
    return text[:ERROR_BODY_PREFIX] or f"HTTP {status}"


def invalid_response(provider: str, problem: str) -> ProviderError:
    """A 2xx that is not the provider's shape: a 502, retryable (the next answer may be whole)."""
    return ProviderError(
        message=f"{provider}: invalid response: {problem}",
        status_code=502,
        type="invalid_response",
        code="invalid_response",
        retryable=True,
    )


def missing_key(provider: str, hint: str = "") -> ProviderError:
    """No API key configured for a provider that needs one: refused before anything is sent."""
    return ProviderError(
        message=f"{provider}: no API key configured" + (f" ({hint})" if hint else ""),
        status_code=401,
        type="authentication_error",
        code="missing_api_key",
        retryable=False,
        is_gateway_error=True,
    )
