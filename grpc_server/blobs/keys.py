"""Blob keys: checked before any store touches a path or a bucket with them.

A key is segments of ASCII letters, digits and `._-`, separated by `/`, none of them empty,
`.` or `..`, and no leading `/` (see base). Keys come from the job stores, never from users,
so a bad one is a programming error: ValueError.
"""

from __future__ import annotations

import re

_SEGMENT = re.compile(r"[A-Za-z0-9._-]+")
_PARTIAL = re.compile(r"[A-Za-z0-9._-]*")


def _check_segment(segment: str, what: str, text: str) -> None:
    if not _SEGMENT.fullmatch(segment) or segment in (".", ".."):
        raise ValueError(f"bad blob {what} {text!r}: segments of ASCII letters, digits, ._- (not . or ..)")


def check_key(key: str) -> str:
    """`key`, when it is a valid blob key; ValueError otherwise."""
    for segment in key.split("/"):
        _check_segment(segment, "key", key)
    return key


def check_prefix(prefix: str) -> str:
    """`prefix`, when some keys could start with it: whole segments each followed by `/`, then
    perhaps the start of one more ("" and "<job id>/" are the usual ones); ValueError otherwise."""
    *whole, partial = prefix.split("/")
    for segment in whole:
        _check_segment(segment, "prefix", prefix)
    if not _PARTIAL.fullmatch(partial):
        raise ValueError(f"bad blob prefix {prefix!r}: keys are ASCII letters, digits and ._- between /")
    return prefix


def split_prefix(prefix: str) -> tuple[list[str], str]:
    """A checked prefix as its whole segments and the start of the next one."""
    *whole, partial = check_prefix(prefix).split("/")
    return whole, partial
