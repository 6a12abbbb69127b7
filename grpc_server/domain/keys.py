"""Which virtual key a caller presents (docs/rest-api.md §4).

Checked in this order: `x-bf-vk`; `Authorization: Bearer sk-bf-...`; `x-api-key`
or `x-goog-api-key` starting with `sk-bf-` (prefix case-insensitive). A bearer
token that is not a virtual key (a JWT, say) is not a virtual key: bearer_token finds it.
"""

from __future__ import annotations

from collections.abc import Mapping

from grpc_server.domain.jobs import ModelRef

VIRTUAL_KEY_PREFIX = "sk-bf-"
KEY_HEADERS = ("x-bf-vk", "authorization", "x-api-key", "x-goog-api-key")


def _is_virtual_key(value: str) -> bool:
    return value.lower().startswith(VIRTUAL_KEY_PREFIX)


def bearer_token(headers: Mapping[str, str]) -> str | None:
    """An `Authorization: Bearer` value that is a JWT (three dot-separated parts), or None."""
    scheme, _, token = headers.get("authorization", "").strip().partition(" ")
    token = token.strip()
    if scheme.lower() == "bearer" and token.count(".") == 2 and not _is_virtual_key(token):
        return token
    return None


def presented_key(headers: Mapping[str, str]) -> str | None:
    """The virtual key among lower-cased request headers, or None."""
    if value := headers.get("x-bf-vk", "").strip():
        return value
    scheme, _, token = headers.get("authorization", "").strip().partition(" ")
    if scheme.lower() == "bearer" and _is_virtual_key(token.strip()):
        return token.strip()
    for header in ("x-api-key", "x-goog-api-key"):
        value = headers.get(header, "").strip()
        if _is_virtual_key(value):
            return value
    return None


def model_allowed(model: str, allowed: tuple[str, ...]) -> bool:
    """Whether `provider/model` matches a key's allow-list (empty = anything; `provider/*`)."""
    if not allowed:
        return True
    ref = ModelRef.parse(model)
    return model in allowed or (ref is not None and f"{ref.provider}/*" in allowed)
