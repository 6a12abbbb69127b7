"""Text checks shared by the bridge's parsers."""

from __future__ import annotations


def is_utf8(text: str) -> bool:
    """Whether `text` can be UTF-8 at all: aiohttp reads bytes that are not UTF-8 as lone
    surrogates, which no proto string field can hold."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True
