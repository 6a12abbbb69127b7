"""Provider keys: weighted choice, set aside after 429 and 401."""

from __future__ import annotations

from collections import Counter

import pytest

from grpc_server.config import ApiKey
from grpc_server.providers.base import ProviderError
from grpc_server.providers.keys import AUTH_ASIDE, RATE_LIMIT_ASIDE, KeyPool


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_no_keys_gives_none() -> None:
    assert KeyPool([]).pick() is None


@pytest.mark.parametrize(("point", "expected"), [(0.0, "a"), (0.24, "a"), (0.26, "b"), (0.99, "b")])
def test_weighted_choice(point: float, expected: str) -> None:
    pool = KeyPool([ApiKey("a", 1), ApiKey("b", 3)], rand=lambda: point)
    assert pool.pick() == expected


def test_weights_spread_the_load() -> None:
    values = iter(i / 1000 for i in range(1000))
    pool = KeyPool([ApiKey("a", 1), ApiKey("b", 3)], rand=lambda: next(values))
    counts = Counter(pool.pick() for _ in range(1000))
    assert counts == {"a": 250, "b": 750}


@pytest.mark.parametrize(
    ("error", "aside"),
    [
        (ProviderError("slow down", status_code=429, retry_after=7), 7),
        (ProviderError("slow down", status_code=429), RATE_LIMIT_ASIDE),
        (ProviderError("bad key", status_code=401), AUTH_ASIDE),
        (ProviderError("forbidden", status_code=403), AUTH_ASIDE),
    ],
)
def test_a_failing_key_sits_out_then_returns(error: ProviderError, aside: float) -> None:
    clock = Clock()
    pool = KeyPool([ApiKey("a"), ApiKey("b")], clock=clock, rand=lambda: 0.0)
    with pytest.raises(ProviderError), pool.lease() as key:
        assert key == "a"
        raise error
    assert pool.pick() == "b"
    clock.now += aside - 0.01
    assert pool.pick() == "b"
    clock.now += 0.02
    assert pool.pick() == "a"


def test_other_errors_keep_the_key() -> None:
    pool = KeyPool([ApiKey("a"), ApiKey("b")], rand=lambda: 0.0)
    with pytest.raises(ProviderError), pool.lease():
        raise ProviderError("boom", status_code=500)
    assert pool.pick() == "a"


def test_when_every_key_sits_out_the_first_back_is_used() -> None:
    clock = Clock()
    pool = KeyPool([ApiKey("a"), ApiKey("b")], clock=clock)
    pool.set_aside("a", 50)
    pool.set_aside("b", 10)
    assert pool.pick() == "b"
