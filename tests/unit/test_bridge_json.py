"""The bridge's strict JSON reading: its limits at their edges."""

from __future__ import annotations

import json

import pytest

from rest_bridge.errors import BridgeError
from rest_bridge.json_body import MAX_DEPTH, parse_json_object


def _nested(depth: int) -> bytes:
    return b'{"x": ' + b"[" * depth + b"]" * depth + b"}"


def test_nesting_up_to_the_limit_is_read() -> None:
    assert parse_json_object(_nested(MAX_DEPTH))["x"] is not None


def test_one_level_more_is_refused_naming_the_field() -> None:
    with pytest.raises(BridgeError) as caught:
        parse_json_object(_nested(MAX_DEPTH + 1))
    assert (caught.value.status, caught.value.param) == (400, "x")


@pytest.mark.parametrize("number", [b"-1.5e308", b"18446744073709551615", b"-18446744073709551615", b"0.1"])
def test_large_finite_numbers_are_read(number: bytes) -> None:
    assert parse_json_object(b'{"extra": ' + number + b"}")["extra"] == json.loads(number)


@pytest.mark.parametrize("number", [b"1e309", b"-1e309", b"18446744073709551616", b"NaN", b"Infinity"])
def test_numbers_no_field_can_hold_are_refused(number: bytes) -> None:
    with pytest.raises(BridgeError) as caught:
        parse_json_object(b'{"extra": [' + number + b"]}")
    assert (caught.value.status, caught.value.param) == (400, "extra")


def test_the_same_key_in_different_objects_is_fine() -> None:
    assert parse_json_object(b'{"a": {"k": 1}, "b": {"k": 2}}') == {"a": {"k": 1}, "b": {"k": 2}}


def test_paired_surrogate_escapes_are_text() -> None:
    assert parse_json_object(b'{"prompt": "\\ud83e\\udd8a"}')["prompt"] == "\U0001f98a"
