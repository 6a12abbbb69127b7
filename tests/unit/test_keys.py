"""Which virtual key a caller presents, and how it resolves."""

from __future__ import annotations

import pytest

from grpc_server.config import VirtualKey
from grpc_server.domain.errors import Unauthenticated, VirtualKeyNotFound
from grpc_server.domain.keys import model_allowed, presented_key
from grpc_server.keyring import KeyRing


@pytest.mark.parametrize(
    ("headers", "key"),
    [
        ({}, None),
        ({"x-bf-vk": "anything"}, "anything"),  # x-bf-vk needs no prefix
        ({"x-bf-vk": "  sk-bf-a  "}, "sk-bf-a"),
        ({"authorization": "Bearer sk-bf-a"}, "sk-bf-a"),
        ({"authorization": "bearer SK-BF-a"}, "SK-BF-a"),
        ({"authorization": "Bearer eyJhbGciOi.jwt"}, None),  # an admin JWT is not a virtual key
        ({"authorization": "Basic sk-bf-a"}, None),
        ({"authorization": "sk-bf-a"}, None),
        ({"x-api-key": "sk-bf-a"}, "sk-bf-a"),
        ({"x-api-key": "sk-openai-123"}, None),
        ({"x-goog-api-key": "Sk-Bf-a"}, "Sk-Bf-a"),
        ({"x-bf-vk": "sk-bf-first", "authorization": "Bearer sk-bf-second"}, "sk-bf-first"),
        ({"authorization": "Bearer sk-bf-second", "x-api-key": "sk-bf-third"}, "sk-bf-second"),
        ({"x-bf-vk": "", "x-api-key": "sk-bf-third"}, "sk-bf-third"),
    ],
)
def test_presented_key(headers: dict[str, str], key: str | None) -> None:
    assert presented_key(headers) == key


@pytest.mark.parametrize(
    ("model", "allowed", "ok"),
    [
        ("openai/gpt-image-1", (), True),
        ("openai/gpt-image-1", ("openai/gpt-image-1",), True),
        ("openai/dall-e-2", ("openai/gpt-image-1",), False),
        ("openai/dall-e-2", ("openai/*",), True),
        ("local/pillow", ("openai/*",), False),
    ],
)
def test_model_allowed(model: str, allowed: tuple[str, ...], ok: bool) -> None:
    assert model_allowed(model, allowed) is ok


def test_keyring_resolves_by_value_and_refuses_unknown_keys() -> None:
    ring = KeyRing([VirtualKey("a", "sk-bf-a"), VirtualKey("b", "sk-bf-b")])
    key = ring.resolve({"x-bf-vk": "sk-bf-b"})
    assert key is not None and key.id == "b"
    assert ring.resolve({}) is None
    with pytest.raises(VirtualKeyNotFound):
        ring.resolve({"x-bf-vk": "sk-bf-c"})


def test_keyring_can_require_a_key() -> None:
    with pytest.raises(Unauthenticated):
        KeyRing([], require_key=True).resolve({})
