"""Retry and fallback decisions: after a failed attempt, wait and retry, or move on.

Pure functions; the chain runner (grpc_server.dispatch.chain) does the calling,
the waiting and the timing. Randomness comes in as an argument so every decision
can be table-tested.

Rules, per model of the chain:

- A non-retryable error (ProviderError.retryable False: 400, 401, 403, 404, ...)
  moves straight to the next model; the same call would fail the same way.
  Adapters classify errors (429, 5xx, 408 and 409 are retryable); the runner marks
  timeouts and connection errors retryable. The flag is trusted as given.
- A model gets at most RetryPolicy.max_attempts calls, the first one included.
- With a Retry-After hint, wait exactly that long: the provider knows its own
  rate limits better than our backoff does. A hint above max_delay_seconds is not
  worth waiting for while other models are available, so move to the next model.
- Otherwise wait an exponential backoff with "equal jitter": half of the delay is
  fixed (so a retry is never immediate), half random (so clients that failed
  together do not retry together).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from grpc_server.domain.failures import ProviderError


class RetryPolicy(Protocol):
    """The settings a decision needs (grpc_server.config.RetrySettings is one)."""

    @property
    def max_attempts(self) -> int: ...

    @property
    def base_delay_seconds(self) -> float: ...

    @property
    def max_delay_seconds(self) -> float: ...


@dataclass(frozen=True)
class Retry:
    """Call the same model again after `delay` seconds."""

    delay: float


@dataclass(frozen=True)
class NextModel:
    """Give up on this model; `reason` is for the logs."""

    reason: str


Decision = Retry | NextModel


def backoff_delay(retry_number: int, settings: RetryPolicy, jitter: float) -> float:
    """Seconds to wait before retry number `retry_number` (1 = the first retry).

    The ceiling doubles from base_delay_seconds and is capped at max_delay_seconds;
    the delay is half the ceiling plus `jitter` (in [0, 1)) times the other half.
    """
    if retry_number < 1:
        raise ValueError(f"retry_number must be >= 1, got {retry_number}")
    if not 0.0 <= jitter < 1.0:
        raise ValueError(f"jitter must be in [0, 1), got {jitter}")
    # Cap the exponent before computing: 2**retry_number overflows a float for large numbers.
    exponent = min(retry_number - 1, 64)
    ceiling = min(settings.max_delay_seconds, settings.base_delay_seconds * 2.0**exponent)
    half = ceiling / 2
    return half + jitter * half


def decide(error: ProviderError, attempt: int, settings: RetryPolicy, jitter: float) -> Decision:
    """What to do after attempt number `attempt` (1-based) of one model failed with `error`.

    `jitter` in [0, 1) is drawn by the caller; it is ignored when the provider gave a
    Retry-After hint.
    """
    status = " ".join(str(part) for part in (error.status_code, error.type) if part) or "no status"
    if not error.retryable:
        return NextModel(f"not retryable ({status})")
    if attempt >= settings.max_attempts:
        return NextModel(f"{attempt} attempt(s) made, the most allowed ({status})")
    if error.retry_after is not None:
        if error.retry_after > settings.max_delay_seconds:
            return NextModel(
                f"retry-after {error.retry_after:g}s exceeds the {settings.max_delay_seconds:g}s cap"
            )
        return Retry(error.retry_after)
    return Retry(backoff_delay(attempt, settings, jitter))


def chain_error(errors: Sequence[ProviderError]) -> ProviderError:
    """The error a job fails with when every model of its chain failed.

    `errors` holds the final error of each model tried, in chain order, so the
    primary's comes first: docs/rest-api.md §7 says a failed chain reports the
    primary model's error, not the last fallback's (the caller asked for the
    primary; the fallbacks were only a hope).
    """
    if not errors:
        raise ValueError("chain_error needs the error of at least one model")
    return errors[0]
