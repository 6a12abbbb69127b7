"""The one HTTP seam every HTTP adapter calls through: key, request, answer, classification.

    client = ProviderClient(name, session, settings, auth=lambda key: {"api-key": key})
    outcome = await client.call(Request(url, json=body), classify_error, parse_answer)

What it does for every provider alike, so that adapters only build requests and parse
answers:

- Leases a key from the provider's KeyPool for the call (a 429, 401 or 403 raised
  inside the lease rests the key; see keys). A provider that needs a key and has none
  fails before anything is sent (401 `missing_api_key`, a gateway error).
- Never follows a redirect: a 3xx is a non-retryable 502 `redirect_refused`, so the
  request and its credentials go only to the configured origin. Its message names
  where the provider pointed (scheme, host and path, never the query string that may
  carry a token) and never the other host's body.
- Reads the answer in chunks and stops at `max_response_bytes` (ProviderSettings): a
  bigger answer fails the attempt (502 `response_too_large`, not retried: the same
  request asks for the same answer) and the rest is never read; the connection is
  closed. Error answers are read up to ERROR_BODY_CAP at most and classified from that.
- Classifies a non-2xx answer with the adapter's `classify` (the provider's error
  shape) and parses a 2xx with its `parse`. Any malformed answer (invalid JSON, JSON
  nested thousands deep, wrong types, missing fields, a non-object top level, bad
  base64) becomes a retryable 502 `invalid_response`, never an unhandled exception.
- Parses answers over PARSE_IN_THREAD_BYTES in a worker thread, not on the event loop.
- Every text that reaches an error passes through the Redactor: no key ever appears.

Timeouts and connection errors are left to the chain runner (the per-attempt timeout).
"""

from __future__ import annotations

import asyncio
import binascii
import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, TypeVar
from urllib.parse import urljoin, urlsplit

import aiohttp

from asyncgate import otel
from grpc_server.config import ProviderSettings
from grpc_server.providers.base import ProviderError, retryable_status
from grpc_server.providers.http_errors import Malformed, Redactor, invalid_response, missing_key
from grpc_server.providers.keys import AUTH_ASIDE, KeyPool

CHUNK_BYTES = 64 * 1024
PARSE_IN_THREAD_BYTES = 1024 * 1024
"""Answers larger than this are parsed in a worker thread: decoding megabytes of JSON and
base64 would hold up every other request on the event loop."""
ERROR_BODY_CAP = 1024 * 1024
"""An error answer is read up to this many bytes: more than any provider's error text."""
_LOCATION_CHARS = 200
_PROBLEM_CHARS = 200
"""An invalid answer's description is cut here: it may quote the answer."""

T = TypeVar("T")

# What a parser may raise on an answer that is not the provider's shape. binascii.Error
# is a ValueError already; named for the reader.
MALFORMED_ANSWER_ERRORS: tuple[type[Exception], ...] = (
    ValueError,
    TypeError,
    KeyError,
    IndexError,
    AttributeError,
    RecursionError,
    OverflowError,
    binascii.Error,
)


@dataclass(frozen=True)
class Request:
    """One POST: JSON (`json`), raw bytes or a multipart form (`data`)."""

    url: str
    headers: Mapping[str, str] = field(default_factory=dict)
    params: Mapping[str, str] | None = None
    json: Any = None
    data: bytes | aiohttp.FormData | None = None


@dataclass(frozen=True)
class Answer:
    """The provider's answer, read whole (within the cap)."""

    status: int
    headers: Mapping[str, str]
    body: bytes

    @property
    def ok(self) -> bool:
        return 200 <= self.status < 300

    @property
    def media_type(self) -> str:
        return self.headers.get("Content-Type", "").split(";")[0].strip().lower()

    def json_object(self) -> dict[str, Any]:
        """The body as a JSON object, or Malformed."""
        try:
            doc = json.loads(self.body)
        except RecursionError:
            raise Malformed("body is JSON nested too deep") from None
        except ValueError:
            raise Malformed("body is not JSON") from None
        if not isinstance(doc, dict):
            raise Malformed("body is not a JSON object")
        return doc


def _any_error_may_rest_the_key(error: ProviderError) -> bool:
    return True


class ProviderClient:
    """One provider's HTTP calls: its session, keys, redaction and answer cap."""

    def __init__(
        self,
        name: str,
        session: aiohttp.ClientSession,
        settings: ProviderSettings,
        *,
        auth: Callable[[str], Mapping[str, str]],
        requires_key: bool = True,
        key_hint: str = "",
        revoked_key_codes: frozenset[str] = frozenset(),
        blames_key: Callable[[ProviderError], bool] = _any_error_may_rest_the_key,
    ) -> None:
        """auth: the headers that carry a key. revoked_key_codes: error codes that mean the
        key is revoked whatever the status (Gemini answers one with a 400). blames_key:
        whether an error may rest the key at all (a refusal about the prompt must not)."""
        self.name = name
        self.keys = KeyPool(settings.keys)
        self.redact = Redactor(settings.keys)
        self._session = session
        self._max_bytes = settings.max_response_bytes
        self._auth = auth
        self._requires_key = requires_key
        self._key_hint = key_hint
        self._revoked_key_codes = revoked_key_codes
        self._blames_key = blames_key

    def check_key(self) -> None:
        """A missing_key error now, before any work, when a key is needed and none is set."""
        if self._requires_key and not len(self.keys):
            raise missing_key(self.name, self._key_hint)

    async def call(
        self,
        request: Request,
        classify: Callable[[Answer], ProviderError],
        parse: Callable[[Answer], T],
    ) -> T:
        """Send with a leased key; the parsed 2xx answer, or a classified ProviderError.
        A large answer (base64 images) is parsed in a worker thread, off the event loop."""
        answer = await self.send(request, classify)
        if len(answer.body) > PARSE_IN_THREAD_BYTES:
            return await asyncio.to_thread(self.parse, answer, parse)
        return self.parse(answer, parse)

    async def send(self, request: Request, classify: Callable[[Answer], ProviderError]) -> Answer:
        """Send with a leased key; the 2xx answer, or a classified ProviderError."""
        self.check_key()
        with self.keys.lease() as key:
            answer = await self._post(request, key)
            error = None if answer.ok else self._classify(classify, answer)
            if error is not None and key is not None and error.code in self._revoked_key_codes:
                self.keys.set_aside(key, AUTH_ASIDE)
            if error is not None and self._blames_key(error):
                raise error  # inside the lease: the pool rests the key on 429, 401, 403
        if error is not None:
            raise error
        return answer

    def parse(self, answer: Answer, parse: Callable[[Answer], T]) -> T:
        """parse(answer), any malformation of the answer a retryable 502 invalid_response."""
        try:
            return parse(answer)
        except Malformed as problem:
            raise invalid_response(self.name, self.redact(str(problem))[:_PROBLEM_CHARS]) from None
        except MALFORMED_ANSWER_ERRORS as problem:
            what = f"{type(problem).__name__}: {problem}"[:_PROBLEM_CHARS]
            raise invalid_response(self.name, self.redact(f"unexpected answer ({what})")) from None

    def _classify(self, classify: Callable[[Answer], ProviderError], answer: Answer) -> ProviderError:
        try:
            return classify(answer)
        except MALFORMED_ANSWER_ERRORS:
            # An error body so odd that its own parser broke: keep the status, drop the text.
            return ProviderError(
                f"{self.name}: HTTP {answer.status}",
                status_code=answer.status,
                retryable=retryable_status(answer.status),
            )

    async def _post(self, request: Request, key: str | None) -> Answer:
        headers = dict(request.headers)
        if key is not None:
            headers.update(self._auth(key))
        otel.inject_headers(headers)  # traceparent, when tracing is on
        async with self._session.post(
            request.url,
            params=request.params,
            headers=headers,
            json=request.json,
            data=request.data,
            allow_redirects=False,
        ) as response:
            if 300 <= response.status < 400:
                raise self._redirect(request.url, response)
            ok = 200 <= response.status < 300
            body = await self._read(response, self._max_bytes if ok else min(self._max_bytes, ERROR_BODY_CAP))
            return Answer(response.status, response.headers, body)

    async def _read(self, response: aiohttp.ClientResponse, cap: int) -> bytes:
        """The body up to `cap` bytes. Past it: a 2xx fails (the connection is closed, the
        rest never read); an error answer is classified from its first `cap` bytes."""
        declared = response.content_length
        ok = 200 <= response.status < 300
        if ok and declared is not None and declared > cap:
            response.close()
            raise self._too_large(cap)
        chunks: list[bytes] = []
        size = 0
        async for chunk in response.content.iter_chunked(CHUNK_BYTES):
            chunks.append(chunk)
            size += len(chunk)
            if size > cap:
                response.close()
                if ok:
                    raise self._too_large(cap)
                return b"".join(chunks)[:cap]
        return b"".join(chunks)

    def _too_large(self, cap: int) -> ProviderError:
        return ProviderError(
            f"{self.name}: the answer is larger than max_response_bytes ({cap:,} bytes); "
            "it was not read (raise the provider's max_response_bytes if such answers are expected)",
            status_code=502,
            type="invalid_response",
            code="response_too_large",
            retryable=False,
        )

    def _redirect(self, url: str, response: aiohttp.ClientResponse) -> ProviderError:
        response.close()  # the other host's body is never read
        location = response.headers.get("Location", "")
        target = _without_query(urljoin(url, location)) if location else "(no Location)"
        return ProviderError(
            self.redact(
                f"{self.name}: the provider answered HTTP {response.status}, a redirect to {target}; "
                "redirects are refused, so the request and its key go only to the configured base URL"
            ),
            status_code=502,
            type="invalid_response",
            code="redirect_refused",
            retryable=False,
        )


def _without_query(url: str) -> str:
    """scheme://host/path of a URL: no user info, query or fragment (tokens live there)."""
    try:
        parts = urlsplit(url)
        host = parts.hostname or ""
        port = f":{parts.port}" if parts.port else ""
    except ValueError:
        return "(an invalid Location)"
    text = f"{parts.scheme}://{host}{port}{parts.path}" if host else parts.path
    return text[:_LOCATION_CHARS]
