"""The configured provider adapters, by name: `provider/model` picks one."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Mapping, Sequence
from contextlib import AbstractAsyncContextManager

import aiohttp

from grpc_server.domain.jobs import ModelRef, RequestType
from grpc_server.providers.base import Provider


class ProviderRegistry:
    """Provider name -> adapter. Built once at start-up; read-only afterwards."""

    def __init__(
        self,
        providers: Mapping[str, Provider],
        limits: Mapping[str, int | None] | None = None,
        *,
        sessions: Sequence[aiohttp.ClientSession] = (),
    ) -> None:
        """sessions: the HTTP sessions the adapters use and the registry owns (see close)."""
        # A private copy, so a caller mutating its mapping cannot change a running server.
        self._providers: dict[str, Provider] = dict(providers)
        self._slots = {name: asyncio.Semaphore(n) for name, n in (limits or {}).items() if n}
        self._sessions = tuple(sessions)

    async def close(self) -> None:
        """Close the sessions the registry owns (each provider's connection pool)."""
        for session in self._sessions:
            await session.close()

    def get(self, name: str) -> Provider | None:
        return self._providers.get(name)

    def resolve(self, model: str) -> tuple[Provider, str] | None:
        """`provider/model` -> (adapter, bare model name); None when malformed or not configured."""
        ref = ModelRef.parse(model)
        provider = self._providers.get(ref.provider) if ref else None
        if ref is None or provider is None:
            return None
        return provider, ref.name

    def supports(self, model: str, request_type: RequestType) -> bool:
        """Whether `provider/model` names a configured provider that offers this operation."""
        resolved = self.resolve(model)
        return resolved is not None and resolved[0].supports(request_type)

    def slot(self, name: str) -> AbstractAsyncContextManager[object]:
        """Held around each call to a provider: bounds its calls in flight when configured."""
        semaphore = self._slots.get(name)
        return semaphore if semaphore is not None else contextlib.nullcontext()

    def names(self) -> tuple[str, ...]:
        """The configured provider names, sorted."""
        return tuple(sorted(self._providers))
