"""A fake of Azure OpenAI's deployment API: a real aiohttp server on 127.0.0.1, for any test.

    async with FakeAzure(api_key="k", deployments={"img", "emb"}) as fake:
        fake.enqueue(FakeResponse.rate_limited(retry_after=1), FakeResponse.success())
        ...  # point a client at fake.endpoint
        assert fake.requests[0].query["api-version"] == "2025-04-01-preview"

Routes: `POST /openai/deployments/{deployment}/images/generations` (JSON),
`.../images/edits` (multipart) and `.../embeddings` (JSON). Every request is
recorded, whatever the answer. Checks, in this order, each with Azure's own
error body:

1. `api-key` header is one of the fake's keys, else 401 code "401" "Access denied
   due to invalid subscription key or wrong API endpoint. ...".
2. `api-version` query present, else 404 code "404" "Resource not found"; one of
   `api_versions`, else 400 code "BadRequest" "API version not supported".
3. A known route (else 404 "Resource not found") and a known deployment (else 404
   code "DeploymentNotFound").

Then the next scripted answer (FakeResponse), or a default success like OpenAI's:
images are `n` base64 PNGs of the requested `size` (64x64 when not `WxH`);
embeddings are `fake_vector(input)` per input, as base64 float32 or floats per
`encoding_format`. Missing `prompt`, image or `input` answers OpenAI's 400.

`FakeResponse.hang()` never answers; on close the handler is cancelled, so the
connection drops unanswered and nothing is left running.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import io
import json
import re
import struct
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web
from PIL import Image

from tests.fakes.openai_server import invalid_n, missing_parameter, png_answer
from tests.fakes.scripted import RecordedFile as RecordedFile
from tests.fakes.scripted import RecordedMultipartRequest, ScriptedResponse, ScriptedServer, read_multipart

DEFAULT_API_VERSIONS = frozenset(
    {"2024-02-01", "2024-06-01", "2024-10-21", "2025-03-01-preview", "2025-04-01-preview"}
)
EMBEDDING_DIMENSIONS = 8
"""Length of a default embedding when the request names no `dimensions`."""
DEFAULT_IMAGE_SIZE = (64, 64)

_ROUTE = re.compile(
    r"/openai/deployments/(?P<deployment>[^/]+)/(?P<op>images/generations|images/edits|embeddings)"
)
_SIZE = re.compile(r"(\d+)x(\d+)")

ACCESS_DENIED = (
    "Access denied due to invalid subscription key or wrong API endpoint. Make sure to provide a valid "
    "key for an active subscription and use a correct regional API endpoint for your resource."
)
DEPLOYMENT_NOT_FOUND = (
    "The API deployment for this resource does not exist. If you created the deployment within the "
    "last 5 minutes, please wait a moment and try again."
)
CONTENT_FILTERED = (
    "The response was filtered due to the prompt triggering Azure OpenAI's content management policy. "
    "Please modify your prompt and retry."
)


@dataclass(frozen=True)
class RecordedRequest(RecordedMultipartRequest):
    query: dict[str, str] = field(default_factory=dict)
    json_body: Any = None
    """The parsed JSON body, or None when the body was not JSON."""

    @property
    def deployment(self) -> str | None:
        match = _ROUTE.fullmatch(self.path)
        return match["deployment"] if match else None


class FakeResponse(ScriptedResponse):
    """One scripted answer; build it with the class methods (success, raw, json_body, hang,
    and Azure's error, rate_limited and content_filter)."""

    @classmethod
    def error(
        cls,
        status: int,
        message: str = "The server had an error while processing your request.",
        code: str | None = None,
        *,
        type: str | None = None,
        param: str | None = None,
        innererror: Mapping[str, Any] | None = None,
        headers: Mapping[str, str] | None = None,
        delay: float = 0.0,
    ) -> FakeResponse:
        """Azure's error JSON `{"error": {"code", "message", ...}}`; code defaults to the status."""
        body = azure_error_body(status, message, code, type=type, param=param, innererror=innererror)
        return cls.raw(status, body, headers=headers, delay=delay)

    @classmethod
    def rate_limited(cls, retry_after: int = 1, delay: float = 0.0) -> FakeResponse:
        """429 code "429" with `Retry-After`, as Azure answers a quota overrun."""
        message = (
            "Requests to the Images_Generations_Create Operation under Azure OpenAI API version "
            f"2025-04-01-preview have exceeded call rate limit. Please retry after {retry_after} seconds."
        )
        return cls.error(429, message, "429", headers={"Retry-After": str(retry_after)}, delay=delay)

    @classmethod
    def content_filter(cls) -> FakeResponse:
        """400 code "content_filter", with the filter's verdict in `innererror`."""
        inner = {
            "code": "ResponsibleAIPolicyViolation",
            "content_filter_result": {"violence": {"filtered": True, "severity": "high"}},
        }
        return cls.error(400, CONTENT_FILTERED, "content_filter", param="prompt", innererror=inner)


class FakeAzure(ScriptedServer[RecordedRequest]):
    """Azure OpenAI's deployment API on 127.0.0.1 (a free port), for the length of an `async with`."""

    def __init__(
        self,
        api_key: str | Iterable[str] | None = "k",
        deployments: Iterable[str] | None = None,
        *,
        api_versions: Iterable[str] = DEFAULT_API_VERSIONS,
    ) -> None:
        super().__init__()
        keys = [api_key] if isinstance(api_key, str) else api_key
        self.api_keys = None if keys is None else frozenset(keys)
        """Keys accepted in `api-key`; None accepts any request."""
        self.deployments = None if deployments is None else frozenset(deployments)
        """Known deployments; None knows every name."""
        self.api_versions = frozenset(api_versions)

    @property
    def endpoint(self) -> str:
        """The resource endpoint to configure a client with, e.g. `http://127.0.0.1:PORT`.
        Scripted answers go to requests that pass the key, version and deployment checks."""
        return self._url()

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        recorded = await _record(request)
        self.requests.append(recorded)
        refusal = self._refusal(recorded)
        if refusal is not None:
            return await self._after_latency(refusal)
        return await self._scripted_answer(lambda _: _success(recorded), request)

    def _refusal(self, request: RecordedRequest) -> web.Response | None:
        """Azure's answer to a request it would not route to a deployment; None if it would."""
        if self.api_keys is not None and request.headers.get("api-key") not in self.api_keys:
            return _azure_error(401, ACCESS_DENIED, "401")
        version = request.query.get("api-version")
        if version is None:
            return _azure_error(404, "Resource not found", "404")
        if version not in self.api_versions:
            return _azure_error(400, "API version not supported", "BadRequest")
        deployment = request.deployment
        if request.method != "POST" or deployment is None:
            return _azure_error(404, "Resource not found", "404")
        if self.deployments is not None and deployment not in self.deployments:
            return _azure_error(404, DEPLOYMENT_NOT_FOUND, "DeploymentNotFound")
        return None


# Recording


async def _record(request: web.Request) -> RecordedRequest:
    arrived = time.monotonic()
    fields: dict[str, list[str]] = {}
    files: list[RecordedFile] = []
    body = b""
    json_body: Any = None
    if request.content_type.startswith("multipart/"):
        parts = await read_multipart(request)
        fields, files = parts.fields, parts.files
    else:
        body = await request.read()
        try:
            json_body = json.loads(body) if body else None
        except ValueError:
            json_body = None
    return RecordedRequest(
        method=request.method,
        path=request.path,
        query=dict(request.query),
        headers={k.lower(): v for k, v in request.headers.items()},
        json_body=json_body,
        fields=fields,
        files=files,
        body=body,
        received_at=arrived,
    )


# Default successes


async def _success(request: RecordedRequest) -> web.Response:
    if request.path.endswith("/embeddings"):
        return _embeddings(request)
    params = _image_params(request)
    if not params.get("prompt"):
        return missing_parameter("prompt")
    if request.path.endswith("/edits") and not any(f.name in ("image", "image[]") for f in request.files):
        return missing_parameter("image")
    n_text = str(params.get("n") or 1)
    if not n_text.isdigit() or not 1 <= int(n_text) <= 10:
        return invalid_n(n_text)
    size = str(params.get("size") or "")
    width, height = _dimensions(size)
    png = await asyncio.to_thread(_png, width, height)
    return png_answer(png, int(n_text), (width, height), params.get("background"), params.get("quality"))


def _image_params(request: RecordedRequest) -> dict[str, Any]:
    """Generation JSON or edit text fields, as one flat mapping."""
    if isinstance(request.json_body, dict):
        return request.json_body
    return {name: values[0] for name, values in request.fields.items() if values}


def _dimensions(size: str) -> tuple[int, int]:
    match = _SIZE.fullmatch(size)
    return (int(match[1]), int(match[2])) if match else DEFAULT_IMAGE_SIZE


def _png(width: int, height: int) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (width, height), (30, 90, 200)).save(out, "PNG")
    return out.getvalue()


def _embeddings(request: RecordedRequest) -> web.Response:
    doc = request.json_body if isinstance(request.json_body, dict) else {}
    items = _embedding_items(doc.get("input"))
    if not items:
        return missing_parameter("input")
    dimensions = doc.get("dimensions") or EMBEDDING_DIMENSIONS
    as_base64 = doc.get("encoding_format") == "base64"
    data = []
    for index, item in enumerate(items):
        vector = fake_vector(item, dimensions)
        encoded: Any = encode_base64(vector) if as_base64 else vector
        data.append({"object": "embedding", "index": index, "embedding": encoded})
    tokens = sum(len(item.split()) if isinstance(item, str) else len(item) for item in items)
    answer = {
        "object": "list",
        "data": data,
        "model": request.deployment,
        "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
    }
    return web.json_response(answer)


def _embedding_items(value: Any) -> list[str | list[int]]:
    """OpenAI's input forms as a list of items: a string, strings, token ids, token-id lists."""
    if isinstance(value, str):
        return [value] if value else []
    if isinstance(value, list) and value and all(isinstance(v, int) for v in value):
        return [value]
    if isinstance(value, list):
        return value
    return []


def fake_vector(item: str | list[int], dimensions: int = EMBEDDING_DIMENSIONS) -> list[float]:
    """The default embedding of one input item: deterministic, each value exact in float32."""
    seed = json.dumps(item).encode()
    digest = b""
    counter = 0
    while len(digest) < dimensions:
        digest += hashlib.sha256(seed + counter.to_bytes(4, "big")).digest()
        counter += 1
    # Multiples of 1/128 in [-1, 1): the same after a float32 round trip.
    return [(b - 128) / 128 for b in digest[:dimensions]]


def encode_base64(vector: list[float]) -> str:
    """OpenAI's `encoding_format=base64`: little-endian float32, base64."""
    return base64.b64encode(struct.pack(f"<{len(vector)}f", *vector)).decode()


# Error bodies


def azure_error_body(
    status: int,
    message: str,
    code: str | None = None,
    *,
    type: str | None = None,
    param: str | None = None,
    innererror: Mapping[str, Any] | None = None,
) -> bytes:
    """`{"error": {"code", "message"}}` plus what was given: Azure leaves the rest out."""
    error: dict[str, Any] = {"code": code or str(status), "message": message}
    if type is not None:
        error["type"] = type
    if param is not None:
        error["param"] = param
    if innererror is not None:
        error["status"] = status
        error["innererror"] = dict(innererror)
    return json.dumps({"error": error}).encode()


def _azure_error(status: int, message: str, code: str) -> web.Response:
    return web.Response(
        status=status, body=azure_error_body(status, message, code), content_type="application/json"
    )
