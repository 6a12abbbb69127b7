"""The bridge's cache of ended jobs' answers: bounded in bytes, least recently used out first."""

from __future__ import annotations

from rest_bridge.render_cache import RenderCache


def key(n: int) -> tuple[str, int, bool, str]:
    return (f"job-{n}", 1, False, "http://127.0.0.1")


def test_answers_are_kept_and_the_least_recently_used_go_first() -> None:
    cache = RenderCache(max_bytes=1000)
    for n in range(4):
        cache.put(key(n), b"x" * 90)
    assert cache.get(key(0)) == b"x" * 90  # now the most recently used
    for n in range(4, 12):
        cache.put(key(n), b"y" * 90)
    assert cache.held_bytes <= 1000 and len(cache) == 11
    assert cache.get(key(1)) is None and cache.get(key(0)) is not None


def test_an_answer_over_a_tenth_of_the_bound_is_not_kept() -> None:
    cache = RenderCache(max_bytes=1000)
    cache.put(key(1), b"z" * 101)
    assert cache.get(key(1)) is None and cache.held_bytes == 0


def test_another_state_or_origin_is_another_answer() -> None:
    cache = RenderCache()
    cache.put(("job", 3, False, "http://a"), b"three")
    assert cache.get(("job", 4, False, "http://a")) is None
    assert cache.get(("job", 3, False, "http://b")) is None
    assert cache.get(("job", 3, True, "http://a")) is None
