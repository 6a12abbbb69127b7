"""A provider's API keys: a weighted choice, with keys set aside after 429 or 401.

pool = KeyPool(settings.keys)
with pool.lease() as key:          # key is None when the provider has no keys
    ... call the provider with key; a ProviderError raised inside with status
    429 sets the key aside for its Retry-After (or RATE_LIMIT_ASIDE), 401/403
    for AUTH_ASIDE, so that other keys carry the load meanwhile ...
"""

from __future__ import annotations

import contextlib
import random
import time
from collections.abc import Callable, Iterator, Sequence

from grpc_server.config import ApiKey
from grpc_server.providers.base import ProviderError

RATE_LIMIT_ASIDE = 30.0
"""Seconds a key sits out after a 429 that named no Retry-After."""
AUTH_ASIDE = 300.0
"""Seconds a key sits out after a 401 or 403: it is probably revoked or unpaid."""


class KeyPool:
    def __init__(
        self,
        keys: Sequence[ApiKey],
        *,
        clock: Callable[[], float] = time.monotonic,
        rand: Callable[[], float] = random.random,
    ) -> None:
        self._keys = list(keys)
        self._aside_until: dict[str, float] = {}
        self._clock = clock
        self._rand = rand

    def __len__(self) -> int:
        return len(self._keys)

    def pick(self) -> str | None:
        """A key by weight among those not set aside; if all are, the one back soonest."""
        if not self._keys:
            return None
        now = self._clock()
        ready = [k for k in self._keys if self._aside_until.get(k.value, 0.0) <= now]
        if not ready:
            return min(self._keys, key=lambda k: self._aside_until[k.value]).value
        point = self._rand() * sum(k.weight for k in ready)
        for key in ready:
            point -= key.weight
            if point < 0:
                return key.value
        return ready[-1].value

    def set_aside(self, key: str, seconds: float) -> None:
        self._aside_until[key] = max(self._aside_until.get(key, 0.0), self._clock() + seconds)

    @contextlib.contextmanager
    def lease(self) -> Iterator[str | None]:
        key = self.pick()
        try:
            yield key
        except ProviderError as error:
            if key is not None and error.status_code == 429:
                self.set_aside(key, error.retry_after or RATE_LIMIT_ASIDE)
            elif key is not None and error.status_code in (401, 403) and not error.is_gateway_error:
                self.set_aside(key, AUTH_ASIDE)
            raise
