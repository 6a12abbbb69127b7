"""KeyRing.require_admin: the check of admin-only paths. An admin token passes; a key or a
non-admin token is 403 (PermissionDenied); a caller with neither 401 (Unauthenticated); a token
that does not verify 401 invalid_token, before anything else."""

from __future__ import annotations

import time
from typing import Any

import jwt
import pytest

from grpc_server.config import AuthSettings, VirtualKey
from grpc_server.domain.errors import InvalidToken, PermissionDenied, Unauthenticated
from grpc_server.keyring import KeyRing
from grpc_server.tokens import TokenVerifier

SECRET = "a-test-hs256-secret-of-at-least-32-bytes"
KEY = VirtualKey(id="vk-a", value="sk-bf-a-secret")


def _bearer(claims: dict[str, Any], secret: str = SECRET) -> dict[str, str]:
    token = jwt.encode({"exp": int(time.time()) + 300, **claims}, secret, algorithm="HS256")
    return {"authorization": f"Bearer {token}"}


@pytest.fixture
def ring() -> KeyRing:
    return KeyRing([KEY], tokens=TokenVerifier(AuthSettings(jwt_secret=SECRET)))


def test_an_admin_token_passes(ring: KeyRing) -> None:
    assert ring.require_admin(_bearer({"role": "admin"})).admin
    caller = ring.require_admin(_bearer({"role": "admin", "vk": KEY.id}))  # an admin acting as a key
    assert caller.admin and caller.key_id == KEY.id


@pytest.mark.parametrize(
    "caller",
    [
        pytest.param({"key": KEY.value}, id="virtual-key"),
        pytest.param({"vk": KEY.id}, id="key-token"),
        pytest.param({"vk": KEY.id, "role": "reader"}, id="other-role"),
    ],
)
def test_a_key_or_a_non_admin_token_is_forbidden(ring: KeyRing, caller: dict[str, str]) -> None:
    # Tokens are made when the test runs, not when it is collected: a long run outlives their exp.
    headers = {"x-bf-vk": caller["key"]} if "key" in caller else _bearer(caller)
    with pytest.raises(PermissionDenied):
        ring.require_admin(headers)


def test_a_caller_with_neither_is_unauthenticated(ring: KeyRing) -> None:
    with pytest.raises(Unauthenticated) as raised:
        ring.require_admin({})
    assert type(raised.value) is Unauthenticated


def test_a_token_that_does_not_verify_is_refused_first(ring: KeyRing) -> None:
    with pytest.raises(InvalidToken):
        ring.require_admin(_bearer({"role": "admin"}, secret="another-secret-that-is-32-bytes-long!"))


def test_without_tokens_configured_nobody_is_an_admin() -> None:
    ring = KeyRing([KEY])
    with pytest.raises(PermissionDenied):
        ring.require_admin({"x-bf-vk": KEY.value})
    with pytest.raises(Unauthenticated):
        ring.require_admin({})
