"""The HTTP seam (providers.http) as every HTTP adapter meets it, against the real fakes:
redirects refused (the key never reaches another host), answers capped, malformed
answers of every shape classified as a retryable 502 invalid_response."""

from __future__ import annotations

import base64
import io
import json
import threading
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any

import aiohttp
import pytest
from PIL import Image

from grpc_server.config import ApiKey, ProviderSettings
from grpc_server.providers import openai_wire
from grpc_server.providers.azure import AzureOpenAIProvider
from grpc_server.providers.base import ImageOutcome, Provider
from grpc_server.providers.gemini import GeminiProvider
from grpc_server.providers.http import PARSE_IN_THREAD_BYTES
from grpc_server.providers.openai import OpenAIProvider
from grpc_server.providers.stability import StabilityProvider
from tests.fakes.azure_server import FakeAzure
from tests.fakes.gemini_server import FakeGemini
from tests.fakes.openai_server import FakeOpenAI
from tests.fakes.scripted import ScriptedResponse, ScriptedServer
from tests.fakes.stability_server import FakeStability
from tests.integration.helpers import generation_call, provider_error

KEY = "seam-key-0123456789abcdef"
KINDS = ("openai", "azure", "gemini", "stability")
BUILD: dict[str, Callable[[aiohttp.ClientSession, ProviderSettings, str], Provider]] = {
    "openai": OpenAIProvider,
    "azure": AzureOpenAIProvider,
    "gemini": GeminiProvider,
    "stability": StabilityProvider,
}
MODEL = {
    "openai": "gpt-image-1",
    "azure": "gpt-image-1",
    "gemini": "gemini-2.5-flash-image",
    "stability": "core",
}
KEY_HEADER = {
    "openai": "authorization",
    "azure": "api-key",
    "gemini": "x-goog-api-key",
    "stability": "authorization",
}
TOKEN = "location-token-5ecret"
OTHER_BODY = "the other host's page 0f secrets"


def _png_base64() -> str:
    out = io.BytesIO()
    Image.new("RGB", (8, 8), (1, 2, 3)).save(out, "PNG")
    return base64.b64encode(out.getvalue()).decode()


PNG = _png_base64()


@dataclass
class Case:
    kind: str
    fake: ScriptedServer[Any]
    base_url: str
    session: aiohttp.ClientSession

    def provider(self, **settings: Any) -> Provider:
        full = ProviderSettings(kind=self.kind, keys=(ApiKey(KEY),), base_url=self.base_url, **settings)
        return BUILD[self.kind](self.session, full, self.kind)

    async def generate(self, provider: Provider) -> ImageOutcome:
        return await provider.generate_image(generation_call(self.kind, MODEL[self.kind], "a red fox"))


def _fake(kind: str) -> tuple[ScriptedServer[Any], Callable[[], str]]:
    if kind == "openai":
        openai = FakeOpenAI(api_key=KEY)
        return openai, lambda: openai.base_url
    if kind == "azure":
        azure = FakeAzure(api_key=KEY)
        return azure, lambda: azure.endpoint
    if kind == "gemini":
        gemini = FakeGemini(api_key=KEY)
        return gemini, lambda: gemini.base_url
    stability = FakeStability(api_key=KEY)
    return stability, lambda: stability.base_url


@pytest.fixture(params=KINDS)
async def case(request: pytest.FixtureRequest, session: aiohttp.ClientSession) -> AsyncIterator[Case]:
    fake, base_url = _fake(request.param)
    async with fake:
        yield Case(request.param, fake, base_url(), session)


@pytest.fixture
async def elsewhere() -> AsyncIterator[FakeOpenAI]:
    """Another host, recording whatever reaches it (it accepts any request)."""
    async with FakeOpenAI(api_key=None) as server:
        yield server


async def test_the_fakes_answer_a_plain_call(case: Case) -> None:
    # The baseline the failures below depart from: the same call, answered normally.
    outcome = await case.generate(case.provider())

    assert outcome.images
    assert len(case.fake.requests) == 1


# Redirects


@pytest.mark.parametrize("status", [301, 302, 303, 307, 308])
async def test_a_redirect_is_refused_and_the_key_never_leaves_the_origin(
    case: Case, elsewhere: FakeOpenAI, status: int
) -> None:
    location = f"{elsewhere.base_url}/steal?token={TOKEN}"
    case.fake.enqueue(
        ScriptedResponse.raw(status, OTHER_BODY.encode(), "text/html", headers={"Location": location})
    )

    error = await provider_error(case.generate(case.provider()))

    assert (error.status_code, error.type, error.code) == (502, "invalid_response", "redirect_refused")
    assert not error.retryable
    assert elsewhere.requests == []  # neither the request nor its key went there
    assert len(case.fake.requests) == 1
    assert f"HTTP {status}" in error.message
    assert f"{elsewhere.base_url}/steal" in error.message  # where it pointed, for the operator
    for secret in (TOKEN, OTHER_BODY, KEY):
        assert secret not in error.message


async def test_a_relative_redirect_is_refused_too(case: Case) -> None:
    case.fake.enqueue(ScriptedResponse.raw(307, b"", headers={"Location": "/elsewhere?token=" + TOKEN}))

    error = await provider_error(case.generate(case.provider()))

    assert error.code == "redirect_refused"
    assert len(case.fake.requests) == 1  # the same origin is not asked twice either
    assert TOKEN not in error.message


async def test_the_redirect_target_does_get_a_request_when_asked_directly(
    elsewhere: FakeOpenAI, session: aiohttp.ClientSession
) -> None:
    # The recorder records: an empty log above means nothing came, not that it cannot see.
    async with session.post(f"{elsewhere.base_url}/steal", headers={"api-key": KEY}) as response:
        await response.read()

    assert [r.headers.get("api-key") for r in elsewhere.requests] == [KEY]


# The answer cap


@pytest.mark.parametrize("declare_length", [False, True], ids=["chunked", "content-length"])
async def test_an_answer_over_the_cap_fails_without_being_read_whole(
    case: Case, declare_length: bool
) -> None:
    total = 64 * 1024 * 1024
    case.fake.enqueue(ScriptedResponse.stream(total, declare_length=declare_length))

    error = await provider_error(case.generate(case.provider(max_response_bytes=256 * 1024)))

    assert (error.status_code, error.type, error.code) == (502, "invalid_response", "response_too_large")
    assert not error.retryable
    assert "max_response_bytes" in error.message
    # Whatever was written is all the client could have read: far from the whole body.
    assert case.fake.streamed_bytes < total


async def test_an_answer_within_the_cap_is_read(case: Case) -> None:
    outcome = await case.generate(case.provider(max_response_bytes=1024 * 1024))

    assert outcome.images


async def test_an_error_answer_over_the_cap_is_classified_from_its_start(case: Case) -> None:
    total = 64 * 1024 * 1024
    case.fake.enqueue(ScriptedResponse.stream(total, status=503))

    error = await provider_error(case.generate(case.provider()))

    assert error.status_code == 503
    assert error.retryable
    assert error.code != "response_too_large"
    assert case.fake.streamed_bytes < total


# Malformed answers


def _too_many_digits(prefix: str) -> bytes:
    return (prefix + "1" * 5000 + "}").encode()


DEEP = b"[" * 100_000 + b"]" * 100_000
COMMON_SHAPES: dict[str, bytes] = {
    "invalid-json": b'{"data": [',
    "nested-thousands-deep": DEEP,
    "nested-object-deep": b'{"a":' * 50_000 + b"1" + b"}" * 50_000,
    "top-level-array": b"[]",
    "top-level-string": b'"ok"',
    "empty-object": b"{}",
    "not-utf8": b'{"data": "\xff\xfe"}',
}
OWN_SHAPES: dict[str, dict[str, bytes]] = {
    "openai": {
        "wrong-types": json.dumps({"data": "x"}).encode(),
        "item-not-object": json.dumps({"data": [5]}).encode(),
        "missing-image": json.dumps({"data": [{}]}).encode(),
        "not-base64": json.dumps({"data": [{"b64_json": "!!not base64!!"}]}).encode(),
        "huge-usage": json.dumps({"data": [{"b64_json": PNG}], "usage": {"input_tokens": 10**400}}).encode(),
        "too-many-digits": _too_many_digits('{"data": [{"b64_json": "' + PNG + '"}], "created": '),
    },
    "gemini": {
        "wrong-types": json.dumps({"candidates": "x"}).encode(),
        "parts-not-list": json.dumps({"candidates": [{"content": {"parts": 5}}]}).encode(),
        "inline-not-object": json.dumps(
            {"candidates": [{"content": {"parts": [{"inlineData": 5}]}}]}
        ).encode(),
        "not-base64": json.dumps(
            {
                "candidates": [
                    {"content": {"parts": [{"inlineData": {"mimeType": "image/png", "data": "!!"}}]}}
                ]
            }
        ).encode(),
        "huge-usage": json.dumps(
            {
                "candidates": [
                    {"content": {"parts": [{"inlineData": {"mimeType": "image/png", "data": PNG}}]}}
                ],
                "usageMetadata": {"promptTokenCount": 10**400},
            }
        ).encode(),
        "too-many-digits": _too_many_digits('{"usageMetadata": {"promptTokenCount": '),
    },
    "stability": {
        "wrong-types": json.dumps({"image": 5}).encode(),
        "image-list": json.dumps({"image": [PNG]}).encode(),
        "not-base64": json.dumps({"image": "!!not base64!!"}).encode(),
        "not-an-image": json.dumps({"image": base64.b64encode(b"plain text").decode()}).encode(),
        "too-many-digits": _too_many_digits('{"image": "' + PNG + '", "seed": '),
    },
}
OWN_SHAPES["azure"] = OWN_SHAPES["openai"]
# Gemini's JSON may leave `candidates` out (a blocked prompt): {} is a refusal there, not malformed.
SKIP = {("gemini", "empty-object")}
MALFORMED = [
    (kind, name, body)
    for kind in KINDS
    for name, body in {**COMMON_SHAPES, **OWN_SHAPES[kind]}.items()
    if (kind, name) not in SKIP
]


@pytest.mark.parametrize(("kind", "shape", "body"), MALFORMED, ids=[f"{k}-{n}" for k, n, _ in MALFORMED])
async def test_a_malformed_answer_is_a_retryable_invalid_response(
    session: aiohttp.ClientSession, kind: str, shape: str, body: bytes
) -> None:
    fake, base_url = _fake(kind)
    async with fake:
        case = Case(kind, fake, base_url(), session)
        fake.enqueue(ScriptedResponse.raw(200, body))

        error = await provider_error(case.generate(case.provider()))

    assert (error.status_code, error.type) == (502, "invalid_response"), error.message
    assert error.retryable
    assert KEY not in error.message
    assert len(error.message) < 400


async def test_an_empty_gemini_answer_is_a_refusal_not_malformed(session: aiohttp.ClientSession) -> None:
    fake, base_url = _fake("gemini")
    async with fake:
        case = Case("gemini", fake, base_url(), session)
        fake.enqueue(ScriptedResponse.raw(200, b"{}"))

        error = await provider_error(case.generate(case.provider()))

    assert (error.status_code, error.code, error.retryable) == (400, "NO_IMAGE", False)


async def test_an_error_body_nested_thousands_deep_is_classified_by_its_status(case: Case) -> None:
    case.fake.enqueue(ScriptedResponse.raw(429, DEEP, headers={"Retry-After": "3"}))

    error = await provider_error(case.generate(case.provider()))

    assert error.status_code == 429
    assert error.retryable


# Large answers


async def test_a_large_answer_is_parsed_off_the_event_loop(
    session: aiohttp.ClientSession, monkeypatch: pytest.MonkeyPatch
) -> None:
    threads: list[int] = []
    real = openai_wire.image_outcome

    def recording(doc: dict[str, Any]) -> ImageOutcome:
        threads.append(threading.get_ident())
        return real(doc)

    monkeypatch.setattr(openai_wire, "image_outcome", recording)
    data = bytes(range(256)) * (2 * PARSE_IN_THREAD_BYTES // 256)
    async with FakeOpenAI(api_key=KEY) as fake:
        case = Case("openai", fake, fake.base_url, session)
        fake.enqueue(
            ScriptedResponse.json_body({"data": [{"b64_json": base64.b64encode(data).decode()}]}),
            ScriptedResponse.json_body({"data": [{"b64_json": PNG}]}),
            ScriptedResponse.raw(200, b'{"data": "' + b"x" * 2 * PARSE_IN_THREAD_BYTES + b'"}'),
        )
        provider = case.provider()

        large = await case.generate(provider)
        small = await case.generate(provider)
        error = await provider_error(case.generate(provider))

    assert large.images[0].data == data
    assert small.images[0].data == base64.b64decode(PNG)
    assert (error.status_code, error.type, error.retryable) == (502, "invalid_response", True)
    loop_thread = threading.get_ident()
    assert threads[0] != loop_thread  # the large answer: in a worker thread
    assert threads[1] == loop_thread  # a small one is not worth the hop
