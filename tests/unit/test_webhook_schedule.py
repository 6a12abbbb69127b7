"""The retry schedule, table-tested: what follows each attempt, with jitter and Retry-After."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from grpc_server.config import WEBHOOK_RETRY_SCHEDULE
from grpc_server.webhooks.schedule import (
    JITTER_FRACTION,
    Decision,
    Delivered,
    DisableEndpoint,
    GiveUp,
    RetryAt,
    decide,
    retry_after_seconds,
)

NOW = datetime(2026, 12, 4, 16, 0, 0, tzinfo=UTC)
HOUR = 3600.0


def _at(seconds: float) -> RetryAt:
    return RetryAt(NOW + timedelta(seconds=seconds))


@pytest.mark.parametrize(
    ("attempt", "outcome", "retry_after", "jitter", "decision"),
    [
        # 2xx delivers, whatever the attempt.
        (1, 200, None, 0.0, Delivered()),
        (3, 204, None, 0.5, Delivered()),
        (8, 299, None, 0.5, Delivered()),
        # 410 disables the endpoint, even with retries left.
        (1, 410, None, 0.0, DisableEndpoint()),
        (8, 410, None, 0.0, DisableEndpoint()),
        # Anything else retries on the schedule: 5 s, 5 min, 30 min, 2 h, 5 h, 10 h, 10 h.
        (1, 500, None, 0.0, _at(5)),
        (2, 503, None, 0.0, _at(300)),
        (3, 404, None, 0.0, _at(1800)),
        (4, 302, None, 0.0, _at(2 * HOUR)),
        (5, "timeout", None, 0.0, _at(5 * HOUR)),
        (6, "connection_error", None, 0.0, _at(10 * HOUR)),
        (7, 400, None, 0.0, _at(10 * HOUR)),
        (8, 500, None, 0.0, GiveUp()),
        (9, "timeout", None, 0.0, GiveUp()),
        # Jitter stretches a step by up to JITTER_FRACTION, never shortens it.
        (1, 500, None, 1.0, _at(5 * (1 + JITTER_FRACTION))),
        (2, 500, None, 0.5, _at(300 * (1 + JITTER_FRACTION / 2))),
        # A longer Retry-After is honoured...
        (1, 429, 60.0, 0.0, _at(60)),
        (1, 503, 3 * HOUR, 0.0, _at(3 * HOUR)),
        # ...up to the schedule's largest step...
        (1, 429, 7 * 24 * HOUR, 0.0, _at(10 * HOUR)),
        # ...and a shorter one changes nothing.
        (3, 429, 10.0, 0.0, _at(1800)),
        (1, 429, 5.5, 1.0, _at(6)),
        # 2xx and 410 are final even when a Retry-After came with them.
        (1, 200, 60.0, 0.0, Delivered()),
        (1, 410, 60.0, 0.0, DisableEndpoint()),
    ],
)
def test_decide(
    attempt: int, outcome: int | str, retry_after: float | None, jitter: float, decision: Decision
) -> None:
    assert decide(attempt, outcome, retry_after, NOW, jitter) == decision


def test_the_default_schedule_spans_more_than_a_day_in_eight_attempts() -> None:
    decision: Decision = RetryAt(NOW)
    attempts = 0
    last_retry = NOW
    while isinstance(decision, RetryAt):
        last_retry = decision.at
        attempts += 1
        decision = decide(attempts, 500, None, last_retry, 0.0)
    assert attempts == 8 and decision == GiveUp()
    assert last_retry - NOW > timedelta(days=1)


def test_a_configured_schedule_is_followed() -> None:
    schedule = (1.0, 2.0)
    assert decide(1, 500, None, NOW, 0.0, schedule) == _at(1)
    assert decide(2, 500, None, NOW, 0.0, schedule) == _at(2)
    assert decide(3, 500, None, NOW, 0.0, schedule) == GiveUp()
    assert decide(1, 429, 100.0, NOW, 0.0, schedule) == _at(2)  # capped at its largest step


def test_an_empty_schedule_gives_up_after_the_first_attempt() -> None:
    assert decide(1, 500, None, NOW, 0.0, ()) == GiveUp()
    assert decide(1, 200, None, NOW, 0.0, ()) == Delivered()


@pytest.mark.parametrize(("attempt", "jitter"), [(0, 0.0), (1, -0.1), (1, 1.5)])
def test_an_impossible_attempt_or_jitter_is_refused(attempt: int, jitter: float) -> None:
    with pytest.raises(ValueError):
        decide(attempt, 500, None, NOW, jitter)


def test_the_default_schedule_is_standard_webhooks_suggestion() -> None:
    assert WEBHOOK_RETRY_SCHEDULE == (5, 5 * 60, 30 * 60, 2 * HOUR, 5 * HOUR, 10 * HOUR, 10 * HOUR)


@pytest.mark.parametrize(
    ("header", "seconds"),
    [
        (None, None),
        ("", None),
        ("120", 120.0),
        (" 0 ", 0.0),
        ("Fri, 04 Dec 2026 16:02:00 GMT", 120.0),
        ("Fri, 04 Dec 2026 15:00:00 GMT", 0.0),  # a date in the past: now
        ("-5", None),
        ("1.5", None),
        ("soon", None),
        ("Fri, 04 Dec 2026 16:02:00 -0000", None),  # no zone: not an HTTP date
    ],
)
def test_retry_after_is_read_as_seconds_or_an_http_date(header: str | None, seconds: float | None) -> None:
    assert retry_after_seconds(header, NOW) == seconds
