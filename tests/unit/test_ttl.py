"""TTL rules (docs/rest-api.md §3): header text -> number (bridge), number -> TTL (server)."""

from __future__ import annotations

import pytest

from grpc_server.domain.ttl import resolve_ttl
from rest_bridge.ttl import parse_ttl_header


@pytest.mark.parametrize(
    ("header", "parsed"),
    [
        (None, None),
        ("", None),
        ("abc", None),
        (" 5", None),
        ("5 ", None),
        ("5.0", None),
        ("1e3", None),
        ("0x10", None),
        ("\uff15", None),  # a fullwidth digit five is not an ASCII integer
        ("5", 5),
        ("+5", 5),
        ("-5", -5),
        ("0", 0),
        ("007", 7),
        ("9" * 19, None),  # beyond any sensible TTL: treated as not an integer rather than overflowing
    ],
)
def test_parse_ttl_header(header: str | None, parsed: int | None) -> None:
    assert parse_ttl_header(header) == parsed


DEFAULT, MAXIMUM = 1800, 86400


@pytest.mark.parametrize(
    ("requested", "ttl"),
    [
        (None, DEFAULT),
        (-5, DEFAULT),
        (-1, DEFAULT),
        (0, 3600),
        (1, 1),
        (5, 5),
        (3600, 3600),
        (MAXIMUM, MAXIMUM),
        (MAXIMUM + 1, MAXIMUM),
        (10**12, MAXIMUM),
    ],
)
def test_resolve_ttl(requested: int | None, ttl: int) -> None:
    assert resolve_ttl(requested, DEFAULT, MAXIMUM) == ttl


def test_zero_and_default_are_capped_by_a_small_maximum() -> None:
    assert resolve_ttl(0, 3600, 60) == 60
    assert resolve_ttl(None, 3600, 60) == 60
