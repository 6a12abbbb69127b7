"""The chain runner (grpc_server.dispatch.chain) against scripted in-test providers.

Backoff waits go through an injected `sleep` that only records the delay, and
jitter is fixed, so nothing here depends on timing except the per-attempt
timeout tests, which use a 0.05s timeout against a 10s hang.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

import aiohttp
import pytest

from grpc_server.config import RetrySettings
from grpc_server.dispatch.chain import ChainFailed, ChainSuccess, run_chain
from grpc_server.domain.jobs import ImageEditParams, RequestType
from grpc_server.providers.base import (
    EmbeddingCall,
    EmbeddingOutcome,
    ImageEditCall,
    ImageGenerationCall,
    ImageOutcome,
    ImageVariationCall,
    Provider,
    ProviderError,
    unsupported,
)
from grpc_server.providers.registry import ProviderRegistry

SETTINGS = RetrySettings(
    max_attempts=3, base_delay_seconds=1.0, max_delay_seconds=8.0, attempt_timeout_seconds=5.0
)
HANG = "hang"
"""A script step: never answer (well, not within the test's timeout)."""
OK = "ok"

Step = str | BaseException


class ScriptedProvider:
    """Plays its script, one step per call; answers OK once the script runs out."""

    def __init__(self, name: str, *script: Step) -> None:
        self.name = name
        self.script = list(script)
        self.calls: list[str] = []
        self.called = asyncio.Event()

    def supports(self, request_type: RequestType) -> bool:
        return True

    async def edit_image(self, call: ImageEditCall) -> ImageOutcome:
        self.calls.append(call.model)
        self.called.set()
        step = self.script.pop(0) if self.script else OK
        if step == HANG:
            await asyncio.sleep(10)
        if isinstance(step, BaseException):
            raise step
        return ImageOutcome(created=len(self.calls), images=())

    async def generate_image(self, call: ImageGenerationCall) -> ImageOutcome:
        raise unsupported(self.name, RequestType.IMAGE_GENERATION)

    async def embed(self, call: EmbeddingCall) -> EmbeddingOutcome:
        raise unsupported(self.name, RequestType.EMBEDDING)

    async def vary_image(self, call: ImageVariationCall) -> ImageOutcome:
        raise unsupported(self.name, RequestType.IMAGE_VARIATION)


class RecordingSleep:
    def __init__(self) -> None:
        self.delays: list[float] = []

    async def __call__(self, delay: float) -> None:
        self.delays.append(delay)


async def edit_attempt(provider: Provider, model: str) -> ImageOutcome:
    call = ImageEditCall(model=model, params=ImageEditParams(model=model, prompt="a cat"), images=())
    return await provider.edit_image(call)


def error(status: int, retry_after: float | None = None, retryable: bool | None = None) -> ProviderError:
    if retryable is None:
        retryable = status in (408, 409, 429) or status >= 500
    return ProviderError(f"status {status}", status_code=status, retryable=retryable, retry_after=retry_after)


async def run(
    models: list[str],
    *providers: ScriptedProvider,
    sleep: RecordingSleep | None = None,
    settings: RetrySettings = SETTINGS,
    provider_timeouts: dict[str, float | None] | None = None,
    should_stop: Callable[[], bool] = lambda: False,
    jitter: float = 0.0,
    registry: ProviderRegistry | None = None,
) -> ChainSuccess[ImageOutcome]:
    return await run_chain(
        models,
        edit_attempt,
        registry=registry or ProviderRegistry({p.name: p for p in providers}),
        retry=settings,
        provider_timeouts=provider_timeouts,
        should_stop=should_stop,
        sleep=sleep or RecordingSleep(),
        jitter=lambda: jitter,
    )


async def test_success_first_time() -> None:
    a = ScriptedProvider("a")
    sleep = RecordingSleep()
    result = await run(["a/m1", "b/m2"], a, sleep=sleep)
    assert result == ChainSuccess(value=ImageOutcome(created=1, images=()), provider="a", model="a/m1")
    assert a.calls == ["m1"]
    assert sleep.delays == []


async def test_bare_model_keeps_its_slashes() -> None:
    a = ScriptedProvider("a")
    result = await run(["a/org/model"], a)
    assert a.calls == ["org/model"]
    assert result.model == "a/org/model"


async def test_429_with_retry_after_waits_the_hint() -> None:
    a = ScriptedProvider("a", error(429, retry_after=2.5))
    sleep = RecordingSleep()
    result = await run(["a/m1"], a, sleep=sleep, jitter=0.9)
    assert result.provider == "a"
    assert a.calls == ["m1", "m1"]
    assert sleep.delays == [2.5]


async def test_429_without_hint_backs_off_with_jitter() -> None:
    a = ScriptedProvider("a", error(429), error(429))
    sleep = RecordingSleep()
    await run(["a/m1"], a, sleep=sleep, jitter=0.5)
    # Ceilings 1s then 2s; equal jitter at 0.5 gives three quarters of each.
    assert sleep.delays == [0.75, 1.5]


async def test_retry_after_above_cap_moves_on_without_waiting() -> None:
    a = ScriptedProvider("a", error(429, retry_after=60.0))
    b = ScriptedProvider("b")
    sleep = RecordingSleep()
    result = await run(["a/m1", "b/m2"], a, b, sleep=sleep)
    assert result.model == "b/m2"
    assert a.calls == ["m1"]
    assert sleep.delays == []


async def test_500_until_exhausted_then_fallback_serves() -> None:
    a = ScriptedProvider("a", error(500), error(500), error(500))
    b = ScriptedProvider("b")
    sleep = RecordingSleep()
    result = await run(["a/m1", "b/m2"], a, b, sleep=sleep)
    assert (result.provider, result.model) == ("b", "b/m2")
    assert a.calls == ["m1"] * SETTINGS.max_attempts
    assert b.calls == ["m2"]
    assert sleep.delays == [0.5, 1.0]


async def test_non_retryable_goes_straight_to_fallback() -> None:
    a = ScriptedProvider("a", error(400))
    b = ScriptedProvider("b")
    sleep = RecordingSleep()
    result = await run(["a/m1", "b/m2"], a, b, sleep=sleep)
    assert result.model == "b/m2"
    assert a.calls == ["m1"]
    assert sleep.delays == []


async def test_fallbacks_tried_in_order() -> None:
    a = ScriptedProvider("a", error(401))
    b = ScriptedProvider("b", error(404))
    c = ScriptedProvider("c")
    result = await run(["a/m1", "b/m2", "c/m3"], a, b, c)
    assert result.model == "c/m3"
    assert (a.calls, b.calls, c.calls) == (["m1"], ["m2"], ["m3"])


async def test_all_fail_with_the_primarys_error() -> None:
    first, primary_last = error(503), error(503)
    fallback_error = error(400)
    a = ScriptedProvider("a", first, primary_last)
    b = ScriptedProvider("b", fallback_error)
    settings = RetrySettings(max_attempts=2, base_delay_seconds=1.0)
    with pytest.raises(ChainFailed) as caught:
        await run(["a/m1", "b/m2"], a, b, settings=settings)
    assert caught.value.error is primary_last
    assert caught.value.attempts == [("a/m1", first), ("a/m1", primary_last), ("b/m2", fallback_error)]
    assert str(caught.value) == "status 503"


async def test_unknown_provider_is_skipped() -> None:
    b = ScriptedProvider("b")
    result = await run(["nope/m1", "b/m2"], b)
    assert result.model == "b/m2"


async def test_unknown_primary_is_the_jobs_error() -> None:
    b = ScriptedProvider("b", error(400))
    with pytest.raises(ChainFailed) as caught:
        await run(["nope/m1", "b/m2"], b)
    failed = caught.value.error
    assert failed.is_gateway_error
    assert failed.code == "provider_not_configured"
    assert (failed.status_code, failed.type) == (400, "invalid_request_error")
    assert failed.message == "provider 'nope' is not configured"
    assert not failed.retryable
    assert [model for model, _ in caught.value.attempts] == ["nope/m1", "b/m2"]


async def test_stop_before_the_first_attempt() -> None:
    a = ScriptedProvider("a")
    with pytest.raises(ChainFailed) as caught:
        await run(["a/m1"], a, should_stop=lambda: True)
    assert a.calls == []
    cancelled = caught.value.error
    assert (cancelled.status_code, cancelled.type, cancelled.message) == (409, "cancelled", "job cancelled")
    assert cancelled.is_gateway_error
    assert caught.value.attempts == []


async def test_stop_prevents_the_retry() -> None:
    a = ScriptedProvider("a", error(503))
    with pytest.raises(ChainFailed) as caught:
        await run(["a/m1"], a, should_stop=lambda: bool(a.calls))
    assert a.calls == ["m1"]
    assert caught.value.error.type == "cancelled"
    assert [e.status_code for _, e in caught.value.attempts] == [503]


async def test_stop_prevents_the_fallback() -> None:
    a = ScriptedProvider("a", error(400))
    b = ScriptedProvider("b")
    with pytest.raises(ChainFailed) as caught:
        await run(["a/m1", "b/m2"], a, b, should_stop=lambda: bool(a.calls))
    assert b.calls == []
    assert caught.value.error.type == "cancelled"


async def test_timeout_is_converted_and_retried() -> None:
    a = ScriptedProvider("a", HANG)
    sleep = RecordingSleep()
    result = await run(["a/m1"], a, sleep=sleep, provider_timeouts={"a": 0.05})
    assert result.value.created == 2
    assert len(sleep.delays) == 1


async def test_timeout_error_names_the_limit() -> None:
    a = ScriptedProvider("a", HANG, HANG)
    settings = RetrySettings(max_attempts=2, attempt_timeout_seconds=0.05)
    with pytest.raises(ChainFailed) as caught:
        await run(["a/m1"], a, settings=settings, provider_timeouts={"a": None})
    failed = caught.value.error
    assert (failed.status_code, failed.type, failed.retryable) == (504, "timeout", True)
    assert failed.message == "provider 'a' timed out after 0.05s"
    assert len(caught.value.attempts) == 2


async def test_provider_timeout_only_applies_to_its_provider() -> None:
    a = ScriptedProvider("a", HANG)
    b = ScriptedProvider("b", HANG)
    settings = RetrySettings(max_attempts=1, attempt_timeout_seconds=0.05)
    with pytest.raises(ChainFailed) as caught:
        # a has a timeout of its own; b has none, so the server-wide one applies.
        await run(["a/m1", "b/m2"], a, b, settings=settings, provider_timeouts={"a": 0.01})
    messages = [e.message for _, e in caught.value.attempts]
    assert messages == ["provider 'a' timed out after 0.01s", "provider 'b' timed out after 0.05s"]


async def test_waiting_for_a_slot_is_not_counted_in_the_attempts_timeout() -> None:
    """The only slot is held for longer than the attempt timeout: the job waits, then is sent
    once and succeeds; the wait spends no attempt."""
    provider = ScriptedProvider("p")
    registry = ProviderRegistry({"p": provider}, {"p": 1})
    sleep = RecordingSleep()
    async with registry.slot("p"):
        waiting = asyncio.create_task(
            run(["p/m"], provider, sleep=sleep, provider_timeouts={"p": 0.05}, registry=registry)
        )
        await asyncio.sleep(0.3)  # six attempt timeouts
        assert provider.calls == [] and not waiting.done()
    served = await waiting
    assert served.model == "p/m"
    assert provider.calls == ["m"] and sleep.delays == []


async def test_a_deadline_passing_while_waiting_for_a_slot_sends_nothing() -> None:
    """The wait is bounded by the caller's deadline (the job's), not by the attempt timeout;
    a job that runs out of time in line was never sent."""
    provider = ScriptedProvider("p")
    registry = ProviderRegistry({"p": provider}, {"p": 1})
    async with registry.slot("p"):
        with pytest.raises(TimeoutError):
            async with asyncio.timeout(0.2):
                await run(["p/m"], provider, provider_timeouts={"p": 0.05}, registry=registry)
    assert provider.calls == []


async def test_adapter_own_timeout_is_converted() -> None:
    a = ScriptedProvider("a", aiohttp.ServerTimeoutError("read timeout"))
    with pytest.raises(ChainFailed) as caught:
        await run(["a/m1"], a, settings=RetrySettings(max_attempts=1))
    failed = caught.value.error
    assert (failed.status_code, failed.type) == (504, "timeout")
    assert failed.message == "provider 'a' timed out"


@pytest.mark.parametrize(
    "failure",
    [
        aiohttp.ClientConnectionError("Cannot connect to https://api.example/v1?key=sk-secret"),
        aiohttp.ClientPayloadError("Response payload is not completed"),
        ConnectionRefusedError(111, "Connection refused"),
        ConnectionResetError(104, "Connection reset by peer"),
    ],
)
async def test_connection_errors_are_converted_and_retried(failure: Exception) -> None:
    a = ScriptedProvider("a", failure)
    result = await run(["a/m1"], a)
    assert a.calls == ["m1", "m1"]
    assert result.value.created == 2


async def test_connection_error_keeps_secrets_out() -> None:
    secret = "sk-secret"
    failure = aiohttp.ClientConnectionError(f"Cannot connect to https://api.example/v1?key={secret}")
    a = ScriptedProvider("a", failure)
    with pytest.raises(ChainFailed) as caught:
        await run(["a/m1"], a, settings=RetrySettings(max_attempts=1))
    failed = caught.value.error
    assert (failed.status_code, failed.type, failed.retryable) == (503, "connection_error", True)
    assert "'a'" in failed.message
    assert secret not in failed.message
    assert failed.__cause__ is failure


async def test_cancellation_propagates() -> None:
    a = ScriptedProvider("a", HANG)
    b = ScriptedProvider("b")
    task = asyncio.create_task(run(["a/m1", "b/m2"], a, b))
    await a.called.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert b.calls == []


async def test_cancelled_error_from_the_attempt_propagates() -> None:
    a = ScriptedProvider("a", asyncio.CancelledError())
    b = ScriptedProvider("b")
    with pytest.raises(asyncio.CancelledError):
        await run(["a/m1", "b/m2"], a, b)
    assert b.calls == []


async def test_cancellation_during_backoff_propagates() -> None:
    async def cancelled_sleep(delay: float) -> None:
        raise asyncio.CancelledError

    a = ScriptedProvider("a", error(503))
    with pytest.raises(asyncio.CancelledError):
        await run_chain(
            ["a/m1"],
            edit_attempt,
            registry=ProviderRegistry({"a": a}),
            retry=SETTINGS,
            sleep=cancelled_sleep,
        )
    assert a.calls == ["m1"]


async def test_unexpected_exceptions_propagate() -> None:
    a = ScriptedProvider("a", ValueError("adapter bug"))
    b = ScriptedProvider("b")
    with pytest.raises(ValueError, match="adapter bug"):
        await run(["a/m1", "b/m2"], a, b)
    assert b.calls == []


async def test_empty_chain_is_refused() -> None:
    with pytest.raises(ValueError):
        await run([])


async def test_retries_and_fallbacks_are_logged(caplog: pytest.LogCaptureFixture) -> None:
    a = ScriptedProvider("a", error(429), error(400))
    b = ScriptedProvider("b")
    with caplog.at_level(logging.INFO, logger="asyncgate.chain"):
        await run(["a/m1", "b/m2"], a, b)
    messages = [r.getMessage() for r in caplog.records if r.name == "asyncgate.chain"]
    assert any("retrying a/m1" in m and "429" in m for m in messages)
    assert any("giving up on a/m1" in m and "400" in m for m in messages)
    assert any("falling back from a/m1 to b/m2" in m for m in messages)
