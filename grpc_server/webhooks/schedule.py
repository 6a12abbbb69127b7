"""After an attempt: deliver again at T, give up, or disable the endpoint. Pure functions.

The schedule is the endpoint's list of delays before each retry (Standard Webhooks'
suggestion by default: 5 s, 5 min, 30 min, 2 h, 5 h, 10 h, 10 h after the immediate first
attempt). Each delay is stretched by up to JITTER_FRACTION so that endpoints failing
together do not retry together. A receiver's Retry-After that asks for longer is honoured,
capped at the schedule's largest step (a receiver cannot park an event for a week).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from email.utils import parsedate_to_datetime

from grpc_server.config import WEBHOOK_RETRY_SCHEDULE

JITTER_FRACTION = 0.2
"""A retry waits its step times 1 to 1 + JITTER_FRACTION (jitter 0 to 1): never sooner."""
GONE = 410
"""The receiver says the endpoint is gone for good: disable it, retry nothing."""


@dataclass(frozen=True)
class Delivered:
    """A 2xx: the event is delivered."""


@dataclass(frozen=True)
class RetryAt:
    """Not delivered yet: attempt again at `at`."""

    at: datetime


@dataclass(frozen=True)
class GiveUp:
    """Not delivered, and the schedule is spent."""


@dataclass(frozen=True)
class DisableEndpoint:
    """410 Gone: the endpoint is disabled (its pending events are not sent)."""


Decision = Delivered | RetryAt | GiveUp | DisableEndpoint


def retry_after_seconds(value: str | None, now: datetime) -> float | None:
    """A Retry-After header as seconds from `now`: delta-seconds or an HTTP date (a date in
    the past is 0); None when absent or unreadable."""
    if value is None or not value.strip():
        return None
    text = value.strip()
    if text.isdigit():
        return float(text)
    try:
        when = parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:  # "-0000" dates parse naive; HTTP dates are GMT
        return None
    return max(0.0, (when - now).total_seconds())


def decide(
    attempt: int,
    outcome: int | str,
    retry_after: float | None,
    now: datetime,
    jitter: float,
    schedule: Sequence[float] = WEBHOOK_RETRY_SCHEDULE,
) -> Decision:
    """What follows attempt number `attempt` (1 for the first) that ended with `outcome`: an
    HTTP status, or the error class of a failure without one ("timeout", "connection_error").
    `retry_after` is the receiver's Retry-After in seconds, `jitter` a random number in [0, 1]
    (passed in so that this stays a pure function)."""
    if attempt < 1:
        raise ValueError(f"attempt must be >= 1, got {attempt}")
    if not 0.0 <= jitter <= 1.0:
        raise ValueError(f"jitter must be between 0 and 1, got {jitter}")
    if isinstance(outcome, int) and 200 <= outcome < 300:
        return Delivered()
    if outcome == GONE:
        return DisableEndpoint()
    if attempt > len(schedule):
        return GiveUp()
    delay = schedule[attempt - 1] * (1.0 + JITTER_FRACTION * jitter)
    if retry_after is not None and retry_after > delay:
        delay = max(delay, min(retry_after, max(schedule)))
    return RetryAt(now + timedelta(seconds=delay))
