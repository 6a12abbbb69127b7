"""The provider adapters a server runs with, built from its configuration.

`local` is always there. Every `[providers.NAME]` table becomes an adapter of its
`kind` (the table's name by default) once it has what it needs to make a call: a key
for openai, azure, gemini and stability (Azure also an endpoint), a base URL for
openai-compatible servers, which may need no key. A default table that only the
environment could fill and did not (no OPENAI_API_KEY, say) is left out, so a model
of that provider is refused at submit as "not configured".
"""

from __future__ import annotations

from collections.abc import Callable

import aiohttp

from grpc_server.config import ConfigError, ProviderSettings, ServerConfig
from grpc_server.providers.azure import AzureOpenAIProvider
from grpc_server.providers.base import Provider
from grpc_server.providers.gemini import GeminiProvider
from grpc_server.providers.local import LocalProvider
from grpc_server.providers.openai import OpenAICompatibleProvider, OpenAIProvider
from grpc_server.providers.registry import ProviderRegistry
from grpc_server.providers.stability import StabilityProvider

Build = Callable[[aiohttp.ClientSession, ProviderSettings, str], Provider]

KEYED: dict[str, Build] = {
    "openai": OpenAIProvider,
    "azure": AzureOpenAIProvider,
    "gemini": GeminiProvider,
    "stability": StabilityProvider,
}


def _adapter(name: str, settings: ProviderSettings, session: aiohttp.ClientSession) -> Provider | None:
    kind = settings.kind or name
    if kind == "local":
        return LocalProvider(name)
    if kind == "openai-compatible":
        if not settings.base_url:
            raise ConfigError(f"providers.{name}: an openai-compatible provider needs base_url")
        return OpenAICompatibleProvider(session, settings, name)
    build = KEYED.get(kind)
    if build is None:
        known = ", ".join(["local", "openai-compatible", *KEYED])
        raise ConfigError(f"providers.{name}: unknown kind {kind!r} (expected one of {known})")
    if not settings.keys:
        return None
    if kind == "azure" and not settings.base_url:
        raise ConfigError(f"providers.{name}: Azure OpenAI needs endpoint (or AZURE_OPENAI_ENDPOINT)")
    return build(session, settings, name)


def build_registry(config: ServerConfig, session: aiohttp.ClientSession) -> ProviderRegistry:
    providers: dict[str, Provider] = {"local": LocalProvider()}
    for name, settings in config.providers.items():
        adapter = _adapter(name, settings, session)
        if adapter is not None:
            providers[name] = adapter
    limits = {name: settings.max_concurrency for name, settings in config.providers.items()}
    return ProviderRegistry(providers, limits)
