"""The configured provider adapters, by name: `provider/model` picks one."""

from __future__ import annotations

from collections.abc import Mapping

from grpc_server.domain.jobs import split_model
from grpc_server.providers.base import Provider


class ProviderRegistry:
    """Provider name -> adapter. Built once at start-up; read-only afterwards."""

    def __init__(self, providers: Mapping[str, Provider]) -> None:
        # A private copy, so a caller mutating its mapping cannot change a running server.
        self._providers: dict[str, Provider] = dict(providers)

    def get(self, name: str) -> Provider | None:
        return self._providers.get(name)

    def resolve(self, model: str) -> tuple[Provider, str] | None:
        """`provider/model` -> (adapter, bare model name); None when malformed or not configured."""
        parts = split_model(model)
        if parts is None:
            return None
        provider = self._providers.get(parts[0])
        if provider is None:
            return None
        return provider, parts[1]

    def names(self) -> tuple[str, ...]:
        """The configured provider names, sorted."""
        return tuple(sorted(self._providers))
