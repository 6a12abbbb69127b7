"""Form text -> typed values in the REST bridge (what the image edit form's fields become)."""

from __future__ import annotations

import pytest

from rest_bridge.errors import BridgeError
from rest_bridge.form import parse_bool, parse_int


@pytest.mark.parametrize(
    ("text", "expected"),
    [("5", 5), ("+5", 5), ("-3", -3), ("0", 0), ("007", 7), ("1024", 1024), ("2147483647", 2**31 - 1)],
)
def test_integers(text: str, expected: int) -> None:
    assert parse_int("n", text) == expected


@pytest.mark.parametrize(
    "text", ["two", "", " 5", "5 ", "\t5", "1_0", "1.5", "1e3", "0x10", "+", "-", "--1", "\uff15"]
)
def test_other_text_is_not_an_integer(text: str) -> None:
    with pytest.raises(BridgeError) as caught:
        parse_int("n", text)
    assert (caught.value.status, caught.value.param) == (400, "n")
    assert caught.value.message == f"invalid n value: {text!r} (expected an integer)"


@pytest.mark.parametrize("text", ["2147483648", "-2147483649", "9" * 21, "9" * 5000])
def test_integers_out_of_range(text: str) -> None:
    with pytest.raises(BridgeError) as caught:
        parse_int("n", text)
    assert caught.value.param == "n" and caught.value.message.endswith("(out of range)")


def test_64_bit_fields_take_64_bit_values() -> None:
    assert parse_int("seed", str(2**63 - 1), 64) == 2**63 - 1


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("true", True),
        ("TRUE", True),
        ("1", True),
        ("false", False),
        ("False", False),
        ("0", False),
        ("", False),
    ],
)
def test_booleans(text: str, expected: bool) -> None:
    assert parse_bool("stream", text) is expected


@pytest.mark.parametrize("text", ["yes", "no", "2", "on", "t", "01"])
def test_other_text_is_not_a_boolean(text: str) -> None:
    with pytest.raises(BridgeError) as caught:
        parse_bool("stream", text)
    assert caught.value.param == "stream"
    assert caught.value.message == f"invalid stream value: {text!r} (expected true or false)"
