"""Resolves presented virtual keys to configured ones without keeping secrets in maps.

Keys are looked up by the SHA-256 of their value, so the comparison does not
leak timing on the secret and the table holds no plaintext.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping

from grpc_server.config import VirtualKey
from grpc_server.domain.errors import Unauthenticated, VirtualKeyNotFound
from grpc_server.domain.keys import presented_key


def _digest(value: str) -> bytes:
    return hashlib.sha256(value.encode()).digest()


class KeyRing:
    def __init__(self, keys: Iterable[VirtualKey], *, require_key: bool = False) -> None:
        self._by_digest = {_digest(k.value): k for k in keys}
        self.require_key = require_key

    def resolve(self, headers: Mapping[str, str]) -> VirtualKey | None:
        """The caller's key; None for a keyless caller (when allowed)."""
        value = presented_key(headers)
        if value is None:
            if self.require_key:
                raise Unauthenticated("a virtual key is required")
            return None
        key = self._by_digest.get(_digest(value))
        if key is None:
            raise VirtualKeyNotFound()
        return key
