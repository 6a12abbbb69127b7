"""Which adapters a configuration yields."""

from __future__ import annotations

import aiohttp
import pytest

from grpc_server.config import ConfigError, config_from_mapping
from grpc_server.domain.jobs import RequestType
from grpc_server.providers.factory import build_registry


async def test_each_kind_with_what_it_needs() -> None:
    config = config_from_mapping(
        {
            "providers": {
                "openai": {"api_key": "sk-o"},
                "azure": {"api_key": "az", "endpoint": "https://x.openai.azure.com"},
                "gemini": {"api_key": "g"},
                "stability": {"api_key": "s"},
                "vllm": {
                    "kind": "openai-compatible",
                    "base_url": "http://127.0.0.1:9/v1",
                    "operations": ["embedding"],
                },
                "offline": {"kind": "local"},
            }
        },
        env={},
    )
    async with aiohttp.ClientSession() as session:
        registry = build_registry(config, session)
    assert registry.names() == ("azure", "gemini", "local", "offline", "openai", "stability", "vllm")
    assert registry.supports("vllm/bge-small", RequestType.EMBEDDING)
    assert not registry.supports("vllm/bge-small", RequestType.IMAGE_GENERATION)
    assert not registry.supports("stability/core", RequestType.EMBEDDING)
    assert registry.supports("stability/core", RequestType.IMAGE_GENERATION)


async def test_providers_without_keys_are_left_out() -> None:
    config = config_from_mapping({"providers": {"gemini": {}}}, env={})
    async with aiohttp.ClientSession() as session:
        registry = build_registry(config, session)
    assert registry.names() == ("local",)


async def test_environment_keys_configure_the_default_tables() -> None:
    env = {"GEMINI_API_KEY": "g", "STABILITY_API_KEY": "s", "OPENAI_API_KEY": "o"}
    async with aiohttp.ClientSession() as session:
        registry = build_registry(config_from_mapping({}, env=env), session)
    assert registry.names() == ("gemini", "local", "openai", "stability")


@pytest.mark.parametrize(
    ("providers", "words"),
    [
        ({"x": {"kind": "nope", "api_key": "k"}}, "unknown kind 'nope'"),
        ({"x": {"kind": "openai-compatible"}}, "needs base_url"),
        ({"azure": {"api_key": "k"}}, "needs endpoint"),
        (
            {"x": {"kind": "openai-compatible", "base_url": "http://h/v1", "operations": ["variations"]}},
            r"providers\.x\.operations\[0\]: must be one of .*got 'variations'",
        ),
    ],
)
async def test_configuration_mistakes(providers: dict[str, object], words: str) -> None:
    """Refused when the file is read (config_checks) or when the adapters are built."""
    async with aiohttp.ClientSession() as session:
        with pytest.raises(ConfigError, match=words):
            build_registry(config_from_mapping({"providers": providers}, env={}), session)


async def test_compatible_operations_may_name_image_variation() -> None:
    table = {
        "kind": "openai-compatible",
        "base_url": "http://127.0.0.1:9/v1",
        "operations": ["image_variation"],
    }
    registry = build_registry(config_from_mapping({"providers": {"sd": table}}, env={}))
    try:
        assert registry.supports("sd/sdxl", RequestType.IMAGE_VARIATION)
        assert not registry.supports("sd/sdxl", RequestType.IMAGE_EDIT)
    finally:
        await registry.close()
