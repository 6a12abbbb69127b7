"""Who the caller is: a configured virtual key, an admin, or nobody (keyless).

Virtual keys are looked up by the SHA-256 of their value, so the comparison does not leak
timing on the secret and the table holds no plaintext. When tokens are configured
([auth]), a bearer JWT decides alone (grpc_server.tokens): it is verified before anything
else, and a token that does not verify, or names a key that does not exist, is refused
(401 invalid_token). Without [auth] a bearer that is not a virtual key is no key at all, as
the gateway's API has it: the caller is keyless.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from grpc_server.config import VirtualKey
from grpc_server.domain.errors import InvalidToken, PermissionDenied, Unauthenticated, VirtualKeyNotFound
from grpc_server.domain.keys import bearer_token, presented_key
from grpc_server.tokens import TokenVerifier


def _digest(value: str) -> bytes:
    return hashlib.sha256(value.encode()).digest()


@dataclass(frozen=True)
class Caller:
    key: VirtualKey | None
    """The virtual key the caller acts as; None for a keyless caller (or an admin without one)."""
    admin: bool = False

    @property
    def key_id(self) -> str | None:
        return self.key.id if self.key else None

    def may_read(self, owner_key_id: str | None) -> bool:
        """A keyless job is anyone's; a key's job is its key's (and an admin's)."""
        return self.admin or owner_key_id is None or owner_key_id == self.key_id


class KeyRing:
    def __init__(
        self, keys: Iterable[VirtualKey], *, require_key: bool = False, tokens: TokenVerifier | None = None
    ) -> None:
        keys = tuple(keys)
        self._by_digest = {_digest(k.value): k for k in keys}
        self._by_id = {k.id: k for k in keys}
        self._tokens = tokens
        self.require_key = require_key

    def identify(self, headers: Mapping[str, str]) -> Caller:
        """The caller; raises when refused (no key where one is required, an unknown key, a
        token that does not verify)."""
        tokens = self._tokens
        if tokens is not None and tokens.enabled and (token := bearer_token(headers)) is not None:
            claims = tokens.verify(token)
            key = self._by_id.get(claims.key_id) if claims.key_id is not None else None
            if claims.key_id is not None and key is None:
                raise InvalidToken("the token names a virtual key that does not exist")
            if key is None and not claims.admin:
                raise InvalidToken("the token names no virtual key (vk) and no role")
            return Caller(key, admin=claims.admin)
        value = presented_key(headers)
        if value is None:
            if self.require_key:
                raise Unauthenticated("a virtual key is required")
            return Caller(None)
        key = self._by_digest.get(_digest(value))
        if key is None:
            raise VirtualKeyNotFound()
        return Caller(key)

    def require_admin(self, headers: Mapping[str, str]) -> Caller:
        """The caller of an admin-only path (webhook deliveries, ...), who must hold an admin token:
        a caller with a key or a non-admin token is refused PermissionDenied (403), one with
        neither Unauthenticated (401); a token that does not verify InvalidToken (401), first."""
        caller = self.identify(headers)
        if caller.admin:
            return caller
        if caller.key is None:
            raise Unauthenticated("this path needs an admin token (Authorization: Bearer <JWT>)")
        raise PermissionDenied("this path is for admins only: the caller's token or key is not an admin's")

    def resolve(self, headers: Mapping[str, str]) -> VirtualKey | None:
        """The caller's virtual key; None for a keyless caller (when allowed) or a bare admin."""
        return self.identify(headers).key
