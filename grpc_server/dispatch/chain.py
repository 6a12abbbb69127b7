"""Run one request along its model chain: retries per model, then fallbacks (docs/rest-api.md §7).

The decisions (retry or move on, how long to wait, which error the job fails
with) live in grpc_server.domain.retry; this module does the I/O around them:
resolving each `provider/model`, timing out each attempt, turning transport
failures into ProviderErrors, sleeping between retries and watching for
cancellation.

Exceptions other than ProviderError, timeouts and connection errors (a bug in an
adapter, say) propagate unchanged: retrying or falling back would hide them.
asyncio.CancelledError always propagates.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Generic, TypeVar

import aiohttp

from grpc_server import observe
from grpc_server.config import RetrySettings
from grpc_server.domain.failures import ProviderError
from grpc_server.domain.jobs import ModelRef
from grpc_server.domain.retry import NextModel, chain_error, decide
from grpc_server.providers.base import Provider
from grpc_server.providers.registry import ProviderRegistry

T = TypeVar("T")

logger = logging.getLogger("asyncgate.chain")


@dataclass(frozen=True)
class ChainSuccess(Generic[T]):
    value: T
    provider: str
    """The provider that served, as named in the model string."""
    model: str
    """The full `provider/model` that served."""


class ChainFailed(Exception):
    """Every model failed, or the chain was stopped.

    `error` is what the job fails with: the primary model's last error, or a
    "cancelled" gateway error when stopped. `attempts` lists every failed attempt,
    in order, as (`provider/model`, error).
    """

    def __init__(self, error: ProviderError, attempts: Sequence[tuple[str, ProviderError]]) -> None:
        super().__init__(error.message)
        self.error = error
        self.attempts = list(attempts)


def _not_configured(model: str) -> ProviderError:
    ref = ModelRef.parse(model)
    name = ref.provider if ref else model
    return ProviderError(
        message=f"provider {name!r} is not configured",
        status_code=400,
        type="invalid_request_error",
        code="provider_not_configured",
        retryable=False,
        is_gateway_error=True,
    )


def _cancelled() -> ProviderError:
    return ProviderError(message="job cancelled", status_code=409, type="cancelled", is_gateway_error=True)


async def _call_once(
    attempt: Callable[[Provider, str], Awaitable[T]],
    provider: Provider,
    provider_name: str,
    bare_model: str,
    timeout: float,
) -> T:
    """One provider call within `timeout` seconds; every expected failure becomes a ProviderError."""
    deadline = asyncio.timeout(timeout)
    try:
        async with deadline:
            return await attempt(provider, bare_model)
    except ProviderError:
        raise
    # TimeoutError subclasses OSError, so it must be caught first.
    except TimeoutError as exc:
        # Our deadline, or a timeout of the adapter's own HTTP client.
        when = f" after {timeout:g}s" if deadline.expired() else ""
        raise ProviderError(
            message=f"provider {provider_name!r} timed out{when}",
            status_code=504,
            type="timeout",
            retryable=True,
        ) from exc
    except (aiohttp.ClientError, OSError) as exc:
        # Only the class name: an exception's text may carry the URL, and some
        # providers take their key in the query string.
        raise ProviderError(
            message=f"could not reach provider {provider_name!r} ({type(exc).__name__})",
            status_code=503,
            type="connection_error",
            retryable=True,
        ) from exc


async def run_chain(
    models: Sequence[str],
    attempt: Callable[[Provider, str], Awaitable[T]],
    *,
    registry: ProviderRegistry,
    retry: RetrySettings,
    provider_timeouts: Mapping[str, float | None] | None = None,
    should_stop: Callable[[], bool] = lambda: False,
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    jitter: Callable[[], float] = random.random,
) -> ChainSuccess[T]:
    """Call `attempt(provider, bare_model)` for each model of `models` in turn until one succeeds.

    `models` is the primary followed by its fallbacks. Each model is retried as
    grpc_server.domain.retry decides; a model whose provider is not in `registry`
    fails at once with a gateway error. `provider_timeouts` maps a provider name to
    its per-attempt timeout (None or absent: `retry.attempt_timeout_seconds`). Each
    attempt holds one of its provider's concurrency slots (ProviderRegistry.slot).
    `should_stop` is checked before every attempt.

    Raises ChainFailed when every model failed (with the primary's error) or when
    stopped (with a "cancelled" error).
    """
    if not models:
        raise ValueError("run_chain needs at least one model")
    timeouts = provider_timeouts or {}
    attempts: list[tuple[str, ProviderError]] = []
    finals: list[ProviderError] = []  # the last error of each model, in chain order

    for index, model in enumerate(models):
        if should_stop():
            raise ChainFailed(_cancelled(), attempts)
        if index > 0:
            logger.info("falling back from %s to %s", models[index - 1], model)
            observe.fallback_taken(model.split("/", 1)[0])
        resolved = registry.resolve(model)
        if resolved is None:
            error = _not_configured(model)
            logger.info("skipping %s: provider not configured", model)
            attempts.append((model, error))
            finals.append(error)
            continue
        provider, bare_model = resolved
        provider_name = ModelRef.parse(model).provider  # type: ignore[union-attr]  # resolved above
        configured = timeouts.get(provider_name)
        timeout = retry.attempt_timeout_seconds if configured is None else configured

        number = 1
        while True:
            try:
                # A free slot of the provider's concurrency limit is waited for outside the
                # attempt's timeout: waiting in line is not the provider being slow.
                async with registry.slot(provider_name):
                    call = _call_once(attempt, provider, provider_name, bare_model, timeout)
                    value = await observe.provider_call(provider_name, bare_model, call)
                return ChainSuccess(value=value, provider=provider_name, model=model)
            except ProviderError as exc:
                failure = exc  # `exc` is unbound once the except block ends
            attempts.append((model, failure))
            decision = decide(failure, number, retry, jitter())
            if isinstance(decision, NextModel):
                logger.info(
                    "giving up on %s after attempt %d (status %s, type %s): %s",
                    model,
                    number,
                    failure.status_code,
                    failure.type,
                    decision.reason,
                )
                finals.append(failure)
                break
            logger.info(
                "retrying %s in %.2fs after attempt %d (status %s, type %s)",
                model,
                decision.delay,
                number,
                failure.status_code,
                failure.type,
            )
            observe.retry_taken(provider_name)
            await sleep(decision.delay)
            if should_stop():
                raise ChainFailed(_cancelled(), attempts)
            number += 1

    raise ChainFailed(chain_error(finals), attempts)
