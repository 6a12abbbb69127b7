"""Retry and fallback decisions (grpc_server.domain.retry), as tables."""

from __future__ import annotations

import pytest

from grpc_server.config import RetrySettings
from grpc_server.domain.retry import Decision, NextModel, Retry, backoff_delay, chain_error, decide
from grpc_server.providers.base import ProviderError, retryable_status

SETTINGS = RetrySettings(max_attempts=3, base_delay_seconds=1.0, max_delay_seconds=8.0)


def http_error(status: int, retry_after: float | None = None) -> ProviderError:
    # Classified as an adapter does it.
    return ProviderError(
        f"status {status}", status_code=status, retryable=retryable_status(status), retry_after=retry_after
    )


TIMEOUT = ProviderError("timed out", status_code=504, type="timeout", retryable=True)
CONNECTION = ProviderError("refused", status_code=503, type="connection_error", retryable=True)


@pytest.mark.parametrize(
    ("error", "attempt", "jitter", "expected"),
    [
        # Retryable without a hint: equal-jitter backoff, base 1s, ceiling 1s on the first retry.
        pytest.param(http_error(429), 1, 0.0, Retry(0.5), id="429-backoff"),
        pytest.param(http_error(429, retry_after=3.0), 1, 0.0, Retry(3.0), id="429-retry-after"),
        pytest.param(http_error(429, retry_after=3.0), 2, 0.999, Retry(3.0), id="retry-after-ignores-jitter"),
        pytest.param(http_error(429, retry_after=0.0), 1, 0.5, Retry(0.0), id="retry-after-zero"),
        pytest.param(http_error(429, retry_after=8.0), 1, 0.0, Retry(8.0), id="retry-after-at-cap"),
        pytest.param(http_error(500), 1, 0.0, Retry(0.5), id="500"),
        pytest.param(http_error(500), 2, 0.0, Retry(1.0), id="500-second-retry"),
        pytest.param(http_error(503), 1, 0.5, Retry(0.75), id="503"),
        pytest.param(http_error(503, retry_after=2.0), 1, 0.5, Retry(2.0), id="503-retry-after"),
        pytest.param(http_error(408), 1, 0.0, Retry(0.5), id="408"),
        pytest.param(http_error(409), 1, 0.0, Retry(0.5), id="409"),
        pytest.param(TIMEOUT, 1, 0.0, Retry(0.5), id="timeout"),
        pytest.param(CONNECTION, 2, 0.0, Retry(1.0), id="connection-error"),
    ],
)
def test_retryable_errors_retry(
    error: ProviderError, attempt: int, jitter: float, expected: Decision
) -> None:
    assert decide(error, attempt, SETTINGS, jitter) == expected


@pytest.mark.parametrize(
    ("error", "attempt"),
    [
        pytest.param(http_error(400), 1, id="400"),
        pytest.param(http_error(401), 1, id="401"),
        pytest.param(http_error(403), 1, id="403"),
        pytest.param(http_error(404), 1, id="404"),
        pytest.param(http_error(422), 1, id="422"),
        pytest.param(http_error(429, retry_after=8.5), 1, id="retry-after-above-cap"),
        pytest.param(http_error(503, retry_after=3600.0), 1, id="retry-after-far-above-cap"),
        pytest.param(http_error(429), 3, id="429-attempts-exhausted"),
        pytest.param(http_error(500), 3, id="500-attempts-exhausted"),
        pytest.param(TIMEOUT, 3, id="timeout-attempts-exhausted"),
        pytest.param(http_error(429, retry_after=1.0), 3, id="retry-after-attempts-exhausted"),
        pytest.param(ProviderError("x", status_code=None, retryable=False), 1, id="no-status-not-retryable"),
    ],
)
def test_other_errors_move_to_next_model(error: ProviderError, attempt: int) -> None:
    decision = decide(error, attempt, SETTINGS, 0.5)
    assert isinstance(decision, NextModel)
    assert decision.reason


def test_retryable_flag_is_trusted_over_status() -> None:
    # The adapter decides: a 500 it knows to be permanent is not retried.
    error = ProviderError("bad prompt", status_code=500, retryable=False)
    assert isinstance(decide(error, 1, SETTINGS, 0.0), NextModel)


@pytest.mark.parametrize("max_attempts", [0, 1])
def test_single_attempt_never_retries(max_attempts: int) -> None:
    settings = RetrySettings(max_attempts=max_attempts)
    assert isinstance(decide(http_error(503), 1, settings, 0.0), NextModel)


@pytest.mark.parametrize(
    ("retry_number", "jitter", "expected"),
    [
        # Ceilings 1, 2, 4, 8, then capped at 8; delay in [ceiling/2, ceiling).
        (1, 0.0, 0.5),
        (2, 0.0, 1.0),
        (3, 0.0, 2.0),
        (4, 0.0, 4.0),
        (5, 0.0, 4.0),
        (50, 0.0, 4.0),
        (10_000, 0.0, 4.0),
        (1, 0.5, 0.75),
        (3, 0.5, 3.0),
        (1, 0.999, 0.9995),
        (6, 0.999, 7.996),
    ],
)
def test_backoff_delay(retry_number: int, jitter: float, expected: float) -> None:
    assert backoff_delay(retry_number, SETTINGS, jitter) == pytest.approx(expected)


def test_backoff_grows_then_caps() -> None:
    delays = [backoff_delay(n, SETTINGS, 0.0) for n in range(1, 8)]
    assert delays == sorted(delays)
    assert delays[0] < delays[3]
    assert max(delays) == SETTINGS.max_delay_seconds / 2


@pytest.mark.parametrize("jitter", [0.0, 0.25, 0.999])
@pytest.mark.parametrize("retry_number", [1, 2, 3, 4, 5, 20])
def test_backoff_within_bounds(retry_number: int, jitter: float) -> None:
    ceiling = min(SETTINGS.max_delay_seconds, SETTINGS.base_delay_seconds * 2 ** (retry_number - 1))
    delay = backoff_delay(retry_number, SETTINGS, jitter)
    assert ceiling / 2 <= delay < ceiling
    assert delay <= SETTINGS.max_delay_seconds


@pytest.mark.parametrize(("retry_number", "jitter"), [(0, 0.0), (-1, 0.0), (1, -0.1), (1, 1.0)])
def test_backoff_rejects_bad_arguments(retry_number: int, jitter: float) -> None:
    with pytest.raises(ValueError):
        backoff_delay(retry_number, SETTINGS, jitter)


def test_chain_error_is_the_primarys() -> None:
    primary = http_error(503)
    fallback = http_error(400)
    last = http_error(500)
    assert chain_error([primary, fallback, last]) is primary
    assert chain_error([fallback]) is fallback


def test_chain_error_needs_an_error() -> None:
    with pytest.raises(ValueError):
        chain_error([])
