"""The `x-bf-async-job-result-ttl` header (the result TTL of a submit), as HTTP text.

Only a plain integer counts (an optional sign, then digits, nothing around
them); anything else means "not given" and the server's default applies. The
rules for 0, negatives and the cap are the server's, applied to the number.
"""

from __future__ import annotations

import re

TTL_HEADER = "x-bf-async-job-result-ttl"
_INTEGER = re.compile(r"[+-]?[0-9]{1,18}")


def parse_ttl_header(value: str | None) -> int | None:
    if value is None or not _INTEGER.fullmatch(value):
        return None
    return int(value)
