"""Result lifetime (docs/rest-api.md §3): the clock starts at completion."""

from __future__ import annotations

from datetime import datetime, timedelta

ZERO_TTL_MEANS = 3600


def resolve_ttl(requested: int | None, default: int, maximum: int) -> int:
    """The TTL a job gets from what the caller asked for.

    Unset or negative: the configured default. 0: 3600 (as the gateway does).
    Positive: as asked, capped at the configured maximum.
    """
    if requested is None or requested < 0:
        return min(default, maximum)
    if requested == 0:
        return min(ZERO_TTL_MEANS, maximum)
    return min(requested, maximum)


def expiry(completed_at: datetime, ttl_seconds: int) -> datetime:
    return completed_at + timedelta(seconds=ttl_seconds)
