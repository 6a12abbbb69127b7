"""Hooks the request path calls so that metrics (and traces, when configured) see it:
one line at each place in the chain runner and the store wrapper, the rest lives here.

    value = await observe.provider_call("openai", "gpt-image-1", call())
    observe.retry_taken("openai")
    observe.fallback_taken("local")
"""

from __future__ import annotations

import time
from collections.abc import Awaitable
from typing import TypeVar

from asyncgate import otel
from grpc_server.domain.failures import ProviderError
from grpc_server.metrics import FALLBACKS, PROVIDER_CALLS, RETRIES, provider_outcome

T = TypeVar("T")


async def provider_call(provider: str, model: str, call: Awaitable[T]) -> T:
    """Await one provider attempt, timed and counted by its outcome."""
    started = time.perf_counter()
    outcome = "cancelled"  # unless the call ends otherwise below
    attributes = {"asyncgate.provider": provider, "asyncgate.model": model}
    with otel.span(f"provider {provider}", kind="client", attributes=attributes) as span:
        try:
            value = await call
            outcome = provider_outcome(None)
            return value
        except ProviderError as exc:
            outcome = provider_outcome(exc)
            raise
        except Exception:
            outcome = "error"  # a bug in an adapter: the chain lets it propagate
            raise
        finally:
            PROVIDER_CALLS.labels(provider, model, outcome).observe(time.perf_counter() - started)
            if span is not None:
                span.set_attribute("asyncgate.outcome", outcome)
                if outcome != "ok":
                    otel.set_error(span, outcome)


def retry_taken(provider: str) -> None:
    RETRIES.labels(provider).inc()


def fallback_taken(provider: str) -> None:
    FALLBACKS.labels(provider).inc()
