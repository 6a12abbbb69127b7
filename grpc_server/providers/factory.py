"""The provider adapters a server runs with, built from its configuration.

`local` is always there. Every `[providers.NAME]` table becomes an adapter of its
`kind` (the table's name by default) once it has what it needs to make a call: a key
for openai, azure, gemini and stability (Azure also an endpoint), a base URL for
openai-compatible servers, which may need no key. A default table that only the
environment could fill and did not (no OPENAI_API_KEY, say) is left out, so a model
of that provider is refused at submit as "not configured". Local adapters work on
inputs of at most `local_max_pixels` pixels.

Connection pools: each HTTP adapter gets an aiohttp session of its own whose connector
allows exactly `max_concurrency` connections at once (`limit=max_concurrency`; unset:
`limit=0`, unlimited). The registry's slot holds a call to `max_concurrency` as well,
so a provider is never sent more requests at once than its setting allows, and a call
that holds a slot never waits behind another provider's connections (aiohttp's default
connector would cap every provider together at 100). The sessions have no total
timeout of their own (aiohttp's default is 5 minutes): the per-attempt timeout is the
chain runner's, from the provider's `timeout_seconds`. `registry.close()` closes them.
A caller that passes its own session instead shares it among every adapter and closes
it itself (the old arrangement, kept for compatibility).
"""

from __future__ import annotations

from collections.abc import Callable

import aiohttp

from grpc_server.config import ConfigError, ProviderSettings, ServerConfig
from grpc_server.providers.azure import AzureOpenAIProvider
from grpc_server.providers.base import Provider
from grpc_server.providers.gemini import GeminiProvider
from grpc_server.providers.local import LocalProvider
from grpc_server.providers.openai import OpenAICompatibleProvider, OpenAIProvider, offered_operations
from grpc_server.providers.registry import ProviderRegistry
from grpc_server.providers.stability import StabilityProvider

Build = Callable[[aiohttp.ClientSession, ProviderSettings, str], Provider]

KEYED: dict[str, Build] = {
    "openai": OpenAIProvider,
    "azure": AzureOpenAIProvider,
    "gemini": GeminiProvider,
    "stability": StabilityProvider,
}
CONNECT_TIMEOUT = 30.0
"""Seconds to open a connection (aiohttp's default), the only timeout a session sets."""


def provider_session(settings: ProviderSettings) -> aiohttp.ClientSession:
    """A session of one provider's own: at most max_concurrency connections (unset: no limit)."""
    connector = aiohttp.TCPConnector(limit=settings.max_concurrency or 0, limit_per_host=0)
    timeout = aiohttp.ClientTimeout(total=None, sock_connect=CONNECT_TIMEOUT)
    return aiohttp.ClientSession(connector=connector, timeout=timeout)


def _build(name: str, settings: ProviderSettings) -> Build | None:
    """How to build the HTTP adapter of a table; None when it has no key (left out).
    ConfigError for a table that cannot work."""
    kind = settings.kind or name
    if kind == "openai-compatible":
        if not settings.base_url:
            raise ConfigError(f"providers.{name}: an openai-compatible provider needs base_url")
        try:
            offered_operations(settings.operations, name)
        except ValueError as problem:
            raise ConfigError(str(problem)) from None
        return OpenAICompatibleProvider
    build = KEYED.get(kind)
    if build is None:
        known = ", ".join(["local", "openai-compatible", *KEYED])
        raise ConfigError(f"providers.{name}: unknown kind {kind!r} (expected one of {known})")
    if not settings.keys:
        return None
    if kind == "azure" and not settings.base_url:
        raise ConfigError(f"providers.{name}: Azure OpenAI needs endpoint (or AZURE_OPENAI_ENDPOINT)")
    return build


def build_registry(config: ServerConfig, session: aiohttp.ClientSession | None = None) -> ProviderRegistry:
    """The registry of every usable provider (see the module docstring); ConfigError first,
    before any session is opened."""
    providers: dict[str, Provider] = {"local": LocalProvider(max_pixels=config.local_max_pixels)}
    planned: dict[str, tuple[Build, ProviderSettings]] = {}
    for name, settings in config.providers.items():
        if (settings.kind or name) == "local":
            providers[name] = LocalProvider(name, max_pixels=config.local_max_pixels)
        elif (build := _build(name, settings)) is not None:
            planned[name] = (build, settings)
    owned: list[aiohttp.ClientSession] = []
    for name, (build, settings) in planned.items():
        own = session
        if own is None:
            own = provider_session(settings)
            owned.append(own)
        providers[name] = build(own, settings, name)
    limits = {name: settings.max_concurrency for name, settings in config.providers.items()}
    return ProviderRegistry(providers, limits, sessions=owned)
